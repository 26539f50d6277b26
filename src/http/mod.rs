//! The HTTP side: the REST API under `/api/v1`, the operator UI, `/metrics`.

use std::net::SocketAddr;

use actix_web::{web, HttpResponse};

use crate::controller::Controller;
use crate::StartError;

/// Binds the UI/API listener; the server is started by the caller.
pub fn bind(controller: &Controller) -> Result<(actix_web::dev::Server, SocketAddr), StartError> {
    let addr = controller.config().server.http_listen;
    let data = web::Data::new(controller.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .route("/api/v1/health", web::get().to(health))
    })
    .workers(1)
    .disable_signals()
    .shutdown_timeout(crate::SHUTDOWN_GRACE.as_secs())
    .bind(addr)
    .map_err(|source| StartError::Bind {
        what: "HTTP",
        addr,
        source,
    })?;
    let bound = server.addrs().first().copied().unwrap_or(addr);
    Ok((server.run(), bound))
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(serde_json::json!({ "status": "ok" }))
}
