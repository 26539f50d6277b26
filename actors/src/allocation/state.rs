//! What the allocation remembers between rounds: per session its shed decision and
//! since when, its held increase and its demand adaptation; for the site, when the
//! current rotation period started. The caller keeps it and passes it back each round.

use std::collections::HashMap;
use std::fmt;

use chrono::{DateTime, Utc};

use super::demand::DemandMemory;
use super::dispatch::HoldMemory;
use super::session::{Session, SessionKey};
use super::{sharing, shedding, Demand, Prepared};

/// The allocation's memory. Start with `AllocatorState::default()`; a restart with a
/// fresh state only means decisions are taken anew (a safe, if less smooth, start).
///
/// It also keeps the round's working buffers, so that a round at 10 000 sessions does
/// not allocate (and fault in) megabytes every few seconds. They carry nothing from
/// one round to the next: equality, cloning and debug output ignore them.
#[derive(Default)]
pub struct AllocatorState {
    /// The sessions of the last round, in that round's order, and their memories (same
    /// index). When the next round lists the same sessions in the same order (the usual
    /// case) nothing is hashed, cloned or moved.
    pub(crate) keys: Vec<SessionKey>,
    pub(crate) memories: Vec<SessionMemory>,
    /// When the current rotation period began; `None` while nobody is suspended.
    pub(crate) rotation_started: Option<DateTime<Utc>>,
    /// Per zone (the tree's order): the estimate and budget of the last round.
    pub(crate) zones: Vec<super::budget::ZoneMemory>,
    pub(crate) scratch: Scratch,
}

impl AllocatorState {
    /// When suspended vehicles were last re-evaluated (`None` when nobody is suspended).
    pub fn rotation_started(&self) -> Option<DateTime<Utc>> {
        self.rotation_started
    }

    /// Puts the memories in the order of this round's sessions: a new session gets a
    /// fresh memory, a session that is gone is forgotten.
    pub(crate) fn align(&mut self, sessions: &[Session]) {
        let aligned = self.keys.len() == sessions.len()
            && self.keys.iter().zip(sessions).all(|(k, s)| *k == s.key);
        if aligned {
            return;
        }
        let index: HashMap<&SessionKey, usize> =
            self.keys.iter().enumerate().map(|(i, k)| (k, i)).collect();
        let found: Vec<Option<usize>> = sessions
            .iter()
            .map(|s| index.get(&s.key).copied())
            .collect();
        drop(index);
        let mut old_keys = std::mem::take(&mut self.keys);
        let old_memories = std::mem::take(&mut self.memories);
        self.keys = sessions
            .iter()
            .zip(&found)
            .map(|(s, f)| match f {
                // Reuse the stored key when it is still there (a duplicate input takes a copy).
                Some(i) if old_keys[*i] == s.key => std::mem::take(&mut old_keys[*i]),
                _ => s.key.clone(),
            })
            .collect();
        self.memories = found
            .iter()
            .map(|f| f.map_or_else(SessionMemory::default, |i| old_memories[i]))
            .collect();
    }
}

impl Clone for AllocatorState {
    fn clone(&self) -> Self {
        AllocatorState {
            keys: self.keys.clone(),
            memories: self.memories.clone(),
            rotation_started: self.rotation_started,
            zones: self.zones.clone(),
            scratch: Scratch::default(),
        }
    }
}

impl PartialEq for AllocatorState {
    fn eq(&self, other: &Self) -> bool {
        self.keys == other.keys
            && self.memories == other.memories
            && self.rotation_started == other.rotation_started
            && self.zones == other.zones
    }
}

impl fmt::Debug for AllocatorState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("AllocatorState")
            .field("keys", &self.keys)
            .field("memories", &self.memories)
            .field("rotation_started", &self.rotation_started)
            .field("zones", &self.zones)
            .finish_non_exhaustive()
    }
}

/// Working buffers of a round, reused by the next one (their contents are not).
#[derive(Default)]
pub(crate) struct Scratch {
    pub prepared: Vec<Prepared>,
    pub demands: Vec<Demand>,
    /// The session of each demand.
    pub demand_session: Vec<u32>,
    pub shedding: shedding::Scratch,
    pub sharing: sharing::Scratch,
}

/// What is remembered about one session.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) struct SessionMemory {
    pub status: Status,
    pub demand: DemandMemory,
    pub hold: Option<HoldMemory>,
}

/// A session's shed decision.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub(crate) enum Status {
    /// New, or unable to charge: no decision yet.
    #[default]
    Waiting,
    Active {
        since: DateTime<Utc>,
    },
    Suspended {
        since: DateTime<Utc>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::session::SessionPhases;
    use crate::allocation::tree::ZoneIdx;
    use crate::units::Amps;

    fn session(id: &str) -> Session {
        Session {
            key: SessionKey::new(id, 1),
            zone: ZoneIdx(0),
            phases: SessionPhases::Three,
            max_current: Amps(32.0),
            vip: false,
            energy_wh: 0.0,
            connected_since: DateTime::UNIX_EPOCH,
            draw: None,
            limit_in_force: None,
            fixed: None,
            changed_at: None,
            draw_at: None,
            lowest_limit_since_draw: None,
        }
    }

    fn active(s: i64) -> SessionMemory {
        SessionMemory {
            status: Status::Active {
                since: DateTime::UNIX_EPOCH + chrono::TimeDelta::seconds(s),
            },
            ..Default::default()
        }
    }

    fn charge_points(state: &AllocatorState) -> Vec<&str> {
        state.keys.iter().map(|k| k.charge_point.as_str()).collect()
    }

    #[test]
    fn memories_follow_their_sessions_whatever_the_order() {
        let mut state = AllocatorState::default();
        let round1 = [session("a"), session("b")];
        state.align(&round1);
        assert_eq!(state.memories, [SessionMemory::default(); 2]);
        state.memories = vec![active(1), active(2)];

        state.align(&round1);
        assert_eq!(state.memories, [active(1), active(2)]);

        let round2 = [session("c"), session("b")];
        state.align(&round2);
        assert_eq!(state.memories, [SessionMemory::default(), active(2)]);
        assert_eq!(charge_points(&state), ["c", "b"], "a is forgotten");
    }

    #[test]
    fn a_duplicated_session_does_not_lose_its_key() {
        let mut state = AllocatorState::default();
        state.align(&[session("a")]);
        state.align(&[session("a"), session("a")]);
        assert_eq!(charge_points(&state), ["a", "a"]);
    }

    #[test]
    fn working_buffers_are_not_part_of_the_memory() {
        let mut state = AllocatorState::default();
        state.scratch.demand_session.push(7);
        assert_eq!(state, AllocatorState::default());
        assert!(state.clone().scratch.demand_session.is_empty());
    }
}
