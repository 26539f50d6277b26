//! Who may do what. Three roles (viewer < operator < admin), and `bms` for a building
//! management system's token: it reads what a viewer reads and may write the BMS caps,
//! which otherwise only an admin may (an operator may not). People log in with a
//! password and get a session cookie, machines present an API token as a bearer.
//!
//! * No default password: while no user exists, a one-time setup code is printed to the
//!   console at start, and `POST /api/v1/setup` with it creates the first admin.
//! * Sessions: an `HttpOnly; SameSite=Strict` cookie, forgotten after [`SESSION_IDLE`]
//!   without use (and at restart: sessions live in memory).
//! * CSRF: a request authenticated by the cookie that changes something must carry the
//!   session's token in `X-CSRF-Token` (synchroniser token: the UI reads it from the
//!   login answer, which another site cannot). A change or WebSocket upgrade whose
//!   `Origin` is another site is refused, and JSON bodies must say
//!   `Content-Type: application/json` (an HTML form cannot). Bearer requests need no
//!   CSRF token: a browser never adds that header on its own.
//! * Failed logins (and setup codes) are limited per client address ([`limiter`]).

pub mod accounts;
pub mod limiter;

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use actix_web::body::BoxBody;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::dev::{ServiceRequest, ServiceResponse};
use actix_web::http::{header, Method};
use actix_web::middleware::Next;
use actix_web::{web, FromRequest, HttpMessage, HttpRequest};
use ampwarden_actors::store::{LogLevel, Store};
use futures_util::future::{ready, Ready};
use serde::{Deserialize, Serialize};

use crate::controller::Controller;
use crate::http::error::ApiError;
use accounts::Accounts;
use limiter::LoginLimiter;

/// The session cookie's name.
pub const SESSION_COOKIE: &str = "ampwarden_session";
/// The header carrying the session's CSRF token.
pub const CSRF_HEADER: &str = "X-CSRF-Token";
/// A session unused this long is forgotten.
pub const SESSION_IDLE: Duration = Duration::from_secs(12 * 3600);

/// What a user or token may do; each role includes the ones below it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Reads everything except users and tokens.
    Viewer,
    /// A viewer that may also write the BMS caps (`/api/v1/bms/...`); nothing else.
    Bms,
    /// Also remote actions on stations and badges.
    Operator,
    /// Everything.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Viewer => "viewer",
            Role::Bms => "bms",
            Role::Operator => "operator",
            Role::Admin => "admin",
        }
    }
}

/// Who may call a route.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Anyone (health, login, setup, the OpenAPI document).
    Public,
    /// An authenticated caller with at least this role.
    Role(Role),
}

/// How a caller proved who they are.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Via {
    Session { id: String, csrf: String },
    Token { id: String },
}

/// The authenticated caller, put in the request by the access check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub role: Role,
    pub via: Via,
}

impl FromRequest for Identity {
    type Error = ApiError;
    type Future = Ready<Result<Identity, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut actix_web::dev::Payload) -> Self::Future {
        ready(
            req.extensions()
                .get::<Identity>()
                .cloned()
                .ok_or_else(|| ApiError::unauthorized("log in or present an API token")),
        )
    }
}

struct Session {
    user: String,
    csrf: String,
    last_used: Instant,
}

