//! The BMS register map: one builder writes both the register image served over Modbus
//! and, when asked, the description of every register (the JSON/CSV map and the table in
//! `docs/bms.md` come from the same code, so they cannot drift from what is served).
//!
//! Layout (holding and input registers alike, 0-based addresses):
//!
//! | block       | start  | per slot | slots |
//! |-------------|--------|----------|-------|
//! | header      | 0      |          |       |
//! | site        | 100    |          |       |
//! | site cap    | 200    |          |       |
//! | zones       | 1000   | 40       | 200   |
//! | zone caps   | 9000   | 4        | 200   |
//! | stations    | 10000  | 30       | 100   |
//!
//! Every float32 at address `a` has a twin at `a + 20000`: the same value as a signed
//! 32-bit integer in hundredths. 32-bit values are big-endian (high word first).

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use serde::Serialize;

use super::caps::{CapTarget, Caps};
use super::{BMS_MAX_STATIONS, BMS_MAX_ZONES};
use crate::config::{Config, FederationRole};
use crate::station::StationSnapshot;
use crate::supervisor::SiteStatus;
use crate::units::{Amps, PerPhase, Phase, ZoneId};

pub const MAP_VERSION: u16 = 1;
pub const HEADER: u16 = 0;
pub const SITE: u16 = 100;
pub const SITE_CAP: u16 = 200;
/// The site cap command: value (float32), unit, validity — 4 registers in one write.
pub const SITE_CAP_COMMAND_LEN: u16 = 4;
pub const ZONES: u16 = 1000;
pub const ZONE_LEN: u16 = 40;
pub const ZONE_CAPS: u16 = 9000;
pub const ZONE_CAP_LEN: u16 = 4;
/// A zone cap command: value (float32), validity — 3 registers in one write.
pub const ZONE_CAP_COMMAND_LEN: u16 = 3;
pub const STATIONS: u16 = 10000;
pub const STATION_LEN: u16 = 30;
pub const TWIN_OFFSET: u16 = 20000;
/// The scaled twin of a value that is not available.
pub const TWIN_NONE: i32 = i32::MIN;
const IMAGE_LEN: usize = 33_000;

/// The readable blocks: start and length.
const BLOCKS: [(u16, u16); 10] = [
    (HEADER, 100),
    (SITE, 100),
    (SITE_CAP, 50),
    (ZONES, ZONE_LEN * BMS_MAX_ZONES as u16),
    (ZONE_CAPS, ZONE_CAP_LEN * BMS_MAX_ZONES as u16),
    (STATIONS, STATION_LEN * BMS_MAX_STATIONS as u16),
    (SITE + TWIN_OFFSET, 100),
    (SITE_CAP + TWIN_OFFSET, 50),
    (ZONES + TWIN_OFFSET, ZONE_LEN * BMS_MAX_ZONES as u16),
    (
        STATIONS + TWIN_OFFSET,
        STATION_LEN * BMS_MAX_STATIONS as u16,
    ),
];

/// Site state (register 137).
pub mod state {
    pub const NORMAL: u16 = 0;
    pub const BMS_LIMITED: u16 = 1;
    pub const FAILSAFE: u16 = 2;
    /// Reserved for a charge-point operator's limit (no CPO uplink yet).
    pub const CPO_LIMITED: u16 = 3;
}

/// What limits a budget now (registers 138 and zone +1).
pub fn source_code(source: &str, estimate: &str, cap_state: u16) -> u16 {
    match (source, estimate) {
        (_, "safety_cut") => 7,
        ("static", _) => 1,
        ("dynamic", _) => 2,
        ("stale_fallback", _) => 3,
        ("imposed", _) => 4,
        ("bms_cap", _) if cap_state == 2 => 6,
        ("bms_cap", _) => 5,
        _ => 0,
    }
}

