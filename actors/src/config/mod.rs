//! Configuration: the schema of the TOML file and its validation. Pure: text in,
//! a known-good [`Config`] or the list of every problem out.

mod schema;
mod validate;

pub use schema::*;
pub use validate::{is_token_hash, station_id_problem, ConfigProblem, ConfigProblems};

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
                format!("not valid TOML: {}", located(text, &e)),
            )])
        })?;
        let config: Config = serde_path_to_error::deserialize(deserializer).map_err(|e| {
            let path = e.path().to_string();
            let path = if path == "." { String::new() } else { path };
            ConfigProblems(vec![ConfigProblem::new(path, located(text, e.inner()))])
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

    /// What is valid but probably not what the installer meant, one line per key
    /// (`check-config` prints them, the controller logs them at start).
    pub fn warnings(&self) -> Vec<ConfigProblem> {
        validate::warnings(self)
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

/// The parser's message on one line, with the line number where it points.
fn located(text: &str, e: &toml::de::Error) -> String {
    let message: String = e
        .message()
        .split('\n')
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    match e.span() {
        Some(span) => {
            let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
            format!("{message} (line {line})")
        }
        None => message,
    }
}

#[cfg(test)]
mod tests;

/// The configuration in force, shared by the actors and the HTTP layer; replaced whole
/// when an operator changes it (readers keep the `Arc` they took).
#[derive(Clone, Debug)]
pub struct LiveConfig(std::sync::Arc<std::sync::RwLock<std::sync::Arc<Config>>>);

impl LiveConfig {
    pub fn new(config: Config) -> Self {
        LiveConfig(std::sync::Arc::new(std::sync::RwLock::new(
            std::sync::Arc::new(config),
        )))
    }

    pub fn get(&self) -> std::sync::Arc<Config> {
        // A poisoned lock only means a writer panicked after validation; the value is whole.
        self.0
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    pub fn replace(&self, config: Config) {
        *self
            .0
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = std::sync::Arc::new(config);
    }
}
