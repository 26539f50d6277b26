//! ZoneSupervisor: keeps the zone tree and the latest state of every station, meter and
//! tariff period, runs `allocation::allocate` on every relevant event (debounced) and
//! every `control.interval_s`, and dispatches the plan: every decrease first, and the
//! increases only once all decreases were acknowledged.
//!
//! What cannot be confirmed is assumed at its worst: a station that does not answer a
//! setpoint is held at the higher of its old and new limits (a fixed reservation) until
//! it answers again; a disconnected station keeps its last limit reserved.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::allocation::{
    self, Allocation, AllocatorState, BudgetSource, ConnectorControl, Decision, Params, Round,
    Session, SessionKey, SessionPhases, ZoneIdx, ZoneReading, ZoneTree, REJECTIONS_BEFORE_MAX,
};
use crate::calendar::{
    system_clock, LivePrice, ReplaceTariffs, TariffCalendarActor, TariffPeriodChanged,
};
use crate::config::{Config, LiveConfig, StationConfig};
use crate::meter::{MeterActor, MeterReading, MeterRecipients, MeterStale, MeterTiming, StopMeter};
use crate::ocpp::remote::{MessageTrigger, TriggerMessageRequest};
use crate::ocpp::smart_charging::{ChargingProfilePurpose, ClearChargingProfileRequest};
use crate::station::{
    ApplyLimit, Call, CallFailure, LimitOutcome, LimitPurpose, ReportReason, StationActor,
    StationReport, StationSnapshot,
};
use crate::store::{LogLevel, Store};
use crate::tariff::TariffCalendar;
use crate::units::{Amps, ChargePointId, MeterId, PerPhase, Phase, ZoneId};
use crate::zone::{ZoneActor, ZoneUpdate};

/// Events closer together than this share one allocation round.
const DEBOUNCE: Duration = Duration::from_millis(50);
/// How many recent rounds are kept for the UI.
const RECENT_ROUNDS: usize = 100;
/// One site sample a minute for 24 h, for the dashboard's chart.
const HISTORY_SAMPLES: usize = 24 * 60;
const HISTORY_EVERY: Duration = Duration::from_secs(60);
/// A connector that did not answer is tried again after this long.
const UNRESPONSIVE_RETRY: TimeDelta = TimeDelta::seconds(30);

// --- messages --------------------------------------------------------------------------

/// The configuration in force changed (already validated and stored).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConfigChanged;

/// The live state of the site, for the API and the dashboard.
#[derive(Message)]
#[rtype(result = "Arc<SiteStatus>")]
pub struct GetSiteStatus;

/// The recent allocation rounds, newest first.
#[derive(Message)]
#[rtype(result = "Vec<RoundSummary>")]
pub struct GetRecentRounds;

/// The last 24 h of site samples (one a minute), oldest first.
#[derive(Message)]
#[rtype(result = "Vec<SiteSample>")]
pub struct GetHistory;

/// Receive every new [`SiteStatus`] after each round.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<SiteUpdate>);

#[derive(Clone, Message)]
#[rtype(result = "()")]
pub struct SiteUpdate(pub Arc<SiteStatus>);

/// The actor polling a meter, to ask it for its status ("read now" in the UI).
#[derive(Message)]
#[rtype(result = "Option<Addr<MeterActor>>")]
pub struct GetMeter(pub MeterId);

/// Stops the meters and the calendar (controller shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopSupervisor;

/// The budget a federation primary grants to this site's root zones (`None`: none).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ImposeBudget(pub Option<PerPhase<Amps>>);

// --- what the UI sees ----------------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct ZoneStatus {
    pub id: ZoneId,
    pub parent: Option<ZoneId>,
    pub limit_a: Amps,
    /// `static`, `dynamic`, `stale_fallback` or `imposed`.
    pub source: &'static str,
    pub budget: PerPhase<Amps>,
    pub ev_draw: PerPhase<Amps>,
    pub other_loads: Option<PerPhase<Amps>>,
    pub production: Option<PerPhase<Amps>>,
    pub ev_cap_fraction: f64,
    /// Sum of the limits below the zone once this round's plan is applied.
    pub allocated: PerPhase<Amps>,
    /// What the vehicles below could take.
    pub demand: PerPhase<Amps>,
    pub suspended: u32,
}

