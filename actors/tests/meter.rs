//! Meters end to end: a real Modbus TCP server on loopback (the simulated meter) read by
//! a real `MeterActor`, for every profile and every way a meter fails; and one Modbus RTU
//! meter on a pseudo-terminal.

mod common;

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use ampwarden_actors::config::{
    GenericMap, MeterConfig, MeterProfile, MeterProtocol, Parity, RegisterKind, RegisterType,
    WordOrder,
};
use ampwarden_actors::meter::simulated::{Mode, SimulatedMeter, SimulatedMeterHandle};
use ampwarden_actors::meter::{
    GetMeterStatus, MeterActor, MeterReading, MeterRecipients, MeterStale, MeterStatus,
    MeterTiming, RegisterMap, StopMeter,
};
use ampwarden_actors::units::{Amps, MeterId, PerPhase};
use common::wait_until;

/// Keeps everything a meter actor publishes.
#[derive(Clone, Default)]
struct Collector {
    readings: Arc<Mutex<Vec<MeterReading>>>,
    stale: Arc<Mutex<Vec<MeterStale>>>,
}

impl Collector {
    fn readings(&self) -> Vec<MeterReading> {
        self.readings.lock().expect("collector lock").clone()
    }

    fn stale(&self) -> Vec<MeterStale> {
        self.stale.lock().expect("collector lock").clone()
    }
}

impl Actor for Collector {
    type Context = Context<Self>;
}

impl Handler<MeterReading> for Collector {
    type Result = ();
    fn handle(&mut self, reading: MeterReading, _: &mut Context<Self>) {
        self.readings.lock().expect("collector lock").push(reading);
    }
}

impl Handler<MeterStale> for Collector {
    type Result = ();
    fn handle(&mut self, stale: MeterStale, _: &mut Context<Self>) {
        self.stale.lock().expect("collector lock").push(stale);
    }
}

fn config(addr: SocketAddr, profile: MeterProfile, generic: Option<GenericMap>) -> MeterConfig {
    MeterConfig {
        id: MeterId::from("main-meter"),
        protocol: MeterProtocol::ModbusTcp,
        address: addr.to_string(),
        unit_id: 1,
        profile,
        poll_ms: 50,
        timeout_ms: 150,
        measures: Default::default(),
        baud_rate: 19200,
        parity: Default::default(),
        stop_bits: 1,
        generic,
    }
}

/// Fast timings so the tests run quickly; the behaviour is the same as in production.
fn timing(stale_after: Duration) -> MeterTiming {
    MeterTiming {
        poll: Duration::from_millis(50),
        timeout: Duration::from_millis(150),
        stale_after,
        reconnect_min: Duration::from_millis(20),
        reconnect_max: Duration::from_millis(200),
    }
}

fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

fn map_of(config: &MeterConfig) -> RegisterMap {
    RegisterMap::for_meter(config).expect("a valid register map")
}

/// Starts a simulated meter of `profile` and a meter actor reading it.
async fn start(
    profile: MeterProfile,
    generic: Option<GenericMap>,
    stale_after: Duration,
) -> (SimulatedMeterHandle, Addr<MeterActor>, Collector) {
    let probe = config(loopback(), profile, generic.clone());
    let sim = SimulatedMeter::start(loopback(), map_of(&probe))
        .await
        .expect("the simulator starts");
    let (addr, collector) = start_actor(config(sim.local_addr(), profile, generic), stale_after);
    (sim, addr, collector)
}

fn start_actor(config: MeterConfig, stale_after: Duration) -> (Addr<MeterActor>, Collector) {
    let collector = Collector::default();
    let sink = collector.clone().start();
    let recipients = MeterRecipients {
        readings: sink.clone().recipient(),
        stale: sink.recipient(),
    };
    let actor = MeterActor::new(config, timing(stale_after), recipients).expect("a valid meter");
    (actor.start(), collector)
}

async fn status_of(addr: &Addr<MeterActor>) -> MeterStatus {
    addr.send(GetMeterStatus)
        .await
        .expect("the meter actor answers")
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-3
}

fn reads(reading: &MeterReading, currents: [f64; 3], power_kw: f64) -> bool {
    reading
        .currents
        .0
        .iter()
        .zip(currents)
        .all(|(got, want)| close(got.0, want))
        && reading.power_kw.is_some_and(|kw| close(kw, power_kw))
}

const LONG: Duration = Duration::from_secs(60);

