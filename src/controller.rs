//! The running controller's shared handles: storage, the configuration in force, and
//! the directory of station actors. Cheap to clone; every HTTP worker holds one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix::{Actor, Addr, Recipient};
use ampwarden_actors::calendar::LivePrice;
use ampwarden_actors::config::{
    Config, ConfigProblem, ConfigProblems, LiveConfig, Phases, StationConfig,
};
use ampwarden_actors::station::{
    CloseSession, SessionEvent, StationActor, StationDeps, UpdateStationConfig,
};
use ampwarden_actors::store::{LogLevel, StationRecord, Store};
use ampwarden_actors::supervisor::{ConfigChanged, StopSupervisor, ZoneSupervisor};
use ampwarden_actors::units::{Amps, ChargePointId, Phase};
use chrono::Utc;

/// What the OCPP handshake decides about a connecting station.
pub enum Admission {
    Accepted(Recipient<SessionEvent>),
    Unknown,
    BadPassword,
}

/// Threads running station actors (the machine this targets has 2 cores).
const STATION_THREADS: usize = 2;

/// Defaults for a station registered by the commissioning scan; an operator refines them.
const SCANNED_MAX_CURRENT: Amps = Amps(32.0);

#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    price: LivePrice,
    supervisor: Addr<ZoneSupervisor>,
    /// Station actors live on their own threads, not on the HTTP workers', so that a
    /// shutdown can stop and join them (and release the store) deterministically.
    arbiters: Vec<actix::ArbiterHandle>,
    arbiter_threads: std::sync::Mutex<Vec<actix::Arbiter>>,
    next_arbiter: AtomicU64,
    config: LiveConfig,
    stations: RwLock<HashMap<ChargePointId, Addr<StationActor>>>,
    next_connection: AtomicU64,
}

impl Controller {
    /// Builds the controller on a validated configuration. Stations registered earlier by
    /// the commissioning scan are added to the configuration in force.
    pub fn start(mut config: Config, store: Store) -> Controller {
        match store.stations() {
            Ok(records) => {
                for r in records {
                    if let Some(zone) = r.zone.filter(|z| config.zone(z).is_some()) {
                        if config.station(&r.id).is_none() {
                            config.stations.push(scanned_station(r.id, zone));
                        }
                    }
                }
            }
            Err(e) => tracing::error!(error = %e, "cannot read stored stations"),
        }
        if let Err(e) = store.log(LogLevel::Info, None, "controller started") {
            tracing::error!(error = %e, "cannot write the operator log");
        }
        let live = LiveConfig::new(config);
        let price = LivePrice::new();
        let supervisor = match ZoneSupervisor::new(live.clone(), store.clone(), price.clone()) {
            Ok(s) => s.start(),
            Err(e) => unreachable_tree(e),
        };
        let arbiter_threads: Vec<actix::Arbiter> = (0..STATION_THREADS)
            .map(|_| actix::Arbiter::new())
            .collect();
        let controller = Controller {
            inner: Arc::new(Inner {
                store,
                price,
                supervisor,
                arbiters: arbiter_threads.iter().map(actix::Arbiter::handle).collect(),
                arbiter_threads: std::sync::Mutex::new(arbiter_threads),
                next_arbiter: AtomicU64::new(0),
                config: live,
                stations: RwLock::new(HashMap::new()),
                next_connection: AtomicU64::new(1),
            }),
        };
        // Every station gets its actor now, so that transactions left open by a previous
        // run are known (and their load reserved) before the station reconnects.
        for station in controller.config().stations.iter().cloned() {
            controller.station_actor(station);
        }
        controller
    }

    pub fn config(&self) -> Arc<Config> {
        self.inner.config.get()
    }

    pub fn store(&self) -> &Store {
        &self.inner.store
    }

    /// The zone supervisor: live site status, recent rounds, history, subscriptions.
    pub fn supervisor(&self) -> &Addr<ZoneSupervisor> {
        &self.inner.supervisor
    }

