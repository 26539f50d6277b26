//! A simulated meter: a real Modbus TCP (or RTU) server that serves a profile's register map with
//! values set at run time, and misbehaves on request (silence, exceptions, NaN). Used by
//! the integration tests, the `simulate` subcommand and the demo.
//!
//! Like a strict device, it answers only the registers of its map: a read that strays
//! onto any other register gets "illegal data address".

use std::future::{ready, Ready};
use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::net::TcpSocket;
use tokio::task::JoinHandle;
use tokio_modbus::server::rtu;
use tokio_modbus::server::tcp::{accept_tcp_connection, Server};
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response};

use super::profiles::RegisterMap;
use crate::config::RegisterKind;
use crate::units::{Amps, PerPhase};

/// How the simulated meter behaves.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// Answers with the values set.
    #[default]
    Normal,
    /// Reads every request and answers none: clients time out.
    Silent,
    /// Answers every request with the exception "server device failure".
    Exception,
    /// Answers with the maker's "not available" pattern (NaN for float registers).
    NaN,
}

#[derive(Debug)]
struct State {
    currents: PerPhase<Amps>,
    power_kw: f64,
    mode: Mode,
}

/// Starts simulated meters.
pub struct SimulatedMeter;

impl SimulatedMeter {
    /// Serves `map` on `addr` (port 0 picks a free port) until the handle is stopped or
    /// dropped. Must be called inside a tokio runtime (an actix `System` is one).
    pub async fn start(addr: SocketAddr, map: RegisterMap) -> io::Result<SimulatedMeterHandle> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        // A restarted simulator must get its old port back at once.
        socket.set_reuseaddr(true)?;
        socket.bind(addr)?;
        let listener = socket.listen(64)?;
        let local_addr = listener.local_addr()?;
        let state = new_state();
        let service_state = Arc::clone(&state);
        let server = Server::new(listener);
        let task = tokio::spawn(async move {
            let new_service = |_| {
                Ok(Some(MeterService {
                    map: map.clone(),
                    state: Arc::clone(&service_state),
                }))
            };
            let on_connected = |stream, socket_addr| {
                let accepted = accept_tcp_connection(stream, socket_addr, new_service);
                async move { accepted }
            };
            let on_process_error =
                |err: io::Error| tracing::debug!(%err, "simulated meter: connection ended");
            if let Err(err) = server.serve(&on_connected, on_process_error).await {
                tracing::warn!(%err, "simulated meter stopped accepting connections");
            }
        });
        tracing::info!(%local_addr, "simulated meter listening");
        Ok(SimulatedMeterHandle {
            local_addr,
            state,
            task,
        })
    }

    /// Serves `map` as a Modbus RTU device on a serial line (any unit id: a bus with one
    /// device) until the handle is stopped or dropped. Tests give it one end of a
    /// pseudo-terminal pair (`tokio_serial::SerialStream::pair`) and the meter actor the
    /// other end's path.
    pub fn serve_serial(
        serial: tokio_serial::SerialStream,
        map: RegisterMap,
    ) -> SimulatedMeterHandle {
        let state = new_state();
        let service = MeterService {
            map,
            state: Arc::clone(&state),
        };
        let task = tokio::spawn(async move {
            if let Err(err) = rtu::Server::new(serial).serve_forever(service).await {
                tracing::warn!(%err, "simulated serial meter stopped");
            }
        });
        SimulatedMeterHandle {
            local_addr: SocketAddr::from(([0, 0, 0, 0], 0)),
            state,
            task,
        }
    }
}

fn new_state() -> Arc<Mutex<State>> {
    Arc::new(Mutex::new(State {
        currents: PerPhase::splat(Amps::ZERO),
        power_kw: 0.0,
        mode: Mode::Normal,
    }))
}

/// Controls a running simulated meter; dropping it stops the server.
#[derive(Debug)]
pub struct SimulatedMeterHandle {
    local_addr: SocketAddr,
    state: Arc<Mutex<State>>,
    task: JoinHandle<()>,
}

impl SimulatedMeterHandle {
    /// The address the server listens on (with the port chosen when 0 was asked);
    /// `0.0.0.0:0` for a meter served on a serial line.
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    pub fn set_currents(&self, currents: PerPhase<Amps>) {
        self.state().currents = currents;
    }

    pub fn set_power_kw(&self, power_kw: f64) {
        self.state().power_kw = power_kw;
    }

    pub fn set_mode(&self, mode: Mode) {
        self.state().mode = mode;
    }

    /// Stops listening and closes every connection; returns once the port is free.
    pub async fn stop(mut self) {
        self.task.abort();
        // The task was aborted on purpose: its "cancelled" result says nothing new.
        let _ = (&mut self.task).await;
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        // A panic while holding the lock cannot leave `State` half-written: every write
        // is a single assignment.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Drop for SimulatedMeterHandle {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Answers one connection's requests from the shared state.
struct MeterService {
    map: RegisterMap,
    state: Arc<Mutex<State>>,
}

impl MeterService {
    fn answer(&self, request: Request<'static>) -> Result<Option<Response>, ExceptionCode> {
        let (mode, currents, power_kw) = {
            let state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
            (state.mode, state.currents, state.power_kw)
        };
        let values = match mode {
            Mode::Silent => return Ok(None),
            Mode::Exception => return Err(ExceptionCode::ServerDeviceFailure),
            Mode::NaN => [None; 3],
            Mode::Normal => currents.0.map(|a| Some(a.0)),
        };
        let (kind, address, count) = match request {
            Request::ReadHoldingRegisters(address, count) => {
                (RegisterKind::Holding, address, count)
            }
            Request::ReadInputRegisters(address, count) => (RegisterKind::Input, address, count),
            _ => return Err(ExceptionCode::IllegalFunction),
        };
        if kind != self.map.kind {
            return Err(ExceptionCode::IllegalDataAddress);
        }
        let power = if mode == Mode::NaN {
            None
        } else {
            Some(power_kw)
        };
        let words = self
            .map
            .encode(values, power)
            .block(address, count)
            .ok_or(ExceptionCode::IllegalDataAddress)?;
        Ok(Some(match kind {
            RegisterKind::Holding => Response::ReadHoldingRegisters(words),
            RegisterKind::Input => Response::ReadInputRegisters(words),
        }))
    }
}

impl Service for MeterService {
    type Request = Request<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Ready<Result<Option<Response>, ExceptionCode>>;

    fn call(&self, request: Request<'static>) -> Self::Future {
        ready(self.answer(request))
    }
}
