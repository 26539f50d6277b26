//! Demand adaptation: a vehicle that keeps drawing well below its limit (its own charger
//! is smaller, it is tapering, or it is full) has its maximum lowered to what it draws
//! plus some headroom, so the current it cannot use goes to the others. The maximum
//! comes back as soon as the vehicle draws close to its limit again.

use chrono::{DateTime, TimeDelta, Utc};

use super::session::Session;
use crate::units::{Amps, Phase};

/// Added to what a vehicle draws to make its adapted maximum, so a vehicle whose draw
/// creeps up a little is not capped at once.
pub const ADAPT_HEADROOM_A: f64 = 3.0;
/// A vehicle counts as drawing less than its limit when it draws at least this much
/// below it (so lowering always frees at least 1 A more than the headroom keeps).
pub const LOWER_GAP_A: f64 = 4.0;
/// A vehicle drawing within this of its limit wants more: its maximum is restored.
pub const RAISE_WITHIN_A: f64 = 1.5;
/// How long the draw must stay low before the maximum is lowered: long enough for a
/// vehicle to ramp up after a new limit, short enough to free current within a minute.
pub const ADAPT_AFTER: TimeDelta = TimeDelta::seconds(60);

/// What demand adaptation remembers about one session between rounds.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct DemandMemory {
    /// The lowered maximum, while the vehicle draws less than it may.
    pub adapted: Option<Amps>,
    /// Since when the draw has been low under the limit then in force.
    pub low_since: Option<(DateTime<Utc>, Amps)>,
}

