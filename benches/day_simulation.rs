//! A day at a depot, minute by minute, through the allocation engine: vehicles arrive
//! and leave, charge with a tapering curve, the building's load and the solar panels
//! move, a peak tariff caps the EV budget, the main meter drops out for 20 minutes and
//! a station goes offline for half an hour. Prints what a site owner asks: energy
//! delivered, energy still missing when vehicles left, peak demand, limit violations
//! (must be 0: exits non-zero otherwise), and how close delivery came to an upper bound.
//!
//! Run: `cargo bench --bench day_simulation`. Seeded, so every run prints the same.

use std::process::ExitCode;

use ampwarden_actors::allocation::{
    allocate, AllocatorState, BudgetParams, BudgetSource, ConsumptionKind, Decision, MeterReading,
    Params, Round, Session, SessionKey, SessionPhases, ZoneIdx, ZoneReading, ZoneSpec, ZoneTree,
};
use ampwarden_actors::config::{SheddingStrategy, SiteMode};
use ampwarden_actors::units::{Amps, ChargePointId, PerPhase, Phase, ZoneId};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

const VOLTAGE: f64 = 230.0;
const MINUTES: u32 = 24 * 60;
const MAIN_LIMIT: f64 = 250.0;
const MAIN_STATIC: f64 = 120.0;
/// Peak tariff: the EV budget is capped at this fraction.
const PEAK: (u32, u32, f64) = (17 * 60, 21 * 60, 0.4);
/// The main meter gives no reading in this window (minutes of the day).
const METER_OUTAGE: (u32, u32) = (14 * 60, 14 * 60 + 20);
/// This station is unreachable in this window: its last limit is assumed drawn.
const STATION_OUTAGE: (&str, u32, u32) = ("G05", 15 * 60, 15 * 60 + 30);

/// Seeded, the same on every machine.
type Rng = ampwarden_actors::random::SimRng;

/// A whole minute of the day in `[from, to)`.
fn minute(rng: &mut Rng, from: u32, to: u32) -> u32 {
    from + (rng.next_u64() % u64::from(to - from)) as u32
}

struct Station {
    id: &'static str,
    zone: &'static str,
    max_a: f64,
    phases: SessionPhases,
    vip: bool,
}

/// A vehicle: battery, state of charge, its own charger's limit, and its stay.
#[derive(Clone)]
struct Vehicle {
    battery_wh: f64,
    soc: f64,
    onboard_a: f64,
    arrival: u32,
    departure: u32,
    /// Station index while plugged in.
    station: Option<usize>,
    needed_wh: f64,
    delivered_wh: f64,
}

impl Vehicle {
    /// What the vehicle takes at its state of charge: its charger's limit up to 80 %,
    /// then tapering linearly to a tenth of it at 100 %; nothing when full.
    fn can_take(&self) -> f64 {
        if self.soc >= 1.0 {
            0.0
        } else if self.soc < 0.8 {
            self.onboard_a
        } else {
            self.onboard_a * (0.1 + 0.9 * (1.0 - self.soc) / 0.2)
        }
    }
}

fn stations() -> Vec<Station> {
    const GARAGE: [&str; 16] = [
        "G00", "G01", "G02", "G03", "G04", "G05", "G06", "G07", "G08", "G09", "G10", "G11", "G12",
        "G13", "G14", "G15",
    ];
    let mut out = Vec::new();
    for (i, id) in GARAGE.into_iter().enumerate() {
        // Two VIP bays (the managers' cars).
        out.push(Station {
            id,
            zone: "garage",
            max_a: 32.0,
            phases: SessionPhases::Three,
            vip: i < 2,
        });
    }
    for (i, id) in ["V0", "V1", "V2", "V3", "V4", "V5"].into_iter().enumerate() {
        let phases = match i {
            4 => SessionPhases::One(Phase::L1),
            5 => SessionPhases::One(Phase::L2),
            _ => SessionPhases::Three,
        };
        out.push(Station {
            id,
            zone: "visitors",
            max_a: 32.0,
            phases,
            vip: false,
        });
    }
    out
}

