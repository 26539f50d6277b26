//! The site's configuration as operators edit it: zones, meters, tariffs and the site
//! settings. Every change goes through [`Controller::edit_config`]: the same validation
//! as the file, then saved and put in force at once.

use actix_web::{web, HttpResponse};
use ampwarden_actors::config::{
    Auth, Config, Control, MeterConfig, Site, TariffConfig, ZoneConfig,
};
use ampwarden_actors::meter::{MeterReading, MeterStatus};
use ampwarden_actors::units::MeterId;
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

// --- zones and meters: keyed lists ------------------------------------------------------

/// A `[[list]]` of the configuration that operators edit item by item, by id. Zones and
/// meters follow the same rules (lookup by id, 404, key paths of problems, audit lines),
/// so one set of functions serves both and the two cannot drift apart.
trait KeyedItem: Serialize + DeserializeOwned {
    /// The list's key in the file, for the problems' key paths (`zones[2].limit_a`).
    const LIST: &'static str;
    /// The item as the messages and the audit log name it (`zone`).
    const NOUN: &'static str;
    fn list(c: &Config) -> &[Self];
    fn list_mut(c: &mut Config) -> &mut Vec<Self>;
    fn item_id(&self) -> &str;
}

/// Implements [`KeyedItem`] for a config item type kept in `Config::$list` and keyed by
/// its `id` field: zones and meters differ only in these names.
macro_rules! keyed_item {
    ($item:ty, $list:ident, $noun:literal) => {
        impl KeyedItem for $item {
            const LIST: &'static str = stringify!($list);
            const NOUN: &'static str = $noun;
            fn list(c: &Config) -> &[Self] {
                &c.$list
            }
            fn list_mut(c: &mut Config) -> &mut Vec<Self> {
                &mut c.$list
            }
            fn item_id(&self) -> &str {
                self.id.as_str()
            }
        }
    };
}

keyed_item!(ZoneConfig, zones, "zone");
keyed_item!(MeterConfig, meters, "meter");

/// Where item `id` stands in its list: the index is what the problems' key paths and
/// the answer need; a missing item is a 404 that names it.
fn index_of<T: KeyedItem>(c: &Config, id: &str) -> ApiResult<usize> {
    T::list(c)
        .iter()
        .position(|item| item.item_id() == id)
        .ok_or_else(|| ApiError::not_found(format!("no {} {id}", T::NOUN)))
}

/// The key path of item `i` (`zones[2].`), so that a problem names the item's own field.
fn item_prefix<T: KeyedItem>(i: usize) -> String {
    format!("{}[{i}].", T::LIST)
}

/// Appends `item`; its problems are named under the index it would take.
fn add_item<T: KeyedItem>(ctl: &Controller, who: &Identity, item: T) -> ApiResult<HttpResponse> {
    let prefix = item_prefix::<T>(T::list(&ctl.config()).len());
    let id = item.item_id().to_owned();
    let (i, config) = ctl
        .edit_config(|c| {
            let list = T::list_mut(c);
            list.push(item);
            Ok(list.len() - 1)
        })
        .map_err(|e| edit_error(e, Some(&prefix)))?;
    audit_change(ctl, who, format!("{} {id} added", T::NOUN));
    Ok(created(&T::list(&config)[i]))
}

/// Replaces item `id` with `body` as a whole (a PUT); the body may repeat the id but not
/// change it. The lookup is inside the edit, so that the index is the one changed.
fn replace_item<T: KeyedItem>(
    ctl: &Controller,
    who: &Identity,
    id: &str,
    body: Value,
) -> ApiResult<HttpResponse> {
    let item: T = typed(with_id(body, id)?)?;
    let mut prefix = String::new();
    let (i, config) = ctl
        .edit_config(|c| {
            let i = index_of::<T>(c, id)?;
            prefix = item_prefix::<T>(i);
            T::list_mut(c)[i] = item;
            Ok(i)
        })
        .map_err(|e| edit_error(e, Some(&prefix)))?;
    audit_change(ctl, who, format!("{} {id} changed", T::NOUN));
    Ok(ok(&T::list(&config)[i]))
}

/// Removes item `id`; a problem it leaves (a zone still used) names the items that use it,
/// hence no prefix.
fn remove_item<T: KeyedItem>(
    ctl: &Controller,
    who: &Identity,
    id: &str,
) -> ApiResult<HttpResponse> {
    ctl.edit_config(|c| {
        let i = index_of::<T>(c, id)?;
        T::list_mut(c).remove(i);
        Ok(())
    })
    .map_err(|e| edit_error(e, None))?;
    audit_change(ctl, who, format!("{} {id} removed", T::NOUN));
    Ok(no_content())
}

// --- zones --------------------------------------------------------------------------------

pub async fn zones(ctl: Ctl) -> HttpResponse {
    ok(&ctl.config().zones)
}

pub async fn zone(ctl: Ctl, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let config = ctl.config();
    let i = index_of::<ZoneConfig>(&config, &path)?;
    Ok(ok(&config.zones[i]))
}

pub async fn add_zone(
    ctl: Ctl,
    who: Identity,
    Body(zone): Body<ZoneConfig>,
) -> ApiResult<HttpResponse> {
    add_item(&ctl, &who, zone)
}

pub async fn edit_zone(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<HttpResponse> {
    replace_item::<ZoneConfig>(&ctl, &who, &path, body)
}

pub async fn remove_zone(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    remove_item::<ZoneConfig>(&ctl, &who, &path)
}

// --- meters -------------------------------------------------------------------------------

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

/// A meter as listed and shown: its configuration with how it is doing, in one shape.
async fn meter_view(ctl: &Controller, m: &MeterConfig) -> Value {
    json!({ "config": m, "status": meter_status(ctl, &m.id).await })
}

pub async fn meters(ctl: Ctl) -> ApiResult<HttpResponse> {
    let config = ctl.config();
    let mut out = Vec::new();
    for m in &config.meters {
        out.push(meter_view(&ctl, m).await);
    }
    Ok(ok(out))
}

pub async fn meter(ctl: Ctl, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let config = ctl.config();
    let i = index_of::<MeterConfig>(&config, &path)?;
    Ok(ok(meter_view(&ctl, &config.meters[i]).await))
}

/// "Read now": the meter's latest reading and how it is doing.
pub async fn meter_reading(ctl: Ctl, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let id = MeterId::new(path.into_inner());
    index_of::<MeterConfig>(&ctl.config(), id.as_str())?;
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
    add_item(&ctl, &who, meter)
}

pub async fn edit_meter(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(body): Body<Value>,
) -> ApiResult<HttpResponse> {
    replace_item::<MeterConfig>(&ctl, &who, &path, body)
}

pub async fn remove_meter(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    remove_item::<MeterConfig>(&ctl, &who, &path)
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
