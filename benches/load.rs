//! Load and soak benchmarks: the controller runs as a separate process (the release
//! binary cargo builds for this bench), measured through /proc; the fleet of OCPP
//! stations runs here. Both share the machine's cores. Figures and method: BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench load -- --stations 1000,5000            # ampwarden
//! cargo bench --bench load -- --stations 1000 --python        # and the Python `ocpp` CS
//! cargo bench --bench load -- --url ws://HOST:PORT/ocpp [--pid PID]   # any central system
//! cargo bench --bench load -- --soak 600                      # 5-min warm-up, 10-min soak with churn
//! AMPWARDEN_WRAP="heaptrack -o /tmp/soak" cargo bench --bench load -- --soak 400  # profiled
//! cargo bench --bench load -- --bms 30 --stations 1000        # BMS Modbus clients polling
//! ```

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use ampwarden::simulate::client::{ConnectOptions, Reply, StationClient};
use ampwarden::simulate::fleet::Fleet;
use ampwarden::simulate::scenario::{stations_toml, Churn, PhaseLayout, Scenario};
use ampwarden::simulate::vehicle::VehicleMix;
use ampwarden_actors::store::Store;
use clap::Parser;
use serde_json::{json, Value};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

#[derive(Parser, Debug)]
#[command(about = "Load and soak benchmarks of an OCPP central system")]
struct Args {
    /// Fleet sizes to measure, e.g. 1000,5000 (soak: one size, default 500).
    #[arg(long, value_delimiter = ',')]
    stations: Vec<usize>,
    /// Measure this central system instead of starting ampwarden.
    #[arg(long)]
    url: Option<String>,
    /// Process id of the central system at --url, for its memory and CPU.
    #[arg(long)]
    pid: Option<u32>,
    /// Also measure the Python `ocpp` central system (benches/python_ocpp_cs.sh).
    #[arg(long)]
    python: bool,
    /// Seconds of each measured phase (sustained rate, saturation).
    #[arg(long, default_value_t = 20)]
    steady: u64,
    /// Target rate of the sustained phase, OCPP messages per second.
    #[arg(long, default_value_t = 10_000.0)]
    rate: f64,
    /// No transactions: MeterValues then belong to none and are not stored, which
    /// measures the protocol path alone.
    #[arg(long)]
    no_transactions: bool,
    /// Run the soak instead: this many seconds after the warm-up.
    #[arg(long)]
    soak: Option<u64>,
    /// Seconds the soak's fleet runs before memory growth is judged: every station's
    /// connection turns over about twice (one every two minutes on average), so the
    /// per-connection read buffers of actix-http, which grow once from 8 to 16 KB
    /// (BENCHMARKS.md), have reached their steady state.
    #[arg(long, default_value_t = 300)]
    warm_up: u64,
    /// The BMS bench instead: this many seconds without, then with, Modbus clients
    /// polling the controller under a fleet of `--stations` (default 1000).
    #[arg(long)]
    bms: Option<u64>,
    /// BMS clients, each polling every 100 ms.
    #[arg(long, default_value_t = 10)]
    bms_clients: usize,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// Simultaneous WebSocket handshakes while the fleet connects.
const CONNECT_CONCURRENCY: usize = 256;
/// The largest zone limit the configuration accepts.
const ZONE_LIMIT_MAX_A: f64 = 10_000.0;
/// Settling time before the idle memory is read.
const IDLE_SETTLE: Duration = Duration::from_secs(5);

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the fleet");
    println!("{}", machine_description());
    if let Some(seconds) = args.bms {
        let stations = args.stations.first().copied().unwrap_or(1000);
        check_fd_limit(stations);
        runtime.block_on(bms(stations, seconds, args.bms_clients));
        return;
    }
    if let Some(seconds) = args.soak {
        let stations = args.stations.first().copied().unwrap_or(500);
        check_fd_limit(stations);
        runtime.block_on(soak(stations, args.warm_up, seconds));
        return;
    }
    let sizes = if args.stations.is_empty() {
        vec![1000]
    } else {
        args.stations.clone()
    };
    let mut rows = Vec::new();
    for &n in &sizes {
        check_fd_limit(n);
        let targets: Vec<TargetKind> = match &args.url {
            Some(url) => vec![TargetKind::External {
                url: url.clone(),
                pid: args.pid,
            }],
            None if args.python => vec![TargetKind::Ampwarden, TargetKind::Python],
            None => vec![TargetKind::Ampwarden],
        };
        for kind in targets {
            match runtime.block_on(load(kind, n, &args)) {
                Ok(row) => rows.push(row),
                Err(e) => eprintln!("load run failed: {e}"),
            }
        }
    }
    println!("\n{}", LoadRow::table(&rows));
}

// --- the system under test --------------------------------------------------------------

#[derive(Clone, Debug)]
enum TargetKind {
    Ampwarden,
    Python,
    External { url: String, pid: Option<u32> },
}

