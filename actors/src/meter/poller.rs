//! The Modbus side of one meter: connecting over TCP or a serial line, reading the planned
//! registers with a timeout on every request, pacing the polls, and backing off between
//! reconnection attempts. It knows nothing of actors: [`Poller::next_outcome`] is awaited
//! in a loop by the [`super::MeterActor`]'s stream.

use std::io;
use std::time::Duration;

use chrono::Utc;
use tokio::time::{sleep_until, timeout, Instant};
use tokio_modbus::client::{rtu, tcp, Context, Reader};
use tokio_modbus::Slave;
use tokio_serial::SerialPortBuilderExt;

use super::profiles::{MeterReading, ReadRequest, ReadingError, RegisterMap, RegisterWords};
use super::MeterTiming;
use crate::config::{MeterConfig, MeterProtocol, Parity, RegisterKind};
use crate::units::MeterId;

/// Why a poll gave no reading.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReadFailure {
    #[error("cannot connect to {address}: {reason}")]
    Connect { address: String, reason: String },
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    #[error("the meter answered with Modbus exception: {0}")]
    Exception(String),
    #[error("connection lost: {0}")]
    Io(String),
    #[error("garbled answer: {0}")]
    Protocol(String),
    #[error("{0}")]
    Reading(#[from] ReadingError),
}

impl ReadFailure {
    /// After these the connection cannot be trusted (a late answer would be taken for the
    /// next one), so it is dropped and re-opened after a backoff. An exception or a bad
    /// value came from a device that answers: the connection is kept.
    fn drops_connection(&self) -> bool {
        matches!(
            self,
            ReadFailure::Connect { .. }
                | ReadFailure::Timeout(_)
                | ReadFailure::Io(_)
                | ReadFailure::Protocol(_)
        )
    }
}

/// The result of one poll.
pub(super) type PollOutcome = Result<MeterReading, ReadFailure>;

/// Where and how a meter is reached.
#[derive(Clone, Debug)]
enum Endpoint {
    Tcp {
        address: String,
        unit_id: u8,
    },
    Rtu {
        device: String,
        baud_rate: u32,
        parity: Parity,
        stop_bits: u8,
        unit_id: u8,
    },
}

impl Endpoint {
    fn of(config: &MeterConfig) -> Endpoint {
        match config.protocol {
            MeterProtocol::ModbusTcp => Endpoint::Tcp {
                address: config.address.clone(),
                unit_id: config.unit_id,
            },
            MeterProtocol::ModbusRtu => Endpoint::Rtu {
                device: config.address.clone(),
                baud_rate: config.baud_rate,
                parity: config.parity,
                stop_bits: config.stop_bits,
                unit_id: config.unit_id,
            },
        }
    }

    fn address(&self) -> &str {
        match self {
            Endpoint::Tcp { address, .. } => address,
            Endpoint::Rtu { device, .. } => device,
        }
    }

    async fn connect(&self) -> io::Result<Context> {
        match self {
            Endpoint::Tcp { address, unit_id } => {
                let socket = tokio::net::lookup_host(address.as_str())
                    .await?
                    .next()
                    .ok_or_else(|| {
                        io::Error::new(io::ErrorKind::NotFound, "the host name has no address")
                    })?;
                tcp::connect_slave(socket, Slave(*unit_id)).await
            }
            Endpoint::Rtu {
                device,
                baud_rate,
                parity,
                stop_bits,
                unit_id,
            } => {
                let port = tokio_serial::new(device.as_str(), *baud_rate)
                    .data_bits(tokio_serial::DataBits::Eight)
                    .parity(match parity {
                        Parity::None => tokio_serial::Parity::None,
                        Parity::Even => tokio_serial::Parity::Even,
                        Parity::Odd => tokio_serial::Parity::Odd,
                    })
                    .stop_bits(if *stop_bits == 2 {
                        tokio_serial::StopBits::Two
                    } else {
                        tokio_serial::StopBits::One
                    })
                    .open_native_async()?;
                Ok(rtu::attach_slave(port, Slave(*unit_id)))
            }
        }
    }
}

