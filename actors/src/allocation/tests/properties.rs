//! Properties over random sites: random trees (1 to 4 levels, up to 200 zones), up to
//! 2000 sessions (mixed phases, VIPs, demands, fixed reservations) and random meter
//! readings. Proptest draws the sizes and a seed (so failures shrink to small sites);
//! the seed builds the details.

use proptest::prelude::*;

use super::*;
use crate::allocation::tree::ZoneSpec;
use crate::units::{ChargePointId, ZoneId};

/// The seeded generator of the simulation, so a case is reproducible from its seed.
type Rng = crate::random::SimRng;

/// Uniform in `[lo, hi)`, rounded to 0.1.
fn amps(rng: &mut Rng, lo: f64, hi: f64) -> Amps {
    Amps(((lo + rng.unit() * (hi - lo)) * 10.0).floor() / 10.0)
}

struct Scenario {
    tree: ZoneTree,
    params: Params,
    readings: Vec<ZoneReading>,
    ev_cap_fraction: f64,
    sessions: Vec<Session>,
    now: DateTime<Utc>,
}

impl Scenario {
    fn round(&self) -> Round<'_> {
        Round {
            now: self.now,
            ev_cap_fraction: self.ev_cap_fraction,
            readings: &self.readings,
            sessions: &self.sessions,
        }
    }
}

fn random_tree(rng: &mut Rng, zones: usize) -> ZoneTree {
    let mut depth: Vec<usize> = Vec::with_capacity(zones);
    let mut specs = Vec::with_capacity(zones);
    for i in 0..zones {
        let parent = if i == 0 || rng.chance(0.03) {
            None
        } else {
            (0..8).map(|_| rng.below(i)).find(|&j| depth[j] < 4)
        };
        depth.push(parent.map_or(1, |p| depth[p] + 1));
        let limit = amps(rng, 5.0, 400.0);
        specs.push(ZoneSpec {
            id: ZoneId::new(format!("z{i}")),
            parent: parent.map(|p| ZoneId::new(format!("z{p}"))),
            limit_a: limit,
            static_ev_limit_a: rng.chance(0.5).then(|| amps(rng, 0.0, limit.0)),
        });
    }
    ZoneTree::new(&specs).expect("generated trees are valid")
}

fn random_reading(rng: &mut Rng, now: DateTime<Utc>, scale: f64) -> MeterReading {
    let age = if rng.chance(0.2) {
        20
    } else {
        rng.below(10) as i64
    };
    MeterReading {
        currents: PerPhase([
            amps(rng, 0.0, scale),
            amps(rng, 0.0, scale),
            amps(rng, 0.0, scale),
        ]),
        read_at: now - TimeDelta::seconds(age),
    }
}

fn random_session(rng: &mut Rng, n: usize, zones: usize, now: DateTime<Utc>) -> Session {
    let phases = if rng.chance(0.6) {
        SessionPhases::Three
    } else {
        SessionPhases::One(Phase::ALL[rng.below(3)])
    };
    let max = match rng.below(6) {
        0 => Amps(16.0),
        1 | 2 => Amps(32.0),
        3 => Amps(63.0),
        _ => amps(rng, 1.0, 80.0),
    };
    Session {
        key: SessionKey::new(
            ChargePointId::new(format!("CP{n}")),
            1 + rng.below(2) as u32,
        ),
        zone: ZoneIdx(rng.below(zones) as u16),
        phases,
        max_current: max,
        vip: rng.chance(0.1),
        energy_wh: (rng.unit() * 80_000.0).floor(),
        connected_since: now - TimeDelta::seconds(rng.below(36_000) as i64),
        draw: rng.chance(0.5).then(|| {
            PerPhase([
                amps(rng, 0.0, max.0),
                amps(rng, 0.0, max.0),
                amps(rng, 0.0, max.0),
            ])
        }),
        limit_in_force: rng.chance(0.7).then(|| amps(rng, 0.0, max.0 + 0.1)),
        fixed: rng.chance(0.05).then(|| amps(rng, 0.0, 32.0)),
        changed_at: None,
        draw_at: None,
        lowest_limit_since_draw: None,
    }
}

