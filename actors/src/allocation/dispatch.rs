//! From targets to what is sent: decreases go out at once, increases wait until the
//! budget has allowed them for `increase_hold_s`, and tiny increases are not sent.
//! Everything here only ever keeps a limit *below* its target, so what is in force
//! never exceeds what the budgets allow.

use chrono::{DateTime, TimeDelta, Utc};

use super::session::{HeldIncrease, SessionKey};
use crate::units::Amps;

/// Increases smaller than this are not sent: they would cost a message per vehicle
/// every round for a gain nobody notices.
pub const MIN_INCREASE_A: f64 = 0.5;

/// A change of limit the supervisor sends this round.
#[derive(Clone, Debug, PartialEq)]
pub struct SetpointChange {
    /// Index of the session in the round's input.
    pub session: usize,
    pub key: SessionKey,
    /// The limit in force before; `None` for a session's first limit.
    pub from: Option<Amps>,
    pub to: Amps,
}

/// What to send this round: every decrease, acknowledged (or timed out) before any
/// increase goes out. A new session's first limit is an increase. Sessions whose
/// limit stays are not listed. Both lists follow the order of the input. A change
/// still in flight (the limit in force passed in is the old one) is listed again.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Plan {
    pub decreases: Vec<SetpointChange>,
    pub increases: Vec<SetpointChange>,
}

/// An increase being held, remembered between rounds.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct HoldMemory {
    pub since: DateTime<Utc>,
    /// The lowest target seen since `since`: what the budget has allowed all along.
    pub allowed: Amps,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Change {
    None,
    Decrease,
    Increase,
}

/// One session's dispatch this round.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Step {
    pub change: Change,
    pub limit_after: Amps,
    pub held: Option<HeldIncrease>,
}

impl Step {
    pub fn send(&self) -> Option<Amps> {
        (self.change != Change::None).then_some(self.limit_after)
    }
}

/// Decides what to send for a session whose target is `target` and whose station
/// enforces `in_force` (`None`: no limit of ours yet, so the first one goes out now).
pub(crate) fn step(
    target: Amps,
    in_force: Option<Amps>,
    hold: &mut Option<HoldMemory>,
    hold_for: TimeDelta,
    now: DateTime<Utc>,
) -> Step {
    let Some(current) = in_force.filter(|a| a.is_finite()) else {
        *hold = None;
        return Step {
            change: Change::Increase,
            limit_after: target,
            held: None,
        };
    };
    if target.0 < current.0 - 1e-9 {
        *hold = None;
        return Step {
            change: Change::Decrease,
            limit_after: target,
            held: None,
        };
    }
    let worth_sending = |a: Amps| a.0 - current.0 >= MIN_INCREASE_A - 1e-9;
    if !worth_sending(target) {
        *hold = None;
        return Step {
            change: Change::None,
            limit_after: current,
            held: None,
        };
    }
    // The window goes on while the budget keeps allowing a worthwhile increase.
    let window = match *hold {
        Some(h) if worth_sending(h.allowed.min(target)) => HoldMemory {
            since: h.since,
            allowed: h.allowed.min(target),
        },
        _ => HoldMemory {
            since: now,
            allowed: target,
        },
    };
    *hold = Some(window);
    if now - window.since >= hold_for {
        Step {
            change: Change::Increase,
            limit_after: window.allowed,
            held: None,
        }
    } else {
        let held = HeldIncrease {
            allowed: window.allowed,
            since: window.since,
            until: window.since + hold_for,
        };
        Step {
            change: Change::None,
            limit_after: current,
            held: Some(held),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    const HOLD: TimeDelta = TimeDelta::seconds(10);

    #[test]
    fn decreases_go_out_at_once() {
        let mut hold = Some(HoldMemory {
            since: t(0),
            allowed: Amps(30.0),
        });
        let s = step(Amps(10.0), Some(Amps(10.05)), &mut hold, HOLD, t(1));
        assert_eq!((s.change, s.send()), (Change::Decrease, Some(Amps(10.0))));
        assert_eq!(hold, None);
    }

    #[test]
    fn a_first_limit_is_not_held() {
        let mut hold = None;
        let s = step(Amps(16.0), None, &mut hold, HOLD, t(0));
        assert_eq!((s.change, s.limit_after), (Change::Increase, Amps(16.0)));
    }

    #[test]
    fn increases_below_half_an_ampere_are_not_sent() {
        let mut hold = None;
        let s = step(
            Amps(16.4),
            Some(Amps(16.0)),
            &mut hold,
            TimeDelta::zero(),
            t(0),
        );
        assert_eq!((s.change, s.limit_after), (Change::None, Amps(16.0)));
        let s = step(
            Amps(16.5),
            Some(Amps(16.0)),
            &mut hold,
            TimeDelta::zero(),
            t(0),
        );
        assert_eq!((s.change, s.limit_after), (Change::Increase, Amps(16.5)));
    }

    #[test]
    fn an_increase_waits_until_the_budget_allowed_it_for_the_hold_time() {
        let mut hold = None;
        let s = step(Amps(20.0), Some(Amps(10.0)), &mut hold, HOLD, t(0));
        assert_eq!((s.change, s.limit_after), (Change::None, Amps(10.0)));
        assert_eq!(s.held.unwrap().until, t(10));
        let s = step(Amps(20.0), Some(Amps(10.0)), &mut hold, HOLD, t(9));
        assert_eq!(s.change, Change::None);
        let s = step(Amps(20.0), Some(Amps(10.0)), &mut hold, HOLD, t(10));
        assert_eq!((s.change, s.limit_after), (Change::Increase, Amps(20.0)));
    }

    #[test]
    fn a_dip_in_the_budget_sends_only_what_was_allowed_all_along() {
        let mut hold = None;
        step(Amps(20.0), Some(Amps(10.0)), &mut hold, HOLD, t(0));
        step(Amps(14.0), Some(Amps(10.0)), &mut hold, HOLD, t(5));
        let s = step(Amps(20.0), Some(Amps(10.0)), &mut hold, HOLD, t(10));
        assert_eq!((s.change, s.limit_after), (Change::Increase, Amps(14.0)));
    }

    #[test]
    fn a_break_in_the_budget_restarts_the_hold() {
        let mut hold = None;
        step(Amps(20.0), Some(Amps(10.0)), &mut hold, HOLD, t(0));
        let s = step(Amps(10.0), Some(Amps(10.0)), &mut hold, HOLD, t(5));
        assert_eq!(s.change, Change::None);
        step(Amps(20.0), Some(Amps(10.0)), &mut hold, HOLD, t(6));
        let s = step(Amps(20.0), Some(Amps(10.0)), &mut hold, HOLD, t(12));
        assert_eq!(s.change, Change::None, "held since t=6");
        let s = step(Amps(20.0), Some(Amps(10.0)), &mut hold, HOLD, t(16));
        assert_eq!(s.limit_after, Amps(20.0));
    }
}
