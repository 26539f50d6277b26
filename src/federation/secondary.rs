//! A secondary's link to its primary: it dials `PRIMARY/federation`, reports what its
//! root needs and takes every second (and after each round), imposes the grant on its
//! root and acknowledges it once the limits in force fit it.
//!
//! What it imposes, at every moment:
//! * a valid grant and the link up: the grant;
//! * a valid grant and the link down: the lower of the grant and `fallback_budget_a` —
//!   never more than the primary may still count on, never more than the fallback;
//! * no grant, or an expired one: `fallback_budget_a` (also from the start, until the
//!   primary is heard).

use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use ampwarden_actors::config::Config;
use ampwarden_actors::federation::{
    Downstream, Grant, LinkMode, RemoteConnector, RemoteStation, Report, Upstream, MAX_FRAME_BYTES,
    REPORT_EVERY_MS, VERSION,
};
use ampwarden_actors::store::LogLevel;
use ampwarden_actors::supervisor::{
    report_of, ImposeBudget, InForce, SiteStatus, SiteUpdate, Subscribe, WatchInForce,
    ZoneSupervisor,
};
use ampwarden_actors::units::{Amps, PerPhase, Phase};
use tokio::sync::mpsc;

use crate::controller::Controller;
use crate::ws_client;

/// How often the imposed budget is re-evaluated (grant expiry is seen this soon).
const TICK: Duration = Duration::from_millis(200);
/// Reconnection delays: doubled after each failure, up to the last.
const BACKOFF: [u64; 5] = [500, 1_000, 2_000, 5_000, 10_000];
/// The station list goes up every this many reports.
const STATIONS_EVERY: u32 = 5;
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// A link on which the primary said nothing for this long (it refreshes its grant every
/// 2 s) is dropped and dialled again: a cut cable closes no socket.
const SILENT_LIMIT: Duration = Duration::from_secs(6);

/// The link's view of the link, for the API and the UI.
#[derive(Clone, Debug, Default, serde::Serialize)]
pub struct LinkStatus {
    pub primary_url: String,
    pub connected: bool,
    pub mode: LinkMode,
    pub imposed_a: Option<PerPhase<Amps>>,
    pub grant_seq: u64,
    pub last_error: Option<String>,
}

pub struct PrimaryLink {
    core: Controller,
    supervisor: Addr<ZoneSupervisor>,
    url: String,
    token: String,
    /// The CA the primary's certificate must chain to (`federation.ca_file`).
    ca_file: Option<std::path::PathBuf>,
    name: String,
    zone: ampwarden_actors::units::ZoneId,
    fallback: Amps,
    limit: Amps,
    min_current: Amps,
    /// Counts connections, so that a late event of an old one is ignored.
    generation: u64,
    out: Option<mpsc::UnboundedSender<String>>,
    /// The task that owns the socket (aborted when the link is given up).
    socket: Option<tokio::task::JoinHandle<()>>,
    last_heard: Instant,
    welcomed: bool,
    failures: usize,
    grant: Option<Held>,
    imposed: Option<PerPhase<Amps>>,
    acked: u64,
    /// The highest grant number seen on this connection (the primary counts per link).
    seen_seq: u64,
    in_force: Option<InForce>,
    status: Arc<SiteStatus>,
    /// The last report sent (what the primary knows).
    last_sent: Option<Report>,
    reports: u32,
    last_error: Option<String>,
    shared: Arc<std::sync::Mutex<LinkStatus>>,
}

/// The grant being held.
struct Held {
    grant: Grant,
    until: Instant,
    /// Received on the connection up now. A grant of an earlier connection (a primary
    /// that restarted since) is held only as when the link is down — lowered to the
    /// fallback — and never acknowledged on the new link.
    this_link: bool,
}