#[actix::test]
async fn every_builtin_profile_is_read_end_to_end() {
    for profile in [
        MeterProfile::Iem3155,
        MeterProfile::Pm5320,
        MeterProfile::Powertag,
        MeterProfile::Mtz,
        MeterProfile::Nsx,
    ] {
        let (sim, addr, collector) = start(profile, None, LONG).await;
        // Whole amperes and tenths of kW: what the NSX's integer registers can carry.
        sim.set_currents(PerPhase([Amps(12.0), Amps(25.0), Amps(31.0)]));
        sim.set_power_kw(17.5);
        wait_until(&format!("{profile:?} reads 12/25/31 A and 17.5 kW"), || {
            let readings = collector.readings();
            async move { readings.iter().any(|r| reads(r, [12.0, 25.0, 31.0], 17.5)) }
        })
        .await;
        let status = status_of(&addr).await;
        assert!(!status.stale, "{profile:?}");
        assert!(status.good_reads >= 1, "{profile:?}");
        assert!(
            status
                .last_reading
                .is_some_and(|r| r.meter == MeterId::from("main-meter")),
            "{profile:?}"
        );
        addr.send(StopMeter).await.expect("the meter actor stops");
    }
}

#[actix::test]
async fn a_silent_meter_times_out_and_goes_stale_after_the_configured_time() {
    let (sim, addr, collector) =
        start(MeterProfile::Iem3155, None, Duration::from_millis(400)).await;
    sim.set_currents(PerPhase([Amps(10.0), Amps(10.0), Amps(10.0)]));
    wait_until("a first reading", || {
        let n = collector.readings().len();
        async move { n > 0 }
    })
    .await;
    let announced_before = collector.stale().len();
    sim.set_mode(Mode::Silent);
    wait_until("the meter is announced stale", || {
        let n = collector.stale().len();
        async move { n > announced_before }
    })
    .await;
    let status = status_of(&addr).await;
    assert!(status.stale);
    assert!(status
        .age
        .is_some_and(|age| age >= Duration::from_millis(400)));
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("no answer")),
        "{:?}",
        status.last_error
    );
    let stale = collector.stale().last().cloned().expect("an announcement");
    let last = collector
        .readings()
        .last()
        .cloned()
        .expect("a reading before the silence");
    assert_eq!(stale.meter, MeterId::from("main-meter"));
    assert_eq!(stale.since, last.at, "stale since the last good reading");

    // Still silent a few timeouts later: still one announcement for this episode.
    let failed = status.failed_reads;
    wait_until("more timeouts", || {
        let addr = addr.clone();
        async move { status_of(&addr).await.failed_reads >= failed + 3 }
    })
    .await;
    assert_eq!(
        collector.stale().len(),
        announced_before + 1,
        "one announcement per episode"
    );

    // It comes back: readings resume and the status is fresh again.
    sim.set_mode(Mode::Normal);
    sim.set_currents(PerPhase([Amps(20.0), Amps(21.0), Amps(22.0)]));
    wait_until("readings resume after the silence", || {
        let readings = collector.readings();
        async move { readings.iter().any(|r| close(r.currents.0[2].0, 22.0)) }
    })
    .await;
    assert!(!status_of(&addr).await.stale);
}

#[actix::test]
async fn a_modbus_exception_is_not_a_reading() {
    let (sim, addr, collector) =
        start(MeterProfile::Pm5320, None, Duration::from_millis(300)).await;
    sim.set_mode(Mode::Exception);
    sim.set_currents(PerPhase([Amps(5.0), Amps(5.0), Amps(5.0)]));
    wait_until("several failed reads and a stale announcement", || {
        let addr = addr.clone();
        let stale = collector.stale().len();
        async move { stale > 0 && status_of(&addr).await.failed_reads >= 3 }
    })
    .await;
    let status = status_of(&addr).await;
    assert_eq!(status.good_reads, 0);
    assert!(status.last_reading.is_none());
    assert!(collector.readings().is_empty());
    assert!(
        status
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("exception")),
        "{:?}",
        status.last_error
    );
}

