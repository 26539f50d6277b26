//! ZoneSupervisor: keeps the zone tree and the latest state of every station, meter and
//! tariff period, runs `allocation::allocate` on every relevant event (debounced) and
//! every `control.interval_s`, and dispatches the plan: every decrease first, and the
//! increases only once all decreases were acknowledged.
//!
//! What cannot be confirmed is assumed at its worst: a station that does not answer a
//! setpoint is held at the higher of its old and new limits (a fixed reservation) until
//! it answers again; a disconnected station keeps its last limit reserved.
//!
//! One job per file: `messages` (what it takes and publishes), `inputs` (the handlers
//! that feed it), `status` (what a round publishes), `dispatch` (sending a plan); this
//! file holds the state and the round. They share this file's imports (`use super::*`).

mod dispatch;
mod federation;
mod inputs;
mod messages;
mod status;

pub use federation::{
    report_of, CloseLink, DropSecondaryLink, GetSecondaries, InForce, RelayCommand,
    RelayToSecondary, SecondaryConfirmed, SecondaryLinked, SecondaryReported, SecondaryStatus,
    SecondaryUnlinked, SendGrant, WatchInForce,
};
pub use messages::*;

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;

use crate::allocation::{
    self, Allocation, AllocatorState, BudgetSource, ConnectorControl, Decision, Estimate, Params,
    Round, Session, SessionKey, SessionPhases, ZoneIdx, ZoneReading, ZoneTree,
    REJECTIONS_BEFORE_MAX,
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
    /// The BMS caps in force (fail-safe ones from the start, before the BMS actor speaks).
    bms: crate::bms::CapsInForce,
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
    /// Per zone: whether its last round was a safety cut, and how many cuts began.
    safety_cuts: HashMap<ZoneId, (bool, u64)>,
    /// Sessions raised from 0, and when: checked for a vehicle that does not resume.
    resumed: HashMap<SessionKey, DateTime<Utc>>,
    status: Arc<SiteStatus>,
    recent: VecDeque<RoundSummary>,
    history: VecDeque<SiteSample>,
    subscribers: Vec<Recipient<SiteUpdate>>,
    /// Primary: its secondaries, by name.
    secondaries: BTreeMap<String, federation::SecondaryEntry>,
    /// Secondary: the link to tell what is in force after each round.
    in_force_watcher: Option<Recipient<InForce>>,
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
        let bms = crate::bms::Caps::default().in_force(&current);
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
            bms,
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
            safety_cuts: HashMap::new(),
            resumed: HashMap::new(),
            status: Arc::new(SiteStatus {
                ev_cap_fraction: 1.0,
                ..SiteStatus::default()
            }),
            recent: VecDeque::new(),
            history: VecDeque::new(),
            subscribers: Vec::new(),
            secondaries: BTreeMap::new(),
            in_force_watcher: None,
        })
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
    /// (With a transaction id; `None` for an idle connector's reservation.)
    fn sessions(&self, now: DateTime<Utc>) -> Vec<(Session, Option<i32>)> {
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
                        phases: SessionPhases::of_vehicle(
                            sc.phases,
                            sc.phase,
                            c.phases_in_use.as_deref(),
                        ),
                        // The CPO's charging profiles cap what the site gives.
                        max_current: c.cpo_limit.map_or(sc.max_current_a, |cpo| {
                            sc.max_current_a.min(cpo.max(Amps::ZERO))
                        }),
                        vip: t.vip || sc.vip,
                        energy_wh: t.energy_wh,
                        connected_since: t.started_at,
                        draw,
                        limit_in_force: limits.limit_in_force,
                        fixed: limits.fixed,
                        changed_at: c.changed_at,
                        draw_at: c.draw_at,
                        lowest_limit_since_draw: c.lowest_limit_since_draw,
                    },
                    Some(t.id),
                ));
            }
            // Fail closed: a vehicle plugged in where the safe default is not known to
            // be in force draws at once; its share is kept free until we know. (A
            // station removed from the configuration keeps only its transactions'.)
            let idle = configured.map_or(&[][..], |_| &entry.snapshot.idle_reserved[..]);
            for &(connector, reserved) in idle {
                out.push((
                    Session {
                        key: SessionKey::new(id.clone(), connector),
                        zone,
                        phases: SessionPhases::of_station(sc.phases, sc.phase),
                        max_current: sc.max_current_a,
                        vip: sc.vip,
                        energy_wh: 0.0,
                        connected_since: now,
                        draw: None,
                        limit_in_force: Some(reserved),
                        fixed: Some(reserved),
                        changed_at: None,
                        draw_at: None,
                        lowest_limit_since_draw: None,
                    },
                    None,
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
        let mut sessions = self.sessions(now);
        self.secondary_sessions(now, &mut sessions);
        let plain: Vec<Session> = sessions.iter().map(|(s, _)| s.clone()).collect();
        let mut readings = self.readings.clone();
        let site_cap = self.bms.site.at(now);
        for (i, z) in self.tree.zones().iter().enumerate() {
            let root = z.parent.is_none();
            if root {
                readings[i].imposed = self.imposed;
            }
            let zone_cap = self.bms.zones.get(&z.id).and_then(|c| c.at(now));
            readings[i].bms_cap = match (root.then_some(site_cap).flatten(), zone_cap) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
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

    fn log(&self, station: &ChargePointId, level: LogLevel, message: String) {
        if let Err(e) = self.store.log(level, Some(station), message) {
            tracing::error!(error = %e, "cannot write the operator log");
        }
    }

    fn log_site(&self, level: LogLevel, message: String) {
        if let Err(e) = self.store.log(level, None, message) {
            tracing::error!(error = %e, "cannot write the operator log");
        }
    }
}

impl Actor for ZoneSupervisor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(64 * 1024);
        self.configure_secondaries();
        self.start_inputs(ctx);
        // A first round at once, so that the site status is whole from the start.
        self.schedule_round(ctx);
        let every = Duration::from_secs(u64::from(self.current.control.interval_s));
        ctx.run_interval(every, |act, ctx| {
            act.run_round(ctx);
        });
        ctx.run_interval(HISTORY_EVERY, |act, _| act.sample_history());
        ctx.run_interval(Duration::from_secs(1), |act, ctx| {
            if act.fallback_due() {
                act.schedule_round(ctx);
            }
        });
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

impl Handler<ImposeBmsCaps> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, ImposeBmsCaps(caps): ImposeBmsCaps, ctx: &mut Self::Context) {
        if caps != self.bms {
            self.bms = caps;
            self.schedule_round(ctx);
        }
    }
}

impl Handler<GetStationSnapshots> for ZoneSupervisor {
    type Result = MessageResult<GetStationSnapshots>;

    fn handle(&mut self, _: GetStationSnapshots, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.stations.values().map(|e| e.snapshot.clone()).collect())
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
