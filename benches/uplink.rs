//! CPO uplink benchmarks: the controller runs as a separate process (the release binary
//! cargo builds for this bench), measured through /proc; the upstream CPO (the test CPO
//! of `tests/integration/common/cpo.rs`, a real OCPP 1.6J WebSocket server) and the fleet
//! of stations run here. All share the machine's cores. Figures and method: BENCHMARKS.md.
//!
//! ```text
//! cargo bench --bench uplink -- --stations 1000          # 1000 upstream connections, vs none
//! cargo bench --bench uplink -- --backlog 100000         # replay 100 stations × 1000 journaled
//! cargo bench --bench uplink -- --backlog 100000 --rate 200   # the same under the default cap
//! ```

#[allow(dead_code)]
#[path = "../tests/integration/common/cpo.rs"]
mod cpo;

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use ampwarden::http::auth::accounts::{new_token, Accounts};
use ampwarden::http::auth::Role;
use ampwarden::simulate::fleet::Fleet;
use ampwarden::simulate::scenario::{stations_toml, PhaseLayout, Scenario};
use ampwarden_actors::store::{JournalEntry, Store};
use ampwarden_actors::units::ChargePointId;
use clap::Parser;
use serde_json::{json, Value};

use cpo::{Cpo, Received};

#[derive(Parser, Debug)]
#[command(about = "CPO uplink benchmarks")]
struct Args {
    /// Stations each holding an upstream connection (measured against the same fleet
    /// without `[uplink]`, unless --no-baseline).
    #[arg(long)]
    stations: Option<usize>,
    /// Skip the run without `[uplink]`.
    #[arg(long)]
    no_baseline: bool,
    /// Seconds of warm-up once every station (and uplink) is up.
    #[arg(long, default_value_t = 20)]
    warm_up: u64,
    /// Seconds over which CPU and memory are measured.
    #[arg(long, default_value_t = 60)]
    measure: u64,
    /// Journal this many messages before the controller starts, then time their replay.
    #[arg(long)]
    backlog: Option<usize>,
    /// Stations sharing the backlog.
    #[arg(long, default_value_t = 100)]
    backlog_stations: usize,
    /// `uplink.rate_per_s` of each backlog run.
    #[arg(long, value_delimiter = ',', default_value = "100000,200")]
    rate: Vec<u32>,
    /// Instead: open this many upstream-like WebSocket clients (tokio-tungstenite, as the
    /// uplink dials) to the CPO here, one call each, and show this process's memory per
    /// connection: what the uplink's connections cost, apart from the controller.
    #[arg(long)]
    ws_clients: Option<usize>,
    /// With --ws-clients: the clients' `read_buffer_size` (tungstenite's default: 128 KiB).
    #[arg(long)]
    read_buffer: Option<usize>,
    /// Passed by `cargo bench`.
    #[arg(long, hide = true)]
    bench: bool,
}

/// The largest zone limit the configuration accepts.
const ZONE_LIMIT_MAX_A: f64 = 10_000.0;

fn main() {
    let args = Args::parse();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("a tokio runtime for the fleet and the CPO");
    println!("{}", machine_description());
    if let Some(n) = args.ws_clients {
        check_fd_limit(n);
        runtime.block_on(ws_clients(n, args.read_buffer));
        return;
    }
    if let Some(n) = args.stations {
        check_fd_limit(n);
        let mut rows = Vec::new();
        let variants: &[bool] = if args.no_baseline {
            &[true]
        } else {
            &[false, true]
        };
        for &uplink in variants {
            match runtime.block_on(connections(n, uplink, &args)) {
                Ok(row) => rows.push(row),
                Err(e) => eprintln!("connections run failed: {e}"),
            }
        }
        println!("\n{}", ConnectionsRow::table(&rows));
    }
    if let Some(total) = args.backlog {
        let mut rows = Vec::new();
        for &rate in &args.rate {
            match runtime.block_on(backlog(total, args.backlog_stations, rate)) {
                Ok(row) => rows.push(row),
                Err(e) => eprintln!("backlog run failed: {e}"),
            }
        }
        println!("\n{}", BacklogRow::table(&rows));
    }
}

