//! StationActor: one per charge point. It owns the station's connectors, status, open
//! transactions, last meter values and outgoing CALLs, and outlives its WebSocket
//! session: a station that drops off keeps its state and its reserved share until it
//! returns or its transaction ends.
//!
//! OCPP allows one outstanding CALL per direction, so our CALLs wait in `outbox` and go
//! out one at a time; each is correlated by uniqueId and fails after `call_timeout`.

pub mod limits; // pure

use std::collections::{BTreeMap, VecDeque};

use limits::{Answer, LimitState, Profile, Ticket};
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
use crate::ocpp::smart_charging::{
    ChargingProfileStatus, ClearChargingProfileRequest, SetChargingProfileRequest, SetpointPurpose,
};
use crate::ocpp::types::CiString50;
use crate::store::{LogLevel, NewTransaction, Sample, StationRecord, Store, TransactionStop};
use crate::units::{Amps, ChargePointId, IdTag, PerPhase};

// --- the session protocol (used by the WebSocket layer) ------------------------------

/// Text to the station, or a request to close its socket; sent to the session actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum ToStation {
    Text(String),
    Close { reason: String },
}

/// A new WebSocket connection for this station; it replaces any previous one.
#[derive(Debug)]
pub struct Attach {
    pub connection: u64,
    pub session: Recipient<ToStation>,
}

/// One text message from the station's socket.
#[derive(Debug)]
pub struct FromStation {
    pub connection: u64,
    pub text: String,
}

/// The socket of `connection` closed.
#[derive(Debug)]
pub struct Detach {
    pub connection: u64,
}

/// What a WebSocket session tells its station actor.
#[derive(Debug, Message)]
#[rtype(result = "()")]
pub enum SessionEvent {
    Attach(Attach),
    Frame(FromStation),
    /// A binary frame: OCPP-J is text only.
    Binary {
        connection: u64,
    },
    Detach(Detach),
}

/// A transaction's meter samples are kept at most this often (by the station's
/// timestamps): a station sampling every 10 s would otherwise write ~1.5 KB per message
/// for ever. The energy register and the draw still follow every message.
pub const SAMPLE_SPACING: chrono::TimeDelta = chrono::TimeDelta::seconds(60);

/// An open transaction's energy and cost are written to the store at most this often; a
/// restart loses none of the energy (the next reading or the stop's meter value brings
/// the register), only the price split of at most this much of it.
const LEDGER_WRITE_EVERY: Duration = Duration::from_secs(60);

/// Whether the samples of one MeterValues for `transaction` are kept, given the last
/// kept `(transaction, timestamp)` on the connector: the first of a transaction, the
/// readings that open or close it (context Transaction.Begin/End) or follow a clock
/// (Sample.Clock), and otherwise one per [`SAMPLE_SPACING`]. Returns the timestamp to
/// remember when kept.
fn keep_samples(
    transaction: i32,
    kept: Option<(i32, DateTime<Utc>)>,
    values: &[MeterValue],
) -> Option<DateTime<Utc>> {
    use ReadingContext as C;
    let at = values.iter().map(|mv| mv.timestamp).max()?;
    let marked = values.iter().flat_map(|mv| &mv.sampled_value).any(|sv| {
        matches!(
            sv.context,
            Some(C::TransactionBegin | C::TransactionEnd | C::SampleClock)
        )
    });
    match kept {
        // A clock that went back (a station re-synchronised) restarts the spacing.
        Some((t, last))
            if t == transaction && !marked && at >= last && at - last < SAMPLE_SPACING =>
        {
            None
        }
        _ => Some(at),
    }
}

// --- what the station actor tells others ----------------------------------------------

/// A transaction as the rest of the controller sees it.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct TransactionSnapshot {
    pub id: i32,
    pub id_tag: IdTag,
    pub vip: bool,
    pub started_at: DateTime<Utc>,
    pub energy_wh: f64,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ConnectorSnapshot {
    pub connector: u32,
    /// The OCPP ChargePointStatus, e.g. `Charging`, `SuspendedEVSE`.
    pub status: String,
    pub error_code: String,
    pub status_since: DateTime<Utc>,
    pub transaction: Option<TransactionSnapshot>,
    /// Current.Import per phase as last reported; `None` where nothing was reported.
    pub draw: PerPhase<Option<Amps>>,
    pub power_w: Option<f64>,
    /// The most the station may apply on this connector now: the limit in force where
    /// every answer came, else the highest value it may have taken (a profile that timed
    /// out may be in force); the station's maximum while nothing is known.
    pub limit_in_force: Amps,
    /// The highest TxProfile value of the current transaction that may be in force;
    /// `None` while the transaction runs on a default profile.
    pub tx_limit: Option<Amps>,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct StationSnapshot {
    pub id: ChargePointId,
    pub connected: bool,
    pub booted: bool,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub firmware: Option<String>,
    pub last_seen: Option<DateTime<Utc>>,
    pub connectors: Vec<ConnectorSnapshot>,
}

/// Sent to the supervisor whenever something it allocates on changes.
#[derive(Clone, Debug, Message)]
#[rtype(result = "()")]
pub struct StationReport {
    /// Where to send setpoints and commands.
    pub addr: Addr<StationActor>,
    pub snapshot: StationSnapshot,
    pub why: ReportReason,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReportReason {
    Connected,
    Disconnected,
    Booted,
    Status,
    TransactionStarted,
    TransactionStopped,
    MeterValues,
    LimitChanged,
}

// --- commands ------------------------------------------------------------------------

/// Why one of our CALLs did not give an answer.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum CallFailure {
    #[error("the station is not connected")]
    NotConnected,
    #[error("the connection closed before the station answered")]
    ConnectionLost,
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the station answered with an error: {0}")]
    Refused(CallError),
    #[error("the station's answer is not valid: {0}")]
    BadAnswer(CallError),
    #[error("the station actor stopped")]
    Stopped,
}

/// Sends one central→station request and waits for its typed answer.
pub struct Call<R>(pub R);

impl<R> Message for Call<R>
where
    R: Request + 'static,
    R::Response: Send + 'static,
{
    type Result = Result<R::Response, CallFailure>;
}

/// A snapshot of the station, for the API and UI.
#[derive(Message)]
#[rtype(result = "StationSnapshot")]
pub struct GetSnapshot;

/// An open transaction's record as of its last meter reading (the store's copy is
/// written at most every minute); `None` when this station holds nothing newer.
#[derive(Message)]
#[rtype(result = "Option<crate::store::TransactionRecord>")]
pub struct GetLiveRecord(pub i32);

/// Which profile a limit is sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitPurpose {
    /// TxDefaultProfile on a connector (0 = the whole station).
    Default,
    /// TxProfile of the given transaction.
    Transaction(i32),
}

