//! `GET /federation` on a primary: the token check, then one actor per secondary link.
//!
//! The actor speaks the frames; the supervisor decides. A grant the supervisor sends is
//! answered once the secondary acknowledges it (or after [`GRANT_TIMEOUT`]); the last
//! grant is re-sent every [`REFRESH_EVERY_MS`] so that it never expires while the link
//! is up. Every acknowledgement (a refresh's too) tells the supervisor how recent a grant
//! the secondary holds, which is what keeps it from reserving the secondary's fallback.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use actix_web_actors::ws;
use ampwarden_actors::config::{FederationRole, SecondaryToken};
use ampwarden_actors::federation::{
    Downstream, Grant, Upstream, MAX_FRAME_BYTES, REFRESH_EVERY_MS, VERSION,
};
use ampwarden_actors::station::CallFailure;
use ampwarden_actors::store::LogLevel;
use ampwarden_actors::supervisor::{
    CloseLink, RelayCommand, SecondaryConfirmed, SecondaryLinked, SecondaryReported,
    SecondaryUnlinked, SendGrant, ZoneSupervisor,
};
use ampwarden_actors::units::{Amps, PerPhase};
use chrono::{DateTime, Utc};
use tokio::sync::oneshot;

use super::{same, token_hash, FederationCounters};
use crate::controller::Controller;

/// How long a round's dispatch waits for a grant's acknowledgement. A secondary that is
/// slower (one of its own stations does not answer, say) is then reserved at the higher of
/// its grants until it acknowledges, so that the primary's rounds — its safety loop among
/// them — never wait long behind one box.
pub const GRANT_TIMEOUT: Duration = Duration::from_millis(1500);
/// A secondary must say hello this soon after the handshake.
const HELLO_WITHIN: Duration = Duration::from_secs(5);
/// Pings, and how long a silent link is kept.
const PING_EVERY: Duration = Duration::from_secs(2);
const SILENT_LIMIT: Duration = Duration::from_secs(6);
/// Grants remembered for their acknowledgements.
const SENT_KEPT: usize = 64;

/// `GET /federation`: a secondary's link, authenticated by `Authorization: Bearer TOKEN`.
pub async fn handshake(
    req: HttpRequest,
    stream: web::Payload,
    core: web::Data<Controller>,
) -> Result<HttpResponse, actix_web::Error> {
    let config = core.config();
    let Some(f) = config
        .federation
        .as_ref()
        .filter(|f| f.role == FederationRole::Primary)
    else {
        return Ok(HttpResponse::NotFound().body("this controller is not a federation primary\n"));
    };
    let peer = req
        .peer_addr()
        .map_or_else(|| "unknown".to_owned(), |a| a.to_string());
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(|t| token_hash(t.trim()));
    let token = presented.as_deref().and_then(|h| {
        f.tokens
            .iter()
            .position(|t| stored_hash(t).is_some_and(|s| same(&s, h)))
    });
    let revoked = token
        .and_then(|i| f.tokens.get(i))
        .and_then(stored_hash)
        .is_some_and(|h| core.store().is_token_revoked(&h).unwrap_or(true));
    let token = token.filter(|_| !revoked);
    let Some(token) = token else {
        FederationCounters::bump(&core.federation_counters().refused_token);
        let why = if presented.is_none() {
            "no bearer token"
        } else if revoked {
            "revoked token"
        } else {
            "unknown token"
        };
        tracing::warn!(%peer, "federation link refused: {why}");
        let _ = core.store().log(
            LogLevel::Warn,
            None,
            format!("federation link from {peer} refused: {why}"),
        );
        return Ok(HttpResponse::Unauthorized()
            .insert_header((
                header::WWW_AUTHENTICATE,
                "Bearer realm=\"ampwarden federation\"",
            ))
            .body(format!("{why}\n")));
    };
    let link = SecondaryLink {
        core: core.get_ref().clone(),
        supervisor: core.supervisor().clone(),
        link_id: core.next_connection_id(),
        token,
        valid_for_s: f.valid_for_s,
        peer,
        name: None,
        limit: Amps::ZERO,
        next_seq: 1,
        last_grant: None,
        sent: VecDeque::new(),
        waiters: Vec::new(),
        last_heard: Instant::now(),
        commands: std::collections::HashMap::new(),
        next_command: 1,
    };
    ws::WsResponseBuilder::new(link, &req, stream)
        .frame_size(MAX_FRAME_BYTES)
        .start()
}

