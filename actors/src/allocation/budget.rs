//! The EV budget of each zone, per phase: how much current the vehicles below it may
//! take this round, and where that number comes from (shown to operators as is).

use chrono::{DateTime, TimeDelta, Utc};

use super::session::Session;
use super::tree::ZoneTree;
use super::{AllocationError, Round};
use crate::config::SiteMode;
use crate::units::{Amps, PerPhase, Phase};

/// What a zone's consumption meter measures.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConsumptionKind {
    /// Everything in the zone, the EV chargers below it included.
    Total,
    /// Everything in the zone but the EV chargers.
    OtherLoads,
}

/// One reading of a meter: currents per phase, and when they were read.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeterReading {
    pub currents: PerPhase<Amps>,
    pub read_at: DateTime<Utc>,
}

/// What is known about a zone this round, besides its configuration.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ZoneReading {
    /// The zone's consumption meter and its latest reading, if it has a meter.
    pub consumption: Option<(ConsumptionKind, Option<MeterReading>)>,
    /// Local production (solar) feeding the zone, metered separately, if any.
    pub production: Option<MeterReading>,
    /// A budget imposed from above (a federation primary's grant, at a root).
    pub imposed: Option<PerPhase<Amps>>,
    /// A cap on the zone's EV current per phase from the building management system (a
    /// written cap or its fail-safe).
    pub bms_cap: Option<Amps>,
}

/// What the budgets depend on besides the readings.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct BudgetParams {
    pub mode: SiteMode,
    /// Kept free under every dynamic budget.
    pub safety_margin: Amps,
    /// A reading older than this is not used.
    pub meter_stale_after: TimeDelta,
}

/// Where a zone's budget comes from this round.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum BudgetSource {
    /// Static mode, or a zone without a consumption meter: `static_ev_limit_a`.
    Static,
    /// From the zone's meter.
    Dynamic,
    /// The meter has no usable reading: `static_ev_limit_a` (0 A when unset) until it
    /// reads again.
    StaleFallback,
    /// The budget imposed from above is lower than what the zone itself allows.
    Imposed,
    /// The building management system's cap (or its fail-safe) is lower still.
    BmsCap,
}

/// How the other loads behind a `total` meter were estimated this round.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Estimate {
    /// The meter minus what the vehicles are known to draw (no meter, or an
    /// `other_loads` meter: what it reads).
    #[default]
    Measured,
    /// Held at the last round's value (or lower, if the measurement is lower): vehicles
    /// below had their limits changed and have not reported since they could follow,
    /// so the meter's move is theirs, not the building's.
    Held,
    /// A phase of the meter is above `limit − safety_margin/2`: the budget is cut from
    /// the measurement at once, whatever the vehicles reported.
    SafetyCut,
}

/// What a zone remembers between rounds for its budget (kept in the allocator state).
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ZoneMemory {
    /// Last round's other-loads estimate, per phase.
    other_loads: Option<PerPhase<Amps>>,
    /// Last round's meter-derived budget (before caps), per phase, for the deadband.
    raw_budget: Option<PerPhase<Amps>>,
    /// Per phase, until when the last safety cut stands: the vehicles need that long to
    /// follow it, and the meter reads the excess the cut already removed until they do.
    cut_until: [Option<DateTime<Utc>>; 3],
}

/// After an acknowledged increase a vehicle may take this long to draw its new limit;
/// a report older than this says nothing about the new limit.
pub const RAMP_ALLOWANCE: TimeDelta = TimeDelta::seconds(5);
/// The other loads are held for a raised vehicle at most this long (stations that
/// report only every few minutes), then measured again.
pub const HOLD_AT_MOST: TimeDelta = TimeDelta::seconds(90);
/// A meter-derived budget moves up only by at least this much (and down by at least
/// `safety_margin / 2`), so that the noise of the other loads does not reach the cars.
pub const BUDGET_STEP_UP_A: f64 = 1.0;

