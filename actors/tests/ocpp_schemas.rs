//! Conformance of every OCPP 1.6 message type to the official JSON schemas (vendored in
//! `ocpp16-schemas/`): what we serialise validates; what the schema rejects, our parser
//! rejects with the right CALLERROR code and names the field; what it accepts, we read.
//!
//! For each action a full example (every optional field present) is the seed: the
//! minimal example (only required fields), one variant per enum value, and the
//! violations (one per required field, property, enum, length, format, type) are
//! derived from it by walking the schema, so every field of every message is covered.

use std::fmt::Debug;
use std::path::Path;

use ampwarden_actors::ocpp::*;
use ampwarden_actors::units;
use serde_json::value::RawValue;
use serde_json::{json, Map, Value};

fn schema(file: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/ocpp16-schemas")
        .join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let mut schema: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    // The security extension's schemas name their types in `definitions`: put each in
    // its place, so that every node carries its own type as in the core schemas.
    if let Some(definitions) = schema.as_object_mut().and_then(|o| o.remove("definitions")) {
        inline_refs(&mut schema, &definitions);
    }
    schema
}

fn inline_refs(node: &mut Value, definitions: &Value) {
    if let Some(name) = node
        .get("$ref")
        .and_then(Value::as_str)
        .and_then(|r| r.strip_prefix("#/definitions/"))
    {
        *node = definitions[name].clone();
    }
    match node {
        Value::Object(fields) => fields
            .values_mut()
            .for_each(|v| inline_refs(v, definitions)),
        Value::Array(items) => items.iter_mut().for_each(|v| inline_refs(v, definitions)),
        _ => {}
    }
}

fn validator(schema: &Value) -> jsonschema::Validator {
    jsonschema::options()
        .should_validate_formats(true)
        .build(schema)
        .expect("the official schemas compile")
}

fn raw(value: &Value) -> Box<RawValue> {
    RawValue::from_string(value.to_string()).expect("a Value prints as JSON")
}

fn parse<P: Payload>(value: &Value) -> Result<P, CallError> {
    parse_payload::<P>(&raw(value))
}

/// Which dispatch enum receives the request of an action.
#[derive(Clone, Copy)]
enum Sender {
    Station,
    Central,
    Either,
}

