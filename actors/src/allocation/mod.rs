//! The allocation engine (pure): from the zone tree, the zones' readings and the
//! sessions, a current setpoint for every connector, the reasons for it, and the plan
//! of what to send (decreases first). See `docs/allocation.md` for the semantics.
//!
//! One round, in order: the EV budget of each zone ([`zone_budgets`]); each session's
//! maximum, lowered by demand adaptation (`demand`); who is suspended so the others
//! can keep `min_current_a` (`shedding`); the sharing of what is left by weighted
//! progressive filling (`sharing`); and the dispatch with hold and hysteresis
//! (`dispatch`). Invariant: for every zone and phase, the targets — and the limits in
//! force after the plan — of the sessions below it add up to at most its budget.

mod budget;
mod demand;
mod dispatch;
mod reservation;
mod session;
mod sharing;
mod shedding;
mod state;
mod tree;

#[cfg(test)]
mod tests;

use chrono::{DateTime, TimeDelta, Utc};

pub use budget::{
    subtree_ev_draw, subtree_ramping, zone_budgets, zone_budgets_with, BudgetParams, BudgetSource,
    ConsumptionKind, Estimate, MeterReading, ZoneBudget, ZoneMemory, ZoneReading, BUDGET_STEP_UP_A,
    HOLD_AT_MOST, RAMP_ALLOWANCE,
};
pub use demand::{ADAPT_AFTER, ADAPT_HEADROOM_A, LOWER_GAP_A, RAISE_WITHIN_A};
pub use dispatch::{Plan, SetpointChange, MIN_INCREASE_A};
pub use reservation::{session_limits, ConnectorControl, SessionLimits, REJECTIONS_BEFORE_MAX};
pub use session::{
    Bottleneck, Decision, HeldIncrease, Session, SessionAllocation, SessionKey, SessionPhases,
};
pub use state::AllocatorState;
pub use tree::{TreeError, Zone, ZoneIdx, ZoneSpec, ZoneTree};

use crate::config::{Config, SheddingStrategy};
use crate::units::{Amps, PerPhase, Phase};
use dispatch::Change;
use shedding::KeepOrder;
use state::{Scratch, Status};

/// The settings of the allocation (the configuration's `[control]` and site mode).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Params {
    pub budget: BudgetParams,
    /// Below this a vehicle is suspended; a running one never gets less.
    pub min_current: Amps,
    pub strategy: SheddingStrategy,
    /// How long shed decisions hold before they are re-evaluated.
    pub rotation: TimeDelta,
    /// How long the budget must allow an increase before it is sent.
    pub increase_hold: TimeDelta,
    /// How long a resumed vehicle stays active, unless safety requires otherwise.
    pub min_active: TimeDelta,
    /// The most EV current allowed between the most and least loaded phase of a root.
    pub max_unbalance: Option<Amps>,
}

impl Params {
    pub fn from_config(config: &Config) -> Params {
        let c = &config.control;
        Params {
            budget: BudgetParams {
                mode: config.site.mode,
                safety_margin: c.safety_margin_a,
                meter_stale_after: TimeDelta::seconds(i64::from(c.meter_stale_after_s)),
            },
            min_current: c.min_current_a,
            strategy: c.shedding_strategy,
            rotation: TimeDelta::minutes(i64::from(c.rotation_minutes)),
            increase_hold: TimeDelta::seconds(i64::from(c.increase_hold_s)),
            min_active: TimeDelta::seconds(i64::from(c.min_active_s)),
            max_unbalance: c.max_unbalance_a,
        }
    }
}

/// Everything that changes from one round to the next.
#[derive(Clone, Copy, Debug)]
pub struct Round<'a> {
    pub now: DateTime<Utc>,
    /// The tariff period's cap on every EV budget (`ev_cap_pct / 100`; 1 = none).
    pub ev_cap_fraction: f64,
    /// One per zone, in the tree's order.
    pub readings: &'a [ZoneReading],
    /// Every connector in a transaction. Pass them in a stable order (by key, say):
    /// the results do not depend on it, but matching last round's order is fastest.
    pub sessions: &'a [Session],
}

