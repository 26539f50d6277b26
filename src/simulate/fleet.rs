//! A fleet of simulated stations against one central system, the site around them (and
//! optionally its Modbus meter), the live figures and the final report.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use ampwarden_actors::config::MeterProfile;
use ampwarden_actors::meter::profiles::RegisterMap;
use ampwarden_actors::meter::simulated::{Mode, SimulatedMeter, SimulatedMeterHandle};
use ampwarden_actors::ocpp::core::ChargePointStatus;
use ampwarden_actors::store::{Store, TransactionFilter};
use ampwarden_actors::units::{Amps, PerPhase};
use chrono::Timelike;
use tokio::sync::{watch, Semaphore};
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::scenario::{Scenario, ScenarioError};
use super::station::Station;

/// How often the site (and its meter) is brought up to date.
const SITE_EVERY: Duration = Duration::from_secs(1);
/// CALLERROR descriptions kept for the report.
const ERRORS_KEPT: usize = 20;

#[derive(Debug, thiserror::Error)]
pub enum FleetError {
    #[error(transparent)]
    Scenario(#[from] ScenarioError),
    #[error("the URL must be ws://HOST:PORT/PATH, not {0:?}")]
    Url(String),
    #[error("cannot start the simulated meter on {addr}: {source}")]
    Meter {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
}

/// A monotonic event counter shared by the stations.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Counters {
    /// CALLs the stations sent.
    pub(crate) messages: Counter,
    pub(crate) call_errors: Counter,
    pub(crate) timeouts: Counter,
    pub(crate) connect_failures: Counter,
    pub(crate) reconnects: Counter,
    pub(crate) boots: Counter,
    /// Badges refused (Authorize or StartTransaction).
    pub(crate) refused: Counter,
    /// Moments a vehicle drew above its limit in force.
    pub(crate) over_limit: Counter,
}

/// What one station shows the fleet.
#[derive(Clone, Copy, Debug)]
struct Slot {
    connected: bool,
    booted: bool,
    ever_booted: bool,
    status: ChargePointStatus,
    draw: PerPhase<Amps>,
    delivered_wh: i64,
}

/// A transaction as the fleet saw it.
#[derive(Clone, Debug, PartialEq)]
pub struct SeenTransaction {
    pub station: String,
    pub meter_start_wh: i64,
    /// Set once the StopTransaction was answered.
    pub meter_stop_wh: Option<i64>,
    /// The station never sent its StopTransaction (`Churn::forget_stop_share`): the
    /// controller must close it on its own.
    pub forgotten: bool,
    /// Its StartTransaction was sent twice (`Churn::retry_start_share`).
    pub retried: bool,
}

/// The site's figures, from the meter's point of view.
#[derive(Clone, Debug, Default)]
struct SiteFigures {
    ev: PerPhase<Amps>,
    meter: PerPhase<Amps>,
    peak_ev: PerPhase<Amps>,
    peak_meter: PerPhase<Amps>,
    samples: u64,
    violations: u64,
    worst_excess: Amps,
    /// When the worst excess was seen, since the start.
    worst_at: Duration,
    /// Each phase's wander of the building load, A.
    wander: [f64; 3],
    /// The last [`TRACE_KEPT`] site samples: what the meter read and the vehicles drew.
    trace: std::collections::VecDeque<SiteSample>,
    /// The last [`TRACE_KEPT`] TxProfile limits the stations took.
    limits: std::collections::VecDeque<LimitTaken>,
}

/// Site samples and limits kept for [`Fleet::trace`] (an hour at one a second).
const TRACE_KEPT: usize = 3600;

/// One second of the site, as its meter and the vehicles saw it.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SiteSample {
    /// Real time since the fleet started.
    pub at: Duration,
    /// What the building meter read, per phase (building, steps, wander, vehicles, sun).
    pub meter: PerPhase<Amps>,
    /// What the vehicles really drew, per phase.
    pub ev: PerPhase<Amps>,
}