#[actix::test]
async fn nan_values_are_not_a_reading() {
    for profile in [MeterProfile::Iem3155, MeterProfile::Nsx] {
        let (sim, addr, collector) = start(profile, None, LONG).await;
        sim.set_mode(Mode::NaN);
        wait_until("several failed reads", || {
            let addr = addr.clone();
            async move { status_of(&addr).await.failed_reads >= 3 }
        })
        .await;
        let status = status_of(&addr).await;
        assert_eq!(status.good_reads, 0, "{profile:?}");
        assert!(collector.readings().is_empty(), "{profile:?}");
        assert!(
            status
                .last_error
                .as_deref()
                .is_some_and(|e| e.contains("not available")),
            "{:?}",
            status.last_error
        );

        sim.set_mode(Mode::Normal);
        wait_until("a reading once the values are numbers again", || {
            let n = collector.readings().len();
            async move { n > 0 }
        })
        .await;
        addr.send(StopMeter).await.expect("the meter actor stops");
    }
}

#[actix::test]
async fn a_restarted_meter_is_reconnected_and_read_again() {
    let (sim, addr, collector) = start(MeterProfile::Iem3155, None, LONG).await;
    let port = sim.local_addr();
    sim.set_currents(PerPhase([Amps(1.0), Amps(2.0), Amps(3.0)]));
    wait_until("a first reading", || {
        let n = collector.readings().len();
        async move { n > 0 }
    })
    .await;
    sim.stop().await;
    wait_until("the lost connection is noticed", || {
        let addr = addr.clone();
        async move { status_of(&addr).await.failed_reads >= 2 }
    })
    .await;

    let sim = SimulatedMeter::start(port, map_of(&config(port, MeterProfile::Iem3155, None)))
        .await
        .expect("the simulator restarts on its old port");
    sim.set_currents(PerPhase([Amps(40.0), Amps(41.0), Amps(42.0)]));
    sim.set_power_kw(28.0);
    wait_until("fresh readings from the restarted meter", || {
        let readings = collector.readings();
        async move { readings.iter().any(|r| reads(r, [40.0, 41.0, 42.0], 28.0)) }
    })
    .await;
    assert!(status_of(&addr).await.last_error.is_none());
}

#[actix::test]
async fn generic_maps_read_i16_input_registers_and_u32_low_word_first() {
    let i16_input = GenericMap {
        currents: [11, 12, 13],
        power: Some(20),
        register_type: RegisterType::I16,
        word_order: WordOrder::HighFirst,
        kind: RegisterKind::Input,
        current_scale: 0.1,
        power_scale: 0.01,
    };
    let u32_low_first = GenericMap {
        currents: [40001, 40003, 40005],
        power: Some(40011),
        register_type: RegisterType::U32,
        word_order: WordOrder::LowFirst,
        kind: RegisterKind::Holding,
        current_scale: 0.001,
        power_scale: 0.001,
    };
    for map in [i16_input, u32_low_first] {
        let (sim, addr, collector) = start(MeterProfile::Generic, Some(map.clone()), LONG).await;
        // 70 A at 1 mA needs the high word of a u32: a swapped word order would show.
        sim.set_currents(PerPhase([Amps(70.0), Amps(6.5), Amps(120.3)]));
        sim.set_power_kw(-4.2);
        let expected_power = if map.register_type == RegisterType::U32 {
            0.0
        } else {
            -4.2
        };
        wait_until(&format!("the generic map {map:?} reads back"), || {
            let readings = collector.readings();
            async move {
                readings
                    .iter()
                    .any(|r| reads(r, [70.0, 6.5, 120.3], expected_power))
            }
        })
        .await;
        addr.send(StopMeter).await.expect("the meter actor stops");
    }
}

#[actix::test]
async fn stopping_the_actor_stops_polling() {
    let (sim, addr, collector) = start(MeterProfile::Iem3155, None, LONG).await;
    sim.set_currents(PerPhase([Amps(3.0), Amps(3.0), Amps(3.0)]));
    wait_until("two readings", || {
        let n = collector.readings().len();
        async move { n >= 2 }
    })
    .await;
    addr.send(StopMeter).await.expect("the meter actor stops");
    wait_until("the actor is gone", || {
        let connected = addr.connected();
        async move { !connected }
    })
    .await;
    // Let a reading already in the collector's mailbox land, then watch ten poll periods.
    tokio::time::sleep(Duration::from_millis(100)).await;
    let before = collector.readings().len();
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        collector.readings().len(),
        before,
        "no reading after the actor stopped"
    );
}

