//! Shedding: which vehicles are suspended so that every other one can get at least
//! `min_current_a`. Every (zone, phase) has room for `floor(capacity / min)` vehicles
//! loading it; vehicles are admitted in keep order and one that finds a full
//! (zone, phase) on its path is suspended. Only constraints that overflow are counted,
//! and only the vehicles touching them sorted, so a round costs O(n log n) at worst.

use std::cmp::Ordering;

use chrono::{DateTime, TimeDelta, Utc};

use super::state::Status;
use super::tree::ZoneTree;
use super::{constraints_of, Demand};
use crate::config::SheddingStrategy;

/// A session's place in the keep order: higher `class` first, then lower `value`,
/// then the session key.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct KeepRank {
    pub class: u8,
    pub value: f64,
}

/// How the keep order is made this round.
pub(crate) struct KeepOrder {
    pub strategy: SheddingStrategy,
    /// A rotation re-evaluates every decision; otherwise running vehicles keep running.
    pub rotation_due: bool,
    pub min_active: TimeDelta,
    pub now: DateTime<Utc>,
}

impl KeepOrder {
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
            Status::Active { since } if self.now - since < self.min_active => 2,
            Status::Active { .. } if !self.rotation_due => 1,
            _ => 0,
        };
        let value = match self.strategy {
            SheddingStrategy::Energy if energy_wh.is_finite() => energy_wh,
            SheddingStrategy::Energy => 0.0,
            SheddingStrategy::ConnectionTime => -(connected_since.timestamp_millis() as f64),
        };
        KeepRank {
            class: u8::from(vip) * 4 + tier,
            value,
        }
    }
}

/// Decides who stays active. Returns, per demand, `None` when admitted, or the
/// constraint (`zone * 3 + phase`) that had no room left for it.
///
/// `rank` gives each demand's keep rank; `tie` orders demands of equal rank (by
/// session key, so the result does not depend on the order of the input).
pub(crate) fn admit(
    tree: &ZoneTree,
    demands: &[Demand],
    capacity: &[f64],
    floor: f64,
    rank: impl Fn(usize) -> KeepRank,
    tie: impl Fn(usize, usize) -> Ordering,
) -> Vec<Option<u32>> {
    let mut shed = vec![None; demands.len()];
    if floor <= 0.0 {
        return shed;
    }
    let slots: Vec<u32> = capacity
        .iter()
        .map(|&c| ((c / floor) + 1e-9).floor().clamp(0.0, u32::MAX as f64) as u32)
        .collect();
    let mut count = vec![[0u32; 3]; tree.len()];
    for d in demands {
        for p in 0..3 {
            if d.mask & (1 << p) != 0 {
                count[usize::from(d.zone)][p] += 1;
            }
        }
    }
    tree.sum_up(&mut count, |acc, child| {
        for p in 0..3 {
            acc[p] += child[p];
        }
    });
    let overflowing: Vec<bool> = (0..capacity.len())
        .map(|c| count[c / 3][c % 3] > slots[c])
        .collect();
    if !overflowing.contains(&true) {
        return shed;
    }

    let mut candidates: Vec<(KeepRank, u32)> = demands
        .iter()
        .enumerate()
        .filter(|(_, d)| constraints_of(tree, d).any(|c| overflowing[c]))
        .map(|(i, _)| (rank(i), i as u32))
        .collect();
    candidates.sort_unstable_by(|(ra, a), (rb, b)| {
        rb.class
            .cmp(&ra.class)
            .then(ra.value.total_cmp(&rb.value))
            .then_with(|| tie(*a as usize, *b as usize))
    });

    let mut used = vec![0u32; capacity.len()];
    for &(_, i) in &candidates {
        let d = &demands[i as usize];
        // The path runs from the vehicle's zone up, so the first full one is the closest.
        let full = constraints_of(tree, d).find(|&c| overflowing[c] && used[c] >= slots[c]);
        match full {
            Some(c) => shed[i as usize] = Some(c as u32),
            None => {
                for c in constraints_of(tree, d) {
                    used[c] += 1;
                }
            }
        }
    }
    shed
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
        let shed = admit(
            &tree(),
            &demands,
            &[63.0, 63.0, 63.0, 32.0, 32.0, 32.0],
            6.0,
            |i| KeepRank {
                class: 0,
                value: i as f64,
            },
            |a, b| a.cmp(&b),
        );
        let suspended: Vec<usize> = (0..12).filter(|&i| shed[i].is_some()).collect();
        assert_eq!(suspended, [10, 11], "the two last in keep order");
        assert_eq!(shed[10], Some(0), "full at main L1");
    }

    #[test]
    fn the_closest_full_zone_is_named() {
        let demands = vec![three_phase(1); 6];
        let shed = admit(
            &tree(),
            &demands,
            &[63.0, 63.0, 63.0, 32.0, 32.0, 32.0],
            6.0,
            |_| KeepRank {
                class: 0,
                value: 0.0,
            },
            |a, b| a.cmp(&b),
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
        let shed = admit(
            &tree(),
            &demands,
            &[12.0, 12.0, 12.0, 32.0, 32.0, 32.0],
            6.0,
            |i| KeepRank {
                class: 0,
                value: i as f64,
            },
            |a, b| a.cmp(&b),
        );
        assert_eq!(shed, [None, None, Some(0), None]);
    }

    #[test]
    fn keep_order_puts_vips_then_protected_then_running_then_strategy() {
        let now = Utc.with_ymd_and_hms(2026, 3, 2, 10, 0, 0).unwrap();
        let order = |rotation_due| KeepOrder {
            strategy: SheddingStrategy::Energy,
            rotation_due,
            min_active: TimeDelta::seconds(300),
            now,
        };
        let recent = Status::Active {
            since: now - TimeDelta::seconds(100),
        };
        let old = Status::Active {
            since: now - TimeDelta::seconds(1000),
        };
        let held = order(false);
        assert_eq!(held.rank(true, Status::Waiting, 9e9, now).class, 4);
        assert_eq!(held.rank(false, recent, 0.0, now).class, 2);
        assert_eq!(held.rank(false, old, 0.0, now).class, 1);
        assert_eq!(
            order(true).rank(false, old, 0.0, now).class,
            0,
            "a rotation re-evaluates running vehicles"
        );
        assert_eq!(
            order(true).rank(false, recent, 0.0, now).class,
            2,
            "but not recently resumed ones"
        );
        let by_time = KeepOrder {
            strategy: SheddingStrategy::ConnectionTime,
            ..order(true)
        };
        let early = by_time.rank(false, Status::Waiting, 0.0, now - TimeDelta::hours(2));
        let late = by_time.rank(false, Status::Waiting, 0.0, now);
        assert!(
            late.value < early.value,
            "the latest connected is kept first"
        );
    }
}
