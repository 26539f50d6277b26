//! Stations as outside simulators and real firmware behave: a StartTransaction retried
//! because its answer seemed lost, a new transaction on a connector whose last one was
//! never stopped, a connector back to Available without a StopTransaction, a stop that
//! comes after the controller closed the transaction — and the OCPP 1.6 security
//! extension's notifications. The transactions CSV must match what the stations know.

use crate::common;

use std::time::{Duration, Instant};

use common::http::Api;
use common::{error_code, ok, TestApp, SMALL_SITE};
use serde_json::{json, Value};

fn at(seconds_ago: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::seconds(seconds_ago))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn start(connector: u32, tag: &str, meter_start: i64, timestamp: &str) -> Value {
    json!({"connectorId": connector, "idTag": tag, "meterStart": meter_start, "timestamp": timestamp})
}

async fn transactions(api: &Api, station: &str) -> Vec<Value> {
    api.get(&format!("/api/v1/transactions?station={station}"))
        .await
        .expect(200)
        .json()["transactions"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    reader
        .records()
        .map(|r| r.expect("a CSV row").iter().map(str::to_owned).collect())
        .collect()
}

#[tokio::test]
async fn a_retried_start_gets_the_same_transaction_and_a_forgotten_one_is_closed() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let station = app.booted("CP001").await;
    let t1 = at(600);
    // The station retries its StartTransaction (it thinks the answer was lost).
    let first = ok(station
        .call("StartTransaction", start(1, "GOODTAG", 1000, &t1))
        .await
        .expect("answered"));
    let again = ok(station
        .call("StartTransaction", start(1, "GOODTAG", 1000, &t1))
        .await
        .expect("answered"));
    let a = first["transactionId"].as_i64().expect("id");
    assert_eq!(
        again["transactionId"].as_i64(),
        Some(a),
        "the same transaction"
    );
    assert_eq!(again["idTagInfo"]["status"], "Accepted");
    let listed = transactions(&admin, "CP001").await;
    assert_eq!(listed.len(), 1, "{listed:?}");

    // Energy comes in, then a new transaction on the same connector without a stop.
    let mv = json!({"connectorId": 1, "transactionId": a, "meterValue": [{"timestamp": at(300),
        "sampledValue": [{"value": "4000", "measurand": "Energy.Active.Import.Register", "unit": "Wh"}]}]});
    ok(station.call("MeterValues", mv).await.expect("answered"));
    let t2 = at(200);
    let second = ok(station
        .call("StartTransaction", start(1, "GOODTAG", 4000, &t2))
        .await
        .expect("answered"));
    let b = second["transactionId"].as_i64().expect("id");
    assert_ne!(a, b);
    let stop_b = json!({"transactionId": b, "meterStop": 6500, "timestamp": at(100), "idTag": "GOODTAG", "reason": "Local"});
    ok(station
        .call("StopTransaction", stop_b)
        .await
        .expect("answered"));
    // The station's stop of the first one, from its offline queue, comes last.
    let stop_a =
        json!({"transactionId": a, "meterStop": 4100, "timestamp": at(250), "reason": "Local"});
    ok(station
        .call("StopTransaction", stop_a)
        .await
        .expect("acknowledged"));

    let listed = transactions(&admin, "CP001").await;
    assert_eq!(listed.len(), 2, "{listed:?}");
    let find = |id: i64| {
        listed
            .iter()
            .find(|t| t["id"].as_i64() == Some(id))
            .cloned()
            .expect("listed")
    };
    let ta = find(a);
    assert_eq!(
        ta["stop"]["meter_stop_wh"], 4000,
        "closed with its metered energy: {ta}"
    );
    assert_eq!(ta["stop"]["reason"], "Other");
    let closed_at =
        chrono::DateTime::parse_from_rfc3339(ta["stop"]["at"].as_str().expect("at")).expect("time");
    let t2_time = chrono::DateTime::parse_from_rfc3339(&t2).expect("time");
    assert_eq!(closed_at, t2_time, "closed when the next one started");
    let notes = ta["notes"].to_string();
    assert!(
        notes.contains("repeated") && notes.contains("new transaction started on connector 1"),
        "{notes}"
    );
    assert_eq!(find(b)["stop"]["meter_stop_wh"], 6500);

    // The CSV holds what the station knows: two transactions, none open.
    let csv = admin
        .get("/api/v1/transactions.csv?station=CP001")
        .await
        .expect(200)
        .body;
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), 2, "{csv}");
    assert!(
        rows.iter().all(|r| !r[6].is_empty()),
        "every transaction stopped: {csv}"
    );
    assert!(
        csv.lines()
            .next()
            .is_some_and(|h| h.ends_with(",stop_reason,notes")),
        "{csv}"
    );
    let logs = admin
        .get("/api/v1/logs?station=CP001")
        .await
        .expect(200)
        .json()
        .to_string();
    assert!(logs.contains("StartTransaction repeated"), "{logs}");
    assert!(logs.contains("closed without a StopTransaction"), "{logs}");
    assert!(
        logs.contains("which the controller had already closed"),
        "{logs}"
    );
}