/// A zone's budget and what is allocated below it, per phase.
#[derive(Clone, Debug, PartialEq)]
pub struct ZoneAllocation {
    pub budget: ZoneBudget,
    /// Sum of the targets below the zone (fixed reservations included).
    pub allocated: PerPhase<Amps>,
    /// Sum of the limits in force once this round's plan is applied.
    pub allocated_after: PerPhase<Amps>,
    /// Reservations of the connectors not under control.
    pub fixed: PerPhase<Amps>,
    /// What the controllable sessions below the zone could take (sum of their maxima).
    pub demand: PerPhase<Amps>,
    /// Vehicles suspended below the zone.
    pub suspended: u32,
}

/// The result of one round.
#[derive(Clone, Debug, PartialEq)]
pub struct Allocation {
    /// Same order as the round's sessions.
    pub sessions: Vec<SessionAllocation>,
    /// Same order as the tree's zones.
    pub zones: Vec<ZoneAllocation>,
    pub plan: Plan,
    /// Whether this round re-evaluated earlier shed decisions (a rotation).
    pub rotation: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum AllocationError {
    #[error("{readings} zone readings for {zones} zones: pass one per zone, in the tree's order")]
    ReadingsMismatch { readings: usize, zones: usize },
    #[error("session {session} is in zone {zone}, which the tree does not have")]
    UnknownZone { session: SessionKey, zone: ZoneIdx },
}

/// One controllable session's demand, as shedding and sharing see it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) struct Demand {
    /// The zone's index in the tree.
    pub zone: u16,
    /// Phases loaded (bit `i` for phase `i`).
    pub mask: u8,
    /// Its maximum this round, in amperes.
    pub max: f64,
}

pub(crate) fn zone_of(tree: &ZoneTree, s: &Session) -> Result<usize, AllocationError> {
    if s.zone.get() < tree.len() {
        Ok(s.zone.get())
    } else {
        Err(AllocationError::UnknownZone {
            session: s.key.clone(),
            zone: s.zone,
        })
    }
}

/// What kind of session, this round.
#[derive(Clone, Copy)]
pub(crate) enum Kind {
    /// Not under control: keeps this reservation.
    Fixed(Amps),
    /// Its maximum is below the minimum: gets 0.
    CannotCharge,
    /// Shared and maybe shed; the index of its [`Demand`].
    Controlled(u32),
}

/// A session as prepared for this round.
#[derive(Clone, Copy)]
pub(crate) struct Prepared {
    kind: Kind,
    /// The maximum used this round, in 0.1 A steps.
    max: Amps,
    /// Whether demand adaptation lowered it.
    adapted: bool,
}

