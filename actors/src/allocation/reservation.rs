//! What a connector counts for in a round, from what its station actor knows: the
//! limit the allocation starts from, and whether it is a fixed reservation that cannot
//! be moved this round. Fail closed: whatever is not confirmed counts at its highest.

use crate::units::Amps;

/// After this many rejected setpoints in a row a connector is assumed to draw its maximum.
pub const REJECTIONS_BEFORE_MAX: u32 = 3;

/// What is known about one connector in a transaction.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ConnectorControl {
    /// The station's socket is open and the station is still configured.
    pub controllable: bool,
    /// The most the station may apply now (every unanswered value counted).
    pub may_apply: Amps,
    /// The TxProfile value of the transaction that may be in force, if it has one.
    pub tx_limit: Option<Amps>,
    pub station_max: Amps,
    /// Setpoints rejected in a row.
    pub rejections: u32,
    /// A setpoint that was not confirmed and is not retried yet: the value sent.
    pub unconfirmed: Option<Amps>,
}

/// The connector as a session of the allocation round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SessionLimits {
    /// See [`super::Session::limit_in_force`].
    pub limit_in_force: Option<Amps>,
    /// See [`super::Session::fixed`].
    pub fixed: Option<Amps>,
}

pub fn session_limits(c: &ConnectorControl) -> SessionLimits {
    // Under the 0 A default, a transaction without a TxProfile is new: its first limit
    // is an increase from nothing and is not held.
    let limit_in_force = if c.tx_limit.is_none() && c.may_apply.0 <= 0.0 {
        None
    } else {
        Some(c.may_apply)
    };
    let fixed = if !c.controllable {
        Some(c.may_apply)
    } else if c.rejections >= REJECTIONS_BEFORE_MAX {
        Some(c.station_max.max(c.may_apply))
    } else {
        c.unconfirmed.map(|sent| sent.max(c.may_apply))
    };
    SessionLimits {
        limit_in_force,
        fixed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn control() -> ConnectorControl {
        ConnectorControl {
            controllable: true,
            may_apply: Amps(10.0),
            tx_limit: Some(Amps(10.0)),
            station_max: Amps(32.0),
            rejections: 0,
            unconfirmed: None,
        }
    }

    #[test]
    fn a_confirmed_connector_is_free_to_move_from_its_limit() {
        let l = session_limits(&control());
        assert_eq!(l.limit_in_force, Some(Amps(10.0)));
        assert_eq!(l.fixed, None);
    }

    #[test]
    fn a_new_transaction_on_the_safe_default_starts_from_nothing() {
        let c = ConnectorControl {
            may_apply: Amps::ZERO,
            tx_limit: None,
            ..control()
        };
        assert_eq!(session_limits(&c).limit_in_force, None);
    }

    #[test]
    fn a_transaction_whose_default_is_unknown_counts_at_what_it_may_apply() {
        let c = ConnectorControl {
            may_apply: Amps(32.0),
            tx_limit: None,
            ..control()
        };
        assert_eq!(session_limits(&c).limit_in_force, Some(Amps(32.0)));
    }

    #[test]
    fn a_lost_or_removed_station_keeps_what_it_may_apply_reserved() {
        let c = ConnectorControl {
            controllable: false,
            may_apply: Amps(20.0),
            ..control()
        };
        assert_eq!(session_limits(&c).fixed, Some(Amps(20.0)));
    }

    #[test]
    fn a_connector_that_keeps_rejecting_is_reserved_at_its_maximum() {
        let c = ConnectorControl {
            rejections: REJECTIONS_BEFORE_MAX,
            ..control()
        };
        assert_eq!(session_limits(&c).fixed, Some(Amps(32.0)));
    }

    #[test]
    fn an_unconfirmed_setpoint_is_reserved_at_the_higher_of_sent_and_possible() {
        let c = ConnectorControl {
            unconfirmed: Some(Amps(6.0)),
            may_apply: Amps(20.0),
            ..control()
        };
        assert_eq!(session_limits(&c).fixed, Some(Amps(20.0)));
        let c = ConnectorControl {
            unconfirmed: Some(Amps(25.0)),
            ..c
        };
        assert_eq!(session_limits(&c).fixed, Some(Amps(25.0)));
    }
}
