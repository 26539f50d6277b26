//! What a round publishes: the site status (every zone's budget, every session's limit
//! and why) and the day's history.

use super::*;

impl ZoneSupervisor {
    pub(super) fn publish(
        &mut self,
        a: &Allocation,
        sessions: &[(Session, Option<i32>)],
        summary: RoundSummary,
        now: DateTime<Utc>,
    ) {
        for (z, za) in self.tree.zones().iter().zip(&a.zones) {
            let cutting = za.budget.estimate == Estimate::SafetyCut;
            let (was, count) = self.safety_cuts.entry(z.id.clone()).or_default();
            if cutting && !*was {
                *count += 1;
            }
            *was = cutting;
        }
        let plain: Vec<Session> = sessions.iter().map(|(s, _)| s.clone()).collect();
        let ramping = allocation::subtree_ramping(&self.tree, &plain, now)
            .unwrap_or_else(|_| vec![false; self.tree.len()]);
        let zones: Vec<ZoneStatus> = self
            .tree
            .zones()
            .iter()
            .zip(a.zones.iter().zip(ramping))
            .map(|(z, (za, ramping))| ZoneStatus {
                id: z.id.clone(),
                parent: z.parent.map(|p| self.tree.zone(p).id.clone()),
                limit_a: z.limit,
                source: match za.budget.source {
                    BudgetSource::Static => "static",
                    BudgetSource::Dynamic => "dynamic",
                    BudgetSource::StaleFallback => "stale_fallback",
                    BudgetSource::Imposed => "imposed",
                    BudgetSource::BmsCap => "bms_cap",
                },
                budget: za.budget.budget,
                ev_draw: za.budget.ev_draw,
                other_loads: za.budget.other_loads,
                production: za.budget.production,
                ev_cap_fraction: za.budget.ev_cap_fraction,
                allocated: za.allocated_after,
                fixed: za.fixed,
                ramping,
                demand: za.demand,
                suspended: za.suspended,
                estimate: match za.budget.estimate {
                    Estimate::Measured => "measured",
                    Estimate::Held => "held",
                    Estimate::SafetyCut => "safety_cut",
                },
                deadband: za.budget.deadband,
                safety_cuts: self.safety_cuts.get(&z.id).map_or(0, |&(_, n)| n),
            })
            .collect();
        let min = self.params.min_current;
        let sessions: Vec<SessionStatus> = sessions
            .iter()
            .zip(&a.sessions)
            // A secondary's pseudo-sessions are shown with the secondary.
            .filter(|((s, _), _)| federation::secondary_of(&s.key).is_none())
            .map(|((s, tx), sa)| {
                let (decision, bottleneck, suspended_since) = match sa.decision {
                    Decision::AtMax => ("at_max", None, None),
                    Decision::Shared { bottleneck } => ("shared", Some(bottleneck), None),
                    Decision::Suspended { bottleneck, since } => ("suspended", Some(bottleneck), Some(since)),
                    Decision::MaxBelowMinimum => ("max_below_minimum", None, None),
                    Decision::Fixed => ("fixed", None, None),
                };
                let zone_name = bottleneck.map(|b| self.tree.zone(b.zone).id.clone());
                // The CPO's charging profiles (uplink) cap the connector's maximum.
                let cpo_limit = self
                    .stations
                    .get(&s.key.charge_point)
                    .and_then(|e| e.snapshot.connectors.iter().find(|c| c.connector == s.key.connector))
                    .and_then(|c| c.cpo_limit);
                let cpo_decides = cpo_limit.is_some_and(|cpo| cpo.0 <= sa.max.0 + 0.05);
                let why = match (&sa.decision, &zone_name) {
                    (Decision::AtMax, _) if cpo_decides => {
                        format!("CPO limit: the CPO's charging profile allows {}, less than the site could give", sa.max)
                    }
                    (Decision::AtMax, _) if sa.adapted => {
                        format!("full demand: the vehicle draws less, so its maximum is lowered to {}", sa.max)
                    }
                    (Decision::AtMax, _) => format!("full demand: {} is all it can take", sa.max),
                    (Decision::Shared { bottleneck }, Some(z)) => format!(
                        "shares zone {z} ({}) with the vehicles there: {:.0} % of its {}",
                        bottleneck.phase,
                        sa.fraction * 100.0,
                        sa.max
                    ),
                    (Decision::Suspended { bottleneck, since }, Some(z)) => format!(
                        "suspended since {}: zone {z} ({}) cannot give {min} to every vehicle, and this one {}",
                        since.format("%H:%M"),
                        bottleneck.phase,
                        if sa.vip { "is a VIP but VIPs alone do not fit" } else { "comes last by the shedding order" }
                    ),
                    (Decision::MaxBelowMinimum, _) => format!("its maximum {} is below the minimum {min}", sa.max),
                    (Decision::Fixed, _) if tx.is_none() => format!("no vehicle yet, but the station's 0 A default profile is not known to be in force (rejected, unanswered or lost in a reboot): {} is kept free for a vehicle that plugs in", sa.target),
                    (Decision::Fixed, _) => "not under control now (offline or not answering): its last limit is reserved".into(),
                    _ => String::new(),
                };
                let zone_budget = bottleneck.map(|b| &a.zones[b.zone.get()].budget);
                let (control_loop, why) = match (zone_budget, &zone_name) {
                    (Some(b), Some(z)) if b.estimate == Estimate::SafetyCut => (
                        "safety_cut",
                        format!("safety cut: the meter of zone {z} reads above its limit less half the safety margin, so its budget comes from the measurement at once; {why}"),
                    ),
                    (Some(b), _) if b.estimate == Estimate::Held => (
                        "hold",
                        format!("{why} (the zone's other loads are held while vehicles follow their new limits and report)"),
                    ),
                    (Some(b), _) if b.deadband => (
                        "hold",
                        format!("{why} (the zone's budget is kept: its meter moved less than the deadband)"),
                    ),
                    _ => ("allocation", why),
                };
                let (control_loop, why) = match &sa.held {
                    Some(h) => ("hold", format!("{why}; an increase to {} waits until {}", h.allowed, h.until.format("%H:%M:%S"))),
                    None => (control_loop, why),
                };
                SessionStatus {
                    station: s.key.charge_point.clone(),
                    connector: s.key.connector,
                    transaction: *tx,
                    target: sa.target,
                    limit: sa.limit_after,
                    max: sa.max,
                    fraction: sa.fraction,
                    vip: sa.vip,
                    decision,
                    bottleneck: zone_name,
                    bottleneck_phase: bottleneck.map(|b| b.phase),
                    suspended_since,
                    held_until: sa.held.map(|h| h.until),
                    phases: Phase::ALL.into_iter().filter(|&p| s.phases.loads(p)).collect(),
                    control_loop,
                    why,
                    cpo_limit,
                }
            })
            .collect();
        let other_meters = self.other_meters.values().cloned().collect();
        let status = Arc::new(SiteStatus {
            at: Some(now),
            tariff_period: self.tariff.period.as_ref().map(|p| p.name.clone()),
            ev_cap_fraction: self.tariff.cap_fraction,
            price_per_kwh: self.tariff.price_per_kwh,
            zones,
            sessions,
            last_round: Some(summary.clone()),
            other_meters,
        });
        self.recent.push_front(summary);
        self.recent.truncate(RECENT_ROUNDS);
        self.status = status.clone();
        self.subscribers
            .retain(|s| s.try_send(SiteUpdate(status.clone())).is_ok() || s.connected());
    }
}

impl ZoneSupervisor {
    pub(super) fn sample_history(&mut self) {
        let s = &self.status;
        let Some(at) = s.at else { return };
        let zones = s
            .zones
            .iter()
            .filter(|z| z.parent.is_none())
            .map(|z| {
                let worst = |p: &PerPhase<Amps>| p.0.iter().copied().fold(Amps::ZERO, Amps::max);
                let load = z.other_loads.map(|o| worst(&o) + worst(&z.ev_draw));
                (z.id.clone(), load, worst(&z.ev_draw), worst(&z.budget))
            })
            .collect();
        self.history.push_back(SiteSample { at, zones });
        while self.history.len() > HISTORY_SAMPLES {
            self.history.pop_front();
        }
    }
}