/// Polls one meter. Owns the connection; nothing else touches it.
pub(super) struct Poller {
    meter: MeterId,
    endpoint: Endpoint,
    map: RegisterMap,
    requests: Vec<ReadRequest>,
    timing: MeterTiming,
    connection: Option<Context>,
    next_due: Instant,
    /// The wait before the next reconnection attempt; doubles up to `reconnect_max`.
    backoff: Duration,
    /// Whether the refusal of the power register was logged (it is, once).
    power_refused: bool,
}

impl Poller {
    pub(super) fn new(config: &MeterConfig, map: RegisterMap, timing: MeterTiming) -> Poller {
        Poller {
            meter: config.id.clone(),
            endpoint: Endpoint::of(config),
            requests: map.read_requests(),
            map,
            backoff: timing.reconnect_min,
            timing,
            connection: None,
            next_due: Instant::now(),
            power_refused: false,
        }
    }

    /// Waits for the next poll, reads, and says how it went. Never blocks the runtime:
    /// every wait is a timer and every request is bounded by the timeout.
    pub(super) async fn next_outcome(&mut self) -> PollOutcome {
        sleep_until(self.next_due).await;
        let started = Instant::now();
        let outcome = self.read().await;
        self.next_due = started + self.timing.poll;
        match &outcome {
            Ok(_) => self.backoff = self.timing.reconnect_min,
            Err(failure) if failure.drops_connection() => {
                if self.connection.take().is_some() {
                    tracing::debug!(meter = %self.meter, "dropping the Modbus connection");
                }
                self.next_due = self.next_due.max(Instant::now() + self.backoff);
                self.backoff = self
                    .backoff
                    .saturating_mul(2)
                    .min(self.timing.reconnect_max);
            }
            Err(_) => {}
        }
        outcome
    }

    async fn read(&mut self) -> PollOutcome {
        let connection = match self.connection.take() {
            Some(connection) => connection,
            None => {
                let connected = timeout(self.timing.timeout, self.endpoint.connect()).await;
                let connection = connected
                    .map_err(|_| ReadFailure::Timeout(self.timing.timeout))?
                    .map_err(|e| ReadFailure::Connect {
                        address: self.endpoint.address().to_owned(),
                        reason: e.to_string(),
                    })?;
                // Debug only: a meter that accepts connections and never answers would
                // repeat this at every reconnection.
                tracing::debug!(meter = %self.meter, address = self.endpoint.address(), "connected to the meter");
                connection
            }
        };
        let connection = self.connection.insert(connection);
        let mut words = RegisterWords::new();
        for request in &self.requests {
            let call = async {
                match request.kind {
                    RegisterKind::Holding => {
                        connection
                            .read_holding_registers(request.address, request.count)
                            .await
                    }
                    RegisterKind::Input => {
                        connection
                            .read_input_registers(request.address, request.count)
                            .await
                    }
                }
            };
            let answer = timeout(self.timing.timeout, call)
                .await
                .map_err(|_| ReadFailure::Timeout(self.timing.timeout))?;
            let block = match answer.map_err(|e| match e {
                tokio_modbus::Error::Transport(e) => ReadFailure::Io(e.to_string()),
                tokio_modbus::Error::Protocol(e) => ReadFailure::Protocol(e.to_string()),
            })? {
                Ok(block) => block,
                Err(code) if request.optional => {
                    if !self.power_refused {
                        self.power_refused = true;
                        tracing::warn!(
                            meter = %self.meter,
                            address = request.address,
                            exception = %code,
                            "the meter refuses its power register: reading currents only"
                        );
                    }
                    continue;
                }
                Err(code) => return Err(ReadFailure::Exception(code.to_string())),
            };
            if block.len() != usize::from(request.count) {
                return Err(ReadFailure::Protocol(format!(
                    "asked for {} registers at address {}, got {}",
                    request.count,
                    request.address,
                    block.len()
                )));
            }
            words.insert_block(request.address, &block);
        }
        Ok(self.map.decode(&words, &self.meter, Utc::now())?)
    }
}