/// A charging profile limit a station accepted for its transaction.
#[derive(Clone, Debug, PartialEq)]
pub struct LimitTaken {
    pub at: Duration,
    pub station: String,
    pub limit: Amps,
}

/// State shared by the stations and the fleet.
pub(crate) struct FleetShared {
    pub(crate) scenario: Scenario,
    /// `ws://HOST:PORT/ocpp`, without the station id.
    pub(crate) base_url: String,
    pub(crate) connect_permits: Semaphore,
    pub(crate) counters: Counters,
    started: Instant,
    start_hour: f64,
    slots: Mutex<Vec<Slot>>,
    transactions: Mutex<BTreeMap<i32, SeenTransaction>>,
    errors: Mutex<Vec<String>>,
    site: Mutex<SiteFigures>,
    wander_rng: Mutex<super::random::SimRng>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Every update under these locks is a plain assignment or push: a panic elsewhere
    // cannot leave them half-written.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl FleetShared {
    pub(crate) fn publish(
        &self,
        index: usize,
        connected: bool,
        booted: bool,
        status: ChargePointStatus,
        draw: PerPhase<Amps>,
    ) {
        if let Some(slot) = lock(&self.slots).get_mut(index) {
            slot.connected = connected;
            slot.booted = booted;
            slot.ever_booted |= booted;
            slot.status = status;
            slot.draw = draw;
        }
    }

    pub(crate) fn add_energy(&self, index: usize, wh: i64) {
        if let Some(slot) = lock(&self.slots).get_mut(index) {
            slot.delivered_wh += wh;
        }
    }

    pub(crate) fn ledger_started(&self, id: i32, station: &str, meter_start_wh: i64) {
        lock(&self.transactions).insert(
            id,
            SeenTransaction {
                station: station.to_owned(),
                meter_start_wh,
                meter_stop_wh: None,
                forgotten: false,
                retried: false,
            },
        );
    }

    pub(crate) fn ledger_retried(&self, id: i32) {
        if let Some(t) = lock(&self.transactions).get_mut(&id) {
            t.retried = true;
        }
    }

    pub(crate) fn ledger_forgotten(&self, id: i32) {
        if let Some(t) = lock(&self.transactions).get_mut(&id) {
            t.forgotten = true;
        }
    }

    pub(crate) fn ledger_completed(&self, id: i32, meter_stop_wh: i64) {
        if let Some(t) = lock(&self.transactions).get_mut(&id) {
            t.meter_stop_wh = Some(meter_stop_wh);
        }
    }

    pub(crate) fn note_limit(&self, station: &str, limit: Amps) {
        let mut f = lock(&self.site);
        if f.limits.len() >= TRACE_KEPT {
            f.limits.pop_front();
        }
        f.limits.push_back(LimitTaken {
            at: self.started.elapsed(),
            station: station.to_owned(),
            limit,
        });
    }

    pub(crate) fn note_error(&self, error: String) {
        tracing::warn!("{error}");
        let mut errors = lock(&self.errors);
        if errors.len() < ERRORS_KEPT {
            errors.push(error);
        }
    }

    /// The simulated local hour of the day (the site's clock runs at the speed-up).
    fn hour(&self) -> f64 {
        let elapsed_h = self.started.elapsed().as_secs_f64() * self.scenario.speedup / 3600.0;
        (self.start_hour + elapsed_h).rem_euclid(24.0)
    }