    /// Validates `next`, stores it and puts it in force at once: the supervisor rebuilds
    /// zones, meters and tariffs, and station actors take their new settings.
    pub fn apply_config(&self, next: Config) -> Result<(), ConfigProblems> {
        next.validate()?;
        if let Err(e) = self
            .inner
            .store
            .save_config_snapshot(&next.to_toml_string())
        {
            tracing::error!(error = %e, "cannot store the configuration snapshot");
            return Err(ConfigProblems(vec![ConfigProblem::new(
                "",
                format!("cannot store the configuration: {e}"),
            )]));
        }
        self.inner.config.replace(next);
        let config = self.inner.config.get();
        for (id, addr) in self
            .inner
            .stations
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            if let Some(sc) = config.station(id) {
                addr.do_send(UpdateStationConfig(sc.clone()));
            }
        }
        self.inner.supervisor.do_send(ConfigChanged);
        Ok(())
    }

    pub fn next_connection_id(&self) -> u64 {
        self.inner.next_connection.fetch_add(1, Ordering::Relaxed)
    }

    pub fn max_frame_bytes(&self) -> usize {
        self.config().server.max_frame_bytes
    }

    /// The station actor, if the station was ever admitted since start.
    pub fn station(&self, id: &ChargePointId) -> Option<Addr<StationActor>> {
        self.inner
            .stations
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    pub fn station_ids(&self) -> Vec<ChargePointId> {
        let mut ids: Vec<_> = self
            .inner
            .stations
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .keys()
            .cloned()
            .collect();
        ids.sort();
        ids
    }

    /// Decides whether `id` may connect, registering it in the default zone when the
    /// commissioning scan is on, and returns its station actor.
    pub fn admit(&self, id: &ChargePointId, password: Option<&str>) -> Admission {
        let config = self.config();
        let station = match config.station(id) {
            Some(s) => s.clone(),
            None if config.server.accept_unknown_stations => {
                match self.register_scanned(id, &config) {
                    Some(s) => s,
                    None => return Admission::Unknown,
                }
            }
            None => {
                self.note_knock(id);
                return Admission::Unknown;
            }
        };
        if !station.password.is_empty() && password != Some(station.password.as_str()) {
            return Admission::BadPassword;
        }
        let addr = self.station_actor(station);
        Admission::Accepted(addr.recipient())
    }

    /// The station's actor, started on one of the station threads if it was not yet.
    fn station_actor(&self, station: StationConfig) -> Addr<StationActor> {
        let mut stations = self
            .inner
            .stations
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        stations
            .entry(station.id.clone())
            .or_insert_with(|| {
                let deps = StationDeps {
                    store: self.inner.store.clone(),
                    config: self.inner.config.clone(),
                    reports: self.inner.supervisor.clone().recipient(),
                    price: self.inner.price.clone(),
                };
                let n = self.inner.next_arbiter.fetch_add(1, Ordering::Relaxed) as usize
                    % self.inner.arbiters.len();
                StationActor::start_in_arbiter(&self.inner.arbiters[n], move |_| {
                    StationActor::new(station, deps)
                })
            })
            .clone()
    }

    /// Commissioning scan: the station joins `server.default_zone` with safe defaults.
    fn register_scanned(&self, id: &ChargePointId, config: &Config) -> Option<StationConfig> {
        let zone = config.server.default_zone.clone();
        let station = scanned_station(id.clone(), zone.clone());
        let mut next = (*config).clone();
        next.stations.push(station.clone());
        if let Err(problems) = next.validate() {
            tracing::warn!(station = %id, %problems, "cannot register the station");
            return None;
        }
        let now = Utc::now();
        let record = StationRecord {
            id: id.clone(),
            zone: Some(zone.clone()),
            vendor: None,
            model: None,
            serial: None,
            firmware: None,
            first_seen: now,
            last_seen: now,
        };
        if let Err(e) = self
            .inner
            .store
            .put_station(&record)
            .and_then(|()| self.inner.store.flush())
        {
            tracing::error!(station = %id, error = %e, "cannot store the scanned station");
            return None;
        }
        self.inner.config.replace(next);
        // The supervisor allocates only to the stations of the configuration it was given.
        self.inner.supervisor.do_send(ConfigChanged);
        let message = format!("new station registered by the commissioning scan in zone {zone}");
        tracing::info!(station = %id, %zone, "{message}");
        if let Err(e) = self.inner.store.log(LogLevel::Info, Some(id), message) {
            tracing::error!(error = %e, "cannot write the operator log");
        }
        Some(station)
    }

    /// Remembers an unknown station that tried to connect, for the commissioning list.
    fn note_knock(&self, id: &ChargePointId) {
        let store = &self.inner.store;
        match store.station(id) {
            Ok(Some(_)) => {}
            Ok(None) => {
                let now = Utc::now();
                let record = StationRecord {
                    id: id.clone(),
                    zone: None,
                    vendor: None,
                    model: None,
                    serial: None,
                    firmware: None,
                    first_seen: now,
                    last_seen: now,
                };
                if let Err(e) = store.put_station(&record) {
                    tracing::error!(station = %id, error = %e, "cannot note the unknown station");
                }
            }
            Err(e) => tracing::error!(station = %id, error = %e, "cannot read the station store"),
        }
    }

    /// Closes every station socket and flushes storage.
    pub async fn shut_down(&self) {
        let stations: Vec<_> = self
            .inner
            .stations
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for s in stations {
            let _ = s.send(CloseSession).await;
        }
        let _ = self.inner.supervisor.send(StopSupervisor).await;
    }

    /// Stops the station actors' threads, waits for them and flushes storage; called
    /// last at shutdown.
    pub fn join_station_threads(&self) {
        self.inner
            .stations
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
        let threads = std::mem::take(
            &mut *self
                .inner
                .arbiter_threads
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        );
        for arbiter in threads {
            arbiter.stop();
            if arbiter.join().is_err() {
                tracing::error!("a station thread panicked");
            }
        }
        if let Err(e) = self.inner.store.flush() {
            tracing::error!(error = %e, "cannot flush storage at shutdown");
        }
        if let Err(e) = self.inner.store.flush() {
            tracing::error!(error = %e, "cannot flush storage at shutdown");
        }
    }
}

fn scanned_station(id: ChargePointId, zone: ampwarden_actors::units::ZoneId) -> StationConfig {
    StationConfig {
        id,
        zone,
        max_current_a: SCANNED_MAX_CURRENT,
        phases: Phases::Three,
        phase: Phase::L1,
        vip: false,
        password: String::new(),
        connectors: 1,
    }
}

/// `App::start` validated the configuration, and validation refuses every tree error.
fn unreachable_tree(e: ampwarden_actors::allocation::TreeError) -> ! {
    panic!("a validated configuration gave an invalid zone tree: {e}")
}
