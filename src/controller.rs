//! The running controller's shared handles: storage, the configuration in force, and
//! the directory of station actors. Cheap to clone; every HTTP worker holds one.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

use actix::{Actor, Addr, Recipient};
use ampwarden_actors::calendar::LivePrice;
use ampwarden_actors::config::{
    Config, ConfigProblems, LiveConfig, Phases, SecurityProfile, StationConfig,
};
use ampwarden_actors::meter::{GetMeterStatus, MeterStatus};
use ampwarden_actors::station::{
    CloseSession, SessionEvent, StationActor, StationDeps, UpdateStationConfig,
};
use ampwarden_actors::store::{LogLevel, StationRecord, Store, StoreError};
use ampwarden_actors::supervisor::{ConfigChanged, GetMeter, StopSupervisor, ZoneSupervisor};
use ampwarden_actors::units::{Amps, ChargePointId, MeterId, Phase, ZoneId};
use chrono::Utc;

use crate::http::auth::AuthState;
use crate::snapshot;

/// What the OCPP handshake decides about a connecting station.
pub enum Admission {
    Accepted(Recipient<SessionEvent>),
    Unknown,
    BadPassword,
    /// Its security profile (2 or 3) needs TLS, and it connected over plain `ws://`.
    NeedsTls(SecurityProfile),
    /// Security profile 3, and no client certificate was presented.
    NoCertificate,
    /// Security profile 3, and the certificate's subject CN (if any) is not its id.
    WrongCertificate(Option<String>),
    /// Not a chargeBoxIdentity (`config::station_id_problem` says why).
    InvalidId(String),
}

/// Unknown stations noted for the commissioning list, at most; beyond, knocks are only
/// counted in the log (once), so that a scan of ids cannot fill the disk.
pub const MAX_PENDING_UNKNOWN: usize = 100;
/// The commissioning scan registers stations only while the configuration holds fewer.
pub const MAX_SCANNED_STATIONS: usize = 1000;

/// Refusals of input from the network that are logged once, not once per attempt.
#[derive(Default)]
struct LoggedOnce {
    invalid_id: std::sync::atomic::AtomicBool,
    unknown_list_full: std::sync::atomic::AtomicBool,
    scan_full: std::sync::atomic::AtomicBool,
}

impl LoggedOnce {
    /// True the first time only.
    fn first(flag: &std::sync::atomic::AtomicBool) -> bool {
        !flag.swap(true, Ordering::Relaxed)
    }
}

/// Threads running station actors (the machine this targets has 2 cores).
const STATION_THREADS: usize = 2;

/// Defaults for a station registered by the commissioning scan; an operator refines them.
const SCANNED_MAX_CURRENT: Amps = Amps(32.0);
/// How often storage upkeep runs.
const HOUSEKEEPING_EVERY: std::time::Duration = std::time::Duration::from_secs(3600);

#[derive(Clone)]
pub struct Controller {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    price: LivePrice,
    supervisor: Addr<ZoneSupervisor>,
    /// The building management system's caps and register image.
    bms: Addr<ampwarden_actors::bms::BmsActor>,
    bms_image: ampwarden_actors::bms::SharedImage,
    /// Station actors live on their own threads, not on the HTTP workers', so that a
    /// shutdown can stop and join them (and release the store) deterministically.
    arbiters: Vec<actix::ArbiterHandle>,
    arbiter_threads: std::sync::Mutex<Vec<actix::Arbiter>>,
    next_arbiter: AtomicU64,
    config: LiveConfig,
    stations: RwLock<HashMap<ChargePointId, Addr<StationActor>>>,
    next_connection: AtomicU64,
    /// The configuration file as given at start: the base of every saved snapshot.
    file_config: Config,
    /// Serialises configuration changes so that none is lost between read and write.
    edit_lock: std::sync::Mutex<()>,
    auth: AuthState,
    logged_once: LoggedOnce,
    /// Dashboard event sockets open now (each polls the stations once a second).
    event_sockets: std::sync::atomic::AtomicUsize,
    federation: crate::federation::FederationCounters,
    /// Secondary: the link to the primary, and what it shows the API.
    primary_link: std::sync::Mutex<Option<Addr<crate::federation::secondary::PrimaryLink>>>,
    link_status: Arc<std::sync::Mutex<crate::federation::secondary::LinkStatus>>,
    /// The CPO uplink of each station (with `[uplink]`).
    uplinks: std::sync::Mutex<HashMap<ChargePointId, Addr<crate::uplink::UplinkLink>>>,
    uplink_rate: crate::uplink::RateCap,
}