/// Sets the limit of a connector with SetChargingProfile and waits for the answer.
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "Result<LimitOutcome, CallFailure>")]
pub struct ApplyLimit {
    pub connector: u32,
    pub limit: Amps,
    pub purpose: LimitPurpose,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LimitOutcome {
    Accepted,
    Rejected,
}

/// Closes the station's socket (controller shutdown); the actor stays.
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseSession;

/// The station's configuration changed (zone, max current, …).
#[derive(Message)]
#[rtype(result = "()")]
pub struct UpdateStationConfig(pub StationConfig);

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
    power_w: Option<f64>,
    /// The transaction and meter timestamp of the last samples kept (see [`SAMPLE_SPACING`]).
    samples_kept: Option<(i32, DateTime<Utc>)>,
    /// The open transaction's record as the meter readings advanced it.
    ledger: Option<Ledger>,
}

/// A transaction record kept current in memory and written to the store at most every
/// [`LEDGER_WRITE_EVERY`] (and when the session ends or the transaction stops): energy
/// and cost follow every MeterValues without a store write each.
struct Ledger {
    record: crate::store::TransactionRecord,
    written: std::time::Instant,
    dirty: bool,
}

impl Ledger {
    /// Writes the record if it changed since the last write.
    fn write(&mut self, store: &Store, station: &ChargePointId) {
        if !self.dirty {
            return;
        }
        match store.update_transaction(&self.record) {
            Ok(()) => {
                self.dirty = false;
                self.written = std::time::Instant::now();
            }
            Err(e) => {
                tracing::error!(station = %station, error = %e, "cannot store transaction energy")
            }
        }
    }
}

impl Connector {
    fn new(now: DateTime<Utc>) -> Self {
        Connector {
            status: "Unknown".into(),
            error_code: "NoError".into(),
            status_since: now,
            transaction: None,
            draw: PerPhase::splat(None),
            power_w: None,
            samples_kept: None,
            ledger: None,
        }
    }
}

struct Session {
    connection: u64,
    recipient: Recipient<ToStation>,
}

type Responder = oneshot::Sender<Result<String, CallFailure>>;

struct Outgoing {
    unique_id: String,
    action: &'static str,
    text: String,
    responder: Responder,
}

struct InFlight {
    unique_id: String,
    action: &'static str,
    responder: Responder,
    timeout: SpawnHandle,
}