/// The in-memory side of authentication: the setup code, open sessions, the limiter.
pub struct AuthState {
    accounts: Accounts,
    setup_code: Mutex<Option<String>>,
    sessions: Mutex<HashMap<String, Session>>,
    limiter: Mutex<LoginLimiter>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The guarded maps stay consistent even if a holder panicked.
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl AuthState {
    /// Opens setup (and prints its code) when no user exists yet.
    pub fn new(store: Store) -> AuthState {
        let state = AuthState {
            accounts: Accounts::new(store),
            setup_code: Mutex::new(None),
            sessions: Mutex::new(HashMap::new()),
            limiter: Mutex::new(LoginLimiter::default()),
        };
        state.open_setup_if_needed();
        state
    }

    pub fn accounts(&self) -> &Accounts {
        &self.accounts
    }

    /// Generates a fresh setup code when there is no user (at start, after a restore
    /// that brought no users); prints it for the installer.
    pub fn open_setup_if_needed(&self) {
        let has_users = self.accounts.has_users().unwrap_or_else(|e| {
            tracing::error!(error = %e, "cannot read the users; setup stays closed");
            true
        });
        let mut code = lock(&self.setup_code);
        if has_users {
            *code = None;
            return;
        }
        if code.is_some() {
            return;
        }
        match new_setup_code() {
            Ok(c) => {
                tracing::info!(setup_code = %c, "no user yet: open the UI and create the admin with this one-time setup code");
                eprintln!("ampwarden: first start. One-time setup code: {c} (enter it in the UI to create the admin)");
                *code = Some(c);
            }
            Err(e) => tracing::error!(error = %e, "cannot generate a setup code"),
        }
    }

    /// The one-time setup code while setup is open. Never exposed over HTTP.
    pub fn setup_code(&self) -> Option<String> {
        lock(&self.setup_code).clone()
    }

    /// Checks `code` and, if right, closes setup for good.
    pub fn take_setup_code(&self, code: &str) -> Result<(), ApiError> {
        let mut open = lock(&self.setup_code);
        let Some(expected) = open.as_ref() else {
            return Err(ApiError::conflict(
                "setup is already done: log in as an admin",
            ));
        };
        if !same_code(expected, code) {
            return Err(ApiError::forbidden(
                "wrong setup code (see the controller's console or log)",
            )
            .with_field("code"));
        }
        *open = None;
        Ok(())
    }

    pub fn setup_open(&self) -> bool {
        lock(&self.setup_code).is_some()
    }

    /// A new session for `user`: (session id, CSRF token).
    pub fn open_session(&self, user: &str) -> Result<(String, String), ApiError> {
        let id = accounts::random_text(32).map_err(ApiError::internal)?;
        let csrf = accounts::random_text(24).map_err(ApiError::internal)?;
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        sessions.retain(|_, s| now.duration_since(s.last_used) < SESSION_IDLE);
        sessions.insert(
            id.clone(),
            Session {
                user: user.to_owned(),
                csrf: csrf.clone(),
                last_used: now,
            },
        );
        Ok((id, csrf))
    }

    pub fn close_session(&self, id: &str) {
        lock(&self.sessions).remove(id);
    }

    /// Ends every session of `user` (deleted, or password changed) but `keep`.
    pub fn close_sessions_of(&self, user: &str, keep: Option<&str>) {
        lock(&self.sessions).retain(|id, s| s.user != user || Some(id.as_str()) == keep);
    }

    /// The user and CSRF token of a live session, refreshing its idle time.
    fn session(&self, id: &str) -> Option<(String, String)> {
        let mut sessions = lock(&self.sessions);
        let now = Instant::now();
        let live = sessions
            .get(id)
            .is_some_and(|s| now.duration_since(s.last_used) < SESSION_IDLE);
        if !live {
            sessions.remove(id);
            return None;
        }
        let s = sessions.get_mut(id)?;
        s.last_used = now;
        Some((s.user.clone(), s.csrf.clone()))
    }

    /// `Err(retry after, s)` while `client` is locked out.
    pub fn login_allowed(&self, client: IpAddr) -> Result<(), ApiError> {
        lock(&self.limiter)
            .check(client, Instant::now())
            .map_err(|wait| {
                ApiError::too_many(
                    wait,
                    format!("too many failed attempts; try again in {wait} s"),
                )
            })
    }

    pub fn login_failed(&self, client: IpAddr) {
        lock(&self.limiter).failed(client, Instant::now());
    }

    pub fn login_succeeded(&self, client: IpAddr) {
        lock(&self.limiter).succeeded(client);
    }

    /// Who is calling: a bearer token, else a session cookie, else nobody. A bearer that
    /// matches nothing is an error rather than "nobody", so a script learns at once.
    fn identify(&self, req: &ServiceRequest) -> Result<Option<Identity>, ApiError> {
        if let Some(value) = req.headers().get(header::AUTHORIZATION) {
            let bearer = value
                .to_str()
                .ok()
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or_else(|| {
                    ApiError::unauthorized("the Authorization header must be \"Bearer TOKEN\"")
                })?;
            let token = self
                .accounts
                .token_for(bearer)
                .map_err(ApiError::from)?
                .ok_or_else(|| ApiError::unauthorized("unknown or revoked API token"))?;
            return Ok(Some(Identity {
                name: token.name,
                role: token.role,
                via: Via::Token { id: token.id },
            }));
        }
        let Some(cookie) = req.cookie(SESSION_COOKIE) else {
            return Ok(None);
        };
        let id = cookie.value().to_owned();
        let Some((user, csrf)) = self.session(&id) else {
            return Ok(None);
        };
        // The role is read at every request so a demotion or removal applies at once.
        match self.accounts.user(&user).map_err(ApiError::from)? {
            Some(u) => Ok(Some(Identity {
                name: u.name,
                role: u.role,
                via: Via::Session { id, csrf },
            })),
            None => {
                self.close_session(&id);
                Ok(None)
            }
        }
    }
}

/// `XXXX-XXXX-XXXX` from an alphabet without look-alikes (60 bits).
fn new_setup_code() -> Result<String, getrandom::Error> {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHJKLMNPQRSTUVWXYZ23456789";
    let mut bytes = [0u8; 12];
    getrandom::fill(&mut bytes)?;
    let chars: Vec<char> = bytes
        .iter()
        .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
        .collect();
    Ok(chars
        .chunks(4)
        .map(|c| c.iter().collect::<String>())
        .collect::<Vec<_>>()
        .join("-"))
}

/// Compares setup codes ignoring case, spaces and dashes, in time independent of where
/// they differ.
fn same_code(expected: &str, given: &str) -> bool {
    let norm = |s: &str| -> Vec<u8> {
        s.bytes()
            .filter(|b| !matches!(b, b'-' | b' '))
            .map(|b| b.to_ascii_uppercase())
            .collect()
    };
    let (a, b) = (norm(expected), norm(given));
    a.len() == b.len() && a.iter().zip(&b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The session cookie: HttpOnly, SameSite=Strict, whole site. `Secure` is added over TLS
/// ([`secure_over_tls`]); the plain listener cannot have it (browsers would drop it).
pub fn session_cookie(id: &str) -> Cookie<'static> {
    Cookie::build(SESSION_COOKIE, id.to_owned())
        .http_only(true)
        .same_site(SameSite::Strict)
        .path("/")
        .finish()
}

/// An expired session cookie, to log out.
pub fn removal_cookie() -> Cookie<'static> {
    let mut c = session_cookie("");
    c.make_removal();
    c
}

fn is_safe(method: &Method) -> bool {
    matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// Whether an `Origin` header, if present, names the host the request was sent to.
fn same_origin(req: &ServiceRequest) -> bool {
    let Some(origin) = req.headers().get(header::ORIGIN) else {
        return true;
    };
    let Some(host) = req
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok())
    else {
        return false;
    };
    origin.to_str().is_ok_and(|o| {
        o.strip_prefix("http://")
            .or_else(|| o.strip_prefix("https://"))
            .is_some_and(|rest| rest == host)
    })
}

/// Whether this is a WebSocket upgrade (the events stream).
fn is_websocket(req: &ServiceRequest) -> bool {
    req.headers()
        .get(header::UPGRADE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
}

/// The access check every route goes through (see [`crate::http::routes`]).
pub async fn check_access(
    access: Access,
    req: ServiceRequest,
    next: Next<BoxBody>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    // Browsers say where a request comes from; another site may not drive this one.
    if !same_origin(&req) && (!is_safe(req.method()) || is_websocket(&req)) {
        return Err(ApiError::forbidden("cross-origin request refused").into());
    }
    let controller = req
        .app_data::<web::Data<Controller>>()
        .cloned()
        .ok_or_else(|| ApiError::internal("the HTTP app has no controller"))?;
    let identity = match access {
        Access::Public => controller.auth().identify(&req).unwrap_or(None),
        Access::Role(_) => controller.auth().identify(&req)?,
    };
    if let Access::Role(needed) = access {
        let Some(who) = &identity else {
            return Err(ApiError::unauthorized("log in or present an API token").into());
        };
        if let Via::Session { csrf, .. } = &who.via {
            if !is_safe(req.method()) {
                let given = req
                    .headers()
                    .get(CSRF_HEADER)
                    .and_then(|v| v.to_str().ok())
                    .unwrap_or_default();
                if given.is_empty() || given != csrf {
                    return Err(ApiError::forbidden(
                        "missing or wrong CSRF token: send the session's csrf_token in X-CSRF-Token",
                    )
                    .with_field(CSRF_HEADER)
                    .into());
                }
            }
        }
        // The BMS caps: the bms role or an admin, not the roles between them.
        let bms_only = needed == Role::Bms && who.role != Role::Bms && who.role != Role::Admin;
        if who.role < needed || bms_only {
            return Err(ApiError::forbidden(format!(
                "this needs the {} role; {} is {}",
                needed.as_str(),
                who.name,
                who.role.as_str()
            ))
            .into());
        }
    }
    if let Some(who) = identity {
        req.extensions_mut().insert(who);
    }
    next.call(req).await
}

/// HSTS over TLS: a year, this host only (a site names its controller as it likes).
pub const HSTS: &str = "max-age=31536000";

/// Over a TLS connection: every cookie set gets `Secure`, and the answer carries
/// `Strict-Transport-Security`, so a browser that came over HTTPS stays on it. The plain
/// listener's answers are left as they are.
pub async fn secure_over_tls(
    req: ServiceRequest,
    next: Next<impl actix_web::body::MessageBody + 'static>,
) -> Result<ServiceResponse<BoxBody>, actix_web::Error> {
    if req.conn_data::<crate::tls::TlsPeer>().is_none() {
        return next
            .call(req)
            .await
            .map(ServiceResponse::map_into_boxed_body);
    }
    // A refusal that comes back as an error (e.g. the access check's 401) is answered by
    // actix itself, without these headers; it sets no cookie either. (The request cannot
    // be kept aside to answer it here: a clone of it breaks the routing.)
    let mut res = next.call(req).await?.map_into_boxed_body();
    let headers = res.headers_mut();
    headers.insert(
        header::STRICT_TRANSPORT_SECURITY,
        header::HeaderValue::from_static(HSTS),
    );
    let cookies: Vec<header::HeaderValue> = headers.get_all(header::SET_COOKIE).cloned().collect();
    if !cookies.is_empty() {
        headers.remove(header::SET_COOKIE);
        for cookie in cookies {
            headers.append(header::SET_COOKIE, with_secure(cookie));
        }
    }
    Ok(res)
}

/// A `Set-Cookie` value with the `Secure` attribute.
fn with_secure(cookie: header::HeaderValue) -> header::HeaderValue {
    let Ok(text) = cookie.to_str() else {
        return cookie;
    };
    let has = text
        .split(';')
        .skip(1)
        .any(|attr| attr.trim().eq_ignore_ascii_case("secure"));
    if has {
        return cookie;
    }
    header::HeaderValue::from_str(&format!("{text}; Secure")).unwrap_or(cookie)
}

/// The caller's address, for the login limiter. Behind a reverse proxy every client
/// shares the proxy's address (and its limit).
pub fn client_ip(req: &HttpRequest) -> IpAddr {
    req.peer_addr()
        .map_or(IpAddr::from([0, 0, 0, 0]), |a| a.ip())
}

/// Writes an operator log line naming who did something.
pub fn audit(store: &Store, who: &str, message: impl std::fmt::Display) {
    audit_station(store, who, None, message);
}

pub fn audit_station(
    store: &Store,
    who: &str,
    station: Option<&ampwarden_actors::units::ChargePointId>,
    message: impl std::fmt::Display,
) {
    let line = format!("{message} (by {who})");
    tracing::info!(user = %who, "{line}");
    if let Err(e) = store.log(LogLevel::Info, station, line) {
        tracing::error!(error = %e, "cannot write the operator log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn setup_codes_compare_ignoring_case_and_dashes_only() {
        let code = new_setup_code().expect("random");
        assert_eq!(code.len(), 14);
        assert!(same_code(&code, &code.to_lowercase().replace('-', " ")));
        assert!(!same_code(&code, &code[..13]));
        assert!(!same_code("ABCD-EFGH-JKLM", "ABCD-EFGH-JKLN"));
    }

    #[test]
    fn cookies_get_secure_once() {
        let secure = |v: &'static str| {
            with_secure(header::HeaderValue::from_static(v))
                .to_str()
                .expect("text")
                .to_owned()
        };
        let cookie = session_cookie("abc").to_string();
        let set = with_secure(header::HeaderValue::from_str(&cookie).expect("header"));
        assert_eq!(set.to_str().expect("text"), format!("{cookie}; Secure"));
        assert_eq!(secure("a=1; Secure; Path=/"), "a=1; Secure; Path=/");
        assert_eq!(secure("secure=1"), "secure=1; Secure");
    }

    #[test]
    fn roles_are_ordered() {
        assert!(Role::Viewer < Role::Operator && Role::Operator < Role::Admin);
        assert!(Role::Viewer < Role::Bms && Role::Bms < Role::Operator);
    }
}