/// The whole check of one action, request and response.
fn conforms<R>(sender: Sender, request: Value, response: Value)
where
    R: Request + Debug + PartialEq,
    R::Response: Debug + PartialEq,
{
    let action = R::ACTION;
    payload_conforms::<R>(&format!("{action}.json"), &request);
    payload_conforms::<R::Response>(&format!("{action}Response.json"), &response);

    let schema = schema(&format!("{action}.json"));
    let documents = violations(&schema, &request)
        .into_iter()
        .map(|v| v.document);
    for document in documents.chain([request.clone(), without_optional_fields(&schema, &request)]) {
        let text = format!(r#"[2,"id-1","{action}",{document}]"#);
        one_pass_agrees_with_two_steps::<StationRequest>(&text);
        one_pass_agrees_with_two_steps::<CentralCall>(&text);
    }

    let request = raw(&request);
    let response = raw(&response);
    if matches!(sender, Sender::Station | Sender::Either) {
        assert_eq!(
            StationRequest::parse(action, &request).map(|r| r.action()),
            Ok(action)
        );
        assert_eq!(
            StationResponse::parse(action, &response).map(|r| r.action()),
            Ok(action)
        );
    }
    if matches!(sender, Sender::Central | Sender::Either) {
        assert_eq!(
            CentralCall::parse(action, &request).map(|r| r.action()),
            Ok(action)
        );
        assert_eq!(
            CentralResponse::parse(action, &response).map(|r| r.action()),
            Ok(action)
        );
    }
    if matches!(sender, Sender::Station) {
        let refused = CentralCall::parse(action, &request).map_err(|e| e.code);
        assert_eq!(
            refused.map(|r| r.action()),
            Err(ErrorCode::NotSupported),
            "{action} sent to a station"
        );
    }
    if matches!(sender, Sender::Central) {
        let refused = StationRequest::parse(action, &request).map_err(|e| e.code);
        assert_eq!(
            refused.map(|r| r.action()),
            Err(ErrorCode::NotSupported),
            "{action} sent by a station"
        );
    }
}

/// `Incoming::parse` (one pass when it can) gives what `Frame::parse` then
/// `RequestSet::parse` give.
fn one_pass_agrees_with_two_steps<Set: RequestSet + Debug + PartialEq>(text: &str) {
    let Ok(Incoming::Call { unique_id, request }) = Incoming::<Set>::parse(text) else {
        panic!("{text} is a call");
    };
    let Ok(Frame::Call {
        action, payload, ..
    }) = Frame::parse(text)
    else {
        panic!("{text} is a call");
    };
    assert_eq!(unique_id, "id-1");
    assert_eq!(request, Set::parse(&action, payload), "{text}");
}

fn payload_conforms<P: Payload + Debug + PartialEq>(file: &str, full: &Value) {
    let schema = schema(file);
    let validator = validator(&schema);
    let minimal = without_optional_fields(&schema, full);
    for example in [full, &minimal] {
        assert!(
            validator.is_valid(example),
            "{file}: the example itself is invalid: {example}"
        );
        let message: P =
            parse(example).unwrap_or_else(|e| panic!("{file}: {example} refused: {e}"));
        let written = serde_json::to_value(&message).expect("messages serialise");
        assert_eq!(&written, example, "{file}: not the same after a round trip");
    }
    for variant in enum_variants(&schema, full) {
        let message: P =
            parse(&variant).unwrap_or_else(|e| panic!("{file}: {variant} refused: {e}"));
        let written = serde_json::to_value(&message).expect("messages serialise");
        assert!(
            validator.is_valid(&written),
            "{file}: we wrote {written}, which the schema refuses"
        );
        assert_eq!(
            parse::<P>(&written).as_ref(),
            Ok(&message),
            "{file}: {written}"
        );
    }
    let violations = violations(&schema, full);
    assert!(
        !violations.is_empty() || full == &json!({}),
        "{file}: no violation derived"
    );
    for violation in violations {
        let error = match parse::<P>(&violation.document) {
            Ok(message) => panic!("{file}: {} accepted: {message:?}", violation.what),
            Err(error) => error,
        };
        assert_eq!(
            error.code, violation.code,
            "{file}: {}: {}",
            violation.what, error.description
        );
        assert!(
            error.description.contains(&violation.field),
            "{file}: {}: `{}` does not name `{}`",
            violation.what,
            error.description,
            violation.field
        );
        if violation.schema_refuses {
            assert!(
                !validator.is_valid(&violation.document),
                "{file}: the schema accepts {}",
                violation.what
            );
        }
    }
}

/// One step from a document's root to a value.
#[derive(Clone, Debug)]
enum Step {
    Key(String),
    Index(usize),
}

fn at<'v>(document: &'v mut Value, path: &[Step]) -> &'v mut Value {
    path.iter().fold(document, |value, step| match step {
        Step::Key(key) => &mut value[key.as_str()],
        Step::Index(index) => &mut value[*index],
    })
}

fn show(path: &[Step]) -> String {
    path.iter()
        .map(|step| match step {
            Step::Key(key) => format!(".{key}"),
            Step::Index(index) => format!("[{index}]"),
        })
        .collect()
}

/// The nearest field name on the path: what an error description must mention.
fn field_of(path: &[Step]) -> String {
    path.iter()
        .rev()
        .find_map(|step| match step {
            Step::Key(key) => Some(key.clone()),
            Step::Index(_) => None,
        })
        .unwrap_or_default()
}

/// The example with every property the schema does not require removed, recursively.
fn without_optional_fields(schema: &Value, value: &Value) -> Value {
    match (schema["type"].as_str(), value) {
        (Some("object"), Value::Object(fields)) => {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let kept: Map<String, Value> = fields
                .iter()
                .filter(|(key, _)| required.contains(&key.as_str()))
                .map(|(key, field)| {
                    (
                        key.clone(),
                        without_optional_fields(&schema["properties"][key.as_str()], field),
                    )
                })
                .collect();
            Value::Object(kept)
        }
        (Some("array"), Value::Array(items)) => Value::Array(
            items
                .iter()
                .map(|item| without_optional_fields(&schema["items"], item))
                .collect(),
        ),
        _ => value.clone(),
    }
}