    /// Brings the site up to date: the vehicles' total, the meter's view, violations.
    fn update_site(&self, meter: Option<&SimulatedMeterHandle>) {
        let ev = lock(&self.slots)
            .iter()
            .fold(PerPhase::splat(Amps::ZERO), |mut sum, slot| {
                for i in 0..3 {
                    sum.0[i] += slot.draw.0[i];
                }
                sum
            });
        let hour = self.hour();
        let site = &self.scenario.site;
        let elapsed = self.started.elapsed();
        let mut f = lock(&self.site);
        let steps = site.steps_at(elapsed.as_secs_f64());
        let bound = site.wander_a.max(0.0);
        if bound > 0.0 {
            let mut rng = lock(&self.wander_rng);
            for w in &mut f.wander {
                *w = (*w + rng.uniform(-0.3, 0.3) * bound).clamp(-bound, bound);
            }
        }
        let extra = PerPhase(std::array::from_fn(|i| steps.0[i] + Amps(f.wander[i])));
        let reading = site.meter_currents(hour, ev, extra);
        if let Some(meter) = meter {
            meter.set_currents(reading);
            meter.set_power_kw(site.meter_power_kw(hour, ev, extra, self.scenario.voltage_v));
        }
        let limit = self.scenario.site_limit_a;
        if f.trace.len() >= TRACE_KEPT {
            f.trace.pop_front();
        }
        f.trace.push_back(SiteSample {
            at: elapsed,
            meter: reading,
            ev,
        });
        f.ev = ev;
        f.meter = reading;
        f.samples += 1;
        for i in 0..3 {
            f.peak_ev.0[i] = f.peak_ev.0[i].max(ev.0[i]);
            f.peak_meter.0[i] = f.peak_meter.0[i].max(reading.0[i]);
        }
        let excess = reading
            .0
            .iter()
            .map(|a| a.0 - limit)
            .fold(f64::MIN, f64::max);
        if excess > 0.0 {
            f.violations += 1;
            if excess > f.worst_excess.0 {
                f.worst_excess = Amps(excess);
                f.worst_at = self.started.elapsed();
            }
        }
    }
}

/// A running fleet.
pub struct Fleet {
    shared: Arc<FleetShared>,
    stop: watch::Sender<bool>,
    stations: JoinSet<()>,
    site: tokio::task::JoinHandle<()>,
    meter: Option<Arc<SimulatedMeterHandle>>,
}

impl Fleet {
    /// Starts the stations of `scenario` against `url` (`ws://HOST:PORT/ocpp`; each station
    /// connects to `{url}/{id}`), and serves its meter: `meter` if given (the demo starts
    /// its own before the controller), else one on `scenario.meter_port` if set.
    pub async fn start(
        url: &str,
        scenario: Scenario,
        meter: Option<SimulatedMeterHandle>,
    ) -> Result<Fleet, FleetError> {
        scenario.validate()?;
        let base_url = url.trim_end_matches('/').to_owned();
        if !(base_url.starts_with("ws://") || base_url.starts_with("wss://")) {
            return Err(FleetError::Url(url.to_owned()));
        }
        let meter = match (meter, scenario.meter_port) {
            (Some(m), _) => Some(m),
            (None, Some(port)) => {
                let addr = SocketAddr::from(([127, 0, 0, 1], port));
                let map = RegisterMap::builtin(MeterProfile::Iem3155)
                    .expect("iem3155 is a built-in profile");
                Some(
                    SimulatedMeter::start(addr, map)
                        .await
                        .map_err(|source| FleetError::Meter { addr, source })?,
                )
            }
            (None, None) => None,
        };
        let meter = meter.map(Arc::new);
        let plan = scenario.plan();
        let now = chrono::Utc::now();
        let start_hour = scenario
            .start_hour
            .unwrap_or_else(|| f64::from(now.hour()) + f64::from(now.minute()) / 60.0);
        let slot = Slot {
            connected: false,
            booted: false,
            ever_booted: false,
            status: ChargePointStatus::Available,
            draw: PerPhase::splat(Amps::ZERO),
            delivered_wh: 0,
        };
        let shared = Arc::new(FleetShared {
            connect_permits: Semaphore::new(scenario.connect_concurrency),
            base_url,
            counters: Counters::default(),
            started: Instant::now(),
            start_hour,
            slots: Mutex::new(vec![slot; plan.len()]),
            transactions: Mutex::new(BTreeMap::new()),
            errors: Mutex::new(Vec::new()),
            site: Mutex::new(SiteFigures::default()),
            wander_rng: Mutex::new(super::random::SimRng::new(scenario.seed ^ 0x5eed_5173)),
            scenario,
        });
        // The meter reads the site from its first poll, before any station is up.
        shared.update_site(meter.as_deref());
        let (stop, stop_rx) = watch::channel(false);
        let mut stations = JoinSet::new();
        for p in plan {
            let station = Station::new(p, Arc::clone(&shared));
            stations.spawn(station.run(stop_rx.clone()));
        }
        let site = tokio::spawn(run_site(Arc::clone(&shared), meter.clone(), stop_rx));
        Ok(Fleet {
            shared,
            stop,
            stations,
            site,
            meter,
        })
    }

