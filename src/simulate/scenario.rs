//! What a simulation runs: the fleet, its vehicles, the site around it and the churn, as
//! read from a scenario file (TOML) and overridden by the command line. Also the plan of
//! the stations (ids, phases, maxima) that the demo and the load bench turn into the
//! controller's configuration, so both sides always agree.

use std::fmt;
use std::str::FromStr;

use ampwarden_actors::config::PhaseRotation;
use ampwarden_actors::units::{Amps, Phase};
use serde::{Deserialize, Serialize};

use super::connector::Wiring;
use super::site::SiteProfile;
use super::vehicle::VehicleMix;

/// Everything a simulation needs but the controller's address.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Scenario {
    pub stations: usize,
    /// Station ids are this prefix and a number: SIM0001, SIM0002, …
    pub id_prefix: String,
    pub seed: u64,
    /// Simulated seconds per real second, for the vehicles and the site (not for OCPP
    /// timers, which the controller sets in real seconds).
    pub speedup: f64,
    pub phases: PhaseLayout,
    /// The stations' own maximum, A per phase.
    pub max_current_a: f64,
    pub voltage_v: f64,
    /// The supply's limit per phase: a meter reading above it is a violation.
    pub site_limit_a: f64,
    /// Serve a simulated Modbus TCP meter (iem3155) on 127.0.0.1 at this port.
    pub meter_port: Option<u16>,
    /// Local hour of the day the simulated clock starts at; default the current UTC hour.
    pub start_hour: Option<f64>,
    /// Run this long (real seconds); default until interrupted.
    pub seconds: Option<u64>,
    /// The badges drivers present, given to the stations in turn; default one per
    /// station (`TAG-0001`, …).
    pub id_tags: Vec<String>,
    /// Live summary line period, real seconds; 0 for none.
    pub summary_every_s: u64,
    /// At the end, stations stop their running transactions before they disconnect.
    pub finish_sessions_at_end: bool,
    /// Most simultaneous WebSocket handshakes (a burst beyond the server's listen
    /// backlog only costs SYN retries).
    pub connect_concurrency: usize,
    /// How often the stations send MeterValues during a transaction (real seconds), on
    /// their own clock: never because a limit changed.
    pub meter_values_every_s: u32,
    /// Whether the stations take the central system's `MeterValueSampleInterval`
    /// (some firmware accepts it and keeps its own).
    pub honour_sample_interval: bool,
    /// 3-phase stations are wired in turn L1L2L3, L2L3L1, L3L1L2 (each station's `phase_rotation`),
    /// as installers do so that 1-phase cars spread over the site's phases.
    pub rotate_phases: bool,
    pub vehicles: VehicleMix,
    pub site: SiteProfile,
    pub churn: Churn,
}

impl Default for Scenario {
    fn default() -> Self {
        Scenario {
            stations: 10,
            id_prefix: "SIM".into(),
            seed: 1,
            speedup: 1.0,
            phases: PhaseLayout::Three,
            max_current_a: 32.0,
            voltage_v: 230.0,
            site_limit_a: 63.0,
            meter_port: None,
            start_hour: None,
            seconds: None,
            id_tags: Vec::new(),
            summary_every_s: 5,
            finish_sessions_at_end: true,
            connect_concurrency: 256,
            meter_values_every_s: 60,
            honour_sample_interval: true,
            rotate_phases: false,
            vehicles: VehicleMix::default(),
            site: SiteProfile::default(),
            churn: Churn::default(),
        }
    }
}

/// Disturbances for soak runs; all off by default.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Churn {
    /// Each station drops its connection after an exponentially distributed time with
    /// this mean (real seconds), then reconnects and boots again.
    pub reconnect_mean_s: Option<f64>,
    /// The simulated meter goes silent this often (real seconds)…
    pub meter_dropout_every_s: Option<f64>,
    /// …for this long.
    pub meter_dropout_s: f64,
    /// This share of StartTransactions is sent twice, the same (the station thinks the
    /// first answer was lost); the station keeps the second answer's transaction.
    pub retry_start_share: f64,
    /// This share of StopTransactions is never sent (lost from the station's queue): the
    /// station moves on as if it had been (not when the fleet stops: those are all sent).
    pub forget_stop_share: f64,
}

