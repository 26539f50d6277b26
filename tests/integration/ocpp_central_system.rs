//! The OCPP 1.6J central system through real WebSocket clients: the handshake rules,
//! every station-to-central message, every central-to-station command, and every
//! CALLERROR path, the connection staying usable after each.

use crate::common;

use ampwarden::simulate::client::{ClientError, ConnectOptions};
use ampwarden_actors::ocpp::core::*;
use ampwarden_actors::ocpp::firmware::*;
use ampwarden_actors::ocpp::local_auth::*;
use ampwarden_actors::ocpp::remote::*;
use ampwarden_actors::ocpp::smart_charging::*;
use ampwarden_actors::ocpp::types::IdToken;
use ampwarden_actors::station::{Call, CallFailure, GetSnapshot};
use ampwarden_actors::units::ChargePointId;
use common::*;
use serde_json::json;
use std::num::NonZeroU32;

fn options() -> ConnectOptions {
    ConnectOptions::default()
}

#[tokio::test]
async fn handshake_requires_the_ocpp16_subprotocol_and_echoes_it() {
    let app = TestApp::start("", SMALL_SITE);
    let refused = app
        .connect_with(
            "CP001",
            ConnectOptions {
                subprotocol: None,
                ..options()
            },
        )
        .await;
    assert!(
        matches!(refused, Err(ClientError::Refused(400))),
        "{:?}",
        refused.err()
    );
    let refused = app
        .connect_with(
            "CP001",
            ConnectOptions {
                subprotocol: Some("ocpp2.0.1".into()),
                ..options()
            },
        )
        .await;
    assert!(
        matches!(refused, Err(ClientError::Refused(400))),
        "{:?}",
        refused.err()
    );
    let station = app
        .connect_with(
            "CP001",
            ConnectOptions {
                subprotocol: Some("ocpp2.0.1, ocpp1.6".into()),
                ..options()
            },
        )
        .await
        .expect("a list including ocpp1.6 is fine");
    assert_eq!(station.accepted_protocol.as_deref(), Some("ocpp1.6"));
}

#[tokio::test]
async fn unknown_stations_are_refused_with_404_and_noted_for_the_scan() {
    let app = TestApp::start("", SMALL_SITE);
    let refused = app.connect_with("GHOST", options()).await;
    assert!(
        matches!(refused, Err(ClientError::Refused(404))),
        "{:?}",
        refused.err()
    );
    let noted = app
        .app()
        .controller()
        .store()
        .station(&ChargePointId::from("GHOST"))
        .expect("store");
    assert_eq!(
        noted.map(|r| r.zone),
        Some(None),
        "the knock is noted, in no zone"
    );
}

#[tokio::test]
async fn commissioning_scan_registers_unknown_stations_in_the_default_zone() {
    let app = TestApp::start(
        "accept_unknown_stations = true\ndefault_zone = \"main\"",
        SMALL_SITE,
    );
    let station = app.booted("NEW-1").await;
    ok(station
        .call("Heartbeat", json!({}))
        .await
        .expect("answered"));
    let config = app.app().controller().config();
    let registered = config
        .station(&ChargePointId::from("NEW-1"))
        .expect("registered");
    assert_eq!(registered.zone.as_str(), "main");
}

#[tokio::test]
async fn a_station_with_a_password_needs_basic_auth() {
    let app = TestApp::start("", SMALL_SITE);
    let missing = app.connect_with("CP004", options()).await;
    assert!(
        matches!(missing, Err(ClientError::Refused(401))),
        "{:?}",
        missing.err()
    );
    let auth = |user: &str, pw: &str| ConnectOptions {
        basic_auth: Some((user.into(), pw.into())),
        ..options()
    };
    let wrong = app.connect_with("CP004", auth("CP004", "guess")).await;
    assert!(
        matches!(wrong, Err(ClientError::Refused(401))),
        "{:?}",
        wrong.err()
    );
    let other_user = app
        .connect_with("CP004", auth("CP001", "s3cret-key-0001"))
        .await;
    assert!(
        matches!(other_user, Err(ClientError::Refused(401))),
        "{:?}",
        other_user.err()
    );
    let station = app
        .connect_with("CP004", auth("CP004", "s3cret-key-0001"))
        .await
        .expect("right password");
    ok(station
        .call("Heartbeat", json!({}))
        .await
        .expect("answered"));
}

