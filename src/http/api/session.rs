//! First-start setup, login, logout and "who am I".

use actix_web::{web, HttpRequest, HttpResponse};
use chrono::Utc;
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{ok, Ctl};
use crate::http::auth::accounts::{
    check_name, check_password, decoy_hash, hash_password, verify_password, UserRecord,
};
use crate::http::auth::{
    audit, client_ip, removal_cookie, session_cookie, Identity, Role, Via, SESSION_COOKIE,
};
use crate::http::error::{ApiError, ApiResult, Body};

/// What a login (or setup) answers: the CSRF token goes with every change.
#[derive(Serialize)]
pub struct SessionInfo {
    pub name: String,
    pub role: Role,
    pub csrf_token: Option<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetupBody {
    code: String,
    #[serde(default = "admin_name")]
    name: String,
    password: String,
}

fn admin_name() -> String {
    "admin".into()
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoginBody {
    name: String,
    password: String,
}

pub async fn setup_state(ctl: Ctl) -> HttpResponse {
    ok(json!({ "needed": ctl.auth().setup_open() }))
}

/// Hashing takes tens of milliseconds: off the HTTP worker.
async fn hash(password: String) -> ApiResult<String> {
    web::block(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

fn with_session(
    ctl: &Ctl,
    name: &str,
    role: Role,
    mut response: actix_web::HttpResponseBuilder,
) -> ApiResult<HttpResponse> {
    let (id, csrf) = ctl.auth().open_session(name)?;
    Ok(response.cookie(session_cookie(&id)).json(SessionInfo {
        name: name.to_owned(),
        role,
        csrf_token: Some(csrf),
    }))
}

pub async fn setup(
    req: HttpRequest,
    ctl: Ctl,
    Body(b): Body<SetupBody>,
) -> ApiResult<HttpResponse> {
    let client = client_ip(&req);
    let auth = ctl.auth();
    auth.login_allowed(client)?;
    check_name(&b.name).map_err(|m| ApiError::bad("name", m))?;
    check_password(&b.password).map_err(|m| ApiError::bad("password", m))?;
    if let Err(e) = auth.take_setup_code(&b.code) {
        if e.status == actix_web::http::StatusCode::FORBIDDEN {
            auth.login_failed(client);
        }
        return Err(e);
    }
    let user = UserRecord {
        name: b.name.clone(),
        role: Role::Admin,
        password_hash: hash(b.password).await?,
        created_at: Utc::now(),
    };
    if let Err(e) = auth.accounts().put_user(&user) {
        // Setup must stay possible: a fresh code is printed.
        auth.open_setup_if_needed();
        return Err(e.into());
    }
    audit(
        ctl.store(),
        &user.name,
        "first admin created with the setup code",
    );
    with_session(&ctl, &user.name, Role::Admin, HttpResponse::Created())
}

pub async fn login(
    req: HttpRequest,
    ctl: Ctl,
    Body(b): Body<LoginBody>,
) -> ApiResult<HttpResponse> {
    let client = client_ip(&req);
    let auth = ctl.auth();
    auth.login_allowed(client)?;
    let user = auth.accounts().user(&b.name)?;
    let phc = user
        .as_ref()
        .map_or_else(|| decoy_hash().to_owned(), |u| u.password_hash.clone());
    let password = b.password;
    let good = web::block(move || verify_password(&password, &phc))
        .await
        .map_err(ApiError::internal)?;
    let Some(user) = user.filter(|_| good) else {
        auth.login_failed(client);
        tracing::warn!(user = %b.name, %client, "failed login");
        return Err(ApiError::unauthorized("wrong name or password").with_field("password"));
    };
    auth.login_succeeded(client);
    with_session(&ctl, &user.name, user.role, HttpResponse::Ok())
}

pub async fn logout(req: HttpRequest, ctl: Ctl) -> HttpResponse {
    if let Some(cookie) = req.cookie(SESSION_COOKIE) {
        ctl.auth().close_session(cookie.value());
    }
    HttpResponse::NoContent().cookie(removal_cookie()).finish()
}

/// Who is logged in: `{"authenticated": false}` when nobody (not a 401, so that the UI
/// can ask at load without an error).
pub async fn current(who: Option<Identity>) -> HttpResponse {
    let Some(who) = who else {
        return ok(json!({ "authenticated": false }));
    };
    let csrf_token = match who.via {
        Via::Session { csrf, .. } => Some(csrf),
        Via::Token { .. } => None,
    };
    ok(json!({
        "authenticated": true,
        "name": who.name,
        "role": who.role,
        "csrf_token": csrf_token,
    }))
}