/// Calls `visit(schema, path)` for every value of the example, with its schema.
fn walk(
    schema: &Value,
    value: &Value,
    path: &mut Vec<Step>,
    visit: &mut dyn FnMut(&Value, &[Step]),
) {
    visit(schema, path);
    match value {
        Value::Object(fields) => {
            for (key, field) in fields {
                path.push(Step::Key(key.clone()));
                walk(&schema["properties"][key.as_str()], field, path, visit);
                path.pop();
            }
        }
        Value::Array(items) => {
            for (index, item) in items.iter().enumerate() {
                path.push(Step::Index(index));
                walk(&schema["items"], item, path, visit);
                path.pop();
            }
        }
        _ => {}
    }
}

/// The example with each enum field set to each value its schema allows.
fn enum_variants(schema: &Value, example: &Value) -> Vec<Value> {
    let mut variants = Vec::new();
    walk(schema, example, &mut Vec::new(), &mut |node, path| {
        for allowed in node["enum"].as_array().into_iter().flatten() {
            let mut variant = example.clone();
            *at(&mut variant, path) = allowed.clone();
            variants.push(variant);
        }
    });
    variants
}

struct Violation {
    what: String,
    document: Value,
    code: ErrorCode,
    field: String,
    /// False where we are stricter than this edition of the schema.
    schema_refuses: bool,
}

/// One document per way of breaking the example that the schema defines.
fn violations(schema: &Value, example: &Value) -> Vec<Violation> {
    use ErrorCode::*;
    let mut out = Vec::new();
    walk(schema, example, &mut Vec::new(), &mut |node, path| {
        let mut replace = |what: &str, with: Value, code: ErrorCode| {
            let mut document = example.clone();
            *at(&mut document, path) = with;
            out.push(Violation {
                what: format!("{} {what}", show(path)),
                document,
                code,
                field: field_of(path),
                schema_refuses: true,
            });
        };
        let kind = node["type"]
            .as_str()
            .expect("every schema node has one JSON type");
        if !path.is_empty() {
            let wrong_type = match kind {
                "string" => json!(42),
                "integer" | "number" => json!("7"),
                "boolean" => json!("true"),
                "array" => json!({}),
                _ => json!([]),
            };
            replace(
                "of the wrong JSON type",
                wrong_type,
                TypeConstraintViolation,
            );
            replace("set to null", Value::Null, TypeConstraintViolation);
        }
        match kind {
            "string" => {
                if node.get("enum").is_some() {
                    replace(
                        "with a value outside its enum",
                        json!("NotAnOcppValue"),
                        PropertyConstraintViolation,
                    );
                }
                if let Some(max) = node["maxLength"].as_u64() {
                    let too_long = "x".repeat(max as usize + 1);
                    replace(
                        "one character too long",
                        json!(too_long),
                        PropertyConstraintViolation,
                    );
                }
                match node["format"].as_str() {
                    Some("date-time") => replace(
                        "without a zone",
                        json!("2025-03-01T12:00:00"),
                        PropertyConstraintViolation,
                    ),
                    Some("uri") => {
                        replace("not a URI", json!("not a uri"), PropertyConstraintViolation)
                    }
                    _ => {}
                }
            }
            "integer" => replace("with a fraction", json!(1.5), TypeConstraintViolation),
            "number" if node.get("multipleOf").is_some() => replace(
                "with two decimals",
                json!(16.25),
                PropertyConstraintViolation,
            ),
            "object" => {
                let parent = example_at(example, path);
                for required in node["required"]
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(Value::as_str)
                {
                    let mut document = example.clone();
                    at(&mut document, path)
                        .as_object_mut()
                        .expect("an object")
                        .remove(required);
                    if parent.get(required).is_some() {
                        out.push(Violation {
                            what: format!("{} without `{required}`", show(path)),
                            document,
                            code: OccurenceConstraintViolation,
                            field: required.to_owned(),
                            schema_refuses: true,
                        });
                    }
                }
                let mut document = example.clone();
                at(&mut document, path)
                    .as_object_mut()
                    .expect("an object")
                    .insert("unexpectedField".to_owned(), json!(1));
                out.push(Violation {
                    what: format!("{} with an unknown field", show(path)),
                    document,
                    code: FormationViolation,
                    field: "unexpectedField".to_owned(),
                    schema_refuses: node["additionalProperties"] == json!(false),
                });
            }
            _ => {}
        }
    });
    out
}