/// Who comes when, for how long, with how much to charge.
fn vehicles(rng: &mut Rng) -> Vec<(Vehicle, &'static str)> {
    let mut out = Vec::new();
    let mut add = |rng: &mut Rng,
                   zone,
                   arrival: u32,
                   stay: (u32, u32),
                   kwh: (f64, f64),
                   soc: (f64, f64),
                   onboard: f64| {
        let battery_wh = rng.uniform(kwh.0, kwh.1).round() * 1000.0;
        let soc = rng.uniform(soc.0, soc.1);
        let departure = (arrival + minute(rng, stay.0, stay.1)).min(MINUTES + 12 * 60);
        let v = Vehicle {
            battery_wh,
            soc,
            onboard_a: onboard,
            arrival,
            departure,
            station: None,
            needed_wh: (1.0 - soc) * battery_wh,
            delivered_wh: 0.0,
        };
        out.push((v, zone));
    };
    // Night vans, plugged in since yesterday evening, leave between 6 and 7.
    for _ in 0..8 {
        let stay = minute(rng, 6 * 60, 7 * 60);
        add(
            rng,
            "garage",
            0,
            (stay, stay + 1),
            (70.0, 80.0),
            (0.3, 0.6),
            16.0,
        );
    }
    // Commuters, 7:00 to 9:30, for 7 to 10 hours; some cars take 32 A.
    for i in 0..14 {
        let onboard = if i % 3 == 0 { 32.0 } else { 16.0 };
        let arrival = minute(rng, 7 * 60, 9 * 60 + 30);
        add(
            rng,
            "garage",
            arrival,
            (7 * 60, 10 * 60),
            (40.0, 100.0),
            (0.2, 0.6),
            onboard,
        );
    }
    // Visitors, 10:00 to 17:00, for 45 minutes to 2.5 hours.
    for _ in 0..12 {
        let arrival = minute(rng, 10 * 60, 17 * 60);
        add(
            rng,
            "visitors",
            arrival,
            (45, 150),
            (40.0, 80.0),
            (0.3, 0.7),
            32.0,
        );
    }
    // Evening vans, 18:30 to 20:00, staying the night.
    for _ in 0..12 {
        let arrival = minute(rng, 18 * 60 + 30, 20 * 60);
        add(
            rng,
            "garage",
            arrival,
            (10 * 60, 11 * 60),
            (70.0, 80.0),
            (0.15, 0.4),
            16.0,
        );
    }
    out.sort_by_key(|(v, _)| v.arrival);
    out
}

/// The building's own load per phase (A): 40 A at night, about 100 A in working hours.
fn building_load(minute: u32, rng: &mut Rng) -> [f64; 3] {
    let h = f64::from(minute) / 60.0;
    let base = if h < 6.0 {
        40.0
    } else if h < 8.0 {
        40.0 + 30.0 * (h - 6.0)
    } else if h < 18.0 {
        100.0 + 15.0 * (-((h - 12.5) / 1.5).powi(2)).exp()
    } else if h < 22.0 {
        100.0 - 12.5 * (h - 18.0)
    } else {
        45.0
    };
    [1.0, 0.9, 0.8].map(|share| base * share + rng.uniform(-4.0, 4.0))
}

/// Solar production per phase (A): a bell from 6:30 to 19:30, peaking near 60 A, with clouds.
fn solar(minute: u32, clouds: f64) -> f64 {
    let h = f64::from(minute) / 60.0;
    if !(6.5..19.5).contains(&h) {
        return 0.0;
    }
    let x = (h - 6.5) / 13.0 * std::f64::consts::PI;
    60.0 * x.sin().powi(2) * clouds
}

struct Report {
    delivered_wh: f64,
    missing_wh: f64,
    left_short: u32,
    departed: u32,
    still_plugged: u32,
    turned_away: u32,
    peak_a: f64,
    peak_kw: f64,
    violations: u32,
    bound_wh: f64,
    messages: u64,
    suspensions: u32,
    fallback_minutes: u32,
    fixed_minutes: u32,
}