#[tokio::test]
async fn boot_heartbeat_status_and_authorize_are_answered() {
    let app = TestApp::start("", SMALL_SITE);
    let station = app.connect("CP001").await;
    let boot = ok(station
        .call("BootNotification", boot_payload())
        .await
        .expect("answered"));
    assert_eq!(boot["status"], "Accepted");
    assert_eq!(boot["interval"], 300);
    assert!(boot["currentTime"]
        .as_str()
        .is_some_and(|t| t.ends_with('Z')));

    let beat = ok(station
        .call("Heartbeat", json!({}))
        .await
        .expect("answered"));
    assert!(beat["currentTime"].is_string());

    let status = json!({ "connectorId": 1, "errorCode": "NoError", "status": "Preparing" });
    assert_eq!(
        ok(station
            .call("StatusNotification", status)
            .await
            .expect("answered")),
        json!({})
    );

    for (tag, expected) in [
        ("GOODTAG", "Accepted"),
        ("goodtag", "Accepted"),
        ("VIPTAG", "Accepted"),
        ("OLDTAG", "Expired"),
        ("BLOCKED", "Blocked"),
        ("NOBODY", "Invalid"),
    ] {
        let answer = ok(station
            .call("Authorize", json!({ "idTag": tag }))
            .await
            .expect("answered"));
        assert_eq!(answer["idTagInfo"]["status"], expected, "{tag}");
    }

    let snapshot = app
        .actor("CP001")
        .send(GetSnapshot)
        .await
        .expect("snapshot");
    assert!(snapshot.connected && snapshot.booted);
    assert_eq!(snapshot.vendor.as_deref(), Some("ampwarden-test"));
    assert_eq!(snapshot.connectors[0].status, "Preparing");
}

#[tokio::test]
async fn boot_configures_the_station_for_the_control_loop() {
    let app = TestApp::start("", SMALL_SITE);
    let mut station = app.booted("CP001").await;
    let mut keys = Vec::new();
    for _ in 0..3 {
        let call = station
            .next_call_of("ChangeConfiguration", WAIT)
            .await
            .expect("ChangeConfiguration");
        keys.push((
            call.payload["key"].as_str().unwrap_or("").to_owned(),
            call.payload["value"].clone(),
        ));
    }
    assert!(keys.iter().any(|(k, v)| k == "MeterValuesSampledData"
        && v.as_str().is_some_and(|v| v.contains("Current.Import"))));
    assert!(keys.iter().any(|(k, _)| k == "MeterValueSampleInterval"));
    let read_back = station
        .next_call_of("GetConfiguration", WAIT)
        .await
        .expect("GetConfiguration");
    assert!(read_back.payload["key"]
        .as_array()
        .is_some_and(|k| !k.is_empty()));
}

#[tokio::test]
async fn a_transaction_runs_from_start_to_stop_with_meter_values() {
    let app = TestApp::start("", SMALL_SITE);
    let station = app.booted("CP001").await;
    let start =
        json!({ "connectorId": 1, "idTag": "VIPTAG", "meterStart": 1000, "timestamp": now_text() });
    let started = ok(station
        .call("StartTransaction", start)
        .await
        .expect("answered"));
    assert_eq!(started["idTagInfo"]["status"], "Accepted");
    let tx = started["transactionId"].as_i64().expect("transactionId");

    let values = json!({
        "connectorId": 1,
        "transactionId": tx,
        "meterValue": [{
            "timestamp": now_text(),
            "sampledValue": [
                { "value": "15.5", "measurand": "Current.Import", "phase": "L1", "unit": "A" },
                { "value": "15.1", "measurand": "Current.Import", "phase": "L2", "unit": "A" },
                { "value": "14.9", "measurand": "Current.Import", "phase": "L3", "unit": "A" },
                { "value": "3.5", "measurand": "Energy.Active.Import.Register", "unit": "kWh" }
            ]
        }]
    });
    assert_eq!(
        ok(station.call("MeterValues", values).await.expect("answered")),
        json!({})
    );

    let actor = app.actor("CP001");
    let snapshot = actor.send(GetSnapshot).await.expect("snapshot");
    let connector = &snapshot.connectors[0];
    let t = connector.transaction.as_ref().expect("open transaction");
    assert_eq!(i64::from(t.id), tx);
    assert!(t.vip, "a VIP badge makes a VIP session");
    assert_eq!(t.energy_wh, 2500.0);
    assert_eq!(connector.draw.0[0].map(|a| a.0), Some(15.5));

    let stop = json!({
        "transactionId": tx, "idTag": "VIPTAG", "meterStop": 4200, "timestamp": now_text(), "reason": "EVDisconnected",
        "transactionData": [{ "timestamp": now_text(), "sampledValue": [{ "value": "4200", "measurand": "Energy.Active.Import.Register", "unit": "Wh" }] }]
    });
    let stopped = ok(station
        .call("StopTransaction", stop)
        .await
        .expect("answered"));
    assert_eq!(stopped["idTagInfo"]["status"], "Accepted");

    let store = app.app().controller().store();
    let record = store
        .transaction(tx as i32)
        .expect("store")
        .expect("stored");
    assert_eq!(record.energy_wh(), 3200.0);
    assert_eq!(
        record.stop.as_ref().and_then(|s| s.reason.as_deref()),
        Some("EVDisconnected")
    );
    let samples = store.samples(tx as i32).expect("samples");
    assert!(samples
        .iter()
        .any(|s| s.measurand == "Energy.Active.Import.Register" && s.value == 4200.0));
    let snapshot = actor.send(GetSnapshot).await.expect("snapshot");
    assert!(snapshot.connectors[0].transaction.is_none());
}

