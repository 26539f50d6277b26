//! Stations through the API: the list with live state, remote actions reaching a real
//! OCPP client, configuration keys, firmware and diagnostics, adding, editing and
//! removing stations, and the commissioning list.

use crate::common;

use ampwarden::simulate::client::StationClient;
use common::http::Api;
use common::*;
use serde_json::{json, Value};

async fn started_transaction(station: &StationClient, connector: u32, tag: &str) -> i64 {
    let start = json!({ "connectorId": connector, "idTag": tag, "meterStart": 1000, "timestamp": now_text() });
    ok(station
        .call("StartTransaction", start)
        .await
        .expect("answered"))["transactionId"]
        .as_i64()
        .expect("a transaction id")
}

/// The payload of the next CALL `action` the station receives.
async fn received(station: &mut StationClient, action: &str) -> Value {
    station
        .next_call_of(action, WAIT)
        .await
        .unwrap_or_else(|e| panic!("no {action}: {e}"))
        .payload
}

/// The payload of the next CALL `action` whose `field` is `value`, skipping the
/// controller's own calls of the same action.
async fn received_with(
    station: &mut StationClient,
    action: &str,
    field: &str,
    value: Value,
) -> Value {
    loop {
        let payload = received(station, action).await;
        if payload[field] == value {
            return payload;
        }
    }
}

#[tokio::test]
async fn the_list_shows_configuration_and_live_state_but_no_password() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let _station = app.booted("CP001").await;
    let list = admin.get("/api/v1/stations").await.expect(200);
    assert!(!list.body.contains("s3cret"), "a password leaked");
    let list = list.json();
    let stations = list.as_array().expect("a list");
    assert_eq!(stations.len(), 4);
    let cp1 = &stations[0];
    assert_eq!(cp1["id"], "CP001");
    assert_eq!(cp1["config"]["zone"], "main");
    assert_eq!(cp1["config"]["max_current_a"], 32.0);
    assert_eq!(cp1["live"]["connected"], true);
    assert_eq!(cp1["live"]["vendor"], "ampwarden-test");
    assert_eq!(
        stations[1]["live"]["connected"], false,
        "CP002 never connected"
    );
    assert_eq!(stations[3]["config"]["has_password"], true);

    let one = admin.get("/api/v1/stations/CP001").await.expect(200).json();
    assert_eq!(one["record"]["model"], "T1");
    admin.get("/api/v1/stations/NOPE").await.error(404);
}

