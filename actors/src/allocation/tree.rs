//! The zone tree, built once from the configuration and reused every round: zones
//! numbered in depth-first pre-order, so a zone's subtree is one contiguous index range.

use std::collections::HashMap;
use std::fmt;

use crate::config::{Config, MAX_ZONES, MAX_ZONE_DEPTH};
use crate::units::{Amps, ZoneId};

/// The position of a zone in a [`ZoneTree`] (depth-first pre-order). Resolve a
/// [`ZoneId`] once with [`ZoneTree::index_of`]; every round then works on indices.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ZoneIdx(pub u16);

impl ZoneIdx {
    pub fn get(self) -> usize {
        usize::from(self.0)
    }
}

impl fmt::Display for ZoneIdx {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.0)
    }
}

/// One zone as the tree is built from it (the configuration's `[[zones]]`).
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneSpec {
    pub id: ZoneId,
    pub parent: Option<ZoneId>,
    /// Breaker or subscribed limit, per phase.
    pub limit_a: Amps,
    /// EV budget in static mode (`limit_a` when absent) and when the meter is stale
    /// (0 A when absent).
    pub static_ev_limit_a: Option<Amps>,
}

impl From<&crate::config::ZoneConfig> for ZoneSpec {
    fn from(z: &crate::config::ZoneConfig) -> Self {
        ZoneSpec {
            id: z.id.clone(),
            parent: z.parent.clone(),
            limit_a: z.limit_a,
            static_ev_limit_a: z.static_ev_limit_a,
        }
    }
}

/// A zone of a built tree.
#[derive(Clone, Debug, PartialEq)]
pub struct Zone {
    pub id: ZoneId,
    pub parent: Option<ZoneIdx>,
    pub limit: Amps,
    /// The budget in static mode or without a meter (never above `limit`):
    /// `static_ev_limit_a`, else `limit_a`.
    pub static_limit: Amps,
    /// The budget of a metered zone whose meter has no usable reading (never above
    /// `limit`): `static_ev_limit_a`, else 0 A. Without the meter nobody knows the other
    /// loads, so an unset fallback fails closed rather than to the breaker's limit.
    pub stale_limit: Amps,
    /// 1 for a root.
    pub depth: u8,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum TreeError {
    #[error("no zones: at least one zone (the site's main supply) is needed")]
    NoZones,
    #[error("{0} zones; at most {MAX_ZONES} are supported")]
    TooManyZones(usize),
    #[error("duplicate zone {0:?}")]
    DuplicateZone(ZoneId),
    #[error("zone {zone:?} has unknown parent {parent:?}")]
    UnknownParent { zone: ZoneId, parent: ZoneId },
    #[error("zone {0:?} is its own ancestor (a cycle)")]
    Cycle(ZoneId),
    #[error("zone {zone:?} is {depth} levels deep; at most {MAX_ZONE_DEPTH} are supported")]
    TooDeep { zone: ZoneId, depth: usize },
    #[error("zone {0:?} has a limit that is not a finite current of 0 A or more")]
    BadLimit(ZoneId),
}

/// The site's zones with what every round needs precomputed: parents, depths, the
/// path from each zone up to its root, and subtree ranges.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneTree {
    zones: Vec<Zone>,
    index: HashMap<ZoneId, ZoneIdx>,
    /// Zone `z`'s subtree is the index range `z..subtree_end[z]`.
    subtree_end: Vec<u16>,
    /// Each zone's path to its root, the zone itself first; `path_len` entries are used.
    paths: Vec<[u16; MAX_ZONE_DEPTH]>,
    path_len: Vec<u8>,
}

/// Per zone, a list of constraints (`zone * 3 + phase`) on its path.
pub(crate) struct PathLists {
    start: Vec<u32>,
    len: Vec<u8>,
    items: Vec<u16>,
}

impl PathLists {
    fn range(&self, zone: usize) -> std::ops::Range<usize> {
        let start = self.start[zone] as usize;
        start..start + usize::from(self.len[zone])
    }

    pub fn get(&self, zone: usize) -> &[u16] {
        &self.items[self.range(zone)]
    }
}

