use proptest::prelude::*;

use super::*;

const MAX: Amps = Amps(32.0);

#[test]
fn nothing_sent_means_the_station_maximum() {
    let s = LimitState::default();
    assert_eq!(s.may_apply(1, Some(7), MAX), MAX);
    assert_eq!(s.may_apply(1, None, MAX), MAX);
}

#[test]
fn a_boot_default_that_times_out_leaves_the_station_at_its_maximum() {
    let mut s = LimitState::default();
    let t = s.send(0, Profile::Default, Amps::ZERO);
    assert_eq!(
        s.may_apply(1, Some(7), MAX),
        MAX,
        "unanswered: not yet in force"
    );
    s.answered(t, Answer::Unknown);
    assert_eq!(
        s.may_apply(1, Some(7), MAX),
        MAX,
        "timed out: still unknown"
    );
    let again = s.send(0, Profile::Default, Amps::ZERO);
    s.answered(again, Answer::Accepted);
    assert_eq!(s.may_apply(1, Some(7), MAX), Amps::ZERO);
}

#[test]
fn an_increase_and_a_decrease_that_both_time_out_reserve_the_increase() {
    let mut s = LimitState::default();
    let d = s.send(0, Profile::Default, Amps::ZERO);
    s.answered(d, Answer::Accepted);
    let ten = s.send(1, Profile::Transaction(7), Amps(10.0));
    s.answered(ten, Answer::Accepted);
    let twenty = s.send(1, Profile::Transaction(7), Amps(20.0));
    s.answered(twenty, Answer::Unknown);
    let six = s.send(1, Profile::Transaction(7), Amps(6.0));
    s.answered(six, Answer::Unknown);
    assert_eq!(s.may_apply(1, Some(7), MAX), Amps(20.0));
    assert_eq!(s.tx_limit(1, 7), Some(Amps(20.0)));
    let five = s.send(1, Profile::Transaction(7), Amps(5.0));
    s.answered(five, Answer::Accepted);
    assert_eq!(
        s.may_apply(1, Some(7), MAX),
        Amps(5.0),
        "a later accept replaces them"
    );
}

#[test]
fn a_refused_value_is_not_in_force_but_an_earlier_unknown_one_may_be() {
    let mut s = LimitState::default();
    let d = s.send(0, Profile::Default, Amps::ZERO);
    s.answered(d, Answer::Accepted);
    let high = s.send(1, Profile::Transaction(3), Amps(16.0));
    s.answered(high, Answer::Unknown);
    let low = s.send(1, Profile::Transaction(3), Amps(8.0));
    s.answered(low, Answer::Refused);
    assert_eq!(s.may_apply(1, Some(3), MAX), Amps(16.0));
}

#[test]
fn a_transaction_profile_ends_with_its_transaction() {
    let mut s = LimitState::default();
    let d = s.send(0, Profile::Default, Amps::ZERO);
    s.answered(d, Answer::Accepted);
    let t = s.send(1, Profile::Transaction(3), Amps(16.0));
    s.answered(t, Answer::Accepted);
    assert_eq!(
        s.may_apply(1, Some(4), MAX),
        Amps::ZERO,
        "another transaction"
    );
    s.transaction_ended(1, 3);
    assert_eq!(s.tx_limit(1, 3), None);
    assert_eq!(s.may_apply(1, Some(3), MAX), Amps::ZERO);
}

#[test]
fn a_reboot_forgets_what_was_accepted() {
    let mut s = LimitState::default();
    let d = s.send(0, Profile::Default, Amps::ZERO);
    s.answered(d, Answer::Accepted);
    s.rebooted();
    assert_eq!(s.may_apply(1, Some(3), MAX), MAX);
}

#[test]
fn a_running_transactions_profile_may_outlive_a_reboot() {
    let mut s = LimitState::default();
    let d = s.send(0, Profile::Default, Amps::ZERO);
    s.answered(d, Answer::Accepted);
    let tx = s.send(1, Profile::Transaction(3), Amps(18.0));
    s.answered(tx, Answer::Accepted);
    s.rebooted();
    // The 0 A default is accepted again after the boot: the 18 A TxProfile may have been
    // kept, so it still counts.
    let d = s.send(0, Profile::Default, Amps::ZERO);
    s.answered(d, Answer::Accepted);
    assert_eq!(s.may_apply(1, Some(3), MAX), Amps(18.0));
    // Until a new TxProfile is accepted, whose value then is the one in force.
    let lower = s.send(1, Profile::Transaction(3), Amps(10.0));
    s.answered(lower, Answer::Accepted);
    assert_eq!(s.may_apply(1, Some(3), MAX), Amps(10.0));
    // A refused one proves nothing about the kept value.
    let mut t = LimitState::default();
    let tx = t.send(1, Profile::Transaction(3), Amps(18.0));
    t.answered(tx, Answer::Accepted);
    t.rebooted();
    let refused = t.send(1, Profile::Transaction(3), Amps(6.0));
    t.answered(refused, Answer::Refused);
    assert_eq!(
        t.may_apply(1, Some(3), MAX),
        MAX,
        "no default known: its maximum"
    );
    let d = t.send(0, Profile::Default, Amps::ZERO);
    t.answered(d, Answer::Accepted);
    assert_eq!(t.may_apply(1, Some(3), MAX), Amps(18.0));
}

