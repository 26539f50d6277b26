//! What the store's tests share.

use chrono::{DateTime, Utc};

use crate::units::ChargePointId;

use super::records::{NewTransaction, Sample, TransactionStop};
use super::Store;

pub(super) fn new_tx(station: &str) -> NewTransaction {
    NewTransaction {
        station: station.into(),
        connector: 1,
        id_tag: "TAG".into(),
        meter_start_wh: 1000,
        started_at: Utc::now(),
        reservation_id: None,
        vip: false,
    }
}

pub(super) fn days_ago(days: i64) -> DateTime<Utc> {
    Utc::now() - chrono::TimeDelta::days(days)
}

/// A history on CP1, one transaction per `(started, with_a_sample, stopped)` in days
/// ago (`stopped`: `None` for one still open); their ids, in that order.
pub(super) fn history(store: &Store, transactions: &[(i64, bool, Option<i64>)]) -> Vec<i32> {
    let sample = Sample {
        at: Utc::now(),
        measurand: "Energy.Active.Import.Register".into(),
        phase: None,
        value: 1.0,
        unit: Some("Wh".into()),
    };
    let mut ids = Vec::new();
    for &(started, with_sample, _) in transactions {
        let mut new = new_tx("CP1");
        new.started_at = days_ago(started);
        let t = store.begin_transaction(new).expect("begin");
        if with_sample {
            store
                .add_samples(t.id, std::slice::from_ref(&sample))
                .expect("add");
        }
        ids.push(t.id);
    }
    for (&id, &(_, _, stopped)) in ids.iter().zip(transactions) {
        if let Some(days) = stopped {
            store
                .stop_transaction(id, stop(days_ago(days), 2000), None)
                .expect("stop");
        }
    }
    ids
}

/// A stop at `at` with the register at `meter_stop_wh`.
pub(super) fn stop(at: DateTime<Utc>, meter_stop_wh: i64) -> TransactionStop {
    TransactionStop {
        at,
        meter_stop_wh,
        reason: None,
        id_tag: None,
    }
}

/// The ids of a station's open transactions.
pub(super) fn open_ids(store: &Store, station: &str) -> Vec<i32> {
    store
        .open_transactions_of(&ChargePointId::new(station))
        .expect("read")
        .iter()
        .map(|t| t.id)
        .collect()
}
