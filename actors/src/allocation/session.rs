//! A charging session as the allocation sees it (one connector in a transaction), and
//! what the allocation decides for it, with the reasons the UI shows.

use std::fmt;

use chrono::{DateTime, Utc};

use super::tree::ZoneIdx;
use crate::config::Phases;
use crate::units::{Amps, ChargePointId, PerPhase, Phase};

/// Identifies a session across rounds: the connector it runs on.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SessionKey {
    pub charge_point: ChargePointId,
    pub connector: u32,
}

impl SessionKey {
    pub fn new(charge_point: impl Into<ChargePointId>, connector: u32) -> Self {
        SessionKey {
            charge_point: charge_point.into(),
            connector,
        }
    }
}

impl fmt::Display for SessionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.charge_point, self.connector)
    }
}

/// Which phases a session loads. A 3-phase session takes the same current on all three.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SessionPhases {
    Three,
    One(Phase),
}

impl SessionPhases {
    /// From a station's configuration (`phases`, and `phase` for a 1-phase one).
    pub fn of_station(phases: Phases, phase: Phase) -> Self {
        match phases {
            Phases::Three => SessionPhases::Three,
            Phases::One => SessionPhases::One(phase),
        }
    }

    /// From the station's configuration and the site phases its vehicle was seen to
    /// charge on: a vehicle on one phase of a 3-phase station loads that phase only;
    /// anything else (unknown, two or three phases) counts as the station's phases.
    pub fn of_vehicle(phases: Phases, phase: Phase, in_use: Option<&[Phase]>) -> Self {
        match (phases, in_use) {
            (Phases::Three, Some(&[only])) => SessionPhases::One(only),
            _ => SessionPhases::of_station(phases, phase),
        }
    }

    pub fn loads(self, phase: Phase) -> bool {
        match self {
            SessionPhases::Three => true,
            SessionPhases::One(p) => p == phase,
        }
    }

    /// Bit `i` set when phase `i` is loaded.
    pub(crate) fn mask(self) -> u8 {
        match self {
            SessionPhases::Three => 0b111,
            SessionPhases::One(p) => 1 << p.index(),
        }
    }
}

/// One connector in a transaction, as the supervisor sees it this round.
#[derive(Clone, Debug, PartialEq)]
pub struct Session {
    pub key: SessionKey,
    /// Resolved with [`super::ZoneTree::index_of`].
    pub zone: ZoneIdx,
    pub phases: SessionPhases,
    /// The most this connector may take: station maximum (and cable, where known).
    /// Demand adaptation lowers it inside the allocation, never here.
    pub max_current: Amps,
    /// A VIP station or a VIP badge: shed last.
    pub vip: bool,
    /// Energy delivered since the transaction started (for the `energy` strategy).
    pub energy_wh: f64,
    /// When the vehicle was plugged in (for the `connection_time` strategy).
    pub connected_since: DateTime<Utc>,
    /// What the station reports drawing (`Current.Import` per phase), if it reports.
    pub draw: Option<PerPhase<Amps>>,
    /// The limit the station enforces now for this transaction; `None` until its first
    /// TxProfile was accepted (the station then runs on its safe default profile).
    pub limit_in_force: Option<Amps>,
    /// A connector we cannot control now (station offline, or a SetChargingProfile that
    /// timed out): it is assumed to draw exactly this, and is not shared or shed.
    pub fixed: Option<Amps>,
    /// When the station acknowledged the last change of its limit (up or down): the
    /// vehicle may still be moving to it, and a report from before says nothing about
    /// what it draws now (see `estimate`).
    pub changed_at: Option<DateTime<Utc>>,
    /// When `draw` was reported.
    pub draw_at: Option<DateTime<Utc>>,
    /// The lowest limit the station acknowledged since `draw` was reported (`None`: no
    /// change since): what a report from before a change may still count for.
    pub lowest_limit_since_draw: Option<Amps>,
}

/// The zone and phase whose budget limits a session.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bottleneck {
    pub zone: ZoneIdx,
    pub phase: Phase,
}

/// Why a session gets what it gets.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Decision {
    /// Gets its whole maximum: no zone on its path is short.
    AtMax,
    /// Shares the budget of `bottleneck` with the others there: they all get the same
    /// fraction of their maximum (or `min_current_a`, if that is more).
    Shared { bottleneck: Bottleneck },
    /// Suspended (limit 0): `bottleneck` cannot give `min_current_a` to everyone, and
    /// this session comes last there by VIP status and shedding strategy.
    Suspended {
        bottleneck: Bottleneck,
        since: DateTime<Utc>,
    },
    /// Its maximum is below `min_current_a`: it can never be given a valid current.
    MaxBelowMinimum,
    /// Not under control this round: keeps its reservation.
    Fixed,
}

/// An increase waiting for the budget to have allowed it for `increase_hold_s`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct HeldIncrease {
    /// What the budget has allowed without a break since `since`.
    pub allowed: Amps,
    pub since: DateTime<Utc>,
    /// When it goes out if the budget keeps allowing it.
    pub until: DateTime<Utc>,
}

/// The allocation's decision for one session (same index as in the input).
#[derive(Clone, Debug, PartialEq)]
pub struct SessionAllocation {
    /// The setpoint the budgets allow: 0, or within `[min_current_a, max]`, rounded
    /// down to 0.1 A. For a fixed session, its reservation.
    pub target: Amps,
    /// The limit this session will have once this round's plan is applied: the target,
    /// or lower while an increase is held. Never above `target`.
    pub limit_after: Amps,
    /// What to send now, if anything (listed in the plan too).
    pub send: Option<Amps>,
    /// The maximum used this round: the session's `max_current`, lowered by demand
    /// adaptation, rounded down to 0.1 A.
    pub max: Amps,
    /// Whether demand adaptation lowered the maximum.
    pub adapted: bool,
    /// `target / max` (0 when suspended).
    pub fraction: f64,
    pub decision: Decision,
    pub vip: bool,
    pub held: Option<HeldIncrease>,
}
