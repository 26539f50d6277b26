//! One simulated station: the thin I/O around a [`Connector`] and its
//! [`ChargingProfiles`]. It connects and boots, answers the central system's CALLs as a
//! station's firmware would, sends statuses, transactions, meter values and heartbeats
//! (queued while it is offline, as real stations do), and reconnects when dropped.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use ampwarden_actors::ocpp::core::{
    AuthorizationStatus, DataTransferResponse, DataTransferStatus, StopReason,
};
use ampwarden_actors::ocpp::dispatch::CentralCall;
use ampwarden_actors::ocpp::firmware::{GetDiagnosticsResponse, UpdateFirmwareResponse};
use ampwarden_actors::ocpp::frame::{encode_call_error, encode_call_result};
use ampwarden_actors::ocpp::local_auth::{
    ClearCacheResponse, ClearCacheStatus, GetLocalListVersionResponse, SendLocalListResponse,
    UpdateStatus,
};
use ampwarden_actors::ocpp::meter_values::ReadingContext;
use ampwarden_actors::ocpp::remote::{
    AvailabilityStatus, AvailabilityType, ChangeAvailabilityResponse, ChangeConfigurationRequest,
    ChangeConfigurationResponse, ConfigurationStatus, GetConfigurationRequest,
    GetConfigurationResponse, KeyValue, MessageTrigger, RemoteStartStopStatus,
    RemoteStartTransactionResponse, RemoteStopTransactionResponse, ResetResponse, ResetStatus,
    ResetType, TriggerMessageResponse, TriggerMessageStatus, UnlockConnectorResponse, UnlockStatus,
};
use ampwarden_actors::ocpp::security::{
    ExtendedMessageTrigger, ExtendedTriggerMessageResponse, GetLogResponse, LogStatus,
    SignedUpdateFirmwareResponse, TriggerMessageStatusExtended, UpdateFirmwareStatus,
};
use ampwarden_actors::ocpp::smart_charging::{
    ChargingProfileStatus, ChargingRateUnit, ChargingSchedule, ChargingSchedulePeriod,
    GetCompositeScheduleResponse, GetCompositeScheduleStatus, SetChargingProfileRequest,
    SetChargingProfileResponse,
};
use ampwarden_actors::ocpp::types::{CiString50, CiString500, OneDecimal};
use ampwarden_actors::ocpp::{CallError, ErrorCode};
use ampwarden_actors::units::Amps;
use chrono::Utc;
use serde_json::{json, Value};
use tokio::sync::{mpsc, watch};
use tokio::time::{interval_at, sleep, Instant, Interval, MissedTickBehavior};

use super::client::{ClientError, ConnectOptions, IncomingCall, Reply, StationClient};
use super::connector::{Action, Connector};
use super::fleet::FleetShared;
use super::profiles::ChargingProfiles;
use super::random::SimRng;
use super::scenario::PlannedStation;

/// How often the vehicle physics advance (real time).
const TICK: Duration = Duration::from_secs(1);
/// Reconnection backoff bounds.
const FIRST_RETRY: Duration = Duration::from_secs(1);
const LAST_RETRY: Duration = Duration::from_secs(30);
/// A WebSocket handshake that takes longer has failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a closing station waits for the central system's close frame.
const CLOSE_WAIT: Duration = Duration::from_secs(3);
/// Measurands this station can sample.
const SUPPORTED_MEASURANDS: [&str; 3] = [
    "Current.Import",
    "Energy.Active.Import.Register",
    "Power.Active.Import",
];

/// Something to send to the central system, in order.
#[derive(Clone, Debug)]
enum Outgoing {
    Connector(Action),
    /// StatusNotification of connector 0 (the station as a whole).
    StationStatus,
    MeterValues(ReadingContext),
    Heartbeat,
}

/// The station's configuration keys that change its behaviour.
#[derive(Clone, Debug)]
struct Keys {
    heartbeat_s: u32,
    meter_interval_s: u32,
    sampled: Vec<String>,
}

impl Default for Keys {
    fn default() -> Self {
        Keys {
            heartbeat_s: 300,
            meter_interval_s: 60,
            sampled: vec![
                "Current.Import".into(),
                "Energy.Active.Import.Register".into(),
            ],
        }
    }
}

/// Why a connection ended.
enum End {
    /// The fleet stops.
    Stop,
    /// Dropped (by either side) or reset: connect again.
    Reconnect,
}

