//! The one place that maps OCPP action names to message types, in both directions,
//! and that turns a raw payload into its typed message.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize};
use serde_json::value::RawValue;

use super::core::*;
use super::error::CallError;
use super::firmware::*;
use super::local_auth::*;
use super::meter_values::*;
use super::remote::*;
use super::security::*;
use super::smart_charging::*;
use super::strict::ObjectOnly;

/// The payload of a CALL or CALLRESULT: a message type of OCPP 1.6.
pub trait Payload: Serialize + DeserializeOwned {}

/// A request message: its action name and the type of its answer.
pub trait Request: Payload {
    const ACTION: &'static str;
    type Response: Payload;

    /// Reads the CALLRESULT payload answering this request; a bad answer is an error
    /// with the code and field, for the log (it is not answered).
    fn parse_response(payload: &RawValue) -> Result<Self::Response, CallError> {
        parse_payload(payload)
    }
}

/// A request the central system sends to a station (what the controller sends).
pub trait CentralRequest: Request {}

/// A request a station (OCPP's "charge point") sends to the central system.
pub trait ChargePointRequest: Request {}

/// Parses a payload into its message, checking it as the OCPP 1.6 schema would.
///
/// Valid payloads are read once, without path tracking; an invalid one is read a
/// second time with it, so the error names the field at fault.
pub fn parse_payload<P: Payload>(payload: &RawValue) -> Result<P, CallError> {
    let text = payload.get();
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let parsed = P::deserialize(ObjectOnly(&mut deserializer))
        .and_then(|message| deserializer.end().map(|()| message));
    parsed.map_err(|_| explain::<P>(text))
}

/// The slow path of [`parse_payload`]: the same parse, tracking where it fails.
fn explain<P: Payload>(text: &str) -> CallError {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let mut track = serde_path_to_error::Track::new();
    let parsed = P::deserialize(ObjectOnly(serde_path_to_error::Deserializer::new(
        &mut deserializer,
        &mut track,
    )))
    .and_then(|_| deserializer.end());
    match parsed {
        Err(error) => {
            CallError::from_payload_error(serde_path_to_error::Error::new(track.path(), error))
        }
        Ok(()) => CallError::new(
            super::error::ErrorCode::InternalError,
            "payload rejected on first reading but accepted on second",
        ),
    }
}

/// Every action of OCPP 1.6 (Core, Firmware Management, Local Auth List Management,
/// Reservation, Remote Trigger, Smart Charging), known even where unsupported.
pub const OCPP16_ACTIONS: [&str; 28] = [
    "Authorize",
    "BootNotification",
    "CancelReservation",
    "ChangeAvailability",
    "ChangeConfiguration",
    "ClearCache",
    "ClearChargingProfile",
    "DataTransfer",
    "DiagnosticsStatusNotification",
    "FirmwareStatusNotification",
    "GetCompositeSchedule",
    "GetConfiguration",
    "GetDiagnostics",
    "GetLocalListVersion",
    "Heartbeat",
    "MeterValues",
    "RemoteStartTransaction",
    "RemoteStopTransaction",
    "ReserveNow",
    "Reset",
    "SendLocalList",
    "SetChargingProfile",
    "StartTransaction",
    "StatusNotification",
    "StopTransaction",
    "TriggerMessage",
    "UnlockConnector",
    "UpdateFirmware",
];

/// The actions of the OCPP 1.6 security extension ("Improved security for OCPP 1.6-J"),
/// known even where unsupported (the certificate management ones).
pub const SECURITY_ACTIONS: [&str; 11] = [
    "CertificateSigned",
    "DeleteCertificate",
    "ExtendedTriggerMessage",
    "GetInstalledCertificateIds",
    "GetLog",
    "InstallCertificate",
    "LogStatusNotification",
    "SecurityEventNotification",
    "SignCertificate",
    "SignedFirmwareStatusNotification",
    "SignedUpdateFirmware",
];

