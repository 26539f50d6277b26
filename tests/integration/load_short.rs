//! The load test's short form, for CI: 200 simulated stations boot and charge vehicles
//! against an in-process controller until each has completed about one transaction.
//! Invariants only, never speed: every station boots, no CALLERROR, every transaction
//! the fleet saw is in the store with the same meter readings, and no vehicle draws
//! above its limit in force.

use crate::common;

use std::time::Duration;

use ampwarden::simulate::fleet::Fleet;
use ampwarden::simulate::scenario::{stations_toml, PhaseLayout, Scenario};
use ampwarden::simulate::vehicle::VehicleMix;
use common::TestApp;

const STATIONS: usize = 200;
/// A hang guard, not a speed requirement: the run ends as soon as its goal is met.
const GIVE_UP_AFTER: Duration = Duration::from_secs(300);

fn scenario() -> Scenario {
    Scenario {
        stations: STATIONS,
        seed: 7,
        // One simulated hour per second: visits of half an hour to an hour.
        speedup: 3600.0,
        phases: PhaseLayout::Mixed,
        summary_every_s: 0,
        vehicles: VehicleMix {
            mean_absence_minutes: 20.0,
            stay_hours: (0.5, 1.0),
            ..VehicleMix::default()
        },
        ..Scenario::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_hundred_stations_boot_charge_and_lose_no_transaction() {
    let scenario = scenario();
    let body = format!(
        "[control]\nmeter_values_interval_s = 1\n\n[auth]\nmode = \"accept_all\"\n\n\
         [[zones]]\nid = \"main\"\nlimit_a = 2000.0\n\n{}",
        stations_toml(&scenario.plan(), |_| "main")
    );
    let app = TestApp::start("", &body);
    let url = format!("ws://{}/ocpp", app.app().ocpp_addr);
    let fleet = Fleet::start(&url, scenario, None)
        .await
        .expect("fleet starts");

    let deadline = tokio::time::Instant::now() + GIVE_UP_AFTER;
    while !(fleet.all_booted_once() && fleet.completed_transactions() >= STATIONS) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "not done after {GIVE_UP_AFTER:?}: {}",
            fleet.summary()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let report = fleet.stop().await;

    assert_eq!(report.ever_booted, STATIONS, "{report}");
    assert_eq!(report.call_errors, 0, "{report}");
    assert_eq!(report.over_limit, 0, "{report}");
    assert!(report.completed() >= STATIONS, "{report}");
    let audit = report.audit(app.app().controller().store());
    assert!(audit.lost.is_empty(), "lost: {:?}", audit.lost);
    assert!(
        audit.mismatched.is_empty(),
        "mismatched: {:?}",
        audit.mismatched
    );
    assert!(audit.unknown.is_empty(), "unknown: {:?}", audit.unknown);
    // The fleet ended its sessions before leaving: all are closed in the store.
    assert_eq!(audit.closed, report.transactions.len(), "{audit:?}");
}
