//! The BMS actor: owns the caps written by building management systems, tells the zone
//! supervisor what is in force (at once on every write, expiry or disconnection), keeps
//! the register image fresh (every second for the heartbeat, after every round) and the
//! log of writes for the UI.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;

use super::caps::{CapRequest, CapTarget, CapView, Caps, CapsInForce, WriteError, Writer, Written};
use super::registers::{self, ImageInput, RegisterImage};
use crate::config::LiveConfig;
use crate::station::StationSnapshot;
use crate::store::{LogLevel, Store};
use crate::supervisor::{
    GetStationSnapshots, ImposeBmsCaps, SiteStatus, SiteUpdate, Subscribe, ZoneSupervisor,
};

/// How many writes (accepted or refused) the UI can see.
const LOG_LEN: usize = 200;
const TICK: Duration = Duration::from_secs(1);

/// The register image the Modbus server reads, swapped whole on every rebuild.
#[derive(Clone)]
pub struct SharedImage(Arc<RwLock<Arc<RegisterImage>>>);

impl SharedImage {
    pub fn get(&self) -> Arc<RegisterImage> {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    fn set(&self, image: RegisterImage) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(image);
    }
}

/// A Modbus client's counters, shared with its connection.
#[derive(Debug, Default)]
pub struct ClientStats {
    pub requests: AtomicU64,
    pub exceptions: AtomicU64,
}

struct Client {
    addr: SocketAddr,
    since: DateTime<Utc>,
    stats: Arc<ClientStats>,
}

/// One write as the UI's log shows it.
#[derive(Clone, Debug, Serialize)]
pub struct WriteRecord {
    pub at: DateTime<Utc>,
    pub target: CapTarget,
    /// Who wrote the cap.
    pub by: Writer,
    /// `accepted`, `refused`, `released`, `expired` or `disconnected`.
    pub outcome: &'static str,
    /// Who released it, for `released`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ended_by: Option<Writer>,
    pub requested: Option<f64>,
    pub unit: Option<super::CapUnit>,
    pub effective_a: Option<f64>,
    pub validity_s: Option<i64>,
    pub error: Option<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ClientView {
    pub id: u64,
    pub addr: SocketAddr,
    pub since: DateTime<Utc>,
    pub requests: u64,
    pub exceptions: u64,
}

/// What `GET /api/v1/bms` shows.
#[derive(Clone, Debug, Serialize)]
pub struct BmsView {
    pub configured: bool,
    pub write: bool,
    pub modbus_listen: Option<SocketAddr>,
    pub unit_id: Option<u8>,
    pub heartbeat: u32,
    pub site: CapView,
    pub zones: Vec<CapView>,
    pub clients: Vec<ClientView>,
    /// Connections refused (not on the allow-list, or too many) since start.
    pub refused_connections: u64,
    pub writes_accepted: u64,
    pub writes_refused: u64,
    /// Newest first.
    pub log: Vec<WriteRecord>,
}

// --- messages --------------------------------------------------------------------------

/// Writes a cap; answers what is in force, or why not (nothing changed then).
#[derive(Message)]
#[rtype(result = "Result<Written, WriteError>")]
pub struct WriteCap {
    pub request: CapRequest,
    pub by: Writer,
}

/// Ends a written cap now: its fail-safe applies.
#[derive(Message)]
#[rtype(result = "Option<Written>")]
pub struct ReleaseCap {
    pub target: CapTarget,
    pub by: Writer,
}

#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientConnected {
    pub client: u64,
    pub addr: SocketAddr,
    pub stats: Arc<ClientStats>,
}

/// A Modbus client disconnected: the caps it wrote end.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientGone(pub u64);

#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientRefused {
    pub addr: SocketAddr,
    pub reason: &'static str,
}

#[derive(Message)]
#[rtype(result = "BmsView")]
pub struct GetBms;

/// Where the Modbus server really listens (the port chosen when 0 was asked).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ModbusListening(pub SocketAddr);

/// The register map (`registers::map`) for the configuration in force.
#[derive(Message)]
#[rtype(result = "Vec<registers::Point>")]
pub struct GetRegisterMap;

// --- the actor -------------------------------------------------------------------------

pub struct BmsActor {
    config: LiveConfig,
    store: Store,
    supervisor: Addr<ZoneSupervisor>,
    caps: Caps,
    sent: Option<CapsInForce>,
    image: SharedImage,
    heartbeat: u32,
    status: Arc<SiteStatus>,
    stations: Vec<StationSnapshot>,
    clients: BTreeMap<u64, Client>,
    refused: u64,
    accepted: u64,
    refused_writes: u64,
    last_accepted: bool,
    log: VecDeque<WriteRecord>,
    end_timer: Option<SpawnHandle>,
    listening: Option<SocketAddr>,
}

