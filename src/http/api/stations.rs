//! Stations: their configuration and live state, remote actions (OCPP calls through the
//! station actor), configuration keys, firmware and diagnostics, and the commissioning
//! list of unknown stations that knocked.

use std::num::NonZeroU32;
use std::time::Duration;

use actix::Addr;
use actix_web::{web, HttpRequest, HttpResponse};
use ampwarden_actors::config::{Config, Phases, StationConfig};
use ampwarden_actors::ocpp::dispatch::Request;
use ampwarden_actors::ocpp::security::{
    CiString512, CiString5500, CiString800, ExtendedMessageTrigger, ExtendedTriggerMessageRequest,
    GetLogRequest, LogParameters, LogType, SignedFirmware, SignedUpdateFirmwareRequest,
};
use ampwarden_actors::ocpp::{
    AnyUri, AvailabilityType, ChangeAvailabilityRequest, ChangeConfigurationRequest, CiString50,
    GetConfigurationRequest, GetDiagnosticsRequest, IdToken, RemoteStartTransactionRequest,
    RemoteStopTransactionRequest, ResetRequest, ResetType, UnlockConnectorRequest,
    UpdateFirmwareRequest,
};
use ampwarden_actors::station::{Call, CallFailure, GetSnapshot, StationActor, StationSnapshot};
use ampwarden_actors::store::StationRecord;
use ampwarden_actors::units::{Amps, ChargePointId, Phase, ZoneId};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{created, edit_error, no_content, ok, Ctl};
use crate::controller::{Controller, EditError};
use crate::http::auth::{audit, audit_station, Identity};
use crate::http::error::{parse_json, ApiError, ApiResult, Body};

/// How long the API waits for a station actor's snapshot.
const SNAPSHOT_WAIT: Duration = Duration::from_secs(2);

/// A station's configuration as shown: the password is never given out.
#[derive(Serialize)]
pub struct StationSettings {
    pub zone: ZoneId,
    pub max_current_a: Amps,
    pub phases: u8,
    pub phase: Phase,
    pub vip: bool,
    pub has_password: bool,
    /// The OCPP security profile it must show at the handshake (0–3).
    pub security_profile: ampwarden_actors::config::SecurityProfile,
    pub connectors: u32,
    /// The site phases of the station's L1, L2, L3, e.g. `"L2L3L1"`.
    pub phase_rotation: String,
}

impl From<&StationConfig> for StationSettings {
    fn from(s: &StationConfig) -> Self {
        StationSettings {
            zone: s.zone.clone(),
            max_current_a: s.max_current_a,
            phases: s.phases.count(),
            phase: s.phase,
            vip: s.vip,
            has_password: !s.password.is_empty(),
            security_profile: s.security_profile,
            connectors: s.connectors,
            phase_rotation: s.phase_rotation.to_string(),
        }
    }
}

#[derive(Serialize)]
pub struct StationView {
    pub id: ChargePointId,
    pub config: StationSettings,
    /// What the station said about itself, when it was first and last seen.
    pub record: Option<StationRecord>,
    /// The live state; `None` for a station added since the start that has not connected.
    pub live: Option<StationSnapshot>,
}

/// The live snapshot of a station actor, if it answers in time.
pub async fn snapshot(addr: Option<Addr<StationActor>>) -> Option<StationSnapshot> {
    addr?.send(GetSnapshot).timeout(SNAPSHOT_WAIT).await.ok()
}

/// Every configured station's view, in configuration order.
pub async fn views(ctl: &Controller) -> ApiResult<Vec<StationView>> {
    let config = ctl.config();
    let records = ctl.store().stations()?;
    let lives = futures_util::future::join_all(
        config.stations.iter().map(|s| snapshot(ctl.station(&s.id))),
    )
    .await;
    Ok(config
        .stations
        .iter()
        .zip(lives)
        .map(|(s, live)| StationView {
            id: s.id.clone(),
            config: s.into(),
            record: records.iter().find(|r| r.id == s.id).cloned(),
            live,
        })
        .collect())
}

