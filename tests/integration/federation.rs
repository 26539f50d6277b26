//! Federation, end to end on loopback: a primary and three secondaries (each a whole
//! controller with its own storage, HTTP and OCPP listeners), real station clients on
//! the secondaries, the link to one secondary through a TCP proxy the test can cut.
//!
//! Judged from the stations' side: the sum of the limits in force on every station of
//! the federation never exceeds the primary zone's limit, at any moment — while sharing,
//! while a link is cut, while the primary is down, and after.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::common::fleet::{boot_fleet_as, start_transaction, Behaviour, Timeline};
use crate::common::http::Api;
use crate::common::{free_port, TestApp, LONG};

/// The primary zone all secondaries feed.
const MAIN_A: f64 = 100.0;
const FALLBACK_A: f64 = 20.0;
const VALID_FOR_S: u64 = 6;
const VEHICLES: usize = 2;
const STATION_MAX_A: f64 = 32.0;

fn token(i: usize) -> String {
    format!("token-of-secondary-{i:02}")
}

fn primary_body(port: u16) -> (String, String) {
    let tokens: Vec<String> = (1..=3)
        .map(|i| {
            format!(
                "{{ name = \"s{i}\", token = \"{}\", zone = \"main\", fallback_budget_a = {FALLBACK_A} }}",
                token(i)
            )
        })
        .chain(std::iter::once("\"plain-token-of-a-spare-box\"".to_owned()))
        .collect();
    (
        format!("http_listen = \"127.0.0.1:{port}\""),
        format!(
            "[site]\nname = \"primary\"\nmode = \"static\"\n\n\
             [[zones]]\nid = \"main\"\nlimit_a = {MAIN_A}\n\n\
             [federation]\nrole = \"primary\"\nvalid_for_s = {VALID_FOR_S}\ntokens = [{}]\n",
            tokens.join(", ")
        ),
    )
}

fn secondary_body(i: usize, primary: &str) -> String {
    let mut body = format!(
        "[site]\nname = \"s{i}\"\nmode = \"static\"\n\n[auth]\nmode = \"accept_all\"\n\n\
         [control]\nincrease_hold_s = 2\n\n\
         [[zones]]\nid = \"hall\"\nlimit_a = 200.0\n\n\
         [federation]\nrole = \"secondary\"\nprimary_url = \"ws://{primary}\"\ntoken = \"{}\"\n\
         zone = \"main\"\nfallback_budget_a = {FALLBACK_A}\n\n",
        token(i)
    );
    for v in 1..=VEHICLES {
        body.push_str(&format!(
            "[[stations]]\nid = \"S{i}EV{v:02}\"\nzone = \"hall\"\nmax_current_a = {STATION_MAX_A}\n\n"
        ));
    }
    body
}

/// A TCP proxy that can stop forwarding without closing anything (a cut cable).
struct Proxy {
    addr: std::net::SocketAddr,
    cut: Arc<AtomicBool>,
}

impl Proxy {
    async fn start(target: String) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let cut = Arc::new(AtomicBool::new(false));
        let flag = cut.clone();
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let (flag, target) = (flag.clone(), target.clone());
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(&target).await else {
                        return;
                    };
                    let (cr, cw) = client.into_split();
                    let (sr, sw) = server.into_split();
                    tokio::join!(pump(cr, sw, flag.clone()), pump(sr, cw, flag));
                });
            }
        });
        Proxy { addr, cut }
    }
}

