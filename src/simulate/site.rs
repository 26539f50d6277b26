//! The simulated site around the chargers: a building whose load follows the day, solar
//! panels, and what a meter on the supply sees of them plus the vehicles. Pure.

use ampwarden_actors::units::{Amps, PerPhase};
use serde::{Deserialize, Serialize};

/// The daily load and production of the site, per phase.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SiteProfile {
    /// Building load at night, A per phase.
    pub building_base_a: f64,
    /// Building load at its early-afternoon peak, A per phase.
    pub building_peak_a: f64,
    /// Building loads are never balanced: L1 carries this share more, L3 this share less.
    pub imbalance: f64,
    /// Solar production at solar noon, A per phase; 0 for none.
    pub solar_peak_a: f64,
    /// Loads that switch on (or off, negative) at a moment of the run: a heat pump, a
    /// kitchen, a lift. Each adds to the building's load from its time on.
    pub steps: Vec<LoadStep>,
    /// Each phase's load also wanders (a bounded random walk) by up to this many amperes
    /// either way, as a real building's does from second to second.
    pub wander_a: f64,
}

/// A load that switches at `at_s` real seconds after the start.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadStep {
    pub at_s: f64,
    /// Amperes added (negative: removed) on each phase, L1 to L3.
    pub amps: [f64; 3],
}

impl Default for SiteProfile {
    fn default() -> Self {
        SiteProfile {
            building_base_a: 8.0,
            building_peak_a: 25.0,
            imbalance: 0.15,
            solar_peak_a: 12.0,
            steps: Vec::new(),
            wander_a: 0.0,
        }
    }
}

fn plus(a: PerPhase<Amps>, b: PerPhase<Amps>) -> PerPhase<Amps> {
    PerPhase(std::array::from_fn(|i| a.0[i] + b.0[i]))
}

/// 0 outside `[from, to)` hours, a sine arch peaking halfway inside.
fn arch(hour: f64, from: f64, to: f64) -> f64 {
    if hour <= from || hour >= to {
        return 0.0;
    }
    (std::f64::consts::PI * (hour - from) / (to - from)).sin()
}

impl SiteProfile {
    /// The building's own load at `hour` (0–24, local): base at night, rising from 06:00,
    /// peaking at 13:00, back to base at 20:00.
    pub fn building_load(&self, hour: f64) -> PerPhase<Amps> {
        let shape = arch(hour.rem_euclid(24.0), 6.0, 20.0);
        let a = self.building_base_a + (self.building_peak_a - self.building_base_a) * shape;
        PerPhase([
            Amps(a * (1.0 + self.imbalance)),
            Amps(a),
            Amps(a * (1.0 - self.imbalance)),
        ])
    }

    /// Solar production at `hour`, per phase (a 3-phase inverter): 07:00 to 19:00.
    pub fn solar(&self, hour: f64) -> Amps {
        Amps(self.solar_peak_a * arch(hour.rem_euclid(24.0), 7.0, 19.0))
    }

    /// The loads switched by [`LoadStep`]s `elapsed_s` real seconds after the start.
    pub fn steps_at(&self, elapsed_s: f64) -> PerPhase<Amps> {
        let mut sum = [0.0; 3];
        for step in self.steps.iter().filter(|s| s.at_s <= elapsed_s) {
            for (a, d) in sum.iter_mut().zip(step.amps) {
                *a += d;
            }
        }
        PerPhase(sum.map(Amps))
    }

    /// What a meter on the supply reads per phase with `ev` drawn by the vehicles and
    /// `extra` on top of the building's daily load (steps, wander): the magnitude of
    /// the net current (a meter shows export as current too).
    pub fn meter_currents(
        &self,
        hour: f64,
        ev: PerPhase<Amps>,
        extra: PerPhase<Amps>,
    ) -> PerPhase<Amps> {
        let building = plus(self.building_load(hour), extra);
        let solar = self.solar(hour);
        PerPhase(std::array::from_fn(|i| {
            Amps((building.0[i].0 + ev.0[i].0 - solar.0).abs())
        }))
    }

    /// The meter's total active power, kW: negative when the site exports.
    pub fn meter_power_kw(
        &self,
        hour: f64,
        ev: PerPhase<Amps>,
        extra: PerPhase<Amps>,
        voltage_v: f64,
    ) -> f64 {
        let building = plus(self.building_load(hour), extra);
        let solar = self.solar(hour);
        (0..3)
            .map(|i| (building.0[i].0 + ev.0[i].0 - solar.0) * voltage_v / 1000.0)
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_building_is_at_its_base_at_night_and_its_peak_early_afternoon() {
        let site = SiteProfile {
            imbalance: 0.0,
            ..SiteProfile::default()
        };
        assert_eq!(site.building_load(3.0), PerPhase::splat(Amps(8.0)));
        assert!((site.building_load(13.0).0[0].0 - 25.0).abs() < 1e-9);
        assert!(site.building_load(9.0).0[0].0 > 8.0);
    }

    #[test]
    fn imbalance_loads_l1_most_and_l3_least() {
        let load = SiteProfile::default().building_load(12.0);
        assert!(load.0[0].0 > load.0[1].0 && load.0[1].0 > load.0[2].0);
    }

    #[test]
    fn there_is_no_sun_at_night() {
        let site = SiteProfile::default();
        assert_eq!(site.solar(2.0), Amps::ZERO);
        assert_eq!(site.solar(22.0), Amps::ZERO);
        assert!((site.solar(13.0).0 - 12.0).abs() < 1e-9);
    }

    #[test]
    fn the_meter_adds_vehicles_and_subtracts_the_sun() {
        let site = SiteProfile {
            imbalance: 0.0,
            ..SiteProfile::default()
        };
        let ev = PerPhase([Amps(32.0), Amps(0.0), Amps(0.0)]);
        let at_noon = site.meter_currents(13.0, ev, PerPhase::splat(Amps::ZERO));
        assert!((at_noon.0[0].0 - (25.0 + 32.0 - 12.0)).abs() < 1e-9);
        // L2: 25 A of building, 12 A of sun.
        assert!((at_noon.0[1].0 - 13.0).abs() < 1e-9);
    }

    #[test]
    fn export_reads_as_a_positive_current_and_a_negative_power() {
        let site = SiteProfile {
            building_base_a: 1.0,
            building_peak_a: 1.0,
            imbalance: 0.0,
            solar_peak_a: 20.0,
            ..SiteProfile::default()
        };
        let none = PerPhase::splat(Amps::ZERO);
        assert!((site.meter_currents(13.0, none, none).0[0].0 - 19.0).abs() < 1e-9);
        assert!(site.meter_power_kw(13.0, none, none, 230.0) < 0.0);
    }

    #[test]
    fn load_steps_add_from_their_moment_on() {
        let site = SiteProfile {
            steps: vec![
                LoadStep {
                    at_s: 10.0,
                    amps: [20.0, 0.0, 0.0],
                },
                LoadStep {
                    at_s: 30.0,
                    amps: [-20.0, 5.0, 0.0],
                },
            ],
            ..SiteProfile::default()
        };
        assert_eq!(site.steps_at(5.0), PerPhase::splat(Amps::ZERO));
        assert_eq!(site.steps_at(10.0).0[0], Amps(20.0));
        assert_eq!(
            site.steps_at(40.0),
            PerPhase([Amps(0.0), Amps(5.0), Amps(0.0)])
        );
    }
}