fn station_index(config: &Config, id: &ChargePointId) -> ApiResult<usize> {
    config
        .stations
        .iter()
        .position(|s| &s.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no station {id}")))
}

pub async fn list(ctl: Ctl) -> ApiResult<HttpResponse> {
    Ok(ok(views(&ctl).await?))
}

pub async fn detail(ctl: Ctl, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = ChargePointId::new(path.into_inner());
    let config = ctl.config();
    let i = station_index(&config, &id)?;
    Ok(ok(StationView {
        id: id.clone(),
        config: (&config.stations[i]).into(),
        record: ctl.store().station(&id)?,
        live: snapshot(ctl.station(&id)).await,
    }))
}

pub async fn add(
    ctl: Ctl,
    who: Identity,
    Body(station): Body<StationConfig>,
) -> ApiResult<HttpResponse> {
    let id = station.id.clone();
    let (index, config) = ctl
        .edit_config(|c| {
            c.stations.push(station);
            Ok(c.stations.len() - 1)
        })
        .map_err(|e| {
            let prefix = format!("stations[{}].", ctl.config().stations.len());
            edit_error(e, Some(&prefix))
        })?;
    audit_station(ctl.store(), &who.name, Some(&id), "station added");
    Ok(created(StationView {
        id: id.clone(),
        config: (&config.stations[index]).into(),
        record: ctl.store().station(&id)?,
        live: None,
    }))
}

/// The fields of a station an edit may change; the ones left out keep their value.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationPatch {
    zone: Option<ZoneId>,
    max_current_a: Option<Amps>,
    phases: Option<Phases>,
    phase: Option<Phase>,
    vip: Option<bool>,
    /// `""` removes the password.
    password: Option<String>,
    security_profile: Option<ampwarden_actors::config::SecurityProfile>,
    connectors: Option<u32>,
    phase_rotation: Option<ampwarden_actors::config::PhaseRotation>,
}

pub async fn edit(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(patch): Body<StationPatch>,
) -> ApiResult<HttpResponse> {
    let id = ChargePointId::new(path.into_inner());
    let mut prefix = String::new();
    let (index, config) = ctl
        .edit_config(|c| {
            let i = station_index(c, &id)?;
            prefix = format!("stations[{i}].");
            let s = &mut c.stations[i];
            if let Some(v) = patch.zone {
                s.zone = v;
            }
            if let Some(v) = patch.max_current_a {
                s.max_current_a = v;
            }
            if let Some(v) = patch.phases {
                s.phases = v;
            }
            if let Some(v) = patch.phase {
                s.phase = v;
            }
            if let Some(v) = patch.vip {
                s.vip = v;
            }
            if let Some(v) = patch.password {
                s.password = v;
            }
            if let Some(v) = patch.security_profile {
                s.security_profile = v;
            }
            if let Some(v) = patch.connectors {
                s.connectors = v;
            }
            if let Some(v) = patch.phase_rotation {
                s.phase_rotation = v;
            }
            Ok(i)
        })
        .map_err(|e| edit_error(e, Some(&prefix)))?;
    // A scanned station's record keeps its zone for the next start.
    if let Some(mut record) = ctl.store().station(&id)? {
        record.zone = Some(config.stations[index].zone.clone());
        ctl.store().put_station(&record)?;
    }
    audit_station(
        ctl.store(),
        &who.name,
        Some(&id),
        "station settings changed",
    );
    Ok(ok(StationView {
        id: id.clone(),
        config: (&config.stations[index]).into(),
        record: ctl.store().station(&id)?,
        live: snapshot(ctl.station(&id)).await,
    }))
}

pub async fn remove(ctl: Ctl, who: Identity, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = ChargePointId::new(path.into_inner());
    ctl.edit_config(|c| {
        let i = station_index(c, &id)?;
        c.stations.remove(i);
        Ok(())
    })
    .map_err(|e| edit_error(e, None))?;
    ctl.store().remove_station(&id)?;
    audit_station(ctl.store(), &who.name, Some(&id), "station removed");
    Ok(no_content())
}

// --- remote actions ------------------------------------------------------------------------

/// The station's actor, or why it cannot be reached.
fn actor(ctl: &Controller, id: &ChargePointId) -> ApiResult<Addr<StationActor>> {
    station_index(&ctl.config(), id)?;
    ctl.station(id).ok_or_else(|| {
        ApiError::conflict(format!(
            "station {id} has not connected since the controller started"
        ))
    })
}