fn example_at<'v>(example: &'v Value, path: &[Step]) -> &'v Value {
    path.iter().fold(example, |value, step| match step {
        Step::Key(key) => &value[key.as_str()],
        Step::Index(index) => &value[*index],
    })
}

const T0: &str = "2025-03-01T12:00:00.000Z";
const T1: &str = "2025-03-01T12:15:30.250Z";

fn id_tag_info() -> Value {
    json!({"expiryDate": "2027-12-31T23:59:59.000Z", "parentIdTag": "FLEET-1", "status": "Accepted"})
}

fn sampled_value() -> Value {
    json!({
        "value": "16.2", "context": "Sample.Periodic", "format": "Raw", "measurand": "Current.Import",
        "phase": "L1", "location": "Outlet", "unit": "A"
    })
}

fn charging_schedule() -> Value {
    json!({
        "duration": 86400,
        "startSchedule": T0,
        "chargingRateUnit": "A",
        "chargingSchedulePeriod": [
            {"startPeriod": 0, "limit": 16.2, "numberPhases": 3},
            {"startPeriod": 3600, "limit": 6.5, "numberPhases": 1}
        ],
        "minChargingRate": 6.1
    })
}

fn charging_profile() -> Value {
    json!({
        "chargingProfileId": 3,
        "transactionId": 42,
        "stackLevel": 2,
        "chargingProfilePurpose": "TxProfile",
        "chargingProfileKind": "Recurring",
        "recurrencyKind": "Daily",
        "validFrom": T0,
        "validTo": "2026-03-01T00:00:00.000Z",
        "chargingSchedule": charging_schedule()
    })
}

/// The OCPP 1.6 actions we do not implement (Reservation profile): refused, not typed.
const NOT_TYPED: [&str; 2] = ["ReserveNow", "CancelReservation"];

macro_rules! conformance {
    ($( $test:ident: $request:ty, $sender:ident, $req:expr, $resp:expr; )+) => {
        mod conforms_to_the_official_schema {
            use super::*;
            $(
                #[test]
                fn $test() {
                    conforms::<$request>(Sender::$sender, $req, $resp);
                }
            )+
        }

        #[test]
        fn every_ocpp16_action_but_reservations_is_covered() {
            let covered = [$(<$request as Request>::ACTION),+];
            for action in OCPP16_ACTIONS {
                assert_eq!(covered.contains(&action), !NOT_TYPED.contains(&action), "{action}");
            }
            // The security extension: all but certificate management.
            for action in SECURITY_ACTIONS {
                let certificates = action.contains("Certificate") && action != "SignedUpdateFirmware";
                assert_eq!(covered.contains(&action), !certificates, "{action}");
            }
        }
    };
}

