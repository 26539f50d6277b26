//! A controller as a real process (`ampwarden run`), for the tests that kill it.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::Method;
use serde_json::json;

use super::free_port;
use super::http::Api;

const BIN: &str = env!("CARGO_BIN_EXE_ampwarden");

/// A controller process, its configuration and data directory, and its log.
pub struct Controller {
    pub config: PathBuf,
    pub data: PathBuf,
    pub http: u16,
    child: Option<Child>,
    pub log: Arc<Mutex<Vec<String>>>,
}

impl Controller {
    /// Starts a controller on fresh loopback ports. Ports picked by `free_port` may be
    /// taken by another test before the process binds them: a controller that exits at its
    /// start is started again on other ports (its `http` is the one it listens on).
    pub fn new(dir: &Path, name: &str, body: &str) -> Controller {
        let data = dir.join(format!("{name}-data"));
        let config = dir.join(format!("{name}.toml"));
        let mut c = Controller {
            config,
            data,
            http: 0,
            child: None,
            log: Arc::default(),
        };
        for attempt in 1..=5 {
            c.http = free_port();
            let ocpp = free_port();
            std::fs::write(
                &c.config,
                format!(
                    "[server]\nhttp_listen = \"127.0.0.1:{}\"\nocpp_listen = \"127.0.0.1:{ocpp}\"\n\
                     [storage]\npath = {:?}\n\n{body}",
                    c.http,
                    c.data.display().to_string()
                ),
            )
            .expect("config written");
            c.start();
            if c.listening() {
                return c;
            }
            eprintln!(
                "{name} did not start (attempt {attempt}): {:?}",
                c.log.lock().unwrap_or_else(|e| e.into_inner())
            );
            c.kill();
            c.log.lock().unwrap_or_else(|e| e.into_inner()).clear();
        }
        panic!("{name} does not start");
    }

    /// Waits until the process listens on its HTTP port; false if it exited first.
    pub fn listening(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.http)).is_ok() {
                return true;
            }
            match self.child.as_mut().map(Child::try_wait) {
                Some(Ok(None)) => std::thread::sleep(Duration::from_millis(50)),
                _ => return false,
            }
        }
        false
    }

    pub fn ocpp_port(&self) -> u16 {
        let text = std::fs::read_to_string(&self.config).expect("config");
        text.lines()
            .find_map(|l| l.strip_prefix("ocpp_listen = \"127.0.0.1:"))
            .and_then(|p| p.trim_end_matches('"').parse().ok())
            .expect("ocpp port")
    }

    pub fn start(&mut self) {
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
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, and wait for a clean exit.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SAFETY: the pid is our own child's, still unreaped.
            unsafe {
                libc::kill(c.id() as i32, libc::SIGTERM);
            }
            let _ = c.wait();
        }
    }

    /// The process's CPU time so far (user + system, s) and resident memory (MiB).
    pub fn cpu_and_rss(&self) -> Option<(f64, f64)> {
        let pid = self.child.as_ref()?.id();
        let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
        let fields: Vec<&str> = stat.rsplit_once(") ")?.1.split_whitespace().collect();
        let ticks: f64 =
            fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        let rss_kb: f64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))?
            .split_whitespace()
            .next()?
            .parse()
            .ok()?;
        Some((ticks / hz, rss_kb / 1024.0))
    }

    /// The one-time setup code of the latest start (each start until the first admin
    /// exists prints a new one).
    pub fn setup_code(&self) -> Option<String> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .rev()
            .find_map(|l| l.split("setup code: ").nth(1))
            .map(|rest| rest.split_whitespace().next().unwrap_or("").to_owned())
    }
}

impl Drop for Controller {
    fn drop(&mut self) {
        self.kill();
    }
}

/// An admin session on a controller process: set up with its one-time code on its first
/// start, logged in after.
pub async fn admin_api(c: &Controller) -> Api {
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
            let setup = json!({ "code": code, "name": "admin", "password": "federation-admin-pw" });
            let resp = api.send(Method::POST, "/api/v1/setup", Some(setup)).await;
            if resp.status == 201 {
                api.take_session(&resp);
                break;
            }
        }
        assert!(Instant::now() < deadline, "cannot open an admin session");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    api
}
