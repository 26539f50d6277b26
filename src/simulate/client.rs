//! A station-side OCPP 1.6J client over a real WebSocket (tokio-tungstenite): sends CALLs
//! and waits for their answers, receives the central system's CALLs, and can answer the
//! routine ones by itself (as a station's firmware would). Over `wss://` with the server's
//! CA and, for security profile 3, a client certificate ([`ClientTls`]).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

/// The answer to one of our CALLs.
#[derive(Clone, Debug, PartialEq)]
pub enum Reply {
    Result(Value),
    Error { code: String, description: String },
}

impl Reply {
    /// The CALLRESULT payload, or a panic-free description of what came instead.
    pub fn result(self) -> Result<Value, String> {
        match self {
            Reply::Result(v) => Ok(v),
            Reply::Error { code, description } => Err(format!("{code}: {description}")),
        }
    }
}

/// A CALL from the central system.
#[derive(Clone, Debug)]
pub struct IncomingCall {
    /// When it arrived (with auto-answer, also when it was answered).
    pub received: std::time::Instant,
    pub unique_id: String,
    pub action: String,
    pub payload: Value,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("connection refused with HTTP {0}")]
    Refused(u16),
    #[error("WebSocket error: {0}")]
    WebSocket(#[from] tokio_tungstenite::tungstenite::Error),
    #[error("the connection is closed")]
    Closed,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("bad URL: {0}")]
    Url(String),
    #[error("TLS set-up: {0}")]
    Tls(String),
}

/// How a client does TLS for a `wss://` URL: the CA the server's certificate must chain
/// to, and optionally a client certificate (security profile 3). Cheap to clone.
#[derive(Clone, Debug)]
pub struct ClientTls(pub Arc<rustls::ClientConfig>);

impl ClientTls {
    /// From PEM text: the CA certificate(s), and a client certificate chain with its key.
    pub fn from_pem(ca: &[u8], client: Option<(&[u8], &[u8])>) -> Result<ClientTls, ClientError> {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, PrivateKeyDer};
        let bad = |what: &str, e: &dyn std::fmt::Display| ClientError::Tls(format!("{what}: {e}"));
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(ca) {
            let cert = cert.map_err(|e| bad("the CA is not PEM", &e))?;
            roots.add(cert).map_err(|e| bad("the CA", &e))?;
        }
        if roots.is_empty() {
            return Err(ClientError::Tls("the CA holds no certificate".into()));
        }
        let builder = rustls::ClientConfig::builder_with_provider(crate::tls::provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| bad("protocol versions", &e))?
            .with_root_certificates(roots);
        let config = match client {
            None => builder.with_no_client_auth(),
            Some((cert, key)) => {
                let chain = CertificateDer::pem_slice_iter(cert)
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|e| bad("the client certificate is not PEM", &e))?;
                let key = PrivateKeyDer::from_pem_slice(key)
                    .map_err(|e| bad("the client key is not PEM", &e))?;
                builder
                    .with_client_auth_cert(chain, key)
                    .map_err(|e| bad("the client certificate", &e))?
            }
        };
        Ok(ClientTls(Arc::new(config)))
    }

    /// From PEM files (see [`ClientTls::from_pem`]).
    pub fn from_files(
        ca: &std::path::Path,
        client: Option<(&std::path::Path, &std::path::Path)>,
    ) -> Result<ClientTls, ClientError> {
        let read = |p: &std::path::Path| {
            std::fs::read(p).map_err(|e| ClientError::Tls(format!("{}: {e}", p.display())))
        };
        let ca = read(ca)?;
        match client {
            None => ClientTls::from_pem(&ca, None),
            Some((cert, key)) => ClientTls::from_pem(&ca, Some((&read(cert)?, &read(key)?))),
        }
    }
}

/// How to connect.
#[derive(Clone, Debug)]
pub struct ConnectOptions {
    /// `Sec-WebSocket-Protocol` offered; `None` offers none.
    pub subprotocol: Option<String>,
    /// HTTP Basic credentials (user, password).
    pub basic_auth: Option<(String, String)>,
    /// Answer the central system's routine CALLs like a station would.
    pub auto_answer: bool,
    /// For a `wss://` URL: the server's CA and our client certificate. `None`: the
    /// system's root certificates, no client certificate.
    pub tls: Option<ClientTls>,
}

impl Default for ConnectOptions {
    fn default() -> Self {
        ConnectOptions {
            subprotocol: Some("ocpp1.6".into()),
            basic_auth: None,
            auto_answer: true,
            tls: None,
        }
    }
}

type Pending = Arc<Mutex<HashMap<String, oneshot::Sender<Reply>>>>;

pub struct StationClient {
    writer: mpsc::UnboundedSender<Message>,
    pending: Pending,
    calls: mpsc::UnboundedReceiver<IncomingCall>,
    unsolicited: mpsc::UnboundedReceiver<Reply>,
    closed: watch::Receiver<Option<u16>>,
    next_id: AtomicU64,
    /// The subprotocol the server echoed.
    pub accepted_protocol: Option<String>,
}

