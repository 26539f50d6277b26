//! Latency of the whole control loop at scale: from a step of the other loads on the
//! meter (a real Modbus TCP server) to the last SetChargingProfile on the wire, with 1000
//! stations connected over real WebSockets, each in a transaction.
//!
//! The plant is a simple real one: every vehicle draws the limit it was last sent, the
//! meter shows other loads + what the vehicles draw, and a station reports its draw
//! (MeterValues) only when the controller asks with a TriggerMessage, never because a
//! limit changed. A round steps the other loads once every station has reported after
//! the previous change: a step up then crosses `limit − margin/2` and is cut by the
//! safety loop; a step down is taken up by the allocation loop.
//!
//! Run: `cargo bench --bench control_latency` (add `-- --stations N --rounds R`).
//! The controller, the meter and the 1000 station clients share this machine's cores.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ampwarden::simulate::client::{ConnectOptions, StationClient};
use ampwarden::App;
use ampwarden_actors::config::{Config, MeterProfile};
use ampwarden_actors::meter::profiles::RegisterMap;
use ampwarden_actors::meter::simulated::SimulatedMeter;
use ampwarden_actors::units::{Amps, PerPhase};
use serde_json::json;

const PANELS: usize = 10;
/// The meter and the step are chosen so that the building's total (other loads + 1000
/// vehicles) stays below the 10 000 A a reading may show before it counts as implausible.
const LIMIT_A: f64 = 9_000.0;
const MARGIN_A: f64 = 2.0;

/// (station, limit, received) of every TxProfile.
type Received = Arc<Mutex<Vec<(usize, f64, Instant)>>>;

/// What the vehicles draw (each the limit it was last sent, A per phase) and when each
/// station last reported it.
#[derive(Default)]
struct Plant {
    draw: Vec<f64>,
    reported: Vec<Option<Instant>>,
}

