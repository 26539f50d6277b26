//! The site at a glance: per zone its limit, EV budget, EV draw, other loads and
//! production, from the configuration and the stations' live state.

use std::collections::HashMap;

use ampwarden_actors::config::{Config, SiteMode};
use ampwarden_actors::station::StationSnapshot;
use ampwarden_actors::units::{Amps, ChargePointId, PerPhase, ZoneId};
use serde::Serialize;

use super::stations::views;
use super::{ok, Ctl};
use crate::http::error::ApiResult;

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct ZoneStatus {
    pub id: ZoneId,
    pub parent: Option<ZoneId>,
    pub limit_a: Amps,
    /// What the vehicles below this zone may draw, per phase; `None` while unknown.
    pub ev_budget_a: Option<PerPhase<Amps>>,
    /// What the vehicles below this zone draw (MeterValues), per phase.
    pub ev_draw_a: PerPhase<Amps>,
    pub other_loads_a: Option<PerPhase<Amps>>,
    pub production_a: Option<PerPhase<Amps>>,
    pub stations: usize,
    pub charging: usize,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct SiteStatus {
    pub name: String,
    pub mode: SiteMode,
    pub zones: Vec<ZoneStatus>,
}

/// Zones from the root down, each with everything below it.
pub fn site_status(
    config: &Config,
    snapshots: &HashMap<ChargePointId, StationSnapshot>,
) -> SiteStatus {
    let below = |zone: &ZoneId| -> Vec<ZoneId> {
        let mut out = vec![zone.clone()];
        let mut i = 0;
        while i < out.len() {
            let z = out[i].clone();
            out.extend(
                config
                    .zones
                    .iter()
                    .filter(|c| c.parent.as_ref() == Some(&z))
                    .map(|c| c.id.clone()),
            );
            i += 1;
        }
        out
    };
    let zones = config
        .zones
        .iter()
        .map(|z| {
            let subtree = below(&z.id);
            let mut draw = PerPhase::splat(Amps::ZERO);
            let (mut stations, mut charging) = (0, 0);
            for s in config.stations.iter().filter(|s| subtree.contains(&s.zone)) {
                stations += 1;
                let Some(snap) = snapshots.get(&s.id) else {
                    continue;
                };
                for c in &snap.connectors {
                    if c.transaction.is_some() {
                        charging += 1;
                    }
                    for (i, d) in c.draw.0.iter().enumerate() {
                        draw.0[i] += d.unwrap_or(Amps::ZERO);
                    }
                }
            }
            let ev_budget_a = match config.site.mode {
                SiteMode::Static => Some(PerPhase::splat(z.static_budget())),
                SiteMode::Dynamic => None,
            };
            ZoneStatus {
                id: z.id.clone(),
                parent: z.parent.clone(),
                limit_a: z.limit_a,
                ev_budget_a,
                ev_draw_a: draw,
                other_loads_a: None,
                production_a: None,
                stations,
                charging,
            }
        })
        .collect();
    SiteStatus {
        name: config.site.name.clone(),
        mode: config.site.mode,
        zones,
    }
}

pub async fn site(ctl: Ctl) -> ApiResult<actix_web::HttpResponse> {
    let snapshots = views(&ctl)
        .await?
        .into_iter()
        .filter_map(|v| v.live.map(|l| (v.id, l)))
        .collect();
    Ok(ok(site_status(&ctl.config(), &snapshots)))
}