/// Updates the memory with this round's draw and returns the maximum to allocate
/// with: `station_max` (the session's `max_current`), or the adapted (lower) value.
///
/// Evidence is only taken from a session running under a limit of at least
/// `min_current` (a suspended vehicle says nothing about its demand) that reports
/// its draw; the draw of a 3-phase session is its highest phase.
pub(crate) fn adapt(
    memory: &mut DemandMemory,
    session: &Session,
    station_max: Amps,
    min_current: Amps,
    now: DateTime<Utc>,
) -> Amps {
    let limit = session
        .limit_in_force
        .filter(|l| l.is_finite() && *l >= min_current && l.0 > 0.0);
    let draw = session.draw.and_then(|d| {
        let on_phases = Phase::ALL
            .into_iter()
            .filter(|&p| session.phases.loads(p))
            .map(|p| d.get(p));
        let highest = on_phases.fold(Amps::ZERO, Amps::max);
        d.0.iter().all(|a| a.is_finite()).then_some(highest)
    });
    match (limit, draw) {
        (Some(limit), Some(draw)) if draw.0 >= limit.0 - RAISE_WITHIN_A => {
            memory.adapted = None;
            memory.low_since = None;
        }
        (Some(limit), Some(draw)) if draw.0 <= limit.0 - LOWER_GAP_A => {
            let since = match memory.low_since {
                Some((since, under)) if under == limit => since,
                _ => now,
            };
            if now - since >= ADAPT_AFTER {
                memory.adapted = Some((draw + Amps(ADAPT_HEADROOM_A)).max(min_current));
                memory.low_since = None;
            } else {
                memory.low_since = Some((since, limit));
            }
        }
        _ => memory.low_since = None,
    }
    match memory.adapted {
        Some(adapted) => adapted.min(station_max),
        None => station_max,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::session::{SessionKey, SessionPhases};
    use crate::allocation::tree::ZoneIdx;
    use crate::units::PerPhase;
    use chrono::TimeZone;

    fn t(s: i64) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap() + TimeDelta::seconds(s)
    }

    fn session(limit: f64, draw: [f64; 3], phases: SessionPhases) -> Session {
        Session {
            key: SessionKey::new("CP1", 1),
            zone: ZoneIdx(0),
            phases,
            max_current: Amps(32.0),
            vip: false,
            energy_wh: 0.0,
            connected_since: t(0),
            draw: Some(PerPhase(draw.map(Amps))),
            limit_in_force: Some(Amps(limit)),
            fixed: None,
            changed_at: None,
            draw_at: None,
            lowest_limit_since_draw: None,
        }
    }

    #[test]
    fn persistent_low_draw_lowers_the_max_to_draw_plus_headroom() {
        let mut m = DemandMemory::default();
        let s = session(32.0, [10.0, 9.0, 10.0], SessionPhases::Three);
        assert_eq!(adapt(&mut m, &s, Amps(32.0), Amps(6.0), t(0)), Amps(32.0));
        assert_eq!(
            adapt(&mut m, &s, Amps(32.0), Amps(6.0), t(59)),
            Amps(32.0),
            "not before ADAPT_AFTER"
        );
        assert_eq!(adapt(&mut m, &s, Amps(32.0), Amps(6.0), t(60)), Amps(13.0));
    }

    #[test]
    fn adapted_max_never_goes_below_min_current() {
        let mut m = DemandMemory::default();
        let s = session(16.0, [0.5, 0.0, 0.0], SessionPhases::Three);
        adapt(&mut m, &s, Amps(32.0), Amps(6.0), t(0));
        assert_eq!(adapt(&mut m, &s, Amps(32.0), Amps(6.0), t(60)), Amps(6.0));
    }

    #[test]
    fn drawing_near_the_limit_restores_the_max_at_once() {
        let mut m = DemandMemory {
            adapted: Some(Amps(13.0)),
            low_since: None,
        };
        let s = session(13.0, [12.0, 0.0, 0.0], SessionPhases::One(Phase::L1));
        assert_eq!(adapt(&mut m, &s, Amps(32.0), Amps(6.0), t(0)), Amps(32.0));
        assert_eq!(m, DemandMemory::default());
    }

    #[test]
    fn a_changed_limit_restarts_the_low_draw_clock() {
        let mut m = DemandMemory::default();
        adapt(
            &mut m,
            &session(32.0, [10.0; 3], SessionPhases::Three),
            Amps(32.0),
            Amps(6.0),
            t(0),
        );
        assert_eq!(
            adapt(
                &mut m,
                &session(20.0, [10.0; 3], SessionPhases::Three),
                Amps(32.0),
                Amps(6.0),
                t(60)
            ),
            Amps(32.0)
        );
        assert_eq!(
            adapt(
                &mut m,
                &session(20.0, [10.0; 3], SessionPhases::Three),
                Amps(32.0),
                Amps(6.0),
                t(120)
            ),
            Amps(13.0)
        );
    }

    #[test]
    fn a_one_phase_session_is_judged_on_its_own_phase() {
        let mut m = DemandMemory::default();
        // Heavy draw on L1 is another vehicle's business: this one loads L2 and draws little.
        let s = session(32.0, [30.0, 5.0, 30.0], SessionPhases::One(Phase::L2));
        adapt(&mut m, &s, Amps(32.0), Amps(6.0), t(0));
        assert_eq!(adapt(&mut m, &s, Amps(32.0), Amps(6.0), t(60)), Amps(8.0));
    }

    #[test]
    fn no_evidence_from_a_suspended_or_silent_session() {
        let mut m = DemandMemory::default();
        let suspended = session(0.0, [0.0; 3], SessionPhases::Three);
        adapt(&mut m, &suspended, Amps(32.0), Amps(6.0), t(0));
        assert_eq!(
            adapt(&mut m, &suspended, Amps(32.0), Amps(6.0), t(120)),
            Amps(32.0)
        );
        let mut silent = session(32.0, [0.0; 3], SessionPhases::Three);
        silent.draw = None;
        adapt(&mut m, &silent, Amps(32.0), Amps(6.0), t(0));
        assert_eq!(
            adapt(&mut m, &silent, Amps(32.0), Amps(6.0), t(120)),
            Amps(32.0)
        );
    }
}