#[test]
fn many_unanswered_values_merge_without_losing_the_highest() {
    let mut s = LimitState::default();
    let d = s.send(0, Profile::Default, Amps::ZERO);
    s.answered(d, Answer::Accepted);
    let first = s.send(1, Profile::Transaction(1), Amps(30.0));
    s.answered(first, Answer::Unknown);
    for i in 0..20 {
        let t = s.send(1, Profile::Transaction(1), Amps(f64::from(i % 5)));
        s.answered(t, Answer::Refused);
        let t = s.send(1, Profile::Transaction(1), Amps(1.0));
        s.answered(t, Answer::Unknown);
    }
    assert_eq!(s.may_apply(1, Some(1), MAX), Amps(30.0));
    let slots = &s.connectors[&1];
    assert!(slots.tx.as_ref().unwrap().1.unanswered.len() <= MAX_UNANSWERED);
}

// --- the property: a model of what the station really does ---------------------------

#[derive(Clone, Debug)]
enum Event {
    Send {
        connector: u32,
        tx_profile: bool,
        value: u8,
    },
    /// The oldest unanswered send gets an answer; `applied` decides, for a lost answer,
    /// whether the station had applied it.
    Answer {
        kind: u8,
        applied: bool,
    },
    StartTransaction {
        connector: u32,
    },
    EndTransaction {
        connector: u32,
    },
    /// The station boots again (or reconnects with a BootNotification); its running
    /// transactions go on. `keeps`: it kept its profiles (OCPP asks stations to), else
    /// it lost them all.
    Reboot {
        keeps: bool,
    },
}

fn event() -> impl Strategy<Value = Event> {
    prop_oneof![
        6 => (0u32..3, any::<bool>(), 0u8..40).prop_map(|(connector, tx_profile, value)| Event::Send {
            connector,
            tx_profile,
            value
        }),
        6 => (0u8..4, any::<bool>()).prop_map(|(kind, applied)| Event::Answer { kind, applied }),
        2 => (1u32..3).prop_map(|connector| Event::StartTransaction { connector }),
        1 => (1u32..3).prop_map(|connector| Event::EndTransaction { connector }),
        1 => any::<bool>().prop_map(|keeps| Event::Reboot { keeps }),
    ]
}

/// What the station has applied, per slot, as the physical truth.
#[derive(Default)]
struct Station {
    station_default: Option<Amps>,
    defaults: BTreeMap<u32, Amps>,
    tx: BTreeMap<u32, (i32, Amps)>,
    transaction: BTreeMap<u32, i32>,
}

impl Station {
    fn apply(&mut self, connector: u32, profile: Profile, value: Amps) {
        match (connector, profile) {
            (0, _) => self.station_default = Some(value),
            (c, Profile::Default) => {
                self.defaults.insert(c, value);
            }
            (c, Profile::Transaction(t)) => {
                // A station only takes a TxProfile for the transaction it runs.
                if self.transaction.get(&c) == Some(&t) {
                    self.tx.insert(c, (t, value));
                }
            }
        }
    }

    fn in_force(&self, connector: u32) -> Amps {
        let tx = self.transaction.get(&connector);
        if let Some((t, v)) = self.tx.get(&connector) {
            if Some(t) == tx {
                return *v;
            }
        }
        self.defaults
            .get(&connector)
            .copied()
            .or(self.station_default)
            .unwrap_or(MAX)
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn the_reserved_limit_is_never_below_what_the_station_may_apply(
        events in proptest::collection::vec(event(), 1..80)
    ) {
        let mut ours = LimitState::default();
        let mut station = Station::default();
        let mut in_flight: std::collections::VecDeque<(Ticket, u32, Profile, Amps)> =
            Default::default();
        let mut next_tx = 1;
        for e in events {
            match e {
                Event::Send { connector, tx_profile, value } => {
                    let profile = match (tx_profile, station.transaction.get(&connector)) {
                        (true, Some(&t)) => Profile::Transaction(t),
                        _ => Profile::Default,
                    };
                    let value = Amps(f64::from(value));
                    let ticket = ours.send(connector, profile, value);
                    in_flight.push_back((ticket, connector, profile, value));
                }
                Event::Answer { kind, applied } => {
                    let Some((ticket, connector, profile, value)) = in_flight.pop_front() else {
                        continue;
                    };
                    let answer = match kind {
                        0 => Answer::Accepted,
                        1 => Answer::Refused,
                        2 => Answer::NotSent,
                        _ => Answer::Unknown,
                    };
                    if answer == Answer::Accepted || (answer == Answer::Unknown && applied) {
                        station.apply(connector, profile, value);
                    }
                    ours.answered(ticket, answer);
                }
                Event::StartTransaction { connector } => {
                    if let std::collections::btree_map::Entry::Vacant(v) =
                        station.transaction.entry(connector)
                    {
                        v.insert(next_tx);
                        next_tx += 1;
                    }
                }
                Event::EndTransaction { connector } => {
                    if let Some(t) = station.transaction.remove(&connector) {
                        station.tx.remove(&connector);
                        ours.transaction_ended(connector, t);
                    }
                }
                Event::Reboot { keeps } => {
                    // The calls in flight are lost with the connection (applied or not:
                    // the worse case, applied).
                    for (ticket, connector, profile, value) in in_flight.drain(..) {
                        station.apply(connector, profile, value);
                        ours.answered(ticket, Answer::Unknown);
                    }
                    if !keeps {
                        station.station_default = None;
                        station.defaults.clear();
                        station.tx.clear();
                    }
                    ours.rebooted();
                }
            }
            for connector in 1..3 {
                let tx = station.transaction.get(&connector).copied();
                let physical = station.in_force(connector);
                let reserved = ours.may_apply(connector, tx, MAX);
                prop_assert!(
                    reserved >= physical,
                    "connector {connector}: reserved {reserved} < in force {physical}"
                );
            }
        }
    }
}
