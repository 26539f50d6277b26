//! The operator log: what happened, newest first, filtered by station; CSV export.

use actix_web::{web, HttpResponse};
use ampwarden_actors::store::{LogEntry, LogLevel, LOG_CAPACITY};
use ampwarden_actors::units::ChargePointId;
use serde::Deserialize;

use super::{download, ok, Ctl};
use crate::http::error::{ApiError, ApiResult};

const DEFAULT_LIMIT: usize = 500;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogQuery {
    station: Option<String>,
    limit: Option<usize>,
}

fn entries(ctl: &Ctl, query: &LogQuery) -> ApiResult<Vec<LogEntry>> {
    let limit = query.limit.unwrap_or(DEFAULT_LIMIT);
    let capacity = usize::try_from(LOG_CAPACITY).unwrap_or(usize::MAX);
    if limit == 0 || limit > capacity {
        return Err(ApiError::bad("limit", format!("must be 1 to {capacity}")));
    }
    let station = query
        .station
        .as_deref()
        .filter(|s| !s.is_empty())
        .map(ChargePointId::from);
    Ok(ctl.store().logs(station.as_ref(), limit)?)
}

pub async fn list(ctl: Ctl, query: web::Query<LogQuery>) -> ApiResult<HttpResponse> {
    Ok(ok(entries(&ctl, &query)?))
}

fn level(l: LogLevel) -> &'static str {
    match l {
        LogLevel::Info => "info",
        LogLevel::Warn => "warn",
        LogLevel::Error => "error",
    }
}

pub fn to_csv(entries: &[LogEntry]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(["seq", "at", "level", "station", "message"])?;
    for e in entries {
        w.write_record([
            e.seq.to_string(),
            e.at.to_rfc3339(),
            level(e.level).to_owned(),
            e.station
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default(),
            e.message.clone(),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

pub async fn csv(ctl: Ctl, query: web::Query<LogQuery>) -> ApiResult<HttpResponse> {
    let body = to_csv(&entries(&ctl, &query)?).map_err(ApiError::internal)?;
    Ok(download("text/csv; charset=utf-8", "log.csv", body))
}
