//! The site's configuration as operators edit it: zones, meters, tariffs and the site
//! settings. Every change goes through [`Controller::edit_config`]: the same validation
//! as the file, then saved and put in force at once.

use actix_web::{web, HttpResponse};
use ampwarden_actors::config::{
    Auth, Config, Control, MeterConfig, Site, TariffConfig, ZoneConfig,
};
use ampwarden_actors::meter::{MeterReading, MeterStatus};
use ampwarden_actors::units::{MeterId, ZoneId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use super::{created, edit_error, no_content, ok, Ctl};
use crate::controller::Controller;
use crate::http::auth::{audit, Identity};
use crate::http::error::{ApiError, ApiResult, Body};

/// Reads a typed value out of JSON, naming the field at fault.
fn typed<T: DeserializeOwned>(value: Value) -> ApiResult<T> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." || path == "?" {
            "body".to_owned()
        } else {
            path
        };
        ApiError::bad(field, e.inner().to_string())
    })
}

/// An item's body for a PUT: the path names the item, so the body's `id` (if any)
/// must agree; renaming is removing and adding.
fn with_id(mut body: Value, id: &str) -> ApiResult<Value> {
    let Some(object) = body.as_object_mut() else {
        return Err(ApiError::bad("body", "a JSON object is required"));
    };
    match object.get("id") {
        Some(given) if given.as_str() != Some(id) => {
            return Err(ApiError::bad(
                "id",
                "cannot rename: remove the item and add it under the new id",
            ))
        }
        _ => {}
    }
    object.insert("id".into(), Value::String(id.to_owned()));
    Ok(body)
}

fn audit_change(ctl: &Controller, who: &Identity, what: String) {
    audit(ctl.store(), &who.name, what);
}

// --- zones --------------------------------------------------------------------------------

