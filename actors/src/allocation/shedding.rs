//! Shedding: which vehicles are suspended so that every other one can get at least
//! `min_current_a`. Every (zone, phase) has room for `floor(capacity / min)` vehicles
//! loading it; vehicles are admitted in keep order and one that finds a full
//! (zone, phase) on its path is suspended. Only constraints that overflow are counted,
//! and only the vehicles under them sorted (a radix sort on one integer), so a round
//! costs O(n), plus the sorting of equal ranks by session key.

use std::cmp::Ordering;

use chrono::{DateTime, TimeDelta, Utc};

use super::state::Status;
use super::tree::{PathLists, ZoneTree};
use super::Demand;
use crate::config::SheddingStrategy;

/// A session's place in the keep order, as one integer: lower is kept first. The top
/// 3 bits hold the class (VIP, protection; higher class first), the rest the strategy's
/// value (energy to the watt-hour, connection time to the millisecond); equal ranks
/// are ordered by session key. One `u64` keeps the sort of 10 000 sessions cheap.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct KeepRank(u64);

impl KeepRank {
    const VALUE_BITS: u32 = 61;
    const VALUE_MAX: u64 = (1 << Self::VALUE_BITS) - 1;

    /// `class` 0 to 7, higher first; `value` lower first.
    fn new(class: u8, value: u64) -> Self {
        KeepRank((u64::from(7 - class.min(7)) << Self::VALUE_BITS) | value.min(Self::VALUE_MAX))
    }

    #[cfg(test)]
    fn class(self) -> u8 {
        7 - (self.0 >> Self::VALUE_BITS) as u8
    }
}

/// How the keep order is made this round.
pub(crate) struct KeepOrder {
    strategy: SheddingStrategy,
    /// A rotation re-evaluates every decision; otherwise running vehicles keep running.
    rotation_due: bool,
    /// A vehicle active since after this is protected by `min_active`.
    protected_after: DateTime<Utc>,
}

impl KeepOrder {
    pub fn new(
        strategy: SheddingStrategy,
        rotation_due: bool,
        min_active: TimeDelta,
        now: DateTime<Utc>,
    ) -> Self {
        KeepOrder {
            strategy,
            rotation_due,
            protected_after: now - min_active,
        }
    }

    /// VIPs before everyone; then vehicles resumed less than `min_active` ago; then,
    /// between rotations, the vehicles already running; then the strategy: least
    /// energy first (`energy`), or most recently connected first (`connection_time`).
    pub fn rank(
        &self,
        vip: bool,
        status: Status,
        energy_wh: f64,
        connected_since: DateTime<Utc>,
    ) -> KeepRank {
        let tier = match status {
            Status::Active { since } if since > self.protected_after => 2,
            Status::Active { .. } if !self.rotation_due => 1,
            _ => 0,
        };
        let value = match self.strategy {
            // Saturating casts: NaN and negatives count as 0 Wh.
            SheddingStrategy::Energy => (energy_wh + 0.5) as u64,
            // Later connected, smaller value; 2^60 ms is 36 million years from 1970.
            SheddingStrategy::ConnectionTime => {
                ((1i64 << 60) - connected_since.timestamp_millis()).max(0) as u64
            }
        };
        KeepRank::new(u8::from(vip) * 4 + tier, value)
    }
}

/// Decides who stays active. Returns, per demand, `None` when admitted, or the
/// constraint (`zone * 3 + phase`) that had no room left for it.
///
/// `rank` gives each demand's keep rank; `tie` orders demands of equal rank (by
/// session key, so the result does not depend on the order of the input). A demand
/// with a constraint in `decided` (empty: none) is shed for it already: it takes no
/// room and is returned as it is.
#[allow(clippy::too_many_arguments)]
pub(crate) fn admit<'s>(
    tree: &ZoneTree,
    demands: &[Demand],
    decided: &[Option<u32>],
    capacity: &[f64],
    floor: f64,
    rank: impl Fn(usize) -> KeepRank,
    tie: impl Fn(usize, usize) -> Ordering,
    scratch: &'s mut Scratch,
) -> &'s [Option<u32>] {
    let Scratch {
        shed,
        candidates,
        spare,
    } = scratch;
    shed.clear();
    shed.resize(demands.len(), None);
    if !decided.is_empty() {
        shed.copy_from_slice(decided);
    }
    let decided = |i: usize| decided.get(i).is_some_and(Option::is_some);
    if floor <= 0.0 {
        return shed;
    }
    let slots: Vec<u32> = capacity
        .iter()
        .map(|&c| ((c / floor) + 1e-9).floor().clamp(0.0, u32::MAX as f64) as u32)
        .collect();
    let mut count = vec![[0u32; 3]; tree.len()];
    for (_, d) in demands.iter().enumerate().filter(|&(i, _)| !decided(i)) {
        for (p, n) in count[usize::from(d.zone)].iter_mut().enumerate() {
            *n += u32::from(d.mask >> p & 1);
        }
    }
    tree.sum_up(&mut count, |acc, child| {
        for (a, c) in acc.iter_mut().zip(child) {
            *a += c;
        }
    });
    let overflowing: Vec<bool> = (0..capacity.len())
        .map(|c| count[c / 3][c % 3] > slots[c])
        .collect();
    if !overflowing.contains(&true) {
        return shed;
    }

    // Only demands under an overflowing constraint compete; the others all fit.
    let overflowing_on_path = tree.flagged_on_path(&overflowing);

    // Sorted by rank, then input index; runs of equal rank are then put in
    // session-key order, so the input order does not matter.
    candidates.clear();
    candidates.extend(
        demands
            .iter()
            .enumerate()
            .filter(|&(i, d)| !decided(i) && competing(&overflowing_on_path, d).next().is_some())
            .map(|(i, _)| (rank(i), i as u32)),
    );
    radix_sort(candidates, spare);
    let mut run = 0;
    while run < candidates.len() {
        let end = run
            + candidates[run..]
                .iter()
                .take_while(|(r, _)| *r == candidates[run].0)
                .count();
        if end - run > 1 {
            candidates[run..end].sort_unstable_by(|&(_, a), &(_, b)| tie(a as usize, b as usize));
        }
        run = end;
    }

    let mut used = vec![0u32; capacity.len()];
    for &(_, i) in candidates.iter() {
        let i = i as usize;
        // Constraints run from the vehicle's zone up, so the first full one is the closest.
        match competing(&overflowing_on_path, &demands[i]).find(|&c| used[c] >= slots[c]) {
            Some(c) => shed[i] = Some(c as u32),
            None => competing(&overflowing_on_path, &demands[i]).for_each(|c| used[c] += 1),
        }
    }
    shed
}

