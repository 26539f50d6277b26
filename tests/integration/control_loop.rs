//! The live control loop through real sockets: stations that obey their limits, a real
//! Modbus TCP meter, and the supervisor's setpoints on the wire.

use crate::common;

use std::time::Duration;

use ampwarden_actors::config::{Config, MeterProfile, TariffConfig};
use ampwarden_actors::meter::profiles::RegisterMap;
use ampwarden_actors::meter::simulated::{Mode, SimulatedMeter};
use ampwarden_actors::units::{Amps, PerPhase};
use common::fleet::{
    boot_fleet as fleet, start_transaction, stop_transaction, Behaviour, Timeline,
};
use common::*;

fn site(stations: usize, control: &str, zone_extra: &str, tail: &str) -> String {
    let mut body = format!(
        "[auth]\nmode = \"accept_all\"\n[control]\ninterval_s = 1\n{control}\n\n\
         [[zones]]\nid = \"main\"\nlimit_a = 63.0\n{zone_extra}\n"
    );
    for i in 1..=stations {
        body.push_str(&format!(
            "[[stations]]\nid = \"EV{i:02}\"\nzone = \"main\"\nmax_current_a = 32.0\n"
        ));
    }
    body.push_str(tail);
    body
}

fn approx(a: f64, b: f64) -> bool {
    (a - b).abs() < 0.051
}

#[tokio::test]
async fn three_vehicles_share_63_a_at_21_a_each() {
    let app = TestApp::start("", &site(3, "", "", ""));
    let timeline = Timeline::default();
    let evs = fleet(&app, &timeline, 3, |_| Behaviour::default()).await;
    for (i, ev) in evs.iter().enumerate() {
        start_transaction(&timeline, ev, &format!("EV{:02}", i + 1), "ANY").await;
    }
    let limits = timeline
        .wait_for("21 A each", LONG, |l| {
            l.len() == 3 && l.values().all(|&a| approx(a, 21.0))
        })
        .await;
    assert_eq!(limits.len(), 3);
    assert!(
        timeline.worst_sum(32.0) <= 63.0 + 1e-9,
        "worst sum {}",
        timeline.worst_sum(32.0)
    );
}

#[tokio::test]
async fn twelve_vehicles_on_63_a_keep_ten_at_the_minimum_and_suspend_two() {
    let app = TestApp::start("", &site(12, "", "", ""));
    let timeline = Timeline::default();
    let evs = fleet(&app, &timeline, 12, |_| Behaviour::default()).await;
    for (i, ev) in evs.iter().enumerate() {
        start_transaction(&timeline, ev, &format!("EV{:02}", i + 1), "ANY").await;
    }
    let limits = timeline
        .wait_for("10 active, 2 suspended", LONG, |l| {
            l.len() == 12
                && l.values().filter(|&&a| a > 0.0).count() == 10
                && l.values().all(|a| !a.is_nan())
        })
        .await;
    for a in limits.values() {
        assert!(*a == 0.0 || *a >= 6.0, "limit {a}");
    }
    assert!(limits.values().sum::<f64>() <= 63.0 + 1e-9);
    assert!(
        timeline.tx_limits().iter().all(|&a| a == 0.0 || a >= 6.0),
        "{:?}",
        timeline.tx_limits()
    );
    assert!(
        timeline.worst_sum(32.0) <= 63.0 + 1e-9,
        "worst sum {}",
        timeline.worst_sum(32.0)
    );
}

/// With one station slow to answer, nobody's limit rises before its decrease is in force.
#[tokio::test]
async fn decreases_are_in_force_before_any_increase_even_with_a_slow_station() {
    let app = TestApp::start("", &site(3, "increase_hold_s = 0", "", ""));
    let timeline = Timeline::default();
    let slow = Behaviour {
        answer_delay: Some(Duration::from_millis(1500)),
        ..Behaviour::default()
    };
    let evs = fleet(&app, &timeline, 3, |i| {
        if i == 1 {
            slow
        } else {
            Behaviour::default()
        }
    })
    .await;
    start_transaction(&timeline, &evs[0], "EV01", "ANY").await;
    timeline
        .wait_for("EV01 at 32 A", LONG, |l| {
            l.get("EV01").is_some_and(|&a| approx(a, 32.0))
        })
        .await;
    start_transaction(&timeline, &evs[1], "EV02", "ANY").await;
    timeline
        .wait_for("31.5 A each", LONG, |l| {
            l.len() == 2 && l.values().all(|&a| approx(a, 31.5))
        })
        .await;
    let third = start_transaction(&timeline, &evs[2], "EV03", "ANY").await;
    timeline
        .wait_for("21 A each", LONG, |l| {
            l.len() == 3 && l.values().all(|&a| approx(a, 21.0))
        })
        .await;
    stop_transaction(&timeline, &evs[2], "EV03", third).await;
    timeline
        .wait_for("back to 31.5 A", LONG, |l| {
            l.len() == 2 && l.values().all(|&a| approx(a, 31.5))
        })
        .await;
    let worst = timeline.worst_sum(32.0);
    assert!(
        worst <= 63.0 + 1e-9,
        "the sum of limits in force reached {worst} A"
    );
}