impl ZoneTree {
    /// Builds the tree; the zones may come in any order. Roots keep their given order,
    /// and so do the children of each zone, so the same specs give the same indices.
    pub fn new(specs: &[ZoneSpec]) -> Result<ZoneTree, TreeError> {
        if specs.is_empty() {
            return Err(TreeError::NoZones);
        }
        if specs.len() > MAX_ZONES {
            return Err(TreeError::TooManyZones(specs.len()));
        }
        let mut by_id: HashMap<&ZoneId, usize> = HashMap::with_capacity(specs.len());
        for (i, s) in specs.iter().enumerate() {
            if by_id.insert(&s.id, i).is_some() {
                return Err(TreeError::DuplicateZone(s.id.clone()));
            }
            let limits_ok = [Some(s.limit_a), s.static_ev_limit_a]
                .into_iter()
                .flatten()
                .all(|a| a.is_finite() && a.0 >= 0.0);
            if !limits_ok {
                return Err(TreeError::BadLimit(s.id.clone()));
            }
        }
        let mut children: Vec<Vec<usize>> = vec![Vec::new(); specs.len()];
        let mut roots = Vec::new();
        for (i, s) in specs.iter().enumerate() {
            match &s.parent {
                None => roots.push(i),
                Some(p) => match by_id.get(p) {
                    Some(&pi) => children[pi].push(i),
                    None => {
                        return Err(TreeError::UnknownParent {
                            zone: s.id.clone(),
                            parent: p.clone(),
                        })
                    }
                },
            }
        }

        // Depth-first pre-order from the roots; a zone never reached sits on a cycle.
        let mut order: Vec<(usize, Option<u16>, u8)> = Vec::with_capacity(specs.len());
        let mut stack: Vec<(usize, Option<u16>, u8)> =
            roots.iter().rev().map(|&r| (r, None, 1)).collect();
        while let Some((spec, parent, depth)) = stack.pop() {
            if usize::from(depth) > MAX_ZONE_DEPTH {
                return Err(TreeError::TooDeep {
                    zone: specs[spec].id.clone(),
                    depth: usize::from(depth),
                });
            }
            let idx = u16::try_from(order.len()).expect("at most MAX_ZONES zones, which fits u16");
            order.push((spec, parent, depth));
            for &child in children[spec].iter().rev() {
                stack.push((child, Some(idx), depth + 1));
            }
        }
        if order.len() < specs.len() {
            let mut reached = vec![false; specs.len()];
            for &(spec, _, _) in &order {
                reached[spec] = true;
            }
            let lost = reached
                .iter()
                .position(|r| !r)
                .expect("fewer reached than specs");
            return Err(TreeError::Cycle(specs[lost].id.clone()));
        }

        let zones: Vec<Zone> = order
            .iter()
            .map(|&(spec, parent, depth)| {
                let s = &specs[spec];
                Zone {
                    id: s.id.clone(),
                    parent: parent.map(ZoneIdx),
                    limit: s.limit_a,
                    static_limit: s.static_ev_limit_a.unwrap_or(s.limit_a).min(s.limit_a),
                    stale_limit: s.static_ev_limit_a.unwrap_or(Amps::ZERO).min(s.limit_a),
                    depth,
                }
            })
            .collect();
        let n = zones.len();
        let mut subtree_end: Vec<u16> = (1..=n).map(|i| i as u16).collect();
        for z in (0..n).rev() {
            if let Some(p) = zones[z].parent {
                subtree_end[p.get()] = subtree_end[p.get()].max(subtree_end[z]);
            }
        }
        let mut paths = vec![[0u16; MAX_ZONE_DEPTH]; n];
        let mut path_len = vec![0u8; n];
        for z in 0..n {
            let mut at = Some(ZoneIdx(z as u16));
            let mut len = 0;
            while let Some(a) = at {
                paths[z][len] = a.0;
                len += 1;
                at = zones[a.get()].parent;
            }
            path_len[z] = len as u8;
        }
        let index = zones
            .iter()
            .enumerate()
            .map(|(i, z)| (z.id.clone(), ZoneIdx(i as u16)))
            .collect();
        Ok(ZoneTree {
            zones,
            index,
            subtree_end,
            paths,
            path_len,
        })
    }

