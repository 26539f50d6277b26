//! Latency of the whole control loop at scale: from a change of the meter's registers
//! (a real Modbus TCP server) to the last SetChargingProfile on the wire, with 1000
//! stations connected over real WebSockets, each in a transaction.
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
const LIMIT_A: f64 = 10_000.0;
const MARGIN_A: f64 = 2.0;

/// (station, limit, received) of every TxProfile.
type Received = Arc<Mutex<Vec<(usize, f64, Instant)>>>;

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

async fn connect(url: String, index: usize, received: Received) -> StationClient {
    let mut client = StationClient::connect(&url, ConnectOptions::default())
        .await
        .expect("station connects");
    let mut calls = client.take_calls();
    tokio::spawn(async move {
        while let Some(call) = calls.recv().await {
            let profile = &call.payload["csChargingProfiles"];
            if call.action == "SetChargingProfile"
                && profile["chargingProfilePurpose"] == "TxProfile"
            {
                let limit = profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
                    .as_f64()
                    .unwrap_or(-1.0);
                received
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push((index, limit, call.received));
            }
        }
    });
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
    client.call("StartTransaction", start).await.expect("start");
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
            let r = received
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
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

#[tokio::main]
async fn main() {
    let stations = arg("--stations", 1000);
    let rounds = arg("--rounds", 20);
    let dir = tempfile::tempdir().expect("temp dir");
    let map = RegisterMap::builtin(MeterProfile::Iem3155).expect("map");
    let meter = SimulatedMeter::start("127.0.0.1:0".parse().expect("addr"), map)
        .await
        .expect("meter");
    let loads = [1000.0, 2000.0];
    meter.set_currents(PerPhase::splat(Amps(loads[0])));
    let app =
        App::start(config(dir.path(), meter.local_addr(), stations)).expect("controller starts");
    let url = format!("ws://{}/ocpp/", app.ocpp_addr);
    let received: Received = Arc::default();

    let started = Instant::now();
    let mut clients = Vec::with_capacity(stations);
    for chunk in (0..stations).collect::<Vec<_>>().chunks(100) {
        let batch = chunk
            .iter()
            .map(|&i| connect(format!("{url}LAT{i:05}"), i, received.clone()));
        clients.extend(futures_util::future::join_all(batch).await);
    }
    println!(
        "{stations} stations connected, booted and charging in {:?}",
        started.elapsed()
    );
    let first = expected_limit(loads[0], stations);
    last_arrival(&received, stations, first, started)
        .await
        .expect("initial setpoints");

    let mut latencies = Vec::new();
    for r in 0..rounds {
        let other = loads[(r + 1) % 2];
        let limit = expected_limit(other, stations);
        let t0 = Instant::now();
        meter.set_currents(PerPhase::splat(Amps(other)));
        match last_arrival(&received, stations, limit, t0).await {
            Some(last) => latencies.push(last.duration_since(t0)),
            None => panic!("round {r}: not every station got {limit} A within 30 s"),
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    latencies.sort();
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    println!(
        "meter change -> last SetChargingProfile, {stations} stations, {rounds} rounds (meter poll 100 ms):\n  \
         min {:?}  p50 {:?}  p90 {:?}  max {:?}",
        latencies[0],
        pct(0.5),
        pct(0.9),
        latencies[latencies.len() - 1]
    );
    drop(clients);
    app.stop();
}