conformance! {
    authorize: AuthorizeRequest, Station, json!({"idTag": "04A1B2C3"}), json!({"idTagInfo": id_tag_info()});
    boot_notification: BootNotificationRequest, Station,
        json!({
            "chargePointVendor": "Acme", "chargePointModel": "Wallbox 22", "chargePointSerialNumber": "SN-0001",
            "chargeBoxSerialNumber": "CB-0001", "firmwareVersion": "1.4.2", "iccid": "8931000000000000000",
            "imsi": "208150000000000", "meterType": "EM340", "meterSerialNumber": "M-77"
        }),
        json!({"status": "Accepted", "currentTime": T0, "interval": 300});
    heartbeat: HeartbeatRequest, Station, json!({}), json!({"currentTime": T0});
    status_notification: StatusNotificationRequest, Station,
        json!({
            "connectorId": 1, "errorCode": "NoError", "info": "plug in", "status": "Charging", "timestamp": T0,
            "vendorId": "com.acme", "vendorErrorCode": "E0"
        }),
        json!({});
    start_transaction: StartTransactionRequest, Station,
        json!({"connectorId": 1, "idTag": "04A1B2C3", "meterStart": 1234, "reservationId": 7, "timestamp": T0}),
        json!({"idTagInfo": id_tag_info(), "transactionId": 42});
    stop_transaction: StopTransactionRequest, Station,
        json!({
            "idTag": "04A1B2C3", "meterStop": 5678, "timestamp": T1, "transactionId": 42, "reason": "EVDisconnected",
            "transactionData": [{"timestamp": T1, "sampledValue": [sampled_value()]}]
        }),
        json!({"idTagInfo": id_tag_info()});
    meter_values: MeterValuesRequest, Station,
        json!({
            "connectorId": 1, "transactionId": 42,
            "meterValue": [{"timestamp": T0, "sampledValue": [sampled_value(), {"value": "5678"}]}]
        }),
        json!({});
    data_transfer: DataTransferRequest, Either,
        json!({"vendorId": "com.acme", "messageId": "ping", "data": "{\"n\":1}"}),
        json!({"status": "Accepted", "data": "pong"});
    diagnostics_status_notification: DiagnosticsStatusNotificationRequest, Station,
        json!({"status": "Uploaded"}), json!({});
    firmware_status_notification: FirmwareStatusNotificationRequest, Station,
        json!({"status": "Installed"}), json!({});
    set_charging_profile: SetChargingProfileRequest, Central,
        json!({"connectorId": 1, "csChargingProfiles": charging_profile()}),
        json!({"status": "Accepted"});
    clear_charging_profile: ClearChargingProfileRequest, Central,
        json!({"id": 3, "connectorId": 1, "chargingProfilePurpose": "TxDefaultProfile", "stackLevel": 0}),
        json!({"status": "Unknown"});
    get_composite_schedule: GetCompositeScheduleRequest, Central,
        json!({"connectorId": 1, "duration": 3600, "chargingRateUnit": "W"}),
        json!({"status": "Accepted", "connectorId": 1, "scheduleStart": T0, "chargingSchedule": charging_schedule()});
    remote_start_transaction: RemoteStartTransactionRequest, Central,
        json!({"connectorId": 2, "idTag": "04A1B2C3", "chargingProfile": charging_profile()}),
        json!({"status": "Accepted"});
    remote_stop_transaction: RemoteStopTransactionRequest, Central,
        json!({"transactionId": 42}), json!({"status": "Rejected"});
    change_availability: ChangeAvailabilityRequest, Central,
        json!({"connectorId": 0, "type": "Inoperative"}), json!({"status": "Scheduled"});
    change_configuration: ChangeConfigurationRequest, Central,
        json!({"key": "MeterValuesSampledData", "value": "Current.Import,Energy.Active.Import.Register"}),
        json!({"status": "RebootRequired"});
    get_configuration: GetConfigurationRequest, Central,
        json!({"key": ["HeartbeatInterval", "NoSuchKey"]}),
        json!({
            "configurationKey": [{"key": "HeartbeatInterval", "readonly": false, "value": "300"}],
            "unknownKey": ["NoSuchKey"]
        });
    reset: ResetRequest, Central, json!({"type": "Soft"}), json!({"status": "Accepted"});
    unlock_connector: UnlockConnectorRequest, Central, json!({"connectorId": 1}), json!({"status": "UnlockFailed"});
    trigger_message: TriggerMessageRequest, Central,
        json!({"requestedMessage": "MeterValues", "connectorId": 1}), json!({"status": "NotImplemented"});
    update_firmware: UpdateFirmwareRequest, Central,
        json!({"location": "https://fw.example.org/cp-1.5.bin", "retries": 3, "retrieveDate": T0, "retryInterval": 60}),
        json!({});
    get_diagnostics: GetDiagnosticsRequest, Central,
        json!({
            "location": "ftp://diag.example.org/upload/", "retries": 2, "retryInterval": 30,
            "startTime": T0, "stopTime": T1
        }),
        json!({"fileName": "diag-cp001.zip"});
    send_local_list: SendLocalListRequest, Central,
        json!({
            "listVersion": 5, "updateType": "Full",
            "localAuthorizationList": [{"idTag": "04A1B2C3", "idTagInfo": id_tag_info()}]
        }),
        json!({"status": "VersionMismatch"});
    get_local_list_version: GetLocalListVersionRequest, Central, json!({}), json!({"listVersion": -1});
    clear_cache: ClearCacheRequest, Central, json!({}), json!({"status": "Accepted"});
    security_event_notification: SecurityEventNotificationRequest, Station,
        json!({"type": "TamperDetectionActivated", "timestamp": T0, "techInfo": "lid opened"}),
        json!({});
    signed_firmware_status_notification: SignedFirmwareStatusNotificationRequest, Station,
        json!({"status": "InvalidSignature", "requestId": 12}), json!({});
    log_status_notification: LogStatusNotificationRequest, Station,
        json!({"status": "Uploaded", "requestId": 7}), json!({});
    extended_trigger_message: ExtendedTriggerMessageRequest, Central,
        json!({"requestedMessage": "LogStatusNotification", "connectorId": 1}),
        json!({"status": "Accepted"});
    get_log: GetLogRequest, Central,
        json!({
            "log": {"remoteLocation": "https://logs.example.org/upload", "oldestTimestamp": T0, "latestTimestamp": T1},
            "logType": "SecurityLog", "requestId": 7, "retries": 2, "retryInterval": 30
        }),
        json!({"status": "Accepted", "filename": "security-cp001.log"});
    signed_update_firmware: SignedUpdateFirmwareRequest, Central,
        json!({
            "retries": 3, "retryInterval": 60, "requestId": 12,
            "firmware": {
                "location": "https://fw.example.org/cp-2.0.bin", "retrieveDateTime": T0, "installDateTime": T1,
                "signingCertificate": "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----",
                "signature": "c2lnbmF0dXJl"
            }
        }),
        json!({"status": "InvalidCertificate"});
}

