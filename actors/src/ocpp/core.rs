//! Core profile messages a charge point sends: boot, heartbeat, status, authorisation,
//! transactions and vendor data. (Meter values have their own module.)

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::meter_values::MeterValue;
use super::strict::{date_time, object, objects, some, some_date_time, some_object};
use super::types::{CiString20, CiString25, CiString255, CiString50, IdToken};

ocpp_enum! {
    /// Whether an idTag may charge.
    pub enum AuthorizationStatus {
        Accepted = "Accepted",
        Blocked = "Blocked",
        Expired = "Expired",
        Invalid = "Invalid",
        ConcurrentTx = "ConcurrentTx",
    }
}

/// The central system's verdict on an idTag.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct IdTagInfo {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "some_date_time"
    )]
    pub expiry_date: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub parent_id_tag: Option<IdToken>,
    pub status: AuthorizationStatus,
}

impl IdTagInfo {
    /// Just a status, as most answers are.
    pub fn status(status: AuthorizationStatus) -> IdTagInfo {
        IdTagInfo {
            expiry_date: None,
            parent_id_tag: None,
            status,
        }
    }
}

/// Authorize.req: may this idTag charge?
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizeRequest {
    pub id_tag: IdToken,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct AuthorizeResponse {
    #[serde(deserialize_with = "object")]
    pub id_tag_info: IdTagInfo,
}

/// BootNotification.req: the station says who it is after (re)starting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootNotificationRequest {
    pub charge_point_vendor: CiString20,
    pub charge_point_model: CiString20,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub charge_point_serial_number: Option<CiString25>,
    /// Deprecated by OCPP 1.6 itself, still sent by some stations.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub charge_box_serial_number: Option<CiString25>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub firmware_version: Option<CiString50>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub iccid: Option<CiString20>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub imsi: Option<CiString20>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub meter_type: Option<CiString25>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub meter_serial_number: Option<CiString25>,
}

ocpp_enum! {
    /// Whether the central system registers a booting station.
    pub enum RegistrationStatus {
        Accepted = "Accepted",
        Pending = "Pending",
        Rejected = "Rejected",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct BootNotificationResponse {
    pub status: RegistrationStatus,
    #[serde(with = "date_time")]
    pub current_time: DateTime<Utc>,
    /// Heartbeat interval in seconds when accepted; otherwise the delay before the
    /// next BootNotification.
    pub interval: u32,
}

/// Heartbeat.req: no fields; the answer carries the central system's clock.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HeartbeatRequest {}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct HeartbeatResponse {
    #[serde(with = "date_time")]
    pub current_time: DateTime<Utc>,
}

ocpp_enum! {
    /// The fault a station reports with its status.
    pub enum ChargePointErrorCode {
        ConnectorLockFailure = "ConnectorLockFailure",
        EvCommunicationError = "EVCommunicationError",
        GroundFailure = "GroundFailure",
        HighTemperature = "HighTemperature",
        InternalError = "InternalError",
        LocalListConflict = "LocalListConflict",
        NoError = "NoError",
        OtherError = "OtherError",
        OverCurrentFailure = "OverCurrentFailure",
        PowerMeterFailure = "PowerMeterFailure",
        PowerSwitchFailure = "PowerSwitchFailure",
        ReaderFailure = "ReaderFailure",
        ResetFailure = "ResetFailure",
        UnderVoltage = "UnderVoltage",
        OverVoltage = "OverVoltage",
        WeakSignal = "WeakSignal",
    }
}

ocpp_enum! {
    /// The state of a connector (or of the whole station, connector 0).
    pub enum ChargePointStatus {
        Available = "Available",
        Preparing = "Preparing",
        Charging = "Charging",
        /// The station (e.g. our limit 0) suspends charging.
        SuspendedEvse = "SuspendedEVSE",
        /// The vehicle does not draw (full, or waiting).
        SuspendedEv = "SuspendedEV",
        Finishing = "Finishing",
        Reserved = "Reserved",
        Unavailable = "Unavailable",
        Faulted = "Faulted",
    }
}

/// StatusNotification.req: a connector changed state or reports a fault.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StatusNotificationRequest {
    /// 0 is the station as a whole.
    pub connector_id: u32,
    pub error_code: ChargePointErrorCode,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub info: Option<CiString50>,
    pub status: ChargePointStatus,
    /// When absent, the time of receipt.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "some_date_time"
    )]
    pub timestamp: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub vendor_id: Option<CiString255>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub vendor_error_code: Option<CiString50>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StatusNotificationResponse {}

/// StartTransaction.req: a vehicle started charging on a connector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartTransactionRequest {
    /// Always above 0 (the spec says `connectorId > 0`).
    pub connector_id: std::num::NonZeroU32,
    pub id_tag: IdToken,
    /// Energy register at start, Wh. Wider than the spec's 32 bits: lifetime registers
    /// of busy stations can pass 2^31 Wh.
    pub meter_start: i64,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub reservation_id: Option<i32>,
    #[serde(with = "date_time")]
    pub timestamp: DateTime<Utc>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StartTransactionResponse {
    #[serde(deserialize_with = "object")]
    pub id_tag_info: IdTagInfo,
    pub transaction_id: i32,
}

ocpp_enum! {
    /// Why a transaction stopped (absent means `Local`).
    pub enum StopReason {
        EmergencyStop = "EmergencyStop",
        EvDisconnected = "EVDisconnected",
        HardReset = "HardReset",
        Local = "Local",
        Other = "Other",
        PowerLoss = "PowerLoss",
        Reboot = "Reboot",
        Remote = "Remote",
        SoftReset = "SoftReset",
        UnlockCommand = "UnlockCommand",
        DeAuthorized = "DeAuthorized",
    }
}

/// StopTransaction.req: a transaction ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopTransactionRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub id_tag: Option<IdToken>,
    /// Energy register at stop, Wh (64 bits, see `StartTransactionRequest::meter_start`).
    pub meter_stop: i64,
    #[serde(with = "date_time")]
    pub timestamp: DateTime<Utc>,
    pub transaction_id: i32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub reason: Option<StopReason>,
    /// Meter values of the transaction, for billing.
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "objects"
    )]
    pub transaction_data: Vec<MeterValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct StopTransactionResponse {
    /// Present when the request carried an idTag.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_object"
    )]
    pub id_tag_info: Option<IdTagInfo>,
}

/// DataTransfer.req, sent either way: vendor-specific data.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataTransferRequest {
    pub vendor_id: CiString255,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub message_id: Option<CiString50>,
    /// Free text of any length.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub data: Option<String>,
}

ocpp_enum! {
    pub enum DataTransferStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        UnknownMessageId = "UnknownMessageId",
        UnknownVendorId = "UnknownVendorId",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct DataTransferResponse {
    pub status: DataTransferStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub data: Option<String>,
}
