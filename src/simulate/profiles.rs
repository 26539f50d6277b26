//! The charging profiles a simulated station holds, and the limit in force they give a
//! connector. Pure. The rules are OCPP 1.6's (§3.13) as the SPEC reads them: within a
//! purpose the highest stack level wins; the limit in force is the TxProfile of the
//! connector's transaction, else its TxDefaultProfile, else the one on connector 0, capped
//! by any ChargePointMaxProfile. A station that holds nothing is limited only by itself.

use ampwarden_actors::ocpp::smart_charging::{
    ChargingProfile, ChargingProfileKind, ChargingProfilePurpose, ChargingProfileStatus,
    ChargingRateUnit, ClearChargingProfileRequest, ClearChargingProfileStatus, RecurrencyKind,
    SetChargingProfileRequest,
};
use ampwarden_actors::units::Amps;
use chrono::{DateTime, Utc};

/// OCPP: a period without `numberPhases` is for 3 phases.
const DEFAULT_PHASES: u8 = 3;

#[derive(Clone, Debug)]
struct Installed {
    connector: u32,
    profile: ChargingProfile,
    /// For a TxProfile: the transaction it belongs to (given, or the one running).
    transaction: Option<i32>,
    /// Start of a Relative schedule: when it was received.
    received_at: DateTime<Utc>,
}

/// Every profile a station holds.
#[derive(Clone, Debug, Default)]
pub struct ChargingProfiles {
    installed: Vec<Installed>,
}

impl ChargingProfiles {
    /// Installs a profile as a station would, refusing what OCPP says a station refuses:
    /// a TxProfile on connector 0 or without a matching running transaction, and a
    /// ChargePointMaxProfile on a single connector. It replaces a profile with the same id,
    /// and one with the same connector, purpose and stack level.
    pub fn set(
        &mut self,
        request: SetChargingProfileRequest,
        running_transaction: Option<i32>,
        now: DateTime<Utc>,
    ) -> ChargingProfileStatus {
        let connector = request.connector_id;
        let profile = request.cs_charging_profiles;
        let purpose = profile.charging_profile_purpose;
        let transaction = match purpose {
            ChargingProfilePurpose::TxProfile => {
                let Some(running) = running_transaction.filter(|_| connector != 0) else {
                    return ChargingProfileStatus::Rejected;
                };
                if profile.transaction_id.is_some_and(|t| t != running) {
                    return ChargingProfileStatus::Rejected;
                }
                Some(running)
            }
            ChargingProfilePurpose::ChargePointMaxProfile if connector != 0 => {
                return ChargingProfileStatus::Rejected;
            }
            _ => None,
        };
        self.installed.retain(|i| {
            i.profile.charging_profile_id != profile.charging_profile_id
                && !(i.connector == connector
                    && i.profile.charging_profile_purpose == purpose
                    && i.profile.stack_level == profile.stack_level)
        });
        self.installed.push(Installed {
            connector,
            profile,
            transaction,
            received_at: now,
        });
        ChargingProfileStatus::Accepted
    }

    /// Removes the profile with the id given, or else every profile matching all the
    /// criteria given.
    pub fn clear(&mut self, request: &ClearChargingProfileRequest) -> ClearChargingProfileStatus {
        let before = self.installed.len();
        self.installed.retain(|i| {
            let p = &i.profile;
            let matches = match request.id {
                Some(id) => p.charging_profile_id == id,
                None => {
                    request.connector_id.is_none_or(|c| c == i.connector)
                        && request
                            .charging_profile_purpose
                            .is_none_or(|purpose| purpose == p.charging_profile_purpose)
                        && request.stack_level.is_none_or(|s| s == p.stack_level)
                }
            };
            !matches
        });
        if self.installed.len() < before {
            ClearChargingProfileStatus::Accepted
        } else {
            ClearChargingProfileStatus::Unknown
        }
    }

    /// A TxProfile ends with its transaction.
    pub fn end_transaction(&mut self, transaction: i32) {
        self.installed
            .retain(|i| i.transaction != Some(transaction));
    }