#[derive(Clone, Debug, Serialize)]
pub struct SessionStatus {
    pub station: ChargePointId,
    pub connector: u32,
    pub transaction: Option<i32>,
    /// What the budgets allow.
    pub target: Amps,
    /// The limit once this round's plan is applied (lower than target while held).
    pub limit: Amps,
    pub max: Amps,
    pub fraction: f64,
    pub vip: bool,
    /// `at_max`, `shared`, `suspended`, `max_below_minimum`, `fixed`.
    pub decision: &'static str,
    pub bottleneck: Option<ZoneId>,
    pub bottleneck_phase: Option<Phase>,
    pub suspended_since: Option<DateTime<Utc>>,
    pub held_until: Option<DateTime<Utc>>,
    /// A sentence an operator reads: why this vehicle has this limit.
    pub why: String,
}

#[derive(Clone, Debug, Serialize)]
pub struct RoundSummary {
    pub at: DateTime<Utc>,
    /// Time spent in `allocate`, in microseconds.
    pub compute_us: u64,
    pub sessions: usize,
    pub decreases: usize,
    pub increases: usize,
    pub rotation: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SiteSample {
    pub at: DateTime<Utc>,
    /// Per root zone: its id, the measured load (meter), EV draw and budget, on the
    /// most loaded phase.
    pub zones: Vec<(ZoneId, Option<Amps>, Amps, Amps)>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SiteStatus {
    pub at: Option<DateTime<Utc>>,
    pub tariff_period: Option<String>,
    pub ev_cap_fraction: f64,
    pub price_per_kwh: Option<f64>,
    pub zones: Vec<ZoneStatus>,
    pub sessions: Vec<SessionStatus>,
    pub last_round: Option<RoundSummary>,
    /// Meters attached to no zone (other feeders), reported only.
    pub other_meters: Vec<MeterReading>,
}

// --- the actor ---------------------------------------------------------------------------

struct StationEntry {
    addr: Addr<StationActor>,
    snapshot: StationSnapshot,
    /// Its configuration when last seen in force: a station removed from the
    /// configuration while charging keeps its reservation with it.
    config: StationConfig,
}

/// Memory of setpoints that could not be confirmed.
#[derive(Clone, Copy)]
struct Unconfirmed {
    reserved: Amps,
    since: DateTime<Utc>,
}

pub struct ZoneSupervisor {
    config: LiveConfig,
    price: LivePrice,
    store: Store,
    current: Arc<Config>,
    tree: ZoneTree,
    params: Params,
    state: AllocatorState,
    stations: BTreeMap<ChargePointId, StationEntry>,
    readings: Vec<ZoneReading>,
    imposed: Option<PerPhase<Amps>>,
    zones: Vec<Addr<ZoneActor>>,
    /// Counts the zone trees started: a zone update names its tree's generation.
    zone_generation: u64,
    meters: Vec<(MeterId, Addr<MeterActor>)>,
    calendar: Option<Addr<TariffCalendarActor>>,
    tariff: TariffPeriodChanged,
    other_meters: BTreeMap<MeterId, MeterReading>,
    round_scheduled: bool,
    dispatching: bool,
    rerun: bool,
    unconfirmed: HashMap<SessionKey, Unconfirmed>,
    rejections: HashMap<SessionKey, u32>,
    /// Sessions raised from 0, and when: checked for a vehicle that does not resume.
    resumed: HashMap<SessionKey, DateTime<Utc>>,
    status: Arc<SiteStatus>,
    recent: VecDeque<RoundSummary>,
    history: VecDeque<SiteSample>,
    subscribers: Vec<Recipient<SiteUpdate>>,
}

impl ZoneSupervisor {
    /// Fails only if the configuration's zone tree is invalid, which validation refuses.
    pub fn new(
        config: LiveConfig,
        store: Store,
        price: LivePrice,
    ) -> Result<ZoneSupervisor, allocation::TreeError> {
        let current = config.get();
        let tree = ZoneTree::from_config(&current)?;
        Ok(ZoneSupervisor {
            params: Params::from_config(&current),
            readings: vec![ZoneReading::default(); tree.len()],
            tree,
            current,
            config,
            store,
            price,
            state: AllocatorState::default(),
            stations: BTreeMap::new(),
            imposed: None,
            zones: Vec::new(),
            zone_generation: 0,
            meters: Vec::new(),
            calendar: None,
            tariff: TariffPeriodChanged {
                period: None,
                cap_fraction: 1.0,
                price_per_kwh: None,
            },
            other_meters: BTreeMap::new(),
            round_scheduled: false,
            dispatching: false,
            rerun: false,
            unconfirmed: HashMap::new(),
            rejections: HashMap::new(),
            resumed: HashMap::new(),
            status: Arc::new(SiteStatus {
                ev_cap_fraction: 1.0,
                ..SiteStatus::default()
            }),
            recent: VecDeque::new(),
            history: VecDeque::new(),
            subscribers: Vec::new(),
        })
    }

    /// (Re)starts the zone, meter and calendar actors for the configuration in force.
    fn start_inputs(&mut self, ctx: &mut Context<Self>) {
        for (_, m) in self.meters.drain(..) {
            m.do_send(StopMeter);
        }
        self.zones.clear();
        self.zone_generation += 1;
        let config = self.current.clone();
        let me = ctx.address();
        let mut zone_of_meter: HashMap<&MeterId, Addr<ZoneActor>> = HashMap::new();
        for (i, z) in self.tree.zones().iter().enumerate() {
            let Some(zc) = config.zone(&z.id) else {
                continue;
            };
            let index = ZoneIdx(u16::try_from(i).expect("at most 200 zones (validated)"));
            let actor = ZoneActor::new(
                index,
                self.zone_generation,
                zc.clone(),
                &config,
                me.clone().recipient(),
            )
            .start();
            for m in zc.meter.iter().chain(zc.production_meter.iter()) {
                zone_of_meter.insert(m, actor.clone());
            }
            self.zones.push(actor);
        }
        for m in &config.meters {
            let recipients = match zone_of_meter.get(&m.id) {
                Some(zone) => MeterRecipients {
                    readings: zone.clone().recipient(),
                    stale: zone.clone().recipient(),
                },
                None => MeterRecipients {
                    readings: me.clone().recipient(),
                    stale: me.clone().recipient(),
                },
            };
            match MeterActor::new(m.clone(), MeterTiming::new(m, &config.control), recipients) {
                Ok(actor) => self.meters.push((m.id.clone(), actor.start())),
                Err(e) => tracing::error!(meter = %m.id, error = %e, "cannot start the meter"),
            }
        }
        match TariffCalendar::new(&config.tariffs, &config.site.timezone) {
            Ok(calendar) => match &self.calendar {
                Some(actor) => actor.do_send(ReplaceTariffs(calendar)),
                None => {
                    self.calendar = Some(
                        TariffCalendarActor::new(calendar, me.recipient(), system_clock()).start(),
                    )
                }
            },
            Err(e) => tracing::error!(error = %e, "cannot build the tariff calendar"),
        }
    }

    fn schedule_round(&mut self, ctx: &mut Context<Self>) {
        if self.round_scheduled {
            return;
        }
        self.round_scheduled = true;
        ctx.run_later(DEBOUNCE, |act, ctx| {
            act.round_scheduled = false;
            act.run_round(ctx);
        });
    }

    /// The sessions of this round: every connector in a transaction, in key order.
    fn sessions(&self, now: DateTime<Utc>) -> Vec<(Session, i32)> {
        let mut out = Vec::new();
        for (id, entry) in &self.stations {
            let configured = self.current.station(id);
            let sc = configured.unwrap_or(&entry.config);
            // A station whose zone was removed still draws: the first root carries it.
            let zone = self.tree.index_of(sc.zone.as_str()).unwrap_or(ZoneIdx(0));
            for c in &entry.snapshot.connectors {
                let Some(t) = &c.transaction else { continue };
                let key = SessionKey::new(id.clone(), c.connector);
                let draw = match c.draw.0 {
                    [Some(a), Some(b), Some(c3)] => Some(PerPhase([a, b, c3])),
                    _ => None,
                };
                let limits = allocation::session_limits(&ConnectorControl {
                    controllable: entry.snapshot.connected && configured.is_some(),
                    may_apply: c.limit_in_force,
                    tx_limit: c.tx_limit,
                    station_max: sc.max_current_a,
                    rejections: self.rejections.get(&key).copied().unwrap_or(0),
                    unconfirmed: self
                        .unconfirmed
                        .get(&key)
                        .filter(|u| now - u.since < UNRESPONSIVE_RETRY)
                        .map(|u| u.reserved),
                });
                out.push((
                    Session {
                        key,
                        zone,
                        phases: SessionPhases::of_station(sc.phases, sc.phase),
                        max_current: sc.max_current_a,
                        vip: t.vip || sc.vip,
                        energy_wh: t.energy_wh,
                        connected_since: t.started_at,
                        draw,
                        limit_in_force: limits.limit_in_force,
                        fixed: limits.fixed,
                    },
                    t.id,
                ));
            }
        }
        out
    }

    fn run_round(&mut self, ctx: &mut Context<Self>) {
        if self.dispatching {
            self.rerun = true;
            return;
        }
        let now = Utc::now();
        self.unconfirmed
            .retain(|_, u| now - u.since < UNRESPONSIVE_RETRY * 4);
        let sessions = self.sessions(now);
        let plain: Vec<Session> = sessions.iter().map(|(s, _)| s.clone()).collect();
        let mut readings = self.readings.clone();
        if let Some(imposed) = self.imposed {
            for (i, z) in self.tree.zones().iter().enumerate() {
                if z.parent.is_none() {
                    readings[i].imposed = Some(imposed);
                }
            }
        }
        let round = Round {
            now,
            ev_cap_fraction: self.tariff.cap_fraction,
            readings: &readings,
            sessions: &plain,
        };
        let started = Instant::now();
        let allocation =
            match allocation::allocate(&self.tree, &self.params, &round, &mut self.state) {
                Ok(a) => a,
                Err(e) => {
                    tracing::error!(error = %e, "allocation failed: setpoints unchanged");
                    return;
                }
            };
        let compute_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        let summary = RoundSummary {
            at: now,
            compute_us,
            sessions: plain.len(),
            decreases: allocation.plan.decreases.len(),
            increases: allocation.plan.increases.len(),
            rotation: allocation.rotation,
        };
        tracing::debug!(
            sessions = summary.sessions,
            decreases = summary.decreases,
            increases = summary.increases,
            compute_us,
            "allocation round"
        );
        self.publish(&allocation, &sessions, summary, now);
        self.dispatch(&allocation, &sessions, now, ctx);
    }

    fn publish(
        &mut self,
        a: &Allocation,
        sessions: &[(Session, i32)],
        summary: RoundSummary,
        now: DateTime<Utc>,
    ) {
        let zones: Vec<ZoneStatus> = self
            .tree
            .zones()
            .iter()
            .zip(&a.zones)
            .map(|(z, za)| ZoneStatus {
                id: z.id.clone(),
                parent: z.parent.map(|p| self.tree.zone(p).id.clone()),
                limit_a: z.limit,
                source: match za.budget.source {
                    BudgetSource::Static => "static",
                    BudgetSource::Dynamic => "dynamic",
                    BudgetSource::StaleFallback => "stale_fallback",
                    BudgetSource::Imposed => "imposed",
                },
                budget: za.budget.budget,
                ev_draw: za.budget.ev_draw,
                other_loads: za.budget.other_loads,
                production: za.budget.production,
                ev_cap_fraction: za.budget.ev_cap_fraction,
                allocated: za.allocated_after,
                demand: za.demand,
                suspended: za.suspended,
            })
            .collect();
        let min = self.params.min_current;
        let sessions: Vec<SessionStatus> = sessions
            .iter()
            .zip(&a.sessions)
            .map(|((s, tx), sa)| {
                let (decision, bottleneck, suspended_since) = match sa.decision {
                    Decision::AtMax => ("at_max", None, None),
                    Decision::Shared { bottleneck } => ("shared", Some(bottleneck), None),
                    Decision::Suspended { bottleneck, since } => ("suspended", Some(bottleneck), Some(since)),
                    Decision::MaxBelowMinimum => ("max_below_minimum", None, None),
                    Decision::Fixed => ("fixed", None, None),
                };
                let zone_name = bottleneck.map(|b| self.tree.zone(b.zone).id.clone());
                let why = match (&sa.decision, &zone_name) {
                    (Decision::AtMax, _) if sa.adapted => {
                        format!("full demand: the vehicle draws less, so its maximum is lowered to {}", sa.max)
                    }
                    (Decision::AtMax, _) => format!("full demand: {} is all it can take", sa.max),
                    (Decision::Shared { bottleneck }, Some(z)) => format!(
                        "shares zone {z} ({}) with the vehicles there: {:.0} % of its {}",
                        bottleneck.phase,
                        sa.fraction * 100.0,
                        sa.max
                    ),
                    (Decision::Suspended { bottleneck, since }, Some(z)) => format!(
                        "suspended since {}: zone {z} ({}) cannot give {min} to every vehicle, and this one {}",
                        since.format("%H:%M"),
                        bottleneck.phase,
                        if sa.vip { "is a VIP but VIPs alone do not fit" } else { "comes last by the shedding order" }
                    ),
                    (Decision::MaxBelowMinimum, _) => format!("its maximum {} is below the minimum {min}", sa.max),
                    (Decision::Fixed, _) => "not under control now (offline or not answering): its last limit is reserved".into(),
                    _ => String::new(),
                };
                let why = match &sa.held {
                    Some(h) => format!("{why}; an increase to {} waits until {}", h.allowed, h.until.format("%H:%M:%S")),
                    None => why,
                };
                SessionStatus {
                    station: s.key.charge_point.clone(),
                    connector: s.key.connector,
                    transaction: Some(*tx),
                    target: sa.target,
                    limit: sa.limit_after,
                    max: sa.max,
                    fraction: sa.fraction,
                    vip: sa.vip,
                    decision,
                    bottleneck: zone_name,
                    bottleneck_phase: bottleneck.map(|b| b.phase),
                    suspended_since,
                    held_until: sa.held.map(|h| h.until),
                    why,
                }
            })
            .collect();
        let other_meters = self.other_meters.values().cloned().collect();
        let status = Arc::new(SiteStatus {
            at: Some(now),
            tariff_period: self.tariff.period.as_ref().map(|p| p.name.clone()),
            ev_cap_fraction: self.tariff.cap_fraction,
            price_per_kwh: self.tariff.price_per_kwh,
            zones,
            sessions,
            last_round: Some(summary.clone()),
            other_meters,
        });
        self.recent.push_front(summary);
        self.recent.truncate(RECENT_ROUNDS);
        self.status = status.clone();
        self.subscribers
            .retain(|s| s.try_send(SiteUpdate(status.clone())).is_ok() || s.connected());
    }

    /// Sends the plan: all decreases, then — only if every decrease was acknowledged —
    /// the increases. Events meanwhile are folded into one more round afterwards.
    fn dispatch(
        &mut self,
        a: &Allocation,
        sessions: &[(Session, i32)],
        now: DateTime<Utc>,
        ctx: &mut Context<Self>,
    ) {
        let to_send = |changes: &[allocation::SetpointChange]| -> Vec<Setpoint> {
            changes
                .iter()
                .filter_map(|c| {
                    let (session, tx) = sessions.get(c.session)?;
                    let entry = self.stations.get(&session.key.charge_point)?;
                    Some(Setpoint {
                        addr: entry.addr.clone(),
                        key: session.key.clone(),
                        from: c.from,
                        msg: ApplyLimit {
                            connector: session.key.connector,
                            limit: c.to,
                            purpose: LimitPurpose::Transaction(*tx),
                        },
                    })
                })
                .collect()
        };
        let decreases = to_send(&a.plan.decreases);
        let increases = to_send(&a.plan.increases);
        let recoveries = self.due_recoveries(a, sessions, now);
        if decreases.is_empty() && increases.is_empty() && recoveries.is_empty() {
            return;
        }
        for inc in &increases {
            if inc.from.is_none_or(|f| f.0 == 0.0) {
                self.resumed.insert(inc.key.clone(), now);
            }
        }
        self.dispatching = true;
        let fut = async move {
            let down = send_all(decreases).await;
            let all_down = down
                .iter()
                .all(|(_, _, r)| matches!(r, Ok(LimitOutcome::Accepted)));
            // A recovery re-sends this round's limit, so it is an increase like the
            // others: only once every decrease is in force, never beside a later round.
            let up = if all_down {
                let (up, ()) =
                    futures_util::future::join(send_all(increases), recover_all(recoveries)).await;
                up
            } else {
                Vec::new()
            };
            (down, up, all_down)
        };
        ctx.spawn(
            fut.into_actor(self)
                .map(move |(down, up, all_down), act, ctx| {
                    act.dispatching = false;
                    let now = Utc::now();
                    for (key, sp, result) in down.into_iter().chain(up) {
                        act.settle(key, sp, result, now);
                    }
                    if !all_down {
                        tracing::warn!(
                            "a decrease was not acknowledged: increases wait for the next round"
                        );
                        act.rerun = true;
                    }
                    if std::mem::take(&mut act.rerun) {
                        act.schedule_round(ctx);
                    }
                }),
        );
    }

    fn settle(
        &mut self,
        key: SessionKey,
        sp: ApplyLimit,
        result: Result<LimitOutcome, CallFailure>,
        now: DateTime<Utc>,
    ) {
        match result {
            Ok(LimitOutcome::Accepted) => {
                self.unconfirmed.remove(&key);
                self.rejections.remove(&key);
            }
            Ok(LimitOutcome::Rejected) => {
                let n = self.rejections.entry(key.clone()).or_insert(0);
                *n += 1;
                let message = if *n >= REJECTIONS_BEFORE_MAX {
                    format!(
                        "connector {} keeps rejecting its limit: assumed to draw its maximum",
                        key.connector
                    )
                } else {
                    format!(
                        "connector {} rejected a limit of {}: retrying",
                        key.connector, sp.limit
                    )
                };
                tracing::warn!(station = %key.charge_point, connector = key.connector, "{message}");
                self.log(&key.charge_point, LogLevel::Warn, message);
            }
            Err(CallFailure::NotConnected | CallFailure::Stopped) => {}
            Err(e) => {
                tracing::warn!(station = %key.charge_point, connector = key.connector, error = %e, "setpoint not confirmed: the higher limit is reserved");
                self.unconfirmed.insert(
                    key,
                    Unconfirmed {
                        reserved: sp.limit,
                        since: now,
                    },
                );
            }
        }
    }

    /// The vehicles raised from 0 that are still not charging after `resume_check_s`:
    /// each gets a recovery (its profile cleared and this round's limit sent again, and a
    /// StatusNotification asked for) as a step of this round's dispatch. One whose limit
    /// changes this round, or is 0 now, needs none.
    fn due_recoveries(
        &mut self,
        a: &Allocation,
        sessions: &[(Session, i32)],
        now: DateTime<Utc>,
    ) -> Vec<Recovery> {
        let wait = TimeDelta::seconds(i64::from(self.current.control.resume_check_s));
        let due: Vec<SessionKey> = self
            .resumed
            .iter()
            .filter(|(_, at)| now - **at >= wait)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in due {
            self.resumed.remove(&key);
            let Some(i) = sessions.iter().position(|(s, _)| s.key == key) else {
                continue;
            };
            let (session, tx) = &sessions[i];
            let (Some(sa), Some(entry)) = (a.sessions.get(i), self.stations.get(&key.charge_point))
            else {
                continue;
            };
            let Some(c) = entry
                .snapshot
                .connectors
                .iter()
                .find(|c| c.connector == key.connector)
            else {
                continue;
            };
            let limit = sa.limit_after;
            let unchanged = session.limit_in_force == Some(limit);
            if c.status != "SuspendedEVSE"
                || limit.0 <= 0.0
                || !unchanged
                || session.fixed.is_some()
            {
                continue;
            }
            let message = format!(
                "connector {} stays SuspendedEVSE after a raise to {limit}: clearing and re-sending its profile",
                key.connector
            );
            tracing::warn!(station = %key.charge_point, "{message}");
            self.log(&key.charge_point, LogLevel::Warn, message);
            out.push(Recovery {
                addr: entry.addr.clone(),
                apply: ApplyLimit {
                    connector: key.connector,
                    limit,
                    purpose: LimitPurpose::Transaction(*tx),
                },
            });
        }
        out
    }

    fn log(&self, station: &ChargePointId, level: LogLevel, message: String) {
        if let Err(e) = self.store.log(level, Some(station), message) {
            tracing::error!(error = %e, "cannot write the operator log");
        }
    }

    fn sample_history(&mut self) {
        let s = &self.status;
        let Some(at) = s.at else { return };
        let zones = s
            .zones
            .iter()
            .filter(|z| z.parent.is_none())
            .map(|z| {
                let worst = |p: &PerPhase<Amps>| p.0.iter().copied().fold(Amps::ZERO, Amps::max);
                let load = z.other_loads.map(|o| worst(&o) + worst(&z.ev_draw));
                (z.id.clone(), load, worst(&z.ev_draw), worst(&z.budget))
            })
            .collect();
        self.history.push_back(SiteSample { at, zones });
        while self.history.len() > HISTORY_SAMPLES {
            self.history.pop_front();
        }
    }
}

/// One SetChargingProfile to send.
struct Setpoint {
    addr: Addr<StationActor>,
    key: SessionKey,
    from: Option<Amps>,
    msg: ApplyLimit,
}

type Sent = (SessionKey, ApplyLimit, Result<LimitOutcome, CallFailure>);

/// Clear, re-send and ask for the status of a vehicle that did not resume.
struct Recovery {
    addr: Addr<StationActor>,
    apply: ApplyLimit,
}

async fn recover_all(recoveries: Vec<Recovery>) {
    let each = recoveries.into_iter().map(|r| async move {
        let connector = r.apply.connector;
        let clear = ClearChargingProfileRequest {
            id: None,
            connector_id: Some(connector),
            charging_profile_purpose: Some(ChargingProfilePurpose::TxProfile),
            stack_level: None,
        };
        let _ = r.addr.send(Call(clear)).await;
        let _ = r.addr.send(r.apply).await;
        let trigger = TriggerMessageRequest {
            requested_message: MessageTrigger::StatusNotification,
            connector_id: std::num::NonZeroU32::new(connector),
        };
        let _ = r.addr.send(Call(trigger)).await;
    });
    futures_util::future::join_all(each).await;
}

/// Sends every setpoint at once and waits for every answer (each bounded by the
/// station's call timeout).
async fn send_all(setpoints: Vec<Setpoint>) -> Vec<Sent> {
    let futures = setpoints.into_iter().map(|sp| async move {
        let result = sp
            .addr
            .send(sp.msg)
            .await
            .unwrap_or(Err(CallFailure::Stopped));
        (sp.key, sp.msg, result)
    });
    futures_util::future::join_all(futures).await
}

impl Actor for ZoneSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64 * 1024);
        self.start_inputs(ctx);
        // A first round at once, so that the site status is whole from the start.
        self.schedule_round(ctx);
        let every = Duration::from_secs(u64::from(self.current.control.interval_s));
        ctx.run_interval(every, |act, ctx| {
            act.run_round(ctx);
        });
        ctx.run_interval(HISTORY_EVERY, |act, _| act.sample_history());
    }
}

