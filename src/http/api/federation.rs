//! `/api/v1/federation`: this controller's place in a federation — a primary's
//! secondaries (their link, grant, demand and stations), or a secondary's link.

use actix_web::{web, HttpResponse};
use ampwarden_actors::config::FederationRole;
use ampwarden_actors::federation::RemoteStation;
use ampwarden_actors::supervisor::{
    DropSecondaryLink, GetSecondaries, RelayCommand, RelayToSecondary, SecondaryStatus,
};
use serde::Serialize;

use super::{ok, Ctl};
use crate::federation::secondary::LinkStatus;
use crate::http::auth::{audit, Identity};
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

/// The hash of the token secondary `name` presents: from its entry in the configuration,
/// or, for a plain token, from the link it has (or last had) up.
async fn token_hash_of(ctl: &Ctl, name: &str) -> ApiResult<String> {
    let config = ctl.config();
    let Some(f) = config
        .federation
        .as_ref()
        .filter(|f| f.role == FederationRole::Primary)
    else {
        return Err(ApiError::conflict(
            "this controller is not a federation primary",
        ));
    };
    let described = f
        .tokens
        .iter()
        .find(|t| t.described().is_some_and(|d| d.name == name));
    let token = match described {
        Some(t) => Some(t),
        None => ctl
            .supervisor()
            .send(GetSecondaries)
            .await
            .map_err(ApiError::internal)?
            .into_iter()
            .find(|s| s.name == name)
            .and_then(|s| s.token)
            .and_then(|i| f.tokens.get(i)),
    };
    token
        .and_then(crate::federation::primary::stored_hash)
        .ok_or_else(|| {
            ApiError::not_found(format!(
                "no secondary {name:?} in the configuration or linked now"
            ))
        })
}

/// Revokes a secondary's token: its link closes, and the token is refused at the
/// handshake until the revocation is lifted. Its fallback stays reserved.
pub async fn revoke(ctl: Ctl, who: Identity, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    let hash = token_hash_of(&ctl, &name).await?;
    ctl.store().revoke_token(&hash, &name)?;
    ctl.supervisor().do_send(DropSecondaryLink {
        name: name.clone(),
        reason: "this secondary's token was revoked".into(),
    });
    audit(
        ctl.store(),
        &who.name,
        format!("federation token of secondary {name} revoked"),
    );
    Ok(ok(
        serde_json::json!({ "secondary": name, "revoked": true }),
    ))
}

/// Lifts a revocation: the secondary may link again with the same token.
pub async fn unrevoke(ctl: Ctl, who: Identity, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    let hash = token_hash_of(&ctl, &name).await?;
    if !ctl.store().unrevoke_token(&hash)? {
        return Err(ApiError::not_found(format!(
            "the token of secondary {name:?} is not revoked"
        )));
    }
    audit(
        ctl.store(),
        &who.name,
        format!("federation token of secondary {name} reinstated"),
    );
    Ok(ok(
        serde_json::json!({ "secondary": name, "revoked": false }),
    ))
}

/// A remote action on a secondary's station, relayed over its link: answered with the
/// status and body the secondary's own API answered (and audited on both sides).
pub async fn relay_action(
    ctl: Ctl,
    who: Identity,
    path: web::Path<(String, String, String)>,
    bytes: web::Bytes,
) -> ApiResult<HttpResponse> {
    let (name, station, action) = path.into_inner();
    let body: serde_json::Value = if bytes.iter().all(u8::is_ascii_whitespace) {
        serde_json::json!({})
    } else {
        serde_json::from_slice(&bytes)
            .map_err(|e| ApiError::bad("body", format!("not JSON: {e}")))?
    };
    let command = RelayCommand {
        station: station.clone(),
        action: action.clone(),
        body,
    };
    let (status, body) = relay(&ctl, &name, command).await?;
    audit(
        ctl.store(),
        &who.name,
        format!("{action} on {station} of secondary {name}, relayed: HTTP {status}"),
    );
    Ok(HttpResponse::build(status).json(body))
}

/// Sends a command over a secondary's link: its answer, or why there is none (`503`
/// not linked, `504` no answer in time).
async fn relay(
    ctl: &Ctl,
    name: &str,
    command: RelayCommand,
) -> ApiResult<(actix_web::http::StatusCode, serde_json::Value)> {
    use actix_web::http::StatusCode;
    let answer = ctl
        .supervisor()
        .send(RelayToSecondary {
            name: name.to_owned(),
            command,
        })
        .await
        .map_err(ApiError::internal)?;
    match answer {
        Ok((status, body)) => Ok((
            StatusCode::from_u16(status).unwrap_or(StatusCode::BAD_GATEWAY),
            body,
        )),
        Err(ampwarden_actors::station::CallFailure::NotConnected) => Err(ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("secondary {name:?} is not linked now"),
        )),
        Err(e) => Err(ApiError::new(
            StatusCode::GATEWAY_TIMEOUT,
            format!("secondary {name:?} did not answer: {e}"),
        )),
    }
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecordsQuery {
    station: Option<String>,
    limit: Option<u32>,
}

/// A secondary's transactions or operator log, read over its link (newest first).
async fn read_from(
    ctl: &Ctl,
    name: String,
    what: &str,
    q: &RecordsQuery,
) -> ApiResult<HttpResponse> {
    let command = RelayCommand {
        station: String::new(),
        action: format!("read:{what}"),
        body: serde_json::json!({ "station": q.station, "limit": q.limit }),
    };
    let (status, body) = relay(ctl, &name, command).await?;
    Ok(HttpResponse::build(status).json(body))
}

pub async fn transactions(
    ctl: Ctl,
    path: web::Path<String>,
    q: web::Query<RecordsQuery>,
) -> ApiResult<HttpResponse> {
    read_from(&ctl, path.into_inner(), "transactions", &q).await
}

pub async fn logs(
    ctl: Ctl,
    path: web::Path<String>,
    q: web::Query<RecordsQuery>,
) -> ApiResult<HttpResponse> {
    read_from(&ctl, path.into_inner(), "logs", &q).await
}