#[tokio::test]
async fn a_stop_without_an_id_tag_gets_no_id_tag_info_and_unknown_transactions_are_acknowledged() {
    let app = TestApp::start("", SMALL_SITE);
    let station = app.booted("CP001").await;
    let stop = json!({ "transactionId": 987654, "meterStop": 10, "timestamp": now_text() });
    assert_eq!(
        ok(station
            .call("StopTransaction", stop)
            .await
            .expect("answered")),
        json!({})
    );
}

#[tokio::test]
async fn vendor_and_status_notifications_are_answered() {
    let app = TestApp::start("", SMALL_SITE);
    let station = app.booted("CP001").await;
    let dt = ok(station
        .call(
            "DataTransfer",
            json!({ "vendorId": "acme", "messageId": "x", "data": "y" }),
        )
        .await
        .expect("answered"));
    assert_eq!(dt["status"], "UnknownVendorId");
    let d = ok(station
        .call(
            "DiagnosticsStatusNotification",
            json!({ "status": "Uploaded" }),
        )
        .await
        .expect("answered"));
    assert_eq!(d, json!({}));
    let f = ok(station
        .call(
            "FirmwareStatusNotification",
            json!({ "status": "Installed" }),
        )
        .await
        .expect("answered"));
    assert_eq!(f, json!({}));
    let logs = app
        .app()
        .controller()
        .store()
        .logs(Some(&ChargePointId::from("CP001")), 10)
        .expect("logs");
    assert!(
        logs.iter()
            .any(|l| l.message.contains("firmware update: Installed")),
        "{logs:?}"
    );
}

/// Sends a raw frame expecting a CALLERROR with `uid` and `code`, then checks that the
/// connection still answers a Heartbeat.
async fn expect_call_error(
    station: &ampwarden::simulate::client::StationClient,
    frame: &str,
    uid: &str,
    code: &str,
) {
    let reply = station
        .send_raw_expecting(frame, uid)
        .await
        .expect("an answer");
    assert_eq!(error_code(reply), code, "frame {frame}");
    ok(station
        .call("Heartbeat", json!({}))
        .await
        .expect("still usable"));
}

