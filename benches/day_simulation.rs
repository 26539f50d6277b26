//! A day at a depot, second by second, through the allocation engine and a realistic
//! plant: vehicles arrive and leave, charge with a tapering curve (some on one phase of
//! a 3-phase station), follow a new limit 2 s after it is acknowledged, and their
//! stations report MeterValues on their own clock (15, 30 or 60 s, never because a
//! limit changed; most answer a TriggerMessage). The building's load moves per phase
//! (with a compressor on L1 that switches on and off), the solar panels move, a peak
//! tariff caps the EV budget, the main meter (polled every second, showing what really
//! flows) drops out for 20 minutes and a station goes offline for half an hour.
//!
//! Prints what a site owner asks: energy delivered against what the site could have
//! delivered, energy still missing when vehicles left, peak demand, seconds a breaker
//! carried more than its limit (per zone and phase), limits sent per vehicle-hour. Exits
//! non-zero if the limits in force ever exceed a budget, or a breaker is over its limit
//! other than in the seconds after a step up of the other loads that the meter's poll
//! needs to see.
//!
//! Run: `cargo bench --bench day_simulation` (add `-- --no-trigger` to model stations
//! that ignore TriggerMessage, `--no-phase-detection` to budget every vehicle on all
//! its station's phases, `--main-limit A` for a smaller main breaker than 250 A).
//! Seeded, so every run prints the same.

use std::process::ExitCode;

use ampwarden_actors::allocation::{
    allocate, AllocatorState, BudgetParams, BudgetSource, ConsumptionKind, Decision, MeterReading,
    Params, Round, Session, SessionKey, SessionPhases, ZoneIdx, ZoneReading, ZoneSpec, ZoneTree,
};
use ampwarden_actors::config::{Phases, SheddingStrategy, SiteMode};
use ampwarden_actors::station::phases::PhaseDetector;
use ampwarden_actors::units::{Amps, ChargePointId, PerPhase, Phase, ZoneId};
use chrono::{DateTime, TimeDelta, TimeZone, Utc};

const VOLTAGE: f64 = 230.0;
const MINUTES: u32 = 24 * 60;
const DAY_S: u32 = MINUTES * 60;
/// A vehicle takes this long to follow a new limit.
const FOLLOW_S: u32 = 2;
/// The controller asks for a MeterValues this long after an acknowledged change.
const TRIGGER_AFTER_MS: i64 = 5_500;
/// The seconds after a step up of the other loads in which a breaker may be over its
/// limit: the meter's poll (1 s) and a round must see it first, and the vehicles take
/// [`FOLLOW_S`] to follow the cut.
const STEP_GRACE_S: u32 = 1 + FOLLOW_S + 1;
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
    /// Its own MeterValues clock (s), whatever the controller configures.
    report_every_s: u32,
    /// Whether it answers a TriggerMessage MeterValues.
    answers_trigger: bool,
}