/// A zone's EV budget with its components, per phase.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ZoneBudget {
    pub limit: Amps,
    pub source: BudgetSource,
    /// Other loads as measured (a `total` meter minus the EV draw below the zone);
    /// `None` when no fresh consumption reading was used.
    pub other_loads: Option<PerPhase<Amps>>,
    /// Production that raised the budget; `None` when none was used.
    pub production: Option<PerPhase<Amps>>,
    /// What the stations below the zone report drawing.
    pub ev_draw: PerPhase<Amps>,
    /// The tariff cap applied (1 = none).
    pub ev_cap_fraction: f64,
    /// How the other loads were estimated (the loop that decided).
    pub estimate: Estimate,
    /// The meter-derived budget kept from last round because the new one differs by
    /// less than the deadband.
    pub deadband: bool,
    /// What the vehicles below the zone may take, in `[0, limit]`.
    pub budget: PerPhase<Amps>,
}

/// The EV draw reported below each zone (its own sessions and its subtree's), per
/// phase. A session that reports nothing counts as drawing 0, a report from before its
/// limit last changed counts at most the lowest limit given since (the vehicle has
/// followed it, or is moving from the reported draw towards it), and none counts above
/// the limit it has now: every count is at most what the vehicle draws, so for a `total`
/// meter the rest counts as other load, which errs on the safe side (the hold below
/// keeps that error out of the budget while the vehicles move).
pub fn subtree_ev_draw(
    tree: &ZoneTree,
    sessions: &[Session],
) -> Result<Vec<PerPhase<Amps>>, AllocationError> {
    let mut sums = vec![[0.0f64; 3]; tree.len()];
    for s in sessions {
        let z = super::zone_of(tree, s)?;
        let before_change = s
            .changed_at
            .is_some_and(|c| s.draw_at.is_none_or(|d| d < c));
        if let Some(d) = s.draw {
            // Running on the 0 A default when it has no limit of its own.
            let mut cap = s.fixed.or(s.limit_in_force).unwrap_or(Amps::ZERO).0;
            if before_change {
                // The vehicle has moved since it reported: it draws at least the
                // smaller of what it drew and the lowest limit given since.
                cap = cap.min(s.lowest_limit_since_draw.map_or(0.0, |l| l.0));
            }
            for p in Phase::ALL {
                let a = d.get(p).0;
                if a.is_finite() && a > 0.0 {
                    sums[z][p.index()] += a.min(cap);
                }
            }
        }
    }
    tree.sum_up(&mut sums, |acc, child| {
        for (a, c) in acc.iter_mut().zip(child) {
            *a += c;
        }
    });
    Ok(sums.into_iter().map(|s| PerPhase(s.map(Amps))).collect())
}

/// The EV budget of every zone (same order as the tree), each zone on its own: the
/// tree's nesting (a child never gets more than its ancestors allow) is enforced by
/// the sharing, not here.
///
/// Per phase: static mode or no meter → the static limit; a fresh meter → `limit −
/// other loads + production − safety margin`; a stale meter → `static_ev_limit_a`, or
/// 0 A when it is unset (fail closed: the other loads are unknown). Then
/// clamped to `[0, limit]`, multiplied by the tariff cap, and lowered to an imposed
/// budget if there is one.
pub fn zone_budgets(
    tree: &ZoneTree,
    params: &BudgetParams,
    round: &Round,
) -> Result<Vec<ZoneBudget>, AllocationError> {
    zone_budgets_with(tree, params, round, &mut Vec::new())
}

/// Whether a vehicle below each zone had its limit changed and has not reported since
/// it had time to follow.
pub fn subtree_ramping(
    tree: &ZoneTree,
    sessions: &[Session],
    now: DateTime<Utc>,
) -> Result<Vec<bool>, AllocationError> {
    let mut ramping = vec![false; tree.len()];
    for s in sessions {
        let z = super::zone_of(tree, s)?;
        if let Some(changed) = s.changed_at {
            let reported_since = s.draw_at.is_some_and(|d| d >= changed + RAMP_ALLOWANCE);
            if !reported_since && now - changed < HOLD_AT_MOST {
                ramping[z] = true;
            }
        }
    }
    tree.sum_up(&mut ramping, |acc, child| *acc |= child);
    Ok(ramping)
}

