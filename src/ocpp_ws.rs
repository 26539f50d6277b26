//! The OCPP 1.6J WebSocket endpoint: the handshake checks (subprotocol, known station,
//! its security profile: TLS, client certificate, basic auth) and one thin session actor per socket that moves text frames between the
//! socket and the station's [`StationActor`]. Nothing here understands OCPP messages.
//!
//! actix-web-actors is deprecated upstream in favour of actix-ws; it is confined to this
//! file so that a swap touches nothing else.

use std::time::{Duration, Instant};

use actix::{Actor, ActorContext, AsyncContext, Handler, Recipient, StreamHandler};
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use ampwarden_actors::station::{Attach, Detach, FromStation, SessionEvent, ToStation};
use ampwarden_actors::units::ChargePointId;

use crate::controller::{Admission, Controller};

/// The only subprotocol we speak.
pub const SUBPROTOCOL: &str = "ocpp1.6";
/// How often we ping an idle station, and how long we wait for any frame before giving up.
const PING_EVERY: Duration = Duration::from_secs(30);
const SILENT_LIMIT: Duration = Duration::from_secs(90);

/// `GET /ocpp/{chargePointId}`: checks, then upgrades to a station session.
pub async fn handshake(
    req: HttpRequest,
    path: web::Path<String>,
    stream: web::Payload,
    core: web::Data<Controller>,
) -> Result<HttpResponse, actix_web::Error> {
    let id = ChargePointId::new(path.into_inner());
    if !offers_ocpp16(&req) {
        return Ok(
            HttpResponse::BadRequest().body("the WebSocket subprotocol \"ocpp1.6\" is required\n")
        );
    }
    let password = basic_auth_password(&req, &id);
    let tls = req.conn_data::<crate::tls::TlsPeer>();
    let station = match core.admit(&id, password.as_deref(), tls) {
        Admission::Accepted(station) => station,
        // Logged by the controller, once per station.
        Admission::Unknown => {
            return Ok(HttpResponse::NotFound().body("unknown charge point\n"));
        }
        Admission::InvalidId(problem) => {
            return Ok(
                HttpResponse::BadRequest().body(format!("invalid charge point id: {problem}\n"))
            );
        }
        Admission::BadPassword => {
            tracing::warn!(station = %id, "refused: missing or wrong basic-auth password");
            return Ok(HttpResponse::Unauthorized()
                .insert_header((header::WWW_AUTHENTICATE, "Basic realm=\"ampwarden\""))
                .body("basic authentication required\n"));
        }
        Admission::NeedsTls(profile) => {
            tracing::warn!(station = %id, "refused: security profile {profile} needs TLS, and it connected over plain ws:// (point it at wss:// and server.ocpp_listen_tls)");
            return Ok(HttpResponse::Forbidden().body(format!(
                "security profile {profile}: connect over TLS (wss://)\n"
            )));
        }
        Admission::NoCertificate => {
            tracing::warn!(station = %id, "refused: security profile 3 needs a client certificate, and it presented none");
            return Ok(HttpResponse::Forbidden()
                .body("security profile 3: a client certificate is required\n"));
        }
        Admission::WrongCertificate(common_name) => {
            let cn = common_name.as_deref().unwrap_or("(no CN)");
            tracing::warn!(station = %id, certificate_cn = %cn, "refused: its client certificate is for {cn:?} (subject CN), not for this station");
            return Ok(HttpResponse::Forbidden()
                .body("security profile 3: the client certificate is not this station's\n"));
        }
    };
    let session = WsSession {
        station,
        id,
        connection: core.next_connection_id(),
        max_message: core.max_frame_bytes(),
        partial: None,
        last_heard: Instant::now(),
    };
    ws::WsResponseBuilder::new(session, &req, stream)
        .protocols(&[SUBPROTOCOL])
        .frame_size(core.max_frame_bytes())
        .start()
}

/// actix-web-actors answers 101 even when the client offers no subprotocol; OCPP requires it.
fn offers_ocpp16(req: &HttpRequest) -> bool {
    req.headers()
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .any(|p| p.trim() == SUBPROTOCOL)
}

/// The password of `Authorization: Basic base64(id:password)`, if the user is the station id.
fn basic_auth_password(req: &HttpRequest, id: &ChargePointId) -> Option<String> {
    let value = req.headers().get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = value
        .strip_prefix("Basic ")
        .or_else(|| value.strip_prefix("basic "))?;
    let decoded = base64_decode(encoded.trim())?;
    let text = String::from_utf8(decoded).ok()?;
    let (user, password) = text.split_once(':')?;
    (user == id.as_str()).then(|| password.to_owned())
}

