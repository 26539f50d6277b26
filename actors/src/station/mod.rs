//! StationActor: one per charge point. It owns the station's connectors, status, open
//! transactions, last meter values and outgoing CALLs, and outlives its WebSocket
//! session: a station that drops off keeps its state and its reserved share until it
//! returns or its transaction ends.
//!
//! OCPP allows one outstanding CALL per direction, so our CALLs wait in `outbox` and go
//! out one at a time; each is correlated by uniqueId and fails after `call_timeout`.
//!
//! One job per file: `messages` (what it exchanges), `incoming` (the station's CALLs),
//! `outbox` (ours), `transactions`, `setpoints`, and the pure `limits`. They are all
//! `impl StationActor` and share this file's imports (`use super::*`).

mod incoming;
pub mod limits; // pure
mod messages;
mod outbox;
pub mod phases; // pure
mod setpoints;
mod transactions;

pub use messages::*;
pub use setpoints::SAFE_DEFAULT;
pub use transactions::SAMPLE_SPACING;

use incoming::id_tag_info;
use outbox::{answer, InFlight, Outgoing};
use transactions::Ledger;

use std::collections::{BTreeMap, VecDeque};

use limits::{Answer, LimitState, Profile, Ticket};
use phases::PhaseDetector;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use serde::Serialize;
use tokio::sync::oneshot;

use crate::authorization::{authorize, Authorization, Verdict};
use crate::config::{LiveConfig, StationConfig};
use crate::ocpp::core::{
    AuthorizationStatus, AuthorizeResponse, BootNotificationRequest, BootNotificationResponse,
    DataTransferResponse, DataTransferStatus, HeartbeatResponse, IdTagInfo, RegistrationStatus,
    StartTransactionRequest, StartTransactionResponse, StatusNotificationRequest,
    StatusNotificationResponse, StopTransactionRequest, StopTransactionResponse,
};
use crate::ocpp::dispatch::{parse_payload, Request, StationRequest};
use crate::ocpp::error::{CallError, ErrorCode};
use crate::ocpp::firmware::{
    DiagnosticsStatusNotificationResponse, FirmwareStatusNotificationResponse,
};
use crate::ocpp::frame::{encode_call, encode_call_error, encode_call_result};
use crate::ocpp::incoming::Incoming;
use crate::ocpp::meter_values::{
    ImportReadings, MeterValue, MeterValuesRequest, MeterValuesResponse, ReadingContext,
};
use crate::ocpp::remote::{ChangeConfigurationRequest, GetConfigurationRequest};
use crate::ocpp::security::{
    is_critical_security_event, LogStatusNotificationResponse, SecurityEventNotificationRequest,
    SecurityEventNotificationResponse, SignedFirmwareStatus,
    SignedFirmwareStatusNotificationResponse,
};
use crate::ocpp::smart_charging::{
    ChargingProfileStatus, ClearChargingProfileRequest, SetChargingProfileRequest, SetpointPurpose,
};
use crate::ocpp::types::CiString50;
use crate::store::{LogLevel, NewTransaction, Sample, StationRecord, Store, TransactionStop};
use crate::units::{Amps, ChargePointId, IdTag, PerPhase};

// --- the actor -------------------------------------------------------------------------

/// What every station actor shares.
#[derive(Clone)]
pub struct StationDeps {
    pub store: Store,
    pub config: LiveConfig,
    /// The zone supervisor.
    pub reports: Recipient<StationReport>,
    /// The energy price in force, for transaction costs.
    pub price: crate::calendar::LivePrice,
}

struct Connector {
    status: String,
    error_code: String,
    status_since: DateTime<Utc>,
    transaction: Option<TransactionSnapshot>,
    draw: PerPhase<Option<Amps>>,
    /// When `draw` was last reported.
    draw_at: Option<DateTime<Utc>>,
    /// The lowest limit acknowledged since `draw` was reported.
    lowest_limit_since_draw: Option<Amps>,
    /// When the station acknowledged the last change of this transaction's limit.
    changed_at: Option<DateTime<Utc>>,
    /// Which of the station's phases the vehicle charges on.
    phases: PhaseDetector,
    power_w: Option<f64>,
    /// The transaction and meter timestamp of the last samples kept (see [`SAMPLE_SPACING`]).
    samples_kept: Option<(i32, DateTime<Utc>)>,
    /// The open transaction's record as the meter readings advanced it.
    ledger: Option<Ledger>,
    /// When a MeterValues of its transaction was last journaled for the CPO.
    uplink_meter_at: Option<DateTime<Utc>>,
}

impl Connector {
    fn new(now: DateTime<Utc>) -> Self {
        Connector {
            status: "Unknown".into(),
            error_code: "NoError".into(),
            status_since: now,
            transaction: None,
            draw: PerPhase::splat(None),
            draw_at: None,
            lowest_limit_since_draw: None,
            changed_at: None,
            phases: PhaseDetector::default(),
            power_w: None,
            samples_kept: None,
            ledger: None,
            uplink_meter_at: None,
        }
    }
}

