//! Worked cases of the whole round (the examples of `docs/allocation.md`), and
//! properties over random sites: the budgets are never exceeded, setpoints are valid,
//! no usable current is left over, VIPs go last, and rounds are deterministic.

use chrono::{DateTime, TimeDelta, TimeZone, Utc};

use super::*;
use crate::config::SiteMode;

mod properties;

fn t(seconds: i64) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap() + TimeDelta::seconds(seconds)
}

fn minutes(m: i64) -> DateTime<Utc> {
    t(m * 60)
}

fn params() -> Params {
    Params {
        budget: BudgetParams {
            mode: SiteMode::Static,
            safety_margin: Amps(2.0),
            meter_stale_after: TimeDelta::seconds(15),
        },
        min_current: Amps(6.0),
        strategy: SheddingStrategy::Energy,
        rotation: TimeDelta::minutes(15),
        increase_hold: TimeDelta::seconds(10),
        min_active: TimeDelta::seconds(300),
        max_unbalance: None,
    }
}

/// A site under test: its tree, settings, readings, and the allocator's memory.
struct Site {
    tree: ZoneTree,
    params: Params,
    readings: Vec<ZoneReading>,
    ev_cap_fraction: f64,
    state: AllocatorState,
}

impl Site {
    /// One zone `main` with this static budget.
    fn single(limit: f64) -> Site {
        Site::new(&[("main", None, limit)])
    }

    fn new(zones: &[(&str, Option<&str>, f64)]) -> Site {
        let specs: Vec<ZoneSpec> = zones
            .iter()
            .map(|&(id, parent, limit)| ZoneSpec {
                id: id.into(),
                parent: parent.map(Into::into),
                limit_a: Amps(limit),
                static_ev_limit_a: None,
            })
            .collect();
        let tree = ZoneTree::new(&specs).unwrap();
        let readings = vec![ZoneReading::default(); tree.len()];
        Site {
            tree,
            params: params(),
            readings,
            ev_cap_fraction: 1.0,
            state: AllocatorState::default(),
        }
    }

    fn zone(&self, id: &str) -> ZoneIdx {
        self.tree.index_of(id).unwrap()
    }

    fn run(&mut self, sessions: &[Session], now: DateTime<Utc>) -> Allocation {
        let round = Round {
            now,
            ev_cap_fraction: self.ev_cap_fraction,
            readings: &self.readings,
            sessions,
        };
        allocate(&self.tree, &self.params, &round, &mut self.state).unwrap()
    }

    /// Runs a round and applies its plan, as the stations would after acknowledging.
    fn run_and_apply(&mut self, sessions: &mut [Session], now: DateTime<Utc>) -> Allocation {
        let a = self.run(sessions, now);
        for (s, out) in sessions.iter_mut().zip(&a.sessions) {
            if s.fixed.is_none() {
                s.limit_in_force = Some(out.limit_after);
            }
        }
        a
    }
}

/// A 3-phase vehicle of 32 A in zone 0 that has charged `kwh`.
fn ev(id: &str, kwh: f64) -> Session {
    Session {
        key: SessionKey::new(id, 1),
        zone: ZoneIdx(0),
        phases: SessionPhases::Three,
        max_current: Amps(32.0),
        vip: false,
        energy_wh: kwh * 1000.0,
        connected_since: t(0),
        draw: None,
        limit_in_force: None,
        fixed: None,
        changed_at: None,
        draw_at: None,
        lowest_limit_since_draw: None,
    }
}

fn fleet(n: usize) -> Vec<Session> {
    (0..n).map(|i| ev(&format!("CP{i:02}"), i as f64)).collect()
}

fn targets(a: &Allocation) -> Vec<f64> {
    a.sessions.iter().map(|s| s.target.0).collect()
}

fn suspended(a: &Allocation) -> Vec<usize> {
    (0..a.sessions.len())
        .filter(|&i| matches!(a.sessions[i].decision, Decision::Suspended { .. }))
        .collect()
}