/// How a configured token is compared: its hash (`blake2s:…`).
pub fn stored_hash(t: &SecondaryToken) -> Option<String> {
    match t {
        SecondaryToken::Plain(secret) => Some(token_hash(secret)),
        SecondaryToken::Described(d) => match (&d.token, &d.token_hash) {
            (Some(secret), _) => Some(token_hash(secret)),
            (None, Some(hash)) => Some(hash.clone()),
            (None, None) => None,
        },
    }
}

/// One secondary's link, on the primary.
struct SecondaryLink {
    core: Controller,
    supervisor: Addr<ZoneSupervisor>,
    link_id: u64,
    token: usize,
    valid_for_s: u32,
    peer: String,
    /// Set once its hello was accepted.
    name: Option<String>,
    /// Its zone's limit here: reports are clamped to it.
    limit: Amps,
    next_seq: u64,
    /// The grant in force, re-sent as a refresh.
    last_grant: Option<PerPhase<Amps>>,
    /// Recent grants: their sequence numbers and when they went out.
    sent: VecDeque<(u64, DateTime<Utc>)>,
    /// Grants the supervisor waits on: answered by an acknowledgement of that one or a
    /// later one.
    waiters: Vec<(u64, DateTime<Utc>, oneshot::Sender<DateTime<Utc>>)>,
    last_heard: Instant,
    /// Relayed commands waiting for their result, by id.
    commands: std::collections::HashMap<u64, oneshot::Sender<(u16, serde_json::Value)>>,
    next_command: u64,
}

/// How long a relayed command may take (the secondary waits for its station).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

impl SecondaryLink {
    fn send(&self, ctx: &mut ws::WebsocketContext<Self>, m: &Downstream) {
        match serde_json::to_string(m) {
            Ok(text) => ctx.text(text),
            Err(e) => tracing::error!(error = %e, "cannot encode a federation frame"),
        }
    }

    fn refuse(&self, ctx: &mut ws::WebsocketContext<Self>, reason: String) {
        tracing::warn!(peer = %self.peer, "federation link refused: {reason}");
        let _ = self.core.store().log(
            LogLevel::Warn,
            None,
            format!("federation link from {} refused: {reason}", self.peer),
        );
        self.send(
            ctx,
            &Downstream::Refused {
                v: VERSION,
                reason: reason.clone(),
            },
        );
        ctx.close(Some(ws::CloseReason {
            code: ws::CloseCode::Policy,
            description: Some(reason),
        }));
        ctx.stop();
    }

    /// Sends a grant and returns its sequence number and when it went out.
    fn grant(
        &mut self,
        ctx: &mut ws::WebsocketContext<Self>,
        budget: PerPhase<Amps>,
    ) -> (u64, DateTime<Utc>) {
        let seq = self.next_seq;
        self.next_seq += 1;
        let at = Utc::now();
        self.send(
            ctx,
            &Downstream::Grant(Grant {
                v: VERSION,
                seq,
                budget_a: budget,
                valid_for_s: self.valid_for_s,
            }),
        );
        FederationCounters::bump(&self.core.federation_counters().grants_sent);
        self.last_grant = Some(budget);
        self.sent.push_back((seq, at));
        while self.sent.len() > SENT_KEPT {
            self.sent.pop_front();
        }
        (seq, at)
    }

    fn sent_at(&self, seq: u64) -> Option<DateTime<Utc>> {
        self.sent.iter().find(|(s, _)| *s == seq).map(|(_, at)| *at)
    }

    /// The secondary holds grant `seq` (it said so in a report), or has it in force
    /// (`acknowledged`: its limits fit it), which answers the supervisor's wait.
    fn confirmed(&mut self, seq: u64, acknowledged: bool) {
        let Some(at) = self.sent_at(seq) else { return };
        let newest = self.sent.back().is_some_and(|(s, _)| *s == seq);
        self.supervisor.do_send(SecondaryConfirmed {
            link_id: self.link_id,
            sent_at: at,
            in_force: self.last_grant.filter(|_| acknowledged && newest),
        });
        if !acknowledged {
            return;
        }
        let (done, waiting): (Vec<_>, Vec<_>) = std::mem::take(&mut self.waiters)
            .into_iter()
            .partition(|(s, _, _)| *s <= seq);
        self.waiters = waiting;
        for (_, sent_at, tx) in done {
            let _ = tx.send(sent_at);
        }
    }