/// An OCPP connector status as a number (station +1).
pub fn status_code(status: &str) -> u16 {
    match status {
        "Available" => 1,
        "Preparing" => 2,
        "Charging" => 3,
        "SuspendedEV" => 4,
        "SuspendedEVSE" => 5,
        "Finishing" => 6,
        "Reserved" => 7,
        "Unavailable" => 8,
        "Faulted" => 9,
        _ => 0,
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    U16,
    U32,
    Float32,
    /// Characters, two per register, high byte first, NUL-padded.
    Ascii,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
pub enum Access {
    #[serde(rename = "R")]
    Read,
    /// Readable, and writable as part of a command (see `docs/bms.md`).
    #[serde(rename = "RW")]
    ReadWrite,
}

/// One register (or pair, or string) of the map.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Point {
    pub address: u16,
    /// `header`, `site`, `site_cap`, `zone`, `zone_cap` or `station`.
    pub block: &'static str,
    /// The zone or station of the slot, for slot blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot: Option<String>,
    /// The address within the slot, for slot blocks.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub offset: Option<u16>,
    pub name: &'static str,
    #[serde(rename = "type")]
    pub kind: Kind,
    /// Registers it takes.
    pub registers: u16,
    pub unit: &'static str,
    pub access: Access,
    /// The integer twin (hundredths), for float32 values.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub scaled_twin: Option<u16>,
    pub description: &'static str,
}

/// The registers as served.
#[derive(Clone, Debug)]
pub struct RegisterImage {
    words: Vec<u16>,
}

impl RegisterImage {
    /// `count` registers from `address`, if all of them lie in one block.
    pub fn read(&self, address: u16, count: u16) -> Option<&[u16]> {
        if count == 0 || count > 125 {
            return None;
        }
        let end = u32::from(address) + u32::from(count);
        BLOCKS
            .iter()
            .any(|&(start, len)| address >= start && end <= u32::from(start) + u32::from(len))
            .then(|| &self.words[usize::from(address)..end as usize])
    }

    pub fn word(&self, address: u16) -> u16 {
        self.words[usize::from(address)]
    }
}

/// What the image is built from.
pub struct ImageInput<'a> {
    pub config: &'a Config,
    pub status: &'a SiteStatus,
    pub stations: &'a [StationSnapshot],
    pub caps: &'a Caps,
    pub heartbeat: u32,
    pub clients: u16,
    pub last_write_accepted: bool,
    pub writes: u16,
    pub now: DateTime<Utc>,
}

/// The register image.
pub fn image(input: &ImageInput<'_>) -> RegisterImage {
    let mut b = Builder {
        words: vec![0; IMAGE_LEN],
        points: None,
        block: "header",
        slot: None,
        base: 0,
    };
    build(&mut b, input);
    RegisterImage { words: b.words }
}

/// The description of every register for this configuration.
pub fn map(config: &Config) -> Vec<Point> {
    let status = SiteStatus::default();
    let caps = Caps::default();
    let input = ImageInput {
        config,
        status: &status,
        stations: &[],
        caps: &caps,
        heartbeat: 0,
        clients: 0,
        last_write_accepted: false,
        writes: 0,
        now: Utc::now(),
    };
    let mut b = Builder {
        words: vec![0; IMAGE_LEN],
        points: Some(Vec::new()),
        block: "header",
        slot: None,
        base: 0,
    };
    build(&mut b, &input);
    b.points.unwrap_or_default()
}

/// The map as CSV, for import into BMS tools.
pub fn map_csv(points: &[Point]) -> String {
    let mut out = String::from(
        "address,block,slot,offset,name,type,registers,unit,access,scaled_twin,description\n",
    );
    for p in points {
        let kind = match p.kind {
            Kind::U16 => "u16",
            Kind::U32 => "u32",
            Kind::Float32 => "float32",
            Kind::Ascii => "ascii",
        };
        let access = match p.access {
            Access::Read => "R",
            Access::ReadWrite => "RW",
        };
        out.push_str(&format!(
            "{},{},{},{},{},{},{},{},{},{},\"{}\"\n",
            p.address,
            p.block,
            p.slot.as_deref().unwrap_or(""),
            p.offset.map(|o| o.to_string()).unwrap_or_default(),
            p.name,
            kind,
            p.registers,
            p.unit,
            access,
            p.scaled_twin.map(|t| t.to_string()).unwrap_or_default(),
            p.description.replace('"', "\"\"")
        ));
    }
    out
}

struct Builder {
    words: Vec<u16>,
    points: Option<Vec<Point>>,
    block: &'static str,
    slot: Option<String>,
    base: u16,
}

impl Builder {
    fn enter(&mut self, block: &'static str, base: u16, slot: Option<&str>) {
        self.block = block;
        self.base = base;
        self.slot = if self.points.is_some() {
            slot.map(str::to_owned)
        } else {
            None
        };
    }

    #[allow(clippy::too_many_arguments)]
    fn record(
        &mut self,
        offset: u16,
        name: &'static str,
        kind: Kind,
        registers: u16,
        unit: &'static str,
        access: Access,
        description: &'static str,
    ) {
        let address = self.base + offset;
        let slotted = matches!(self.block, "zone" | "zone_cap" | "station");
        if let Some(points) = &mut self.points {
            points.push(Point {
                address,
                block: self.block,
                slot: self.slot.clone(),
                offset: slotted.then_some(offset),
                name,
                kind,
                registers,
                unit,
                access,
                scaled_twin: (kind == Kind::Float32 && access == Access::Read)
                    .then_some(address + TWIN_OFFSET),
                description,
            });
        }
    }