#[test]
fn three_vehicles_on_63_a_get_21_a_each() {
    let mut site = Site::single(63.0);
    let a = site.run(&fleet(3), t(0));
    assert_eq!(targets(&a), [21.0; 3]);
    let main = Bottleneck {
        zone: ZoneIdx(0),
        phase: Phase::L1,
    };
    assert!(a
        .sessions
        .iter()
        .all(|s| s.decision == Decision::Shared { bottleneck: main }));
    assert!(a
        .sessions
        .iter()
        .all(|s| (s.fraction - 21.0 / 32.0).abs() < 1e-9));
    assert_eq!(a.zones[0].allocated, PerPhase::splat(Amps(63.0)));
}

#[test]
fn everyone_gets_the_maximum_when_the_demand_fits() {
    let mut site = Site::single(100.0);
    let a = site.run(&fleet(3), t(0));
    assert_eq!(targets(&a), [32.0; 3]);
    assert!(a.sessions.iter().all(|s| s.decision == Decision::AtMax));
}

#[test]
fn twelve_vehicles_on_63_a_keep_ten_at_6_3_a_and_suspend_two() {
    let mut site = Site::single(63.0);
    let a = site.run(&fleet(12), t(0));
    let running: Vec<f64> = a
        .sessions
        .iter()
        .map(|s| s.target.0)
        .filter(|&x| x > 0.0)
        .collect();
    assert_eq!(running, [6.3; 10]);
    assert_eq!(suspended(&a), [10, 11], "the two that charged most");
    assert_eq!(a.zones[0].suspended, 2);
    assert_eq!(
        a.sessions[11].decision,
        Decision::Suspended {
            bottleneck: Bottleneck {
                zone: ZoneIdx(0),
                phase: Phase::L1
            },
            since: t(0)
        }
    );
}

#[test]
fn energy_strategy_suspends_the_vehicles_that_charged_most() {
    let mut site = Site::single(20.0);
    let energies = [5.0, 30.0, 1.0, 12.0, 30.5];
    let sessions: Vec<Session> = energies
        .iter()
        .enumerate()
        .map(|(i, &e)| ev(&format!("CP{i}"), e))
        .collect();
    let a = site.run(&sessions, t(0));
    // 20 A gives 3 vehicles their 6 A: the 30 and 30.5 kWh ones wait.
    assert_eq!(suspended(&a), [1, 4]);
}

#[test]
fn connection_time_strategy_suspends_the_vehicles_connected_longest() {
    let mut site = Site::single(20.0);
    site.params.strategy = SheddingStrategy::ConnectionTime;
    let plugged_minutes_ago = [5, 120, 1, 60, 30];
    let sessions: Vec<Session> = plugged_minutes_ago
        .iter()
        .enumerate()
        .map(|(i, &m)| Session {
            connected_since: minutes(-m),
            ..ev(&format!("CP{i}"), 0.0)
        })
        .collect();
    let a = site.run(&sessions, t(0));
    assert_eq!(suspended(&a), [1, 3]);
}

#[test]
fn vips_are_shed_only_when_vips_alone_do_not_fit() {
    let mut site = Site::single(20.0);
    let mut sessions = fleet(5);
    // The VIPs charged most, and still stay.
    sessions[3].vip = true;
    sessions[4].vip = true;
    let a = site.run(&sessions, t(0));
    assert_eq!(suspended(&a), [1, 2]);
    assert!(a.sessions[4].vip);
    // Four VIPs on room for three: the VIP that charged most waits.
    let mut site = Site::single(20.0);
    sessions.iter_mut().take(4).for_each(|s| s.vip = true);
    let a = site.run(&sessions, t(0));
    assert_eq!(suspended(&a), [3, 4]);
}

