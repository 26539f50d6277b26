//! `/api/v1/federation`: this controller's place in a federation — a primary's
//! secondaries (their link, grant, demand and stations), or a secondary's link.

use actix_web::{web, HttpResponse};
use ampwarden_actors::config::FederationRole;
use ampwarden_actors::federation::RemoteStation;
use ampwarden_actors::supervisor::{GetSecondaries, SecondaryStatus};
use serde::Serialize;

use super::{ok, Ctl};
use crate::federation::secondary::LinkStatus;
use crate::http::error::{ApiError, ApiResult};

#[derive(Serialize)]
struct FederationView {
    /// `primary`, `secondary` or `none`.
    role: &'static str,
    /// Primary: its secondaries.
    secondaries: Vec<SecondaryStatus>,
    /// Secondary: its link to the primary.
    link: Option<LinkStatus>,
}

pub async fn federation(ctl: Ctl) -> ApiResult<HttpResponse> {
    let role = match ctl.config().federation.as_ref().map(|f| f.role) {
        Some(FederationRole::Primary) => "primary",
        Some(FederationRole::Secondary) => "secondary",
        None => "none",
    };
    let mut secondaries = ctl
        .supervisor()
        .send(GetSecondaries)
        .await
        .map_err(ApiError::internal)?;
    for s in &mut secondaries {
        s.stations.clear();
    }
    Ok(ok(FederationView {
        role,
        secondaries,
        link: ctl.link_status(),
    }))
}

#[derive(Serialize)]
struct SecondaryStation {
    secondary: String,
    #[serde(flatten)]
    station: RemoteStation,
}

/// Every station of every secondary (or of one: `?secondary=NAME`), as last reported.
pub async fn stations(ctl: Ctl, query: web::Query<StationsQuery>) -> ApiResult<HttpResponse> {
    let secondaries = ctl
        .supervisor()
        .send(GetSecondaries)
        .await
        .map_err(ApiError::internal)?;
    if let Some(name) = &query.secondary {
        if !secondaries.iter().any(|s| &s.name == name) {
            return Err(ApiError::not_found(format!("no secondary {name:?}")));
        }
    }
    let list: Vec<SecondaryStation> = secondaries
        .into_iter()
        .filter(|s| query.secondary.as_ref().is_none_or(|n| *n == s.name))
        .flat_map(|s| {
            let name = s.name;
            s.stations.into_iter().map(move |station| SecondaryStation {
                secondary: name.clone(),
                station,
            })
        })
        .collect();
    Ok(ok(list))
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StationsQuery {
    secondary: Option<String>,
}
