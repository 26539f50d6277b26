//! Nothing is lost across a restart: a transaction opened before it is still open after
//! it and can be closed; transaction ids never repeat.

use crate::common;

use ampwarden_actors::station::GetSnapshot;
use ampwarden_actors::units::ChargePointId;
use common::*;
use serde_json::json;

/// The station actor's view of a station.
async fn snapshot(app: &TestApp, id: &str) -> ampwarden_actors::station::StationSnapshot {
    app.app()
        .controller()
        .station(&ChargePointId::from(id))
        .expect("station actor")
        .send(GetSnapshot)
        .await
        .expect("snapshot")
}

#[tokio::test]
async fn a_transaction_survives_a_restart_and_closes_after_it() {
    let mut app = TestApp::start("", SMALL_SITE);
    let station = app.booted("CP001").await;
    let start =
        json!({ "connectorId": 1, "idTag": "GOODTAG", "meterStart": 500, "timestamp": now_text() });
    let first_id = ok(station
        .call("StartTransaction", start.clone())
        .await
        .expect("answered"))["transactionId"]
        .as_i64()
        .expect("id");
    drop(station);

    app.restart();

    let station = app.booted("CP001").await;
    let open = snapshot(&app, "CP001").await;
    let open = open
        .connectors
        .iter()
        .find_map(|c| c.transaction.as_ref())
        .expect("restored transaction");
    assert_eq!(i64::from(open.id), first_id);

    // A new transaction elsewhere gets a fresh id.
    let other = app.booted("CP002").await;
    let second_id = ok(other
        .call("StartTransaction", start)
        .await
        .expect("answered"))["transactionId"]
        .as_i64()
        .expect("id");
    assert!(second_id > first_id, "{second_id} after {first_id}");

    let stop = json!({ "transactionId": first_id, "idTag": "GOODTAG", "meterStop": 2500, "timestamp": now_text() });
    let stopped = ok(station
        .call("StopTransaction", stop)
        .await
        .expect("answered"));
    assert_eq!(stopped["idTagInfo"]["status"], "Accepted");
    let record = app
        .app()
        .controller()
        .store()
        .transaction(first_id as i32)
        .expect("store")
        .expect("kept");
    assert_eq!(record.energy_wh(), 2000.0);
    assert!(snapshot(&app, "CP001")
        .await
        .connectors
        .iter()
        .all(|c| c.transaction.is_none()));
}

#[tokio::test]
async fn stopping_closes_station_sockets() {
    let mut app = TestApp::start("", SMALL_SITE);
    let mut station = app.booted("CP001").await;
    app.stop();
    let code = station
        .closed(WAIT)
        .await
        .expect("closed by the controller");
    assert_eq!(code, 1000);
}

/// After a restart, a station with an open transaction that has not reconnected yet
/// keeps its load reserved (its maximum: its limit is unknown).
#[tokio::test]
async fn an_open_transaction_of_an_absent_station_is_reserved_after_a_restart() {
    let mut app = TestApp::start("", SMALL_SITE);
    let station = app.booted("CP001").await;
    start_transaction(&station, 1, "GOODTAG", 0).await;
    drop(station);
    app.restart();

    let mut other = app.booted("CP002").await;
    let tx = start_transaction(&other, 1, "GOODTAG", 0).await;
    loop {
        let call = other
            .next_call_of("SetChargingProfile", WAIT)
            .await
            .expect("a TxProfile");
        let profile = &call.payload["csChargingProfiles"];
        if profile["transactionId"] == tx {
            let limit = profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
                .as_f64()
                .expect("limit");
            assert_eq!(limit, 31.0, "63 A minus the 32 A reserved for CP001");
            break;
        }
    }
}

