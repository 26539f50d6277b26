//! The supervisor's inputs: station reports, zone readings, meters, tariff periods,
//! configuration changes and budgets imposed from above.

use super::*;

impl ZoneSupervisor {
    /// (Re)starts the zone, meter and calendar actors for the configuration in force.
    pub(super) fn start_inputs(&mut self, ctx: &mut Context<Self>) {
        for (_, m) in self.meters.drain(..) {
            m.do_send(StopMeter);
        }
        self.zones.clear();
        self.zone_generation += 1;
        let config = self.current.clone();
        let me = ctx.address();
        let mut zone_of_meter: HashMap<&MeterId, Addr<ZoneActor>> = HashMap::new();
        for (i, z) in self.tree.zones().iter().enumerate() {
            let Some(zc) = config.zone(&z.id) else {
                continue;
            };
            let index = ZoneIdx(u16::try_from(i).expect("at most 200 zones (validated)"));
            let actor = ZoneActor::new(
                index,
                self.zone_generation,
                zc.clone(),
                &config,
                me.clone().recipient(),
            )
            .start();
            for m in zc.meter.iter().chain(zc.production_meter.iter()) {
                zone_of_meter.insert(m, actor.clone());
            }
            self.zones.push(actor);
        }
        for m in &config.meters {
            let recipients = match zone_of_meter.get(&m.id) {
                Some(zone) => MeterRecipients {
                    readings: zone.clone().recipient(),
                    stale: zone.clone().recipient(),
                },
                None => MeterRecipients {
                    readings: me.clone().recipient(),
                    stale: me.clone().recipient(),
                },
            };
            match MeterActor::new(m.clone(), MeterTiming::new(m, &config.control), recipients) {
                Ok(actor) => self.meters.push((m.id.clone(), actor.start())),
                Err(e) => tracing::error!(meter = %m.id, error = %e, "cannot start the meter"),
            }
        }
        match TariffCalendar::new(&config.tariffs, &config.site.timezone) {
            Ok(calendar) => match &self.calendar {
                Some(actor) => actor.do_send(ReplaceTariffs(calendar)),
                None => {
                    self.calendar = Some(
                        TariffCalendarActor::new(calendar, me.recipient(), system_clock()).start(),
                    )
                }
            },
            Err(e) => tracing::error!(error = %e, "cannot build the tariff calendar"),
        }
    }
}

impl Handler<StationReport> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, report: StationReport, ctx: &mut Self::Context) {
        let id = report.snapshot.id.clone();
        let config = match (self.current.station(&id), self.stations.get(&id)) {
            (Some(now), _) => now.clone(),
            (None, Some(earlier)) => earlier.config.clone(),
            (None, None) => return, // never configured: nothing of it is allocated
        };
        let entry = StationEntry {
            addr: report.addr,
            snapshot: report.snapshot,
            config,
        };
        self.stations.insert(id.clone(), entry);
        if report.why == ReportReason::LimitChanged {
            return; // our own dispatch: no new round
        }
        self.schedule_round(ctx);
    }
}

impl Handler<ZoneUpdate> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, update: ZoneUpdate, ctx: &mut Self::Context) {
        if update.generation != self.zone_generation {
            tracing::debug!(zone = %update.zone, "update of a zone tree replaced since: dropped");
            return;
        }
        if let Some(slot) = self.readings.get_mut(update.zone.get()) {
            *slot = update.reading;
            self.schedule_round(ctx);
        }
    }
}

impl Handler<MeterReading> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, reading: MeterReading, _: &mut Self::Context) {
        self.other_meters.insert(reading.meter.clone(), reading);
    }
}

impl Handler<MeterStale> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, stale: MeterStale, _: &mut Self::Context) {
        tracing::warn!(meter = %stale.meter, since = %stale.since, "meter of another feeder is stale");
    }
}

impl Handler<TariffPeriodChanged> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, t: TariffPeriodChanged, ctx: &mut Self::Context) {
        tracing::info!(period = ?t.period.as_ref().map(|p| &p.name), cap = t.cap_fraction, "tariff period");
        self.price.set(t.price_per_kwh);
        self.tariff = t;
        self.schedule_round(ctx);
    }
}

impl Handler<ConfigChanged> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, _: ConfigChanged, ctx: &mut Self::Context) {
        let config = self.config.get();
        match ZoneTree::from_config(&config) {
            Ok(tree) => {
                self.readings = vec![ZoneReading::default(); tree.len()];
                self.tree = tree;
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration refused by the allocation: keeping the previous one");
                return;
            }
        }
        self.params = Params::from_config(&config);
        // A removed station is kept only while a transaction of it may still draw.
        self.stations.retain(|id, e| {
            config.station(id).is_some()
                || e.snapshot
                    .connectors
                    .iter()
                    .any(|c| c.transaction.is_some())
        });
        self.current = config;
        self.configure_secondaries();
        self.start_inputs(ctx);
        self.schedule_round(ctx);
    }
}

impl Handler<ImposeBudget> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, ImposeBudget(b): ImposeBudget, ctx: &mut Self::Context) {
        self.imposed = b;
        self.schedule_round(ctx);
    }
}
