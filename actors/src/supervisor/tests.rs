//! The supervisor as an actor: its inputs, its rounds and what it publishes.

use chrono::Utc;

use super::*;
use crate::allocation::{ConsumptionKind, MeterReading as BudgetReading};

/// A dynamic site: one 100 A zone with a `total` meter nobody serves (its actor only
/// fails to connect), so the zone's own actor reports no reading.
const METERED: &str = r#"
[site]
mode = "dynamic"
[control]
safety_margin_a = 0.0
[[zones]]
id = "main"
limit_a = 100.0
static_ev_limit_a = 20.0
meter = "incomer"
[[meters]]
id = "incomer"
protocol = "modbus-tcp"
address = "127.0.0.1:9"
unit_id = 1
profile = "iem3155"
measures = "total"
"#;

struct Running {
    supervisor: Addr<ZoneSupervisor>,
    _dir: tempfile::TempDir,
}

fn start(toml: &str) -> Running {
    let dir = tempfile::tempdir().expect("temp dir");
    let config = Config::from_toml_str(toml).expect("test config is valid");
    let store = Store::open(&dir.path().join("data")).expect("store opens");
    let supervisor = ZoneSupervisor::new(LiveConfig::new(config), store, LivePrice::new())
        .expect("tree is valid")
        .start();
    Running {
        supervisor,
        _dir: dir,
    }
}

fn reading(amps: f64) -> ZoneReading {
    ZoneReading {
        consumption: Some((
            ConsumptionKind::Total,
            Some(BudgetReading {
                currents: PerPhase::splat(Amps(amps)),
                read_at: Utc::now(),
            }),
        )),
        production: None,
        imposed: None,
        bms_cap: None,
    }
}

/// The status after the rounds that the messages sent so far cause.
async fn status_after_a_round(s: &Addr<ZoneSupervisor>) -> Arc<SiteStatus> {
    tokio::time::sleep(DEBOUNCE * 4).await;
    s.send(GetSiteStatus).await.expect("supervisor runs")
}

#[actix::test]
async fn a_zone_update_of_a_replaced_zone_tree_is_dropped() {
    let site = start(METERED);
    // The first tree started is generation 1: an update naming generation 0 comes from
    // a zone actor of an earlier configuration, whose index 0 may be another zone.
    site.supervisor.do_send(ZoneUpdate {
        zone: ZoneIdx(0),
        generation: 0,
        reading: reading(30.0),
        stale: false,
    });
    let status = status_after_a_round(&site.supervisor).await;
    assert_eq!(status.zones[0].source, "stale_fallback");
    assert_eq!(status.zones[0].budget, PerPhase::splat(Amps(20.0)));

    site.supervisor.do_send(ZoneUpdate {
        zone: ZoneIdx(0),
        generation: 1,
        reading: reading(30.0),
        stale: false,
    });
    let status = status_after_a_round(&site.supervisor).await;
    assert_eq!(status.zones[0].source, "dynamic");
    assert_eq!(status.zones[0].budget, PerPhase::splat(Amps(70.0)));
}

#[actix::test]
async fn a_dynamic_zone_whose_meter_never_read_runs_on_its_stale_fallback() {
    let site = start(&METERED.replace("static_ev_limit_a = 20.0\n", ""));
    let status = status_after_a_round(&site.supervisor).await;
    assert_eq!(status.zones[0].source, "stale_fallback");
    assert_eq!(
        status.zones[0].budget,
        PerPhase::splat(Amps::ZERO),
        "no fallback set: nothing, not the 100 A breaker"
    );
}