impl PrimaryLink {
    /// `None` unless the configuration makes this controller a secondary.
    pub fn new(
        core: Controller,
        config: &Config,
        shared: Arc<std::sync::Mutex<LinkStatus>>,
    ) -> Option<PrimaryLink> {
        let f = config.federation.as_ref()?;
        if f.role != ampwarden_actors::config::FederationRole::Secondary {
            return None;
        }
        let limit = config
            .zones
            .iter()
            .filter(|z| z.parent.is_none())
            .map(|z| z.limit_a.0)
            .sum::<f64>();
        let url = f.primary_url.clone()?;
        Some(PrimaryLink {
            supervisor: core.supervisor().clone(),
            core,
            url: format!("{}/federation", url.trim_end_matches('/')),
            token: f.token.clone()?,
            ca_file: f.ca_file.clone(),
            name: f.name.clone().unwrap_or_else(|| config.site.name.clone()),
            zone: f.zone.clone()?,
            fallback: f.fallback_budget_a?,
            limit: Amps(limit),
            min_current: config.control.min_current_a,
            generation: 0,
            out: None,
            socket: None,
            last_heard: Instant::now(),
            welcomed: false,
            failures: 0,
            grant: None,
            imposed: None,
            acked: 0,
            seen_seq: 0,
            in_force: None,
            status: Arc::new(SiteStatus::default()),
            last_sent: None,
            reports: 0,
            last_error: None,
            shared,
        })
    }

    fn link_up(&self) -> bool {
        self.out.is_some() && self.welcomed
    }

    fn mode(&self) -> LinkMode {
        match (&self.grant, self.link_up()) {
            (Some(h), true) if h.this_link => LinkMode::Granted,
            (Some(_), _) => LinkMode::Expiring,
            (None, _) => LinkMode::Fallback,
        }
    }

    /// Drops an expired grant and imposes what holds now.
    fn evaluate(&mut self) {
        if self
            .grant
            .as_ref()
            .is_some_and(|h| Instant::now() >= h.until)
        {
            tracing::warn!(primary = %self.url, "grant expired: on the fallback budget");
            self.log(
                LogLevel::Warn,
                format!("grant expired: fallback budget {} in force", self.fallback),
            );
            self.grant = None;
        }
        let fallback = PerPhase::splat(self.fallback);
        let budget = match &self.grant {
            Some(h) if self.link_up() && h.this_link => h.grant.budget_a,
            Some(h) => PerPhase([0, 1, 2].map(|i| h.grant.budget_a.0[i].min(fallback.0[i]))),
            None => fallback,
        };
        if self.imposed != Some(budget) {
            self.imposed = Some(budget);
            self.supervisor.do_send(ImposeBudget(Some(budget)));
        }
        self.maybe_ack();
        let mut s = self
            .shared
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.primary_url.clone_from(&self.url);
        s.connected = self.link_up();
        s.mode = self.mode();
        s.imposed_a = self.imposed;
        s.grant_seq = self.grant.as_ref().map_or(0, |h| h.grant.seq);
        s.last_error.clone_from(&self.last_error);
    }

    /// Acknowledges the grant held once a round found the limits in force within it.
    fn maybe_ack(&mut self) {
        let (Some(h), Some(f)) = (&self.grant, &self.in_force) else {
            return;
        };
        let seq = h.grant.seq;
        if h.this_link
            && seq > self.acked
            && f.fits
            && f.imposed == Some(h.grant.budget_a)
            && self.link_up()
        {
            self.acked = seq;
            self.send(&Upstream::Ack { v: VERSION, seq });
        }
    }

    fn send(&self, m: &Upstream) {
        let Some(out) = &self.out else { return };
        match serde_json::to_string(m) {
            Ok(text) => {
                let _ = out.send(text);
            }
            Err(e) => tracing::error!(error = %e, "cannot encode a federation frame"),
        }
    }

    fn log(&self, level: LogLevel, message: String) {
        let _ = self.core.store().log(level, None, message);
    }

    /// The report of the last round's status, as of now.
    fn current_report(&self) -> Report {
        report_of(
            &self.status,
            self.min_current,
            self.mode(),
            self.grant.as_ref().map_or(0, |h| h.grant.seq),
        )
    }