// --- the controller ------------------------------------------------------------------------

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// The release `ampwarden`, started on a configuration; its API reached with a token
/// written into its store before the start.
struct Controller {
    child: Option<Child>,
    pid: u32,
    ocpp_url: String,
    api: String,
    bearer: String,
    http: reqwest::Client,
    dir: tempfile::TempDir,
    store_path: PathBuf,
}

impl Controller {
    /// `prepare` writes into the store before the controller opens it.
    fn start(body: &str, prepare: impl FnOnce(&Store)) -> Result<Controller, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (http, ocpp) = (free_port(), free_port());
        let store_path = dir.path().join("data");
        let bearer = {
            let store = Store::open(&store_path).map_err(|e| e.to_string())?;
            let (record, bearer) =
                new_token("bench", Role::Admin, "bench").map_err(|e| e.to_string())?;
            Accounts::new(store.clone())
                .put_token(&record)
                .map_err(|e| e.to_string())?;
            prepare(&store);
            store.flush().map_err(|e| e.to_string())?;
            bearer
        };
        let text = format!(
            "[server]\nhttp_listen = \"127.0.0.1:{http}\"\nocpp_listen = \"127.0.0.1:{ocpp}\"\n\n\
             [storage]\npath = {:?}\n\n{body}",
            store_path.display().to_string()
        );
        let config = dir.path().join("uplink.toml");
        std::fs::write(&config, text).map_err(|e| e.to_string())?;
        let log =
            std::fs::File::create(dir.path().join("controller.log")).map_err(|e| e.to_string())?;
        let child = Command::new(env!("CARGO_BIN_EXE_ampwarden"))
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
        let mut c = Controller {
            pid: child.id(),
            child: Some(child),
            ocpp_url: format!("ws://127.0.0.1:{ocpp}/ocpp"),
            api: format!("http://127.0.0.1:{http}"),
            bearer,
            http: reqwest::Client::new(),
            dir,
            store_path,
        };
        c.wait_listening(SocketAddr::from(([127, 0, 0, 1], http)))?;
        Ok(c)
    }

    fn wait_listening(&mut self, addr: SocketAddr) -> Result<(), String> {
        let deadline = Instant::now() + Duration::from_secs(120);
        while Instant::now() < deadline {
            if TcpStream::connect(addr).is_ok() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    self.child = None;
                    return Err(format!(
                        "ampwarden exited at start: {status}\n{}",
                        self.log()
                    ));
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Err(format!("ampwarden does not listen on {addr}"))
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("controller.log")).unwrap_or_default()
    }

    fn stats(&self) -> Option<ProcStats> {
        ProcStats::read(self.pid)
    }

    /// `GET /api/v1/uplink`.
    async fn uplink(&self) -> Result<Value, String> {
        let response = self
            .http
            .get(format!("{}/api/v1/uplink", self.api))
            .bearer_auth(&self.bearer)
            .send()
            .await
            .map_err(|e| e.to_string())?;
        if !response.status().is_success() {
            return Err(format!("GET /api/v1/uplink: {}", response.status()));
        }
        response.json().await.map_err(|e| e.to_string())
    }

    /// SIGTERM, then wait for the exit (the store is flushed on the way out).
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
        eprintln!("ampwarden did not stop within 15 s: killed");
        let _ = child.kill();
        let _ = child.wait();
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Per-station figures of `GET /api/v1/uplink`.
#[derive(Clone, Copy, Debug, Default)]
struct UplinkCounts {
    stations: usize,
    connected: usize,
    booted: usize,
    backlog: u64,
}

