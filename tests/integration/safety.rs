//! The safety invariant where the network can reach it: stations that never answer,
//! stations removed while charging, stations naming another's transaction, a 1-phase
//! station's draw on the phase it is wired to. Judged from the stations' side (the
//! limits they took) and the records, never from what the controller meant to send.

use crate::common;

use std::time::Duration;

use common::fleet::{boot_fleet, start_transaction, Behaviour, Timeline};
use common::http::Api;
use common::*;
use serde_json::json;

fn site(limit_a: f64, stations: usize) -> String {
    let mut body = format!(
        "[auth]\nmode = \"accept_all\"\n[control]\ninterval_s = 1\nincrease_hold_s = 0\n\n\
         [[zones]]\nid = \"main\"\nlimit_a = {limit_a:.1}\n"
    );
    for i in 1..=stations {
        body.push_str(&format!(
            "[[stations]]\nid = \"EV{i:02}\"\nzone = \"main\"\nmax_current_a = 32.0\n"
        ));
    }
    body
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.051
}

#[tokio::test]
async fn a_station_that_never_answers_its_default_profile_counts_at_its_maximum() {
    // 40 A for two 32 A stations; EV01 answers no SetChargingProfile, not even the 0 A
    // default of its boot, so it may run at its 32 A: EV02 may have 8 A, never 20.
    let app = TestApp::start("call_timeout_s = 1", &site(40.0, 2));
    let admin = Api::setup(&app).await;
    let timeline = Timeline::default();
    let silent = Behaviour {
        silent: true,
        ..Behaviour::default()
    };
    let evs = boot_fleet(&app, &timeline, 2, |i| {
        if i == 1 {
            silent
        } else {
            Behaviour::default()
        }
    })
    .await;
    // Past the default's timeout before the vehicles start.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    start_transaction(&timeline, &evs[0], "EV01", "ANY").await;
    start_transaction(&timeline, &evs[1], "EV02", "ANY").await;
    timeline
        .wait_for("EV02 at what EV01 leaves", LONG, |l| {
            l.get("EV02").is_some_and(|&a| approx(a, 8.0))
        })
        .await;
    // Rounds every second, setpoints to EV01 timing out: nothing more for EV02.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let worst = timeline.worst_sum(32.0);
    assert!(
        worst <= 40.0 + 1e-9,
        "the limits in force (EV01 at its maximum) reached {worst} A on a 40 A zone"
    );
    let ev01 = admin.get("/api/v1/stations/EV01").await.expect(200).json();
    assert_eq!(
        ev01["live"]["connectors"][0]["limit_in_force"], 32.0,
        "{ev01}"
    );
}

#[tokio::test]
async fn a_station_removed_while_charging_keeps_its_reservation() {
    let app = TestApp::start("", &site(63.0, 3));
    let admin = Api::setup(&app).await;
    let timeline = Timeline::default();
    let evs = boot_fleet(&app, &timeline, 3, |_| Behaviour::default()).await;
    for (i, ev) in evs.iter().enumerate() {
        start_transaction(&timeline, ev, &format!("EV{:02}", i + 1), "ANY").await;
    }
    timeline
        .wait_for("21 A each", LONG, |l| {
            l.len() == 3 && l.values().all(|&a| approx(a, 21.0))
        })
        .await;
    // Its car keeps drawing its 21 A whatever the configuration says.
    admin.delete("/api/v1/stations/EV03").await.expect(204);
    tokio::time::sleep(Duration::from_secs(4)).await;
    let now = timeline.current();
    assert!(
        approx(now["EV01"], 21.0) && approx(now["EV02"], 21.0),
        "{now:?}"
    );
    let worst = timeline.worst_sum(32.0);
    assert!(worst <= 63.0 + 1e-9, "{worst} A in force on a 63 A zone");
    let site = admin.get("/api/v1/site").await.expect(200).json();
    let reserved = site["sessions"]
        .as_array()
        .expect("sessions")
        .iter()
        .find(|s| s["station"] == "EV03")
        .cloned()
        .expect("EV03 still counted");
    assert_eq!(reserved["decision"], "fixed", "{reserved}");
}