    /// The last hour of site samples (one a second) and of the TxProfile limits the
    /// stations took, oldest first: what a test judges the control loop by.
    pub fn trace(&self) -> (Vec<SiteSample>, Vec<LimitTaken>) {
        let f = lock(&self.shared.site);
        (
            f.trace.iter().copied().collect(),
            f.limits.iter().cloned().collect(),
        )
    }

    /// The simulated meter's address, if the fleet serves one.
    pub fn meter_addr(&self) -> Option<SocketAddr> {
        self.meter.as_ref().map(|m| m.local_addr())
    }

    /// The live figures.
    pub fn summary(&self) -> Summary {
        let shared = &self.shared;
        let slots = lock(&shared.slots);
        let count = |f: &dyn Fn(&Slot) -> bool| slots.iter().filter(|s| f(s)).count();
        let site = lock(&shared.site).clone();
        Summary {
            elapsed: shared.started.elapsed(),
            hour: shared.hour(),
            stations: slots.len(),
            connected: count(&|s| s.connected),
            booted: count(&|s| s.booted),
            charging: count(&|s| s.status == ChargePointStatus::Charging),
            suspended: count(&|s| {
                matches!(
                    s.status,
                    ChargePointStatus::SuspendedEvse | ChargePointStatus::SuspendedEv
                )
            }),
            ev: site.ev,
            ev_kw: site.ev.0.iter().map(|a| a.0).sum::<f64>() * shared.scenario.voltage_v / 1000.0,
            meter: site.meter,
            energy_kwh: slots.iter().map(|s| s.delivered_wh).sum::<i64>() as f64 / 1000.0,
            messages: shared.counters.messages.get(),
        }
    }

    /// Whether every station has booted at least once.
    pub fn all_booted_once(&self) -> bool {
        lock(&self.shared.slots).iter().all(|s| s.ever_booted)
    }

    /// Transactions completed so far (StopTransaction answered).
    pub fn completed_transactions(&self) -> usize {
        lock(&self.shared.transactions)
            .values()
            .filter(|t| t.meter_stop_wh.is_some())
            .count()
    }

    /// Stops every station (ending running sessions first if the scenario says so) and
    /// the meter; the final figures.
    pub async fn stop(mut self) -> FleetReport {
        let _ = self.stop.send(true);
        while self.stations.join_next().await.is_some() {}
        let _ = (&mut self.site).await;
        let summary = self.summary();
        let shared = &self.shared;
        let site = lock(&shared.site).clone();
        let c = &shared.counters;
        FleetReport {
            stations: summary.stations,
            ever_booted: lock(&shared.slots).iter().filter(|s| s.ever_booted).count(),
            elapsed: summary.elapsed,
            messages: c.messages.get(),
            call_errors: c.call_errors.get(),
            timeouts: c.timeouts.get(),
            connect_failures: c.connect_failures.get(),
            reconnects: c.reconnects.get(),
            refused: c.refused.get(),
            over_limit: c.over_limit.get(),
            transactions: lock(&shared.transactions).clone(),
            energy_kwh: summary.energy_kwh,
            peak_ev: site.peak_ev,
            peak_meter: site.peak_meter,
            site_limit: Amps(shared.scenario.site_limit_a),
            meter_samples: site.samples,
            meter_violations: site.violations,
            worst_excess: site.worst_excess,
            worst_at: site.worst_at,
            errors: lock(&shared.errors).clone(),
        }
    }
}

