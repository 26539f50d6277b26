//! The CPO uplink: for every station one upstream OCPP 1.6J connection to the
//! charge-point operator's central system, as that station. ampwarden stays the
//! stations' central system and keeps its load management:
//!
//! * **Store and forward.** The station actor journals (sled, before it answers the
//!   station) every message the CPO must get; this link sends them one at a time, in
//!   order, removes each once the CPO answered, and rewrites the transaction ids of
//!   MeterValues and StopTransaction to the ids the CPO gave. An outage or a restart
//!   loses none; a message is resent only if its answer never came (with the same
//!   uniqueId, `j{seq}`, so that a CPO can recognise it).
//! * On every connection: the station's BootNotification (kept from its last boot), then
//!   a StatusNotification of every connector, then the journal.
//! * **Commands from the CPO** are relayed to the station and answered with its answer —
//!   except SetChargingProfile, ClearChargingProfile and GetCompositeSchedule: the CPO's
//!   profiles are kept as constraints on the connector ([`profiles`]) that the allocation
//!   never exceeds; they are not forwarded (the site's own limits stay in force).
//!   `read_only` refuses every command.

pub mod profiles;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use actix::prelude::*;
use ampwarden_actors::ocpp::{
    encode_call_error, encode_call_result, CallError, CentralCall, ChangeConfigurationResponse,
    ChargingProfilePurpose, ChargingProfileStatus, ClearChargingProfileResponse,
    ClearChargingProfileStatus, ConfigurationStatus, ErrorCode, GetCompositeScheduleResponse,
    GetCompositeScheduleStatus, IdTagInfo, Incoming, RemoteStopTransactionRequest, Request,
    SetChargingProfileRequest, SetChargingProfileResponse,
};
use ampwarden_actors::station::{
    AttachUplink, Call, CallFailure, GetSnapshot, NoteTransaction, SetCpoLimits,
    SetUplinkMeterInterval, StationActor, UplinkAuthorize, UplinkDataTransfer, UplinkHandle,
    UplinkWake,
};
use ampwarden_actors::store::LogLevel;
use ampwarden_actors::units::{ChargePointId, IdTag};
use base64::Engine as _;
use chrono::Utc;
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

use crate::controller::Controller;
use crate::ws_client;
use ampwarden_actors::config::RejectedStart;
use profiles::CpoProfiles;

const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// The CPO's profiles are re-evaluated this often (their periods move on).
const PROFILE_TICK: Duration = Duration::from_secs(5);

/// What the API shows of one station's uplink.
#[derive(Clone, Debug, Default, Serialize)]
pub struct UplinkStatus {
    pub station: String,
    /// The `[[uplink.routes]]` it goes by (none: the main `url`).
    pub route: Option<String>,
    /// Where it connects, as whom.
    pub cpo_url: String,
    pub identity: String,
    pub connected: bool,
    /// Accepted by the CPO on this connection.
    pub booted: bool,
    /// Messages journaled and not yet answered by the CPO.
    pub backlog: usize,
    pub sent: u64,
    pub last_error: Option<String>,
    /// The CPO's limits per connector now (0: the station).
    pub cpo_limits: std::collections::BTreeMap<u32, f64>,
}

/// The site-wide rate cap of messages to the CPO, shared by every link.
#[derive(Clone)]
pub struct RateCap(Arc<Mutex<Instant>>);

impl RateCap {
    pub fn new() -> RateCap {
        RateCap(Arc::new(Mutex::new(Instant::now())))
    }

    /// How long to wait before the next message may go (and takes its slot).
    fn take(&self, per_s: u32) -> Duration {
        let mut next = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let now = Instant::now();
        let slot = (*next).max(now);
        *next = slot + Duration::from_secs_f64(1.0 / f64::from(per_s.max(1)));
        slot - now
    }
}

impl Default for RateCap {
    fn default() -> Self {
        RateCap::new()
    }
}

/// A configuration known to have an `[uplink]` section, read as that section.
struct Settings(Arc<ampwarden_actors::config::Config>);

impl std::ops::Deref for Settings {
    type Target = ampwarden_actors::config::UplinkConfig;

    fn deref(&self) -> &Self::Target {
        static NONE: std::sync::OnceLock<ampwarden_actors::config::UplinkConfig> =
            std::sync::OnceLock::new();
        // `settings()` builds one only when the section is there.
        self.0
            .uplink
            .as_ref()
            .unwrap_or_else(|| NONE.get_or_init(Default::default))
    }
}