#[test]
fn decisions_hold_until_the_rotation_then_the_ones_that_charged_most_give_way() {
    let mut site = Site::single(63.0);
    let mut sessions = fleet(12);
    let a = site.run_and_apply(&mut sessions, t(0));
    assert_eq!(suspended(&a), [10, 11]);
    // The ten running vehicles charge 15 kWh more each.
    for s in sessions.iter_mut().take(10) {
        s.energy_wh += 15_000.0;
    }
    let a = site.run_and_apply(&mut sessions, minutes(14));
    assert_eq!(
        suspended(&a),
        [10, 11],
        "decisions hold for rotation_minutes"
    );
    assert!(!a.rotation);

    let a = site.run_and_apply(&mut sessions, minutes(15));
    assert!(a.rotation);
    assert_eq!(suspended(&a), [8, 9], "now 8 and 9 have charged most");
    assert_eq!(a.sessions[10].target, Amps(6.3));
    assert_eq!(
        a.plan
            .decreases
            .iter()
            .map(|c| c.session)
            .collect::<Vec<_>>(),
        [8, 9]
    );
    assert!(
        a.plan.increases.is_empty(),
        "the resumes wait for increase_hold_s"
    );
    assert_eq!(
        a.sessions[10].held.unwrap().until,
        minutes(15) + TimeDelta::seconds(10)
    );

    let a = site.run_and_apply(&mut sessions, minutes(15) + TimeDelta::seconds(10));
    assert_eq!(
        a.plan
            .increases
            .iter()
            .map(|c| (c.session, c.to))
            .collect::<Vec<_>>(),
        [(10, Amps(6.3)), (11, Amps(6.3))]
    );
    assert_eq!(site.state.rotation_started(), Some(minutes(15)));
}

#[test]
fn a_vehicle_leaving_resumes_a_suspended_one_at_once() {
    let mut site = Site::single(63.0);
    let mut sessions = fleet(12);
    site.run_and_apply(&mut sessions, t(0));
    sessions.remove(3);
    let a = site.run_and_apply(&mut sessions, minutes(1));
    // CP10 (now at index 9) charged less than CP11: it takes the freed place.
    assert_eq!(suspended(&a), [10]);
    assert_eq!(a.sessions[9].target, Amps(6.3));
    let a = site.run_and_apply(&mut sessions, minutes(1) + TimeDelta::seconds(10));
    assert_eq!(
        a.plan
            .increases
            .iter()
            .map(|c| c.key.charge_point.as_str())
            .collect::<Vec<_>>(),
        ["CP10"]
    );
}

#[test]
fn a_grown_budget_resumes_a_suspended_one_without_waiting_for_the_rotation() {
    let mut site = Site::single(63.0);
    let mut sessions = fleet(12);
    site.run_and_apply(&mut sessions, t(0));
    site.tree = ZoneTree::new(&[ZoneSpec {
        id: "main".into(),
        parent: None,
        limit_a: Amps(66.0),
        static_ev_limit_a: None,
    }])
    .unwrap();
    let a = site.run_and_apply(&mut sessions, minutes(2));
    assert_eq!(suspended(&a), [11]);
}

#[test]
fn a_new_vehicle_waits_while_decisions_hold_unless_it_is_a_vip() {
    let mut site = Site::single(63.0);
    let mut sessions = fleet(12);
    site.run_and_apply(&mut sessions, t(0));
    sessions.push(ev("NEW", 0.0));
    let a = site.run_and_apply(&mut sessions, minutes(5));
    assert_eq!(suspended(&a), [10, 11, 12]);
    sessions.push(Session {
        vip: true,
        ..ev("VIP", 50.0)
    });
    let a = site.run_and_apply(&mut sessions, minutes(6));
    assert_eq!(a.sessions[13].target, Amps(6.3));
    assert_eq!(
        suspended(&a),
        [9, 10, 11, 12],
        "the running vehicle that charged most gives way"
    );
}