/// Runs one allocation round. Pure: the same tree, parameters, round and state give the
/// same allocation and the same next state.
pub fn allocate(
    tree: &ZoneTree,
    params: &Params,
    round: &Round,
    state: &mut AllocatorState,
) -> Result<Allocation, AllocationError> {
    let now = round.now;
    let sessions = round.sessions;
    let budgets = zone_budgets_with(tree, &params.budget, round, &mut state.zones)?;
    let nz = tree.len();
    // The least current a running vehicle gets, as it will be sent (0.1 A steps).
    let floor = ceil_tenth(params.min_current);
    let was_rotating = state.rotation_started.is_some();
    let rotation_due = state
        .rotation_started
        .is_none_or(|s| now - s >= params.rotation);
    state.align(sessions);
    let AllocatorState {
        memories,
        scratch,
        rotation_started,
        ..
    } = state;
    let Scratch {
        prepared,
        demands,
        demand_session,
        shedding: shed_scratch,
        sharing: fill_scratch,
    } = scratch;

    prepared.clear();
    demands.clear();
    demand_session.clear();
    let mut fixed = vec![[0.0f64; 3]; nz];
    for (i, (s, memory)) in sessions.iter().zip(memories.iter_mut()).enumerate() {
        let station_max = if s.max_current.is_finite() {
            s.max_current.max(Amps::ZERO)
        } else {
            Amps::ZERO
        };
        let mask = s.phases.mask();
        if let Some(reserved) = s.fixed {
            // A reservation that is not a number: assume the worst, the station's maximum.
            let reserved = if reserved.is_finite() {
                reserved.max(Amps::ZERO)
            } else {
                station_max
            };
            sharing::add_on_phases(&mut fixed[s.zone.get()], mask, reserved.0);
            prepared.push(Prepared {
                kind: Kind::Fixed(reserved),
                max: station_max.floor_tenth(),
                adapted: false,
            });
            continue;
        }
        let adapted_max = demand::adapt(&mut memory.demand, s, station_max, Amps(floor), now);
        let max = adapted_max.floor_tenth();
        let kind = if max.0 <= 0.0 || max.0 < floor {
            Kind::CannotCharge
        } else {
            demands.push(Demand {
                zone: s.zone.0,
                mask,
                max: max.0,
            });
            demand_session.push(i as u32);
            Kind::Controlled(demands.len() as u32 - 1)
        };
        prepared.push(Prepared {
            kind,
            max,
            adapted: adapted_max < station_max,
        });
    }
    tree.sum_up(&mut fixed, sharing::add3);
    let capacity: Vec<f64> = (0..nz * 3)
        .map(|c| (budgets[c / 3].budget.0[c % 3].0 - fixed[c / 3][c % 3]).max(0.0))
        .collect();

    let keep = KeepOrder::new(params.strategy, rotation_due, params.min_active, now);
    let session_of = |d: usize| demand_session[d] as usize;
    let rank = |d: usize| {
        let s = &sessions[session_of(d)];
        keep.rank(
            s.vip,
            memories[session_of(d)].status,
            s.energy_wh,
            s.connected_since,
        )
    };
    let tie = |a: usize, b: usize| {
        sessions[session_of(a)]
            .key
            .cmp(&sessions[session_of(b)].key)
    };
    // With an unbalance cap, the one- and two-phase vehicles that load a root's phase
    // beyond its least loaded phase plus the cap are lowered (or shed, when the floor
    // leaves no other way), and the round is shared again: a few passes, as what they
    // leave may go to others.
    let mut passes = 0;
    let mut balanced: Option<Vec<Demand>> = None;
    let mut balance_why: Vec<Option<u32>> = Vec::new();
    let mut balance_shed: Vec<Option<u32>> = Vec::new();
    let shed: Vec<Option<u32>> = loop {
        let ds: &[Demand] = balanced.as_deref().unwrap_or(demands);
        let shed = shedding::admit(
            tree,
            ds,
            &balance_shed,
            &capacity,
            floor,
            rank,
            tie,
            shed_scratch,
        );
        sharing::fill(tree, ds, shed, &capacity, floor, fill_scratch);
        passes += 1;
        let Some(cap) = params.max_unbalance.filter(|_| passes < BALANCE_PASSES) else {
            break shed.to_vec();
        };
        let ds = balanced.get_or_insert_with(|| demands.to_vec());
        if balance_why.is_empty() {
            balance_why = vec![None; ds.len()];
            balance_shed = vec![None; ds.len()];
        }
        let changed = sharing::lower_for_balance(
            tree,
            ds,
            shed,
            &fill_scratch.value,
            &fixed,
            cap.0,
            floor,
            |a, b| rank(a).cmp(&rank(b)).then_with(|| tie(a, b)),
            &mut balance_why,
            &mut balance_shed,
        );
        if !changed {
            break shed.to_vec();
        }
    };

    let mut out = Vec::with_capacity(sessions.len());
    let mut plan = Plan::default();
    let mut any_suspended = false;
    for (i, (s, memory)) in sessions.iter().zip(memories.iter_mut()).enumerate() {
        let Prepared { kind, max, adapted } = prepared[i];
        let fraction = |target: Amps| if max.0 > 0.0 { target.0 / max.0 } else { 0.0 };
        let (target, decision) = match kind {
            Kind::Fixed(reserved) => {
                out.push(SessionAllocation {
                    target: reserved,
                    limit_after: reserved,
                    send: None,
                    max,
                    adapted,
                    fraction: fraction(reserved),
                    decision: Decision::Fixed,
                    vip: s.vip,
                    held: None,
                });
                continue;
            }
            Kind::CannotCharge => {
                memory.status = Status::Waiting;
                (Amps::ZERO, Decision::MaxBelowMinimum)
            }
            Kind::Controlled(d) => {
                let d = d as usize;
                if let Some(c) = shed[d] {
                    let since = match memory.status {
                        Status::Suspended { since } => since,
                        _ => now,
                    };
                    memory.status = Status::Suspended { since };
                    any_suspended = true;
                    (
                        Amps::ZERO,
                        Decision::Suspended {
                            bottleneck: bottleneck(c),
                            since,
                        },
                    )
                } else {
                    memory.status = match memory.status {
                        Status::Active { since } => Status::Active { since },
                        _ => Status::Active { since: now },
                    };
                    let target = Amps(fill_scratch.value[d]).floor_tenth();
                    let limited_by = fill_scratch.bottleneck[d]
                        .or_else(|| balance_why.get(d).copied().flatten());
                    let decision = match limited_by {
                        Some(c) if target < max => Decision::Shared {
                            bottleneck: bottleneck(c),
                        },
                        _ => Decision::AtMax,
                    };
                    (target, decision)
                }
            }
        };
        let step = dispatch::step(
            target,
            s.limit_in_force,
            &mut memory.hold,
            params.increase_hold,
            now,
        );
        let change = || SetpointChange {
            session: i,
            key: s.key.clone(),
            from: s.limit_in_force,
            to: step.limit_after,
        };
        match step.change {
            Change::None => {}
            Change::Decrease => plan.decreases.push(change()),
            Change::Increase => plan.increases.push(change()),
        }
        out.push(SessionAllocation {
            target,
            limit_after: step.limit_after,
            send: step.send(),
            max,
            adapted,
            fraction: fraction(target),
            decision,
            vip: s.vip,
            held: step.held,
        });
    }

    let zones = zone_report(tree, budgets, sessions, &out, &fixed);
    *rotation_started = match (any_suspended, rotation_due) {
        (false, _) => None,
        (true, true) => Some(now),
        (true, false) => *rotation_started,
    };
    Ok(Allocation {
        sessions: out,
        zones,
        plan,
        rotation: rotation_due && was_rotating,
    })
}