struct Session {
    connection: u64,
    recipient: Recipient<ToStation>,
}

pub struct StationActor {
    id: ChargePointId,
    station: StationConfig,
    deps: StationDeps,
    session: Option<Session>,
    booted: bool,
    record: Option<StationRecord>,
    /// Boxed: a map node holds eleven slots, and a connector is a few hundred bytes.
    connectors: BTreeMap<u32, Box<Connector>>,
    /// What each connector's profiles may have set, from what we sent and the answers.
    limits: LimitState,
    /// The last other station's transaction this one named (logged once).
    foreign_logged: Option<i32>,
    /// A connectorId above the configured count was refused (logged once).
    connector_refusal_logged: bool,
    next_unique_id: u64,
    outbox: VecDeque<Outgoing>,
    in_flight: Option<InFlight>,
    /// Our own address, for the reports (set when started).
    addr: Option<Addr<StationActor>>,
    security: SecuritySummary,
    /// The CPO uplink (told when the journal grew, asked about id tags).
    uplink: Option<UplinkHandle>,
    /// The CPO's limits per connector (0: the station).
    cpo_limits: BTreeMap<u32, Amps>,
    /// The MeterValueSampleInterval the CPO asked for (else `uplink.meter_values_every_s`).
    uplink_meter_every: Option<u32>,
}

impl StationActor {
    /// A station actor with its open transactions restored from the store.
    pub fn new(station: StationConfig, deps: StationDeps) -> Self {
        let now = Utc::now();
        let id = station.id.clone();
        let record = deps.store.station(&id).unwrap_or_else(|e| {
            tracing::error!(station = %id, error = %e, "cannot read the station's record");
            None
        });
        let mut connectors = BTreeMap::new();
        match deps.store.open_transactions_of(&id) {
            Ok(open) => {
                for t in open {
                    let c = connectors
                        .entry(t.connector)
                        .or_insert_with(|| Box::new(Connector::new(now)));
                    c.transaction = Some(TransactionSnapshot {
                        id: t.id,
                        energy_wh: t.energy_wh(),
                        id_tag: t.id_tag,
                        vip: t.vip,
                        started_at: t.started_at,
                    });
                }
            }
            Err(e) => {
                tracing::error!(station = %id, error = %e, "cannot restore open transactions")
            }
        }
        let uplink_meter_every = match deps.store.uplink_meter_interval(&id) {
            Ok(every) => every,
            Err(e) => {
                tracing::error!(station = %id, error = %e, "cannot read the CPO's meter value interval");
                None
            }
        };
        StationActor {
            id,
            station,
            deps,
            session: None,
            booted: false,
            record,
            connectors,
            limits: LimitState::default(),
            foreign_logged: None,
            connector_refusal_logged: false,
            next_unique_id: 1,
            outbox: VecDeque::new(),
            in_flight: None,
            addr: None,
            security: SecuritySummary::default(),
            uplink: None,
            cpo_limits: BTreeMap::new(),
            uplink_meter_every,
        }
    }

    fn call_timeout(&self) -> Duration {
        Duration::from_secs(u64::from(self.deps.config.get().server.call_timeout_s))
    }

    fn send_text(&self, text: String) {
        if let Some(s) = &self.session {
            s.recipient.do_send(ToStation::Text(text));
        }
    }

    /// The site phases the connector's vehicle charges on, once known.
    fn phases_in_use(&self, c: &Connector) -> Option<Vec<crate::units::Phase>> {
        if self.station.phases == crate::config::Phases::One {
            return Some(vec![self.station.phase]);
        }
        if c.transaction.is_none() || !c.phases.is_known() {
            return None;
        }
        let used = c.phases.in_use();
        let mut site: Vec<_> = crate::units::Phase::ALL
            .into_iter()
            .filter(|p| used[p.index()])
            .map(|p| self.station.phase_rotation.site_phase(p))
            .collect();
        site.sort_by_key(|p| p.index());
        Some(site)
    }