#[test]
fn a_resumed_vehicle_stays_active_for_min_active_even_at_a_rotation() {
    let mut site = Site::single(63.0);
    let mut sessions = fleet(12);
    site.run_and_apply(&mut sessions, t(0));
    // At 13 min CP05 leaves: CP10 resumes. Its energy is the highest by the rotation.
    sessions.remove(5);
    site.run_and_apply(&mut sessions, minutes(13));
    let cp10 = sessions
        .iter()
        .position(|s| s.key.charge_point.as_str() == "CP10")
        .unwrap();
    sessions[cp10].energy_wh = 1e9;
    let a = site.run_and_apply(&mut sessions, minutes(15));
    assert!(a.rotation);
    assert!(
        a.sessions[cp10].target.0 > 0.0,
        "resumed 2 minutes ago: protected by min_active_s"
    );
    let a = site.run_and_apply(&mut sessions, minutes(31));
    assert_eq!(
        a.sessions[cp10].target,
        Amps::ZERO,
        "not at the next rotation"
    );
}

#[test]
fn a_one_phase_station_on_l1_shares_l1_with_the_three_phase_ones() {
    let mut site = Site::single(63.0);
    let mut sessions = fleet(3);
    sessions.push(Session {
        phases: SessionPhases::One(Phase::L1),
        ..ev("1PH", 0.0)
    });
    sessions.push(Session {
        phases: SessionPhases::One(Phase::L2),
        max_current: Amps(10.0),
        ..ev("L2", 0.0)
    });
    let a = site.run(&sessions, t(0));
    // L1 carries four vehicles of 32 A: 63/4 = 15.75 each. L2 has room for its 10 A one.
    assert_eq!(targets(&a), [15.7, 15.7, 15.7, 15.7, 10.0]);
    assert_eq!(a.sessions[4].decision, Decision::AtMax);
    let z = &a.zones[0];
    assert_eq!(
        z.allocated.0.map(|x| (x.0 * 10.0).round() / 10.0),
        [62.8, 57.1, 47.1]
    );
}

#[test]
fn an_overload_on_l1_does_not_stop_a_one_phase_vehicle_on_l2() {
    let mut site = Site::single(100.0);
    site.params.budget.mode = SiteMode::Dynamic;
    site.readings[0].consumption = Some((
        ConsumptionKind::OtherLoads,
        Some(MeterReading {
            currents: PerPhase([Amps(95.0), Amps(20.0), Amps(20.0)]),
            read_at: t(0),
        }),
    ));
    let mut sessions = fleet(2);
    sessions.push(Session {
        phases: SessionPhases::One(Phase::L1),
        ..ev("L1", 0.0)
    });
    sessions.push(Session {
        phases: SessionPhases::One(Phase::L2),
        ..ev("L2", 0.0)
    });
    let a = site.run(&sessions, t(0));
    // L1 has 100 - 95 - 2 = 3 A: not enough for anyone loading it.
    assert_eq!(suspended(&a), [0, 1, 2]);
    assert_eq!(a.sessions[3].target, Amps(32.0));
}

#[test]
fn a_child_never_gets_more_than_its_parent_allows() {
    let mut site = Site::new(&[
        ("main", None, 40.0),
        ("garage", Some("main"), 100.0),
        ("yard", Some("main"), 8.0),
    ]);
    let mut sessions = fleet(4);
    for s in sessions.iter_mut().take(3) {
        s.zone = site.zone("garage");
    }
    sessions[3].zone = site.zone("yard");
    let a = site.run(&sessions, t(0));
    // The yard's 8 A go to its one vehicle; the garage gets what main has left: 32 A for 3.
    assert_eq!(targets(&a), [10.6, 10.6, 10.6, 8.0]);
    assert_eq!(
        a.sessions[3].decision,
        Decision::Shared {
            bottleneck: Bottleneck {
                zone: site.zone("yard"),
                phase: Phase::L1
            }
        }
    );
}

/// Two vehicles in `main` (limit 100, static 63) reporting 15 A each.
fn metered_site(kind: ConsumptionKind, reading: f64, age_s: i64) -> (Site, Vec<Session>) {
    let mut site = Site::new(&[("main", None, 100.0)]);
    site.tree = ZoneTree::new(&[ZoneSpec {
        id: "main".into(),
        parent: None,
        limit_a: Amps(100.0),
        static_ev_limit_a: Some(Amps(63.0)),
    }])
    .unwrap();
    site.params.budget.mode = SiteMode::Dynamic;
    site.readings[0].consumption = Some((
        kind,
        Some(MeterReading {
            currents: PerPhase::splat(Amps(reading)),
            read_at: t(-age_s),
        }),
    ));
    let sessions = fleet(2)
        .into_iter()
        .map(|s| Session {
            draw: Some(PerPhase::splat(Amps(15.0))),
            limit_in_force: Some(Amps(16.0)),
            ..s
        })
        .collect();
    (site, sessions)
}