/// Energy metered during a transaction is written when the station goes away and when
/// the controller stops, not only every minute: neither loses it.
#[tokio::test]
async fn metered_energy_survives_a_vanished_station_and_a_restart() {
    let mut app = TestApp::start("", SMALL_SITE);
    let station = app.booted("CP001").await;
    let id = start_transaction(&station, 1, "GOODTAG", 500).await as i32;
    let meter = |wh: u32| {
        json!({ "connectorId": 1, "transactionId": id, "meterValue": [{ "timestamp": now_text(),
            "sampledValue": [{ "value": wh.to_string(), "measurand": "Energy.Active.Import.Register", "unit": "Wh" }] }] })
    };
    ok(station
        .call("MeterValues", meter(1700))
        .await
        .expect("answered"));
    let stored_energy = |app: &TestApp| {
        app.app()
            .controller()
            .store()
            .transaction(id)
            .expect("store")
            .expect("kept")
            .energy_wh()
    };
    station.close();
    drop(station);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while stored_energy(&app) != 1200.0 {
        assert!(
            std::time::Instant::now() < deadline,
            "energy not written when the station left: {}",
            stored_energy(&app)
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }

    // Back again, more energy, then a controller restart while the transaction runs.
    let station = app.booted("CP001").await;
    ok(station
        .call("MeterValues", meter(2600))
        .await
        .expect("answered"));
    app.restart(); // with the station still connected
    drop(station);
    assert_eq!(stored_energy(&app), 2100.0);
    let open = snapshot(&app, "CP001")
        .await
        .connectors
        .iter()
        .find_map(|c| c.transaction.clone())
        .expect("restored transaction");
    assert_eq!(open.energy_wh, 2100.0, "the dashboard's energy so far");
}

/// A controller starting on a store with old history prunes it: the meter samples of a
/// transaction that ended past the retention go, its record (energy, cost) stays, and a
/// recent transaction keeps its samples. The stations are served meanwhile.
#[tokio::test]
async fn samples_past_the_retention_are_pruned_when_the_controller_starts() {
    // The default retention, 30 days; records are kept for good.
    let (app, old, _) = prunes_samples_older_than_the_retention(SMALL_SITE, 45, 2).await;
    let kept = record(&app, old).expect("the record stays");
    assert_eq!(kept.energy_wh(), 700.0);
}

#[tokio::test]
async fn the_sample_retention_is_configurable() {
    // Bare keys before the first table of the body belong to the `[storage]` table the
    // test configuration ends with.
    let body = format!("sample_retention_days = 3\n{SMALL_SITE}");
    let (app, old, _) = prunes_samples_older_than_the_retention(&body, 5, 1).await;
    assert!(record(&app, old).is_some(), "the record stays");
}

#[tokio::test]
async fn transactions_past_their_retention_go_when_it_is_set() {
    let body = format!("transaction_retention_days = 40\n{SMALL_SITE}");
    let (app, old, recent) = prunes_samples_older_than_the_retention(&body, 45, 2).await;
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while record(&app, old).is_some() {
        assert!(
            std::time::Instant::now() < deadline,
            "old transaction not deleted"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(record(&app, recent).is_some(), "recent transactions stay");
}

fn record(app: &TestApp, id: i32) -> Option<ampwarden_actors::store::TransactionRecord> {
    app.app()
        .controller()
        .store()
        .transaction(id)
        .expect("read")
}

/// Stores a transaction that ended `old_days` ago and one `recent_days` ago, restarts the
/// controller configured with `body`, and checks that only the old one lost its samples.
/// Returns the controller and the two transactions' ids.
async fn prunes_samples_older_than_the_retention(
    body: &str,
    old_days: i64,
    recent_days: i64,
) -> (TestApp, i32, i32) {
    use ampwarden_actors::store::{NewTransaction, Sample, TransactionStop};

    let mut app = TestApp::start("", body);
    let record = |days_ago: i64| {
        let at = chrono::Utc::now() - chrono::TimeDelta::days(days_ago);
        let store = app.app().controller().store();
        let t = store
            .begin_transaction(NewTransaction {
                station: ChargePointId::from("CP003"),
                connector: 1,
                id_tag: "GOODTAG".into(),
                meter_start_wh: 0,
                started_at: at,
                reservation_id: None,
                vip: false,
            })
            .expect("begin");
        let sample = Sample {
            at,
            measurand: "Energy.Active.Import.Register".into(),
            phase: None,
            value: 700.0,
            unit: Some("Wh".into()),
        };
        store.add_samples(t.id, &[sample]).expect("samples");
        let stop = TransactionStop {
            at,
            meter_stop_wh: 700,
            reason: None,
            id_tag: None,
        };
        store.stop_transaction(t.id, stop, None).expect("stop");
        t.id
    };
    let (old, recent) = (record(old_days), record(recent_days));

    app.restart();
    let samples = |app: &TestApp, id: i32| {
        app.app()
            .controller()
            .store()
            .samples(id)
            .expect("read")
            .len()
    };
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while samples(&app, old) > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "old samples not pruned"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    app.booted("CP001").await; // served while (or after) the store is pruned
    assert_eq!(samples(&app, recent), 1, "recent samples are kept");
    (app, old, recent)
}