/// Keeps the site and its meter up to date; makes the meter drop out if the churn says so.
async fn run_site(
    shared: Arc<FleetShared>,
    meter: Option<Arc<SimulatedMeterHandle>>,
    mut stop: watch::Receiver<bool>,
) {
    let mut every = tokio::time::interval(SITE_EVERY);
    let churn = shared.scenario.churn.clone();
    let mut next_dropout = churn
        .meter_dropout_every_s
        .map(|s| Instant::now() + Duration::from_secs_f64(s));
    let mut dropout_ends: Option<Instant> = None;
    loop {
        tokio::select! {
            _ = every.tick() => {}
            _ = stop.changed() => return,
        }
        shared.update_site(meter.as_deref());
        let (Some(m), Some(at)) = (meter.as_deref(), next_dropout) else {
            continue;
        };
        let now = Instant::now();
        if dropout_ends.is_some_and(|end| now >= end) {
            m.set_mode(Mode::Normal);
            dropout_ends = None;
            tracing::info!("simulated meter answers again");
        }
        if now >= at {
            m.set_mode(Mode::Silent);
            dropout_ends = Some(now + Duration::from_secs_f64(churn.meter_dropout_s));
            next_dropout = churn
                .meter_dropout_every_s
                .map(|s| now + Duration::from_secs_f64(s));
            tracing::info!("simulated meter drops out");
        }
    }
}

/// The live figures of a fleet.
#[derive(Clone, Debug)]
pub struct Summary {
    pub elapsed: Duration,
    /// Simulated local hour.
    pub hour: f64,
    pub stations: usize,
    pub connected: usize,
    pub booted: usize,
    pub charging: usize,
    pub suspended: usize,
    /// The vehicles' total draw per phase.
    pub ev: PerPhase<Amps>,
    pub ev_kw: f64,
    /// What the site meter reads.
    pub meter: PerPhase<Amps>,
    pub energy_kwh: f64,
    pub messages: u64,
}

fn clock(hour: f64) -> String {
    let minutes = (hour * 60.0).round() as u32 % (24 * 60);
    format!("{:02}:{:02}", minutes / 60, minutes % 60)
}

fn phases(p: &PerPhase<Amps>) -> String {
    format!("{:.1}/{:.1}/{:.1}", p.0[0].0, p.0[1].0, p.0[2].0)
}

impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:>5}s  site {}  {}/{} connected  {} booted  {} charging  {} suspended  \
             EV {} A ({:.1} kW)  meter {} A  {:.1} kWh delivered",
            self.elapsed.as_secs(),
            clock(self.hour),
            self.connected,
            self.stations,
            self.booted,
            self.charging,
            self.suspended,
            phases(&self.ev),
            self.ev_kw,
            phases(&self.meter),
            self.energy_kwh,
        )
    }
}

/// The final figures of a fleet run.
#[derive(Clone, Debug)]
pub struct FleetReport {
    pub stations: usize,
    pub ever_booted: usize,
    pub elapsed: Duration,
    pub messages: u64,
    pub call_errors: u64,
    pub timeouts: u64,
    pub connect_failures: u64,
    pub reconnects: u64,
    pub refused: u64,
    /// Moments a vehicle drew above its limit in force: must be 0.
    pub over_limit: u64,
    /// Every transaction the central system started, by id.
    pub transactions: BTreeMap<i32, SeenTransaction>,
    pub energy_kwh: f64,
    pub peak_ev: PerPhase<Amps>,
    pub peak_meter: PerPhase<Amps>,
    pub site_limit: Amps,
    pub meter_samples: u64,
    /// Meter samples with a phase above the site limit.
    pub meter_violations: u64,
    pub worst_excess: Amps,
    pub worst_at: Duration,
    /// The first CALLERRORs received.
    pub errors: Vec<String>,
}

impl FleetReport {
    pub fn completed(&self) -> usize {
        self.transactions
            .values()
            .filter(|t| t.meter_stop_wh.is_some())
            .count()
    }

