//! Smart charging: the charging profiles through which the controller sets the current
//! of every connector, and the messages that set, clear and inspect them.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::strict::{non_empty_objects, object, some, some_date_time, some_object};
use super::types::OneDecimal;
use crate::units::Amps;

ocpp_enum! {
    /// What a profile limits: the whole station, a connector's default, or one transaction.
    pub enum ChargingProfilePurpose {
        ChargePointMaxProfile = "ChargePointMaxProfile",
        TxDefaultProfile = "TxDefaultProfile",
        TxProfile = "TxProfile",
    }
}

ocpp_enum! {
    /// How a schedule's periods are anchored in time.
    pub enum ChargingProfileKind {
        /// From `startSchedule`.
        Absolute = "Absolute",
        /// Repeating daily or weekly from `startSchedule`.
        Recurring = "Recurring",
        /// From the start of the transaction (or of the profile's reception).
        Relative = "Relative",
    }
}

ocpp_enum! {
    pub enum RecurrencyKind {
        Daily = "Daily",
        Weekly = "Weekly",
    }
}

ocpp_enum! {
    /// Amperes per phase, or watts.
    pub enum ChargingRateUnit {
        A = "A",
        W = "W",
    }
}

/// One period of a schedule: from `start_period` seconds on, at most `limit`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingSchedulePeriod {
    /// Seconds from the start of the schedule.
    pub start_period: u32,
    /// In the schedule's unit; A is per phase.
    pub limit: OneDecimal,
    /// Phases the vehicle may use (3 when absent).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub number_phases: Option<u8>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingSchedule {
    /// Seconds; absent means the last period lasts for ever (or until the transaction ends).
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub duration: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "some_date_time"
    )]
    pub start_schedule: Option<DateTime<Utc>>,
    pub charging_rate_unit: ChargingRateUnit,
    /// At least one, in increasing `start_period`, the first at 0.
    #[serde(deserialize_with = "non_empty_objects")]
    pub charging_schedule_period: Vec<ChargingSchedulePeriod>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub min_charging_rate: Option<OneDecimal>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ChargingProfile {
    pub charging_profile_id: i32,
    /// Only for a `TxProfile`: the transaction it limits.
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub transaction_id: Option<i32>,
    /// Higher levels take precedence within a purpose.
    pub stack_level: u32,
    pub charging_profile_purpose: ChargingProfilePurpose,
    pub charging_profile_kind: ChargingProfileKind,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub recurrency_kind: Option<RecurrencyKind>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "some_date_time"
    )]
    pub valid_from: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "some_date_time"
    )]
    pub valid_to: Option<DateTime<Utc>>,
    #[serde(deserialize_with = "object")]
    pub charging_schedule: ChargingSchedule,
}

/// Which kind of setpoint profile, and for a transaction, which one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SetpointPurpose {
    /// The limit of a connector (or of every connector, connector 0) when no
    /// transaction profile applies: the safe default sent at boot.
    TxDefault,
    /// The limit of one running transaction.
    Tx { transaction_id: i32 },
}

/// SetChargingProfile.req: installs (or replaces, same id or same stack level and
/// purpose) a charging profile on a connector.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetChargingProfileRequest {
    /// 0 applies to the whole station (for a `TxDefaultProfile`: to every connector).
    pub connector_id: u32,
    #[serde(deserialize_with = "object")]
    pub cs_charging_profiles: ChargingProfile,
}

impl SetChargingProfileRequest {
    /// A setpoint as the controller sends it: a current limit per phase, rounded down
    /// to 0.1 A (never up), in one period from 0 with no end, for `number_phases`.
    ///
    /// The profile is `Relative`, so it holds from the start of the transaction
    /// whatever the station's clock says; a station that has been charging for
    /// hours takes the new limit at once, as the only period covers all of it.
    pub fn current_limit(
        connector_id: u32,
        charging_profile_id: i32,
        stack_level: u32,
        purpose: SetpointPurpose,
        limit: Amps,
        number_phases: u8,
    ) -> SetChargingProfileRequest {
        let (charging_profile_purpose, transaction_id) = match purpose {
            SetpointPurpose::TxDefault => (ChargingProfilePurpose::TxDefaultProfile, None),
            SetpointPurpose::Tx { transaction_id } => {
                (ChargingProfilePurpose::TxProfile, Some(transaction_id))
            }
        };
        SetChargingProfileRequest {
            connector_id,
            cs_charging_profiles: ChargingProfile {
                charging_profile_id,
                transaction_id,
                stack_level,
                charging_profile_purpose,
                charging_profile_kind: ChargingProfileKind::Relative,
                recurrency_kind: None,
                valid_from: None,
                valid_to: None,
                charging_schedule: ChargingSchedule {
                    duration: None,
                    start_schedule: None,
                    charging_rate_unit: ChargingRateUnit::A,
                    charging_schedule_period: vec![ChargingSchedulePeriod {
                        start_period: 0,
                        limit: OneDecimal::floor(limit.0),
                        number_phases: Some(number_phases),
                    }],
                    min_charging_rate: None,
                },
            },
        }
    }
}