/// The requests one side of the link receives, as an enum: [`StationRequest`] on the
/// central system, [`CentralCall`] on a station.
pub trait RequestSet: Sized {
    /// The typed request of a CALL, or the CALLERROR to answer it with.
    fn parse(action: &str, payload: &RawValue) -> Result<Self, CallError>;

    /// Reads the payload of a call of `action` straight from a deserializer (the
    /// one-pass path of [`super::Incoming`]); `None` for an action this side does not
    /// receive. Errors carry no field path: callers fall back to [`RequestSet::parse`].
    fn deserialize_call<'de, D: Deserializer<'de>>(
        action: &str,
        deserializer: D,
    ) -> Option<Result<Self, D::Error>>;
}

/// A known action sent to the wrong side is NotSupported; an unknown one NotImplemented.
fn refuse(action: &str, receiver: &str) -> CallError {
    if OCPP16_ACTIONS.contains(&action) || SECURITY_ACTIONS.contains(&action) {
        CallError::unsupported_action(action, receiver)
    } else {
        CallError::unknown_action(action)
    }
}

macro_rules! requests {
    ($( $action:ident: $request:ty => $response:ty; )+) => {
        $(
            impl Payload for $request {}
            impl Payload for $response {}
            impl Request for $request {
                const ACTION: &'static str = stringify!($action);
                type Response = $response;
            }
        )+
    };
}

requests! {
    Authorize: AuthorizeRequest => AuthorizeResponse;
    BootNotification: BootNotificationRequest => BootNotificationResponse;
    ChangeAvailability: ChangeAvailabilityRequest => ChangeAvailabilityResponse;
    ChangeConfiguration: ChangeConfigurationRequest => ChangeConfigurationResponse;
    ClearCache: ClearCacheRequest => ClearCacheResponse;
    ClearChargingProfile: ClearChargingProfileRequest => ClearChargingProfileResponse;
    DataTransfer: DataTransferRequest => DataTransferResponse;
    DiagnosticsStatusNotification: DiagnosticsStatusNotificationRequest => DiagnosticsStatusNotificationResponse;
    FirmwareStatusNotification: FirmwareStatusNotificationRequest => FirmwareStatusNotificationResponse;
    GetCompositeSchedule: GetCompositeScheduleRequest => GetCompositeScheduleResponse;
    GetConfiguration: GetConfigurationRequest => GetConfigurationResponse;
    GetDiagnostics: GetDiagnosticsRequest => GetDiagnosticsResponse;
    GetLocalListVersion: GetLocalListVersionRequest => GetLocalListVersionResponse;
    Heartbeat: HeartbeatRequest => HeartbeatResponse;
    MeterValues: MeterValuesRequest => MeterValuesResponse;
    RemoteStartTransaction: RemoteStartTransactionRequest => RemoteStartTransactionResponse;
    RemoteStopTransaction: RemoteStopTransactionRequest => RemoteStopTransactionResponse;
    Reset: ResetRequest => ResetResponse;
    SendLocalList: SendLocalListRequest => SendLocalListResponse;
    SetChargingProfile: SetChargingProfileRequest => SetChargingProfileResponse;
    StartTransaction: StartTransactionRequest => StartTransactionResponse;
    StatusNotification: StatusNotificationRequest => StatusNotificationResponse;
    StopTransaction: StopTransactionRequest => StopTransactionResponse;
    TriggerMessage: TriggerMessageRequest => TriggerMessageResponse;
    UnlockConnector: UnlockConnectorRequest => UnlockConnectorResponse;
    UpdateFirmware: UpdateFirmwareRequest => UpdateFirmwareResponse;
    SecurityEventNotification: SecurityEventNotificationRequest => SecurityEventNotificationResponse;
    SignedFirmwareStatusNotification: SignedFirmwareStatusNotificationRequest => SignedFirmwareStatusNotificationResponse;
    LogStatusNotification: LogStatusNotificationRequest => LogStatusNotificationResponse;
    ExtendedTriggerMessage: ExtendedTriggerMessageRequest => ExtendedTriggerMessageResponse;
    GetLog: GetLogRequest => GetLogResponse;
    SignedUpdateFirmware: SignedUpdateFirmwareRequest => SignedUpdateFirmwareResponse;
}