#[tokio::test]
async fn a_station_that_vanishes_keeps_its_share_until_its_transaction_ends() {
    let app = TestApp::start("", &site(3, "increase_hold_s = 0", "", ""));
    let timeline = Timeline::default();
    let mut evs = fleet(&app, &timeline, 3, |_| Behaviour::default()).await;
    let mut txs = Vec::new();
    for (i, ev) in evs.iter().enumerate() {
        txs.push(start_transaction(&timeline, ev, &format!("EV{:02}", i + 1), "ANY").await);
    }
    timeline
        .wait_for("21 A each", LONG, |l| {
            l.len() == 3 && l.values().all(|&a| approx(a, 21.0))
        })
        .await;
    let gone = evs.pop().expect("three stations");
    gone.close();
    drop(gone);
    // Several rounds pass (interval 1 s, no increase hold): the others must stay at 21 A.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let now = timeline.current();
    assert!(
        approx(now["EV01"], 21.0) && approx(now["EV02"], 21.0),
        "{now:?}"
    );

    // It comes back and ends its transaction: the others may take its share.
    let back = app.booted("EV03").await;
    stop_transaction(&timeline, &back, "EV03", txs[2]).await;
    timeline
        .wait_for("31.5 A each", LONG, |l| {
            l.len() == 2 && l.values().all(|&a| approx(a, 31.5))
        })
        .await;
}

#[tokio::test]
async fn a_tariff_period_caps_the_budget_when_applied_live() {
    let app = TestApp::start("", &site(2, "", "", ""));
    let timeline = Timeline::default();
    let evs = fleet(&app, &timeline, 2, |_| Behaviour::default()).await;
    for (i, ev) in evs.iter().enumerate() {
        start_transaction(&timeline, ev, &format!("EV{:02}", i + 1), "ANY").await;
    }
    timeline
        .wait_for("31.5 A each", LONG, |l| {
            l.len() == 2 && l.values().all(|&a| approx(a, 31.5))
        })
        .await;
    let mut config: Config = (*app.app().controller().config()).clone();
    let all_day: TariffConfig = toml::from_str(
        "name = \"peak\"\ndays = [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"]\nfrom = \"00:00\"\nto = \"24:00\"\nev_cap_pct = 50\n",
    )
    .expect("tariff");
    config.tariffs.push(all_day);
    app.app()
        .controller()
        .apply_config(config)
        .expect("valid change");
    timeline
        .wait_for("15.7 A each under the 50 % cap", LONG, |l| {
            l.values().all(|&a| approx(a, 15.7))
        })
        .await;
}

