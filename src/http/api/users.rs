//! Users and API tokens (admin only), and changing one's own password.

use actix_web::{web, HttpResponse};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::{created, no_content, ok, Ctl};
use crate::http::auth::accounts::{
    check_name, check_password, hash_password, new_token, verify_password, UserRecord,
};
use crate::http::auth::{audit, Identity, Role, Via};
use crate::http::error::{ApiError, ApiResult, Body};

/// A user as shown: never the hash.
#[derive(Serialize)]
pub struct UserView {
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
}

impl From<UserRecord> for UserView {
    fn from(u: UserRecord) -> Self {
        UserView {
            name: u.name,
            role: u.role,
            created_at: u.created_at,
        }
    }
}

async fn hash(password: String) -> ApiResult<String> {
    web::block(move || hash_password(&password))
        .await
        .map_err(ApiError::internal)?
        .map_err(ApiError::internal)
}

pub async fn list(ctl: Ctl) -> ApiResult<HttpResponse> {
    let mut users: Vec<UserView> = ctl
        .auth()
        .accounts()
        .users()?
        .into_iter()
        .map(Into::into)
        .collect();
    users.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(ok(users))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewUser {
    name: String,
    password: String,
    role: Role,
}

pub async fn add(ctl: Ctl, who: Identity, Body(b): Body<NewUser>) -> ApiResult<HttpResponse> {
    check_name(&b.name).map_err(|m| ApiError::bad("name", m))?;
    check_password(&b.password).map_err(|m| ApiError::bad("password", m))?;
    let accounts = ctl.auth().accounts();
    if accounts.user(&b.name)?.is_some() {
        return Err(
            ApiError::conflict(format!("user {} exists already", b.name)).with_field("name"),
        );
    }
    let user = UserRecord {
        name: b.name,
        role: b.role,
        password_hash: hash(b.password).await?,
        created_at: Utc::now(),
    };
    accounts.put_user(&user)?;
    audit(
        ctl.store(),
        &who.name,
        format!("user {} added as {}", user.name, user.role.as_str()),
    );
    Ok(created(UserView::from(user)))
}

/// Whether removing or demoting `name` would leave no admin.
fn last_admin(ctl: &Ctl, name: &str) -> ApiResult<bool> {
    let admins: Vec<String> = ctl
        .auth()
        .accounts()
        .users()?
        .into_iter()
        .filter(|u| u.role == Role::Admin)
        .map(|u| u.name)
        .collect();
    Ok(admins == [name])
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserChange {
    role: Option<Role>,
    password: Option<String>,
}

pub async fn edit(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(b): Body<UserChange>,
) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    let accounts = ctl.auth().accounts();
    let mut user = accounts
        .user(&name)?
        .ok_or_else(|| ApiError::not_found(format!("no user {name}")))?;
    if let Some(role) = b.role {
        if role != Role::Admin && user.role == Role::Admin && last_admin(&ctl, &name)? {
            return Err(
                ApiError::conflict("this is the last admin; make another admin first")
                    .with_field("role"),
            );
        }
        user.role = role;
    }
    if let Some(password) = b.password {
        check_password(&password).map_err(|m| ApiError::bad("password", m))?;
        user.password_hash = hash(password).await?;
        let keep = match &who.via {
            Via::Session { id, .. } if who.name == name => Some(id.as_str()),
            _ => None,
        };
        ctl.auth().close_sessions_of(&name, keep);
    }
    accounts.put_user(&user)?;
    audit(
        ctl.store(),
        &who.name,
        format!("user {name} changed (role {})", user.role.as_str()),
    );
    Ok(ok(UserView::from(user)))
}

pub async fn remove(ctl: Ctl, who: Identity, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let name = path.into_inner();
    let accounts = ctl.auth().accounts();
    let user = accounts
        .user(&name)?
        .ok_or_else(|| ApiError::not_found(format!("no user {name}")))?;
    if user.role == Role::Admin && last_admin(&ctl, &name)? {
        return Err(ApiError::conflict(
            "this is the last admin; make another admin first",
        ));
    }
    accounts.delete_user(&name)?;
    ctl.auth().close_sessions_of(&name, None);
    audit(ctl.store(), &who.name, format!("user {name} removed"));
    Ok(no_content())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OwnPassword {
    current: String,
    password: String,
}

pub async fn change_own_password(
    ctl: Ctl,
    who: Identity,
    Body(b): Body<OwnPassword>,
) -> ApiResult<HttpResponse> {
    let Via::Session { id, .. } = &who.via else {
        return Err(ApiError::forbidden("an API token has no password"));
    };
    let accounts = ctl.auth().accounts();
    let mut user = accounts
        .user(&who.name)?
        .ok_or_else(|| ApiError::unauthorized("the user no longer exists"))?;
    let (current, phc) = (b.current, user.password_hash.clone());
    let good = web::block(move || verify_password(&current, &phc))
        .await
        .map_err(ApiError::internal)?;
    if !good {
        return Err(ApiError::forbidden("the current password is wrong").with_field("current"));
    }
    check_password(&b.password).map_err(|m| ApiError::bad("password", m))?;
    user.password_hash = hash(b.password).await?;
    accounts.put_user(&user)?;
    ctl.auth().close_sessions_of(&who.name, Some(id));
    audit(ctl.store(), &who.name, "own password changed");
    Ok(no_content())
}

// --- API tokens ---------------------------------------------------------------------------

#[derive(Serialize)]
pub struct TokenView {
    pub id: String,
    pub name: String,
    pub role: Role,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

pub async fn tokens(ctl: Ctl) -> ApiResult<HttpResponse> {
    let mut tokens: Vec<TokenView> = ctl
        .auth()
        .accounts()
        .tokens()?
        .into_iter()
        .map(|t| TokenView {
            id: t.id,
            name: t.name,
            role: t.role,
            created_at: t.created_at,
            created_by: t.created_by,
        })
        .collect();
    tokens.sort_by_key(|t| t.created_at);
    Ok(ok(tokens))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewToken {
    name: String,
    role: Role,
}

pub async fn add_token(
    ctl: Ctl,
    who: Identity,
    Body(b): Body<NewToken>,
) -> ApiResult<HttpResponse> {
    let name = b.name.trim();
    if name.is_empty() || name.chars().count() > 64 {
        return Err(ApiError::bad("name", "must be 1 to 64 characters"));
    }
    let (record, secret) = new_token(name, b.role, &who.name).map_err(ApiError::internal)?;
    ctl.auth().accounts().put_token(&record)?;
    audit(
        ctl.store(),
        &who.name,
        format!(
            "API token {} ({}) created as {}",
            record.id,
            record.name,
            record.role.as_str()
        ),
    );
    Ok(created(serde_json::json!({
        "id": record.id,
        "name": record.name,
        "role": record.role,
        "created_at": record.created_at,
        "token": secret,
    })))
}

pub async fn remove_token(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = path.into_inner();
    if !ctl.auth().accounts().delete_token(&id)? {
        return Err(ApiError::not_found(format!("no API token {id}")));
    }
    audit(ctl.store(), &who.name, format!("API token {id} revoked"));
    Ok(no_content())
}