/// Sends one OCPP call and waits for the station's typed answer.
async fn call<R>(addr: &Addr<StationActor>, request: R) -> ApiResult<R::Response>
where
    R: Request + Send + 'static,
    R::Response: Send + 'static,
{
    match addr.send(Call(request)).await {
        Ok(Ok(answer)) => Ok(answer),
        Ok(Err(CallFailure::NotConnected)) => {
            Err(ApiError::conflict("the station is not connected"))
        }
        Ok(Err(e @ CallFailure::Timeout(_))) => Err(ApiError::new(
            actix_web::http::StatusCode::GATEWAY_TIMEOUT,
            e.to_string(),
        )),
        Ok(Err(e)) => Err(ApiError::station(e.to_string())),
        Err(e) => Err(ApiError::internal(e)),
    }
}

/// An action's body; an empty body counts as `{}`.
fn action_body<T: serde::de::DeserializeOwned>(req: &HttpRequest, bytes: &[u8]) -> ApiResult<T> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return parse_json(b"{}");
    }
    let is_json = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("application/json"));
    if !is_json {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the body as JSON with Content-Type: application/json",
        )
        .with_field("Content-Type"));
    }
    parse_json(bytes)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StartBody {
    connector: Option<NonZeroU32>,
    id_tag: String,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct StopBody {
    transaction_id: Option<i32>,
    /// Instead of the id: the transaction running on this connector.
    connector: Option<u32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ResetBody {
    #[serde(rename = "type", default = "soft")]
    kind: ResetType,
}

fn soft() -> ResetType {
    ResetType::Soft
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TriggerBody {
    /// An ExtendedTriggerMessage `requestedMessage`, e.g. `StatusNotification`.
    message: ExtendedMessageTrigger,
    connector: Option<i32>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct GetLogBody {
    #[serde(default = "security_log")]
    log_type: LogType,
    /// Where the station uploads it.
    location: String,
    oldest: Option<chrono::DateTime<chrono::Utc>>,
    latest: Option<chrono::DateTime<chrono::Utc>>,
    request_id: Option<i32>,
}

fn security_log() -> LogType {
    LogType::SecurityLog
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SignedFirmwareBody {
    location: String,
    retrieve_at: Option<chrono::DateTime<chrono::Utc>>,
    install_at: Option<chrono::DateTime<chrono::Utc>>,
    /// PEM of the certificate that signed the firmware.
    signing_certificate: String,
    /// Base64 signature of the firmware.
    signature: String,
    request_id: Option<i32>,
}

/// A request id for GetLog and SignedUpdateFirmware: the seconds of the day's clock,
/// unique enough to tell a station's notifications apart.
fn request_id() -> i32 {
    i32::try_from(chrono::Utc::now().timestamp() % i64::from(i32::MAX)).unwrap_or(1)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct UnlockBody {
    connector: NonZeroU32,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AvailabilityBody {
    /// 0 (the default) is the whole station.
    #[serde(default)]
    connector: u32,
    available: bool,
}

pub async fn action(
    req: HttpRequest,
    ctl: Ctl,
    who: Identity,
    path: web::Path<(String, String)>,
    bytes: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (id, action) = path.into_inner();
    if !bytes.iter().all(u8::is_ascii_whitespace) {
        // Only checks the Content-Type; the body is parsed below.
        action_body::<serde_json::Value>(&req, &bytes)?;
    }
    let answer = run_action(&ctl, &who.name, ChargePointId::new(id), &action, &bytes).await?;
    Ok(ok(answer))
}

/// A remote action on a station, by `who` (a user, or a federation primary relaying its
/// operator's), with its JSON body: `{"status": …}` as the station answered.
pub async fn run_action(
    ctl: &Controller,
    who: &str,
    id: ChargePointId,
    action: &str,
    bytes: &[u8],
) -> ApiResult<serde_json::Value> {
    fn body(bytes: &[u8]) -> &[u8] {
        if bytes.iter().all(u8::is_ascii_whitespace) {
            b"{}"
        } else {
            bytes
        }
    }
    const ACTIONS: [&str; 8] = [
        "start",
        "stop",
        "reset",
        "unlock",
        "availability",
        "trigger",
        "get_log",
        "signed_update_firmware",
    ];
    if !ACTIONS.contains(&action) {
        return Err(ApiError::not_found(format!(
            "no action {action:?}: use start, stop, reset, unlock, availability, trigger, get_log or signed_update_firmware"
        ))
        .with_field("action"));
    }
    let addr = actor(ctl, &id)?;
    let (status, what) = match action {
        "start" => {
            let b: StartBody = parse_json(body(bytes))?;
            let id_tag = IdToken::new(b.id_tag.as_str())
                .map_err(|e| ApiError::bad("id_tag", e.to_string()))?;
            let answer = call(
                &addr,
                RemoteStartTransactionRequest {
                    connector_id: b.connector,
                    id_tag,
                    charging_profile: None,
                },
            )
            .await?;
            (
                answer.status.to_string(),
                format!("remote start for {}", b.id_tag),
            )
        }
        "stop" => {
            let b: StopBody = parse_json(body(bytes))?;
            let transaction_id = stop_target(ctl, &addr, &id, &b).await?;
            let answer = call(&addr, RemoteStopTransactionRequest { transaction_id }).await?;
            (
                answer.status.to_string(),
                format!("remote stop of transaction {transaction_id}"),
            )
        }
        "reset" => {
            let b: ResetBody = parse_json(body(bytes))?;
            let answer = call(&addr, ResetRequest { kind: b.kind }).await?;
            (answer.status.to_string(), format!("{} reset", b.kind))
        }
        "unlock" => {
            let b: UnlockBody = parse_json(body(bytes))?;
            let answer = call(
                &addr,
                UnlockConnectorRequest {
                    connector_id: b.connector,
                },
            )
            .await?;
            (
                answer.status.to_string(),
                format!("unlock of connector {}", b.connector),
            )
        }
        "trigger" => {
            let b: TriggerBody = parse_json(body(bytes))?;
            let answer = call(
                &addr,
                ExtendedTriggerMessageRequest {
                    requested_message: b.message,
                    connector_id: b.connector,
                },
            )
            .await?;
            (
                answer.status.to_string(),
                format!("ExtendedTriggerMessage {}", b.message),
            )
        }
        "get_log" => {
            let b: GetLogBody = parse_json(body(bytes))?;
            let remote_location = CiString512::new(b.location.clone())
                .map_err(|e| ApiError::bad("location", e.to_string()))?;
            let request_id = b.request_id.unwrap_or_else(request_id);
            let answer = call(
                &addr,
                GetLogRequest {
                    log: LogParameters {
                        remote_location,
                        oldest_timestamp: b.oldest,
                        latest_timestamp: b.latest,
                    },
                    log_type: b.log_type,
                    request_id,
                    retries: None,
                    retry_interval: None,
                },
            )
            .await?;
            (
                answer.status.to_string(),
                format!(
                    "GetLog {} (request {request_id}) to {}",
                    b.log_type, b.location
                ),
            )
        }
        "signed_update_firmware" => {
            let b: SignedFirmwareBody = parse_json(body(bytes))?;
            let field = |name: &'static str| {
                move |e: ampwarden_actors::ocpp::TooLong| ApiError::bad(name, e.to_string())
            };
            let request_id = b.request_id.unwrap_or_else(request_id);
            let answer = call(
                &addr,
                SignedUpdateFirmwareRequest {
                    retries: None,
                    retry_interval: None,
                    request_id,
                    firmware: SignedFirmware {
                        location: CiString512::new(b.location.clone())
                            .map_err(field("location"))?,
                        retrieve_date_time: b.retrieve_at.unwrap_or_else(chrono::Utc::now),
                        install_date_time: b.install_at,
                        signing_certificate: CiString5500::new(b.signing_certificate)
                            .map_err(field("signing_certificate"))?,
                        signature: CiString800::new(b.signature).map_err(field("signature"))?,
                    },
                },
            )
            .await?;
            (
                answer.status.to_string(),
                format!(
                    "SignedUpdateFirmware (request {request_id}) from {}",
                    b.location
                ),
            )
        }
        _ => {
            let b: AvailabilityBody = parse_json(body(bytes))?;
            let kind = if b.available {
                AvailabilityType::Operative
            } else {
                AvailabilityType::Inoperative
            };
            let answer = call(
                &addr,
                ChangeAvailabilityRequest {
                    connector_id: b.connector,
                    kind,
                },
            )
            .await?;
            (
                answer.status.to_string(),
                format!("connector {} set {kind}", b.connector),
            )
        }
    };
    audit_station(ctl.store(), who, Some(&id), format!("{what}: {status}"));
    Ok(json!({ "status": status }))
}

/// The transaction a stop is about: the given id (which must be this station's), or the
/// one on the given connector, or the station's only open one.
async fn stop_target(
    ctl: &Controller,
    addr: &Addr<StationActor>,
    id: &ChargePointId,
    b: &StopBody,
) -> ApiResult<i32> {
    if let Some(tx) = b.transaction_id {
        return match ctl.store().transaction(tx)? {
            Some(t) if &t.station == id && t.is_open() => Ok(tx),
            Some(t) if &t.station == id => Err(ApiError::conflict(format!(
                "transaction {tx} has already ended"
            ))
            .with_field("transaction_id")),
            _ => Err(
                ApiError::not_found(format!("station {id} has no transaction {tx}"))
                    .with_field("transaction_id"),
            ),
        };
    }
    let snapshot = snapshot(Some(addr.clone()))
        .await
        .ok_or_else(|| ApiError::internal("the station actor does not answer"))?;
    let open: Vec<(u32, i32)> = snapshot
        .connectors
        .iter()
        .filter_map(|c| c.transaction.as_ref().map(|t| (c.connector, t.id)))
        .filter(|(c, _)| b.connector.is_none_or(|want| want == *c))
        .collect();
    match open.as_slice() {
        [(_, tx)] => Ok(*tx),
        [] => Err(
            ApiError::conflict("no transaction is running there").with_field(
                if b.connector.is_some() {
                    "connector"
                } else {
                    "transaction_id"
                },
            ),
        ),
        _ => Err(ApiError::bad(
            "transaction_id",
            "several transactions are running: give transaction_id or connector",
        )),
    }
}

// --- configuration keys, firmware, diagnostics -------------------------------------------

#[derive(Deserialize)]
pub struct KeyQuery {
    key: Option<String>,
}

pub async fn get_configuration(
    ctl: Ctl,
    path: web::Path<String>,
    query: web::Query<KeyQuery>,
) -> ApiResult<HttpResponse> {
    let id = ChargePointId::new(path.into_inner());
    let addr = actor(&ctl, &id)?;
    let key = match &query.key {
        Some(k) => {
            vec![CiString50::new(k.as_str()).map_err(|e| ApiError::bad("key", e.to_string()))?]
        }
        None => Vec::new(),
    };
    let answer = call(&addr, GetConfigurationRequest { key }).await?;
    let keys: Vec<_> = answer
        .configuration_key
        .iter()
        .map(|k| json!({"key": k.key.as_str(), "readonly": k.readonly, "value": k.value.as_ref().map(|v| v.as_str())}))
        .collect();
    let unknown: Vec<&str> = answer.unknown_key.iter().map(|k| k.as_str()).collect();
    Ok(ok(json!({ "keys": keys, "unknown": unknown })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeyChange {
    key: String,
    value: String,
}

pub async fn change_configuration(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(b): Body<KeyChange>,
) -> ApiResult<HttpResponse> {
    let id = ChargePointId::new(path.into_inner());
    let addr = actor(&ctl, &id)?;
    let request = ChangeConfigurationRequest::new(&b.key, &b.value).map_err(|e| {
        let field = if b.key.chars().count() > 50 {
            "key"
        } else {
            "value"
        };
        ApiError::bad(field, e.to_string())
    })?;
    let answer = call(&addr, request).await?;
    audit_station(
        ctl.store(),
        &who.name,
        Some(&id),
        format!("configuration key {} set: {}", b.key, answer.status),
    );
    Ok(ok(json!({ "status": answer.status.to_string() })))
}

fn uri(field: &str, text: &str) -> ApiResult<AnyUri> {
    AnyUri::new(text).ok_or_else(|| {
        ApiError::bad(
            field,
            format!("{text:?} is not a URI (e.g. ftp://host/path)"),
        )
    })
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FirmwareBody {
    location: String,
    retrieve_date: Option<DateTime<Utc>>,
    retries: Option<u32>,
    retry_interval_s: Option<u32>,
}

pub async fn update_firmware(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(b): Body<FirmwareBody>,
) -> ApiResult<HttpResponse> {
    let id = ChargePointId::new(path.into_inner());
    let addr = actor(&ctl, &id)?;
    let location = uri("location", &b.location)?;
    call(
        &addr,
        UpdateFirmwareRequest {
            location,
            retries: b.retries,
            retrieve_date: b.retrieve_date.unwrap_or_else(Utc::now),
            retry_interval: b.retry_interval_s,
        },
    )
    .await?;
    audit_station(
        ctl.store(),
        &who.name,
        Some(&id),
        format!("firmware update from {} requested", b.location),
    );
    Ok(ok(json!({ "status": "Accepted" })))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DiagnosticsBody {
    location: String,
    retries: Option<u32>,
    retry_interval_s: Option<u32>,
    start_time: Option<DateTime<Utc>>,
    stop_time: Option<DateTime<Utc>>,
}

pub async fn diagnostics(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(b): Body<DiagnosticsBody>,
) -> ApiResult<HttpResponse> {
    let id = ChargePointId::new(path.into_inner());
    let addr = actor(&ctl, &id)?;
    let location = uri("location", &b.location)?;
    let answer = call(
        &addr,
        GetDiagnosticsRequest {
            location,
            retries: b.retries,
            retry_interval: b.retry_interval_s,
            start_time: b.start_time,
            stop_time: b.stop_time,
        },
    )
    .await?;
    audit_station(
        ctl.store(),
        &who.name,
        Some(&id),
        format!("diagnostics upload to {} requested", b.location),
    );
    Ok(ok(
        json!({ "file_name": answer.file_name.as_ref().map(|f| f.as_str()) }),
    ))
}

// --- commissioning -----------------------------------------------------------------------------

pub async fn commissioning(ctl: Ctl) -> ApiResult<HttpResponse> {
    Ok(ok(ctl.commissioning_list()?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AcceptBody {
    zone: ZoneId,
}

fn accept_these(
    ctl: &Controller,
    ids: &[ChargePointId],
    zone: &ZoneId,
) -> ApiResult<Vec<StationConfig>> {
    ctl.accept_stations(ids, zone).map_err(|e| match e {
        EditError::Refused(message) => ApiError::conflict(message),
        EditError::Invalid(problems) => ApiError::config(problems, None),
        EditError::Storage(e) => e.into(),
    })
}

fn check_zone(config: &Config, zone: &ZoneId) -> ApiResult<()> {
    match config.zone(zone) {
        Some(_) => Ok(()),
        None => Err(ApiError::bad(
            "zone",
            format!("unknown zone {:?}", zone.as_str()),
        )),
    }
}

pub async fn accept(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(b): Body<AcceptBody>,
) -> ApiResult<HttpResponse> {
    let id = ChargePointId::new(path.into_inner());
    if !ctl.commissioning_list()?.iter().any(|r| r.id == id) {
        return Err(ApiError::not_found(format!(
            "station {id} is not waiting in the commissioning list"
        )));
    }
    check_zone(&ctl.config(), &b.zone)?;
    let accepted = accept_these(&ctl, std::slice::from_ref(&id), &b.zone)?;
    audit(
        ctl.store(),
        &who.name,
        format!("station {id} accepted into zone {}", b.zone),
    );
    let settings: Vec<StationSettings> = accepted.iter().map(StationSettings::from).collect();
    Ok(ok(json!({ "id": id, "config": settings.first() })))
}

pub async fn accept_all(
    ctl: Ctl,
    who: Identity,
    Body(b): Body<AcceptBody>,
) -> ApiResult<HttpResponse> {
    check_zone(&ctl.config(), &b.zone)?;
    let ids: Vec<ChargePointId> = ctl
        .commissioning_list()?
        .into_iter()
        .map(|r| r.id)
        .collect();
    accept_these(&ctl, &ids, &b.zone)?;
    audit(
        ctl.store(),
        &who.name,
        format!("{} stations accepted into zone {}", ids.len(), b.zone),
    );
    Ok(ok(json!({ "accepted": ids })))
}
