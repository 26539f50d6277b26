//! A charge-point operator's central system for the uplink tests: a real OCPP 1.6J
//! WebSocket server (tokio-tungstenite) built on the project's typed messages, that
//! records every call it receives, in order, and can send calls to a station.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use ampwarden_actors::ocpp::{Incoming, StationRequest};
use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;
use tokio_tungstenite::tungstenite::handshake::server::{Request, Response};
use tokio_tungstenite::tungstenite::Message;

/// One call a station sent the CPO.
#[derive(Clone, Debug)]
pub struct Received {
    pub station: String,
    pub action: String,
    pub payload: Value,
    pub unique_id: String,
}

#[derive(Default)]
struct State {
    received: Vec<Received>,
    next_transaction: i64,
    /// Per station: where to send its calls, and the answers awaited.
    links: BTreeMap<String, mpsc::UnboundedSender<String>>,
    waiting: BTreeMap<String, oneshot::Sender<Value>>,
    /// The Authorization header each station connected with.
    auth: BTreeMap<String, Option<String>>,
    connections: Vec<JoinHandle<()>>,
    /// Records calls but answers none (a CPO that hangs).
    silent: bool,
}

pub struct Cpo {
    pub addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl Drop for Cpo {
    fn drop(&mut self) {
        self.task.abort();
        let mut s = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for c in s.connections.drain(..) {
            c.abort();
        }
        s.links.clear();
    }
}

impl Cpo {
    /// Listens on `addr` (port 0: any); transaction ids start at 9001.
    pub async fn start(addr: SocketAddr) -> Cpo {
        let listener = TcpListener::bind(addr).await.expect("the CPO listens");
        let addr = listener.local_addr().expect("addr");
        let state = Arc::new(Mutex::new(State {
            next_transaction: 9001,
            ..State::default()
        }));
        let shared = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let state = shared.clone();
                let handle = tokio::spawn(serve(stream, state));
                shared.lock().expect("state").connections.push(handle);
            }
        });
        Cpo { addr, state, task }
    }

    /// Stops listening and drops every connection (what it received is returned).
    pub fn stop(self) -> Vec<Received> {
        self.received()
    }

    /// From now on, answers no call (and still records them).
    pub fn go_silent(&self, silent: bool) {
        self.state.lock().expect("state").silent = silent;
    }

    /// How many WebSocket connections were accepted so far.
    pub fn connections(&self) -> usize {
        self.state.lock().expect("state").connections.len()
    }

    /// Sends a raw text frame to a station's uplink and waits (5 s) for the answer with
    /// `unique_id` (as [`Cpo::call`] returns it); `None` when none came.
    pub async fn call_raw(&self, station: &str, unique_id: &str, text: &str) -> Option<Value> {
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.state.lock().expect("state");
            s.waiting.insert(unique_id.to_owned(), tx);
            let link = s
                .links
                .get(station)
                .expect("the station is linked to the CPO");
            link.send(text.to_owned()).expect("the link is open");
        }
        tokio::time::timeout(Duration::from_secs(5), rx)
            .await
            .ok()?
            .ok()
    }

    pub fn url(&self) -> String {
        format!("ws://{}/ocpp", self.addr)
    }

    pub fn received(&self) -> Vec<Received> {
        self.state.lock().expect("state").received.clone()
    }

    pub fn auth_of(&self, station: &str) -> Option<String> {
        self.state
            .lock()
            .expect("state")
            .auth
            .get(station)
            .cloned()
            .flatten()
    }

    /// Waits until `ok` holds on what was received.
    pub async fn until(&self, what: &str, ok: impl Fn(&[Received]) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            if ok(&self.received()) {
                return;
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "{what}: the CPO received {:#?}",
                self.received()
                    .iter()
                    .map(|r| (&r.station, &r.action))
                    .collect::<Vec<_>>()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Sends a call to a station through its uplink and returns the answer (the payload of
    /// a CALLRESULT, or `{"error": code}` for a CALLERROR).
    pub async fn call(&self, station: &str, action: &str, payload: Value) -> Value {
        let unique_id = format!("cpo-{}", rand_id());
        let (tx, rx) = oneshot::channel();
        {
            let mut s = self.state.lock().expect("state");
            s.waiting.insert(unique_id.clone(), tx);
            let link = s
                .links
                .get(station)
                .expect("the station is linked to the CPO");
            link.send(json!([2, unique_id, action, payload]).to_string())
                .expect("the link is open");
        }
        tokio::time::timeout(Duration::from_secs(20), rx)
            .await
            .expect("answered in time")
            .expect("answered")
    }
}

fn rand_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(1);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

// The handshake callback's error type is tungstenite's (an HTTP response), not ours.
#[allow(clippy::result_large_err)]
async fn serve(stream: tokio::net::TcpStream, state: Arc<Mutex<State>>) {
    let mut station = String::new();
    let mut auth = None;
    let callback = |req: &Request, mut resp: Response| {
        station = req
            .uri()
            .path()
            .rsplit('/')
            .next()
            .unwrap_or_default()
            .to_owned();
        auth = req
            .headers()
            .get("Authorization")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        if req
            .headers()
            .get("Sec-WebSocket-Protocol")
            .is_some_and(|p| p.to_str().unwrap_or_default().contains("ocpp1.6"))
        {
            resp.headers_mut()
                .insert("Sec-WebSocket-Protocol", "ocpp1.6".parse().expect("header"));
        }
        Ok(resp)
    };
    let Ok(ws) = tokio_tungstenite::accept_hdr_async(stream, callback).await else {
        return;
    };
    let (mut sink, mut source) = ws.split();
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    {
        let mut s = state.lock().expect("state");
        s.links.insert(station.clone(), tx.clone());
        s.auth.insert(station.clone(), auth);
    }
    let writer = tokio::spawn(async move {
        while let Some(text) = rx.recv().await {
            if sink.send(Message::text(text)).await.is_err() {
                break;
            }
        }
    });
    while let Some(Ok(frame)) = source.next().await {
        let Message::Text(text) = frame else { continue };
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        match value[0].as_i64() {
            Some(2) => {
                let unique_id = value[1].as_str().unwrap_or_default().to_owned();
                let action = value[2].as_str().unwrap_or_default().to_owned();
                // The station's call must be valid OCPP: the project's strict parser.
                let typed = Incoming::<StationRequest>::parse(&text);
                let valid = matches!(typed, Ok(Incoming::Call { request: Ok(_), .. }));
                let answer = if !valid {
                    json!([4, unique_id, "FormationViolation", "not valid OCPP 1.6", {}])
                } else {
                    let payload = value[3].clone();
                    let result = {
                        let mut s = state.lock().expect("state");
                        s.received.push(Received {
                            station: station.clone(),
                            action: action.clone(),
                            payload: payload.clone(),
                            unique_id: unique_id.clone(),
                        });
                        match action.as_str() {
                            "BootNotification" => {
                                json!({"status": "Accepted", "currentTime": now(), "interval": 300})
                            }
                            "Heartbeat" => json!({"currentTime": now()}),
                            "StartTransaction" => {
                                let id = s.next_transaction;
                                s.next_transaction += 1;
                                let status = if payload["idTag"] == "CPOBLOCKED" {
                                    "Blocked"
                                } else {
                                    "Accepted"
                                };
                                json!({"transactionId": id, "idTagInfo": {"status": status}})
                            }
                            "Authorize" if payload["idTag"] == "CPOBLOCKED" => {
                                json!({"idTagInfo": {"status": "Blocked"}})
                            }
                            "Authorize" | "StopTransaction" => {
                                json!({"idTagInfo": {"status": "Accepted"}})
                            }
                            // Answers vendor data with what it understood.
                            "DataTransfer" if payload["vendorId"] == "org.example.cpo" => {
                                json!({"status": "Accepted", "data": format!("seen {}", payload["data"].as_str().unwrap_or_default())})
                            }
                            "DataTransfer" => json!({"status": "UnknownVendorId"}),
                            _ => json!({}),
                        }
                    };
                    json!([3, unique_id, result])
                };
                if !state.lock().expect("state").silent {
                    let _ = tx.send(answer.to_string());
                }
            }
            Some(3) | Some(4) => {
                let unique_id = value[1].as_str().unwrap_or_default().to_owned();
                let payload = if value[0] == 3 {
                    value[2].clone()
                } else {
                    json!({"error": value[2]})
                };
                if let Some(w) = state.lock().expect("state").waiting.remove(&unique_id) {
                    let _ = w.send(payload);
                }
            }
            _ => {}
        }
    }
    writer.abort();
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}
