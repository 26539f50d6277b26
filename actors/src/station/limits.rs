//! What limit a station may be applying, from what we sent it and what it answered.
//! Pure: the station actor feeds it every send and every answer, and asks it for the
//! most a connector may draw. Nothing unconfirmed is ever assumed lower than it could be.
//!
//! A station applies, for a connector in a transaction, the TxProfile of that
//! transaction if it has one, else the connector's TxDefaultProfile, else connector 0's,
//! else no limit at all (its maximum). Each of those is a [`Slot`]: the last value the
//! station accepted plus every value sent after it that is not known to be refused. A
//! value whose answer timed out or was lost may be in force; it stays counted until a
//! later value of the same slot is accepted (the station applies CALLs in order, so that
//! one replaced it).

use std::collections::BTreeMap;

use crate::units::Amps;

/// Unanswered values kept per slot; beyond this the oldest two are merged into one
/// (their maximum), which stays counted until a later value is accepted.
const MAX_UNANSWERED: usize = 8;

/// Which profile a value was sent as.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Profile {
    /// TxDefaultProfile on a connector; connector 0 is the whole station's.
    Default,
    /// TxProfile of the given transaction.
    Transaction(i32),
}

/// A value the station accepted, and the one of the same profile it replaced (`None`:
/// the first of that profile).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Accepted {
    pub previous: Option<Amps>,
    pub value: Amps,
}

impl Accepted {
    /// Whether the limit moved (a first profile moves it from the default), so that
    /// the vehicle's draw is moving too until it has followed.
    pub fn is_change(&self) -> bool {
        self.previous != Some(self.value)
    }
}

/// Identifies one send, to match its answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Ticket(u64);

/// How a SetChargingProfile ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Answer {
    Accepted,
    /// The station said no (Rejected, or a CALLERROR): the value is not in force.
    Refused,
    /// Never written to the socket (no connection): the value is not in force.
    NotSent,
    /// Timed out, the connection closed before the answer, or the answer was garbled:
    /// the value may be in force.
    Unknown,
}

#[derive(Clone, Copy, Debug, PartialEq)]
struct Unanswered {
    ticket: Ticket,
    value: Amps,
    /// False once merged with an older value: a refusal of `ticket` then does not prove
    /// the older one was not applied.
    sole: bool,
}

/// One profile slot: what the station last accepted and what may have replaced it.
#[derive(Clone, Debug, Default, PartialEq)]
struct Slot {
    /// The last accepted value and its ticket; `None`: nothing we sent is known in force.
    accepted: Option<(Ticket, Amps)>,
    unanswered: Vec<Unanswered>,
}

impl Slot {
    fn send(&mut self, ticket: Ticket, value: Amps) {
        if self.unanswered.len() >= MAX_UNANSWERED {
            let older = self.unanswered.remove(0);
            let newer = &mut self.unanswered[0];
            newer.value = newer.value.max(older.value);
            newer.sole = false;
        }
        self.unanswered.push(Unanswered {
            ticket,
            value,
            sole: true,
        });
    }

    /// `None` if the ticket is not of this slot; else, for an acceptance that became the
    /// value in force, the value accepted before it.
    fn answer(&mut self, ticket: Ticket, answer: Answer) -> Option<Option<Accepted>> {
        let i = self.unanswered.iter().position(|u| u.ticket == ticket)?;
        match answer {
            Answer::Accepted => {
                let value = self.unanswered[i].value;
                // Everything sent before it was applied before it, and it replaced them.
                self.unanswered.retain(|u| u.ticket > ticket);
                if self.accepted.is_none_or(|(t, _)| t < ticket) {
                    let previous = self.accepted.map(|(_, v)| v);
                    self.accepted = Some((ticket, value));
                    return Some(Some(Accepted { previous, value }));
                }
            }
            Answer::Refused | Answer::NotSent => {
                if self.unanswered[i].sole {
                    self.unanswered.remove(i);
                }
            }
            Answer::Unknown => {}
        }
        Some(None)
    }

    /// The highest value that may be in force, if the slot holds anything; `unset` is
    /// what applies when it holds nothing accepted.
    fn bound(&self, unset: Amps) -> Amps {
        let base = self.accepted.map_or(unset, |(_, v)| v);
        self.unanswered
            .iter()
            .map(|u| u.value)
            .fold(base, Amps::max)
    }

    /// Nothing is known in force any more; the highest value that may be stays
    /// reserved (as older than anything sent from now on, and never proved unapplied).
    fn forget(&mut self) {
        let kept = self.highest();
        self.accepted = None;
        self.unanswered = kept
            .map(|value| Unanswered {
                ticket: Ticket(0),
                value,
                sole: false,
            })
            .into_iter()
            .collect();
    }

    fn is_empty(&self) -> bool {
        self.accepted.is_none() && self.unanswered.is_empty()
    }