    fn snapshot(&self) -> StationSnapshot {
        let connectors = self
            .connectors
            .iter()
            .map(|(&n, c)| ConnectorSnapshot {
                connector: n,
                status: c.status.clone(),
                error_code: c.error_code.clone(),
                status_since: c.status_since,
                transaction: c.transaction.clone(),
                draw: c.draw,
                draw_at: c.draw_at,
                lowest_limit_since_draw: c.lowest_limit_since_draw,
                changed_at: c.changed_at,
                phases_in_use: self.phases_in_use(c),
                power_w: c.power_w,
                limit_in_force: self.limits.may_apply(
                    n,
                    c.transaction.as_ref().map(|t| t.id),
                    self.station.max_current_a,
                ),
                tx_limit: c
                    .transaction
                    .as_ref()
                    .and_then(|t| self.limits.tx_limit(n, t.id)),
                cpo_limit: match (self.cpo_limits.get(&n), self.cpo_limits.get(&0)) {
                    (Some(&a), Some(&b)) => Some(a.min(b)),
                    (a, b) => a.or(b).copied(),
                },
            })
            .collect();
        StationSnapshot {
            id: self.id.clone(),
            connected: self.session.is_some(),
            booted: self.booted,
            vendor: self.record.as_ref().and_then(|r| r.vendor.clone()),
            model: self.record.as_ref().and_then(|r| r.model.clone()),
            firmware: self.record.as_ref().and_then(|r| r.firmware.clone()),
            last_seen: self.record.as_ref().map(|r| r.last_seen),
            connectors,
            idle_reserved: self.idle_reserved(),
            security: self.security.clone(),
        }
    }

    /// The connectors without a transaction where a vehicle could start drawing more
    /// than 0 A before we hear of it, and how much (see [`StationSnapshot`]).
    fn idle_reserved(&self) -> Vec<(u32, Amps)> {
        (1..=self.station.connectors)
            .filter(|n| {
                self.connectors
                    .get(n)
                    .is_none_or(|c| c.transaction.is_none())
            })
            .map(|n| {
                (
                    n,
                    self.limits.may_apply(n, None, self.station.max_current_a),
                )
            })
            .filter(|(_, a)| a.0 > 0.0)
            .collect()
    }

    fn report(&self, why: ReportReason) {
        if let Some(addr) = &self.addr {
            self.deps.reports.do_send(StationReport {
                addr: addr.clone(),
                snapshot: self.snapshot(),
                why,
            });
        }
    }

    fn log(&self, level: LogLevel, message: String) {
        if let Err(e) = self.deps.store.log(level, Some(&self.id), message) {
            tracing::error!(station = %self.id, error = %e, "cannot write the operator log");
        }
    }

    fn connector(&mut self, n: u32) -> &mut Connector {
        self.connectors
            .entry(n)
            .or_insert_with(|| Box::new(Connector::new(Utc::now())))
    }
}

impl Actor for StationActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        // Many stations, few threads: a generous mailbox keeps bursts from blocking senders.
        ctx.set_mailbox_capacity(1024);
        self.addr = Some(ctx.address());
        // Restored open transactions must be known to the supervisor from the start.
        if self.connectors.values().any(|c| c.transaction.is_some()) {
            self.report(ReportReason::Status);
        }
        ctx.run_interval(transactions::ORPHAN_CHECK, |act, _| {
            let open = act
                .connectors
                .values()
                .filter(|c| c.transaction.is_some())
                .count();
            act.close_orphans();
            if act
                .connectors
                .values()
                .filter(|c| c.transaction.is_some())
                .count()
                != open
            {
                act.report(ReportReason::TransactionStopped);
            }
        });
    }

    /// A station removed from the configuration (or the controller stopping) keeps the
    /// energy its open transactions have metered so far.
    fn stopped(&mut self, _: &mut Self::Context) {
        self.write_ledgers();
    }
}

impl Handler<SessionEvent> for StationActor {
    type Result = ();

    fn handle(&mut self, event: SessionEvent, ctx: &mut Self::Context) {
        match event {
            SessionEvent::Attach(a) => {
                if let Some(old) = self.session.take() {
                    tracing::info!(station = %self.id, "a new connection replaces the previous one");
                    old.recipient.do_send(ToStation::Close {
                        reason: "replaced by a new connection".into(),
                    });
                    self.fail_all_calls(ctx);
                }
                self.session = Some(Session {
                    connection: a.connection,
                    recipient: a.session,
                });
                self.touch();
                self.report(ReportReason::Connected);
            }
            SessionEvent::Frame(f) => {
                if self
                    .session
                    .as_ref()
                    .is_some_and(|s| s.connection == f.connection)
                {
                    self.on_text(&f.text, ctx);
                }
            }
            SessionEvent::Binary { connection } => {
                if self
                    .session
                    .as_ref()
                    .is_some_and(|s| s.connection == connection)
                {
                    let error = CallError::new(
                        ErrorCode::FormationViolation,
                        "binary frames are not OCPP-J; send text",
                    );
                    self.send_text(encode_call_error(
                        crate::ocpp::frame::UNKNOWN_UNIQUE_ID,
                        &error,
                    ));
                }
            }
            SessionEvent::Detach(d) => {
                if self
                    .session
                    .as_ref()
                    .is_some_and(|s| s.connection == d.connection)
                {
                    self.session = None;
                    self.booted = false;
                    self.fail_all_calls(ctx);
                    self.write_ledgers();
                    if let Some(r) = &self.record {
                        if let Err(e) = self.deps.store.put_station(r) {
                            tracing::error!(station = %self.id, error = %e, "cannot store the station's record");
                        }
                    }
                    self.report(ReportReason::Disconnected);
                }
            }
        }
    }
}