    fn report(&mut self, ctx: &mut Context<Self>) {
        if !self.link_up() {
            return;
        }
        let mut report = self.current_report();
        self.last_sent = Some(report.clone());
        self.reports = self.reports.wrapping_add(1);
        if self.reports % STATIONS_EVERY != 1 {
            self.send(&Upstream::Report(Box::new(report)));
            return;
        }
        // Every few reports, the stations too (their snapshots are asked for first).
        let core = self.core.clone();
        let generation = self.generation;
        ctx.spawn(async move { stations(&core).await }.into_actor(self).map(
            move |list, link, _| {
                if link.generation == generation {
                    report.stations = Some(list);
                    link.send(&Upstream::Report(Box::new(report)));
                }
            },
        ));
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        self.generation += 1;
        let generation = self.generation;
        let me = ctx.address();
        // Read at every dial: a CA file fixed or rotated is taken without a restart.
        let tls = match ws_client::trusting(self.ca_file.as_deref(), "federation.ca_file") {
            Ok(tls) => tls,
            Err(why) => {
                me.do_send(Disconnected { generation, why });
                return;
            }
        };
        let url = self.url.clone();
        let token = self.token.clone();
        let hello = Upstream::Hello {
            v: VERSION,
            name: self.name.clone(),
            zone: self.zone.clone(),
            fallback_budget_a: self.fallback,
            limit_a: self.limit,
            software: env!("CARGO_PKG_VERSION").to_owned(),
        };
        if let Some(old) = self.socket.take() {
            old.abort();
        }
        self.socket = Some(actix::spawn(async move {
            let (tx, rx) = mpsc::unbounded_channel::<String>();
            let dialled = ws_client::dial(ws_client::Dial {
                url: &url,
                headers: vec![("Authorization", format!("Bearer {token}"))],
                config: tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
                    .max_message_size(Some(MAX_FRAME_BYTES))
                    .max_frame_size(Some(MAX_FRAME_BYTES)),
                tls,
                timeout: CONNECT_TIMEOUT,
                peer: "the primary",
            })
            .await;
            let why = match dialled {
                Err(e) => e,
                Ok(socket) => {
                    me.do_send(Connected {
                        generation,
                        out: tx.clone(),
                    });
                    if let Ok(text) = serde_json::to_string(&hello) {
                        let _ = tx.send(text);
                    }
                    ws_client::run(socket, rx, None, "the primary", |text| {
                        me.do_send(FromPrimary { generation, text });
                    })
                    .await
                }
            };
            me.do_send(Disconnected { generation, why });
        }));
    }

    /// Runs a remote action the primary relays (as its operator asked there) and sends
    /// back what this controller's own API would have answered.
    fn run_command(
        &mut self,
        ctx: &mut Context<Self>,
        id: u64,
        station: String,
        action: String,
        body: &serde_json::Value,
    ) {
        let core = self.core.clone();
        let generation = self.generation;
        if let Some(what) = action.strip_prefix("read:") {
            let (what, body) = (what.to_owned(), body.clone());
            ctx.spawn(
                async move { read_records(&core, &what, &body).await }
                    .into_actor(self)
                    .map(move |(status, body), link, _| {
                        if link.generation == generation {
                            link.send(&Upstream::CommandResult {
                                v: VERSION,
                                id,
                                status,
                                body,
                            });
                        }
                    }),
            );
            return;
        }
        let bytes = serde_json::to_vec(body).unwrap_or_default();
        ctx.spawn(
            async move {
                crate::http::api::stations::run_action(
                    &core,
                    "federation primary",
                    ampwarden_actors::units::ChargePointId::new(station),
                    &action,
                    &bytes,
                )
                .await
            }
            .into_actor(self)
            .map(move |result, link, _| {
                if link.generation != generation {
                    return;
                }
                let (status, body) = match result {
                    Ok(body) => (200, body),
                    Err(e) => (e.status.as_u16(), e.body()),
                };
                link.send(&Upstream::CommandResult {
                    v: VERSION,
                    id,
                    status,
                    body,
                });
            }),
        );
    }

    /// Gives a silent link up (the socket task ends and reports it).
    fn check_silence(&mut self, ctx: &mut Context<Self>) {
        if self.out.is_some() && self.last_heard.elapsed() > SILENT_LIMIT {
            if let Some(socket) = self.socket.take() {
                socket.abort();
            }
            let generation = self.generation;
            ctx.notify(Disconnected {
                generation,
                why: format!("the primary was silent for {SILENT_LIMIT:?}"),
            });
        }
    }
}

