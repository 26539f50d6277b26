//! A station's transactions: StartTransaction, StopTransaction and MeterValues, the
//! in-memory ledger of an open transaction, and the samples kept for the record.

use super::*;

/// A transaction's meter samples are kept at most this often (by the station's
/// timestamps): a station sampling every 10 s would otherwise write ~1.5 KB per message
/// for ever. The energy register and the draw still follow every message.
pub const SAMPLE_SPACING: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// An open transaction's energy and cost are written to the store at most this often; a
/// restart loses none of the energy (the next reading or the stop's meter value brings
/// the register), only the price split of at most this much of it.
pub(super) const LEDGER_WRITE_EVERY: Duration = Duration::from_secs(60);

/// How often the connectors are checked for a transaction left open on an Available one.
pub(super) const ORPHAN_CHECK: Duration = Duration::from_secs(2);

/// Whether the samples of one MeterValues for `transaction` are kept, given the last
/// kept `(transaction, timestamp)` on the connector: the first of a transaction, the
/// readings that open or close it (context Transaction.Begin/End) or follow a clock
/// (Sample.Clock), and otherwise one per [`SAMPLE_SPACING`]. Returns the timestamp to
/// remember when kept.
pub(super) fn keep_samples(
    transaction: i32,
    kept: Option<(i32, DateTime<Utc>)>,
    values: &[MeterValue],
) -> Option<DateTime<Utc>> {
    use ReadingContext as C;
    let at = values.iter().map(|mv| mv.timestamp).max()?;
    let marked = values.iter().flat_map(|mv| &mv.sampled_value).any(|sv| {
        matches!(
            sv.context,
            Some(C::TransactionBegin | C::TransactionEnd | C::SampleClock)
        )
    });
    match kept {
        // A clock that went back (a station re-synchronised) restarts the spacing.
        Some((t, last))
            if t == transaction && !marked && at >= last && at - last < SAMPLE_SPACING =>
        {
            None
        }
        _ => Some(at),
    }
}

/// A transaction record kept current in memory and written to the store at most every
/// [`LEDGER_WRITE_EVERY`] (and when the session ends or the transaction stops): energy
/// and cost follow every MeterValues without a store write each.
pub(super) struct Ledger {
    pub(super) record: crate::store::TransactionRecord,
    pub(super) written: std::time::Instant,
    pub(super) dirty: bool,
}

impl Ledger {
    /// Writes the record if it changed since the last write.
    pub(super) fn write(&mut self, store: &Store, station: &ChargePointId) {
        if !self.dirty {
            return;
        }
        match store.update_transaction(&self.record) {
            Ok(()) => {
                self.dirty = false;
                self.written = std::time::Instant::now();
            }
            Err(e) => {
                tracing::error!(station = %station, error = %e, "cannot store transaction energy")
            }
        }
    }
}

/// Whose transaction a transactionId names, as seen from one station.
pub(super) enum Owner {
    Ours,
    Other(ChargePointId),
    Unknown,
}

