//! Remote control of a station by the central system: start and stop transactions,
//! availability, reset, unlock, triggered messages and configuration keys.

use std::num::NonZeroU32;

use serde::{Deserialize, Serialize};

use super::smart_charging::ChargingProfile;
use super::strict::{objects, some, some_object};
use super::types::{CiString50, CiString500, IdToken, TooLong};

ocpp_enum! {
    /// The answer to a remote start or stop.
    pub enum RemoteStartStopStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

/// RemoteStartTransaction.req: start charging for `id_tag`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStartTransactionRequest {
    /// Above 0 when given.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub connector_id: Option<NonZeroU32>,
    pub id_tag: IdToken,
    /// A `TxProfile` for the transaction to come (without transactionId).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_object"
    )]
    pub charging_profile: Option<ChargingProfile>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStartTransactionResponse {
    pub status: RemoteStartStopStatus,
}

/// RemoteStopTransaction.req: stop a running transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStopTransactionRequest {
    pub transaction_id: i32,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct RemoteStopTransactionResponse {
    pub status: RemoteStartStopStatus,
}

ocpp_enum! {
    pub enum AvailabilityType {
        Inoperative = "Inoperative",
        Operative = "Operative",
    }
}

/// ChangeAvailability.req: take a connector (0 = all) in or out of service.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeAvailabilityRequest {
    pub connector_id: u32,
    #[serde(rename = "type")]
    pub kind: AvailabilityType,
}

ocpp_enum! {
    pub enum AvailabilityStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        /// After the running transaction ends.
        Scheduled = "Scheduled",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeAvailabilityResponse {
    pub status: AvailabilityStatus,
}

ocpp_enum! {
    pub enum ResetType {
        Hard = "Hard",
        Soft = "Soft",
    }
}

/// Reset.req: restart the station.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetRequest {
    #[serde(rename = "type")]
    pub kind: ResetType,
}

ocpp_enum! {
    pub enum ResetStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ResetResponse {
    pub status: ResetStatus,
}

/// UnlockConnector.req: release the cable of a connector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnlockConnectorRequest {
    /// Above 0.
    pub connector_id: NonZeroU32,
}

ocpp_enum! {
    pub enum UnlockStatus {
        Unlocked = "Unlocked",
        UnlockFailed = "UnlockFailed",
        NotSupported = "NotSupported",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct UnlockConnectorResponse {
    pub status: UnlockStatus,
}

ocpp_enum! {
    /// The message a TriggerMessage asks for.
    pub enum MessageTrigger {
        BootNotification = "BootNotification",
        DiagnosticsStatusNotification = "DiagnosticsStatusNotification",
        FirmwareStatusNotification = "FirmwareStatusNotification",
        Heartbeat = "Heartbeat",
        MeterValues = "MeterValues",
        StatusNotification = "StatusNotification",
    }
}

/// TriggerMessage.req: ask the station to send a message now (e.g. fresh MeterValues).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerMessageRequest {
    pub requested_message: MessageTrigger,
    /// Above 0 when given.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub connector_id: Option<NonZeroU32>,
}

ocpp_enum! {
    pub enum TriggerMessageStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        NotImplemented = "NotImplemented",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct TriggerMessageResponse {
    pub status: TriggerMessageStatus,
}

/// ChangeConfiguration.req: set one configuration key (e.g. `MeterValuesSampledData`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeConfigurationRequest {
    pub key: CiString50,
    pub value: CiString500,
}

impl ChangeConfigurationRequest {
    pub fn new(key: &str, value: &str) -> Result<ChangeConfigurationRequest, TooLong> {
        Ok(ChangeConfigurationRequest {
            key: CiString50::new(key)?,
            value: CiString500::new(value)?,
        })
    }
}

ocpp_enum! {
    pub enum ConfigurationStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        RebootRequired = "RebootRequired",
        NotSupported = "NotSupported",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChangeConfigurationResponse {
    pub status: ConfigurationStatus,
}

/// GetConfiguration.req: read the given keys, or all keys when none is given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetConfigurationRequest {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub key: Vec<CiString50>,
}

/// One configuration key and its value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct KeyValue {
    pub key: CiString50,
    pub readonly: bool,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub value: Option<CiString500>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetConfigurationResponse {
    #[serde(
        default,
        skip_serializing_if = "Vec::is_empty",
        deserialize_with = "objects"
    )]
    pub configuration_key: Vec<KeyValue>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub unknown_key: Vec<CiString50>,
}