/// Which stations are 1-phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PhaseLayout {
    #[serde(rename = "1")]
    One,
    #[serde(rename = "3")]
    Three,
    /// Every fourth station is 1-phase.
    Mixed,
}

impl FromStr for PhaseLayout {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "1" => Ok(PhaseLayout::One),
            "3" => Ok(PhaseLayout::Three),
            "mixed" => Ok(PhaseLayout::Mixed),
            other => Err(format!("phases must be 1, 3 or mixed, not {other:?}")),
        }
    }
}

impl fmt::Display for PhaseLayout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PhaseLayout::One => "1",
            PhaseLayout::Three => "3",
            PhaseLayout::Mixed => "mixed",
        })
    }
}

/// Why a scenario cannot run.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    #[error("cannot read the scenario file {path}: {source}")]
    Read {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("scenario file {path}: {message}")]
    Parse { path: String, message: String },
    #[error("scenario: {0}")]
    Invalid(String),
}

impl Scenario {
    pub fn from_toml_file(path: &std::path::Path) -> Result<Scenario, ScenarioError> {
        let text = std::fs::read_to_string(path).map_err(|source| ScenarioError::Read {
            path: path.display().to_string(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| ScenarioError::Parse {
            path: path.display().to_string(),
            message: e.to_string(),
        })
    }

    /// Checks what the types cannot.
    pub fn validate(&self) -> Result<(), ScenarioError> {
        let bad = |m: &str| Err(ScenarioError::Invalid(m.to_owned()));
        if self.stations == 0 {
            return bad("stations must be at least 1");
        }
        if !(self.speedup.is_finite() && self.speedup > 0.0) {
            return bad("speedup must be above 0");
        }
        if !(self.max_current_a.is_finite() && self.max_current_a > 0.0) {
            return bad("max_current_a must be above 0");
        }
        if !(self.voltage_v.is_finite() && self.voltage_v > 0.0) {
            return bad("voltage_v must be above 0");
        }
        if self.id_prefix.is_empty() || self.id_prefix.len() > 14 {
            return bad("id_prefix must have 1 to 14 characters");
        }
        if self.vehicles.max_currents_a.is_empty() {
            return bad("vehicles.max_currents_a must list at least one current");
        }
        if self.connect_concurrency == 0 {
            return bad("connect_concurrency must be at least 1");
        }
        if self.start_hour.is_some_and(|h| !(0.0..24.0).contains(&h)) {
            return bad("start_hour must be in 0..24");
        }
        Ok(())
    }

    /// The stations of the fleet, in order.
    pub fn plan(&self) -> Vec<PlannedStation> {
        let width = self.stations.to_string().len().max(4);
        let mut one_phase_seen = 0usize;
        let mut three_phase_seen = 0usize;
        (0..self.stations)
            .map(|index| {
                let one_phase = match self.phases {
                    PhaseLayout::One => true,
                    PhaseLayout::Three => false,
                    PhaseLayout::Mixed => index % 4 == 3,
                };
                // 1-phase stations go on L1, L2, L3 in turn, as an installer balances them.
                let phase = if one_phase {
                    one_phase_seen += 1;
                    Phase::ALL[(one_phase_seen - 1) % 3]
                } else {
                    Phase::L1
                };
                let rotation = if one_phase || !self.rotate_phases {
                    PhaseRotation::default()
                } else {
                    three_phase_seen += 1;
                    PhaseRotation::starting_at(Phase::ALL[(three_phase_seen - 1) % 3])
                };
                let id = format!("{}{:0width$}", self.id_prefix, index + 1);
                let id_tag = if self.id_tags.is_empty() {
                    format!("TAG-{:0width$}", index + 1)
                } else {
                    self.id_tags[index % self.id_tags.len()].clone()
                };
                PlannedStation {
                    index,
                    id,
                    id_tag,
                    wiring: Wiring {
                        max_current: Amps(self.max_current_a),
                        phases: if one_phase { 1 } else { 3 },
                        phase,
                        rotation,
                        voltage_v: self.voltage_v,
                    },
                }
            })
            .collect()
    }
}

/// One station of the fleet.
#[derive(Clone, Debug, PartialEq)]
pub struct PlannedStation {
    pub index: usize,
    pub id: String,
    /// The badge its drivers present.
    pub id_tag: String,
    pub wiring: Wiring,
}

/// The `[[stations]]` tables of a controller configuration for `plan`, each in the zone
/// `zone_of` gives it: how the demo and the load bench make the controller agree with
/// the fleet.
pub fn stations_toml<'a>(
    plan: &'a [PlannedStation],
    zone_of: impl Fn(&'a PlannedStation) -> &'a str,
) -> String {
    let mut text = String::new();
    for p in plan {
        text.push_str(&format!(
            "[[stations]]\nid = {:?}\nzone = {:?}\nmax_current_a = {:.1}\nphases = {}\nphase = \"{}\"\n\n",
            p.id,
            zone_of(p),
            p.wiring.max_current.0,
            p.wiring.phases,
            p.wiring.phase,
        ));
        if !p.wiring.rotation.is_identity() {
            text.insert_str(
                text.len() - 1,
                &format!("phase_rotation = \"{}\"\n", p.wiring.rotation),
            );
        }
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_scenario_file_overrides_only_what_it_names() {
        let s: Scenario = toml::from_str(
            "stations = 40\nspeedup = 60.0\nphases = \"mixed\"\n[vehicles]\nmean_absence_minutes = 5.0\n",
        )
        .expect("valid scenario");
        assert_eq!(s.stations, 40);
        assert_eq!(s.phases, PhaseLayout::Mixed);
        assert_eq!(s.vehicles.mean_absence_minutes, 5.0);
        assert_eq!(s.vehicles.stay_hours, VehicleMix::default().stay_hours);
        assert_eq!(s.id_prefix, "SIM");
        assert!(s.validate().is_ok());
    }

    #[test]
    fn unknown_scenario_keys_are_refused() {
        assert!(toml::from_str::<Scenario>("statons = 4\n").is_err());
    }

    #[test]
    fn station_ids_are_numbered_from_one_and_padded() {
        let s = Scenario {
            stations: 12_000,
            ..Scenario::default()
        };
        let plan = s.plan();
        assert_eq!(plan[0].id, "SIM00001");
        assert_eq!(plan[11_999].id, "SIM12000");
        let small = Scenario::default().plan();
        assert_eq!(small[0].id, "SIM0001");
        assert_eq!(small[0].id_tag, "TAG-0001");
    }

    #[test]
    fn mixed_layout_spreads_one_phase_stations_over_the_phases() {
        let s = Scenario {
            stations: 12,
            phases: PhaseLayout::Mixed,
            ..Scenario::default()
        };
        let one_phase: Vec<Phase> = s
            .plan()
            .iter()
            .filter(|p| p.wiring.phases == 1)
            .map(|p| p.wiring.phase)
            .collect();
        assert_eq!(one_phase, [Phase::L1, Phase::L2, Phase::L3]);
    }

    #[test]
    fn the_stations_toml_is_a_valid_configuration_of_the_plan() {
        let s = Scenario {
            stations: 8,
            phases: PhaseLayout::Mixed,
            ..Scenario::default()
        };
        let plan = s.plan();
        let text = format!(
            "[[zones]]\nid = \"main\"\nlimit_a = 63.0\n\n{}",
            stations_toml(&plan, |_| "main")
        );
        let config = ampwarden_actors::config::Config::from_toml_str(&text).expect("valid");
        assert_eq!(config.stations.len(), 8);
        let one_phase = &config.stations[3];
        assert_eq!(one_phase.id.as_str(), "SIM0004");
        assert_eq!(one_phase.phases, ampwarden_actors::config::Phases::One);
        assert_eq!(one_phase.phase, Phase::L1);
    }

    #[test]
    fn nonsense_values_are_refused() {
        for s in [
            Scenario {
                stations: 0,
                ..Scenario::default()
            },
            Scenario {
                speedup: 0.0,
                ..Scenario::default()
            },
            Scenario {
                start_hour: Some(24.0),
                ..Scenario::default()
            },
        ] {
            assert!(s.validate().is_err(), "{s:?}");
        }
    }
}
