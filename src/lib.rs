//! ampwarden, the controller: wiring of the actors behind the HTTP API, the OCPP endpoint
//! and the operator UI. [`App::start`] is what `main` and the integration tests both use.

pub mod backup;
pub mod controller;
pub mod federation;
pub mod http;
pub mod memory;
pub mod ocpp_ws;
pub mod simulate;
pub mod snapshot;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::Duration;

use actix_web::dev::ServerHandle;
use ampwarden_actors::config::{Config, ConfigProblems};
use ampwarden_actors::store::{Store, StoreError};

use crate::controller::Controller;

/// Why the controller did not start. Nothing is left running in any case.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("{0}")]
    Config(#[from] ConfigProblems),
    #[error("cannot open storage at {path}: {source}")]
    Storage {
        path: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot listen on {addr} ({what}): {source}")]
    Bind {
        what: &'static str,
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("the controller thread failed to start: {0}")]
    Runtime(String),
}

/// The controller's entry point.
pub struct App;

/// A running controller. Dropping it without [`AppHandle::stop`] leaves it running until
/// the process exits.
pub struct AppHandle {
    /// Where the UI and the API listen (the real port when the config asked for port 0).
    pub http_addr: SocketAddr,
    /// Where stations connect: `ws://{ocpp_addr}/ocpp/{id}`.
    pub ocpp_addr: SocketAddr,
    /// Where the BMS Modbus server listens, if `bms.modbus_listen` is set.
    pub bms_addr: Option<SocketAddr>,
    controller: Controller,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

/// How long the servers wait for open requests at shutdown (SPEC: exit within 10 s).
pub(crate) const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);

impl App {
    /// Validates the configuration, opens storage, binds both listeners and starts every
    /// actor on a dedicated thread. Returns once the controller accepts connections.
    pub fn start(config: Config) -> Result<AppHandle, StartError> {
        config.validate()?;
        for w in config.warnings() {
            tracing::warn!("configuration: {w}");
        }
        let store = Store::open(&config.storage.path).map_err(|source| StartError::Storage {
            path: config.storage.path.display().to_string(),
            source,
        })?;
        let (ready_tx, ready_rx) = mpsc::channel();
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel();
        let thread = std::thread::Builder::new()
            .name("ampwarden".into())
            .spawn(move || {
                let system = actix::System::new();
                system.block_on(async move {
                    match serve(config, store).await {
                        Ok((servers, controller, (http, ocpp), modbus)) => {
                            let bms = modbus
                                .as_ref()
                                .map(ampwarden_actors::bms::server::ModbusServer::local_addr);
                            // The receiver only goes away if start() itself was abandoned.
                            let _ = ready_tx.send(Ok((http, ocpp, bms, controller.clone())));
                            let _ = stop_rx.await;
                            drop(modbus);
                            shut_down(servers, controller).await;
                        }
                        Err(e) => {
                            let _ = ready_tx.send(Err(e));
                        }
                    }
                });
            })
            .map_err(|e| StartError::Runtime(e.to_string()))?;
        match ready_rx.recv() {
            Ok(Ok((http_addr, ocpp_addr, bms_addr, controller))) => {
                tracing::info!(%http_addr, %ocpp_addr, "ampwarden is running: UI on http://{http_addr}/, stations connect to ws://{ocpp_addr}/ocpp/{{id}}");
                Ok(AppHandle {
                    http_addr,
                    ocpp_addr,
                    bms_addr,
                    controller,
                    stop: Some(stop_tx),
                    thread: Some(thread),
                })
            }
            Ok(Err(e)) => {
                let _ = thread.join();
                Err(e)
            }
            Err(_) => {
                let _ = thread.join();
                Err(StartError::Runtime(
                    "the controller thread ended during start".into(),
                ))
            }
        }
    }
}

impl AppHandle {
    /// The controller's shared handles (store, configuration, station actors).
    pub fn controller(&self) -> &Controller {
        &self.controller
    }

    /// Stops accepting, closes every station socket, flushes storage and waits for the
    /// controller thread to end.
    pub fn stop(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the controller thread panicked while stopping");
            }
            // The HTTP workers drop their handles on their own threads, just after they
            // report stopped; wait for that, so the storage is closed when this returns.
            let deadline = std::time::Instant::now() + SHUTDOWN_GRACE;
            while !self.controller.is_last_handle() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if !self.controller.is_last_handle() {
                tracing::warn!("some part of the controller is still running after the stop");
            }
        }
    }
}

impl Drop for AppHandle {
    fn drop(&mut self) {
        self.stop_now();
    }
}

type Addrs = (SocketAddr, SocketAddr);
type Serving = (
    Vec<ServerHandle>,
    Controller,
    Addrs,
    Option<ampwarden_actors::bms::server::ModbusServer>,
);

async fn serve(config: Config, store: Store) -> Result<Serving, StartError> {
    let controller = Controller::start(config, store);
    let (ocpp_server, ocpp_addr) = bind_ocpp(&controller)?;
    let (http_server, http_addr) = match http::bind(&controller) {
        Ok(bound) => bound,
        Err(e) => {
            ocpp_server.handle().stop(false).await;
            return Err(e);
        }
    };
    let modbus = match controller
        .config()
        .bms
        .as_ref()
        .and_then(|b| b.modbus_listen)
    {
        None => None,
        Some(addr) => match ampwarden_actors::bms::server::serve(
            addr,
            controller.live_config().clone(),
            controller.bms().clone(),
            controller.bms_image(),
        ) {
            Ok(server) => {
                controller
                    .bms()
                    .do_send(ampwarden_actors::bms::ModbusListening(server.local_addr()));
                Some(server)
            }
            Err(source) => {
                ocpp_server.handle().stop(false).await;
                http_server.handle().stop(false).await;
                return Err(StartError::Bind {
                    what: "BMS Modbus",
                    addr,
                    source,
                });
            }
        },
    };
    let handles = vec![ocpp_server.handle(), http_server.handle()];
    actix::spawn(ocpp_server);
    actix::spawn(http_server);
    Ok((handles, controller, (http_addr, ocpp_addr), modbus))
}

fn bind_ocpp(controller: &Controller) -> Result<(actix_web::dev::Server, SocketAddr), StartError> {
    let addr = controller.config().server.ocpp_listen;
    let data = actix_web::web::Data::new(controller.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .route("/ocpp/{id}", actix_web::web::get().to(ocpp_ws::handshake))
    })
    .workers(2)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
    .bind(addr)
    .map_err(|source| StartError::Bind {
        what: "OCPP",
        addr,
        source,
    })?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    Ok((server.run(), bound))
}

async fn shut_down(servers: Vec<ServerHandle>, controller: Controller) {
    // Stop accepting, close the stations' sockets, then let the servers finish.
    for s in &servers {
        s.pause().await;
    }
    controller.shut_down().await;
    for s in &servers {
        s.stop(true).await;
    }
    controller.join_station_threads();
    actix::System::current().stop();
}
