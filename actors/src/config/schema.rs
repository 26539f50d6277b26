//! The configuration file's schema (TOML), as typed structs. Defaults here are the ones
//! documented in `docs/configuration.md`; `validate.rs` checks what types cannot.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use chrono::{DateTime, NaiveTime, Utc, Weekday};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::{Amps, ChargePointId, IdTag, MeterId, Phase, ZoneId};

/// The whole configuration of one controller.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub site: Site,
    #[serde(default)]
    pub server: Server,
    #[serde(default)]
    pub storage: Storage,
    #[serde(default)]
    pub control: Control,
    #[serde(default)]
    pub auth: Auth,
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    #[serde(default)]
    pub meters: Vec<MeterConfig>,
    #[serde(default)]
    pub stations: Vec<StationConfig>,
    #[serde(default)]
    pub badges: Vec<BadgeConfig>,
    #[serde(default)]
    pub tariffs: Vec<TariffConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<FederationConfig>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bms: Option<BmsConfig>,
    /// The certificate of the TLS listeners (`server.ocpp_listen_tls`, `http_listen_tls`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsConfig>,
    /// A charge-point operator's backend that every station also reports to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uplink: Option<UplinkConfig>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SiteMode {
    /// Budgets come from `static_ev_limit_a` (or `limit_a`); meters are only shown.
    Static,
    /// Budgets follow the zones' meters.
    #[default]
    Dynamic,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Site {
    pub name: String,
    pub mode: SiteMode,
    /// Phase-to-neutral voltage, for conversions between amperes and watts.
    pub voltage_v: f64,
    /// IANA time zone of the site; tariff periods are in this local time.
    pub timezone: String,
}