    fn frame(&mut self, text: &str, ctx: &mut ws::WebsocketContext<Self>) {
        let m = match Upstream::parse(text) {
            Ok(m) => m,
            Err(e) => {
                FederationCounters::bump(&self.core.federation_counters().malformed);
                tracing::warn!(peer = %self.peer, error = %e, "federation frame ignored");
                if self.name.is_none() {
                    self.refuse(ctx, format!("the first frame must be a hello: {e}"));
                }
                return;
            }
        };
        match (m, self.name.is_some()) {
            (
                Upstream::Hello {
                    name,
                    zone,
                    fallback_budget_a,
                    limit_a,
                    software,
                    ..
                },
                false,
            ) => {
                if !fallback_budget_a.0.is_finite()
                    || fallback_budget_a.0 < 0.0
                    || !limit_a.0.is_finite()
                {
                    FederationCounters::bump(&self.core.federation_counters().refused_hello);
                    return self.refuse(
                        ctx,
                        "fallback_budget_a and limit_a must be finite currents of 0 A or more"
                            .into(),
                    );
                }
                let linked = SecondaryLinked {
                    link_id: self.link_id,
                    token: self.token,
                    name: name.clone(),
                    zone: zone.clone(),
                    fallback: fallback_budget_a,
                    limit: limit_a,
                    software,
                    grants: ctx.address().recipient(),
                    closer: ctx.address().recipient(),
                    relay: ctx.address().recipient(),
                };
                self.limit = self
                    .core
                    .config()
                    .zone(&zone)
                    .map_or(limit_a, |z| z.limit_a.min(limit_a));
                ctx.wait(self.supervisor.send(linked).into_actor(self).map(
                    move |answer, link, ctx| match answer {
                        Ok(Ok(())) => {
                            tracing::info!(secondary = %name, peer = %link.peer, "federation link up");
                            link.name = Some(name);
                            let welcome = Downstream::Welcome {
                                v: VERSION,
                                valid_for_s: link.valid_for_s,
                            };
                            link.send(ctx, &welcome);
                        }
                        Ok(Err(reason)) => {
                            FederationCounters::bump(&link.core.federation_counters().refused_hello);
                            link.refuse(ctx, reason);
                        }
                        Err(_) => link.refuse(ctx, "the primary is shutting down".into()),
                    },
                ));
            }
            (Upstream::Hello { .. }, true) => {
                FederationCounters::bump(&self.core.federation_counters().malformed);
                tracing::warn!(peer = %self.peer, "a second hello on one link: ignored");
            }
            (_, false) => {
                FederationCounters::bump(&self.core.federation_counters().malformed);
                self.refuse(ctx, "the first frame must be a hello".into());
            }
            (Upstream::Report(report), true) => {
                let report = match report.sanitised(self.limit) {
                    Ok(r) => r,
                    Err(e) => {
                        FederationCounters::bump(&self.core.federation_counters().malformed);
                        tracing::warn!(peer = %self.peer, error = %e, "federation report ignored");
                        return;
                    }
                };
                if report.mode == ampwarden_actors::federation::LinkMode::Granted {
                    self.confirmed(report.grant_seq, false);
                }
                self.supervisor.do_send(SecondaryReported {
                    link_id: self.link_id,
                    report,
                });
            }
            (Upstream::Ack { seq, .. }, true) => self.confirmed(seq, true),
            (
                Upstream::CommandResult {
                    id, status, body, ..
                },
                true,
            ) => {
                if let Some(tx) = self.commands.remove(&id) {
                    let _ = tx.send((status, body));
                }
            }
        }
    }
}

