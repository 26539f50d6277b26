//! Sharing: weighted progressive filling over the whole tree at once. A water level
//! `t` rises from 0 to 1 and every active session gets `max(floor, t × its max)`;
//! when a (zone, phase) runs out of budget, the sessions loading it stop rising there.
//! So the sessions sharing a bottleneck get the same fraction of their maximum (or
//! the floor, `min_current_a`, if that is more), and budget one branch cannot use goes on
//! rising for the others: no session stays below its maximum unless some (zone,
//! phase) on its path is full.
//!
//! Events are either a constraint filling up (found with a min-tree over the
//! constraints) or sessions leaving the floor (sessions sorted by maximum, equal maxima
//! handled in one batch). Each session is frozen once and touches at most 12
//! constraints (4 levels × 3 phases), so a round costs O(n log n).

use super::tree::{ZoneIdx, ZoneTree};
use super::{constraints_of, Demand};

/// The outcome of the filling, per demand.
pub(crate) struct Filling {
    /// The current given (exact, not yet rounded); 0 for a shed demand.
    pub value: Vec<f64>,
    /// The constraint (`zone * 3 + phase`) that stopped it below its maximum.
    pub bottleneck: Vec<Option<u32>>,
}

/// Shares `capacity` (per constraint, what is left after fixed reservations) among the
/// admitted demands (`shed[i]` is `None`). Admission guarantees the floors fit.
pub(crate) fn fill(
    tree: &ZoneTree,
    demands: &[Demand],
    shed: &[Option<u32>],
    capacity: &[f64],
    floor: f64,
) -> Filling {
    let n = demands.len();
    let nz = tree.len();
    let mut value = vec![0.0; n];
    let mut bottleneck = vec![None; n];

    let mut sum_max = vec![[0.0f64; 3]; nz];
    for (d, s) in demands.iter().zip(shed) {
        if s.is_none() {
            add_on_phases(&mut sum_max[usize::from(d.zone)], d.mask, d.max);
        }
    }
    tree.sum_up(&mut sum_max, add3);
    // A constraint whose whole demand fits can never fill up: leave it out.
    let binding: Vec<bool> = (0..capacity.len())
        .map(|c| sum_max[c / 3][c % 3] > capacity[c] + 1e-9)
        .collect();

    let mut participants: Vec<u32> = Vec::new();
    for (i, d) in demands.iter().enumerate() {
        if shed[i].is_some() {
            continue;
        }
        if constraints_of(tree, d).any(|c| binding[c]) {
            participants.push(i as u32);
        } else {
            value[i] = d.max;
        }
    }
    if participants.is_empty() {
        return Filling { value, bottleneck };
    }

    // Participants grouped by zone (pre-order), so a subtree's are one slice.
    let mut zone_start = vec![0u32; nz + 1];
    for &i in &participants {
        zone_start[usize::from(demands[i as usize].zone) + 1] += 1;
    }
    for z in 0..nz {
        zone_start[z + 1] += zone_start[z];
    }
    let mut by_zone = vec![0u32; participants.len()];
    let mut next_slot = zone_start.clone();
    for &i in &participants {
        let z = usize::from(demands[i as usize].zone);
        by_zone[next_slot[z] as usize] = i;
        next_slot[z] += 1;
    }

    // Everyone starts on the floor; `level` is what the constraint carries besides
    // `t × slope` (the frozen values and the floors), `rising` how many rise with `t`.
    let mut level = vec![0.0f64; capacity.len()];
    let mut slope = vec![0.0f64; capacity.len()];
    let mut rising = vec![0u32; capacity.len()];
    for &i in &participants {
        for c in constraints_of(tree, &demands[i as usize]) {
            level[c] += floor;
        }
    }

    // Largest maximum first: it leaves the floor first (at t = floor / max).
    let mut leave_order = participants.clone();
    leave_order.sort_unstable_by(|&a, &b| {
        demands[b as usize]
            .max
            .total_cmp(&demands[a as usize].max)
            .then(a.cmp(&b))
    });

    let mut frozen = vec![false; n];
    let mut on_floor = vec![true; n];
    let mut full_at = MinTree::new(capacity.len());
    let mut dirty = Dirty::new(capacity.len());
    let mut t = 0.0f64;
    let mut next = 0usize;
    loop {
        let (t_full, c_full) = full_at.min();
        let t_leave = leave_order.get(next).map_or(f64::INFINITY, |&i| {
            leave_level(floor, demands[i as usize].max)
        });
        if t_full < 1.0 && t_full <= t_leave {
            t = t.max(t_full);
            let c = c_full as usize;
            let z = ZoneIdx((c / 3) as u16);
            let bit = 1u8 << (c % 3);
            let range = zone_start[z.get()] as usize..zone_start[tree.subtree_end(z)] as usize;
            for &i in &by_zone[range] {
                let i = i as usize;
                let d = &demands[i];
                if frozen[i] || d.mask & bit == 0 {
                    continue;
                }
                frozen[i] = true;
                bottleneck[i] = Some(c as u32);
                if on_floor[i] {
                    value[i] = floor;
                    continue;
                }
                value[i] = d.max * t;
                for c2 in constraints_of(tree, d) {
                    if binding[c2] {
                        level[c2] += d.max * t;
                        slope[c2] -= d.max;
                        rising[c2] -= 1;
                        dirty.mark(c2);
                    }
                }
            }
            full_at.set(c, f64::INFINITY);
        } else if t_leave < 1.0 {
            t = t.max(t_leave);
            let max = demands[leave_order[next] as usize].max;
            while let Some(&i) = leave_order.get(next) {
                let i = i as usize;
                let d = &demands[i];
                if d.max != max {
                    break;
                }
                next += 1;
                if frozen[i] {
                    continue;
                }
                on_floor[i] = false;
                for c2 in constraints_of(tree, d) {
                    if binding[c2] {
                        level[c2] -= floor;
                        slope[c2] += d.max;
                        rising[c2] += 1;
                        dirty.mark(c2);
                    }
                }
            }
        } else {
            break;
        }
        for c2 in dirty.drain() {
            let at = if rising[c2] == 0 {
                slope[c2] = 0.0;
                f64::INFINITY
            } else {
                ((capacity[c2] - level[c2]) / slope[c2]).max(t)
            };
            full_at.set(c2, at);
        }
    }
    for &i in &participants {
        let i = i as usize;
        if !frozen[i] {
            value[i] = demands[i].max;
        }
    }
    Filling { value, bottleneck }
}