    /// The highest value of the slot alone (`None` if it holds nothing).
    fn highest(&self) -> Option<Amps> {
        let values = self.accepted.map(|(_, v)| v).into_iter();
        values
            .chain(self.unanswered.iter().map(|u| u.value))
            .reduce(Amps::max)
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
struct ConnectorSlots {
    default: Slot,
    /// The TxProfile slot and the transaction it belongs to.
    tx: Option<(i32, Slot)>,
}

/// The profiles of one station, per connector (0 = the station's default).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct LimitState {
    station_default: Slot,
    connectors: BTreeMap<u32, ConnectorSlots>,
    next_ticket: u64,
}

impl LimitState {
    /// Records a value about to be sent; its answer goes to [`LimitState::answered`].
    pub fn send(&mut self, connector: u32, profile: Profile, value: Amps) -> Ticket {
        self.next_ticket += 1;
        let ticket = Ticket(self.next_ticket);
        let value = if value.0.is_nan() {
            Amps(f64::INFINITY)
        } else {
            value
        };
        if connector == 0 {
            // A TxProfile cannot go on connector 0; as a default it is the whole station's.
            self.station_default.send(ticket, value);
            return ticket;
        }
        let slots = self.connectors.entry(connector).or_default();
        match profile {
            Profile::Default => slots.default.send(ticket, value),
            Profile::Transaction(t) => {
                if slots.tx.as_ref().is_none_or(|(id, _)| *id != t) {
                    slots.tx = Some((t, Slot::default()));
                }
                if let Some((_, slot)) = &mut slots.tx {
                    slot.send(ticket, value);
                }
            }
        }
        ticket
    }

    /// Records an answer; for an acceptance that is now in force, what it replaced.
    pub fn answered(&mut self, ticket: Ticket, answer: Answer) -> Option<Accepted> {
        if let Some(done) = self.station_default.answer(ticket, answer) {
            return done;
        }
        for slots in self.connectors.values_mut() {
            if let Some(done) = slots.default.answer(ticket, answer) {
                return done;
            }
            if let Some(done) = slots
                .tx
                .as_mut()
                .and_then(|(_, s)| s.answer(ticket, answer))
            {
                return done;
            }
        }
        None
    }

    /// The transaction ended: its TxProfile ends with it (OCPP 1.6 §3.13.2).
    pub fn transaction_ended(&mut self, connector: u32, transaction: i32) {
        if let Some(slots) = self.connectors.get_mut(&connector) {
            if slots.tx.as_ref().is_some_and(|(id, _)| *id == transaction) {
                slots.tx = None;
            }
        }
    }

    /// The station booted (or reconnected with a BootNotification): it may have lost
    /// every profile — then its maximum or its defaults apply — or kept them, as OCPP
    /// asks; its running transactions go on. So nothing is known in force any more, and
    /// every value that may have been stays reserved until a newer one is accepted in
    /// its slot.
    pub fn rebooted(&mut self) {
        self.station_default.forget();
        for slots in self.connectors.values_mut() {
            slots.default.forget();
            if let Some((_, slot)) = &mut slots.tx {
                slot.forget();
            }
        }
    }

    /// The most the connector may draw now, during `transaction` (or between
    /// transactions if `None`), on a station whose own maximum is `station_max`.
    pub fn may_apply(&self, connector: u32, transaction: Option<i32>, station_max: Amps) -> Amps {
        let station = self.station_default.bound(station_max);
        let Some(slots) = self.connectors.get(&connector) else {
            return station;
        };
        let default = if slots.default.is_empty() {
            station
        } else {
            slots.default.bound(station)
        };
        match (&slots.tx, transaction) {
            (Some((id, slot)), Some(t)) if *id == t => match slot.accepted {
                // An accepted TxProfile outranks the defaults.
                Some(_) => slot.bound(Amps::ZERO),
                None => slot.bound(default),
            },
            _ => default,
        }
    }

    /// The highest TxProfile value of `transaction` that may be in force (`None` while
    /// it runs on a default profile).
    pub fn tx_limit(&self, connector: u32, transaction: i32) -> Option<Amps> {
        let (id, slot) = self.connectors.get(&connector)?.tx.as_ref()?;
        (*id == transaction).then(|| slot.highest()).flatten()
    }

    /// Whether the connector's limit is known exactly: nothing unanswered in any slot it
    /// depends on, and the station's default accepted.
    pub fn settled(&self, connector: u32) -> bool {
        let slot_settled = |s: &Slot| s.unanswered.is_empty();
        slot_settled(&self.station_default)
            && self.connectors.get(&connector).is_none_or(|c| {
                slot_settled(&c.default) && c.tx.as_ref().is_none_or(|(_, s)| slot_settled(s))
            })
    }
}

#[cfg(test)]
mod tests;
