//! One test per validation rule, asserting the exact line an installer would read.

use super::*;

const BASE: &str = r#"
[site]
name = "Depot North"
mode = "dynamic"
voltage_v = 230.0

[[zones]]
id = "main"
limit_a = 100.0
static_ev_limit_a = 63.0
meter = "main-meter"

[[zones]]
id = "panel-1"
parent = "main"
limit_a = 63.0

[[meters]]
id = "main-meter"
address = "127.0.0.1:5020"
profile = "iem3155"

[[stations]]
id = "CP001"
zone = "panel-1"
max_current_a = 32.0

[[badges]]
id_tag = "04A1B2C3"

[[tariffs]]
name = "peak"
days = ["mon", "tue", "wed", "thu", "fri"]
from = "17:00"
to = "21:00"
ev_cap_pct = 30
price_per_kwh = 0.32
"#;

/// The lines reported for `BASE` with `extra` appended.
fn problems_with(extra: &str) -> Vec<String> {
    let text = format!("{BASE}\n{extra}");
    match Config::from_toml_str(&text) {
        Ok(_) => Vec::new(),
        Err(p) => p.0.iter().map(ToString::to_string).collect(),
    }
}

/// The lines reported for `BASE` with `from` replaced by `to`.
fn problems_replacing(from: &str, to: &str) -> Vec<String> {
    assert!(BASE.contains(from), "test bug: {from:?} not in BASE");
    match Config::from_toml_str(&BASE.replacen(from, to, 1)) {
        Ok(_) => Vec::new(),
        Err(p) => p.0.iter().map(ToString::to_string).collect(),
    }
}

fn assert_reports(lines: &[String], expected: &str) {
    assert!(
        lines.iter().any(|l| l == expected),
        "expected the line {expected:?}, got {lines:#?}"
    );
}

#[test]
fn the_spec_example_and_the_embedded_default_are_valid() {
    let c = Config::from_toml_str(BASE).expect("BASE is valid");
    assert_eq!(c.zones.len(), 2);
    assert_eq!(c.tariffs[0].from.minutes, 17 * 60);
    let d = Config::embedded_default();
    assert_eq!(d.server.http_listen.to_string(), "127.0.0.1:8080");
    assert_eq!(d.server.ocpp_listen.to_string(), "127.0.0.1:8887");
    assert_eq!(d.storage.path, std::path::PathBuf::from("data"));
}

#[test]
fn a_config_survives_a_toml_round_trip() {
    let c = Config::from_toml_str(BASE).expect("BASE is valid");
    let again = Config::from_toml_str(&c.to_toml_string()).expect("round trip is valid");
    assert_eq!(c, again);
}