/// The level at which a session leaves the floor.
fn leave_level(floor: f64, max: f64) -> f64 {
    if floor > 0.0 {
        floor / max
    } else {
        0.0
    }
}

pub(crate) fn add_on_phases(acc: &mut [f64; 3], mask: u8, amps: f64) {
    for (p, a) in acc.iter_mut().enumerate() {
        if mask & (1 << p) != 0 {
            *a += amps;
        }
    }
}

pub(crate) fn add3(acc: &mut [f64; 3], child: [f64; 3]) {
    for (a, c) in acc.iter_mut().zip(child) {
        *a += c;
    }
}

/// The smallest value among fixed slots, updated in O(log n); ties go to the lowest
/// slot, so the order of events never depends on anything but the input.
struct MinTree {
    leaves: usize,
    node: Vec<(f64, u32)>,
}

impl MinTree {
    fn new(slots: usize) -> Self {
        let leaves = slots.next_power_of_two().max(1);
        MinTree {
            leaves,
            node: vec![(f64::INFINITY, u32::MAX); 2 * leaves],
        }
    }

    fn set(&mut self, slot: usize, value: f64) {
        let mut k = slot + self.leaves;
        self.node[k] = (value, slot as u32);
        while k > 1 {
            k /= 2;
            let (l, r) = (self.node[2 * k], self.node[2 * k + 1]);
            self.node[k] = if r.0 < l.0 { r } else { l };
        }
    }

    fn min(&self) -> (f64, u32) {
        self.node[1]
    }
}

/// Constraints touched since the last drain, each listed once.
struct Dirty {
    marked: Vec<bool>,
    list: Vec<usize>,
}

impl Dirty {
    fn new(slots: usize) -> Self {
        Dirty {
            marked: vec![false; slots],
            list: Vec::new(),
        }
    }

    fn mark(&mut self, slot: usize) {
        if !self.marked[slot] {
            self.marked[slot] = true;
            self.list.push(slot);
        }
    }