ocpp_enum! {
    pub enum ChargingProfileStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
        NotSupported = "NotSupported",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SetChargingProfileResponse {
    pub status: ChargingProfileStatus,
}

/// ClearChargingProfile.req: removes the profile with `id`, or every profile matching
/// all the criteria given.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearChargingProfileRequest {
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub id: Option<i32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub connector_id: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub charging_profile_purpose: Option<ChargingProfilePurpose>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub stack_level: Option<u32>,
}

ocpp_enum! {
    pub enum ClearChargingProfileStatus {
        Accepted = "Accepted",
        Unknown = "Unknown",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ClearChargingProfileResponse {
    pub status: ClearChargingProfileStatus,
}

/// GetCompositeSchedule.req: what will the station allow on a connector over the
/// next `duration` seconds, all profiles combined?
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetCompositeScheduleRequest {
    /// 0 is the station's grid connection.
    pub connector_id: u32,
    pub duration: u32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub charging_rate_unit: Option<ChargingRateUnit>,
}

ocpp_enum! {
    pub enum GetCompositeScheduleStatus {
        Accepted = "Accepted",
        Rejected = "Rejected",
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct GetCompositeScheduleResponse {
    pub status: GetCompositeScheduleStatus,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub connector_id: Option<u32>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        with = "some_date_time"
    )]
    pub schedule_start: Option<DateTime<Utc>>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some_object"
    )]
    pub charging_schedule: Option<ChargingSchedule>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setpoint_limit_is_rounded_down_to_a_tenth() {
        let request = SetChargingProfileRequest::current_limit(
            1,
            7,
            1,
            SetpointPurpose::TxDefault,
            Amps(16.29),
            3,
        );
        let period = &request
            .cs_charging_profiles
            .charging_schedule
            .charging_schedule_period[0];
        assert_eq!(period.limit.value(), 16.2);
        assert_eq!(period.start_period, 0);
        assert_eq!(period.number_phases, Some(3));
    }

    #[test]
    fn tx_setpoint_names_its_transaction_and_default_setpoint_does_not() {
        let tx = SetChargingProfileRequest::current_limit(
            2,
            8,
            2,
            SetpointPurpose::Tx { transaction_id: 42 },
            Amps(10.0),
            1,
        );
        assert_eq!(
            tx.cs_charging_profiles.charging_profile_purpose,
            ChargingProfilePurpose::TxProfile
        );
        assert_eq!(tx.cs_charging_profiles.transaction_id, Some(42));
        let default = SetChargingProfileRequest::current_limit(
            0,
            9,
            1,
            SetpointPurpose::TxDefault,
            Amps(0.0),
            1,
        );
        assert_eq!(
            default.cs_charging_profiles.charging_profile_purpose,
            ChargingProfilePurpose::TxDefaultProfile
        );
        assert_eq!(default.cs_charging_profiles.transaction_id, None);
    }

    #[test]
    fn a_suspended_vehicle_gets_limit_zero_even_from_a_negative_or_nan_share() {
        for share in [-3.0, f64::NAN] {
            let request = SetChargingProfileRequest::current_limit(
                1,
                1,
                1,
                SetpointPurpose::TxDefault,
                Amps(share),
                3,
            );
            let limit = request
                .cs_charging_profiles
                .charging_schedule
                .charging_schedule_period[0]
                .limit;
            assert_eq!(limit, OneDecimal::ZERO);
        }
    }
}