/// Whose transaction a transactionId names, as seen from one station.
enum Owner {
    Ours,
    Other(ChargePointId),
    Unknown,
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
        }
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

    // --- outgoing calls -------------------------------------------------------------

    fn enqueue<R: Request>(
        &mut self,
        request: &R,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Result<String, CallFailure>> {
        let (responder, rx) = oneshot::channel();
        if self.session.is_none() {
            let _ = responder.send(Err(CallFailure::NotConnected));
            return rx;
        }
        let unique_id = self.next_unique_id.to_string();
        self.next_unique_id += 1;
        let text = encode_call(&unique_id, request);
        // Charging profiles overtake the other queued CALLs (never an earlier profile): at
        // boot the safe default must not wait behind the configuration calls while a
        // vehicle that was plugged in starts on no limit at all.
        let at = if is_profile_call(R::ACTION) {
            self.outbox
                .iter()
                .rposition(|o| is_profile_call(o.action))
                .map_or(0, |i| i + 1)
        } else {
            self.outbox.len()
        };
        self.outbox.insert(
            at,
            Outgoing {
                unique_id,
                action: R::ACTION,
                text,
                responder,
            },
        );
        self.pump(ctx);
        rx
    }

    /// Sends the next queued CALL if none is in flight.
    fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() {
            return;
        }
        while let Some(next) = self.outbox.pop_front() {
            if next.responder.is_closed() {
                continue; // the asker gave up
            }
            if self.session.is_none() {
                let _ = next.responder.send(Err(CallFailure::NotConnected));
                continue;
            }
            let wait = self.call_timeout();
            let unique_id = next.unique_id.clone();
            let timeout = ctx.run_later(wait, move |act, ctx| act.time_out(&unique_id, wait, ctx));
            self.send_text(next.text);
            self.in_flight = Some(InFlight {
                unique_id: next.unique_id,
                action: next.action,
                responder: next.responder,
                timeout,
            });
            return;
        }
    }

    fn time_out(&mut self, unique_id: &str, wait: Duration, ctx: &mut Context<Self>) {
        if self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.unique_id == unique_id)
        {
            if let Some(f) = self.in_flight.take() {
                tracing::warn!(station = %self.id, action = f.action, unique_id, "no answer within {wait:?}");
                let _ = f.responder.send(Err(CallFailure::Timeout(wait)));
            }
            self.pump(ctx);
        }
    }

    fn resolve(
        &mut self,
        unique_id: &str,
        outcome: Result<String, CallFailure>,
        ctx: &mut Context<Self>,
    ) {
        match self.in_flight.take() {
            Some(f) if f.unique_id == unique_id => {
                ctx.cancel_future(f.timeout);
                let _ = f.responder.send(outcome);
                self.pump(ctx);
            }
            other => {
                self.in_flight = other;
                tracing::warn!(station = %self.id, unique_id, "answer to no pending call: ignored");
            }
        }
    }

    fn fail_all_calls(&mut self, ctx: &mut Context<Self>) {
        if let Some(f) = self.in_flight.take() {
            ctx.cancel_future(f.timeout);
            // It was written: the station may have acted on it.
            let _ = f.responder.send(Err(CallFailure::ConnectionLost));
        }
        for o in self.outbox.drain(..) {
            let _ = o.responder.send(Err(CallFailure::NotConnected));
        }
    }

    // --- incoming frames ----------------------------------------------------------------

    fn on_text(&mut self, text: &str, ctx: &mut Context<Self>) {
        match Incoming::<StationRequest>::parse(text) {
            Err(e) => {
                tracing::warn!(station = %self.id, error = %e.error, "malformed frame");
                match e.answer() {
                    Some(answer) => self.send_text(answer),
                    None => {
                        if let Some(id) = e.unique_id.clone() {
                            self.resolve(&id, Err(CallFailure::BadAnswer(e.error)), ctx);
                        }
                    }
                }
            }
            Ok(Incoming::Call { unique_id, request }) => match request {
                Ok(request) => self.on_request(&unique_id, request, ctx),
                Err(error) => {
                    tracing::warn!(station = %self.id, %error, "refused call");
                    self.send_text(encode_call_error(&unique_id, &error));
                }
            },
            Ok(Incoming::CallResult { unique_id, payload }) => {
                self.resolve(&unique_id, Ok(payload.get().to_owned()), ctx);
            }
            Ok(Incoming::CallError {
                unique_id, error, ..
            }) => {
                self.resolve(&unique_id, Err(CallFailure::Refused(error)), ctx);
            }
        }
    }

    /// Answers a station's CALL. The answer goes out before anything it triggers
    /// (e.g. a TxProfile is only sent after the StartTransaction answer).
    fn on_request(&mut self, uid: &str, request: StationRequest, ctx: &mut Context<Self>) {
        self.touch();
        if let Some(n) = named_connector(&request).filter(|&n| n > self.station.connectors) {
            let message = format!(
                "connectorId {n} is above the {} connector(s) configured for this station",
                self.station.connectors
            );
            if !self.connector_refusal_logged {
                self.connector_refusal_logged = true;
                tracing::warn!(station = %self.id, connector = n, "{message}: refused (set its `connectors`)");
                self.log(
                    LogLevel::Warn,
                    format!("{message}: refused; if the station has more, set its connectors"),
                );
            }
            let error = CallError::new(ErrorCode::PropertyConstraintViolation, message);
            self.send_text(encode_call_error(uid, &error));
            return;
        }
        match request {
            StationRequest::BootNotification(boot) => {
                self.on_boot(&boot);
                let interval = self.deps.config.get().server.heartbeat_interval_s;
                self.send_text(encode_call_result(
                    uid,
                    &BootNotificationResponse {
                        current_time: Utc::now(),
                        interval,
                        status: RegistrationStatus::Accepted,
                    },
                ));
                self.booted = true;
                // A station that restarts may have lost its profiles: nothing is known
                // until it accepts the safe default again.
                self.limits.rebooted();
                self.send_safe_default(ctx);
                self.configure_for_control(ctx);
                self.report(ReportReason::Booted);
            }
            StationRequest::Heartbeat(_) => {
                self.send_text(encode_call_result(
                    uid,
                    &HeartbeatResponse {
                        current_time: Utc::now(),
                    },
                ));
            }
            StationRequest::StatusNotification(status) => {
                self.on_status(&status);
                self.send_text(encode_call_result(uid, &StatusNotificationResponse {}));
                self.report(ReportReason::Status);
            }
            StationRequest::Authorize(req) => {
                let verdict = self.authorize(&IdTag::new(req.id_tag.as_str()));
                self.send_text(encode_call_result(
                    uid,
                    &AuthorizeResponse {
                        id_tag_info: id_tag_info(&verdict),
                    },
                ));
            }
            StationRequest::StartTransaction(start) => match self.on_start(&start) {
                Ok(answer) => {
                    self.send_text(encode_call_result(uid, &answer));
                    self.report(ReportReason::TransactionStarted);
                }
                Err(error) => self.send_text(encode_call_error(uid, &error)),
            },
            StationRequest::StopTransaction(stop) => match self.on_stop(&stop) {
                Ok(answer) => {
                    self.send_text(encode_call_result(uid, &answer));
                    self.report(ReportReason::TransactionStopped);
                }
                Err(error) => self.send_text(encode_call_error(uid, &error)),
            },
            StationRequest::MeterValues(values) => {
                self.on_meter_values(&values);
                self.send_text(encode_call_result(uid, &MeterValuesResponse {}));
                self.report(ReportReason::MeterValues);
            }
            StationRequest::DataTransfer(req) => {
                tracing::info!(station = %self.id, vendor = %req.vendor_id, "DataTransfer from an unknown vendor");
                self.send_text(encode_call_result(
                    uid,
                    &DataTransferResponse {
                        status: DataTransferStatus::UnknownVendorId,
                        data: None,
                    },
                ));
            }
            StationRequest::DiagnosticsStatusNotification(n) => {
                self.log(LogLevel::Info, format!("diagnostics upload: {}", n.status));
                self.send_text(encode_call_result(
                    uid,
                    &DiagnosticsStatusNotificationResponse {},
                ));
            }
            StationRequest::FirmwareStatusNotification(n) => {
                self.log(LogLevel::Info, format!("firmware update: {}", n.status));
                self.send_text(encode_call_result(
                    uid,
                    &FirmwareStatusNotificationResponse {},
                ));
            }
        }
    }

    /// Keeps `last_seen` current in memory; it is written with the next record update.
    fn touch(&mut self) {
        if let Some(r) = &mut self.record {
            r.last_seen = Utc::now();
        }
    }

    fn on_boot(&mut self, boot: &BootNotificationRequest) {
        let now = Utc::now();
        let mut record = self.record.clone().unwrap_or_else(|| StationRecord {
            id: self.id.clone(),
            zone: Some(self.station.zone.clone()),
            vendor: None,
            model: None,
            serial: None,
            firmware: None,
            first_seen: now,
            last_seen: now,
        });
        record.vendor = Some(boot.charge_point_vendor.to_string());
        record.model = Some(boot.charge_point_model.to_string());
        record.serial = boot
            .charge_point_serial_number
            .as_ref()
            .map(ToString::to_string);
        record.firmware = boot.firmware_version.as_ref().map(ToString::to_string);
        record.last_seen = now;
        if let Err(e) = self.deps.store.put_station(&record) {
            tracing::error!(station = %self.id, error = %e, "cannot store the station's boot data");
        }
        tracing::info!(station = %self.id, vendor = %boot.charge_point_vendor, model = %boot.charge_point_model, "boot accepted");
        self.record = Some(record);
    }

    /// Asks the station to report what the control loop needs, and reads back what it took.
    fn configure_for_control(&mut self, ctx: &mut Context<Self>) {
        let config = self.deps.config.get();
        let settings = [
            (
                "MeterValuesSampledData",
                "Current.Import,Energy.Active.Import.Register,Power.Active.Import".to_owned(),
            ),
            (
                "MeterValueSampleInterval",
                config.control.meter_values_interval_s.to_string(),
            ),
            (
                "HeartbeatInterval",
                config.server.heartbeat_interval_s.to_string(),
            ),
        ];
        for (key, value) in settings {
            let request = ChangeConfigurationRequest::new(key, &value)
                .expect("our configuration keys and values fit OCPP's CiString50/500");
            let id = self.id.clone();
            let rx = self.enqueue(&request, ctx);
            ctx.spawn(
                async move {
                    match answer::<ChangeConfigurationRequest>(rx).await {
                        Ok(r) => tracing::debug!(station = %id, key, status = %r.status, "configuration key set"),
                        Err(e) => tracing::warn!(station = %id, key, error = %e, "cannot set configuration key"),
                    }
                }
                .into_actor(self),
            );
        }
        let keys = ["MeterValuesSampledData", "MeterValueSampleInterval"]
            .into_iter()
            .map(|k| CiString50::new(k).expect("our configuration keys fit CiString50"))
            .collect();
        let rx = self.enqueue(&GetConfigurationRequest { key: keys }, ctx);
        let id = self.id.clone();
        ctx.spawn(
            async move {
                match answer::<GetConfigurationRequest>(rx).await {
                    Ok(r) => {
                        for kv in r.configuration_key {
                            tracing::info!(station = %id, key = %kv.key, value = ?kv.value.as_deref(), "station configuration");
                        }
                    }
                    Err(e) => tracing::warn!(station = %id, error = %e, "cannot read the station's configuration"),
                }
            }
            .into_actor(self),
        );
    }

    fn on_status(&mut self, status: &StatusNotificationRequest) {
        let at = status.timestamp.unwrap_or_else(Utc::now);
        if status.connector_id == 0 {
            tracing::info!(station = %self.id, status = %status.status, error = %status.error_code, "station status");
            return;
        }
        let c = self.connector(status.connector_id);
        let new_status = status.status.as_str();
        if c.status != new_status {
            c.status_since = at;
            c.status = new_status.to_owned();
        }
        c.error_code = status.error_code.as_str().to_owned();
        if status.error_code.as_str() != "NoError" {
            let message = format!(
                "connector {} fault {} ({})",
                status.connector_id,
                status.error_code,
                status.info.as_ref().map(|i| i.as_str()).unwrap_or("")
            );
            self.log(LogLevel::Warn, message);
        }
    }

    fn authorize(&self, tag: &IdTag) -> Authorization {
        let config = self.deps.config.get();
        let stored = self.deps.store.badge(tag).unwrap_or_else(|e| {
            tracing::error!(station = %self.id, error = %e, "cannot read badges");
            None
        });
        if config.auth.mode == crate::config::AuthMode::Uplink {
            tracing::warn!(station = %self.id, id_tag = %tag, "auth mode \"uplink\" has no CPO backend yet: answering Invalid");
        }
        authorize(
            config.auth.mode,
            tag,
            stored.as_ref(),
            &config.badges,
            Utc::now(),
        )
    }

    fn on_start(
        &mut self,
        start: &StartTransactionRequest,
    ) -> Result<StartTransactionResponse, CallError> {
        let tag = IdTag::new(start.id_tag.as_str());
        let verdict = self.authorize(&tag);
        let connector = start.connector_id.get();
        let record = self
            .deps
            .store
            .begin_transaction(NewTransaction {
                station: self.id.clone(),
                connector,
                id_tag: tag.clone(),
                meter_start_wh: start.meter_start,
                started_at: start.timestamp,
                reservation_id: start.reservation_id,
                vip: verdict.vip || self.station.vip,
            })
            .map_err(|e| {
                tracing::error!(station = %self.id, error = %e, "cannot store a new transaction");
                CallError::new(
                    ErrorCode::InternalError,
                    "the transaction could not be stored; retry",
                )
            })?;
        tracing::info!(station = %self.id, connector, transaction = record.id, id_tag = %tag, "transaction started");
        let c = self.connector(connector);
        c.transaction = Some(TransactionSnapshot {
            id: record.id,
            id_tag: tag,
            vip: record.vip,
            started_at: record.started_at,
            energy_wh: 0.0,
        });
        Ok(StartTransactionResponse {
            id_tag_info: id_tag_info(&verdict),
            transaction_id: record.id,
        })
    }

    fn on_stop(
        &mut self,
        stop: &StopTransactionRequest,
    ) -> Result<StopTransactionResponse, CallError> {
        let id = stop.transaction_id;
        let tag = stop.id_tag.as_ref().map(|t| IdTag::new(t.as_str()));
        if let Owner::Other(owner) = self.owner_of(id) {
            // Acknowledged so that the station moves on; nothing of the other's changes.
            self.refuse_foreign(id, &owner, "StopTransaction");
            return Ok(StopTransactionResponse {
                id_tag_info: Some(IdTagInfo {
                    status: AuthorizationStatus::Invalid,
                    expiry_date: None,
                    parent_id_tag: None,
                }),
            });
        }
        if !stop.transaction_data.is_empty() {
            self.store_samples(id, &stop.transaction_data);
        }
        // The energy so far at the prices it was taken at, then the stop's reading.
        let pending = self
            .connectors
            .values_mut()
            .find_map(|c| c.ledger.take_if(|l| l.record.id == id));
        if let Some(mut ledger) = pending {
            ledger.write(&self.deps.store, &self.id);
        }
        let outcome = self.deps.store.stop_transaction(
            id,
            TransactionStop {
                at: stop.timestamp,
                meter_stop_wh: stop.meter_stop,
                reason: stop.reason.map(|r| r.as_str().to_owned()),
                id_tag: tag.clone(),
            },
            self.deps.price.get(),
        );
        match outcome {
            Ok(record) => {
                tracing::info!(station = %self.id, transaction = id, energy_wh = record.energy_wh(), cost = record.cost, "transaction stopped");
            }
            Err(crate::store::StoreError::UnknownTransaction(_)) => {
                // The station knows a transaction we do not (e.g. it started offline and
                // its start was lost): acknowledge it so the station can move on.
                self.log(
                    LogLevel::Warn,
                    format!("StopTransaction for unknown transaction {id} acknowledged"),
                );
            }
            Err(e) => {
                tracing::error!(station = %self.id, error = %e, "cannot store a transaction's stop");
                return Err(CallError::new(
                    ErrorCode::InternalError,
                    "the stop could not be stored; retry",
                ));
            }
        }
        for (&n, c) in self.connectors.iter_mut() {
            if c.transaction.as_ref().is_some_and(|t| t.id == id) {
                self.limits.transaction_ended(n, id);
                c.transaction = None;
                c.draw = PerPhase::splat(None);
                c.power_w = None;
            }
        }
        Ok(StopTransactionResponse {
            id_tag_info: tag.map(|t| id_tag_info(&self.authorize(&t))),
        })
    }

    fn on_meter_values(&mut self, values: &MeterValuesRequest) {
        let readings = ImportReadings::from_meter_values(&values.meter_value);
        let single_phase = self.station.phases == crate::config::Phases::One;
        let phase = self.station.phase;
        let foreign = values
            .transaction_id
            .and_then(|tx| match self.owner_of(tx) {
                Owner::Other(owner) => Some((tx, owner)),
                Owner::Ours | Owner::Unknown => None,
            });
        if let Some((tx, owner)) = foreign {
            self.refuse_foreign(tx, &owner, "MeterValues");
            return;
        }
        if let Some(tx) = values.transaction_id {
            let kept = self.connector(values.connector_id).samples_kept;
            if let Some(at) = keep_samples(tx, kept, &values.meter_value) {
                self.store_samples(tx, &values.meter_value);
                self.connector(values.connector_id).samples_kept = Some((tx, at));
            }
        }
        let c = self.connector(values.connector_id);
        if readings.current.0.iter().any(Option::is_some) {
            c.draw = site_phase_draw(readings.current, single_phase.then_some(phase));
        } else if let Some(total) = readings.current_unphased {
            c.draw = if single_phase {
                let mut d = PerPhase::splat(Some(Amps::ZERO));
                d.set(phase, Some(total));
                d
            } else {
                PerPhase::splat(Some(total))
            };
        }
        if readings.power_w.is_some() {
            c.power_w = readings.power_w;
        }
        let tx = c.transaction.as_ref().map(|t| t.id);
        if let (Some(wh), Some(id)) = (readings.energy_wh, tx) {
            let price = self.deps.price.get();
            let ledger = match self.connector(values.connector_id).ledger.take() {
                Some(l) if l.record.id == id => Some(l),
                earlier => {
                    // A transaction whose stop never came: keep what it had.
                    if let Some(mut l) = earlier {
                        l.write(&self.deps.store, &self.id);
                    }
                    match self.deps.store.transaction(id) {
                        Ok(record) => record.map(|record| Ledger {
                            record,
                            written: std::time::Instant::now(),
                            dirty: false,
                        }),
                        Err(e) => {
                            tracing::error!(station = %self.id, error = %e, "cannot read a transaction");
                            None
                        }
                    }
                }
            };
            if let Some(mut ledger) = ledger {
                ledger.record.advance_register(wh, price);
                ledger.dirty = true;
                if ledger.written.elapsed() >= LEDGER_WRITE_EVERY {
                    ledger.write(&self.deps.store, &self.id);
                }
                let c = self.connector(values.connector_id);
                if let Some(t) = c.transaction.as_mut() {
                    t.energy_wh = ledger.record.energy_wh();
                }
                c.ledger = Some(ledger);
            }
        }
    }

    /// Whose transaction a transactionId from the network names.
    fn owner_of(&self, id: i32) -> Owner {
        let open_here = self
            .connectors
            .values()
            .any(|c| c.transaction.as_ref().is_some_and(|t| t.id == id));
        if open_here {
            return Owner::Ours;
        }
        match self.deps.store.transaction(id) {
            Ok(Some(r)) if r.station == self.id => Owner::Ours,
            Ok(Some(r)) => Owner::Other(r.station),
            Ok(None) => Owner::Unknown,
            Err(e) => {
                tracing::error!(station = %self.id, transaction = id, error = %e, "cannot read a transaction");
                Owner::Unknown
            }
        }
    }

    /// A message that names another station's transaction: ignored, logged once per
    /// transaction.
    fn refuse_foreign(&mut self, id: i32, owner: &ChargePointId, action: &str) {
        if self.foreign_logged == Some(id) {
            return;
        }
        self.foreign_logged = Some(id);
        tracing::warn!(station = %self.id, transaction = id, %owner, action, "a message for another station's transaction: ignored");
        self.log(
            LogLevel::Warn,
            format!("{action} named transaction {id}, which belongs to station {owner}: ignored, that transaction is unchanged"),
        );
    }

    /// Writes every connector's pending energy and cost to the store.
    fn write_ledgers(&mut self) {
        for ledger in self
            .connectors
            .values_mut()
            .filter_map(|c| c.ledger.as_mut())
        {
            ledger.write(&self.deps.store, &self.id);
        }
    }

    /// Stores what a message sampled; every value is kept, the thinning is the caller's.
    fn store_samples(&self, transaction: i32, values: &[MeterValue]) {
        let samples: Vec<Sample> = values
            .iter()
            .flat_map(|mv| {
                mv.sampled_value.iter().filter_map(move |sv| {
                    Some(Sample {
                        at: mv.timestamp,
                        measurand: sv.measurand_or_default().as_str().to_owned(),
                        phase: sv.phase.map(|p| p.as_str().to_owned()),
                        value: sv.number()?,
                        unit: sv.unit.map(|u| u.as_str().to_owned()),
                    })
                })
            })
            .collect();
        if let Err(e) = self.deps.store.add_samples(transaction, &samples) {
            tracing::error!(station = %self.id, error = %e, "cannot store meter samples");
        }
    }

    // --- setpoints ---------------------------------------------------------------------

    fn apply_limit(
        &mut self,
        msg: ApplyLimit,
        ctx: &mut Context<Self>,
    ) -> (Ticket, oneshot::Receiver<Result<String, CallFailure>>) {
        let (purpose, profile_id) = match msg.purpose {
            LimitPurpose::Default => (
                SetpointPurpose::TxDefault,
                profile_id(DEFAULT_PROFILE_ID_BASE, msg.connector),
            ),
            LimitPurpose::Transaction(t) => (
                SetpointPurpose::Tx { transaction_id: t },
                profile_id(TX_PROFILE_ID_BASE, msg.connector),
            ),
        };
        let stack_level = match msg.purpose {
            LimitPurpose::Default => DEFAULT_STACK_LEVEL,
            LimitPurpose::Transaction(_) => TX_STACK_LEVEL,
        };
        let request = SetChargingProfileRequest::current_limit(
            msg.connector,
            profile_id,
            stack_level,
            purpose,
            msg.limit,
            self.station.phases.count(),
        );
        let profile = match msg.purpose {
            LimitPurpose::Default => Profile::Default,
            LimitPurpose::Transaction(t) => Profile::Transaction(t),
        };
        // Recorded before it is queued: from now on the station may take it.
        let ticket = self
            .limits
            .send(msg.connector, profile, msg.limit.floor_tenth());
        (ticket, self.enqueue(&request, ctx))
    }

    /// Sends a limit, and once answered, records what is in force and reports it.
    fn set_limit(
        &mut self,
        msg: ApplyLimit,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<LimitOutcome, CallFailure>> {
        let (ticket, rx) = self.apply_limit(msg, ctx);
        Box::pin(
            answer::<SetChargingProfileRequest>(rx)
                .into_actor(self)
                .map(move |answer, act, _| {
                    let outcome = answer.map(|r| match r.status {
                        ChargingProfileStatus::Accepted => LimitOutcome::Accepted,
                        _ => LimitOutcome::Rejected,
                    });
                    act.limit_answered(&msg, ticket, &outcome);
                    act.report(ReportReason::LimitChanged);
                    outcome
                }),
        )
    }

    /// The first CALL after a boot: the 0 A default profile on connector 0.
    fn send_safe_default(&mut self, ctx: &mut Context<Self>) {
        let msg = ApplyLimit {
            connector: 0,
            limit: SAFE_DEFAULT,
            purpose: LimitPurpose::Default,
        };
        let sent = self.set_limit(msg, ctx).map(|outcome, act, _| match outcome {
            Ok(LimitOutcome::Accepted) => tracing::info!(station = %act.id, "safe default profile (0 A) in force"),
            other => {
                tracing::warn!(station = %act.id, outcome = ?other, "the safe default profile was not accepted");
                act.log(LogLevel::Warn, format!("the 0 A default profile was not accepted ({other:?})"));
            }
        });
        ctx.spawn(sent);
    }

    fn limit_answered(
        &mut self,
        msg: &ApplyLimit,
        ticket: Ticket,
        outcome: &Result<LimitOutcome, CallFailure>,
    ) {
        let answer = match outcome {
            Ok(LimitOutcome::Accepted) => Answer::Accepted,
            Ok(LimitOutcome::Rejected) | Err(CallFailure::Refused(_)) => Answer::Refused,
            Err(CallFailure::NotConnected) => Answer::NotSent,
            // It may have reached the station and be in force.
            Err(
                CallFailure::Timeout(_)
                | CallFailure::ConnectionLost
                | CallFailure::BadAnswer(_)
                | CallFailure::Stopped,
            ) => Answer::Unknown,
        };
        self.limits.answered(ticket, answer);
        if let Ok(LimitOutcome::Rejected) = outcome {
            self.log(
                LogLevel::Warn,
                format!(
                    "connector {} rejected a limit of {}",
                    msg.connector,
                    msg.limit.floor_tenth()
                ),
            );
        }
    }
}