enum Sending {
    Boot,
    /// An Authorize for the station; its answer goes to `reply` (and the cache).
    Authorize {
        tag: IdTag,
        reply: oneshot::Sender<Option<IdTagInfo>>,
    },
    /// A DataTransfer of the station; the CPO's answer goes to `reply`.
    DataTransfer {
        reply: oneshot::Sender<Option<Value>>,
    },
    Status,
    Journal {
        seq: u64,
        action: String,
        local: Option<i32>,
        /// The id tag of a StartTransaction (the CPO's answer is cached for it).
        tag: Option<IdTag>,
    },
}

/// A call of the station that waits for the CPO's answer, and where the answer goes.
enum Live {
    Authorize(IdTag, oneshot::Sender<Option<IdTagInfo>>),
    DataTransfer(Value, oneshot::Sender<Option<Value>>),
}

struct InFlight {
    unique_id: String,
    what: Sending,
    timeout: SpawnHandle,
}

pub struct UplinkLink {
    core: Controller,
    id: ChargePointId,
    station: Addr<StationActor>,
    rate: RateCap,
    generation: u64,
    socket: Option<SpawnHandle>,
    out: Option<mpsc::UnboundedSender<String>>,
    booted: bool,
    statuses: Vec<Value>,
    in_flight: Option<InFlight>,
    next_uid: u64,
    backoff: Duration,
    waiting: bool,
    /// The station's calls that wait for the CPO's answer (Authorize, DataTransfer), sent
    /// before the journal's next entry.
    pending_live: VecDeque<Live>,
    /// Connected and accepted by the CPO (the station actor reads it).
    online: Arc<AtomicBool>,
    /// A rate slot was taken and waited for: the next journal entry goes without another.
    slot_taken: bool,
    profiles: CpoProfiles,
    status: Arc<Mutex<UplinkStatus>>,
}

impl UplinkLink {
    pub fn new(
        core: Controller,
        id: ChargePointId,
        station: Addr<StationActor>,
        rate: RateCap,
        status: Arc<Mutex<UplinkStatus>>,
    ) -> UplinkLink {
        UplinkLink {
            core,
            id,
            station,
            rate,
            generation: 0,
            socket: None,
            out: None,
            booted: false,
            statuses: Vec::new(),
            in_flight: None,
            next_uid: 1,
            backoff: Duration::from_secs(1),
            waiting: false,
            pending_live: VecDeque::new(),
            online: Arc::new(AtomicBool::new(false)),
            slot_taken: false,
            profiles: CpoProfiles::default(),
            status,
        }
    }

    /// The `[uplink]` section in force (the live configuration, not a copy: this is read
    /// for every message).
    fn settings(&self) -> Option<Settings> {
        let config = self.core.config();
        config.uplink.is_some().then_some(Settings(config))
    }

    fn set_status(&self, f: impl FnOnce(&mut UplinkStatus)) {
        let mut s = self.status.lock().unwrap_or_else(PoisonError::into_inner);
        f(&mut s);
        s.backlog = self.core.store().journal_len(&self.id);
    }

    fn connect(&mut self, ctx: &mut Context<Self>) {
        let Some(settings) = self.settings() else {
            return;
        };
        self.generation += 1;
        let generation = self.generation;
        let me = ctx.address();
        let target = settings.target(&self.id);
        let url = target.url.clone();
        let tls = match ws_client::trusting(target.ca_file.as_deref(), "uplink.ca_file") {
            Ok(tls) => tls,
            Err(why) => {
                // A CA file that cannot be read: said, and tried again later (it may be fixed).
                self.lost(ctx, why);
                return;
            }
        };
        let auth = target.password.as_ref().map(|p| {
            let pair = format!("{}:{p}", target.identity);
            format!(
                "Basic {}",
                base64::engine::general_purpose::STANDARD.encode(pair)
            )
        });
        if let Some(old) = self.socket.take() {
            ctx.cancel_future(old);
        }
        let ping_every = Duration::from_secs(u64::from(settings.ping_interval_s.max(1)));
        let silent_after = ping_every * 2 + Duration::from_secs(u64::from(settings.call_timeout_s));
        let task = async move {
            let (tx, rx) = mpsc::unbounded_channel::<String>();
            let mut headers = vec![("Sec-WebSocket-Protocol", "ocpp1.6".to_owned())];
            headers.extend(auth.map(|a| ("Authorization", a)));
            let dialled = ws_client::dial(ws_client::Dial {
                url: &url,
                headers,
                config: ws_config(),
                tls,
                timeout: CONNECT_TIMEOUT,
                peer: "the CPO",
            })
            .await;
            let why = match dialled {
                Err(e) => e,
                Ok(socket) => {
                    // The task keeps a sender too: the connection lives until it breaks or
                    // the link cancels it, whatever becomes of the link's copy.
                    me.do_send(Connected {
                        generation,
                        out: tx.clone(),
                    });
                    let ping = Some((ping_every, silent_after));
                    ws_client::run(socket, rx, ping, "the CPO", |text| {
                        me.do_send(FromCpo { generation, text });
                    })
                    .await
                }
            };
            me.do_send(Lost { generation, why });
        };
        self.socket = Some(ctx.spawn(task.into_actor(self)));
    }