/// The overflowing constraints on a demand's path that it loads, its own zone first.
fn competing<'a>(
    overflowing_on_path: &'a PathLists,
    d: &Demand,
) -> impl Iterator<Item = usize> + 'a {
    let mask = d.mask;
    overflowing_on_path
        .get(usize::from(d.zone))
        .iter()
        .map(|&c| usize::from(c))
        .filter(move |&c| mask & (1 << (c % 3)) != 0)
}

/// Working buffers of [`admit`], kept from round to round.
#[derive(Default)]
pub(crate) struct Scratch {
    shed: Vec<Option<u32>>,
    candidates: Vec<(KeepRank, u32)>,
    spare: Vec<(KeepRank, u32)>,
}

/// Sorts by rank (stable), in O(n): a counting pass per byte of the rank, only for
/// the bytes that differ between ranks (energies fit in 2 or 3 bytes).
fn radix_sort(items: &mut Vec<(KeepRank, u32)>, spare: &mut Vec<(KeepRank, u32)>) {
    let (any, all) = items.iter().fold((0u64, u64::MAX), |(any, all), (r, _)| {
        (any | r.0, all & r.0)
    });
    spare.clear();
    spare.resize(items.len(), (KeepRank(0), 0));
    for byte in (0..8).filter(|b| ((any ^ all) >> (8 * b)) & 0xFF != 0) {
        let digit = |r: KeepRank| ((r.0 >> (8 * byte)) & 0xFF) as usize;
        let mut next = [0u32; 256];
        for &(r, _) in items.iter() {
            next[digit(r)] += 1;
        }
        let mut start = 0;
        for slot in next.iter_mut() {
            let count = *slot;
            *slot = start;
            start += count;
        }
        for &item in items.iter() {
            let b = digit(item.0);
            spare[next[b] as usize] = item;
            next[b] += 1;
        }
        std::mem::swap(items, spare);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::tree::ZoneSpec;
    use crate::units::Amps;
    use chrono::TimeZone;

    fn tree() -> ZoneTree {
        ZoneTree::new(&[
            ZoneSpec {
                id: "main".into(),
                parent: None,
                limit_a: Amps(63.0),
                static_ev_limit_a: None,
            },
            ZoneSpec {
                id: "a".into(),
                parent: Some("main".into()),
                limit_a: Amps(32.0),
                static_ev_limit_a: None,
            },
        ])
        .unwrap()
    }

    fn three_phase(zone: u16) -> Demand {
        Demand {
            zone,
            mask: 0b111,
            max: 32.0,
        }
    }

    #[test]
    fn as_many_stay_as_can_each_get_the_minimum() {
        let demands = vec![three_phase(0); 12];
        let mut scratch = Scratch::default();
        let shed = admit(
            &tree(),
            &demands,
            &[],
            &[63.0, 63.0, 63.0, 32.0, 32.0, 32.0],
            6.0,
            |i| KeepRank::new(0, i as u64),
            |a, b| a.cmp(&b),
            &mut scratch,
        );
        let suspended: Vec<usize> = (0..12).filter(|&i| shed[i].is_some()).collect();
        assert_eq!(suspended, [10, 11], "the two last in keep order");
        assert_eq!(shed[10], Some(0), "full at main L1");
    }

    #[test]
    fn a_demand_shed_already_takes_no_room() {
        let demands = vec![three_phase(0); 12];
        let mut decided = vec![None; 12];
        decided[0] = Some(2);
        let mut scratch = Scratch::default();
        let shed = admit(
            &tree(),
            &demands,
            &decided,
            &[63.0, 63.0, 63.0, 32.0, 32.0, 32.0],
            6.0,
            |i| KeepRank::new(0, i as u64),
            |a, b| a.cmp(&b),
            &mut scratch,
        );
        let suspended: Vec<usize> = (0..12).filter(|&i| shed[i].is_some()).collect();
        assert_eq!(
            suspended,
            [0, 11],
            "the one decided, and the last in keep order"
        );
        assert_eq!(shed[0], Some(2), "kept as it was decided");
    }

    #[test]
    fn the_closest_full_zone_is_named() {
        let demands = vec![three_phase(1); 6];
        let mut scratch = Scratch::default();
        let shed = admit(
            &tree(),
            &demands,
            &[],
            &[63.0, 63.0, 63.0, 32.0, 32.0, 32.0],
            6.0,
            |_| KeepRank::new(0, 0),
            |a, b| a.cmp(&b),
            &mut scratch,
        );
        assert_eq!(shed.iter().filter(|s| s.is_some()).count(), 1);
        assert_eq!(shed[5], Some(3), "zone a (index 1), L1");
    }

    #[test]
    fn a_full_phase_does_not_stop_a_vehicle_on_another_phase() {
        let mut demands = vec![
            Demand {
                zone: 0,
                mask: 0b001,
                max: 32.0
            };
            3
        ];
        demands.push(Demand {
            zone: 0,
            mask: 0b010,
            max: 32.0,
        });
        let mut scratch = Scratch::default();
        let shed = admit(
            &tree(),
            &demands,
            &[],
            &[12.0, 12.0, 12.0, 32.0, 32.0, 32.0],
            6.0,
            |i| KeepRank::new(0, i as u64),
            |a, b| a.cmp(&b),
            &mut scratch,
        );
        assert_eq!(shed, [None, None, Some(0), None]);
    }

    #[test]
    fn radix_sort_orders_by_rank_and_keeps_equal_ranks_in_order() {
        let mut items: Vec<(KeepRank, u32)> = [
            (3, 5_000_000u64),
            (0, 7),
            (3, 7),
            (0, 7),
            (6, 0),
            (0, 1 << 40),
        ]
        .iter()
        .enumerate()
        .map(|(i, &(class, value))| (KeepRank::new(class, value), i as u32))
        .collect();
        let mut expected = items.clone();
        expected.sort_by_key(|&(r, _)| r);
        radix_sort(&mut items, &mut Vec::new());
        assert_eq!(items, expected);
        assert_eq!(
            items.iter().map(|&(_, i)| i).collect::<Vec<_>>(),
            [4, 2, 0, 1, 3, 5]
        );
    }

    #[test]
    fn ranks_sort_by_class_then_value() {
        let mut ranks = [
            KeepRank::new(0, 5),
            KeepRank::new(4, 9),
            KeepRank::new(0, 1),
            KeepRank::new(1, u64::MAX),
        ];
        ranks.sort_unstable();
        assert_eq!(
            ranks,
            [
                KeepRank::new(4, 9),
                KeepRank::new(1, u64::MAX),
                KeepRank::new(0, 1),
                KeepRank::new(0, 5)
            ]
        );
    }

    #[test]
    fn equal_ranks_are_admitted_in_key_order_whatever_the_input_order() {
        let demands = vec![three_phase(0); 4];
        let keys = [3, 1, 0, 2];
        let mut scratch = Scratch::default();
        let shed = admit(
            &tree(),
            &demands,
            &[],
            &[12.0; 6],
            6.0,
            |_| KeepRank::new(0, 0),
            |a, b| keys[a].cmp(&keys[b]),
            &mut scratch,
        );
        assert_eq!(
            shed.iter().map(Option::is_some).collect::<Vec<_>>(),
            [true, false, false, true]
        );
    }

    #[test]
    fn keep_order_puts_vips_then_protected_then_running_then_strategy() {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        let order = |rotation_due| {
            KeepOrder::new(
                SheddingStrategy::Energy,
                rotation_due,
                TimeDelta::seconds(300),
                now,
            )
        };
        let recent = Status::Active {
            since: now - TimeDelta::seconds(100),
        };
        let old = Status::Active {
            since: now - TimeDelta::seconds(1000),
        };
        let held = order(false);
        assert_eq!(held.rank(true, Status::Waiting, 9e9, now).class(), 4);
        assert_eq!(held.rank(false, recent, 0.0, now).class(), 2);
        assert_eq!(held.rank(false, old, 0.0, now).class(), 1);
        assert_eq!(
            order(true).rank(false, old, 0.0, now).class(),
            0,
            "a rotation re-evaluates running vehicles"
        );
        assert_eq!(
            order(true).rank(false, recent, 0.0, now).class(),
            2,
            "but not recently resumed ones"
        );
        let by_time = KeepOrder::new(
            SheddingStrategy::ConnectionTime,
            true,
            TimeDelta::seconds(300),
            now,
        );
        let early = by_time.rank(false, Status::Waiting, 0.0, now - TimeDelta::hours(2));
        let late = by_time.rank(false, Status::Waiting, 0.0, now);
        assert!(late < early, "the latest connected is kept first");
    }
}