impl Default for Site {
    fn default() -> Self {
        Site {
            name: "ampwarden".into(),
            mode: SiteMode::Dynamic,
            voltage_v: 230.0,
            timezone: "UTC".into(),
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Server {
    pub http_listen: SocketAddr,
    pub ocpp_listen: SocketAddr,
    /// Commissioning scan: unknown stations are registered in `default_zone`.
    pub accept_unknown_stations: bool,
    pub default_zone: ZoneId,
    /// Heartbeat interval given to stations in the BootNotification answer.
    pub heartbeat_interval_s: u32,
    /// How long an outgoing CALL waits for its answer.
    pub call_timeout_s: u32,
    /// Largest WebSocket frame accepted from a station.
    pub max_frame_bytes: usize,
    /// A connector that reports Available while its transaction is still open gets the
    /// transaction closed after this long without a StopTransaction.
    pub orphan_transaction_grace_s: u32,
    /// Where stations connect over TLS (`wss://`); none when unset. Needs `[tls]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ocpp_listen_tls: Option<SocketAddr>,
    /// Where the UI and API are served over TLS (`https://`); none when unset. Needs `[tls]`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub http_listen_tls: Option<SocketAddr>,
}

impl Default for Server {
    fn default() -> Self {
        Server {
            http_listen: SocketAddr::from(([127, 0, 0, 1], 8080)),
            ocpp_listen: SocketAddr::from(([127, 0, 0, 1], 8887)),
            accept_unknown_stations: false,
            default_zone: ZoneId::from("main"),
            heartbeat_interval_s: 300,
            call_timeout_s: 30,
            max_frame_bytes: 1024 * 1024,
            orphan_transaction_grace_s: 120,
            ocpp_listen_tls: None,
            http_listen_tls: None,
        }
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Storage {
    pub path: PathBuf,
    /// Days a closed transaction keeps its meter samples; its record stays for good.
    pub sample_retention_days: u32,
    /// Days a closed transaction is kept at all (record and samples); `None`: for good.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub transaction_retention_days: Option<u32>,
}

impl Default for Storage {
    fn default() -> Self {
        Storage {
            path: PathBuf::from("data"),
            sample_retention_days: 30,
            transaction_retention_days: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SheddingStrategy {
    /// The session with most energy since its start is suspended first.
    #[default]
    Energy,
    /// The session connected longest is suspended first.
    ConnectionTime,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Control {
    /// Periodic re-allocation; events trigger one too.
    pub interval_s: u32,
    /// Below this a vehicle is suspended (limit 0).
    pub min_current_a: Amps,
    /// Kept free under every dynamic zone limit.
    pub safety_margin_a: Amps,
    pub shedding_strategy: SheddingStrategy,
    /// Suspended vehicles are re-evaluated this often.
    pub rotation_minutes: u32,
    /// A meter without a reading for this long is stale: its zone falls back to static.
    pub meter_stale_after_s: u32,
    /// An increase waits until the budget has allowed it this long.
    pub increase_hold_s: u32,
    /// A vehicle resumed from suspension stays active at least this long, unless safety requires.
    pub min_active_s: u32,
    /// Sample interval asked of the stations for MeterValues.
    pub meter_values_interval_s: u32,
    /// After a raise from 0, a connector that is not Charging within this time gets a recovery.
    pub resume_check_s: u32,
    /// At most this much EV current between the most and the least loaded phase of each
    /// root zone (grid codes cap single-phase load, e.g. 20 A / 4.6 kVA); none when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unbalance_a: Option<Amps>,
}

impl Default for Control {
    fn default() -> Self {
        Control {
            interval_s: 5,
            min_current_a: Amps(6.0),
            safety_margin_a: Amps(2.0),
            shedding_strategy: SheddingStrategy::Energy,
            rotation_minutes: 15,
            meter_stale_after_s: 15,
            increase_hold_s: 10,
            min_active_s: 300,
            meter_values_interval_s: 10,
            resume_check_s: 60,
            max_unbalance_a: None,
        }
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuthMode {
    /// Badges from the configuration and the store.
    #[default]
    Local,
    /// Every id tag is accepted.
    AcceptAll,
    /// Ask the CPO backend.
    Uplink,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Auth {
    pub mode: AuthMode,
    /// With `mode = "uplink"`: who decides while the CPO cannot be asked.
    pub offline: OfflineAuth,
}

/// `auth.offline`: the decision on an id tag while the CPO is unreachable (or does not
/// answer within `uplink.auth_timeout_s`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OfflineAuth {
    /// The local badges decide; a tag they do not know, the CPO's last answer for it
    /// (cached, with its expiry); a tag neither knows is Invalid.
    #[default]
    LocalThenCache,
    /// Everyone charges.
    Accept,
    /// Nobody starts.
    Reject,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub id: ZoneId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parent: Option<ZoneId>,
    /// Breaker or subscribed limit of this zone, per phase.
    pub limit_a: Amps,
    /// EV budget in static mode (else `limit_a`), and the fallback when the meter is
    /// stale (else 0 A).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub static_ev_limit_a: Option<Amps>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meter: Option<MeterId>,
    /// A separate meter of local production (solar) feeding the zone; raises its budget.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub production_meter: Option<MeterId>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MeterProtocol {
    #[default]
    ModbusTcp,
    ModbusRtu,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MeterProfile {
    Iem3155,
    Pm5320,
    Powertag,
    Mtz,
    Nsx,
    Generic,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Measures {
    /// Everything in the zone, EV chargers included.
    #[default]
    Total,
    /// Everything but the EV chargers.
    OtherLoads,
    /// Local production (solar) feeding the zone.
    Production,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterType {
    U16,
    I16,
    U32,
    I32,
    #[default]
    F32,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WordOrder {
    /// High word first (big-endian across registers), the common case.
    #[default]
    HighFirst,
    LowFirst,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RegisterKind {
    #[default]
    Holding,
    Input,
}

/// The register map of a `generic` meter. Register numbers as in the maker's manual
/// (the address on the wire is the number minus 1).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenericMap {
    /// Registers of I1, I2, I3.
    pub currents: [u16; 3],
    /// Register of the total active power, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub power: Option<u16>,
    #[serde(default, rename = "type")]
    pub register_type: RegisterType,
    #[serde(default)]
    pub word_order: WordOrder,
    #[serde(default)]
    pub kind: RegisterKind,
    /// Multiplies the raw current value to give amperes.
    #[serde(default = "one")]
    pub current_scale: f64,
    /// Multiplies the raw power value to give kilowatts.
    #[serde(default = "one")]
    pub power_scale: f64,
}

fn one() -> f64 {
    1.0
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterConfig {
    pub id: MeterId,
    #[serde(default)]
    pub protocol: MeterProtocol,
    /// `host:port` for TCP, a serial device for RTU.
    pub address: String,
    #[serde(default = "default_unit_id")]
    pub unit_id: u8,
    pub profile: MeterProfile,
    #[serde(default = "default_poll_ms")]
    pub poll_ms: u64,
    /// How long one read may take before it counts as failed.
    #[serde(default = "default_timeout_ms")]
    pub timeout_ms: u64,
    #[serde(default)]
    pub measures: Measures,
    #[serde(default = "default_baud_rate")]
    pub baud_rate: u32,
    #[serde(default)]
    pub parity: Parity,
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// The register map, for the `generic` profile only.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generic: Option<GenericMap>,
}

fn default_unit_id() -> u8 {
    1
}
fn default_poll_ms() -> u64 {
    1000
}
fn default_timeout_ms() -> u64 {
    1000
}
fn default_baud_rate() -> u32 {
    19200
}
fn default_stop_bits() -> u8 {
    1
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "u8", into = "u8")]
pub enum Phases {
    One,
    Three,
}

impl Phases {
    pub fn count(self) -> u8 {
        match self {
            Phases::One => 1,
            Phases::Three => 3,
        }
    }
}

impl TryFrom<u8> for Phases {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, String> {
        match n {
            1 => Ok(Phases::One),
            3 => Ok(Phases::Three),
            other => Err(format!("phases must be 1 or 3, not {other}")),
        }
    }
}

impl From<Phases> for u8 {
    fn from(p: Phases) -> u8 {
        p.count()
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationConfig {
    /// The OCPP chargePointId.
    pub id: ChargePointId,
    pub zone: ZoneId,
    pub max_current_a: Amps,
    #[serde(default = "three_phases")]
    pub phases: Phases,
    /// For a 1-phase station: the phase it loads.
    #[serde(default)]
    pub phase: Phase,
    /// A VIP station is shed last.
    #[serde(default)]
    pub vip: bool,
    /// OCPP basic auth (security profile 1); empty = none.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub password: String,
    /// OCPP security profile: 0 none (basic auth all the same when `password` is set),
    /// 1 basic auth, 2 TLS and basic auth, 3 TLS with a client certificate whose subject
    /// CN is the station's id.
    #[serde(default, skip_serializing_if = "SecurityProfile::is_none")]
    pub security_profile: SecurityProfile,
    #[serde(default = "one_connector")]
    pub connectors: u32,
    /// How a 3-phase station's L1, L2, L3 are wired to the site's phases, e.g. `"L2L3L1"`:
    /// its L1 on the site's L2, its L2 on L3, its L3 on L1. Installers rotate stations so
    /// that 1-phase vehicles do not all load the same site phase.
    #[serde(default, skip_serializing_if = "PhaseRotation::is_identity")]
    pub phase_rotation: PhaseRotation,
}

/// An OCPP 1.6 security profile (OCPP 1.6 Security Whitepaper, edition 3): what a
/// station must show at the handshake.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
#[serde(try_from = "u8", into = "u8")]
pub enum SecurityProfile {
    /// Plain `ws://` or `wss://`; basic auth only if the station has a password.
    #[default]
    None,
    /// HTTP basic auth (the station's `password`), over `ws://` or `wss://`.
    BasicAuth,
    /// TLS (`wss://`, the server's certificate) and basic auth.
    TlsBasicAuth,
    /// TLS with a client certificate that chains to `tls.client_ca_file` and whose
    /// subject CN is the station's id.
    TlsClientCertificate,
}

impl SecurityProfile {
    pub fn number(self) -> u8 {
        match self {
            SecurityProfile::None => 0,
            SecurityProfile::BasicAuth => 1,
            SecurityProfile::TlsBasicAuth => 2,
            SecurityProfile::TlsClientCertificate => 3,
        }
    }

    pub fn is_none(&self) -> bool {
        *self == SecurityProfile::None
    }

    /// Whether the station must connect over TLS (profiles 2 and 3).
    pub fn needs_tls(self) -> bool {
        self >= SecurityProfile::TlsBasicAuth
    }
}

impl std::fmt::Display for SecurityProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.number())
    }
}

impl TryFrom<u8> for SecurityProfile {
    type Error = String;
    fn try_from(n: u8) -> Result<Self, String> {
        match n {
            0 => Ok(SecurityProfile::None),
            1 => Ok(SecurityProfile::BasicAuth),
            2 => Ok(SecurityProfile::TlsBasicAuth),
            3 => Ok(SecurityProfile::TlsClientCertificate),
            other => Err(format!(
                "security_profile must be 0, 1, 2 or 3, not {other}"
            )),
        }
    }
}

impl From<SecurityProfile> for u8 {
    fn from(p: SecurityProfile) -> u8 {
        p.number()
    }
}

/// The site phase each of a station's phases is wired to (a permutation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct PhaseRotation(pub [Phase; 3]);

impl Default for PhaseRotation {
    fn default() -> Self {
        PhaseRotation(Phase::ALL)
    }
}

impl PhaseRotation {
    pub fn is_identity(&self) -> bool {
        *self == PhaseRotation::default()
    }

    /// The cyclic rotation whose L1 is on `first`: L1 → L1L2L3, L2 → L2L3L1, L3 → L3L1L2.
    pub fn starting_at(first: Phase) -> PhaseRotation {
        let i = first.index();
        PhaseRotation(std::array::from_fn(|k| Phase::ALL[(i + k) % 3]))
    }

    /// The site phase the station's `station_phase` is wired to.
    pub fn site_phase(&self, station_phase: Phase) -> Phase {
        self.0[station_phase.index()]
    }
}

impl std::fmt::Display for PhaseRotation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}{}{}", self.0[0], self.0[1], self.0[2])
    }
}

impl std::str::FromStr for PhaseRotation {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, String> {
        let bad = || {
            format!("{text:?} is not a phase rotation: the site phases of the station's L1, L2, L3, e.g. \"L1L2L3\" or \"L2L3L1\"")
        };
        let t = text
            .trim()
            .to_ascii_uppercase()
            .replace(['-', ',', ' '], "");
        if t.len() != 6 {
            return Err(bad());
        }
        let mut phases = [Phase::L1; 3];
        for (i, slot) in phases.iter_mut().enumerate() {
            *slot = match &t[2 * i..2 * i + 2] {
                "L1" => Phase::L1,
                "L2" => Phase::L2,
                "L3" => Phase::L3,
                _ => return Err(bad()),
            };
        }
        let distinct = phases[0] != phases[1] && phases[1] != phases[2] && phases[0] != phases[2];
        if !distinct {
            return Err(bad());
        }
        Ok(PhaseRotation(phases))
    }
}

impl Serialize for PhaseRotation {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PhaseRotation {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

fn three_phases() -> Phases {
    Phases::Three
}
fn one_connector() -> u32 {
    1
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadgeConfig {
    pub id_tag: IdTag,
    #[serde(default)]
    pub vip: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires: Option<DateTime<Utc>>,
    #[serde(default)]
    pub blocked: bool,
}

/// A day of the week as written in the file: `mon` … `sun`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Day(pub Weekday);

const DAY_NAMES: [(&str, Weekday); 7] = [
    ("mon", Weekday::Mon),
    ("tue", Weekday::Tue),
    ("wed", Weekday::Wed),
    ("thu", Weekday::Thu),
    ("fri", Weekday::Fri),
    ("sat", Weekday::Sat),
    ("sun", Weekday::Sun),
];

impl Serialize for Day {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let name = DAY_NAMES
            .iter()
            .find(|(_, d)| *d == self.0)
            .map(|(n, _)| *n)
            .expect("DAY_NAMES covers every weekday");
        s.serialize_str(name)
    }
}

impl<'de> Deserialize<'de> for Day {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        DAY_NAMES
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(&text))
            .map(|(_, day)| Day(*day))
            .ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "unknown day {text:?}, expected one of mon, tue, wed, thu, fri, sat, sun"
                ))
            })
    }
}

/// A local time of day written `HH:MM`; `24:00` is the end of the day.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct ClockTime {
    /// Minutes since midnight, 0..=1440.
    pub minutes: u16,
}

impl ClockTime {
    pub fn to_naive(self) -> Option<NaiveTime> {
        NaiveTime::from_hms_opt(
            u32::from(self.minutes / 60),
            u32::from(self.minutes % 60),
            0,
        )
    }
}

impl Serialize for ClockTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&format!(
            "{:02}:{:02}",
            self.minutes / 60,
            self.minutes % 60
        ))
    }
}

impl<'de> Deserialize<'de> for ClockTime {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        let bad = || {
            serde::de::Error::custom(format!(
                "bad time {text:?}, expected HH:MM (00:00 to 24:00)"
            ))
        };
        let (h, m) = text.split_once(':').ok_or_else(bad)?;
        if h.len() != 2 || m.len() != 2 {
            return Err(bad());
        }
        let h: u16 = h.parse().map_err(|_| bad())?;
        let m: u16 = m.parse().map_err(|_| bad())?;
        if m >= 60 || h > 24 || (h == 24 && m != 0) {
            return Err(bad());
        }
        Ok(ClockTime {
            minutes: h * 60 + m,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TariffConfig {
    pub name: String,
    pub days: Vec<Day>,
    pub from: ClockTime,
    /// End of the period; a `to` before `from` runs past midnight.
    pub to: ClockTime,
    /// EV budget cap, in percent of what the zones allow.
    #[serde(default = "hundred")]
    pub ev_cap_pct: f64,
    #[serde(default)]
    pub price_per_kwh: f64,
}

fn hundred() -> f64 {
    100.0
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FederationRole {
    Primary,
    Secondary,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FederationConfig {
    pub role: FederationRole,
    /// Secondary: `ws://HOST:PORT` of the primary's HTTP listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub primary_url: Option<String>,
    /// Secondary: its token at the primary.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Secondary, with a `wss://` primary: the CA (PEM) the primary's certificate must
    /// chain to (e.g. the site CA of `ampwarden tls init`); none: the system's roots.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// Secondary: the zone of the primary it feeds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<ZoneId>,
    /// Secondary: the root budget used while the link is down.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub fallback_budget_a: Option<Amps>,
    /// Primary: its secondaries (at most 9): each a token string (the secondary then
    /// names its zone and fallback itself), or a table with its name, token (or
    /// `token_hash`), zone and fallback, which `check-config` can check.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tokens: Vec<SecondaryToken>,
    /// Secondary: its name at the primary (default: `site.name`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Primary: how long a grant holds (`valid_for`), in seconds.
    #[serde(
        default = "default_valid_for",
        skip_serializing_if = "is_default_valid_for"
    )]
    pub valid_for_s: u32,
}

fn default_valid_for() -> u32 {
    10
}

fn is_default_valid_for(v: &u32) -> bool {
    *v == default_valid_for()
}

/// One secondary a primary accepts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum SecondaryToken {
    /// Only its token, in clear.
    Plain(String),
    Described(SecondaryConfig),
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecondaryConfig {
    /// The name the secondary reports (its `federation.name`).
    pub name: String,
    /// Its token in clear, or
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// its hash, as `ampwarden federation-token` prints it (`blake2s:…`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token_hash: Option<String>,
    /// The zone of the primary it feeds.
    pub zone: ZoneId,
    /// The root budget it falls back to when it loses the link (as in its own file).
    pub fallback_budget_a: Amps,
}

impl SecondaryToken {
    pub fn described(&self) -> Option<&SecondaryConfig> {
        match self {
            SecondaryToken::Plain(_) => None,
            SecondaryToken::Described(d) => Some(d),
        }
    }
}

/// `[bms]`: what a building management system may read and write (Modbus TCP server and
/// `/api/v1/bms`). Reads are always allowed to the allow-listed clients; caps only with
/// `write = true`, each for a validity time, after which the fail-safe cap applies.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct BmsConfig {
    /// Where the Modbus TCP server listens; none when unset (REST only).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub modbus_listen: Option<SocketAddr>,
    /// The Modbus unit id answered (255 and 0 are answered too, as most gateways do).
    pub unit_id: u8,
    /// Client addresses (or networks, `10.0.0.0/24`) that may connect to the Modbus server.
    pub allow: Vec<String>,
    /// At most this many Modbus clients at once; more are refused at connection.
    pub max_clients: u32,
    /// Whether caps may be written (Modbus and REST). Read-only when false.
    pub write: bool,
    /// The validity of a cap written with validity 0.
    pub default_validity_s: u32,
    /// The longest validity a write may ask for.
    pub max_validity_s: u32,
    /// With `write = true`: the site EV cap (A per phase) whenever no valid write is in
    /// force (before the first write, after expiry, disconnection or a restart).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failsafe_current_a: Option<Amps>,
    /// Per zone: the zone cap when its written cap is not in force (default: none).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub zone_failsafe_a: BTreeMap<ZoneId, Amps>,
}

impl Default for BmsConfig {
    fn default() -> Self {
        BmsConfig {
            modbus_listen: None,
            unit_id: 1,
            allow: vec!["127.0.0.1".into(), "::1".into()],
            max_clients: 16,
            write: false,
            default_validity_s: 60,
            max_validity_s: 3600,
            failsafe_current_a: None,
            zone_failsafe_a: BTreeMap::new(),
        }
    }
}

/// `[tls]`: the certificate of the TLS listeners, as PEM files (re-read on SIGHUP).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsConfig {
    /// The server's certificate chain (leaf first), PEM.
    pub cert_file: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1), PEM.
    pub key_file: PathBuf,
    /// The CA (PEM, one or more certificates) that signs the stations' client
    /// certificates; required for security profile 3. Without it no client certificate
    /// is asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_ca_file: Option<PathBuf>,
}

/// `[uplink]`: a charge-point operator's (CPO) central system. Every station gets one
/// upstream OCPP 1.6J connection to it, as that station; ampwarden stays the stations'
/// central system and keeps its own load management (see `docs/uplink.md`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct UplinkConfig {
    /// The CPO's OCPP endpoint; each station connects to `url/ID`.
    pub url: String,
    /// Basic-auth key sent by every station (security profile 1); none when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    /// Report only: every command from the CPO is refused.
    pub read_only: bool,
    /// How long a call to the CPO waits for its answer.
    pub call_timeout_s: u32,
    /// Reconnection backoff: doubles from 1 s up to this.
    pub reconnect_max_s: u32,
    /// MeterValues of a running transaction are forwarded at most this often (the
    /// readings that open or close it always).
    pub meter_values_every_s: u32,
    /// At most this many messages a second to the CPO, site-wide, while a backlog drains.
    pub rate_per_s: u32,
    /// How long an Authorize waits for the CPO before `auth.offline` decides.
    pub auth_timeout_s: u32,
    /// A WebSocket ping to the CPO this often; a connection that brings nothing (not even
    /// a pong) for two intervals and `call_timeout_s` is dropped and dialled again.
    pub ping_interval_s: u32,
    /// For `wss://`: the CA (PEM) the CPO's certificate must chain to; the system's
    /// roots when unset.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    /// What to do with a transaction the CPO refuses (its StartTransaction answer is not
    /// Accepted — typically one started while it was unreachable).
    pub rejected_start: RejectedStart,
    /// Per station: the identity and key it has at the CPO (default: its own id and
    /// `password`).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub stations: BTreeMap<ChargePointId, UplinkIdentity>,
    /// Groups of stations that report to another CPO than `url`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub routes: Vec<UplinkRoute>,
}

/// `uplink.rejected_start`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectedStart {
    /// The transaction continues; it is flagged in its notes and the operator log.
    #[default]
    Flag,
    /// The station is asked to stop it (RemoteStopTransaction), and it is flagged.
    Stop,
}

/// `[uplink.stations.ID]`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkIdentity {
    /// The charge point identity at the CPO (the last segment of its URL).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub identity: Option<String>,
    /// Its basic-auth key at the CPO.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// `[[uplink.routes]]`: these stations connect to this CPO instead.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UplinkRoute {
    pub id: String,
    pub url: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
    #[serde(default)]
    pub read_only: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_file: Option<PathBuf>,
    pub stations: Vec<ChargePointId>,
}