    fn u16(
        &mut self,
        offset: u16,
        name: &'static str,
        unit: &'static str,
        d: &'static str,
        v: u16,
    ) {
        self.record(offset, name, Kind::U16, 1, unit, Access::Read, d);
        self.words[usize::from(self.base + offset)] = v;
    }

    fn u32(
        &mut self,
        offset: u16,
        name: &'static str,
        unit: &'static str,
        d: &'static str,
        v: u32,
    ) {
        self.record(offset, name, Kind::U32, 2, unit, Access::Read, d);
        self.put32(self.base + offset, v);
    }

    fn f32(
        &mut self,
        offset: u16,
        name: &'static str,
        unit: &'static str,
        d: &'static str,
        v: Option<f64>,
    ) {
        self.record(offset, name, Kind::Float32, 2, unit, Access::Read, d);
        let address = self.base + offset;
        let v = v.filter(|v| v.is_finite());
        #[allow(clippy::cast_possible_truncation)]
        let float = v.map_or(f32::NAN, |v| v as f32);
        self.put32(address, float.to_bits());
        #[allow(clippy::cast_possible_truncation)]
        let twin = v.map_or(TWIN_NONE, |v| {
            (v * 100.0)
                .round()
                .clamp(f64::from(i32::MIN + 1), f64::from(i32::MAX)) as i32
        });
        self.put32(
            address + TWIN_OFFSET,
            u32::from_ne_bytes(twin.to_ne_bytes()),
        );
    }

    /// A command register: readable (the last accepted command), written by commands.
    fn command(
        &mut self,
        offset: u16,
        name: &'static str,
        kind: Kind,
        unit: &'static str,
        d: &'static str,
        words: &[u16],
    ) {
        let registers = u16::try_from(words.len()).unwrap_or(1);
        self.record(offset, name, kind, registers, unit, Access::ReadWrite, d);
        let at = usize::from(self.base + offset);
        self.words[at..at + words.len()].copy_from_slice(words);
    }

    fn ascii(&mut self, offset: u16, registers: u16, name: &'static str, d: &'static str, s: &str) {
        self.record(offset, name, Kind::Ascii, registers, "", Access::Read, d);
        let at = usize::from(self.base + offset);
        let bytes: Vec<u8> = s
            .bytes()
            .filter(u8::is_ascii)
            .take(usize::from(registers) * 2)
            .collect();
        for i in 0..usize::from(registers) {
            let hi = bytes.get(2 * i).copied().unwrap_or(0);
            let lo = bytes.get(2 * i + 1).copied().unwrap_or(0);
            self.words[at + i] = u16::from_be_bytes([hi, lo]);
        }
    }

    fn put32(&mut self, address: u16, v: u32) {
        let at = usize::from(address);
        self.words[at] = (v >> 16) as u16;
        self.words[at + 1] = (v & 0xFFFF) as u16;
    }

