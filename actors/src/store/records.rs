// Pure: plain data (serde and chrono only), no sled, no I/O.
//! What the store keeps: plain records, read and written whole.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::units::{ChargePointId, IdTag, ZoneId};

/// A station as the controller has seen it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StationRecord {
    pub id: ChargePointId,
    /// `None` while it waits in the commissioning scan.
    pub zone: Option<ZoneId>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

impl StationRecord {
    /// A station first seen `now`, in `zone` (`None`: waiting in the commissioning
    /// list), with nothing yet known from its BootNotification.
    pub fn new(id: ChargePointId, zone: Option<ZoneId>, now: DateTime<Utc>) -> StationRecord {
        StationRecord {
            id,
            zone,
            vendor: None,
            model: None,
            serial: None,
            firmware: None,
            first_seen: now,
            last_seen: now,
        }
    }
}

/// The end of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransactionStop {
    pub at: DateTime<Utc>,
    pub meter_stop_wh: i64,
    pub reason: Option<String>,
    pub id_tag: Option<IdTag>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransactionRecord {
    pub id: i32,
    pub station: ChargePointId,
    pub connector: u32,
    pub id_tag: IdTag,
    pub meter_start_wh: i64,
    pub started_at: DateTime<Utc>,
    pub reservation_id: Option<i32>,
    /// Whether the badge was a VIP one when the transaction started.
    pub vip: bool,
    /// The latest energy register seen in MeterValues, in Wh.
    pub last_meter_wh: Option<f64>,
    /// Cost so far at the tariff prices in force, in the site's currency.
    pub cost: f64,
    pub stop: Option<TransactionStop>,
    /// What the controller did about it beyond the station's own messages (a repeated
    /// StartTransaction answered with this transaction, a close without StopTransaction).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub notes: Vec<String>,
}

impl TransactionRecord {
    pub fn is_open(&self) -> bool {
        self.stop.is_none()
    }

    /// Moves the energy register to `wh`, pricing the energy since the previous reading at
    /// the price in force now (registers never go back; a lower reading is ignored).
    pub fn advance_register(&mut self, wh: f64, price_per_kwh: Option<f64>) {
        let previous = self.last_meter_wh.unwrap_or(self.meter_start_wh as f64);
        if !wh.is_finite() || wh <= previous {
            return;
        }
        if let Some(price) = price_per_kwh {
            self.cost += (wh - previous) / 1000.0 * price;
        }
        self.last_meter_wh = Some(wh);
    }

    /// Energy since start, in Wh, from the latest register seen.
    pub fn energy_wh(&self) -> f64 {
        let end = match &self.stop {
            Some(s) => s.meter_stop_wh as f64,
            None => self.last_meter_wh.unwrap_or(self.meter_start_wh as f64),
        };
        (end - self.meter_start_wh as f64).max(0.0)
    }
}

/// What a StartTransaction brings.
#[derive(Clone, Debug)]
pub struct NewTransaction {
    pub station: ChargePointId,
    pub connector: u32,
    pub id_tag: IdTag,
    pub meter_start_wh: i64,
    pub started_at: DateTime<Utc>,
    pub reservation_id: Option<i32>,
    pub vip: bool,
}

/// One meter sample of a transaction (from MeterValues or transactionData).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub measurand: String,
    pub phase: Option<String>,
    pub value: f64,
    pub unit: Option<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BadgeRecord {
    pub id_tag: IdTag,
    pub vip: bool,
    pub expires: Option<DateTime<Utc>>,
    pub blocked: bool,
    pub note: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

/// One line of the operator's maintenance log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub level: LogLevel,
    pub station: Option<ChargePointId>,
    pub message: String,
}

/// Filters for listing transactions; every field is optional.
#[derive(Clone, Debug, Default)]
pub struct TransactionFilter {
    pub station: Option<ChargePointId>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl TransactionFilter {
    pub(super) fn matches(&self, t: &TransactionRecord) -> bool {
        self.station.as_ref().is_none_or(|s| &t.station == s)
            && self.from.is_none_or(|f| t.started_at >= f)
            && self.to.is_none_or(|to| t.started_at < to)
    }
}
