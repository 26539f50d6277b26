//! Save & restore over the API: the whole commissioned configuration as one JSON file
//! (see [`crate::backup`]), and the configuration alone as TOML.

use actix_web::HttpResponse;

use super::{download, ok, Ctl};
use crate::backup::{self, Backup};
use crate::controller::EditError;
use crate::http::auth::accounts::AccountRecord;
use crate::http::auth::{audit, Identity, Role};
use crate::http::error::{ApiError, ApiResult, Body};

pub async fn export(ctl: Ctl) -> ApiResult<HttpResponse> {
    let backup = backup::export(ctl.store(), &ctl.config())?;
    let body = serde_json::to_vec_pretty(&backup).map_err(ApiError::internal)?;
    let name = format!(
        "ampwarden-backup-{}.json",
        backup.created_at.format("%Y%m%d-%H%M%S")
    );
    Ok(download("application/json", &name, body))
}

pub async fn export_toml(ctl: Ctl) -> HttpResponse {
    download(
        "application/toml; charset=utf-8",
        "ampwarden.toml",
        ctl.config().to_toml_string().into_bytes(),
    )
}

/// Checks the whole backup, then writes it; a refused one changes nothing.
pub async fn import(ctl: Ctl, who: Identity, Body(b): Body<Backup>) -> ApiResult<HttpResponse> {
    let config = backup::check(&b, &ctl.config()).map_err(|p| ApiError::bad(p.field, p.message))?;
    let has_admin = b
        .accounts
        .iter()
        .any(|a| matches!(a, AccountRecord::User(u) if u.role == Role::Admin));
    if !has_admin {
        return Err(ApiError::bad(
            "accounts",
            "the backup has no admin user: restoring it would lock everyone out",
        ));
    }
    ctl.apply_config(config).map_err(|e| match e {
        EditError::Invalid(p) => ApiError::config(p, None),
        EditError::Storage(e) => e.into(),
        EditError::Refused(()) => ApiError::internal("the restore was refused"),
    })?;
    backup::write_records(ctl.store(), &b)?;
    ctl.auth().open_setup_if_needed();
    audit(
        ctl.store(),
        &who.name,
        format!(
            "configuration restored from a backup of {} ({} stations, {} badges, {} accounts)",
            b.created_at,
            b.config.stations.len(),
            b.badges.len(),
            b.accounts.len()
        ),
    );
    Ok(ok(serde_json::json!({
        "restored": {
            "zones": b.config.zones.len(),
            "stations": b.config.stations.len(),
            "meters": b.config.meters.len(),
            "badges": b.badges.len(),
            "accounts": b.accounts.len(),
        }
    })))
}