/// The meter reports other loads plus what the stations draw; the setpoints follow.
#[tokio::test]
async fn dynamic_budget_follows_the_meter_and_falls_back_when_it_dies() {
    let meter = SimulatedMeter::start(
        "127.0.0.1:0".parse().expect("addr"),
        RegisterMap::builtin(MeterProfile::Iem3155).expect("map"),
    )
    .await
    .expect("meter starts");
    let meter = std::sync::Arc::new(meter);
    let tail = format!(
        "[[meters]]\nid = \"grid\"\naddress = \"{}\"\nprofile = \"iem3155\"\npoll_ms = 200\ntimeout_ms = 200\n",
        meter.local_addr()
    );
    let body = site(
        2,
        "increase_hold_s = 0\nmeter_stale_after_s = 2\nsafety_margin_a = 2.0",
        "static_ev_limit_a = 20.0\nmeter = \"grid\"",
        &tail,
    );
    let body = body.replacen("[auth]", "[site]\nmode = \"dynamic\"\n[auth]", 1);
    let app = TestApp::start("", &body);
    let timeline = Timeline::default();
    let evs = fleet(&app, &timeline, 2, |_| Behaviour {
        report_draw: true,
        ..Behaviour::default()
    })
    .await;
    let mut other = 20.0;
    meter.set_currents(PerPhase::splat(Amps(other)));
    for (i, ev) in evs.iter().enumerate() {
        start_transaction(&timeline, ev, &format!("EV{:02}", i + 1), "ANY").await;
    }
    // The building's meter sees other loads plus the vehicles' draw.
    let feed = {
        let timeline = timeline.clone();
        let meter = meter.clone();
        let other = std::sync::Arc::new(std::sync::Mutex::new(other));
        let o = other.clone();
        let task = tokio::spawn(async move {
            loop {
                let draw: f64 = timeline.current().values().filter(|a| !a.is_nan()).sum();
                let base = *o.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
                meter.set_currents(PerPhase::splat(Amps(base + draw)));
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        (task, other)
    };
    // 63 - 20 other - 2 margin = 41 A: 20.5 A each.
    timeline
        .wait_for("20.5 A each", LONG, |l| {
            l.len() == 2 && l.values().all(|&a| approx(a, 20.5))
        })
        .await;
    other = 30.0;
    *feed
        .1
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner) = other;
    // 63 - 30 - 2 = 31 A: 15.5 A each.
    timeline
        .wait_for("15.5 A each", LONG, |l| {
            l.values().all(|&a| approx(a, 15.5))
        })
        .await;
    // The meter dies: static fallback 20 A, 10 A each.
    meter.set_mode(Mode::Silent);
    timeline
        .wait_for("static fallback, 10 A each", LONG, |l| {
            l.values().all(|&a| approx(a, 10.0))
        })
        .await;
    // It comes back: dynamic again.
    meter.set_mode(Mode::Normal);
    timeline
        .wait_for("dynamic again, 15.5 A each", LONG, |l| {
            l.values().all(|&a| approx(a, 15.5))
        })
        .await;
    feed.0.abort();
    let status = app.site_status().await;
    assert_eq!(status.zones[0].source, "dynamic");
}

/// A station that rejects every profile is assumed to draw its maximum after a few tries.
#[tokio::test]
async fn a_station_that_keeps_rejecting_is_assumed_at_its_maximum() {
    let app = TestApp::start("", &site(2, "increase_hold_s = 0", "", ""));
    let timeline = Timeline::default();
    let rejecting = Behaviour {
        reject: true,
        ..Behaviour::default()
    };
    let evs = fleet(&app, &timeline, 2, |i| {
        if i == 1 {
            rejecting
        } else {
            Behaviour::default()
        }
    })
    .await;
    start_transaction(&timeline, &evs[0], "EV01", "ANY").await;
    start_transaction(&timeline, &evs[1], "EV02", "ANY").await;
    // 63 A - EV01's assumed 32 A = 31 A for EV02 (31.5 A if EV01 were trusted).
    timeline
        .wait_for("EV02 at 31 A", LONG, |l| {
            l.get("EV02").is_some_and(|&a| approx(a, 31.0))
        })
        .await;
    assert!(
        timeline.rejected() >= 3,
        "{} rejections",
        timeline.rejected()
    );
    let logs = app.app().controller().store().logs(None, 50).expect("logs");
    assert!(
        logs.iter().any(|l| l.message.contains("keeps rejecting")),
        "{logs:?}"
    );
}

/// A vehicle raised from 0 that stays SuspendedEVSE gets its profile cleared and re-sent.
#[tokio::test]
async fn a_vehicle_that_does_not_resume_gets_a_recovery() {
    let body = site(2, "increase_hold_s = 0\nresume_check_s = 5", "", "")
        .replace("limit_a = 63.0", "limit_a = 10.0");
    let app = TestApp::start("", &body);
    let mut first = app.booted("EV01").await;
    let mut second = app.booted("EV02").await;
    let start = |tag: &str| json_start(tag);
    let t1 = ok(first
        .call("StartTransaction", start("A"))
        .await
        .expect("answered"))["transactionId"]
        .as_i64()
        .expect("id");
    let t2 = ok(second
        .call("StartTransaction", start("B"))
        .await
        .expect("answered"))["transactionId"]
        .as_i64()
        .expect("id");
    // 10 A cannot give 6 A to both: one is suspended. Stop the other: the suspended one
    // is raised at once but keeps reporting SuspendedEVSE.
    let settle = Duration::from_secs(2);
    let (l1, l2) = tokio::join!(
        latest_tx_limit(&mut first, t1, settle),
        latest_tx_limit(&mut second, t2, settle)
    );
    // A vehicle never sent a TxProfile runs on the 0 A default: suspended too.
    let (stopper, stop_tx, waiter) = match (l1.unwrap_or(0.0), l2.unwrap_or(0.0)) {
        (a, b) if a == 0.0 && b > 0.0 => (&second, t2, &mut first),
        (a, b) if b == 0.0 && a > 0.0 => (&first, t1, &mut second),
        other => panic!("expected one vehicle suspended, got {other:?}"),
    };
    let stop =
        serde_json::json!({ "transactionId": stop_tx, "meterStop": 10, "timestamp": now_text() });
    ok(stopper
        .call("StopTransaction", stop)
        .await
        .expect("answered"));
    let suspended =
        serde_json::json!({ "connectorId": 1, "errorCode": "NoError", "status": "SuspendedEVSE" });
    ok(waiter
        .call("StatusNotification", suspended)
        .await
        .expect("answered"));
    let clear = waiter
        .next_call_of("ClearChargingProfile", LONG)
        .await
        .expect("a recovery clears the profile");
    assert_eq!(clear.payload["chargingProfilePurpose"], "TxProfile");
    let resent = waiter
        .next_call_of("SetChargingProfile", LONG)
        .await
        .expect("and sends it again");
    assert_eq!(
        resent.payload["csChargingProfiles"]["chargingSchedule"]["chargingSchedulePeriod"][0]
            ["limit"],
        10.0
    );
    let trigger = waiter
        .next_call_of("TriggerMessage", LONG)
        .await
        .expect("and asks for the status");
    assert_eq!(trigger.payload["requestedMessage"], "StatusNotification");
    let logs = app.app().controller().store().logs(None, 50).expect("logs");
    assert!(
        logs.iter()
            .any(|l| l.message.contains("stays SuspendedEVSE")),
        "{logs:?}"
    );
}

fn json_start(tag: &str) -> serde_json::Value {
    serde_json::json!({ "connectorId": 1, "idTag": tag, "meterStart": 0, "timestamp": now_text() })
}

/// The last TxProfile limit for `tx` this station receives within `settle`.
async fn latest_tx_limit(
    station: &mut ampwarden::simulate::client::StationClient,
    tx: i64,
    settle: Duration,
) -> Option<f64> {
    let deadline = tokio::time::Instant::now() + settle;
    let mut last = None;
    loop {
        let left = deadline.saturating_duration_since(tokio::time::Instant::now());
        let Ok(call) = station.next_call_of("SetChargingProfile", left).await else {
            return last;
        };
        let profile = &call.payload["csChargingProfiles"];
        if profile["transactionId"] == tx {
            last = profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"].as_f64();
        }
    }
}

/// Energy is priced at the tariff in force: the transaction's cost is stored with it.
#[tokio::test]
async fn a_transaction_is_priced_at_the_tariff_in_force() {
    let tariff = "[[tariffs]]\nname = \"flat\"\ndays = [\"mon\",\"tue\",\"wed\",\"thu\",\"fri\",\"sat\",\"sun\"]\n\
                  from = \"00:00\"\nto = \"24:00\"\nprice_per_kwh = 0.25\n";
    let app = TestApp::start("", &site(1, "", "", tariff));
    let supervisor = app.app().controller().supervisor().clone();
    let deadline = std::time::Instant::now() + LONG;
    while supervisor
        .send(ampwarden_actors::supervisor::GetSiteStatus)
        .await
        .expect("status")
        .price_per_kwh
        != Some(0.25)
    {
        assert!(
            std::time::Instant::now() < deadline,
            "the tariff never came into force"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let station = app.booted("EV01").await;
    let tx = ok(station
        .call("StartTransaction", json_start("T"))
        .await
        .expect("answered"))["transactionId"]
        .as_i64()
        .expect("id");
    let values = serde_json::json!({
        "connectorId": 1, "transactionId": tx,
        "meterValue": [{ "timestamp": now_text(), "sampledValue": [
            { "value": "2.0", "measurand": "Energy.Active.Import.Register", "unit": "kWh" }
        ] }]
    });
    ok(station.call("MeterValues", values).await.expect("answered"));
    let stop =
        serde_json::json!({ "transactionId": tx, "meterStop": 4000, "timestamp": now_text() });
    ok(station
        .call("StopTransaction", stop)
        .await
        .expect("answered"));
    let record = app
        .app()
        .controller()
        .store()
        .transaction(tx as i32)
        .expect("store")
        .expect("kept");
    assert!(
        (record.cost - 1.0).abs() < 1e-9,
        "4 kWh at 0.25 = 1.00, got {}",
        record.cost
    );
}

#[tokio::test]
async fn a_station_registered_by_the_commissioning_scan_gets_its_share() {
    let app = TestApp::start(
        "accept_unknown_stations = true\ndefault_zone = \"main\"",
        &site(0, "", "", ""),
    );
    let timeline = Timeline::default();
    let mut client = app.manual("SCANNED01").await;
    timeline.watch(&mut client, "SCANNED01", Behaviour::default());
    ok(client
        .call("BootNotification", boot_payload())
        .await
        .expect("boot"));
    start_transaction(&timeline, &client, "SCANNED01", "ANY").await;
    // Alone under 63 A, it gets the scan's default maximum of 32 A.
    timeline
        .wait_for("a limit for the scanned station", LONG, |l| {
            l.get("SCANNED01").is_some_and(|&a| approx(a, 32.0))
        })
        .await;
}
