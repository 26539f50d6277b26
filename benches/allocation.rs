//! One allocation round at scale: 100, 1000 and 10 000 sessions in a 200-zone tree of
//! four levels, with budgets tight enough that sharing binds at every level and some
//! zones must suspend vehicles. The allocator's memory is warm (a steady round, as
//! every `interval_s`), the stations have applied the previous plan.
//!
//! Run: `cargo bench --bench allocation`

use std::hint::black_box;

use ampwarden_actors::allocation::{
    allocate, AllocatorState, BudgetParams, Params, Round, Session, SessionKey, SessionPhases,
    ZoneIdx, ZoneReading, ZoneSpec, ZoneTree,
};
use ampwarden_actors::config::{SheddingStrategy, SiteMode};
use ampwarden_actors::units::{Amps, ChargePointId, PerPhase, Phase, ZoneId};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion};

/// Seeded, so every run benchmarks the same site.
type Rng = ampwarden_actors::random::SimRng;

struct Site {
    tree: ZoneTree,
    params: Params,
    readings: Vec<ZoneReading>,
    sessions: Vec<Session>,
    now: DateTime<Utc>,
}

/// 1 root, 9 feeders, 40 panels, 150 sub-panels; vehicles on panels and sub-panels.
fn site(n: usize) -> Site {
    let mut rng = Rng::new(0xA11C);
    let now = Utc.with_ymd_and_hms(2026, 3, 2, 18, 0, 0).unwrap();
    let mut parents: Vec<Option<usize>> = vec![None];
    parents.extend((0..9).map(|_| Some(0)));
    parents.extend((0..40).map(|i| Some(1 + i % 9)));
    parents.extend((0..150).map(|i| Some(10 + i % 40)));
    let zones = parents.len();

    let mut sessions = Vec::with_capacity(n);
    let mut per_zone = vec![0usize; zones];
    for i in 0..n {
        let zone = 10 + rng.below(zones - 10);
        per_zone[zone] += 1;
        let phases = if rng.unit() < 0.8 {
            SessionPhases::Three
        } else {
            SessionPhases::One(Phase::ALL[rng.below(3)])
        };
        let max = if rng.unit() < 0.7 { 32.0 } else { 16.0 };
        sessions.push(Session {
            key: SessionKey::new(ChargePointId::new(format!("CP{i:05}")), 1),
            zone: ZoneIdx(0), // resolved below, once the tree has numbered the zones
            phases,
            max_current: Amps(max),
            vip: rng.unit() < 0.05,
            energy_wh: (rng.unit() * 60_000.0).floor(),
            connected_since: now - TimeDelta::seconds(rng.below(36_000) as i64),
            draw: None,
            limit_in_force: None,
            fixed: (rng.unit() < 0.01).then_some(Amps(16.0)),
            changed_at: None,
            draw_at: None,
            lowest_limit_since_draw: None,
        });
        sessions[i].zone = ZoneIdx(zone as u16);
    }

    // Leaves allow 4 to 20 A per vehicle (some must suspend); each level above 70 %
    // of what its children allow, so sharing binds at every level.
    let mut limit: Vec<f64> = per_zone
        .iter()
        .map(|&k| (k as f64 * (4.0 + rng.unit() * 16.0)).max(16.0))
        .collect();
    let mut children_sum = vec![0.0; zones];
    for z in (1..zones).rev() {
        limit[z] += 0.7 * children_sum[z];
        if let Some(p) = parents[z] {
            children_sum[p] += limit[z];
        }
    }
    limit[0] = 0.7 * children_sum[0];
    let specs: Vec<ZoneSpec> = (0..zones)
        .map(|z| ZoneSpec {
            id: ZoneId::new(format!("z{z}")),
            parent: parents[z].map(|p| ZoneId::new(format!("z{p}"))),
            limit_a: Amps(limit[z].round()),
            static_ev_limit_a: None,
        })
        .collect();
    let tree = ZoneTree::new(&specs).expect("the bench tree is valid");
    for s in &mut sessions {
        s.zone = tree
            .index_of(&format!("z{}", s.zone.0))
            .expect("every zone exists");
    }
    let params = Params {
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
    };
    let readings = vec![ZoneReading::default(); tree.len()];
    Site {
        tree,
        params,
        readings,
        sessions,
        now,
    }
}

/// Runs rounds a minute apart until the plan is empty (the stations have what they
/// should), with vehicles drawing what they are given, except one in ten that takes
/// at most 8 A (a nearly full battery: demand adaptation lowers its maximum).
fn warm(site: &mut Site, state: &mut AllocatorState) {
    let mut rng = Rng::new(7);
    let nearly_full: Vec<bool> = site.sessions.iter().map(|_| rng.unit() < 0.1).collect();
    for _ in 0..30 {
        let round = Round {
            now: site.now,
            ev_cap_fraction: 1.0,
            readings: &site.readings,
            sessions: &site.sessions,
        };
        let a = allocate(&site.tree, &site.params, &round, state).expect("bench inputs are valid");
        if a.plan.decreases.is_empty() && a.plan.increases.is_empty() {
            return;
        }
        for ((s, out), &full) in site.sessions.iter_mut().zip(&a.sessions).zip(&nearly_full) {
            s.limit_in_force = Some(out.limit_after);
            let drawn = if full {
                out.limit_after.min(Amps(8.0))
            } else {
                out.limit_after
            };
            s.draw = Some(PerPhase::splat(drawn));
        }
        site.now += TimeDelta::seconds(61);
    }
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("allocation_round");
    for n in [100, 1_000, 10_000] {
        let mut site = site(n);
        let mut state = AllocatorState::default();
        warm(&mut site, &mut state);
        let round = Round {
            now: site.now,
            ev_cap_fraction: 1.0,
            readings: &site.readings,
            sessions: &site.sessions,
        };
        let first =
            allocate(&site.tree, &site.params, &round, &mut state).expect("bench inputs are valid");
        let suspended = first.zones[0].suspended;
        let shared = first
            .sessions
            .iter()
            .filter(|s| s.target < s.max && s.target.0 > 0.0)
            .count();
        println!(
            "{n} sessions: {suspended} suspended, {shared} sharing a bottleneck, {} changes",
            first.plan.decreases.len() + first.plan.increases.len()
        );
        group.bench_with_input(BenchmarkId::from_parameter(n), &n, |b, _| {
            b.iter(|| {
                allocate(&site.tree, &site.params, black_box(&round), &mut state)
                    .expect("bench inputs are valid")
            })
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
