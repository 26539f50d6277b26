//! The outgoing WebSocket links this controller dials — a secondary to its primary
//! (`federation::secondary`), each station's uplink to its CPO (`uplink`): the dial with
//! its timeout and refusals, and one connection's life (frames out from a channel, text
//! frames in to a callback, pings, silence), ending with why it ended.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::{Error, Message};

pub type Socket =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// How to dial: the headers, the limits, TLS.
pub struct Dial<'a> {
    pub url: &'a str,
    /// `(name, value)` request headers (e.g. `Authorization`, `Sec-WebSocket-Protocol`).
    pub headers: Vec<(&'static str, String)>,
    pub config: WebSocketConfig,
    /// For `wss://`: a connector with our own CA; `None` for the system's roots.
    pub tls: Option<tokio_tungstenite::Connector>,
    pub timeout: Duration,
    /// Who we dial, for the messages ("the CPO", "the primary").
    pub peer: &'static str,
}

/// For `wss://`: a TLS connector that trusts only the CA in `path` (PEM), or `None` (the
/// system's roots) without one; `key` names the setting in the error.
pub fn trusting(
    path: Option<&std::path::Path>,
    key: &str,
) -> Result<Option<tokio_tungstenite::Connector>, String> {
    path.map(|path| {
        crate::simulate::client::ClientTls::from_files(path, None)
            .map(|tls| tokio_tungstenite::Connector::Rustls(tls.0))
            .map_err(|e| format!("{key}: {e}"))
    })
    .transpose()
}

/// Opens the connection, or says why not (in words for the operator log).
pub async fn dial(d: Dial<'_>) -> Result<Socket, String> {
    let mut request = d.url.into_client_request().map_err(|e| e.to_string())?;
    for (name, value) in d.headers {
        let value = HeaderValue::from_str(&value).map_err(|e| format!("{name}: {e}"))?;
        request.headers_mut().insert(name, value);
    }
    let connect =
        tokio_tungstenite::connect_async_tls_with_config(request, Some(d.config), true, d.tls);
    match tokio::time::timeout(d.timeout, connect).await {
        Err(_) => Err(format!("no answer within {:?}", d.timeout)),
        Ok(Err(Error::Http(response))) => {
            Err(format!("refused by {}: HTTP {}", d.peer, response.status()))
        }
        Ok(Err(e)) => Err(e.to_string()),
        Ok(Ok((socket, _))) => Ok(socket),
    }
}

/// Runs one connection until it ends: what comes on `out` is sent as text frames, every
/// text frame received goes to `on_text`. With `ping`, a ping goes out that often and a
/// connection that brings nothing (not even a pong) for `silent_after` is given up.
/// Returns why it ended.
pub async fn run(
    socket: Socket,
    mut out: mpsc::UnboundedReceiver<String>,
    ping: Option<(Duration, Duration)>,
    peer: &str,
    mut on_text: impl FnMut(String),
) -> String {
    let (mut sink, mut stream) = socket.split();
    let writer = async {
        // Without pings: a tick so rare it never comes.
        let every = ping.map_or(Duration::from_secs(86_400 * 365), |(every, _)| every);
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            let frame = tokio::select! {
                text = out.recv() => match text {
                    Some(text) => Message::text(text),
                    None => break,
                },
                _ = tick.tick() => Message::Ping(Vec::new().into()),
            };
            if sink.send(frame).await.is_err() {
                break;
            }
        }
    };
    let reader = async {
        loop {
            let next = match ping {
                Some((_, silent_after)) => {
                    match tokio::time::timeout(silent_after, stream.next()).await {
                        Ok(next) => next,
                        Err(_) => {
                            return format!(
                                "nothing from {peer} for {silent_after:?} (pings unanswered)"
                            )
                        }
                    }
                }
                None => stream.next().await,
            };
            match next {
                None => return "closed".to_owned(),
                Some(Ok(Message::Text(text))) => on_text(text.to_string()),
                Some(Ok(Message::Close(c))) => {
                    return format!(
                        "closed by {peer}{}",
                        c.map(|c| format!(": {}", c.reason)).unwrap_or_default()
                    )
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => return e.to_string(),
            }
        }
    };
    tokio::select! {
        () = writer => "closed".to_owned(),
        why = reader => why,
    }
}
