//! The REST handlers, one module per resource. Each is thin: parse the request, call
//! the controller, the store or a station actor, map the result.

pub mod backup;
pub mod badges;
pub mod bms;
pub mod federation;
pub mod logs;
pub mod session;
pub mod settings;
pub mod site;
pub mod stations;
pub mod transactions;
pub mod uplink;
pub mod users;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use serde::Serialize;

use crate::controller::{Controller, EditError};
use crate::http::error::ApiError;

/// The controller as handlers receive it.
pub type Ctl = web::Data<Controller>;

pub fn ok<T: Serialize>(value: T) -> HttpResponse {
    HttpResponse::Ok().json(value)
}

pub fn created<T: Serialize>(value: T) -> HttpResponse {
    HttpResponse::Created().json(value)
}

pub fn no_content() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// A download: `content_type` with a file name for the browser.
pub fn download(content_type: &str, file_name: &str, body: Vec<u8>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((
            header::CONTENT_DISPOSITION,
            format!("attachment; filename=\"{file_name}\""),
        ))
        .body(body)
}

/// A refused configuration change as an API error; `prefix` is the edited item's key
/// path (`zones[2].`), so that its own fields are named plainly.
pub fn edit_error(e: EditError<ApiError>, prefix: Option<&str>) -> ApiError {
    match e {
        EditError::Refused(e) => e,
        EditError::Invalid(problems) => ApiError::config(problems, prefix),
        EditError::Storage(e) => ApiError::from(e),
    }
}
