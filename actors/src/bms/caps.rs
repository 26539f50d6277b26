//! What a building management system may impose, and for how long: one implementation of
//! the cap semantics, used by the Modbus server and the REST API alike.
//!
//! * A cap is written with a validity; while valid it lowers the site's (or a zone's) EV
//!   budget per phase. It can only lower: the effective value is the lower of the
//!   written one and the commissioned limit.
//! * When the validity ends, the writer (a Modbus client) disconnects, the cap is
//!   released, or the controller restarts, the fail-safe cap applies — never "unlimited"
//!   — until a fresh write. With `write = false` nothing is imposed at all.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::config::{BmsConfig, Config};
use crate::units::{Amps, ZoneId};

/// The largest current a cap may name (a typo guard).
pub const MAX_CAP_A: f64 = 10_000.0;
/// The largest power a site cap may name.
pub const MAX_CAP_W: f64 = 20_000_000.0;

/// What a cap applies to.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "zone")]
pub enum CapTarget {
    /// Every root zone of the site.
    Site,
    Zone(ZoneId),
}

impl std::fmt::Display for CapTarget {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CapTarget::Site => f.write_str("site"),
            CapTarget::Zone(z) => write!(f, "zone {z}"),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum CapUnit {
    /// Amperes per phase.
    #[serde(rename = "A")]
    Amps,
    /// Watts in all, over the three phases (site caps only).
    #[serde(rename = "W")]
    Watts,
}

/// One write, as it arrived.
#[derive(Clone, Debug, PartialEq)]
pub struct CapRequest {
    pub target: CapTarget,
    pub value: f64,
    pub unit: CapUnit,
    /// Seconds; 0 takes `default_validity_s`.
    pub validity_s: u32,
}

/// Who wrote.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "via")]
pub enum Writer {
    /// A Modbus client, by connection number and address: its caps end with its connection.
    Modbus { client: u64, addr: SocketAddr },
    /// An API token (or user), by name.
    Rest { name: String },
}

impl std::fmt::Display for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Writer::Modbus { client, addr } => write!(f, "Modbus client #{client} ({addr})"),
            Writer::Rest { name } => write!(f, "API ({name})"),
        }
    }
}

/// Why a write was refused. Nothing changed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum WriteError {
    #[error("writes are disabled (bms.write = false)")]
    Disabled,
    #[error("unknown zone {0:?}")]
    UnknownZone(String),
    #[error("{field}: {message}")]
    OutOfRange {
        field: &'static str,
        message: String,
    },
}

/// A cap in force from a write.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Written {
    pub requested: f64,
    pub unit: CapUnit,
    /// What the request means in amperes per phase, before the commissioned limit.
    pub requested_a: Amps,
    /// What applies: the lower of `requested_a` and the commissioned limit.
    pub effective_a: Amps,
    pub at: DateTime<Utc>,
    pub until: DateTime<Utc>,
    pub by: Writer,
}

/// Where a cap stands now.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CapState {
    /// Nothing imposed (writes disabled, or a zone without a fail-safe cap).
    None,
    /// A written cap is valid.
    Written,
    /// No valid write: the fail-safe cap applies.
    Failsafe,
}

impl CapState {
    pub fn code(self) -> u16 {
        match self {
            CapState::None => 0,
            CapState::Written => 1,
            CapState::Failsafe => 2,
        }
    }
}

/// What the supervisor applies: per target the written cap with its end, and what
/// follows it. The supervisor checks the end itself each round, so a cap cannot outlive
/// its validity even if nobody tells it.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Cap {
    pub written: Option<(Amps, DateTime<Utc>)>,
    pub failsafe: Option<Amps>,
}