/// Generated values of the richest message types serialise to JSON the official schema
/// accepts, and read back equal.
mod generated_messages_conform {
    use super::*;
    use chrono::{DateTime, TimeZone, Utc};
    use proptest::collection::vec;
    use proptest::option::of;
    use proptest::prelude::*;
    use proptest::sample::select;
    use std::num::NonZeroU32;

    fn text<const N: usize>() -> impl Strategy<Value = CiString<N>> {
        // Any printable characters, non-ASCII included: maxLength counts characters.
        proptest::string::string_regex(&format!("\\PC{{0,{N}}}"))
            .expect("a valid regex")
            .prop_map(|s| CiString::new(s).expect("generated within the limit"))
    }

    fn time() -> impl Strategy<Value = DateTime<Utc>> {
        (946_684_800_000i64..4_102_444_800_000)
            .prop_map(|ms| Utc.timestamp_millis_opt(ms).single().expect("in range"))
    }

    fn tenths() -> impl Strategy<Value = OneDecimal> {
        (0u32..100_000).prop_map(|t| OneDecimal::new(f64::from(t) / 10.0).expect("a tenth"))
    }

    fn sampled_value() -> impl Strategy<Value = SampledValue> {
        (
            prop_oneof![(0.0f64..1e6).prop_map(|v| format!("{v:.3}")), "\\PC{0,40}"],
            of(select(ReadingContext::ALL)),
            of(select(ValueFormat::ALL)),
            of(select(Measurand::ALL)),
            of(select(MeterPhase::ALL)),
            of(select(Location::ALL)),
            of(select(UnitOfMeasure::ALL)),
        )
            .prop_map(
                |(value, context, format, measurand, phase, location, unit)| SampledValue {
                    value,
                    context,
                    format,
                    measurand,
                    phase,
                    location,
                    unit,
                },
            )
    }

    fn meter_value() -> impl Strategy<Value = MeterValue> {
        (time(), vec(sampled_value(), 1..12)).prop_map(|(timestamp, sampled_value)| MeterValue {
            timestamp,
            sampled_value,
        })
    }

    fn id_tag_info() -> impl Strategy<Value = IdTagInfo> {
        (
            of(time()),
            of(text::<20>()),
            select(AuthorizationStatus::ALL),
        )
            .prop_map(|(expiry_date, parent_id_tag, status)| IdTagInfo {
                expiry_date,
                parent_id_tag,
                status,
            })
    }

    fn charging_schedule() -> impl Strategy<Value = ChargingSchedule> {
        let period = (any::<u32>(), tenths(), of(1u8..=3)).prop_map(
            |(start_period, limit, number_phases)| ChargingSchedulePeriod {
                start_period,
                limit,
                number_phases,
            },
        );
        (
            of(any::<u32>()),
            of(time()),
            select(ChargingRateUnit::ALL),
            vec(period, 1..6),
            of(tenths()),
        )
            .prop_map(
                |(
                    duration,
                    start_schedule,
                    charging_rate_unit,
                    charging_schedule_period,
                    min_charging_rate,
                )| {
                    ChargingSchedule {
                        duration,
                        start_schedule,
                        charging_rate_unit,
                        charging_schedule_period,
                        min_charging_rate,
                    }
                },
            )
    }

