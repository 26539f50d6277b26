//! `ampwarden simulate`: the command-line options, and the run with its live summary line
//! and final figures.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use super::fleet::{Fleet, FleetReport};
use super::scenario::{PhaseLayout, Scenario};

/// Options of `ampwarden simulate`; each overrides the scenario file.
#[derive(Clone, Debug, clap::Args)]
pub struct SimulateArgs {
    /// The central system's OCPP endpoint; stations connect to URL/{id}.
    #[arg(long, value_name = "ws://HOST:PORT/ocpp")]
    pub url: String,
    /// Number of stations.
    #[arg(long, value_name = "N")]
    pub stations: Option<usize>,
    /// Serve a simulated Modbus TCP meter (iem3155) on 127.0.0.1:P.
    #[arg(long, value_name = "P")]
    pub meter_port: Option<u16>,
    /// Stop after S seconds (default: at Ctrl-C).
    #[arg(long, value_name = "S")]
    pub seconds: Option<u64>,
    /// Seed of every random choice: the same seed gives the same fleet and visits.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Simulated seconds per real second, for vehicles and the site's day.
    #[arg(long)]
    pub speedup: Option<f64>,
    /// Scenario file (TOML); see docs/simulate.md.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
    /// Station ids are PREFIX0001, PREFIX0002, …
    #[arg(long, value_name = "PREFIX")]
    pub id_prefix: Option<String>,
    /// 1, 3 or mixed (every fourth station 1-phase).
    #[arg(long)]
    pub phases: Option<PhaseLayout>,
    /// The stations' own maximum current, A per phase.
    #[arg(long, value_name = "A")]
    pub max_current: Option<f64>,
    /// The supply limit per phase the meter's readings are checked against.
    #[arg(long, value_name = "A")]
    pub site_limit_a: Option<f64>,
}

impl SimulateArgs {
    /// The scenario: the file's (or the defaults), then every option given.
    pub fn scenario(&self) -> Result<Scenario, super::scenario::ScenarioError> {
        let mut s = match &self.scenario {
            Some(path) => Scenario::from_toml_file(path)?,
            None => Scenario::default(),
        };
        if let Some(v) = self.stations {
            s.stations = v;
        }
        if let Some(v) = self.meter_port {
            s.meter_port = Some(v);
        }
        if let Some(v) = self.seconds {
            s.seconds = Some(v);
        }
        if let Some(v) = self.seed {
            s.seed = v;
        }
        if let Some(v) = self.speedup {
            s.speedup = v;
        }
        if let Some(v) = &self.id_prefix {
            s.id_prefix = v.clone();
        }
        if let Some(v) = self.phases {
            s.phases = v;
        }
        if let Some(v) = self.max_current {
            s.max_current_a = v;
        }
        if let Some(v) = self.site_limit_a {
            s.site_limit_a = v;
        }
        s.validate()?;
        Ok(s)
    }
}

/// Runs `ampwarden simulate`. Exit code 0; 1 if the fleet could not start; 3 if a
/// vehicle drew above its limit in force (the simulation itself is wrong).
pub fn run(args: &SimulateArgs) -> ExitCode {
    let scenario = match args.scenario() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match runtime("simulation") {
        Ok(r) => r,
        Err(code) => return code,
    };
    runtime.block_on(async {
        let fleet = match Fleet::start(&args.url, scenario.clone(), None).await {
            Ok(f) => f,
            Err(e) => {
                eprintln!("cannot start the simulation: {e}");
                return ExitCode::from(1);
            }
        };
        println!(
            "simulating {} stations against {} (seed {}, speed-up {}×){}; Ctrl-C to stop",
            scenario.stations,
            args.url,
            scenario.seed,
            scenario.speedup,
            fleet
                .meter_addr()
                .map(|a| format!(", meter iem3155 on {a}"))
                .unwrap_or_default()
        );
        let report = run_until_done(fleet, &scenario).await;
        println!("{report}");
        if report.over_limit > 0 {
            ExitCode::from(3)
        } else {
            ExitCode::SUCCESS
        }
    })
}

/// Prints the live summary until `scenario.seconds` have passed or Ctrl-C; then stops
/// the fleet and returns its report.
/// The two-thread runtime the simulator, the demos and their fleets run on.
pub(crate) fn runtime(what: &str) -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("cannot start the {what} runtime: {e}");
            ExitCode::from(1)
        })
}

pub async fn run_until_done(fleet: Fleet, scenario: &Scenario) -> FleetReport {
    let deadline = async {
        match scenario.seconds {
            Some(s) => tokio::time::sleep(Duration::from_secs(s)).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(deadline);
    let interrupted = async {
        if let Err(e) = tokio::signal::ctrl_c().await {
            eprintln!("cannot listen for Ctrl-C ({e}); the simulation runs until its end");
            std::future::pending::<()>().await;
        }
    };
    tokio::pin!(interrupted);
    let every = Duration::from_secs(scenario.summary_every_s.max(1));
    let mut summary = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        tokio::select! {
            _ = &mut deadline => break,
            _ = &mut interrupted => break,
            _ = summary.tick() => {
                if scenario.summary_every_s > 0 {
                    println!("{}", fleet.summary());
                }
            }
        }
    }
    println!("stopping the fleet…");
    fleet.stop().await
}