#[tokio::test]
async fn malformed_frames_get_the_right_call_error_and_the_connection_stays_usable() {
    let app = TestApp::start("", SMALL_SITE);
    let station = app.booted("CP001").await;
    expect_call_error(&station, "this is not json", "-1", "FormationViolation").await;
    expect_call_error(
        &station,
        r#"{"not":"an array"}"#,
        "-1",
        "FormationViolation",
    )
    .await;
    expect_call_error(&station, r#"[2,"u1","Heartbeat"]"#, "u1", "ProtocolError").await;
    expect_call_error(
        &station,
        r#"[9,"u2","Heartbeat",{}]"#,
        "u2",
        "ProtocolError",
    )
    .await;
    expect_call_error(
        &station,
        r#"[2,"u3","FlyToTheMoon",{}]"#,
        "u3",
        "NotImplemented",
    )
    .await;
    expect_call_error(
        &station,
        r#"[2,"u4","RemoteStartTransaction",{"idTag":"X"}]"#,
        "u4",
        "NotSupported",
    )
    .await;
    expect_call_error(
        &station,
        r#"[2,"u5","Authorize",{}]"#,
        "u5",
        "OccurenceConstraintViolation",
    )
    .await;
    expect_call_error(
        &station,
        r#"[2,"u6","Authorize",{"idTag":42}]"#,
        "u6",
        "TypeConstraintViolation",
    )
    .await;
    expect_call_error(
        &station,
        r#"[2,"u7","Authorize",{"idTag":"012345678901234567890"}]"#,
        "u7",
        "PropertyConstraintViolation",
    )
    .await;
    expect_call_error(
        &station,
        r#"[2,"u8","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Dancing"}]"#,
        "u8",
        "PropertyConstraintViolation",
    )
    .await;
    expect_call_error(
        &station,
        r#"[2,"u9","StartTransaction",{"connectorId":1,"idTag":"A","meterStart":0,"timestamp":"2024-01-01T10:00:00"}]"#,
        "u9",
        "PropertyConstraintViolation",
    )
    .await;
    expect_call_error(
        &station,
        r#"[2,"u10","Heartbeat",{"extra":1}]"#,
        "u10",
        "FormationViolation",
    )
    .await;
}

#[tokio::test]
async fn a_binary_frame_is_answered_as_malformed() {
    let app = TestApp::start("", SMALL_SITE);
    let mut station = app.booted("CP001").await;
    station.send_binary(vec![1, 2, 3]).expect("sent");
    let reply = station.next_unsolicited(WAIT).await.expect("an answer");
    assert_eq!(error_code(reply), "FormationViolation");
    ok(station
        .call("Heartbeat", json!({}))
        .await
        .expect("still usable"));
}

#[tokio::test]
async fn an_oversized_frame_closes_the_connection_with_1009() {
    let app = TestApp::start("", SMALL_SITE);
    let mut station = app.booted("CP001").await;
    let big = format!(
        r#"[2,"big","DataTransfer",{{"vendorId":"x","data":"{}"}}]"#,
        "a".repeat(1024 * 1024 + 10)
    );
    station.send_raw(&big).expect("sent");
    assert_eq!(station.closed(WAIT).await.expect("closed"), 1009);
    // A frame just under the limit is fine.
    let station = app.booted("CP001").await;
    let fits = format!(
        r#"[2,"fits","DataTransfer",{{"vendorId":"x","data":"{}"}}]"#,
        "a".repeat(1024 * 1024 - 200)
    );
    let reply = station
        .send_raw_expecting(&fits, "fits")
        .await
        .expect("answered");
    assert_eq!(ok(reply)["status"], "UnknownVendorId");
}

#[tokio::test]
async fn a_second_connection_with_the_same_id_replaces_the_first() {
    let app = TestApp::start("", SMALL_SITE);
    let mut first = app.booted("CP001").await;
    let second = app.booted("CP001").await;
    assert_eq!(first.closed(WAIT).await.expect("first closed"), 1000);
    ok(second
        .call("Heartbeat", json!({}))
        .await
        .expect("second works"));
}

/// Every central-to-station command goes out with its action and its answer comes back typed.
#[tokio::test]
async fn every_central_to_station_command_is_sent_and_answered() {
    let app = TestApp::start("", SMALL_SITE);
    let mut station = app.booted("CP001").await;
    let actor = app.actor("CP001");
    // Let the boot-time configuration calls pass first.
    station
        .next_call_of("GetConfiguration", WAIT)
        .await
        .expect("boot configuration done");

    let tag = || IdToken::new("GOODTAG").expect("short tag");
    let profile = SetChargingProfileRequest::current_limit(
        1,
        7,
        0,
        SetpointPurpose::TxDefault,
        ampwarden_actors::units::Amps(16.0),
        3,
    );
    let r = actor
        .send(Call(profile))
        .await
        .expect("mailbox")
        .expect("answered");
    assert_eq!(r.status, ChargingProfileStatus::Accepted);
    let mut sent = station
        .next_call_of("SetChargingProfile", WAIT)
        .await
        .expect("sent");
    if sent.payload["csChargingProfiles"]["chargingProfileId"] != 7 {
        // The boot-time safe default came first.
        sent = station
            .next_call_of("SetChargingProfile", WAIT)
            .await
            .expect("sent");
    }
    assert_eq!(
        sent.payload["csChargingProfiles"]["chargingSchedule"]["chargingRateUnit"],
        "A"
    );
    assert_eq!(
        sent.payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]
            ["limit"],
        16.0
    );

    macro_rules! roundtrip {
        ($request:expr, $action:literal) => {{
            let answer = actor
                .send(Call($request))
                .await
                .expect("mailbox")
                .expect(concat!($action, " answered"));
            let sent = station
                .next_call_of($action, WAIT)
                .await
                .expect(concat!($action, " sent"));
            (answer, sent)
        }};
    }
    let (a, _) = roundtrip!(
        ClearChargingProfileRequest::default(),
        "ClearChargingProfile"
    );
    assert_eq!(a.status, ClearChargingProfileStatus::Accepted);
    let (a, _) = roundtrip!(
        GetCompositeScheduleRequest {
            connector_id: 1,
            duration: 3600,
            charging_rate_unit: Some(ChargingRateUnit::A)
        },
        "GetCompositeSchedule"
    );
    assert_eq!(a.status, GetCompositeScheduleStatus::Rejected);
    let (a, sent) = roundtrip!(
        RemoteStartTransactionRequest {
            connector_id: NonZeroU32::new(1),
            id_tag: tag(),
            charging_profile: None
        },
        "RemoteStartTransaction"
    );
    assert_eq!(a.status, RemoteStartStopStatus::Accepted);
    assert_eq!(sent.payload["idTag"], "GOODTAG");
    let (a, _) = roundtrip!(
        RemoteStopTransactionRequest { transaction_id: 5 },
        "RemoteStopTransaction"
    );
    assert_eq!(a.status, RemoteStartStopStatus::Accepted);
    let (a, _) = roundtrip!(
        ChangeAvailabilityRequest {
            connector_id: 0,
            kind: AvailabilityType::Inoperative
        },
        "ChangeAvailability"
    );
    assert_eq!(a.status, AvailabilityStatus::Accepted);
    let (a, _) = roundtrip!(
        ChangeConfigurationRequest::new("HeartbeatInterval", "60").expect("short"),
        "ChangeConfiguration"
    );
    assert_eq!(a.status, ConfigurationStatus::Accepted);
    let (a, _) = roundtrip!(GetConfigurationRequest::default(), "GetConfiguration");
    assert!(a.configuration_key.is_empty());
    let (a, _) = roundtrip!(
        ResetRequest {
            kind: ResetType::Soft
        },
        "Reset"
    );
    assert_eq!(a.status, ResetStatus::Accepted);
    let (a, _) = roundtrip!(
        UnlockConnectorRequest {
            connector_id: NonZeroU32::MIN
        },
        "UnlockConnector"
    );
    assert_eq!(a.status, UnlockStatus::Unlocked);
    let (a, _) = roundtrip!(
        TriggerMessageRequest {
            requested_message: MessageTrigger::StatusNotification,
            connector_id: NonZeroU32::new(1)
        },
        "TriggerMessage"
    );
    assert_eq!(a.status, TriggerMessageStatus::Accepted);
    let (_, sent) = roundtrip!(
        UpdateFirmwareRequest {
            location: ampwarden_actors::ocpp::types::AnyUri::new("http://127.0.0.1/fw.bin")
                .expect("uri"),
            retries: Some(1),
            retrieve_date: chrono::Utc::now(),
            retry_interval: None,
        },
        "UpdateFirmware"
    );
    assert_eq!(sent.payload["location"], "http://127.0.0.1/fw.bin");
    let (_, _) = roundtrip!(
        GetDiagnosticsRequest {
            location: ampwarden_actors::ocpp::types::AnyUri::new("ftp://127.0.0.1/diag")
                .expect("uri"),
            retries: None,
            retry_interval: None,
            start_time: None,
            stop_time: None,
        },
        "GetDiagnostics"
    );
    let (a, _) = roundtrip!(
        SendLocalListRequest {
            list_version: 1,
            local_authorization_list: vec![],
            update_type: UpdateType::Full
        },
        "SendLocalList"
    );
    assert_eq!(a.status, UpdateStatus::Accepted);
    let (a, _) = roundtrip!(GetLocalListVersionRequest {}, "GetLocalListVersion");
    assert_eq!(a.list_version, 0);
    let (a, _) = roundtrip!(ClearCacheRequest {}, "ClearCache");
    assert_eq!(a.status, ClearCacheStatus::Accepted);
    let (a, _) = roundtrip!(
        DataTransferRequest {
            vendor_id: ampwarden_actors::ocpp::types::CiString255::new("acme").expect("short"),
            message_id: None,
            data: None
        },
        "DataTransfer"
    );
    assert_eq!(a.status, DataTransferStatus::UnknownVendorId);
}

