//! The site at a glance, from the zone supervisor: per zone its limit, EV budget, EV
//! draw, other loads and production; per vehicle its limit and why; and the chart of
//! the last 24 h.

use std::sync::Arc;

use actix_web::{web, HttpResponse};
use ampwarden_actors::config::SiteMode;
use ampwarden_actors::supervisor::{GetHistory, GetSiteStatus, SiteStatus};
use ampwarden_actors::units::ZoneId;
use chrono::{Duration, Utc};
use serde::{Deserialize, Serialize};

use super::{ok, Ctl};
use crate::controller::Controller;
use crate::http::chart::{chart_svg, ChartPoint};
use crate::http::error::{ApiError, ApiResult};

/// What `GET /api/v1/site` and the events stream give.
#[derive(Serialize)]
pub struct SiteView {
    pub name: String,
    pub mode: SiteMode,
    #[serde(flatten)]
    pub status: SiteStatus,
}

pub async fn site_view(ctl: &Controller) -> ApiResult<SiteView> {
    let status = ctl
        .supervisor()
        .send(GetSiteStatus)
        .await
        .map_err(ApiError::internal)?;
    Ok(with_names(ctl, status))
}

pub fn with_names(ctl: &Controller, status: Arc<SiteStatus>) -> SiteView {
    let config = ctl.config();
    SiteView {
        name: config.site.name.clone(),
        mode: config.site.mode,
        status: (*status).clone(),
    }
}

pub async fn site(ctl: Ctl) -> ApiResult<HttpResponse> {
    Ok(ok(site_view(&ctl).await?))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChartQuery {
    zone: Option<String>,
    hours: Option<u32>,
    /// Ignored: lets a page reload the image by changing its URL.
    #[serde(rename = "t")]
    _reload: Option<String>,
}

pub async fn chart(ctl: Ctl, query: web::Query<ChartQuery>) -> ApiResult<HttpResponse> {
    let hours = query.hours.unwrap_or(24);
    if !(1..=24).contains(&hours) {
        return Err(ApiError::bad("hours", "must be 1 to 24"));
    }
    let config = ctl.config();
    let zone = match &query.zone {
        Some(z) => {
            let id = ZoneId::new(z.as_str());
            match config.zone(&id) {
                Some(zc) if zc.parent.is_none() => id,
                Some(_) => return Err(ApiError::bad("zone", "the chart covers root zones only")),
                None => return Err(ApiError::bad("zone", format!("unknown zone {z:?}"))),
            }
        }
        None => config
            .zones
            .iter()
            .find(|z| z.parent.is_none())
            .map(|z| z.id.clone())
            .ok_or_else(|| ApiError::internal("the configuration has no root zone"))?,
    };
    let history = ctl
        .supervisor()
        .send(GetHistory)
        .await
        .map_err(ApiError::internal)?;
    let points: Vec<ChartPoint> = history
        .iter()
        .filter_map(|s| {
            let (_, load, ev, budget) = s.zones.iter().find(|(id, ..)| *id == zone)?;
            Some(ChartPoint {
                at: s.at,
                site_load: load.map(|a| a.0),
                ev_load: ev.0,
                budget: budget.0,
            })
        })
        .collect();
    let now = Utc::now();
    let timezone = config.site.timezone.parse().unwrap_or(chrono_tz::Tz::UTC);
    let svg = chart_svg(
        &points,
        now - Duration::hours(i64::from(hours)),
        now,
        zone.as_str(),
        timezone,
    );
    Ok(HttpResponse::Ok()
        .content_type("image/svg+xml")
        .insert_header((actix_web::http::header::CACHE_CONTROL, "no-cache"))
        .body(svg))
}
