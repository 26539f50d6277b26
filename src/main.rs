//! The `ampwarden` command: parse the command line, load the configuration, call the library.

use std::path::PathBuf;
use std::process::ExitCode;

use ampwarden::{memory, App, StartError};
use ampwarden_actors::config::Config;
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "ampwarden",
    version,
    about = "On-site EV-charging load management (OCPP 1.6J, Modbus meters)"
)]
struct Cli {
    /// Configuration file (TOML). Without it, the embedded defaults are used.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    /// With `run`: start the controller on a simulated demo site (stations, vehicles,
    /// meter) instead of a configuration.
    #[arg(long)]
    demo: bool,
    /// With `--demo`: a primary and three secondaries sharing one supply.
    #[arg(long, requires = "demo")]
    federation: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the controller (the default).
    Run,
    /// Validate a configuration and print its zone tree; exit 0 if valid, 1 if not.
    CheckConfig,
    /// Save the commissioned configuration, badges, users and tokens to one JSON file
    /// (the controller must be stopped).
    Backup {
        #[arg(long, value_name = "FILE.json")]
        out: PathBuf,
    },
    /// Restore a backup into the storage of a stopped controller; its next start runs it.
    Restore {
        #[arg(long, value_name = "FILE.json")]
        from: PathBuf,
    },
    /// A fleet of simulated OCPP 1.6J stations and vehicles against a central system.
    Simulate(ampwarden::simulate::cli::SimulateArgs),
    /// A new token for a federation secondary: prints the token (for the secondary's
    /// `federation.token`) and its hash (for the primary's `token_hash`).
    FederationToken,
    /// Certificates for the TLS listeners and the stations (security profiles 2 and 3).
    Tls {
        #[command(subcommand)]
        command: TlsCommand,
    },
}

#[derive(Subcommand)]
enum TlsCommand {
    /// A site CA (ca.pem, ca.key) and a server certificate signed by it (server.pem,
    /// server.key) in DIR; prints the configuration lines that use them.
    Init {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A name or address the controller is reached at (repeatable). Default:
        /// localhost, 127.0.0.1 and this machine's host name.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// Replace files that exist.
        #[arg(long)]
        force: bool,
    },
    /// A new server certificate (server.pem, server.key) signed by the CA in DIR: to
    /// renew it or change its names; the stations that trust the CA keep working.
    Server {
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A name or address the controller is reached at (repeatable). Default:
        /// localhost, 127.0.0.1 and this machine's host name.
        #[arg(long = "host", value_name = "NAME")]
        hosts: Vec<String>,
        /// Replace server.pem and server.key (always there after `tls init`).
        #[arg(long)]
        force: bool,
    },
    /// A client certificate for station ID (subject CN = ID), signed by the CA in DIR:
    /// station-ID.pem and station-ID.key, for security profile 3.
    Station {
        id: String,
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Replace files that exist.
        #[arg(long)]
        force: bool,
    },
}

fn main() -> ExitCode {
    memory::tune_malloc();
    let cli = Cli::parse();
    init_tracing();
    match cli.command.unwrap_or(Command::Run) {
        Command::Run if cli.demo && cli.federation => {
            memory::start_trimming();
            ampwarden::simulate::federation_demo::run()
        }
        Command::Run if cli.demo => {
            memory::start_trimming();
            ampwarden::simulate::demo::run()
        }
        Command::Run => {
            memory::start_trimming();
            run(cli.config)
        }
        Command::CheckConfig => check_config(cli.config),
        Command::Backup { out } => backup(cli.config, &out),
        Command::Restore { from } => restore(cli.config, &from),
        Command::Simulate(args) => ampwarden::simulate::cli::run(&args),
        Command::FederationToken => federation_token(),
        Command::Tls { command } => tls(command),
    }
}