#[tokio::test]
async fn a_station_cannot_stop_or_write_into_another_stations_transaction() {
    let app = TestApp::start("", SMALL_SITE);
    let viewer = Api::setup(&app).await;
    let owner = app.booted("CP001").await;
    let intruder = app.booted("CP002").await;
    let tx = common::start_transaction(&owner, 1, "GOODTAG", 1000).await;
    let values = json!({ "connectorId": 1, "transactionId": tx, "meterValue": [{ "timestamp": now_text(),
        "sampledValue": [{ "value": "1500", "measurand": "Energy.Active.Import.Register", "unit": "Wh" }] }] });
    ok(owner.call("MeterValues", values).await.expect("answered"));

    let foreign = json!({ "connectorId": 1, "transactionId": tx, "meterValue": [{ "timestamp": now_text(),
        "sampledValue": [{ "value": "99000", "measurand": "Energy.Active.Import.Register", "unit": "Wh" }] }] });
    ok(intruder
        .call("MeterValues", foreign)
        .await
        .expect("answered"));
    let stop = json!({ "transactionId": tx, "meterStop": 99000, "timestamp": now_text(), "idTag": "GOODTAG" });
    let answer = ok(intruder
        .call("StopTransaction", stop)
        .await
        .expect("answered"));
    assert_eq!(answer["idTagInfo"]["status"], "Invalid", "{answer}");

    let record = viewer
        .get(&format!("/api/v1/transactions/{tx}"))
        .await
        .expect(200)
        .json();
    assert_eq!(record["open"], true, "{record}");
    assert_eq!(record["station"], "CP001");
    assert_eq!(record["energy_wh"], 500.0, "{record}");
    let samples = record["samples"].as_array().expect("samples");
    assert!(
        samples.iter().all(|s| s["value"] != 99000.0),
        "the intruder's reading was stored: {samples:?}"
    );
    let logs = viewer
        .get("/api/v1/logs?station=CP002")
        .await
        .expect(200)
        .json();
    assert!(
        logs.to_string().contains("belongs to station CP001"),
        "{logs}"
    );

    // The owner still stops it normally.
    let stop = json!({ "transactionId": tx, "meterStop": 2000, "timestamp": now_text() });
    ok(owner.call("StopTransaction", stop).await.expect("answered"));
    let record = viewer
        .get(&format!("/api/v1/transactions/{tx}"))
        .await
        .expect(200)
        .json();
    assert_eq!(record["open"], false);
    assert_eq!(record["energy_wh"], 1000.0);
}

#[tokio::test]
async fn a_one_phase_station_on_l2_is_carried_by_l2() {
    let body = "[auth]\nmode = \"accept_all\"\n[control]\ninterval_s = 1\n\n\
                [[zones]]\nid = \"main\"\nlimit_a = 63.0\n\n\
                [[stations]]\nid = \"MONO\"\nzone = \"main\"\nmax_current_a = 32.0\nphases = 1\nphase = \"L2\"\n";
    let app = TestApp::start("", body);
    let viewer = Api::setup(&app).await;
    let station = app.booted("MONO").await;
    let tx = common::start_transaction(&station, 1, "ANY", 0).await;
    // The station measures on its own L1; it is wired to the site's L2. It reports on
    // its own clock: a report from before its first limit was acknowledged says nothing
    // about the vehicle now, so the next one is the one that counts.
    let mut draw = serde_json::Value::Null;
    for _ in 0..50 {
        let values = json!({ "connectorId": 1, "transactionId": tx, "meterValue": [{ "timestamp": now_text(),
            "sampledValue": [{ "value": "14.0", "measurand": "Current.Import", "phase": "L1", "unit": "A" }] }] });
        ok(station.call("MeterValues", values).await.expect("answered"));
        let site = viewer.get("/api/v1/site").await.expect(200).json();
        draw = site["zones"][0]["ev_draw"].clone();
        if draw[1] == 14.0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        draw,
        json!([0.0, 14.0, 0.0]),
        "the zone's EV draw per phase"
    );
}

