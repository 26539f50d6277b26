//! Records through the API: transactions (filters, totals, CSV), badges (CRUD, CSV round
//! trip, pushing the local list) and the operator log (filter, CSV).

use crate::common;

use ampwarden::simulate::client::StationClient;
use common::http::Api;
use common::*;
use reqwest::Method;
use serde_json::json;

async fn charge(station: &StationClient, connector: u32, tag: &str, wh: i64) -> i64 {
    let tx = start_transaction(station, connector, tag, 1000).await;
    let stop = json!({ "transactionId": tx, "meterStop": 1000 + wh, "timestamp": now_text(), "reason": "Local" });
    ok(station
        .call("StopTransaction", stop)
        .await
        .expect("answered"));
    tx
}

#[tokio::test]
async fn transactions_are_filtered_and_totalled_per_station_and_site() {
    let app = TestApp::start("", SMALL_SITE);
    let viewer = Api::setup(&app).await;
    let cp1 = app.booted("CP001").await;
    let cp2 = app.booted("CP002").await;
    charge(&cp1, 1, "GOODTAG", 5000).await;
    charge(&cp1, 1, "GOODTAG", 3000).await;
    charge(&cp2, 1, "VIPTAG", 2500).await;

    let all = viewer.get("/api/v1/transactions").await.expect(200).json();
    assert_eq!(all["totals"]["count"], 3);
    assert_eq!(all["totals"]["energy_wh"], 10500.0);
    assert_eq!(all["stations"][0]["station"], "CP001");
    assert_eq!(all["stations"][0]["energy_wh"], 8000.0);
    assert_eq!(all["stations"][1]["count"], 1);
    assert_eq!(all["transactions"][0]["station"], "CP002", "newest first");
    assert_eq!(all["transactions"][0]["open"], false);

    let one = viewer
        .get("/api/v1/transactions?station=CP002")
        .await
        .expect(200)
        .json();
    assert_eq!(one["totals"]["count"], 1);
    let none = viewer
        .get("/api/v1/transactions?from=2999-01-01")
        .await
        .expect(200)
        .json();
    assert_eq!(none["totals"]["count"], 0);
    let past = viewer
        .get("/api/v1/transactions?from=2020-01-01T00:00:00Z&to=2999-01-01")
        .await
        .expect(200)
        .json();
    assert_eq!(past["totals"]["count"], 3);

    let field = viewer
        .get("/api/v1/transactions?from=yesterday")
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("from"));
    let field = viewer
        .get("/api/v1/transactions?from=2026-02-01&to=2026-01-01")
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("to"));
    let field = viewer
        .get("/api/v1/transactions?colour=red")
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("colour"));
}