fn tls(command: TlsCommand) -> ExitCode {
    match command {
        TlsCommand::Init { dir, hosts, force } => {
            let hosts = if hosts.is_empty() {
                ampwarden::tls::default_hosts()
            } else {
                hosts
            };
            match ampwarden::tls::init(&dir, &hosts, force) {
                Ok(made) => {
                    println!(
                        "wrote {}, {} (the site CA) and {}, {} (the server, for {})",
                        made.ca_cert.display(),
                        made.ca_key.display(),
                        made.server_cert.display(),
                        made.server_key.display(),
                        made.hosts.join(", ")
                    );
                    println!("keep ca.key private (ideally off this machine once the station certificates are issued)");
                    println!("add to the configuration:\n");
                    print!("{}", ampwarden::tls::config_lines(&made));
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tls init failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
        TlsCommand::Server { dir, hosts, force } => {
            let hosts = if hosts.is_empty() {
                ampwarden::tls::default_hosts()
            } else {
                hosts
            };
            match ampwarden::tls::renew_server(&dir, &hosts, force) {
                Ok(made) => {
                    println!(
                        "wrote {} and {} (the server, for {}), signed by {}; send the controller SIGHUP to use them",
                        made.server_cert.display(),
                        made.server_key.display(),
                        made.hosts.join(", "),
                        made.ca_cert.display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tls server failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
        TlsCommand::Station { id, dir, force } => {
            match ampwarden::tls::issue_station(&dir, &id, force) {
                Ok(made) => {
                    println!(
                        "wrote {} and {}: the client certificate of station {id} (CN={id}); load both into the station, with {} as the server's CA, and set its security_profile = 3",
                        made.cert.display(),
                        made.key.display(),
                        dir.join(ampwarden::tls::CA_CERT).display()
                    );
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("tls station failed: {e}");
                    ExitCode::from(1)
                }
            }
        }
    }
}

/// What `check-config` says about a federation: each secondary a primary expects, and
/// how much of each zone their fallbacks may take at once.
fn federation_text(config: &Config) -> String {
    use ampwarden_actors::config::{FederationRole, SecondaryToken};
    let Some(f) = &config.federation else {
        return String::new();
    };
    match f.role {
        FederationRole::Secondary => format!(
            "federation: secondary of {} (zone {}), fallback {} A\n",
            f.primary_url.as_deref().unwrap_or("?"),
            f.zone.as_ref().map_or("?", |z| z.as_str()),
            f.fallback_budget_a.map_or(0.0, |a| a.0)
        ),
        FederationRole::Primary => {
            let mut out = format!(
                "federation: primary of {} secondaries, grants valid {} s\n",
                f.tokens.len(),
                f.valid_for_s
            );
            let mut sums: std::collections::BTreeMap<&str, f64> = Default::default();
            for t in &f.tokens {
                match t {
                    SecondaryToken::Described(d) => {
                        out.push_str(&format!(
                            "  {} → zone {}, fallback {} A\n",
                            d.name,
                            d.zone.as_str(),
                            d.fallback_budget_a.0
                        ));
                        *sums.entry(d.zone.as_str()).or_default() += d.fallback_budget_a.0;
                    }
                    SecondaryToken::Plain(_) => out.push_str(
                        "  (a token only: its zone and fallback are known once it links)\n",
                    ),
                }
            }
            for (zone, sum) in sums {
                let limit = config
                    .zones
                    .iter()
                    .find(|z| z.id.as_str() == zone)
                    .map_or(0.0, |z| z.limit_a.0);
                out.push_str(&format!(
                    "  fallbacks on zone {zone}: {sum} A of {limit} A\n"
                ));
            }
            out
        }
    }
}

fn federation_token() -> ExitCode {
    match ampwarden::federation::new_token() {
        Ok(token) => {
            println!("token = \"{token}\"");
            println!(
                "token_hash = \"{}\"",
                ampwarden::federation::token_hash(&token)
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("cannot draw a random token: {e}");
            ExitCode::from(1)
        }
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours only on a terminal: log files and journald get plain text.
    let colour = std::io::IsTerminal::is_terminal(&std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(colour)
        .with_writer(std::io::stderr)
        .init();
}

/// Reads and validates the configuration; prints one line per problem on failure.
fn load_config(path: Option<&PathBuf>) -> Result<Config, ExitCode> {
    let Some(path) = path else {
        return Ok(Config::embedded_default());
    };
    let text = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("cannot read configuration {}: {e}", path.display());
        ExitCode::from(2)
    })?;
    Config::from_toml_str(&text).map_err(|problems| {
        for p in &problems.0 {
            eprintln!("{p}");
        }
        ExitCode::from(2)
    })
}

fn check_config(path: Option<PathBuf>) -> ExitCode {
    match load_config(path.as_ref()) {
        Ok(config) => {
            // The configuration's own checks are pure; its [tls] files are read here.
            if let Some(tls) = &config.tls {
                match ampwarden::tls::ServerTls::load(tls) {
                    Ok(t) => println!("TLS certificate: {}", t.certificate()),
                    Err(e) => {
                        eprintln!("{e}");
                        return ExitCode::from(1);
                    }
                }
            }
            print!("{}", config.zone_tree_text());
            print!("{}", federation_text(&config));
            for w in config.warnings() {
                println!("warning: {w}");
            }
            println!(
                "configuration valid: {} zones, {} stations, {} meters, {} badges, {} tariff periods",
                config.zones.len(),
                config.stations.len(),
                config.meters.len(),
                config.badges.len(),
                config.tariffs.len()
            );
            ExitCode::SUCCESS
        }
        Err(_) => ExitCode::from(1),
    }
}

fn backup(path: Option<PathBuf>, out: &std::path::Path) -> ExitCode {
    let config = match load_config(path.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match ampwarden::backup::backup_to_file(&config, out) {
        Ok(b) => {
            println!(
                "backup written to {}: {} zones, {} stations, {} badges, {} accounts",
                out.display(),
                b.config.zones.len(),
                b.config.stations.len(),
                b.badges.len(),
                b.accounts.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("backup failed: {e}");
            ExitCode::from(1)
        }
    }
}

fn restore(path: Option<PathBuf>, from: &std::path::Path) -> ExitCode {
    let config = match load_config(path.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    match ampwarden::backup::restore_from_file(&config, from) {
        Ok(b) => {
            println!(
                "restored {}: {} zones, {} stations, {} badges, {} accounts; start the controller with the same --config to run it",
                from.display(),
                b.config.zones.len(),
                b.config.stations.len(),
                b.badges.len(),
                b.accounts.len()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("restore failed: {e}");
            ExitCode::from(1)
        }
    }
}

fn run(path: Option<PathBuf>) -> ExitCode {
    let config = match load_config(path.as_ref()) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let app = match App::start(config) {
        Ok(app) => app,
        Err(e @ (StartError::Config(_) | StartError::Tls(_))) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("ampwarden could not start: {e}");
            return ExitCode::from(1);
        }
    };
    if let Err(e) = wait_for_stop(&app) {
        eprintln!("cannot listen for signals: {e}");
    }
    tracing::info!("stopping: closing connections and flushing storage");
    app.stop();
    ExitCode::SUCCESS
}

/// Blocks until SIGINT or SIGTERM; on SIGHUP reloads the TLS certificate and goes on.
fn wait_for_stop(app: &ampwarden::AppHandle) -> std::io::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    runtime.block_on(async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{signal, SignalKind};
            let mut term = signal(SignalKind::terminate())?;
            let mut hangup = signal(SignalKind::hangup())?;
            loop {
                tokio::select! {
                    r = tokio::signal::ctrl_c() => return r,
                    _ = term.recv() => return Ok(()),
                    _ = hangup.recv() => {
                        tracing::info!("SIGHUP: reloading the TLS certificate");
                        // Logged either way; a bad file keeps the certificate in use.
                        let _ = app.reload_tls();
                    }
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = app;
            tokio::signal::ctrl_c().await
        }
    })
}
