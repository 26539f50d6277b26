//! The CPO uplink as the API shows it: per station whether its upstream connection is up,
//! what it still owes the CPO, the last error, and the CPO's limits in force.

use actix_web::HttpResponse;
use serde_json::json;

use super::{ok, Ctl};
use crate::http::error::ApiResult;

pub async fn status(ctl: Ctl) -> ApiResult<HttpResponse> {
    let config = ctl.config();
    let stations = ctl.uplink_statuses().await;
    Ok(ok(json!({
        "configured": config.uplink.is_some(),
        "url": config.uplink.as_ref().map(|u| u.url.clone()),
        "read_only": config.uplink.as_ref().is_some_and(|u| u.read_only),
        "backlog": stations.iter().map(|s| s.backlog).sum::<usize>(),
        "stations": stations,
    })))
}
