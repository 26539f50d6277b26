//! Sharing: weighted progressive filling over the whole tree at once. A water level
//! `t` rises from 0 to 1 and every active session gets `max(floor, t × its max)`;
//! when a (zone, phase) runs out of budget, the sessions loading it stop rising there.
//! So the sessions sharing a bottleneck get the same fraction of their maximum (or
//! the floor, `min_current_a`, if that is more), and budget one branch cannot use goes on
//! rising for the others: no session stays below its maximum unless some (zone,
//! phase) on its path is full.
//!
//! Only constraints whose demand exceeds their budget ("binding") take part. Events
//! are either one of them filling up (the earliest found with a min-tree) or sessions
//! leaving the floor (sorted by maximum with a counting sort; equal maxima in one
//! batch). An event's changes are gathered per zone and phase and carried up the tree
//! once (walking up from few zones, or one bottom-up pass when many changed); each
//! session is frozen once and every constraint fills once, so a round costs about
//! O(n + zones), plus O(log zones) per event.

use std::cmp::Ordering;

use super::tree::{ZoneIdx, ZoneTree};
use super::Demand;
use crate::config::MAX_ZONE_DEPTH;

/// Working buffers of [`fill`], kept from round to round. After a call, `value` and
/// `bottleneck` hold its outcome, per demand.
#[derive(Default)]
pub(crate) struct Scratch {
    /// The current given (exact, not yet rounded); 0 for a shed demand.
    pub value: Vec<f64>,
    /// The constraint (`zone * 3 + phase`) that stopped it below its maximum.
    pub bottleneck: Vec<Option<u32>>,
    part_demand: Vec<u32>,
    by_zone: Vec<u32>,
    tenths: Vec<u32>,
    leave_order: Vec<u32>,
    counts: Vec<u32>,
    frozen: Vec<bool>,
    on_floor: Vec<bool>,
}

