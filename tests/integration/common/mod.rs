//! Shared helpers of the integration tests: a controller on loopback ports with its own
//! data directory, and real OCPP station clients.
#![allow(dead_code)] // each test binary uses a different part of these helpers

pub mod http;

use std::time::Duration;

use ampwarden::simulate::client::{ConnectOptions, Reply, StationClient};
use ampwarden::{App, AppHandle};
use ampwarden_actors::config::Config;
use serde_json::{json, Value};

pub mod cpo;
pub mod fleet;
pub mod plant;
pub mod process;

pub const WAIT: Duration = Duration::from_secs(10);
/// How long a test waits for the control loop to settle.
pub const LONG: Duration = Duration::from_secs(20);

/// A loopback port free now (for a controller that must come back on the same one).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A running controller and its data directory (removed when dropped).
pub struct TestApp {
    pub app: Option<AppHandle>,
    pub dir: tempfile::TempDir,
    pub toml: String,
}

/// The configuration of a test: `body` (zones, stations, …) with loopback port 0
/// listeners and storage in `dir`.
/// (`server_extra` may set `http_listen` itself, e.g. a fixed port to restart on.)
pub fn config_text(dir: &std::path::Path, server_extra: &str, body: &str) -> String {
    let http = if server_extra.contains("http_listen") {
        ""
    } else {
        "http_listen = \"127.0.0.1:0\"\n"
    };
    format!(
        "[server]\n{http}ocpp_listen = \"127.0.0.1:0\"\n{server_extra}\n\
         [storage]\npath = {path:?}\n\n{body}",
        path = dir.join("data").display().to_string()
    )
}

/// A site with one 63 A zone and stations CP001..CP003 (32 A, 3-phase), CP004 with a password.
pub const SMALL_SITE: &str = r#"
[auth]
mode = "local"

[[zones]]
id = "main"
limit_a = 63.0

[[stations]]
id = "CP001"
zone = "main"
max_current_a = 32.0

[[stations]]
id = "CP002"
zone = "main"
max_current_a = 32.0

[[stations]]
id = "CP003"
zone = "main"
max_current_a = 32.0

[[stations]]
id = "CP004"
zone = "main"
max_current_a = 32.0
password = "s3cret-key-0001"

[[badges]]
id_tag = "GOODTAG"

[[badges]]
id_tag = "VIPTAG"
vip = true

[[badges]]
id_tag = "OLDTAG"
expires = "2020-01-01T00:00:00Z"

[[badges]]
id_tag = "BLOCKED"
blocked = true
"#;

impl TestApp {
    pub fn start(server_extra: &str, body: &str) -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        let toml = config_text(dir.path(), server_extra, body);
        let mut t = TestApp {
            app: None,
            dir,
            toml,
        };
        t.restart();
        t
    }

    /// (Re)starts the controller on the same configuration and data directory.
    pub fn restart(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop();
        }
        let config = Config::from_toml_str(&self.toml).expect("test config is valid");
        self.app = Some(App::start(config).expect("controller starts"));
    }

    pub fn stop(&mut self) {
        if let Some(app) = self.app.take() {
            app.stop();
        }
    }

    pub fn app(&self) -> &AppHandle {
        self.app.as_ref().expect("the controller is running")
    }

    pub fn ocpp_url(&self, id: &str) -> String {
        format!("ws://{}/ocpp/{id}", self.app().ocpp_addr)
    }

    pub async fn connect(&self, id: &str) -> StationClient {
        StationClient::connect(&self.ocpp_url(id), ConnectOptions::default())
            .await
            .expect("station connects")
    }

    pub async fn connect_with(
        &self,
        id: &str,
        options: ConnectOptions,
    ) -> Result<StationClient, ampwarden::simulate::client::ClientError> {
        StationClient::connect(&self.ocpp_url(id), options).await
    }

    /// Connects a station that answers nothing by itself (the test answers its calls).
    pub async fn manual(&self, id: &str) -> StationClient {
        let options = ConnectOptions {
            auto_answer: false,
            ..ConnectOptions::default()
        };
        self.connect_with(id, options)
            .await
            .expect("station connects")
    }

    /// The station's actor in the controller.
    pub fn actor(&self, id: &str) -> actix::Addr<ampwarden_actors::station::StationActor> {
        self.app()
            .controller()
            .station(&id.into())
            .expect("the station has an actor")
    }

    /// What the zone supervisor published last (budgets, sessions and why).
    pub async fn site_status(&self) -> std::sync::Arc<ampwarden_actors::supervisor::SiteStatus> {
        self.app()
            .controller()
            .supervisor()
            .send(ampwarden_actors::supervisor::GetSiteStatus)
            .await
            .expect("the supervisor answers")
    }

    /// Connects and boots a station.
    pub async fn booted(&self, id: &str) -> StationClient {
        let station = self.connect(id).await;
        let boot = station
            .call("BootNotification", boot_payload())
            .await
            .expect("boot answered");
        assert_eq!(ok(boot)["status"], "Accepted");
        station
    }
}

pub fn boot_payload() -> Value {
    json!({ "chargePointVendor": "ampwarden-test", "chargePointModel": "T1", "firmwareVersion": "1.0" })
}

/// The CALLRESULT payload, failing the test on a CALLERROR.
pub fn ok(reply: Reply) -> Value {
    match reply.result() {
        Ok(v) => v,
        Err(e) => panic!("expected a CALLRESULT, got CALLERROR {e}"),
    }
}

/// The error code of a CALLERROR, failing the test on a CALLRESULT.
pub fn error_code(reply: Reply) -> String {
    match reply {
        Reply::Error { code, .. } => code,
        Reply::Result(v) => panic!("expected a CALLERROR, got CALLRESULT {v}"),
    }
}

/// Starts a transaction (accepted) and returns its id.
pub async fn start_transaction(
    station: &StationClient,
    connector: u32,
    tag: &str,
    meter_start: i64,
) -> i64 {
    let start = json!({ "connectorId": connector, "idTag": tag, "meterStart": meter_start, "timestamp": now_text() });
    ok(station
        .call("StartTransaction", start)
        .await
        .expect("answered"))["transactionId"]
        .as_i64()
        .expect("transactionId")
}

pub fn now_text() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