impl Handler<StationReport> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, report: StationReport, ctx: &mut Self::Context) {
        let id = report.snapshot.id.clone();
        let config = match (self.current.station(&id), self.stations.get(&id)) {
            (Some(now), _) => now.clone(),
            (None, Some(earlier)) => earlier.config.clone(),
            (None, None) => return, // never configured: nothing of it is allocated
        };
        let entry = StationEntry {
            addr: report.addr,
            snapshot: report.snapshot,
            config,
        };
        self.stations.insert(id.clone(), entry);
        if report.why == ReportReason::LimitChanged {
            return; // our own dispatch: no new round
        }
        self.schedule_round(ctx);
    }
}

impl Handler<ZoneUpdate> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, update: ZoneUpdate, ctx: &mut Self::Context) {
        if update.generation != self.zone_generation {
            tracing::debug!(zone = %update.zone, "update of a zone tree replaced since: dropped");
            return;
        }
        if let Some(slot) = self.readings.get_mut(update.zone.get()) {
            *slot = update.reading;
            self.schedule_round(ctx);
        }
    }
}

impl Handler<MeterReading> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, reading: MeterReading, _: &mut Self::Context) {
        self.other_meters.insert(reading.meter.clone(), reading);
    }
}

impl Handler<MeterStale> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, stale: MeterStale, _: &mut Self::Context) {
        tracing::warn!(meter = %stale.meter, since = %stale.since, "meter of another feeder is stale");
    }
}

