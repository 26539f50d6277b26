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
pub mod tls;
pub mod uplink;
pub mod ws_client;

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
    /// A `[tls]` file is missing, unreadable or wrong.
    #[error("{0}")]
    Tls(#[from] tls::FileError),
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
    /// The UI and the API over TLS (`https://{http_tls_addr}/`), if
    /// `server.http_listen_tls` is set.
    pub http_tls_addr: Option<SocketAddr>,
    /// Stations over TLS (`wss://{ocpp_tls_addr}/ocpp/{id}`), if `server.ocpp_listen_tls`
    /// is set.
    pub ocpp_tls_addr: Option<SocketAddr>,
    tls: Option<tls::ServerTls>,
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
        let tls = config.tls.as_ref().map(tls::ServerTls::load).transpose()?;
        if let Some(t) = &tls {
            tls::log_certificate("TLS certificate", &t.certificate());
        }
        let server_tls = tls.clone();
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
                    match serve(config, store, server_tls).await {
                        Ok((servers, controller, mut listening, modbus)) => {
                            listening.bms = modbus
                                .as_ref()
                                .map(ampwarden_actors::bms::server::ModbusServer::local_addr);
                            // The receiver only goes away if start() itself was abandoned.
                            let _ = ready_tx.send(Ok((listening, controller.clone())));
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
            Ok(Ok((l, controller))) => {
                let (http_addr, ocpp_addr) = (l.http, l.ocpp);
                tracing::info!(%http_addr, %ocpp_addr, "ampwarden is running: UI on http://{http_addr}/, stations connect to ws://{ocpp_addr}/ocpp/{{id}}");
                if let Some(a) = l.http_tls {
                    tracing::info!(https_addr = %a, "UI and API over TLS on https://{a}/");
                }
                if let Some(a) = l.ocpp_tls {
                    tracing::info!(wss_addr = %a, "stations connect over TLS to wss://{a}/ocpp/{{id}}");
                }
                Ok(AppHandle {
                    http_addr,
                    ocpp_addr,
                    bms_addr: l.bms,
                    http_tls_addr: l.http_tls,
                    ocpp_tls_addr: l.ocpp_tls,
                    tls,
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

    /// Re-reads the TLS certificate and key (`tls.cert_file`, `tls.key_file`), as on
    /// SIGHUP: new connections get the new certificate, open ones keep theirs. A bad file
    /// keeps the certificate in use; either way the outcome is logged. `Ok(None)` without
    /// `[tls]`.
    pub fn reload_tls(&self) -> Result<Option<tls::CertSummary>, tls::FileError> {
        let Some(t) = &self.tls else {
            tracing::info!("reload: no [tls] in the configuration, nothing to reload");
            return Ok(None);
        };
        match t.reload() {
            Ok(summary) => {
                tls::log_certificate("TLS certificate reloaded", &summary);
                Ok(Some(summary))
            }
            Err(e) => {
                tracing::error!(
                    "TLS certificate not reloaded, keeping {} in use: {e}",
                    t.certificate()
                );
                Err(e)
            }
        }
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

/// Where the listeners are bound (the real ports when the configuration asked for 0).
struct Listening {
    http: SocketAddr,
    http_tls: Option<SocketAddr>,
    ocpp: SocketAddr,
    ocpp_tls: Option<SocketAddr>,
    bms: Option<SocketAddr>,
}

type Serving = (
    Vec<ServerHandle>,
    Controller,
    Listening,
    Option<ampwarden_actors::bms::server::ModbusServer>,
);

/// A server's plain and TLS addresses, from what it bound.
pub(crate) fn bound(
    server_addrs: &[(SocketAddr, &str)],
    plain: SocketAddr,
) -> (SocketAddr, Option<SocketAddr>) {
    let of = |scheme: &str| {
        server_addrs
            .iter()
            .find(|(_, s)| *s == scheme)
            .map(|(a, _)| *a)
    };
    (of("http").unwrap_or(plain), of("https"))
}

async fn serve(
    config: Config,
    store: Store,
    tls: Option<tls::ServerTls>,
) -> Result<Serving, StartError> {
    let controller = Controller::start(config, store);
    let (ocpp_server, (ocpp_addr, ocpp_tls_addr)) = bind_ocpp(&controller, tls.as_ref())?;
    let (http_server, (http_addr, http_tls_addr)) = match http::bind(&controller, tls.as_ref()) {
        Ok(bound) => bound,
        Err(e) => {
            abandon(ocpp_server).await;
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
                abandon(ocpp_server).await;
                abandon(http_server).await;
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
    let listening = Listening {
        http: http_addr,
        http_tls: http_tls_addr,
        ocpp: ocpp_addr,
        ocpp_tls: ocpp_tls_addr,
        bms: None,
    };
    Ok((handles, controller, listening, modbus))
}

type Bound = (actix_web::dev::Server, (SocketAddr, Option<SocketAddr>));

/// The stations' listener: `ws://` on `server.ocpp_listen`, and `wss://` on
/// `server.ocpp_listen_tls` when set (one server, the same route).
fn bind_ocpp(controller: &Controller, tls: Option<&tls::ServerTls>) -> Result<Bound, StartError> {
    let addr = controller.config().server.ocpp_listen;
    let tls_addr = controller.config().server.ocpp_listen_tls;
    let data = actix_web::web::Data::new(controller.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .route("/ocpp/{id}", actix_web::web::get().to(ocpp_ws::handshake))
    })
    .on_connect(tls::on_connect)
    .workers(2)
    .disable_signals()
    .shutdown_timeout(SHUTDOWN_GRACE.as_secs())
    .bind(addr)
    .map_err(|source| StartError::Bind {
        what: "OCPP",
        addr,
        source,
    })?;
    let server = match (tls_addr, tls) {
        (Some(addr), Some(tls)) => {
            server
                .bind_rustls_0_23(addr, tls.server_config())
                .map_err(|source| StartError::Bind {
                    what: "OCPP over TLS",
                    addr,
                    source,
                })?
        }
        _ => server,
    };
    let addrs = bound(&server.addrs_with_scheme(), addr);
    Ok((server.run(), addrs))
}

/// Stops a server that was bound but not started (a later listener failed to bind): it
/// must run to hear its stop, else the stop waits for ever.
async fn abandon(server: actix_web::dev::Server) {
    let handle = server.handle();
    actix::spawn(server);
    handle.stop(false).await;
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