fn scenario(seed: u64, zones: usize, sessions: usize) -> Scenario {
    let mut rng = Rng::new(seed);
    let now = t(0);
    let tree = random_tree(&mut rng, zones);
    let mut params = params();
    params.budget.mode = if rng.chance(0.5) {
        SiteMode::Static
    } else {
        SiteMode::Dynamic
    };
    params.budget.safety_margin = amps(&mut rng, 0.0, 5.0);
    params.min_current = match rng.below(4) {
        0 => Amps(0.0),
        1 => Amps(6.05),
        _ => Amps(6.0),
    };
    params.strategy = if rng.chance(0.5) {
        SheddingStrategy::Energy
    } else {
        SheddingStrategy::ConnectionTime
    };
    let readings = tree
        .zones()
        .iter()
        .map(|z| {
            let kind = if rng.chance(0.5) {
                ConsumptionKind::Total
            } else {
                ConsumptionKind::OtherLoads
            };
            ZoneReading {
                consumption: rng.chance(0.4).then(|| {
                    (
                        kind,
                        rng.chance(0.9)
                            .then(|| random_reading(&mut rng, now, z.limit.0 * 1.2)),
                    )
                }),
                production: rng
                    .chance(0.15)
                    .then(|| random_reading(&mut rng, now, 50.0)),
                imposed: rng
                    .chance(0.05)
                    .then(|| PerPhase::splat(amps(&mut rng, 0.0, z.limit.0))),
                bms_cap: rng.chance(0.05).then(|| amps(&mut rng, 0.0, z.limit.0)),
            }
        })
        .collect();
    let ev_cap_fraction = if rng.chance(0.7) { 1.0 } else { rng.unit() };
    let sessions = (0..sessions)
        .map(|n| random_session(&mut rng, n, zones, now))
        .collect();
    Scenario {
        tree,
        params,
        readings,
        ev_cap_fraction,
        sessions,
        now,
    }
}

/// The least current a running session gets (min_current rounded up to 0.1 A).
fn floor_of(params: &Params) -> f64 {
    let min = params.min_current.0;
    if min > 0.0 {
        ((min - 1e-9) * 10.0).ceil() / 10.0
    } else {
        0.0
    }
}

/// The (zone, phase) pairs a session loads, as `zone * 3 + phase`.
fn loaded(tree: &ZoneTree, s: &Session) -> Vec<usize> {
    let mut out = Vec::new();
    for &z in tree.path(s.zone) {
        for p in Phase::ALL {
            if s.phases.loads(p) {
                out.push(usize::from(z) * 3 + p.index());
            }
        }
    }
    out
}

const EPS: f64 = 1e-6;