    /// The limit in force on `connector` per phase, if any profile gives one.
    pub fn limit_in_force(
        &self,
        connector: u32,
        transaction: Option<i32>,
        now: DateTime<Utc>,
        voltage_v: f64,
    ) -> Option<Amps> {
        use ChargingProfilePurpose::*;
        let tx = transaction.and_then(|t| {
            self.winner(now, voltage_v, |i| {
                i.connector == connector
                    && i.profile.charging_profile_purpose == TxProfile
                    && i.transaction == Some(t)
            })
        });
        let own_default = || {
            self.winner(now, voltage_v, |i| {
                i.connector == connector && i.profile.charging_profile_purpose == TxDefaultProfile
            })
        };
        let station_default = || {
            self.winner(now, voltage_v, |i| {
                i.connector == 0 && i.profile.charging_profile_purpose == TxDefaultProfile
            })
        };
        let limit = tx.or_else(own_default).or_else(station_default);
        let station_max = self.winner(now, voltage_v, |i| {
            i.profile.charging_profile_purpose == ChargePointMaxProfile
        });
        match (limit, station_max) {
            (Some(l), Some(m)) => Some(l.min(m)),
            (l, m) => l.or(m),
        }
    }

    /// The limit of the highest-stack-level profile in force among those `wanted`.
    fn winner(
        &self,
        now: DateTime<Utc>,
        voltage_v: f64,
        wanted: impl Fn(&Installed) -> bool,
    ) -> Option<Amps> {
        self.installed
            .iter()
            .filter(|i| wanted(i))
            .filter_map(|i| Some((i.profile.stack_level, limit_now(i, now, voltage_v)?)))
            .max_by_key(|(level, _)| *level)
            .map(|(_, limit)| limit)
    }
}