#[test]
fn unknown_parent_is_named_with_its_key() {
    let lines = problems_with("[[zones]]\nid = \"sub\"\nparent = \"panl-1\"\nlimit_a = 10.0\n");
    assert_eq!(lines, vec![r#"zones[2].parent: unknown zone "panl-1""#]);
}

#[test]
fn unknown_station_zone_is_reported() {
    let lines =
        problems_with("[[stations]]\nid = \"CP002\"\nzone = \"nowhere\"\nmax_current_a = 16.0\n");
    assert_reports(&lines, r#"stations[1].zone: unknown zone "nowhere""#);
}

#[test]
fn every_problem_gets_its_own_line() {
    let lines = problems_with(
        "[[stations]]\nid = \"CP002\"\nzone = \"nowhere\"\nmax_current_a = 16.0\n\
         [[zones]]\nid = \"x\"\nparent = \"ghost\"\nlimit_a = -1.0\n",
    );
    assert_reports(&lines, r#"stations[1].zone: unknown zone "nowhere""#);
    assert_reports(&lines, r#"zones[2].parent: unknown zone "ghost""#);
    assert_reports(&lines, "zones[2].limit_a: -1 is below 0 A");
    assert_eq!(lines.len(), 3, "{lines:#?}");
}

#[test]
fn cycles_are_refused() {
    let lines = problems_replacing(
        "id = \"main\"\nlimit_a = 100.0",
        "id = \"main\"\nparent = \"panel-1\"\nlimit_a = 100.0",
    );
    assert_reports(
        &lines,
        r#"zones[0].parent: zone "main" is its own ancestor (a cycle)"#,
    );
    assert_reports(
        &lines,
        r#"zones[1].parent: zone "panel-1" is its own ancestor (a cycle)"#,
    );
    assert_reports(&lines, "zones: no root zone (a zone without parent)");
}

#[test]
fn more_than_four_levels_are_refused() {
    let lines = problems_with(
        "[[zones]]\nid = \"l3\"\nparent = \"panel-1\"\nlimit_a = 32.0\n\
         [[zones]]\nid = \"l4\"\nparent = \"l3\"\nlimit_a = 32.0\n\
         [[zones]]\nid = \"l5\"\nparent = \"l4\"\nlimit_a = 32.0\n",
    );
    assert_eq!(
        lines,
        vec![r#"zones[4].parent: zone "l5" is 5 levels deep; at most 4 are supported"#]
    );
}

#[test]
fn more_than_200_zones_are_refused() {
    let extra: String = (0..200)
        .map(|i| format!("[[zones]]\nid = \"z{i}\"\nparent = \"main\"\nlimit_a = 10.0\n"))
        .collect();
    let lines = problems_with(&extra);
    assert_eq!(lines, vec!["zones: 202 zones; at most 200 are supported"]);
}

#[test]
fn duplicate_ids_are_refused() {
    let lines = problems_with(
        "[[zones]]\nid = \"panel-1\"\nparent = \"main\"\nlimit_a = 10.0\n\
         [[stations]]\nid = \"CP001\"\nzone = \"main\"\nmax_current_a = 16.0\n\
         [[meters]]\nid = \"main-meter\"\naddress = \"127.0.0.1:5021\"\nprofile = \"pm5320\"\n\
         [[badges]]\nid_tag = \"04a1b2c3\"\n",
    );
    assert_reports(
        &lines,
        r#"zones[2].id: duplicate zone "panel-1" (also zones[1])"#,
    );
    assert_reports(
        &lines,
        r#"stations[1].id: duplicate station "CP001" (also stations[0])"#,
    );
    assert_reports(
        &lines,
        r#"meters[1].id: duplicate meter "main-meter" (also meters[0])"#,
    );
    assert_reports(
        &lines,
        r#"badges[1].id_tag: duplicate badge "04a1b2c3" (also badges[0])"#,
    );
}

#[test]
fn absurd_currents_are_refused() {
    assert_eq!(
        problems_replacing(
            "parent = \"main\"\nlimit_a = 63.0",
            "parent = \"main\"\nlimit_a = 1e9"
        ),
        vec!["zones[1].limit_a: 1000000000 A is implausible (more than 10000 A)"]
    );
    assert_eq!(
        problems_replacing("max_current_a = 32.0", "max_current_a = -4.0"),
        vec!["stations[0].max_current_a: -4 is below 0 A"]
    );
    assert_eq!(
        problems_replacing("max_current_a = 32.0", "max_current_a = nan"),
        vec!["stations[0].max_current_a: must be a finite number of amperes"]
    );
    assert_eq!(
        problems_replacing("max_current_a = 32.0", "max_current_a = 4.0"),
        vec!["stations[0].max_current_a: 4.0 A is below control.min_current_a 6.0 A: it could never charge"]
    );
}

#[test]
fn static_limit_above_the_zone_limit_is_refused() {
    assert_eq!(
        problems_replacing("static_ev_limit_a = 63.0", "static_ev_limit_a = 120.0"),
        vec!["zones[0].static_ev_limit_a: 120.0 A is above the zone's limit_a 100.0 A"]
    );
}

#[test]
fn bad_tariff_days_and_times_are_refused() {
    let lines = problems_replacing(r#"days = ["mon","#, r#"days = ["mondays","#);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("tariffs[0].days[0]: unknown day \"mondays\""),
        "{lines:?}"
    );

    let lines = problems_replacing(r#"to = "21:00""#, r#"to = "25:00""#);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("tariffs[0].to: bad time \"25:00\""),
        "{lines:?}"
    );

    assert_eq!(
        problems_replacing(r#"to = "21:00""#, r#"to = "17:00""#),
        vec!["tariffs[0].to: is the same as from: the period would be empty"]
    );
    assert_eq!(
        problems_replacing("ev_cap_pct = 30", "ev_cap_pct = 130"),
        vec!["tariffs[0].ev_cap_pct: 130 is not a percentage (0 to 100)"]
    );
}

#[test]
fn unknown_meter_profile_is_refused() {
    let lines = problems_replacing(r#"profile = "iem3155""#, r#"profile = "iem9999""#);
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("meters[0].profile: unknown variant `iem9999`"),
        "{lines:?}"
    );
}

#[test]
fn unknown_meter_reference_is_refused() {
    assert_eq!(
        problems_replacing(r#"meter = "main-meter""#, r#"meter = "mian-meter""#),
        vec![r#"zones[0].meter: unknown meter "mian-meter""#]
    );
}

#[test]
fn bad_meter_address_is_refused() {
    assert_eq!(
        problems_replacing(r#"address = "127.0.0.1:5020""#, r#"address = "127.0.0.1""#),
        vec![r#"meters[0].address: "127.0.0.1" is not host:port"#]
    );
}

#[test]
fn generic_meter_needs_its_map() {
    assert_eq!(
        problems_replacing(r#"profile = "iem3155""#, r#"profile = "generic""#),
        vec!["meters[0].generic: the generic profile needs its register map ([meters.generic])"]
    );
    let with_map = BASE.replacen(
        r#"profile = "iem3155""#,
        "profile = \"generic\"\n[meters.generic]\ncurrents = [1, 3, 5]\ntype = \"i16\"\ncurrent_scale = 0.1\n",
        1,
    );
    Config::from_toml_str(&with_map).expect("a generic meter with its map is valid");
}

#[test]
fn bad_listen_address_is_refused() {
    let lines = problems_with("[server]\nhttp_listen = \"localhost-8080\"\n");
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("server.http_listen: invalid socket address"),
        "{lines:?}"
    );
    let lines = problems_with(
        "[server]\nhttp_listen = \"127.0.0.1:9000\"\nocpp_listen = \"127.0.0.1:9000\"\n",
    );
    assert_eq!(
        lines,
        vec!["server.ocpp_listen: is the same address as server.http_listen (127.0.0.1:9000)"]
    );
}

#[test]
fn unknown_keys_are_refused_with_their_path() {
    let lines = problems_replacing(
        "parent = \"main\"\nlimit_a = 63.0",
        "parent = \"main\"\nlimit_a = 63.0\nlimt_a = 20.0",
    );
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with("zones[1].limt_a: unknown field `limt_a`"),
        "{lines:?}"
    );
    assert!(lines[0].ends_with("(line 17)"), "{lines:?}");
}

#[test]
fn wrong_types_name_their_key() {
    let lines = problems_replacing(
        "parent = \"main\"\nlimit_a = 63.0",
        "parent = \"main\"\nlimit_a = \"63\"",
    );
    assert_eq!(
        lines,
        vec!["zones[1].limit_a: invalid type: string \"63\", expected f64 (line 16)"]
    );
}

#[test]
fn phases_must_be_one_or_three() {
    let lines = problems_replacing("max_current_a = 32.0", "max_current_a = 32.0\nphases = 2");
    assert_eq!(
        lines,
        vec!["stations[0].phases: phases must be 1 or 3, not 2 (line 27)"]
    );
}

#[test]
fn default_zone_must_exist_when_scanning() {
    let lines =
        problems_with("[server]\naccept_unknown_stations = true\ndefault_zone = \"nope\"\n");
    assert_eq!(lines, vec![r#"server.default_zone: unknown zone "nope""#]);
}

#[test]
fn bad_site_values_are_refused() {
    assert_eq!(
        problems_replacing("voltage_v = 230.0", "voltage_v = 23000.0"),
        vec!["site.voltage_v: 23000 V is not a phase-to-neutral voltage (100 to 480)"]
    );
    assert_eq!(
        problems_replacing(
            "voltage_v = 230.0",
            "voltage_v = 230.0\ntimezone = \"Mars/Olympus\""
        ),
        vec![
            r#"site.timezone: unknown time zone "Mars/Olympus" (use an IANA name like "Europe/Paris")"#
        ]
    );
}

#[test]
fn bad_control_values_are_refused() {
    let lines =
        problems_with("[control]\ninterval_s = 0\nmin_current_a = 40.0\nsafety_margin_a = -1.0\n");
    assert_reports(&lines, "control.interval_s: 0 is out of range (1 to 3600)");
    assert_reports(
        &lines,
        "control.min_current_a: 40 A is implausible (more than 32 A)",
    );
    assert_reports(&lines, "control.safety_margin_a: -1 is below 0 A");
}

#[test]
fn sample_retention_is_at_least_a_day() {
    assert_reports(
        &problems_with("[storage]\nsample_retention_days = 0\n"),
        "storage.sample_retention_days: 0 is out of range (1 to 3650)",
    );
    assert!(problems_with("[storage]\nsample_retention_days = 365\n").is_empty());
}

#[test]
fn transaction_retention_is_at_least_a_month_and_not_shorter_than_the_samples() {
    assert_reports(
        &problems_with("[storage]\ntransaction_retention_days = 7\n"),
        "storage.transaction_retention_days: 7 is out of range (30 to 36500)",
    );
    assert_reports(
        &problems_with("[storage]\nsample_retention_days = 90\ntransaction_retention_days = 60\n"),
        "storage.transaction_retention_days: 60 is out of range (90 to 36500)",
    );
    assert!(problems_with("[storage]\ntransaction_retention_days = 730\n").is_empty());
}

#[test]
fn bad_badges_and_station_ids_are_refused() {
    let lines = problems_with(
        "[[badges]]\nid_tag = \"012345678901234567890\"\n\
         [[stations]]\nid = \"bad/id\"\nzone = \"main\"\nmax_current_a = 16.0\n",
    );
    assert_reports(&lines, "badges[1].id_tag: must be 1 to 20 characters");
    assert_reports(
        &lines,
        r#"stations[1].id: "bad/id" may hold only letters, digits and - _ . :"#,
    );
}

#[test]
fn a_federation_ca_file_is_for_a_secondary_dialling_wss() {
    let secondary = |url: &str| {
        format!(
            "[federation]\nrole = \"secondary\"\nprimary_url = \"{url}\"\ntoken = \"token-of-hall-b-01\"\n\
             zone = \"main\"\nfallback_budget_a = 20.0\nca_file = \"/etc/ampwarden/ca.pem\"\n"
        )
    };
    assert!(problems_with(&secondary("wss://10.0.0.2:8443")).is_empty());
    assert_reports(
        &problems_with(&secondary("ws://10.0.0.2:8080")),
        r#"federation.ca_file: is only used with a wss:// primary_url, not "ws://10.0.0.2:8080""#,
    );
    assert_reports(
        &problems_with(
            "[federation]\nrole = \"primary\"\ntokens = [\"token-number-0001\"]\nca_file = \"ca.pem\"\n",
        ),
        "federation.ca_file: only a secondary uses it (to check the primary it dials)",
    );
}

#[test]
fn federation_roles_need_their_keys() {
    let lines = problems_with("[federation]\nrole = \"secondary\"\n");
    assert_reports(
        &lines,
        "federation.primary_url: a secondary needs the primary's URL",
    );
    assert_reports(
        &lines,
        "federation.token: a secondary needs its token at the primary",
    );
    assert_reports(
        &lines,
        "federation.zone: a secondary needs the zone of the primary it feeds",
    );
    assert_reports(
        &lines,
        "federation.fallback_budget_a: a secondary needs a budget for when the link is lost",
    );
    let tokens: Vec<String> = (0..10)
        .map(|i| format!("\"token-number-{i:04}\""))
        .collect();
    let lines = problems_with(&format!(
        "[federation]\nrole = \"primary\"\ntokens = [{}]\n",
        tokens.join(",")
    ));
    assert_eq!(
        lines,
        vec!["federation.tokens: 10 tokens; a primary leads at most 9 secondaries"]
    );
}

#[test]
fn a_primary_checks_its_secondaries() {
    let entry = |name: &str, token: &str, zone: &str, fallback: f64| {
        format!(
            "{{ name = \"{name}\", {token}, zone = \"{zone}\", fallback_budget_a = {fallback} }}"
        )
    };
    let ok = format!(
        "[federation]\nrole = \"primary\"\ntokens = [{}, {}, \"plain-token-0000001\"]\n",
        entry("hall-a", "token = \"secret-of-hall-a-000\"", "main", 40.0),
        entry(
            "hall-b",
            "token_hash = \"blake2s:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\"",
            "panel-1",
            20.0
        ),
    );
    assert_eq!(problems_with(&ok), Vec::<String>::new());
    // Two secondaries on main whose fallbacks add up to more than its 100 A.
    let over = format!(
        "[federation]\nrole = \"primary\"\ntokens = [{}, {}]\n",
        entry("hall-a", "token = \"secret-of-hall-a-000\"", "main", 60.0),
        entry("hall-b", "token = \"secret-of-hall-b-000\"", "main", 50.0),
    );
    assert_eq!(
        problems_with(&over),
        vec!["federation.tokens: the fallbacks of the secondaries feeding zone \"main\" add up to 110 A, above its limit of 100 A: with the links lost they could overload it"]
    );
    let bad = format!(
        "[federation]\nrole = \"primary\"\nvalid_for_s = 1\ntokens = [{}, {}, {}]\n",
        entry(
            "hall-a",
            "token = \"secret-of-hall-a-000\"",
            "nowhere",
            10.0
        ),
        entry("hall-a", "token_hash = \"md5:abc\"", "main", 10.0),
        entry("hall-c", "token = \"short\"", "main", -1.0),
    );
    assert_eq!(
        problems_with(&bad),
        vec![
            "federation.valid_for_s: 1 s: a grant must hold 6 to 120 s (it is refreshed every 2 s)",
            "federation.tokens[0].zone: unknown zone \"nowhere\"",
            "federation.tokens[1].token_hash: must be \"blake2s:\" and 43 base64url characters, as `ampwarden federation-token` prints it",
            "federation.tokens[1].name: secondary \"hall-a\" is listed twice",
            "federation.tokens[2].token: needs at least 16 characters",
            "federation.tokens[2].fallback_budget_a: -1 is below 0 A",
        ]
    );
}

#[test]
fn not_toml_is_one_clear_line() {
    let problems = Config::from_toml_str("[site\nname=").expect_err("broken TOML");
    assert_eq!(problems.0.len(), 1);
    assert!(
        problems.0[0].message.starts_with("not valid TOML:"),
        "{problems}"
    );
    assert!(!problems.to_string().contains('\n'));
}

#[test]
fn zone_tree_text_shows_limits_and_stations() {
    let c = Config::from_toml_str(BASE).expect("BASE is valid");
    assert_eq!(
        c.zone_tree_text(),
        "main limit 100.0 A, static EV 63.0 A, meter main-meter\n  \
         panel-1 limit 63.0 A\n    - station CP001 max 32.0 A 3-phase\n"
    );
}

#[test]
fn production_meters_attach_as_production_meter_only() {
    let solar = "[[meters]]\nid = \"solar\"\naddress = \"127.0.0.1:5021\"\nprofile = \"pm5320\"\nmeasures = \"production\"\n";
    let lines = problems_with(solar);
    assert_eq!(
        lines,
        vec!["meters[1].measures: a production meter must be attached to a zone"]
    );
    let lines = problems_replacing(
        "parent = \"main\"\nlimit_a = 63.0",
        "parent = \"main\"\nlimit_a = 63.0\nproduction_meter = \"main-meter\"",
    );
    assert_reports(
        &lines,
        r#"zones[1].production_meter: meter "main-meter" does not measure production (measures = "production")"#,
    );
    assert_reports(
        &lines,
        r#"zones: meter "main-meter" is attached to zones "main" and "panel-1"; a meter measures one feeder"#,
    );
    let ok = BASE.replacen(
        "meter = \"main-meter\"",
        "meter = \"main-meter\"\nproduction_meter = \"solar\"",
        1,
    );
    Config::from_toml_str(&format!("{ok}\n{solar}"))
        .expect("a zone with a consumption and a production meter");
}

#[test]
fn bms_writes_need_a_failsafe_and_sane_limits() {
    assert!(problems_with("[bms]\nmodbus_listen = \"127.0.0.1:5020\"\n").is_empty());
    let lines = problems_with("[bms]\nwrite = true\n");
    assert_reports(
        &lines,
        "bms.failsafe_current_a: is required with write = true: the site cap when no valid write is in force (a BMS that stops writing must not leave the site unlimited)",
    );
    let lines = problems_with(
        "[bms]\nwrite = true\nfailsafe_current_a = -5.0\nallow = [\"10.0.0.0/33\", \"bms.local\"]\n\
         max_clients = 0\ndefault_validity_s = 7200\nzone_failsafe_a = { nowhere = 10.0 }\n",
    );
    assert_reports(&lines, "bms.failsafe_current_a: -5 is below 0 A");
    assert_reports(
        &lines,
        "bms.allow[0]: \"10.0.0.0/33\" is neither an IP address nor a network like 10.0.0.0/24",
    );
    assert_reports(
        &lines,
        "bms.allow[1]: \"bms.local\" is neither an IP address nor a network like 10.0.0.0/24",
    );
    assert_reports(&lines, "bms.max_clients: 0 is out of range (1 to 256)");
    assert_reports(
        &lines,
        "bms.default_validity_s: 7200 is out of range (1 to 3600)",
    );
    assert_reports(
        &lines,
        "bms.zone_failsafe_a.nowhere: unknown zone \"nowhere\"",
    );
    let lines = problems_with("[bms]\nmodbus_listen = \"127.0.0.1:8080\"\n");
    assert_reports(
        &lines,
        "bms.modbus_listen: 127.0.0.1:8080 is already the HTTP or OCPP listener",
    );
    let lines = problems_with("[bms]\nunknown = 1\n");
    assert!(lines.iter().any(|l| l.contains("unknown")), "{lines:?}");
}

const TLS: &str =
    "[tls]\ncert_file = \"/etc/ampwarden/server.pem\"\nkey_file = \"/etc/ampwarden/server.key\"\n";

fn station_with(profile: u8, password: &str) -> String {
    let password = if password.is_empty() {
        String::new()
    } else {
        format!("password = {password:?}\n")
    };
    format!(
        "[[stations]]\nid = \"CP002\"\nzone = \"main\"\nmax_current_a = 16.0\n\
         security_profile = {profile}\n{password}"
    )
}

#[test]
fn tls_listeners_need_a_certificate_and_their_own_address() {
    let lines = problems_with("[server]\nocpp_listen_tls = \"0.0.0.0:8443\"\n");
    assert_eq!(
        lines,
        vec!["server.ocpp_listen_tls: needs a certificate: [tls] cert_file and key_file (`ampwarden tls init` makes them)"]
    );
    let lines = problems_with(&format!(
        "[server]\nhttp_listen = \"127.0.0.1:9000\"\nhttp_listen_tls = \"127.0.0.1:9000\"\n\
         ocpp_listen_tls = \"0.0.0.0:8443\"\n{TLS}"
    ));
    assert_eq!(
        lines,
        vec!["server.http_listen_tls: 127.0.0.1:9000 is already server.http_listen"]
    );
    let lines = problems_with(&format!(
        "[server]\nhttp_listen_tls = \"0.0.0.0:8443\"\nocpp_listen_tls = \"0.0.0.0:8443\"\n{TLS}"
    ));
    assert_reports(
        &lines,
        "server.http_listen_tls: 0.0.0.0:8443 is already server.ocpp_listen_tls",
    );
    let lines = problems_with("[tls]\ncert_file = \"\"\nkey_file = \"k.pem\"\n");
    assert_reports(&lines, "tls.cert_file: must name a PEM file");
    let lines = problems_with("[tls]\ncert_file = \"c.pem\"\n");
    assert!(
        lines[0].starts_with("tls: missing field `key_file`"),
        "{lines:?}"
    );
    let lines = problems_with(&format!("{TLS}client_ca = \"ca.pem\"\n"));
    assert!(
        lines[0].starts_with("tls.client_ca: unknown field `client_ca`"),
        "{lines:?}"
    );
    let ok = Config::from_toml_str(&format!(
        "{BASE}\n[server]\nocpp_listen_tls = \"0.0.0.0:8443\"\nhttp_listen_tls = \"0.0.0.0:8444\"\n{TLS}"
    ))
    .expect("TLS listeners with a certificate are valid");
    assert_eq!(
        ok.server.ocpp_listen_tls.map(|a| a.to_string()).as_deref(),
        Some("0.0.0.0:8443")
    );
}

#[test]
fn security_profiles_need_what_they_check() {
    let lines = problems_with(&station_with(1, ""));
    assert_eq!(
        lines,
        vec!["stations[1].password: security_profile = 1 needs a password (HTTP basic auth)"]
    );
    let lines = problems_with(&station_with(2, ""));
    assert_reports(
        &lines,
        "stations[1].password: security_profile = 2 needs a password (HTTP basic auth)",
    );
    assert_reports(
        &lines,
        "stations[1].security_profile: 2 needs TLS: set server.ocpp_listen_tls and [tls]",
    );
    let lines = problems_with(&format!(
        "[server]\nocpp_listen_tls = \"0.0.0.0:8443\"\n{TLS}\n{}",
        station_with(3, "")
    ));
    assert_eq!(
        lines,
        vec!["stations[1].security_profile: 3 needs tls.client_ca_file (the CA that signs the stations' certificates)"]
    );
    let lines = problems_with(&station_with(4, ""));
    assert_eq!(lines.len(), 1);
    assert!(
        lines[0].starts_with(
            "stations[1].security_profile: security_profile must be 0, 1, 2 or 3, not 4"
        ),
        "{lines:?}"
    );
    // Profile 0 with a password is basic auth, as before profiles existed.
    assert!(problems_with(&station_with(0, "a-password-01")).is_empty());
    assert!(problems_with(&station_with(1, "a-password-01")).is_empty());
    let text = format!(
        "{BASE}\n[server]\nocpp_listen_tls = \"0.0.0.0:8443\"\n{TLS}client_ca_file = \"/etc/ampwarden/ca.pem\"\n\n{}\n{}",
        station_with(2, "a-password-01"),
        station_with(3, "").replace("CP002", "CP003"),
    );
    let c = Config::from_toml_str(&text).expect("profiles 2 and 3 with TLS and a CA are valid");
    assert_eq!(
        c.stations[1].security_profile,
        SecurityProfile::TlsBasicAuth
    );
    assert_eq!(
        c.stations[2].security_profile,
        SecurityProfile::TlsClientCertificate
    );
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
    let again = Config::from_toml_str(&c.to_toml_string()).expect("round trip");
    assert_eq!(c, again);
}

#[test]
fn tls_warnings_name_their_key() {
    let c = Config::from_toml_str(&format!("{BASE}\n{TLS}client_ca_file = \"ca.pem\"\n"))
        .expect("valid");
    let lines: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert_reports(
        &lines,
        "tls: no TLS listener uses it (set server.ocpp_listen_tls or server.http_listen_tls)",
    );
    assert_reports(
        &lines,
        "tls.client_ca_file: no station has security_profile = 3: client certificates are checked but never required",
    );
}

#[test]
fn uplink_routes_and_identities_are_checked() {
    let lines = problems_with(
        r#"
[uplink]
url = "http://cpo.example/ocpp"

[uplink.stations.CP009]
identity = "a/b"

[[uplink.routes]]
id = "b"
url = "wss://other.example/ocpp"
stations = ["CP001", "CP404"]

[[uplink.routes]]
id = "b"
url = "ws://third.example"
stations = ["CP001"]
"#,
    );
    assert_reports(
        &lines,
        "uplink.url: \"http://cpo.example/ocpp\" must be a ws:// or wss:// URL",
    );
    assert_reports(
        &lines,
        "uplink.routes[0].stations: CP404 is not a station of [[stations]]",
    );
    assert_reports(&lines, "uplink.routes[1].id: \"b\" is used twice");
    assert_reports(
        &lines,
        "uplink.routes[1].stations: CP001 is already routed to \"b\"",
    );
    assert_reports(
        &lines,
        "uplink.stations.CP009: is not a station of [[stations]]",
    );
    assert_reports(
        &lines,
        "uplink.stations.CP009.identity: must be 1 to 48 characters, without '/', '?', '#' or spaces",
    );
}

#[test]
fn an_uplink_target_is_its_route_and_identity() {
    let text = format!(
        "{BASE}\n[[stations]]\nid = \"CP002\"\nzone = \"panel-1\"\nmax_current_a = 16.0\n\n\
         [uplink]\nurl = \"ws://cpo.example/ocpp/\"\npassword = \"main-key\"\n\n\
         [uplink.stations.CP001]\nidentity = \"DE-AMP-E1\"\npassword = \"own-key\"\n\n\
         [[uplink.routes]]\nid = \"fleet\"\nurl = \"wss://fleet.example/cs\"\nread_only = true\nstations = [\"CP002\"]\n"
    );
    let c = Config::from_toml_str(&text).expect("valid");
    let u = c.uplink.as_ref().expect("uplink");
    let one = u.target(&"CP001".into());
    assert_eq!(one.url, "ws://cpo.example/ocpp/DE-AMP-E1");
    assert_eq!(one.password.as_deref(), Some("own-key"));
    assert_eq!((one.route, one.read_only), (None, false));
    let two = u.target(&"CP002".into());
    assert_eq!(two.url, "wss://fleet.example/cs/CP002");
    assert_eq!(two.password, None, "a route's stations use the route's key");
    assert_eq!((two.route.as_deref(), two.read_only), (Some("fleet"), true));
}

#[test]
fn auth_by_the_cpo_needs_an_uplink() {
    assert_reports(
        &problems_with("[auth]\nmode = \"uplink\"\n"),
        "auth.mode: \"uplink\" asks the CPO: it needs an [uplink] section (its url)",
    );
}