/// Why a configuration change was not applied. Nothing was changed in any case.
#[derive(Debug, thiserror::Error)]
pub enum EditError<E> {
    /// The change itself refused (e.g. the item to edit does not exist).
    #[error("{0}")]
    Refused(E),
    /// The changed configuration fails the file's validation.
    #[error("{0}")]
    Invalid(ConfigProblems),
    #[error("{0}")]
    Storage(#[from] StoreError),
}

impl Controller {
    /// Builds the controller on a validated configuration. Stations registered earlier by
    /// the commissioning scan are added to the configuration in force.
    pub fn start(file_config: Config, store: Store) -> Controller {
        let mut config = match snapshot::restore(&store, &file_config) {
            Ok(config) => {
                tracing::info!("using the configuration as last changed from the UI or API");
                config
            }
            Err(snapshot::NotRestored::None) => file_config.clone(),
            Err(why) => {
                tracing::warn!("{why}");
                file_config.clone()
            }
        };
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
        let bms =
            ampwarden_actors::bms::BmsActor::new(live.clone(), store.clone(), supervisor.clone());
        let bms_image = bms.image();
        let bms = bms.start();
        let arbiter_threads: Vec<actix::Arbiter> = (0..STATION_THREADS)
            .map(|_| actix::Arbiter::new())
            .collect();
        let controller = Controller {
            inner: Arc::new(Inner {
                auth: AuthState::new(store.clone()),
                file_config,
                edit_lock: std::sync::Mutex::new(()),
                logged_once: LoggedOnce::default(),
                event_sockets: std::sync::atomic::AtomicUsize::new(0),
                federation: crate::federation::FederationCounters::default(),
                primary_link: std::sync::Mutex::new(None),
                link_status: Arc::default(),
                uplinks: std::sync::Mutex::new(HashMap::new()),
                uplink_rate: crate::uplink::RateCap::new(),
                store,
                price,
                supervisor,
                bms,
                bms_image,
                arbiters: arbiter_threads.iter().map(actix::Arbiter::handle).collect(),
                arbiter_threads: std::sync::Mutex::new(arbiter_threads),
                next_arbiter: AtomicU64::new(0),
                config: live,
                stations: RwLock::new(HashMap::new()),
                next_connection: AtomicU64::new(1),
            }),
        };
        controller.keep_house();
        // Every station gets its actor now, so that transactions left open by a previous
        // run are known (and their load reserved) before the station reconnects.
        for station in controller.config().stations.iter().cloned() {
            controller.station_actor(station);
        }
        let link = crate::federation::secondary::PrimaryLink::new(
            controller.clone(),
            &controller.config(),
            controller.inner.link_status.clone(),
        );
        if let Some(link) = link {
            *controller
                .inner
                .primary_link
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(link.start());
        }
        controller
    }

    /// Federation counters, for `/metrics`.
    pub fn federation_counters(&self) -> &crate::federation::FederationCounters {
        &self.inner.federation
    }

    /// Secondary: the state of its link to the primary (`None` on other roles).
    pub fn link_status(&self) -> Option<crate::federation::secondary::LinkStatus> {
        let up = self
            .inner
            .primary_link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .is_some();
        up.then(|| {
            self.inner
                .link_status
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone()
        })
    }