/// Checks every promise of one round, independently of how the engine works.
fn check_round(sc: &Scenario, a: &Allocation) -> Result<(), TestCaseError> {
    let tree = &sc.tree;
    let nc = tree.len() * 3;
    let floor = floor_of(&sc.params);
    let mut fixed = vec![0.0; nc];
    let mut controlled = vec![0.0; nc];
    let mut controlled_after = vec![0.0; nc];
    let mut running_non_vip = vec![0u32; nc];
    // Sessions rounded down from a share (each may leave up to 0.1 A unused).
    let mut rounded = vec![0u32; nc];
    let constraints: Vec<Vec<usize>> = sc.sessions.iter().map(|s| loaded(tree, s)).collect();
    prop_assert_eq!(a.sessions.len(), sc.sessions.len());
    prop_assert_eq!(a.zones.len(), tree.len());

    for ((s, out), cs) in sc.sessions.iter().zip(&a.sessions).zip(&constraints) {
        if s.fixed.is_some() {
            prop_assert_eq!(out.decision, Decision::Fixed);
            for &c in cs {
                fixed[c] += out.target.0;
            }
            continue;
        }
        let target = out.target.0;
        prop_assert!(
            out.max <= s.max_current,
            "{}: max {} above the station's {}",
            s.key,
            out.max,
            s.max_current
        );
        prop_assert!(
            target == 0.0 || (target >= sc.params.min_current.0 - EPS && target <= out.max.0 + EPS),
            "{}: target {} outside [min {}, max {}]",
            s.key,
            target,
            sc.params.min_current,
            out.max
        );
        prop_assert!(
            ((target * 10.0) - (target * 10.0).round()).abs() < EPS,
            "{}: {} is not in 0.1 A steps",
            s.key,
            target
        );
        prop_assert!(
            out.limit_after.0 <= target + EPS,
            "{}: limit after {} above target {}",
            s.key,
            out.limit_after,
            target
        );
        let unchanged = s.limit_in_force.is_some_and(|l| l == out.limit_after);
        prop_assert!(
            out.send.is_some() || unchanged,
            "{}: limit changes without a message",
            s.key
        );
        for &c in cs {
            controlled[c] += target;
            controlled_after[c] += out.limit_after.0;
            if matches!(out.decision, Decision::Shared { .. }) {
                rounded[c] += 1;
            }
            if target > 0.0 && !s.vip {
                running_non_vip[c] += 1;
            }
        }
    }

    // The safety invariant: what is controlled fits in what the reservations leave.
    let mut room = vec![0.0; nc];
    for c in 0..nc {
        let zone = &a.zones[c / 3];
        let budget = zone.budget.budget.0[c % 3].0;
        prop_assert!(
            (0.0..=zone.budget.limit.0 + EPS).contains(&budget),
            "budget {} outside [0, limit]",
            budget
        );
        room[c] = (budget - fixed[c]).max(0.0);
        prop_assert!(
            controlled[c] <= room[c] + EPS,
            "zone {} phase {}: targets {} > room {}",
            c / 3,
            c % 3,
            controlled[c],
            room[c]
        );
        prop_assert!(
            controlled_after[c] <= room[c] + EPS,
            "zone {} phase {}: limits after {} > room {}",
            c / 3,
            c % 3,
            controlled_after[c],
            room[c]
        );
        prop_assert!(
            (zone.allocated.0[c % 3].0 - controlled[c] - fixed[c]).abs()
                < 1e-6 * (1.0 + controlled[c])
        );
    }

    // Pareto: a session below its maximum has a full (zone, phase) on its path; one
    // that is suspended has one without room for the minimum. Rounding down to 0.1 A
    // leaves up to 0.1 A per session sharing there.
    let slack = |c: usize| room[c] - controlled[c];
    for ((s, out), cs) in sc.sessions.iter().zip(&a.sessions).zip(&constraints) {
        if matches!(out.decision, Decision::Fixed | Decision::MaxBelowMinimum)
            || out.target.0 >= out.max.0 - EPS
        {
            continue;
        }
        let needed = if out.target.0 > 0.0 { 0.0 } else { floor };
        let blocked = cs
            .iter()
            .any(|&c| slack(c) < needed + 0.1 * f64::from(rounded[c]) + EPS);
        prop_assert!(
            blocked,
            "{}: at {} of {} with room on its whole path",
            s.key,
            out.target,
            out.max
        );
        if out.target.0 == 0.0 && floor > 0.0 {
            prop_assert!(
                matches!(out.decision, Decision::Suspended { .. }),
                "{}: 0 A but {:?}",
                s.key,
                out.decision
            );
        }
        if let Decision::Suspended { bottleneck, .. } = out.decision {
            let c = bottleneck.zone.get() * 3 + bottleneck.phase.index();
            prop_assert!(cs.contains(&c), "{}: bottleneck not on its path", s.key);
            if s.vip {
                prop_assert_eq!(
                    running_non_vip[c],
                    0,
                    "{}: VIP suspended while a non-VIP runs in its bottleneck",
                    &s.key
                );
                let vips_alone_full = cs.iter().any(|&c| {
                    running_non_vip[c] == 0 && slack(c) < floor + 0.1 * f64::from(rounded[c]) + EPS
                });
                prop_assert!(
                    vips_alone_full,
                    "{}: VIP suspended with room among VIPs",
                    &s.key
                );
            }
        }
    }
    Ok(())
}

/// The unbalance property for one input: every zone within its budget (or held over
/// it by reservations alone) and every root's spread within the cap.
fn check_unbalance(
    seed: u64,
    zones: usize,
    sessions: usize,
    cap: f64,
) -> Result<(), TestCaseError> {
    let mut sc = scenario(seed, zones, sessions);
    sc.params.max_unbalance = Some(Amps(cap));
    let mut state = AllocatorState::default();
    let a = allocate(&sc.tree, &sc.params, &sc.round(), &mut state).unwrap();
    for (z, za) in a.zones.iter().enumerate() {
        for p in 0..3 {
            prop_assert!(
                za.allocated.0[p].0 <= za.budget.budget.0[p].0.max(0.0) + 1e-6
                    || za.fixed.0[p].0 >= za.budget.budget.0[p].0 - 1e-6,
                "zone {z} phase {p}: {} over its budget {}",
                za.allocated.0[p].0,
                za.budget.budget.0[p].0
            );
        }
    }
    for (r, zone) in sc
        .tree
        .zones()
        .iter()
        .enumerate()
        .filter(|(_, z)| z.parent.is_none())
    {
        let _ = zone;
        let load = a.zones[r].allocated.0.map(|x| x.0);
        let fixed = a.zones[r].fixed.0.map(|x| x.0);
        let spread = |v: [f64; 3]| {
            v.iter().copied().fold(f64::MIN, f64::max) - v.iter().copied().fold(f64::MAX, f64::min)
        };
        // What no setpoint can change: the reservations alone may be unbalanced.
        if spread(fixed) > cap {
            continue;
        }
        let end = sc.tree.subtree_end(ZoneIdx(r as u16));
        let controlled = sc
            .sessions
            .iter()
            .filter(|s| s.fixed.is_none() && (r..end).contains(&s.zone.get()))
            .count() as f64;
        // Each target is sent rounded down to 0.1 A, which may deepen the least loaded phase.
        prop_assert!(
            spread(load) <= cap + 0.06 + 0.1 * controlled,
            "root {r}: {load:?} spread {} over the cap {cap}",
            spread(load)
        );
    }
    Ok(())
}