fn zone_index(c: &Config, id: &ZoneId) -> ApiResult<usize> {
    c.zones
        .iter()
        .position(|z| &z.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no zone {id}")))
}

pub async fn zones(ctl: Ctl) -> HttpResponse {
    ok(&ctl.config().zones)
}

pub async fn zone(ctl: Ctl, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let config = ctl.config();
    let i = zone_index(&config, &ZoneId::new(path.into_inner()))?;
    Ok(ok(&config.zones[i]))
}

pub async fn add_zone(
    ctl: Ctl,
    who: Identity,
    Body(zone): Body<ZoneConfig>,
) -> ApiResult<HttpResponse> {
    let prefix = format!("zones[{}].", ctl.config().zones.len());
    let id = zone.id.clone();
    let (i, config) = ctl
        .edit_config(|c| {
            c.zones.push(zone);
            Ok(c.zones.len() - 1)
        })
        .map_err(|e| edit_error(e, Some(&prefix)))?;
    audit_change(&ctl, &who, format!("zone {id} added"));
    Ok(created(&config.zones[i]))
}

pub async fn edit_zone(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<HttpResponse> {
    let id = ZoneId::new(path.into_inner());
    let zone: ZoneConfig = typed(with_id(body, id.as_str())?)?;
    let mut prefix = String::new();
    let (i, config) = ctl
        .edit_config(|c| {
            let i = zone_index(c, &id)?;
            prefix = format!("zones[{i}].");
            c.zones[i] = zone;
            Ok(i)
        })
        .map_err(|e| edit_error(e, Some(&prefix)))?;
    audit_change(&ctl, &who, format!("zone {id} changed"));
    Ok(ok(&config.zones[i]))
}

pub async fn remove_zone(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = ZoneId::new(path.into_inner());
    ctl.edit_config(|c| {
        let i = zone_index(c, &id)?;
        c.zones.remove(i);
        Ok(())
    })
    .map_err(|e| edit_error(e, None))?;
    audit_change(&ctl, &who, format!("zone {id} removed"));
    Ok(no_content())
}

// --- meters -------------------------------------------------------------------------------

fn meter_index(c: &Config, id: &MeterId) -> ApiResult<usize> {
    c.meters
        .iter()
        .position(|m| &m.id == id)
        .ok_or_else(|| ApiError::not_found(format!("no meter {id}")))
}

/// A meter's status as shown (ages in seconds).
#[derive(Serialize)]
pub struct MeterStatusView {
    pub reading: Option<MeterReading>,
    pub age_s: Option<f64>,
    pub stale: bool,
    pub last_error: Option<String>,
    pub good_reads: u64,
    pub failed_reads: u64,
}

impl From<MeterStatus> for MeterStatusView {
    fn from(s: MeterStatus) -> Self {
        MeterStatusView {
            reading: s.last_reading,
            age_s: s.age.map(|a| a.as_secs_f64()),
            stale: s.stale,
            last_error: s.last_error,
            good_reads: s.good_reads,
            failed_reads: s.failed_reads,
        }
    }
}

async fn meter_status(ctl: &Controller, id: &MeterId) -> Option<MeterStatusView> {
    ctl.meter_status(id).await.map(Into::into)
}

pub async fn meters(ctl: Ctl) -> ApiResult<HttpResponse> {
    let config = ctl.config();
    let mut out = Vec::new();
    for m in &config.meters {
        out.push(json!({ "config": m, "status": meter_status(&ctl, &m.id).await }));
    }
    Ok(ok(out))
}

pub async fn meter(ctl: Ctl, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let config = ctl.config();
    let i = meter_index(&config, &MeterId::new(path.into_inner()))?;
    let m = &config.meters[i];
    Ok(ok(
        json!({ "config": m, "status": meter_status(&ctl, &m.id).await }),
    ))
}

/// "Read now": the meter's latest reading and how it is doing.
pub async fn meter_reading(ctl: Ctl, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = MeterId::new(path.into_inner());
    meter_index(&ctl.config(), &id)?;
    match meter_status(&ctl, &id).await {
        Some(status) => Ok(ok(status)),
        None => Err(ApiError::new(
            actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
            format!("meter {id} is not being polled"),
        )),
    }
}

pub async fn add_meter(
    ctl: Ctl,
    who: Identity,
    Body(meter): Body<MeterConfig>,
) -> ApiResult<HttpResponse> {
    let prefix = format!("meters[{}].", ctl.config().meters.len());
    let id = meter.id.clone();
    let (i, config) = ctl
        .edit_config(|c| {
            c.meters.push(meter);
            Ok(c.meters.len() - 1)
        })
        .map_err(|e| edit_error(e, Some(&prefix)))?;
    audit_change(&ctl, &who, format!("meter {id} added"));
    Ok(created(&config.meters[i]))
}

pub async fn edit_meter(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<HttpResponse> {
    let id = MeterId::new(path.into_inner());
    let meter: MeterConfig = typed(with_id(body, id.as_str())?)?;
    let mut prefix = String::new();
    let (i, config) = ctl
        .edit_config(|c| {
            let i = meter_index(c, &id)?;
            prefix = format!("meters[{i}].");
            c.meters[i] = meter;
            Ok(i)
        })
        .map_err(|e| edit_error(e, Some(&prefix)))?;
    audit_change(&ctl, &who, format!("meter {id} changed"));
    Ok(ok(&config.meters[i]))
}

pub async fn remove_meter(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let id = MeterId::new(path.into_inner());
    ctl.edit_config(|c| {
        let i = meter_index(c, &id)?;
        c.meters.remove(i);
        Ok(())
    })
    .map_err(|e| edit_error(e, None))?;
    audit_change(&ctl, &who, format!("meter {id} removed"));
    Ok(no_content())
}

// --- tariffs ------------------------------------------------------------------------------

pub async fn tariffs(ctl: Ctl) -> HttpResponse {
    ok(&ctl.config().tariffs)
}

pub async fn put_tariffs(
    ctl: Ctl,
    who: Identity,
    Body(tariffs): Body<Vec<TariffConfig>>,
) -> ApiResult<HttpResponse> {
    let n = tariffs.len();
    let (_, config) = ctl
        .edit_config(|c| {
            c.tariffs = tariffs;
            Ok(())
        })
        .map_err(|e| edit_error(e, Some("tariffs")))?;
    audit_change(
        &ctl,
        &who,
        format!("tariff calendar replaced ({n} periods)"),
    );
    Ok(ok(&config.tariffs))
}

// --- site settings ------------------------------------------------------------------------

fn settings_view(c: &Config) -> Value {
    json!({
        "site": c.site,
        "control": c.control,
        "auth": c.auth,
        "server": {
            "http_listen": c.server.http_listen,
            "ocpp_listen": c.server.ocpp_listen,
            "accept_unknown_stations": c.server.accept_unknown_stations,
            "default_zone": c.server.default_zone,
            "read_only": "set in the configuration file"
        },
    })
}

pub async fn settings(ctl: Ctl) -> HttpResponse {
    ok(settings_view(&ctl.config()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettingsChange {
    site: Option<Value>,
    control: Option<Value>,
    auth: Option<Value>,
}

/// `current` with the keys of `change` replaced; both are objects.
fn merged<T: serde::Serialize + DeserializeOwned>(
    section: &str,
    current: &T,
    change: Value,
) -> ApiResult<T> {
    let mut value = serde_json::to_value(current).map_err(ApiError::internal)?;
    let (Some(target), Value::Object(patch)) = (value.as_object_mut(), change) else {
        return Err(ApiError::bad(section, "must be an object"));
    };
    for (k, v) in patch {
        target.insert(k, v);
    }
    typed::<T>(value).map_err(|mut e| {
        e.field = e.field.map(|f| format!("{section}.{f}"));
        e
    })
}

pub async fn put_settings(
    ctl: Ctl,
    who: Identity,
    Body(change): Body<SettingsChange>,
) -> ApiResult<HttpResponse> {
    let current = ctl.config();
    let site: Option<Site> = change
        .site
        .map(|v| merged("site", &current.site, v))
        .transpose()?;
    let control: Option<Control> = change
        .control
        .map(|v| merged("control", &current.control, v))
        .transpose()?;
    let auth: Option<Auth> = change
        .auth
        .map(|v| merged("auth", &current.auth, v))
        .transpose()?;
    let (_, config) = ctl
        .edit_config(|c| {
            if let Some(s) = site {
                c.site = s;
            }
            if let Some(s) = control {
                c.control = s;
            }
            if let Some(s) = auth {
                c.auth = s;
            }
            Ok(())
        })
        .map_err(|e| edit_error(e, None))?;
    audit_change(&ctl, &who, "site settings changed".into());
    Ok(ok(settings_view(&config)))
}