    /// Storage upkeep, now and every [`HOUSEKEEPING_EVERY`]: the meter samples of
    /// transactions closed more than `storage.sample_retention_days` ago (as configured
    /// at that moment) are dropped, their records, energy and cost stay; and if
    /// `storage.transaction_retention_days` is set, transactions closed longer ago than
    /// that go altogether. The timer lives on a station thread, so it stops with them;
    /// the pruning itself runs on a blocking thread, so a first run over a long history
    /// (an upgrade) does not hold up the station actors sharing that thread. A prune cut
    /// short by a shutdown resumes where it stopped (see `Store::prune_samples`).
    fn keep_house(&self) {
        let store = self.inner.store.clone();
        let config = self.inner.config.clone();
        self.inner.arbiters[0].spawn(async move {
            let mut every = tokio::time::interval(HOUSEKEEPING_EVERY);
            loop {
                every.tick().await;
                let store = store.clone();
                let storage = config.get().storage.clone();
                let days_ago = |days: u32| Utc::now() - chrono::TimeDelta::days(i64::from(days));
                let pruning = tokio::task::spawn_blocking(move || {
                    let samples = store.prune_samples(days_ago(storage.sample_retention_days))?;
                    let transactions = match storage.transaction_retention_days {
                        Some(days) => store.prune_transactions(days_ago(days))?,
                        None => 0,
                    };
                    Ok::<_, ampwarden_actors::store::StoreError>((samples, transactions))
                });
                match pruning.await {
                    Ok(Ok((0, 0))) => {}
                    Ok(Ok((samples, transactions))) => tracing::info!(
                        samples_pruned_of = samples,
                        transactions_deleted = transactions,
                        "pruned meter samples and transactions past their retention"
                    ),
                    Ok(Err(e)) => {
                        tracing::error!(error = %e, "cannot prune old samples or transactions")
                    }
                    Err(e) => tracing::error!(error = %e, "the pruning task failed"),
                }
            }
        });
    }

