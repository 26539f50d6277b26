//! The one error shape of the API: `4xx/5xx {"error": "...", "field": "..."}`, and the
//! JSON body extractor that reports which field of a request body is wrong.

use actix_web::http::{header, StatusCode};
use actix_web::{FromRequest, HttpRequest, HttpResponse, ResponseError};
use ampwarden_actors::config::ConfigProblems;
use ampwarden_actors::store::StoreError;
use futures_util::future::LocalBoxFuture;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// An API error. `field` names the request field (or configuration key path) at fault.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{error}")]
pub struct ApiError {
    pub status: StatusCode,
    pub error: String,
    pub field: Option<String>,
    /// Every problem when there are several (configuration edits); the first is `error`.
    pub problems: Vec<Problem>,
    /// Seconds to wait, for 429.
    pub retry_after: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Problem {
    pub field: String,
    pub error: String,
}

#[derive(Serialize)]
struct ErrorBody<'a> {
    error: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    field: Option<&'a str>,
    #[serde(skip_serializing_if = "<[Problem]>::is_empty")]
    problems: &'a [Problem],
}

impl ApiError {
    /// The JSON body of this error, as the API answers it.
    pub fn body(&self) -> serde_json::Value {
        let problems = if self.problems.len() > 1 {
            self.problems.as_slice()
        } else {
            &[]
        };
        serde_json::to_value(ErrorBody {
            error: &self.error,
            field: self.field.as_deref(),
            problems,
        })
        .unwrap_or_default()
    }

    pub fn new(status: StatusCode, error: impl Into<String>) -> ApiError {
        ApiError {
            status,
            error: error.into(),
            field: None,
            problems: Vec::new(),
            retry_after: None,
        }
    }

    pub fn with_field(mut self, field: impl Into<String>) -> ApiError {
        self.field = Some(field.into());
        self
    }

    /// 400: the request is wrong at `field`.
    pub fn bad(field: impl Into<String>, error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, error).with_field(field)
    }

    pub fn not_found(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, error)
    }

    pub fn conflict(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::CONFLICT, error)
    }

    pub fn unauthorized(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::UNAUTHORIZED, error)
    }

    pub fn forbidden(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::FORBIDDEN, error)
    }

    /// 502: the station did not give a usable answer.
    pub fn station(error: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_GATEWAY, error)
    }

    pub fn too_many(retry_after: u64, error: impl Into<String>) -> ApiError {
        let mut e = ApiError::new(StatusCode::TOO_MANY_REQUESTS, error);
        e.retry_after = Some(retry_after);
        e
    }

    /// 500, logged: something on our side failed (storage).
    pub fn internal(error: impl std::fmt::Display) -> ApiError {
        tracing::error!(error = %error, "API request failed on the controller's side");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("internal error: {error}"),
        )
    }

    /// A configuration change refused by validation. Paths under `prefix` (the item
    /// being edited, e.g. `zones[2].`) are given relative to it, so a form can point at
    /// its own field; any other path is given whole.
    pub fn config(problems: ConfigProblems, prefix: Option<&str>) -> ApiError {
        let problems: Vec<Problem> = problems
            .0
            .into_iter()
            .map(|p| {
                let field = match prefix.and_then(|pre| p.path.strip_prefix(pre)) {
                    Some(rest) if !rest.is_empty() => rest.to_owned(),
                    _ => p.path,
                };
                Problem {
                    field,
                    error: p.message,
                }
            })
            .collect();
        let (field, error) = problems
            .first()
            .map(|p| (p.field.clone(), p.error.clone()))
            .unwrap_or_else(|| (String::new(), "the configuration is not valid".into()));
        ApiError {
            status: StatusCode::BAD_REQUEST,
            error,
            field: (!field.is_empty()).then_some(field),
            problems,
            retry_after: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> ApiError {
        ApiError::internal(e)
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.status
    }

    fn error_response(&self) -> HttpResponse {
        let mut response = HttpResponse::build(self.status);
        if let Some(seconds) = self.retry_after {
            response.insert_header((header::RETRY_AFTER, seconds.to_string()));
        }
        response.json(self.body())
    }
}

pub type ApiResult<T> = Result<T, ApiError>;

/// Parses a JSON document, naming the field at fault (`connector`, `zones[1].limit_a`).
pub fn parse_json<T: DeserializeOwned>(bytes: &[u8]) -> ApiResult<T> {
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value: T = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        let path = e.path().to_string();
        let message = e.inner().to_string();
        if path == "." || path == "?" || path.is_empty() {
            ApiError::bad("body", format!("the body is not valid JSON: {message}"))
        } else {
            ApiError::bad(path, message)
        }
    })?;
    de.end()
        .map_err(|e| ApiError::bad("body", format!("trailing data after the JSON: {e}")))?;
    Ok(value)
}

/// A JSON request body; a bad one is a 400 naming the field.
pub struct Body<T>(pub T);

impl<T: DeserializeOwned + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = LocalBoxFuture<'static, Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, payload: &mut actix_web::dev::Payload) -> Self::Future {
        let bytes = actix_web::web::Bytes::from_request(req, payload);
        let is_json = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| {
                v.trim_start()
                    .to_ascii_lowercase()
                    .starts_with("application/json")
            });
        Box::pin(async move {
            if !is_json {
                return Err(ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "send the body as JSON with Content-Type: application/json",
                )
                .with_field("Content-Type"));
            }
            let bytes = bytes.await.map_err(|e| {
                ApiError::new(e.as_response_error().status_code(), e.to_string()).with_field("body")
            })?;
            if bytes.is_empty() {
                return Err(ApiError::bad("body", "a JSON body is required"));
            }
            parse_json(&bytes).map(Body)
        })
    }
}

/// Turns actix's own extractor failures (query string, path) into our error shape.
pub fn query_error(err: actix_web::error::QueryPayloadError, _: &HttpRequest) -> actix_web::Error {
    let text = err.to_string();
    let field = text
        .split('`')
        .nth(1)
        .filter(|f| !f.is_empty())
        .unwrap_or("query")
        .to_owned();
    ApiError::bad(field, text).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use ampwarden_actors::config::ConfigProblem;

    #[derive(Debug, serde::Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Action {
        connector: u32,
        id_tag: String,
    }

    #[test]
    fn a_bad_body_names_the_field() {
        let good = parse_json::<Action>(br#"{"connector": 1, "id_tag": "X"}"#).expect("valid");
        assert_eq!((good.connector, good.id_tag.as_str()), (1, "X"));
        let e = parse_json::<Action>(br#"{"connector": "one", "id_tag": "X"}"#).unwrap_err();
        assert_eq!(e.status, StatusCode::BAD_REQUEST);
        assert_eq!(e.field.as_deref(), Some("connector"));
        let e = parse_json::<Action>(br#"{"connector": 1}"#).unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body"));
        assert!(e.error.contains("id_tag"), "{}", e.error);
        let e = parse_json::<Action>(b"{").unwrap_err();
        assert_eq!(e.field.as_deref(), Some("body"));
    }

    #[test]
    fn config_problems_of_the_edited_item_are_relative() {
        let problems = ConfigProblems(vec![
            ConfigProblem::new("zones[1].limit_a", "too big"),
            ConfigProblem::new("stations[0].zone", "unknown zone"),
        ]);
        let e = ApiError::config(problems, Some("zones[1]."));
        assert_eq!(e.field.as_deref(), Some("limit_a"));
        assert_eq!(e.problems[1].field, "stations[0].zone");
    }
}