/// An open transaction's energy is the one of its latest meter reading, although the
/// controller writes it to disk only once a minute.
#[tokio::test]
async fn an_open_transaction_shows_its_energy_so_far() {
    let app = TestApp::start("", SMALL_SITE);
    let viewer = Api::setup(&app).await;
    let cp1 = app.booted("CP001").await;
    let tx = start_transaction(&cp1, 1, "GOODTAG", 1000).await;
    for wh in [1400, 2250] {
        let values = json!({ "connectorId": 1, "transactionId": tx, "meterValue": [{ "timestamp": now_text(),
            "sampledValue": [{ "value": wh.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh" }] }] });
        ok(cp1.call("MeterValues", values).await.expect("answered"));
    }
    let all = viewer.get("/api/v1/transactions").await.expect(200).json();
    assert_eq!(all["transactions"][0]["open"], true);
    assert_eq!(all["transactions"][0]["energy_wh"], 1250.0);
    assert_eq!(all["totals"]["energy_wh"], 1250.0);
    let one = viewer
        .get(&format!("/api/v1/transactions/{tx}"))
        .await
        .expect(200)
        .json();
    assert_eq!(one["energy_wh"], 1250.0);
    let csv = viewer.get("/api/v1/transactions.csv").await.expect(200);
    let mut reader = csv::Reader::from_reader(csv.body.as_bytes());
    let kwh = reader
        .headers()
        .expect("headers")
        .iter()
        .position(|h| h == "energy_kwh")
        .expect("column");
    let row = reader.records().next().expect("a row").expect("row");
    assert_eq!(&row[kwh], "1.250");
}

#[tokio::test]
async fn the_transactions_csv_has_a_row_per_transaction() {
    let app = TestApp::start("", SMALL_SITE);
    let viewer = Api::setup(&app).await;
    let cp1 = app.booted("CP001").await;
    let tx = charge(&cp1, 1, "GOODTAG", 5000).await;
    let csv = viewer.get("/api/v1/transactions.csv").await.expect(200);
    assert!(csv
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/csv")));
    assert!(csv
        .header("content-disposition")
        .is_some_and(|c| c.contains("transactions.csv")));
    let mut reader = csv::Reader::from_reader(csv.body.as_bytes());
    let headers = reader.headers().expect("headers").clone();
    assert_eq!(&headers[0], "id");
    let rows: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("row")).collect();
    assert_eq!(rows.len(), 1);
    let col = |name: &str| headers.iter().position(|h| h == name).expect("column");
    assert_eq!(rows[0][col("id")], tx.to_string());
    assert_eq!(&rows[0][col("energy_kwh")], "5.000");
    assert_eq!(&rows[0][col("stop_reason")], "Local");

    let detail = viewer
        .get(&format!("/api/v1/transactions/{tx}"))
        .await
        .expect(200)
        .json();
    assert_eq!(detail["energy_wh"], 5000.0);
    assert!(detail["samples"].is_array());
    viewer.get("/api/v1/transactions/424242").await.error(404);
    let field = viewer.get("/api/v1/transactions/abc").await.error(400);
    assert_eq!(field.as_deref(), Some("id"));
}

#[tokio::test]
async fn badges_are_added_edited_and_deleted() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let operator = admin.user(&app, "otto", "operator").await;
    let added = operator
        .post(
            "/api/v1/badges",
            json!({"id_tag": "04A1B2C3", "vip": true, "expires": "2027-12-31T23:59:59Z", "note": "van 3"}),
        )
        .await
        .expect(201)
        .json();
    assert_eq!(added["source"], "store");
    operator
        .post("/api/v1/badges", json!({"id_tag": "04a1b2c3"}))
        .await
        .error(409);
    for (body, field) in [
        (json!({"id_tag": ""}), "id_tag"),
        (json!({"id_tag": "X".repeat(21)}), "id_tag"),
        (json!({"id_tag": "OK1", "expires": "soon"}), "expires"),
        (json!({"id_tag": "OK1", "vip": "yes"}), "vip"),
    ] {
        let got = operator
            .post("/api/v1/badges", body.clone())
            .await
            .error(400);
        assert_eq!(got.as_deref(), Some(field), "{body}");
    }

    let list = operator.get("/api/v1/badges").await.expect(200).json();
    let tags: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|b| b["id_tag"].as_str())
        .collect();
    // The file's badges are listed too.
    assert_eq!(tags, ["04A1B2C3", "BLOCKED", "GOODTAG", "OLDTAG", "VIPTAG"]);

    let edited = operator
        .put("/api/v1/badges/04a1b2c3", json!({"blocked": true}))
        .await
        .expect(200)
        .json();
    assert_eq!(edited["blocked"], true);
    assert_eq!(edited["vip"], false, "an edit replaces the settings");
    // Editing a file badge stores an override; only stored badges can be deleted.
    operator
        .put("/api/v1/badges/GOODTAG", json!({"vip": true}))
        .await
        .expect(200);
    assert_eq!(
        operator.get("/api/v1/badges/GOODTAG").await.json()["source"],
        "store"
    );
    operator.delete("/api/v1/badges/VIPTAG").await.error(409);
    operator.delete("/api/v1/badges/04A1B2C3").await.expect(204);
    operator.get("/api/v1/badges/04A1B2C3").await.error(404);
    operator.delete("/api/v1/badges/04A1B2C3").await.error(404);
}

#[tokio::test]
async fn a_stored_badge_decides_authorisation_at_once() {
    let app = TestApp::start("", SMALL_SITE);
    let operator = Api::setup(&app).await;
    let station = app.booted("CP001").await;
    let authorize = |tag: &str| {
        let call = station.call("Authorize", json!({ "idTag": tag }));
        async move { ok(call.await.expect("answered"))["idTagInfo"]["status"].clone() }
    };
    assert_eq!(authorize("NEWCARD").await, "Invalid");
    operator
        .post("/api/v1/badges", json!({"id_tag": "NEWCARD"}))
        .await
        .expect(201);
    assert_eq!(authorize("NEWCARD").await, "Accepted");
    operator
        .put("/api/v1/badges/NEWCARD", json!({"blocked": true}))
        .await
        .expect(200);
    assert_eq!(authorize("NEWCARD").await, "Blocked");
}

#[tokio::test]
async fn the_badges_csv_exported_and_imported_gives_the_same_badges() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    for body in [
        json!({"id_tag": "AA01", "vip": true, "note": "Anne, \"night\" shift"}),
        json!({"id_tag": "BB02", "expires": "2027-06-30T12:00:00Z"}),
        json!({"id_tag": "CC03", "blocked": true}),
    ] {
        admin.post("/api/v1/badges", body).await.expect(201);
    }
    let before = admin.get("/api/v1/badges").await.expect(200).json();
    let csv = admin.get("/api/v1/badges.csv").await.expect(200).body;

    for tag in ["AA01", "BB02", "CC03"] {
        admin
            .delete(&format!("/api/v1/badges/{tag}"))
            .await
            .expect(204);
    }
    let imported = admin
        .send_bytes(
            Method::POST,
            "/api/v1/badges.csv?replace=true",
            Some("text/csv"),
            csv.into_bytes(),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(imported["imported"], 7);
    let after = admin.get("/api/v1/badges").await.expect(200).json();
    let strip = |v: &serde_json::Value| -> Vec<serde_json::Value> {
        v.as_array()
            .expect("list")
            .iter()
            .map(|b| {
                let mut b = b.clone();
                b["source"] = json!(null);
                b
            })
            .collect()
    };
    assert_eq!(strip(&after), strip(&before));
}

#[tokio::test]
async fn a_bad_csv_import_changes_nothing_and_names_the_line() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin
        .post("/api/v1/badges", json!({"id_tag": "KEEP1"}))
        .await
        .expect(201);
    let bad = "id_tag,vip\nNEW1,true\nNEW2,maybe\n";
    let resp = admin
        .send_bytes(
            Method::POST,
            "/api/v1/badges.csv?replace=true",
            Some("text/csv"),
            bad.as_bytes().to_vec(),
        )
        .await;
    let body = resp.json();
    assert_eq!(resp.error(400).as_deref(), Some("vip"));
    assert!(
        body["error"].as_str().is_some_and(|e| e.contains("line 3")),
        "{body}"
    );
    let tags = admin.get("/api/v1/badges").await.body;
    assert!(tags.contains("KEEP1") && !tags.contains("NEW1"), "{tags}");

    // Merging (the default) adds and updates.
    admin
        .send_bytes(
            Method::POST,
            "/api/v1/badges.csv",
            Some("text/csv"),
            b"id_tag,vip\nNEW1,true\n".to_vec(),
        )
        .await
        .expect(200);
    let tags = admin.get("/api/v1/badges").await.body;
    assert!(tags.contains("KEEP1") && tags.contains("NEW1"), "{tags}");
    let field = admin
        .send_bytes(
            Method::POST,
            "/api/v1/badges.csv",
            Some("application/json"),
            b"[]".to_vec(),
        )
        .await
        .error(415);
    assert_eq!(field.as_deref(), Some("Content-Type"));
}

#[tokio::test]
async fn the_local_list_is_pushed_to_connected_stations() {
    let app = TestApp::start("", SMALL_SITE);
    let operator = Api::setup(&app).await;
    let mut station = app.booted("CP001").await;
    let pushed = operator
        .send(Method::POST, "/api/v1/badges/push", None)
        .await
        .expect(200)
        .json();
    assert_eq!(pushed["badges"], 4);
    let results = pushed["stations"].as_array().expect("per station");
    assert_eq!(results.len(), 4);
    assert_eq!(
        results[0],
        json!({"station": "CP001", "status": "Accepted"})
    );
    assert_eq!(results[1]["status"], "NotConnected");

    let call = station
        .next_call_of("SendLocalList", WAIT)
        .await
        .expect("SendLocalList")
        .payload;
    assert_eq!(call["updateType"], "Full");
    let list = call["localAuthorizationList"].as_array().expect("list");
    let status_of = |tag: &str| {
        list.iter()
            .find(|e| e["idTag"] == tag)
            .map(|e| e["idTagInfo"]["status"].clone())
    };
    assert_eq!(status_of("GOODTAG"), Some(json!("Accepted")));
    assert_eq!(status_of("BLOCKED"), Some(json!("Blocked")));
    assert_eq!(status_of("OLDTAG"), Some(json!("Expired")));

    operator
        .send(Method::POST, "/api/v1/badges/push?station=NOPE", None)
        .await
        .error(404);
}

#[tokio::test]
async fn the_log_is_filtered_by_station_and_exported_as_csv() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let _station = app.booted("CP001").await;
    admin
        .post("/api/v1/stations/CP001/actions/reset", json!({}))
        .await
        .expect(200);
    admin
        .post("/api/v1/badges", json!({"id_tag": "LOG1"}))
        .await
        .expect(201);
    let all = admin.get("/api/v1/logs").await.expect(200).json();
    let messages: Vec<&str> = all
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|e| e["message"].as_str())
        .collect();
    assert!(
        messages[0].starts_with("badge LOG1 added"),
        "newest first: {messages:?}"
    );
    let cp1 = admin
        .get("/api/v1/logs?station=CP001")
        .await
        .expect(200)
        .json();
    assert!(cp1
        .as_array()
        .expect("list")
        .iter()
        .all(|e| e["station"] == "CP001"));
    assert!(!cp1.as_array().expect("list").is_empty());
    let limited = admin.get("/api/v1/logs?limit=1").await.expect(200).json();
    assert_eq!(limited.as_array().map(Vec::len), Some(1));
    let field = admin.get("/api/v1/logs?limit=0").await.error(400);
    assert_eq!(field.as_deref(), Some("limit"));

    let csv = admin
        .get("/api/v1/logs.csv?station=CP001")
        .await
        .expect(200);
    let mut reader = csv::Reader::from_reader(csv.body.as_bytes());
    assert_eq!(
        reader.headers().expect("headers"),
        vec!["seq", "at", "level", "station", "message"]
    );
    assert_eq!(reader.records().count(), cp1.as_array().map_or(0, Vec::len));
}
