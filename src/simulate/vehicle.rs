//! A simulated electric vehicle: battery, state of charge, on-board charger limits and the
//! taper near full, and the seeded mix of vehicles that arrive at a site. Pure: the station
//! simulation asks it what it would draw and tells it what it got.

use ampwarden_actors::units::Amps;
use serde::{Deserialize, Serialize};

use super::random::SimRng;

/// IEC 61851-1: below 6 A the control pilot cannot offer a current; the vehicle pauses.
pub const MIN_EV_CURRENT: Amps = Amps(6.0);
/// State of charge above which the battery accepts less and less.
const TAPER_FROM_SOC: f64 = 0.8;
/// What the vehicle still takes at 100 %, as a share of its maximum.
const TAPER_FLOOR: f64 = 0.1;
/// Share of the grid energy that ends up in the battery.
const CHARGE_EFFICIENCY: f64 = 0.9;

/// One vehicle plugged in at a station.
#[derive(Clone, Debug, PartialEq)]
pub struct Vehicle {
    pub battery_kwh: f64,
    /// State of charge, 0 to 1.
    pub soc: f64,
    /// The driver's charge limit; the vehicle stops drawing there.
    pub target_soc: f64,
    /// 1 or 3: what its on-board charger uses.
    pub phases: u8,
    /// Its on-board charger's maximum, per phase.
    pub max_current: Amps,
    /// Simulated seconds it stays plugged in before the driver takes it away.
    pub stays_s: f64,
}

impl Vehicle {
    pub fn is_full(&self) -> bool {
        self.soc >= self.target_soc - 1e-9
    }

    /// What the vehicle takes when nothing limits it: its maximum, tapering linearly above
    /// 80 % to a tenth of it at 100 %; nothing once at its target.
    pub fn acceptance(&self) -> Amps {
        if self.is_full() {
            return Amps::ZERO;
        }
        let over = ((self.soc - TAPER_FROM_SOC) / (1.0 - TAPER_FROM_SOC)).clamp(0.0, 1.0);
        self.max_current * (1.0 - over * (1.0 - TAPER_FLOOR))
    }

    /// The current it draws per phase when `offered` is the most it may take: nothing
    /// below [`MIN_EV_CURRENT`], else the lesser of the offer and its acceptance.
    pub fn draw(&self, offered: Amps) -> Amps {
        if offered.0 < MIN_EV_CURRENT.0 {
            return Amps::ZERO;
        }
        offered.min(self.acceptance())
    }

    /// Charges at `current` per phase on `phases_used` phases for `dt_s` simulated seconds;
    /// returns the energy taken from the grid, Wh. Stops at the target state of charge.
    pub fn charge(&mut self, current: Amps, phases_used: u8, voltage_v: f64, dt_s: f64) -> f64 {
        if current.0 <= 0.0 || dt_s <= 0.0 || self.is_full() {
            return 0.0;
        }
        let offered_wh = current.0 * voltage_v * f64::from(phases_used) * dt_s / 3600.0;
        let room_wh = (self.target_soc - self.soc) * self.battery_kwh * 1000.0 / CHARGE_EFFICIENCY;
        let grid_wh = offered_wh.min(room_wh.max(0.0));
        self.soc += grid_wh * CHARGE_EFFICIENCY / (self.battery_kwh * 1000.0);
        if room_wh <= offered_wh {
            self.soc = self.target_soc;
        }
        grid_wh
    }
}

/// The vehicles that come to a site, as ranges drawn from uniformly (seeded).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct VehicleMix {
    /// Mean time a free station waits for its next vehicle, simulated minutes.
    pub mean_absence_minutes: f64,
    /// How long a vehicle stays plugged in, simulated hours (low, high).
    pub stay_hours: (f64, f64),
    pub battery_kwh: (f64, f64),
    pub arrival_soc: (f64, f64),
    pub target_soc: (f64, f64),
    /// Share of vehicles with a 3-phase on-board charger.
    pub three_phase_share: f64,
    /// On-board charger maxima per phase, one picked per vehicle.
    pub max_currents_a: Vec<f64>,
    /// Real seconds a vehicle takes to follow a new limit (IEC 61851 allows up to 5).
    pub follow_delay_s: f64,
    /// Share of vehicles that arrive nearly full (97 %): they take a tenth or so of
    /// what they are offered, tapering.
    pub nearly_full_share: f64,
}

impl Default for VehicleMix {
    fn default() -> Self {
        VehicleMix {
            mean_absence_minutes: 60.0,
            stay_hours: (1.0, 8.0),
            battery_kwh: (40.0, 100.0),
            arrival_soc: (0.1, 0.6),
            target_soc: (0.8, 1.0),
            three_phase_share: 0.7,
            max_currents_a: vec![16.0, 32.0],
            follow_delay_s: 2.0,
            nearly_full_share: 0.0,
        }
    }
}