    fn send_call(
        &mut self,
        ctx: &mut Context<Self>,
        unique_id: String,
        action: &str,
        payload: &Value,
        what: Sending,
    ) {
        let Some(out) = &self.out else { return };
        let frame = format!(
            "[2,{},{},{}]",
            serde_json::to_string(&unique_id).unwrap_or_default(),
            serde_json::to_string(action).unwrap_or_default(),
            payload
        );
        tracing::debug!(station = %self.id, %frame, "to the CPO");
        if out.send(frame).is_err() {
            return;
        }
        let wait = Duration::from_secs(u64::from(self.settings().map_or(30, |s| s.call_timeout_s)));
        let generation = self.generation;
        let why = format!("the CPO did not answer {action} within {wait:?}");
        let timeout = ctx.run_later(wait, move |act, ctx| {
            if act.generation == generation && act.in_flight.is_some() {
                // Resent on the next connection, with the same uniqueId.
                act.drop_connection(ctx, why);
            }
        });
        self.in_flight = Some(InFlight {
            unique_id,
            what,
            timeout,
        });
        self.set_status(|s| s.sent += 1);
    }

    fn drop_connection(&mut self, ctx: &mut Context<Self>, why: String) {
        if let Some(h) = self.socket.take() {
            ctx.cancel_future(h);
        }
        self.lost(ctx, why);
    }

    fn lost(&mut self, ctx: &mut Context<Self>, why: String) {
        self.out = None;
        self.booted = false;
        self.online.store(false, Ordering::Relaxed);
        // Whoever waits for an Authorize hears "offline" now (the senders drop).
        self.pending_live.clear();
        if let Some(f) = self.in_flight.take() {
            ctx.cancel_future(f.timeout);
        }
        self.set_status(|s| {
            s.connected = false;
            s.booted = false;
            s.last_error = Some(why.clone());
        });
        let max = Duration::from_secs(u64::from(self.settings().map_or(60, |s| s.reconnect_max_s)));
        let wait = self.backoff;
        self.backoff = (self.backoff * 2).min(max);
        ctx.run_later(wait, |act, ctx| act.connect(ctx));
    }