/// Declares the enum of the requests one side receives and the enum of their answers,
/// each with `parse(action, payload)`. The order of the list is the order in which
/// names are compared: the most frequent first.
macro_rules! direction {
    (
        $(#[$request_meta:meta])* requests $requests:ident;
        $(#[$response_meta:meta])* responses $responses:ident;
        marker $marker:ident;
        receiver $receiver:literal;
        $( $action:ident($request:ty) ),+ $(,)?
    ) => {
        $( impl $marker for $request {} )+

        $(#[$request_meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub enum $requests {
            $( $action($request) ),+
        }

        impl RequestSet for $requests {
            fn parse(action: &str, payload: &RawValue) -> Result<$requests, CallError> {
                $requests::parse(action, payload)
            }

            fn deserialize_call<'de, D: Deserializer<'de>>(
                action: &str,
                deserializer: D,
            ) -> Option<Result<$requests, D::Error>> {
                $(
                    if action == <$request as Request>::ACTION {
                        return Some(<$request>::deserialize(ObjectOnly(deserializer)).map($requests::$action));
                    }
                )+
                None
            }
        }

        impl $requests {
            /// The typed request of a CALL, or the CALLERROR to answer it with.
            pub fn parse(action: &str, payload: &RawValue) -> Result<$requests, CallError> {
                $(
                    if action == <$request as Request>::ACTION {
                        return parse_payload(payload).map($requests::$action);
                    }
                )+
                Err(refuse(action, $receiver))
            }

            pub fn action(&self) -> &'static str {
                match self {
                    $( $requests::$action(_) => <$request as Request>::ACTION ),+
                }
            }
        }

        $(#[$response_meta])*
        #[derive(Clone, Debug, PartialEq)]
        pub enum $responses {
            $( $action(<$request as Request>::Response) ),+
        }

        impl $responses {
            /// The typed answer (CALLRESULT payload) to a call of `action` we sent.
            pub fn parse(action: &str, payload: &RawValue) -> Result<$responses, CallError> {
                $(
                    if action == <$request as Request>::ACTION {
                        return parse_payload(payload).map($responses::$action);
                    }
                )+
                Err(refuse(action, $receiver))
            }

            pub fn action(&self) -> &'static str {
                match self {
                    $( $responses::$action(_) => <$request as Request>::ACTION ),+
                }
            }
        }
    };
}

direction! {
    /// A call from a station, as the central system (the controller) receives it.
    requests StationRequest;
    /// The central system's answer to a station's call, as a station (the simulator)
    /// reads it.
    responses StationResponse;
    marker ChargePointRequest;
    receiver "central system";
    MeterValues(MeterValuesRequest),
    Heartbeat(HeartbeatRequest),
    StatusNotification(StatusNotificationRequest),
    StartTransaction(StartTransactionRequest),
    StopTransaction(StopTransactionRequest),
    Authorize(AuthorizeRequest),
    BootNotification(BootNotificationRequest),
    DataTransfer(DataTransferRequest),
    DiagnosticsStatusNotification(DiagnosticsStatusNotificationRequest),
    FirmwareStatusNotification(FirmwareStatusNotificationRequest),
    SecurityEventNotification(SecurityEventNotificationRequest),
    SignedFirmwareStatusNotification(SignedFirmwareStatusNotificationRequest),
    LogStatusNotification(LogStatusNotificationRequest),
}

direction! {
    /// A call from the central system, as a station (the simulator, or the controller
    /// towards a CPO backend) receives it.
    requests CentralCall;
    /// A station's answer to a call of the central system, as the controller reads it
    /// (keep the action of each pending call to pick the type).
    responses CentralResponse;
    marker CentralRequest;
    receiver "charge point";
    SetChargingProfile(SetChargingProfileRequest),
    TriggerMessage(TriggerMessageRequest),
    ChangeConfiguration(ChangeConfigurationRequest),
    GetConfiguration(GetConfigurationRequest),
    ClearChargingProfile(ClearChargingProfileRequest),
    GetCompositeSchedule(GetCompositeScheduleRequest),
    RemoteStartTransaction(RemoteStartTransactionRequest),
    RemoteStopTransaction(RemoteStopTransactionRequest),
    ChangeAvailability(ChangeAvailabilityRequest),
    Reset(ResetRequest),
    UnlockConnector(UnlockConnectorRequest),
    UpdateFirmware(UpdateFirmwareRequest),
    GetDiagnostics(GetDiagnosticsRequest),
    SendLocalList(SendLocalListRequest),
    GetLocalListVersion(GetLocalListVersionRequest),
    ClearCache(ClearCacheRequest),
    DataTransfer(DataTransferRequest),
    ExtendedTriggerMessage(ExtendedTriggerMessageRequest),
    GetLog(GetLogRequest),
    SignedUpdateFirmware(SignedUpdateFirmwareRequest),
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocpp::error::ErrorCode;

    fn raw(text: &str) -> &RawValue {
        serde_json::from_str(text).expect("test payloads are JSON")
    }

    fn station_error(action: &str, payload: &str) -> CallError {
        match StationRequest::parse(action, raw(payload)) {
            Ok(request) => panic!("{payload} parsed as {request:?}"),
            Err(error) => error,
        }
    }

    const METER_VALUES: &str = r#"{"connectorId":1,"meterValue":[{"timestamp":"2025-01-01T00:00:00Z",
        "sampledValue":[{"value":"16.1","measurand":"Current.Import","phase":"L1","unit":"A"}]}]}"#;

    #[test]
    fn every_action_name_is_its_request_types_action() {
        assert_eq!(
            StationRequest::parse("Heartbeat", raw("{}")).map(|r| r.action()),
            Ok("Heartbeat")
        );
        assert_eq!(
            CentralCall::parse("ClearCache", raw("{}")).map(|r| r.action()),
            Ok("ClearCache")
        );
        assert_eq!(
            <SetChargingProfileRequest as Request>::ACTION,
            "SetChargingProfile"
        );
        for action in OCPP16_ACTIONS {
            let station = StationRequest::parse(action, raw("{}")).map_err(|e| e.code);
            let central = CentralCall::parse(action, raw("{}")).map_err(|e| e.code);
            let refused_by_both =
                station == Err(ErrorCode::NotSupported) && central == Err(ErrorCode::NotSupported);
            let reservation = matches!(action, "ReserveNow" | "CancelReservation");
            assert_eq!(
                refused_by_both, reservation,
                "{action}: {station:?} / {central:?}"
            );
        }
    }

    #[test]
    fn unknown_action_is_not_implemented_and_a_central_action_from_a_station_is_not_supported() {
        assert_eq!(
            station_error("FlyToTheMoon", "{}").code,
            ErrorCode::NotImplemented
        );
        assert_eq!(
            station_error("Reset", r#"{"type":"Hard"}"#).code,
            ErrorCode::NotSupported
        );
        assert_eq!(
            station_error("heartbeat", "{}").code,
            ErrorCode::NotImplemented
        );
    }

    #[test]
    fn valid_meter_values_are_parsed_into_their_type() {
        let Ok(StationRequest::MeterValues(request)) =
            StationRequest::parse("MeterValues", raw(METER_VALUES))
        else {
            panic!("valid meter values");
        };
        assert_eq!(
            request.meter_value[0].sampled_value[0].measurand,
            Some(Measurand::CurrentImport)
        );
    }

    #[test]
    fn payload_errors_map_to_their_codes_and_name_the_field() {
        let cases = [
            (
                r#"{"connectorId":1}"#,
                ErrorCode::OccurenceConstraintViolation,
                "`meterValue`",
            ),
            (
                r#"{"connectorId":1,"meterValue":[]}"#,
                ErrorCode::OccurenceConstraintViolation,
                "meterValue",
            ),
            (
                r#"{"connectorId":"1","meterValue":[{"timestamp":"2025-01-01T00:00:00Z","sampledValue":[{"value":"1"}]}]}"#,
                ErrorCode::TypeConstraintViolation,
                "connectorId",
            ),
            (
                r#"{"connectorId":1.5}"#,
                ErrorCode::TypeConstraintViolation,
                "connectorId",
            ),
            (
                r#"{"connectorId":-1}"#,
                ErrorCode::PropertyConstraintViolation,
                "connectorId",
            ),
            (
                r#"{"connectorId":null}"#,
                ErrorCode::TypeConstraintViolation,
                "connectorId",
            ),
            (
                r#"{"connectorId":1,"transactionId":null}"#,
                ErrorCode::TypeConstraintViolation,
                "transactionId",
            ),
            (
                r#"{"connectorId":1,"extra":1}"#,
                ErrorCode::FormationViolation,
                "`extra`",
            ),
            (
                r#"{"connectorId":1,"connectorId":2}"#,
                ErrorCode::FormationViolation,
                "connectorId",
            ),
            (
                r#"{"connectorId":1,"meterValue":[["2025-01-01T00:00:00Z",[]]]}"#,
                ErrorCode::TypeConstraintViolation,
                "meterValue[0]",
            ),
            (
                r#"{"connectorId":1,"meterValue":[{"timestamp":"2025-01-01T00:00:00","sampledValue":[{"value":"1"}]}]}"#,
                ErrorCode::PropertyConstraintViolation,
                "meterValue[0].timestamp",
            ),
            (
                r#"{"connectorId":1,"meterValue":[{"timestamp":"2025-01-01T00:00:00Z","sampledValue":[{"value":"1","measurand":"Current"}]}]}"#,
                ErrorCode::PropertyConstraintViolation,
                "meterValue[0].sampledValue[0].measurand",
            ),
            (
                r#"{"connectorId":1,"meterValue":[{"timestamp":"2025-01-01T00:00:00Z","sampledValue":[{"unit":"A"}]}]}"#,
                ErrorCode::OccurenceConstraintViolation,
                "meterValue[0].sampledValue[0].value",
            ),
            (
                r#"{"connectorId":1,"meterValue":[{"timestamp":"2025-01-01T00:00:00Z","sampledValue":[{"value":1}]}]}"#,
                ErrorCode::TypeConstraintViolation,
                "meterValue[0].sampledValue[0].value",
            ),
        ];
        for (payload, code, field) in cases {
            let error = station_error("MeterValues", payload);
            assert_eq!(error.code, code, "{payload}: {}", error.description);
            assert!(
                error.description.contains(field),
                "{payload}: `{}` should name {field}",
                error.description
            );
        }
    }

    #[test]
    fn too_long_strings_are_property_constraint_violations() {
        let payload = format!(r#"{{"idTag":"{}"}}"#, "A".repeat(21));
        let error = station_error("Authorize", &payload);
        assert_eq!(error.code, ErrorCode::PropertyConstraintViolation);
        assert!(
            error.description.starts_with("idTag:"),
            "{}",
            error.description
        );
    }

    #[test]
    fn a_typed_request_reads_its_own_answer_and_refuses_a_bad_one() {
        let answer = SetChargingProfileRequest::parse_response(raw(r#"{"status":"Rejected"}"#));
        assert_eq!(
            answer,
            Ok(SetChargingProfileResponse {
                status: ChargingProfileStatus::Rejected
            })
        );
        let bad = SetChargingProfileRequest::parse_response(raw("{}"));
        assert_eq!(
            bad.map_err(|e| e.code),
            Err(ErrorCode::OccurenceConstraintViolation)
        );
    }

    #[test]
    fn responses_are_parsed_by_the_action_of_the_pending_call() {
        let answer = CentralResponse::parse("SetChargingProfile", raw(r#"{"status":"Accepted"}"#));
        assert_eq!(
            answer,
            Ok(CentralResponse::SetChargingProfile(
                SetChargingProfileResponse {
                    status: ChargingProfileStatus::Accepted
                }
            ))
        );
        let bad = CentralResponse::parse("SetChargingProfile", raw(r#"{"status":"Maybe"}"#));
        assert_eq!(
            bad.map_err(|e| e.code),
            Err(ErrorCode::PropertyConstraintViolation)
        );
    }
}
