//! The federation link's messages (pure): what a secondary reports to its primary and
//! what the primary grants it, as JSON text frames on `ws://PRIMARY/federation`. Every
//! frame carries the protocol version `v`; `docs/federation.md` has a JSON schema for each.
//!
//! And how the primary sees a secondary in its own allocation: as a few pseudo-sessions
//! below the zone it feeds ([`Pieces`]), whose maxima add up, per phase, to the
//! secondary's demand. Sharing then gives every piece the same fraction of its maximum as
//! every vehicle around it, and the secondary, sharing its grant the same way, gives each
//! of its vehicles that fraction too: equal percentage across the whole federation.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::units::{Amps, PerPhase, Phase, ZoneId};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;
/// The largest frame either side accepts.
pub const MAX_FRAME_BYTES: usize = 1 << 20;
/// A secondary reports at least this often (and at once on a change that matters).
pub const REPORT_EVERY_MS: u64 = 1_000;
/// The primary re-sends the grant in force this often, so that it never expires while the
/// link is up.
pub const REFRESH_EVERY_MS: u64 = 2_000;
/// How long before a secondary's grant may expire the primary already reserves its
/// fallback: covers the time a round and the frames take.
pub const EXPIRY_MARGIN_S: i64 = 2;
/// The name a primary gives a secondary's pseudo-sessions: `@name` (no station id has an `@`).
pub const SESSION_PREFIX: char = '@';

/// What a secondary sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Upstream {
    /// First frame after the handshake.
    Hello {
        v: u32,
        name: String,
        /// The zone of the primary it feeds (as in its configuration).
        zone: ZoneId,
        fallback_budget_a: Amps,
        /// Its root zone's `limit_a`: the most it can ever take.
        limit_a: Amps,
        /// ampwarden's version, for the primary's UI.
        software: String,
    },
    Report(Box<Report>),
    /// The grant `seq` is in force: the secondary's limits in force fit it.
    Ack {
        v: u32,
        seq: u64,
    },
    /// The answer to a relayed command: the HTTP status and JSON body the secondary's own
    /// API would have answered.
    CommandResult {
        v: u32,
        id: u64,
        status: u16,
        body: serde_json::Value,
    },
}

/// What a primary sends.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum Downstream {
    /// The hello was accepted.
    Welcome {
        v: u32,
        valid_for_s: u32,
    },
    /// The link is refused (the socket closes after it).
    Refused {
        v: u32,
        reason: String,
    },
    Grant(Grant),
    /// A remote action on one of the secondary's stations, relayed from the primary's
    /// API (`action` and `body` as in `POST /api/v1/stations/{id}/actions/{action}`).
    Command {
        v: u32,
        id: u64,
        station: String,
        action: String,
        body: serde_json::Value,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grant {
    pub v: u32,
    /// Increases with every grant on a link; a secondary ignores one older than the last.
    pub seq: u64,
    /// The most the secondary's vehicles may take, per phase.
    pub budget_a: PerPhase<Amps>,
    /// It holds for this long after it arrives; then the fallback applies.
    pub valid_for_s: u32,
}

/// What a secondary's root needs and uses, per phase.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Report {
    pub v: u32,
    pub at: DateTime<Utc>,
    /// `granted` (a valid grant is in force), `fallback` (none: `fallback_budget_a`), or
    /// `expiring` (the link is down and the last grant still holds, lowered to the fallback).
    pub mode: LinkMode,
    /// The last grant received (0: none yet).
    pub grant_seq: u64,
    /// What its vehicles report drawing.
    pub ev_draw_a: PerPhase<Amps>,
    /// Σ maxima of the controllable non-VIP sessions, and of the VIP ones.
    pub max_a: PerPhase<Amps>,
    pub vip_max_a: PerPhase<Amps>,
    /// Σ `min_current_a` of the non-VIP sessions that charge, and of the VIP ones.
    pub min_a: PerPhase<Amps>,
    pub vip_min_a: PerPhase<Amps>,
    /// What it cannot control (offline stations, unanswered setpoints): always taken.
    pub fixed_a: PerPhase<Amps>,
    /// Σ of the limits in force at its root (fixed included).
    pub in_force_a: PerPhase<Amps>,
    /// Its root meter's consumption, if it has one.
    pub meter_a: Option<PerPhase<Amps>>,
    /// Some of its vehicles had their limits changed and have not reported since: a
    /// meter above it sees them move before their draw says so.
    pub ramping: bool,
    pub active: u32,
    pub waiting: u32,
    pub suspended: u32,
    /// Its stations, for the primary's UI (sent every few seconds, not in every report).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stations: Option<Vec<RemoteStation>>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkMode {
    Granted,
    #[default]
    Fallback,
    Expiring,
}

/// One station of a secondary, as the primary's UI lists it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteStation {
    pub id: String,
    pub zone: ZoneId,
    pub connected: bool,
    pub connectors: Vec<RemoteConnector>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RemoteConnector {
    pub connector: u32,
    pub status: String,
    pub transaction: Option<i32>,
    pub limit_a: Option<Amps>,
    pub draw_a: Option<PerPhase<Amps>>,
}

/// Why a frame from a secondary is not taken.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("not a federation message: {0}")]
    Malformed(String),
    #[error("protocol version {0}; this primary speaks version {VERSION}")]
    Version(u32),
    #[error("{0} is not a finite current of 0 A or more")]
    BadCurrent(&'static str),
}

