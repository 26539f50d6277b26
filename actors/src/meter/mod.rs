//! One actor per power meter: polls it over Modbus, publishes every good reading, and
//! says when the meter has gone stale so its zone can fall back to its static limit.
//!
//! The register maps and decoding are in [`profiles`] (pure); the Modbus I/O is in
//! `poller`; [`simulated`] is a real Modbus TCP server standing in for a meter.

mod poller;
pub mod profiles;
pub mod simulated;

use std::time::{Duration, Instant};

use actix::prelude::*;
use chrono::{DateTime, Utc};

pub use profiles::{MeterReading, ProfileError, Quantity, ReadingError, RegisterMap};

use crate::config::{Control, MeterConfig};
use crate::units::MeterId;
use poller::{PollOutcome, Poller};

impl Message for MeterReading {
    type Result = ();
}

/// Sent once when a meter has had no good reading for `stale_after`; the next good
/// [`MeterReading`] is the all-clear.
#[derive(Clone, Debug, PartialEq, Message)]
#[rtype(result = "()")]
pub struct MeterStale {
    pub meter: MeterId,
    /// The time of the last good reading, or when polling started if there was none.
    pub since: DateTime<Utc>,
}

/// Asks a [`MeterActor`] how its meter is doing.
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "MeterStatus")]
pub struct GetMeterStatus;

/// Stops a [`MeterActor`] (meter removed from the configuration, shutdown): its polling
/// ends and its connection closes. An actor with a running poll stream does not stop by
/// itself when its addresses are dropped.
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "()")]
pub struct StopMeter;

/// What the API and the dashboard show about a meter.
#[derive(Clone, Debug, PartialEq, MessageResponse)]
pub struct MeterStatus {
    pub meter: MeterId,
    pub last_reading: Option<MeterReading>,
    /// How old the last good reading is.
    pub age: Option<Duration>,
    pub stale: bool,
    /// Why the last failed read failed.
    pub last_error: Option<String>,
    pub good_reads: u64,
    pub failed_reads: u64,
}

/// The timings of one meter: from its configuration, plus the site's staleness limit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MeterTiming {
    /// Time between the starts of two polls.
    pub poll: Duration,
    /// How long one Modbus request (or a connection attempt) may take.
    pub timeout: Duration,
    /// No good reading for this long makes the meter stale.
    pub stale_after: Duration,
    /// First wait before reconnecting after a lost connection; doubles each failure.
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
}

impl MeterTiming {
    pub const RECONNECT_MIN: Duration = Duration::from_millis(500);
    pub const RECONNECT_MAX: Duration = Duration::from_secs(10);

    pub fn new(meter: &MeterConfig, control: &Control) -> MeterTiming {
        MeterTiming {
            poll: Duration::from_millis(meter.poll_ms),
            timeout: Duration::from_millis(meter.timeout_ms),
            stale_after: Duration::from_secs(u64::from(control.meter_stale_after_s)),
            reconnect_min: MeterTiming::RECONNECT_MIN,
            reconnect_max: MeterTiming::RECONNECT_MAX,
        }
    }

