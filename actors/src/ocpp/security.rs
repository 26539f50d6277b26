//! The OCPP 1.6 security extension ("Improved security for OCPP 1.6-J", edition 3): what
//! stations report about security events, signed firmware updates and log uploads, and
//! what the central system may ask of a station that supports it.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::strict::{date_time, object, some, some_date_time};
use super::types::{CiString, CiString255, CiString50};

/// A string of at most 512 characters (a URL of the extension).
pub type CiString512 = CiString<512>;
/// A PEM certificate as the extension carries it.
pub type CiString5500 = CiString<5500>;
/// A base64 signature.
pub type CiString800 = CiString<800>;

/// SecurityEventNotification.req: a security event at the station (its type is one of
/// the extension's list, or the vendor's own).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SecurityEventNotificationRequest {
    #[serde(rename = "type")]
    pub kind: CiString50,
    #[serde(with = "date_time")]
    pub timestamp: DateTime<Utc>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub tech_info: Option<CiString255>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecurityEventNotificationResponse {}

/// The events the extension's list marks critical (pushed to the central system at
/// once, even when the station's security log is not full).
pub const CRITICAL_SECURITY_EVENTS: [&str; 7] = [
    "FirmwareUpdated",
    "SettingSystemTime",
    "StartupOfTheDevice",
    "ResetOrReboot",
    "SecurityLogWasCleared",
    "MemoryExhaustion",
    "TamperDetectionActivated",
];

/// Whether a security event type is critical by the extension's list.
pub fn is_critical_security_event(kind: &str) -> bool {
    CRITICAL_SECURITY_EVENTS.contains(&kind)
}

ocpp_enum! {
    pub enum SignedFirmwareStatus {
        Downloaded = "Downloaded",
        DownloadFailed = "DownloadFailed",
        Downloading = "Downloading",
        DownloadScheduled = "DownloadScheduled",
        DownloadPaused = "DownloadPaused",
        Idle = "Idle",
        InstallationFailed = "InstallationFailed",
        Installing = "Installing",
        Installed = "Installed",
        InstallRebooting = "InstallRebooting",
        InstallScheduled = "InstallScheduled",
        InstallVerificationFailed = "InstallVerificationFailed",
        InvalidSignature = "InvalidSignature",
        SignatureVerified = "SignatureVerified",
    }
}

/// SignedFirmwareStatusNotification.req: progress of a signed firmware update.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedFirmwareStatusNotificationRequest {
    pub status: SignedFirmwareStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub request_id: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignedFirmwareStatusNotificationResponse {}

ocpp_enum! {
    pub enum UploadLogStatus {
        BadMessage = "BadMessage",
        Idle = "Idle",
        NotSupportedOperation = "NotSupportedOperation",
        PermissionDenied = "PermissionDenied",
        Uploaded = "Uploaded",
        UploadFailure = "UploadFailure",
        Uploading = "Uploading",
    }
}

/// LogStatusNotification.req: progress of a log upload asked with GetLog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogStatusNotificationRequest {
    pub status: UploadLogStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub request_id: Option<i32>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogStatusNotificationResponse {}

ocpp_enum! {
    pub enum ExtendedMessageTrigger {
        BootNotification = "BootNotification",
        LogStatusNotification = "LogStatusNotification",
        FirmwareStatusNotification = "FirmwareStatusNotification",
        Heartbeat = "Heartbeat",
        MeterValues = "MeterValues",
        SignChargePointCertificate = "SignChargePointCertificate",
        StatusNotification = "StatusNotification",
    }
}

/// ExtendedTriggerMessage.req: ask the station to send one of its messages now.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtendedTriggerMessageRequest {
    pub requested_message: ExtendedMessageTrigger,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub connector_id: Option<i32>,
}

ocpp_enum! {
    pub enum TriggerMessageStatusExtended {
        Accepted = "Accepted",
        Rejected = "Rejected",
        NotImplemented = "NotImplemented",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ExtendedTriggerMessageResponse {
    pub status: TriggerMessageStatusExtended,
}

ocpp_enum! {
    pub enum LogType {
        DiagnosticsLog = "DiagnosticsLog",
        SecurityLog = "SecurityLog",
    }
}

/// Where and what to upload.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct LogParameters {
    pub remote_location: CiString512,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "some_date_time"
    )]
    pub oldest_timestamp: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "some_date_time"
    )]
    pub latest_timestamp: Option<DateTime<Utc>>,
}

/// GetLog.req: upload a diagnostics or security log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetLogRequest {
    #[serde(deserialize_with = "object")]
    pub log: LogParameters,
    pub log_type: LogType,
    pub request_id: i32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub retries: Option<i32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub retry_interval: Option<i32>,
}

ocpp_enum! {
    pub enum LogStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        AcceptedCanceled = "AcceptedCanceled",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetLogResponse {
    pub status: LogStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub filename: Option<CiString255>,
}

/// The firmware of a SignedUpdateFirmware: where it is, when to fetch and install it,
/// and what proves it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedFirmware {
    pub location: CiString512,
    #[serde(with = "date_time")]
    pub retrieve_date_time: DateTime<Utc>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "some_date_time"
    )]
    pub install_date_time: Option<DateTime<Utc>>,
    pub signing_certificate: CiString5500,
    pub signature: CiString800,
}

/// SignedUpdateFirmware.req: install a signed firmware.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedUpdateFirmwareRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub retries: Option<i32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub retry_interval: Option<i32>,
    pub request_id: i32,
    #[serde(deserialize_with = "object")]
    pub firmware: SignedFirmware,
}

ocpp_enum! {
    pub enum UpdateFirmwareStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        AcceptedCanceled = "AcceptedCanceled",
        InvalidCertificate = "InvalidCertificate",
        RevokedCertificate = "RevokedCertificate",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SignedUpdateFirmwareResponse {
    pub status: UpdateFirmwareStatus,
}