#[tokio::test]
async fn station_ids_from_the_network_are_bounded_in_length_characters_and_number() {
    let app = TestApp::start("accept_unknown_stations = false", SMALL_SITE);
    let viewer = Api::setup(&app).await;
    let too_long = "X".repeat(49);
    for bad in [too_long.as_str(), "CP%20001", "CP%3Cscript%3E"] {
        match app.connect_with(bad, Default::default()).await {
            Err(ampwarden::simulate::client::ClientError::Refused(400)) => {}
            Err(e) => panic!("{bad}: refused, but not as a bad request: {e}"),
            Ok(_) => panic!("{bad}: accepted"),
        }
    }
    let limit = ampwarden::controller::MAX_PENDING_UNKNOWN;
    for i in 0..limit + 20 {
        match app
            .connect_with(&format!("KNOCK{i:04}"), Default::default())
            .await
        {
            Err(ampwarden::simulate::client::ClientError::Refused(404)) => {}
            Err(e) => panic!("unknown station: {e}"),
            Ok(_) => panic!("an unknown station was accepted"),
        }
    }
    let listed = viewer.get("/api/v1/commissioning").await.expect(200).json();
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), limit, "the commissioning list is capped");
    assert!(listed
        .iter()
        .all(|r| r["id"].as_str().is_some_and(|id| id.starts_with("KNOCK"))));
}

#[tokio::test]
async fn a_connector_id_above_the_configured_count_is_refused_and_changes_nothing() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let station = app.booted("CP001").await;
    let status = json!({ "connectorId": 7, "errorCode": "NoError", "status": "Charging" });
    let reply = station
        .call("StatusNotification", status)
        .await
        .expect("answered");
    assert_eq!(error_code(reply), "PropertyConstraintViolation");
    let start =
        json!({ "connectorId": 7, "idTag": "GOODTAG", "meterStart": 0, "timestamp": now_text() });
    let reply = station
        .call("StartTransaction", start)
        .await
        .expect("answered");
    assert_eq!(error_code(reply), "PropertyConstraintViolation");
    let view = admin.get("/api/v1/stations/CP001").await.expect(200).json();
    let connectors = view["live"]["connectors"].as_array().expect("connectors");
    assert!(
        connectors.iter().all(|c| c["connector"] != 7),
        "{connectors:?}"
    );
    let records = admin.get("/api/v1/transactions").await.expect(200).json();
    assert_eq!(records["totals"]["count"], 0, "{records}");
    // Its own connector still works.
    common::start_transaction(&station, 1, "GOODTAG", 0).await;
}

/// Answers the controller's routine CALLs (and accepts every profile) until one with
/// `action` arrives, which is returned unanswered; the last TxProfile limit accepted
/// is kept in `last_tx`.
async fn answer_until(
    station: &mut ampwarden::simulate::client::StationClient,
    action: &str,
    last_tx: &mut Option<f64>,
) -> ampwarden::simulate::client::IncomingCall {
    loop {
        let call = station.next_call(LONG).await.expect("a call");
        if call.action == action {
            return call;
        }
        accept(station, &call, last_tx);
    }
}

fn accept(
    station: &ampwarden::simulate::client::StationClient,
    call: &ampwarden::simulate::client::IncomingCall,
    last_tx: &mut Option<f64>,
) {
    let profile = &call.payload["csChargingProfiles"];
    if call.action == "SetChargingProfile" && profile["chargingProfilePurpose"] == "TxProfile" {
        *last_tx = profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"].as_f64();
    }
    if let Some(answer) = ampwarden::simulate::client::routine_answer(&call.action, &call.payload) {
        station.answer(&call.unique_id, answer).expect("answer");
    }
}