/// Shares `capacity` (per constraint, what is left after fixed reservations) among the
/// admitted demands (`shed[i]` is `None`). Admission guarantees the floors fit.
/// Maxima are in 0.1 A steps (the allocation rounds them so).
pub(crate) fn fill(
    tree: &ZoneTree,
    demands: &[Demand],
    shed: &[Option<u32>],
    capacity: &[f64],
    floor: f64,
    scratch: &mut Scratch,
) {
    let Scratch {
        value,
        bottleneck,
        part_demand,
        by_zone,
        tenths,
        leave_order,
        counts,
        frozen,
        on_floor,
    } = scratch;
    let n = demands.len();
    let nz = tree.len();
    value.clear();
    value.resize(n, 0.0);
    bottleneck.clear();
    bottleneck.resize(n, None);
    let admitted = || {
        demands
            .iter()
            .zip(shed)
            .filter(|(_, s)| s.is_none())
            .map(|(d, _)| d)
    };

    let mut sum_max = vec![[0.0f64; 3]; nz];
    for d in admitted() {
        add_on_phases(&mut sum_max[usize::from(d.zone)], d.mask, d.max);
    }
    tree.sum_up(&mut sum_max, add3);
    // Only constraints whose demand exceeds their capacity can fill up ("binding");
    // they get compact slots so the event loop never looks at the others.
    let mut slot_of = vec![None; capacity.len()];
    let mut slot_constraint: Vec<usize> = Vec::new();
    for (c, cap) in capacity.iter().enumerate() {
        if sum_max[c / 3][c % 3] > cap + 1e-9 {
            slot_of[c] = Some(slot_constraint.len() as u32);
            slot_constraint.push(c);
        }
    }
    let binding: Vec<bool> = slot_of.iter().map(Option::is_some).collect();
    let binding_on_path = tree.phases_flagged_on_path(&binding);

    // Participants: admitted demands under at least one binding constraint. The
    // others simply get their maximum.
    part_demand.clear();
    for (i, d) in demands.iter().enumerate() {
        if shed[i].is_none() {
            if binding_on_path[usize::from(d.zone)] & d.mask == 0 {
                value[i] = d.max;
            } else {
                part_demand.push(i as u32);
            }
        }
    }
    if part_demand.is_empty() {
        return;
    }
    let np = part_demand.len();
    let demand_of = |p: usize| &demands[part_demand[p] as usize];

    // Participants grouped by zone (pre-order), so a subtree's are one slice.
    let mut zone_start = vec![0u32; nz + 1];
    for p in 0..np {
        zone_start[usize::from(demand_of(p).zone) + 1] += 1;
    }
    for z in 0..nz {
        zone_start[z + 1] += zone_start[z];
    }
    by_zone.clear();
    by_zone.resize(np, 0);
    let mut next_slot = zone_start.clone();
    for p in 0..np {
        let z = usize::from(demand_of(p).zone);
        by_zone[next_slot[z] as usize] = p as u32;
        next_slot[z] += 1;
    }

    // Everyone starts on the floor. Per slot, `level` is what the constraint carries
    // besides `t × slope` (the frozen values and the floors), `rising` how many rise.
    let ns = slot_constraint.len();
    let mut slots = Slots::new(ns, nz);
    for p in 0..np {
        slots.add(
            demand_of(p),
            Change {
                level: floor,
                slope: 0.0,
                rising: 0,
            },
        );
    }
    slots.apply(tree, &slot_of, None);
    // Nothing rises yet, so no constraint can fill before the first session leaves the floor.
    slots.dirty.take_each(|_| {});
    // Largest maximum first: it leaves the floor first (at t = floor / max).
    // Saturating cast, no libm call: maxima are non-negative.
    tenths.clear();
    tenths.extend((0..np).map(|p| (demand_of(p).max * 10.0 + 0.5) as u32));
    largest_first(tenths, leave_order, counts);
    frozen.clear();
    frozen.resize(np, false);
    on_floor.clear();
    on_floor.resize(np, true);
    let mut full_at = MinTree::new(ns);
    let mut t = 0.0f64;
    let mut next = 0usize;
    loop {
        let (t_full, s_full) = full_at.min();
        let t_leave = leave_order.get(next).map_or(f64::INFINITY, |&p| {
            leave_level(floor, demand_of(p as usize).max)
        });
        if t_full < 1.0 && t_full <= t_leave {
            // A constraint is full: everyone still rising under it stops here.
            t = t.max(t_full);
            let c = slot_constraint[s_full as usize];
            let z = ZoneIdx((c / 3) as u16);
            let bit = 1u8 << (c % 3);
            let range = zone_start[z.get()] as usize..zone_start[tree.subtree_end(z)] as usize;
            for &p in &by_zone[range] {
                let p = p as usize;
                let d = demand_of(p);
                if frozen[p] || d.mask & bit == 0 {
                    continue;
                }
                frozen[p] = true;
                let i = part_demand[p] as usize;
                bottleneck[i] = Some(c as u32);
                if on_floor[p] {
                    value[i] = floor;
                } else {
                    value[i] = d.max * t;
                    slots.add(
                        d,
                        Change {
                            level: d.max * t,
                            slope: -d.max,
                            rising: -1,
                        },
                    );
                }
            }
            full_at.set(s_full as usize, f64::INFINITY);
            slots.apply(tree, &slot_of, Some(z));
        } else if t_leave < 1.0 {
            // The sessions of the next maximum leave the floor and start rising.
            t = t.max(t_leave);
            let key = tenths[leave_order[next] as usize];
            while let Some(&p) = leave_order.get(next) {
                let p = p as usize;
                if tenths[p] != key {
                    break;
                }
                next += 1;
                if !frozen[p] {
                    on_floor[p] = false;
                    let d = demand_of(p);
                    slots.add(
                        d,
                        Change {
                            level: -floor,
                            slope: d.max,
                            rising: 1,
                        },
                    );
                }
            }
            slots.apply(tree, &slot_of, None);
        } else {
            break;
        }
        // After a big event most slots change: one bottom-up rebuild beats many walks up.
        let rebuild = slots.dirty.len() * 8 > full_at.leaves;
        let Slots {
            level,
            slope,
            rising,
            dirty,
            ..
        } = &mut slots;
        dirty.take_each(|s| {
            let at = if rising[s] == 0 {
                slope[s] = 0.0;
                f64::INFINITY
            } else {
                ((capacity[slot_constraint[s]] - level[s]) / slope[s]).max(t)
            };
            if rebuild {
                full_at.set_leaf(s, at);
            } else {
                full_at.set(s, at);
            }
        });
        if rebuild {
            full_at.rebuild();
        }
    }
    for p in 0..np {
        if !frozen[p] {
            value[part_demand[p] as usize] = demand_of(p).max;
        }
    }
}