/// A connector's `Current.Import` per phase, on the site's phases. A 1-phase station
/// measures on its own L1 (some label it with the site phase): whatever it reports is
/// the current of the site phase it is wired to. A 3-phase station that reports some
/// phases only (a vehicle on one phase) draws nothing on the others.
fn site_phase_draw(
    reported: PerPhase<Option<Amps>>,
    single_phase_on: Option<crate::units::Phase>,
) -> PerPhase<Option<Amps>> {
    match single_phase_on {
        Some(phase) => {
            let on_phase = reported.0.iter().flatten().copied().reduce(Amps::max);
            let mut d = PerPhase::splat(Some(Amps::ZERO));
            d.set(phase, on_phase);
            d
        }
        None => PerPhase(reported.0.map(|a| Some(a.unwrap_or(Amps::ZERO)))),
    }
}

/// The TxDefaultProfile every station gets at boot, before anything else: 0 A. A vehicle
/// that starts draws nothing until its TxProfile is sent, after the decreases that make
/// room for it, so the sum of limits in force stays within every budget at every instant
/// (and a vehicle starting while the controller is away waits instead of overloading).
pub const SAFE_DEFAULT: Amps = Amps::ZERO;

/// Whether a CALL sets or clears charging profiles (these keep their order among
/// themselves).
fn is_profile_call(action: &str) -> bool {
    action == SetChargingProfileRequest::ACTION || action == ClearChargingProfileRequest::ACTION
}