impl<R> Handler<Call<R>> for StationActor
where
    R: Request + Send + 'static,
    R::Response: Send + 'static,
{
    type Result = ResponseFuture<Result<R::Response, CallFailure>>;

    fn handle(&mut self, Call(request): Call<R>, ctx: &mut Self::Context) -> Self::Result {
        let rx = self.enqueue(&request, ctx);
        Box::pin(answer::<R>(rx))
    }
}

impl Handler<ApplyLimit> for StationActor {
    type Result = ResponseActFuture<Self, Result<LimitOutcome, CallFailure>>;

    fn handle(&mut self, msg: ApplyLimit, ctx: &mut Self::Context) -> Self::Result {
        self.set_limit(msg, ctx)
    }
}

impl Handler<GetLiveRecord> for StationActor {
    type Result = Option<crate::store::TransactionRecord>;

    fn handle(&mut self, GetLiveRecord(id): GetLiveRecord, _: &mut Self::Context) -> Self::Result {
        self.connectors
            .values()
            .filter_map(|c| c.ledger.as_ref())
            .find(|l| l.record.id == id)
            .map(|l| l.record.clone())
    }
}

impl Handler<AttachUplink> for StationActor {
    type Result = ();

    fn handle(&mut self, AttachUplink(h): AttachUplink, _: &mut Self::Context) {
        h.wake.do_send(UplinkWake { transaction: false });
        self.uplink = Some(h);
    }
}

impl Handler<SetUplinkMeterInterval> for StationActor {
    type Result = ();

    fn handle(
        &mut self,
        SetUplinkMeterInterval(every): SetUplinkMeterInterval,
        _: &mut Self::Context,
    ) {
        self.uplink_meter_every = Some(every);
        if let Err(e) = self.deps.store.set_uplink_meter_interval(&self.id, every) {
            tracing::error!(station = %self.id, error = %e, "cannot keep the CPO's meter value interval: it holds until a restart");
        }
    }
}

impl Handler<NoteTransaction> for StationActor {
    type Result = ();

    fn handle(&mut self, m: NoteTransaction, _: &mut Self::Context) {
        self.note_transaction(m.id, m.note);
    }
}

impl Handler<SetCpoLimits> for StationActor {
    type Result = ();

    fn handle(&mut self, SetCpoLimits(limits): SetCpoLimits, _: &mut Self::Context) {
        if limits != self.cpo_limits {
            self.cpo_limits = limits;
            self.report(ReportReason::LimitChanged);
        }
    }
}

impl StationActor {
    /// Journals a message for the CPO (when an uplink is configured) and wakes the uplink.
    pub(super) fn upstream(&self, action: &str, payload: serde_json::Value, local: Option<i32>) {
        if self.deps.config.get().uplink.is_none() {
            return;
        }
        let entry = crate::store::JournalEntry {
            action: action.to_owned(),
            payload,
            local_transaction: local,
        };
        if let Err(e) = self.deps.store.journal_append(&self.id, &entry) {
            tracing::error!(station = %self.id, error = %e, action, "cannot journal a message for the CPO");
            return;
        }
        if let Some(u) = &self.uplink {
            u.wake.do_send(UplinkWake {
                transaction: matches!(action, "StartTransaction" | "StopTransaction"),
            });
        }
    }

    /// Journals a typed request for the CPO.
    pub(super) fn upstream_request<R: Request>(&self, request: &R, local: Option<i32>) {
        if self.deps.config.get().uplink.is_none() {
            return;
        }
        match serde_json::to_value(request) {
            Ok(payload) => self.upstream(R::ACTION, payload, local),
            Err(e) => {
                tracing::error!(station = %self.id, error = %e, "cannot encode a message for the CPO")
            }
        }
    }
}

impl Handler<GetSnapshot> for StationActor {
    type Result = MessageResult<GetSnapshot>;

    fn handle(&mut self, _: GetSnapshot, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.snapshot())
    }
}

impl Handler<CloseSession> for StationActor {
    type Result = ();

    fn handle(&mut self, _: CloseSession, ctx: &mut Self::Context) {
        if let Some(s) = self.session.take() {
            s.recipient.do_send(ToStation::Close {
                reason: "controller shutting down".into(),
            });
        }
        self.fail_all_calls(ctx);
        self.write_ledgers();
    }
}

impl Handler<UpdateStationConfig> for StationActor {
    type Result = ();

    fn handle(&mut self, UpdateStationConfig(station): UpdateStationConfig, _: &mut Self::Context) {
        self.station = station;
        self.report(ReportReason::Status);
    }
}
