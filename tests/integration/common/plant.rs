//! A site as it really behaves, for the control tests: one 100 A zone with a `total`
//! meter served by the simulated fleet (the sum of what really flows), and stations that
//! report on their own clock with vehicles that follow a new limit after a delay.

use std::time::Duration;

use ampwarden::simulate::fleet::{Fleet, LimitTaken, SiteSample};
use ampwarden::simulate::scenario::{stations_toml, PhaseLayout, Scenario};
use ampwarden::simulate::site::{LoadStep, SiteProfile};
use ampwarden::simulate::vehicle::VehicleMix;
use ampwarden_actors::config::MeterProfile;
use ampwarden_actors::meter::profiles::RegisterMap;
use ampwarden_actors::meter::simulated::SimulatedMeter;

use super::TestApp;

pub const LIMIT_A: f64 = 100.0;
pub const MARGIN_A: f64 = 2.0;
/// What the vehicles may bring the busiest phase to.
pub const TARGET_A: f64 = LIMIT_A - MARGIN_A;
/// A vehicle plugged in before its station took the boot's 0 A default draws what the
/// station itself allows (nothing a central system can prevent): judged from here on.
pub const BOOTED_S: f64 = 5.0;

/// A site: one 100 A zone with a `total` meter served by the fleet, and its stations.
pub struct Plant {
    pub app: TestApp,
    pub fleet: Fleet,
}

/// `other_a` of building load on every phase, flat (no daily curve, no sun).
pub fn building(other_a: f64, steps: Vec<LoadStep>) -> SiteProfile {
    SiteProfile {
        building_base_a: other_a,
        building_peak_a: other_a,
        imbalance: 0.0,
        solar_peak_a: 0.0,
        steps,
        wander_a: 0.5,
    }
}

/// Vehicles that are there from the start and stay: `max_a` each, on 3 phases unless
/// `one_phase`, arriving at `soc`.
pub fn vehicles(max_a: f64, one_phase: bool, soc: f64) -> VehicleMix {
    VehicleMix {
        mean_absence_minutes: 0.001,
        stay_hours: (24.0, 24.0),
        battery_kwh: (60.0, 60.0),
        arrival_soc: (soc, soc),
        target_soc: (1.0, 1.0),
        three_phase_share: if one_phase { 0.0 } else { 1.0 },
        max_currents_a: vec![max_a],
        follow_delay_s: 2.0,
        nearly_full_share: 0.0,
    }
}

impl Plant {
    pub async fn start(scenario: Scenario, station_extra: &str) -> Plant {
        Plant::start_with(scenario, station_extra, "", "").await
    }

    /// As [`Plant::start`], with `control_extra` in its `[control]` table and `extra`
    /// added to the configuration (e.g. a `[bms]` table).
    pub async fn start_with(
        scenario: Scenario,
        station_extra: &str,
        control_extra: &str,
        extra: &str,
    ) -> Plant {
        let map = RegisterMap::builtin(MeterProfile::Iem3155).expect("built-in profile");
        let meter = SimulatedMeter::start("127.0.0.1:0".parse().expect("addr"), map)
            .await
            .expect("meter serves");
        let plan = scenario.plan();
        let mut stations = stations_toml(&plan, |_| "main");
        if !station_extra.is_empty() {
            stations = stations.replace(
                "phase = \"L1\"\n",
                &format!("phase = \"L1\"\n{station_extra}"),
            );
        }
        let body = format!(
            "[site]\nmode = \"dynamic\"\n[auth]\nmode = \"accept_all\"\n\
             [control]\nsafety_margin_a = {MARGIN_A:.1}\n{control_extra}\n\n\
             [[zones]]\nid = \"main\"\nlimit_a = {LIMIT_A:.1}\nstatic_ev_limit_a = 20.0\nmeter = \"grid\"\n\n\
             [[meters]]\nid = \"grid\"\nprotocol = \"modbus-tcp\"\naddress = \"{}\"\nunit_id = 1\n\
             profile = \"iem3155\"\npoll_ms = 1000\nmeasures = \"total\"\n\n{extra}\n\n{stations}",
            meter.local_addr()
        );
        let app = TestApp::start("", &body);
        let url = format!("ws://{}/ocpp", app.app().ocpp_addr);
        let fleet = Fleet::start(&url, scenario, Some(meter))
            .await
            .expect("fleet starts");
        Plant { app, fleet }
    }

    /// Lets the site run for `secs` seconds and returns what it saw.
    pub async fn run(&self, secs: u64) -> (Vec<SiteSample>, Vec<LimitTaken>) {
        tokio::time::sleep(Duration::from_secs(secs)).await;
        self.fleet.trace()
    }
}

pub fn scenario(stations: usize, every_s: u32, site: SiteProfile, mix: VehicleMix) -> Scenario {
    Scenario {
        stations,
        phases: PhaseLayout::Three,
        max_current_a: 32.0,
        site_limit_a: LIMIT_A,
        start_hour: Some(12.0),
        summary_every_s: 0,
        meter_values_every_s: every_s,
        honour_sample_interval: false,
        site,
        vehicles: mix,
        ..Scenario::default()
    }
}

pub fn busiest(s: &SiteSample) -> f64 {
    s.meter.0.iter().map(|a| a.0).fold(0.0, f64::max)
}

pub fn window(trace: &[SiteSample], from_s: f64, to_s: f64) -> Vec<&SiteSample> {
    trace
        .iter()
        .filter(|s| (from_s..to_s).contains(&s.at.as_secs_f64()))
        .collect()
}