    /// Whether this is the only handle left (the others went with the servers' workers).
    pub fn is_last_handle(&self) -> bool {
        Arc::strong_count(&self.inner) == 1
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

    /// Users, sessions, tokens and the setup state.
    pub fn bms(&self) -> &Addr<ampwarden_actors::bms::BmsActor> {
        &self.inner.bms
    }

    /// The register image the BMS Modbus server serves.
    pub fn bms_image(&self) -> ampwarden_actors::bms::SharedImage {
        self.inner.bms_image.clone()
    }

    pub fn auth(&self) -> &AuthState {
        &self.inner.auth
    }

    /// The one-time setup code while no user exists (printed at start; for tests and
    /// the console only, never served over HTTP).
    pub fn setup_code(&self) -> Option<String> {
        self.inner.auth.setup_code()
    }

    /// The shared configuration handle the actors read.
    pub fn live_config(&self) -> &LiveConfig {
        &self.inner.config
    }

    /// Changes the configuration as an operator asks: `change` edits a copy, which must
    /// pass the same validation as the file; then it is saved, put in force, and the
    /// actors concerned are told. Changes are serialised; a refused one changes nothing.
    pub fn edit_config<T, E>(
        &self,
        change: impl FnOnce(&mut Config) -> Result<T, E>,
    ) -> Result<(T, Arc<Config>), EditError<E>> {
        let _edit = self
            .inner
            .edit_lock
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let before = self.config();
        let mut next = (*before).clone();
        let out = change(&mut next).map_err(EditError::Refused)?;
        let next = snapshot::with_file_sections(next, &before);
        next.validate().map_err(EditError::Invalid)?;
        snapshot::save(&self.inner.store, &self.inner.file_config, &next)?;
        self.inner.config.replace(next);
        let after = self.config();
        self.config_changed(&before, &after);
        Ok((out, after))
    }

    /// Tells the actors what changed between two configurations.
    fn config_changed(&self, before: &Config, after: &Config) {
        let mut stations = self
            .inner
            .stations
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.inner.supervisor.do_send(ConfigChanged);
        stations.retain(|id, addr| match after.station(id) {
            Some(now) => {
                if before.station(id) != Some(now) {
                    addr.do_send(UpdateStationConfig(now.clone()));
                }
                true
            }
            None => {
                tracing::info!(station = %id, "station removed from the configuration: closing its connection");
                addr.do_send(CloseSession);
                false
            }
        });
    }

    /// Moves stations of the commissioning list (unknown ones that knocked) into `zone`,
    /// with the defaults of the scan; an operator refines them afterwards. All or none.
    pub fn accept_stations(
        &self,
        ids: &[ChargePointId],
        zone: &ZoneId,
    ) -> Result<Vec<StationConfig>, EditError<String>> {
        let stations: Vec<StationConfig> = ids
            .iter()
            .map(|id| scanned_station(id.clone(), zone.clone()))
            .collect();
        let added = stations.clone();
        self.edit_config(|c| {
            if let Some(s) = added.iter().find(|s| c.station(&s.id).is_some()) {
                return Err(format!("station {} is already configured", s.id));
            }
            c.stations.extend(added);
            Ok(())
        })?;
        let store = &self.inner.store;
        for id in ids {
            let now = Utc::now();
            let mut record = store
                .station(id)?
                .unwrap_or_else(|| StationRecord::new(id.clone(), None, now));
            record.zone = Some(zone.clone());
            store.put_station(&record)?;
            let message = format!("station accepted from the commissioning list into zone {zone}");
            if let Err(e) = store.log(LogLevel::Info, Some(id), message) {
                tracing::error!(error = %e, "cannot write the operator log");
            }
        }
        store.flush()?;
        Ok(stations)
    }

    /// Replaces the whole commissioned configuration (restore of a backup); the file's
    /// listeners, storage and federation stay.
    pub fn apply_config(&self, config: Config) -> Result<Arc<Config>, EditError<()>> {
        self.edit_config(|c| {
            *c = config;
            Ok::<(), ()>(())
        })
        .map(|((), c)| c)
    }

    /// "Read now": the latest status of a meter, from its actor; `None` when it is not
    /// polled (not configured, or its actor stopped).
    pub async fn meter_status(&self, id: &MeterId) -> Option<MeterStatus> {
        let meter = self
            .inner
            .supervisor
            .send(GetMeter(id.clone()))
            .await
            .ok()??;
        meter.send(GetMeterStatus).await.ok()
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
    /// commissioning scan is on, and returns its station actor. `tls` is what the TLS
    /// connection proved (`None` over plain `ws://`): its security profile decides
    /// whether TLS and a client certificate naming it are needed; a password, when the
    /// station has one, is needed whatever the profile.
    pub fn admit(
        &self,
        id: &ChargePointId,
        password: Option<&str>,
        tls: Option<&crate::tls::TlsPeer>,
    ) -> Admission {
        if let Some(problem) = ampwarden_actors::config::station_id_problem(id.as_str()) {
            if LoggedOnce::first(&self.inner.logged_once.invalid_id) {
                tracing::warn!("refused a station whose id is not valid ({problem}); further ones are logged at debug level");
            } else {
                tracing::debug!(%problem, "refused an invalid station id");
            }
            return Admission::InvalidId(problem);
        }
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
        let profile = station.security_profile;
        if profile.needs_tls() && tls.is_none() {
            return Admission::NeedsTls(profile);
        }
        if profile == SecurityProfile::TlsClientCertificate {
            // The TLS layer checked that it chains to tls.client_ca_file.
            match tls.and_then(|t| t.certificate.as_ref()) {
                None => return Admission::NoCertificate,
                Some(c) if c.common_name.as_deref() != Some(id.as_str()) => {
                    return Admission::WrongCertificate(c.common_name.clone());
                }
                Some(_) => {}
            }
        }
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
                let id = station.id.clone();
                let addr = StationActor::start_in_arbiter(&self.inner.arbiters[n], move |_| {
                    StationActor::new(station, deps)
                });
                if self.inner.config.get().uplink.is_some() {
                    let link = crate::uplink::UplinkLink::new(
                        self.clone(),
                        id.clone(),
                        addr.clone(),
                        self.inner.uplink_rate.clone(),
                        Arc::default(),
                    );
                    let link = crate::uplink::UplinkLink::start_in_arbiter(
                        &self.inner.arbiters[n],
                        move |_| link,
                    );
                    self.inner
                        .uplinks
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner)
                        .insert(id, link);
                }
                addr
            })
            .clone()
    }

    /// The state of every station's CPO uplink (empty without `[uplink]`).
    pub async fn uplink_statuses(&self) -> Vec<crate::uplink::UplinkStatus> {
        let links: Vec<_> = self
            .inner
            .uplinks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        let mut out = Vec::new();
        for l in links {
            if let Ok(s) = l.send(crate::uplink::GetUplinkStatus).await {
                out.push(s);
            }
        }
        out.sort_by(|a, b| a.station.cmp(&b.station));
        out
    }

