//! The live views: site totals and the reasons for each limit, the events WebSocket the
//! dashboard listens to, the chart, and the Prometheus metrics.

use crate::common;

use common::http::Api;
use common::*;
use futures_util::StreamExt;
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::Message;

type Events =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

async fn events(api: &Api, origin: Option<&str>) -> Result<Events, u16> {
    let url = format!("{}/api/v1/events", api.base.replace("http://", "ws://"));
    let mut request = url.into_client_request().expect("request");
    if let Some(c) = &api.cookie {
        request
            .headers_mut()
            .insert("Cookie", HeaderValue::from_str(c).expect("header"));
    }
    if let Some(o) = origin {
        request
            .headers_mut()
            .insert("Origin", HeaderValue::from_str(o).expect("header"));
    }
    match tokio_tungstenite::connect_async(request).await {
        Ok((stream, _)) => Ok(stream),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("WebSocket error: {e}"),
    }
}

/// The next event whose `type` is `kind` and which satisfies `wanted`.
async fn next_event(stream: &mut Events, kind: &str, wanted: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + WAIT;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let msg = tokio::time::timeout(left, stream.next())
            .await
            .unwrap_or_else(|_| panic!("no {kind} event"))
            .expect("stream open")
            .expect("a message");
        if let Message::Text(text) = msg {
            let event: Value = serde_json::from_str(&text).expect("JSON");
            if event["type"] == kind && wanted(&event) {
                return event;
            }
        }
    }
}

async fn start_charging(station: &ampwarden::simulate::client::StationClient) -> i64 {
    let start =
        json!({ "connectorId": 1, "idTag": "GOODTAG", "meterStart": 0, "timestamp": now_text() });
    ok(station
        .call("StartTransaction", start)
        .await
        .expect("answered"))["transactionId"]
        .as_i64()
        .expect("id")
}

#[tokio::test]
async fn the_site_shows_each_zone_and_why_each_vehicle_has_its_limit() {
    let app = TestApp::start("", SMALL_SITE);
    let viewer = Api::setup(&app).await;
    let station = app.booted("CP001").await;
    start_charging(&station).await;
    let mut site = Value::Null;
    for _ in 0..50 {
        site = viewer.get("/api/v1/site").await.expect(200).json();
        if site["sessions"].as_array().is_some_and(|s| !s.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    let zone = &site["zones"][0];
    assert_eq!(zone["id"], "main");
    assert_eq!(zone["limit_a"], 63.0);
    assert_eq!(zone["budget"].as_array().map(Vec::len), Some(3));
    assert_eq!(zone["ev_draw"].as_array().map(Vec::len), Some(3));
    let session = &site["sessions"][0];
    assert_eq!(session["station"], "CP001");
    assert!(
        session["why"].as_str().is_some_and(|w| !w.is_empty()),
        "{session}"
    );
}

#[tokio::test]
async fn the_events_stream_greets_then_reports_station_changes() {
    let app = TestApp::start("", SMALL_SITE);
    let viewer = Api::setup(&app).await;
    // The zones are in the site status from the first allocation round on.
    for _ in 0..50 {
        let site = viewer.get("/api/v1/site").await.expect(200).json();
        if site["zones"].as_array().is_some_and(|z| !z.is_empty()) {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    let mut stream = events(&viewer, None).await.expect("connected");
    let hello = next_event(&mut stream, "hello", |_| true).await;
    assert_eq!(hello["stations"].as_array().map(Vec::len), Some(4));
    assert_eq!(hello["site"]["zones"][0]["id"], "main");

    let station = app.booted("CP002").await;
    next_event(&mut stream, "station", |e| {
        e["station"]["id"] == "CP002" && e["station"]["live"]["booted"] == true
    })
    .await;
    start_charging(&station).await;
    let site = next_event(&mut stream, "site", |e| {
        e["site"]["sessions"]
            .as_array()
            .is_some_and(|s| s.iter().any(|x| x["station"] == "CP002"))
    })
    .await;
    assert_eq!(site["site"]["name"], "ampwarden");
}

#[tokio::test]
async fn the_events_stream_needs_a_login_from_this_origin() {
    let app = TestApp::start("", SMALL_SITE);
    let viewer = Api::setup(&app).await;
    assert_eq!(events(&Api::anonymous(&app), None).await.err(), Some(401));
    assert_eq!(
        events(&viewer, Some("http://evil.example")).await.err(),
        Some(403)
    );
    events(&viewer, Some(&viewer.base))
        .await
        .expect("same origin");
}

#[tokio::test]
async fn the_chart_is_an_svg_of_a_root_zone() {
    let app = TestApp::start("", SMALL_SITE);
    let viewer = Api::setup(&app).await;
    let chart = viewer.get("/api/v1/site/chart.svg").await.expect(200);
    assert_eq!(chart.header("content-type"), Some("image/svg+xml"));
    assert!(chart.body.starts_with("<svg") && chart.body.ends_with("</svg>"));
    assert_eq!(
        viewer
            .get("/api/v1/site/chart.svg?hours=48")
            .await
            .error(400)
            .as_deref(),
        Some("hours")
    );
    assert_eq!(
        viewer
            .get("/api/v1/site/chart.svg?zone=nope")
            .await
            .error(400)
            .as_deref(),
        Some("zone")
    );
}

#[tokio::test]
async fn metrics_are_prometheus_text() {
    let app = TestApp::start("", SMALL_SITE);
    let _station = app.booted("CP001").await;
    let anon = Api::anonymous(&app);
    let mut metrics = anon.get("/metrics").await.expect(200);
    // The zones' figures come with the first allocation round.
    for _ in 0..50 {
        if metrics.body.contains("ampwarden_zone_ev_budget_amps{") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
        metrics = anon.get("/metrics").await.expect(200);
    }
    assert!(metrics
        .header("content-type")
        .is_some_and(|c| c.starts_with("text/plain")));
    let body = metrics.body;
    assert!(
        body.contains("# TYPE ampwarden_stations_connected gauge"),
        "{body}"
    );
    assert!(body.contains("ampwarden_stations_connected 1\n"), "{body}");
    assert!(
        body.contains("# TYPE ampwarden_zone_safety_cuts_total counter")
            && body.contains("ampwarden_zone_safety_cuts_total{zone=\"main\"} 0\n"),
        "{body}"
    );
    assert!(body.contains("ampwarden_stations_configured 4\n"), "{body}");
    assert!(
        body.contains("ampwarden_zone_limit_amps{zone=\"main\"} 63\n"),
        "{body}"
    );
    assert!(
        body.contains("ampwarden_zone_ev_budget_amps{zone=\"main\",phase=\"L1\"}"),
        "{body}"
    );
    for line in body.lines().filter(|l| !l.starts_with('#')) {
        let value = line.rsplit(' ').next().unwrap_or_default();
        assert!(value.parse::<f64>().is_ok(), "bad sample line {line:?}");
    }
    // The process's memory: a controller with a station and a store holds megabytes.
    let gauge = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse::<f64>().ok())
    };
    let rss = gauge("process_resident_memory_bytes").expect("resident memory in /metrics");
    let in_use = gauge("ampwarden_heap_in_use_bytes").expect("heap in use in /metrics");
    assert!(rss > 1e6, "resident {rss}");
    assert!(
        in_use > 0.0 && in_use < rss,
        "heap in use {in_use}, resident {rss}"
    );
    assert!(gauge("ampwarden_heap_free_held_bytes").is_some(), "{body}");
    assert!(gauge("ampwarden_heap_mapped_bytes").is_some(), "{body}");
}