    /// Compares the transactions the fleet saw with the controller's store (opened after
    /// the controller stopped, or shared in-process).
    pub fn audit(&self, store: &Store) -> TransactionAudit {
        let mut audit = TransactionAudit::default();
        for (id, seen) in &self.transactions {
            match store.transaction(*id) {
                Ok(Some(record)) if seen.forgotten => {
                    if record.meter_start_wh != seen.meter_start_wh
                        || record.station.as_str() != seen.station
                    {
                        audit.mismatched.push(*id);
                    } else if record.stop.is_some() {
                        audit.closed_by_controller += 1;
                    } else {
                        audit.left_open.push(*id);
                    }
                }
                Ok(Some(record)) => {
                    let stop = record.stop.as_ref().map(|s| s.meter_stop_wh);
                    if record.meter_start_wh != seen.meter_start_wh
                        || record.station.as_str() != seen.station
                        || (seen.meter_stop_wh.is_some() && stop != seen.meter_stop_wh)
                    {
                        audit.mismatched.push(*id);
                    } else if seen.meter_stop_wh.is_some() {
                        audit.closed += 1;
                    } else {
                        audit.open += 1;
                    }
                }
                Ok(None) | Err(_) => audit.lost.push(*id),
            }
        }
        match store.transactions(&TransactionFilter::default()) {
            Ok(all) => {
                audit.unknown = all
                    .iter()
                    .map(|t| t.id)
                    .filter(|id| !self.transactions.contains_key(id))
                    .collect();
            }
            Err(e) => tracing::error!(error = %e, "cannot list the stored transactions"),
        }
        audit
    }
}

/// The fleet's transactions against the store.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TransactionAudit {
    /// Completed by the fleet and closed in the store with the same meter stop.
    pub closed: usize,
    /// Whose stop the station never sent, closed by the controller on its own.
    pub closed_by_controller: usize,
    /// Whose stop the station never sent, still open in the store.
    pub left_open: Vec<i32>,
    /// Still running at the fleet's end and known to the store.
    pub open: usize,
    /// Started by the fleet (with an id from the controller) and absent from the store.
    pub lost: Vec<i32>,
    /// Present, but with another station, meter start or meter stop.
    pub mismatched: Vec<i32>,
    /// In the store but never confirmed to the fleet (e.g. a StartTransaction whose
    /// answer was lost with its connection, then sent again): left open for ever.
    pub unknown: Vec<i32>,
}

impl fmt::Display for FleetReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let running = self.transactions.len() - self.completed();
        writeln!(f, "simulation: {} s", self.elapsed.as_secs())?;
        writeln!(
            f,
            "  stations              {} ({} booted at least once)",
            self.stations, self.ever_booted
        )?;
        writeln!(
            f,
            "  OCPP calls sent       {} ({} CALLERROR, {} unanswered, {} refused badges)",
            self.messages, self.call_errors, self.timeouts, self.refused
        )?;
        writeln!(
            f,
            "  connections           {} reconnects, {} failed attempts",
            self.reconnects, self.connect_failures
        )?;
        writeln!(
            f,
            "  transactions          {} completed, {} still running",
            self.completed(),
            running
        )?;
        writeln!(f, "  energy delivered      {:.1} kWh", self.energy_kwh)?;
        writeln!(f, "  peak EV draw          {} A", phases(&self.peak_ev))?;
        writeln!(
            f,
            "  peak meter            {} A (site limit {:.1} A)",
            phases(&self.peak_meter),
            self.site_limit.0
        )?;
        write!(
            f,
            "  meter over the limit  {} of {} samples",
            self.meter_violations, self.meter_samples
        )?;
        if self.meter_violations > 0 {
            write!(
                f,
                " (worst +{:.1} A at {} s)",
                self.worst_excess.0,
                self.worst_at.as_secs()
            )?;
        }
        writeln!(f)?;
        write!(
            f,
            "  vehicles above their limit in force: {}",
            self.over_limit
        )?;
        for e in &self.errors {
            write!(f, "\n  error: {e}")?;
        }
        Ok(())
    }
}