    /// Sends what is next, if nothing is in flight: the boot, the statuses, the journal.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.out.is_none() || self.in_flight.is_some() || self.waiting {
            return;
        }
        let store = self.core.store().clone();
        if !self.booted {
            match store.uplink_boot(&self.id) {
                Ok(Some(boot)) => {
                    let uid = self.uid();
                    self.send_call(ctx, uid, "BootNotification", &boot, Sending::Boot);
                }
                // Never booted yet: the station's own boot wakes this link.
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(station = %self.id, error = %e, "cannot read the boot for the CPO")
                }
            }
            return;
        }
        if let Some(live) = self.pending_live.pop_front() {
            let uid = self.uid();
            let (action, payload, what) = match live {
                Live::Authorize(tag, reply) => (
                    "Authorize",
                    json!({ "idTag": tag.as_str() }),
                    Sending::Authorize { tag, reply },
                ),
                Live::DataTransfer(payload, reply) => {
                    ("DataTransfer", payload, Sending::DataTransfer { reply })
                }
            };
            self.send_call(ctx, uid, action, &payload, what);
            return;
        }
        if let Some(status) = self.statuses.pop() {
            let uid = self.uid();
            self.send_call(ctx, uid, "StatusNotification", &status, Sending::Status);
            return;
        }
        let entry = match store.journal_first(&self.id) {
            Ok(Some(e)) => e,
            Ok(None) => return,
            Err(e) => {
                tracing::error!(station = %self.id, error = %e, "cannot read the journal for the CPO");
                return;
            }
        };
        // The site-wide cap: a slot, once taken, is this link's when its time comes.
        if !std::mem::take(&mut self.slot_taken) {
            let per_s = self.settings().map_or(200, |s| s.rate_per_s);
            let wait = self.rate.take(per_s);
            if !wait.is_zero() {
                self.waiting = true;
                ctx.run_later(wait, |act, ctx| {
                    act.waiting = false;
                    act.slot_taken = true;
                    act.pump(ctx);
                });
                return;
            }
        }
        let (seq, mut entry) = entry;
        // The CPO knows its own transaction ids.
        if let Some(local) = entry.payload.get("transactionId").and_then(Value::as_i64) {
            let local = i32::try_from(local).unwrap_or_default();
            match store.cpo_transaction(&self.id, local) {
                Ok(Some(cpo)) => entry.payload["transactionId"] = json!(cpo),
                Ok(None) => {
                    tracing::warn!(station = %self.id, transaction = local, "no CPO id for a local transaction: sent as is")
                }
                Err(e) => {
                    tracing::error!(station = %self.id, error = %e, "cannot read a CPO transaction id")
                }
            }
        }
        self.send_call(
            ctx,
            format!("j{seq}"),
            &entry.action,
            &entry.payload,
            Sending::Journal {
                seq,
                action: entry.action.clone(),
                local: entry.local_transaction,
                tag: entry.payload["idTag"].as_str().map(IdTag::new),
            },
        );
    }

    /// Queues a live call of the station ahead of the journal: the CPO's answer, or
    /// `None` at once when it is not connected (or later, when the connection is lost).
    fn ask<T: Send + 'static>(
        &mut self,
        ctx: &mut Context<Self>,
        call: impl FnOnce(oneshot::Sender<Option<T>>) -> Live,
    ) -> ResponseFuture<Option<T>> {
        if !self.online.load(Ordering::Relaxed) {
            return Box::pin(async { None });
        }
        let (tx, rx) = oneshot::channel();
        self.pending_live.push_back(call(tx));
        self.pump(ctx);
        Box::pin(async move { rx.await.ok().flatten() })
    }

    fn uid(&mut self) -> String {
        self.next_uid += 1;
        format!("u{}-{}", self.generation, self.next_uid)
    }

    /// The CPO answered our call.
    fn answered(
        &mut self,
        ctx: &mut Context<Self>,
        unique_id: &str,
        result: Result<Value, String>,
    ) {
        tracing::debug!(station = %self.id, unique_id, ?result, in_flight = ?self.in_flight.as_ref().map(|f| f.unique_id.clone()), waiting = self.waiting, "answer from the CPO");
        let Some(f) = self.in_flight.take_if(|f| f.unique_id == unique_id) else {
            return;
        };
        ctx.cancel_future(f.timeout);
        match f.what {
            Sending::Boot => match result {
                Ok(v) if v["status"] == "Accepted" => {
                    self.booted = true;
                    self.online.store(true, Ordering::Relaxed);
                    self.backoff = Duration::from_secs(1);
                    self.set_status(|s| {
                        s.booted = true;
                        s.last_error = None;
                    });
                    self.queue_statuses(ctx);
                    return;
                }
                other => {
                    let why = format!("the CPO did not accept the boot: {other:?}");
                    self.set_status(|s| s.last_error = Some(why.clone()));
                    let interval = other
                        .ok()
                        .and_then(|v| v["interval"].as_u64())
                        .unwrap_or(30)
                        .clamp(5, 3600);
                    self.waiting = true;
                    ctx.run_later(Duration::from_secs(interval), |act, ctx| {
                        act.waiting = false;
                        act.pump(ctx);
                    });
                    return;
                }
            },
            Sending::Status => {}
            Sending::DataTransfer { reply } => {
                let _ = reply.send(result.ok());
            }
            Sending::Authorize { tag, reply } => {
                let info = result
                    .ok()
                    .and_then(|v| serde_json::from_value::<IdTagInfo>(v["idTagInfo"].clone()).ok());
                match &info {
                    Some(info) => {
                        if let Err(e) = self.core.store().cache_authorization(&tag, info) {
                            tracing::error!(station = %self.id, error = %e, "cannot cache an authorisation");
                        }
                    }
                    None => self.note(
                        LogLevel::Warn,
                        format!("the CPO gave no valid answer to Authorize {tag}: the offline policy decides"),
                    ),
                }
                let _ = reply.send(info);
            }
            Sending::Journal {
                seq,
                action,
                local,
                tag,
            } => {
                let store = self.core.store().clone();
                match &result {
                    Ok(v) if action == "StartTransaction" => {
                        if let (Some(local), Some(cpo)) = (local, v["transactionId"].as_i64()) {
                            let Ok(cpo) = i32::try_from(cpo) else {
                                self.note(
                                    LogLevel::Error,
                                    format!("the CPO gave transaction {local} the id {cpo}, outside OCPP's integer range: its meter values and stop go out with the local id"),
                                );
                                let _ = store.journal_remove(&self.id, seq);
                                self.set_status(|_| {});
                                self.pump(ctx);
                                return;
                            };
                            if let Err(e) = store.set_cpo_transaction(&self.id, local, cpo) {
                                // Not a reason to stop reporting: what follows goes out with the
                                // local id (and says so in the log).
                                tracing::error!(station = %self.id, error = %e, "cannot keep the CPO's transaction id");
                            }
                            let info =
                                serde_json::from_value::<IdTagInfo>(v["idTagInfo"].clone()).ok();
                            if let (Some(tag), Some(info)) = (&tag, &info) {
                                if let Err(e) = store.cache_authorization(tag, info) {
                                    tracing::error!(station = %self.id, error = %e, "cannot cache an authorisation");
                                }
                            }
                            let status = v["idTagInfo"]["status"].as_str().unwrap_or("no status");
                            if status != "Accepted" {
                                self.refused_start(local, cpo, status);
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => self.note(
                        LogLevel::Warn,
                        format!(
                            "the CPO refused {action} (journal {seq}): {e}; dropped, not retried"
                        ),
                    ),
                }
                if let Err(e) = store.journal_remove(&self.id, seq) {
                    tracing::error!(station = %self.id, error = %e, "cannot remove a journal entry");
                }
            }
        }
        self.set_status(|_| {});
        self.pump(ctx);
    }

    /// The CPO refused a transaction (`uplink.rejected_start`): flagged, and stopped if so
    /// configured.
    fn refused_start(&self, local: i32, cpo: i32, status: &str) {
        let stop = self
            .settings()
            .is_some_and(|s| s.rejected_start == RejectedStart::Stop);
        let outcome = if stop {
            "the station is asked to stop it"
        } else {
            "it continues"
        };
        self.note(
            LogLevel::Warn,
            format!("the CPO answered {status} for transaction {local} (CPO id {cpo}): {outcome}"),
        );
        self.station.do_send(NoteTransaction {
            id: local,
            note: format!(
                "{}: refused by the CPO ({status}, CPO id {cpo}); {outcome}",
                Utc::now().format("%Y-%m-%dT%H:%M:%SZ")
            ),
        });
        if stop {
            let id = self.id.clone();
            let station = self.station.clone();
            actix::spawn(async move {
                let answer = station
                    .send(Call(RemoteStopTransactionRequest {
                        transaction_id: local,
                    }))
                    .await;
                if !matches!(answer, Ok(Ok(_))) {
                    tracing::warn!(station = %id, transaction = local, "the station did not take the stop of a transaction the CPO refused");
                }
            });
        }
    }

    fn note(&self, level: LogLevel, message: String) {
        tracing::info!(station = %self.id, "uplink: {message}");
        if let Err(e) =
            self.core
                .store()
                .log(level, Some(&self.id), format!("CPO uplink: {message}"))
        {
            tracing::error!(error = %e, "cannot write the operator log");
        }
    }

    /// A StatusNotification of every connector, from the station's state now.
    fn queue_statuses(&mut self, ctx: &mut Context<Self>) {
        self.waiting = true;
        self.station
            .send(GetSnapshot)
            .into_actor(self)
            .map(|snapshot, act, ctx| {
                act.waiting = false;
                let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
                let mut statuses = vec![json!({"connectorId": 0, "errorCode": "NoError", "status": "Available", "timestamp": now})];
                if let Ok(s) = snapshot {
                    for c in s.connectors {
                        statuses.push(json!({"connectorId": c.connector, "errorCode": c.error_code, "status": c.status, "timestamp": now}));
                    }
                }
                statuses.retain(|s| s["status"] != "Unknown");
                statuses.reverse();
                act.statuses = statuses;
                act.pump(ctx);
            })
            .spawn(ctx);
    }

    /// A CALL from the CPO.
    fn on_call(&mut self, ctx: &mut Context<Self>, unique_id: String, call: CentralCall) {
        if self
            .settings()
            .is_some_and(|s| s.target(&self.id).read_only)
        {
            let e = CallError::new(
                ErrorCode::SecurityError,
                "this uplink is read-only: no commands are accepted",
            );
            self.reply(encode_call_error(&unique_id, &e));
            return;
        }
        let now = Utc::now();
        match call {
            CentralCall::SetChargingProfile(mut r) => {
                // A TxProfile names the CPO's transaction id; the connectors know their own.
                if let Some(cpo) = r.cs_charging_profiles.transaction_id {
                    if let Ok(Some(local)) = self.core.store().local_transaction(&self.id, cpo) {
                        r.cs_charging_profiles.transaction_id = Some(local);
                    }
                }
                if r.cs_charging_profiles.charging_profile_purpose
                    != ChargingProfilePurpose::TxProfile
                {
                    self.keep_profile(ctx, &unique_id, r, now);
                    return;
                }
                // A TxProfile belongs to the transaction running on its connector (OCPP 1.6
                // §3.13.2); without one, or naming another, it is rejected.
                let connector = r.connector_id;
                self.station
                    .send(GetSnapshot)
                    .into_actor(self)
                    .map(move |snapshot, act, ctx| {
                        let running = snapshot.ok().and_then(|s| {
                            s.connectors
                                .iter()
                                .find(|c| c.connector == connector && connector > 0)
                                .and_then(|c| c.transaction.as_ref().map(|t| t.id))
                        });
                        let named = r.cs_charging_profiles.transaction_id;
                        match running {
                            Some(tx) if named.is_none_or(|n| n == tx) => {
                                r.cs_charging_profiles.transaction_id = Some(tx);
                                act.keep_profile(ctx, &unique_id, r, Utc::now());
                            }
                            _ => {
                                act.note(
                                    LogLevel::Warn,
                                    format!("a TxProfile from the CPO for connector {connector} rejected: no such transaction running there"),
                                );
                                act.reply(encode_call_result(
                                    &unique_id,
                                    &SetChargingProfileResponse {
                                        status: ChargingProfileStatus::Rejected,
                                    },
                                ));
                            }
                        }
                    })
                    .spawn(ctx);
            }
            CentralCall::ClearChargingProfile(r) => {
                let status = if self.profiles.clear(&r) {
                    ClearChargingProfileStatus::Accepted
                } else {
                    ClearChargingProfileStatus::Unknown
                };
                self.reply(encode_call_result(
                    &unique_id,
                    &ClearChargingProfileResponse { status },
                ));
                self.apply_profiles(ctx);
            }
            CentralCall::GetCompositeSchedule(r) => {
                let station = self.station.clone();
                let profiles = self.profiles.clone();
                let volts = self.core.config().site.voltage_v;
                let max = self
                    .core
                    .config()
                    .station(&self.id)
                    .map(|s| s.max_current_a);
                async move {
                    let connectors = station
                        .send(GetSnapshot)
                        .await
                        .map(|s| {
                            s.connectors
                                .iter()
                                .map(|c| (c.connector, c.transaction.as_ref().map(|t| t.id)))
                                .collect::<Vec<_>>()
                        })
                        .unwrap_or_default();
                    let limits = profiles.composite(&connectors, Utc::now(), volts);
                    let limit = [limits.get(&r.connector_id), limits.get(&0)]
                        .into_iter()
                        .flatten()
                        .copied()
                        .reduce(ampwarden_actors::units::Amps::min)
                        .or(max);
                    match limit {
                        Some(limit) => GetCompositeScheduleResponse {
                            status: GetCompositeScheduleStatus::Accepted,
                            connector_id: Some(r.connector_id),
                            schedule_start: Some(Utc::now()),
                            charging_schedule: Some(profiles::composite_schedule(
                                limit, r.duration,
                            )),
                        },
                        None => GetCompositeScheduleResponse {
                            status: GetCompositeScheduleStatus::Rejected,
                            connector_id: None,
                            schedule_start: None,
                            charging_schedule: None,
                        },
                    }
                }
                .into_actor(self)
                .map(move |answer, act, _| act.reply(encode_call_result(&unique_id, &answer)))
                .spawn(ctx);
            }
            CentralCall::ChangeConfiguration(r) if r.key.as_str() == "MeterValueSampleInterval" => {
                // Absorbed: the station keeps reporting to the site at the site's interval;
                // the CPO gets its MeterValues at the interval it asked for.
                let status = match r.value.as_str().trim().parse::<u32>() {
                    Ok(every) if (1..=86_400).contains(&every) => {
                        self.station.do_send(SetUplinkMeterInterval(every));
                        ConfigurationStatus::Accepted
                    }
                    _ => ConfigurationStatus::Rejected,
                };
                self.reply(encode_call_result(
                    &unique_id,
                    &ChangeConfigurationResponse { status },
                ));
            }
            CentralCall::RemoteStopTransaction(mut r) => {
                if let Ok(Some(local)) = self
                    .core
                    .store()
                    .local_transaction(&self.id, r.transaction_id)
                {
                    r.transaction_id = local;
                }
                self.relay(ctx, unique_id, r);
            }
            CentralCall::RemoteStartTransaction(r) => self.relay(ctx, unique_id, r),
            CentralCall::Reset(r) => self.relay(ctx, unique_id, r),
            CentralCall::UnlockConnector(r) => self.relay(ctx, unique_id, r),
            CentralCall::ChangeAvailability(r) => self.relay(ctx, unique_id, r),
            CentralCall::TriggerMessage(r) => self.relay(ctx, unique_id, r),
            CentralCall::ChangeConfiguration(r) => self.relay(ctx, unique_id, r),
            CentralCall::GetConfiguration(r) => self.relay(ctx, unique_id, r),
            CentralCall::UpdateFirmware(r) => self.relay(ctx, unique_id, r),
            CentralCall::GetDiagnostics(r) => self.relay(ctx, unique_id, r),
            CentralCall::SendLocalList(r) => self.relay(ctx, unique_id, r),
            CentralCall::GetLocalListVersion(r) => self.relay(ctx, unique_id, r),
            CentralCall::ClearCache(r) => self.relay(ctx, unique_id, r),
            CentralCall::DataTransfer(r) => self.relay(ctx, unique_id, r),
            CentralCall::ExtendedTriggerMessage(r) => self.relay(ctx, unique_id, r),
            CentralCall::GetLog(r) => self.relay(ctx, unique_id, r),
            CentralCall::SignedUpdateFirmware(r) => self.relay(ctx, unique_id, r),
        }
    }

    /// A command for the station, answered with the station's answer.
    fn relay<R>(&mut self, ctx: &mut Context<Self>, unique_id: String, request: R)
    where
        R: Request + Send + 'static,
        R::Response: Send + 'static,
    {
        self.station
            .send(Call(request))
            .into_actor(self)
            .map(move |answer, act, _| {
                let frame = match answer {
                    Ok(Ok(r)) => encode_call_result(&unique_id, &r),
                    Ok(Err(CallFailure::Refused(e))) => encode_call_error(&unique_id, &e),
                    Ok(Err(other)) => encode_call_error(
                        &unique_id,
                        &CallError::new(
                            ErrorCode::GenericError,
                            format!("the station did not answer: {other}"),
                        ),
                    ),
                    Err(_) => encode_call_error(
                        &unique_id,
                        &CallError::new(ErrorCode::InternalError, "the station is gone"),
                    ),
                };
                act.reply(frame);
            })
            .spawn(ctx);
    }

    fn reply(&self, frame: String) {
        if let Some(out) = &self.out {
            let _ = out.send(frame);
        }
    }

    /// Keeps a profile of the CPO as a limit (never forwarded) and answers Accepted.
    fn keep_profile(
        &mut self,
        ctx: &mut Context<Self>,
        unique_id: &str,
        r: SetChargingProfileRequest,
        now: chrono::DateTime<Utc>,
    ) {
        let connector = r.connector_id;
        self.profiles.set(connector, r.cs_charging_profiles, now);
        self.note(
            LogLevel::Info,
            format!("charging profile kept as a limit on connector {connector}"),
        );
        self.reply(encode_call_result(
            unique_id,
            &SetChargingProfileResponse {
                status: ChargingProfileStatus::Accepted,
            },
        ));
        self.apply_profiles(ctx);
    }

    /// Tells the station actor the CPO's limits as they compose now (and drops the
    /// TxProfiles of transactions that ended).
    fn apply_profiles(&mut self, ctx: &mut Context<Self>) {
        let volts = self.core.config().site.voltage_v;
        self.station
            .send(GetSnapshot)
            .into_actor(self)
            .map(move |snapshot, act, _| {
                let Ok(s) = snapshot else { return };
                let connectors: Vec<(u32, Option<i32>)> = s
                    .connectors
                    .iter()
                    .map(|c| (c.connector, c.transaction.as_ref().map(|t| t.id)))
                    .collect();
                let running: Vec<i32> = connectors.iter().filter_map(|c| c.1).collect();
                act.profiles.keep_transactions(&running);
                let limits = act.profiles.composite(&connectors, Utc::now(), volts);
                act.set_status(|st| {
                    st.cpo_limits = limits.iter().map(|(&c, a)| (c, a.0)).collect()
                });
                act.station.do_send(SetCpoLimits(limits));
            })
            .spawn(ctx);
    }
}

/// OCPP frames are small: an 8 KiB read buffer instead of tungstenite's 128 KiB keeps a
/// thousand upstream connections at ~75 MB instead of ~200 MB (BENCHMARKS.md, "CPO
/// uplink"); longer frames still arrive, the buffer only grows for them.
/// A CPO frame above 4 MiB (a SendLocalList of tens of thousands of tags is ~2 MB) is
/// refused rather than buffered.
fn ws_config() -> tokio_tungstenite::tungstenite::protocol::WebSocketConfig {
    tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(8 * 1024)
        .max_message_size(Some(MAX_CPO_FRAME_BYTES))
        .max_frame_size(Some(MAX_CPO_FRAME_BYTES))
}

const MAX_CPO_FRAME_BYTES: usize = 4 * 1024 * 1024;

impl Actor for UplinkLink {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.station.do_send(AttachUplink(UplinkHandle {
            wake: ctx.address().recipient(),
            authorize: ctx.address().recipient(),
            data_transfer: ctx.address().recipient(),
            online: self.online.clone(),
        }));
        let target = self.settings().map(|u| u.target(&self.id));
        self.set_status(|s| {
            s.station = self.id.to_string();
            if let Some(t) = target {
                s.route = t.route;
                s.cpo_url = t.url;
                s.identity = t.identity;
            }
        });
        self.connect(ctx);
        ctx.run_interval(PROFILE_TICK, |act, ctx| {
            if !act.profiles.is_empty() {
                act.apply_profiles(ctx);
            }
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
struct FromCpo {
    generation: u64,
    text: String,
}

#[derive(Message)]
#[rtype(result = "()")]
struct Lost {
    generation: u64,
    why: String,
}

impl Handler<Connected> for UplinkLink {
    type Result = ();

    fn handle(&mut self, m: Connected, ctx: &mut Self::Context) {
        if m.generation != self.generation {
            return;
        }
        self.out = Some(m.out);
        self.booted = false;
        self.online.store(false, Ordering::Relaxed);
        self.statuses.clear();
        // The last error stays until the CPO accepts the boot (a link that connects and
        // then times out still shows why).
        self.set_status(|s| s.connected = true);
        self.pump(ctx);
    }
}

impl Handler<Lost> for UplinkLink {
    type Result = ();

    fn handle(&mut self, m: Lost, ctx: &mut Self::Context) {
        if m.generation == self.generation {
            self.socket = None;
            self.lost(ctx, m.why);
        }
    }
}

impl Handler<UplinkAuthorize> for UplinkLink {
    type Result = ResponseFuture<Option<IdTagInfo>>;

    fn handle(
        &mut self,
        UplinkAuthorize(tag): UplinkAuthorize,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        self.ask(ctx, |reply| Live::Authorize(tag, reply))
    }
}

impl Handler<UplinkDataTransfer> for UplinkLink {
    type Result = ResponseFuture<Option<Value>>;

    fn handle(
        &mut self,
        UplinkDataTransfer(payload): UplinkDataTransfer,
        ctx: &mut Self::Context,
    ) -> Self::Result {
        self.ask(ctx, |reply| Live::DataTransfer(payload, reply))
    }
}

impl Handler<UplinkWake> for UplinkLink {
    type Result = ();

    fn handle(&mut self, wake: UplinkWake, ctx: &mut Self::Context) {
        self.set_status(|_| {});
        self.pump(ctx);
        // A transaction that started or ended changes which TxProfile applies (not a
        // snapshot of the station for every meter value).
        if wake.transaction && !self.profiles.is_empty() {
            self.apply_profiles(ctx);
        }
    }
}

impl Handler<FromCpo> for UplinkLink {
    type Result = ();

    fn handle(&mut self, m: FromCpo, ctx: &mut Self::Context) {
        if m.generation != self.generation {
            return;
        }
        match Incoming::<CentralCall>::parse(&m.text) {
            Ok(Incoming::Call { unique_id, request }) => match request {
                Ok(call) => self.on_call(ctx, unique_id.into_owned(), call),
                Err(e) => self.reply(encode_call_error(&unique_id, &e)),
            },
            Ok(Incoming::CallResult { unique_id, payload }) => {
                let value = serde_json::from_str(payload.get()).unwrap_or(Value::Null);
                self.answered(ctx, &unique_id, Ok(value));
            }
            Ok(Incoming::CallError {
                unique_id, error, ..
            }) => {
                self.answered(ctx, &unique_id, Err(error.to_string()));
            }
            Err(bad) => {
                tracing::warn!(station = %self.id, error = %bad.error, "a malformed frame from the CPO");
                if let Some(answer) = bad.answer() {
                    self.reply(answer);
                }
            }
        }
    }
}

/// Reads one station's uplink state (the API).
#[derive(Message)]
#[rtype(result = "UplinkStatus")]
pub struct GetUplinkStatus;

impl Handler<GetUplinkStatus> for UplinkLink {
    type Result = MessageResult<GetUplinkStatus>;

    fn handle(&mut self, _: GetUplinkStatus, _: &mut Self::Context) -> Self::Result {
        self.set_status(|_| {});
        MessageResult(
            self.status
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .clone(),
        )
    }
}