/// The limit a profile sets at `now`, per phase, or `None` when it is not in force then.
fn limit_now(installed: &Installed, now: DateTime<Utc>, voltage_v: f64) -> Option<Amps> {
    let profile = &installed.profile;
    if profile.valid_from.is_some_and(|from| now < from)
        || profile.valid_to.is_some_and(|to| now >= to)
    {
        return None;
    }
    let schedule = &profile.charging_schedule;
    let start = match profile.charging_profile_kind {
        ChargingProfileKind::Relative => installed.received_at,
        ChargingProfileKind::Absolute | ChargingProfileKind::Recurring => {
            schedule.start_schedule.unwrap_or(installed.received_at)
        }
    };
    let mut elapsed_s = (now - start).num_milliseconds() as f64 / 1000.0;
    if profile.charging_profile_kind == ChargingProfileKind::Recurring {
        let cycle_s = match profile.recurrency_kind {
            Some(RecurrencyKind::Weekly) => 7.0 * 86_400.0,
            Some(RecurrencyKind::Daily) | None => 86_400.0,
        };
        elapsed_s = elapsed_s.rem_euclid(cycle_s);
    }
    if elapsed_s < 0.0 || schedule.duration.is_some_and(|d| elapsed_s >= f64::from(d)) {
        return None;
    }
    let period = schedule
        .charging_schedule_period
        .iter()
        .filter(|p| f64::from(p.start_period) <= elapsed_s)
        .max_by_key(|p| p.start_period)?;
    let limit = period.limit.value();
    Some(match schedule.charging_rate_unit {
        ChargingRateUnit::A => Amps(limit),
        ChargingRateUnit::W => {
            let phases = period.number_phases.unwrap_or(DEFAULT_PHASES).max(1);
            Amps(limit / (voltage_v * f64::from(phases)))
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ampwarden_actors::ocpp::smart_charging::SetpointPurpose;
    use chrono::Duration;

    const V: f64 = 230.0;

    fn default_profile(connector: u32, id: i32, limit: f64) -> SetChargingProfileRequest {
        SetChargingProfileRequest::current_limit(
            connector,
            id,
            0,
            SetpointPurpose::TxDefault,
            Amps(limit),
            3,
        )
    }

    fn tx_profile(connector: u32, tx: i32, limit: f64) -> SetChargingProfileRequest {
        SetChargingProfileRequest::current_limit(
            connector,
            2000 + connector as i32,
            1,
            SetpointPurpose::Tx { transaction_id: tx },
            Amps(limit),
            3,
        )
    }

    fn now() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-03-02T10:00:00Z")
            .expect("valid date")
            .with_timezone(&Utc)
    }

    #[test]
    fn without_profiles_there_is_no_limit() {
        assert_eq!(
            ChargingProfiles::default().limit_in_force(1, Some(5), now(), V),
            None
        );
    }

    #[test]
    fn a_station_default_applies_to_every_connector() {
        let mut p = ChargingProfiles::default();
        assert_eq!(
            p.set(default_profile(0, 1000, 10.0), None, now()),
            ChargingProfileStatus::Accepted
        );
        assert_eq!(p.limit_in_force(1, None, now(), V), Some(Amps(10.0)));
        assert_eq!(p.limit_in_force(2, Some(3), now(), V), Some(Amps(10.0)));
    }

    #[test]
    fn a_connector_default_beats_the_station_default_even_when_higher() {
        let mut p = ChargingProfiles::default();
        p.set(default_profile(0, 1000, 6.0), None, now());
        p.set(default_profile(1, 1001, 16.0), None, now());
        assert_eq!(p.limit_in_force(1, None, now(), V), Some(Amps(16.0)));
        assert_eq!(p.limit_in_force(2, None, now(), V), Some(Amps(6.0)));
    }

    #[test]
    fn the_transaction_profile_beats_the_defaults_and_ends_with_its_transaction() {
        let mut p = ChargingProfiles::default();
        p.set(default_profile(0, 1000, 6.0), None, now());
        assert_eq!(
            p.set(tx_profile(1, 7, 20.0), Some(7), now()),
            ChargingProfileStatus::Accepted
        );
        assert_eq!(p.limit_in_force(1, Some(7), now(), V), Some(Amps(20.0)));
        // Another transaction on the same connector does not inherit it.
        assert_eq!(p.limit_in_force(1, Some(8), now(), V), Some(Amps(6.0)));
        p.end_transaction(7);
        assert_eq!(p.limit_in_force(1, Some(7), now(), V), Some(Amps(6.0)));
    }

    #[test]
    fn a_suspension_to_zero_is_a_limit_in_force() {
        let mut p = ChargingProfiles::default();
        p.set(tx_profile(1, 7, 0.0), Some(7), now());
        assert_eq!(p.limit_in_force(1, Some(7), now(), V), Some(Amps::ZERO));
    }

    #[test]
    fn a_transaction_profile_without_its_transaction_is_rejected() {
        let mut p = ChargingProfiles::default();
        assert_eq!(
            p.set(tx_profile(1, 7, 20.0), None, now()),
            ChargingProfileStatus::Rejected
        );
        assert_eq!(
            p.set(tx_profile(1, 7, 20.0), Some(8), now()),
            ChargingProfileStatus::Rejected
        );
        assert_eq!(
            p.set(tx_profile(0, 7, 20.0), Some(7), now()),
            ChargingProfileStatus::Rejected
        );
        assert_eq!(p.limit_in_force(1, Some(7), now(), V), None);
    }

    #[test]
    fn a_new_profile_replaces_the_one_with_the_same_id_or_stack_level() {
        let mut p = ChargingProfiles::default();
        p.set(default_profile(1, 1001, 16.0), None, now());
        p.set(default_profile(1, 1001, 8.0), None, now());
        assert_eq!(p.limit_in_force(1, None, now(), V), Some(Amps(8.0)));
        // Same connector, purpose and stack level, other id: replaced too.
        p.set(default_profile(1, 1500, 12.0), None, now());
        assert_eq!(p.limit_in_force(1, None, now(), V), Some(Amps(12.0)));
        p.clear(&ClearChargingProfileRequest {
            id: Some(1500),
            ..Default::default()
        });
        assert_eq!(p.limit_in_force(1, None, now(), V), None);
    }

    #[test]
    fn the_highest_stack_level_wins_within_a_purpose() {
        let mut p = ChargingProfiles::default();
        let mut high = default_profile(1, 1, 20.0);
        high.cs_charging_profiles.stack_level = 5;
        p.set(high, None, now());
        p.set(default_profile(1, 2, 10.0), None, now());
        assert_eq!(p.limit_in_force(1, None, now(), V), Some(Amps(20.0)));
    }

    #[test]
    fn clearing_by_criteria_removes_only_matching_profiles() {
        let mut p = ChargingProfiles::default();
        p.set(default_profile(0, 1000, 6.0), None, now());
        p.set(tx_profile(1, 7, 20.0), Some(7), now());
        let status = p.clear(&ClearChargingProfileRequest {
            charging_profile_purpose: Some(ChargingProfilePurpose::TxProfile),
            ..Default::default()
        });
        assert_eq!(status, ClearChargingProfileStatus::Accepted);
        assert_eq!(p.limit_in_force(1, Some(7), now(), V), Some(Amps(6.0)));
        let none_left = p.clear(&ClearChargingProfileRequest {
            charging_profile_purpose: Some(ChargingProfilePurpose::TxProfile),
            ..Default::default()
        });
        assert_eq!(none_left, ClearChargingProfileStatus::Unknown);
    }

    #[test]
    fn the_station_maximum_caps_every_connector() {
        let mut p = ChargingProfiles::default();
        let mut max = default_profile(0, 1, 10.0);
        max.cs_charging_profiles.charging_profile_purpose =
            ChargingProfilePurpose::ChargePointMaxProfile;
        assert_eq!(
            p.set(max.clone(), None, now()),
            ChargingProfileStatus::Accepted
        );
        p.set(tx_profile(1, 7, 20.0), Some(7), now());
        assert_eq!(p.limit_in_force(1, Some(7), now(), V), Some(Amps(10.0)));
        max.connector_id = 1;
        assert_eq!(p.set(max, None, now()), ChargingProfileStatus::Rejected);
    }

    #[test]
    fn a_watt_limit_is_shared_over_its_phases() {
        let mut p = ChargingProfiles::default();
        let mut request = default_profile(1, 1, 0.0);
        let schedule = &mut request.cs_charging_profiles.charging_schedule;
        schedule.charging_rate_unit = ChargingRateUnit::W;
        schedule.charging_schedule_period[0].limit =
            ampwarden_actors::ocpp::types::OneDecimal::floor(11_040.0);
        p.set(request, None, now());
        let limit = p.limit_in_force(1, None, now(), V).expect("a limit");
        assert!((limit.0 - 16.0).abs() < 1e-9, "{limit}");
    }

    #[test]
    fn the_period_in_force_follows_the_clock_and_the_duration_ends_it() {
        use ampwarden_actors::ocpp::smart_charging::ChargingSchedulePeriod;
        use ampwarden_actors::ocpp::types::OneDecimal;
        let mut p = ChargingProfiles::default();
        let mut request = default_profile(1, 1, 16.0);
        let schedule = &mut request.cs_charging_profiles.charging_schedule;
        schedule
            .charging_schedule_period
            .push(ChargingSchedulePeriod {
                start_period: 600,
                limit: OneDecimal::floor(8.0),
                number_phases: None,
            });
        schedule.duration = Some(1200);
        p.set(request, None, now());
        let at = |s| now() + Duration::seconds(s);
        assert_eq!(p.limit_in_force(1, None, at(10), V), Some(Amps(16.0)));
        assert_eq!(p.limit_in_force(1, None, at(700), V), Some(Amps(8.0)));
        assert_eq!(p.limit_in_force(1, None, at(1300), V), None);
    }
}
