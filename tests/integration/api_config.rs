//! The site's configuration through the API: zones, meters, tariffs and settings edited
//! with the file's validation, put in force and kept across a restart; save & restore
//! as one file, over the API and with `ampwarden backup` / `ampwarden restore`.

use crate::common;

use common::http::{Api, ADMIN, ADMIN_PASSWORD};
use common::*;
use serde_json::{json, Value};

#[tokio::test]
async fn zones_are_edited_with_the_files_validation() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin
        .post(
            "/api/v1/zones",
            json!({"id": "panel-1", "parent": "main", "limit_a": 40.0}),
        )
        .await
        .expect(201);
    for (body, field) in [
        (
            json!({"id": "panel-2", "parent": "nowhere", "limit_a": 40.0}),
            "parent",
        ),
        (
            json!({"id": "panel-1", "parent": "main", "limit_a": 40.0}),
            "id",
        ),
        (
            json!({"id": "panel-3", "parent": "main", "limit_a": "lots"}),
            "limit_a",
        ),
        (
            json!({"id": "panel-4", "limit_a": 40.0, "meter": "m9"}),
            "meter",
        ),
    ] {
        let got = admin.post("/api/v1/zones", body.clone()).await.error(400);
        assert_eq!(got.as_deref(), Some(field), "{body}");
    }
    let edited = admin
        .put(
            "/api/v1/zones/panel-1",
            json!({"parent": "main", "limit_a": 50.0, "static_ev_limit_a": 45.0}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(edited["static_ev_limit_a"], 45.0);
    let field = admin
        .put(
            "/api/v1/zones/panel-1",
            json!({"parent": "main", "limit_a": 50.0, "static_ev_limit_a": 60.0}),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("static_ev_limit_a"));
    let field = admin
        .put(
            "/api/v1/zones/panel-1",
            json!({"id": "panel-9", "limit_a": 50.0}),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("id"));

    // A zone still used by stations cannot go: the problem names the station's key.
    let resp = admin.delete("/api/v1/zones/main").await;
    let body = resp.json();
    let field = resp.error(400);
    assert!(
        field
            .as_deref()
            .is_some_and(|f| f.starts_with("zones[") || f.starts_with("stations[")),
        "{body}"
    );
    admin.delete("/api/v1/zones/panel-1").await.expect(204);
    admin.get("/api/v1/zones/panel-1").await.error(404);
    assert_eq!(
        admin
            .get("/api/v1/zones")
            .await
            .json()
            .as_array()
            .map(Vec::len),
        Some(1)
    );
}

#[tokio::test]
async fn meters_are_edited_and_read_now() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin
        .post(
            "/api/v1/meters",
            json!({"id": "m1", "address": "127.0.0.1:1", "profile": "iem3155", "poll_ms": 500}),
        )
        .await
        .expect(201);
    let field = admin
        .post(
            "/api/v1/meters",
            json!({"id": "m2", "address": "no-port", "profile": "iem3155"}),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("address"));
    let field = admin
        .post(
            "/api/v1/meters",
            json!({"id": "m2", "address": "127.0.0.1:502", "profile": "acme"}),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("profile"));

    let listed = admin.get("/api/v1/meters").await.expect(200).json();
    assert_eq!(listed[0]["config"]["id"], "m1");
    // Nothing answers on port 1: the meter is polled but has no reading.
    let mut status = Value::Null;
    for _ in 0..50 {
        let resp = admin.get("/api/v1/meters/m1/reading").await;
        if resp.status == 200 {
            status = resp.json();
            if status["failed_reads"].as_u64().unwrap_or(0) > 0 {
                break;
            }
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(status["reading"].is_null(), "{status}");
    assert!(status["last_error"].is_string(), "{status}");
    admin.get("/api/v1/meters/m9/reading").await.error(404);

    admin
        .put(
            "/api/v1/meters/m1",
            json!({"address": "127.0.0.1:2", "profile": "pm5320"}),
        )
        .await
        .expect(200);
    assert_eq!(
        admin.get("/api/v1/meters/m1").await.json()["config"]["profile"],
        "pm5320"
    );
    admin.delete("/api/v1/meters/m1").await.expect(204);
    admin.delete("/api/v1/meters/m1").await.error(404);
}

#[tokio::test]
async fn a_meter_reading_is_shown_by_read_now() {
    use ampwarden_actors::config::MeterConfig;
    use ampwarden_actors::meter::simulated::SimulatedMeter;
    use ampwarden_actors::meter::RegisterMap;
    use ampwarden_actors::units::{Amps, PerPhase};

    let probe: MeterConfig = serde_json::from_value(
        json!({"id": "sim", "address": "127.0.0.1:1", "profile": "iem3155"}),
    )
    .expect("a meter");
    let meter = SimulatedMeter::start(
        "127.0.0.1:0".parse().expect("addr"),
        RegisterMap::for_meter(&probe).expect("map"),
    )
    .await
    .expect("simulated meter");
    meter.set_currents(PerPhase([Amps(12.0), Amps(13.0), Amps(14.0)]));
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin
        .post(
            "/api/v1/meters",
            json!({"id": "sim", "address": meter.local_addr().to_string(), "profile": "iem3155", "poll_ms": 200}),
        )
        .await
        .expect(201);
    let mut reading = Value::Null;
    for _ in 0..50 {
        let status = admin.get("/api/v1/meters/sim/reading").await.json();
        if !status["reading"].is_null() {
            reading = status["reading"].clone();
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert_eq!(reading["currents"], json!([12.0, 13.0, 14.0]), "{reading}");
}

#[tokio::test]
async fn tariffs_and_settings_are_replaced_with_field_paths_on_error() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let peak = json!({"name": "peak", "days": ["mon", "fri"], "from": "17:00", "to": "21:00", "ev_cap_pct": 30.0});
    admin
        .put("/api/v1/tariffs", json!([peak]))
        .await
        .expect(200);
    assert_eq!(admin.get("/api/v1/tariffs").await.json()[0]["name"], "peak");
    let field = admin
        .put(
            "/api/v1/tariffs",
            json!([{"name": "x", "days": ["mon"], "from": "17:00", "to": "21:00", "ev_cap_pct": 130.0}]),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("[0].ev_cap_pct"));
    let field = admin
        .put(
            "/api/v1/tariffs",
            json!([{"name": "x", "days": ["someday"], "from": "17:00", "to": "21:00"}]),
        )
        .await
        .error(400);
    assert_eq!(field.as_deref(), Some("[0].days[0]"));

    let settings = admin
        .put(
            "/api/v1/settings",
            json!({"site": {"name": "Depot North"}, "control": {"interval_s": 3}}),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(settings["site"]["name"], "Depot North");
    assert_eq!(settings["site"]["voltage_v"], 230.0, "left-out keys stay");
    assert_eq!(settings["control"]["interval_s"], 3);
    for (body, field) in [
        (json!({"control": {"interval_s": 0}}), "control.interval_s"),
        (
            json!({"site": {"timezone": "Mars/Olympus"}}),
            "site.timezone",
        ),
        (json!({"auth": {"mode": "trust_me"}}), "auth.mode"),
        (json!({"server": {"http_listen": "0.0.0.0:80"}}), "server"),
    ] {
        let got = admin.put("/api/v1/settings", body.clone()).await.error(400);
        assert_eq!(got.as_deref(), Some(field), "{body}");
    }
    assert_eq!(
        admin.get("/api/v1/settings").await.json()["control"]["interval_s"],
        3,
        "a refused change changes nothing"
    );
}

#[tokio::test]
async fn changes_from_the_api_survive_a_restart() {
    let mut app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin
        .put("/api/v1/zones/main", json!({"limit_a": 80.0}))
        .await
        .expect(200);
    admin
        .post(
            "/api/v1/stations",
            json!({"id": "CP020", "zone": "main", "max_current_a": 16.0}),
        )
        .await
        .expect(201);
    app.restart();
    let admin = Api::login(&app, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(
        admin.get("/api/v1/zones/main").await.json()["limit_a"],
        80.0
    );
    admin.get("/api/v1/stations/CP020").await.expect(200);
    app.booted("CP020").await;
}

#[tokio::test]
async fn an_edited_configuration_file_wins_over_earlier_api_changes() {
    let mut app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin
        .put("/api/v1/zones/main", json!({"limit_a": 80.0}))
        .await
        .expect(200);
    app.toml = app.toml.replace("limit_a = 63.0", "limit_a = 70.0");
    app.restart();
    let admin = Api::login(&app, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(
        admin.get("/api/v1/zones/main").await.json()["limit_a"],
        70.0
    );
}

#[tokio::test]
async fn the_config_exported_and_imported_restores_everything() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin.user(&app, "vera", "viewer").await;
    admin
        .post("/api/v1/badges", json!({"id_tag": "SAVED1", "vip": true}))
        .await
        .expect(201);
    admin
        .put("/api/v1/zones/main", json!({"limit_a": 90.0}))
        .await
        .expect(200);
    let saved = admin.get("/api/v1/config").await.expect(200);
    assert!(saved
        .header("content-disposition")
        .is_some_and(|c| c.contains("ampwarden-backup")));
    let saved = saved.json();
    assert_eq!(saved["format"], "ampwarden-backup");

    // Change everything, then restore.
    admin
        .put("/api/v1/zones/main", json!({"limit_a": 50.0}))
        .await
        .expect(200);
    admin.delete("/api/v1/badges/SAVED1").await.expect(204);
    admin.delete("/api/v1/users/vera").await.expect(204);
    admin
        .post(
            "/api/v1/stations",
            json!({"id": "CP030", "zone": "main", "max_current_a": 16.0}),
        )
        .await
        .expect(201);
    admin.put("/api/v1/config", saved.clone()).await.expect(200);

    let again = admin.get("/api/v1/config").await.expect(200).json();
    let without_time = |v: &Value| {
        let mut v = v.clone();
        v["created_at"] = Value::Null;
        v
    };
    assert_eq!(without_time(&again), without_time(&saved));
    assert_eq!(
        admin.get("/api/v1/zones/main").await.json()["limit_a"],
        90.0
    );
    admin.get("/api/v1/stations/CP030").await.error(404);
    Api::login(&app, "vera", "vera-password-123").await;

    let toml = admin.get("/api/v1/config.toml").await.expect(200).body;
    let parsed = ampwarden_actors::config::Config::from_toml_str(&toml).expect("valid TOML");
    assert_eq!(parsed.zones[0].limit_a.0, 90.0);
}

#[tokio::test]
async fn a_bad_backup_is_refused_whole() {
    let app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    let good = admin.get("/api/v1/config").await.expect(200).json();

    let mut bad = good.clone();
    bad["config"]["zones"][0]["limit_a"] = json!(-5.0);
    bad["badges"] =
        json!([{"id_tag": "NEVER", "vip": false, "expires": null, "blocked": false, "note": null}]);
    let field = admin.put("/api/v1/config", bad).await.error(400);
    assert_eq!(field.as_deref(), Some("config.zones[0].limit_a"));
    assert!(!admin.get("/api/v1/badges").await.body.contains("NEVER"));

    let mut bad = good.clone();
    bad["version"] = json!(99);
    assert_eq!(
        admin.put("/api/v1/config", bad).await.error(400).as_deref(),
        Some("version")
    );
    let mut bad = good.clone();
    bad["accounts"] = json!([]);
    assert_eq!(
        admin.put("/api/v1/config", bad).await.error(400).as_deref(),
        Some("accounts")
    );
    let mut bad = good;
    bad["badges"] = json!([{"id_tag": 5}]);
    let field = admin.put("/api/v1/config", bad).await.error(400);
    assert_eq!(field.as_deref(), Some("badges[0].id_tag"));
}

#[tokio::test]
async fn the_cli_backs_up_and_restores_a_stopped_controller() {
    let mut app = TestApp::start("", SMALL_SITE);
    let admin = Api::setup(&app).await;
    admin
        .post("/api/v1/badges", json!({"id_tag": "CLI1"}))
        .await
        .expect(201);
    admin
        .put("/api/v1/zones/main", json!({"limit_a": 77.0}))
        .await
        .expect(200);
    app.stop();

    let config = app.dir.path().join("ampwarden.toml");
    std::fs::write(&config, &app.toml).expect("write config");
    let backup = app.dir.path().join("backup.json");
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_ampwarden"))
            .args(args)
            .output()
            .expect("the binary runs")
    };
    let out = run(&[
        "backup",
        "--config",
        config.to_str().expect("path"),
        "--out",
        backup.to_str().expect("path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A fresh data directory, restored from the file.
    let fresh = app.dir.path().join("fresh");
    let fresh_toml = app.toml.replace(
        &app.dir.path().join("data").display().to_string(),
        &fresh.display().to_string(),
    );
    let fresh_config = app.dir.path().join("fresh.toml");
    std::fs::write(&fresh_config, &fresh_toml).expect("write config");
    let out = run(&[
        "restore",
        "--config",
        fresh_config.to_str().expect("path"),
        "--from",
        backup.to_str().expect("path"),
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    app.toml = fresh_toml;
    app.restart();
    assert_eq!(app.app().controller().setup_code(), None);
    let admin = Api::login(&app, ADMIN, ADMIN_PASSWORD).await;
    assert_eq!(
        admin.get("/api/v1/zones/main").await.json()["limit_a"],
        77.0
    );
    admin.get("/api/v1/badges/CLI1").await.expect(200);

    let garbage = app.dir.path().join("garbage.json");
    std::fs::write(&garbage, "{\"format\": 1}").expect("write");
    app.stop();
    let out = run(&[
        "restore",
        "--config",
        fresh_config.to_str().expect("path"),
        "--from",
        garbage.to_str().expect("path"),
    ]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("format"));
}
