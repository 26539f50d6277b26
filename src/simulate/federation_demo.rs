//! `ampwarden --demo --federation`: a primary and three secondaries in one process, each a
//! whole controller with its own storage, UI and OCPP endpoint, and a fleet of simulated
//! stations on every secondary. The primary's 150 A supply is shared across all three
//! (equal percentage over the whole federation); its Federation view shows every
//! secondary and station. Data goes to a temporary directory removed at exit.

use std::net::SocketAddr;
use std::path::Path;
use std::process::ExitCode;

use ampwarden_actors::config::Config;

use super::fleet::Fleet;
use super::scenario::{stations_toml, PhaseLayout, Scenario};
use super::vehicle::VehicleMix;
use crate::{App, AppHandle};

const SECONDARIES: usize = 3;
const STATIONS_EACH: usize = 8;
const MAIN_A: f64 = 150.0;
const FALLBACK_A: f64 = 30.0;

fn scenario(i: usize) -> Scenario {
    Scenario {
        stations: STATIONS_EACH,
        id_prefix: format!("HALL{i}-"),
        seed: 2026 + i as u64,
        speedup: 30.0,
        phases: PhaseLayout::Mixed,
        summary_every_s: 0,
        vehicles: VehicleMix {
            mean_absence_minutes: 30.0,
            stay_hours: (1.0, 5.0),
            ..VehicleMix::default()
        },
        ..Scenario::default()
    }
}

fn token(i: usize) -> String {
    format!("demo-secondary-token-{i}")
}

fn start(text: &str) -> Result<AppHandle, String> {
    let config = Config::from_toml_str(text)
        .map_err(|p| format!("invalid demo configuration (a bug): {p}"))?;
    App::start(config).map_err(|e| e.to_string())
}

fn primary_toml(http: SocketAddr, data: &Path) -> String {
    let tokens: Vec<String> = (1..=SECONDARIES)
        .map(|i| {
            format!(
                "{{ name = \"hall-{i}\", token = \"{}\", zone = \"supply\", fallback_budget_a = {FALLBACK_A} }}",
                token(i)
            )
        })
        .collect();
    format!(
        "[site]\nname = \"Demo campus (primary)\"\nmode = \"static\"\n\n\
         [server]\nhttp_listen = \"{http}\"\nocpp_listen = \"127.0.0.1:0\"\n\n\
         [storage]\npath = {:?}\n\n\
         [[zones]]\nid = \"supply\"\nlimit_a = {MAIN_A}\n\n\
         [federation]\nrole = \"primary\"\ntokens = [{}]\n",
        data.join("primary").display().to_string(),
        tokens.join(", ")
    )
}

fn secondary_toml(i: usize, primary: SocketAddr, data: &Path) -> String {
    format!(
        "[site]\nname = \"hall-{i}\"\nmode = \"static\"\n\n[auth]\nmode = \"accept_all\"\n\n\
         [server]\nhttp_listen = \"127.0.0.1:0\"\nocpp_listen = \"127.0.0.1:0\"\n\n\
         [storage]\npath = {:?}\n\n\
         [[zones]]\nid = \"hall\"\nlimit_a = 250.0\n\n\
         [federation]\nrole = \"secondary\"\nprimary_url = \"ws://{primary}\"\ntoken = \"{}\"\n\
         zone = \"supply\"\nfallback_budget_a = {FALLBACK_A}\n\n{}",
        data.join(format!("hall-{i}")).display().to_string(),
        token(i),
        stations_toml(&scenario(i).plan(), |_| "hall")
    )
}

/// Runs the federation demo until Ctrl-C.
pub fn run() -> ExitCode {
    super::demo::in_temp_dir("ampwarden-federation-demo", run_in)
}

fn run_in(runtime: &tokio::runtime::Runtime, dir: &Path) -> ExitCode {
    // The primary on the usual UI port if it is free, else on any.
    let usual = Config::default().server.http_listen;
    let primary = start(&primary_toml(usual, dir))
        .or_else(|_| start(&primary_toml(SocketAddr::new(usual.ip(), 0), dir)));
    let primary = match primary {
        Ok(p) => p,
        Err(e) => {
            eprintln!("the demo primary could not start: {e}");
            return ExitCode::from(1);
        }
    };
    let mut secondaries = Vec::new();
    for i in 1..=SECONDARIES {
        match start(&secondary_toml(i, primary.http_addr, dir)) {
            Ok(s) => secondaries.push(s),
            Err(e) => {
                eprintln!("demo secondary hall-{i} could not start: {e}");
                return ExitCode::from(1);
            }
        }
    }
    println!();
    println!("ampwarden federation demo is running");
    println!(
        "  the primary:  http://{}/ (Federation view: every secondary and station)",
        primary.http_addr
    );
    if let Some(code) = primary.controller().setup_code() {
        println!("                one-time setup code {code}");
    }
    for (i, s) in secondaries.iter().enumerate() {
        let code = s.controller().setup_code().unwrap_or_default();
        println!(
            "  hall-{}:       http://{}/ (setup code {code}), {STATIONS_EACH} stations, fallback {FALLBACK_A} A",
            i + 1,
            s.http_addr
        );
    }
    println!("  {MAIN_A} A shared by all; Ctrl-C stops the demo and removes its data");
    println!();
    let urls: Vec<String> = secondaries
        .iter()
        .map(|s| format!("ws://{}/ocpp", s.ocpp_addr))
        .collect();
    let done = runtime.block_on(async {
        let mut fleets = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            match Fleet::start(url, scenario(i + 1), None).await {
                Ok(f) => fleets.push(f),
                Err(e) => {
                    eprintln!("cannot start the demo fleet: {e}");
                    return false;
                }
            }
        }
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("cannot listen for Ctrl-C ({e}); stopping now");
        }
        for f in fleets {
            f.stop().await;
        }
        true
    });
    for s in secondaries {
        s.stop();
    }
    primary.stop();
    if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}