#[tokio::test]
async fn a_recovery_never_raises_a_connector_that_a_later_round_lowered() {
    let body = "[auth]\nmode = \"accept_all\"\n[control]\ninterval_s = 1\nincrease_hold_s = 0\nresume_check_s = 5\n\n\
                [[zones]]\nid = \"main\"\nlimit_a = 32.0\n\n\
                [[stations]]\nid = \"EV01\"\nzone = \"main\"\nmax_current_a = 32.0\n";
    let app = TestApp::start("", body);
    let admin = Api::setup(&app).await;
    let mut station = app.manual("EV01").await;
    let mut last_tx = None;
    ok(station
        .call("BootNotification", boot_payload())
        .await
        .expect("boot"));
    let start =
        json!({ "connectorId": 1, "idTag": "ANY", "meterStart": 0, "timestamp": now_text() });
    let tx = station.call("StartTransaction", start);
    let tx = ok(tx.await.expect("answered"))["transactionId"].clone();
    // Raised from 0 to 32 A, and the vehicle does not resume.
    while last_tx != Some(32.0) {
        let call = answer_until(&mut station, "SetChargingProfile", &mut last_tx).await;
        accept(&station, &call, &mut last_tx);
    }
    let suspended = json!({ "connectorId": 1, "errorCode": "NoError", "status": "SuspendedEVSE" });
    ok(station
        .call("StatusNotification", suspended)
        .await
        .expect("answered"));
    let clear = answer_until(&mut station, "ClearChargingProfile", &mut last_tx).await;

    // While the recovery waits for the station, the breaker is lowered to 16 A.
    admin
        .put(
            "/api/v1/zones/main",
            json!({ "limit_a": 16.0, "static_ev_limit_a": 16.0 }),
        )
        .await
        .expect(200);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    station
        .answer(&clear.unique_id, json!({ "status": "Accepted" }))
        .expect("answer");
    // Everything that follows is accepted in order; once the station is at 16 A, nothing
    // may raise it again (the recovery's re-send of 32 A must not overtake the decrease).
    let settle = tokio::time::Instant::now() + Duration::from_secs(4);
    let mut in_force = Vec::new();
    while let Ok(call) = station
        .next_call(settle.saturating_duration_since(tokio::time::Instant::now()))
        .await
    {
        let before = last_tx;
        accept(&station, &call, &mut last_tx);
        if last_tx != before || call.action == "SetChargingProfile" {
            in_force.extend(last_tx);
        }
    }
    let lowered = in_force.iter().position(|&a| a <= 16.0);
    assert!(
        lowered.is_some_and(|i| in_force[i..].iter().all(|&a| a <= 16.0)),
        "transaction {tx}: limits taken after the lowering, in order: {in_force:?}"
    );
}

#[tokio::test]
async fn a_station_that_never_answers_does_not_hold_the_rounds_after_it() {
    // 100 A for three 32 A stations; EV01 answers no SetChargingProfile, with the default
    // 30 s call timeout. The zone is lowered twice in a row: the first lowering sends EV01
    // a decrease it never answers; the second must still reach EV02 and EV03 within a
    // few seconds — no round runs while a dispatch waits, so that wait is bounded — with
    // EV01 counted at its maximum.
    let app = TestApp::start("", &site(100.0, 3));
    let admin = Api::setup(&app).await;
    let timeline = Timeline::default();
    let evs = boot_fleet(&app, &timeline, 3, |i| Behaviour {
        silent: i == 1,
        ..Behaviour::default()
    })
    .await;
    for (i, ev) in evs.iter().enumerate().rev() {
        start_transaction(&timeline, ev, &format!("EV{:02}", i + 1), "ANY").await;
    }
    timeline
        .wait_for("EV02 and EV03 at their maximum", LONG, |l| {
            ["EV02", "EV03"]
                .iter()
                .all(|s| l.get(*s).is_some_and(|&a| approx(a, 32.0)))
        })
        .await;
    admin
        .put("/api/v1/zones/main", json!({"limit_a": 70.0}))
        .await
        .expect(200);
    timeline
        .wait_for("EV02 and EV03 lowered for 70 A", LONG, |l| {
            l["EV02"] + l["EV03"] <= 70.0 - 23.0
        })
        .await;
    admin
        .put("/api/v1/zones/main", json!({"limit_a": 50.0}))
        .await
        .expect(200);
    timeline
        .wait_for(
            "EV02 and EV03 within what 50 A leaves beside EV01 at 32 A",
            Duration::from_secs(10),
            |l| l["EV02"] + l["EV03"] <= 50.0 - 32.0 + 0.1,
        )
        .await;
}