#[test]
fn dynamic_budget_with_a_total_meter_subtracts_the_vehicles_own_draw() {
    // 70 A measured, 30 A of it the two vehicles: other loads 40, budget 100 - 40 - 2 = 58.
    let (mut site, sessions) = metered_site(ConsumptionKind::Total, 70.0, 1);
    let a = site.run(&sessions, t(0));
    let b = &a.zones[0].budget;
    assert_eq!(
        (b.source, b.budget.get(Phase::L1)),
        (BudgetSource::Dynamic, Amps(58.0))
    );
    assert_eq!(b.other_loads.unwrap().get(Phase::L2), Amps(40.0));
    assert_eq!(b.ev_draw.get(Phase::L3), Amps(30.0));
    assert_eq!(targets(&a), [29.0, 29.0]);
}

#[test]
fn dynamic_budget_with_other_loads_and_production_meters() {
    // Other loads 50, production 10: 100 - 50 + 10 - 2 = 58.
    let (mut site, sessions) = metered_site(ConsumptionKind::OtherLoads, 50.0, 0);
    site.readings[0].production = Some(MeterReading {
        currents: PerPhase::splat(Amps(10.0)),
        read_at: t(0),
    });
    let a = site.run(&sessions, t(0));
    assert_eq!(
        a.zones[0].budget.production,
        Some(PerPhase::splat(Amps(10.0)))
    );
    assert_eq!(targets(&a), [29.0, 29.0]);
}

#[test]
fn a_stale_meter_falls_back_to_the_static_limit() {
    let (mut site, sessions) = metered_site(ConsumptionKind::Total, 20.0, 16);
    let a = site.run(&sessions, t(0));
    assert_eq!(a.zones[0].budget.source, BudgetSource::StaleFallback);
    assert_eq!(targets(&a), [31.5, 31.5]);
}

#[test]
fn a_stale_meter_without_a_static_limit_fails_closed_to_nothing() {
    let (mut site, sessions) = metered_site(ConsumptionKind::Total, 20.0, 16);
    site.tree = ZoneTree::new(&[ZoneSpec {
        id: "main".into(),
        parent: None,
        limit_a: Amps(100.0),
        static_ev_limit_a: None,
    }])
    .unwrap();
    let a = site.run(&sessions, t(0));
    assert_eq!(a.zones[0].budget.source, BudgetSource::StaleFallback);
    assert_eq!(a.zones[0].budget.budget, PerPhase::splat(Amps::ZERO));
    assert_eq!(targets(&a), [0.0, 0.0], "not the breaker's 100 A");
}

#[test]
fn a_tariff_cap_and_an_imposed_budget_lower_the_allocation() {
    let mut site = Site::single(63.0);
    site.ev_cap_fraction = 0.3;
    assert_eq!(
        targets(&site.run(&fleet(2), t(0))),
        [9.4, 9.4],
        "30 % of 63 A = 18.9 A"
    );
    site.ev_cap_fraction = 1.0;
    site.readings[0].imposed = Some(PerPhase::splat(Amps(20.0)));
    let a = site.run(&fleet(2), t(0));
    assert_eq!(a.zones[0].budget.source, BudgetSource::Imposed);
    assert_eq!(targets(&a), [10.0, 10.0]);
    // A BMS cap below the grant decides; one above it does not.
    site.readings[0].bms_cap = Some(Amps(12.0));
    let a = site.run(&fleet(2), t(0));
    assert_eq!(a.zones[0].budget.source, BudgetSource::BmsCap);
    assert_eq!(targets(&a), [6.0, 6.0]);
    site.readings[0].bms_cap = Some(Amps(30.0));
    let a = site.run(&fleet(2), t(0));
    assert_eq!(a.zones[0].budget.source, BudgetSource::Imposed);
    // A cap that is not a number allows nothing.
    site.readings[0].bms_cap = Some(Amps(f64::NAN));
    assert_eq!(targets(&site.run(&fleet(2), t(0))), [0.0, 0.0]);
}