/// The records a primary may read: `transactions` (newest first, as this controller's
/// own `/api/v1/transactions` gives them: with `energy_wh`, `open`, and open ones as
/// their stations hold them now) and `logs` (the operator log, newest first), each at
/// most `limit` (default 200, at most 1000), of one `station` if given.
async fn read_records(
    core: &Controller,
    what: &str,
    body: &serde_json::Value,
) -> (u16, serde_json::Value) {
    let limit = body["limit"]
        .as_u64()
        .map_or(200, |l| usize::try_from(l).unwrap_or(1000).min(1000));
    let station = body["station"]
        .as_str()
        .map(ampwarden_actors::units::ChargePointId::new);
    let result = match what {
        "transactions" => {
            let filter = ampwarden_actors::store::TransactionFilter {
                station,
                from: None,
                to: None,
            };
            match core.store().transactions(&filter) {
                Ok(all) => {
                    let newest: Vec<_> = all.into_iter().rev().take(limit).collect();
                    let views: Vec<crate::http::api::transactions::TxView> =
                        crate::http::api::transactions::live(core, newest)
                            .await
                            .into_iter()
                            .map(Into::into)
                            .collect();
                    Ok(serde_json::to_value(views).unwrap_or_default())
                }
                Err(e) => Err(e),
            }
        }
        "logs" => core
            .store()
            .logs(station.as_ref(), limit)
            .map(|l| serde_json::to_value(l).unwrap_or_default()),
        _ => {
            return (
                404,
                serde_json::json!({ "error": format!("nothing to read as {what:?}: transactions or logs") }),
            )
        }
    };
    match result {
        Ok(v) => (200, v),
        Err(e) => (500, serde_json::json!({ "error": e.to_string() })),
    }
}

/// This secondary's stations, for the primary's UI.
async fn stations(core: &Controller) -> Vec<RemoteStation> {
    let config = core.config();
    let snapshots = futures_util::future::join_all(
        config
            .stations
            .iter()
            .map(|s| crate::http::api::stations::snapshot(core.station(&s.id))),
    )
    .await;
    config
        .stations
        .iter()
        .zip(snapshots)
        .map(|(s, live)| RemoteStation {
            id: s.id.to_string(),
            zone: s.zone.clone(),
            connected: live.as_ref().is_some_and(|l| l.connected),
            connectors: live
                .map(|l| {
                    l.connectors
                        .iter()
                        .map(|c| RemoteConnector {
                            connector: c.connector,
                            status: c.status.clone(),
                            transaction: c.transaction.as_ref().map(|t| t.id),
                            limit_a: Some(c.limit_in_force),
                            draw_a: match c.draw.0 {
                                [Some(a), Some(b), Some(d)] => Some(PerPhase([a, b, d])),
                                _ => None,
                            },
                        })
                        .collect()
                })
                .unwrap_or_default(),
        })
        .collect()
}