/// Where and as whom one station connects upstream (see [`UplinkConfig::target`]).
#[derive(Clone, Debug, PartialEq)]
pub struct UplinkTarget {
    /// The route's id; `None` for the main `url`.
    pub route: Option<String>,
    /// The full URL of this station: `url/identity`.
    pub url: String,
    pub identity: String,
    pub password: Option<String>,
    pub read_only: bool,
    pub ca_file: Option<PathBuf>,
}

impl UplinkConfig {
    /// The CPO endpoint and identity of `station`.
    pub fn target(&self, station: &ChargePointId) -> UplinkTarget {
        let own = self.stations.get(station);
        let identity = own
            .and_then(|i| i.identity.clone())
            .unwrap_or_else(|| station.to_string());
        let route = self.routes.iter().find(|r| r.stations.contains(station));
        let (base, password, read_only, ca_file) = match route {
            Some(r) => (&r.url, r.password.clone(), r.read_only, r.ca_file.clone()),
            None => (
                &self.url,
                self.password.clone(),
                self.read_only,
                self.ca_file.clone(),
            ),
        };
        UplinkTarget {
            route: route.map(|r| r.id.clone()),
            url: format!("{}/{identity}", base.trim_end_matches('/')),
            password: own.and_then(|i| i.password.clone()).or(password),
            identity,
            read_only,
            ca_file,
        }
    }
}

impl Default for UplinkConfig {
    fn default() -> Self {
        UplinkConfig {
            url: String::new(),
            password: None,
            read_only: false,
            call_timeout_s: 30,
            reconnect_max_s: 60,
            meter_values_every_s: 60,
            rate_per_s: 200,
            auth_timeout_s: 5,
            ping_interval_s: 30,
            ca_file: None,
            rejected_start: RejectedStart::Flag,
            stations: BTreeMap::new(),
            routes: Vec::new(),
        }
    }
}