impl UplinkCounts {
    fn of(v: &Value) -> UplinkCounts {
        let stations = v["stations"].as_array().map_or(&[][..], Vec::as_slice);
        let count = |key: &str| stations.iter().filter(|s| s[key] == true).count();
        UplinkCounts {
            stations: stations.len(),
            connected: count("connected"),
            booted: count("booted"),
            backlog: v["backlog"].as_u64().unwrap_or(0),
        }
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
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    format!(
        "machine: {model}, {cores} cores, {ram_gb:.1} GiB RAM; date {}; load average {}",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC"),
        load.split_whitespace()
            .take(3)
            .collect::<Vec<_>>()
            .join(" ")
    )
}

fn check_fd_limit(stations: usize) {
    let limits = std::fs::read_to_string("/proc/self/limits").unwrap_or_default();
    let soft = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .and_then(|l| l.split_whitespace().nth(3))
        .and_then(|v| v.parse::<usize>().ok());
    // Here: a station socket and the CPO's end of its uplink per station.
    if let Some(soft) = soft {
        if soft < 2 * stations + 256 {
            eprintln!(
                "warning: the open-file limit is {soft}; {stations} stations need more: \
                 run `ulimit -n {}` first",
                stations * 4 + 1024
            );
        }
    }
}

fn mb(kb: Option<u64>) -> String {
    kb.map_or("–".into(), |k| format!("{:.1} MB", k as f64 / 1024.0))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.1} %"))
}

fn by_action(received: &[Received]) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for r in received {
        *m.entry(r.action.clone()).or_insert(0) += 1;
    }
    m
}

// --- a) stations each holding an upstream connection -------------------------------------

struct ConnectionsRow {
    uplink: bool,
    stations: usize,
    /// From the fleet's start to every station booted (and, with `[uplink]`, every uplink
    /// connected and accepted by the CPO).
    up_after: Duration,
    cpu: Option<f64>,
    bench_cpu: Option<f64>,
    rss_start_kb: Option<u64>,
    rss_end_kb: Option<u64>,
    rss_max_kb: Option<u64>,
    hwm_kb: Option<u64>,
    /// OCPP calls from the stations to the controller, per second.
    station_rate: f64,
    /// Calls the CPO received per second over the measurement.
    cpo_rate: f64,
    cpo_actions: BTreeMap<String, usize>,
    backlog_end: u64,
    charging: usize,
}

impl ConnectionsRow {
    fn table(rows: &[ConnectionsRow]) -> String {
        use std::fmt::Write as _;
        let mut t = String::from(
            "| `[uplink]` | stations | all up after | controller CPU | RSS start → end (max) | station calls/s | calls to the CPO/s | backlog at the end | bench process CPU (fleet + CPO) |\n\
             |---|---|---|---|---|---|---|---|---|\n",
        );
        for r in rows {
            let _ = writeln!(
                t,
                "| {} | {} ({} charging) | {:.2} s | {} | {} → {} ({}) | {:.1} | {} | {} | {} |",
                if r.uplink { "yes" } else { "no" },
                r.stations,
                r.charging,
                r.up_after.as_secs_f64(),
                pct(r.cpu),
                mb(r.rss_start_kb),
                mb(r.rss_end_kb),
                mb(r.rss_max_kb),
                r.station_rate,
                if r.uplink {
                    format!("{:.1} {:?}", r.cpo_rate, r.cpo_actions)
                } else {
                    "–".into()
                },
                if r.uplink {
                    r.backlog_end.to_string()
                } else {
                    "–".into()
                },
                pct(r.bench_cpu),
            );
        }
        let _ = writeln!(
            t,
            "\n(peak RSS of the whole run, VmHWM: {})",
            rows.iter()
                .map(|r| format!(
                    "{} {}",
                    if r.uplink { "uplink" } else { "none" },
                    mb(r.hwm_kb)
                ))
                .collect::<Vec<_>>()
                .join(", ")
        );
        t
    }
}