    fn drain(&mut self) -> Vec<usize> {
        for &c in &self.list {
            self.marked[c] = false;
        }
        std::mem::take(&mut self.list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::allocation::tree::ZoneSpec;
    use crate::units::{Amps, ZoneId};

    fn tree(limits: &[(&str, Option<&str>, f64)]) -> ZoneTree {
        let specs: Vec<ZoneSpec> = limits
            .iter()
            .map(|&(id, parent, limit)| ZoneSpec {
                id: id.into(),
                parent: parent.map(ZoneId::from),
                limit_a: Amps(limit),
                static_ev_limit_a: None,
            })
            .collect();
        ZoneTree::new(&specs).unwrap()
    }

    fn capacity(tree: &ZoneTree) -> Vec<f64> {
        tree.zones().iter().flat_map(|z| [z.limit.0; 3]).collect()
    }

    fn rounded(v: &[f64]) -> Vec<f64> {
        v.iter().map(|x| (x * 1000.0).round() / 1000.0).collect()
    }

    #[test]
    fn equal_maxima_share_equally() {
        let t = tree(&[("main", None, 63.0)]);
        let demands = vec![
            Demand {
                zone: 0,
                mask: 0b111,
                max: 32.0
            };
            3
        ];
        let f = fill(&t, &demands, &[None; 3], &capacity(&t), 6.0);
        assert_eq!(rounded(&f.value), [21.0; 3]);
        assert_eq!(f.bottleneck, [Some(0); 3]);
    }

    #[test]
    fn bottleneck_shares_the_same_fraction_of_each_maximum() {
        let t = tree(&[("main", None, 30.0)]);
        let demands = vec![
            Demand {
                zone: 0,
                mask: 0b111,
                max: 16.0,
            },
            Demand {
                zone: 0,
                mask: 0b111,
                max: 32.0,
            },
        ];
        let f = fill(&t, &demands, &[None; 2], &capacity(&t), 6.0);
        assert_eq!(rounded(&f.value), [10.0, 20.0]);
    }

    #[test]
    fn a_small_maximum_keeps_the_floor_and_the_rest_shares_what_remains() {
        let t = tree(&[("main", None, 20.0)]);
        let demands = vec![
            Demand {
                zone: 0,
                mask: 0b111,
                max: 8.0,
            },
            Demand {
                zone: 0,
                mask: 0b111,
                max: 32.0,
            },
        ];
        let f = fill(&t, &demands, &[None; 2], &capacity(&t), 6.0);
        // Equal percentage would give 3.6 A to the first: below the floor, it keeps 6.
        assert_eq!(rounded(&f.value), [6.0, 14.0]);
    }

    #[test]
    fn what_a_full_branch_cannot_use_goes_to_the_others() {
        // main 60: branch a (limit 10) holds one vehicle, branch b three.
        let t = tree(&[
            ("main", None, 60.0),
            ("a", Some("main"), 10.0),
            ("b", Some("main"), 100.0),
        ]);
        let mut demands = vec![Demand {
            zone: 1,
            mask: 0b111,
            max: 32.0,
        }];
        demands.extend(vec![
            Demand {
                zone: 2,
                mask: 0b111,
                max: 32.0
            };
            3
        ]);
        let f = fill(&t, &demands, &[None; 4], &capacity(&t), 6.0);
        assert_eq!(rounded(&f.value), [10.0, 16.667, 16.667, 16.667]);
        assert_eq!(f.bottleneck[0], Some(3), "branch a, L1");
        assert_eq!(f.bottleneck[1], Some(0), "main, L1");
    }

    #[test]
    fn a_one_phase_vehicle_on_a_free_phase_is_not_held_back() {
        let t = tree(&[("main", None, 40.0)]);
        let mut demands = vec![
            Demand {
                zone: 0,
                mask: 0b111,
                max: 32.0
            };
            2
        ];
        demands.push(Demand {
            zone: 0,
            mask: 0b001,
            max: 32.0,
        });
        demands.push(Demand {
            zone: 0,
            mask: 0b010,
            max: 16.0,
        });
        let f = fill(&t, &demands, &[None; 4], &capacity(&t), 6.0);
        // L1 carries three vehicles of 32 A: 40/96 each. L2 then has room for the 16 A one.
        assert_eq!(rounded(&f.value), [13.333, 13.333, 13.333, 13.333]);
        let t = tree(&[("main", None, 60.0)]);
        let f = fill(&t, &demands, &[None; 4], &capacity(&t), 6.0);
        assert_eq!(rounded(&f.value), [20.0, 20.0, 20.0, 16.0]);
        assert_eq!(f.bottleneck[3], None);
    }

    #[test]
    fn shed_demands_get_nothing_and_leave_room() {
        let t = tree(&[("main", None, 63.0)]);
        let demands = vec![
            Demand {
                zone: 0,
                mask: 0b111,
                max: 32.0
            };
            3
        ];
        let f = fill(&t, &demands, &[None, Some(0), None], &capacity(&t), 6.0);
        assert_eq!(rounded(&f.value), [31.5, 0.0, 31.5]);
    }

    #[test]
    fn min_tree_finds_the_smallest_and_prefers_the_lowest_slot() {
        let mut m = MinTree::new(5);
        assert_eq!(m.min().0, f64::INFINITY);
        m.set(3, 2.0);
        m.set(1, 2.0);
        m.set(4, 5.0);
        assert_eq!(m.min(), (2.0, 1));
        m.set(1, 9.0);
        assert_eq!(m.min(), (2.0, 3));
    }
}