impl VehicleMix {
    /// A new vehicle.
    pub fn arrive(&self, rng: &mut SimRng) -> Vehicle {
        let phases = if rng.chance(self.three_phase_share) {
            3
        } else {
            1
        };
        let max_current = rng.pick(&self.max_currents_a).copied().unwrap_or(16.0);
        let target_soc = rng.uniform(self.target_soc.0, self.target_soc.1).min(1.0);
        let nearly_full = self.nearly_full_share > 0.0 && rng.chance(self.nearly_full_share);
        let arrival = if nearly_full {
            0.97
        } else {
            rng.uniform(self.arrival_soc.0, self.arrival_soc.1)
        };
        Vehicle {
            battery_kwh: rng.uniform(self.battery_kwh.0, self.battery_kwh.1).max(1.0),
            soc: arrival.clamp(0.0, target_soc),
            target_soc,
            phases,
            max_current: Amps(max_current),
            stays_s: rng.uniform(self.stay_hours.0, self.stay_hours.1) * 3600.0,
        }
    }

    /// Simulated seconds until the next vehicle comes to a free station.
    pub fn absence_s(&self, rng: &mut SimRng) -> f64 {
        rng.exponential(self.mean_absence_minutes * 60.0)
    }

    /// The share of time a station is occupied in the long run: a fleet started with this
    /// share of vehicles already plugged in looks like a site in its steady state at once.
    pub fn occupied_share(&self) -> f64 {
        let stay_s = (self.stay_hours.0 + self.stay_hours.1) / 2.0 * 3600.0;
        let absence_s = self.mean_absence_minutes * 60.0;
        if stay_s + absence_s <= 0.0 {
            return 0.0;
        }
        stay_s / (stay_s + absence_s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn car(soc: f64) -> Vehicle {
        Vehicle {
            battery_kwh: 50.0,
            soc,
            target_soc: 1.0,
            phases: 3,
            max_current: Amps(32.0),
            stays_s: 3600.0,
        }
    }

    #[test]
    fn draw_never_exceeds_the_offer_or_the_vehicle_maximum() {
        for offered in [0.0, 5.9, 6.0, 10.0, 31.9, 32.0, 63.0] {
            for soc in [0.1, 0.5, 0.85, 0.99] {
                let v = car(soc);
                let d = v.draw(Amps(offered));
                assert!(d.0 <= offered + 1e-9, "{d} > offer {offered}");
                assert!(d.0 <= v.max_current.0 + 1e-9);
            }
        }
    }

    #[test]
    fn an_offer_below_six_amps_suspends_charging() {
        assert_eq!(car(0.5).draw(Amps(5.9)), Amps::ZERO);
        assert_eq!(car(0.5).draw(Amps::ZERO), Amps::ZERO);
        assert_eq!(car(0.5).draw(Amps(6.0)), Amps(6.0));
    }

    #[test]
    fn acceptance_tapers_above_eighty_percent_and_ends_at_the_target() {
        assert_eq!(car(0.5).acceptance(), Amps(32.0));
        assert_eq!(car(0.8).acceptance(), Amps(32.0));
        let near_full = car(0.95).acceptance();
        assert!(near_full.0 < 32.0 && near_full.0 > 3.2, "{near_full}");
        let mut full = car(0.9);
        full.target_soc = 0.9;
        assert_eq!(full.acceptance(), Amps::ZERO);
        assert!(full.is_full());
    }

    #[test]
    fn charging_adds_the_energy_drawn_to_the_battery() {
        let mut v = car(0.5);
        // 16 A on 3 phases at 230 V for one hour: 11.04 kWh from the grid.
        let wh = v.charge(Amps(16.0), 3, 230.0, 3600.0);
        assert!((wh - 11_040.0).abs() < 1e-6, "{wh}");
        let expected_soc = 0.5 + 11.04 * CHARGE_EFFICIENCY / 50.0;
        assert!((v.soc - expected_soc).abs() < 1e-9);
    }

    #[test]
    fn charging_stops_exactly_at_the_target() {
        let mut v = car(0.79);
        v.target_soc = 0.8;
        let wh = v.charge(Amps(32.0), 3, 230.0, 3600.0);
        assert!(
            (wh - 0.01 * 50_000.0 / CHARGE_EFFICIENCY).abs() < 1e-6,
            "{wh}"
        );
        assert!(v.is_full());
        assert_eq!(v.charge(Amps(32.0), 3, 230.0, 3600.0), 0.0);
    }

    #[test]
    fn arriving_vehicles_respect_the_mix() {
        let mix = VehicleMix::default();
        let mut rng = SimRng::new(9);
        for _ in 0..1000 {
            let v = mix.arrive(&mut rng);
            assert!(v.phases == 1 || v.phases == 3);
            assert!(mix.max_currents_a.contains(&v.max_current.0));
            assert!(v.soc <= v.target_soc && v.target_soc <= 1.0);
            assert!((3600.0..=8.0 * 3600.0).contains(&v.stays_s));
        }
    }

    #[test]
    fn occupied_share_follows_stay_and_absence() {
        let mix = VehicleMix {
            mean_absence_minutes: 60.0,
            stay_hours: (1.0, 1.0),
            ..VehicleMix::default()
        };
        assert!((mix.occupied_share() - 0.5).abs() < 1e-9);
    }
}