/// A vehicle: battery, state of charge, its own charger's limit, and its stay.
#[derive(Clone)]
struct Vehicle {
    battery_wh: f64,
    soc: f64,
    onboard_a: f64,
    /// The station phase (0..3) a 1-phase vehicle charges on; `None`: all of them.
    one_phase: Option<usize>,
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
            report_every_s: [60, 30, 15, 60][i % 4],
            answers_trigger: i != 7,
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
            report_every_s: [60, 15, 30][i % 3],
            answers_trigger: i != 2,
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
                   onboard: f64,
                   one_phase: Option<usize>| {
        let battery_wh = rng.uniform(kwh.0, kwh.1).round() * 1000.0;
        let soc = rng.uniform(soc.0, soc.1);
        let departure = (arrival + minute(rng, stay.0, stay.1)).min(MINUTES + 12 * 60);
        let v = Vehicle {
            battery_wh,
            soc,
            onboard_a: onboard,
            one_phase,
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
            None,
        );
    }
    // Commuters, 7:00 to 9:30, for 7 to 10 hours; some cars take 32 A, some charge on
    // one phase only.
    for i in 0..14 {
        let onboard = if i % 3 == 0 { 32.0 } else { 16.0 };
        let one_phase = (i % 4 == 1).then_some(i % 3);
        let arrival = minute(rng, 7 * 60, 9 * 60 + 30);
        add(
            rng,
            "garage",
            arrival,
            (7 * 60, 10 * 60),
            (40.0, 100.0),
            (0.2, 0.6),
            onboard,
            one_phase,
        );
    }
    // Visitors, 10:00 to 17:00, for 45 minutes to 2.5 hours; a third on one phase.
    for i in 0..12 {
        let arrival = minute(rng, 10 * 60, 17 * 60);
        add(
            rng,
            "visitors",
            arrival,
            (45, 150),
            (40.0, 80.0),
            (0.3, 0.7),
            32.0,
            (i % 3 == 0).then_some(0),
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
            None,
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

/// A compressor on L1 (A): 25 A for 10 minutes of every 35 in working hours.
fn compressor(second: u32) -> f64 {
    let minute = second / 60;
    if (7 * 60..19 * 60).contains(&minute) && minute % 35 < 10 {
        25.0
    } else {
        0.0
    }
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

/// What one station and its vehicle are doing, as the plant (not the controller) knows it.
#[derive(Clone, Default)]
struct Bay {
    /// The vehicle plugged in (index into the vehicles).
    vehicle: Option<usize>,
    /// The limit the station enforces, and the one before (followed until
    /// [`FOLLOW_S`] after `changed_at`).
    limit: Option<f64>,
    previous: Option<f64>,
    changed_at: Option<u32>,
    /// The last MeterValues: per site phase, and when.
    reported: Option<(PerPhase<Amps>, u32)>,
    /// The lowest limit acknowledged since that report.
    lowest_since_report: Option<f64>,
    /// When the controller's TriggerMessage arrives.
    trigger_at: Option<u32>,
    detector: PhaseDetector,
    was_suspended: bool,
}

impl Bay {
    /// The limit the vehicle follows at `second`.
    fn followed(&self, second: u32) -> f64 {
        match self.changed_at {
            Some(at) if second < at + FOLLOW_S => self.previous,
            _ => self.limit,
        }
        .unwrap_or(0.0)
    }
}

/// What flows into a vehicle per site phase at `second`.
fn flow(st: &Station, bay: &Bay, vehicles: &[(Vehicle, &str)], second: u32) -> [f64; 3] {
    let Some(v) = bay.vehicle else {
        return [0.0; 3];
    };
    let ev = &vehicles[v].0;
    let a = ev.can_take().min(bay.followed(second)).min(st.max_a);
    match (st.phases, ev.one_phase) {
        (SessionPhases::One(p), _) => Phase::ALL.map(|q| if q == p { a } else { 0.0 }),
        (SessionPhases::Three, Some(i)) => [0, 1, 2].map(|q| if q == i { a } else { 0.0 }),
        (SessionPhases::Three, None) => [a; 3],
    }
}

#[derive(Default)]
struct Report {
    delivered_wh: f64,
    missing_wh: f64,
    left_short: u32,
    departed: u32,
    still_plugged: u32,
    turned_away: u32,
    peak_a: f64,
    peak_kw: f64,
    /// Rounds whose limits in force exceed a budget (the allocation's invariant).
    violations: u32,
    /// Per zone and phase: seconds over the breaker, of them within the grace after a
    /// step up of the other loads, and the worst excess (A).
    overload_s: Vec<[u32; 3]>,
    overload_in_grace_s: Vec<[u32; 3]>,
    worst_excess_a: f64,
    bound_wh: f64,
    messages: u64,
    vehicle_seconds: u64,
    suspensions: u32,
    reports: u64,
    fallback_s: u32,
    fixed_s: u32,
}

fn flag(name: &str) -> bool {
    std::env::args().any(|a| a == name)
}

/// `--main-limit A`: the main breaker (250 A unless given).
fn main_limit() -> f64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == "--main-limit")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(250.0)
}

fn main() -> ExitCode {
    let trigger = !flag("--no-trigger");
    let detect_phases = !flag("--no-phase-detection");
    let main_limit = main_limit();
    let mut rng = Rng::new(0xDA7_2026);
    let tree = ZoneTree::new(&[
        ZoneSpec {
            id: ZoneId::new("main"),
            parent: None,
            limit_a: Amps(main_limit),
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
    let margin = 2.0;
    let params = Params {
        budget: BudgetParams {
            mode: SiteMode::Dynamic,
            safety_margin: Amps(margin),
            meter_stale_after: TimeDelta::seconds(15),
        },
        min_current: Amps(6.0),
        strategy: SheddingStrategy::Energy,
        rotation: TimeDelta::minutes(15),
        increase_hold: TimeDelta::seconds(10),
        min_active: TimeDelta::seconds(300),
        max_unbalance: None,
    };
    let stations = stations();
    let mut vehicles = vehicles(&mut rng);
    let midnight: DateTime<Utc> = Utc.with_ymd_and_hms(2026, 3, 2, 0, 0, 0).unwrap();
    let at = |second: u32| midnight + TimeDelta::seconds(i64::from(second));
    let zone_of: Vec<ZoneIdx> = stations
        .iter()
        .map(|st| tree.index_of(st.zone).expect("stations are in known zones"))
        .collect();
    // Each station's report clock starts at its own offset.
    let offsets: Vec<u32> = stations
        .iter()
        .map(|st| (rng.next_u64() % u64::from(st.report_every_s)) as u32)
        .collect();

    let mut bays = vec![Bay::default(); stations.len()];
    let mut state = AllocatorState::default();
    let mut r = Report {
        overload_s: vec![[0; 3]; tree.len()],
        overload_in_grace_s: vec![[0; 3]; tree.len()],
        ..Report::default()
    };
    let mut clouds = 1.0;
    let mut building = [0.0; 3];
    let mut previous_other = [0.0; 3];
    let mut last_step_up = [None::<u32>; 3];

    for second in 0..DAY_S {
        let minute = second / 60;
        let now = at(second);
        if second % 60 == 0 {
            // Departures, then arrivals.
            for bay in &mut bays {
                if let Some(v) = bay.vehicle {
                    if vehicles[v].0.departure <= minute {
                        let ev = &vehicles[v].0;
                        r.departed += 1;
                        let missing = (ev.needed_wh - ev.delivered_wh).max(0.0);
                        if missing > 100.0 {
                            r.left_short += 1;
                        }
                        r.missing_wh += missing;
                        *bay = Bay::default();
                    }
                }
            }
            for (v, (ev, zone)) in vehicles.iter_mut().enumerate() {
                if ev.arrival != minute || ev.station.is_some() {
                    continue;
                }
                let free = (0..stations.len())
                    .find(|&s| bays[s].vehicle.is_none() && stations[s].zone == *zone);
                match free {
                    Some(s) => {
                        bays[s].vehicle = Some(v);
                        ev.station = Some(s);
                    }
                    None => r.turned_away += 1,
                }
            }
            if minute % 10 == 0 {
                clouds = rng.uniform(0.6, 1.0);
            }
            building = building_load(minute, &mut rng);
        }
        let sun = solar(minute, clouds);
        let mut other = building;
        other[0] += compressor(second);
        for p in 0..3 {
            if other[p] - sun > previous_other[p] + 1.0 {
                last_step_up[p] = Some(second);
            }
            previous_other[p] = other[p] - sun;
        }
        let offline = |s: usize| {
            stations[s].id == STATION_OUTAGE.0
                && (STATION_OUTAGE.1..STATION_OUTAGE.2).contains(&minute)
        };

        // The stations report on their own clock, or when asked.
        for (s, bay) in bays.iter_mut().enumerate() {
            if bay.vehicle.is_none() || offline(s) {
                continue;
            }
            let st = &stations[s];
            let on_clock = (second + offsets[s]) % st.report_every_s == 0;
            let asked = bay.trigger_at.is_some_and(|t| t <= second);
            if asked {
                bay.trigger_at = None;
            }
            if on_clock || asked {
                let current = flow(st, bay, &vehicles, second);
                bay.reported = Some((PerPhase(current.map(Amps)), second));
                bay.lowest_since_report = None;
                bay.detector.sample(
                    current.map(|a| Some(Amps(a))),
                    Amps(bay.limit.unwrap_or(0.0)),
                    params.min_current,
                );
                r.reports += 1;
            }
        }

        // What really flows, per zone and phase.
        let mut flows = vec![[0.0f64; 3]; tree.len()];
        for (s, bay) in bays.iter().enumerate() {
            let f = flow(&stations[s], bay, &vehicles, second);
            for &z in tree.path(zone_of[s]) {
                for p in 0..3 {
                    flows[usize::from(z)][p] += f[p];
                }
            }
        }
        for p in 0..3 {
            flows[main.get()][p] += other[p] - sun;
        }

        let sessions: Vec<Session> = (0..stations.len())
            .filter_map(|s| {
                let bay = &bays[s];
                let v = bay.vehicle?;
                let st = &stations[s];
                let phases = match st.phases {
                    SessionPhases::Three if detect_phases => {
                        let used = bay.detector.in_use();
                        let on: Vec<Phase> =
                            Phase::ALL.into_iter().filter(|p| used[p.index()]).collect();
                        SessionPhases::of_vehicle(Phases::Three, Phase::L1, Some(&on))
                    }
                    phases => phases,
                };
                let ev = &vehicles[v].0;
                Some(Session {
                    key: SessionKey::new(ChargePointId::new(st.id), 1),
                    zone: zone_of[s],
                    phases,
                    max_current: Amps(st.max_a),
                    vip: st.vip,
                    energy_wh: ev.delivered_wh,
                    connected_since: at(ev.arrival * 60),
                    draw: bay.reported.filter(|_| !offline(s)).map(|(d, _)| d),
                    limit_in_force: bay.limit.map(Amps),
                    fixed: offline(s).then(|| Amps(bay.limit.unwrap_or(0.0))),
                    changed_at: bay.changed_at.map(at),
                    draw_at: bay.reported.map(|(_, t)| at(t)),
                    lowest_limit_since_draw: bay.lowest_since_report.map(Amps),
                })
            })
            .collect();

        let meter_out = (METER_OUTAGE.0..METER_OUTAGE.1).contains(&minute);
        let read = |currents: [f64; 3]| MeterReading {
            currents: PerPhase(currents.map(Amps)),
            read_at: now,
        };
        let mut readings = vec![ZoneReading::default(); tree.len()];
        readings[main.get()] = ZoneReading {
            consumption: Some((
                ConsumptionKind::Total,
                (!meter_out).then(|| read(flows[main.get()].map(|a| a + sun))),
            )),
            production: Some(read([sun; 3])),
            imposed: None,
            bms_cap: None,
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
        r.fallback_s += u32::from(a.zones[main.get()].budget.source == BudgetSource::StaleFallback);
        r.fixed_s += u32::from(a.sessions.iter().any(|s| s.decision == Decision::Fixed));

        // The stations apply what is sent (an offline one gets nothing); each change is
        // acknowledged at once and followed by the vehicle FOLLOW_S later.
        let station_of = |key: &SessionKey| {
            stations
                .iter()
                .position(|s| s.id == key.charge_point.as_str())
                .expect("known station")
        };
        for (session, out) in sessions.iter().zip(&a.sessions) {
            let s = station_of(&session.key);
            let bay = &mut bays[s];
            if let (Some(limit), false) = (out.send, offline(s)) {
                r.messages += 1;
                if bay.limit != Some(limit.0) {
                    bay.previous = Some(bay.followed(second));
                    bay.limit = Some(limit.0);
                    bay.changed_at = Some(second);
                    bay.lowest_since_report =
                        Some(bay.lowest_since_report.map_or(limit.0, |l| l.min(limit.0)));
                    if trigger && stations[s].answers_trigger {
                        bay.trigger_at = Some(second + (TRIGGER_AFTER_MS as u32).div_ceil(1000));
                    }
                }
            }
            let suspended = matches!(out.decision, Decision::Suspended { .. });
            if suspended && !bay.was_suspended {
                r.suspensions += 1;
            }
            bay.was_suspended = suspended;
        }

        // The allocation's invariant: limits in force within every budget.
        let mut limits = vec![[0.0f64; 3]; tree.len()];
        for (session, out) in sessions.iter().zip(&a.sessions) {
            for &z in tree.path(session.zone) {
                for p in Phase::ALL.into_iter().filter(|&p| session.phases.loads(p)) {
                    limits[usize::from(z)][p.index()] += out.limit_after.0;
                }
            }
        }
        // The breakers, with what flows this second.
        for (z, zone) in tree.zones().iter().enumerate() {
            for p in 0..3 {
                let budget = a.zones[z].budget.budget.0[p].0;
                if limits[z][p] > budget + 1e-6 {
                    r.violations += 1;
                    println!(
                        "VIOLATION {:02}:{:02}:{:02} {} L{}: limits {:.1} A, budget {:.1} A",
                        second / 3600,
                        minute % 60,
                        second % 60,
                        zone.id,
                        p + 1,
                        limits[z][p],
                        budget
                    );
                }
                let excess = flows[z][p] - zone.limit.0;
                if excess > 1e-6 {
                    r.overload_s[z][p] += 1;
                    r.worst_excess_a = r.worst_excess_a.max(excess);
                    if last_step_up[p].is_some_and(|t| second < t + STEP_GRACE_S) {
                        r.overload_in_grace_s[z][p] += 1;
                    }
                }
            }
        }
        r.peak_a = r
            .peak_a
            .max(flows[main.get()].into_iter().fold(0.0, f64::max));
        r.peak_kw = r
            .peak_kw
            .max(flows[main.get()].iter().sum::<f64>() * VOLTAGE / 1000.0);

        // What the site could have delivered this second: per phase, what each zone's
        // true capacity (its limit; the main's limit − other loads + sun − margin, under
        // the tariff cap) lets through of what the vehicles below could take (ignoring
        // minimum currents and the coupling of a vehicle's phases).
        let mut could = vec![[0.0f64; 3]; tree.len()];
        for (s, bay) in bays.iter().enumerate() {
            if bay.vehicle.is_none() {
                continue;
            }
            let st = &stations[s];
            let mut full = bay.clone();
            full.limit = Some(st.max_a);
            full.changed_at = None;
            let take = flow(st, &full, &vehicles, second);
            for p in 0..3 {
                could[zone_of[s].get()][p] += take[p];
            }
        }
        for z in (0..tree.len()).rev() {
            let zone = &tree.zones()[z];
            for (p, c) in could[z].iter_mut().enumerate() {
                let capacity = if ZoneIdx(z as u16) == main {
                    ((zone.limit.0 - (other[p] - sun) - margin).clamp(0.0, zone.limit.0)) * cap
                } else {
                    zone.limit.0
                };
                *c = c.min(capacity);
            }
            if let Some(parent) = zone.parent {
                let below = could[z];
                for (c, b) in could[parent.get()].iter_mut().zip(below) {
                    *c += b;
                }
            }
        }
        r.bound_wh += could[main.get()].iter().sum::<f64>() * VOLTAGE / 3600.0;

        // A second of charging.
        for (s, bay) in bays.iter().enumerate() {
            let Some(v) = bay.vehicle else { continue };
            r.vehicle_seconds += 1;
            let wh = flow(&stations[s], bay, &vehicles, second)
                .iter()
                .sum::<f64>()
                * VOLTAGE
                / 3600.0;
            let ev = &mut vehicles[v].0;
            ev.delivered_wh += wh;
            ev.soc = (ev.soc + wh / ev.battery_wh).min(1.0);
            r.delivered_wh += wh;
        }
    }
    r.still_plugged = bays.iter().filter(|b| b.vehicle.is_some()).count() as u32;

    let vehicle_hours = r.vehicle_seconds as f64 / 3600.0;
    let over: u32 = r.overload_s.iter().flatten().sum();
    let in_grace: u32 = r.overload_in_grace_s.iter().flatten().sum();
    println!("ampwarden day simulation: 24 h, 1 s steps, realistic plant, depot with 22 stations (3 zones), main {main_limit} A, seed 0xDA72026");
    println!(
        "  control: TriggerMessage after a change {}, phase detection {}",
        if trigger { "on" } else { "off" },
        if detect_phases { "on" } else { "off" }
    );
    println!("  vehicles: {} arrived, {} turned away (no free station), {} left, {} still plugged in at midnight", vehicles.len() as u32 - r.turned_away, r.turned_away, r.departed, r.still_plugged);
    println!(
        "  energy delivered:             {:8.1} kWh",
        r.delivered_wh / 1000.0
    );
    println!(
        "  delivered / could deliver:    {:8.3} ({:.1} of {:.1} kWh)",
        r.delivered_wh / r.bound_wh,
        r.delivered_wh / 1000.0,
        r.bound_wh / 1000.0
    );
    println!(
        "  energy missing at departure:  {:8.1} kWh ({} of {} vehicles left below full)",
        r.missing_wh / 1000.0,
        r.left_short,
        r.departed
    );
    println!(
        "  peak at the main:             {:8.1} A on a phase (limit {main_limit} A), {:.1} kW",
        r.peak_a, r.peak_kw
    );
    println!("  breaker over its limit:       {over:8} s in all (zone x phase), {in_grace} s of them within {STEP_GRACE_S} s of a step up of the other loads; worst excess {:.1} A", r.worst_excess_a);
    for (z, zone) in tree.zones().iter().enumerate() {
        println!("    {:9} L1..L3: {:?} s", zone.id.as_str(), r.overload_s[z]);
    }
    println!(
        "  limits sent: {} ({:.2} per vehicle-hour over {:.0} vehicle-hours); {} suspensions; {} MeterValues",
        r.messages,
        r.messages as f64 / vehicle_hours,
        vehicle_hours,
        r.suspensions,
        r.reports
    );
    println!("  main meter on static fallback: {} s; a station offline with a vehicle (fixed reservation): {} s", r.fallback_s, r.fixed_s);
    println!("  limits in force over a budget: {:8}", r.violations);
    if r.violations == 0 && over == in_grace {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