pub(crate) struct Station {
    plan: PlannedStation,
    shared: Arc<FleetShared>,
    connector: Connector,
    profiles: ChargingProfiles,
    keys: Keys,
    rng: SimRng,
    outbox: VecDeque<Outgoing>,
    last_tick: Instant,
    /// The limit the vehicle follows now: a new one takes it `vehicles.follow_delay_s`.
    vehicle_limit: Option<Amps>,
    /// A limit the vehicle will follow from the given moment.
    pending_limit: Option<(Instant, Option<Amps>)>,
    /// Reset asked: reconnect and boot again once the queue is sent.
    restart: bool,
    /// Ending its sessions because the fleet stops: every stop is sent then.
    leaving: bool,
    /// A configuration key changed the timers.
    retime: bool,
    connected: bool,
    booted: bool,
}

impl Station {
    pub(crate) fn new(plan: PlannedStation, shared: Arc<FleetShared>) -> Station {
        let mut rng = SimRng::for_member(shared.scenario.seed, plan.index as u64);
        let connector = Connector::new(
            plan.wiring,
            &shared.scenario.vehicles,
            plan.id_tag.clone(),
            &mut rng,
        );
        let meter_values_every_s = shared.scenario.meter_values_every_s;
        Station {
            plan,
            shared,
            connector,
            profiles: ChargingProfiles::default(),
            keys: Keys {
                meter_interval_s: meter_values_every_s,
                ..Keys::default()
            },
            rng,
            outbox: VecDeque::new(),
            last_tick: Instant::now(),
            vehicle_limit: None,
            pending_limit: None,
            restart: false,
            leaving: false,
            retime: false,
            connected: false,
            booted: false,
        }
    }

    /// Runs until the fleet stops.
    pub(crate) async fn run(mut self, mut stop: watch::Receiver<bool>) {
        let mut retry = FIRST_RETRY;
        while !*stop.borrow() {
            match self.connect().await {
                Ok(client) => {
                    retry = FIRST_RETRY;
                    let end = self.session(client, &mut stop).await;
                    self.connected = false;
                    self.booted = false;
                    self.publish();
                    if matches!(end, End::Stop) {
                        return;
                    }
                    self.shared.counters.reconnects.add(1);
                }
                Err(e) => {
                    tracing::debug!(station = %self.plan.id, error = %e, "cannot connect; retrying");
                    self.shared.counters.connect_failures.add(1);
                    let jitter = self.rng.uniform(0.5, 1.5);
                    self.offline(retry.mul_f64(jitter), &mut stop).await;
                    retry = (retry * 2).min(LAST_RETRY);
                }
            }
        }
    }