#[tokio::test]
async fn a_connector_back_to_available_closes_its_transaction_after_the_grace() {
    let app = TestApp::start("orphan_transaction_grace_s = 2", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let station = app.booted("CP002").await;
    let begun = ok(station
        .call("StartTransaction", start(1, "GOODTAG", 500, &at(60)))
        .await
        .expect("answered"));
    let tx = begun["transactionId"].as_i64().expect("id");
    let charging = json!({"connectorId": 1, "errorCode": "NoError", "status": "Charging", "timestamp": at(30)});
    ok(station
        .call("StatusNotification", charging)
        .await
        .expect("answered"));
    let available_at = at(1);
    let available = json!({"connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": available_at});
    ok(station
        .call("StatusNotification", available)
        .await
        .expect("answered"));
    // Not at once: a StopTransaction may still come just after the status.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        transactions(&admin, "CP002").await[0]["stop"].is_null(),
        "still open within the grace"
    );
    let started = Instant::now();
    loop {
        let t = transactions(&admin, "CP002").await;
        if !t[0]["stop"].is_null() {
            assert_eq!(t[0]["id"].as_i64(), Some(tx));
            let stopped =
                chrono::DateTime::parse_from_rfc3339(t[0]["stop"]["at"].as_str().expect("at"))
                    .expect("time");
            assert_eq!(
                stopped,
                chrono::DateTime::parse_from_rfc3339(&available_at).expect("time")
            );
            assert!(
                t[0]["notes"].to_string().contains("reported Available"),
                "{}",
                t[0]
            );
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "closed after the grace"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The supervisor no longer counts a session there.
    let deadline = Instant::now() + Duration::from_secs(3);
    while app
        .site_status()
        .await
        .sessions
        .iter()
        .any(|s| s.station.as_str() == "CP002")
    {
        assert!(Instant::now() < deadline, "the session ended");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn security_extension_notifications_are_accepted_stored_and_counted() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let station = app.booted("CP003").await;
    let critical = json!({"type": "TamperDetectionActivated", "timestamp": at(5), "techInfo": "enclosure opened"});
    assert_eq!(
        ok(station
            .call("SecurityEventNotification", critical)
            .await
            .expect("answered")),
        json!({})
    );
    let routine = json!({"type": "InvalidMessages", "timestamp": at(4)});
    ok(station
        .call("SecurityEventNotification", routine)
        .await
        .expect("answered"));
    let firmware = json!({"status": "InvalidSignature", "requestId": 12});
    ok(station
        .call("SignedFirmwareStatusNotification", firmware)
        .await
        .expect("answered"));
    let log = json!({"status": "Uploaded", "requestId": 7});
    ok(station
        .call("LogStatusNotification", log)
        .await
        .expect("answered"));
    // As strict as the extension's schemas.
    let no_type = json!({"timestamp": at(1)});
    assert_eq!(
        error_code(
            station
                .call("SecurityEventNotification", no_type)
                .await
                .expect("answered")
        ),
        "OccurenceConstraintViolation"
    );
    let long_type = json!({"type": "X".repeat(51), "timestamp": at(1)});
    assert_eq!(
        error_code(
            station
                .call("SecurityEventNotification", long_type)
                .await
                .expect("answered")
        ),
        "PropertyConstraintViolation"
    );
    let bad_status = json!({"status": "Exploded"});
    assert_eq!(
        error_code(
            station
                .call("LogStatusNotification", bad_status)
                .await
                .expect("answered")
        ),
        "PropertyConstraintViolation"
    );

    let logs = admin
        .get("/api/v1/logs?station=CP003")
        .await
        .expect(200)
        .json()
        .to_string();
    assert!(
        logs.contains("security event (critical) TamperDetectionActivated"),
        "{logs}"
    );
    assert!(logs.contains("enclosure opened"), "{logs}");
    assert!(logs.contains("security event InvalidMessages"), "{logs}");
    assert!(
        logs.contains("signed firmware update: InvalidSignature (request 12)"),
        "{logs}"
    );
    assert!(logs.contains("log upload: Uploaded (request 7)"), "{logs}");
    let live = admin.get("/api/v1/stations/CP003").await.expect(200).json();
    let security = &live["live"]["security"];
    assert_eq!(security["events"], 2, "{security}");
    assert_eq!(security["critical"], 1);
    assert_eq!(security["last_critical"][0], "TamperDetectionActivated");
    let metrics = Api::anonymous(&app).get("/metrics").await.expect(200).body;
    assert!(
        metrics.contains("ampwarden_security_events_total{critical=\"true\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("ampwarden_security_events_total{critical=\"false\"} 1"));
    assert!(metrics.contains("ampwarden_station_critical_security_event{station=\"CP003\"}"));
}

#[tokio::test]
async fn operators_ask_for_logs_triggers_and_signed_firmware() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    // A station that answers only what the test answers (no boot needed for commands).
    let mut station = app.manual("CP001").await;

    let action = |name: &'static str, body: Value| {
        let admin = &admin;
        async move {
            admin
                .post(&format!("/api/v1/stations/CP001/actions/{name}"), body)
                .await
        }
    };
    let request = action(
        "get_log",
        json!({"location": "https://logs.example.org/upload", "log_type": "SecurityLog", "request_id": 7}),
    );
    let respond = async {
        let call = station
            .next_call_of("GetLog", Duration::from_secs(5))
            .await
            .expect("GetLog sent");
        assert_eq!(call.payload["logType"], "SecurityLog");
        assert_eq!(call.payload["requestId"], 7);
        assert_eq!(
            call.payload["log"]["remoteLocation"],
            "https://logs.example.org/upload"
        );
        station
            .answer(
                &call.unique_id,
                json!({"status": "Accepted", "filename": "sec.log"}),
            )
            .expect("answered");
    };
    let (answer, ()) = tokio::join!(request, respond);
    assert_eq!(answer.expect(200).json()["status"], "Accepted");

    let request = action(
        "trigger",
        json!({"message": "StatusNotification", "connector": 1}),
    );
    let respond = async {
        let call = station
            .next_call_of("ExtendedTriggerMessage", Duration::from_secs(5))
            .await
            .expect("sent");
        assert_eq!(
            call.payload,
            json!({"requestedMessage": "StatusNotification", "connectorId": 1})
        );
        station
            .answer(&call.unique_id, json!({"status": "NotImplemented"}))
            .expect("answered");
    };
    let (answer, ()) = tokio::join!(request, respond);
    assert_eq!(answer.expect(200).json()["status"], "NotImplemented");

    let request = action(
        "signed_update_firmware",
        json!({"location": "https://fw.example.org/2.0.bin", "signing_certificate": "-----BEGIN CERTIFICATE-----", "signature": "c2ln"}),
    );
    let respond = async {
        let call = station
            .next_call_of("SignedUpdateFirmware", Duration::from_secs(5))
            .await
            .expect("sent");
        assert_eq!(call.payload["firmware"]["signature"], "c2ln");
        station
            .answer(&call.unique_id, json!({"status": "InvalidCertificate"}))
            .expect("answered");
    };
    let (answer, ()) = tokio::join!(request, respond);
    assert_eq!(answer.expect(200).json()["status"], "InvalidCertificate");

    // Bad bodies name their field; nothing is sent.
    let r = action("trigger", json!({"message": "Everything"})).await;
    assert_eq!(r.error(400).as_deref(), Some("message"));
    let r = action("get_log", json!({"location": "x".repeat(600)})).await;
    assert_eq!(r.error(400).as_deref(), Some("location"));
}

/// Twenty simulated stations charging vehicles that come and go, as an outside simulator
/// with an automatic transaction generator would: a fifth of their StartTransactions
/// sent twice, a fifth of their StopTransactions never sent.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fleet_that_retries_starts_and_forgets_stops_leaves_the_record_it_knows() {
    use ampwarden::simulate::fleet::Fleet;
    use ampwarden::simulate::scenario::{stations_toml, Churn, Scenario};
    use ampwarden::simulate::vehicle::VehicleMix;

    let scenario = Scenario {
        stations: 20,
        id_prefix: "ATG".into(),
        seed: 17,
        // One simulated hour per second: visits of a quarter to half an hour.
        speedup: 3600.0,
        summary_every_s: 0,
        vehicles: VehicleMix {
            mean_absence_minutes: 10.0,
            stay_hours: (0.25, 0.5),
            ..VehicleMix::default()
        },
        churn: Churn {
            retry_start_share: 0.2,
            forget_stop_share: 0.2,
            ..Churn::default()
        },
        ..Scenario::default()
    };
    let body = format!(
        "[control]\nmeter_values_interval_s = 1\n\n[auth]\nmode = \"accept_all\"\n\n\
         [[zones]]\nid = \"main\"\nlimit_a = 1000.0\n\n{}",
        stations_toml(&scenario.plan(), |_| "main")
    );
    let app = TestApp::start("orphan_transaction_grace_s = 2", &body);
    let url = format!("ws://{}/ocpp", app.app().ocpp_addr);
    let fleet = Fleet::start(&url, scenario, None)
        .await
        .expect("fleet starts");
    let deadline = Instant::now() + Duration::from_secs(120);
    while fleet.completed_transactions() < 60 {
        assert!(
            Instant::now() < deadline,
            "not enough transactions: {}",
            fleet.summary()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The fleet ends its sessions (some of those stops forgotten too); Available
    // connectors close what is left after the grace.
    let report = fleet.stop().await;
    tokio::time::sleep(Duration::from_secs(5)).await;

    let retried = report.transactions.values().filter(|t| t.retried).count();
    let forgotten = report.transactions.values().filter(|t| t.forgotten).count();
    assert!(
        retried >= 5 && forgotten >= 5,
        "the quirks were exercised: {retried} retried, {forgotten} forgotten"
    );
    let audit = report.audit(app.app().controller().store());
    assert!(audit.lost.is_empty(), "lost: {:?}", audit.lost);
    assert!(
        audit.mismatched.is_empty(),
        "mismatched: {:?}",
        audit.mismatched
    );
    assert!(
        audit.unknown.is_empty(),
        "a second transaction for a retried start: {:?}",
        audit.unknown
    );
    assert!(
        audit.left_open.is_empty(),
        "forgotten stops left open: {:?}",
        audit.left_open
    );
    assert_eq!(audit.open, 0, "{audit:?}");
    assert_eq!(
        audit.closed + audit.closed_by_controller,
        report.transactions.len(),
        "{audit:?}"
    );
    assert_eq!(audit.closed_by_controller, forgotten, "{audit:?}");
    // The CSV says the same: one row per transaction the stations know, all stopped.
    let admin = Api::setup(&app).await;
    let csv = admin.get("/api/v1/transactions.csv").await.expect(200).body;
    let rows = csv_rows(&csv);
    assert_eq!(rows.len(), report.transactions.len());
    let ids: std::collections::BTreeSet<i64> =
        rows.iter().map(|r| r[0].parse().expect("id")).collect();
    let known: std::collections::BTreeSet<i64> =
        report.transactions.keys().map(|&k| i64::from(k)).collect();
    assert_eq!(ids, known);
    assert!(rows.iter().all(|r| !r[6].is_empty()), "every row stopped");
}