fn main() -> ExitCode {
    let mut rng = Rng::new(0xDA7_2026);
    let tree = ZoneTree::new(&[
        ZoneSpec {
            id: ZoneId::new("main"),
            parent: None,
            limit_a: Amps(MAIN_LIMIT),
            static_ev_limit_a: Some(Amps(MAIN_STATIC)),
        },
        ZoneSpec {
            id: ZoneId::new("garage"),
            parent: Some(ZoneId::new("main")),
            limit_a: Amps(90.0),
            static_ev_limit_a: None,
        },
        ZoneSpec {
            id: ZoneId::new("visitors"),
            parent: Some(ZoneId::new("main")),
            limit_a: Amps(63.0),
            static_ev_limit_a: None,
        },
    ])
    .expect("the depot's tree is valid");
    let main = tree.index_of("main").expect("main exists");
    let params = Params {
        budget: BudgetParams {
            mode: SiteMode::Dynamic,
            safety_margin: Amps(2.0),
            meter_stale_after: TimeDelta::seconds(15),
        },
        min_current: Amps(6.0),
        strategy: SheddingStrategy::Energy,
        rotation: TimeDelta::minutes(15),
        increase_hold: TimeDelta::seconds(10),
        min_active: TimeDelta::seconds(300),
    };
    let stations = stations();
    let mut vehicles = vehicles(&mut rng);
    let midnight: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();

    // Per station: the vehicle plugged in, and the limit in force on it.
    let mut plugged: Vec<Option<usize>> = vec![None; stations.len()];
    let mut limit_in_force: Vec<Option<f64>> = vec![None; stations.len()];
    let mut state = AllocatorState::default();
    let mut r = Report {
        delivered_wh: 0.0,
        missing_wh: 0.0,
        left_short: 0,
        departed: 0,
        still_plugged: 0,
        turned_away: 0,
        peak_a: 0.0,
        peak_kw: 0.0,
        violations: 0,
        bound_wh: 0.0,
        messages: 0,
        suspensions: 0,
        fallback_minutes: 0,
        fixed_minutes: 0,
    };
    let mut clouds = 1.0;
    let mut was_suspended = vec![false; stations.len()];

    for minute in 0..MINUTES {
        // Twenty seconds into each minute: meters are 1 s old, except during the outage.
        let now = midnight + TimeDelta::minutes(i64::from(minute)) + TimeDelta::seconds(20);
        // Departures, then arrivals.
        for (s, slot) in plugged.iter_mut().enumerate() {
            if let Some(v) = *slot {
                if vehicles[v].0.departure <= minute {
                    let ev = &vehicles[v].0;
                    r.departed += 1;
                    let missing = (ev.needed_wh - ev.delivered_wh).max(0.0);
                    if missing > 100.0 {
                        r.left_short += 1;
                    }
                    r.missing_wh += missing;
                    *slot = None;
                    limit_in_force[s] = None;
                }
            }
        }
        for (v, (ev, zone)) in vehicles.iter_mut().enumerate() {
            if ev.arrival != minute || ev.station.is_some() {
                continue;
            }
            let free =
                (0..stations.len()).find(|&s| plugged[s].is_none() && stations[s].zone == *zone);
            match free {
                Some(s) => {
                    plugged[s] = Some(v);
                    ev.station = Some(s);
                }
                None => r.turned_away += 1,
            }
        }

        // What the vehicles draw under the limits in force (none yet: the safe default, 0 A).
        let draw_of = |s: usize, vehicles: &[(Vehicle, &str)], limit: Option<f64>| -> f64 {
            plugged[s].map_or(0.0, |v| {
                vehicles[v]
                    .0
                    .can_take()
                    .min(limit.unwrap_or(0.0))
                    .min(stations[s].max_a)
            })
        };
        let mut ev_on_phase = [0.0; 3];
        let sessions: Vec<Session> = (0..stations.len())
            .filter_map(|s| {
                let v = plugged[s]?;
                let st = &stations[s];
                let draw = draw_of(s, &vehicles, limit_in_force[s]);
                for p in Phase::ALL.into_iter().filter(|&p| st.phases.loads(p)) {
                    ev_on_phase[p.index()] += draw;
                }
                let ev = &vehicles[v].0;
                let offline = st.id == STATION_OUTAGE.0
                    && (STATION_OUTAGE.1..STATION_OUTAGE.2).contains(&minute);
                Some(Session {
                    key: SessionKey::new(ChargePointId::new(st.id), 1),
                    zone: tree.index_of(st.zone).expect("stations are in known zones"),
                    phases: st.phases,
                    max_current: Amps(st.max_a),
                    vip: st.vip,
                    energy_wh: ev.delivered_wh,
                    connected_since: midnight + TimeDelta::minutes(i64::from(ev.arrival)),
                    draw: (!offline).then(|| {
                        PerPhase(
                            Phase::ALL.map(|p| Amps(if st.phases.loads(p) { draw } else { 0.0 })),
                        )
                    }),
                    limit_in_force: limit_in_force[s].map(Amps),
                    fixed: offline.then(|| Amps(limit_in_force[s].unwrap_or(0.0))),
                    changed_at: None,
                    draw_at: None,
                })
            })
            .collect();

        if minute % 10 == 0 {
            clouds = rng.uniform(0.6, 1.0);
        }
        let building = building_load(minute, &mut rng);
        let sun = solar(minute, clouds);
        let meter_out = (METER_OUTAGE.0..METER_OUTAGE.1).contains(&minute);
        let fresh = |currents: [f64; 3]| MeterReading {
            currents: PerPhase(currents.map(Amps)),
            read_at: now - TimeDelta::seconds(1),
        };
        let mut readings = vec![ZoneReading::default(); tree.len()];
        readings[main.get()] = ZoneReading {
            consumption: Some((
                ConsumptionKind::Total,
                (!meter_out).then(|| fresh([0, 1, 2].map(|p| building[p] + ev_on_phase[p]))),
            )),
            production: Some(fresh([sun; 3])),
            imposed: None,
        };
        let cap = if (PEAK.0..PEAK.1).contains(&minute) {
            PEAK.2
        } else {
            1.0
        };
        let round = Round {
            now,
            ev_cap_fraction: cap,
            readings: &readings,
            sessions: &sessions,
        };
        let a = allocate(&tree, &params, &round, &mut state)
            .expect("the simulation's inputs are valid");
        r.messages += (a.plan.decreases.len() + a.plan.increases.len()) as u64;
        r.fallback_minutes +=
            u32::from(a.zones[main.get()].budget.source == BudgetSource::StaleFallback);
        r.fixed_minutes += u32::from(a.sessions.iter().any(|s| s.decision == Decision::Fixed));

        // The stations apply the plan (an offline one keeps its limit).
        let station_of = |key: &SessionKey| {
            stations
                .iter()
                .position(|s| s.id == key.charge_point.as_str())
                .expect("known station")
        };
        for (session, out) in sessions.iter().zip(&a.sessions) {
            let s = station_of(&session.key);
            if out.decision != Decision::Fixed {
                limit_in_force[s] = Some(out.limit_after.0);
            }
            let suspended = matches!(out.decision, Decision::Suspended { .. });
            if suspended && !was_suspended[s] {
                r.suspensions += 1;
            }
            was_suspended[s] = suspended;
        }

        // Checks: limits in force within every budget, and the breakers within their limits.
        let mut limits = vec![[0.0f64; 3]; tree.len()];
        let mut drawn = vec![[0.0f64; 3]; tree.len()];
        for s in (0..stations.len()).filter(|&s| plugged[s].is_some()) {
            let st = &stations[s];
            let zone = tree.index_of(st.zone).expect("known zone");
            let draw = draw_of(s, &vehicles, limit_in_force[s]);
            for &z in tree.path(zone) {
                for p in Phase::ALL.into_iter().filter(|&p| st.phases.loads(p)) {
                    limits[usize::from(z)][p.index()] += limit_in_force[s].unwrap_or(0.0);
                    drawn[usize::from(z)][p.index()] += draw;
                }
            }
        }
        for (z, zone) in tree.zones().iter().enumerate() {
            for p in 0..3 {
                let budget = a.zones[z].budget.budget.0[p].0;
                let mut breaker = drawn[z][p];
                if ZoneIdx(z as u16) == main {
                    breaker += building[p] - sun;
                    r.peak_a = r.peak_a.max(breaker);
                }
                if limits[z][p] > budget + 1e-6 || breaker > zone.limit.0 + 1e-6 {
                    r.violations += 1;
                    println!(
                        "VIOLATION {:02}:{:02} {} L{}: limits {:.1} A (budget {:.1} A), current {:.1} A (limit {:.1} A)",
                        minute / 60, minute % 60, zone.id, p + 1, limits[z][p], budget, breaker, zone.limit.0
                    );
                }
            }
        }
        let main_kw = (0..3)
            .map(|p| drawn[main.get()][p] + building[p] - sun)
            .sum::<f64>()
            * VOLTAGE
            / 1000.0;
        r.peak_kw = r.peak_kw.max(main_kw);

        // An upper bound for this minute: per phase, what each zone's budget lets through
        // of what the vehicles below it could take (ignoring minimum currents and the
        // coupling of the three phases of a vehicle).
        let mut could = vec![[0.0f64; 3]; tree.len()];
        for s in (0..stations.len()).filter(|&s| plugged[s].is_some()) {
            let st = &stations[s];
            let take = vehicles[plugged[s].expect("filtered")]
                .0
                .can_take()
                .min(st.max_a);
            let z = tree.index_of(st.zone).expect("known zone").get();
            for p in Phase::ALL.into_iter().filter(|&p| st.phases.loads(p)) {
                could[z][p.index()] += take;
            }
        }
        for z in (0..tree.len()).rev() {
            for (c, budget) in could[z].iter_mut().zip(a.zones[z].budget.budget.0) {
                *c = c.min(budget.0);
            }
            if let Some(parent) = tree.zones()[z].parent {
                let below = could[z];
                for (c, b) in could[parent.get()].iter_mut().zip(below) {
                    *c += b;
                }
            }
        }
        r.bound_wh += could[main.get()].iter().sum::<f64>() * VOLTAGE / 60.0;

        // A minute of charging.
        for s in 0..stations.len() {
            let Some(v) = plugged[s] else { continue };
            let draw = draw_of(s, &vehicles, limit_in_force[s]);
            let phases = if stations[s].phases == SessionPhases::Three {
                3.0
            } else {
                1.0
            };
            let wh = draw * VOLTAGE * phases / 60.0;
            let ev = &mut vehicles[v].0;
            ev.delivered_wh += wh;
            ev.soc = (ev.soc + wh / ev.battery_wh).min(1.0);
            r.delivered_wh += wh;
        }
    }
    r.still_plugged = plugged.iter().filter(|p| p.is_some()).count() as u32;

    println!("ampwarden day simulation: 24 h, 1 min steps, depot with 22 stations (3 zones), seed 0xDA72026");
    println!("  vehicles: {} arrived, {} turned away (no free station), {} left, {} still plugged in at midnight", vehicles.len() as u32 - r.turned_away, r.turned_away, r.departed, r.still_plugged);
    println!(
        "  energy delivered:             {:8.1} kWh",
        r.delivered_wh / 1000.0
    );
    println!(
        "  energy missing at departure:  {:8.1} kWh ({} of {} vehicles left below full)",
        r.missing_wh / 1000.0,
        r.left_short,
        r.departed
    );
    println!(
        "  peak demand at the main:      {:8.1} A per phase (limit {MAIN_LIMIT} A), {:.1} kW",
        r.peak_a, r.peak_kw
    );
    println!(
        "  delivered / upper bound:      {:8.3} ({:.1} of {:.1} kWh)",
        r.delivered_wh / r.bound_wh,
        r.delivered_wh / 1000.0,
        r.bound_wh / 1000.0
    );
    println!(
        "  suspensions: {}, setpoint messages: {} ({:.1} per minute)",
        r.suspensions,
        r.messages,
        r.messages as f64 / f64::from(MINUTES)
    );
    println!("  main meter on static fallback: {} min; a station offline with a vehicle (fixed reservation): {} min", r.fallback_minutes, r.fixed_minutes);
    println!("  limit violations:             {:8}", r.violations);
    if r.violations == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