/// [`zone_budgets`] with the zones' memory of the last rounds (one per zone; resized
/// when the tree changed): the other loads behind a `total` meter are held while
/// vehicles below were raised and have not reported since, except on a phase whose
/// meter is above `limit − safety_margin/2` (then the budget comes from the measurement
/// at once); and a meter-derived budget only moves by more than a deadband.
pub fn zone_budgets_with(
    tree: &ZoneTree,
    params: &BudgetParams,
    round: &Round,
    memory: &mut Vec<ZoneMemory>,
) -> Result<Vec<ZoneBudget>, AllocationError> {
    if memory.len() != tree.len() {
        memory.clear();
        memory.resize(tree.len(), ZoneMemory::default());
    }
    if round.readings.len() != tree.len() {
        return Err(AllocationError::ReadingsMismatch {
            readings: round.readings.len(),
            zones: tree.len(),
        });
    }
    let ev_draw = subtree_ev_draw(tree, round.sessions)?;
    let ramping = subtree_ramping(tree, round.sessions, round.now)?;
    let half_margin = params.safety_margin.0.max(0.0) / 2.0;
    let cap = if round.ev_cap_fraction.is_nan() {
        0.0
    } else {
        round.ev_cap_fraction.clamp(0.0, 1.0)
    };
    let budgets = tree
        .zones()
        .iter()
        .zip(round.readings)
        .zip(ev_draw)
        .zip(memory.iter_mut().zip(ramping))
        .map(|(((zone, reading), ev_draw), (memory, ramping))| {
            let fresh = |r: &Option<MeterReading>| {
                r.filter(|r| is_usable(r, round.now, params.meter_stale_after))
            };
            let consumption = match (params.mode, reading.consumption) {
                (SiteMode::Static, _) | (SiteMode::Dynamic, None) => None,
                (SiteMode::Dynamic, Some((kind, r))) => Some((kind, fresh(&r))),
            };
            let mut estimate = Estimate::Measured;
            let mut tripped = [false; 3];
            let (mut source, other_loads, production) = match consumption {
                None => (BudgetSource::Static, None, None),
                Some((_, None)) => (BudgetSource::StaleFallback, None, None),
                Some((kind, Some(r))) => {
                    let produced = fresh(&reading.production).map(|pr| pr.currents);
                    let other = PerPhase(Phase::ALL.map(|p| match kind {
                        ConsumptionKind::OtherLoads => r.currents.get(p),
                        ConsumptionKind::Total => {
                            let measured = (r.currents.get(p) - ev_draw.get(p)).max(Amps::ZERO);
                            // What the breaker carries: the consumption less what the
                            // zone's own production feeds in.
                            let through = r.currents.get(p).0
                                - produced.map_or(0.0, |pr| pr.get(p).0.max(0.0));
                            if through > zone.limit.0 - half_margin {
                                tripped[p.index()] = true;
                                estimate = Estimate::SafetyCut;
                                let cut = &mut memory.cut_until[p.index()];
                                // A cut that stands is not cut again for the same excess:
                                // the vehicles are still following it.
                                if let (Some(until), Some(held)) = (*cut, memory.other_loads) {
                                    if round.now < until {
                                        return held.get(p);
                                    }
                                }
                                *cut = Some(round.now + RAMP_ALLOWANCE);
                                return measured;
                            }
                            match memory.other_loads {
                                Some(held) if ramping && held.get(p) < measured => {
                                    if estimate == Estimate::Measured {
                                        estimate = Estimate::Held;
                                    }
                                    held.get(p)
                                }
                                _ => measured,
                            }
                        }
                    }));
                    (BudgetSource::Dynamic, Some(other), produced)
                }
            };
            memory.other_loads = other_loads;
            let mut deadband = false;
            let mut raw_budget = [Amps::ZERO; 3];
            let budget = PerPhase(Phase::ALL.map(|p| {
                let raw = match other_loads {
                    None if source == BudgetSource::StaleFallback => zone.stale_limit,
                    None => zone.static_limit,
                    Some(other) => {
                        let produced = production.map_or(Amps::ZERO, |pr| pr.get(p));
                        let fresh = zone.limit - other.get(p) + produced - params.safety_margin;
                        let kept = memory.raw_budget.map(|b| b.get(p)).filter(|&kept| {
                            !tripped[p.index()]
                                && fresh.0 >= kept.0 - half_margin
                                && fresh.0 <= kept.0 + BUDGET_STEP_UP_A
                        });
                        deadband |= kept.is_some_and(|k| k != fresh);
                        kept.unwrap_or(fresh)
                    }
                };
                raw_budget[p.index()] = raw;
                let capped = raw.max(Amps::ZERO).min(zone.limit) * cap;
                let imposed = match reading.imposed.map(|i| i.get(p)) {
                    // A grant that is not a number allows nothing.
                    Some(imposed) if imposed.0.is_nan() => {
                        source = BudgetSource::Imposed;
                        Amps::ZERO
                    }
                    Some(imposed) if imposed < capped => {
                        source = BudgetSource::Imposed;
                        imposed.max(Amps::ZERO)
                    }
                    _ => capped,
                };
                match reading.bms_cap {
                    Some(c) if c.0.is_nan() => {
                        source = BudgetSource::BmsCap;
                        Amps::ZERO
                    }
                    Some(c) if c < imposed => {
                        source = BudgetSource::BmsCap;
                        c.max(Amps::ZERO)
                    }
                    _ => imposed,
                }
            }));
            memory.raw_budget = other_loads.map(|_| PerPhase(raw_budget));
            ZoneBudget {
                limit: zone.limit,
                source,
                other_loads,
                production,
                ev_draw,
                ev_cap_fraction: cap,
                estimate,
                deadband,
                budget,
            }
        })
        .collect();
    Ok(budgets)
}

