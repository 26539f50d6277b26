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

/// Binds the UI/API listener (`server.http_listen`, and `server.http_listen_tls` over
/// TLS when set: the same routes); the server is started by the caller. Returns the
/// plain and the TLS address.
pub fn bind(
    controller: &Controller,
    tls: Option<&crate::tls::ServerTls>,
) -> Result<(actix_web::dev::Server, (SocketAddr, Option<SocketAddr>)), StartError> {
    let addr = controller.config().server.http_listen;
    let tls_addr = controller.config().server.http_listen_tls;
    let data = web::Data::new(controller.clone());
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .wrap(actix_web::middleware::from_fn(auth::secure_over_tls))
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
    .on_connect(crate::tls::on_connect)
    .workers(1)
    .disable_signals()
    .shutdown_timeout(crate::SHUTDOWN_GRACE.as_secs())
    .bind(addr)
    .map_err(|source| StartError::Bind {
        what: "HTTP",
        addr,
        source,
    })?;
    let server = match (tls_addr, tls) {
        (Some(addr), Some(tls)) => {
            server
                .bind_rustls_0_23(addr, tls.server_config())
                .map_err(|source| StartError::Bind {
                    what: "HTTPS",
                    addr,
                    source,
                })?
        }
        _ => server,
    };
    let addrs = crate::bound(&server.addrs_with_scheme(), addr);
    Ok((server.run(), addrs))
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
