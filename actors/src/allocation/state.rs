//! What the allocation remembers between rounds: per session its shed decision and
//! since when, its held increase and its demand adaptation; for the site, when the
//! current rotation period started. The caller keeps it and passes it back each round.

use std::collections::HashMap;

use chrono::{DateTime, Utc};

use super::demand::DemandMemory;
use super::dispatch::HoldMemory;
use super::session::{Session, SessionKey};

/// The allocation's memory. Start with `AllocatorState::default()`; a restart with a
/// fresh state only means decisions are taken anew (a safe, if less smooth, start).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct AllocatorState {
    /// One entry per session of the last round, in that round's order: when the next
    /// round lists the same sessions in the same order (the usual case), memories are
    /// matched by position without hashing or cloning keys.
    pub(crate) entries: Vec<(SessionKey, SessionMemory)>,
    /// When the current rotation period began; `None` while nobody is suspended.
    pub(crate) rotation_started: Option<DateTime<Utc>>,
}

impl AllocatorState {
    /// When suspended vehicles were last re-evaluated (`None` when nobody is suspended).
    pub fn rotation_started(&self) -> Option<DateTime<Utc>> {
        self.rotation_started
    }

    /// The memories of this round's sessions (a default one for a new session).
    pub(crate) fn recall(&self, sessions: &[Session]) -> (Vec<SessionMemory>, Recall) {
        let aligned = self.entries.len() == sessions.len()
            && self
                .entries
                .iter()
                .zip(sessions)
                .all(|((k, _), s)| *k == s.key);
        if aligned {
            return (
                self.entries.iter().map(|(_, m)| *m).collect(),
                Recall::Aligned,
            );
        }
        let index: HashMap<&SessionKey, usize> = self
            .entries
            .iter()
            .enumerate()
            .map(|(i, (k, _))| (k, i))
            .collect();
        let found: Vec<Option<usize>> = sessions
            .iter()
            .map(|s| index.get(&s.key).copied())
            .collect();
        let memories = found
            .iter()
            .map(|f| f.map_or_else(SessionMemory::default, |i| self.entries[i].1))
            .collect();
        (memories, Recall::Moved(found))
    }

    /// Keeps this round's memories for the next round; sessions that are gone are forgotten.
    pub(crate) fn remember(
        &mut self,
        sessions: &[Session],
        memories: Vec<SessionMemory>,
        recall: Recall,
    ) {
        match recall {
            Recall::Aligned => {
                for ((_, m), new) in self.entries.iter_mut().zip(memories) {
                    *m = new;
                }
            }
            Recall::Moved(found) => {
                let mut old = std::mem::take(&mut self.entries);
                self.entries = sessions
                    .iter()
                    .zip(found)
                    .zip(memories)
                    .map(|((s, f), m)| {
                        // Reuse the stored key when it is still there (a duplicate input takes a copy).
                        let key = match f {
                            Some(i) if old[i].0 == s.key => std::mem::take(&mut old[i].0),
                            _ => s.key.clone(),
                        };
                        (key, m)
                    })
                    .collect();
            }
        }
    }
}

/// How the memories of a round were found.
pub(crate) enum Recall {
    /// Same sessions in the same order as last round.
    Aligned,
    /// Position in last round's entries of each session, if it was there.
    Moved(Vec<Option<usize>>),
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

    #[test]
    fn memories_follow_their_sessions_whatever_the_order() {
        let mut state = AllocatorState::default();
        let round1 = [session("a"), session("b")];
        let (m, r) = state.recall(&round1);
        assert_eq!(m, [SessionMemory::default(); 2]);
        state.remember(&round1, vec![active(1), active(2)], r);

        let (m, r) = state.recall(&round1);
        assert!(matches!(r, Recall::Aligned));
        assert_eq!(m, [active(1), active(2)]);
        state.remember(&round1, m, r);

        let round2 = [session("c"), session("b")];
        let (m, r) = state.recall(&round2);
        assert_eq!(m, [SessionMemory::default(), active(2)]);
        state.remember(&round2, vec![active(3), active(2)], r);
        let keys: Vec<&str> = state
            .entries
            .iter()
            .map(|(k, _)| k.charge_point.as_str())
            .collect();
        assert_eq!(keys, ["c", "b"], "a is forgotten");
    }

    #[test]
    fn a_duplicated_session_does_not_lose_its_key() {
        let mut state = AllocatorState::default();
        let once = [session("a")];
        let (m, r) = state.recall(&once);
        state.remember(&once, m, r);
        let twice = [session("a"), session("a")];
        let (m, r) = state.recall(&twice);
        state.remember(&twice, m, r);
        assert!(state
            .entries
            .iter()
            .all(|(k, _)| k.charge_point.as_str() == "a"));
    }
}
