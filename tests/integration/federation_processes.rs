//! Federation with real processes: one primary and nine secondaries, each an
//! `ampwarden run` of its own, and a simulated fleet of stations and vehicles on every
//! secondary (the `ampwarden simulate` fleet, over real WebSockets). Judged by what the
//! vehicles really draw, summed over the whole federation, against the primary zone.
//!
//! `AMPWARDEN_FEDERATION_STATIONS` sets the stations per secondary (default 8; 111 gives
//! the 1000-station federation of BENCHMARKS.md).

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ampwarden::simulate::fleet::Fleet;
use ampwarden::simulate::scenario::{stations_toml, PhaseLayout, Scenario};
use ampwarden::simulate::vehicle::VehicleMix;
use ampwarden_actors::store::Store;
use reqwest::Method;
use serde_json::{json, Value};

use crate::common::http::Api;

const BIN: &str = env!("CARGO_BIN_EXE_ampwarden");
const SECONDARIES: usize = 9;
/// Amperes per station of the primary zone: far less than the vehicles want.
const MAIN_PER_STATION_A: f64 = 5.0;
const VALID_FOR_S: u64 = 5;

fn stations_per_secondary() -> usize {
    std::env::var("AMPWARDEN_FEDERATION_STATIONS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(8)
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// A controller process, its configuration and data directory, and its log.
struct Controller {
    config: PathBuf,
    data: PathBuf,
    http: u16,
    child: Option<Child>,
    log: Arc<Mutex<Vec<String>>>,
}

impl Controller {
    fn new(dir: &Path, name: &str, body: &str, http: u16) -> Controller {
        let data = dir.join(format!("{name}-data"));
        let config = dir.join(format!("{name}.toml"));
        let ocpp = free_port();
        std::fs::write(
            &config,
            format!(
                "[server]\nhttp_listen = \"127.0.0.1:{http}\"\nocpp_listen = \"127.0.0.1:{ocpp}\"\n\
                 [storage]\npath = {:?}\n\n{body}",
                data.display().to_string()
            ),
        )
        .expect("config written");
        let mut c = Controller {
            config,
            data,
            http,
            child: None,
            log: Arc::default(),
        };
        c.start();
        c
    }

    fn ocpp_port(&self) -> u16 {
        let text = std::fs::read_to_string(&self.config).expect("config");
        text.lines()
            .find_map(|l| l.strip_prefix("ocpp_listen = \"127.0.0.1:"))
            .and_then(|p| p.trim_end_matches('"').parse().ok())
            .expect("ocpp port")
    }

    fn start(&mut self) {
        let mut child = Command::new(BIN)
            .args(["run", "--config"])
            .arg(&self.config)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("ampwarden starts");
        let stderr = child.stderr.take().expect("stderr");
        let log = self.log.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                log.lock().unwrap_or_else(|e| e.into_inner()).push(line);
            }
        });
        self.child = Some(child);
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit.
    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: the pid is our own child's, still unreaped.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    fn setup_code(&self) -> Option<String> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find_map(|l| l.split("setup code: ").nth(1))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An admin session on the primary (set up on its first start, logged in after).
struct Admin {
    api: Api,
}

impl Admin {
    async fn open(c: &Controller) -> Admin {
        let mut api = Api {
            base: format!("http://127.0.0.1:{}", c.http),
            client: reqwest::Client::new(),
            cookie: None,
            csrf: None,
            bearer: None,
            origin: None,
        };
        let login = json!({ "name": "admin", "password": "federation-admin-pw" });
        let deadline = Instant::now() + Duration::from_secs(30);
        while tokio::net::TcpStream::connect(("127.0.0.1", c.http))
            .await
            .is_err()
        {
            assert!(
                Instant::now() < deadline,
                "the primary does not listen: {:?}",
                c.log.lock().unwrap_or_else(|e| e.into_inner())
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        loop {
            let resp = api
                .send(Method::POST, "/api/v1/auth/login", Some(login.clone()))
                .await;
            if resp.status == 200 {
                api.take_session(&resp);
                break;
            }
            if let Some(code) = c.setup_code() {
                let setup =
                    json!({ "code": code, "name": "admin", "password": "federation-admin-pw" });
                let resp = api.send(Method::POST, "/api/v1/setup", Some(setup)).await;
                if resp.status == 201 {
                    api.take_session(&resp);
                    break;
                }
            }
            assert!(
                Instant::now() < deadline,
                "cannot open an admin session on the primary"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        Admin { api }
    }

    async fn wait(&self, what: &str, wait: Duration, check: impl Fn(&Value) -> bool) -> Value {
        let deadline = Instant::now() + wait;
        loop {
            let resp = self.api.get("/api/v1/federation").await;
            if resp.status == 200 {
                let v = resp.json();
                if check(&v) {
                    return v;
                }
                assert!(
                    Instant::now() < deadline,
                    "timed out waiting for {what}: {v:#}"
                );
            }
            assert!(Instant::now() < deadline, "timed out waiting for {what}");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

fn on_grant(v: &Value) -> usize {
    v["secondaries"].as_array().map_or(0, |s| {
        s.iter()
            .filter(|s| s["link"] == "linked" && s["on_grant"] == true)
            .count()
    })
}

fn scenario(i: usize, stations: usize) -> Scenario {
    Scenario {
        stations,
        seed: 40 + i as u64,
        id_prefix: format!("S{i}-"),
        speedup: 60.0,
        phases: PhaseLayout::Mixed,
        summary_every_s: 0,
        meter_values_every_s: 15,
        finish_sessions_at_end: true,
        vehicles: VehicleMix {
            mean_absence_minutes: 2.0,
            stay_hours: (2.0, 4.0),
            ..VehicleMix::default()
        },
        ..Scenario::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nine_secondary_processes_share_one_zone_and_survive_kills() {
    let per = stations_per_secondary();
    let main_a = MAIN_PER_STATION_A * (per * SECONDARIES) as f64;
    let fallback_a = (main_a / SECONDARIES as f64 / 2.0).floor();
    let dir = tempfile::tempdir().expect("temp dir");
    let token = |i: usize| format!("process-secondary-token-{i}");
    let tokens: Vec<String> = (1..=SECONDARIES)
        .map(|i| {
            format!(
                "{{ name = \"s{i}\", token = \"{}\", zone = \"main\", fallback_budget_a = {fallback_a} }}",
                token(i)
            )
        })
        .collect();
    let primary_http = free_port();
    let mut primary = Controller::new(
        dir.path(),
        "primary",
        &format!(
            "[site]\nname = \"primary\"\nmode = \"static\"\n\n[[zones]]\nid = \"main\"\nlimit_a = {main_a}\n\n\
             [federation]\nrole = \"primary\"\nvalid_for_s = {VALID_FOR_S}\ntokens = [{}]\n",
            tokens.join(", ")
        ),
        primary_http,
    );
    let mut secondaries = Vec::new();
    let mut fleets = Vec::new();
    for i in 1..=SECONDARIES {
        let s = scenario(i, per);
        let body = format!(
            "[site]\nname = \"s{i}\"\nmode = \"static\"\n\n[auth]\nmode = \"accept_all\"\n\n\
             [control]\nmeter_values_interval_s = 15\n\n\
             [[zones]]\nid = \"hall\"\nlimit_a = 5000.0\n\n\
             [federation]\nrole = \"secondary\"\nprimary_url = \"ws://127.0.0.1:{primary_http}\"\n\
             token = \"{}\"\nzone = \"main\"\nfallback_budget_a = {fallback_a}\n\n{}",
            token(i),
            stations_toml(&s.plan(), |_| "hall")
        );
        secondaries.push(Controller::new(
            dir.path(),
            &format!("s{i}"),
            &body,
            free_port(),
        ));
    }
    let admin = Admin::open(&primary).await;
    let linked_from = Instant::now();
    admin
        .wait(
            "nine secondaries on a grant",
            Duration::from_secs(60),
            |v| on_grant(v) == SECONDARIES,
        )
        .await;
    eprintln!(
        "9 secondaries linked and on a grant after {:?}",
        linked_from.elapsed()
    );
    for (i, c) in secondaries.iter().enumerate() {
        let url = format!("ws://127.0.0.1:{}/ocpp", c.ocpp_port());
        fleets.push(
            Fleet::start(&url, scenario(i + 1, per), None)
                .await
                .expect("fleet starts"),
        );
    }

    // Sample what the vehicles of the whole federation really draw, per phase.
    let worst = Arc::new(Mutex::new((0.0f64, String::new())));
    let sample = |fleets: &[Fleet]| {
        let mut sum = [0.0f64; 3];
        for f in fleets {
            let ev = f.summary().ev;
            for (s, a) in sum.iter_mut().zip(ev.0) {
                *s += a.0;
            }
        }
        sum
    };
    let watch = |fleets: &[Fleet], phase: &str| {
        let sum = sample(fleets);
        let mut w = worst.lock().unwrap_or_else(|e| e.into_inner());
        for a in sum {
            if a > w.0 {
                *w = (a, format!("{phase}: {sum:?}"));
            }
        }
    };
    let run_for = |secs: u64| Instant::now() + Duration::from_secs(secs);

    // Everyone boots and charges. (A vehicle that plugs in before its station took the
    // 0 A default the controller sends at boot draws what the station's own default
    // allows — no central system can prevent that — so the sum is judged from 10 s
    // after the last boot.)
    let until = run_for(90);
    loop {
        let booted = fleets.iter().all(Fleet::all_booted_once);
        let charging: usize = fleets.iter().map(|f| f.summary().charging).sum();
        if booted && fleets.iter().all(|f| f.summary().charging > 0) && charging >= SECONDARIES * 2
        {
            break;
        }
        assert!(
            Instant::now() < until,
            "not all booted and charging: {:?}",
            fleets.iter().map(Fleet::summary).collect::<Vec<_>>()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    tokio::time::sleep(Duration::from_secs(10)).await;
    let until = run_for(20);
    while Instant::now() < until {
        watch(&fleets, "sharing");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // SIGKILL secondary 5: the primary reserves at least its fallback for it.
    secondaries[4].kill();
    let killed_at = Instant::now();
    let view = admin
        .wait(
            "s5 unreachable, its fallback reserved",
            Duration::from_secs(20),
            |v| {
                let s5 = &v["secondaries"][4];
                s5["link"] == "unreachable"
                    && s5["reserved_a"][0].as_f64().unwrap_or(0.0) >= fallback_a
            },
        )
        .await;
    eprintln!(
        "s5 killed → unreachable at the primary after {:?}",
        killed_at.elapsed()
    );
    assert_eq!(view["secondaries"][4]["name"], "s5");
    let until = run_for(5);
    while Instant::now() < until {
        watch(&fleets, "s5 dead");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    secondaries[4].start();
    admin
        .wait("s5 back on a grant", Duration::from_secs(60), |v| {
            on_grant(v) == SECONDARIES
        })
        .await;
    eprintln!(
        "s5 restarted → on a grant after {:?} from the kill",
        killed_at.elapsed()
    );

    // SIGKILL the primary: every secondary falls back; restart it: grants again.
    primary.kill();
    let until = run_for(VALID_FOR_S + 4);
    while Instant::now() < until {
        watch(&fleets, "primary dead");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    // On their fallbacks, the secondaries' vehicles together take no more than those.
    let during = sample(&fleets);
    assert!(
        during
            .iter()
            .all(|&a| a <= fallback_a * SECONDARIES as f64 + 0.5),
        "with the primary dead the federation draws {during:?}, above Σ fallbacks {}",
        fallback_a * SECONDARIES as f64
    );
    primary.start();
    let admin = Admin::open(&primary).await;
    admin
        .wait(
            "all back on a grant after the primary's restart",
            Duration::from_secs(60),
            |v| on_grant(v) == SECONDARIES,
        )
        .await;
    let until = run_for(10);
    while Instant::now() < until {
        watch(&fleets, "after");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let (peak, when) = worst.lock().unwrap_or_else(|e| e.into_inner()).clone();
    eprintln!("peak federation EV draw {peak:.1} A per phase on {main_a} A ({when})");
    assert!(
        peak <= main_a + 0.5,
        "the federation drew {peak:.1} A on a {main_a} A zone ({when})"
    );

    // No transaction lost: every one a fleet saw is in its secondary's store.
    let mut reports = Vec::new();
    for f in fleets {
        reports.push(f.stop().await);
    }
    for (i, (c, report)) in secondaries.iter_mut().zip(&reports).enumerate() {
        assert_eq!(report.call_errors, 0, "s{}: {report}", i + 1);
        assert_eq!(report.over_limit, 0, "s{}: {report}", i + 1);
        c.stop();
        let store = Store::open(&c.data).expect("store opens");
        let audit = report.audit(&store);
        assert!(audit.lost.is_empty(), "s{} lost {:?}", i + 1, audit.lost);
        assert!(
            audit.mismatched.is_empty(),
            "s{} mismatched {:?}",
            i + 1,
            audit.mismatched
        );
    }
}