impl BmsActor {
    pub fn new(config: LiveConfig, store: Store, supervisor: Addr<ZoneSupervisor>) -> BmsActor {
        let mut actor = BmsActor {
            config,
            store,
            supervisor,
            caps: Caps::default(),
            sent: None,
            image: SharedImage(Arc::new(RwLock::new(Arc::new(registers::image(
                &ImageInput {
                    config: &crate::config::Config::default(),
                    status: &SiteStatus::default(),
                    stations: &[],
                    caps: &Caps::default(),
                    heartbeat: 0,
                    clients: 0,
                    last_write_accepted: false,
                    writes: 0,
                    now: Utc::now(),
                },
            ))))),
            heartbeat: 0,
            status: Arc::new(SiteStatus::default()),
            stations: Vec::new(),
            clients: BTreeMap::new(),
            refused: 0,
            accepted: 0,
            refused_writes: 0,
            last_accepted: false,
            log: VecDeque::new(),
            end_timer: None,
            listening: None,
        };
        actor.rebuild();
        actor
    }

    /// The image the Modbus server serves.
    pub fn image(&self) -> SharedImage {
        self.image.clone()
    }

    fn rebuild(&mut self) {
        let config = self.config.get();
        let image = registers::image(&ImageInput {
            config: &config,
            status: &self.status,
            stations: &self.stations,
            caps: &self.caps,
            heartbeat: self.heartbeat,
            clients: u16::try_from(self.clients.len()).unwrap_or(u16::MAX),
            last_write_accepted: self.last_accepted,
            #[allow(clippy::cast_possible_truncation)]
            writes: self.accepted as u16,
            now: Utc::now(),
        });
        self.image.set(image);
    }

    /// Tells the supervisor what is in force if that changed, and arms the timer for the
    /// next end of a written cap.
    fn push(&mut self, ctx: &mut Context<Self>) {
        let in_force = self.caps.in_force(&self.config.get());
        if self.sent.as_ref() != Some(&in_force) {
            self.supervisor.do_send(ImposeBmsCaps(in_force.clone()));
            self.sent = Some(in_force);
        }
        if let Some(h) = self.end_timer.take() {
            ctx.cancel_future(h);
        }
        if let Some(end) = self.caps.next_end() {
            let wait = (end - Utc::now()).to_std().unwrap_or(Duration::ZERO);
            self.end_timer = Some(ctx.run_later(wait, |act, ctx| {
                act.end_timer = None;
                act.expire(ctx);
            }));
        }
    }

    fn expire(&mut self, ctx: &mut Context<Self>) {
        let now = Utc::now();
        for (target, w) in self.caps.expire(now) {
            self.ended(target, w, "expired", None);
        }
        self.push(ctx);
        self.rebuild();
    }

    fn ended(
        &mut self,
        target: CapTarget,
        w: Written,
        outcome: &'static str,
        ended_by: Option<Writer>,
    ) {
        let config = self.config.get();
        let view = self.caps.view(&config, &target, Utc::now());
        let then = match view.effective_a {
            Some(a) => format!("the fail-safe cap {a} applies"),
            None => "no cap applies".into(),
        };
        let how = match &ended_by {
            Some(who) => format!("{outcome} by {who}"),
            None => outcome.to_owned(),
        };
        self.note(
            LogLevel::Warn,
            format!(
                "BMS: {target} cap {} from {} {how}: {then}",
                w.effective_a, w.by
            ),
        );
        self.record(WriteRecord {
            at: Utc::now(),
            target,
            by: w.by,
            outcome,
            ended_by,
            requested: Some(w.requested),
            unit: Some(w.unit),
            effective_a: view.effective_a.map(|a| a.0),
            validity_s: None,
            error: None,
        });
    }

    fn record(&mut self, r: WriteRecord) {
        self.log.push_front(r);
        self.log.truncate(LOG_LEN);
    }

    fn note(&self, level: LogLevel, message: String) {
        tracing::info!("{message}");
        if let Err(e) = self.store.log(level, None, message) {
            tracing::error!(error = %e, "cannot write the operator log");
        }
    }

    fn refresh_stations(&mut self, ctx: &mut Context<Self>) {
        self.supervisor
            .send(GetStationSnapshots)
            .into_actor(self)
            .map(|r, act, _| {
                if let Ok(stations) = r {
                    act.stations = stations;
                    act.rebuild();
                }
            })
            .spawn(ctx);
    }
}

impl Actor for BmsActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
        self.supervisor
            .do_send(Subscribe(ctx.address().recipient::<SiteUpdate>()));
        self.push(ctx);
        ctx.run_interval(TICK, |act, ctx| {
            act.heartbeat = act.heartbeat.wrapping_add(1);
            // A configuration change (write turned off, another fail-safe) is in force
            // within a second.
            act.push(ctx);
            act.rebuild();
            act.refresh_stations(ctx);
        });
    }
}

impl Handler<SiteUpdate> for BmsActor {
    type Result = ();

    fn handle(&mut self, SiteUpdate(status): SiteUpdate, _: &mut Self::Context) {
        self.status = status;
        self.rebuild();
    }
}

impl Handler<WriteCap> for BmsActor {
    type Result = Result<Written, WriteError>;

