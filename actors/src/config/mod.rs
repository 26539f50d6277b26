//! Configuration: the schema of the TOML file and its validation. Pure: text in,
//! a known-good [`Config`] or the list of every problem out.

mod schema;
mod validate;

pub use schema::*;
pub use validate::{ConfigProblem, ConfigProblems};

/// The configuration `cargo run` uses when no file is given.
pub const DEFAULT_TOML: &str = include_str!("../../../config/default.toml");

/// The deepest a zone tree may be (a root is level 1).
pub const MAX_ZONE_DEPTH: usize = 4;
/// The most zones one controller manages.
pub const MAX_ZONES: usize = 200;
/// The most secondaries a primary leads.
pub const MAX_SECONDARIES: usize = 9;

impl Config {
    /// Parses and validates a configuration. Type errors stop at the first one (with its
    /// key path); every semantic problem is reported.
    pub fn from_toml_str(text: &str) -> Result<Config, ConfigProblems> {
        let deserializer = toml::Deserializer::parse(text).map_err(|e| {
            ConfigProblems(vec![ConfigProblem::new(
                "",
                format!("not valid TOML: {}", one_line(&e.to_string())),
            )])
        })?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ConfigProblems(vec![ConfigProblem::new(
                path,
                one_line(&e.into_inner().to_string()),
            )])
        })?;
        config.validate()?;
        Ok(config)
    }

    /// The embedded default configuration.
    pub fn embedded_default() -> Config {
        Config::from_toml_str(DEFAULT_TOML).expect("config/default.toml is valid (tested)")
    }

    /// Checks everything the types cannot: references, the tree, ranges.
    pub fn validate(&self) -> Result<(), ConfigProblems> {
        let problems = validate::problems(self);
        if problems.is_empty() {
            Ok(())
        } else {
            Err(ConfigProblems(problems))
        }
    }

    pub fn to_toml_string(&self) -> String {
        toml::to_string_pretty(self).expect("a Config always serialises to TOML")
    }

    pub fn zone(&self, id: &crate::units::ZoneId) -> Option<&ZoneConfig> {
        self.zones.iter().find(|z| &z.id == id)
    }

    pub fn station(&self, id: &crate::units::ChargePointId) -> Option<&StationConfig> {
        self.stations.iter().find(|s| &s.id == id)
    }

    pub fn meter(&self, id: &crate::units::MeterId) -> Option<&MeterConfig> {
        self.meters.iter().find(|m| &m.id == id)
    }

    /// The zone tree as indented text, with limits and stations (for `check-config`).
    pub fn zone_tree_text(&self) -> String {
        let mut out = String::new();
        let roots = self.zones.iter().filter(|z| z.parent.is_none());
        for root in roots {
            self.write_zone(&mut out, root, 0);
        }
        out
    }

    fn write_zone(&self, out: &mut String, zone: &ZoneConfig, depth: usize) {
        use std::fmt::Write;
        let indent = "  ".repeat(depth);
        let _ = write!(out, "{indent}{} limit {}", zone.id, zone.limit_a);
        if let Some(s) = zone.static_ev_limit_a {
            let _ = write!(out, ", static EV {s}");
        }
        if let Some(m) = &zone.meter {
            let _ = write!(out, ", meter {m}");
        }
        out.push('\n');
        for st in self.stations.iter().filter(|s| s.zone == zone.id) {
            let phases = match st.phases {
                Phases::One => format!("1-phase {}", st.phase),
                Phases::Three => "3-phase".to_owned(),
            };
            let vip = if st.vip { ", VIP" } else { "" };
            let _ = writeln!(
                out,
                "{indent}  - station {} max {} {phases}{vip}",
                st.id, st.max_current_a
            );
        }
        for child in self
            .zones
            .iter()
            .filter(|z| z.parent.as_ref() == Some(&zone.id))
        {
            self.write_zone(out, child, depth + 1);
        }
    }
}

fn one_line(text: &str) -> String {
    text.split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}