    fn phases(
        &mut self,
        offset: u16,
        names: [&'static str; 3],
        unit: &'static str,
        d: &'static str,
        v: Option<PerPhase<Amps>>,
    ) {
        for (i, p) in Phase::ALL.into_iter().enumerate() {
            let step = u16::try_from(2 * i).unwrap_or(0);
            self.f32(offset + step, names[i], unit, d, v.map(|v| v.get(p).0));
        }
    }
}

fn f32_words(v: Option<f64>) -> [u16; 2] {
    #[allow(clippy::cast_possible_truncation)]
    let bits = v.map_or(f32::NAN, |v| v as f32).to_bits();
    [(bits >> 16) as u16, (bits & 0xFFFF) as u16]
}

fn sum(a: PerPhase<Amps>, b: PerPhase<Amps>) -> PerPhase<Amps> {
    PerPhase(Phase::ALL.map(|p| a.get(p) + b.get(p)))
}

fn headroom(budget: PerPhase<Amps>, draw: PerPhase<Amps>) -> PerPhase<Amps> {
    PerPhase(Phase::ALL.map(|p| (budget.get(p) - draw.get(p)).max(Amps::ZERO)))
}

fn count(n: usize) -> u16 {
    u16::try_from(n).unwrap_or(u16::MAX)
}

#[allow(clippy::too_many_lines)]
fn build(b: &mut Builder, input: &ImageInput<'_>) {
    let c = input.config;
    let s = input.status;
    let now = input.now;
    let write = c.bms.as_ref().is_some_and(|b| b.write);
    let site_cap = input.caps.view(c, &CapTarget::Site, now);

    // --- header
    b.enter("header", HEADER, None);
    b.u16(
        0,
        "map_version",
        "",
        "Version of this register map",
        MAP_VERSION,
    );
    let role = match c.federation.as_ref().map(|f| f.role) {
        None => 0,
        Some(FederationRole::Primary) => 1,
        Some(FederationRole::Secondary) => 2,
    };
    b.u16(
        1,
        "role",
        "",
        "0 standalone, 1 federation primary, 2 federation secondary",
        role,
    );
    b.u32(
        2,
        "heartbeat",
        "",
        "Counts up once a second while the controller runs",
        input.heartbeat,
    );
    b.u16(
        4,
        "zones",
        "",
        "Zones configured (blocks in use)",
        count(c.zones.len().min(BMS_MAX_ZONES)),
    );
    b.u16(
        5,
        "stations",
        "",
        "Stations configured (blocks in use)",
        count(c.stations.len().min(BMS_MAX_STATIONS)),
    );
    b.u16(
        6,
        "write_enabled",
        "",
        "1 when caps may be written (bms.write)",
        u16::from(write),
    );
    b.u16(
        7,
        "unit_id",
        "",
        "The Modbus unit id answered",
        u16::from(c.bms.as_ref().map_or(1, |b| b.unit_id)),
    );
    b.u32(
        8,
        "unix_time",
        "s",
        "Controller time, seconds since 1970 (UTC)",
        u32::try_from(now.timestamp()).unwrap_or(0),
    );
    #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
    let volts = c.site.voltage_v.round().clamp(0.0, 65_535.0) as u16;
    b.u16(
        10,
        "voltage",
        "V",
        "Phase-to-neutral voltage used for powers (site.voltage_v)",
        volts,
    );
    b.u16(
        11,
        "clients",
        "",
        "Modbus clients connected now",
        input.clients,
    );
    b.ascii(
        12,
        20,
        "site_name",
        "Site name (site.name), 40 characters",
        &c.site.name,
    );

    // --- site
    let roots: Vec<_> = s.zones.iter().filter(|z| z.parent.is_none()).collect();
    let zero = PerPhase::splat(Amps::ZERO);
    let ev = roots.iter().fold(zero, |a, z| sum(a, z.ev_draw));
    let budget = roots.iter().fold(zero, |a, z| sum(a, z.budget));
    let other = roots
        .iter()
        .try_fold(zero, |a, z| z.other_loads.map(|o| sum(a, o)));
    let production = roots.iter().filter_map(|z| z.production).reduce(sum);
    let voltage = c.site.voltage_v;
    // Site registers are named by their addresses (SITE = 100 on).
    b.enter("site", 0, None);
    let known = s.at.is_some();
    b.phases(
        100,
        ["ev_current_l1", "ev_current_l2", "ev_current_l3"],
        "A",
        "EV current per phase (what the stations report)",
        known.then_some(ev),
    );
    let power = Phase::ALL
        .into_iter()
        .map(|p| ev.get(p).0 * voltage)
        .sum::<f64>();
    b.f32(
        106,
        "ev_power",
        "W",
        "EV power: the EV currents times the voltage",
        known.then_some(power),
    );
    b.phases(
        108,
        ["other_loads_l1", "other_loads_l2", "other_loads_l3"],
        "A",
        "Other loads per phase (NaN without a fresh meter reading)",
        other.filter(|_| known && !roots.is_empty()),
    );
    b.phases(
        114,
        ["production_l1", "production_l2", "production_l3"],
        "A",
        "Local production per phase (NaN without a production meter)",
        production,
    );
    b.phases(
        120,
        ["headroom_l1", "headroom_l2", "headroom_l3"],
        "A",
        "What the vehicles could still take per phase: EV budget minus EV current",
        known.then(|| headroom(budget, ev)),
    );
    b.phases(
        126,
        ["ev_budget_l1", "ev_budget_l2", "ev_budget_l3"],
        "A",
        "EV budget per phase (after meter, caps and grants)",
        known.then_some(budget),
    );
    let limit = roots.iter().map(|z| z.limit_a.0).sum::<f64>();
    b.f32(
        132,
        "limit",
        "A",
        "Commissioned limit per phase of the root zone(s)",
        Some(limit).filter(|_| known),
    );
    let (mut active, mut waiting, mut suspended) = (0usize, 0usize, 0usize);
    for session in &s.sessions {
        match session.decision {
            "fixed" => {}
            "suspended" => suspended += 1,
            _ if session.limit.0 > 0.0 => active += 1,
            _ => waiting += 1,
        }
    }
    b.u16(
        134,
        "sessions_active",
        "",
        "Sessions charging (limit above 0 A)",
        count(active),
    );
    b.u16(
        135,
        "sessions_waiting",
        "",
        "Sessions waiting for current (limit 0 A, not suspended)",
        count(waiting),
    );
    b.u16(
        136,
        "sessions_suspended",
        "",
        "Sessions suspended by the shedding order",
        count(suspended),
    );
    let site_state = match site_cap.state {
        super::CapState::Written => state::BMS_LIMITED,
        super::CapState::Failsafe => state::FAILSAFE,
        super::CapState::None => state::NORMAL,
    };
    b.u16(137, "state", "", "0 normal, 1 BMS-limited (a written cap is in force), 2 fail-safe (no valid write: the fail-safe cap), 3 CPO-limited (reserved)", site_state);
    let limiting = roots
        .iter()
        .min_by(|a, b| {
            a.budget
                .get(Phase::L1)
                .0
                .total_cmp(&b.budget.get(Phase::L1).0)
        })
        .map_or(0, |z| {
            source_code(z.source, z.estimate, site_cap.state.code())
        });
    b.u16(138, "limiting_source", "", "What sets the root budget: 0 unknown, 1 static limit, 2 meter, 3 stale meter fallback, 4 federation grant, 5 BMS cap, 6 BMS fail-safe cap, 7 safety cut", limiting);
    let online = input.stations.iter().filter(|st| st.connected).count();
    b.u16(
        139,
        "stations_online",
        "",
        "Stations connected now",
        count(online),
    );

    // --- site cap
    b.enter("site_cap", SITE_CAP, None);
    let written = site_cap.written.as_ref();
    b.command(
        0,
        "cap_value",
        Kind::Float32,
        "A or W",
        "Command: the site EV cap (per phase in A, or in all in W, per cap_unit)",
        &f32_words(written.map(|w| w.requested)),
    );
    let unit = written.map_or(0, |w| u16::from(w.unit == super::CapUnit::Watts));
    b.command(
        2,
        "cap_unit",
        Kind::U16,
        "",
        "Command: 0 = A per phase, 1 = W in all",
        &[unit],
    );
    let validity = written.map_or(0, |w| {
        u16::try_from((w.until - w.at).num_seconds()).unwrap_or(u16::MAX)
    });
    b.command(
        3,
        "cap_validity",
        Kind::U16,
        "s",
        "Command: validity of the cap (0 = bms.default_validity_s)",
        &[validity],
    );
    b.f32(
        10,
        "cap_effective",
        "A",
        "Site cap in force per phase (NaN: none)",
        site_cap.effective_a.map(|a| a.0),
    );
    b.u16(
        12,
        "cap_remaining",
        "s",
        "Seconds until the written cap ends (0: none in force)",
        u16::try_from(site_cap.remaining_s).unwrap_or(u16::MAX),
    );
    b.u16(
        13,
        "cap_state",
        "",
        "0 no cap, 1 written cap in force, 2 fail-safe cap in force",
        site_cap.state.code(),
    );
    b.u16(
        14,
        "last_write_accepted",
        "",
        "1 if the last cap write (site or zone) was accepted, 0 if refused",
        u16::from(input.last_write_accepted),
    );
    b.u16(
        15,
        "writes_accepted",
        "",
        "Cap writes accepted since start (wraps at 65536)",
        input.writes,
    );
    b.f32(
        16,
        "failsafe",
        "A",
        "The fail-safe cap per phase (bms.failsafe_current_a; NaN: none)",
        site_cap.failsafe_a.map(|a| a.0),
    );
    b.f32(
        18,
        "cap_requested",
        "A",
        "The written cap in A per phase before the commissioned limit (NaN: none)",
        written.map(|w| w.requested_a.0),
    );

    // --- zones and their caps
    // Sessions per zone and its ancestors, in one pass (the image is rebuilt every round).
    let zone_of: HashMap<&str, &ZoneId> = c
        .stations
        .iter()
        .map(|st| (st.id.as_str(), &st.zone))
        .collect();
    let parent_of: HashMap<&ZoneId, Option<&ZoneId>> =
        c.zones.iter().map(|z| (&z.id, z.parent.as_ref())).collect();
    let mut sessions_below: HashMap<ZoneId, (usize, usize)> = HashMap::new();
    for se in &s.sessions {
        let mut at = zone_of.get(se.station.as_str()).copied();
        for _ in 0..=crate::config::MAX_ZONE_DEPTH {
            let Some(z) = at else { break };
            let entry = sessions_below.entry(z.clone()).or_default();
            entry.0 += 1;
            entry.1 += usize::from(se.decision == "suspended");
            at = parent_of.get(z).copied().flatten();
        }
    }
    for (z, zc) in c.zones.iter().take(BMS_MAX_ZONES).enumerate() {
        let zs = s.zones.iter().find(|x| x.id == zc.id);
        let slot = u16::try_from(z).unwrap_or(0);
        let cap = input.caps.view(c, &CapTarget::Zone(zc.id.clone()), now);
        b.enter("zone", ZONES + ZONE_LEN * slot, Some(zc.id.as_str()));
        b.u16(0, "present", "", "1: this slot holds a zone", 1);
        b.u16(
            1,
            "budget_source",
            "",
            "What sets its budget (codes as site limiting_source)",
            zs.map_or(0, |z| source_code(z.source, z.estimate, cap.state.code())),
        );
        b.f32(
            2,
            "limit",
            "A",
            "Commissioned limit per phase (limit_a)",
            Some(zc.limit_a.0),
        );
        b.phases(
            4,
            ["budget_l1", "budget_l2", "budget_l3"],
            "A",
            "EV budget per phase",
            zs.map(|z| z.budget),
        );
        b.phases(
            10,
            ["ev_current_l1", "ev_current_l2", "ev_current_l3"],
            "A",
            "EV current per phase",
            zs.map(|z| z.ev_draw),
        );
        b.phases(
            16,
            ["other_loads_l1", "other_loads_l2", "other_loads_l3"],
            "A",
            "Other loads per phase (NaN: not measured)",
            zs.and_then(|z| z.other_loads),
        );
        b.phases(
            22,
            ["headroom_l1", "headroom_l2", "headroom_l3"],
            "A",
            "EV budget minus EV current per phase",
            zs.map(|z| headroom(z.budget, z.ev_draw)),
        );
        b.f32(
            28,
            "cap_effective",
            "A",
            "Zone cap in force per phase (NaN: none)",
            cap.effective_a.map(|a| a.0),
        );
        b.u16(
            30,
            "cap_remaining",
            "s",
            "Seconds until the written zone cap ends",
            u16::try_from(cap.remaining_s).unwrap_or(u16::MAX),
        );
        b.u16(
            31,
            "cap_state",
            "",
            "0 no cap, 1 written cap, 2 fail-safe cap",
            cap.state.code(),
        );
        let (below, suspended) = sessions_below.get(&zc.id).copied().unwrap_or((0, 0));
        b.u16(32, "sessions", "", "Sessions below the zone", count(below));
        b.u16(
            33,
            "sessions_suspended",
            "",
            "Of them suspended",
            count(suspended),
        );
        b.ascii(
            34,
            6,
            "id",
            "Zone id, 12 characters (the full id in the JSON map)",
            zc.id.as_str(),
        );

        b.enter(
            "zone_cap",
            ZONE_CAPS + ZONE_CAP_LEN * slot,
            Some(zc.id.as_str()),
        );
        let written = cap.written.as_ref();
        b.command(
            0,
            "cap_value",
            Kind::Float32,
            "A",
            "Command: the zone's EV cap per phase",
            &f32_words(written.map(|w| w.requested)),
        );
        let validity = written.map_or(0, |w| {
            u16::try_from((w.until - w.at).num_seconds()).unwrap_or(u16::MAX)
        });
        b.command(
            2,
            "cap_validity",
            Kind::U16,
            "s",
            "Command: validity (0 = bms.default_validity_s)",
            &[validity],
        );
    }

    // --- stations
    let snapshots: HashMap<&str, &StationSnapshot> = input
        .stations
        .iter()
        .map(|st| (st.id.as_str(), st))
        .collect();
    for (i, sc) in c.stations.iter().take(BMS_MAX_STATIONS).enumerate() {
        let slot = u16::try_from(i).unwrap_or(0);
        let snap = snapshots.get(sc.id.as_str()).copied();
        b.enter(
            "station",
            STATIONS + STATION_LEN * slot,
            Some(sc.id.as_str()),
        );
        b.u16(0, "present", "", "1: this slot holds a station", 1);
        let status = snap
            .filter(|st| st.connected)
            .and_then(|st| {
                st.connectors
                    .iter()
                    .map(|cn| status_code(&cn.status))
                    .max_by_key(|&code| status_rank(code))
            })
            .unwrap_or(0);
        b.u16(1, "status", "", "0 offline/unknown, 1 Available, 2 Preparing, 3 Charging, 4 SuspendedEV, 5 SuspendedEVSE, 6 Finishing, 7 Reserved, 8 Unavailable, 9 Faulted (its busiest connector)", status);
        let mut mask = 0u16;
        let mut current = [None::<f64>; 3];
        let mut offered = 0.0;
        let mut power = None::<f64>;
        let mut energy = 0.0;
        if let Some(st) = snap {
            for cn in &st.connectors {
                for p in cn.phases_in_use.iter().flatten() {
                    mask |= 1 << p.index();
                }
                for p in Phase::ALL {
                    if let Some(a) = cn.draw.get(p) {
                        let slot = &mut current[p.index()];
                        *slot = Some(slot.unwrap_or(0.0) + a.0);
                        if cn.phases_in_use.is_none() && a.0 > 0.5 {
                            mask |= 1 << p.index();
                        }
                    }
                }
                if cn.transaction.is_some() {
                    offered += cn.limit_in_force.0;
                }
                if let Some(w) = cn.power_w {
                    power = Some(power.unwrap_or(0.0) + w);
                }
                energy += cn.transaction.as_ref().map_or(0.0, |t| t.energy_wh);
            }
        }
        b.u16(
            2,
            "phases_in_use",
            "",
            "Bit mask of the phases drawing: 1 = L1, 2 = L2, 4 = L3 (the station's own phases)",
            mask,
        );
        b.u16(
            3,
            "online",
            "",
            "1 while the station is connected",
            u16::from(snap.is_some_and(|st| st.connected)),
        );
        for (k, name) in ["current_l1", "current_l2", "current_l3"]
            .into_iter()
            .enumerate()
        {
            let step = u16::try_from(2 * k).unwrap_or(0);
            b.f32(
                4 + step,
                name,
                "A",
                "Current per phase as the station last reported (NaN: never reported)",
                current[k],
            );
        }
        b.f32(
            10,
            "offered_limit",
            "A",
            "The limit in force on its charging connectors, per phase",
            snap.map(|_| offered),
        );
        b.f32(
            12,
            "power",
            "W",
            "Power as reported (NaN: not reported)",
            power,
        );
        b.f32(
            14,
            "max_current",
            "A",
            "Configured maximum per phase (max_current_a)",
            Some(sc.max_current_a.0),
        );
        b.u16(
            16,
            "connectors",
            "",
            "Connectors configured",
            count(sc.connectors as usize),
        );
        let zone_slot = c
            .zones
            .iter()
            .position(|z| z.id == sc.zone)
            .map_or(u16::MAX, count);
        b.u16(
            17,
            "zone_slot",
            "",
            "Slot of its zone in the zone blocks",
            zone_slot,
        );
        b.f32(
            18,
            "energy",
            "Wh",
            "Energy of its open transactions",
            snap.map(|_| energy),
        );
        b.ascii(
            20,
            10,
            "id",
            "Station id, 20 characters (the full id in the JSON map)",
            sc.id.as_str(),
        );
    }
}

/// How much a connector status says about the station: Charging first.
fn status_rank(code: u16) -> u8 {
    match code {
        3 => 9,
        4 | 5 => 8,
        2 => 7,
        6 => 6,
        9 => 5,
        7 => 4,
        8 => 3,
        1 => 2,
        _ => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        toml::from_str(
            r#"
            [site]
            name = "Depot Nord"
            [[zones]]
            id = "main"
            limit_a = 100
            [[zones]]
            id = "garage"
            parent = "main"
            limit_a = 40
            [[stations]]
            id = "CP-1"
            zone = "garage"
            max_current_a = 32
            "#,
        )
        .expect("config")
    }

    #[test]
    fn every_point_lies_in_a_readable_block_and_none_overlap() {
        let points = map(&config());
        let mut used = std::collections::HashSet::new();
        for p in &points {
            let img = image(&ImageInput {
                config: &config(),
                status: &SiteStatus::default(),
                stations: &[],
                caps: &Caps::default(),
                heartbeat: 7,
                clients: 0,
                last_write_accepted: false,
                writes: 0,
                now: Utc::now(),
            });
            assert!(img.read(p.address, p.registers).is_some(), "{p:?}");
            if let Some(t) = p.scaled_twin {
                assert!(img.read(t, 2).is_some(), "twin of {p:?}");
            }
            for a in p.address..p.address + p.registers {
                assert!(used.insert(a), "register {a} used twice ({})", p.name);
            }
        }
        assert!(points
            .iter()
            .any(|p| p.block == "station" && p.name == "current_l1"));
    }

    #[test]
    fn values_are_big_endian_with_their_scaled_twins() {
        let c = config();
        let img = image(&ImageInput {
            config: &c,
            status: &SiteStatus::default(),
            stations: &[],
            caps: &Caps::default(),
            heartbeat: 0x0001_0002,
            clients: 0,
            last_write_accepted: false,
            writes: 0,
            now: Utc::now(),
        });
        assert_eq!(img.word(0), MAP_VERSION);
        assert_eq!((img.word(2), img.word(3)), (1, 2));
        // Zone "garage" (slot 1): its limit 40 A as float32 and as 4000 hundredths.
        let at = ZONES + ZONE_LEN + 2;
        let bits = (u32::from(img.word(at)) << 16) | u32::from(img.word(at + 1));
        assert!((f32::from_bits(bits) - 40.0).abs() < f32::EPSILON);
        let twin = (u32::from(img.word(at + TWIN_OFFSET)) << 16)
            | u32::from(img.word(at + TWIN_OFFSET + 1));
        assert_eq!(twin, 4000);
        // The site name, two characters a register.
        assert_eq!(img.word(12), u16::from_be_bytes(*b"De"));
        // Reads across a block's end, or outside every block, are refused.
        assert!(img.read(95, 10).is_none());
        assert!(img.read(500, 1).is_none());
        assert!(img.read(0, 126).is_none());
    }
}

/// The register tables of `docs/bms.md`, generated from the map of a configuration with
/// one zone and one station (zone and station rows give the offset within their slot).
pub fn markdown_tables() -> String {
    let config: Config = toml::from_str(
        "[[zones]]\nid = \"main\"\nlimit_a = 100\n\
         [[stations]]\nid = \"CP1\"\nzone = \"main\"\nmax_current_a = 32\n",
    )
    .unwrap_or_default();
    let points = map(&config);
    let mut out = String::new();
    for (block, title, at) in [
        ("header", "Header", "address"),
        ("site", "Site", "address"),
        ("site_cap", "Site cap (command and read-back)", "address"),
        ("zone", "Zone block (at 1000 + 40 × slot)", "offset"),
        (
            "zone_cap",
            "Zone cap command (at 9000 + 4 × slot)",
            "offset",
        ),
        ("station", "Station block (at 10000 + 30 × slot)", "offset"),
    ] {
        out.push_str(&format!(
            "#### {title}\n\n| {at} | name | type | regs | unit | access | description |\n|---|---|---|---|---|---|---|\n"
        ));
        for p in points.iter().filter(|p| p.block == block) {
            let kind = match p.kind {
                Kind::U16 => "u16",
                Kind::U32 => "u32",
                Kind::Float32 => "float32",
                Kind::Ascii => "ascii",
            };
            let access = match p.access {
                Access::Read => "R",
                Access::ReadWrite => "RW",
            };
            let at = p.offset.map_or(p.address, |o| o);
            out.push_str(&format!(
                "| {at} | `{}` | {kind} | {} | {} | {access} | {} |\n",
                p.name,
                p.registers,
                if p.unit.is_empty() { "" } else { p.unit },
                p.description.replace('|', "\\|")
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod docs {
    /// `docs/bms.md` carries the tables as generated between two markers; run with
    /// `AMPWARDEN_WRITE_DOCS=1` to rewrite them after changing the map.
    #[test]
    fn the_documented_register_map_is_the_served_one() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../docs/bms.md");
        let text = std::fs::read_to_string(path).expect("docs/bms.md");
        let (begin, end) = ("<!-- registers:begin -->\n", "<!-- registers:end -->");
        let start = text.find(begin).expect("begin marker") + begin.len();
        let stop = text.find(end).expect("end marker");
        let tables = super::markdown_tables();
        if std::env::var_os("AMPWARDEN_WRITE_DOCS").is_some() {
            let updated = format!("{}{tables}{}", &text[..start], &text[stop..]);
            std::fs::write(path, updated).expect("write docs/bms.md");
            return;
        }
        assert!(
            text[start..stop] == tables,
            "docs/bms.md's register tables differ from the map served; \
             rerun with AMPWARDEN_WRITE_DOCS=1 and review the diff"
        );
    }
}