#[tokio::test]
async fn a_command_to_a_station_that_does_not_answer_times_out_and_the_next_one_goes_out() {
    let app = TestApp::start("call_timeout_s = 1", SMALL_SITE);
    let mut station = app.manual("CP002").await;
    let actor = app.actor("CP002");
    let first = actor
        .send(Call(ClearCacheRequest {}))
        .await
        .expect("mailbox");
    assert!(matches!(first, Err(CallFailure::Timeout(_))), "{first:?}");
    station
        .next_call_of("ClearCache", WAIT)
        .await
        .expect("the first call went out");

    let second = tokio::spawn({
        let actor = actor.clone();
        async move { actor.send(Call(GetLocalListVersionRequest {})).await }
    });
    let call = station
        .next_call_of("GetLocalListVersion", WAIT)
        .await
        .expect("the next call went out");
    station
        .answer(&call.unique_id, json!({ "listVersion": 3 }))
        .expect("answered");
    let answer = second
        .await
        .expect("task")
        .expect("mailbox")
        .expect("answered in time");
    assert_eq!(answer.list_version, 3);
}

#[tokio::test]
async fn a_command_answered_with_a_call_error_reports_it() {
    let app = TestApp::start("", SMALL_SITE);
    let mut station = app.manual("CP002").await;
    let actor = app.actor("CP002");
    let pending = tokio::spawn(async move { actor.send(Call(ClearCacheRequest {})).await });
    let call = station
        .next_call_of("ClearCache", WAIT)
        .await
        .expect("sent");
    station
        .send_raw(&json!([4, call.unique_id, "NotSupported", "no cache here", {}]).to_string())
        .expect("sent");
    let r = pending.await.expect("task").expect("mailbox");
    match r {
        Err(CallFailure::Refused(e)) => assert_eq!(e.code.as_str(), "NotSupported"),
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A setpoint must not wait behind other queued CALLs (configuration, remote commands)
/// while a vehicle draws on an old limit; setpoints keep their own order.
#[tokio::test]
async fn setpoints_overtake_queued_calls_but_not_each_other() {
    use ampwarden_actors::station::{ApplyLimit, LimitPurpose};
    use ampwarden_actors::units::Amps;
    let app = TestApp::start("", SMALL_SITE);
    let mut station = app.manual("CP001").await;
    ok(station
        .call("BootNotification", boot_payload())
        .await
        .expect("boot answered"));
    // Answer what the boot brings, up to its last configuration call.
    loop {
        let call = station.next_call(WAIT).await.expect("a boot call");
        let answer = ampwarden::simulate::client::routine_answer(&call.action, &call.payload)
            .expect("a routine answer");
        station.answer(&call.unique_id, answer).expect("answered");
        if call.action == "GetConfiguration" {
            break;
        }
    }
    let actor = app.actor("CP001");
    let read = || Call(GetConfigurationRequest { key: Vec::new() });
    // One read answered end to end: the boot's last answer has been taken in too, and
    // nothing is in flight any more.
    let settled = tokio::spawn(actor.send(read()));
    let call = station.next_call(WAIT).await.expect("the read");
    station
        .answer(&call.unique_id, json!({ "configurationKey": [] }))
        .expect("answered");
    settled
        .await
        .expect("task")
        .expect("mailbox")
        .expect("read answered");
    let limit = |a| ApplyLimit {
        connector: 0,
        limit: Amps(a),
        purpose: LimitPurpose::Default,
    };
    actor.do_send(read());
    actor.do_send(read());
    actor.do_send(limit(10.0));
    actor.do_send(limit(12.0));
    // The mailbox is in order: once this is answered, all four are queued.
    actor.send(GetSnapshot).await.expect("snapshot");
    let mut seen = Vec::new();
    for _ in 0..4 {
        let call = station.next_call(WAIT).await.expect("a call");
        let answer = ampwarden::simulate::client::routine_answer(&call.action, &call.payload)
            .expect("a routine answer");
        station.answer(&call.unique_id, answer).expect("answered");
        let limit = &call.payload["csChargingProfiles"]["chargingSchedule"]
            ["chargingSchedulePeriod"][0]["limit"];
        seen.push(match limit.as_f64() {
            Some(a) => format!("{} {a}", call.action),
            None => call.action,
        });
    }
    assert_eq!(
        seen,
        [
            "GetConfiguration",
            "SetChargingProfile 10",
            "SetChargingProfile 12",
            "GetConfiguration"
        ]
    );
}