/// A central system being measured.
struct Target {
    name: String,
    url: String,
    pid: Option<u32>,
    child: Option<Child>,
    /// The central system's log (and ampwarden's store, until audited).
    dir: Option<tempfile::TempDir>,
    store_path: Option<PathBuf>,
    /// ampwarden's `/metrics`, for its heap figures.
    metrics_url: Option<String>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// Starts the release `ampwarden` (built by cargo for this bench) on `config_body`.
fn start_ampwarden(config_body: &str) -> Result<Target, String> {
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let (http, ocpp) = (free_port(), free_port());
    let store_path = dir.path().join("data");
    let text = format!(
        "[server]\nhttp_listen = \"127.0.0.1:{http}\"\nocpp_listen = \"127.0.0.1:{ocpp}\"\n\n\
         [storage]\npath = {:?}\n\n{config_body}",
        store_path.display().to_string()
    );
    let config = dir.path().join("load.toml");
    std::fs::write(&config, text).map_err(|e| e.to_string())?;
    let log =
        std::fs::File::create(dir.path().join("controller.log")).map_err(|e| e.to_string())?;
    // AMPWARDEN_WRAP="heaptrack -o /tmp/soak" runs the controller under a profiler
    // (the RSS figures are then the wrapper's, not the controller's).
    let wrap = std::env::var("AMPWARDEN_WRAP").unwrap_or_default();
    let mut words = wrap.split_whitespace();
    let mut command = match words.next() {
        Some(program) => {
            let mut c = Command::new(program);
            c.args(words).arg(env!("CARGO_BIN_EXE_ampwarden"));
            c
        }
        None => Command::new(env!("CARGO_BIN_EXE_ampwarden")),
    };
    let child = command
        .arg("--config")
        .arg(&config)
        .env(
            "RUST_LOG",
            std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()),
        )
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot start ampwarden: {e}"))?;
    let mut target = Target {
        name: "ampwarden".into(),
        url: format!("ws://127.0.0.1:{ocpp}/ocpp"),
        pid: Some(child.id()),
        child: Some(child),
        dir: Some(dir),
        store_path: Some(store_path),
        metrics_url: Some(format!("http://127.0.0.1:{http}/metrics")),
    };
    target.wait_listening(SocketAddr::from(([127, 0, 0, 1], ocpp)))?;
    Ok(target)
}

fn start_python() -> Result<Target, String> {
    let port = free_port();
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python_ocpp_cs.sh");
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let log =
        std::fs::File::create(dir.path().join("controller.log")).map_err(|e| e.to_string())?;
    let child = Command::new("sh")
        .arg(&script)
        .arg(port.to_string())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", script.display()))?;
    let mut target = Target {
        name: "python ocpp".into(),
        url: format!("ws://127.0.0.1:{port}/ocpp"),
        pid: Some(child.id()),
        child: Some(child),
        dir: Some(dir),
        store_path: None,
        metrics_url: None,
    };
    // The first run creates the venv and installs the packages: give it time.
    target.wait_listening(SocketAddr::from(([127, 0, 0, 1], port)))?;
    Ok(target)
}

impl Target {
    fn wait_listening(&mut self, addr: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(300);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    let log = self
                        .dir
                        .as_ref()
                        .and_then(|d| std::fs::read_to_string(d.path().join("controller.log")).ok())
                        .unwrap_or_default();
                    return Err(format!("{} exited at start: {status}\n{log}", self.name));
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Err(format!("{} does not listen on {addr}", self.name))
    }

    fn stats(&self) -> Option<ProcStats> {
        self.pid.and_then(ProcStats::read)
    }

    /// SIGTERM, then wait for the exit (ampwarden flushes its store on the way out).
    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(child.id().to_string())
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        eprintln!("{} did not stop within 15 s: killed", self.name);
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Target {
    fn drop(&mut self) {
        self.stop();
    }
}

// --- /proc -------------------------------------------------------------------------------

#[derive(Clone, Copy, Debug)]
struct ProcStats {
    rss_kb: u64,
    hwm_kb: u64,
    /// utime + stime, clock ticks.
    cpu_ticks: u64,
}

impl ProcStats {
    fn read(pid: u32) -> Option<ProcStats> {
        Self::read_at(&format!("/proc/{pid}"))
    }

    fn own() -> Option<ProcStats> {
        Self::read_at("/proc/self")
    }