#[tokio::test]
async fn remote_start_and_stop_reach_the_station() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let operator = admin.user(&app, "otto", "operator").await;
    let mut station = app.booted("CP001").await;

    let answer = operator
        .post(
            "/api/v1/stations/CP001/actions/start",
            json!({"connector": 1, "id_tag": "GOODTAG"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(answer["status"], "Accepted");
    let call = received(&mut station, "RemoteStartTransaction").await;
    assert_eq!(call["idTag"], "GOODTAG");
    assert_eq!(call["connectorId"], 1);

    let tx = started_transaction(&station, 1, "GOODTAG").await;
    // Without an id: the station's only open transaction.
    operator
        .post("/api/v1/stations/CP001/actions/stop", json!({}))
        .await
        .expect(200);
    assert_eq!(
        received(&mut station, "RemoteStopTransaction").await["transactionId"],
        tx
    );
    operator
        .post(
            "/api/v1/stations/CP001/actions/stop",
            json!({"transaction_id": tx}),
        )
        .await
        .expect(200);
    assert_eq!(
        received(&mut station, "RemoteStopTransaction").await["transactionId"],
        tx
    );
    let field = operator
        .post(
            "/api/v1/stations/CP001/actions/stop",
            json!({"transaction_id": 99999}),
        )
        .await
        .error(404);
    assert_eq!(field.as_deref(), Some("transaction_id"));

    let logs = admin.get("/api/v1/logs?station=CP001").await.expect(200);
    assert!(logs.body.contains("remote stop"), "{}", logs.body);
    assert!(logs.body.contains("by otto"), "{}", logs.body);
}

#[tokio::test]
async fn reset_unlock_and_availability_reach_the_station() {
    let app = TestApp::start("", SMALL_SITE);
    let operator = Api::setup(&app).await;
    let mut station = app.booted("CP001").await;

    operator
        .post(
            "/api/v1/stations/CP001/actions/reset",
            json!({"type": "Hard"}),
        )
        .await
        .expect(200);
    assert_eq!(received(&mut station, "Reset").await["type"], "Hard");
    // An empty body is a soft reset.
    operator
        .send(
            reqwest::Method::POST,
            "/api/v1/stations/CP001/actions/reset",
            None,
        )
        .await
        .expect(200);
    assert_eq!(received(&mut station, "Reset").await["type"], "Soft");

    let answer = operator
        .post(
            "/api/v1/stations/CP001/actions/unlock",
            json!({"connector": 1}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(answer["status"], "Unlocked");
    assert_eq!(
        received(&mut station, "UnlockConnector").await["connectorId"],
        1
    );

    operator
        .post(
            "/api/v1/stations/CP001/actions/availability",
            json!({"available": false}),
        )
        .await
        .expect(200);
    let call = received(&mut station, "ChangeAvailability").await;
    assert_eq!(call, json!({"connectorId": 0, "type": "Inoperative"}));
}

#[tokio::test]
async fn bad_actions_are_refused_with_the_field_at_fault() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let _station = app.booted("CP001").await;
    let cases = [
        ("reset", json!({"type": "Medium"}), "type"),
        ("unlock", json!({"connector": 0}), "connector"),
        ("unlock", json!({}), "body"),
        ("start", json!({"id_tag": "X".repeat(21)}), "id_tag"),
        ("availability", json!({"available": "no"}), "available"),
        ("stop", json!({"transaction_id": "one"}), "transaction_id"),
    ];
    for (action, body, field) in cases {
        let got = admin
            .post(&format!("/api/v1/stations/CP001/actions/{action}"), body)
            .await
            .error(400);
        assert_eq!(got.as_deref(), Some(field), "{action}");
    }
    let got = admin
        .post("/api/v1/stations/CP001/actions/explode", json!({}))
        .await
        .error(404);
    assert_eq!(got.as_deref(), Some("action"));
    admin
        .post("/api/v1/stations/GHOST/actions/reset", json!({}))
        .await
        .error(404);
    // Configured but never connected.
    admin
        .post("/api/v1/stations/CP002/actions/reset", json!({}))
        .await
        .error(409);
    admin
        .post("/api/v1/stations/CP001/actions/stop", json!({}))
        .await
        .error(409);
}

#[tokio::test]
async fn configuration_keys_are_read_and_changed_on_the_station() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let mut station = app.booted("CP001").await;
    let keys = admin
        .get("/api/v1/stations/CP001/configuration?key=HeartbeatInterval")
        .await
        .expect(200)
        .json();
    assert_eq!(keys["keys"][0]["key"], "HeartbeatInterval");
    received_with(
        &mut station,
        "GetConfiguration",
        "key",
        json!(["HeartbeatInterval"]),
    )
    .await;
    let answer = admin
        .put(
            "/api/v1/stations/CP001/configuration",
            json!({"key": "LightIntensity", "value": "50"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(answer["status"], "Accepted");
    let call = received_with(
        &mut station,
        "ChangeConfiguration",
        "key",
        json!("LightIntensity"),
    )
    .await;
    assert_eq!(call["value"], "50");
    let field = admin
        .put(
            "/api/v1/stations/CP001/configuration",
            json!({"key": "K".repeat(51), "value": "1"}),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("key"));
}

#[tokio::test]
async fn firmware_and_diagnostics_requests_reach_the_station() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let mut station = app.booted("CP001").await;
    admin
        .post(
            "/api/v1/stations/CP001/firmware",
            json!({"location": "https://fw.example/cp-2.1.bin", "retries": 3}),
        )
        .await
        .expect(200);
    let call = received(&mut station, "UpdateFirmware").await;
    assert_eq!(call["location"], "https://fw.example/cp-2.1.bin");
    assert_eq!(call["retries"], 3);
    admin
        .post(
            "/api/v1/stations/CP001/diagnostics",
            json!({"location": "ftp://logs.example/up"}),
        )
        .await
        .expect(200);
    assert_eq!(
        received(&mut station, "GetDiagnostics").await["location"],
        "ftp://logs.example/up"
    );
    let field = admin
        .post(
            "/api/v1/stations/CP001/firmware",
            json!({"location": "not a uri"}),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("location"));
}

#[tokio::test]
async fn stations_are_added_edited_and_removed_with_the_files_validation() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let added = admin
        .post(
            "/api/v1/stations",
            json!({"id": "CP010", "zone": "main", "max_current_a": 16.0, "phases": 1, "phase": "L2"}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(added["config"]["phases"], 1);
    assert_eq!(added["config"]["phase"], "L2");

    let refused = [
        (
            json!({"id": "CP010", "zone": "main", "max_current_a": 16.0}),
            "id",
        ),
        (
            json!({"id": "CP011", "zone": "nowhere", "max_current_a": 16.0}),
            "zone",
        ),
        (
            json!({"id": "CP012", "zone": "main", "max_current_a": 2.0}),
            "max_current_a",
        ),
        (
            json!({"id": "CP013", "zone": "main", "max_current_a": 16.0, "phases": 2}),
            "phases",
        ),
        (
            json!({"id": "CP014", "zone": "main", "max_current_a": 16.0, "colour": "red"}),
            "colour",
        ),
    ];
    for (body, field) in refused {
        let got = admin
            .post("/api/v1/stations", body.clone())
            .await
            .error(400);
        assert_eq!(got.as_deref(), Some(field), "{body}");
    }
    assert_eq!(
        admin
            .get("/api/v1/stations")
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(5),
        "nothing half-written"
    );

    let edited = admin
        .put(
            "/api/v1/stations/CP010",
            json!({"vip": true, "max_current_a": 20.0}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(edited["config"]["vip"], true);
    assert_eq!(edited["config"]["max_current_a"], 20.0);
    assert_eq!(edited["config"]["phase"], "L2", "left-out fields stay");
    let field = admin
        .put("/api/v1/stations/CP010", json!({"max_current_a": -1.0}))
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("max_current_a"));
    admin
        .put("/api/v1/stations/CP999", json!({"vip": true}))
        .await
        .error(404);
    // The security profile: checked as in the file, shown, never with the password.
    let field = admin
        .put(
            "/api/v1/stations/CP010",
            json!({"security_profile": 1, "password": ""}),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("password"), "1 needs a password");
    admin
        .put("/api/v1/stations/CP010", json!({"security_profile": 7}))
        .await
        .error(400);
    let edited = admin
        .put(
            "/api/v1/stations/CP010",
            json!({"security_profile": 1, "password": "basic-auth-key-01"}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(edited["config"]["security_profile"], 1, "{edited}");
    assert_eq!(edited["config"]["has_password"], true, "{edited}");
    assert!(edited["config"].get("password").is_none(), "{edited}");

    admin.delete("/api/v1/stations/CP010").await.expect(204);
    admin.get("/api/v1/stations/CP010").await.error(404);
    admin.delete("/api/v1/stations/CP010").await.error(404);
}

#[tokio::test]
async fn a_removed_station_is_disconnected_and_refused() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let mut station = app.booted("CP003").await;
    admin.delete("/api/v1/stations/CP003").await.expect(204);
    station.closed(WAIT).await.expect("the socket is closed");
    let again = app.connect_with("CP003", Default::default()).await;
    assert!(again.is_err(), "a removed station is unknown");
}

#[tokio::test]
async fn a_station_password_change_applies_to_the_next_connection() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin
        .put(
            "/api/v1/stations/CP001",
            json!({"password": "new-secret-0001"}),
        )
        .await
        .expect(200);
    assert!(app.connect_with("CP001", Default::default()).await.is_err());
    let options = ampwarden::simulate::client::ConnectOptions {
        basic_auth: Some(("CP001".into(), "new-secret-0001".into())),
        ..Default::default()
    };
    app.connect_with("CP001", options)
        .await
        .expect("the new password is accepted");
}

#[tokio::test]
async fn unknown_stations_that_knocked_wait_in_the_commissioning_list() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    for id in ["GHOST1", "GHOST2", "GHOST3"] {
        assert!(app.connect_with(id, Default::default()).await.is_err());
    }
    let waiting = admin.get("/api/v1/commissioning").await.expect(200).json();
    let ids: Vec<&str> = waiting
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|r| r["id"].as_str())
        .collect();
    assert_eq!(ids, ["GHOST1", "GHOST2", "GHOST3"]);

    let field = admin
        .post(
            "/api/v1/commissioning/GHOST1/accept",
            json!({"zone": "nowhere"}),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("zone"));
    admin
        .post(
            "/api/v1/commissioning/CP001/accept",
            json!({"zone": "main"}),
        )
        .await
        .error(404);
    admin
        .post(
            "/api/v1/commissioning/GHOST1/accept",
            json!({"zone": "main"}),
        )
        .await
        .expect(200);
    app.booted("GHOST1").await;

    let all = admin
        .post("/api/v1/commissioning/accept-all", json!({"zone": "main"}))
        .await
        .expect(200)
        .json();
    assert_eq!(all["accepted"], json!(["GHOST2", "GHOST3"]));
    assert_eq!(admin.get("/api/v1/commissioning").await.json(), json!([]));
    app.booted("GHOST3").await;
    let stations = admin.get("/api/v1/stations").await.json();
    assert_eq!(stations.as_array().map(Vec::len), Some(7));
}