    /// The tree of a (validated) configuration.
    pub fn from_config(config: &Config) -> Result<ZoneTree, TreeError> {
        let specs: Vec<ZoneSpec> = config.zones.iter().map(ZoneSpec::from).collect();
        ZoneTree::new(&specs)
    }

    pub fn len(&self) -> usize {
        self.zones.len()
    }

    /// Never true for a built tree; here because `len` is.
    pub fn is_empty(&self) -> bool {
        self.zones.is_empty()
    }

    pub fn index_of(&self, id: &str) -> Option<ZoneIdx> {
        self.index.get(id).copied()
    }

    pub fn zone(&self, idx: ZoneIdx) -> &Zone {
        &self.zones[idx.get()]
    }

    pub fn zones(&self) -> &[Zone] {
        &self.zones
    }

    /// The zone and its ancestors, the zone itself first, the root last.
    pub fn path(&self, idx: ZoneIdx) -> &[u16] {
        let z = idx.get();
        &self.paths[z][..usize::from(self.path_len[z])]
    }

    /// For each zone, the phases (bit `i` = phase `i`) on which some zone of its path to
    /// the root has a flagged constraint (`flagged[zone * 3 + phase]`). One pass:
    /// pre-order puts every parent before its children.
    pub(crate) fn phases_flagged_on_path(&self, flagged: &[bool]) -> Vec<u8> {
        let mut on_path = vec![0u8; self.zones.len()];
        for (z, zone) in self.zones.iter().enumerate() {
            let own = (0..3).fold(0u8, |bits, p| bits | (u8::from(flagged[z * 3 + p]) << p));
            on_path[z] = own | zone.parent.map_or(0, |p| on_path[p.get()]);
        }
        on_path
    }

    /// For each zone, the flagged constraints on its path to the root, its own first.
    pub(crate) fn flagged_on_path(&self, flagged: &[bool]) -> PathLists {
        let n = self.zones.len();
        let mut lists = PathLists {
            start: vec![0; n],
            len: vec![0; n],
            items: Vec::new(),
        };
        for (z, zone) in self.zones.iter().enumerate() {
            let start = lists.items.len();
            lists.items.extend(
                (0..3)
                    .map(|p| z * 3 + p)
                    .filter(|&c| flagged[c])
                    .map(|c| c as u16),
            );
            if let Some(parent) = zone.parent {
                lists.items.extend_from_within(lists.range(parent.get()));
            }
            lists.start[z] = start as u32;
            lists.len[z] = (lists.items.len() - start) as u8;
        }
        lists
    }

    /// One past the last zone of `idx`'s subtree: the subtree is `idx..subtree_end`.
    pub fn subtree_end(&self, idx: ZoneIdx) -> usize {
        usize::from(self.subtree_end[idx.get()])
    }