#[test]
fn a_fixed_reservation_reduces_the_budget_of_every_zone_on_its_path() {
    let mut site = Site::new(&[
        ("main", None, 63.0),
        ("a", Some("main"), 32.0),
        ("b", Some("main"), 63.0),
    ]);
    let mut sessions = fleet(3);
    sessions[0].zone = site.zone("a");
    sessions[0].fixed = Some(Amps(20.0));
    sessions[1].zone = site.zone("a");
    sessions[2].zone = site.zone("b");
    let a = site.run(&sessions, t(0));
    // Zone a has 32 - 20 = 12 A left; main has 63 - 20 = 43 of which b takes 31 (its max 32 would exceed).
    assert_eq!(targets(&a), [20.0, 12.0, 31.0]);
    assert_eq!(a.sessions[0].decision, Decision::Fixed);
    assert_eq!(a.sessions[0].send, None);
    assert_eq!(a.zones[0].fixed, PerPhase::splat(Amps(20.0)));
    assert_eq!(a.zones[0].allocated, PerPhase::splat(Amps(63.0)));
}

#[test]
fn a_new_session_gets_its_first_limit_at_once_after_the_decreases() {
    let mut site = Site::single(63.0);
    let mut sessions = fleet(2);
    site.run_and_apply(&mut sessions, t(0));
    sessions.push(ev("NEW", 0.0));
    let a = site.run_and_apply(&mut sessions, t(30));
    let decreases: Vec<(usize, Amps)> =
        a.plan.decreases.iter().map(|c| (c.session, c.to)).collect();
    assert_eq!(decreases, [(0, Amps(21.0)), (1, Amps(21.0))]);
    assert_eq!(a.plan.increases.len(), 1);
    assert_eq!(
        (a.plan.increases[0].from, a.plan.increases[0].to),
        (None, Amps(21.0))
    );
}

#[test]
fn increases_are_held_decreases_are_not_and_small_steps_are_not_sent() {
    let mut site = Site::single(63.0);
    let mut sessions = fleet(3);
    site.run_and_apply(&mut sessions, t(0));
    // One vehicle leaves: the other two may rise from 21 to 31.5, after the hold.
    sessions.pop();
    let a = site.run_and_apply(&mut sessions, t(5));
    assert_eq!(targets(&a), [31.5, 31.5]);
    assert_eq!(a.sessions[0].limit_after, Amps(21.0));
    assert_eq!(a.sessions[0].send, None);
    assert!(a.plan.increases.is_empty());
    let a = site.run_and_apply(&mut sessions, t(14));
    assert!(a.plan.increases.is_empty());
    let a = site.run_and_apply(&mut sessions, t(15));
    assert_eq!(a.plan.increases.len(), 2);
    assert_eq!(a.sessions[0].limit_after, Amps(31.5));

    // The budget shrinks by 0.6 A: a decrease goes out at once.
    site.ev_cap_fraction = 62.4 / 63.0;
    let a = site.run_and_apply(&mut sessions, t(16));
    assert_eq!(
        a.plan.decreases.iter().map(|c| c.to).collect::<Vec<_>>(),
        [Amps(31.2), Amps(31.2)]
    );
    // It grows back by 0.6 A total, 0.3 A each: not worth a message.
    site.ev_cap_fraction = 1.0;
    let a = site.run_and_apply(&mut sessions, t(60));
    assert_eq!(targets(&a), [31.5, 31.5]);
    assert!(a.plan.increases.is_empty() && a.plan.decreases.is_empty());
    assert_eq!(a.sessions[0].limit_after, Amps(31.2));
}