/// Profile ids are fixed per connector and purpose, so each new setpoint replaces the last.
const DEFAULT_PROFILE_ID_BASE: i32 = 1000;
const TX_PROFILE_ID_BASE: i32 = 2000;

/// Our profile id for a connector: one per purpose and connector, the purposes' ranges
/// apart (connectors are at most 10 by configuration; the clamp keeps any id in range).
fn profile_id(base: i32, connector: u32) -> i32 {
    base + i32::try_from(connector.min(999)).expect("999 fits i32")
}

/// The connector a station's message is about, if it names one.
fn named_connector(request: &StationRequest) -> Option<u32> {
    match request {
        StationRequest::StatusNotification(s) => Some(s.connector_id),
        StationRequest::StartTransaction(s) => Some(s.connector_id.get()),
        StationRequest::MeterValues(m) => Some(m.connector_id),
        _ => None,
    }
}
/// One stack level per purpose (SPEC: the limit in force is then well defined).
const DEFAULT_STACK_LEVEL: u32 = 0;
const TX_STACK_LEVEL: u32 = 1;

fn id_tag_info(a: &Authorization) -> IdTagInfo {
    let status = match a.verdict {
        Verdict::Accepted => AuthorizationStatus::Accepted,
        Verdict::Blocked => AuthorizationStatus::Blocked,
        Verdict::Expired => AuthorizationStatus::Expired,
        Verdict::Invalid => AuthorizationStatus::Invalid,
    };
    IdTagInfo {
        expiry_date: a.expires,
        parent_id_tag: None,
        status,
    }
}