impl Actor for SecondaryLink {
    type Context = ws::WebsocketContext<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.run_later(HELLO_WITHIN, |link, ctx| {
            if link.name.is_none() {
                FederationCounters::bump(&link.core.federation_counters().refused_hello);
                link.refuse(ctx, format!("no hello within {HELLO_WITHIN:?}"));
            }
        });
        ctx.run_interval(Duration::from_millis(REFRESH_EVERY_MS), |link, ctx| {
            if let (Some(budget), Some(_)) = (link.last_grant, &link.name) {
                link.grant(ctx, budget);
            }
        });
        ctx.run_interval(PING_EVERY, |link, ctx| {
            if link.last_heard.elapsed() > SILENT_LIMIT {
                tracing::warn!(peer = %link.peer, "federation link silent for {SILENT_LIMIT:?}: closing");
                ctx.close(Some(ws::CloseReason {
                    code: ws::CloseCode::Away,
                    description: Some("silent".into()),
                }));
                ctx.stop();
            } else {
                ctx.ping(b"");
            }
        });
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        if let Some(name) = &self.name {
            tracing::warn!(secondary = %name, "federation link down");
            self.supervisor.do_send(SecondaryUnlinked {
                link_id: self.link_id,
            });
        }
    }
}

impl Handler<RelayCommand> for SecondaryLink {
    type Result = ResponseFuture<Result<(u16, serde_json::Value), CallFailure>>;

    fn handle(&mut self, c: RelayCommand, ctx: &mut Self::Context) -> Self::Result {
        if self.name.is_none() {
            return Box::pin(async { Err(CallFailure::NotConnected) });
        }
        let id = self.next_command;
        self.next_command += 1;
        let (tx, rx) = oneshot::channel();
        self.commands.insert(id, tx);
        self.send(
            ctx,
            &Downstream::Command {
                v: VERSION,
                id,
                station: c.station,
                action: c.action,
                body: c.body,
            },
        );
        Box::pin(async move {
            match tokio::time::timeout(COMMAND_TIMEOUT, rx).await {
                Ok(Ok(answer)) => Ok(answer),
                Ok(Err(_)) => Err(CallFailure::ConnectionLost),
                Err(_) => Err(CallFailure::Timeout(COMMAND_TIMEOUT)),
            }
        })
    }
}

impl Handler<CloseLink> for SecondaryLink {
    type Result = ();

    fn handle(&mut self, CloseLink(reason): CloseLink, ctx: &mut Self::Context) {
        self.refuse(ctx, reason);
    }
}

impl Handler<SendGrant> for SecondaryLink {
    type Result = ResponseFuture<Result<DateTime<Utc>, CallFailure>>;

    fn handle(&mut self, SendGrant(budget): SendGrant, ctx: &mut Self::Context) -> Self::Result {
        if self.name.is_none() {
            return Box::pin(async { Err(CallFailure::NotConnected) });
        }
        let (seq, at) = self.grant(ctx, budget);
        let (tx, rx) = oneshot::channel();
        self.waiters.push((seq, at, tx));
        Box::pin(async move {
            match tokio::time::timeout(GRANT_TIMEOUT, rx).await {
                Ok(Ok(at)) => Ok(at),
                Ok(Err(_)) => Err(CallFailure::ConnectionLost),
                Err(_) => Err(CallFailure::Timeout(GRANT_TIMEOUT)),
            }
        })
    }
}

impl StreamHandler<Result<ws::Message, ws::ProtocolError>> for SecondaryLink {
    fn handle(&mut self, msg: Result<ws::Message, ws::ProtocolError>, ctx: &mut Self::Context) {
        self.last_heard = Instant::now();
        match msg {
            Ok(ws::Message::Text(text)) => self.frame(&text, ctx),
            Ok(ws::Message::Ping(bytes)) => ctx.pong(&bytes),
            Ok(ws::Message::Pong(_) | ws::Message::Nop) => {}
            Ok(ws::Message::Close(reason)) => {
                ctx.close(reason);
                ctx.stop();
            }
            Ok(ws::Message::Binary(_) | ws::Message::Continuation(_)) => {
                FederationCounters::bump(&self.core.federation_counters().malformed);
                tracing::warn!(peer = %self.peer, "federation frames are single text frames: ignored");
            }
            Err(e) => {
                tracing::warn!(peer = %self.peer, error = %e, "federation link protocol error: closing");
                ctx.stop();
            }
        }
    }
}