#[test]
fn demand_adaptation_gives_unused_current_to_others_and_takes_it_back() {
    let mut site = Site::single(40.0);
    site.params.increase_hold = TimeDelta::zero();
    let mut sessions = fleet(2);
    site.run_and_apply(&mut sessions, t(0));
    // CP00's car takes only 8 A of its 20.
    sessions[0].draw = Some(PerPhase::splat(Amps(8.0)));
    sessions[1].draw = Some(PerPhase::splat(Amps(20.0)));
    let a = site.run_and_apply(&mut sessions, t(30));
    assert_eq!(targets(&a), [20.0, 20.0], "not before ADAPT_AFTER");
    let a = site.run_and_apply(&mut sessions, t(90));
    assert!(a.sessions[0].adapted);
    assert_eq!(a.sessions[0].max, Amps(8.0 + ADAPT_HEADROOM_A));
    // Both now get 40/43 of their maximum.
    assert_eq!(targets(&a), [10.2, 29.7]);
    assert_eq!(a.plan.decreases[0].session, 0);
    assert_eq!(a.plan.increases[0].session, 1);

    // It draws close to its limit again: the maximum is back at once.
    sessions[0].draw = Some(PerPhase::splat(Amps(10.0)));
    let a = site.run_and_apply(&mut sessions, t(95));
    assert!(!a.sessions[0].adapted);
    assert_eq!(targets(&a), [20.0, 20.0]);
    assert_eq!(
        a.plan.decreases[0].session, 1,
        "the other vehicle's decrease goes first"
    );
}

#[test]
fn a_maximum_below_the_minimum_gets_nothing() {
    let mut site = Site::single(63.0);
    let sessions = [Session {
        max_current: Amps(5.0),
        ..ev("small", 0.0)
    }];
    let a = site.run(&sessions, t(0));
    assert_eq!(
        (a.sessions[0].target, a.sessions[0].decision),
        (Amps::ZERO, Decision::MaxBelowMinimum)
    );
}

#[test]
fn a_session_in_an_unknown_zone_is_refused() {
    let mut site = Site::single(63.0);
    let sessions = [Session {
        zone: ZoneIdx(7),
        ..ev("lost", 0.0)
    }];
    let round = Round {
        now: t(0),
        ev_cap_fraction: 1.0,
        readings: &site.readings,
        sessions: &sessions,
    };
    let err = allocate(&site.tree, &site.params, &round, &mut site.state).unwrap_err();
    assert_eq!(
        err,
        AllocationError::UnknownZone {
            session: SessionKey::new("lost", 1),
            zone: ZoneIdx(7)
        }
    );
}

#[test]
fn params_come_from_the_configuration() {
    let config = Config::embedded_default();
    let p = Params::from_config(&config);
    assert_eq!(p.min_current, Amps(6.0));
    assert_eq!(p.rotation, TimeDelta::minutes(15));
    assert_eq!(p.budget.mode, SiteMode::Static);
    let tree = ZoneTree::from_config(&config).unwrap();
    assert_eq!(tree.zone(ZoneIdx(0)).static_limit, Amps(63.0));
}

#[test]
fn numbers_that_are_not_numbers_never_loosen_a_limit() {
    let mut site = Site::single(63.0);
    let sessions = [
        Session {
            max_current: Amps(f64::NAN),
            ..ev("nan-max", 0.0)
        },
        // A reservation that is not a number is taken as the station's maximum.
        Session {
            fixed: Some(Amps(f64::NAN)),
            ..ev("nan-fixed", 0.0)
        },
        Session {
            energy_wh: f64::NAN,
            draw: Some(PerPhase::splat(Amps(f64::NAN))),
            limit_in_force: Some(Amps(f64::NAN)),
            ..ev("nan-rest", 0.0)
        },
    ];
    let a = site.run(&sessions, t(0));
    assert_eq!(a.sessions[0].decision, Decision::MaxBelowMinimum);
    assert_eq!(a.sessions[1].target, Amps(32.0));
    assert_eq!(
        a.sessions[2].target,
        Amps(31.0),
        "63 A less the 32 A reservation"
    );
    assert_eq!(
        a.sessions[2].send,
        Some(Amps(31.0)),
        "a limit in force that is not a number is replaced"
    );
}