impl StationActor {
    pub(super) fn on_start(
        &mut self,
        start: &StartTransactionRequest,
    ) -> Result<StartTransactionResponse, CallError> {
        let tag = IdTag::new(start.id_tag.as_str());
        let verdict = self.authorize(&tag);
        let connector = start.connector_id.get();
        if let Some(id) = self.repeated_start(connector, &tag, start) {
            // A station that thinks its StartTransaction went unanswered sends it again:
            // the same transaction, not a second one.
            self.note_transaction(
                id,
                format!(
                    "{}: StartTransaction repeated by the station; answered with this transaction again",
                    Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
                ),
            );
            self.log(
                LogLevel::Warn,
                format!("StartTransaction repeated on connector {connector} (same idTag, meterStart and timestamp): answered with transaction {id} again"),
            );
            return Ok(StartTransactionResponse {
                id_tag_info: id_tag_info(&verdict),
                transaction_id: id,
            });
        }
        let still_open = self
            .connectors
            .get(&connector)
            .and_then(|c| c.transaction.as_ref())
            .map(|t| t.id);
        if let Some(open) = still_open {
            // A connector holds one transaction: the one it never stopped is over.
            self.close_unstopped(
                open,
                start.timestamp,
                format!(
                    "a new transaction started on connector {connector} at {}",
                    start.timestamp.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            );
        }
        let record = self
            .deps
            .store
            .begin_transaction(NewTransaction {
                station: self.id.clone(),
                connector,
                id_tag: tag.clone(),
                meter_start_wh: start.meter_start,
                started_at: start.timestamp,
                reservation_id: start.reservation_id,
                vip: verdict.vip || self.station.vip,
            })
            .map_err(|e| {
                tracing::error!(station = %self.id, error = %e, "cannot store a new transaction");
                CallError::new(
                    ErrorCode::InternalError,
                    "the transaction could not be stored; retry",
                )
            })?;
        tracing::info!(station = %self.id, connector, transaction = record.id, id_tag = %tag, "transaction started");
        self.upstream_request(start, Some(record.id));
        let c = self.connector(connector);
        c.changed_at = None;
        c.lowest_limit_since_draw = None;
        c.phases = PhaseDetector::default();
        c.uplink_meter_at = None;
        c.transaction = Some(TransactionSnapshot {
            id: record.id,
            id_tag: tag,
            vip: record.vip,
            started_at: record.started_at,
            energy_wh: 0.0,
        });
        Ok(StartTransactionResponse {
            id_tag_info: id_tag_info(&verdict),
            transaction_id: record.id,
        })
    }

    pub(super) fn on_stop(
        &mut self,
        stop: &StopTransactionRequest,
    ) -> Result<StopTransactionResponse, CallError> {
        let id = stop.transaction_id;
        let tag = stop.id_tag.as_ref().map(|t| IdTag::new(t.as_str()));
        if let Owner::Other(owner) = self.owner_of(id) {
            // Acknowledged so that the station moves on; nothing of the other's changes.
            self.refuse_foreign(id, &owner, "StopTransaction");
            return Ok(StopTransactionResponse {
                id_tag_info: Some(IdTagInfo {
                    status: AuthorizationStatus::Invalid,
                    expiry_date: None,
                    parent_id_tag: None,
                }),
            });
        }
        if let Ok(Some(closed)) = self.deps.store.transaction(id) {
            if !closed.is_open() && !closed.notes.is_empty() {
                // Its StopTransaction comes after the controller closed it (a new
                // transaction on the connector, or Available without a stop).
                self.log(
                    LogLevel::Warn,
                    format!(
                        "StopTransaction for transaction {id}, which the controller had already closed: acknowledged; the station's meter stop {} Wh at {} is not applied",
                        stop.meter_stop,
                        stop.timestamp.format("%Y-%m-%dT%H:%M:%SZ")
                    ),
                );
                return Ok(StopTransactionResponse {
                    id_tag_info: tag.map(|t| id_tag_info(&self.authorize(&t))),
                });
            }
        }
        if !stop.transaction_data.is_empty() {
            self.store_samples(id, &stop.transaction_data);
        }
        // The energy so far at the prices it was taken at, then the stop's reading.
        let pending = self
            .connectors
            .values_mut()
            .find_map(|c| c.ledger.take_if(|l| l.record.id == id));
        if let Some(mut ledger) = pending {
            ledger.write(&self.deps.store, &self.id);
        }
        let outcome = self.deps.store.stop_transaction(
            id,
            TransactionStop {
                at: stop.timestamp,
                meter_stop_wh: stop.meter_stop,
                reason: stop.reason.map(|r| r.as_str().to_owned()),
                id_tag: tag.clone(),
            },
            self.deps.price.get(),
        );
        match outcome {
            Ok(record) => {
                tracing::info!(station = %self.id, transaction = id, energy_wh = record.energy_wh(), cost = record.cost, "transaction stopped");
                self.upstream_request(stop, None);
            }
            Err(crate::store::StoreError::UnknownTransaction(_)) => {
                // The station knows a transaction we do not (e.g. it started offline and
                // its start was lost): acknowledge it so the station can move on.
                self.log(
                    LogLevel::Warn,
                    format!("StopTransaction for unknown transaction {id} acknowledged"),
                );
            }
            Err(e) => {
                tracing::error!(station = %self.id, error = %e, "cannot store a transaction's stop");
                return Err(CallError::new(
                    ErrorCode::InternalError,
                    "the stop could not be stored; retry",
                ));
            }
        }
        self.end_on_connectors(id);
        Ok(StopTransactionResponse {
            id_tag_info: tag.map(|t| id_tag_info(&self.authorize(&t))),
        })
    }

    /// Journals a MeterValues for the CPO: the readings that open or close a transaction
    /// always, the others at most every `uplink.meter_values_every_s`.
    fn upstream_meter_values(&mut self, values: &MeterValuesRequest) {
        let Some(every) = self
            .deps
            .config
            .get()
            .uplink
            .as_ref()
            .map(|u| self.uplink_meter_every.unwrap_or(u.meter_values_every_s))
        else {
            return;
        };
        use crate::ocpp::ReadingContext as C;
        let marked = values
            .meter_value
            .iter()
            .flat_map(|mv| &mv.sampled_value)
            .any(|sv| matches!(sv.context, Some(C::TransactionBegin | C::TransactionEnd)));
        let now = Utc::now();
        let c = self.connector(values.connector_id);
        let due = c
            .uplink_meter_at
            .is_none_or(|at| now - at >= chrono::TimeDelta::seconds(i64::from(every)));
        if values.transaction_id.is_some() && (marked || due) {
            c.uplink_meter_at = Some(now);
            self.upstream_request(values, None);
        }
    }

    pub(super) fn on_meter_values(&mut self, values: &MeterValuesRequest) {
        let readings = ImportReadings::from_meter_values(&values.meter_value);
        let single_phase = self.station.phases == crate::config::Phases::One;
        let phase = self.station.phase;
        let foreign = values
            .transaction_id
            .and_then(|tx| match self.owner_of(tx) {
                Owner::Other(owner) => Some((tx, owner)),
                Owner::Ours | Owner::Unknown => None,
            });
        if let Some((tx, owner)) = foreign {
            self.refuse_foreign(tx, &owner, "MeterValues");
            return;
        }
        self.upstream_meter_values(values);
        if let Some(tx) = values.transaction_id {
            let kept = self.connector(values.connector_id).samples_kept;
            if let Some(at) = keep_samples(tx, kept, &values.meter_value) {
                self.store_samples(tx, &values.meter_value);
                self.connector(values.connector_id).samples_kept = Some((tx, at));
            }
        }
        let min_current = self.deps.config.get().control.min_current_a;
        let offered = self.limits.may_apply(
            values.connector_id,
            values.transaction_id,
            self.station.max_current_a,
        );
        let rotation = self.station.phase_rotation;
        let c = self.connector(values.connector_id);
        if readings.current.0.iter().any(Option::is_some) {
            c.draw = site_phase_draw(readings.current, single_phase.then_some(phase), rotation);
            c.draw_at = Some(Utc::now());
            c.lowest_limit_since_draw = None;
            if !single_phase {
                c.phases.sample(readings.current.0, offered, min_current);
            }
        } else if let Some(total) = readings.current_unphased {
            c.draw_at = Some(Utc::now());
            c.lowest_limit_since_draw = None;
            c.draw = if single_phase {
                let mut d = PerPhase::splat(Some(Amps::ZERO));
                d.set(phase, Some(total));
                d
            } else {
                PerPhase::splat(Some(total))
            };
        }
        if readings.power_w.is_some() {
            c.power_w = readings.power_w;
        }
        let tx = c.transaction.as_ref().map(|t| t.id);
        if let (Some(wh), Some(id)) = (readings.energy_wh, tx) {
            let price = self.deps.price.get();
            let ledger = match self.connector(values.connector_id).ledger.take() {
                Some(l) if l.record.id == id => Some(l),
                earlier => {
                    // A transaction whose stop never came: keep what it had.
                    if let Some(mut l) = earlier {
                        l.write(&self.deps.store, &self.id);
                    }
                    match self.deps.store.transaction(id) {
                        Ok(record) => record.map(|record| Ledger {
                            record,
                            written: std::time::Instant::now(),
                            dirty: false,
                        }),
                        Err(e) => {
                            tracing::error!(station = %self.id, error = %e, "cannot read a transaction");
                            None
                        }
                    }
                }
            };
            if let Some(mut ledger) = ledger {
                ledger.record.advance_register(wh, price);
                ledger.dirty = true;
                if ledger.written.elapsed() >= LEDGER_WRITE_EVERY {
                    ledger.write(&self.deps.store, &self.id);
                }
                let c = self.connector(values.connector_id);
                if let Some(t) = c.transaction.as_mut() {
                    t.energy_wh = ledger.record.energy_wh();
                }
                c.ledger = Some(ledger);
            }
        }
    }

    /// The connectors that held transaction `id` hold none any more.
    fn end_on_connectors(&mut self, id: i32) {
        for (&n, c) in self.connectors.iter_mut() {
            if c.transaction.as_ref().is_some_and(|t| t.id == id) {
                self.limits.transaction_ended(n, id);
                c.transaction = None;
                c.draw = PerPhase::splat(None);
                c.draw_at = None;
                c.lowest_limit_since_draw = None;
                c.changed_at = None;
                c.phases = PhaseDetector::default();
                c.power_w = None;
            }
        }
    }

    /// The transaction open on `connector` if `start` repeats it exactly: the same idTag,
    /// meterStart and timestamp.
    fn repeated_start(
        &self,
        connector: u32,
        tag: &IdTag,
        start: &StartTransactionRequest,
    ) -> Option<i32> {
        let c = self.connectors.get(&connector)?;
        let open = c.transaction.as_ref()?;
        if open.id_tag != *tag || open.started_at != start.timestamp {
            return None;
        }
        let meter_start = match c.ledger.as_ref().filter(|l| l.record.id == open.id) {
            Some(l) => l.record.meter_start_wh,
            None => {
                self.deps
                    .store
                    .transaction(open.id)
                    .ok()
                    .flatten()?
                    .meter_start_wh
            }
        };
        (meter_start == start.meter_start).then_some(open.id)
    }

    /// Adds a note to an open transaction's record (through its ledger, if it has one,
    /// so that the ledger's next write keeps it).
    pub(super) fn note_transaction(&mut self, id: i32, note: String) {
        let ledger = self
            .connectors
            .values_mut()
            .find_map(|c| c.ledger.as_mut().filter(|l| l.record.id == id));
        if let Some(ledger) = ledger {
            ledger.record.notes.push(note);
            ledger.dirty = true;
            ledger.write(&self.deps.store, &self.id);
            return;
        }
        match self.deps.store.transaction(id) {
            Ok(Some(mut record)) => {
                record.notes.push(note);
                if let Err(e) = self.deps.store.update_transaction(&record) {
                    tracing::error!(station = %self.id, error = %e, "cannot note a transaction");
                }
            }
            Ok(None) => {}
            Err(e) => tracing::error!(station = %self.id, error = %e, "cannot read a transaction"),
        }
    }

    /// Closes a transaction the station never stopped, at `at`, with the energy its
    /// meter values brought; noted in its record (`why`) and logged.
    pub(super) fn close_unstopped(&mut self, id: i32, at: DateTime<Utc>, why: String) {
        self.note_transaction(
            id,
            format!("closed by the controller without a StopTransaction: {why}"),
        );
        let pending = self
            .connectors
            .values_mut()
            .find_map(|c| c.ledger.take_if(|l| l.record.id == id));
        if let Some(mut ledger) = pending {
            ledger.write(&self.deps.store, &self.id);
        }
        let record = match self.deps.store.transaction(id) {
            Ok(Some(r)) if r.is_open() => r,
            Ok(_) => {
                self.end_on_connectors(id);
                return;
            }
            Err(e) => {
                tracing::error!(station = %self.id, error = %e, "cannot read a transaction");
                return;
            }
        };
        #[allow(clippy::cast_possible_truncation)]
        let meter_stop = record
            .last_meter_wh
            .map_or(record.meter_start_wh, |wh| wh.floor() as i64);
        let stop = TransactionStop {
            at: at.max(record.started_at),
            meter_stop_wh: meter_stop,
            reason: Some("Other".into()),
            id_tag: None,
        };
        let upstream = crate::ocpp::StopTransactionRequest {
            id_tag: None,
            meter_stop: stop.meter_stop_wh,
            timestamp: stop.at,
            transaction_id: id,
            reason: Some(crate::ocpp::StopReason::Other),
            transaction_data: Vec::new(),
        };
        match self
            .deps
            .store
            .stop_transaction(id, stop, self.deps.price.get())
        {
            Ok(r) => {
                self.upstream_request(&upstream, None);
                self.log(
                LogLevel::Warn,
                format!(
                    "transaction {id} on connector {} closed without a StopTransaction ({why}); {:.0} Wh from its meter values",
                    r.connector,
                    r.energy_wh()
                ),
            );
            }
            Err(e) => {
                tracing::error!(station = %self.id, error = %e, "cannot close a transaction");
            }
        }
        self.end_on_connectors(id);
    }

    /// A connector that reports Available while its transaction is still open, for
    /// longer than `server.orphan_transaction_grace_s`: the transaction is closed at the
    /// moment it became Available.
    pub(super) fn close_orphans(&mut self) {
        let grace_s = self.deps.config.get().server.orphan_transaction_grace_s;
        let grace = chrono::TimeDelta::seconds(i64::from(grace_s));
        let now = Utc::now();
        let due: Vec<(u32, i32, DateTime<Utc>)> = self
            .connectors
            .iter()
            .filter_map(|(&n, c)| {
                let t = c.transaction.as_ref()?;
                (c.status == "Available"
                    && c.status_since >= t.started_at
                    && now - c.status_since >= grace)
                    .then_some((n, t.id, c.status_since))
            })
            .collect();
        for (n, id, since) in due {
            self.close_unstopped(
                id,
                since,
                format!(
                    "connector {n} reported Available at {} and no StopTransaction came within {grace_s} s",
                    since.format("%Y-%m-%dT%H:%M:%SZ")
                ),
            );
        }
    }

    /// Whose transaction a transactionId from the network names.
    pub(super) fn owner_of(&self, id: i32) -> Owner {
        let open_here = self
            .connectors
            .values()
            .any(|c| c.transaction.as_ref().is_some_and(|t| t.id == id));
        if open_here {
            return Owner::Ours;
        }
        match self.deps.store.transaction(id) {
            Ok(Some(r)) if r.station == self.id => Owner::Ours,
            Ok(Some(r)) => Owner::Other(r.station),
            Ok(None) => Owner::Unknown,
            Err(e) => {
                tracing::error!(station = %self.id, transaction = id, error = %e, "cannot read a transaction");
                Owner::Unknown
            }
        }
    }

    /// A message that names another station's transaction: ignored, logged once per
    /// transaction.
    pub(super) fn refuse_foreign(&mut self, id: i32, owner: &ChargePointId, action: &str) {
        if self.foreign_logged == Some(id) {
            return;
        }
        self.foreign_logged = Some(id);
        tracing::warn!(station = %self.id, transaction = id, %owner, action, "a message for another station's transaction: ignored");
        self.log(
            LogLevel::Warn,
            format!("{action} named transaction {id}, which belongs to station {owner}: ignored, that transaction is unchanged"),
        );
    }

    /// Writes every connector's pending energy and cost to the store.
    pub(super) fn write_ledgers(&mut self) {
        for ledger in self
            .connectors
            .values_mut()
            .filter_map(|c| c.ledger.as_mut())
        {
            ledger.write(&self.deps.store, &self.id);
        }
    }

    /// Stores what a message sampled; every value is kept, the thinning is the caller's.
    pub(super) fn store_samples(&self, transaction: i32, values: &[MeterValue]) {
        let samples: Vec<Sample> = values
            .iter()
            .flat_map(|mv| {
                mv.sampled_value.iter().filter_map(move |sv| {
                    Some(Sample {
                        at: mv.timestamp,
                        measurand: sv.measurand_or_default().as_str().to_owned(),
                        phase: sv.phase.map(|p| p.as_str().to_owned()),
                        value: sv.number()?,
                        unit: sv.unit.map(|u| u.as_str().to_owned()),
                    })
                })
            })
            .collect();
        if let Err(e) = self.deps.store.add_samples(transaction, &samples) {
            tracing::error!(station = %self.id, error = %e, "cannot store meter samples");
        }
    }
}

/// A connector's `Current.Import` per phase, on the site's phases. A 1-phase station
/// measures on its own L1 (some label it with the site phase): whatever it reports is
/// the current of the site phase it is wired to. A 3-phase station that reports some
/// phases only (a vehicle on one phase) draws nothing on the others.
pub(super) fn site_phase_draw(
    reported: PerPhase<Option<Amps>>,
    single_phase_on: Option<crate::units::Phase>,
    rotation: crate::config::PhaseRotation,
) -> PerPhase<Option<Amps>> {
    match single_phase_on {
        Some(phase) => {
            let on_phase = reported.0.iter().flatten().copied().reduce(Amps::max);
            let mut d = PerPhase::splat(Some(Amps::ZERO));
            d.set(phase, on_phase);
            d
        }
        None => {
            let mut d = PerPhase::splat(Some(Amps::ZERO));
            for p in crate::units::Phase::ALL {
                d.set(
                    rotation.site_phase(p),
                    Some(reported.get(p).unwrap_or(Amps::ZERO)),
                );
            }
            d
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(at_s: i64, context: Option<ReadingContext>) -> Vec<MeterValue> {
        let mut value: crate::ocpp::meter_values::SampledValue =
            serde_json::from_str(r#"{"value":"1200"}"#).expect("sampled value");
        value.context = context;
        vec![MeterValue {
            timestamp: DateTime::from_timestamp(1_800_000_000 + at_s, 0).expect("time"),
            sampled_value: vec![value],
        }]
    }

    /// Feeds messages every `every_s` for `for_s` and returns the offsets kept.
    fn kept_offsets(every_s: i64, for_s: i64) -> Vec<i64> {
        let mut kept = None;
        let mut out = Vec::new();
        for t in (0..for_s).step_by(every_s as usize) {
            if let Some(at) = keep_samples(7, kept, &message(t, None)) {
                kept = Some((7, at));
                out.push(t);
            }
        }
        out
    }

    #[test]
    fn a_single_phase_station_draws_on_the_site_phase_it_is_wired_to() {
        use crate::units::Phase;
        let on_its_l1 = PerPhase([Some(Amps(14.0)), None, None]);
        assert_eq!(
            site_phase_draw(on_its_l1, Some(Phase::L2), Default::default()),
            PerPhase([Some(Amps::ZERO), Some(Amps(14.0)), Some(Amps::ZERO)])
        );
        let zeros_elsewhere = PerPhase([Some(Amps(14.0)), Some(Amps::ZERO), Some(Amps::ZERO)]);
        assert_eq!(
            site_phase_draw(zeros_elsewhere, Some(Phase::L3), Default::default()),
            PerPhase([Some(Amps::ZERO), Some(Amps::ZERO), Some(Amps(14.0))])
        );
    }

    #[test]
    fn a_vehicle_on_one_phase_of_a_three_phase_station_draws_nothing_on_the_others() {
        let one = PerPhase([Some(Amps(16.0)), None, None]);
        assert_eq!(
            site_phase_draw(one, None, Default::default()),
            PerPhase([Some(Amps(16.0)), Some(Amps::ZERO), Some(Amps::ZERO)])
        );
        let rotated: crate::config::PhaseRotation = "L2L3L1".parse().unwrap();
        assert_eq!(
            site_phase_draw(one, None, rotated),
            PerPhase([Some(Amps::ZERO), Some(Amps(16.0)), Some(Amps::ZERO)]),
            "the station's L1 is wired to the site's L2"
        );
    }

    #[test]
    fn samples_are_thinned_to_one_per_spacing() {
        assert_eq!(kept_offsets(10, 300), vec![0, 60, 120, 180, 240]);
        // Slower than the spacing: everything is kept.
        assert_eq!(kept_offsets(90, 300), vec![0, 90, 180, 270]);
    }

    #[test]
    fn a_new_transaction_and_marked_readings_are_always_kept() {
        let last = Some((7, DateTime::from_timestamp(1_800_000_000, 0).expect("time")));
        assert!(keep_samples(7, last, &message(5, None)).is_none());
        assert!(keep_samples(8, last, &message(5, None)).is_some());
        for context in [
            ReadingContext::TransactionBegin,
            ReadingContext::TransactionEnd,
            ReadingContext::SampleClock,
        ] {
            assert!(keep_samples(7, last, &message(5, Some(context))).is_some());
        }
        assert!(keep_samples(7, last, &message(5, Some(ReadingContext::SamplePeriodic))).is_none());
        assert!(keep_samples(7, last, &[]).is_none(), "nothing to keep");
        assert!(
            keep_samples(7, last, &message(-3600, None)).is_some(),
            "a clock set back an hour does not silence the samples for an hour"
        );
    }
}