    fn charging_profile() -> impl Strategy<Value = ChargingProfile> {
        (
            any::<i32>(),
            of(any::<i32>()),
            any::<u32>(),
            select(ChargingProfilePurpose::ALL),
            select(ChargingProfileKind::ALL),
            of(select(RecurrencyKind::ALL)),
            of(time()),
            of(time()),
            charging_schedule(),
        )
            .prop_map(
                |(
                    charging_profile_id,
                    transaction_id,
                    stack_level,
                    charging_profile_purpose,
                    charging_profile_kind,
                    recurrency_kind,
                    valid_from,
                    valid_to,
                    charging_schedule,
                )| ChargingProfile {
                    charging_profile_id,
                    transaction_id,
                    stack_level,
                    charging_profile_purpose,
                    charging_profile_kind,
                    recurrency_kind,
                    valid_from,
                    valid_to,
                    charging_schedule,
                },
            )
    }

    fn check<P: Payload + Debug + PartialEq>(file: &str, message: &P) -> Result<(), TestCaseError> {
        let written = serde_json::to_value(message).expect("messages serialise");
        let schema = schema(file);
        let errors: Vec<String> = validator(&schema)
            .iter_errors(&written)
            .map(|e| e.to_string())
            .collect();
        prop_assert!(errors.is_empty(), "{file}: {written} refused: {errors:?}");
        let read = parse::<P>(&written);
        prop_assert_eq!(read.as_ref(), Ok(message));
        Ok(())
    }

