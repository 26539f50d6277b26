//! The building management system's interface, tried as an integrator would: a real
//! Modbus TCP client (tokio-modbus) against the controller's BMS server, and the same
//! caps over REST. Control is judged on the simulated fleet (vehicles that follow a new
//! limit after 2 s, stations that report on their own clock, a building meter that reads
//! what really flows).

use crate::common;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use ampwarden_actors::bms::registers::{TWIN_NONE, ZONES, ZONE_CAPS, ZONE_LEN};
use common::http::Api;
use common::plant::{building, busiest, scenario, vehicles, window, Plant, BOOTED_S};
use common::TestApp;
use serde_json::{json, Value};
use tokio_modbus::client::{tcp, Context};
use tokio_modbus::prelude::*;

/// A fail-safe cap below what the plant's site could give, so that it shows.
const FAILSAFE_A: f64 = 60.0;

fn bms_table(write: bool, failsafe_a: f64, extra: &str) -> String {
    format!(
        "[bms]\nmodbus_listen = \"127.0.0.1:0\"\nallow = [\"127.0.0.1\"]\nwrite = {write}\n\
         failsafe_current_a = {failsafe_a:.1}\nmax_validity_s = 3600\n{extra}\n"
    )
}

fn bms_addr(app: &TestApp) -> SocketAddr {
    app.app().bms_addr.expect("the BMS Modbus server listens")
}

async fn client(app: &TestApp) -> Context {
    tcp::connect_slave(bms_addr(app), Slave(1))
        .await
        .expect("a BMS client connects")
}

fn words(v: f32) -> [u16; 2] {
    let b = v.to_bits();
    [(b >> 16) as u16, (b & 0xFFFF) as u16]
}

fn float(w: &[u16]) -> f32 {
    f32::from_bits((u32::from(w[0]) << 16) | u32::from(w[1]))
}

async fn read(ctx: &mut Context, address: u16, count: u16) -> Vec<u16> {
    ctx.read_holding_registers(address, count)
        .await
        .expect("transport")
        .unwrap_or_else(|e| panic!("reading {count} at {address}: {e:?}"))
}

async fn read_f32(ctx: &mut Context, address: u16) -> f32 {
    float(&read(ctx, address, 2).await)
}

/// Writes the site cap command (value, unit 0 = A / 1 = W, validity in s).
async fn write_site_cap(
    ctx: &mut Context,
    value: f32,
    unit: u16,
    validity_s: u16,
) -> Result<(), ExceptionCode> {
    let [hi, lo] = words(value);
    ctx.write_multiple_registers(200, &[hi, lo, unit, validity_s])
        .await
        .expect("transport")
}

fn root(status: &Value) -> &Value {
    status["zones"]
        .as_array()
        .and_then(|z| z.iter().find(|z| z["parent"].is_null()))
        .expect("a root zone")
}

fn phase(v: &Value, i: usize) -> f64 {
    v.as_array()
        .and_then(|a| a.get(i))
        .and_then(Value::as_f64)
        .unwrap_or_else(|| panic!("per-phase value {v}"))
}