fn bottleneck(constraint: u32) -> Bottleneck {
    Bottleneck {
        zone: ZoneIdx((constraint / 3) as u16),
        phase: Phase::ALL[(constraint % 3) as usize],
    }
}

/// At most this many sharing passes to meet an unbalance cap.
const BALANCE_PASSES: usize = 30;

/// Rounded up to 0.1 A (the floor must be a value that can be sent and is not below
/// the minimum); 0 for a minimum that is not a positive number.
fn ceil_tenth(a: Amps) -> f64 {
    if a.0 > 0.0 && a.is_finite() {
        ((a.0 - 1e-9) * 10.0).ceil() / 10.0
    } else {
        0.0
    }
}

fn zone_report(
    tree: &ZoneTree,
    budgets: Vec<ZoneBudget>,
    sessions: &[Session],
    out: &[SessionAllocation],
    fixed: &[[f64; 3]],
) -> Vec<ZoneAllocation> {
    let nz = tree.len();
    let mut allocated = vec![[0.0f64; 3]; nz];
    let mut after = vec![[0.0f64; 3]; nz];
    let mut demand = vec![[0.0f64; 3]; nz];
    let mut suspended = vec![0u32; nz];
    for (s, a) in sessions.iter().zip(out) {
        let z = s.zone.get();
        let mask = s.phases.mask();
        sharing::add_on_phases(&mut allocated[z], mask, a.target.0);
        sharing::add_on_phases(&mut after[z], mask, a.limit_after.0);
        if a.decision != Decision::Fixed {
            sharing::add_on_phases(&mut demand[z], mask, a.max.0);
        }
        if matches!(a.decision, Decision::Suspended { .. }) {
            suspended[z] += 1;
        }
    }
    tree.sum_up(&mut allocated, sharing::add3);
    tree.sum_up(&mut after, sharing::add3);
    tree.sum_up(&mut demand, sharing::add3);
    tree.sum_up(&mut suspended, |acc, child| *acc += child);
    let amps = |v: [f64; 3]| PerPhase(v.map(Amps));
    budgets
        .into_iter()
        .enumerate()
        .map(|(z, budget)| ZoneAllocation {
            budget,
            allocated: amps(allocated[z]),
            allocated_after: amps(after[z]),
            fixed: amps(fixed[z]),
            demand: amps(demand[z]),
            suspended: suspended[z],
        })
        .collect()
}