    fn handle(&mut self, m: WriteCap, ctx: &mut Self::Context) -> Self::Result {
        let config = self.config.get();
        let now = Utc::now();
        let target = m.request.target.clone();
        let (requested, unit) = (m.request.value, m.request.unit);
        let outcome = self.caps.write(&config, m.request, m.by.clone(), now);
        self.last_accepted = outcome.is_ok();
        match &outcome {
            Ok(w) => {
                self.accepted += 1;
                self.note(
                    LogLevel::Info,
                    format!(
                        "BMS: {target} cap {} for {} s by {} (asked {requested} {})",
                        w.effective_a,
                        (w.until - w.at).num_seconds(),
                        w.by,
                        if unit == super::CapUnit::Watts {
                            "W"
                        } else {
                            "A"
                        }
                    ),
                );
                self.record(WriteRecord {
                    at: now,
                    target,
                    by: m.by,
                    outcome: "accepted",
                    ended_by: None,
                    requested: Some(requested),
                    unit: Some(unit),
                    effective_a: Some(w.effective_a.0),
                    validity_s: Some((w.until - w.at).num_seconds()),
                    error: None,
                });
            }
            Err(e) => {
                self.refused_writes += 1;
                tracing::warn!(%target, by = %m.by, error = %e, "BMS write refused");
                self.record(WriteRecord {
                    at: now,
                    target,
                    by: m.by,
                    outcome: "refused",
                    ended_by: None,
                    requested: Some(requested),
                    unit: Some(unit),
                    effective_a: None,
                    validity_s: None,
                    error: Some(e.to_string()),
                });
            }
        }
        self.push(ctx);
        self.rebuild();
        outcome
    }
}

impl Handler<ReleaseCap> for BmsActor {
    type Result = Option<Written>;

    fn handle(&mut self, m: ReleaseCap, ctx: &mut Self::Context) -> Self::Result {
        let ended = self.caps.release(&m.target);
        if let Some(w) = &ended {
            self.ended(m.target, w.clone(), "released", Some(m.by));
        }
        self.push(ctx);
        self.rebuild();
        ended
    }
}

impl Handler<ClientConnected> for BmsActor {
    type Result = ();

    fn handle(&mut self, m: ClientConnected, _: &mut Self::Context) {
        tracing::info!(client = m.client, addr = %m.addr, "BMS client connected");
        self.clients.insert(
            m.client,
            Client {
                addr: m.addr,
                since: Utc::now(),
                stats: m.stats,
            },
        );
        self.rebuild();
    }
}

impl Handler<ClientGone> for BmsActor {
    type Result = ();

    fn handle(&mut self, ClientGone(client): ClientGone, ctx: &mut Self::Context) {
        if let Some(c) = self.clients.remove(&client) {
            tracing::info!(client, addr = %c.addr, "BMS client disconnected");
        }
        for (target, w) in self.caps.disconnected(client) {
            self.ended(target, w, "disconnected", None);
        }
        self.push(ctx);
        self.rebuild();
    }
}

impl Handler<ClientRefused> for BmsActor {
    type Result = ();

    fn handle(&mut self, m: ClientRefused, _: &mut Self::Context) {
        self.refused += 1;
        tracing::warn!(addr = %m.addr, reason = m.reason, "BMS connection refused");
    }
}

impl Handler<GetBms> for BmsActor {
    type Result = MessageResult<GetBms>;

    fn handle(&mut self, _: GetBms, _: &mut Self::Context) -> Self::Result {
        let config = self.config.get();
        let now = Utc::now();
        let bms = config.bms.as_ref();
        MessageResult(BmsView {
            configured: bms.is_some(),
            write: bms.is_some_and(|b| b.write),
            modbus_listen: self.listening.or(bms.and_then(|b| b.modbus_listen)),
            unit_id: bms.map(|b| b.unit_id),
            heartbeat: self.heartbeat,
            site: self.caps.view(&config, &CapTarget::Site, now),
            zones: config
                .zones
                .iter()
                .map(|z| self.caps.view(&config, &CapTarget::Zone(z.id.clone()), now))
                .collect(),
            clients: self
                .clients
                .iter()
                .map(|(&id, c)| ClientView {
                    id,
                    addr: c.addr,
                    since: c.since,
                    requests: c.stats.requests.load(Ordering::Relaxed),
                    exceptions: c.stats.exceptions.load(Ordering::Relaxed),
                })
                .collect(),
            refused_connections: self.refused,
            writes_accepted: self.accepted,
            writes_refused: self.refused_writes,
            log: self.log.iter().cloned().collect(),
        })
    }
}

impl Handler<ModbusListening> for BmsActor {
    type Result = ();

    fn handle(&mut self, ModbusListening(addr): ModbusListening, _: &mut Self::Context) {
        self.listening = Some(addr);
    }
}

impl Handler<GetRegisterMap> for BmsActor {
    type Result = MessageResult<GetRegisterMap>;

    fn handle(&mut self, _: GetRegisterMap, _: &mut Self::Context) -> Self::Result {
        MessageResult(registers::map(&self.config.get()))
    }
}
