//! The Modbus TCP server a BMS polls (tokio-modbus). Reads are served from the register
//! image without waiting for any actor; writes are checked for shape here (a cap and its
//! validity in one request, never half of a 32-bit value) and for meaning by the
//! [`BmsActor`]. Every refusal is a Modbus exception:
//!
//! * `IllegalFunction` (01): a function other than read holding/input registers and write
//!   multiple registers, or any write while `bms.write = false`;
//! * `IllegalDataAddress` (02): a read outside the map's blocks, a write that is not
//!   exactly one command (read-only registers, half a value, a single-register write),
//!   a zone slot without a zone;
//! * `IllegalDataValue` (03): a value out of range (NaN, negative, too high, a validity
//!   above `bms.max_validity_s`, an unknown unit);
//! * `GatewayTargetDevice` (0B): another unit id than `bms.unit_id` (0 and 255 are
//!   answered too).
//!
//! Clients not on `bms.allow`, and clients beyond `bms.max_clients`, are refused at
//! connection (the socket is closed).

use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;

use actix::Addr;
use tokio::net::TcpListener;
use tokio_modbus::server::tcp::Server;
use tokio_modbus::server::Service;
use tokio_modbus::{ExceptionCode, Request, Response, SlaveRequest};

use super::actor::{
    BmsActor, ClientConnected, ClientGone, ClientRefused, ClientStats, SharedImage, WriteCap,
};
use super::caps::{CapRequest, CapTarget, CapUnit, WriteError, Writer};
use super::registers::{
    SITE_CAP, SITE_CAP_COMMAND_LEN, ZONE_CAPS, ZONE_CAP_COMMAND_LEN, ZONE_CAP_LEN,
};
use super::{is_allowed, BMS_MAX_ZONES};
use crate::config::{BmsConfig, LiveConfig};

/// A running Modbus server on its own thread; dropping it stops it and closes its
/// connections.
pub struct ModbusServer {
    local_addr: SocketAddr,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl ModbusServer {
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }
}

impl Drop for ModbusServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            // The thread may have ended on its own (its error is logged there).
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            if thread.join().is_err() {
                tracing::error!("the BMS Modbus server thread panicked");
            }
        }
    }
}

/// Serves the register image on `addr` until the returned server is dropped. The server
/// runs on a thread of its own: a read never waits behind an allocation round, it only
/// copies from the last image; writes go to the [`BmsActor`].
pub fn serve(
    addr: SocketAddr,
    config: LiveConfig,
    bms: Addr<BmsActor>,
    image: SharedImage,
) -> io::Result<ModbusServer> {
    let listener = std::net::TcpListener::bind(addr)?;
    listener.set_nonblocking(true)?;
    let local_addr = listener.local_addr()?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let thread = std::thread::Builder::new()
        .name("ampwarden-bms".into())
        .spawn(move || {
            runtime.block_on(async move {
                let listener = match TcpListener::from_std(listener) {
                    Ok(l) => l,
                    Err(err) => {
                        tracing::error!(%err, "the BMS Modbus server cannot listen");
                        return;
                    }
                };
                tokio::select! {
                    () = accept(listener, config, bms, image) => {}
                    _ = stopped => {}
                }
            });
        })?;
    tracing::info!(%local_addr, "BMS Modbus server listening");
    Ok(ModbusServer {
        local_addr,
        stop: Some(stop),
        thread: Some(thread),
    })
}

async fn accept(
    listener: TcpListener,
    config: LiveConfig,
    bms: Addr<BmsActor>,
    image: SharedImage,
) {
    let server = Server::new(listener);
    let active = Arc::new(AtomicUsize::new(0));
    let next = AtomicU64::new(1);
    let on_connected = |stream, peer: SocketAddr| {
        let settings = config.get().bms.clone().unwrap_or_default();
        let refuse = if !is_allowed(&settings.allow, peer.ip()) {
            Some("not on bms.allow")
        } else if active.load(Ordering::SeqCst) >= settings.max_clients as usize {
            Some("bms.max_clients are connected")
        } else {
            None
        };
        let accepted = if let Some(reason) = refuse {
            bms.do_send(ClientRefused { addr: peer, reason });
            Ok(None)
        } else {
            let client = next.fetch_add(1, Ordering::Relaxed);
            let stats = Arc::new(ClientStats::default());
            active.fetch_add(1, Ordering::SeqCst);
            bms.do_send(ClientConnected {
                client,
                addr: peer,
                stats: stats.clone(),
            });
            let service = BmsService {
                client,
                peer,
                config: config.clone(),
                bms: bms.clone(),
                image: image.clone(),
                stats,
                _guard: Connection {
                    client,
                    active: active.clone(),
                    bms: bms.clone(),
                },
            };
            Ok(Some((service, stream)))
        };
        async move { accepted }
    };
    let on_process_error = |err: io::Error| tracing::debug!(%err, "BMS connection ended");
    if let Err(err) = server.serve(&on_connected, on_process_error).await {
        tracing::error!(%err, "the BMS Modbus server stopped accepting connections");
    }
}

/// Ends with the connection: the client's caps end with it.
struct Connection {
    client: u64,
    active: Arc<AtomicUsize>,
    bms: Addr<BmsActor>,
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.active.fetch_sub(1, Ordering::SeqCst);
        self.bms.do_send(ClientGone(self.client));
    }
}