/// The answer a plain station gives to a routine CALL of the central system.
pub fn routine_answer(action: &str, payload: &Value) -> Option<Value> {
    let status = |s: &str| Some(json!({ "status": s }));
    match action {
        "SetChargingProfile"
        | "ChangeConfiguration"
        | "ClearChargingProfile"
        | "RemoteStartTransaction"
        | "RemoteStopTransaction"
        | "ChangeAvailability"
        | "Reset"
        | "TriggerMessage"
        | "SendLocalList"
        | "ClearCache" => status("Accepted"),
        "UnlockConnector" => status("Unlocked"),
        "GetConfiguration" => {
            let keys: Vec<Value> = payload["key"]
                .as_array()
                .map(|keys| {
                    keys.iter()
                        .map(|k| json!({ "key": k, "readonly": false, "value": "" }))
                        .collect()
                })
                .unwrap_or_default();
            Some(json!({ "configurationKey": keys }))
        }
        "GetLocalListVersion" => Some(json!({ "listVersion": 0 })),
        "GetCompositeSchedule" => status("Rejected"),
        "UpdateFirmware" => Some(json!({})),
        "GetDiagnostics" => Some(json!({})),
        "DataTransfer" => status("UnknownVendorId"),
        _ => None,
    }
}

impl StationClient {
    /// Connects to `url` (e.g. `ws://127.0.0.1:8887/ocpp/CP001`, or `wss://…` with
    /// `options.tls`).
    pub async fn connect(url: &str, options: ConnectOptions) -> Result<StationClient, ClientError> {
        let mut request = url
            .into_client_request()
            .map_err(|e| ClientError::Url(e.to_string()))?;
        if let Some(p) = &options.subprotocol {
            let value = HeaderValue::from_str(p).map_err(|e| ClientError::Url(e.to_string()))?;
            request
                .headers_mut()
                .insert("Sec-WebSocket-Protocol", value);
        }
        if let Some((user, password)) = &options.basic_auth {
            use base64::Engine;
            let token =
                base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
            let value = HeaderValue::from_str(&format!("Basic {token}"))
                .map_err(|e| ClientError::Url(e.to_string()))?;
            request.headers_mut().insert("Authorization", value);
        }
        let connector = options
            .tls
            .as_ref()
            .map(|t| tokio_tungstenite::Connector::Rustls(t.0.clone()));
        let connecting =
            tokio_tungstenite::connect_async_tls_with_config(request, None, false, connector);
        let (stream, response) = match connecting.await {
            Ok(ok) => ok,
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                return Err(ClientError::Refused(response.status().as_u16()))
            }
            Err(e) => return Err(e.into()),
        };
        let accepted_protocol = response
            .headers()
            .get("Sec-WebSocket-Protocol")
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned);
        let (mut sink, mut source) = stream.split();
        let (writer, mut outbox) = mpsc::unbounded_channel::<Message>();
        let pending: Pending = Arc::default();
        let (calls_tx, calls) = mpsc::unbounded_channel();
        let (unsolicited_tx, unsolicited) = mpsc::unbounded_channel();
        let (closed_tx, closed) = watch::channel(None);

        tokio::spawn(async move {
            while let Some(msg) = outbox.recv().await {
                if sink.send(msg).await.is_err() {
                    break;
                }
            }
        });
        let reader_pending = pending.clone();
        let answer_writer = writer.clone();
        let auto = options.auto_answer;
        tokio::spawn(async move {
            let mut close_code = u16::from(CloseCode::Abnormal);
            while let Some(frame) = source.next().await {
                let text = match frame {
                    Ok(Message::Text(t)) => t.to_string(),
                    Ok(Message::Close(close)) => {
                        close_code = close
                            .map(|c| u16::from(c.code))
                            .unwrap_or(u16::from(CloseCode::Status));
                        break;
                    }
                    Ok(_) => continue,
                    Err(_) => break,
                };
                let Ok(Value::Array(items)) = serde_json::from_str::<Value>(&text) else {
                    continue;
                };
                let uid = items
                    .get(1)
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_owned();
                match items.first().and_then(Value::as_u64) {
                    Some(2) => {
                        let call = IncomingCall {
                            received: std::time::Instant::now(),
                            unique_id: uid.clone(),
                            action: items
                                .get(2)
                                .and_then(Value::as_str)
                                .unwrap_or("")
                                .to_owned(),
                            payload: items.get(3).cloned().unwrap_or(Value::Null),
                        };
                        if auto {
                            if let Some(answer) = routine_answer(&call.action, &call.payload) {
                                let _ = answer_writer
                                    .send(Message::text(json!([3, uid, answer]).to_string()));
                            }
                        }
                        let _ = calls_tx.send(call);
                    }
                    Some(kind @ (3 | 4)) => {
                        let reply = if kind == 3 {
                            Reply::Result(items.get(2).cloned().unwrap_or(Value::Null))
                        } else {
                            Reply::Error {
                                code: items
                                    .get(2)
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_owned(),
                                description: items
                                    .get(3)
                                    .and_then(Value::as_str)
                                    .unwrap_or("")
                                    .to_owned(),
                            }
                        };
                        let waiter = reader_pending
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner)
                            .remove(&uid);
                        match waiter {
                            Some(w) => {
                                let _ = w.send(reply);
                            }
                            None => {
                                let _ = unsolicited_tx.send(reply);
                            }
                        }
                    }
                    _ => {}
                }
            }
            // Our CALLs still waiting will get no answer: fail them now, not at their timeout.
            reader_pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clear();
            let _ = closed_tx.send(Some(close_code));
        });
        Ok(StationClient {
            writer,
            pending,
            calls,
            unsolicited,
            closed,
            next_id: AtomicU64::new(1),
            accepted_protocol,
        })
    }

    fn register(&self, unique_id: &str) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(unique_id.to_owned(), tx);
        rx
    }

    /// Sends a CALL and waits (at most 10 s) for its answer.
    pub async fn call(&self, action: &str, payload: Value) -> Result<Reply, ClientError> {
        let uid = format!("c{}", self.next_id.fetch_add(1, Ordering::Relaxed));
        let text = json!([2, uid, action, payload]).to_string();
        self.send_raw_expecting(&text, &uid).await
    }

    /// Sends any text and waits for the answer carrying `unique_id`.
    pub async fn send_raw_expecting(
        &self,
        text: &str,
        unique_id: &str,
    ) -> Result<Reply, ClientError> {
        let rx = self.register(unique_id);
        self.send_raw(text)?;
        let wait = Duration::from_secs(10);
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout(wait)),
        }
    }

    /// Sends a text frame as is.
    pub fn send_raw(&self, text: &str) -> Result<(), ClientError> {
        self.writer
            .send(Message::text(text.to_owned()))
            .map_err(|_| ClientError::Closed)
    }

    /// Sends a binary frame.
    pub fn send_binary(&self, bytes: Vec<u8>) -> Result<(), ClientError> {
        self.writer
            .send(Message::binary(bytes))
            .map_err(|_| ClientError::Closed)
    }

    /// The next answer that matched none of our CALLs (e.g. a CALLERROR with id "-1").
    pub async fn next_unsolicited(&mut self, wait: Duration) -> Result<Reply, ClientError> {
        match tokio::time::timeout(wait, self.unsolicited.recv()).await {
            Ok(Some(r)) => Ok(r),
            Ok(None) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout(wait)),
        }
    }

    /// The next CALL of the central system.
    pub async fn next_call(&mut self, wait: Duration) -> Result<IncomingCall, ClientError> {
        match tokio::time::timeout(wait, self.calls.recv()).await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout(wait)),
        }
    }

    /// Hands over the stream of the central system's CALLs (e.g. to a task that records
    /// setpoints); `next_call` then reports the connection closed.
    pub fn take_calls(&mut self) -> mpsc::UnboundedReceiver<IncomingCall> {
        let (_, empty) = mpsc::unbounded_channel();
        std::mem::replace(&mut self.calls, empty)
    }

    /// A handle that can send answers from another task.
    pub fn answerer(&self) -> Answerer {
        Answerer {
            writer: self.writer.clone(),
        }
    }

    /// The next CALL with this action, skipping others.
    pub async fn next_call_of(
        &mut self,
        action: &str,
        wait: Duration,
    ) -> Result<IncomingCall, ClientError> {
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let call = self.next_call(left).await?;
            if call.action == action {
                return Ok(call);
            }
        }
    }

    /// Answers a CALL of the central system.
    pub fn answer(&self, unique_id: &str, payload: Value) -> Result<(), ClientError> {
        self.answerer().answer(unique_id, payload)
    }

    /// Waits for the server to close the connection; the close code.
    pub async fn closed(&mut self, wait: Duration) -> Result<u16, ClientError> {
        let waited = tokio::time::timeout(wait, self.closed.wait_for(Option::is_some)).await;
        match waited {
            Ok(Ok(code)) => Ok(code.unwrap_or(u16::from(CloseCode::Abnormal))),
            Ok(Err(_)) => Err(ClientError::Closed),
            Err(_) => Err(ClientError::Timeout(wait)),
        }
    }

    /// Closes the connection.
    pub fn close(&self) {
        let _ = self.writer.send(Message::Close(None));
    }
}

/// Sends answers to the central system's CALLs on a client's connection.
#[derive(Clone)]
pub struct Answerer {
    writer: mpsc::UnboundedSender<Message>,
}

impl Answerer {
    /// Sends any text frame (e.g. a CALL whose answer nobody waits for).
    pub fn send_raw(&self, text: String) -> Result<(), ClientError> {
        self.writer
            .send(Message::text(text))
            .map_err(|_| ClientError::Closed)
    }

    pub fn answer(&self, unique_id: &str, payload: Value) -> Result<(), ClientError> {
        self.writer
            .send(Message::text(json!([3, unique_id, payload]).to_string()))
            .map_err(|_| ClientError::Closed)
    }
}