/// A reading counts when it is recent and every current is a plausible number; the
/// meter actor filters already, but a budget must never grow from garbage.
fn is_usable(r: &MeterReading, now: DateTime<Utc>, stale_after: TimeDelta) -> bool {
    now - r.read_at <= stale_after && r.currents.0.iter().all(|a| a.is_finite() && a.0 >= 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::session::{SessionKey, SessionPhases};
    use crate::allocation::tree::{ZoneIdx, ZoneSpec};
    use chrono::TimeZone;

    fn t0() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap()
    }

    fn params(mode: SiteMode) -> BudgetParams {
        BudgetParams {
            mode,
            safety_margin: Amps(2.0),
            meter_stale_after: TimeDelta::seconds(15),
        }
    }

    /// main (limit 100, static 63) with one child panel (limit 63).
    fn tree() -> ZoneTree {
        ZoneTree::new(&[
            ZoneSpec {
                id: "main".into(),
                parent: None,
                limit_a: Amps(100.0),
                static_ev_limit_a: Some(Amps(63.0)),
            },
            ZoneSpec {
                id: "panel".into(),
                parent: Some("main".into()),
                limit_a: Amps(63.0),
                static_ev_limit_a: None,
            },
        ])
        .unwrap()
    }

    fn reading(l1: f64, l2: f64, l3: f64, age_s: i64) -> Option<MeterReading> {
        Some(MeterReading {
            currents: PerPhase([Amps(l1), Amps(l2), Amps(l3)]),
            read_at: t0() - TimeDelta::seconds(age_s),
        })
    }

    /// One 3-phase session in the panel drawing 10/10/10 A.
    fn drawing_session() -> Session {
        Session {
            key: SessionKey::new("CP1", 1),
            zone: ZoneIdx(1),
            phases: SessionPhases::Three,
            max_current: Amps(32.0),
            vip: false,
            energy_wh: 0.0,
            connected_since: t0(),
            draw: Some(PerPhase::splat(Amps(10.0))),
            limit_in_force: Some(Amps(16.0)),
            fixed: None,
            changed_at: None,
            draw_at: None,
            lowest_limit_since_draw: None,
        }
    }

    fn budgets(mode: SiteMode, main: ZoneReading, cap: f64) -> Vec<ZoneBudget> {
        let sessions = [drawing_session()];
        let readings = [main, ZoneReading::default()];
        let round = Round {
            now: t0(),
            ev_cap_fraction: cap,
            readings: &readings,
            sessions: &sessions,
        };
        zone_budgets(&tree(), &params(mode), &round).unwrap()
    }

    fn amps3(b: PerPhase<Amps>) -> [f64; 3] {
        b.0.map(|a| (a.0 * 1e6).round() / 1e6)
    }

    #[test]
    fn static_mode_uses_the_static_limit_and_ignores_meters() {
        let main = ZoneReading {
            consumption: Some((ConsumptionKind::Total, reading(90.0, 90.0, 90.0, 0))),
            ..Default::default()
        };
        let b = budgets(SiteMode::Static, main, 1.0);
        assert_eq!(b[0].source, BudgetSource::Static);
        assert_eq!(amps3(b[0].budget), [63.0; 3]);
        assert_eq!(amps3(b[1].budget), [63.0; 3]);
    }

    #[test]
    fn total_meter_subtracts_the_ev_draw_below_the_zone() {
        // 50 A measured of which 10 A are the EV: other loads 40, budget 100 - 40 - 2.
        let main = ZoneReading {
            consumption: Some((ConsumptionKind::Total, reading(50.0, 30.0, 5.0, 3))),
            ..Default::default()
        };
        let b = budgets(SiteMode::Dynamic, main, 1.0);
        assert_eq!(b[0].source, BudgetSource::Dynamic);
        assert_eq!(amps3(b[0].other_loads.unwrap()), [40.0, 20.0, 0.0]);
        assert_eq!(amps3(b[0].ev_draw), [10.0; 3]);
        assert_eq!(amps3(b[0].budget), [58.0, 78.0, 98.0]);
        assert_eq!(
            b[1].source,
            BudgetSource::Static,
            "a zone without meter keeps its static limit"
        );
    }

    #[test]
    fn other_loads_meter_is_taken_as_is() {
        let main = ZoneReading {
            consumption: Some((ConsumptionKind::OtherLoads, reading(50.0, 30.0, 5.0, 0))),
            ..Default::default()
        };
        let b = budgets(SiteMode::Dynamic, main, 1.0);
        assert_eq!(amps3(b[0].budget), [48.0, 68.0, 93.0]);
    }

    #[test]
    fn production_raises_the_budget_up_to_the_limit() {
        let main = ZoneReading {
            consumption: Some((ConsumptionKind::OtherLoads, reading(50.0, 30.0, 5.0, 0))),
            production: reading(20.0, 20.0, 20.0, 0),
            imposed: None,
            bms_cap: None,
        };
        let b = budgets(SiteMode::Dynamic, main, 1.0);
        assert_eq!(amps3(b[0].production.unwrap()), [20.0; 3]);
        assert_eq!(amps3(b[0].budget), [68.0, 88.0, 100.0]);
    }

    #[test]
    fn stale_production_is_not_counted() {
        let main = ZoneReading {
            consumption: Some((ConsumptionKind::OtherLoads, reading(50.0, 30.0, 5.0, 0))),
            production: reading(20.0, 20.0, 20.0, 16),
            imposed: None,
            bms_cap: None,
        };
        let b = budgets(SiteMode::Dynamic, main, 1.0);
        assert_eq!(b[0].production, None);
        assert_eq!(amps3(b[0].budget), [48.0, 68.0, 93.0]);
    }

    #[test]
    fn stale_or_missing_or_implausible_reading_falls_back_to_static() {
        for r in [
            reading(50.0, 50.0, 50.0, 16),
            None,
            reading(f64::NAN, 1.0, 1.0, 0),
            reading(-5.0, 1.0, 1.0, 0),
        ] {
            let main = ZoneReading {
                consumption: Some((ConsumptionKind::Total, r)),
                ..Default::default()
            };
            let b = budgets(SiteMode::Dynamic, main, 1.0);
            assert_eq!(b[0].source, BudgetSource::StaleFallback, "{r:?}");
            assert_eq!(amps3(b[0].budget), [63.0; 3]);
        }
    }

    #[test]
    fn overloaded_zone_gets_zero_not_negative() {
        let main = ZoneReading {
            consumption: Some((ConsumptionKind::OtherLoads, reading(120.0, 99.0, 0.0, 0))),
            ..Default::default()
        };
        let b = budgets(SiteMode::Dynamic, main, 1.0);
        assert_eq!(amps3(b[0].budget), [0.0, 0.0, 98.0]);
    }

    #[test]
    fn tariff_cap_multiplies_every_budget() {
        let b = budgets(SiteMode::Static, ZoneReading::default(), 0.3);
        assert_eq!(amps3(b[0].budget), [18.9; 3]);
        assert_eq!(amps3(b[1].budget), [18.9; 3]);
        assert_eq!(b[0].ev_cap_fraction, 0.3);
        let nan = budgets(SiteMode::Static, ZoneReading::default(), f64::NAN);
        assert_eq!(
            amps3(nan[0].budget),
            [0.0; 3],
            "a cap that is not a number allows nothing"
        );
    }

    #[test]
    fn imposed_budget_lowers_but_never_raises() {
        let main = ZoneReading {
            imposed: Some(PerPhase([Amps(40.0), Amps(80.0), Amps(f64::NAN)])),
            ..Default::default()
        };
        let b = budgets(SiteMode::Static, main, 1.0);
        assert_eq!(b[0].source, BudgetSource::Imposed);
        assert_eq!(amps3(b[0].budget), [40.0, 63.0, 0.0]);
    }

    #[test]
    fn readings_must_match_the_tree() {
        let round = Round {
            now: t0(),
            ev_cap_fraction: 1.0,
            readings: &[],
            sessions: &[],
        };
        assert_eq!(
            zone_budgets(&tree(), &params(SiteMode::Static), &round),
            Err(AllocationError::ReadingsMismatch {
                readings: 0,
                zones: 2
            })
        );
    }

    // --- the estimate across rounds ----------------------------------------------------

    /// Runs one round at `t0 + at_s` with the main meter reading `total` on every phase.
    fn round_at(
        memory: &mut Vec<ZoneMemory>,
        at_s: i64,
        total: [f64; 3],
        session: &Session,
    ) -> ZoneBudget {
        let now = t0() + TimeDelta::seconds(at_s);
        let main = ZoneReading {
            consumption: Some((
                ConsumptionKind::Total,
                Some(MeterReading {
                    currents: PerPhase(total.map(Amps)),
                    read_at: now,
                }),
            )),
            ..Default::default()
        };
        let readings = [main, ZoneReading::default()];
        let sessions = [session.clone()];
        let round = Round {
            now,
            ev_cap_fraction: 1.0,
            readings: &readings,
            sessions: &sessions,
        };
        zone_budgets_with(&tree(), &params(SiteMode::Dynamic), &round, memory).unwrap()[0]
    }

    #[test]
    fn a_vehicle_ramping_after_a_raise_is_not_mistaken_for_other_loads() {
        let mut memory = Vec::new();
        let mut s = drawing_session(); // draws 10 A, limit 16 A
        s.draw_at = Some(t0());
        let before = round_at(&mut memory, 0, [60.0; 3], &s);
        assert_eq!(amps3(before.other_loads.unwrap()), [50.0; 3]);
        // Raised to 30 A at t+10; the building meter sees the car take 20 A more at
        // once, its MeterValues still says 10 A.
        s.limit_in_force = Some(Amps(30.0));
        s.changed_at = Some(t0() + TimeDelta::seconds(10));
        let ramping = round_at(&mut memory, 12, [80.0; 3], &s);
        assert_eq!(ramping.estimate, Estimate::Held);
        assert_eq!(amps3(ramping.other_loads.unwrap()), [50.0; 3], "not 70");
        assert_eq!(amps3(ramping.budget), [48.0; 3]);
        // The report after the ramp ends the hold: measured again.
        s.draw = Some(PerPhase::splat(Amps(30.0)));
        s.draw_at = Some(t0() + TimeDelta::seconds(20));
        let reported = round_at(&mut memory, 21, [81.0; 3], &s);
        assert_eq!(reported.estimate, Estimate::Measured);
        assert_eq!(amps3(reported.other_loads.unwrap()), [51.0; 3]);
    }

    #[test]
    fn a_hold_ends_after_at_most_its_limit_for_a_vehicle_that_never_reports() {
        let mut memory = Vec::new();
        let mut s = drawing_session();
        round_at(&mut memory, 0, [60.0; 3], &s);
        s.changed_at = Some(t0());
        let held = round_at(&mut memory, 30, [80.0; 3], &s);
        assert_eq!(held.estimate, Estimate::Held);
        let late = round_at(&mut memory, 1 + HOLD_AT_MOST.num_seconds(), [80.0; 3], &s);
        assert_eq!(late.estimate, Estimate::Measured);
        // Its only report is from before the change: it counts as nothing.
        assert_eq!(amps3(late.other_loads.unwrap()), [80.0; 3]);
    }

    #[test]
    fn a_phase_near_its_breaker_is_cut_from_the_measurement_even_during_a_hold() {
        let mut memory = Vec::new();
        let mut s = drawing_session();
        round_at(&mut memory, 0, [60.0; 3], &s);
        s.changed_at = Some(t0());
        s.draw_at = Some(t0() + TimeDelta::seconds(1)); // reported, not yet followed
                                                        // L1 at 99.5 A on a 100 A zone with a 2 A margin: above 100 - 1.
        let b = round_at(&mut memory, 2, [99.5, 80.0, 80.0], &s);
        assert_eq!(b.estimate, Estimate::SafetyCut);
        let other = amps3(b.other_loads.unwrap());
        assert_eq!(other, [89.5, 50.0, 50.0], "L1 measured, L2/L3 still held");
        assert_eq!(amps3(b.budget)[0], 8.5);
    }

    #[test]
    fn a_safety_cut_stands_while_the_vehicles_follow_it_then_is_judged_again() {
        let mut memory = Vec::new();
        let s = drawing_session(); // reports 10 A
        let cut = round_at(&mut memory, 0, [104.0, 60.0, 60.0], &s);
        assert_eq!(cut.estimate, Estimate::SafetyCut);
        assert_eq!(amps3(cut.budget)[0], 4.0, "100 − 94 − 2");
        // A second later the vehicle has not followed yet: the meter still reads the
        // same excess, which the cut already took away.
        let same = round_at(&mut memory, 1, [104.0, 60.0, 60.0], &s);
        assert_eq!(amps3(same.budget)[0], 4.0, "not cut twice for one excess");
        // Past the allowance and still over: cut again from the measurement.
        let again = round_at(&mut memory, 6, [106.0, 60.0, 60.0], &s);
        assert_eq!(amps3(again.budget)[0], 2.0);
    }

    #[test]
    fn small_moves_of_a_metered_budget_are_absorbed_by_the_deadband() {
        let mut memory = Vec::new();
        let s = drawing_session();
        let first = round_at(&mut memory, 0, [60.0; 3], &s);
        assert_eq!(amps3(first.budget), [48.0; 3]);
        // Other loads 0.8 A lower (budget +0.8) and 0.9 A higher (−0.9, within 2/2).
        let up = round_at(&mut memory, 1, [59.2; 3], &s);
        assert!(up.deadband);
        assert_eq!(amps3(up.budget), [48.0; 3]);
        let down = round_at(&mut memory, 2, [60.9; 3], &s);
        assert_eq!(amps3(down.budget), [48.0; 3]);
        // Beyond the deadband either way: taken.
        assert_eq!(
            amps3(round_at(&mut memory, 3, [61.5; 3], &s).budget),
            [46.5; 3]
        );
        assert_eq!(
            amps3(round_at(&mut memory, 4, [58.0; 3], &s).budget),
            [50.0; 3]
        );
    }

    #[test]
    fn a_report_from_before_the_last_change_counts_at_most_the_lowest_limit_since() {
        let mut s = drawing_session(); // drew 10 A, now at 16 A
        s.draw_at = Some(t0());
        s.changed_at = Some(t0() + TimeDelta::seconds(1));
        // Raised from 10 A: it draws at least what it reported.
        s.lowest_limit_since_draw = Some(Amps(16.0));
        assert_eq!(
            amps3(subtree_ev_draw(&tree(), &[s.clone()]).unwrap()[1]),
            [10.0; 3]
        );
        // Cut to 6 A, then raised to 16 A, before it reported again: it may be at 6 A.
        s.lowest_limit_since_draw = Some(Amps(6.0));
        assert_eq!(
            amps3(subtree_ev_draw(&tree(), &[s.clone()]).unwrap()[1]),
            [6.0; 3]
        );
        // A change without a known limit since counts as nothing (fail closed).
        s.lowest_limit_since_draw = None;
        assert_eq!(
            amps3(subtree_ev_draw(&tree(), &[s.clone()]).unwrap()[1]),
            [0.0; 3]
        );
        // A report after the change counts as reported.
        s.draw_at = Some(t0() + TimeDelta::seconds(2));
        assert_eq!(amps3(subtree_ev_draw(&tree(), &[s]).unwrap()[1]), [10.0; 3]);
    }

    #[test]
    fn a_safety_cut_right_after_a_raise_takes_back_the_raise_not_every_vehicle() {
        let mut memory = Vec::new();
        let mut s = drawing_session();
        // Reported 10 A, then raised to 16 A: the meter shows it following (other
        // loads 90 A + 16 A = 106 A on L1, over 100 − 2/2).
        s.draw_at = Some(t0());
        s.changed_at = Some(t0() + TimeDelta::seconds(1));
        s.lowest_limit_since_draw = Some(Amps(16.0));
        let cut = round_at(&mut memory, 3, [106.0, 60.0, 60.0], &s);
        assert_eq!(cut.estimate, Estimate::SafetyCut);
        // Counted at its 10 A report: other loads ≤ 96 A, budget 2 A (the 10 A it
        // drew would leave 0 A over) — not 100 − 106 − 2 < 0 as if it drew nothing.
        assert_eq!(amps3(cut.budget)[0], 2.0);
        assert!(
            amps3(cut.other_loads.unwrap())[0] >= 90.0,
            "never below the truth"
        );
    }

    #[test]
    fn the_safety_loop_judges_the_breaker_by_consumption_less_production() {
        let mut memory = Vec::new();
        let s = drawing_session();
        let now = t0();
        let at = |a: f64| {
            Some(MeterReading {
                currents: PerPhase::splat(Amps(a)),
                read_at: now,
            })
        };
        // 120 A consumed, 30 A produced behind the same breaker: 90 A flow through a
        // 100 A breaker. No cut; the budget is 100 − 110 + 30 − 2.
        let readings = [
            ZoneReading {
                consumption: Some((ConsumptionKind::Total, at(120.0))),
                production: at(30.0),
                imposed: None,
                bms_cap: None,
            },
            ZoneReading::default(),
        ];
        let sessions = [s];
        let round = Round {
            now,
            ev_cap_fraction: 1.0,
            readings: &readings,
            sessions: &sessions,
        };
        let b =
            zone_budgets_with(&tree(), &params(SiteMode::Dynamic), &round, &mut memory).unwrap()[0];
        assert_eq!(b.estimate, Estimate::Measured);
        assert_eq!(amps3(b.budget), [18.0; 3]);
    }

    #[test]
    fn a_report_from_before_a_decrease_counts_only_up_to_the_limit_now() {
        let mut s = drawing_session();
        s.draw = Some(PerPhase::splat(Amps(16.0)));
        s.limit_in_force = Some(Amps(6.0));
        let sums = subtree_ev_draw(&tree(), &[s.clone()]).unwrap();
        assert_eq!(amps3(sums[1]), [6.0; 3]);
        s.limit_in_force = None; // back on the 0 A default
        let sums = subtree_ev_draw(&tree(), &[s]).unwrap();
        assert_eq!(amps3(sums[1]), [0.0; 3]);
    }
}
