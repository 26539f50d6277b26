//! The CPO uplink against a real upstream central system (`common::cpo`, an OCPP 1.6J
//! server on the project's typed messages): what the stations do reaches the CPO with the
//! CPO's transaction ids, in order, exactly once, across an outage and a restart; the
//! CPO's commands reach the stations; its charging profiles cap the vehicles without being
//! forwarded.

use crate::common;

use std::net::SocketAddr;
use std::time::Duration;

use common::cpo::{Cpo, Received};
use common::http::Api;
use common::{ok, TestApp};
use serde_json::{json, Value};

fn site(cpo: &str, extra: &str) -> String {
    format!(
        r#"
[auth]
mode = "accept_all"

[uplink]
url = "{cpo}"
password = "cpo-key-0001"
meter_values_every_s = 1
{extra}

[control]
increase_hold_s = 1

[[zones]]
id = "main"
limit_a = 20.0

[[stations]]
id = "CP001"
zone = "main"
max_current_a = 32.0
"#
    )
}

fn at(seconds_ago: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::seconds(seconds_ago))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn of<'a>(received: &'a [Received], action: &str) -> Vec<&'a Received> {
    received.iter().filter(|r| r.action == action).collect()
}

fn energy(wh: i64) -> Value {
    json!([{"timestamp": at(0), "sampledValue": [{"value": wh.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}])
}

#[tokio::test]
async fn the_cpo_sees_the_station_and_its_transactions_under_its_own_ids() {
    let cpo = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let app = TestApp::start("", &site(&cpo.url(), ""));
    let station = app.booted("CP001").await;
    cpo.until("the boot", |r| !of(r, "BootNotification").is_empty())
        .await;
    assert!(
        cpo.auth_of("CP001")
            .is_some_and(|a| a.starts_with("Basic ")),
        "security profile 1"
    );
    let local = common::start_transaction(&station, 1, "TAG1", 100).await;
    let mv = json!({"connectorId": 1, "transactionId": local, "meterValue": energy(600)});
    ok(station.call("MeterValues", mv).await.expect("answered"));
    let stop =
        json!({"transactionId": local, "meterStop": 900, "timestamp": at(0), "idTag": "TAG1"});
    ok(station
        .call("StopTransaction", stop)
        .await
        .expect("answered"));
    cpo.until("the stop", |r| !of(r, "StopTransaction").is_empty())
        .await;
    let r = cpo.received();
    let start = of(&r, "StartTransaction");
    assert_eq!(start.len(), 1);
    assert_eq!(start[0].payload["idTag"], "TAG1");
    assert_eq!(start[0].payload["meterStart"], 100);
    // The CPO's id (9001), not the local one, in what follows.
    let mvs = of(&r, "MeterValues");
    assert!(!mvs.is_empty());
    assert!(
        mvs.iter().all(|m| m.payload["transactionId"] == 9001),
        "{mvs:?}"
    );
    assert_eq!(of(&r, "StopTransaction")[0].payload["transactionId"], 9001);
    assert_ne!(local, 9001, "the local record keeps its own id");
    // The boot came first, the statuses before the transaction.
    assert_eq!(r[0].action, "BootNotification");
    let api = Api::setup(&app).await;
    let uplink = api.get("/api/v1/uplink").await.expect(200).json();
    assert_eq!(uplink["stations"][0]["connected"], true, "{uplink}");
    assert_eq!(uplink["stations"][0]["backlog"], 0, "{uplink}");
}

#[tokio::test]
async fn what_happens_while_the_cpo_is_away_reaches_it_once_in_order_across_a_restart() {
    // The CPO's address, free now; it comes up later.
    let port = common::free_port();
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let mut app = TestApp::start(
        "",
        &site(&format!("ws://{addr}/ocpp"), "reconnect_max_s = 1"),
    );
    let station = app.booted("CP001").await;
    let mut locals = Vec::new();
    // Two transactions, then the controller is killed and restarted, then a third.
    for (i, wh) in [(0, 1000), (1, 3000)] {
        let tx = common::start_transaction(&station, 1, &format!("T{i}"), wh).await;
        let mv = json!({"connectorId": 1, "transactionId": tx, "meterValue": energy(wh + 500)});
        ok(station.call("MeterValues", mv).await.expect("answered"));
        let stop = json!({"transactionId": tx, "meterStop": wh + 900, "timestamp": at(0)});
        ok(station
            .call("StopTransaction", stop)
            .await
            .expect("answered"));
        locals.push(tx);
    }
    drop(station);
    app.restart();
    let station = app.booted("CP001").await;
    let tx = common::start_transaction(&station, 1, "T2", 5000).await;
    let stop = json!({"transactionId": tx, "meterStop": 5400, "timestamp": at(0)});
    ok(station
        .call("StopTransaction", stop)
        .await
        .expect("answered"));
    locals.push(tx);
    // The CPO comes back.
    let cpo = Cpo::start(addr).await;
    cpo.until("all three stops", |r| of(r, "StopTransaction").len() >= 3)
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let r = cpo.received();
    let flow: Vec<(String, Value)> = r
        .iter()
        .filter(|m| {
            matches!(
                m.action.as_str(),
                "StartTransaction" | "MeterValues" | "StopTransaction"
            )
        })
        .map(|m| {
            let key = match m.action.as_str() {
                "StartTransaction" => m.payload["idTag"].clone(),
                _ => m.payload["transactionId"].clone(),
            };
            (m.action.clone(), key)
        })
        .collect();
    assert_eq!(
        flow,
        vec![
            ("StartTransaction".into(), json!("T0")),
            ("MeterValues".into(), json!(9001)),
            ("StopTransaction".into(), json!(9001)),
            ("StartTransaction".into(), json!("T1")),
            ("MeterValues".into(), json!(9002)),
            ("StopTransaction".into(), json!(9002)),
            ("StartTransaction".into(), json!("T2")),
            ("StopTransaction".into(), json!(9003)),
        ],
        "exactly once, in order, with the CPO's ids"
    );
    let unique: std::collections::BTreeSet<&str> = r.iter().map(|m| m.unique_id.as_str()).collect();
    assert_eq!(unique.len(), r.len(), "no message sent twice");
    // The local records are the station's own.
    let api = Api::setup(&app).await;
    let listed = api.get("/api/v1/transactions").await.expect(200).json();
    let ids: Vec<i64> = listed["transactions"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["id"].as_i64())
        .collect();
    for l in &locals {
        assert!(ids.contains(l), "{l} in {ids:?}");
    }
}

#[tokio::test]
async fn the_cpo_commands_reach_the_station_and_its_profiles_cap_without_being_forwarded() {
    let cpo = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let app = TestApp::start("", &site(&cpo.url(), ""));
    let mut station = app.manual("CP001").await;
    let mut calls = station.take_calls();
    let answerer = station.answerer();
    // Answer every call of the controller like a station that takes its profiles.
    let seen = std::sync::Arc::new(std::sync::Mutex::new(Vec::<(String, Value)>::new()));
    let recorder = seen.clone();
    tokio::spawn(async move {
        while let Some(call) = calls.recv().await {
            let answer = ampwarden::simulate::client::routine_answer(&call.action, &call.payload)
                .unwrap_or_else(|| json!({"status": "Accepted"}));
            recorder
                .lock()
                .expect("lock")
                .push((call.action.clone(), call.payload.clone()));
            let _ = answerer.answer(&call.unique_id, answer);
        }
    });
    ok(station
        .call("BootNotification", common::boot_payload())
        .await
        .expect("boot"));
    let tx = common::start_transaction(&station, 1, "TAG1", 0).await;
    cpo.until("the start", |r| !of(r, "StartTransaction").is_empty())
        .await;
    let tx_limit = |seen: &[(String, Value)]| {
        seen.iter()
            .rev()
            .find(|(a, p)| {
                a == "SetChargingProfile"
                    && p["csChargingProfiles"]["chargingProfilePurpose"] == "TxProfile"
            })
            .and_then(|(_, p)| {
                p["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
                    .as_f64()
            })
    };
    let wait_limit = |want: f64| {
        let seen = seen.clone();
        async move {
            let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
            loop {
                let got = tx_limit(&seen.lock().expect("lock"));
                if got == Some(want) {
                    return;
                }
                assert!(
                    tokio::time::Instant::now() < deadline,
                    "TxProfile {want} A: last {got:?}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    // The site gives the vehicle its zone's 20 A.
    wait_limit(20.0).await;
    // The CPO's 10 A profile caps it; the CPO's profile itself never reaches the station.
    let profile = json!({"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 777, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": at(60), "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 10.0}]}}});
    assert_eq!(
        cpo.call("CP001", "SetChargingProfile", profile).await["status"],
        "Accepted"
    );
    wait_limit(10.0).await;
    // The operator sees why: the CPO's limit decides.
    let api = Api::setup(&app).await;
    let site = api.get("/api/v1/site").await.expect(200).json();
    let session = &site["sessions"][0];
    assert_eq!(session["cpo_limit"], 10.0, "{session}");
    assert!(
        session["why"]
            .as_str()
            .is_some_and(|w| w.starts_with("CPO limit")),
        "{session}"
    );
    assert!(
        !seen
            .lock()
            .expect("lock")
            .iter()
            .any(|(a, p)| a == "SetChargingProfile"
                && p["csChargingProfiles"]["chargingProfileId"] == 777),
        "the CPO's profile is not forwarded"
    );
    let composite = cpo
        .call(
            "CP001",
            "GetCompositeSchedule",
            json!({"connectorId": 1, "duration": 600}),
        )
        .await;
    assert_eq!(composite["status"], "Accepted", "{composite}");
    assert_eq!(
        composite["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"], 10.0,
        "{composite}"
    );
    // A CPO limit above the site's: the site's wins.
    let profile = json!({"connectorId": 1, "csChargingProfiles": {
        "chargingProfileId": 778, "stackLevel": 1, "chargingProfilePurpose": "TxDefaultProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": at(60), "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 30.0}]}}});
    assert_eq!(
        cpo.call("CP001", "SetChargingProfile", profile).await["status"],
        "Accepted"
    );
    wait_limit(20.0).await;
    let cleared = cpo
        .call("CP001", "ClearChargingProfile", json!({"id": 778}))
        .await;
    assert_eq!(cleared["status"], "Accepted");

    // Commands are relayed, and answered with the station's answer; RemoteStop names
    // the CPO's transaction id, the station gets its own.
    let remote = cpo
        .call(
            "CP001",
            "RemoteStartTransaction",
            json!({"connectorId": 1, "idTag": "CPOTAG"}),
        )
        .await;
    assert_eq!(remote["status"], "Accepted");
    let stop = cpo
        .call(
            "CP001",
            "RemoteStopTransaction",
            json!({"transactionId": 9001}),
        )
        .await;
    assert_eq!(stop["status"], "Accepted");
    let seen = seen.lock().expect("lock").clone();
    assert!(seen
        .iter()
        .any(|(a, p)| a == "RemoteStartTransaction" && p["idTag"] == "CPOTAG"));
    assert!(
        seen.iter()
            .any(|(a, p)| a == "RemoteStopTransaction" && p["transactionId"] == tx),
        "{seen:?}"
    );
    // Bad input from the CPO: answered per OCPP, the station side unaffected.
    let bad = cpo
        .call("CP001", "SetChargingProfile", json!({"connectorId": 1}))
        .await;
    assert!(bad["error"].is_string(), "{bad}");
    let unknown = cpo.call("CP001", "FlyToTheMoon", json!({})).await;
    assert_eq!(unknown["error"], "NotImplemented");

    // A TxProfile belongs to the transaction running on its connector, and ends with it.
    let tx_profile = |id: u32, transaction: Option<i64>| {
        let mut p = json!({"connectorId": 1, "csChargingProfiles": {
            "chargingProfileId": id, "stackLevel": 2, "chargingProfilePurpose": "TxProfile",
            "chargingProfileKind": "Absolute",
            "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": at(60), "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 8.0}]}}});
        if let Some(t) = transaction {
            p["csChargingProfiles"]["transactionId"] = json!(t);
        }
        p
    };
    let other = cpo
        .call("CP001", "SetChargingProfile", tx_profile(780, Some(4242)))
        .await;
    assert_eq!(
        other["status"], "Rejected",
        "another transaction's: {other}"
    );
    let mine = cpo
        .call("CP001", "SetChargingProfile", tx_profile(779, None))
        .await;
    assert_eq!(mine["status"], "Accepted", "{mine}");
    wait_limit(8.0).await;
    let stop = json!({"transactionId": tx, "meterStop": 900, "timestamp": at(0), "idTag": "TAG1"});
    ok(station
        .call("StopTransaction", stop)
        .await
        .expect("answered"));
    let idle = cpo
        .call("CP001", "SetChargingProfile", tx_profile(781, None))
        .await;
    assert_eq!(idle["status"], "Rejected", "no transaction running: {idle}");
    // The next transaction is not held by the last one's profile (the defaults were
    // replaced and cleared above): the site's 20 A.
    let next = common::start_transaction(&station, 1, "TAG2", 1000).await;
    assert_ne!(next, tx);
    wait_limit(20.0).await;
}

#[tokio::test]
async fn a_read_only_uplink_refuses_every_command_and_still_reports() {
    let cpo = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let app = TestApp::start("", &site(&cpo.url(), "read_only = true"));
    let station = app.booted("CP001").await;
    cpo.until("the boot", |r| !of(r, "BootNotification").is_empty())
        .await;
    let reset = cpo.call("CP001", "Reset", json!({"type": "Soft"})).await;
    assert_eq!(reset["error"], "SecurityError");
    let tx = common::start_transaction(&station, 1, "TAG1", 0).await;
    assert!(tx > 0);
    cpo.until("the start", |r| !of(r, "StartTransaction").is_empty())
        .await;
}

/// `site()` with the CPO deciding on id tags.
fn site_asking_the_cpo(cpo: &str, uplink_extra: &str) -> String {
    site(cpo, uplink_extra).replace(
        "[auth]\nmode = \"accept_all\"",
        "[auth]\nmode = \"uplink\"\n\n[[badges]]\nid_tag = \"LOCAL1\"",
    )
}

async fn authorize(station: &ampwarden::simulate::client::StationClient, tag: &str) -> Value {
    let answer = ok(station
        .call("Authorize", json!({"idTag": tag}))
        .await
        .expect("answered"));
    answer["idTagInfo"]["status"].clone()
}

async fn uplink_state(api: &Api) -> Value {
    api.get("/api/v1/uplink").await.expect(200).json()
}

#[tokio::test]
async fn the_cpo_decides_on_id_tags_while_reachable_and_the_offline_policy_after() {
    let cpo = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let app = TestApp::start(
        "",
        &site_asking_the_cpo(&cpo.url(), "auth_timeout_s = 2\nreconnect_max_s = 1"),
    );
    let station = app.booted("CP001").await;
    let api = Api::setup(&app).await;
    cpo.until("the boot", |r| !of(r, "BootNotification").is_empty())
        .await;
    // Online: the CPO's answer is final.
    assert_eq!(authorize(&station, "GOOD").await, "Accepted");
    assert_eq!(authorize(&station, "CPOBLOCKED").await, "Blocked");
    let asked: Vec<Value> = of(&cpo.received(), "Authorize")
        .iter()
        .map(|r| r.payload["idTag"].clone())
        .collect();
    assert_eq!(
        asked,
        vec![json!("GOOD"), json!("CPOBLOCKED")],
        "asked the CPO, once each"
    );
    // The CPO goes away: the local list, then the CPO's cached answers decide.
    drop(cpo);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while uplink_state(&api).await["stations"][0]["connected"] == true {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the uplink sees the CPO gone"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(authorize(&station, "GOOD").await, "Accepted", "cached");
    assert_eq!(authorize(&station, "CPOBLOCKED").await, "Blocked", "cached");
    assert_eq!(
        authorize(&station, "LOCAL1").await,
        "Accepted",
        "the local list"
    );
    assert_eq!(
        authorize(&station, "NEVERSEEN").await,
        "Invalid",
        "known to neither"
    );
    // A transaction started offline gets a local id and waits in the journal.
    let tx = common::start_transaction(&station, 1, "GOOD", 0).await;
    assert!(tx > 0);
    let state = uplink_state(&api).await;
    assert!(state["backlog"].as_u64().is_some_and(|b| b >= 1), "{state}");
}

#[tokio::test]
async fn the_offline_policy_can_accept_or_reject_everyone() {
    for (policy, want) in [("accept", "Accepted"), ("reject", "Invalid")] {
        // No CPO listens at this address.
        let url = format!("ws://127.0.0.1:{}/ocpp", common::free_port());
        let config = site_asking_the_cpo(&url, "").replace(
            "[auth]\nmode = \"uplink\"",
            &format!("[auth]\nmode = \"uplink\"\noffline = \"{policy}\""),
        );
        let app = TestApp::start("", &config);
        let station = app.booted("CP001").await;
        assert_eq!(authorize(&station, "NEVERSEEN").await, want, "{policy}");
        let local = if policy == "accept" {
            "Accepted"
        } else {
            "Invalid"
        };
        assert_eq!(
            authorize(&station, "LOCAL1").await,
            local,
            "{policy}: the local list too"
        );
    }
}

#[tokio::test]
async fn a_transaction_the_cpo_refuses_is_stopped_when_so_configured() {
    let cpo = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let app = TestApp::start(
        "",
        &site_asking_the_cpo(&cpo.url(), "rejected_start = \"stop\""),
    );
    let mut station = app.manual("CP001").await;
    let mut calls = station.take_calls();
    let answerer = station.answerer();
    let stops = std::sync::Arc::new(std::sync::Mutex::new(Vec::<Value>::new()));
    let recorder = stops.clone();
    tokio::spawn(async move {
        while let Some(call) = calls.recv().await {
            if call.action == "RemoteStopTransaction" {
                recorder.lock().expect("lock").push(call.payload.clone());
            }
            let answer = ampwarden::simulate::client::routine_answer(&call.action, &call.payload)
                .unwrap_or_else(|| json!({"status": "Accepted"}));
            let _ = answerer.answer(&call.unique_id, answer);
        }
    });
    ok(station
        .call("BootNotification", common::boot_payload())
        .await
        .expect("boot"));
    cpo.until("the boot", |r| !of(r, "BootNotification").is_empty())
        .await;
    // No Authorize first: the station starts at once; the CPO's answer to the
    // StartTransaction decides.
    let tx = common::start_transaction(&station, 1, "CPOBLOCKED", 0).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while stops.lock().expect("lock").is_empty() {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the refused transaction is stopped"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        stops.lock().expect("lock")[0]["transactionId"],
        tx,
        "the station's own id"
    );
    let api = Api::setup(&app).await;
    let listed = api.get("/api/v1/transactions").await.expect(200).json();
    let record = listed["transactions"]
        .as_array()
        .expect("list")
        .iter()
        .find(|t| t["id"] == tx)
        .cloned()
        .expect("the record");
    assert!(
        record["notes"]
            .to_string()
            .contains("refused by the CPO (Blocked"),
        "{record}"
    );
    // The next Authorize of that tag is refused from the CPO's answer, even offline.
    drop(cpo);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(authorize(&station, "CPOBLOCKED").await, "Blocked");
}

#[tokio::test]
async fn a_cpo_that_never_answers_times_out_and_the_stations_do_not_wait_for_it() {
    let cpo = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    cpo.go_silent(true);
    let app = TestApp::start(
        "",
        &site_asking_the_cpo(
            &cpo.url(),
            "call_timeout_s = 1\nreconnect_max_s = 1\nauth_timeout_s = 1",
        )
        .replace(
            "[auth]\nmode = \"uplink\"",
            "[auth]\nmode = \"uplink\"\noffline = \"accept\"",
        ),
    );
    let station = app.booted("CP001").await;
    let api = Api::setup(&app).await;
    // The boot is never answered: the link gives up on the call and reconnects.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while cpo.connections() < 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "reconnects after the timeout"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let state = uplink_state(&api).await;
    assert!(
        state["stations"][0]["last_error"]
            .as_str()
            .unwrap_or("")
            .contains("did not answer"),
        "{state}"
    );
    // The station side does not wait: the offline policy answers, the transaction runs.
    assert_eq!(authorize(&station, "ANY").await, "Accepted");
    let tx = common::start_transaction(&station, 1, "ANY", 0).await;
    assert!(tx > 0);
    // The CPO wakes up: what was owed arrives.
    cpo.go_silent(false);
    cpo.until("the start", |r| {
        r.iter()
            .any(|m| m.action == "StartTransaction" && m.payload["idTag"] == "ANY")
    })
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while uplink_state(&api).await["backlog"] != 0 {
        assert!(tokio::time::Instant::now() < deadline, "the backlog drains");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn stations_connect_as_their_identity_and_by_route_and_survive_bad_frames() {
    let main = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let other = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let extra = format!(
        "[uplink.stations.CP001]\nidentity = \"DE-AMP-E0001\"\npassword = \"own-key-0001\"\n\n\
         [[uplink.routes]]\nid = \"fleet\"\nurl = \"{}\"\nread_only = true\nstations = [\"CP002\"]\n",
        other.url()
    );
    let config = format!(
        "{}\n[[stations]]\nid = \"CP002\"\nzone = \"main\"\nmax_current_a = 16.0\n",
        site(&main.url(), &extra)
    );
    let app = TestApp::start("", &config);
    let _one = app.booted("CP001").await;
    let _two = app.booted("CP002").await;
    main.until("CP001's boot", |r| {
        r.iter().any(|m| m.station == "DE-AMP-E0001")
    })
    .await;
    other
        .until("CP002's boot", |r| r.iter().any(|m| m.station == "CP002"))
        .await;
    assert!(
        main.received().iter().all(|m| m.station == "DE-AMP-E0001"),
        "CP002 goes to its route only"
    );
    use base64::Engine as _;
    let basic = base64::engine::general_purpose::STANDARD.encode("DE-AMP-E0001:own-key-0001");
    assert_eq!(main.auth_of("DE-AMP-E0001"), Some(format!("Basic {basic}")));
    let api = Api::setup(&app).await;
    let state = uplink_state(&api).await;
    let two = state["stations"]
        .as_array()
        .expect("stations")
        .iter()
        .find(|s| s["station"] == "CP002")
        .cloned()
        .expect("CP002");
    assert_eq!(two["route"], "fleet", "{state}");
    // The route is read-only: commands refused.
    assert_eq!(
        other.call("CP002", "Reset", json!({"type": "Soft"})).await["error"],
        "SecurityError"
    );
    // Bad frames from the CPO: each answered per OCPP where it can be, the link stays.
    let id = "DE-AMP-E0001";
    let bad_value = main
        .call_raw(id, "x1", r#"[2,"x1","Reset",{"type":"Sideways"}]"#)
        .await;
    assert!(
        bad_value.as_ref().is_some_and(|v| v["error"].is_string()),
        "{bad_value:?}"
    );
    let no_payload = main.call_raw(id, "x2", r#"[2,"x2","Reset"]"#).await;
    assert!(
        no_payload.as_ref().is_some_and(|v| v["error"].is_string()),
        "{no_payload:?}"
    );
    assert_eq!(
        main.call_raw(id, "x3", "this is not json").await,
        None,
        "no id to answer"
    );
    let connections = main.connections();
    let absorbed = main
        .call(
            id,
            "ChangeConfiguration",
            json!({"key": "MeterValueSampleInterval", "value": "5"}),
        )
        .await;
    assert_eq!(
        absorbed["status"], "Accepted",
        "still linked; the interval is absorbed here"
    );
    assert_eq!(main.connections(), connections, "the link was not dropped");
}

/// The acceptance run of the store-and-forward: a fleet charges for ten simulated minutes
/// (sessions starting and stopping) while the CPO is down; the controller process is
/// killed (SIGKILL) in the middle and started again; then the CPO comes up. Everything the
/// stations told the site reaches the CPO once, in order per station, under the CPO's
/// ids, and the local records do not change.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_ten_minute_outage_with_a_kill_reaches_the_cpo_exactly_once_in_order() {
    use ampwarden::simulate::fleet::Fleet;
    use ampwarden::simulate::scenario::{stations_toml, Scenario};
    use ampwarden::simulate::vehicle::VehicleMix;
    use ampwarden_actors::store::{Store, TransactionFilter};
    use common::process::{admin_api, Controller};
    use std::collections::{BTreeMap, BTreeSet};

    let scenario = Scenario {
        stations: 8,
        id_prefix: "OUT".into(),
        seed: 23,
        // Ten simulated minutes in 20 real seconds; visits of one to three minutes.
        speedup: 30.0,
        summary_every_s: 0,
        meter_values_every_s: 1,
        vehicles: VehicleMix {
            mean_absence_minutes: 1.0,
            stay_hours: (1.0 / 60.0, 3.0 / 60.0),
            ..VehicleMix::default()
        },
        ..Scenario::default()
    };
    let port = common::free_port();
    let body = format!(
        "[auth]\nmode = \"accept_all\"\n\n\
         [uplink]\nurl = \"ws://127.0.0.1:{port}/ocpp\"\nmeter_values_every_s = 1\nreconnect_max_s = 1\nrate_per_s = 500\n\n\
         [[zones]]\nid = \"main\"\nlimit_a = 1000.0\n\n{}",
        stations_toml(&scenario.plan(), |_| "main")
    );
    let dir = tempfile::tempdir().expect("dir");
    let mut site = Controller::new(dir.path(), "site", &body);
    let url = format!("ws://127.0.0.1:{}/ocpp", site.ocpp_port());
    let fleet = Fleet::start(&url, scenario, None)
        .await
        .expect("fleet starts");
    tokio::time::sleep(Duration::from_secs(10)).await;
    site.kill();
    tokio::time::sleep(Duration::from_secs(1)).await;
    site.start();
    tokio::time::sleep(Duration::from_secs(10)).await;
    let report = fleet.stop().await;
    assert!(
        report.transactions.len() >= 10,
        "sessions started and stopped: {}",
        report.transactions.len()
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let records = |site: &mut Controller| {
        site.stop();
        let store = Store::open(&site.data).expect("store opens");
        let all = store
            .transactions(&TransactionFilter::default())
            .expect("transactions");
        let owed: usize = all
            .iter()
            .map(|t| store.journal_len(&t.station))
            .max()
            .unwrap_or(0);
        (all, owed)
    };
    let (before, owed) = records(&mut site);
    assert!(owed > 0, "the journal holds what the CPO is owed");
    assert!(
        before.iter().all(|t| t.stop.is_some()),
        "every session stopped"
    );
    site.start();

    // The CPO comes up: the backlog drains.
    let cpo = Cpo::start(format!("127.0.0.1:{port}").parse().expect("addr")).await;
    let api = admin_api(&site).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let state = uplink_state(&api).await;
        let linked = state["stations"]
            .as_array()
            .is_some_and(|s| s.iter().all(|s| s["booted"] == true));
        if linked && state["backlog"] == 0 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the backlog drains: {state}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let (after, _) = records(&mut site);
    assert_eq!(before, after, "the local records are unchanged");

    let received = cpo.received();
    let journaled: Vec<&Received> = received
        .iter()
        .filter(|m| m.unique_id.starts_with('j'))
        .collect();
    let journal_ids: BTreeSet<(&str, &str)> = journaled
        .iter()
        .map(|m| (m.station.as_str(), m.unique_id.as_str()))
        .collect();
    assert_eq!(
        journal_ids.len(),
        journaled.len(),
        "no journal entry sent twice"
    );
    // Per station, in the order the CPO got them: each transaction's start, its meter
    // values, its stop — under the id the CPO gave.
    let mut by_station: BTreeMap<&str, Vec<&Received>> = BTreeMap::new();
    for m in &journaled {
        by_station.entry(m.station.as_str()).or_default().push(m);
    }
    let mut meter_values = 0;
    for t in &before {
        let flow = by_station
            .get(t.station.as_str())
            .expect("the station reported");
        let starts: Vec<usize> = flow
            .iter()
            .enumerate()
            .filter(|(_, m)| {
                m.action == "StartTransaction"
                    && m.payload["meterStart"] == t.meter_start_wh
                    && m.payload["idTag"] == t.id_tag.as_str()
            })
            .filter(|(_, m)| {
                m.payload["timestamp"]
                    .as_str()
                    .and_then(|s| chrono::DateTime::parse_from_rfc3339(s).ok())
                    .is_some_and(|at| at == t.started_at)
            })
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            starts.len(),
            1,
            "transaction {} started once at the CPO: {starts:?}",
            t.id
        );
        let cpo_id = {
            // The CPO numbers its transactions in the order the starts arrive.
            let all_starts: Vec<&&Received> = journaled
                .iter()
                .filter(|m| m.action == "StartTransaction")
                .collect();
            let pos = all_starts
                .iter()
                .position(|m| std::ptr::eq(**m, flow[starts[0]]))
                .expect("start");
            9001 + i64::try_from(pos).expect("pos")
        };
        let stops: Vec<usize> = flow
            .iter()
            .enumerate()
            .filter(|(_, m)| m.action == "StopTransaction" && m.payload["transactionId"] == cpo_id)
            .map(|(i, _)| i)
            .collect();
        assert_eq!(
            stops.len(),
            1,
            "transaction {} (CPO {cpo_id}) stopped once",
            t.id
        );
        let stop = &flow[stops[0]];
        assert_eq!(
            stop.payload["meterStop"],
            t.stop.as_ref().expect("stopped").meter_stop_wh
        );
        for (i, _) in flow
            .iter()
            .enumerate()
            .filter(|(_, m)| m.action == "MeterValues" && m.payload["transactionId"] == cpo_id)
        {
            assert!(
                starts[0] < i && i < stops[0],
                "transaction {}: meter values between its start and its stop",
                t.id
            );
            meter_values += 1;
        }
    }
    assert!(meter_values > 0, "meter values reached the CPO");
    let starts = journaled
        .iter()
        .filter(|m| m.action == "StartTransaction")
        .count();
    assert_eq!(
        starts,
        before.len(),
        "no transaction the site does not know"
    );
    eprintln!(
        "outage replay: {} transactions, {meter_values} meter values, {} journal messages to the CPO",
        before.len(),
        journaled.len()
    );
}

#[tokio::test]
async fn the_cpo_sample_interval_paces_what_goes_upstream_not_the_station() {
    let cpo = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let mut app = TestApp::start(
        "",
        &site(&cpo.url(), "").replace("meter_values_every_s = 1", "meter_values_every_s = 3600"),
    );
    let station = app.booted("CP001").await;
    cpo.until("the boot", |r| !of(r, "BootNotification").is_empty())
        .await;
    let tx = common::start_transaction(&station, 1, "TAG1", 0).await;
    let reading =
        |wh: i64| json!({"connectorId": 1, "transactionId": tx, "meterValue": energy(wh)});
    ok(station
        .call("MeterValues", reading(100))
        .await
        .expect("answered"));
    ok(station
        .call("MeterValues", reading(200))
        .await
        .expect("answered"));
    cpo.until("the first reading", |r| of(r, "MeterValues").len() == 1)
        .await;
    let bad = cpo
        .call(
            "CP001",
            "ChangeConfiguration",
            json!({"key": "MeterValueSampleInterval", "value": "soon"}),
        )
        .await;
    assert_eq!(bad["status"], "Rejected");
    let set = cpo
        .call(
            "CP001",
            "ChangeConfiguration",
            json!({"key": "MeterValueSampleInterval", "value": "1"}),
        )
        .await;
    assert_eq!(set["status"], "Accepted");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    ok(station
        .call("MeterValues", reading(300))
        .await
        .expect("answered"));
    cpo.until("the reading at the CPO's interval", |r| {
        of(r, "MeterValues").len() == 2
    })
    .await;
    let values: Vec<Value> = of(&cpo.received(), "MeterValues")
        .iter()
        .map(|m| m.payload["meterValue"][0]["sampledValue"][0]["value"].clone())
        .collect();
    assert_eq!(values, vec![json!("100"), json!("300")]);
    // The CPO's interval is kept across a restart.
    drop(station);
    app.restart();
    let station = app.booted("CP001").await;
    for wh in [400, 500] {
        tokio::time::sleep(Duration::from_millis(1100)).await;
        ok(station
            .call("MeterValues", reading(wh))
            .await
            .expect("answered"));
    }
    cpo.until(
        "both readings after the restart, at the CPO's interval",
        |r| of(r, "MeterValues").len() == 4,
    )
    .await;
}

#[tokio::test]
async fn a_stations_vendor_data_is_answered_by_the_cpo_and_unknown_when_it_cannot_be() {
    let cpo = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let app = TestApp::start("", &site(&cpo.url(), "call_timeout_s = 1"));
    let station = app.booted("CP001").await;
    let api = Api::setup(&app).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    while uplink_state(&api).await["stations"][0]["booted"] != true {
        assert!(
            tokio::time::Instant::now() < deadline,
            "the CPO accepts the boot"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let transfer =
        |vendor: &str| json!({"vendorId": vendor, "messageId": "tariff", "data": "hello"});
    // The CPO's answer, data and all, reaches the station.
    let answer = ok(station
        .call("DataTransfer", transfer("org.example.cpo"))
        .await
        .expect("answered"));
    assert_eq!(answer["status"], "Accepted", "{answer}");
    assert_eq!(answer["data"], "seen hello", "{answer}");
    let seen = of(&cpo.received(), "DataTransfer")
        .into_iter()
        .map(|r| r.payload.clone())
        .collect::<Vec<_>>();
    assert_eq!(seen, [transfer("org.example.cpo")]);
    let answer = ok(station
        .call("DataTransfer", transfer("com.other"))
        .await
        .expect("answered"));
    assert_eq!(
        answer["status"], "UnknownVendorId",
        "the CPO's own answer: {answer}"
    );
    // A CPO that does not answer: the station hears UnknownVendorId, not silence.
    cpo.go_silent(true);
    let answer = ok(station
        .call("DataTransfer", transfer("org.example.cpo"))
        .await
        .expect("answered"));
    assert_eq!(answer["status"], "UnknownVendorId", "{answer}");
    assert!(answer.get("data").is_none(), "{answer}");
}
