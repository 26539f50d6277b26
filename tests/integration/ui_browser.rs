//! The operator UI in a real browser (headless Debian Chromium driven through
//! chromedriver): first-start setup, login, a station appearing on the live dashboard
//! with its limit, stopping its session from the UI, adding a badge, exporting the
//! sessions as CSV, a primary's secondaries in the Federation view (with a linked
//! secondary's sessions and log, and its stations on the Stations page), a BMS's caps, its
//! Modbus client and its log of writes in the BMS view, a station relayed to a CPO in the
//! CPO uplink view (and no such entry without [uplink]), setup and login over HTTPS — with
//! no console error. Screenshots of the main pages at 1366x768 and 390x844 go to `screenshots/`
//! for a person to look at.
//!
//! Needs `chromium` and `chromium-driver` (Debian packages); without them the test fails
//! and says how to install them.

use crate::common;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use ampwarden::simulate::client::StationClient;
use common::http::ADMIN_PASSWORD;
use common::*;
use fantoccini::key::Key;
use fantoccini::{Client, ClientBuilder, Locator};
use serde_json::{json, Value};

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const UI_WAIT: Duration = Duration::from_secs(15);

/// A chromedriver on a free loopback port, killed when dropped.
struct Driver {
    child: Child,
    url: String,
}

impl Drop for Driver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

