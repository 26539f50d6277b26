//! Semantic checks of a parsed configuration. Each problem names its key path, so an
//! installer can go straight to the line: `zones[2].parent: unknown zone "panl-1"`.

use std::collections::{HashMap, HashSet};
use std::fmt;

use super::schema::*;
use super::{MAX_SECONDARIES, MAX_ZONES, MAX_ZONE_DEPTH};
use crate::units::{Amps, ChargePointId, ZoneId};

/// The largest current we believe a configuration means (a typo guard, not physics).
const ABSURD_AMPS: f64 = 10_000.0;
/// The largest current one station can be given (DC stations included).
const MAX_STATION_AMPS: f64 = 1_000.0;
/// OCPP 1.6 `CiString20Type`: an idTag is at most 20 characters.
const MAX_ID_TAG_LEN: usize = 20;
/// The chargeBoxIdentity is at most 48 characters (OCPP 1.6 `CiString48Type`).
const MAX_STATION_ID_LEN: usize = 48;

/// Why `id` cannot be a chargeBoxIdentity here, if it cannot: 1 to 48 characters
/// (OCPP 1.6 `CiString48Type`) of letters, digits and `- _ . :`. The configuration and
/// the OCPP handshake apply the same rule.
pub fn station_id_problem(id: &str) -> Option<String> {
    if id.is_empty() || id.len() > MAX_STATION_ID_LEN {
        Some(format!("must be 1 to {MAX_STATION_ID_LEN} characters"))
    } else if !id
        .chars()
        .all(|ch| ch.is_ascii_alphanumeric() || "-_.:".contains(ch))
    {
        Some(format!("{id:?} may hold only letters, digits and - _ . :"))
    } else {
        None
    }
}

/// One problem in a configuration, at a key path.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigProblem {
    /// e.g. `zones[2].parent`; empty for the file as a whole.
    pub path: String,
    pub message: String,
}

impl ConfigProblem {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigProblem {
            path: path.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfigProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Every problem found in a configuration; `Display` gives one line per problem.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfigProblems(pub Vec<ConfigProblem>);

impl fmt::Display for ConfigProblems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

struct Checker {
    problems: Vec<ConfigProblem>,
}

impl Checker {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.problems.push(ConfigProblem::new(path, message));
    }

    /// A current must be a finite number in `[min, max]`.
    fn current(&mut self, path: String, value: Amps, min: f64, max: f64) {
        if !value.0.is_finite() {
            self.push(path, "must be a finite number of amperes");
        } else if value.0 < min {
            self.push(path, format!("{} is below {min} A", value.0));
        } else if value.0 > max {
            self.push(
                path,
                format!("{} A is implausible (more than {max} A)", value.0),
            );
        }
    }

