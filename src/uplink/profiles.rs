//! The CPO's charging profiles for one station, kept as constraints (never forwarded):
//! per connector and purpose the profile with the highest stack level valid now, and the
//! limit of its period in force. The allocation enforces min(local allocation, CPO limit).

use std::collections::BTreeMap;

use ampwarden_actors::ocpp::{
    ChargingProfile, ChargingProfileKind, ChargingProfilePurpose, ChargingRateUnit,
    ChargingSchedule, ChargingSchedulePeriod, ClearChargingProfileRequest, OneDecimal,
};
use ampwarden_actors::units::Amps;
use chrono::{DateTime, Utc};

/// A profile as received, with when it arrived (the start of a Relative one).
#[derive(Clone, Debug)]
struct Held {
    connector: u32,
    profile: ChargingProfile,
    received: DateTime<Utc>,
}

#[derive(Clone, Debug, Default)]
pub struct CpoProfiles {
    held: Vec<Held>,
}

impl CpoProfiles {
    /// SetChargingProfile: replaces a profile of the same id, or of the same connector,
    /// purpose and stack level (OCPP 1.6 §3.13.2).
    pub fn set(&mut self, connector: u32, profile: ChargingProfile, now: DateTime<Utc>) {
        self.held.retain(|h| {
            h.profile.charging_profile_id != profile.charging_profile_id
                && !(h.connector == connector
                    && h.profile.charging_profile_purpose == profile.charging_profile_purpose
                    && h.profile.stack_level == profile.stack_level)
        });
        self.held.push(Held {
            connector,
            profile,
            received: now,
        });
    }

    /// ClearChargingProfile: whether any profile was removed.
    pub fn clear(&mut self, r: &ClearChargingProfileRequest) -> bool {
        let before = self.held.len();
        self.held.retain(|h| {
            let matches = r.id.is_none_or(|id| id == h.profile.charging_profile_id)
                && r.connector_id.is_none_or(|c| c == h.connector)
                && r.charging_profile_purpose
                    .is_none_or(|p| p == h.profile.charging_profile_purpose)
                && r.stack_level.is_none_or(|s| s == h.profile.stack_level);
            !matches
        });
        self.held.len() != before
    }

    /// A TxProfile ends with its transaction: those of transactions not among `running`
    /// are dropped.
    pub fn keep_transactions(&mut self, running: &[i32]) {
        self.held.retain(|h| {
            h.profile.charging_profile_purpose != ChargingProfilePurpose::TxProfile
                || h.profile
                    .transaction_id
                    .is_some_and(|t| running.contains(&t))
        });
    }

    /// The limit in force of one purpose on one connector, in amperes per phase.
    fn limit(
        &self,
        connector: u32,
        purpose: ChargingProfilePurpose,
        transaction: Option<i32>,
        now: DateTime<Utc>,
        volts: f64,
    ) -> Option<Amps> {
        self.held
            .iter()
            .filter(|h| h.connector == connector && h.profile.charging_profile_purpose == purpose)
            .filter(|h| {
                purpose != ChargingProfilePurpose::TxProfile
                    || h.profile.transaction_id.is_none()
                    || h.profile.transaction_id == transaction
            })
            .filter(|h| {
                h.profile.valid_from.is_none_or(|f| f <= now)
                    && h.profile.valid_to.is_none_or(|t| now < t)
            })
            .max_by_key(|h| h.profile.stack_level)
            .and_then(|h| period_limit(h, now, volts))
    }

    /// Per connector (0: the station), the CPO's limit now: the station's maximum
    /// profile, and the transaction's profile or else the default one.
    pub fn composite(
        &self,
        connectors: &[(u32, Option<i32>)],
        now: DateTime<Utc>,
        volts: f64,
    ) -> BTreeMap<u32, Amps> {
        use ChargingProfilePurpose as P;
        let mut out = BTreeMap::new();
        if let Some(max) = self.limit(0, P::ChargePointMaxProfile, None, now, volts) {
            out.insert(0, max);
        }
        for &(connector, transaction) in connectors {
            let tx = transaction.and_then(|t| {
                self.limit(connector, P::TxProfile, Some(t), now, volts)
                    .or_else(|| self.limit(0, P::TxProfile, Some(t), now, volts))
            });
            let default = self
                .limit(connector, P::TxDefaultProfile, None, now, volts)
                .or_else(|| self.limit(0, P::TxDefaultProfile, None, now, volts));
            if let Some(a) = tx.or(default) {
                out.insert(connector, a);
            }
        }
        out
    }

    pub fn is_empty(&self) -> bool {
        self.held.is_empty()
    }
}

/// The limit of the period in force now, amperes per phase (watts over the phases the
/// period names, 3 by default).
fn period_limit(h: &Held, now: DateTime<Utc>, volts: f64) -> Option<Amps> {
    let s = &h.profile.charging_schedule;
    let start = match h.profile.charging_profile_kind {
        ChargingProfileKind::Relative => h.received,
        _ => s
            .start_schedule
            .or(h.profile.valid_from)
            .unwrap_or(h.received),
    };
    let mut elapsed = (now - start).num_seconds();
    if h.profile.charging_profile_kind == ChargingProfileKind::Recurring {
        let day = 86_400;
        let period = match h.profile.recurrency_kind {
            Some(ampwarden_actors::ocpp::RecurrencyKind::Weekly) => 7 * day,
            _ => day,
        };
        elapsed = elapsed.rem_euclid(period);
    }
    if elapsed < 0 || s.duration.is_some_and(|d| elapsed >= i64::from(d)) {
        return None;
    }
    let period = s
        .charging_schedule_period
        .iter()
        .rfind(|p| i64::from(p.start_period) <= elapsed)?;
    let value = period.limit.value();
    Some(Amps(match s.charging_rate_unit {
        ChargingRateUnit::A => value,
        ChargingRateUnit::W => {
            let phases = f64::from(period.number_phases.unwrap_or(3).max(1));
            value / (volts * phases)
        }
    }))
}

/// The composite schedule to answer GetCompositeSchedule with: the limit in force now,
/// for `duration` seconds, in amperes.
pub fn composite_schedule(limit: Amps, duration: u32) -> ChargingSchedule {
    ChargingSchedule {
        duration: Some(duration),
        start_schedule: Some(Utc::now()),
        charging_rate_unit: ChargingRateUnit::A,
        charging_schedule_period: vec![ChargingSchedulePeriod {
            start_period: 0,
            limit: OneDecimal::floor(limit.0),
            number_phases: None,
        }],
        min_charging_rate: None,
    }
}