impl Handler<TariffPeriodChanged> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, t: TariffPeriodChanged, ctx: &mut Self::Context) {
        tracing::info!(period = ?t.period.as_ref().map(|p| &p.name), cap = t.cap_fraction, "tariff period");
        self.price.set(t.price_per_kwh);
        self.tariff = t;
        self.schedule_round(ctx);
    }
}

impl Handler<ConfigChanged> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, _: ConfigChanged, ctx: &mut Self::Context) {
        let config = self.config.get();
        match ZoneTree::from_config(&config) {
            Ok(tree) => {
                self.readings = vec![ZoneReading::default(); tree.len()];
                self.tree = tree;
            }
            Err(e) => {
                tracing::error!(error = %e, "configuration refused by the allocation: keeping the previous one");
                return;
            }
        }
        self.params = Params::from_config(&config);
        // A removed station is kept only while a transaction of it may still draw.
        self.stations.retain(|id, e| {
            config.station(id).is_some()
                || e.snapshot
                    .connectors
                    .iter()
                    .any(|c| c.transaction.is_some())
        });
        self.current = config;
        self.start_inputs(ctx);
        self.schedule_round(ctx);
    }
}

impl Handler<GetSiteStatus> for ZoneSupervisor {
    type Result = MessageResult<GetSiteStatus>;

