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
}

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
    /// What the vehicles below the zone may take, in `[0, limit]`.
    pub budget: PerPhase<Amps>,
}

/// The EV draw reported below each zone (its own sessions and its subtree's), per
/// phase. A session that reports nothing counts as drawing 0: for a `total` meter its
/// draw then counts as other load, which errs on the safe side.
pub fn subtree_ev_draw(
    tree: &ZoneTree,
    sessions: &[Session],
) -> Result<Vec<PerPhase<Amps>>, AllocationError> {
    let mut sums = vec![[0.0f64; 3]; tree.len()];
    for s in sessions {
        let z = super::zone_of(tree, s)?;
        if let Some(d) = s.draw {
            for p in Phase::ALL {
                let a = d.get(p).0;
                if a.is_finite() && a > 0.0 {
                    sums[z][p.index()] += a;
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
    if round.readings.len() != tree.len() {
        return Err(AllocationError::ReadingsMismatch {
            readings: round.readings.len(),
            zones: tree.len(),
        });
    }
    let ev_draw = subtree_ev_draw(tree, round.sessions)?;
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
        .map(|((zone, reading), ev_draw)| {
            let fresh = |r: &Option<MeterReading>| {
                r.filter(|r| is_usable(r, round.now, params.meter_stale_after))
            };
            let consumption = match (params.mode, reading.consumption) {
                (SiteMode::Static, _) | (SiteMode::Dynamic, None) => None,
                (SiteMode::Dynamic, Some((kind, r))) => Some((kind, fresh(&r))),
            };
            let (mut source, other_loads, production) = match consumption {
                None => (BudgetSource::Static, None, None),
                Some((_, None)) => (BudgetSource::StaleFallback, None, None),
                Some((kind, Some(r))) => {
                    let other = PerPhase(Phase::ALL.map(|p| match kind {
                        ConsumptionKind::OtherLoads => r.currents.get(p),
                        ConsumptionKind::Total => {
                            (r.currents.get(p) - ev_draw.get(p)).max(Amps::ZERO)
                        }
                    }));
                    (
                        BudgetSource::Dynamic,
                        Some(other),
                        fresh(&reading.production).map(|r| r.currents),
                    )
                }
            };
            let budget = PerPhase(Phase::ALL.map(|p| {
                let raw = match other_loads {
                    None if source == BudgetSource::StaleFallback => zone.stale_limit,
                    None => zone.static_limit,
                    Some(other) => {
                        let produced = production.map_or(Amps::ZERO, |pr| pr.get(p));
                        zone.limit - other.get(p) + produced - params.safety_margin
                    }
                };
                let capped = raw.max(Amps::ZERO).min(zone.limit) * cap;
                match reading.imposed.map(|i| i.get(p)) {
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
                }
            }));
            ZoneBudget {
                limit: zone.limit,
                source,
                other_loads,
                production,
                ev_draw,
                ev_cap_fraction: cap,
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
}