/// Standard base64 (RFC 4648), as used by HTTP Basic auth.
fn base64_decode(input: &str) -> Option<Vec<u8>> {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.decode(input).ok()
}

/// One WebSocket connection of one station.
struct WsSession {
    station: Recipient<StationMsg>,
    id: ChargePointId,
    connection: u64,
    max_message: usize,
    /// A fragmented text message being assembled.
    partial: Option<Vec<u8>>,
    last_heard: Instant,
}

/// What the session sends to its station actor.
type StationMsg = SessionEvent;

impl WsSession {
    fn deliver_text(&self, text: String) {
        self.station.do_send(StationMsg::Frame(FromStation {
            connection: self.connection,
            text,
        }));
    }

    fn close(&self, ctx: &mut ws::WebsocketContext<Self>, code: ws::CloseCode, why: &str) {
        ctx.close(Some(ws::CloseReason {
            code,
            description: Some(why.to_owned()),
        }));
        ctx.stop();
    }
}

impl Actor for WsSession {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(station = %self.id, connection = self.connection, "station connected");
        self.station.do_send(StationMsg::Attach(Attach {
            connection: self.connection,
            session: ctx.address().recipient(),
        }));
        ctx.run_interval(PING_EVERY, |session, ctx| {
            if session.last_heard.elapsed() > SILENT_LIMIT {
                tracing::warn!(station = %session.id, "no frame for {SILENT_LIMIT:?}: closing the connection");
                session.close(ctx, ws::CloseCode::Away, "silent");
            } else {
                ctx.ping(b"");
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        tracing::info!(station = %self.id, connection = self.connection, "station disconnected");
        self.station.do_send(StationMsg::Detach(Detach {
            connection: self.connection,
        }));
    }
}

impl Handler<ToStation> for WsSession {
    type Result = ();

    fn handle(&mut self, msg: ToStation, ctx: &mut Self::Context) {
        match msg {
            ToStation::Text(text) => ctx.text(text),
            ToStation::Close { reason } => self.close(ctx, ws::CloseCode::Normal, &reason),
        }
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for WsSession {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        let msg = match msg {
            Ok(m) => m,
            Err(ws::ProtocolError::Overflow) => {
                tracing::warn!(station = %self.id, "frame larger than {} bytes: closing (1009)", self.max_message);
                return self.close(ctx, ws::CloseCode::Size, "frame too large");
            }
            Err(e) => {
                tracing::warn!(station = %self.id, error = %e, "WebSocket protocol error: closing");
                return self.close(ctx, ws::CloseCode::Protocol, "protocol error");
            }
        };
        match msg {
            ws::Message::Text(text) => self.deliver_text(text.to_string()),
            ws::Message::Binary(_) => self.station.do_send(StationMsg::Binary {
                connection: self.connection,
            }),
            ws::Message::Continuation(item) => self.continuation(item, ctx),
            ws::Message::Ping(bytes) => ctx.pong(&bytes),
            ws::Message::Pong(_) | ws::Message::Nop => {}
            ws::Message::Close(reason) => {
                ctx.close(reason);
                ctx.stop();
            }
        }
    }
}

impl WsSession {
    /// Assembles fragmented messages, keeping the same size limit as for single frames.
    fn continuation(&mut self, item: actix_http::ws::Item, ctx: &mut ws::WebsocketContext<Self>) {
        let (chunk, last) = match item {
            actix_http::ws::Item::FirstText(b) => {
                self.partial = Some(Vec::new());
                (b, false)
            }
            actix_http::ws::Item::FirstBinary(b) => {
                self.partial = None;
                (b, false)
            }
            actix_http::ws::Item::Continue(b) => (b, false),
            actix_http::ws::Item::Last(b) => (b, true),
        };
        let Some(buf) = self.partial.as_mut() else {
            return;
        };
        buf.extend_from_slice(&chunk);
        if buf.len() > self.max_message {
            self.partial = None;
            return self.close(ctx, ws::CloseCode::Size, "message too large");
        }
        if last {
            let bytes = self.partial.take().unwrap_or_default();
            match String::from_utf8(bytes) {
                Ok(text) => self.deliver_text(text),
                Err(_) => self.close(ctx, ws::CloseCode::Invalid, "text message is not UTF-8"),
            }
        }
    }
}