/// A change to the binding constraints above one zone and phase.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
struct Change {
    level: f64,
    slope: f64,
    rising: i32,
}

/// The binding constraints' state. Changes are gathered per zone and phase during an
/// event, then carried up the tree once (instead of once per session).
struct Slots {
    level: Vec<f64>,
    slope: Vec<f64>,
    rising: Vec<i32>,
    dirty: Dirty,
    /// Per zone, the changes per phase not yet applied (`has_pending` says which
    /// zones have some); `touched` lists the zones sessions changed in this event.
    pending: Vec<[Change; 3]>,
    has_pending: Vec<bool>,
    touched: Vec<u16>,
}

impl Slots {
    fn new(slots: usize, zones: usize) -> Self {
        Slots {
            level: vec![0.0; slots],
            slope: vec![0.0; slots],
            rising: vec![0; slots],
            dirty: Dirty::new(slots),
            pending: vec![[Change::default(); 3]; zones],
            has_pending: vec![false; zones],
            touched: Vec::new(),
        }
    }

    fn add(&mut self, d: &Demand, change: Change) {
        let z = usize::from(d.zone);
        if !self.has_pending[z] {
            self.has_pending[z] = true;
            self.touched.push(d.zone);
        }
        for (p, c) in self.pending[z].iter_mut().enumerate() {
            if d.mask & (1 << p) != 0 {
                c.level += change.level;
                c.slope += change.slope;
                c.rising += change.rising;
            }
        }
    }

    /// Applies the gathered changes to every binding constraint above them. All
    /// touched zones lie in the subtree of `scope` (`None`: anywhere). Few touched
    /// zones walk up their paths; many are summed up the subtree in one bottom-up
    /// pass (pre-order reversed: children before parents), then carried above it.
    fn apply(&mut self, tree: &ZoneTree, slot_of: &[Option<u32>], scope: Option<ZoneIdx>) {
        let (first, end) = match scope {
            Some(top) => (top.get(), tree.subtree_end(top)),
            None => (0, tree.len()),
        };
        if self.touched.len() * MAX_ZONE_DEPTH < end - first {
            for i in 0..self.touched.len() {
                let zone = self.touched[i];
                self.has_pending[usize::from(zone)] = false;
                let changes = std::mem::take(&mut self.pending[usize::from(zone)]);
                for &a in tree.path(ZoneIdx(zone)) {
                    self.apply_at(a, &changes, slot_of);
                }
            }
        } else {
            for z in (first..end).rev() {
                if !std::mem::take(&mut self.has_pending[z]) {
                    continue;
                }
                let changes = std::mem::take(&mut self.pending[z]);
                self.apply_at(z as u16, &changes, slot_of);
                match tree.zones()[z].parent {
                    Some(parent) if parent.get() >= first => {
                        self.has_pending[parent.get()] = true;
                        for (acc, c) in self.pending[parent.get()].iter_mut().zip(changes) {
                            acc.level += c.level;
                            acc.slope += c.slope;
                            acc.rising += c.rising;
                        }
                    }
                    // The top of the scope: what it carries goes on above it.
                    _ => {
                        for &a in &tree.path(ZoneIdx(z as u16))[1..] {
                            self.apply_at(a, &changes, slot_of);
                        }
                    }
                }
            }
        }
        self.touched.clear();
    }

    fn apply_at(&mut self, zone: u16, changes: &[Change; 3], slot_of: &[Option<u32>]) {
        for (p, change) in changes.iter().enumerate() {
            if let Some(s) = slot_of[usize::from(zone) * 3 + p] {
                let s = s as usize;
                self.level[s] += change.level;
                self.slope[s] += change.slope;
                self.rising[s] += change.rising;
                self.dirty.mark(s);
            }
        }
    }
}

/// Above this many tenths of an ampere (6.5 kA) a maximum is absurd, and the order
/// falls back to a comparison sort rather than a huge counting array.
const COUNTING_SORT_LIMIT: u32 = 1 << 16;