impl Cap {
    pub fn at(&self, now: DateTime<Utc>) -> Option<Amps> {
        match self.written {
            Some((a, until)) if now < until => Some(a),
            _ => self.failsafe,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct CapsInForce {
    pub site: Cap,
    pub zones: BTreeMap<ZoneId, Cap>,
}

/// The caps written and not yet released.
#[derive(Clone, Debug, Default)]
pub struct Caps {
    written: BTreeMap<CapTarget, Written>,
}

/// One target's cap as the BMS reads it back.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct CapView {
    pub target: CapTarget,
    pub state: CapState,
    /// Amperes per phase in force now (`None`: no cap).
    pub effective_a: Option<Amps>,
    /// Seconds until the written cap ends (0 when none is in force).
    pub remaining_s: u32,
    pub failsafe_a: Option<Amps>,
    /// The write in force, if any.
    pub written: Option<Written>,
}

impl Caps {
    /// Checks and applies a write; nothing changes when it is refused.
    pub fn write(
        &mut self,
        config: &Config,
        request: CapRequest,
        by: Writer,
        now: DateTime<Utc>,
    ) -> Result<Written, WriteError> {
        let bms = writable(config)?;
        let limit = commissioned(config, &request.target)?;
        let v = request.value;
        let requested_a = match request.unit {
            CapUnit::Amps if !(v.is_finite() && (0.0..=MAX_CAP_A).contains(&v)) => {
                return Err(WriteError::OutOfRange {
                    field: "value",
                    message: format!("{v} A is not a current from 0 to {MAX_CAP_A} A"),
                })
            }
            CapUnit::Amps => Amps(v),
            CapUnit::Watts if request.target != CapTarget::Site => {
                return Err(WriteError::OutOfRange {
                    field: "unit",
                    message: "a zone cap is in amperes per phase".into(),
                })
            }
            CapUnit::Watts if !(v.is_finite() && (0.0..=MAX_CAP_W).contains(&v)) => {
                return Err(WriteError::OutOfRange {
                    field: "value",
                    message: format!("{v} W is not a power from 0 to {MAX_CAP_W} W"),
                })
            }
            CapUnit::Watts => Amps(watts_to_amps(v, config.site.voltage_v)),
        };
        let validity = match request.validity_s {
            0 => bms.default_validity_s,
            s if s > bms.max_validity_s => {
                return Err(WriteError::OutOfRange {
                    field: "validity_s",
                    message: format!(
                        "{s} s is longer than bms.max_validity_s ({} s)",
                        bms.max_validity_s
                    ),
                })
            }
            s => s,
        };
        let written = Written {
            requested: v,
            unit: request.unit,
            requested_a,
            effective_a: requested_a.min(limit),
            at: now,
            until: now + TimeDelta::seconds(i64::from(validity)),
            by,
        };
        self.written.insert(request.target, written.clone());
        Ok(written)
    }

    /// Ends a written cap now (the fail-safe applies); the write ended, if there was one.
    pub fn release(&mut self, target: &CapTarget) -> Option<Written> {
        self.written.remove(target)
    }

    /// Drops the writes whose validity has ended, and returns them.
    pub fn expire(&mut self, now: DateTime<Utc>) -> Vec<(CapTarget, Written)> {
        let ended: Vec<CapTarget> = self
            .written
            .iter()
            .filter(|(_, w)| w.until <= now)
            .map(|(t, _)| t.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|t| self.written.remove(&t).map(|w| (t, w)))
            .collect()
    }

    /// Drops the writes of a Modbus client that disconnected, and returns them.
    pub fn disconnected(&mut self, client: u64) -> Vec<(CapTarget, Written)> {
        let ended: Vec<CapTarget> = self
            .written
            .iter()
            .filter(|(_, w)| matches!(w.by, Writer::Modbus { client: c, .. } if c == client))
            .map(|(t, _)| t.clone())
            .collect();
        ended
            .into_iter()
            .filter_map(|t| self.written.remove(&t).map(|w| (t, w)))
            .collect()
    }

    /// When the next written cap ends.
    pub fn next_end(&self) -> Option<DateTime<Utc>> {
        self.written.values().map(|w| w.until).min()
    }

    /// What the allocation applies.
    pub fn in_force(&self, config: &Config) -> CapsInForce {
        let Some(bms) = config.bms.as_ref().filter(|b| b.write) else {
            return CapsInForce::default();
        };
        let cap = |target: &CapTarget, failsafe: Option<Amps>| Cap {
            written: self.written.get(target).map(|w| (w.effective_a, w.until)),
            failsafe,
        };
        let mut zones = BTreeMap::new();
        for z in &config.zones {
            let target = CapTarget::Zone(z.id.clone());
            let failsafe = bms.zone_failsafe_a.get(&z.id).copied();
            if failsafe.is_some() || self.written.contains_key(&target) {
                zones.insert(z.id.clone(), cap(&target, failsafe));
            }
        }
        CapsInForce {
            site: cap(&CapTarget::Site, bms.failsafe_current_a),
            zones,
        }
    }

    /// A target's cap as read back.
    pub fn view(&self, config: &Config, target: &CapTarget, now: DateTime<Utc>) -> CapView {
        let bms = config.bms.as_ref().filter(|b| b.write);
        let failsafe_a = bms.and_then(|b| match target {
            CapTarget::Site => b.failsafe_current_a,
            CapTarget::Zone(z) => b.zone_failsafe_a.get(z).copied(),
        });
        let written = self
            .written
            .get(target)
            .filter(|w| bms.is_some() && w.until > now)
            .cloned();
        let (state, effective_a) = match (&written, failsafe_a) {
            (Some(w), _) => (CapState::Written, Some(w.effective_a)),
            (None, Some(f)) => (CapState::Failsafe, Some(f)),
            (None, None) => (CapState::None, None),
        };
        let remaining_s = written.as_ref().map_or(0, |w| {
            let ms = (w.until - now).num_milliseconds().max(0);
            u32::try_from((ms + 999) / 1000).unwrap_or(u32::MAX)
        });
        CapView {
            target: target.clone(),
            state,
            effective_a,
            remaining_s,
            failsafe_a,
            written,
        }
    }
}

/// Amperes per phase for a total power over three phases at `voltage` phase-to-neutral.
pub fn watts_to_amps(watts: f64, voltage: f64) -> f64 {
    watts / (3.0 * voltage)
}

fn writable(config: &Config) -> Result<&BmsConfig, WriteError> {
    config
        .bms
        .as_ref()
        .filter(|b| b.write)
        .ok_or(WriteError::Disabled)
}

/// The commissioned limit a cap cannot raise: the zone's `limit_a`, or for the site the
/// highest root limit.
fn commissioned(config: &Config, target: &CapTarget) -> Result<Amps, WriteError> {
    match target {
        CapTarget::Site => Ok(config
            .zones
            .iter()
            .filter(|z| z.parent.is_none())
            .map(|z| z.limit_a)
            .fold(Amps::ZERO, Amps::max)),
        CapTarget::Zone(id) => config
            .zone(id)
            .map(|z| z.limit_a)
            .ok_or_else(|| WriteError::UnknownZone(id.to_string())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(write: bool) -> Config {
        let mut c: Config = toml::from_str(
            r#"
            [[zones]]
            id = "main"
            limit_a = 100
            [[zones]]
            id = "garage"
            parent = "main"
            limit_a = 40
            "#,
        )
        .expect("config");
        c.bms = Some(BmsConfig {
            write,
            failsafe_current_a: Some(Amps(20.0)),
            ..BmsConfig::default()
        });
        c
    }

    fn rest() -> Writer {
        Writer::Rest { name: "bms".into() }
    }

    fn site(value: f64, unit: CapUnit, validity_s: u32) -> CapRequest {
        CapRequest {
            target: CapTarget::Site,
            value,
            unit,
            validity_s,
        }
    }

    #[test]
    fn a_cap_holds_for_its_validity_then_the_failsafe_applies() {
        let c = config(true);
        let mut caps = Caps::default();
        let t0 = Utc::now();
        assert_eq!(
            caps.in_force(&c).site.at(t0),
            Some(Amps(20.0)),
            "fail-safe before any write"
        );
        let w = caps
            .write(&c, site(50.0, CapUnit::Amps, 5), rest(), t0)
            .expect("accepted");
        assert_eq!(w.effective_a, Amps(50.0));
        let in_force = caps.in_force(&c);
        assert_eq!(
            in_force.site.at(t0 + TimeDelta::seconds(4)),
            Some(Amps(50.0))
        );
        assert_eq!(
            in_force.site.at(t0 + TimeDelta::seconds(5)),
            Some(Amps(20.0))
        );
        assert_eq!(caps.view(&c, &CapTarget::Site, t0).remaining_s, 5);
        assert!(caps.expire(t0 + TimeDelta::seconds(4)).is_empty());
        assert_eq!(caps.expire(t0 + TimeDelta::seconds(5)).len(), 1);
        let v = caps.view(&c, &CapTarget::Site, t0 + TimeDelta::seconds(5));
        assert_eq!(
            (v.state, v.effective_a),
            (CapState::Failsafe, Some(Amps(20.0)))
        );
    }

    #[test]
    fn a_cap_cannot_raise_the_commissioned_limit_and_watts_become_amps() {
        let c = config(true);
        let mut caps = Caps::default();
        let now = Utc::now();
        let w = caps
            .write(&c, site(500.0, CapUnit::Amps, 0), rest(), now)
            .expect("ok");
        assert_eq!(w.effective_a, Amps(100.0));
        assert_eq!(
            w.until - now,
            TimeDelta::seconds(60),
            "validity 0 takes the default"
        );
        let w = caps
            .write(&c, site(69_000.0, CapUnit::Watts, 10), rest(), now)
            .expect("ok");
        assert!(
            (w.effective_a.0 - 100.0).abs() < 1e-9,
            "{:?}",
            w.effective_a
        );
        let zone = CapRequest {
            target: CapTarget::Zone(ZoneId::from("garage")),
            value: 60.0,
            unit: CapUnit::Amps,
            validity_s: 10,
        };
        assert_eq!(
            caps.write(&c, zone, rest(), now).expect("ok").effective_a,
            Amps(40.0)
        );
    }

    #[test]
    fn bad_writes_change_nothing() {
        let mut caps = Caps::default();
        let now = Utc::now();
        let c = config(true);
        for bad in [
            site(f64::NAN, CapUnit::Amps, 5),
            site(-1.0, CapUnit::Amps, 5),
            site(20_000.0, CapUnit::Amps, 5),
            site(1e12, CapUnit::Watts, 5),
            site(10.0, CapUnit::Amps, 4000),
            CapRequest {
                target: CapTarget::Zone(ZoneId::from("nowhere")),
                value: 10.0,
                unit: CapUnit::Amps,
                validity_s: 5,
            },
            CapRequest {
                target: CapTarget::Zone(ZoneId::from("garage")),
                value: 1000.0,
                unit: CapUnit::Watts,
                validity_s: 5,
            },
        ] {
            assert!(caps.write(&c, bad.clone(), rest(), now).is_err(), "{bad:?}");
        }
        assert_eq!(caps.next_end(), None);
        assert_eq!(
            caps.write(&config(false), site(10.0, CapUnit::Amps, 5), rest(), now),
            Err(WriteError::Disabled)
        );
        assert_eq!(caps.in_force(&config(false)), CapsInForce::default());
    }

    #[test]
    fn a_modbus_clients_caps_end_with_its_connection() {
        let c = config(true);
        let mut caps = Caps::default();
        let now = Utc::now();
        let by = |client| Writer::Modbus {
            client,
            addr: SocketAddr::from(([127, 0, 0, 1], 5000)),
        };
        caps.write(&c, site(30.0, CapUnit::Amps, 60), by(1), now)
            .expect("ok");
        let zone = CapRequest {
            target: CapTarget::Zone(ZoneId::from("garage")),
            value: 10.0,
            unit: CapUnit::Amps,
            validity_s: 60,
        };
        caps.write(&c, zone, by(2), now).expect("ok");
        assert!(caps.disconnected(3).is_empty());
        let ended = caps.disconnected(1);
        assert_eq!(ended.len(), 1);
        assert_eq!(ended[0].0, CapTarget::Site);
        let in_force = caps.in_force(&c);
        assert_eq!(in_force.site.at(now), Some(Amps(20.0)));
        assert_eq!(
            in_force.zones[&ZoneId::from("garage")].at(now),
            Some(Amps(10.0))
        );
    }
}