    /// How often staleness is checked: often enough to announce it within a fifth of
    /// `stale_after` (and at most once a second), not so often that it costs anything.
    fn stale_check(&self) -> Duration {
        (self.stale_after / 5).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

/// Where a meter's news goes.
#[derive(Clone)]
pub struct MeterRecipients {
    pub readings: Recipient<MeterReading>,
    pub stale: Recipient<MeterStale>,
}

/// Polls one meter and keeps its latest reading.
///
/// The Modbus connection lives in a [`Poller`] wrapped in a stream attached to this
/// actor's context (`ctx.add_stream`): the polling is async and never blocks the runtime,
/// its outcomes arrive here as stream items with `&mut self`, and stopping the actor
/// drops the stream, which ends the polling and closes the connection.
pub struct MeterActor {
    config: MeterConfig,
    map: RegisterMap,
    timing: MeterTiming,
    recipients: MeterRecipients,
    started: Instant,
    started_at: DateTime<Utc>,
    last: Option<(MeterReading, Instant)>,
    last_error: Option<String>,
    good_reads: u64,
    failed_reads: u64,
    /// Whether the current stale episode was announced.
    stale_announced: bool,
}

impl MeterActor {
    /// Fails only for a `generic` meter without a usable register map (which the
    /// configuration validation already refuses).
    pub fn new(
        config: MeterConfig,
        timing: MeterTiming,
        recipients: MeterRecipients,
    ) -> Result<MeterActor, ProfileError> {
        let map = RegisterMap::for_meter(&config)?;
        Ok(MeterActor {
            config,
            map,
            timing,
            recipients,
            started: Instant::now(),
            started_at: Utc::now(),
            last: None,
            last_error: None,
            good_reads: 0,
            failed_reads: 0,
            stale_announced: false,
        })
    }

    fn id(&self) -> &MeterId {
        &self.config.id
    }

    /// The time since the last good reading (or since the start, before the first one).
    fn silence(&self) -> Duration {
        self.last
            .as_ref()
            .map_or(self.started, |(_, at)| *at)
            .elapsed()
    }

    fn is_stale(&self) -> bool {
        self.silence() >= self.timing.stale_after
    }

    fn check_stale(&mut self) {
        if self.stale_announced || !self.is_stale() {
            return;
        }
        self.stale_announced = true;
        let since = self
            .last
            .as_ref()
            .map_or(self.started_at, |(reading, _)| reading.at);
        tracing::warn!(
            meter = %self.id(),
            %since,
            last_error = self.last_error.as_deref().unwrap_or("none"),
            "meter is stale: its zone falls back to its static limit until it reads again; check its wiring, address and unit id"
        );
        self.recipients.stale.do_send(MeterStale {
            meter: self.id().clone(),
            since,
        });
    }
}

impl Actor for MeterActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        tracing::info!(
            meter = %self.id(),
            address = %self.config.address,
            profile = ?self.config.profile,
            poll_ms = self.config.poll_ms,
            "polling meter"
        );
        self.started = Instant::now();
        self.started_at = Utc::now();
        let poller = Poller::new(&self.config, self.map.clone(), self.timing);
        ctx.add_stream(futures_util::stream::unfold(
            poller,
            |mut poller| async move {
                let outcome = poller.next_outcome().await;
                Some((outcome, poller))
            },
        ));
        ctx.run_interval(self.timing.stale_check(), |actor, _| actor.check_stale());
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        tracing::info!(meter = %self.id(), "stopped polling meter");
    }
}

impl StreamHandler<PollOutcome> for MeterActor {
    fn handle(&mut self, outcome: PollOutcome, _: &mut Self::Context) {
        match outcome {
            Ok(reading) => {
                if self.good_reads == 0 {
                    tracing::info!(meter = %self.id(), currents = ?reading.currents.0, "first reading from the meter");
                } else if self.stale_announced {
                    tracing::info!(meter = %self.id(), "meter reads again");
                }
                self.good_reads += 1;
                self.stale_announced = false;
                self.last_error = None;
                tracing::trace!(meter = %self.id(), currents = ?reading.currents.0, power_kw = ?reading.power_kw, "reading");
                self.recipients.readings.do_send(reading.clone());
                self.last = Some((reading, Instant::now()));
            }
            Err(failure) => {
                self.failed_reads += 1;
                let text = failure.to_string();
                if self.last_error.as_deref() != Some(text.as_str()) {
                    tracing::warn!(meter = %self.id(), error = %text, "meter read failed");
                }
                self.last_error = Some(text);
                self.check_stale();
            }
        }
    }

    /// The poll stream never ends; if it somehow did, the meter would simply go stale
    /// while the actor keeps answering status queries.
    fn finished(&mut self, _: &mut Self::Context) {
        tracing::error!(meter = %self.id(), "meter polling ended unexpectedly");
    }
}

impl Handler<StopMeter> for MeterActor {
    type Result = ();

    fn handle(&mut self, _: StopMeter, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl Handler<GetMeterStatus> for MeterActor {
    type Result = MeterStatus;

    fn handle(&mut self, _: GetMeterStatus, _: &mut Self::Context) -> MeterStatus {
        MeterStatus {
            meter: self.id().clone(),
            last_reading: self.last.as_ref().map(|(reading, _)| reading.clone()),
            age: self.last.as_ref().map(|(_, at)| at.elapsed()),
            stale: self.is_stale(),
            last_error: self.last_error.clone(),
            good_reads: self.good_reads,
            failed_reads: self.failed_reads,
        }
    }
}