/// Indices ordered by key, largest first, equal keys in index order: a counting sort
/// (maxima are in 0.1 A steps, so O(n) for any realistic maximum).
fn largest_first(keys: &[u32], order: &mut Vec<u32>, start: &mut Vec<u32>) {
    order.clear();
    let top = keys.iter().copied().max().unwrap_or(0);
    if top >= COUNTING_SORT_LIMIT {
        order.extend(0..keys.len() as u32);
        order.sort_by_key(|&i| std::cmp::Reverse(keys[i as usize]));
        return;
    }
    let top = top as usize;
    start.clear();
    start.resize(top + 2, 0);
    for &k in keys {
        start[top - k as usize + 1] += 1;
    }
    for b in 0..=top {
        start[b + 1] += start[b];
    }
    order.resize(keys.len(), 0);
    for (i, &k) in keys.iter().enumerate() {
        let b = top - k as usize;
        order[start[b] as usize] = i as u32;
        start[b] += 1;
    }
}

/// The level at which a session leaves the floor.
fn leave_level(floor: f64, max: f64) -> f64 {
    if floor > 0.0 {
        floor / max
    } else {
        0.0
    }
}

/// How far over an unbalance cap a root may stay (the values sent are in 0.1 A steps).
const BALANCE_TOLERANCE_A: f64 = 0.05;