impl Actor for PrimaryLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(primary = %self.url, name = %self.name, "federation: secondary of {}", self.url);
        self.supervisor
            .do_send(Subscribe(ctx.address().recipient::<SiteUpdate>()));
        self.supervisor
            .do_send(WatchInForce(ctx.address().recipient::<InForce>()));
        // On the fallback from the start, until the primary is heard.
        self.evaluate();
        self.connect(ctx);
        ctx.run_interval(TICK, |link, ctx| {
            link.check_silence(ctx);
            link.evaluate();
        });
        ctx.run_interval(Duration::from_millis(REPORT_EVERY_MS), |link, ctx| {
            link.report(ctx);
        });
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct Connected {
    generation: u64,
    out: mpsc::UnboundedSender<String>,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Disconnected {
    generation: u64,
    why: String,
}

#[derive(Message)]
#[rtype(result = "()")]
struct FromPrimary {
    generation: u64,
    text: String,
}

impl Handler<Connected> for PrimaryLink {
    type Result = ();

    fn handle(&mut self, m: Connected, _: &mut Self::Context) {
        if m.generation == self.generation {
            self.out = Some(m.out);
            self.last_heard = Instant::now();
            self.welcomed = false;
            self.acked = 0;
            self.seen_seq = 0;
            if let Some(h) = &mut self.grant {
                h.this_link = false;
            }
        }
    }
}

impl Handler<Disconnected> for PrimaryLink {
    type Result = ();

    fn handle(&mut self, m: Disconnected, ctx: &mut Self::Context) {
        if m.generation != self.generation {
            return;
        }
        let was_up = self.link_up();
        self.out = None;
        // A new generation: whatever the old socket still says is ignored.
        self.generation += 1;
        self.welcomed = false;
        if was_up {
            tracing::warn!(primary = %self.url, why = %m.why, "federation link down");
            self.log(LogLevel::Warn, format!("link to the primary lost ({}): the grant holds until it expires, lowered to the fallback", m.why));
        } else if self.last_error.as_deref() != Some(&m.why) {
            tracing::warn!(primary = %self.url, why = %m.why, "cannot link to the primary");
        }
        self.last_error = Some(m.why);
        self.evaluate();
        let wait = BACKOFF[self.failures.min(BACKOFF.len() - 1)];
        self.failures += 1;
        ctx.run_later(Duration::from_millis(wait), |link, ctx| link.connect(ctx));
    }
}

impl Handler<FromPrimary> for PrimaryLink {
    type Result = ();

    fn handle(&mut self, m: FromPrimary, ctx: &mut Self::Context) {
        if m.generation != self.generation {
            return;
        }
        self.last_heard = Instant::now();
        let frame: Downstream = match serde_json::from_str(&m.text) {
            Ok(f) => f,
            Err(e) => {
                tracing::warn!(error = %e, "frame from the primary ignored");
                return;
            }
        };
        match frame {
            Downstream::Welcome { v, .. } if v == VERSION => {
                tracing::info!(primary = %self.url, "federation link up");
                self.log(
                    LogLevel::Info,
                    format!("linked to the primary {}", self.url),
                );
                self.welcomed = true;
                self.failures = 0;
                self.last_error = None;
                self.report(ctx);
            }
            Downstream::Welcome { v, .. } => {
                self.last_error = Some(format!(
                    "the primary speaks version {v}, this secondary {VERSION}"
                ));
            }
            Downstream::Refused { reason, .. } => {
                tracing::error!(primary = %self.url, "the primary refused this secondary: {reason}");
                self.log(
                    LogLevel::Error,
                    format!("the primary refused this secondary: {reason}"),
                );
                self.last_error = Some(reason);
                // Its socket closes now; the next try waits the longest.
                self.failures = BACKOFF.len();
            }
            Downstream::Grant(g) if g.v == VERSION && self.welcomed => {
                let newer = g.seq > self.seen_seq;
                let valid =
                    g.budget_a.0.iter().all(|a| a.0.is_finite() && a.0 >= 0.0) && g.valid_for_s > 0;
                if newer && valid {
                    self.seen_seq = g.seq;
                    self.grant = Some(Held {
                        grant: g,
                        until: Instant::now() + Duration::from_secs(u64::from(g.valid_for_s)),
                        this_link: true,
                    });
                    self.evaluate();
                }
            }
            Downstream::Grant(_) => {}
            Downstream::Command {
                id,
                station,
                action,
                body,
                ..
            } => self.run_command(ctx, id, station, action, &body),
        }
    }
}

impl Handler<InForce> for PrimaryLink {
    type Result = ();

    fn handle(&mut self, m: InForce, _: &mut Self::Context) {
        self.in_force = Some(m);
        self.maybe_ack();
    }
}

impl Handler<SiteUpdate> for PrimaryLink {
    type Result = ();

    fn handle(&mut self, SiteUpdate(status): SiteUpdate, _: &mut Self::Context) {
        self.status = status;
        if !self.link_up() {
            return;
        }
        // At once when what the primary last heard is no longer what the root needs.
        let report = self.current_report();
        if self
            .last_sent
            .as_ref()
            .is_none_or(|sent| demand_moved(sent, &report))
        {
            self.last_sent = Some(report.clone());
            self.send(&Upstream::Report(Box::new(report)));
        }
    }
}

/// Whether what the root needs moved enough to report at once.
fn demand_moved(a: &Report, b: &Report) -> bool {
    let apart = |x: PerPhase<Amps>, y: PerPhase<Amps>| {
        Phase::ALL
            .iter()
            .any(|&p| (x.get(p).0 - y.get(p).0).abs() >= 0.5)
    };
    apart(a.max_a, b.max_a)
        || apart(a.vip_max_a, b.vip_max_a)
        || apart(a.fixed_a, b.fixed_a)
        || a.active != b.active
        || a.suspended != b.suspended
}

/// Stops the link (controller shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopLink;

impl Handler<StopLink> for PrimaryLink {
    type Result = ();

    fn handle(&mut self, _: StopLink, ctx: &mut Self::Context) {
        self.out = None;
        ctx.stop();
    }
}