fn sizes() -> impl Strategy<Value = (u64, usize, usize)> {
    (any::<u64>(), 1usize..=200, 0usize..=2000)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn every_round_keeps_budgets_setpoints_pareto_and_vip_promises((seed, zones, sessions) in sizes()) {
        let sc = scenario(seed, zones, sessions);
        let mut state = AllocatorState::default();
        let a = allocate(&sc.tree, &sc.params, &sc.round(), &mut state).unwrap();
        check_round(&sc, &a)?;
    }

    #[test]
    fn an_unbalance_cap_holds_at_every_root_and_every_budget_still_holds(
        (seed, zones, sessions) in (any::<u64>(), 1usize..=30, 0usize..=300),
        cap in 0.0f64..40.0,
    ) {
        check_unbalance(seed, zones, sessions, cap)?;
    }

    #[test]
    fn same_input_and_state_give_the_same_output((seed, zones, sessions) in (any::<u64>(), 1usize..=50, 0usize..=300)) {
        let mut sc = scenario(seed, zones, sessions);
        let mut state = AllocatorState::default();
        allocate(&sc.tree, &sc.params, &sc.round(), &mut state).unwrap();
        sc.now += TimeDelta::seconds(61);
        let mut again = state.clone();
        let first = allocate(&sc.tree, &sc.params, &sc.round(), &mut state).unwrap();
        let second = allocate(&sc.tree, &sc.params, &sc.round(), &mut again).unwrap();
        prop_assert_eq!(first, second);
        prop_assert_eq!(state, again);
    }

    #[test]
    fn shed_decisions_do_not_depend_on_the_order_of_the_sessions((seed, zones, sessions) in (any::<u64>(), 1usize..=50, 0usize..=300)) {
        let sc = scenario(seed, zones, sessions);
        let a = allocate(&sc.tree, &sc.params, &sc.round(), &mut AllocatorState::default()).unwrap();
        let reversed = Scenario { sessions: sc.sessions.iter().rev().cloned().collect(), ..sc };
        let b = allocate(&reversed.tree, &reversed.params, &reversed.round(), &mut AllocatorState::default()).unwrap();
        let shed = |a: &Allocation| a.sessions.iter().map(|s| matches!(s.decision, Decision::Suspended { .. })).collect::<Vec<_>>();
        let mut b_shed = shed(&b);
        b_shed.reverse();
        prop_assert_eq!(shed(&a), b_shed);
    }

    #[test]
    fn rounds_in_sequence_keep_every_promise((seed, zones, sessions) in (any::<u64>(), 1usize..=40, 0usize..=400)) {
        let mut sc = scenario(seed, zones, sessions);
        let mut rng = Rng::new(seed ^ 0x5EED);
        let mut state = AllocatorState::default();
        let mut next_id = sessions;
        for _ in 0..6 {
            let a = allocate(&sc.tree, &sc.params, &sc.round(), &mut state).unwrap();
            check_round(&sc, &a)?;
            // The stations apply the plan; time passes; vehicles come and go; loads move.
            for (s, out) in sc.sessions.iter_mut().zip(&a.sessions) {
                if s.fixed.is_none() {
                    s.limit_in_force = Some(out.limit_after);
                }
                s.energy_wh += out.limit_after.0 * 230.0 * 3.0 / 60.0;
                if rng.chance(0.3) {
                    let max = out.limit_after.0;
                    s.draw = Some(PerPhase::splat(amps(&mut rng, 0.0, max + 0.1)));
                }
            }
            sc.sessions.retain(|_| !rng.chance(0.1));
            for _ in 0..rng.below(1 + sessions / 10) {
                sc.sessions.push(random_session(&mut rng, next_id, zones, sc.now));
                next_id += 1;
            }
            sc.now += TimeDelta::seconds(1 + rng.below(600) as i64);
            for r in sc.readings.iter_mut() {
                if let Some((_, Some(m))) = &mut r.consumption {
                    m.read_at = sc.now;
                }
            }
            sc.ev_cap_fraction = if rng.chance(0.8) { 1.0 } else { rng.unit() };
        }
    }
}

/// Cases the property once failed on: one-phase vehicles at their minimum made more
/// unbalance than the cap, and lowering the phase's capacity only took from the
/// 3-phase vehicles, pass after pass.
#[test]
fn unbalance_cases_that_once_failed() {
    for (seed, zones, sessions, cap) in [
        (2987991201044369558, 17, 7, 15.00412131445953),
        (13406778714026341864, 18, 57, 2.8604721858693507),
    ] {
        check_unbalance(seed, zones, sessions, cap).unwrap();
    }
}