/// Waits for the answer to a queued CALL and parses it into the request's response type.
async fn answer<R: Request>(
    rx: oneshot::Receiver<Result<String, CallFailure>>,
) -> Result<R::Response, CallFailure> {
    let text = rx.await.map_err(|_| CallFailure::Stopped)??;
    let raw: Box<serde_json::value::RawValue> = serde_json::from_str(&text).map_err(|e| {
        CallFailure::BadAnswer(CallError::new(ErrorCode::FormationViolation, e.to_string()))
    })?;
    parse_payload::<R::Response>(&raw).map_err(CallFailure::BadAnswer)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn message(at_s: i64, context: Option<ReadingContext>) -> Vec<MeterValue> {
        let mut value: crate::ocpp::meter_values::SampledValue =
            serde_json::from_str(r#"{"value":"1200"}"#).expect("sampled value");
        value.context = context;
        vec![MeterValue {
            timestamp: DateTime::from_timestamp(1_800_000_000 + at_s, 0).expect("time"),
            sampled_value: vec![value],
        }]
    }

    /// Feeds messages every `every_s` for `for_s` and returns the offsets kept.
    fn kept_offsets(every_s: i64, for_s: i64) -> Vec<i64> {
        let mut kept = None;
        let mut out = Vec::new();
        for t in (0..for_s).step_by(every_s as usize) {
            if let Some(at) = keep_samples(7, kept, &message(t, None)) {
                kept = Some((7, at));
                out.push(t);
            }
        }
        out
    }

    #[test]
    fn a_single_phase_station_draws_on_the_site_phase_it_is_wired_to() {
        use crate::units::Phase;
        let on_its_l1 = PerPhase([Some(Amps(14.0)), None, None]);
        assert_eq!(
            site_phase_draw(on_its_l1, Some(Phase::L2)),
            PerPhase([Some(Amps::ZERO), Some(Amps(14.0)), Some(Amps::ZERO)])
        );
        let zeros_elsewhere = PerPhase([Some(Amps(14.0)), Some(Amps::ZERO), Some(Amps::ZERO)]);
        assert_eq!(
            site_phase_draw(zeros_elsewhere, Some(Phase::L3)),
            PerPhase([Some(Amps::ZERO), Some(Amps::ZERO), Some(Amps(14.0))])
        );
    }

    #[test]
    fn a_vehicle_on_one_phase_of_a_three_phase_station_draws_nothing_on_the_others() {
        let one = PerPhase([Some(Amps(16.0)), None, None]);
        assert_eq!(
            site_phase_draw(one, None),
            PerPhase([Some(Amps(16.0)), Some(Amps::ZERO), Some(Amps::ZERO)])
        );
    }

    #[test]
    fn profile_ids_of_the_two_purposes_never_meet() {
        assert_eq!(profile_id(TX_PROFILE_ID_BASE, 1), 2001);
        assert!(profile_id(DEFAULT_PROFILE_ID_BASE, u32::MAX) < TX_PROFILE_ID_BASE);
        assert!(profile_id(TX_PROFILE_ID_BASE, u32::MAX) > 0);
    }

    #[test]
    fn samples_are_thinned_to_one_per_spacing() {
        assert_eq!(kept_offsets(10, 300), vec![0, 60, 120, 180, 240]);
        // Slower than the spacing: everything is kept.
        assert_eq!(kept_offsets(90, 300), vec![0, 90, 180, 270]);
    }

    #[test]
    fn a_new_transaction_and_marked_readings_are_always_kept() {
        let last = Some((7, DateTime::from_timestamp(1_800_000_000, 0).expect("time")));
        assert!(keep_samples(7, last, &message(5, None)).is_none());
        assert!(keep_samples(8, last, &message(5, None)).is_some());
        for context in [
            ReadingContext::TransactionBegin,
            ReadingContext::TransactionEnd,
            ReadingContext::SampleClock,
        ] {
            assert!(keep_samples(7, last, &message(5, Some(context))).is_some());
        }
        assert!(keep_samples(7, last, &message(5, Some(ReadingContext::SamplePeriodic))).is_none());
        assert!(keep_samples(7, last, &[]).is_none(), "nothing to keep");
        assert!(
            keep_samples(7, last, &message(-3600, None)).is_some(),
            "a clock set back an hour does not silence the samples for an hour"
        );
    }
}