#[test]
fn unit_id_255_is_accepted_over_tcp_and_refused_on_a_serial_line() {
    use ampwarden_actors::config::Config;
    let with_meter = |protocol: &str, address: &str| {
        format!(
            "[[zones]]\nid = \"main\"\nlimit_a = 100.0\nmeter = \"mtz\"\n\n\
             [[meters]]\nid = \"mtz\"\nprotocol = \"{protocol}\"\naddress = \"{address}\"\nunit_id = 255\nprofile = \"mtz\"\n"
        )
    };
    // A MasterPact MTZ behind an IFE answers at unit 255.
    assert!(Config::from_toml_str(&with_meter("modbus-tcp", "192.0.2.10:502")).is_ok());
    let problems = Config::from_toml_str(&with_meter("modbus-rtu", "/dev/ttyUSB0"))
        .expect_err("255 is reserved on RS-485");
    assert!(
        problems.to_string().contains("meters[0].unit_id"),
        "{problems}"
    );
}

#[actix::test]
async fn a_meter_that_refuses_its_power_register_still_gives_its_currents() {
    // The device (like a MicroLogic A ammeter) has no power register; the map asks for one.
    let device = GenericMap {
        currents: [101, 102, 103],
        power: None,
        register_type: RegisterType::U16,
        word_order: WordOrder::HighFirst,
        kind: RegisterKind::Holding,
        current_scale: 1.0,
        power_scale: 1.0,
    };
    let configured = GenericMap {
        power: Some(110),
        ..device.clone()
    };
    let sim = SimulatedMeter::start(
        loopback(),
        RegisterMap::generic(&device).expect("a valid map"),
    )
    .await
    .expect("the simulator starts");
    sim.set_currents(PerPhase([Amps(16.0), Amps(17.0), Amps(18.0)]));
    let (addr, collector) = start_actor(
        config(sim.local_addr(), MeterProfile::Generic, Some(configured)),
        LONG,
    );
    wait_until("currents without power", || {
        let readings = collector.readings();
        async move {
            readings.iter().any(|r| {
                r.power_kw.is_none()
                    && r.currents
                        .0
                        .iter()
                        .zip([16.0, 17.0, 18.0])
                        .all(|(a, b)| close(a.0, b))
            })
        }
    })
    .await;
    assert!(status_of(&addr).await.last_error.is_none());
}

/// A Modbus RTU meter on a serial line: here one end of a pseudo-terminal pair, served by
/// the simulated meter, the other end opened by path like a real RS-485 adapter (baud
/// rate, parity and stop bits set on it). Read, silenced until stale, read again.
#[actix::test]
async fn an_rtu_meter_is_read_over_a_serial_line() {
    use tokio_serial::SerialPort;

    let (device, adapter) = tokio_serial::SerialStream::pair().expect("a pseudo-terminal");
    let path = adapter.name().expect("the pty's path");
    // The pair's handle on the adapter end holds the lock a serial port is opened with:
    // let it go, but keep the end open (without a lock) so that the device end does not
    // see a hang-up while the meter actor closes and reopens the port.
    let keep_open = std::fs::File::open(&path).expect("the pty opens");
    drop(adapter);
    let mut rtu = config(loopback(), MeterProfile::Iem3155, None);
    rtu.protocol = MeterProtocol::ModbusRtu;
    rtu.address = path.clone();
    rtu.parity = Parity::Even;
    let sim = SimulatedMeter::serve_serial(device, map_of(&rtu));
    sim.set_currents(PerPhase([Amps(14.0), Amps(9.5), Amps(3.25)]));
    sim.set_power_kw(6.2);
    let stale_after = Duration::from_millis(600);
    let (addr, collector) = start_actor(rtu, stale_after);
    wait_until(
        &format!("the RTU meter on {path} reads 14/9.5/3.25 A"),
        || {
            let readings = collector.readings();
            async move { readings.iter().any(|r| reads(r, [14.0, 9.5, 3.25], 6.2)) }
        },
    )
    .await;

    sim.set_mode(Mode::Silent);
    wait_until("the silent RTU meter goes stale", || {
        let stale = collector.stale();
        async move { !stale.is_empty() }
    })
    .await;
    assert!(status_of(&addr).await.stale);

    sim.set_mode(Mode::Normal);
    sim.set_currents(PerPhase([Amps(20.0), Amps(20.0), Amps(20.0)]));
    wait_until("the RTU meter reads again", || {
        let readings = collector.readings();
        async move { readings.iter().any(|r| reads(r, [20.0, 20.0, 20.0], 6.2)) }
    })
    .await;
    assert!(!status_of(&addr).await.stale);
    drop(keep_open);
}