type SharedPlant = Arc<Mutex<Plant>>;

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn arg(name: &str, default: usize) -> usize {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn config(dir: &std::path::Path, meter: std::net::SocketAddr, stations: usize) -> Config {
    let mut text = format!(
        "[site]\nmode = \"dynamic\"\n[server]\nhttp_listen = \"127.0.0.1:0\"\nocpp_listen = \"127.0.0.1:0\"\n\
         [storage]\npath = {:?}\n[auth]\nmode = \"accept_all\"\n\
         [control]\ninterval_s = 60\nincrease_hold_s = 0\nsafety_margin_a = {MARGIN_A}\nmeter_stale_after_s = 30\n\
         [[zones]]\nid = \"main\"\nlimit_a = {LIMIT_A}\nmeter = \"grid\"\n\
         [[meters]]\nid = \"grid\"\naddress = \"{meter}\"\nprofile = \"iem3155\"\npoll_ms = 100\ntimeout_ms = 500\n",
        dir.join("data").display().to_string()
    );
    for p in 0..PANELS {
        text.push_str(&format!(
            "[[zones]]\nid = \"panel-{p}\"\nparent = \"main\"\nlimit_a = {}\n",
            LIMIT_A / PANELS as f64
        ));
    }
    for i in 0..stations {
        text.push_str(&format!(
            "[[stations]]\nid = \"LAT{i:05}\"\nzone = \"panel-{}\"\nmax_current_a = 32.0\n",
            i % PANELS
        ));
    }
    Config::from_toml_str(&text).expect("bench configuration is valid")
}

async fn connect(
    url: String,
    index: usize,
    received: Received,
    plant: SharedPlant,
) -> Arc<StationClient> {
    let mut client = StationClient::connect(&url, ConnectOptions::default())
        .await
        .expect("station connects");
    let mut calls = client.take_calls();
    let client = Arc::new(client);
    client
        .call(
            "BootNotification",
            json!({ "chargePointVendor": "bench", "chargePointModel": "L" }),
        )
        .await
        .expect("boot");
    let start = json!({
        "connectorId": 1, "idTag": "BENCH", "meterStart": 0, "timestamp": chrono::Utc::now().to_rfc3339()
    });
    let transaction = client
        .call("StartTransaction", start)
        .await
        .expect("start")
        .result()
        .expect("transaction started")["transactionId"]
        .clone();
    let station = client.clone();
    tokio::spawn(async move {
        while let Some(call) = calls.recv().await {
            let profile = &call.payload["csChargingProfiles"];
            if call.action == "SetChargingProfile"
                && profile["chargingProfilePurpose"] == "TxProfile"
            {
                let limit = profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
                    .as_f64()
                    .unwrap_or(-1.0);
                lock(&received).push((index, limit, call.received));
                lock(&plant).draw[index] = limit.max(0.0);
            } else if call.action == "TriggerMessage"
                && call.payload["requestedMessage"] == "MeterValues"
            {
                let draw = lock(&plant).draw[index];
                let sampled: Vec<_> = ["L1", "L2", "L3"]
                    .iter()
                    .map(|p| json!({ "value": format!("{draw:.1}"), "measurand": "Current.Import", "phase": p, "unit": "A" }))
                    .collect();
                let report = json!({
                    "connectorId": 1, "transactionId": transaction,
                    "meterValue": [{ "timestamp": chrono::Utc::now().to_rfc3339(), "sampledValue": sampled }]
                });
                let (station, plant) = (station.clone(), plant.clone());
                tokio::spawn(async move {
                    if station.call("MeterValues", report).await.is_ok() {
                        lock(&plant).reported[index] = Some(Instant::now());
                    }
                });
            }
        }
    });
    client
}

/// Waits until every station has received `limit` after `since`; the time of the last one.
async fn last_arrival(
    received: &Received,
    stations: usize,
    limit: f64,
    since: Instant,
) -> Option<Instant> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        {
            let r = lock(received);
            let mut latest: HashMap<usize, Instant> = HashMap::new();
            for &(i, l, at) in r.iter() {
                if at >= since && (l - limit).abs() < 0.05 {
                    latest.insert(i, at);
                }
            }
            if latest.len() == stations {
                return latest.values().max().copied();
            }
        }
        if Instant::now() > deadline {
            return None;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn expected_limit(other: f64, stations: usize) -> f64 {
    Amps(((LIMIT_A - other - MARGIN_A) / stations as f64).min(32.0))
        .floor_tenth()
        .0
}

/// Waits until every station has reported its draw after `since` (at most 30 s).
async fn all_reported(plant: &SharedPlant, since: Instant) -> bool {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if lock(plant)
            .reported
            .iter()
            .all(|r| r.is_some_and(|r| r >= since))
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::main]
async fn main() {
    let stations = arg("--stations", 1000);
    let rounds = arg("--rounds", 20);
    let dir = tempfile::tempdir().expect("temp dir");
    let map = RegisterMap::builtin(MeterProfile::Iem3155).expect("map");
    let meter = Arc::new(
        SimulatedMeter::start("127.0.0.1:0".parse().expect("addr"), map)
            .await
            .expect("meter"),
    );
    let loads = [1000.0, 1900.0];
    let other = Arc::new(Mutex::new(loads[0]));
    let plant: SharedPlant = Arc::new(Mutex::new(Plant {
        draw: vec![0.0; stations],
        reported: vec![None; stations],
    }));
    // The building meter: other loads + what the vehicles draw.
    let show = {
        let (meter, other, plant) = (meter.clone(), other.clone(), plant.clone());
        move || {
            let total = *lock(&other) + lock(&plant).draw.iter().sum::<f64>();
            meter.set_currents(PerPhase::splat(Amps(total)));
        }
    };
    show();
    {
        let show = show.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(20)).await;
                show();
            }
        });
    }
    let app =
        App::start(config(dir.path(), meter.local_addr(), stations)).expect("controller starts");
    let url = format!("ws://{}/ocpp/", app.ocpp_addr);
    let received: Received = Arc::default();

    let started = Instant::now();
    let mut clients = Vec::with_capacity(stations);
    for chunk in (0..stations).collect::<Vec<_>>().chunks(100) {
        let batch = chunk.iter().map(|&i| {
            connect(
                format!("{url}LAT{i:05}"),
                i,
                received.clone(),
                plant.clone(),
            )
        });
        clients.extend(futures_util::future::join_all(batch).await);
    }
    println!(
        "{stations} stations connected, booted and charging in {:?}",
        started.elapsed()
    );
    let first = expected_limit(loads[0], stations);
    let mut settled = last_arrival(&received, stations, first, started)
        .await
        .expect("initial setpoints");

    // Steps up (cut by the safety loop) and steps down (taken up by the allocation loop).
    let (mut up, mut down) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        assert!(
            all_reported(&plant, settled).await,
            "round {r}: not every station was asked for and sent a report within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        let step = loads[(r + 1) % 2];
        let limit = expected_limit(step, stations);
        let t0 = Instant::now();
        *lock(&other) = step;
        show();
        match last_arrival(&received, stations, limit, t0).await {
            Some(last) => {
                let latencies = if step > loads[0] { &mut up } else { &mut down };
                latencies.push(last.duration_since(t0));
                settled = last;
            }
            None => {
                let mut last: HashMap<usize, f64> = HashMap::new();
                for &(i, l, at) in lock(&received).iter() {
                    if at >= t0 {
                        last.insert(i, l);
                    }
                }
                let mut seen: HashMap<String, usize> = HashMap::new();
                for l in last.values() {
                    *seen.entry(format!("{l:.1}")).or_default() += 1;
                }
                if let Ok(status) = app
                    .controller()
                    .supervisor()
                    .send(ampwarden_actors::supervisor::GetSiteStatus)
                    .await
                {
                    eprintln!("{:#?}", status.zones.first());
                }
                panic!("round {r}: not every station got {limit} A within 30 s; last limits sent since the step: {seen:?} ({} stations)", last.len())
            }
        }
    }
    println!(
        "other loads step -> last SetChargingProfile, {stations} stations, {rounds} rounds (meter poll 100 ms):"
    );
    for (name, mut latencies) in [
        ("step up, safety loop", up),
        ("step down, allocation loop", down),
    ] {
        if latencies.is_empty() {
            continue;
        }
        latencies.sort();
        let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
        println!(
            "  {name:27} ({:2}): min {:?}  p50 {:?}  p90 {:?}  p99 {:?}  max {:?}",
            latencies.len(),
            latencies[0],
            pct(0.5),
            pct(0.9),
            pct(0.99),
            latencies[latencies.len() - 1]
        );
    }
    drop(clients);
    app.stop();
}