#[test]
fn one_phase_cars_at_their_minimum_over_an_unbalance_cap_are_suspended_not_the_3_phase_ones() {
    let mut site = Site::single(100.0);
    site.params.max_unbalance = Some(Amps(10.0));
    let one = |name: &str, p: Phase| Session {
        phases: SessionPhases::One(p),
        ..ev(name, 0.0)
    };
    // Three cars on L1 at 6 A each would be 18 A over L3: only one fits in 10 A.
    let sessions = vec![
        one("A", Phase::L1),
        one("B", Phase::L1),
        one("C", Phase::L1),
        one("D", Phase::L2),
        Session {
            max_current: Amps(16.0),
            ..ev("E", 0.0)
        },
    ];
    let a = site.run(&sessions, t(0));
    let load = a.zones[0].allocated.0.map(|x| x.0);
    let spread = load.iter().copied().fold(f64::MIN, f64::max)
        - load.iter().copied().fold(f64::MAX, f64::min);
    assert!(spread <= 10.05, "{load:?}");
    // The last two in keep order (same energy: by key) give way; the 3-phase car,
    // which unbalances nothing, keeps its 16 A.
    assert_eq!(targets(&a), [10.0, 0.0, 0.0, 10.0, 16.0], "{load:?}");
    for s in &a.sessions[1..3] {
        assert!(
            matches!(
                s.decision,
                Decision::Suspended {
                    bottleneck: Bottleneck {
                        zone: ZoneIdx(0),
                        phase: Phase::L1
                    },
                    ..
                }
            ),
            "{:?}",
            s.decision
        );
    }
}

#[test]
fn an_unbalance_cap_lowers_only_the_phases_above_the_least_loaded_one_plus_the_cap() {
    let mut site = Site::single(100.0);
    site.params.max_unbalance = Some(Amps(20.0));
    let one = |name: &str, p: Phase| Session {
        phases: SessionPhases::One(p),
        ..ev(name, 0.0)
    };
    // Two 32 A cars on L1, one on L2, none on L3: the least loaded phase carries 0 A.
    let sessions = vec![
        one("A", Phase::L1),
        one("B", Phase::L1),
        one("C", Phase::L2),
    ];
    let a = site.run(&sessions, t(0));
    let load = a.zones[0].allocated.0.map(|x| x.0);
    assert!(
        load[0] - load[2] <= 20.05 && load[1] - load[2] <= 20.05,
        "{load:?}"
    );
    assert_eq!(targets(&a), [10.0, 10.0, 20.0]);
    // A 3-phase car raises the least loaded phase: the one-phase cars may take more.
    let mut sessions = sessions;
    sessions.push(Session {
        max_current: Amps(16.0),
        ..ev("D", 0.0)
    });
    let a = site.run(&sessions, t(0));
    let load = a.zones[0].allocated.0.map(|x| x.0);
    let spread = load.iter().copied().fold(f64::MIN, f64::max)
        - load.iter().copied().fold(f64::MAX, f64::min);
    assert!(spread <= 20.1, "{load:?}");
    // The 3-phase car is not held back (it unbalances nothing): it takes its 16 A, which
    // lets the one-phase cars up to 16 + 20 on their phases.
    assert_eq!(targets(&a), [10.0, 10.0, 20.0, 16.0], "{load:?}");
    assert_eq!(
        a.sessions[0].decision,
        Decision::Shared {
            bottleneck: Bottleneck {
                zone: ZoneIdx(0),
                phase: Phase::L1
            }
        }
    );
    // Without the cap, the same site is as unbalanced as the cars make it.
    site.params.max_unbalance = None;
    let a = site.run(&sessions, t(0));
    assert_eq!(targets(&a)[..3], [32.0, 32.0, 32.0]);
}
