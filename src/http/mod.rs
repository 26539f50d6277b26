//! The HTTP side: the REST API under `/api/v1` (see [`routes`] for the table of
//! endpoints and who may call them), the operator UI, the events WebSocket, `/metrics`.

pub mod api;
pub mod auth;
pub mod chart;
pub mod error;
pub mod events;
pub mod metrics;
pub mod routes;
pub mod ui;

use std::net::SocketAddr;

use actix_web::http::{Method, StatusCode};
use actix_web::{web, HttpRequest, HttpResponse, ResponseError};

use crate::controller::Controller;
use crate::StartError;
use error::ApiError;

/// The largest request body accepted (a backup with many badges and users).
const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;

/// Binds the UI/API listener; the server is started by the caller.
pub fn bind(controller: &Controller) -> Result<(actix_web::dev::Server, SocketAddr), StartError> {
    let addr = controller.config().server.http_listen;
    let data = web::Data::new(controller.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(data.clone())
            .app_data(web::QueryConfig::default().error_handler(error::query_error))
            .app_data(web::PayloadConfig::new(MAX_BODY_BYTES))
            .configure(|cfg| {
                let mut registrar = routes::Registrar::default();
                routes::table(&mut registrar);
                registrar.register(cfg);
            })
            .route(
                "/federation",
                web::get().to(crate::federation::primary::handshake),
            )
            .default_service(web::to(fallback))
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

/// Anything not in the route table: a JSON 404 under `/api/`, else the UI's files.
async fn fallback(req: HttpRequest) -> HttpResponse {
    if req.path().starts_with("/api/") {
        return ApiError::not_found(format!(
            "no endpoint {} (see /api/v1/openapi.json)",
            req.path()
        ))
        .error_response();
    }
    if req.method() != Method::GET && req.method() != Method::HEAD {
        return ApiError::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
            .error_response();
    }
    ui::asset(req).await
}