/// Copies bytes while the link is not cut; while cut, what arrives is dropped (and the
/// copying ends, as after a long outage: both ends must notice on their own).
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    cut: Arc<AtomicBool>,
) {
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        if cut.load(Ordering::SeqCst) {
            // Hold the socket open and silent: nothing more goes through.
            std::future::pending::<()>().await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
}

async fn federation_of(app: &TestApp) -> Value {
    let api = Api::admin(app).await;
    api.get("/api/v1/federation").await.expect(200).json()
}

/// Waits until `check` holds for the app's federation view.
async fn wait_federation(
    app: &TestApp,
    what: &str,
    wait: Duration,
    check: impl Fn(&Value) -> bool,
) -> Value {
    let api = Api::admin(app).await;
    let deadline = Instant::now() + wait;
    loop {
        let view = api.get("/api/v1/federation").await.expect(200).json();
        if check(&view) {
            return view;
        }
        assert!(
            Instant::now() < deadline,
            "timed out waiting for {what}: {view:#}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn mode(view: &Value) -> &str {
    view["link"]["mode"].as_str().unwrap_or("?")
}

fn all_linked(view: &Value, n: usize) -> bool {
    view["secondaries"].as_array().is_some_and(|s| {
        s.iter()
            .filter(|s| s["link"] == "linked" && s["on_grant"] == true)
            .count()
            == n
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_shares_its_zone_across_secondaries_and_every_link_fails_safe() {
    let port = free_port();
    let (server, body) = primary_body(port);
    let mut primary = TestApp::start(&server, &body);
    let primary_addr = format!("127.0.0.1:{port}");
    let proxy = Proxy::start(primary_addr.clone()).await;
    let secondaries: Vec<TestApp> = (1..=3)
        .map(|i| {
            let via = if i == 3 {
                proxy.addr.to_string()
            } else {
                primary_addr.clone()
            };
            TestApp::start("", &secondary_body(i, &via))
        })
        .collect();
    wait_federation(&primary, "three secondaries on a grant", LONG, |v| {
        all_linked(v, 3)
    })
    .await;

    // Two vehicles on each secondary, all wanting 32 A: 192 A asked, 100 A to share.
    let timeline = Timeline::default();
    let mut clients = Vec::new();
    for (i, s) in secondaries.iter().enumerate() {
        let prefix = format!("S{}EV", i + 1);
        let fleet = boot_fleet_as(s, &timeline, &prefix, VEHICLES, |_| Behaviour::default()).await;
        for (v, c) in fleet.iter().enumerate() {
            start_transaction(&timeline, c, &format!("{prefix}{:02}", v + 1), "ANYTAG").await;
        }
        clients.push(fleet);
    }
    let share = MAIN_A / (3 * VEHICLES) as f64;
    let equal = |l: &std::collections::HashMap<String, f64>| {
        l.len() == 3 * VEHICLES && l.values().all(|&a| (a - share).abs() <= 0.5)
    };
    let deadline = Instant::now() + LONG * 2;
    while !equal(&timeline.current()) && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    if !equal(&timeline.current()) {
        eprintln!("primary: {:#}", federation_of(&primary).await);
        for s in &secondaries {
            let site = Api::admin(s).await.get("/api/v1/site").await.json();
            eprintln!("secondary: {:#}", site["zones"]);
            eprintln!("secondary sessions: {:#}", site["sessions"]);
        }
    }
    let settled = timeline
        .wait_for("equal shares across the federation", Duration::ZERO, equal)
        .await;
    // Equal percentage holds across boxes: a vehicle on s1 and one on s3 get the same.
    assert!(
        (settled["S1EV01"] - settled["S3EV02"]).abs() <= 0.5,
        "{settled:?}"
    );
    let view = federation_of(&primary).await;
    let s1 = &view["secondaries"][0];
    assert_eq!(s1["name"], "s1");
    assert_eq!(s1["report"]["active"], 2, "{s1:#}");
    wait_until(LONG, "the primary lists s2's stations", || async {
        let list = Api::admin(&primary)
            .await
            .get("/api/v1/federation/stations?secondary=s2")
            .await
            .expect(200)
            .json();
        list.as_array().is_some_and(|l| {
            l.len() == VEHICLES
                && l.iter()
                    .all(|s| s["secondary"] == "s2" && s["connected"] == true)
        })
    })
    .await;

    // A remote action on a secondary's station, from the primary: relayed, answered by
    // the station; a wrong one answered as the secondary's API answers it.
    let operator = Api::admin(&primary).await;
    let reset = operator
        .post(
            "/api/v1/federation/secondaries/s1/stations/S1EV01/actions/reset",
            json!({ "type": "Soft" }),
        )
        .await
        .expect(200)
        .json();
    assert_eq!(reset["status"], "Accepted", "{reset}");
    let wrong = operator
        .post(
            "/api/v1/federation/secondaries/s1/stations/S1EV01/actions/explode",
            json!({}),
        )
        .await
        .expect(404)
        .json();
    assert_eq!(
        wrong["error"],
        "no action \"explode\": use start, stop, reset, unlock, availability, trigger, get_log or signed_update_firmware"
    );
    assert_eq!(wrong["field"], "action");
    // The secondary's transactions and log, read from the primary.
    let txs = operator
        .get("/api/v1/federation/secondaries/s1/transactions")
        .await
        .expect(200)
        .json();
    let txs = txs.as_array().cloned().unwrap_or_default();
    assert_eq!(txs.len(), VEHICLES, "{txs:?}");
    assert!(
        txs.iter()
            .all(|t| t["station"].as_str().is_some_and(|s| s.starts_with("S1EV"))),
        "{txs:?}"
    );
    // As the secondary's own API gives them: open, with their energy so far.
    assert!(
        txs.iter()
            .all(|t| t["open"] == true && t["energy_wh"].is_number()),
        "{txs:?}"
    );
    let log = operator
        .get("/api/v1/federation/secondaries/s1/logs?station=S1EV01&limit=5")
        .await
        .expect(200)
        .json();
    let log = log.as_array().cloned().unwrap_or_default();
    assert!(!log.is_empty() && log.len() <= 5, "{log:?}");
    assert!(
        log.iter()
            .any(|e| e["message"].as_str().is_some_and(|m| m.contains("reset"))),
        "the relayed reset is in s1's log: {log:?}"
    );
    operator
        .post(
            "/api/v1/federation/secondaries/nobody/stations/X/actions/reset",
            json!({}),
        )
        .await
        .expect(503);

    // Cut s3's link without closing it: s3 is on its fallback within valid_for + 1 s.
    proxy.cut.store(true, Ordering::SeqCst);
    let cut_at = Instant::now();
    wait_federation(
        &secondaries[2],
        "s3 on its fallback",
        Duration::from_secs(VALID_FOR_S + 1),
        |v| mode(v) == "fallback",
    )
    .await;
    let to_fallback = cut_at.elapsed();
    eprintln!("link cut → s3 on its fallback after {to_fallback:?} (valid_for {VALID_FOR_S} s)");
    // Its vehicles share the fallback; the primary keeps what s3 may hold for it.
    timeline
        .wait_for("s3's vehicles on the fallback", LONG, |l| {
            l["S3EV01"] + l["S3EV02"] <= FALLBACK_A + 0.05
        })
        .await;
    let view = wait_federation(&primary, "s3 unreachable at the primary", LONG, |v| {
        v["secondaries"][2]["link"] == "unreachable"
    })
    .await;
    let reserved = view["secondaries"][2]["reserved_a"][0]
        .as_f64()
        .unwrap_or(0.0);
    assert!(reserved >= FALLBACK_A, "{view:#}");
    // Restore the cable: s3 dials again, rejoins, and the shares come back.
    proxy.cut.store(false, Ordering::SeqCst);
    wait_federation(&primary, "s3 back on a grant", LONG * 2, |v| {
        all_linked(v, 3)
    })
    .await;
    timeline
        .wait_for("equal shares again", LONG, |l| {
            l.values().all(|&a| (a - share).abs() <= 0.5)
        })
        .await;

    // The primary stops: every secondary falls back; it restarts: grants again.
    primary.stop();
    let stopped_at = Instant::now();
    for s in &secondaries {
        wait_federation(
            s,
            "a secondary on its fallback",
            Duration::from_secs(VALID_FOR_S + 2),
            |v| mode(v) == "fallback",
        )
        .await;
    }
    eprintln!(
        "primary stopped → all secondaries on their fallback after {:?}",
        stopped_at.elapsed()
    );
    timeline
        .wait_for(
            "every secondary's vehicles within its fallback",
            LONG,
            |l| {
                (1..=3)
                    .all(|i| l[&format!("S{i}EV01")] + l[&format!("S{i}EV02")] <= FALLBACK_A + 0.05)
            },
        )
        .await;
    primary.restart();
    wait_federation(
        &primary,
        "all three back after the primary's restart",
        LONG * 2,
        |v| all_linked(v, 3),
    )
    .await;
    timeline
        .wait_for("equal shares after the primary's restart", LONG, |l| {
            l.values().all(|&a| (a - share).abs() <= 0.5)
        })
        .await;

    // Through all of it: never more than the primary zone on the stations' side. A
    // station with no limit yet counts at its maximum.
    let (worst, story) = timeline.worst_moment_of(|_| true, STATION_MAX_A);
    assert!(
        worst <= MAIN_A + 1e-6,
        "Σ limits in force reached {worst} A on {MAIN_A} A: {story}"
    );
    drop(clients);
}

async fn wait_until<F, Fut>(wait: Duration, what: &str, check: F)
where
    F: Fn() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + wait;
    while !check().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A hand-made link: dials with `token` (if any) and says `hello`.
async fn raw_link(
    primary: &TestApp,
    token: Option<&str>,
) -> Result<tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>, u16> {
    let mut request = format!("ws://{}/federation", primary.app().http_addr)
        .into_client_request()
        .expect("request");
    if let Some(t) = token {
        request.headers_mut().insert(
            "Authorization",
            format!("Bearer {t}").parse().expect("header"),
        );
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((ws, _)) => Ok(ws),
        Err(tokio_tungstenite::tungstenite::Error::Http(r)) => Err(r.status().as_u16()),
        Err(e) => panic!("cannot dial the primary: {e}"),
    }
}

/// Dials with `token`, says hello as `name`: the link and the primary's first answer.
async fn say_hello(
    primary: &TestApp,
    token: &str,
    name: &str,
) -> (
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
    Value,
) {
    let mut ws = raw_link(primary, Some(token)).await.expect("handshake");
    ws.send(Message::text(hello(name))).await.expect("send");
    let answer = next_json(&mut ws).await;
    (ws, answer)
}

fn hello(name: &str) -> String {
    json!({ "type": "hello", "v": 1, "name": name, "zone": "main", "fallback_budget_a": FALLBACK_A, "limit_a": 200.0, "software": "test" }).to_string()
}

/// The next text frame, as JSON.
async fn next_json(
    ws: &mut tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<TcpStream>>,
) -> Value {
    loop {
        let frame = tokio::time::timeout(Duration::from_secs(10), ws.next())
            .await
            .expect("a frame within 10 s")
            .expect("the link is open")
            .expect("a frame");
        if let Message::Text(t) = frame {
            return serde_json::from_str(&t).expect("JSON");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_primary_refuses_bad_links_and_clamps_absurd_demand() {
    let port = free_port();
    let (server, body) = primary_body(port);
    let primary = TestApp::start(&server, &body);
    // No token, a wrong token: refused at the handshake, counted.
    assert_eq!(raw_link(&primary, None).await.err(), Some(401));
    assert_eq!(
        raw_link(&primary, Some("not-a-token-we-know")).await.err(),
        Some(401)
    );
    // A token given to s1 used by a box calling itself s2: refused with the reason.
    let (_, refused) = say_hello(&primary, &token(1), "s2").await;
    assert_eq!(refused["type"], "refused", "{refused}");
    assert_eq!(
        refused["reason"],
        "this token belongs to secondary \"s1\", not \"s2\""
    );
    // s1 for real; then a second s1 while it is linked.
    let (mut s1, welcome) = say_hello(&primary, &token(1), "s1").await;
    assert_eq!(welcome["type"], "welcome");
    let (_, refused) = say_hello(&primary, &token(1), "s1").await;
    assert_eq!(
        refused["reason"], "a secondary named \"s1\" is already linked",
        "{refused}"
    );
    // The spare plain token, once by one name, then by another box at the same time.
    let (_spare, welcome) = say_hello(&primary, "plain-token-of-a-spare-box", "spare").await;
    assert_eq!(welcome["type"], "welcome");
    let (_, refused) = say_hello(&primary, "plain-token-of-a-spare-box", "another").await;
    assert_eq!(
        refused["reason"], "this token is already in use by secondary \"spare\"",
        "{refused}"
    );
    // Garbage and absurd values: ignored and counted; the link stays; demand clamped.
    for bad in [
        "not json".to_owned(),
        json!({ "type": "report", "v": 99 }).to_string(),
        json!({ "type": "launch_missiles", "v": 1 }).to_string(),
    ] {
        s1.send(Message::text(bad)).await.expect("send");
    }
    let report = |max: f64| {
        json!({
            "type": "report", "v": 1, "at": "2026-12-07T10:00:00Z", "mode": "fallback", "grant_seq": 0,
            "ev_draw_a": [0.0, 0.0, 0.0], "max_a": [max, max, max], "vip_max_a": [0.0, 0.0, 0.0],
            "min_a": [6.0, 6.0, 6.0], "vip_min_a": [0.0, 0.0, 0.0], "fixed_a": [0.0, 0.0, 0.0],
            "in_force_a": [0.0, 0.0, 0.0], "meter_a": null, "active": 1, "waiting": 0,
            "suspended": 0, "ramping": false
        })
        .to_string()
    };
    s1.send(Message::text(report(1e9))).await.expect("send");
    // It is granted no more than the zone, minus what the spare box's fallback holds.
    let grant = loop {
        let m = next_json(&mut s1).await;
        if m["type"] == "grant" {
            break m;
        }
    };
    let granted = grant["budget_a"][0].as_f64().expect("a number");
    assert!(granted <= MAIN_A - FALLBACK_A + 1e-6, "{grant}");
    let view = federation_of(&primary).await;
    let s1_view = view["secondaries"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "s1"))
        .cloned()
        .unwrap_or_default();
    assert_eq!(
        s1_view["report"]["max_a"][0], MAIN_A,
        "clamped to its zone: {s1_view:#}"
    );
    let metrics = Api::admin(&primary).await.get("/metrics").await.expect(200);
    let text = metrics.body;
    assert!(
        text.contains("ampwarden_federation_refused_total{reason=\"token\"} 2"),
        "{text}"
    );
    assert!(
        text.contains("ampwarden_federation_refused_total{reason=\"hello\"} 3"),
        "{text}"
    );
    assert!(
        text.contains("ampwarden_federation_malformed_total 3"),
        "{text}"
    );

    // An admin revokes s1's token: its link closes with the reason, the token is refused
    // at the handshake; reinstated, s1 links again.
    let admin = Api::admin(&primary).await;
    admin
        .post("/api/v1/federation/secondaries/s1/revoke", json!({}))
        .await
        .expect(200);
    let closed = loop {
        let m = next_json(&mut s1).await;
        if m["type"] == "refused" {
            break m;
        }
    };
    assert_eq!(closed["reason"], "this secondary's token was revoked");
    assert_eq!(raw_link(&primary, Some(&token(1))).await.err(), Some(401));
    let view = federation_of(&primary).await;
    let s1_view = view["secondaries"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "s1"))
        .cloned()
        .unwrap_or_default();
    assert!(
        s1_view["reserved_a"][0].as_f64().unwrap_or(0.0) >= FALLBACK_A,
        "{s1_view:#}"
    );
    admin
        .delete("/api/v1/federation/secondaries/s1/revoke")
        .await
        .expect(200);
    admin
        .delete("/api/v1/federation/secondaries/s1/revoke")
        .await
        .expect(404);
    let (_again, welcome) = say_hello(&primary, &token(1), "s1").await;
    assert_eq!(welcome["type"], "welcome");
    admin
        .post("/api/v1/federation/secondaries/nobody/revoke", json!({}))
        .await
        .expect(404);
}

/// A station of a secondary that never answers a SetChargingProfile (and applies every
/// profile all the same, the worst case for the breaker) is counted at its maximum by
/// its secondary, and so by the primary: across the federation the limits in force
/// never exceed what the primary zone leaves for the linked secondaries.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_station_that_never_answers_on_a_secondary_counts_at_its_maximum_in_the_federation() {
    let port = free_port();
    let (server, body) = primary_body(port);
    let primary = TestApp::start(&server, &body);
    let primary_addr = format!("127.0.0.1:{port}");
    let secondaries: Vec<TestApp> = (1..=2)
        .map(|i| TestApp::start("", &secondary_body(i, &primary_addr)))
        .collect();
    wait_federation(&primary, "two secondaries on a grant", LONG, |v| {
        all_linked(v, 2)
    })
    .await;
    let timeline = Timeline::default();
    let mut clients = Vec::new();
    for (i, s) in secondaries.iter().enumerate() {
        let prefix = format!("S{}EV", i + 1);
        let fleet = boot_fleet_as(s, &timeline, &prefix, VEHICLES, |v| Behaviour {
            silent: i == 0 && v == 1,
            applies_unanswered: i == 0 && v == 1,
            ..Behaviour::default()
        })
        .await;
        for (v, c) in fleet.iter().enumerate() {
            start_transaction(&timeline, c, &format!("{prefix}{:02}", v + 1), "ANYTAG").await;
        }
        clients.push(fleet);
    }
    // s3 never links: the primary keeps its fallback, the linked two share the rest,
    // and the silent station takes its whole maximum of that.
    let room = MAIN_A - FALLBACK_A;
    let others = ["S1EV02", "S2EV01", "S2EV02"];
    let fair = (room - STATION_MAX_A) / others.len() as f64;
    timeline
        .wait_for(
            "the three answering stations share what the silent one leaves",
            LONG * 2,
            |l| {
                others
                    .iter()
                    .all(|s| l.get(*s).is_some_and(|&a| (a - fair).abs() <= 0.5))
            },
        )
        .await;
    let view = federation_of(&primary).await;
    let s1 = view["secondaries"]
        .as_array()
        .and_then(|s| s.iter().find(|s| s["name"] == "s1"))
        .cloned()
        .unwrap_or_default();
    let target = s1["target_a"][0].as_f64().unwrap_or(0.0);
    assert!(
        target >= STATION_MAX_A + fair - 0.5,
        "s1 is granted room for the silent station at its maximum: {s1:#}"
    );
    // Let a few grants and rounds pass, then judge every moment: a station with no
    // limit yet counts at its maximum, the silent one at whatever it applied.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let (worst, story) = timeline.worst_moment_of(|_| true, STATION_MAX_A);
    assert!(
        worst <= room + 1e-6,
        "Σ limits in force reached {worst} A where {room} A was left for s1 and s2: {story}"
    );
    drop(clients);
}