    proptest! {
        #[test]
        fn meter_values(
            connector_id in any::<u32>(),
            transaction_id in of(any::<i32>()),
            meter_value in vec(meter_value(), 1..4),
        ) {
            check("MeterValues.json", &MeterValuesRequest { connector_id, transaction_id, meter_value })?;
        }

        #[test]
        fn stop_transaction(
            id_tag in of(text::<20>()),
            meter_stop in any::<i64>(),
            timestamp in time(),
            transaction_id in any::<i32>(),
            reason in of(select(StopReason::ALL)),
            transaction_data in vec(meter_value(), 0..3),
        ) {
            let request = StopTransactionRequest { id_tag, meter_stop, timestamp, transaction_id, reason, transaction_data };
            check("StopTransaction.json", &request)?;
        }

        #[test]
        fn set_charging_profile(connector_id in any::<u32>(), cs_charging_profiles in charging_profile()) {
            check("SetChargingProfile.json", &SetChargingProfileRequest { connector_id, cs_charging_profiles })?;
        }

        #[test]
        fn remote_start_transaction(
            connector_id in of(1u32..),
            id_tag in text::<20>(),
            charging_profile in of(charging_profile()),
        ) {
            let connector_id = connector_id.map(|c| NonZeroU32::new(c).expect("generated above 0"));
            check("RemoteStartTransaction.json", &RemoteStartTransactionRequest { connector_id, id_tag, charging_profile })?;
        }

        #[test]
        fn get_composite_schedule_response(
            status in select(GetCompositeScheduleStatus::ALL),
            connector_id in of(any::<u32>()),
            schedule_start in of(time()),
            charging_schedule in of(charging_schedule()),
        ) {
            let response = GetCompositeScheduleResponse { status, connector_id, schedule_start, charging_schedule };
            check("GetCompositeScheduleResponse.json", &response)?;
        }

        #[test]
        fn boot_notification(
            vendor in text::<20>(), model in text::<20>(),
            serial in of(text::<25>()), box_serial in of(text::<25>()), firmware in of(text::<50>()),
            iccid in of(text::<20>()), imsi in of(text::<20>()), meter_type in of(text::<25>()), meter_serial in of(text::<25>()),
        ) {
            let request = BootNotificationRequest {
                charge_point_vendor: vendor,
                charge_point_model: model,
                charge_point_serial_number: serial,
                charge_box_serial_number: box_serial,
                firmware_version: firmware,
                iccid,
                imsi,
                meter_type,
                meter_serial_number: meter_serial,
            };
            check("BootNotification.json", &request)?;
        }

        #[test]
        fn status_notification(
            connector_id in any::<u32>(),
            error_code in select(ChargePointErrorCode::ALL),
            info in of(text::<50>()),
            status in select(ChargePointStatus::ALL),
            timestamp in of(time()),
            vendor_id in of(text::<255>()),
            vendor_error_code in of(text::<50>()),
        ) {
            let request = StatusNotificationRequest { connector_id, error_code, info, status, timestamp, vendor_id, vendor_error_code };
            check("StatusNotification.json", &request)?;
        }

        #[test]
        fn start_transaction_and_its_answer(
            connector_id in 1u32..,
            id_tag in text::<20>(),
            meter_start in any::<i64>(),
            reservation_id in of(any::<i32>()),
            timestamp in time(),
            id_tag_info in id_tag_info(),
            transaction_id in any::<i32>(),
        ) {
            let connector_id = NonZeroU32::new(connector_id).expect("generated above 0");
            let request = StartTransactionRequest { connector_id, id_tag, meter_start, reservation_id, timestamp };
            check("StartTransaction.json", &request)?;
            check("StartTransactionResponse.json", &StartTransactionResponse { id_tag_info, transaction_id })?;
        }

        #[test]
        fn send_local_list(
            list_version in any::<i32>(),
            entries in vec((text::<20>(), of(id_tag_info())), 0..5),
            update_type in select(UpdateType::ALL),
        ) {
            let local_authorization_list =
                entries.into_iter().map(|(id_tag, id_tag_info)| AuthorizationData { id_tag, id_tag_info }).collect();
            check("SendLocalList.json", &SendLocalListRequest { list_version, local_authorization_list, update_type })?;
        }

        #[test]
        fn get_configuration_response(
            keys in vec((text::<50>(), any::<bool>(), of(text::<500>())), 0..5),
            unknown_key in vec(text::<50>(), 0..3),
        ) {
            let configuration_key = keys.into_iter().map(|(key, readonly, value)| KeyValue { key, readonly, value }).collect();
            check("GetConfigurationResponse.json", &GetConfigurationResponse { configuration_key, unknown_key })?;
        }

        #[test]
        fn setpoints_from_any_current(
            connector_id in 0u32..8,
            profile_id in any::<i32>(),
            stack_level in 0u32..4,
            transaction_id in of(any::<i32>()),
            limit in prop_oneof![-10.0f64..100.0, Just(f64::NAN), Just(f64::INFINITY)],
            phases in select(&[1u8, 3][..]),
        ) {
            let purpose = match transaction_id {
                Some(transaction_id) => SetpointPurpose::Tx { transaction_id },
                None => SetpointPurpose::TxDefault,
            };
            let request = SetChargingProfileRequest::current_limit(
                connector_id, profile_id, stack_level, purpose, units::Amps(limit), phases,
            );
            check("SetChargingProfile.json", &request)?;
            let sent = request.cs_charging_profiles.charging_schedule.charging_schedule_period[0].limit.value();
            prop_assert!(sent >= 0.0);
            if limit.is_finite() {
                prop_assert!(sent <= limit.max(0.0) + 1e-9, "{sent} above {limit}");
                prop_assert!(sent > limit - 0.1 - 1e-9, "{sent} more than 0.1 below {limit}");
            }
        }
    }
}

#[test]
fn a_whole_call_frame_is_written_and_read_back() {
    let request = SetChargingProfileRequest::current_limit(
        1,
        101,
        1,
        SetpointPurpose::TxDefault,
        units::Amps(13.37),
        3,
    );
    let text = encode_call("cp1-42", &request);
    let Ok(Frame::Call {
        unique_id,
        action,
        payload,
    }) = Frame::parse(&text)
    else {
        panic!("{text} is not a call");
    };
    assert_eq!(
        (unique_id.as_ref(), action.as_ref()),
        ("cp1-42", "SetChargingProfile")
    );
    let CentralCall::SetChargingProfile(read) =
        CentralCall::parse(&action, payload).expect("valid")
    else {
        panic!("not a SetChargingProfile");
    };
    assert_eq!(read, request);
    let payload: Value = serde_json::from_str(payload.get()).expect("JSON");
    assert!(validator(&schema("SetChargingProfile.json")).is_valid(&payload));
}

#[test]
fn a_call_result_answer_is_written_for_the_unique_id() {
    let answer = encode_call_result(
        "abc",
        &SetChargingProfileResponse {
            status: ChargingProfileStatus::Accepted,
        },
    );
    assert_eq!(answer, r#"[3,"abc",{"status":"Accepted"}]"#);
}