async fn start_driver() -> Driver {
    for (path, package) in [(CHROMIUM, "chromium"), (CHROMEDRIVER, "chromium-driver")] {
        assert!(
            Path::new(path).exists(),
            "{path} is missing: install the browser test's tools with \
             `apt-get update && apt-get install -y chromium chromium-driver` (package {package})"
        );
    }
    let port = free_port();
    let child = Command::new(CHROMEDRIVER)
        .arg(format!("--port={port}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("chromedriver starts");
    let driver = Driver {
        child,
        url: format!("http://127.0.0.1:{port}"),
    };
    for _ in 0..100 {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return driver;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("chromedriver did not listen on port {port}");
}

async fn browser(driver: &Driver, profile: &Path) -> Client {
    browser_with(driver, profile, &[]).await
}

/// A browser with more command-line switches.
async fn browser_with(driver: &Driver, profile: &Path, extra: &[&str]) -> Client {
    let mut args = json!([
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        "--force-device-scale-factor=1",
        format!("--user-data-dir={}", profile.display()),
    ]);
    if let Some(list) = args.as_array_mut() {
        list.extend(extra.iter().map(|a| Value::from(*a)));
    }
    let mut caps = serde_json::Map::new();
    caps.insert(
        "goog:chromeOptions".into(),
        json!({ "binary": CHROMIUM, "args": args }),
    );
    caps.insert("goog:loggingPrefs".into(), json!({ "browser": "ALL" }));
    ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new())
        .capabilities(caps)
        .connect(&driver.url)
        .await
        .expect("a browser session")
}

/// chromedriver's browser log (console messages, failed loads) since the last call.
#[derive(Debug)]
struct BrowserLog;

impl fantoccini::wd::WebDriverCompatibleCommand for BrowserLog {
    fn endpoint(
        &self,
        base: &url::Url,
        session: Option<&str>,
    ) -> Result<url::Url, url::ParseError> {
        base.join(&format!("session/{}/se/log", session.unwrap_or_default()))
    }

    fn method_and_body(&self, _: &url::Url) -> (::http::Method, Option<String>) {
        (
            ::http::Method::POST,
            Some(json!({ "type": "browser" }).to_string()),
        )
    }
}

/// The browser's errors so far (console errors, failed requests, uncaught exceptions).
async fn browser_errors(client: &Client) -> Vec<String> {
    let log = client.issue_cmd(BrowserLog).await.expect("the browser log");
    log.as_array()
        .map(|entries| {
            entries
                .iter()
                .filter(|e| e["level"] == "SEVERE")
                .map(|e| e["message"].as_str().unwrap_or_default().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

fn screenshots_dir() -> PathBuf {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("screenshots");
    std::fs::create_dir_all(&dir).expect("screenshots directory");
    dir
}

/// Sizes the window so that the page's viewport is `w` x `h`.
async fn viewport(client: &Client, w: u32, h: u32) {
    client.set_window_size(w, h).await.expect("resize");
    let inner = client
        .execute("return [window.innerWidth, window.innerHeight];", vec![])
        .await
        .expect("viewport size");
    let size = |i: usize, want: u32| {
        let got = inner[i]
            .as_u64()
            .and_then(|v| u32::try_from(v).ok())
            .unwrap_or(want);
        (2 * want).saturating_sub(got)
    };
    client
        .set_window_size(size(0, w), size(1, h))
        .await
        .expect("resize");
}

/// Screenshots of the page as it is, at 1366x768 and at phone width 390x844.
async fn screenshots(client: &Client, name: &str) {
    for (w, h) in [(1366, 768), (390, 844)] {
        viewport(client, w, h).await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let png = client.screenshot().await.expect("screenshot");
        std::fs::write(screenshots_dir().join(format!("{name}-{w}x{h}.png")), png)
            .expect("save screenshot");
    }
    viewport(client, 1366, 768).await;
}

/// Waits until `script` (a JS expression) is true in the page.
async fn wait_until(client: &Client, what: &str, script: &str) {
    let deadline = tokio::time::Instant::now() + UI_WAIT;
    loop {
        let ok = client
            .execute(&format!("return !!({script});"), vec![])
            .await
            .expect("script runs");
        if ok == Value::Bool(true) {
            return;
        }
        if tokio::time::Instant::now() > deadline {
            let text = client
                .execute("return document.body.innerText;", vec![])
                .await
                .unwrap_or_default();
            panic!(
                "timed out waiting for {what}; the page shows:\n{}",
                text.as_str().unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn fill(client: &Client, label: &str, value: &str) {
    let input = client
        .find(Locator::XPath(&format!(
            "//label[normalize-space()='{label}']/following-sibling::input[1]"
        )))
        .await
        .unwrap_or_else(|e| panic!("no field {label:?}: {e}"));
    input.clear().await.expect("clear");
    input.send_keys(value).await.expect("type");
}

/// Types into the focused element.
async fn press(client: &Client, keys: &str) {
    client
        .active_element()
        .await
        .expect("a focused element")
        .send_keys(keys)
        .await
        .expect("keys sent");
}

async fn assert_active(client: &Client, what: &str, script: &str) {
    let ok = client
        .execute(&format!("return !!({script});"), vec![])
        .await
        .expect("script runs");
    assert_eq!(ok, Value::Bool(true), "focus is not on {what}");
}

/// Presses Tab (at most 40 times) until the focused element satisfies `script`.
async fn tab_to(client: &Client, what: &str, script: &str) {
    for _ in 0..40 {
        let ok = client
            .execute(&format!("return !!({script});"), vec![])
            .await
            .expect("script runs");
        if ok == Value::Bool(true) {
            return;
        }
        press(client, &Key::Tab.to_string()).await;
    }
    panic!("{what} cannot be reached with Tab");
}

/// Clicks a button by its text. A page still rendering may not show it yet: it is waited
/// for (up to `UI_WAIT`). Live pages re-render on every update, so a button found a moment
/// ago may be replaced before the click lands: find it again then (5 tries).
async fn click_button(client: &Client, text: &str) {
    let xpath = format!("//button[normalize-space()='{text}']");
    for attempt in 1..=5 {
        let button = client
            .wait()
            .at_most(UI_WAIT)
            .for_element(Locator::XPath(&xpath))
            .await
            .unwrap_or_else(|e| panic!("no button {text:?}: {e}"));
        match button.click().await {
            Ok(()) => return,
            Err(fantoccini::error::CmdError::Standard(e))
                if e.error == fantoccini::error::ErrorStatus::StaleElementReference
                    && attempt < 5 =>
            {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("cannot click {text:?}: {e}"),
        }
    }
}

/// On the setup page: creates the admin with the setup code, which logs in and opens the
/// setup assistant.
async fn create_admin(client: &Client, app: &TestApp) {
    let code = app.app().controller().setup_code().expect("setup open");
    fill(client, "Setup code", &code).await;
    fill(client, "Password (10 characters or more)", ADMIN_PASSWORD).await;
    fill(client, "Password again", ADMIN_PASSWORD).await;
    click_button(client, "Create the administrator").await;
    wait_until(
        client,
        "the setup assistant",
        // The setup page's own form stays until the wizard replaces it: wait for the steps.
        "location.hash === '#/wizard/site' && document.querySelector('ol.steps') && document.querySelector('form')",
    )
    .await;
}

/// Station `id` of `app` charging on connector 1 with badge `id_tag` (1.5 kWh so far, 15.8 A
/// per phase): the station and its transaction id.
async fn charging_station(app: &TestApp, id: &str, id_tag: &str) -> (StationClient, i64) {
    let station = app.booted(id).await;
    let status = |s: &str| json!({ "connectorId": 1, "errorCode": "NoError", "status": s, "timestamp": now_text() });
    ok(station
        .call("StatusNotification", status("Preparing"))
        .await
        .expect("answered"));
    let start =
        json!({ "connectorId": 1, "idTag": id_tag, "meterStart": 1000, "timestamp": now_text() });
    let tx = ok(station
        .call("StartTransaction", start)
        .await
        .expect("answered"))["transactionId"]
        .clone();
    ok(station
        .call("StatusNotification", status("Charging"))
        .await
        .expect("answered"));
    let current = |phase: &str| json!({ "measurand": "Current.Import", "phase": phase, "unit": "A", "value": "15.8" });
    let values = json!({
        "connectorId": 1,
        "transactionId": tx,
        "meterValue": [{ "timestamp": now_text(), "sampledValue": [current("L1"), current("L2"), current("L3"),
            { "measurand": "Energy.Active.Import.Register", "unit": "Wh", "value": "2500" }] }],
    });
    ok(station.call("MeterValues", values).await.expect("answered"));
    let tx = tx.as_i64().expect("a transaction id");
    (station, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_up_watches_stops_adds_a_badge_and_exports() {
    let driver = start_driver().await;
    let app = TestApp::start("", SMALL_SITE);
    let base = format!("http://{}", app.app().http_addr);
    let profile = tempfile::tempdir().expect("browser profile");
    let client = browser(&driver, profile.path()).await;
    viewport(&client, 1366, 768).await;

    // First start: the setup code from the console, and the admin's password.
    client.goto(&base).await.expect("open the UI");
    wait_until(
        &client,
        "the setup page",
        "location.hash === '#/setup' && document.querySelector('form')",
    )
    .await;
    screenshots(&client, "setup").await;
    create_admin(&client, &app).await;
    screenshots(&client, "wizard-site").await;

    // Log out, and in again through the login form.
    click_button(&client, "Log out").await;
    wait_until(
        &client,
        "the login page",
        "location.hash === '#/login' && document.querySelector('form')",
    )
    .await;
    // With the keyboard only: Tab to the fields, type, Enter.
    tab_to(
        &client,
        "the Name field",
        "document.activeElement.labels?.[0]?.innerText.trim() === 'Name'",
    )
    .await;
    press(&client, "admin").await;
    press(&client, &Key::Tab.to_string()).await;
    assert_active(
        &client,
        "the Password field",
        "document.activeElement.type === 'password'",
    )
    .await;
    press(&client, ADMIN_PASSWORD).await;
    press(&client, &Key::Enter.to_string()).await;
    wait_until(
        &client,
        "the dashboard",
        "location.hash === '#/' && document.querySelector('.zone')",
    )
    .await;
    // The navigation is reachable with Tab, shows where the focus is, and follows Enter.
    tab_to(
        &client,
        "the Badges link",
        "document.activeElement.innerText?.trim() === 'Badges'",
    )
    .await;
    assert_active(
        &client,
        "a visible focus ring",
        "(s => s.outlineStyle !== 'none' || s.boxShadow !== 'none')(getComputedStyle(document.activeElement))",
    )
    .await;
    press(&client, &Key::Enter.to_string()).await;
    wait_until(
        &client,
        "the badges page by keyboard",
        "location.hash === '#/badges'",
    )
    .await;
    // Without [uplink] the navigation has no CPO uplink entry, and the page says why.
    let entries = client
        .execute(
            "return [...document.querySelectorAll('#nav a')].map(a => a.innerText.trim());",
            vec![],
        )
        .await
        .expect("the navigation entries");
    let entries: Vec<&str> = entries
        .as_array()
        .map(|list| list.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    assert!(
        entries.contains(&"Badges") && !entries.contains(&"CPO uplink"),
        "navigation without [uplink]: {entries:?}"
    );
    client
        .goto(&format!("{base}/#/uplink"))
        .await
        .expect("the uplink page");
    wait_until(
        &client,
        "the uplink page saying there is none",
        "document.body.innerText.includes('This controller has no CPO uplink')",
    )
    .await;
    client
        .goto(&format!("{base}/#/"))
        .await
        .expect("back to the dashboard");

    // A station starts charging: it appears with its limit in force and the reason.
    let (mut station, _) = charging_station(&app, "CP001", "GOODTAG").await;
    wait_until(
        &client,
        "CP001 charging with a limit",
        "[...document.querySelectorAll('tbody tr')].some(r => r.innerText.includes('CP001') \
         && r.innerText.includes('Charging') && /\\d+\\.\\d A/.test(r.cells[3].innerText) \
         && r.cells[4].innerText.includes('15.8') \
         && r.cells[7].innerText.length > 10 && !r.cells[7].innerText.startsWith('Waiting'))",
    )
    .await;
    screenshots(&client, "dashboard").await;

    // Page switches reuse the one event socket: none is left behind polling.
    for page in [
        "#/station/CP001",
        "#/",
        "#/badges",
        "#/",
        "#/station/CP001",
        "#/",
    ] {
        client
            .goto(&format!("{base}/{page}"))
            .await
            .expect("switch page");
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    let deadline = tokio::time::Instant::now() + UI_WAIT;
    loop {
        // Past the 3 s reconnect delay, so an orphan made by a late close is counted.
        tokio::time::sleep(Duration::from_millis(3500)).await;
        let open = app.app().controller().event_sockets();
        if open == 1 {
            break;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{open} event sockets open for one browser tab"
        );
    }

    // Stop its session from the station's page.
    client
        .goto(&format!("{base}/#/station/CP001"))
        .await
        .expect("station page");
    wait_until(
        &client,
        "the Stop button",
        "[...document.querySelectorAll('button')].some(b => b.textContent === 'Stop')",
    )
    .await;
    screenshots(&client, "station").await;
    click_button(&client, "Stop").await;
    let stop = station
        .next_call_of("RemoteStopTransaction", WAIT)
        .await
        .expect("the station is asked to stop");
    assert!(stop.payload["transactionId"].is_i64());
    let tx = stop.payload["transactionId"].as_i64().unwrap_or_default();
    let done = json!({ "transactionId": tx, "meterStop": 4000, "timestamp": now_text(), "reason": "Remote" });
    ok(station
        .call("StopTransaction", done)
        .await
        .expect("answered"));

    // Add a VIP badge.
    client
        .goto(&format!("{base}/#/badges"))
        .await
        .expect("badges page");
    wait_until(&client, "the badges", "document.querySelector('tbody')").await;
    click_button(&client, "Add badge").await;
    fill(&client, "Id tag (as the reader shows it)", "UI-BADGE-1").await;
    client
        .find(Locator::XPath(
            "//label[normalize-space()='VIP (charged first, shed last)']",
        ))
        .await
        .expect("VIP box")
        .click()
        .await
        .expect("tick VIP");
    fill(
        &client,
        "Note (who, which vehicle)",
        "added from the browser",
    )
    .await;
    click_button(&client, "Add").await;
    wait_until(
        &client,
        "the new badge",
        "document.body.innerText.includes('UI-BADGE-1')",
    )
    .await;
    let stored = app
        .app()
        .controller()
        .store()
        .badge(&"UI-BADGE-1".into())
        .expect("store")
        .expect("the badge is stored");
    assert!(stored.vip);
    screenshots(&client, "badges").await;

    // Export the sessions as CSV through the page's own link.
    client
        .goto(&format!("{base}/#/transactions"))
        .await
        .expect("sessions page");
    wait_until(&client, "the sessions", "document.querySelector('.totals')").await;
    // It opens on the last 30 days, not the whole history, and says so in its filter.
    let from = client
        .execute(
            "return document.querySelector('input[name=from]').value",
            vec![],
        )
        .await
        .expect("the from field");
    // (The page read the clock before this test did: a midnight may lie between.)
    let month_ago = (chrono::Utc::now() - chrono::TimeDelta::days(30)).date_naive();
    let day_before = month_ago.pred_opt().unwrap_or(month_ago);
    let from = from.as_str().unwrap_or_default();
    assert!(
        [month_ago.to_string(), day_before.to_string()].contains(&from.to_owned()),
        "from {from:?}, 30 days ago {month_ago}"
    );
    let csv = client
        .execute_async(
            "const done = arguments[0]; \
             const link = [...document.querySelectorAll('a')].find(a => a.textContent === 'Export CSV'); \
             fetch(link.href).then(r => r.text()).then(done);",
            vec![],
        )
        .await
        .expect("the CSV");
    let csv = csv.as_str().unwrap_or_default();
    assert!(csv.starts_with("id,station,connector"), "{csv}");
    assert!(csv.contains(&format!("\n{tx},CP001,1,GOODTAG")), "{csv}");
    screenshots(&client, "transactions").await;

    for page in [
        "config",
        "users",
        "logs",
        "commissioning",
        "stations",
        "wizard/zones",
        "wizard/stations",
    ] {
        client
            .goto(&format!("{base}/#/{page}"))
            .await
            .expect("page");
        wait_until(&client, page, "document.querySelector('main h1') && !document.querySelector('main').innerText.includes('Cannot show')").await;
        screenshots(&client, &page.replace('/', "-")).await;
    }

    let errors = browser_errors(&client).await;
    client.close().await.expect("close the browser");
    assert!(errors.is_empty(), "browser errors: {errors:#?}");
}

/// A primary with one configured secondary that has not linked yet: the Federation view
/// is in the navigation and lists it as never seen, with its fallback reserved for it.
/// Then the secondary (a whole controller) links with a station charging: the primary's
/// Stations page lists that station with its Secondary, relays a reset to it, and the
/// Federation view shows the secondary's sessions and its log (where the reset is) as read
/// over the link.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_shows_its_secondaries_in_the_federation_view() {
    const PRIMARY: &str = r#"
[site]
name = "primary"
mode = "static"

[[zones]]
id = "main"
limit_a = 100.0

[federation]
role = "primary"
tokens = [{ name = "hall-b", token = "token-of-hall-b-0001", zone = "main", fallback_budget_a = 20.0 }]
"#;
    let driver = start_driver().await;
    let app = TestApp::start("", PRIMARY);
    let base = format!("http://{}", app.app().http_addr);
    let profile = tempfile::tempdir().expect("browser profile");
    let client = browser(&driver, profile.path()).await;
    viewport(&client, 1366, 768).await;

    client.goto(&base).await.expect("open the UI");
    wait_until(
        &client,
        "the setup page",
        "location.hash === '#/setup' && document.querySelector('form')",
    )
    .await;
    create_admin(&client, &app).await;

    // The navigation leads there (it has the entry because this controller is a primary).
    client
        .find(Locator::XPath(
            "//nav[@id='nav']//a[normalize-space()='Federation']",
        ))
        .await
        .expect("a Federation entry in the navigation")
        .click()
        .await
        .expect("open the Federation view");
    wait_until(
        &client,
        "hall-b never seen with its 20 A fallback reserved",
        "location.hash === '#/federation' \
         && [...document.querySelectorAll('tbody tr')].some(r => { \
              const cell = (label) => r.querySelector(`td[data-label=\"${label}\"]`)?.innerText.trim(); \
              return cell('Secondary') === 'hall-b' && cell('Link') === 'never_seen' \
                && cell('Reserved') === '20.0 A' && cell('Fallback') === '20.0 A'; })",
    )
    .await;
    screenshots(&client, "federation").await;

    // The admin revokes hall-b's token (after confirming), then reinstates it.
    click_button(&client, "Revoke token").await;
    wait_until(
        &client,
        "the confirmation dialog",
        "document.querySelector('dialog[open]')",
    )
    .await;
    click_button(&client, "Revoke").await;
    wait_until(
        &client,
        "the notice that the token is revoked",
        "[...document.querySelectorAll('#notices .notice.ok')] \
           .some(n => n.innerText.includes('Token of hall-b revoked'))",
    )
    .await;
    click_button(&client, "Reinstate").await;
    wait_until(
        &client,
        "the notice that the token is reinstated",
        "[...document.querySelectorAll('#notices .notice.ok')] \
           .some(n => n.innerText.includes('Token of hall-b reinstated'))",
    )
    .await;

    // hall-b links: a whole controller of its own, with station HB01 charging.
    let secondary = TestApp::start(
        "",
        &format!(
            r#"
[site]
name = "hall-b"
mode = "static"

[auth]
mode = "accept_all"

[[zones]]
id = "hall"
limit_a = 50.0

[federation]
role = "secondary"
primary_url = "ws://{}"
token = "token-of-hall-b-0001"
zone = "main"
fallback_budget_a = 20.0

[[stations]]
id = "HB01"
zone = "hall"
max_current_a = 32.0
"#,
            app.app().http_addr
        ),
    );
    let (mut station, tx) = charging_station(&secondary, "HB01", "HALL-B-TAG").await;
    // A row of a table in `scope` (a CSS selector) whose cells (by column) pass `test`.
    let row_where = |scope: &str, test: &str| {
        format!(
            "[...document.querySelectorAll('{scope} tbody tr')].some(r => {{ \
               const cell = (label) => r.querySelector(`td[data-label=\"${{label}}\"]`)?.innerText.trim(); \
               return {test}; }})"
        )
    };
    wait_until(
        &client,
        "hall-b linked",
        &row_where(
            "main",
            "cell('Secondary') === 'hall-b' && cell('Link') === 'linked'",
        ),
    )
    .await;

    // The primary's Stations page lists hall-b's station, with its Secondary and session.
    client
        .goto(&format!("{base}/#/stations"))
        .await
        .expect("the stations page");
    wait_until(
        &client,
        "HB01 of hall-b charging on the Stations page",
        &row_where(
            "main",
            "cell('Station') === 'HB01' && cell('Secondary') === 'hall-b' \
             && cell('Zone') === 'hall' && cell('Connection') === 'online' \
             && cell('Sessions') === '1 charging'",
        ),
    )
    .await;
    // Its Reset is relayed to the secondary and on to the station.
    click_button(&client, "Reset").await;
    let reset = station
        .next_call_of("Reset", WAIT)
        .await
        .expect("the station is asked to reset");
    assert_eq!(reset.payload["type"], "Soft");
    wait_until(
        &client,
        "the notice that the reset was sent",
        "[...document.querySelectorAll('#notices .notice.ok')] \
           .some(n => n.innerText.includes('Soft reset of HB01 sent'))",
    )
    .await;
    let done = json!({ "transactionId": tx, "meterStop": 4000, "timestamp": now_text(), "reason": "Local" });
    ok(station
        .call("StopTransaction", done)
        .await
        .expect("answered"));

    // The station's link leads to the Federation view, where hall-b's sessions are read
    // over the link: the one just ended, with its energy.
    client
        .find(Locator::XPath("//main//a[normalize-space()='HB01']"))
        .await
        .expect("a link on HB01")
        .click()
        .await
        .expect("follow it");
    wait_until(
        &client,
        "the Federation view",
        "location.hash === '#/federation' && document.querySelector('main tbody')",
    )
    .await;
    click_button(&client, "Sessions").await;
    assert_active(
        &client,
        "the heading of hall-b's sessions",
        "document.activeElement.innerText?.trim() === 'Sessions of hall-b'",
    )
    .await;
    wait_until(
        &client,
        "hall-b's ended session",
        &row_where(
            "#secondary-records",
            &format!(
                "cell('Id') === '{tx}' && cell('Station') === 'HB01' && cell('Badge') === 'HALL-B-TAG' \
                 && cell('Energy') === '3.00 kWh' && cell('Stop reason') === 'Local'"
            ),
        ),
    )
    .await;
    // And its log, with the reset relayed from here.
    click_button(&client, "Log").await;
    wait_until(
        &client,
        "the reset in hall-b's log",
        &row_where(
            "#secondary-records",
            "cell('Station') === 'HB01' \
             && cell('What happened').includes('Soft reset: Accepted (by federation primary)')",
        ),
    )
    .await;
    screenshots(&client, "federation-log").await;

    let errors = browser_errors(&client).await;
    client.close().await.expect("close the browser");
    assert!(errors.is_empty(), "browser errors: {errors:#?}");
}

/// The Modbus words of a float32, high word first (the register map's byte order).
fn float_words(value: f32) -> [u16; 2] {
    let bits = value.to_bits();
    let [a, b, c, d] = bits.to_be_bytes();
    [u16::from_be_bytes([a, b]), u16::from_be_bytes([c, d])]
}

/// A BMS connected over Modbus TCP writes a site cap and a zone cap: the BMS view shows
/// them in force with their remaining time, the client, and the log; the admin ends the
/// zone's and then the site's, and the fail-safe applies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admin_sees_the_bms_cap_its_client_and_the_log() {
    const SITE: &str = r#"
[auth]
mode = "local"

[[zones]]
id = "main"
limit_a = 63.0

[[stations]]
id = "CP001"
zone = "main"
max_current_a = 32.0

[bms]
modbus_listen = "127.0.0.1:0"
write = true
failsafe_current_a = 40.0
"#;
    use tokio_modbus::client::Writer as _;
    use tokio_modbus::Slave;

    let driver = start_driver().await;
    let app = TestApp::start("", SITE);
    let base = format!("http://{}", app.app().http_addr);
    let modbus = app.app().bms_addr.expect("the BMS Modbus server listens");
    let profile = tempfile::tempdir().expect("browser profile");
    let client = browser(&driver, profile.path()).await;
    viewport(&client, 1366, 768).await;

    client.goto(&base).await.expect("open the UI");
    wait_until(
        &client,
        "the setup page",
        "location.hash === '#/setup' && document.querySelector('form')",
    )
    .await;
    create_admin(&client, &app).await;

    // The BMS connects (and stays connected: its caps end with its connection) and
    // writes 20 A per phase for the site and 30 A for zone main, for 60 s each.
    let stream = tokio::net::TcpStream::connect(modbus)
        .await
        .expect("the BMS connects");
    let bms_addr = stream.local_addr().expect("its address").to_string();
    let mut bms = tokio_modbus::client::tcp::attach_slave(stream, Slave(1));
    let [hi, lo] = float_words(20.0);
    bms.write_multiple_registers(200, &[hi, lo, 0, 60])
        .await
        .expect("the site cap is sent")
        .expect("the site cap is accepted");
    let [hi, lo] = float_words(30.0);
    bms.write_multiple_registers(9000, &[hi, lo, 60])
        .await
        .expect("the zone cap is sent")
        .expect("the zone cap is accepted");

    // The navigation has the entry because this controller has a [bms] section.
    client
        .find(Locator::XPath(
            "//nav[@id='nav']//a[normalize-space()='BMS']",
        ))
        .await
        .expect("a BMS entry in the navigation")
        .click()
        .await
        .expect("open the BMS view");
    let kv = "(label) => [...document.querySelectorAll('main .kv')] \
              .find(r => r.querySelector('dt').innerText.trim() === label)?.querySelector('dd').innerText.trim()";
    wait_until(
        &client,
        "the site cap of 20 A in force with a remaining time, the client and the log",
        &format!(
            "location.hash === '#/bms' && (kv => kv('State') === 'BMS cap in force' \
               && kv('In force') === '20.0 A per phase' && /^\\d+ s$/.test(kv('Remaining')) \
               && Number(kv('Remaining').split(' ')[0]) > 40 \
               && kv('Fail-safe') === '40.0 A per phase' && kv('Requested') === '20.0 A' \
               && (kv('Written by') || '').includes('{bms_addr}'))({kv}) \
             && [...document.querySelectorAll('td[data-label=\"Address\"]')].some(c => c.innerText.trim() === '{bms_addr}') \
             && [...document.querySelectorAll('tbody tr')].some(r => \
                  r.querySelector('td[data-label=\"Outcome\"]')?.innerText.trim() === 'accepted' \
                  && r.querySelector('td[data-label=\"Target\"]')?.innerText.trim() === 'Site' \
                  && r.querySelector('td[data-label=\"Effective\"]')?.innerText.trim() === '20.0 A') \
             && [...document.querySelectorAll('tbody tr')].some(r => \
                  r.querySelector('td[data-label=\"Zone\"]')?.innerText.trim() === 'main' \
                  && r.querySelector('td[data-label=\"In force\"]')?.innerText.trim() === '30.0 A')"
        ),
    )
    .await;
    // The remaining time counts down in the page between (and with) the refreshes.
    let remaining = format!("({kv})('Remaining')");
    let first = client
        .execute(&format!("return {remaining};"), vec![])
        .await
        .expect("the remaining time");
    let first = first.as_str().unwrap_or_default().to_owned();
    wait_until(
        &client,
        "the remaining time counting down",
        &format!("{remaining} !== '{first}' && /^\\d+ s$/.test({remaining})"),
    )
    .await;
    screenshots(&client, "bms").await;

    // The admin ends the zone's cap, then the site's (each after confirming).
    click_button(&client, "End").await;
    wait_until(
        &client,
        "the confirmation dialog",
        "document.querySelector('dialog[open]')",
    )
    .await;
    click_button(&client, "End the cap").await;
    wait_until(
        &client,
        "no zone cap in force",
        "document.body.innerText.includes('No zone cap in force.')",
    )
    .await;
    click_button(&client, "End the site cap").await;
    wait_until(
        &client,
        "the confirmation dialog",
        "document.querySelector('dialog[open]')",
    )
    .await;
    click_button(&client, "End the cap").await;
    wait_until(
        &client,
        "the fail-safe 40 A in force, and the release in the log",
        &format!(
            "(kv => kv('State') === 'fail-safe cap' && kv('In force') === '40.0 A per phase' \
               && kv('Remaining') === undefined)({kv}) \
             && ![...document.querySelectorAll('button')].some(b => b.innerText.trim() === 'End the site cap') \
             && [...document.querySelectorAll('tbody tr')].some(r => \
                  r.querySelector('td[data-label=\"Outcome\"]')?.innerText.trim() === 'released' \
                  && r.querySelector('td[data-label=\"Target\"]')?.innerText.trim() === 'Site' \
                  && r.querySelector('td[data-label=\"By\"]')?.innerText.includes('admin'))"
        ),
    )
    .await;
    screenshots(&client, "bms-failsafe").await;
    client
        .execute(
            "[...document.querySelectorAll('h2')].find(h => h.innerText === 'Log of writes').scrollIntoView();",
            vec![],
        )
        .await
        .expect("scroll to the log");
    screenshots(&client, "bms-log").await;

    // The register map downloads from the page's link.
    let csv = client
        .execute_async(
            "const done = arguments[0]; \
             const link = [...document.querySelectorAll('a')].find(a => a.textContent === 'Register map (CSV)'); \
             fetch(link.href).then(r => r.text()).then(done);",
            vec![],
        )
        .await
        .expect("the register map");
    assert!(
        csv.as_str().unwrap_or_default().lines().count() > 10,
        "{csv}"
    );

    let errors = browser_errors(&client).await;
    client.close().await.expect("close the browser");
    drop(bms);
    assert!(errors.is_empty(), "browser errors: {errors:#?}");
}

/// A controller relaying its station to a CPO ([uplink]): the navigation has the CPO
/// uplink entry, and the view shows the station connected and accepted by the CPO with
/// nothing left to send, and the limit the CPO set for it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sees_the_station_connected_to_the_cpo_in_the_uplink_view() {
    let cpo = common::cpo::Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let site = format!(
        r#"
[auth]
mode = "local"

[uplink]
url = "{}"
password = "cpo-key-0001"

[[zones]]
id = "main"
limit_a = 63.0

[[stations]]
id = "CP001"
zone = "main"
max_current_a = 32.0
"#,
        cpo.url()
    );
    let driver = start_driver().await;
    let app = TestApp::start("", &site);
    let base = format!("http://{}", app.app().http_addr);
    let profile = tempfile::tempdir().expect("browser profile");
    let client = browser(&driver, profile.path()).await;
    viewport(&client, 1366, 768).await;

    client.goto(&base).await.expect("open the UI");
    wait_until(
        &client,
        "the setup page",
        "location.hash === '#/setup' && document.querySelector('form')",
    )
    .await;
    create_admin(&client, &app).await;

    // The station boots here and is relayed to the CPO, which caps it at 16 A.
    let station = app.booted("CP001").await;
    let status = json!({ "connectorId": 1, "errorCode": "NoError", "status": "Available", "timestamp": now_text() });
    ok(station
        .call("StatusNotification", status)
        .await
        .expect("answered"));
    cpo.until("the boot at the CPO", |r| {
        r.iter().any(|c| c.action == "BootNotification")
    })
    .await;
    let started = (chrono::Utc::now() - chrono::TimeDelta::seconds(60))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let max = json!({"connectorId": 0, "csChargingProfiles": {
        "chargingProfileId": 501, "stackLevel": 0, "chargingProfilePurpose": "ChargePointMaxProfile",
        "chargingProfileKind": "Absolute",
        "chargingSchedule": {"chargingRateUnit": "A", "startSchedule": started,
            "chargingSchedulePeriod": [{"startPeriod": 0, "limit": 16.0}]}}});
    let answer = cpo.call("CP001", "SetChargingProfile", max).await;
    assert_eq!(answer["status"], "Accepted", "{answer}");

    // The navigation has the entry because this controller has an [uplink] section.
    client
        .find(Locator::XPath(
            "//nav[@id='nav']//a[normalize-space()='CPO uplink']",
        ))
        .await
        .expect("a CPO uplink entry in the navigation")
        .click()
        .await
        .expect("open the CPO uplink view");
    let kv = "(label) => [...document.querySelectorAll('main .kv')] \
              .find(r => r.querySelector('dt').innerText.trim() === label)?.querySelector('dd').innerText.trim()";
    let url = cpo.url();
    wait_until(
        &client,
        "CP001 connected and accepted by the CPO, backlog 0, capped at 16 A",
        &format!(
            "location.hash === '#/uplink' \
             && (kv => kv('CPO') === '{url}' && kv('Stations connected') === '1 / 1' \
               && kv('Accepted by the CPO') === '1 / 1' && kv('Backlog') === '0')({kv}) \
             && [...document.querySelectorAll('tbody tr')].some(r => {{ \
                  const cell = (label) => r.querySelector(`td[data-label=\"${{label}}\"]`)?.innerText.trim(); \
                  return cell('Station') === 'CP001' && cell('Connection') === 'connected' \
                    && cell('Accepted by CPO') === 'accepted' && cell('Backlog') === '0' \
                    && Number(cell('Messages sent')) >= 2 && cell('CPO limits') === 'Station 16.0 A' \
                    && cell('Last error') === '–'; }})"
        ),
    )
    .await;
    screenshots(&client, "uplink").await;

    let errors = browser_errors(&client).await;
    client.close().await.expect("close the browser");
    drop(station);
    assert!(errors.is_empty(), "browser errors: {errors:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_operator_sets_up_and_logs_in_over_https() {
    let driver = start_driver().await;
    let pki = tempfile::tempdir().expect("certificates");
    ampwarden::tls::init(pki.path(), &["127.0.0.1".to_owned()], false).expect("tls init");
    let tls = format!(
        "[tls]\ncert_file = {:?}\nkey_file = {:?}\n",
        pki.path()
            .join(ampwarden::tls::SERVER_CERT)
            .display()
            .to_string(),
        pki.path()
            .join(ampwarden::tls::SERVER_KEY)
            .display()
            .to_string(),
    );
    let app = TestApp::start(
        "http_listen = \"127.0.0.1:0\"\nhttp_listen_tls = \"127.0.0.1:0\"\n",
        &format!("{SMALL_SITE}\n{tls}"),
    );
    let addr = app.app().http_tls_addr.expect("the https:// listener");
    let profile = tempfile::tempdir().expect("browser profile");
    // The site CA is the test's own: the browser is told to accept its certificate.
    let client = browser_with(&driver, profile.path(), &["--ignore-certificate-errors"]).await;
    viewport(&client, 1366, 768).await;

    client
        .goto(&format!("https://{addr}/"))
        .await
        .expect("open the UI over HTTPS");
    wait_until(
        &client,
        "the setup page",
        "location.hash === '#/setup' && document.querySelector('form')",
    )
    .await;
    create_admin(&client, &app).await;
    click_button(&client, "Log out").await;
    wait_until(
        &client,
        "the login page",
        "location.hash === '#/login' && document.querySelector('form')",
    )
    .await;
    fill(&client, "Name", "admin").await;
    fill(&client, "Password", ADMIN_PASSWORD).await;
    click_button(&client, "Log in").await;
    wait_until(
        &client,
        "the dashboard over HTTPS",
        "location.protocol === 'https:' && location.hash === '#/' && document.querySelector('.zone')",
    )
    .await;
    // The session cookie is HttpOnly (not in document.cookie) and the API answers with it.
    let who = client
        .execute(
            "return fetch('/api/v1/auth/session').then(r => r.json());",
            vec![],
        )
        .await
        .expect("session query");
    assert_eq!(who["name"], "admin", "{who}");
    let errors = browser_errors(&client).await;
    assert!(errors.is_empty(), "console errors over HTTPS: {errors:#?}");
    client.close().await.expect("close the browser");
}