/// Polls the site until `ok` holds; returns how long it took.
async fn site_until(
    api: &Api,
    what: &str,
    within: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Duration {
    let start = Instant::now();
    loop {
        let site = api.get("/api/v1/site").await.expect(200).json();
        // Before the first round the site has no zones yet.
        let published = site["at"].is_string();
        if published && ok(&site) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "{what}: not within {within:?}; site: {site}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// A value of the map read as the map says (float32 as f64, NaN for "none").
fn decode(point: &Value, w: &[u16]) -> Value {
    match point["type"].as_str().expect("type") {
        "u16" => json!(w[0]),
        "u32" => json!((u64::from(w[0]) << 16) | u64::from(w[1])),
        "float32" => {
            let v = float(w);
            if v.is_nan() {
                Value::Null
            } else {
                json!(f64::from(v))
            }
        }
        "ascii" => {
            let bytes: Vec<u8> = w
                .iter()
                .flat_map(|x| x.to_be_bytes())
                .filter(|&b| b != 0)
                .collect();
            json!(String::from_utf8(bytes).expect("ascii"))
        }
        other => panic!("unknown type {other}"),
    }
}

fn close(a: f64, b: f64, tolerance: f64) -> bool {
    (a - b).abs() <= tolerance
}

#[tokio::test]
async fn every_documented_register_reads_what_the_api_shows() {
    // 50 A of other loads, three 16 A vehicles reporting every 10 s: settled at 16 A each.
    let plant = Plant::start_with(
        scenario(
            3,
            10,
            building(50.0, Vec::new()),
            vehicles(16.0, false, 0.3),
        ),
        "",
        "",
        &bms_table(true, FAILSAFE_A, ""),
    )
    .await;
    let api = Api::setup(&plant.app).await;
    site_until(
        &api,
        "three vehicles charging",
        Duration::from_secs(40),
        |s| (0..3).all(|i| phase(&root(s)["ev_draw"], i) > 45.0),
    )
    .await;
    // Once settled, nothing moves between the register reads and the API's answer.
    tokio::time::sleep(Duration::from_secs(12)).await;

    let map = api.get("/api/v1/bms/registers").await.expect(200).json();
    assert_eq!(map["map_version"], 1);
    let points = map["registers"].as_array().expect("registers").clone();
    let mut ctx = client(&plant.app).await;
    let mut values: HashMap<(String, String, String), Value> = HashMap::new();
    let mut twins_checked = 0;
    for p in &points {
        let address = u16::try_from(p["address"].as_u64().expect("address")).expect("u16");
        let count = u16::try_from(p["registers"].as_u64().expect("registers")).expect("u16");
        let w = read(&mut ctx, address, count).await;
        let input = ctx
            .read_input_registers(address, count)
            .await
            .expect("transport")
            .expect("input registers answer too");
        let v = decode(p, &w);
        if let Some(twin) = p["scaled_twin"].as_u64() {
            let t = read(&mut ctx, u16::try_from(twin).expect("u16"), 2).await;
            let scaled = i32::from_be_bytes(
                [t[0].to_be_bytes(), t[1].to_be_bytes()]
                    .concat()
                    .try_into()
                    .expect("4 bytes"),
            );
            match v.as_f64() {
                None => assert_eq!(scaled, TWIN_NONE, "twin of {p}"),
                Some(f) => assert!(
                    (f64::from(scaled) / 100.0 - f).abs() <= 0.05,
                    "twin of {p}: {scaled} for {f}"
                ),
            }
            twins_checked += 1;
        }
        // Values that move (currents, time, the heartbeat) may have moved between two
        // reads; the identity of the registers may not.
        if p["block"] == "header" && p["name"] != "heartbeat" && p["name"] != "unix_time" {
            assert_eq!(input, w, "input and holding registers differ at {address}");
        }
        let key = (
            p["block"].as_str().unwrap_or_default().to_owned(),
            p["slot"].as_str().unwrap_or_default().to_owned(),
            p["name"].as_str().unwrap_or_default().to_owned(),
        );
        values.insert(key, v);
    }
    assert!(
        twins_checked > 40,
        "float32 values have twins ({twins_checked})"
    );
    let site = api.get("/api/v1/site").await.expect(200).json();
    let stations = api.get("/api/v1/stations").await.expect(200).json();
    let config = api.get("/api/v1/zones").await.expect(200).json();
    let get = |block: &str, slot: &str, name: &str| -> Value {
        values
            .get(&(block.into(), slot.into(), name.into()))
            .cloned()
            .unwrap_or_else(|| panic!("no register {block} {slot} {name}"))
    };
    let num =
        |block: &str, slot: &str, name: &str| get(block, slot, name).as_f64().unwrap_or(f64::NAN);

    // Header.
    assert_eq!(num("header", "", "map_version"), 1.0);
    assert_eq!(num("header", "", "role"), 0.0, "standalone");
    assert_eq!(num("header", "", "zones"), 1.0);
    assert_eq!(num("header", "", "stations"), 3.0);
    assert_eq!(num("header", "", "write_enabled"), 1.0);
    assert_eq!(num("header", "", "unit_id"), 1.0);
    assert_eq!(num("header", "", "voltage"), 230.0);
    assert_eq!(num("header", "", "clients"), 1.0, "this client");
    assert_eq!(get("header", "", "site_name"), site["name"]);
    let now = chrono::Utc::now().timestamp() as f64;
    assert!(close(num("header", "", "unix_time"), now, 5.0));
    let beat = num("header", "", "heartbeat");
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let later = read(&mut ctx, 2, 2).await;
    let later = f64::from((u32::from(later[0]) << 16) | u32::from(later[1]));
    assert!(
        later >= beat + 1.0 && later <= beat + 4.0,
        "heartbeat {beat} then {later}"
    );

    // Site: the root zone's values as the API shows them.
    let z = root(&site);
    for (i, l) in ["l1", "l2", "l3"].iter().enumerate() {
        let ev = phase(&z["ev_draw"], i);
        let budget = phase(&z["budget"], i);
        assert!(
            close(num("site", "", &format!("ev_current_{l}")), ev, 1.0),
            "ev {l}"
        );
        assert!(
            close(num("site", "", &format!("ev_budget_{l}")), budget, 1.0),
            "budget {l}"
        );
        assert!(
            close(
                num("site", "", &format!("other_loads_{l}")),
                phase(&z["other_loads"], i),
                1.5
            ),
            "other {l}"
        );
        assert!(
            close(
                num("site", "", &format!("headroom_{l}")),
                (budget - ev).max(0.0),
                1.5
            ),
            "headroom {l}"
        );
        assert!(
            get("site", "", &format!("production_{l}")).is_null(),
            "no production meter"
        );
    }
    let ev_sum: f64 = (0..3).map(|i| phase(&z["ev_draw"], i)).sum();
    assert!(close(num("site", "", "ev_power"), ev_sum * 230.0, 700.0));
    assert_eq!(num("site", "", "limit"), 100.0);
    assert_eq!(num("site", "", "sessions_active"), 3.0);
    assert_eq!(num("site", "", "sessions_waiting"), 0.0);
    assert_eq!(num("site", "", "sessions_suspended"), 0.0);
    assert_eq!(
        num("site", "", "state"),
        2.0,
        "no write yet: the fail-safe cap stands"
    );
    assert_eq!(
        num("site", "", "limiting_source"),
        2.0,
        "the meter sets the budget (48 A < 60 A)"
    );
    assert_eq!(num("site", "", "stations_online"), 3.0);
    // Site cap read-back.
    assert_eq!(num("site_cap", "", "cap_effective"), FAILSAFE_A);
    assert_eq!(num("site_cap", "", "failsafe"), FAILSAFE_A);
    assert_eq!(num("site_cap", "", "cap_state"), 2.0);
    assert_eq!(num("site_cap", "", "cap_remaining"), 0.0);
    assert!(get("site_cap", "", "cap_requested").is_null());

    // The zone block.
    let zone_id = config.as_array().expect("zones")[0]["id"]
        .as_str()
        .expect("id")
        .to_owned();
    assert_eq!(num("zone", &zone_id, "present"), 1.0);
    assert_eq!(get("zone", &zone_id, "id"), json!(zone_id));
    assert_eq!(num("zone", &zone_id, "limit"), 100.0);
    assert_eq!(num("zone", &zone_id, "sessions"), 3.0);
    assert_eq!(
        num("zone", &zone_id, "cap_state"),
        0.0,
        "no zone fail-safe configured"
    );
    assert!(close(
        num("zone", &zone_id, "budget_l2"),
        phase(&z["budget"], 1),
        1.0
    ));

    // Station blocks: each as /api/v1/stations shows it.
    for s in stations.as_array().expect("stations") {
        let id = s["id"].as_str().expect("id");
        assert_eq!(get("station", id, "id"), json!(id));
        assert_eq!(num("station", id, "present"), 1.0);
        assert_eq!(num("station", id, "online"), 1.0);
        assert_eq!(num("station", id, "status"), 3.0, "{id} charging");
        assert_eq!(num("station", id, "max_current"), 32.0);
        assert_eq!(
            num("station", id, "phases_in_use"),
            7.0,
            "{id} on three phases"
        );
        let connector = &s["live"]["connectors"][0];
        let drawn = phase(&connector["draw"], 0);
        assert!(
            close(num("station", id, "current_l1"), drawn, 0.6),
            "{id}: {drawn}"
        );
        let limit = connector["limit_in_force"].as_f64().expect("limit");
        assert!(
            close(num("station", id, "offered_limit"), limit, 0.01),
            "{id} offered"
        );
    }

    // Outside the map's blocks, a strict device's answer.
    let outside = ctx.read_holding_registers(500, 1).await.expect("transport");
    assert_eq!(outside, Err(ExceptionCode::IllegalDataAddress));
    let straddling = ctx
        .read_holding_registers(190, 20)
        .await
        .expect("transport");
    assert_eq!(straddling, Err(ExceptionCode::IllegalDataAddress));
}

#[tokio::test]
async fn a_cap_is_followed_within_a_round_and_expires_into_the_failsafe() {
    // 20 A of other loads, four 32 A vehicles: the meter would allow 78 A, the fail-safe
    // cap 60 A, a BMS write 24 A for 5 s.
    let plant = Plant::start_with(
        scenario(
            4,
            10,
            building(20.0, Vec::new()),
            vehicles(32.0, false, 0.3),
        ),
        "",
        "",
        &bms_table(true, FAILSAFE_A, ""),
    )
    .await;
    let api = Api::setup(&plant.app).await;
    site_until(
        &api,
        "the fail-safe cap decides",
        Duration::from_secs(40),
        |s| {
            let z = root(s);
            z["source"] == "bms_cap" && close(phase(&z["budget"], 0), FAILSAFE_A, 0.01)
        },
    )
    .await;
    // The vehicles settle at the fail-safe cap, measured at the building meter: 8 s in
    // a row near it, never above.
    let start = Instant::now();
    loop {
        let (trace, _) = plant.fleet.trace();
        let last = trace.last().map_or(0.0, |s| s.at.as_secs_f64());
        let recent = window(&trace, last - 8.0, last + 1.0);
        // Vehicles plugged in before their station took its first limit draw what the
        // station allows until it does.
        assert!(
            trace
                .iter()
                .filter(|s| s.at.as_secs_f64() > BOOTED_S + 5.0)
                .all(|s| s.ev.0.iter().all(|a| a.0 <= FAILSAFE_A + 0.5)),
            "above the fail-safe cap"
        );
        if recent.len() >= 8
            && recent
                .iter()
                .all(|s| s.ev.0.iter().all(|a| a.0 > FAILSAFE_A - 6.0))
        {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "not settled at the fail-safe cap"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let mut ctx = client(&plant.app).await;
    let (trace, _) = plant.fleet.trace();
    let t0 = trace.last().expect("samples").at.as_secs_f64();
    let written = Instant::now();
    write_site_cap(&mut ctx, 24.0, 0, 5)
        .await
        .expect("the cap is accepted");
    // Within one round the budget and every limit sent are at the cap.
    let took = site_until(
        &api,
        "the budget follows the cap",
        Duration::from_secs(1),
        |s| {
            let z = root(s);
            let sent: f64 = s["sessions"]
                .as_array()
                .map(|a| a.iter().filter_map(|x| x["limit"].as_f64()).sum())
                .unwrap_or(f64::MAX);
            z["source"] == "bms_cap" && phase(&z["budget"], 0) <= 24.0 && sent <= 24.0 + 1e-6
        },
    )
    .await;
    assert!(took < Duration::from_secs(1), "{took:?}");
    let back = read(&mut ctx, 210, 6).await;
    assert_eq!(float(&back[0..2]), 24.0, "effective cap read back");
    assert!((4..=5).contains(&back[2]), "remaining {}", back[2]);
    assert_eq!(back[3], 1, "a written cap is in force");
    assert_eq!(back[4], 1, "the last write was accepted");

    // It expires into the fail-safe cap within 1 s.
    let expired = site_until(
        &api,
        "the fail-safe after expiry",
        Duration::from_secs(8),
        |s| {
            let z = root(s);
            close(phase(&z["budget"], 0), FAILSAFE_A, 0.01)
        },
    )
    .await;
    let after = written.elapsed();
    assert!(
        after >= Duration::from_millis(4900) && after <= Duration::from_secs(6),
        "fail-safe {after:?} after the write ({expired:?} of polling)"
    );
    let back = read(&mut ctx, 210, 4).await;
    assert_eq!(
        (float(&back[0..2]), back[2], back[3]),
        (FAILSAFE_A as f32, 0, 2)
    );
    let bms = api.get("/api/v1/bms").await.expect(200).json();
    let outcomes: Vec<&str> = bms["log"]
        .as_array()
        .expect("log")
        .iter()
        .filter_map(|r| r["outcome"].as_str())
        .collect();
    assert_eq!(outcomes[..2], ["expired", "accepted"], "{outcomes:?}");

    // What the building meter saw: the vehicles came down to the cap once they had
    // followed (2 s), and never went above the fail-safe cap or the breaker.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (trace, _) = plant.fleet.trace();
    let capped = window(&trace, t0 + 3.5, t0 + 5.0);
    assert!(!capped.is_empty(), "samples while capped");
    assert!(
        capped.iter().all(|s| s.ev.0.iter().all(|a| a.0 <= 24.5)),
        "the vehicles follow the cap: {:?}",
        capped.iter().map(|s| s.ev.0[0].0).collect::<Vec<_>>()
    );
    assert!(
        window(&trace, t0, t0 + 30.0).iter().all(|s| s
            .ev
            .0
            .iter()
            .all(|a| a.0 <= FAILSAFE_A + 0.5)
            && busiest(s) <= 100.0),
        "never above the fail-safe cap after the write"
    );
}

/// A small site without a meter: one 63 A zone, a 32 A sub-zone `garage`.
const SITE: &str = r#"
[auth]
mode = "accept_all"

[[zones]]
id = "main"
limit_a = 63.0

[[zones]]
id = "garage"
parent = "main"
limit_a = 32.0

[[stations]]
id = "CP1"
zone = "garage"
max_current_a = 32.0
"#;

fn small_site(write: bool) -> TestApp {
    TestApp::start(
        "",
        &format!(
            "{SITE}\n{}",
            bms_table(write, 30.0, "zone_failsafe_a = { garage = 10.0 }")
        ),
    )
}

fn zone<'a>(site: &'a Value, id: &str) -> &'a Value {
    site["zones"]
        .as_array()
        .and_then(|z| z.iter().find(|z| z["id"] == id))
        .unwrap_or_else(|| panic!("zone {id}"))
}

#[tokio::test]
async fn a_restart_applies_the_failsafe_from_the_first_round() {
    let mut app = small_site(true);
    let admin = Api::setup(&app).await;
    admin
        .put(
            "/api/v1/bms/cap",
            json!({"value": 50.0, "validity_s": 3600}),
        )
        .await
        .expect(200);
    site_until(&admin, "the written cap", Duration::from_secs(2), |s| {
        close(phase(&zone(s, "main")["budget"], 0), 50.0, 0.01)
    })
    .await;
    app.restart();
    // The very first status published after the restart already has the fail-safe.
    let first = loop {
        let status = app.site_status().await;
        if status.at.is_some() {
            break status;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    };
    let main = first
        .zones
        .iter()
        .find(|z| z.id.as_str() == "main")
        .expect("main");
    assert_eq!(main.source, "bms_cap");
    assert!(
        main.budget.0.iter().all(|a| a.0 == 30.0),
        "{:?}",
        main.budget
    );
    let garage = first
        .zones
        .iter()
        .find(|z| z.id.as_str() == "garage")
        .expect("garage");
    assert!(
        garage.budget.0.iter().all(|a| a.0 == 10.0),
        "zone fail-safe: {:?}",
        garage.budget
    );
    let admin = Api::admin(&app).await;
    let bms = admin.get("/api/v1/bms").await.expect(200).json();
    assert_eq!(bms["site"]["state"], "failsafe");
    assert!(bms["site"]["written"].is_null());
    // The write before the restart stays in the operator log.
    let logs = admin
        .get("/api/v1/logs")
        .await
        .expect(200)
        .json()
        .to_string();
    assert!(logs.contains("BMS: site cap 50"), "{logs}");
}

#[tokio::test]
async fn a_clients_caps_end_when_it_disconnects() {
    let app = small_site(true);
    let admin = Api::setup(&app).await;
    let mut a = client(&app).await;
    write_site_cap(&mut a, 20.0, 0, 600)
        .await
        .expect("accepted");
    let garage = ZONE_CAPS + 4; // slot 1
    let [hi, lo] = words(8.0);
    a.write_multiple_registers(garage, &[hi, lo, 600])
        .await
        .expect("transport")
        .expect("zone cap accepted");
    site_until(&admin, "both caps", Duration::from_secs(1), |s| {
        close(phase(&zone(s, "main")["budget"], 0), 20.0, 0.01)
            && close(phase(&zone(s, "garage")["budget"], 0), 8.0, 0.01)
    })
    .await;
    let bms = admin.get("/api/v1/bms").await.expect(200).json();
    assert_eq!(bms["clients"].as_array().map(Vec::len), Some(1));
    a.disconnect().await.expect("disconnect");
    drop(a);
    let took = site_until(&admin, "the fail-safes", Duration::from_secs(1), |s| {
        close(phase(&zone(s, "main")["budget"], 0), 30.0, 0.01)
            && close(phase(&zone(s, "garage")["budget"], 0), 10.0, 0.01)
    })
    .await;
    assert!(took < Duration::from_secs(1));
    let bms = admin.get("/api/v1/bms").await.expect(200).json();
    assert_eq!(bms["clients"].as_array().map(Vec::len), Some(0));
    assert_eq!(bms["log"][0]["outcome"], "disconnected");
}

#[tokio::test]
async fn bad_modbus_input_gets_an_exception_and_changes_nothing() {
    let app = small_site(true);
    let admin = Api::setup(&app).await;
    let mut ctx = client(&app).await;
    write_site_cap(&mut ctx, 40.0, 0, 600)
        .await
        .expect("accepted");
    let before = read(&mut ctx, 210, 6).await;
    let nan = words(f32::NAN);
    let neg = words(-1.0);
    let ten = words(10.0);
    let huge = words(1.0e9);
    use ExceptionCode::*;
    let garage = ZONE_CAPS + 4;
    let no_zone = ZONE_CAPS + 4 * 7;
    let cases: Vec<(&str, u16, Vec<u16>, ExceptionCode)> = vec![
        ("a read-only register", 100, vec![0, 0], IllegalDataAddress),
        (
            "the read-back registers",
            210,
            vec![0, 0, 0, 0],
            IllegalDataAddress,
        ),
        (
            "half of the cap value",
            200,
            vec![ten[0]],
            IllegalDataAddress,
        ),
        (
            "the value without its validity",
            200,
            vec![ten[0], ten[1]],
            IllegalDataAddress,
        ),
        (
            "the second half onwards",
            201,
            vec![ten[1], 0, 60, 0],
            IllegalDataAddress,
        ),
        (
            "a command too long",
            200,
            vec![ten[0], ten[1], 0, 60, 0],
            IllegalDataAddress,
        ),
        ("NaN", 200, vec![nan[0], nan[1], 0, 60], IllegalDataValue),
        (
            "a negative cap",
            200,
            vec![neg[0], neg[1], 0, 60],
            IllegalDataValue,
        ),
        (
            "an absurd cap",
            200,
            vec![huge[0], huge[1], 0, 60],
            IllegalDataValue,
        ),
        (
            "an unknown unit",
            200,
            vec![ten[0], ten[1], 7, 60],
            IllegalDataValue,
        ),
        (
            "a validity above the maximum",
            200,
            vec![ten[0], ten[1], 0, 4000],
            IllegalDataValue,
        ),
        (
            "a zone cap without its validity",
            garage,
            vec![ten[0], ten[1]],
            IllegalDataAddress,
        ),
        (
            "a zone slot without a zone",
            no_zone,
            vec![ten[0], ten[1], 60],
            IllegalDataAddress,
        ),
        (
            "inside a zone's block",
            ZONES + ZONE_LEN,
            vec![ten[0], ten[1], 60],
            IllegalDataAddress,
        ),
    ];
    for (what, address, w, expected) in &cases {
        let got = ctx
            .write_multiple_registers(*address, w)
            .await
            .expect("transport");
        assert_eq!(got, Err(*expected), "{what}");
    }
    let single = ctx.write_single_register(200, 1).await.expect("transport");
    assert_eq!(single, Err(IllegalDataAddress), "a single register write");
    let coils = ctx.read_coils(0, 1).await.expect("transport");
    assert_eq!(coils, Err(IllegalFunction), "coils");
    // Another unit id than the one configured (1; 0 and 255 are answered too).
    let stream = tokio::net::TcpStream::connect(bms_addr(&app))
        .await
        .expect("connect");
    let mut other_unit = tcp::attach_slave(stream, Slave(7));
    let r = other_unit
        .read_holding_registers(0, 1)
        .await
        .expect("transport");
    assert_eq!(r, Err(GatewayTargetDevice));
    let stream = tokio::net::TcpStream::connect(bms_addr(&app))
        .await
        .expect("connect");
    let mut broadcast_unit = tcp::attach_slave(stream, Slave(255));
    assert_eq!(
        broadcast_unit
            .read_holding_registers(0, 1)
            .await
            .expect("transport"),
        Ok(vec![1])
    );

    // Nothing changed: the same cap, the same count of accepted writes.
    let after = read(&mut ctx, 210, 6).await;
    assert_eq!(after[0..2], before[0..2], "effective cap");
    assert_eq!(after[3], before[3], "state");
    assert_eq!(after[5], before[5], "accepted writes");
    assert_eq!(after[4], 0, "the last write was refused");
    site_until(
        &admin,
        "the accepted cap, nothing else",
        Duration::from_secs(1),
        |s| close(phase(&zone(s, "main")["budget"], 0), 40.0, 0.01),
    )
    .await;
    let bms = admin.get("/api/v1/bms").await.expect(200).json();
    assert_eq!(bms["writes_accepted"], 1);
    // Values out of range reach the cap logic and are logged; malformed requests stop at
    // the server. Every refusal counts as an exception of the client that sent it.
    assert_eq!(bms["writes_refused"], 4, "{}", bms["writes_refused"]);
    let exceptions: u64 = bms["clients"]
        .as_array()
        .expect("clients")
        .iter()
        .filter_map(|c| c["exceptions"].as_u64())
        .sum();
    assert_eq!(
        exceptions,
        cases.len() as u64 + 3,
        "one per refused request"
    );
    assert_eq!(bms["log"][0]["outcome"], "refused");
    assert!(bms["log"][0]["error"]
        .as_str()
        .is_some_and(|e| e.contains("validity_s")));
}

#[tokio::test]
async fn clients_off_the_allow_list_and_beyond_the_limit_are_refused() {
    let app = small_site(true);
    let admin = Api::setup(&app).await;
    // From 127.0.0.2 (loopback, but not on bms.allow): the connection is closed.
    let socket = tokio::net::TcpSocket::new_v4().expect("socket");
    socket
        .bind("127.0.0.2:0".parse().expect("addr"))
        .expect("bind 127.0.0.2");
    let stream = socket.connect(bms_addr(&app)).await.expect("tcp connects");
    let mut stranger = tcp::attach_slave(stream, Slave(1));
    let r = tokio::time::timeout(
        Duration::from_secs(5),
        stranger.read_holding_registers(0, 1),
    )
    .await;
    assert!(matches!(r, Ok(Err(_))), "refused: {r:?}");

    // 100 clients at once: 16 (bms.max_clients) are served, the others refused.
    site_until(&admin, "a first round", Duration::from_secs(2), |_| true).await;
    let rounds_before = app
        .site_status()
        .await
        .last_round
        .clone()
        .expect("a round")
        .at;
    let addr = bms_addr(&app);
    let tasks: Vec<_> = (0..100)
        .map(|_| {
            tokio::spawn(async move {
                let Ok(mut c) = tcp::connect_slave(addr, Slave(1)).await else {
                    return (false, None);
                };
                let r =
                    tokio::time::timeout(Duration::from_secs(5), c.read_holding_registers(0, 4))
                        .await;
                let served = matches!(r, Ok(Ok(Ok(_))));
                // Served clients hold their connection until all have tried.
                (served, Some(c))
            })
        })
        .collect();
    let mut held = Vec::new();
    let mut served = 0;
    for t in tasks {
        let (ok, c) = t.await.expect("task");
        served += usize::from(ok);
        held.extend(c);
    }
    assert_eq!(served, 16, "bms.max_clients are served");
    let bms = admin.get("/api/v1/bms").await.expect(200).json();
    assert!(
        bms["refused_connections"].as_u64().unwrap_or(0) >= 85,
        "{}",
        bms["refused_connections"]
    );
    // The control loop kept running (a round every control.interval_s).
    tokio::time::sleep(Duration::from_secs(6)).await;
    let rounds_after = app
        .site_status()
        .await
        .last_round
        .clone()
        .expect("a round")
        .at;
    assert!(rounds_after > rounds_before, "rounds go on");
    drop(held);
    // Once they are gone, a new client is served again.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut c = client(&app).await;
    assert_eq!(read(&mut c, 0, 1).await, vec![1]);
}

#[tokio::test]
async fn writes_are_refused_while_the_bms_is_read_only() {
    let app = small_site(false);
    let admin = Api::setup(&app).await;
    let mut ctx = client(&app).await;
    assert_eq!(read(&mut ctx, 6, 1).await, vec![0], "write_enabled");
    assert_eq!(
        write_site_cap(&mut ctx, 10.0, 0, 60).await,
        Err(ExceptionCode::IllegalFunction)
    );
    assert_eq!(
        ctx.write_single_register(203, 60).await.expect("transport"),
        Err(ExceptionCode::IllegalFunction)
    );
    let err = admin
        .put("/api/v1/bms/cap", json!({"value": 10.0}))
        .await
        .expect(403)
        .json();
    assert!(
        err["error"]
            .as_str()
            .is_some_and(|e| e.contains("bms.write")),
        "{err}"
    );
    // Read-only imposes nothing, not even the fail-safe.
    let site = loop {
        let site = admin.get("/api/v1/site").await.expect(200).json();
        if site["at"].is_string() {
            break site;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert_eq!(zone(&site, "main")["source"], "static");
    assert!(close(phase(&zone(&site, "main")["budget"], 0), 63.0, 0.01));
    let back = read(&mut ctx, 210, 4).await;
    assert!(
        float(&back[0..2]).is_nan() && back[3] == 0,
        "no cap: {back:?}"
    );
}

#[tokio::test]
async fn rest_writes_share_the_modbus_semantics_and_roles() {
    let app = small_site(true);
    let admin = Api::setup(&app).await;
    let token = |role: &'static str| {
        let admin = &admin;
        async move {
            let created = admin
                .post(
                    "/api/v1/tokens",
                    json!({"name": format!("{role}-token"), "role": role}),
                )
                .await
                .expect(201)
                .json();
            created["token"].as_str().expect("secret").to_owned()
        }
    };
    let bms = Api::with_token(&app, &token("bms").await);
    let operator = Api::with_token(&app, &token("operator").await);
    let viewer = Api::with_token(&app, &token("viewer").await);
    // Roles: the bms role writes, an operator and a viewer may not; all may read.
    for who in [&operator, &viewer] {
        who.put("/api/v1/bms/cap", json!({"value": 10.0}))
            .await
            .error(403);
        who.get("/api/v1/bms").await.expect(200);
    }
    // The bms role reads like a viewer, and does nothing else.
    bms.get("/api/v1/site").await.expect(200);
    bms.post("/api/v1/badges", json!({"id_tag": "B1"}))
        .await
        .error(403);

    let w = bms
        .put("/api/v1/bms/cap", json!({"value": 40.0, "validity_s": 2}))
        .await
        .expect(200)
        .json();
    assert_eq!(w["accepted"], true);
    assert_eq!(w["cap"]["effective_a"], 40.0);
    assert_eq!(w["cap"]["state"], "written");
    assert_eq!(w["cap"]["written"]["by"]["name"], "bms-token");
    let written = Instant::now();
    site_until(&bms, "the REST cap", Duration::from_secs(1), |s| {
        zone(s, "main")["source"] == "bms_cap"
            && close(phase(&zone(s, "main")["budget"], 0), 40.0, 0.01)
    })
    .await;
    // The Modbus read-back shows it: one implementation behind both.
    let mut ctx = client(&app).await;
    assert_eq!(read_f32(&mut ctx, 210).await, 40.0);
    site_until(
        &bms,
        "the fail-safe after 2 s",
        Duration::from_secs(4),
        |s| close(phase(&zone(s, "main")["budget"], 0), 30.0, 0.01),
    )
    .await;
    let after = written.elapsed();
    assert!(
        after >= Duration::from_millis(1900) && after <= Duration::from_secs(3),
        "{after:?}"
    );

    // Watts over three phases at 230 V; above the commissioned limit it is the limit.
    let w = bms
        .put(
            "/api/v1/bms/cap",
            json!({"value": 13_800.0, "unit": "W", "validity_s": 60}),
        )
        .await
        .expect(200)
        .json();
    assert!(close(
        w["cap"]["effective_a"].as_f64().expect("a"),
        20.0,
        1e-6
    ));
    let w = bms
        .put("/api/v1/bms/cap", json!({"value": 500.0, "validity_s": 60}))
        .await
        .expect(200)
        .json();
    assert_eq!(
        w["cap"]["effective_a"], 63.0,
        "a cap cannot raise the commissioned limit"
    );
    assert_eq!(w["cap"]["written"]["requested_a"], 500.0);
    let metrics = Api::anonymous(&app).get("/metrics").await.expect(200).body;
    for line in [
        "ampwarden_bms_cap_state{target=\"site\"} 1",
        "ampwarden_bms_cap_amperes{target=\"site\"} 63",
        "ampwarden_bms_cap_state{target=\"zone:garage\"} 2",
        "ampwarden_bms_writes_total{outcome=\"accepted\"} 3",
        "ampwarden_bms_clients 1",
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in:\n{metrics}");
    }

    // A zone cap, then released: the zone's fail-safe.
    bms.put("/api/v1/bms/zones/garage/cap", json!({"value": 16.0}))
        .await
        .expect(200);
    site_until(&bms, "the zone cap", Duration::from_secs(1), |s| {
        close(phase(&zone(s, "garage")["budget"], 0), 16.0, 0.01)
    })
    .await;
    let r = bms
        .delete("/api/v1/bms/zones/garage/cap")
        .await
        .expect(200)
        .json();
    assert_eq!(r["released"], true);
    assert_eq!(r["cap"]["state"], "failsafe");
    site_until(&bms, "the zone fail-safe", Duration::from_secs(1), |s| {
        close(phase(&zone(s, "garage")["budget"], 0), 10.0, 0.01)
    })
    .await;

    // Bad bodies: a clear error naming the field, and nothing changed.
    let before = bms.get("/api/v1/bms").await.expect(200).json();
    for (path, body, status, field) in [
        ("/api/v1/bms/cap", json!({"value": -1.0}), 400, "value"),
        (
            "/api/v1/bms/cap",
            json!({"value": 10.0, "validity_s": 99_999}),
            400,
            "validity_s",
        ),
        ("/api/v1/bms/cap", json!({"value": "ten"}), 400, "value"),
        (
            "/api/v1/bms/cap",
            json!({"value": 10.0, "unit": "kW"}),
            400,
            "unit",
        ),
        (
            "/api/v1/bms/cap",
            json!({"value": 10.0, "until": "never"}),
            400,
            "body",
        ),
        ("/api/v1/bms/cap", json!({}), 400, "body"),
        (
            "/api/v1/bms/zones/garage/cap",
            json!({"value": 10.0, "unit": "W"}),
            400,
            "unit",
        ),
        (
            "/api/v1/bms/zones/nowhere/cap",
            json!({"value": 10.0}),
            404,
            "",
        ),
    ] {
        let r = bms.put(path, body.clone()).await;
        let text = r.json();
        assert_eq!(r.status, status, "{path} {body}: {text}");
        if !field.is_empty() && field != "body" {
            assert_eq!(text["field"], field, "{path} {body}: {text}");
        }
    }
    let after = bms.get("/api/v1/bms").await.expect(200).json();
    assert_eq!(after["site"]["effective_a"], before["site"]["effective_a"]);
    assert_eq!(after["writes_accepted"], before["writes_accepted"]);

    // The site cap released: the fail-safe again; the register map is served as CSV too.
    bms.delete("/api/v1/bms/cap").await.expect(200);
    let csv = bms.get("/api/v1/bms/registers.csv").await.expect(200);
    let text = csv.body.clone();
    assert!(
        text.starts_with("address,block,slot,offset,name,type"),
        "{text}"
    );
    assert!(
        text.contains("\n200,site_cap,,,cap_value,float32,2,A or W,RW,"),
        "{text}"
    );
}