/// Meets an unbalance cap after a sharing pass: with this pass's shares (`value`, the
/// vehicles not `shed`) and the reservations (`fixed`, summed per subtree), where a
/// root's most loaded phase carries more than its least loaded one plus `cap`, the
/// vehicles that load that phase but not all three (one- and two-phase ones: a 3-phase
/// vehicle adds the same to every phase and changes no difference) get their maximum
/// lowered, all in the same proportion, by the excess; `why[d]` names the root's phase
/// as what limits them. Where the excess is more than they can give up above the
/// `floor`, the fewest of them that must go, last in `keep_order` first, are shed for
/// that phase (`forced[d]`). Lowering the phase's capacity would not do: it takes from
/// the 3-phase vehicles too, which leaves the difference as it was. Whether anything
/// was lowered or shed.
#[allow(clippy::too_many_arguments)]
pub(crate) fn lower_for_balance(
    tree: &ZoneTree,
    demands: &mut [Demand],
    shed: &[Option<u32>],
    value: &[f64],
    fixed: &[[f64; 3]],
    cap: f64,
    floor: f64,
    keep_order: impl Fn(usize, usize) -> Ordering,
    why: &mut [Option<u32>],
    forced: &mut [Option<u32>],
) -> bool {
    let mut total = vec![[0.0f64; 3]; tree.len()];
    for (d, demand) in demands.iter().enumerate() {
        if shed[d].is_none() {
            add_on_phases(&mut total[usize::from(demand.zone)], demand.mask, value[d]);
        }
    }
    tree.sum_up(&mut total, add3);
    let mut changed = false;
    let mut on_phase: Vec<usize> = Vec::new();
    for (r, zone) in tree.zones().iter().enumerate() {
        if zone.parent.is_some() {
            continue;
        }
        let load: [f64; 3] = std::array::from_fn(|p| total[r][p] + fixed[r][p]);
        let allowed = load.iter().copied().fold(f64::INFINITY, f64::min) + cap.max(0.0);
        let subtree = r..tree.subtree_end(ZoneIdx(r as u16));
        for (p, phase_load) in load.iter().enumerate() {
            let excess = phase_load - allowed;
            if excess <= BALANCE_TOLERANCE_A {
                continue;
            }
            let constraint = Some((r * 3 + p) as u32);
            on_phase.clear();
            on_phase.extend(demands.iter().enumerate().filter_map(|(d, demand)| {
                (shed[d].is_none()
                    && forced[d].is_none()
                    && demand.mask != 0b111
                    && demand.mask & (1 << p) != 0
                    && subtree.contains(&usize::from(demand.zone)))
                .then_some(d)
            }));
            let unbalanced: f64 = on_phase.iter().map(|&d| value[d]).sum();
            let goal = (unbalanced - excess).max(0.0);
            if floor > 0.0 {
                // Each one kept gets at least the floor.
                let keep = ((goal / floor) + 1e-9).floor() as usize;
                if on_phase.len() > keep {
                    on_phase.sort_unstable_by(|&a, &b| keep_order(a, b));
                    for &d in &on_phase[keep..] {
                        forced[d] = constraint;
                    }
                    on_phase.truncate(keep);
                    changed = true;
                }
            }
            let kept: f64 = on_phase.iter().map(|&d| value[d]).sum();
            let scale = if kept > goal { goal / kept } else { 1.0 };
            for &d in &on_phase {
                let new = (value[d] * scale).max(floor);
                if new < demands[d].max {
                    demands[d].max = new;
                    why[d] = constraint;
                    changed = true;
                }
            }
        }
    }
    changed
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

    /// Sets one slot and walks up only as far as the minimum changes.
    fn set(&mut self, slot: usize, value: f64) {
        let mut k = self.set_leaf(slot, value);
        while k > 1 {
            k /= 2;
            let m = Self::smaller(self.node[2 * k], self.node[2 * k + 1]);
            if self.node[k] == m {
                break;
            }
            self.node[k] = m;
        }
    }

    /// Sets one slot without updating the nodes above: call [`MinTree::rebuild`] after.
    fn set_leaf(&mut self, slot: usize, value: f64) -> usize {
        let k = slot + self.leaves;
        self.node[k] = (value, slot as u32);
        k
    }

    fn rebuild(&mut self) {
        for k in (1..self.leaves).rev() {
            self.node[k] = Self::smaller(self.node[2 * k], self.node[2 * k + 1]);
        }
    }

    fn smaller(l: (f64, u32), r: (f64, u32)) -> (f64, u32) {
        if r.0 < l.0 {
            r
        } else {
            l
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

    fn len(&self) -> usize {
        self.list.len()
    }

    fn mark(&mut self, slot: usize) {
        if !self.marked[slot] {
            self.marked[slot] = true;
            self.list.push(slot);
        }
    }

    /// Calls `f` on every marked slot and clears the marks.
    fn take_each(&mut self, mut f: impl FnMut(usize)) {
        for &c in &self.list {
            self.marked[c] = false;
            f(c);
        }
        self.list.clear();
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

    fn run(
        tree: &ZoneTree,
        demands: &[Demand],
        shed: &[Option<u32>],
        capacity: &[f64],
        floor: f64,
    ) -> Scratch {
        let mut scratch = Scratch::default();
        fill(tree, demands, shed, capacity, floor, &mut scratch);
        scratch
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
        let f = run(&t, &demands, &[None; 3], &capacity(&t), 6.0);
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
        let f = run(&t, &demands, &[None; 2], &capacity(&t), 6.0);
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
        let f = run(&t, &demands, &[None; 2], &capacity(&t), 6.0);
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
        let f = run(&t, &demands, &[None; 4], &capacity(&t), 6.0);
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
        let f = run(&t, &demands, &[None; 4], &capacity(&t), 6.0);
        // L1 carries three vehicles of 32 A: 40/96 each. L2 then has room for the 16 A one.
        assert_eq!(rounded(&f.value), [13.333, 13.333, 13.333, 13.333]);
        let t = tree(&[("main", None, 60.0)]);
        let f = run(&t, &demands, &[None; 4], &capacity(&t), 6.0);
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
        let f = run(&t, &demands, &[None, Some(0), None], &capacity(&t), 6.0);
        assert_eq!(rounded(&f.value), [31.5, 0.0, 31.5]);
    }

    #[test]
    fn largest_first_orders_by_key_and_keeps_ties_in_index_order() {
        let order = |keys: &[u32]| {
            let mut order = Vec::new();
            largest_first(keys, &mut order, &mut Vec::new());
            order
        };
        assert_eq!(order(&[60, 320, 160, 320]), [1, 3, 2, 0]);
        assert_eq!(order(&[]), Vec::<u32>::new());
        // An absurd maximum takes the comparison sort, with the same result.
        assert_eq!(order(&[60, u32::MAX, 160, u32::MAX]), [1, 3, 2, 0]);
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
        m.set_leaf(0, 1.0);
        m.set_leaf(3, 0.5);
        m.rebuild();
        assert_eq!(m.min(), (0.5, 3));
        m.set(3, 7.0);
        assert_eq!(m.min(), (1.0, 0));
    }
}