async fn connections(n: usize, uplink: bool, args: &Args) -> Result<ConnectionsRow, String> {
    let cpo = if uplink {
        Some(Cpo::start("127.0.0.1:0".parse().expect("addr")).await)
    } else {
        None
    };
    let meter_port = free_port();
    let scenario = Scenario {
        stations: n,
        id_prefix: "UPL".into(),
        seed: 5,
        // A simulated minute per second: vehicles come and go, stations report.
        speedup: 60.0,
        phases: PhaseLayout::Mixed,
        site_limit_a: (n as f64 * 10.0).min(ZONE_LIMIT_MAX_A),
        meter_port: Some(meter_port),
        summary_every_s: 0,
        ..Scenario::default()
    };
    let uplink_section = cpo.as_ref().map_or(String::new(), |c| {
        format!(
            "[uplink]\nurl = \"{}\"\npassword = \"cpo-key-0001\"\n\n",
            c.url()
        )
    });
    let body = format!(
        "[site]\nmode = \"dynamic\"\n\n[auth]\nmode = \"accept_all\"\n\n{uplink_section}\
         [[zones]]\nid = \"main\"\nlimit_a = {limit:.1}\nstatic_ev_limit_a = {static_limit:.1}\nmeter = \"site\"\n\n\
         [[meters]]\nid = \"site\"\naddress = \"127.0.0.1:{meter_port}\"\nprofile = \"iem3155\"\n\n{}",
        stations_toml(&scenario.plan(), |_| "main"),
        limit = scenario.site_limit_a,
        static_limit = scenario.site_limit_a * 0.6,
    );
    let mut target = Controller::start(&body, |_| {})?;
    println!(
        "\n== {n} stations, {}",
        if uplink {
            "each with an upstream connection to the CPO"
        } else {
            "no [uplink]"
        }
    );
    let started = Instant::now();
    let fleet = Fleet::start(&target.ocpp_url, scenario, None)
        .await
        .map_err(|e| e.to_string())?;
    // Every station booted here, and every uplink connected and accepted there.
    let deadline = started + Duration::from_secs(120);
    let up_after = loop {
        let s = fleet.summary();
        let links = if uplink {
            UplinkCounts::of(&target.uplink().await?)
        } else {
            UplinkCounts::default()
        };
        let links_up =
            !uplink || (links.stations == n && links.connected == n && links.booted == n);
        if s.booted == n && links_up {
            break started.elapsed();
        }
        if Instant::now() > deadline {
            return Err(format!(
                "not all up after 120 s: {} booted, uplinks {links:?}\n{}",
                s.booted,
                target.log()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    println!(
        "  all {n} stations booted{} after {:.2} s",
        if uplink {
            " and their uplinks accepted by the CPO"
        } else {
            ""
        },
        up_after.as_secs_f64()
    );
    tokio::time::sleep(Duration::from_secs(args.warm_up)).await;

    let cpo_before = cpo.as_ref().map_or(0, |c| c.received().len());
    let messages_before = fleet.summary().messages;
    let (before, own_before, at) = (target.stats(), ProcStats::own(), Instant::now());
    let rss_start_kb = before.map(|s| s.rss_kb);
    let mut rss_max_kb = rss_start_kb;
    let end = at + Duration::from_secs(args.measure);
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_secs(5).min(end - Instant::now())).await;
        if let Some(s) = target.stats() {
            rss_max_kb = rss_max_kb.max(Some(s.rss_kb));
            println!(
                "  {:>3} s  RSS {:.1} MB  {}",
                at.elapsed().as_secs(),
                s.rss_kb as f64 / 1024.0,
                fleet.summary()
            );
        }
    }
    let wall = at.elapsed();
    let (after, own_after) = (target.stats(), ProcStats::own());
    let messages = fleet.summary().messages - messages_before;
    let received = cpo.as_ref().map(|c| c.received()).unwrap_or_default();
    let measured = &received[cpo_before.min(received.len())..];
    let backlog_end = if uplink {
        UplinkCounts::of(&target.uplink().await?).backlog
    } else {
        0
    };
    let charging = fleet.summary().charging;
    let row = ConnectionsRow {
        uplink,
        stations: n,
        up_after,
        cpu: cpu_percent(before, after, wall),
        bench_cpu: cpu_percent(own_before, own_after, wall),
        rss_start_kb,
        rss_end_kb: after.map(|s| s.rss_kb),
        rss_max_kb,
        hwm_kb: after.map(|s| s.hwm_kb),
        station_rate: messages as f64 / wall.as_secs_f64(),
        cpo_rate: measured.len() as f64 / wall.as_secs_f64(),
        cpo_actions: by_action(measured),
        backlog_end,
        charging,
    };
    println!(
        "  controller CPU {} of a core, RSS {}; the CPO received {} calls in all ({:?})",
        pct(row.cpu),
        mb(row.rss_end_kb),
        received.len(),
        by_action(&received)
    );
    let _ = fleet.stop().await;
    target.stop();
    Ok(row)
}

// --- b) the replay of a backlog ---------------------------------------------------------

struct BacklogRow {
    rate_per_s: u32,
    stations: usize,
    messages: usize,
    fill: Duration,
    /// From the controller's start to the first journal entry answered, and to the last.
    first: Duration,
    done: Duration,
    /// Journal messages per second from the first to the last answered.
    rate: f64,
    cpu: Option<f64>,
    bench_cpu: Option<f64>,
    rss_max_kb: Option<u64>,
    received: BTreeMap<String, usize>,
    in_order: bool,
    left: usize,
}

impl BacklogRow {
    fn table(rows: &[BacklogRow]) -> String {
        use std::fmt::Write as _;
        let mut t = String::from(
            "| `rate_per_s` | backlog | journaled in (appends/s) | first answered | drained at | replay msg/s | controller CPU | bench CPU (CPO) | peak RSS | CPO received | in order, once | left |\n\
             |---|---|---|---|---|---|---|---|---|---|---|---|\n",
        );
        for r in rows {
            let _ = writeln!(
                t,
                "| {} | {} ({} × {}) | {:.1} s ({:.0}) | {:.2} s | {:.2} s | {:.0} | {} | {} | {} | {:?} | {} | {} |",
                r.rate_per_s,
                r.messages,
                r.stations,
                r.messages / r.stations.max(1),
                r.fill.as_secs_f64(),
                r.messages as f64 / r.fill.as_secs_f64(),
                r.first.as_secs_f64(),
                r.done.as_secs_f64(),
                r.rate,
                pct(r.cpu),
                pct(r.bench_cpu),
                mb(r.rss_max_kb),
                r.received,
                if r.in_order { "yes" } else { "NO" },
                r.left,
            );
        }
        t
    }
}

fn at(ago_s: i64) -> String {
    (chrono::Utc::now() - chrono::TimeDelta::seconds(ago_s))
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// One station's journal: a transaction that started, reported `per - 2` MeterValues
/// (a minute apart, 5 sampled values each) and stopped while the CPO was away.
fn journal_of(per: usize, tag: &str) -> Vec<JournalEntry> {
    let span = 60 * per as i64;
    let mut out = vec![JournalEntry {
        action: "StartTransaction".into(),
        payload: json!({"connectorId": 1, "idTag": tag, "meterStart": 1000, "timestamp": at(span)}),
        local_transaction: Some(1),
    }];
    for k in 1..per.saturating_sub(1) {
        let wh = 1000 + 180 * k as i64;
        out.push(JournalEntry {
            action: "MeterValues".into(),
            payload: json!({"connectorId": 1, "transactionId": 1, "meterValue": [{
                "timestamp": at(span - 60 * k as i64),
                "sampledValue": [
                    {"value": wh.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh"},
                    {"value": "11040", "measurand": "Power.Active.Import", "unit": "W"},
                    {"value": "16.0", "measurand": "Current.Import", "phase": "L1", "unit": "A"},
                    {"value": "16.0", "measurand": "Current.Import", "phase": "L2", "unit": "A"},
                    {"value": "16.0", "measurand": "Current.Import", "phase": "L3", "unit": "A"}
                ]
            }]}),
            local_transaction: None,
        });
    }
    out.push(JournalEntry {
        action: "StopTransaction".into(),
        payload: json!({"transactionId": 1, "meterStop": 1000 + 180 * per as i64, "timestamp": at(0), "idTag": tag}),
        local_transaction: None,
    });
    out
}

/// Whether every station's journal reached the CPO once, in order, under the CPO's id.
fn check_order(received: &[Received], stations: &[String], per: usize) -> Result<(), String> {
    let mut of: BTreeMap<&str, Vec<&Received>> = BTreeMap::new();
    for r in received {
        if matches!(
            r.action.as_str(),
            "StartTransaction" | "MeterValues" | "StopTransaction"
        ) {
            of.entry(r.station.as_str()).or_default().push(r);
        }
    }
    for id in stations {
        let got = of.get(id.as_str()).map_or(&[][..], Vec::as_slice);
        if got.len() != per {
            return Err(format!("{id}: {} journal messages, not {per}", got.len()));
        }
        if got[0].action != "StartTransaction" || got[per - 1].action != "StopTransaction" {
            return Err(format!("{id}: not start … stop"));
        }
        let cpo_id = got
            .iter()
            .find(|r| r.action == "MeterValues" || r.action == "StopTransaction")
            .map(|r| r.payload["transactionId"].clone());
        let mut last = 0i64;
        for (k, r) in got.iter().enumerate() {
            if r.unique_id != format!("j{}", k + 1) {
                return Err(format!("{id}: message {k} has uniqueId {}", r.unique_id));
            }
            if k > 0 && Some(r.payload["transactionId"].clone()) != cpo_id {
                return Err(format!("{id}: message {k} under another transaction id"));
            }
            if r.action == "MeterValues" {
                let wh: i64 = r.payload["meterValue"][0]["sampledValue"][0]["value"]
                    .as_str()
                    .and_then(|v| v.parse().ok())
                    .unwrap_or(0);
                if wh <= last {
                    return Err(format!("{id}: message {k} out of order"));
                }
                last = wh;
            }
        }
        if cpo_id == Some(json!(1)) {
            return Err(format!("{id}: the local transaction id was sent"));
        }
    }
    Ok(())
}

async fn backlog(total: usize, stations: usize, rate_per_s: u32) -> Result<BacklogRow, String> {
    let per = total / stations.max(1);
    if per < 3 {
        return Err("a backlog of at least 3 messages per station".into());
    }
    let messages = per * stations;
    let cpo = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let scenario = Scenario {
        stations,
        id_prefix: "BKL".into(),
        ..Scenario::default()
    };
    let ids: Vec<String> = scenario.plan().into_iter().map(|p| p.id).collect();
    let body = format!(
        "[auth]\nmode = \"accept_all\"\n\n\
         [uplink]\nurl = \"{}\"\nrate_per_s = {rate_per_s}\n\n\
         [[zones]]\nid = \"main\"\nlimit_a = {:.1}\n\n{}",
        cpo.url(),
        (stations as f64 * 32.0).min(ZONE_LIMIT_MAX_A),
        stations_toml(&scenario.plan(), |_| "main"),
    );
    println!("\n== replay of {messages} journaled messages ({stations} stations × {per}), rate_per_s = {rate_per_s}");
    let mut fill = Duration::ZERO;
    let mut target = Controller::start(&body, |store| {
        // As the station actors journal: one append (flushed) after another, per station.
        let t = Instant::now();
        std::thread::scope(|scope| {
            for chunk in ids.chunks(stations.div_ceil(2).max(1)) {
                scope.spawn(move || {
                    for id in chunk {
                        let station = ChargePointId::from(id.as_str());
                        let boot = json!({"chargePointVendor": "ampwarden", "chargePointModel": "uplink-bench"});
                        store.set_uplink_boot(&station, &boot).expect("boot");
                        for entry in journal_of(per, &format!("TAG-{id}")) {
                            store.journal_append(&station, &entry).expect("append");
                        }
                    }
                });
            }
        });
        fill = t.elapsed();
    })?;
    let started = Instant::now();
    println!(
        "  journaled in {:.1} s ({:.0} appends/s, 2 threads); controller started",
        fill.as_secs_f64(),
        messages as f64 / fill.as_secs_f64()
    );
    let cpu_before = target.stats();
    let own_before = ProcStats::own();
    let mut rss_max_kb = cpu_before.map(|s| s.rss_kb);
    let mut first = None;
    let mut series = Vec::new();
    let deadline = started + Duration::from_secs(3600);
    let done = loop {
        let links = UplinkCounts::of(&target.uplink().await?);
        let t = started.elapsed();
        if let Some(s) = target.stats() {
            rss_max_kb = rss_max_kb.max(Some(s.rss_kb));
        }
        if links.stations == stations && first.is_none() && links.backlog < messages as u64 {
            first = Some(t);
        }
        series.push((t, links.backlog));
        if series.len() % 10 == 1 {
            println!(
                "  {:>6.1} s  backlog {:>6}  connected {} booted {}  RSS {}",
                t.as_secs_f64(),
                links.backlog,
                links.connected,
                links.booted,
                mb(target.stats().map(|s| s.rss_kb))
            );
        }
        if links.stations == stations && links.backlog == 0 {
            break t;
        }
        if Instant::now() > deadline {
            return Err(format!("backlog {} after an hour", links.backlog));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let (cpu_after, own_after) = (target.stats(), ProcStats::own());
    let cpu = cpu_percent(cpu_before, cpu_after, started.elapsed());
    let bench_cpu = cpu_percent(own_before, own_after, started.elapsed());
    // The steady rate: from 90 % to 10 % of the backlog left.
    let when = |left: f64| {
        series
            .iter()
            .find(|(_, b)| (*b as f64) <= left * messages as f64)
            .map(|(t, b)| (*t, *b))
    };
    if let (Some((t90, b90)), Some((t10, b10))) = (when(0.9), when(0.1)) {
        if t10 > t90 {
            println!(
                "  steady replay (90 % → 10 % left): {:.0} msg/s",
                (b90 - b10) as f64 / (t10 - t90).as_secs_f64()
            );
        }
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let received = cpo.received();
    let actions = by_action(&received);
    let journal: usize = ["StartTransaction", "MeterValues", "StopTransaction"]
        .iter()
        .map(|a| actions.get(*a).copied().unwrap_or(0))
        .sum();
    let order = check_order(&received, &ids, per);
    if let Err(e) = &order {
        eprintln!("  ORDER: {e}");
    }
    println!(
        "  the CPO received {} calls, {journal} of them journal messages (expected {messages}): {actions:?}",
        received.len()
    );
    target.stop();
    let left = match Store::open(&target.store_path) {
        Ok(store) => ids
            .iter()
            .map(|id| store.journal_len(&ChargePointId::from(id.as_str())))
            .sum(),
        Err(e) => {
            eprintln!("  cannot reopen the store: {e}");
            usize::MAX
        }
    };
    let first = first.unwrap_or(done);
    let span = done.saturating_sub(first).max(Duration::from_millis(500));
    Ok(BacklogRow {
        rate_per_s,
        stations,
        messages,
        fill,
        first,
        done,
        rate: messages as f64 / span.as_secs_f64(),
        cpu,
        bench_cpu,
        rss_max_kb,
        received: actions,
        in_order: order.is_ok() && journal == messages,
        left,
    })
}

// --- what one upstream connection costs -------------------------------------------------

async fn ws_clients(n: usize, read_buffer: Option<usize>) {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    use tokio_tungstenite::tungstenite::http::HeaderValue;
    use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
    use tokio_tungstenite::tungstenite::Message;

    let cpo = Cpo::start("127.0.0.1:0".parse().expect("addr")).await;
    let config = read_buffer.map(|b| WebSocketConfig::default().read_buffer_size(b));
    let label = read_buffer.map_or("tungstenite's default (128 KiB)".to_owned(), |b| {
        format!("{b} bytes")
    });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let before = ProcStats::own().map(|s| s.rss_kb);
    let mut sockets = Vec::with_capacity(n);
    for i in 0..n {
        let url = format!("{}/WS{i:05}", cpo.url());
        let mut request = url.into_client_request().expect("request");
        request.headers_mut().insert(
            "Sec-WebSocket-Protocol",
            HeaderValue::from_static("ocpp1.6"),
        );
        let (mut ws, _) = tokio_tungstenite::connect_async_with_config(request, config, false)
            .await
            .expect("connected");
        let boot = json!([2, "b1", "BootNotification", {"chargePointVendor": "ampwarden", "chargePointModel": "ws"}]);
        ws.send(Message::text(boot.to_string()))
            .await
            .expect("sent");
        let _answer = ws.next().await;
        sockets.push(ws);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after = ProcStats::own().map(|s| s.rss_kb);
    if let (Some(b), Some(a)) = (before, after) {
        println!(
            "  {n} client connections (and the CPO's {n} ends), read buffer {label}: RSS {:.1} → {:.1} MB, {:.1} KB per connection pair",
            b as f64 / 1024.0,
            a as f64 / 1024.0,
            a.saturating_sub(b) as f64 / n as f64
        );
    }
    drop(sockets);
}
