//! The command line as an installer uses it: check-config, refusal of bad configurations
//! with one line per problem, and a clean exit on SIGTERM.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_ampwarden");

fn write_config(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("site.toml");
    std::fs::write(&path, text).expect("write config");
    path
}

#[test]
fn check_config_prints_the_zone_tree_of_the_example_site() {
    let out = Command::new(BIN)
        .args([
            "check-config",
            "--config",
            concat!(env!("CARGO_MANIFEST_DIR"), "/config/examples/depot.toml"),
        ])
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("main limit 250.0 A, static EV 100.0 A, meter incomer"),
        "{stdout}"
    );
    assert!(stdout.contains("  panel-b limit 80.0 A"), "{stdout}");
    assert!(
        stdout.contains("- station DEPOT-B1 max 32.0 A 1-phase L2"),
        "{stdout}"
    );
}

#[test]
fn check_config_of_the_embedded_default_succeeds() {
    let out = Command::new(BIN)
        .arg("check-config")
        .output()
        .expect("runs");
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("main limit 63.0 A"));
}

#[test]
fn check_config_warns_that_a_metered_zone_without_a_stale_fallback_gets_nothing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        "[site]\nmode = \"dynamic\"\n[[zones]]\nid = \"main\"\nlimit_a = 100.0\nmeter = \"incomer\"\n\
         [[meters]]\nid = \"incomer\"\nprotocol = \"modbus-tcp\"\naddress = \"127.0.0.1:1502\"\n\
         unit_id = 1\nprofile = \"iem3155\"\nmeasures = \"total\"\n",
    );
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "a warning is not an error: {stdout}");
    assert!(
        stdout.contains("warning: zones[0].static_ev_limit_a: unset: when meter incomer goes stale, zone main gives its vehicles 0 A"),
        "{stdout}"
    );
    let with_fallback = std::fs::read_to_string(&config).unwrap().replace(
        "limit_a = 100.0\n",
        "limit_a = 100.0\nstatic_ev_limit_a = 40.0\n",
    );
    std::fs::write(&config, with_fallback).unwrap();
    let out = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{stdout}");
    assert!(!stdout.contains("warning"), "{stdout}");
}

#[test]
fn a_bad_configuration_is_refused_with_one_line_per_problem() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        "[[zones]]\nid = \"main\"\nlimit_a = 100.0\n[[zones]]\nid = \"sub\"\nparent = \"panl-1\"\nlimit_a = 10.0\n\
         [[stations]]\nid = \"CP1\"\nzone = \"nowhere\"\nmax_current_a = 16.0\n",
    );
    let check = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(check.status.code(), Some(1));
    let run = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .output()
        .expect("runs");
    assert_eq!(run.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&run.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(
        lines,
        vec![
            r#"zones[1].parent: unknown zone "panl-1""#,
            r#"stations[0].zone: unknown zone "nowhere""#
        ],
        "nothing but the problems"
    );
    assert!(!dir.path().join("data").exists(), "nothing is half-started");
}

#[test]
fn a_missing_configuration_file_is_refused() {
    let run = Command::new(BIN)
        .args(["--config", "/nonexistent/ampwarden.toml"])
        .output()
        .expect("runs");
    assert_eq!(run.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&run.stderr)
        .contains("cannot read configuration /nonexistent/ampwarden.toml"));
}

#[test]
fn sigterm_stops_the_controller_cleanly_with_exit_code_0() {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = write_config(
        dir.path(),
        &format!(
            "[server]\nhttp_listen = \"127.0.0.1:0\"\nocpp_listen = \"127.0.0.1:0\"\n[storage]\npath = {:?}\n\
             [[zones]]\nid = \"main\"\nlimit_a = 63.0\n",
            dir.path().join("data").display().to_string()
        ),
    );
    let mut child = Command::new(BIN)
        .arg("--config")
        .arg(&config)
        .env("RUST_LOG", "info")
        .stderr(Stdio::piped())
        .spawn()
        .expect("starts");
    let stderr = child.stderr.take().expect("stderr");
    let mut lines = BufReader::new(stderr).lines();
    let running = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("ampwarden is running"));
    assert!(running, "the controller announced it is running");
    let pid = child.id().to_string();
    let killed = Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .expect("kill runs");
    assert!(killed.success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "still running 10 s after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(status.code(), Some(0));
    assert!(
        dir.path().join("data").join("db").exists(),
        "storage was written"
    );
}

#[test]
fn a_federation_token_and_its_hash_make_a_primary_check_config_accepts() {
    let out = Command::new(BIN)
        .arg("federation-token")
        .output()
        .expect("runs");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let value = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(&format!("{key} = \"")))
            .map(|v| v.trim_end_matches('"').to_owned())
            .expect("printed")
    };
    let (token, hash) = (value("token"), value("token_hash"));
    assert_eq!(hash, ampwarden::federation::token_hash(&token));
    let dir = tempfile::tempdir().expect("temp dir");
    let primary = |fallback: f64| {
        format!(
            "[[zones]]\nid = \"main\"\nlimit_a = 100.0\n\n[federation]\nrole = \"primary\"\n\
             tokens = [{{ name = \"hall-b\", token_hash = \"{hash}\", zone = \"main\", fallback_budget_a = {fallback} }}]\n"
        )
    };
    let check = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(write_config(dir.path(), &primary(40.0)))
        .output()
        .expect("runs");
    let stdout = String::from_utf8_lossy(&check.stdout);
    assert!(check.status.success(), "{stdout}");
    assert!(
        stdout.contains("  hall-b → zone main, fallback 40 A\n"),
        "{stdout}"
    );
    assert!(
        stdout.contains("  fallbacks on zone main: 40 A of 100 A\n"),
        "{stdout}"
    );
    let over = Command::new(BIN)
        .args(["check-config", "--config"])
        .arg(write_config(dir.path(), &primary(140.0)))
        .output()
        .expect("runs");
    assert_eq!(over.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&over.stderr).contains(
        "federation.tokens: the fallbacks of the secondaries feeding zone \"main\" add up to 140 A, above its limit of 100 A"
    ));
}