    /// Adds every zone's value into its parent's, children before parents, turning
    /// per-zone values into per-subtree sums (pre-order makes one reverse pass enough).
    pub(crate) fn sum_up<T: Copy>(&self, values: &mut [T], add: impl Fn(&mut T, T)) {
        for z in (1..self.zones.len()).rev() {
            if let Some(p) = self.zones[z].parent {
                let v = values[z];
                add(&mut values[p.get()], v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(id: &str, parent: Option<&str>, limit: f64) -> ZoneSpec {
        ZoneSpec {
            id: id.into(),
            parent: parent.map(ZoneId::from),
            limit_a: Amps(limit),
            static_ev_limit_a: None,
        }
    }

    #[test]
    fn zones_are_numbered_in_preorder_with_contiguous_subtrees() {
        let tree = ZoneTree::new(&[
            spec("b1", Some("main"), 40.0),
            spec("main", None, 100.0),
            spec("b2", Some("main"), 40.0),
            spec("b1a", Some("b1"), 20.0),
        ])
        .unwrap();
        let ids: Vec<&str> = tree.zones().iter().map(|z| z.id.as_str()).collect();
        assert_eq!(ids, ["main", "b1", "b1a", "b2"]);
        let b1 = tree.index_of("b1").unwrap();
        assert_eq!((b1.get(), tree.subtree_end(b1)), (1, 3));
        assert_eq!(tree.subtree_end(ZoneIdx(0)), 4);
        assert_eq!(tree.path(tree.index_of("b1a").unwrap()), &[2, 1, 0]);
        assert_eq!(tree.zone(tree.index_of("b1a").unwrap()).depth, 3);
    }

    #[test]
    fn flags_are_seen_from_every_zone_below() {
        let tree = ZoneTree::new(&[
            spec("m", None, 1.0),
            spec("a", Some("m"), 1.0),
            spec("b", Some("a"), 1.0),
            spec("c", Some("m"), 1.0),
        ])
        .unwrap();
        let mut flagged = vec![false; 12];
        flagged[3 + 1] = true; // a, L2
        flagged[9] = true; // c, L1
        assert_eq!(
            tree.phases_flagged_on_path(&flagged),
            [0b000, 0b010, 0b010, 0b001]
        );
    }

    #[test]
    fn sum_up_gives_subtree_totals() {
        let tree = ZoneTree::new(&[
            spec("m", None, 1.0),
            spec("a", Some("m"), 1.0),
            spec("b", Some("a"), 1.0),
        ])
        .unwrap();
        let mut v = vec![1.0, 2.0, 4.0];
        tree.sum_up(&mut v, |acc, child| *acc += child);
        assert_eq!(v, [7.0, 6.0, 4.0]);
    }

    #[test]
    fn bad_trees_are_refused_with_the_zone_named() {
        assert_eq!(ZoneTree::new(&[]), Err(TreeError::NoZones));
        assert_eq!(
            ZoneTree::new(&[spec("a", None, 1.0), spec("a", None, 1.0)]),
            Err(TreeError::DuplicateZone("a".into()))
        );
        assert_eq!(
            ZoneTree::new(&[spec("a", Some("x"), 1.0)]),
            Err(TreeError::UnknownParent {
                zone: "a".into(),
                parent: "x".into()
            })
        );
        assert!(matches!(
            ZoneTree::new(&[
                spec("r", None, 1.0),
                spec("a", Some("b"), 1.0),
                spec("b", Some("a"), 1.0)
            ]),
            Err(TreeError::Cycle(_))
        ));
        let deep = [
            spec("1", None, 1.0),
            spec("2", Some("1"), 1.0),
            spec("3", Some("2"), 1.0),
            spec("4", Some("3"), 1.0),
            spec("5", Some("4"), 1.0),
        ];
        assert_eq!(
            ZoneTree::new(&deep),
            Err(TreeError::TooDeep {
                zone: "5".into(),
                depth: 5
            })
        );
        assert!(ZoneTree::new(&deep[..4]).is_ok());
        assert_eq!(
            ZoneTree::new(&[spec("a", None, f64::NAN)]),
            Err(TreeError::BadLimit("a".into()))
        );
        let many: Vec<ZoneSpec> = (0..=MAX_ZONES)
            .map(|i| spec(&i.to_string(), None, 1.0))
            .collect();
        assert_eq!(
            ZoneTree::new(&many),
            Err(TreeError::TooManyZones(MAX_ZONES + 1))
        );
    }

    #[test]
    fn the_stale_meter_fallback_defaults_to_nothing_and_never_exceeds_the_limit() {
        let mut s = spec("a", None, 50.0);
        let stale = |s: &ZoneSpec| {
            ZoneTree::new(std::slice::from_ref(s))
                .unwrap()
                .zone(ZoneIdx(0))
                .stale_limit
        };
        assert_eq!(stale(&s), Amps::ZERO);
        s.static_ev_limit_a = Some(Amps(20.0));
        assert_eq!(stale(&s), Amps(20.0));
        s.static_ev_limit_a = Some(Amps(80.0));
        assert_eq!(stale(&s), Amps(50.0));
    }

    #[test]
    fn static_limit_defaults_to_limit_and_never_exceeds_it() {
        let mut s = spec("a", None, 50.0);
        assert_eq!(
            ZoneTree::new(std::slice::from_ref(&s))
                .unwrap()
                .zone(ZoneIdx(0))
                .static_limit,
            Amps(50.0)
        );
        s.static_ev_limit_a = Some(Amps(80.0));
        assert_eq!(
            ZoneTree::new(&[s]).unwrap().zone(ZoneIdx(0)).static_limit,
            Amps(50.0)
        );
    }
}
