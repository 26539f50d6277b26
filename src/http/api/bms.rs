//! The building management system over REST: the same caps as the Modbus server (one
//! implementation, the BMS actor's), written with a token of the `bms` role (or by an
//! admin), and the register map as JSON and CSV for BMS tools.

use actix_web::{web, HttpResponse};
use ampwarden_actors::bms::{
    registers, CapRequest, CapTarget, CapUnit, GetBms, GetRegisterMap, ReleaseCap, WriteCap,
    WriteError, Writer,
};
use ampwarden_actors::units::ZoneId;
use serde::Deserialize;
use serde_json::json;

use super::{download, ok, Ctl};
use crate::http::auth::Identity;
use crate::http::error::{ApiError, ApiResult, Body};

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CapBody {
    /// The cap: amperes per phase, or watts in all with `unit = "W"` (site only).
    value: f64,
    #[serde(default)]
    unit: Option<UnitBody>,
    /// Seconds; absent or 0: `bms.default_validity_s`.
    #[serde(default)]
    validity_s: Option<u32>,
}

#[derive(Deserialize)]
enum UnitBody {
    A,
    W,
}

pub async fn status(ctl: Ctl) -> ApiResult<HttpResponse> {
    let view = ctl.bms().send(GetBms).await.map_err(ApiError::internal)?;
    Ok(ok(view))
}

pub async fn write_site(
    ctl: Ctl,
    who: Identity,
    Body(b): Body<CapBody>,
) -> ApiResult<HttpResponse> {
    write(&ctl, &who, CapTarget::Site, b).await
}

pub async fn write_zone(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(b): Body<CapBody>,
) -> ApiResult<HttpResponse> {
    let zone = known_zone(&ctl, &path)?;
    write(&ctl, &who, CapTarget::Zone(zone), b).await
}

pub async fn release_site(ctl: Ctl, who: Identity) -> ApiResult<HttpResponse> {
    release(&ctl, &who, CapTarget::Site).await
}

pub async fn release_zone(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
) -> ApiResult<HttpResponse> {
    let zone = known_zone(&ctl, &path)?;
    release(&ctl, &who, CapTarget::Zone(zone)).await
}

pub async fn register_map(ctl: Ctl) -> ApiResult<HttpResponse> {
    let points = ctl
        .bms()
        .send(GetRegisterMap)
        .await
        .map_err(ApiError::internal)?;
    Ok(ok(
        json!({ "map_version": registers::MAP_VERSION, "registers": points }),
    ))
}

pub async fn register_map_csv(ctl: Ctl) -> ApiResult<HttpResponse> {
    let points = ctl
        .bms()
        .send(GetRegisterMap)
        .await
        .map_err(ApiError::internal)?;
    Ok(download(
        "text/csv; charset=utf-8",
        "ampwarden-bms-registers.csv",
        registers::map_csv(&points).into_bytes(),
    ))
}

fn known_zone(ctl: &Ctl, id: &str) -> ApiResult<ZoneId> {
    let zone = ZoneId::new(id);
    if ctl.config().zone(&zone).is_none() {
        return Err(ApiError::not_found(format!("unknown zone {id:?}")));
    }
    Ok(zone)
}

async fn write(
    ctl: &Ctl,
    who: &Identity,
    target: CapTarget,
    b: CapBody,
) -> ApiResult<HttpResponse> {
    let request = CapRequest {
        target: target.clone(),
        value: b.value,
        unit: match b.unit {
            None | Some(UnitBody::A) => CapUnit::Amps,
            Some(UnitBody::W) => CapUnit::Watts,
        },
        validity_s: b.validity_s.unwrap_or(0),
    };
    let by = Writer::Rest {
        name: who.name.clone(),
    };
    let written = ctl
        .bms()
        .send(WriteCap { request, by })
        .await
        .map_err(ApiError::internal)?;
    match written {
        Ok(_) => Ok(ok(
            json!({ "accepted": true, "cap": view(ctl, &target).await? }),
        )),
        Err(WriteError::Disabled) => Err(ApiError::forbidden(
            "writes are disabled: set bms.write = true (and bms.failsafe_current_a)",
        )),
        Err(WriteError::UnknownZone(z)) => Err(ApiError::not_found(format!("unknown zone {z:?}"))),
        Err(WriteError::OutOfRange { field, message }) => Err(ApiError::bad(field, message)),
    }
}

async fn release(ctl: &Ctl, who: &Identity, target: CapTarget) -> ApiResult<HttpResponse> {
    let by = Writer::Rest {
        name: who.name.clone(),
    };
    let ended = ctl
        .bms()
        .send(ReleaseCap {
            target: target.clone(),
            by,
        })
        .await
        .map_err(ApiError::internal)?;
    Ok(ok(
        json!({ "released": ended.is_some(), "cap": view(ctl, &target).await? }),
    ))
}

async fn view(ctl: &Ctl, target: &CapTarget) -> ApiResult<ampwarden_actors::bms::CapView> {
    let all = ctl.bms().send(GetBms).await.map_err(ApiError::internal)?;
    Ok(match target {
        CapTarget::Site => all.site,
        CapTarget::Zone(_) => all
            .zones
            .into_iter()
            .find(|v| &v.target == target)
            .ok_or_else(|| ApiError::internal("the zone has no cap view"))?,
    })
}
