//! Charging sessions: the list with filters and totals, CSV export, one with its samples.

use std::collections::BTreeMap;

use actix_web::{web, HttpResponse};
use ampwarden_actors::station::GetLiveRecord;
use ampwarden_actors::store::{Sample, TransactionFilter, TransactionRecord};
use ampwarden_actors::units::ChargePointId;
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};

use super::{download, ok, Ctl};
use crate::controller::Controller;
use crate::http::error::{ApiError, ApiResult};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TxQuery {
    station: Option<String>,
    from: Option<String>,
    to: Option<String>,
}

/// RFC 3339, or a plain date meaning its midnight (UTC).
fn parse_time(field: &str, text: &str) -> ApiResult<DateTime<Utc>> {
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&Utc));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(0, 0, 0))
        .map(|t| t.and_utc())
        .ok_or_else(|| {
            ApiError::bad(
                field,
                format!(
                    "{text:?} is not a date-time (2026-03-01T08:00:00Z) or a date (2026-03-01)"
                ),
            )
        })
}

impl TxQuery {
    fn filter(&self) -> ApiResult<TransactionFilter> {
        let filter = TransactionFilter {
            station: self
                .station
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(ChargePointId::from),
            from: self
                .from
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|t| parse_time("from", t))
                .transpose()?,
            to: self
                .to
                .as_deref()
                .filter(|s| !s.is_empty())
                .map(|t| parse_time("to", t))
                .transpose()?,
        };
        if let (Some(from), Some(to)) = (filter.from, filter.to) {
            if to < from {
                return Err(ApiError::bad("to", "is before from"));
            }
        }
        Ok(filter)
    }
}

#[derive(Serialize)]
pub struct TxView {
    #[serde(flatten)]
    pub record: TransactionRecord,
    pub energy_wh: f64,
    pub open: bool,
}

impl From<TransactionRecord> for TxView {
    fn from(record: TransactionRecord) -> Self {
        TxView {
            energy_wh: record.energy_wh(),
            open: record.is_open(),
            record,
        }
    }
}

#[derive(Default, Serialize)]
pub struct Totals {
    pub count: usize,
    pub energy_wh: f64,
    pub cost: f64,
}

impl Totals {
    fn add(&mut self, t: &TransactionRecord) {
        self.count += 1;
        self.energy_wh += t.energy_wh();
        self.cost += t.cost;
    }
}

#[derive(Serialize)]
struct StationTotals {
    station: ChargePointId,
    #[serde(flatten)]
    totals: Totals,
}

/// Open transactions as their stations hold them now: the store's copy of an open
/// transaction's energy and cost is up to a minute old.
pub async fn live(ctl: &Controller, mut records: Vec<TransactionRecord>) -> Vec<TransactionRecord> {
    for record in records.iter_mut().filter(|r| r.is_open()) {
        let Some(station) = ctl.station(&record.station) else {
            continue;
        };
        if let Ok(Some(newer)) = station.send(GetLiveRecord(record.id)).await {
            *record = newer;
        }
    }
    records
}

pub async fn list(ctl: Ctl, query: web::Query<TxQuery>) -> ApiResult<HttpResponse> {
    let records = live(&ctl, ctl.store().transactions(&query.filter()?)?).await;
    let mut site = Totals::default();
    let mut per_station: BTreeMap<ChargePointId, Totals> = BTreeMap::new();
    for t in &records {
        site.add(t);
        per_station.entry(t.station.clone()).or_default().add(t);
    }
    let transactions: Vec<TxView> = records.into_iter().rev().map(TxView::from).collect();
    let stations: Vec<StationTotals> = per_station
        .into_iter()
        .map(|(station, totals)| StationTotals { station, totals })
        .collect();
    Ok(ok(serde_json::json!({
        "transactions": transactions,
        "totals": site,
        "stations": stations,
    })))
}

/// The CSV columns, in order.
pub const CSV_HEADER: [&str; 13] = [
    "id",
    "station",
    "connector",
    "id_tag",
    "vip",
    "started_at",
    "stopped_at",
    "meter_start_wh",
    "meter_stop_wh",
    "energy_kwh",
    "cost",
    "stop_reason",
    "notes",
];

pub fn to_csv(records: &[TransactionRecord]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for t in records {
        let stop = t.stop.as_ref();
        w.write_record([
            t.id.to_string(),
            t.station.to_string(),
            t.connector.to_string(),
            t.id_tag.to_string(),
            t.vip.to_string(),
            t.started_at.to_rfc3339(),
            stop.map(|s| s.at.to_rfc3339()).unwrap_or_default(),
            t.meter_start_wh.to_string(),
            stop.map(|s| s.meter_stop_wh.to_string())
                .unwrap_or_default(),
            format!("{:.3}", t.energy_wh() / 1000.0),
            format!("{:.2}", t.cost),
            stop.and_then(|s| s.reason.clone()).unwrap_or_default(),
            t.notes.join("; "),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

pub async fn csv(ctl: Ctl, query: web::Query<TxQuery>) -> ApiResult<HttpResponse> {
    let records = live(&ctl, ctl.store().transactions(&query.filter()?)?).await;
    let body = to_csv(&records).map_err(ApiError::internal)?;
    Ok(download(
        "text/csv; charset=utf-8",
        "transactions.csv",
        body,
    ))
}

#[derive(Serialize)]
struct TxDetail {
    #[serde(flatten)]
    view: TxView,
    samples: Vec<Sample>,
}

pub async fn detail(ctl: Ctl, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let text = path.into_inner();
    let id: i32 = text
        .parse()
        .map_err(|_| ApiError::bad("id", format!("{text:?} is not a transaction id")))?;
    let record = ctl
        .store()
        .transaction(id)?
        .ok_or_else(|| ApiError::not_found(format!("no transaction {id}")))?;
    let record = live(&ctl, vec![record]).await.remove(0);
    Ok(ok(TxDetail {
        samples: ctl.store().samples(id)?,
        view: TxView::from(record),
    }))
}