    fn handle(&mut self, _: GetSiteStatus, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.status.clone())
    }
}

impl Handler<GetRecentRounds> for ZoneSupervisor {
    type Result = MessageResult<GetRecentRounds>;

    fn handle(&mut self, _: GetRecentRounds, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.recent.iter().cloned().collect())
    }
}

impl Handler<GetHistory> for ZoneSupervisor {
    type Result = MessageResult<GetHistory>;

    fn handle(&mut self, _: GetHistory, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.history.iter().cloned().collect())
    }
}

impl Handler<Subscribe> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, Subscribe(r): Subscribe, _: &mut Self::Context) {
        let _ = r.try_send(SiteUpdate(self.status.clone()));
        self.subscribers.push(r);
    }
}

impl Handler<ImposeBudget> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, ImposeBudget(b): ImposeBudget, ctx: &mut Self::Context) {
        self.imposed = b;
        self.schedule_round(ctx);
    }
}

impl Handler<GetMeter> for ZoneSupervisor {
    type Result = Option<Addr<MeterActor>>;

    fn handle(&mut self, GetMeter(id): GetMeter, _: &mut Self::Context) -> Self::Result {
        self.meters
            .iter()
            .find(|(m, _)| *m == id)
            .map(|(_, a)| a.clone())
    }
}

impl Handler<StopSupervisor> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, _: StopSupervisor, ctx: &mut Self::Context) {
        for (_, m) in self.meters.drain(..) {
            m.do_send(StopMeter);
        }
        ctx.stop();
    }
}

#[cfg(test)]
mod tests;