    fn read_at(dir: &str) -> Option<ProcStats> {
        let status = std::fs::read_to_string(format!("{dir}/status")).ok()?;
        let kb = |key: &str| {
            status
                .lines()
                .find(|l| l.starts_with(key))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse::<u64>().ok())
        };
        let stat = std::fs::read_to_string(format!("{dir}/stat")).ok()?;
        // Fields after the command name (which may hold spaces) start at state (field 3).
        let rest = &stat[stat.rfind(')')? + 2..];
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let utime: u64 = fields.get(11)?.parse().ok()?;
        let stime: u64 = fields.get(12)?.parse().ok()?;
        Some(ProcStats {
            rss_kb: kb("VmRSS:")?,
            hwm_kb: kb("VmHWM:")?,
            cpu_ticks: utime + stime,
        })
    }
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

/// CPU used between two readings, in % of one core.
fn cpu_percent(before: Option<ProcStats>, after: Option<ProcStats>, wall: Duration) -> Option<f64> {
    let (b, a) = (before?, after?);
    let seconds = (a.cpu_ticks.saturating_sub(b.cpu_ticks)) as f64 / clock_ticks_per_second();
    Some(100.0 * seconds / wall.as_secs_f64())
}

fn machine_description() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .map(str::trim)
        .unwrap_or("unknown CPU");
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap_or_default();
    let ram_gb = meminfo
        .lines()
        .find(|l| l.starts_with("MemTotal:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0 / 1024.0);
    format!(
        "machine: {model}, {cores} cores, {ram_gb:.1} GiB RAM; date {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )
}

fn check_fd_limit(stations: usize) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    if let Some(soft) = soft {
        if soft < stations + 256 {
            eprintln!(
                "warning: the open-file limit is {soft}; {stations} stations need more: \
                 run `ulimit -n {}` first",
                stations * 2 + 1024
            );
        }
    }
}

// --- latency ---------------------------------------------------------------------------

/// Round trips of one phase, µs.
#[derive(Default)]
struct Latencies(Vec<u32>);

impl Latencies {
    fn percentile(&mut self, p: f64) -> Duration {
        if self.0.is_empty() {
            return Duration::ZERO;
        }
        self.0.sort_unstable();
        let i = ((self.0.len() - 1) as f64 * p).round() as usize;
        Duration::from_micros(u64::from(self.0[i]))
    }
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("–".into(), |k| format!("{:.1} MB", k as f64 / 1024.0))
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

// --- the load run ------------------------------------------------------------------------

/// One load station: its client, and its transaction once started.
struct Loaded {
    client: StationClient,
    transaction: Option<i32>,
    meter_wh: i64,
}

#[derive(Clone, Debug, Default)]
struct PhaseFigures {
    messages: u64,
    errors: u64,
    rate: f64,
    p50: Duration,
    p99: Duration,
    cpu: Option<f64>,
    client_cpu: Option<f64>,
    /// The central system's RSS at the end of the phase.
    rss_end_kb: Option<u64>,
}

#[derive(Clone, Debug)]
struct LoadRow {
    target: String,
    stations: usize,
    booted: usize,
    boot_time: Duration,
    boot_p99: Duration,
    /// The central system with no station configured (ampwarden starts an actor per
    /// configured station, so `rss_base_kb` already holds those).
    rss_empty_kb: Option<u64>,
    rss_base_kb: Option<u64>,
    rss_idle_kb: Option<u64>,
    sustained: PhaseFigures,
    target_rate: f64,
    saturation: PhaseFigures,
    rss_peak_kb: Option<u64>,
    lost: Option<usize>,
}

impl LoadRow {
    /// Memory per connected idle station, all included (vs. the empty central system).
    fn per_station_kb(&self) -> Option<f64> {
        let (b, i) = (self.rss_empty_kb.or(self.rss_base_kb)?, self.rss_idle_kb?);
        Some(i.saturating_sub(b) as f64 / self.stations as f64)
    }

    fn table(rows: &[LoadRow]) -> String {
        let pct = |c: Option<f64>| c.map_or("–".into(), |c| format!("{c:.0} %"));
        let mut t = String::from(
            "| central system | stations | connect + boot (p99 boot RTT) | RSS empty / configured → idle (per station) | sustained msg/s (target), p50 / p99, CPU | saturation msg/s, p50 / p99, CPU | peak RSS | lost tx |\n\
             |---|---|---|---|---|---|---|---|\n",
        );
        for r in rows {
            let _ = writeln!(
                t,
                "| {} | {} ({} booted) | {:.2} s ({}) | {} / {} → {} ({}) | {:.0} ({:.0}), {} / {}, {} | {:.0}, {} / {}, {} | {} | {} |",
                r.target,
                r.stations,
                r.booted,
                r.boot_time.as_secs_f64(),
                ms(r.boot_p99),
                mb(r.rss_empty_kb),
                mb(r.rss_base_kb),
                mb(r.rss_idle_kb),
                r.per_station_kb().map_or("–".into(), |k| format!("{k:.1} KB")),
                r.sustained.rate,
                r.target_rate,
                ms(r.sustained.p50),
                ms(r.sustained.p99),
                pct(r.sustained.cpu),
                r.saturation.rate,
                ms(r.saturation.p50),
                ms(r.saturation.p99),
                pct(r.saturation.cpu),
                mb(r.rss_peak_kb),
                r.lost.map_or("–".into(), |l| l.to_string()),
            );
        }
        t
    }
}

fn load_config(stations: usize) -> (Scenario, String) {
    let scenario = Scenario {
        stations,
        id_prefix: "LOAD".into(),
        ..Scenario::default()
    };
    let body = format!(
        "[site]\nmode = \"static\"\n\n[auth]\nmode = \"accept_all\"\n\n\
         [[zones]]\nid = \"main\"\nlimit_a = {:.1}\n\n{}",
        (stations as f64 * 32.0).min(ZONE_LIMIT_MAX_A),
        stations_toml(&scenario.plan(), |_| "main")
    );
    (scenario, body)
}

async fn load(kind: TargetKind, n: usize, args: &Args) -> Result<LoadRow, String> {
    let (scenario, body) = load_config(n);
    let empty = match &kind {
        TargetKind::Ampwarden => empty_rss_kb(),
        _ => None,
    };
    let mut target = match &kind {
        TargetKind::Ampwarden => start_ampwarden(&body)?,
        TargetKind::Python => start_python()?,
        TargetKind::External { url, pid } => Target {
            name: url.clone(),
            url: url.clone(),
            pid: *pid,
            child: None,
            dir: None,
            store_path: None,
            metrics_url: None,
        },
    };
    if args.no_transactions {
        target.name.push_str(" (no transactions)");
    }
    println!("\n== {} with {n} stations", target.name);
    tokio::time::sleep(Duration::from_secs(1)).await;
    let base = target.stats();

    // Connect and boot the whole fleet.
    let ids: Vec<String> = scenario.plan().into_iter().map(|p| p.id).collect();
    let permits = Arc::new(Semaphore::new(CONNECT_CONCURRENCY));
    let started = Instant::now();
    let mut boots = JoinSet::new();
    for id in ids {
        let url = format!("{}/{id}", target.url);
        let permits = Arc::clone(&permits);
        boots.spawn(async move {
            let _permit = permits.acquire().await;
            let client = StationClient::connect(&url, ConnectOptions::default())
                .await
                .map_err(|e| format!("{id}: {e}"))?;
            let at = Instant::now();
            let boot = json!({ "chargePointVendor": "ampwarden", "chargePointModel": "load" });
            let reply = client
                .call("BootNotification", boot)
                .await
                .map_err(|e| format!("{id}: {e}"))?;
            let rtt = at.elapsed();
            match reply {
                Reply::Result(v) if v["status"] == "Accepted" => Ok((client, rtt)),
                other => Err(format!("{id}: boot not accepted: {other:?}")),
            }
        });
    }
    let mut fleet = Vec::with_capacity(n);
    let mut boot_rtts = Latencies::default();
    let mut failures = 0;
    while let Some(joined) = boots.join_next().await {
        match joined.map_err(|e| e.to_string()).and_then(|r| r) {
            Ok((client, rtt)) => {
                boot_rtts.0.push(rtt.as_micros() as u32);
                fleet.push(Loaded {
                    client,
                    transaction: None,
                    meter_wh: 1000,
                });
            }
            Err(e) => {
                failures += 1;
                if failures <= 5 {
                    eprintln!("  {e}");
                }
            }
        }
    }
    let boot_time = started.elapsed();
    println!(
        "  connect + boot: {} of {n} in {:.2} s (boot RTT p50 {}, p99 {})",
        fleet.len(),
        boot_time.as_secs_f64(),
        ms(boot_rtts.percentile(0.5)),
        ms(boot_rtts.percentile(0.99))
    );

    // Idle: only the controller's own configuration calls, answered by the clients.
    tokio::time::sleep(IDLE_SETTLE).await;
    let idle = target.stats();
    if let (Some(b), Some(i)) = (base, idle) {
        let empty = empty.unwrap_or(b.rss_kb);
        println!(
            "  RSS {} empty, {} configured, {} with {} idle stations: {:.1} KB per station",
            mb(Some(empty)),
            mb(Some(b.rss_kb)),
            mb(Some(i.rss_kb)),
            fleet.len(),
            i.rss_kb.saturating_sub(empty) as f64 / fleet.len().max(1) as f64
        );
    }

    // Every station starts a transaction: MeterValues then belong to it (and are stored).
    let fleet = if args.no_transactions {
        fleet
    } else {
        start_transactions(fleet).await
    };
    let fleet: Vec<Arc<tokio::sync::Mutex<Loaded>>> = fleet
        .into_iter()
        .map(|l| Arc::new(tokio::sync::Mutex::new(l)))
        .collect();

    let window = Duration::from_secs(args.steady);
    let sustained = phase(&fleet, &target, window, Some(args.rate)).await;
    println!(
        "  sustained: {:.0} msg/s for a target of {:.0} ({} answered, {} errors), RTT p50 {} p99 {}, CPU {}, RSS after {}",
        sustained.rate,
        args.rate,
        sustained.messages,
        sustained.errors,
        ms(sustained.p50),
        ms(sustained.p99),
        sustained.cpu.map_or("–".into(), |c| format!("{c:.0} %")),
        mb(sustained.rss_end_kb),
    );
    let saturation = phase(&fleet, &target, window, None).await;
    println!(
        "  saturation: {:.0} msg/s ({} answered, {} errors), RTT p50 {} p99 {}, CPU {} (the fleet itself: {}), RSS after {}",
        saturation.rate,
        saturation.messages,
        saturation.errors,
        ms(saturation.p50),
        ms(saturation.p99),
        saturation.cpu.map_or("–".into(), |c| format!("{c:.0} %")),
        saturation.client_cpu.map_or("–".into(), |c| format!("{c:.0} %")),
        mb(saturation.rss_end_kb),
    );

    let stopped = stop_transactions(&fleet).await;
    let peak = target.stats().map(|s| s.hwm_kb);
    drop(fleet);
    target.stop();
    let lost = match &target.store_path {
        Some(path) if !stopped.is_empty() => Some(audit_store(path, &stopped)?),
        _ => None,
    };
    if let Some(lost) = lost {
        println!(
            "  transactions: {} stopped by the fleet, {lost} missing or not closed in the store",
            stopped.len()
        );
    }
    Ok(LoadRow {
        target: target.name.clone(),
        stations: n,
        booted: boot_rtts.0.len(),
        boot_time,
        boot_p99: boot_rtts.percentile(0.99),
        rss_empty_kb: empty.or(base.map(|s| s.rss_kb)),
        rss_base_kb: base.map(|s| s.rss_kb),
        rss_idle_kb: idle.map(|s| s.rss_kb),
        sustained,
        target_rate: args.rate,
        saturation,
        rss_peak_kb: peak,
        lost,
    })
}

/// The RSS of ampwarden with one zone and no station, settled.
fn empty_rss_kb() -> Option<u64> {
    let mut target = start_ampwarden("[[zones]]\nid = \"main\"\nlimit_a = 63.0\n").ok()?;
    std::thread::sleep(Duration::from_secs(1));
    let rss = target.stats().map(|s| s.rss_kb);
    target.stop();
    rss
}

async fn start_transactions(fleet: Vec<Loaded>) -> Vec<Loaded> {
    let mut set = JoinSet::new();
    for (i, mut l) in fleet.into_iter().enumerate() {
        set.spawn(async move {
            let start = json!({ "connectorId": 1, "idTag": format!("TAG-{i}"), "meterStart": l.meter_wh, "timestamp": now() });
            if let Ok(Reply::Result(v)) = l.client.call("StartTransaction", start).await {
                l.transaction = v["transactionId"].as_i64().and_then(|t| i32::try_from(t).ok());
            }
            let status = json!({ "connectorId": 1, "errorCode": "NoError", "status": "Charging" });
            let _ = l.client.call("StatusNotification", status).await;
            l
        });
    }
    let mut out = Vec::new();
    while let Some(Ok(l)) = set.join_next().await {
        out.push(l);
    }
    let started = out.iter().filter(|l| l.transaction.is_some()).count();
    println!("  {started} transactions started");
    out
}

/// StopTransaction everywhere; the (id, meter stop) of every answered stop.
async fn stop_transactions(fleet: &[Arc<tokio::sync::Mutex<Loaded>>]) -> BTreeMap<i32, i64> {
    let mut set = JoinSet::new();
    for l in fleet {
        let l = Arc::clone(l);
        set.spawn(async move {
            let l = l.lock().await;
            let tx = l.transaction?;
            let stop = json!({ "transactionId": tx, "meterStop": l.meter_wh, "timestamp": now(), "reason": "Local" });
            match l.client.call("StopTransaction", stop).await {
                Ok(Reply::Result(_)) => Some((tx, l.meter_wh)),
                _ => None,
            }
        });
    }
    let mut stopped = BTreeMap::new();
    while let Some(joined) = set.join_next().await {
        if let Ok(Some((tx, wh))) = joined {
            stopped.insert(tx, wh);
        }
    }
    stopped
}

/// Transactions stopped by the fleet that the store lacks or holds open / differently.
fn audit_store(path: &Path, stopped: &BTreeMap<i32, i64>) -> Result<usize, String> {
    let store = Store::open(path).map_err(|e| format!("cannot open the store: {e}"))?;
    let mut lost = 0;
    for (id, wh) in stopped {
        let ok = matches!(
            store.transaction(*id),
            Ok(Some(t)) if t.stop.as_ref().map(|s| s.meter_stop_wh) == Some(*wh)
        );
        if !ok {
            lost += 1;
        }
    }
    Ok(lost)
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn meter_values(transaction: Option<i32>, wh: i64) -> Value {
    let mut payload = json!({
        "connectorId": 1,
        "meterValue": [{ "timestamp": now(), "sampledValue": [
            { "value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A" },
            { "value": "16.0", "measurand": "Current.Import", "phase": "L2", "unit": "A" },
            { "value": "16.0", "measurand": "Current.Import", "phase": "L3", "unit": "A" },
            { "value": wh.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh" },
        ]}],
    });
    if let Some(t) = transaction {
        payload["transactionId"] = json!(t);
    }
    payload
}

/// Heartbeats and MeterValues, alternately, from every station for `window`: at `rate`
/// messages per second spread evenly over the fleet, or as fast as answers come (`None`).
async fn phase(
    fleet: &[Arc<tokio::sync::Mutex<Loaded>>],
    target: &Target,
    window: Duration,
    rate: Option<f64>,
) -> PhaseFigures {
    let n = fleet.len().max(1);
    let answered = Arc::new(AtomicU64::new(0));
    let errors = Arc::new(AtomicU64::new(0));
    let before = (target.stats(), ProcStats::own());
    let started = Instant::now();
    let end = tokio::time::Instant::now() + window;
    let mut set = JoinSet::new();
    for (i, l) in fleet.iter().enumerate() {
        let l = Arc::clone(l);
        let answered = Arc::clone(&answered);
        let errors = Arc::clone(&errors);
        set.spawn(async move {
            let mut l = l.lock().await;
            let mut rtts = Vec::new();
            let mut timer = rate.map(|r| {
                let period = Duration::from_secs_f64(n as f64 / r);
                let first = tokio::time::Instant::now() + period.mul_f64(i as f64 / n as f64);
                let mut t = tokio::time::interval_at(first, period);
                // A late message goes out as soon as it can: the schedule, not the pace, is fixed.
                t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
                t
            });
            let mut k = 0u64;
            loop {
                if let Some(t) = timer.as_mut() {
                    tokio::select! {
                        _ = t.tick() => {}
                        _ = tokio::time::sleep_until(end) => break,
                    }
                }
                if tokio::time::Instant::now() >= end {
                    break;
                }
                k += 1;
                let (action, payload) = if k % 2 == 0 {
                    ("Heartbeat", json!({}))
                } else {
                    l.meter_wh += 10;
                    ("MeterValues", meter_values(l.transaction, l.meter_wh))
                };
                let at = Instant::now();
                match l.client.call(action, payload).await {
                    Ok(Reply::Result(_)) => {
                        rtts.push(at.elapsed().as_micros() as u32);
                        answered.fetch_add(1, Ordering::Relaxed);
                    }
                    _ => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
            rtts
        });
    }
    let mut latencies = Latencies::default();
    while let Some(joined) = set.join_next().await {
        if let Ok(rtts) = joined {
            latencies.0.extend(rtts);
        }
    }
    let wall = started.elapsed();
    let after = (target.stats(), ProcStats::own());
    let messages = answered.load(Ordering::Relaxed);
    PhaseFigures {
        messages,
        errors: errors.load(Ordering::Relaxed),
        rate: messages as f64 / wall.as_secs_f64(),
        p50: latencies.percentile(0.5),
        p99: latencies.percentile(0.99),
        cpu: cpu_percent(before.0, after.0, wall),
        client_cpu: cpu_percent(before.1, after.1, wall),
        rss_end_kb: after.0.map(|s| s.rss_kb),
    }
}

// --- the soak -----------------------------------------------------------------------------

/// RSS is sampled this often during the soak.
const SOAK_SAMPLE: Duration = Duration::from_secs(10);
/// The growth while the connections' buffers settle is also shown from this point.
const SETTLING_SHOWN_FROM: Duration = Duration::from_secs(60);

/// How a series of (seconds, value) samples grew from the first sample at or after `from`.
struct Growth {
    base: u64,
    last: u64,
    max: u64,
}

impl Growth {
    fn of(series: &[(u64, u64)], from: u64) -> Option<Growth> {
        let window: Vec<u64> = series
            .iter()
            .filter(|(t, _)| *t >= from)
            .map(|(_, v)| *v)
            .collect();
        Some(Growth {
            base: *window.first()?,
            last: *window.last()?,
            max: *window.iter().max()?,
        })
    }

    fn percent(&self) -> f64 {
        100.0 * (self.last as f64 - self.base as f64) / self.base.max(1) as f64
    }
}

/// The fleet runs `warm_up` seconds, then the soak proper `seconds` more; memory growth
/// is judged over the soak proper.
async fn soak(stations: usize, warm_up: u64, seconds: u64) {
    let meter_port = free_port();
    let scenario = Scenario {
        stations,
        id_prefix: "SOAK".into(),
        seed: 11,
        // Ten simulated minutes per second: a new vehicle every few seconds per station.
        speedup: 600.0,
        phases: PhaseLayout::Mixed,
        site_limit_a: stations as f64 * 10.0,
        meter_port: Some(meter_port),
        summary_every_s: 0,
        vehicles: VehicleMix {
            mean_absence_minutes: 20.0,
            stay_hours: (0.25, 1.5),
            ..VehicleMix::default()
        },
        churn: Churn {
            reconnect_mean_s: Some(120.0),
            meter_dropout_every_s: Some(90.0),
            meter_dropout_s: 20.0,
            ..Churn::default()
        },
        ..Scenario::default()
    };
    let body = format!(
        "[site]\nmode = \"dynamic\"\n\n[control]\nmeter_values_interval_s = 5\n\n\
         [auth]\nmode = \"accept_all\"\n\n\
         [[zones]]\nid = \"main\"\nlimit_a = {limit:.1}\nstatic_ev_limit_a = {static_limit:.1}\nmeter = \"site\"\n\n\
         [[meters]]\nid = \"site\"\naddress = \"127.0.0.1:{meter_port}\"\nprofile = \"iem3155\"\n\n{}",
        stations_toml(&scenario.plan(), |_| "main"),
        limit = scenario.site_limit_a,
        static_limit = scenario.site_limit_a * 0.6,
    );
    let mut target = match start_ampwarden(&body) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("soak: {e}");
            return;
        }
    };
    println!(
        "\n== soak: {stations} stations, {warm_up} s warm-up then {seconds} s (reconnects, sessions, meter dropouts)"
    );
    let fleet = match Fleet::start(&target.url, scenario, None).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("soak: {e}");
            return;
        }
    };
    let started = Instant::now();
    let mut samples: Vec<(u64, u64)> = Vec::new();
    let mut heap_samples: Vec<(u64, HeapFigures)> = Vec::new();
    // Transactions the fleet has completed, at each sample: what the store holds.
    let mut stored: Vec<(u64, u64)> = Vec::new();
    let http = reqwest::Client::new();
    let mut every = tokio::time::interval(SOAK_SAMPLE);
    while started.elapsed() < Duration::from_secs(warm_up + seconds) {
        every.tick().await;
        let rss = target.stats().map_or(0, |s| s.rss_kb);
        let heap = match &target.metrics_url {
            Some(url) => HeapFigures::scrape(&http, url).await,
            None => None,
        };
        let t = started.elapsed().as_secs();
        samples.push((t, rss));
        stored.push((t, fleet.completed_transactions() as u64));
        let heap_text = heap.map_or(String::new(), |h| {
            heap_samples.push((t, h));
            format!(
                "  heap in use {:.1} MB, free held {:.1} MB",
                h.in_use as f64 / MIB,
                h.free_held as f64 / MIB
            )
        });
        println!(
            "  {t:>4} s  RSS {:.1} MB{heap_text}  {}",
            rss as f64 / 1024.0,
            fleet.summary()
        );
    }
    let report = fleet.stop().await;
    target.stop();
    println!("{report}");
    if let Some(g) = Growth::of(&samples, warm_up) {
        println!(
            "  RSS {:.1} MB at the end of the warm-up ({warm_up} s), {:.1} MB at the end, max {:.1} MB: \
             growth {:+.1} % over the {seconds} s soak (target < 5 %)",
            g.base as f64 / 1024.0,
            g.last as f64 / 1024.0,
            g.max as f64 / 1024.0,
            g.percent()
        );
    }
    if let Some(g) = Growth::of(&samples, SETTLING_SHOWN_FROM.as_secs()) {
        println!(
            "  RSS from {} s, while the connections' buffers settle: {:.1} -> {:.1} MB ({:+.1} %)",
            SETTLING_SHOWN_FROM.as_secs(),
            g.base as f64 / 1024.0,
            g.last as f64 / 1024.0,
            g.percent()
        );
    }
    let in_use: Vec<(u64, u64)> = heap_samples.iter().map(|(t, h)| (*t, h.in_use)).collect();
    let free: Vec<(u64, u64)> = heap_samples
        .iter()
        .map(|(t, h)| (*t, h.free_held))
        .collect();
    if let (Some(g), Some(f), Some(n)) = (
        Growth::of(&in_use, warm_up),
        Growth::of(&free, warm_up),
        Growth::of(&stored, warm_up),
    ) {
        let grown = g.last as f64 - g.base as f64;
        let transactions = n.last.saturating_sub(n.base);
        println!(
            "  heap in use {:.1} -> {:.1} MB over the soak ({:+.2} MB, {:.0} B per transaction \
             stored meanwhile: {transactions}); free held {:.1} -> {:.1} MB",
            g.base as f64 / MIB,
            g.last as f64 / MIB,
            grown / MIB,
            grown / transactions.max(1) as f64,
            f.base as f64 / MIB,
            f.last as f64 / MIB,
        );
    }
    let Some(path) = target.store_path.as_ref() else {
        return;
    };
    match Store::open(path) {
        Ok(store) => {
            let audit = report.audit(&store);
            println!(
                "  transactions: {} closed and {} open as the fleet left them; lost {:?}, \
                 mismatched {:?}, unknown to the fleet {:?}",
                audit.closed, audit.open, audit.lost, audit.mismatched, audit.unknown
            );
        }
        Err(e) => eprintln!("soak: cannot open the store: {e}"),
    }
    let series: Vec<String> = samples
        .iter()
        .map(|(t, r)| format!("{t}:{:.1}", *r as f64 / 1024.0))
        .collect();
    println!("  RSS series (s:MB): {}", series.join(" "));
    let series: Vec<String> = heap_samples
        .iter()
        .map(|(t, h)| format!("{t}:{:.1}", h.in_use as f64 / MIB))
        .collect();
    println!("  heap in use series (s:MB): {}", series.join(" "));
}

const MIB: f64 = 1024.0 * 1024.0;

/// ampwarden's allocator figures, from its `/metrics`.
#[derive(Debug, Clone, Copy)]
struct HeapFigures {
    in_use: u64,
    free_held: u64,
}

impl HeapFigures {
    async fn scrape(http: &reqwest::Client, url: &str) -> Option<HeapFigures> {
        let body = http.get(url).send().await.ok()?.text().await.ok()?;
        let gauge = |name: &str| -> Option<u64> {
            let line = body.lines().find(|l| l.starts_with(name))?;
            line.rsplit(' ')
                .next()?
                .parse::<f64>()
                .ok()
                .map(|v| v as u64)
        };
        Some(HeapFigures {
            in_use: gauge("ampwarden_heap_in_use_bytes ")?,
            free_held: gauge("ampwarden_heap_free_held_bytes ")?,
        })
    }
}

// --- BMS: Modbus clients polling under load ---------------------------------------------

/// One BMS poll: the header, the site, the site cap read-back, a zone block and one
/// station block (each client walks through the station blocks).
const BMS_POLL: [(u16, u16); 4] = [(0, 14), (100, 40), (210, 10), (1000, 40)];

async fn bms(stations: usize, seconds: u64, clients: usize) {
    use tokio_modbus::client::tcp;
    use tokio_modbus::prelude::*;

    let meter_port = free_port();
    let bms_port = free_port();
    let scenario = Scenario {
        stations,
        id_prefix: "BMS".into(),
        seed: 5,
        // A simulated minute per second: vehicles come and go, stations report.
        speedup: 60.0,
        phases: PhaseLayout::Mixed,
        site_limit_a: (stations as f64 * 10.0).min(ZONE_LIMIT_MAX_A),
        meter_port: Some(meter_port),
        summary_every_s: 0,
        ..Scenario::default()
    };
    let body = format!(
        "[site]\nmode = \"dynamic\"\n\n[auth]\nmode = \"accept_all\"\n\n\
         [bms]\nmodbus_listen = \"127.0.0.1:{bms_port}\"\nwrite = true\nfailsafe_current_a = {limit:.1}\nmax_clients = 64\n\n\
         [[zones]]\nid = \"main\"\nlimit_a = {limit:.1}\nstatic_ev_limit_a = {static_limit:.1}\nmeter = \"site\"\n\n\
         [[meters]]\nid = \"site\"\naddress = \"127.0.0.1:{meter_port}\"\nprofile = \"iem3155\"\n\n{}",
        stations_toml(&scenario.plan(), |_| "main"),
        limit = scenario.site_limit_a,
        static_limit = scenario.site_limit_a * 0.6,
    );
    let mut target = match start_ampwarden(&body) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("bms: {e}");
            return;
        }
    };
    let fleet = match Fleet::start(&target.url, scenario, None).await {
        Ok(f) => f,
        Err(e) => {
            eprintln!("bms: {e}");
            return;
        }
    };
    println!("\n== BMS: {stations} stations, {clients} Modbus clients polling every 100 ms");
    tokio::time::sleep(Duration::from_secs(20)).await;
    let measure = Duration::from_secs(seconds);
    let (before, at) = (target.stats(), Instant::now());
    tokio::time::sleep(measure).await;
    let idle = cpu_percent(before, target.stats(), at.elapsed());

    let addr = SocketAddr::from(([127, 0, 0, 1], bms_port));
    let stop = Instant::now() + measure;
    let mut tasks = JoinSet::new();
    for c in 0..clients {
        tasks.spawn(async move {
            let mut reads = Vec::new();
            let mut writes = Vec::new();
            let mut errors = 0u32;
            let Ok(mut ctx) = tcp::connect_slave(addr, Slave(1)).await else {
                return (reads, writes, 1);
            };
            let mut every = tokio::time::interval(Duration::from_millis(100));
            let mut n = 0u16;
            while Instant::now() < stop {
                every.tick().await;
                let station = (10000 + 30 * ((n + c as u16) % 100), 30);
                for (address, count) in BMS_POLL.into_iter().chain([station]) {
                    let t = Instant::now();
                    match ctx.read_holding_registers(address, count).await {
                        Ok(Ok(_)) => reads.push(t.elapsed().as_micros() as u32),
                        _ => errors += 1,
                    }
                }
                // The first client holds a cap as a BMS does: rewritten every 5 s.
                if c == 0 && n % 50 == 0 {
                    let b = 1.0e4f32.to_bits();
                    let t = Instant::now();
                    match ctx
                        .write_multiple_registers(200, &[(b >> 16) as u16, b as u16, 0, 15])
                        .await
                    {
                        Ok(Ok(())) => writes.push(t.elapsed().as_micros() as u32),
                        _ => errors += 1,
                    }
                }
                n = n.wrapping_add(1);
            }
            (reads, writes, errors)
        });
    }
    let (before, at) = (target.stats(), Instant::now());
    let mut reads = Latencies::default();
    let mut writes = Latencies::default();
    let mut errors = 0;
    while let Some(joined) = tasks.join_next().await {
        if let Ok((r, w, e)) = joined {
            reads.0.extend(r);
            writes.0.extend(w);
            errors += e;
        }
    }
    let polled = cpu_percent(before, target.stats(), at.elapsed());
    let pct = |v: Option<f64>| v.map_or("–".into(), |v| format!("{v:.1} %"));
    println!(
        "  controller CPU: {} without BMS clients, {} with {clients} polling (+{})",
        pct(idle),
        pct(polled),
        match (idle, polled) {
            (Some(a), Some(b)) => format!("{:.1} points", b - a),
            _ => "–".into(),
        }
    );
    println!(
        "  register reads: {} (errors {errors}); p50 {}, p99 {}, max {}",
        reads.0.len(),
        ms(reads.percentile(0.5)),
        ms(reads.percentile(0.99)),
        ms(reads.percentile(1.0)),
    );
    println!(
        "  cap writes: {}; p50 {}, max {}",
        writes.0.len(),
        ms(writes.percentile(0.5)),
        ms(writes.percentile(1.0)),
    );
    println!("  fleet: {}", fleet.summary());
    let _ = fleet.stop().await;
    target.stop();
}