struct BmsService {
    client: u64,
    peer: SocketAddr,
    config: LiveConfig,
    bms: Addr<BmsActor>,
    image: SharedImage,
    stats: Arc<ClientStats>,
    _guard: Connection,
}

type Answer = Result<Option<Response>, ExceptionCode>;

impl Service for BmsService {
    type Request = SlaveRequest<'static>;
    type Response = Option<Response>;
    type Exception = ExceptionCode;
    type Future = Pin<Box<dyn Future<Output = Answer> + Send>>;

    fn call(&self, req: SlaveRequest<'static>) -> Self::Future {
        self.stats.requests.fetch_add(1, Ordering::Relaxed);
        let settings = self.config.get().bms.clone().unwrap_or_default();
        let answer: Pin<Box<dyn Future<Output = Answer> + Send>> = match self.answer(&settings, req)
        {
            Ready(a) => Box::pin(std::future::ready(a)),
            Write(request) => {
                let bms = self.bms.clone();
                let by = Writer::Modbus {
                    client: self.client,
                    addr: self.peer,
                };
                let (address, count) = request.1;
                Box::pin(async move {
                    match bms
                        .send(WriteCap {
                            request: request.0,
                            by,
                        })
                        .await
                    {
                        Ok(Ok(_)) => Ok(Some(Response::WriteMultipleRegisters(address, count))),
                        Ok(Err(WriteError::Disabled)) => Err(ExceptionCode::IllegalFunction),
                        Ok(Err(_)) => Err(ExceptionCode::IllegalDataValue),
                        Err(_) => Err(ExceptionCode::ServerDeviceFailure),
                    }
                })
            }
        };
        let stats = self.stats.clone();
        Box::pin(async move {
            let a = answer.await;
            if a.is_err() {
                stats.exceptions.fetch_add(1, Ordering::Relaxed);
            }
            a
        })
    }
}

enum Step {
    Ready(Answer),
    /// A well-formed command for the actor, and the (address, count) to echo.
    Write((CapRequest, (u16, u16))),
}
use Step::{Ready, Write};

impl BmsService {
    fn answer(&self, settings: &BmsConfig, req: SlaveRequest<'static>) -> Step {
        let unit = req.slave;
        if unit != settings.unit_id && unit != 0 && unit != 255 {
            return Ready(Err(ExceptionCode::GatewayTargetDevice));
        }
        match req.request {
            Request::ReadHoldingRegisters(a, n) => Ready(
                self.image
                    .get()
                    .read(a, n)
                    .map(|w| Some(Response::ReadHoldingRegisters(w.to_vec())))
                    .ok_or(ExceptionCode::IllegalDataAddress),
            ),
            Request::ReadInputRegisters(a, n) => Ready(
                self.image
                    .get()
                    .read(a, n)
                    .map(|w| Some(Response::ReadInputRegisters(w.to_vec())))
                    .ok_or(ExceptionCode::IllegalDataAddress),
            ),
            Request::WriteMultipleRegisters(a, words) if settings.write => {
                match command(&self.config, a, &words) {
                    Ok(request) => Write((request, (a, u16::try_from(words.len()).unwrap_or(0)))),
                    Err(e) => Ready(Err(e)),
                }
            }
            Request::WriteSingleRegister(..) | Request::MaskWriteRegister(..) if settings.write => {
                // No command fits in one register.
                Ready(Err(ExceptionCode::IllegalDataAddress))
            }
            _ => Ready(Err(ExceptionCode::IllegalFunction)),
        }
    }
}

fn float(hi: u16, lo: u16) -> f64 {
    f64::from(f32::from_bits((u32::from(hi) << 16) | u32::from(lo)))
}

/// A write of exactly one command block, as a cap request.
fn command(config: &LiveConfig, address: u16, words: &[u16]) -> Result<CapRequest, ExceptionCode> {
    let len = u16::try_from(words.len()).map_err(|_| ExceptionCode::IllegalDataAddress)?;
    if address == SITE_CAP && len == SITE_CAP_COMMAND_LEN {
        let unit = match words[2] {
            0 => CapUnit::Amps,
            1 => CapUnit::Watts,
            _ => return Err(ExceptionCode::IllegalDataValue),
        };
        return Ok(CapRequest {
            target: CapTarget::Site,
            value: float(words[0], words[1]),
            unit,
            validity_s: u32::from(words[3]),
        });
    }
    let end = ZONE_CAPS + ZONE_CAP_LEN * BMS_MAX_ZONES as u16;
    if (ZONE_CAPS..end).contains(&address)
        && (address - ZONE_CAPS) % ZONE_CAP_LEN == 0
        && len == ZONE_CAP_COMMAND_LEN
    {
        let slot = usize::from((address - ZONE_CAPS) / ZONE_CAP_LEN);
        let zone = config
            .get()
            .zones
            .get(slot)
            .map(|z| z.id.clone())
            .ok_or(ExceptionCode::IllegalDataAddress)?;
        return Ok(CapRequest {
            target: CapTarget::Zone(zone),
            value: float(words[0], words[1]),
            unit: CapUnit::Amps,
            validity_s: u32::from(words[2]),
        });
    }
    Err(ExceptionCode::IllegalDataAddress)
}