    fn range<T: PartialOrd + fmt::Display + Copy>(&mut self, path: &str, value: T, min: T, max: T) {
        if value < min || value > max {
            self.push(path, format!("{value} is out of range ({min} to {max})"));
        }
    }
}

pub(super) fn problems(c: &Config) -> Vec<ConfigProblem> {
    let mut ck = Checker {
        problems: Vec::new(),
    };
    site(&mut ck, c);
    server(&mut ck, c);
    storage(&mut ck, &c.storage);
    control(&mut ck, &c.control);
    zones(&mut ck, c);
    meters(&mut ck, c);
    stations(&mut ck, c);
    badges(&mut ck, c);
    tariffs(&mut ck, c);
    if let Some(f) = &c.federation {
        federation(&mut ck, c, f);
    }
    if let Some(b) = &c.bms {
        bms(&mut ck, c, b);
    }
    if let Some(u) = &c.uplink {
        uplink(&mut ck, c, u);
    } else if c.auth.mode == AuthMode::Uplink {
        ck.push(
            "auth.mode",
            "\"uplink\" asks the CPO: it needs an [uplink] section (its url)",
        );
    }
    tls(&mut ck, c);
    ck.problems
}

pub(super) fn warnings(c: &Config) -> Vec<ConfigProblem> {
    let mut out = Vec::new();
    if c.site.mode == SiteMode::Dynamic {
        for (i, z) in c.zones.iter().enumerate() {
            if let (Some(meter), None) = (&z.meter, z.static_ev_limit_a) {
                out.push(ConfigProblem::new(
                    format!("zones[{i}].static_ev_limit_a"),
                    format!(
                        "unset: when meter {meter} goes stale, zone {} gives its vehicles 0 A \
                         (set the EV budget that is safe without the meter)",
                        z.id
                    ),
                ));
            }
        }
    }
    if let Some(tls) = &c.tls {
        if c.server.ocpp_listen_tls.is_none() && c.server.http_listen_tls.is_none() {
            out.push(ConfigProblem::new(
                "tls",
                "no TLS listener uses it (set server.ocpp_listen_tls or server.http_listen_tls)",
            ));
        }
        if tls.client_ca_file.is_some()
            && !c
                .stations
                .iter()
                .any(|s| s.security_profile == SecurityProfile::TlsClientCertificate)
        {
            out.push(ConfigProblem::new(
                "tls.client_ca_file",
                "no station has security_profile = 3: client certificates are checked but never required",
            ));
        }
    }
    for (i, s) in c.stations.iter().enumerate() {
        if s.security_profile == SecurityProfile::TlsClientCertificate && !s.password.is_empty() {
            out.push(ConfigProblem::new(
                format!("stations[{i}].password"),
                "is checked too with security_profile = 3 (most stations send no basic auth on that profile)",
            ));
        }
    }
    if c.bms.is_some() {
        use crate::bms::{BMS_MAX_STATIONS, BMS_MAX_ZONES};
        if c.stations.len() > BMS_MAX_STATIONS {
            out.push(ConfigProblem::new(
                "bms",
                format!(
                    "the register map has blocks for the first {BMS_MAX_STATIONS} stations only ({} are configured)",
                    c.stations.len()
                ),
            ));
        }
        if c.zones.len() > BMS_MAX_ZONES {
            out.push(ConfigProblem::new(
                "bms",
                format!(
                    "the register map has blocks for the first {BMS_MAX_ZONES} zones only ({} are configured)",
                    c.zones.len()
                ),
            ));
        }
    }
    out
}

fn site(ck: &mut Checker, c: &Config) {
    if c.site.name.trim().is_empty() {
        ck.push("site.name", "must not be empty");
    }
    if !c.site.voltage_v.is_finite() || !(100.0..=480.0).contains(&c.site.voltage_v) {
        ck.push(
            "site.voltage_v",
            format!(
                "{} V is not a phase-to-neutral voltage (100 to 480)",
                c.site.voltage_v
            ),
        );
    }
    if c.site.timezone.parse::<chrono_tz::Tz>().is_err() {
        ck.push(
            "site.timezone",
            format!(
                "unknown time zone {:?} (use an IANA name like \"Europe/Paris\")",
                c.site.timezone
            ),
        );
    }
}

fn server(ck: &mut Checker, c: &Config) {
    let s = &c.server;
    if s.http_listen == s.ocpp_listen && s.http_listen.port() != 0 {
        ck.push(
            "server.ocpp_listen",
            format!(
                "is the same address as server.http_listen ({})",
                s.http_listen
            ),
        );
    }
    if s.accept_unknown_stations && c.zone(&s.default_zone).is_none() {
        ck.push(
            "server.default_zone",
            format!("unknown zone {:?}", s.default_zone.as_str()),
        );
    }
    ck.range(
        "server.heartbeat_interval_s",
        s.heartbeat_interval_s,
        10,
        86_400,
    );
    ck.range("server.call_timeout_s", s.call_timeout_s, 1, 300);
    ck.range(
        "server.orphan_transaction_grace_s",
        s.orphan_transaction_grace_s,
        1,
        86_400,
    );
    ck.range(
        "server.max_frame_bytes",
        s.max_frame_bytes,
        4096,
        16 * 1024 * 1024,
    );
}

fn storage(ck: &mut Checker, s: &Storage) {
    ck.range(
        "storage.sample_retention_days",
        s.sample_retention_days,
        1,
        3650,
    );
    if let Some(days) = s.transaction_retention_days {
        // Deleting records is for good: at least a month, and never before their samples.
        let min = s.sample_retention_days.clamp(30, 3650);
        ck.range("storage.transaction_retention_days", days, min, 36_500);
    }
}

fn control(ck: &mut Checker, c: &Control) {
    ck.range("control.interval_s", c.interval_s, 1, 3600);
    if let Some(a) = c.max_unbalance_a {
        ck.current("control.max_unbalance_a".into(), a, 0.0, ABSURD_AMPS);
    }
    ck.current("control.min_current_a".into(), c.min_current_a, 0.0, 32.0);
    ck.current(
        "control.safety_margin_a".into(),
        c.safety_margin_a,
        0.0,
        ABSURD_AMPS,
    );
    ck.range("control.rotation_minutes", c.rotation_minutes, 1, 24 * 60);
    ck.range(
        "control.meter_stale_after_s",
        c.meter_stale_after_s,
        1,
        3600,
    );
    ck.range("control.increase_hold_s", c.increase_hold_s, 0, 3600);
    ck.range("control.min_active_s", c.min_active_s, 0, 24 * 3600);
    ck.range(
        "control.meter_values_interval_s",
        c.meter_values_interval_s,
        1,
        3600,
    );
    ck.range("control.resume_check_s", c.resume_check_s, 5, 3600);
}

fn zones(ck: &mut Checker, c: &Config) {
    if c.zones.is_empty() {
        ck.push(
            "zones",
            "at least one zone is needed (the site's main supply)",
        );
        return;
    }
    if c.zones.len() > MAX_ZONES {
        ck.push(
            "zones",
            format!("{} zones; at most {MAX_ZONES} are supported", c.zones.len()),
        );
    }
    let mut seen: HashMap<&ZoneId, usize> = HashMap::new();
    for (i, z) in c.zones.iter().enumerate() {
        let at = format!("zones[{i}]");
        if z.id.as_str().trim().is_empty() {
            ck.push(format!("{at}.id"), "must not be empty");
        }
        if let Some(first) = seen.insert(&z.id, i) {
            ck.push(
                format!("{at}.id"),
                format!("duplicate zone {:?} (also zones[{first}])", z.id.as_str()),
            );
        }
        ck.current(format!("{at}.limit_a"), z.limit_a, 0.0, ABSURD_AMPS);
        if let Some(s) = z.static_ev_limit_a {
            ck.current(format!("{at}.static_ev_limit_a"), s, 0.0, ABSURD_AMPS);
            if s.0 > z.limit_a.0 {
                ck.push(
                    format!("{at}.static_ev_limit_a"),
                    format!("{} is above the zone's limit_a {}", s, z.limit_a),
                );
            }
        }
        if let Some(m) = &z.meter {
            match c.meter(m) {
                None => ck.push(
                    format!("{at}.meter"),
                    format!("unknown meter {:?}", m.as_str()),
                ),
                Some(meter) if meter.measures == Measures::Production => ck.push(
                    format!("{at}.meter"),
                    format!(
                        "meter {:?} measures production: attach it as production_meter",
                        m.as_str()
                    ),
                ),
                Some(_) => {}
            }
        }
        if let Some(m) = &z.production_meter {
            match c.meter(m) {
                None => ck.push(
                    format!("{at}.production_meter"),
                    format!("unknown meter {:?}", m.as_str()),
                ),
                Some(meter) if meter.measures != Measures::Production => ck.push(
                    format!("{at}.production_meter"),
                    format!(
                        "meter {:?} does not measure production (measures = \"production\")",
                        m.as_str()
                    ),
                ),
                Some(_) => {}
            }
        }
    }
    let index: HashMap<&ZoneId, usize> = c
        .zones
        .iter()
        .enumerate()
        .map(|(i, z)| (&z.id, i))
        .collect();
    for (i, z) in c.zones.iter().enumerate() {
        let Some(parent) = &z.parent else { continue };
        if !index.contains_key(parent) {
            ck.push(
                format!("zones[{i}].parent"),
                format!("unknown zone {:?}", parent.as_str()),
            );
            continue;
        }
        // Walk up; a walk longer than the number of zones is a cycle.
        let mut depth = 1;
        let mut at = Some(parent);
        let mut cycle = false;
        while let Some(p) = at {
            depth += 1;
            if p == &z.id || depth > c.zones.len() + 1 {
                cycle = true;
                break;
            }
            at = index.get(p).and_then(|&j| c.zones[j].parent.as_ref());
        }
        if cycle {
            ck.push(
                format!("zones[{i}].parent"),
                format!("zone {:?} is its own ancestor (a cycle)", z.id.as_str()),
            );
        } else if depth > MAX_ZONE_DEPTH {
            ck.push(
                format!("zones[{i}].parent"),
                format!(
                    "zone {:?} is {depth} levels deep; at most {MAX_ZONE_DEPTH} are supported",
                    z.id.as_str()
                ),
            );
        }
    }
    if !c.zones.iter().any(|z| z.parent.is_none()) {
        ck.push("zones", "no root zone (a zone without parent)");
    }
}

fn meters(ck: &mut Checker, c: &Config) {
    let mut seen = HashMap::new();
    // Which zone each meter feeds: a meter measures one feeder.
    let mut used: HashMap<&crate::units::MeterId, &ZoneId> = HashMap::new();
    for z in &c.zones {
        for m in z.meter.iter().chain(z.production_meter.iter()) {
            if let Some(first) = used.insert(m, &z.id) {
                if first != &z.id {
                    ck.push(
                        "zones",
                        format!(
                            "meter {:?} is attached to zones {:?} and {:?}; a meter measures one feeder",
                            m.as_str(),
                            first.as_str(),
                            z.id.as_str()
                        ),
                    );
                }
            }
        }
    }
    for (i, m) in c.meters.iter().enumerate() {
        let at = format!("meters[{i}]");
        if m.id.as_str().trim().is_empty() {
            ck.push(format!("{at}.id"), "must not be empty");
        }
        if let Some(first) = seen.insert(&m.id, i) {
            ck.push(
                format!("{at}.id"),
                format!("duplicate meter {:?} (also meters[{first}])", m.id.as_str()),
            );
        }
        match m.protocol {
            MeterProtocol::ModbusTcp => {
                let ok = m.address.rsplit_once(':').is_some_and(|(host, port)| {
                    !host.is_empty() && port.parse::<u16>().is_ok_and(|p| p > 0)
                });
                if !ok {
                    ck.push(
                        format!("{at}.address"),
                        format!("{:?} is not host:port", m.address),
                    );
                }
            }
            MeterProtocol::ModbusRtu => {
                if m.address.trim().is_empty() {
                    ck.push(
                        format!("{at}.address"),
                        "must name the serial device, e.g. /dev/ttyUSB0",
                    );
                }
                if ![1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200].contains(&m.baud_rate) {
                    ck.push(
                        format!("{at}.baud_rate"),
                        format!("{} is not a standard Modbus baud rate", m.baud_rate),
                    );
                }
                if !(1..=2).contains(&m.stop_bits) {
                    ck.push(format!("{at}.stop_bits"), "must be 1 or 2");
                }
                // On a serial line 0 is broadcast (never answered) and 248-255 are reserved;
                // over TCP any unit id is fine (255 addresses a breaker behind an IFE).
                if !(1..=247).contains(&m.unit_id) {
                    ck.push(
                        format!("{at}.unit_id"),
                        format!("{} is out of range (1 to 247 on a serial line)", m.unit_id),
                    );
                }
            }
        }
        ck.range(&format!("{at}.poll_ms"), m.poll_ms, 100, 60_000);
        ck.range(&format!("{at}.timeout_ms"), m.timeout_ms, 50, 30_000);
        match (m.profile, &m.generic) {
            (MeterProfile::Generic, None) => ck.push(
                format!("{at}.generic"),
                "the generic profile needs its register map ([meters.generic])",
            ),
            (MeterProfile::Generic, Some(g)) => {
                for (name, scale) in [
                    ("current_scale", g.current_scale),
                    ("power_scale", g.power_scale),
                ] {
                    if !scale.is_finite() || scale == 0.0 {
                        ck.push(
                            format!("{at}.generic.{name}"),
                            "must be a finite, non-zero number",
                        );
                    }
                }
                if g.currents.contains(&0) || g.power == Some(0) {
                    ck.push(
                        format!("{at}.generic"),
                        "register numbers start at 1 (the wire address is number - 1)",
                    );
                }
            }
            (_, Some(_)) => ck.push(
                format!("{at}.generic"),
                "only the generic profile takes a register map",
            ),
            (_, None) => {}
        }
        if m.measures == Measures::Production && !used.contains_key(&m.id) {
            ck.push(
                format!("{at}.measures"),
                "a production meter must be attached to a zone",
            );
        }
    }
}

fn stations(ck: &mut Checker, c: &Config) {
    let mut seen = HashMap::new();
    for (i, s) in c.stations.iter().enumerate() {
        let at = format!("stations[{i}]");
        let id = s.id.as_str();
        if let Some(problem) = station_id_problem(id) {
            ck.push(format!("{at}.id"), problem);
        }
        if let Some(first) = seen.insert(&s.id, i) {
            ck.push(
                format!("{at}.id"),
                format!("duplicate station {id:?} (also stations[{first}])"),
            );
        }
        if c.zone(&s.zone).is_none() {
            ck.push(
                format!("{at}.zone"),
                format!("unknown zone {:?}", s.zone.as_str()),
            );
        }
        ck.current(
            format!("{at}.max_current_a"),
            s.max_current_a,
            0.0,
            MAX_STATION_AMPS,
        );
        if s.max_current_a.0 == 0.0 {
            ck.push(format!("{at}.max_current_a"), "must be above 0 A");
        }
        if s.max_current_a.0 > 0.0 && s.max_current_a.0 < c.control.min_current_a.0 {
            ck.push(
                format!("{at}.max_current_a"),
                format!(
                    "{} is below control.min_current_a {}: it could never charge",
                    s.max_current_a, c.control.min_current_a
                ),
            );
        }
        ck.range(&format!("{at}.connectors"), s.connectors, 1, 10);
        if s.password.len() > 40 {
            ck.push(
                format!("{at}.password"),
                "at most 40 characters (OCPP AuthorizationKey)",
            );
        }
        station_security(ck, c, &at, s);
    }
}

/// What a station's security profile needs: a password (1, 2), the TLS listener (2, 3),
/// the CA of the client certificates (3).
fn station_security(ck: &mut Checker, c: &Config, at: &str, s: &StationConfig) {
    let profile = s.security_profile;
    if matches!(
        profile,
        SecurityProfile::BasicAuth | SecurityProfile::TlsBasicAuth
    ) && s.password.is_empty()
    {
        ck.push(
            format!("{at}.password"),
            format!("security_profile = {profile} needs a password (HTTP basic auth)"),
        );
    }
    if profile.needs_tls() && c.server.ocpp_listen_tls.is_none() {
        ck.push(
            format!("{at}.security_profile"),
            format!("{profile} needs TLS: set server.ocpp_listen_tls and [tls]"),
        );
    }
    let has_ca = c.tls.as_ref().is_some_and(|t| t.client_ca_file.is_some());
    if profile == SecurityProfile::TlsClientCertificate && !has_ca {
        ck.push(
            format!("{at}.security_profile"),
            "3 needs tls.client_ca_file (the CA that signs the stations' certificates)",
        );
    }
}

/// The TLS listeners need `[tls]`, and every listener its own address.
fn tls(ck: &mut Checker, c: &Config) {
    let s = &c.server;
    for (key, addr) in [
        ("server.ocpp_listen_tls", s.ocpp_listen_tls),
        ("server.http_listen_tls", s.http_listen_tls),
    ] {
        let Some(addr) = addr else { continue };
        if c.tls.is_none() {
            ck.push(
                key,
                "needs a certificate: [tls] cert_file and key_file (`ampwarden tls init` makes them)",
            );
        }
        if addr.port() == 0 {
            continue;
        }
        let taken = [
            ("server.http_listen", Some(s.http_listen)),
            ("server.ocpp_listen", Some(s.ocpp_listen)),
            ("server.ocpp_listen_tls", s.ocpp_listen_tls),
            (
                "bms.modbus_listen",
                c.bms.as_ref().and_then(|b| b.modbus_listen),
            ),
        ];
        if let Some((other, _)) = taken
            .iter()
            .find(|(other, a)| *other != key && *a == Some(addr))
        {
            ck.push(key, format!("{addr} is already {other}"));
        }
    }
    if let Some(t) = &c.tls {
        for (key, path) in [
            ("tls.cert_file", Some(&t.cert_file)),
            ("tls.key_file", Some(&t.key_file)),
            ("tls.client_ca_file", t.client_ca_file.as_ref()),
        ] {
            if path.is_some_and(|p| p.as_os_str().is_empty()) {
                ck.push(key, "must name a PEM file");
            }
        }
    }
}

fn badges(ck: &mut Checker, c: &Config) {
    let mut seen = HashMap::new();
    for (i, b) in c.badges.iter().enumerate() {
        let at = format!("badges[{i}].id_tag");
        let tag = b.id_tag.as_str();
        if tag.is_empty() || tag.len() > MAX_ID_TAG_LEN {
            ck.push(
                at.as_str(),
                format!("must be 1 to {MAX_ID_TAG_LEN} characters"),
            );
        }
        // idTags are case-insensitive (CiString) in OCPP.
        if let Some(first) = seen.insert(tag.to_ascii_uppercase(), i) {
            ck.push(
                &at,
                format!("duplicate badge {tag:?} (also badges[{first}])"),
            );
        }
    }
}

fn tariffs(ck: &mut Checker, c: &Config) {
    for (i, t) in c.tariffs.iter().enumerate() {
        let at = format!("tariffs[{i}]");
        if t.name.trim().is_empty() {
            ck.push(format!("{at}.name"), "must not be empty");
        }
        if t.days.is_empty() {
            ck.push(format!("{at}.days"), "at least one day is needed");
        }
        if t.from == t.to {
            ck.push(
                format!("{at}.to"),
                "is the same as from: the period would be empty",
            );
        }
        if !t.ev_cap_pct.is_finite() || !(0.0..=100.0).contains(&t.ev_cap_pct) {
            ck.push(
                format!("{at}.ev_cap_pct"),
                format!("{} is not a percentage (0 to 100)", t.ev_cap_pct),
            );
        }
        if !t.price_per_kwh.is_finite() || t.price_per_kwh < 0.0 {
            ck.push(
                format!("{at}.price_per_kwh"),
                "must be a finite price, 0 or more",
            );
        }
    }
}

fn bms(ck: &mut Checker, c: &Config, b: &BmsConfig) {
    if let Some(addr) = b.modbus_listen {
        let s = &c.server;
        if addr.port() != 0 && (addr == s.http_listen || addr == s.ocpp_listen) {
            ck.push(
                "bms.modbus_listen",
                format!("{addr} is already the HTTP or OCPP listener"),
            );
        }
    }
    for (i, a) in b.allow.iter().enumerate() {
        if crate::bms::parse_allowed(a).is_none() {
            ck.push(
                format!("bms.allow[{i}]"),
                format!("{a:?} is neither an IP address nor a network like 10.0.0.0/24"),
            );
        }
    }
    ck.range("bms.max_clients", b.max_clients, 1, 256);
    ck.range("bms.max_validity_s", b.max_validity_s, 1, 65_535);
    ck.range(
        "bms.default_validity_s",
        b.default_validity_s,
        1,
        b.max_validity_s.max(1),
    );
    match b.failsafe_current_a {
        None if b.write => ck.push(
            "bms.failsafe_current_a",
            "is required with write = true: the site cap when no valid write is in force (a BMS that stops writing must not leave the site unlimited)",
        ),
        None => {}
        Some(a) => ck.current("bms.failsafe_current_a".into(), a, 0.0, ABSURD_AMPS),
    }
    for (zone, a) in &b.zone_failsafe_a {
        let at = format!("bms.zone_failsafe_a.{zone}");
        if c.zone(zone).is_none() {
            ck.push(at, format!("unknown zone {:?}", zone.as_str()));
        } else {
            ck.current(at, *a, 0.0, ABSURD_AMPS);
        }
    }
}

fn uplink(ck: &mut Checker, c: &Config, u: &UplinkConfig) {
    let ws_url = |ck: &mut Checker, at: &str, url: &str| {
        if !(url.starts_with("ws://") || url.starts_with("wss://")) {
            ck.push(at, format!("{url:?} must be a ws:// or wss:// URL"));
        }
    };
    ws_url(ck, "uplink.url", &u.url);
    let known = |id: &ChargePointId| c.stations.iter().any(|s| &s.id == id);
    let mut routed: HashMap<&ChargePointId, &str> = HashMap::new();
    for (i, r) in u.routes.iter().enumerate() {
        ws_url(ck, &format!("uplink.routes[{i}].url"), &r.url);
        if u.routes[..i].iter().any(|o| o.id == r.id) {
            ck.push(
                format!("uplink.routes[{i}].id"),
                format!("{:?} is used twice", r.id),
            );
        }
        for st in &r.stations {
            let at = format!("uplink.routes[{i}].stations");
            if !known(st) {
                ck.push(
                    at.as_str(),
                    format!("{st} is not a station of [[stations]]"),
                );
            }
            if let Some(other) = routed.insert(st, &r.id) {
                ck.push(at.as_str(), format!("{st} is already routed to {other:?}"));
            }
        }
    }
    let mut identities: HashMap<String, &ChargePointId> = HashMap::new();
    for st in &c.stations {
        let identity = u.target(&st.id).identity;
        if let Some(other) = identities.insert(identity.clone(), &st.id) {
            ck.push(
                format!("uplink.stations.{}.identity", st.id),
                format!("{identity:?} is also {other}'s identity at the CPO"),
            );
        }
    }
    for (id, i) in &u.stations {
        if !known(id) {
            ck.push(
                format!("uplink.stations.{id}"),
                "is not a station of [[stations]]",
            );
        }
        if let Some(identity) = &i.identity {
            if identity.is_empty() || identity.len() > 48 || identity.contains(['/', '?', '#', ' '])
            {
                ck.push(
                    format!("uplink.stations.{id}.identity"),
                    "must be 1 to 48 characters, without '/', '?', '#' or spaces",
                );
            }
        }
    }
    ck.range("uplink.auth_timeout_s", u.auth_timeout_s, 1, 60);
    ck.range("uplink.ping_interval_s", u.ping_interval_s, 1, 3600);
    ck.range("uplink.call_timeout_s", u.call_timeout_s, 1, 300);
    ck.range("uplink.reconnect_max_s", u.reconnect_max_s, 1, 3600);
    ck.range(
        "uplink.meter_values_every_s",
        u.meter_values_every_s,
        1,
        86_400,
    );
    ck.range("uplink.rate_per_s", u.rate_per_s, 1, 100_000);
}

fn federation(ck: &mut Checker, c: &Config, f: &FederationConfig) {
    if f.valid_for_s < 6 || f.valid_for_s > 120 {
        ck.push(
            "federation.valid_for_s",
            format!(
                "{} s: a grant must hold 6 to 120 s (it is refreshed every 2 s)",
                f.valid_for_s
            ),
        );
    }
    match f.role {
        FederationRole::Primary => {
            if f.ca_file.is_some() {
                ck.push(
                    "federation.ca_file",
                    "only a secondary uses it (to check the primary it dials)",
                );
            }
            if f.tokens.is_empty() {
                ck.push(
                    "federation.tokens",
                    "a primary needs one token per secondary",
                );
            }
            if f.tokens.len() > MAX_SECONDARIES {
                ck.push(
                    "federation.tokens",
                    format!(
                        "{} tokens; a primary leads at most {MAX_SECONDARIES} secondaries",
                        f.tokens.len()
                    ),
                );
            }
            secondaries(ck, c, &f.tokens);
        }
        FederationRole::Secondary => {
            match &f.primary_url {
                None => ck.push(
                    "federation.primary_url",
                    "a secondary needs the primary's URL",
                ),
                Some(u) if !(u.starts_with("ws://") || u.starts_with("wss://")) => ck.push(
                    "federation.primary_url",
                    format!("{u:?} must start with ws:// or wss://"),
                ),
                Some(u) if f.ca_file.is_some() && !u.starts_with("wss://") => ck.push(
                    "federation.ca_file",
                    format!("is only used with a wss:// primary_url, not {u:?}"),
                ),
                Some(_) => {}
            }
            if f.token.as_deref().is_none_or(str::is_empty) {
                ck.push(
                    "federation.token",
                    "a secondary needs its token at the primary",
                );
            }
            if f.zone.is_none() {
                ck.push(
                    "federation.zone",
                    "a secondary needs the zone of the primary it feeds",
                );
            }
            let roots = c.zones.iter().filter(|z| z.parent.is_none()).count();
            if roots > 1 {
                ck.push(
                    "federation.role",
                    format!(
                        "a secondary has one root zone, which its grant caps; this one has {roots}"
                    ),
                );
            }
            match f.fallback_budget_a {
                None => ck.push(
                    "federation.fallback_budget_a",
                    "a secondary needs a budget for when the link is lost",
                ),
                Some(a) => ck.current("federation.fallback_budget_a".into(), a, 0.0, ABSURD_AMPS),
            }
        }
    }
}

/// Each secondary's token, name, zone and fallback; and the fallbacks of the secondaries
/// feeding a zone, added up, within that zone's limit (they may all be on their fallback
/// at once, after a primary restart).
fn secondaries(ck: &mut Checker, c: &Config, tokens: &[SecondaryToken]) {
    let mut secrets = HashSet::new();
    let mut names = HashSet::new();
    let mut fallbacks: HashMap<&ZoneId, f64> = HashMap::new();
    for (i, t) in tokens.iter().enumerate() {
        let at = format!("federation.tokens[{i}]");
        match t {
            SecondaryToken::Plain(token) => {
                if token.len() < 16 {
                    ck.push(at, "every token needs at least 16 characters");
                } else if !secrets.insert(token.clone()) {
                    ck.push(at, "tokens must be distinct");
                }
            }
            SecondaryToken::Described(d) => {
                match (&d.token, &d.token_hash) {
                    (Some(token), None) if token.len() < 16 => {
                        ck.push(format!("{at}.token"), "needs at least 16 characters");
                    }
                    (Some(token), None) => {
                        if !secrets.insert(token.clone()) {
                            ck.push(format!("{at}.token"), "tokens must be distinct");
                        }
                    }
                    (None, Some(hash)) => {
                        if !is_token_hash(hash) {
                            ck.push(
                                format!("{at}.token_hash"),
                                "must be \"blake2s:\" and 43 base64url characters, as `ampwarden federation-token` prints it",
                            );
                        } else if !secrets.insert(hash.clone()) {
                            ck.push(format!("{at}.token_hash"), "tokens must be distinct");
                        }
                    }
                    _ => ck.push(at.clone(), "give either token or token_hash"),
                }
                if station_id_problem(&d.name).is_some() {
                    ck.push(format!("{at}.name"), "1 to 48 letters, digits and - _ . :");
                } else if !names.insert(d.name.as_str()) {
                    ck.push(
                        format!("{at}.name"),
                        format!("secondary {:?} is listed twice", d.name),
                    );
                }
                ck.current(
                    format!("{at}.fallback_budget_a"),
                    d.fallback_budget_a,
                    0.0,
                    ABSURD_AMPS,
                );
                if c.zone(&d.zone).is_none() {
                    ck.push(
                        format!("{at}.zone"),
                        format!("unknown zone {:?}", d.zone.as_str()),
                    );
                } else if d.fallback_budget_a.0.is_finite() {
                    *fallbacks.entry(&d.zone).or_default() += d.fallback_budget_a.0;
                }
            }
        }
    }
    for (zone, sum) in fallbacks {
        let Some(z) = c.zone(zone) else { continue };
        if sum > z.limit_a.0 + 1e-9 {
            ck.push(
                "federation.tokens",
                format!(
                    "the fallbacks of the secondaries feeding zone {:?} add up to {} A, above its limit of {} A: with the links lost they could overload it",
                    zone.as_str(),
                    sum,
                    z.limit_a.0
                ),
            );
        }
    }
}

/// `blake2s:` and the 32-byte hash in unpadded base64url (43 characters).
pub fn is_token_hash(s: &str) -> bool {
    s.strip_prefix("blake2s:").is_some_and(|h| {
        h.len() == 43
            && h.chars()
                .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
    })
}