impl Upstream {
    /// Parses a text frame and checks its version.
    pub fn parse(text: &str) -> Result<Upstream, FrameError> {
        let m: Upstream =
            serde_json::from_str(text).map_err(|e| FrameError::Malformed(e.to_string()))?;
        let v = match &m {
            Upstream::Hello { v, .. }
            | Upstream::Ack { v, .. }
            | Upstream::CommandResult { v, .. } => *v,
            Upstream::Report(r) => r.v,
        };
        if v != VERSION {
            return Err(FrameError::Version(v));
        }
        Ok(m)
    }
}

impl Report {
    /// Refuses what no real secondary can send (NaN, negative currents) and clamps the
    /// demand to `limit` per phase (its zone at the primary, or its own root's limit): a
    /// secondary asking for more than it can take gets no more than that.
    pub fn sanitised(mut self, limit: Amps) -> Result<Report, FrameError> {
        let fields: [(&'static str, &mut PerPhase<Amps>); 7] = [
            ("ev_draw_a", &mut self.ev_draw_a),
            ("max_a", &mut self.max_a),
            ("vip_max_a", &mut self.vip_max_a),
            ("min_a", &mut self.min_a),
            ("vip_min_a", &mut self.vip_min_a),
            ("fixed_a", &mut self.fixed_a),
            ("in_force_a", &mut self.in_force_a),
        ];
        for (name, values) in fields {
            if values.0.iter().any(|a| !a.0.is_finite() || a.0 < 0.0) {
                return Err(FrameError::BadCurrent(name));
            }
            *values = values.map(|a| a.min(limit));
        }
        if let Some(m) = self.meter_a {
            if m.0.iter().any(|a| !a.0.is_finite() || a.0 < 0.0) {
                return Err(FrameError::BadCurrent("meter_a"));
            }
        }
        Ok(self)
    }
}

/// A per-phase amount split into what a 3-phase piece and three 1-phase pieces carry:
/// `three` on every phase, `one[p]` on phase `p` alone. Their sum is the amount, phase by
/// phase.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Pieces {
    pub three: Amps,
    pub one: PerPhase<Amps>,
}

impl Pieces {
    pub fn of(amount: PerPhase<Amps>) -> Pieces {
        let three = amount
            .0
            .iter()
            .copied()
            .fold(Amps(f64::INFINITY), Amps::min);
        let three = if three.0.is_finite() {
            three.max(Amps::ZERO)
        } else {
            Amps::ZERO
        };
        Pieces {
            three,
            one: amount.map(|a| Amps((a.0 - three.0).max(0.0))),
        }
    }

    /// Every non-empty piece: `None` for the 3-phase one, `Some(p)` for phase `p`'s.
    pub fn iter(&self) -> impl Iterator<Item = (Option<Phase>, Amps)> + '_ {
        std::iter::once((None, self.three))
            .chain(Phase::ALL.iter().map(|&p| (Some(p), self.one.get(p))))
            .filter(|(_, a)| a.0 > 0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_add_up_to_the_amount_on_every_phase() {
        let amount = PerPhase([Amps(100.0), Amps(80.0), Amps(92.5)]);
        let p = Pieces::of(amount);
        assert_eq!(p.three, Amps(80.0));
        assert_eq!(p.one, PerPhase([Amps(20.0), Amps(0.0), Amps(12.5)]));
        let mut sum = PerPhase::splat(0.0);
        for (phase, a) in p.iter() {
            for q in Phase::ALL {
                if phase.is_none_or(|p| p == q) {
                    sum.0[q.index()] += a.0;
                }
            }
        }
        assert_eq!(sum, amount.map(|a| a.0));
        assert_eq!(Pieces::of(PerPhase::splat(Amps::ZERO)).iter().count(), 0);
    }

    #[test]
    fn frames_round_trip_and_bad_ones_are_named() {
        let hello = Upstream::Hello {
            v: VERSION,
            name: "hall-b".into(),
            zone: ZoneId::new("main"),
            fallback_budget_a: Amps(40.0),
            limit_a: Amps(250.0),
            software: "0.1.0".into(),
        };
        let text = serde_json::to_string(&hello).unwrap();
        assert!(text.contains(r#""type":"hello""#), "{text}");
        assert_eq!(Upstream::parse(&text).unwrap(), hello);
        assert_eq!(
            Upstream::parse(r#"{"type":"ack","v":7,"seq":1}"#),
            Err(FrameError::Version(7))
        );
        assert!(matches!(
            Upstream::parse(r#"{"type":"ack","v":1}"#),
            Err(FrameError::Malformed(_))
        ));
        let absurd = Report {
            v: VERSION,
            max_a: PerPhase::splat(Amps(1e6)),
            ..Report::default()
        };
        let clamped = absurd.sanitised(Amps(250.0)).unwrap();
        assert_eq!(clamped.max_a, PerPhase::splat(Amps(250.0)));
        let nan = Report {
            v: VERSION,
            fixed_a: PerPhase([Amps(1.0), Amps(f64::NAN), Amps(1.0)]),
            ..Report::default()
        };
        assert_eq!(
            nan.sanitised(Amps(250.0)),
            Err(FrameError::BadCurrent("fixed_a"))
        );
    }
}