    async fn connect(&mut self) -> Result<StationClient, ClientError> {
        let _permit = self.shared.connect_permits.acquire().await;
        let url = format!("{}/{}", self.shared.base_url, self.plan.id);
        let options = ConnectOptions {
            auto_answer: false,
            ..ConnectOptions::default()
        };
        match tokio::time::timeout(CONNECT_TIMEOUT, StationClient::connect(&url, options)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout(CONNECT_TIMEOUT)),
        }
    }

    /// Lets time pass without a connection: the vehicle keeps charging at its last limit.
    async fn offline(&mut self, wait: Duration, stop: &mut watch::Receiver<bool>) {
        let until = Instant::now() + wait;
        while Instant::now() < until && !*stop.borrow() {
            tokio::select! {
                _ = sleep(TICK.min(until - Instant::now())) => self.tick(),
                _ = stop.changed() => {}
            }
        }
    }

    async fn session(
        &mut self,
        mut client: StationClient,
        stop: &mut watch::Receiver<bool>,
    ) -> End {
        let mut calls = client.take_calls();
        self.connected = true;
        self.publish();
        if let Err(end) = self.boot(&client, &mut calls, stop).await {
            return end;
        }
        self.booted = true;
        self.shared.counters.boots.add(1);
        self.publish();
        // Messages queued offline (transactions) first, then the statuses of now.
        self.outbox.push_back(Outgoing::StationStatus);
        let actions = self.connector.after_boot();
        self.queue(actions);

        let mut tick = tokio::time::interval(TICK);
        tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
        let (mut meter, mut heartbeat) = self.timers();
        let churn = self
            .shared
            .scenario
            .churn
            .reconnect_mean_s
            .map(|mean| Instant::now() + Duration::from_secs_f64(self.rng.exponential(mean)));
        let churn_at = sleep_until_or_never(churn);
        tokio::pin!(churn_at);
        loop {
            if let Err(e) = self.flush(&client, &mut calls).await {
                tracing::debug!(station = %self.plan.id, error = %e, "connection lost");
                return End::Reconnect;
            }
            if self.restart {
                self.restart = false;
                client.close();
                let _ = client.closed(CLOSE_WAIT).await;
                return End::Reconnect;
            }
            if std::mem::take(&mut self.retime) {
                (meter, heartbeat) = self.timers();
            }
            tokio::select! {
                biased;
                _ = stop.changed() => {
                    if self.shared.scenario.finish_sessions_at_end {
                        self.leaving = true;
                        let actions = self.connector.leave();
                        self.queue(actions);
                        let _ = self.flush(&client, &mut calls).await;
                    }
                    client.close();
                    // Let the close handshake finish before the socket goes.
                    let _ = client.closed(CLOSE_WAIT).await;
                    return End::Stop;
                }
                call = calls.recv() => match call {
                    Some(call) => self.answer(&client, call),
                    None => return End::Reconnect,
                },
                _ = tick.tick() => self.tick(),
                _ = meter.tick() => {
                    if self.connector.transaction().is_some() {
                        self.outbox.push_back(Outgoing::MeterValues(ReadingContext::SamplePeriodic));
                    }
                }
                _ = heartbeat.tick() => self.outbox.push_back(Outgoing::Heartbeat),
                _ = &mut churn_at => {
                    client.close();
                    let _ = client.closed(CLOSE_WAIT).await;
                    return End::Reconnect;
                }
            }
        }
    }

    /// BootNotification until accepted (a Pending or Rejected station retries after the
    /// interval it was given).
    async fn boot(
        &mut self,
        client: &StationClient,
        calls: &mut mpsc::UnboundedReceiver<IncomingCall>,
        stop: &mut watch::Receiver<bool>,
    ) -> Result<(), End> {
        let serial: String = self.plan.id.chars().take(25).collect();
        let payload = json!({
            "chargePointVendor": "ampwarden",
            "chargePointModel": "simulated",
            "chargePointSerialNumber": serial,
            "firmwareVersion": env!("CARGO_PKG_VERSION"),
        });
        loop {
            let reply = self
                .call(client, calls, "BootNotification", payload.clone())
                .await
                .map_err(|_| End::Reconnect)?;
            let retry_after = match reply {
                Reply::Result(answer) => {
                    let interval = answer["interval"].as_u64().unwrap_or(0);
                    if answer["status"] == "Accepted" {
                        if interval > 0 {
                            self.keys.heartbeat_s = u32::try_from(interval).unwrap_or(u32::MAX);
                        }
                        return Ok(());
                    }
                    Duration::from_secs(interval.max(1))
                }
                Reply::Error { .. } => Duration::from_secs(10),
            };
            let until = Instant::now() + retry_after;
            loop {
                tokio::select! {
                    _ = tokio::time::sleep_until(until) => break,
                    _ = stop.changed() => return Err(End::Stop),
                    call = calls.recv() => match call {
                        Some(call) => self.answer(client, call),
                        None => return Err(End::Reconnect),
                    },
                }
            }
        }
    }

    fn timers(&self) -> (Interval, Interval) {
        let every = |s: u32| {
            // 0 turns a timer off (OCPP): a period of a year stands for never.
            let s = if s == 0 { 365 * 86_400 } else { u64::from(s) };
            let period = Duration::from_secs(s);
            let mut timer = interval_at(Instant::now() + period, period);
            timer.set_missed_tick_behavior(MissedTickBehavior::Delay);
            timer
        };
        (
            every(self.keys.meter_interval_s),
            every(self.keys.heartbeat_s),
        )
    }

    /// Sends a CALL, answering the central system's CALLs while it waits.
    async fn call(
        &mut self,
        client: &StationClient,
        calls: &mut mpsc::UnboundedReceiver<IncomingCall>,
        action: &str,
        payload: Value,
    ) -> Result<Reply, ClientError> {
        self.shared.counters.messages.add(1);
        let reply = {
            let answer = client.call(action, payload);
            tokio::pin!(answer);
            loop {
                tokio::select! {
                    biased;
                    reply = &mut answer => break reply,
                    Some(call) = calls.recv() => self.answer(client, call),
                }
            }
        };
        match &reply {
            Ok(Reply::Error { code, description }) => {
                self.shared.counters.call_errors.add(1);
                self.shared.note_error(format!(
                    "{}: {action} → {code}: {description}",
                    self.plan.id
                ));
            }
            Err(ClientError::Timeout(_)) => self.shared.counters.timeouts.add(1),
            _ => {}
        }
        reply
    }

    /// Sends everything queued, in order; stops at the first message that cannot go.
    async fn flush(
        &mut self,
        client: &StationClient,
        calls: &mut mpsc::UnboundedReceiver<IncomingCall>,
    ) -> Result<(), ClientError> {
        while let Some(next) = self.outbox.pop_front() {
            if let Err(e) = self.send(client, calls, &next).await {
                if is_transaction_message(&next) {
                    self.outbox.push_front(next);
                }
                return Err(e);
            }
        }
        Ok(())
    }

    async fn send(
        &mut self,
        client: &StationClient,
        calls: &mut mpsc::UnboundedReceiver<IncomingCall>,
        out: &Outgoing,
    ) -> Result<(), ClientError> {
        let now = timestamp();
        match out {
            Outgoing::StationStatus => {
                let payload = json!({ "connectorId": 0, "errorCode": "NoError", "status": "Available", "timestamp": now });
                self.call(client, calls, "StatusNotification", payload)
                    .await?;
            }
            Outgoing::Heartbeat => {
                self.call(client, calls, "Heartbeat", json!({})).await?;
            }
            Outgoing::MeterValues(context) => {
                let Some(transaction) = self.connector.transaction() else {
                    return Ok(());
                };
                let payload = self.meter_values(transaction, *context);
                self.call(client, calls, "MeterValues", payload).await?;
            }
            Outgoing::Connector(Action::Status(status)) => {
                let payload = json!({ "connectorId": 1, "errorCode": "NoError", "status": status.as_str(), "timestamp": now });
                self.call(client, calls, "StatusNotification", payload)
                    .await?;
            }
            Outgoing::Connector(Action::Start {
                id_tag,
                meter_start_wh,
                remote,
            }) => {
                if !remote {
                    let reply = self
                        .call(client, calls, "Authorize", json!({ "idTag": id_tag }))
                        .await?;
                    if !accepted(&reply) {
                        self.shared.counters.refused.add(1);
                        let actions = self.connector.start_refused();
                        self.queue(actions);
                        return Ok(());
                    }
                }
                let payload = json!({ "connectorId": 1, "idTag": id_tag, "meterStart": meter_start_wh, "timestamp": now });
                let mut reply = self
                    .call(client, calls, "StartTransaction", payload.clone())
                    .await?;
                let retried = self.rng.unit() < self.shared.scenario.churn.retry_start_share;
                if retried {
                    // As if the answer had been lost: the same StartTransaction again.
                    reply = self
                        .call(client, calls, "StartTransaction", payload)
                        .await?;
                }
                let transaction = match &reply {
                    Reply::Result(v) => v["transactionId"]
                        .as_i64()
                        .and_then(|t| i32::try_from(t).ok()),
                    Reply::Error { .. } => None,
                };
                let actions = match transaction {
                    Some(t) => {
                        self.shared
                            .ledger_started(t, &self.plan.id, *meter_start_wh);
                        if retried {
                            self.shared.ledger_retried(t);
                        }
                        self.connector.started(t, accepted(&reply))
                    }
                    None => self.connector.start_refused(),
                };
                self.queue(actions);
                self.follow_limit();
                if self.connector.transaction().is_some() {
                    self.outbox
                        .push_back(Outgoing::MeterValues(ReadingContext::TransactionBegin));
                }
                self.publish();
            }
            Outgoing::Connector(Action::Stop {
                transaction,
                id_tag,
                meter_stop_wh,
                reason,
            }) => {
                if !self.leaving && self.rng.unit() < self.shared.scenario.churn.forget_stop_share {
                    // Lost from the station's queue: it moves on as if it had been sent.
                    self.shared.ledger_forgotten(*transaction);
                    return Ok(());
                }
                let mut payload = json!({ "transactionId": transaction, "meterStop": meter_stop_wh, "timestamp": now, "reason": reason.as_str() });
                if let Some(tag) = id_tag {
                    payload["idTag"] = json!(tag);
                }
                let reply = self.call(client, calls, "StopTransaction", payload).await?;
                if matches!(reply, Reply::Result(_)) {
                    self.shared.ledger_completed(*transaction, *meter_stop_wh);
                }
            }
        }
        Ok(())
    }

    fn meter_values(&self, transaction: i32, context: ReadingContext) -> Value {
        let draw = self.connector.draw();
        let own = self.connector.station_draw();
        let context = context.as_str();
        let mut sampled = Vec::new();
        let wants = |m: &str| self.keys.sampled.iter().any(|s| s == m);
        if wants("Current.Import") {
            if self.plan.wiring.phases == 1 {
                // A 1-phase station reports one current; the controller knows its phase.
                let a = draw.get(self.plan.wiring.phase).0;
                sampled.push(json!({ "value": format!("{a:.1}"), "context": context, "measurand": "Current.Import", "unit": "A" }));
            } else {
                for (phase, a) in ["L1", "L2", "L3"].iter().zip(own.0) {
                    sampled.push(json!({ "value": format!("{:.1}", a.0), "context": context, "measurand": "Current.Import", "phase": phase, "unit": "A" }));
                }
            }
        }
        if wants("Energy.Active.Import.Register") {
            sampled.push(json!({ "value": self.connector.meter_wh().to_string(), "context": context, "measurand": "Energy.Active.Import.Register", "unit": "Wh" }));
        }
        if wants("Power.Active.Import") {
            sampled.push(json!({ "value": format!("{:.0}", self.connector.power_w()), "context": context, "measurand": "Power.Active.Import", "unit": "W" }));
        }
        json!({
            "connectorId": 1,
            "transactionId": transaction,
            "meterValue": [{ "timestamp": timestamp(), "sampledValue": sampled }],
        })
    }

    /// Queues what the connector must send; a transaction's profiles end with it.
    fn queue(&mut self, actions: Vec<Action>) {
        for action in actions {
            if let Action::Stop { transaction, .. } = &action {
                self.profiles.end_transaction(*transaction);
            }
            self.outbox.push_back(Outgoing::Connector(action));
        }
    }

    fn limit(&self) -> Option<Amps> {
        self.profiles.limit_in_force(
            1,
            self.connector.transaction(),
            Utc::now(),
            self.plan.wiring.voltage_v,
        )
    }

    /// Advances the vehicle physics by the real time elapsed times the speed-up.
    fn tick(&mut self) {
        let now = Instant::now();
        let dt = (now - self.last_tick).as_secs_f64() * self.shared.scenario.speedup;
        self.last_tick = now;
        let before = self.connector.meter_wh();
        if self.pending_limit.is_some_and(|(at, _)| at <= now) {
            if let Some((_, limit)) = self.pending_limit.take() {
                self.apply_limit(limit);
            }
        }
        let limit = self.vehicle_limit;
        let actions =
            self.connector
                .advance(dt, limit, &self.shared.scenario.vehicles, &mut self.rng);
        self.queue(actions);
        self.check_limit(limit);
        self.shared
            .add_energy(self.plan.index, self.connector.meter_wh() - before);
        self.publish();
    }

    /// Counts a vehicle drawing above its limit in force (a model self-check).
    fn check_limit(&self, limit: Option<Amps>) {
        if self.connector.over_limit(limit) {
            self.shared.counters.over_limit.add(1);
            tracing::warn!(station = %self.plan.id, ?limit, draw = ?self.connector.draw(), "vehicle above its limit in force");
        }
    }

    fn publish(&self) {
        self.shared.publish(
            self.plan.index,
            self.connected,
            self.booted,
            self.connector.status(),
            self.connector.draw(),
        );
    }

    // --- the central system's CALLs ------------------------------------------------------

    fn answer(&mut self, client: &StationClient, call: IncomingCall) {
        let text = match serde_json::value::to_raw_value(&call.payload) {
            Ok(raw) => match CentralCall::parse(&call.action, &raw) {
                Ok(request) => self.respond(&call.unique_id, request),
                Err(error) => encode_call_error(&call.unique_id, &error),
            },
            Err(e) => encode_call_error(
                &call.unique_id,
                &CallError::new(ErrorCode::FormationViolation, e.to_string()),
            ),
        };
        // A send that fails means the connection is gone; the session loop sees it next.
        let _ = client.send_raw(&text);
    }

    fn respond(&mut self, uid: &str, request: CentralCall) -> String {
        match request {
            CentralCall::SetChargingProfile(r) => {
                let status = self.set_profile(r);
                encode_call_result(uid, &SetChargingProfileResponse { status })
            }
            CentralCall::ClearChargingProfile(r) => {
                let status = self.profiles.clear(&r);
                self.follow_limit();
                encode_call_result(
                    uid,
                    &ampwarden_actors::ocpp::smart_charging::ClearChargingProfileResponse {
                        status,
                    },
                )
            }
            CentralCall::GetCompositeSchedule(r) => {
                let limit = self
                    .limit()
                    .unwrap_or(self.plan.wiring.max_current)
                    .min(self.plan.wiring.max_current);
                let answer = if r.connector_id <= 1 {
                    GetCompositeScheduleResponse {
                        status: GetCompositeScheduleStatus::Accepted,
                        connector_id: Some(r.connector_id),
                        schedule_start: Some(Utc::now()),
                        charging_schedule: Some(ChargingSchedule {
                            duration: Some(r.duration),
                            start_schedule: Some(Utc::now()),
                            charging_rate_unit: ChargingRateUnit::A,
                            charging_schedule_period: vec![ChargingSchedulePeriod {
                                start_period: 0,
                                limit: OneDecimal::floor(limit.0),
                                number_phases: Some(self.plan.wiring.phases),
                            }],
                            min_charging_rate: None,
                        }),
                    }
                } else {
                    GetCompositeScheduleResponse {
                        status: GetCompositeScheduleStatus::Rejected,
                        connector_id: None,
                        schedule_start: None,
                        charging_schedule: None,
                    }
                };
                encode_call_result(uid, &answer)
            }
            CentralCall::ChangeConfiguration(r) => {
                let status = self.change_configuration(&r);
                encode_call_result(uid, &ChangeConfigurationResponse { status })
            }
            CentralCall::GetConfiguration(r) => encode_call_result(uid, &self.configuration(&r)),
            CentralCall::RemoteStartTransaction(r) => {
                let accepted = r.connector_id.is_none_or(|c| c.get() == 1);
                let status = match self
                    .connector
                    .remote_start(r.id_tag.as_str().to_owned())
                    .filter(|_| accepted)
                {
                    Some(actions) => {
                        self.queue(actions);
                        RemoteStartStopStatus::Accepted
                    }
                    None => RemoteStartStopStatus::Rejected,
                };
                encode_call_result(uid, &RemoteStartTransactionResponse { status })
            }
            CentralCall::RemoteStopTransaction(r) => {
                let status = match self.connector.remote_stop(r.transaction_id) {
                    Some(actions) => {
                        self.queue(actions);
                        RemoteStartStopStatus::Accepted
                    }
                    None => RemoteStartStopStatus::Rejected,
                };
                encode_call_result(uid, &RemoteStopTransactionResponse { status })
            }
            CentralCall::ChangeAvailability(r) => {
                let status = if r.connector_id > 1 {
                    AvailabilityStatus::Rejected
                } else {
                    let (now, actions) = self
                        .connector
                        .set_available(r.kind == AvailabilityType::Operative);
                    self.queue(actions);
                    if now {
                        AvailabilityStatus::Accepted
                    } else {
                        AvailabilityStatus::Scheduled
                    }
                };
                encode_call_result(uid, &ChangeAvailabilityResponse { status })
            }
            CentralCall::Reset(r) => {
                let reason = match r.kind {
                    ResetType::Hard => StopReason::HardReset,
                    ResetType::Soft => StopReason::SoftReset,
                };
                let actions = self.connector.interrupt(reason);
                self.queue(actions);
                self.restart = true;
                encode_call_result(
                    uid,
                    &ResetResponse {
                        status: ResetStatus::Accepted,
                    },
                )
            }
            CentralCall::UnlockConnector(r) => {
                let status = if r.connector_id.get() == 1 {
                    let actions = self.connector.interrupt(StopReason::UnlockCommand);
                    self.queue(actions);
                    UnlockStatus::Unlocked
                } else {
                    UnlockStatus::NotSupported
                };
                encode_call_result(uid, &UnlockConnectorResponse { status })
            }
            CentralCall::TriggerMessage(r) => {
                let status = match r.requested_message {
                    MessageTrigger::Heartbeat => {
                        self.outbox.push_back(Outgoing::Heartbeat);
                        TriggerMessageStatus::Accepted
                    }
                    MessageTrigger::StatusNotification => {
                        self.outbox.push_back(Outgoing::StationStatus);
                        self.outbox.push_back(Outgoing::Connector(Action::Status(
                            self.connector.status(),
                        )));
                        TriggerMessageStatus::Accepted
                    }
                    MessageTrigger::MeterValues if self.connector.transaction().is_some() => {
                        self.outbox
                            .push_back(Outgoing::MeterValues(ReadingContext::Trigger));
                        TriggerMessageStatus::Accepted
                    }
                    MessageTrigger::MeterValues => TriggerMessageStatus::Rejected,
                    _ => TriggerMessageStatus::NotImplemented,
                };
                encode_call_result(uid, &TriggerMessageResponse { status })
            }
            CentralCall::UpdateFirmware(_) => encode_call_result(uid, &UpdateFirmwareResponse {}),
            CentralCall::GetDiagnostics(_) => {
                encode_call_result(uid, &GetDiagnosticsResponse { file_name: None })
            }
            CentralCall::SendLocalList(_) => encode_call_result(
                uid,
                &SendLocalListResponse {
                    status: UpdateStatus::NotSupported,
                },
            ),
            CentralCall::GetLocalListVersion(_) => {
                encode_call_result(uid, &GetLocalListVersionResponse { list_version: -1 })
            }
            CentralCall::ClearCache(_) => encode_call_result(
                uid,
                &ClearCacheResponse {
                    status: ClearCacheStatus::Accepted,
                },
            ),
            CentralCall::DataTransfer(_) => encode_call_result(
                uid,
                &DataTransferResponse {
                    status: DataTransferStatus::UnknownVendorId,
                    data: None,
                },
            ),
            // The security extension: triggers as TriggerMessage; no logs, no signed
            // firmware in a simulator.
            CentralCall::ExtendedTriggerMessage(r) => {
                let status = match r.requested_message {
                    ExtendedMessageTrigger::Heartbeat => {
                        self.outbox.push_back(Outgoing::Heartbeat);
                        TriggerMessageStatusExtended::Accepted
                    }
                    ExtendedMessageTrigger::StatusNotification => {
                        self.outbox.push_back(Outgoing::StationStatus);
                        TriggerMessageStatusExtended::Accepted
                    }
                    _ => TriggerMessageStatusExtended::NotImplemented,
                };
                encode_call_result(uid, &ExtendedTriggerMessageResponse { status })
            }
            CentralCall::GetLog(_) => encode_call_result(
                uid,
                &GetLogResponse {
                    status: LogStatus::Rejected,
                    filename: None,
                },
            ),
            CentralCall::SignedUpdateFirmware(_) => encode_call_result(
                uid,
                &SignedUpdateFirmwareResponse {
                    status: UpdateFirmwareStatus::Rejected,
                },
            ),
        }
    }

    fn set_profile(&mut self, request: SetChargingProfileRequest) -> ChargingProfileStatus {
        if request.connector_id > 1 {
            return ChargingProfileStatus::Rejected;
        }
        let tx_limit = (request.cs_charging_profiles.charging_profile_purpose
            == ampwarden_actors::ocpp::smart_charging::ChargingProfilePurpose::TxProfile)
            .then(|| {
                request
                    .cs_charging_profiles
                    .charging_schedule
                    .charging_schedule_period
                    .first()
                    .map(|p| p.limit)
            })
            .flatten();
        let status = self
            .profiles
            .set(request, self.connector.transaction(), Utc::now());
        if let (ChargingProfileStatus::Accepted, Some(limit)) = (status, tx_limit) {
            self.shared.note_limit(&self.plan.id, Amps(limit.value()));
        }
        self.follow_limit();
        status
    }

    /// The vehicle follows the limit in force after its follow delay (at once if none):
    /// a car takes a few seconds to adjust to a new pilot signal, up or down.
    fn follow_limit(&mut self) {
        let limit = self.limit();
        let delay = self.shared.scenario.vehicles.follow_delay_s;
        if delay <= 0.0 {
            self.pending_limit = None;
            self.apply_limit(limit);
            return;
        }
        if limit == self.vehicle_limit {
            self.pending_limit = None;
            return;
        }
        let at = match self.pending_limit {
            Some((at, _)) => at,
            None => Instant::now() + Duration::from_secs_f64(delay),
        };
        self.pending_limit = Some((at, limit));
    }

    fn apply_limit(&mut self, limit: Option<Amps>) {
        self.vehicle_limit = limit;
        let actions = self.connector.follow_limit(limit);
        self.queue(actions);
        self.check_limit(limit);
        self.publish();
    }

    fn change_configuration(&mut self, r: &ChangeConfigurationRequest) -> ConfigurationStatus {
        let value = r.value.as_str();
        let number = || value.trim().parse::<u32>().ok();
        match r.key.as_str() {
            "HeartbeatInterval" => match number() {
                Some(s) => {
                    self.keys.heartbeat_s = s;
                    self.retime = true;
                    ConfigurationStatus::Accepted
                }
                None => ConfigurationStatus::Rejected,
            },
            // Firmware that ignores the key still says Accepted, as some really do.
            "MeterValueSampleInterval" if !self.shared.scenario.honour_sample_interval => {
                ConfigurationStatus::Accepted
            }
            "MeterValueSampleInterval" => match number() {
                Some(s) => {
                    self.keys.meter_interval_s = s;
                    self.retime = true;
                    ConfigurationStatus::Accepted
                }
                None => ConfigurationStatus::Rejected,
            },
            "MeterValuesSampledData" => {
                let wanted: Vec<String> = value
                    .split(',')
                    .map(|m| m.trim().to_owned())
                    .filter(|m| !m.is_empty())
                    .collect();
                if wanted
                    .iter()
                    .all(|m| SUPPORTED_MEASURANDS.contains(&m.as_str()))
                {
                    self.keys.sampled = wanted;
                    ConfigurationStatus::Accepted
                } else {
                    ConfigurationStatus::Rejected
                }
            }
            key if READ_ONLY_KEYS.iter().any(|(k, _)| *k == key) => ConfigurationStatus::Rejected,
            _ => ConfigurationStatus::NotSupported,
        }
    }

    fn configuration(&self, r: &GetConfigurationRequest) -> GetConfigurationResponse {
        let mut all: Vec<(&str, String, bool)> = vec![
            (
                "HeartbeatInterval",
                self.keys.heartbeat_s.to_string(),
                false,
            ),
            (
                "MeterValueSampleInterval",
                self.keys.meter_interval_s.to_string(),
                false,
            ),
            ("MeterValuesSampledData", self.keys.sampled.join(","), false),
        ];
        all.extend(
            READ_ONLY_KEYS
                .iter()
                .map(|(k, v)| (*k, (*v).to_owned(), true)),
        );
        let wanted = |key: &str| r.key.is_empty() || r.key.iter().any(|k| k.eq_ignore_case(key));
        let configuration_key = all
            .into_iter()
            .filter(|(k, _, _)| wanted(k))
            .filter_map(|(key, value, readonly)| {
                Some(KeyValue {
                    key: CiString50::new(key).ok()?,
                    readonly,
                    value: CiString500::new(value).ok(),
                })
            })
            .collect();
        let known = |k: &CiString50| {
            [
                "HeartbeatInterval",
                "MeterValueSampleInterval",
                "MeterValuesSampledData",
            ]
            .iter()
            .chain(READ_ONLY_KEYS.iter().map(|(k, _)| k))
            .any(|name| k.eq_ignore_case(name))
        };
        let unknown_key = r.key.iter().filter(|k| !known(k)).cloned().collect();
        GetConfigurationResponse {
            configuration_key,
            unknown_key,
        }
    }
}

/// Keys the simulated station reports but does not let the central system change.
const READ_ONLY_KEYS: [(&str, &str); 5] = [
    ("NumberOfConnectors", "1"),
    ("ChargeProfileMaxStackLevel", "8"),
    ("ChargingScheduleAllowedChargingRateUnit", "Current,Power"),
    (
        "SupportedFeatureProfiles",
        "Core,SmartCharging,RemoteTrigger",
    ),
    ("StopTransactionOnInvalidId", "true"),
];

/// Transaction messages survive a lost connection; the rest is of the moment.
fn is_transaction_message(out: &Outgoing) -> bool {
    matches!(
        out,
        Outgoing::Connector(Action::Start { .. } | Action::Stop { .. })
    )
}

fn accepted(reply: &Reply) -> bool {
    match reply {
        Reply::Result(v) => v["idTagInfo"]["status"] == AuthorizationStatus::Accepted.as_str(),
        Reply::Error { .. } => false,
    }
}

fn timestamp() -> String {
    Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

async fn sleep_until_or_never(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