    /// Commissioning scan: the station joins `server.default_zone` with safe defaults.
    fn register_scanned(&self, id: &ChargePointId, config: &Config) -> Option<StationConfig> {
        if config.stations.len() >= MAX_SCANNED_STATIONS {
            if LoggedOnce::first(&self.inner.logged_once.scan_full) {
                tracing::warn!(station = %id, "the commissioning scan registers no more stations: {MAX_SCANNED_STATIONS} are configured; add further ones by hand");
            }
            return None;
        }
        let zone = config.server.default_zone.clone();
        let station = scanned_station(id.clone(), zone.clone());
        let added = station.clone();
        let registered = self.edit_config(|c| {
            if c.station(id).is_none() {
                c.stations.push(added);
            }
            Ok::<(), std::convert::Infallible>(())
        });
        match registered {
            Ok(_) => {}
            Err(EditError::Invalid(problems)) => {
                tracing::warn!(station = %id, %problems, "cannot register the station");
                return None;
            }
            Err(e) => {
                tracing::error!(station = %id, error = %e, "cannot register the station");
                return None;
            }
        }
        let now = Utc::now();
        let record = StationRecord::new(id.clone(), Some(zone.clone()), now);
        if let Err(e) = self
            .inner
            .store
            .put_station(&record)
            .and_then(|()| self.inner.store.flush())
        {
            tracing::error!(station = %id, error = %e, "cannot store the scanned station");
        }
        let message = format!("new station registered by the commissioning scan in zone {zone}");
        tracing::info!(station = %id, %zone, "{message}");
        if let Err(e) = self.inner.store.log(LogLevel::Info, Some(id), message) {
            tracing::error!(error = %e, "cannot write the operator log");
        }
        Some(station)
    }

    /// Counts a dashboard event socket opening (`true`) or closing.
    pub fn event_socket(&self, opened: bool) {
        if opened {
            self.inner.event_sockets.fetch_add(1, Ordering::Relaxed);
        } else {
            self.inner.event_sockets.fetch_sub(1, Ordering::Relaxed);
        }
    }

    pub fn event_sockets(&self) -> usize {
        self.inner.event_sockets.load(Ordering::Relaxed)
    }

    /// The unknown stations that tried to connect and wait to be accepted.
    pub fn commissioning_list(&self) -> Result<Vec<StationRecord>, StoreError> {
        let config = self.config();
        Ok(self
            .inner
            .store
            .stations()?
            .into_iter()
            .filter(|r| r.zone.is_none() && config.station(&r.id).is_none())
            .collect())
    }

    /// Remembers an unknown station that tried to connect, for the commissioning list.
    fn note_knock(&self, id: &ChargePointId) {
        let store = &self.inner.store;
        match store.station(id) {
            Ok(Some(_)) => {
                tracing::debug!(station = %id, "refused again: unknown station");
            }
            Ok(None) => {
                let pending = self.commissioning_list().map_or(usize::MAX, |l| l.len());
                if pending >= MAX_PENDING_UNKNOWN {
                    if LoggedOnce::first(&self.inner.logged_once.unknown_list_full) {
                        tracing::warn!(station = %id, "refused: unknown station; the commissioning list is full ({MAX_PENDING_UNKNOWN}), so it is not noted (accept or remove the ones listed)");
                    }
                    return;
                }
                tracing::warn!(station = %id, "refused: unknown station (add it, or enable server.accept_unknown_stations)");
                let now = Utc::now();
                let record = StationRecord::new(id.clone(), None, now);
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
        let link = self
            .inner
            .primary_link
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(link) = link {
            let _ = link.send(crate::federation::secondary::StopLink).await;
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

fn scanned_station(id: ChargePointId, zone: ZoneId) -> StationConfig {
    StationConfig {
        id,
        zone,
        max_current_a: SCANNED_MAX_CURRENT,
        phases: Phases::Three,
        phase: Phase::L1,
        vip: false,
        password: String::new(),
        security_profile: Default::default(),
        connectors: 1,
        phase_rotation: Default::default(),
    }
}

/// `App::start` validated the configuration, and validation refuses every tree error.
fn unreachable_tree(e: ampwarden_actors::allocation::TreeError) -> ! {
    panic!("a validated configuration gave an invalid zone tree: {e}")
}
