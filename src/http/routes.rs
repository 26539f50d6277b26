//! The route table: every endpoint once, with who may call it and what it is for. The
//! same table registers the routes (with their access check) and writes the OpenAPI
//! document, so the document cannot drift from what the server does.

use actix_web::body::BoxBody;
use actix_web::dev::ServiceRequest;
use actix_web::http::Method;
use actix_web::middleware::{from_fn, Next};
use actix_web::{web, FromRequest, Handler, HttpResponse, Responder};
use serde_json::{json, Map, Value};

use super::api::{
    backup, badges, bms, federation, logs, session, settings, site, stations, transactions, uplink,
    users,
};
use super::auth::{check_access, Access, Role};
use super::error::ApiError;
use super::{events, metrics};

const PUBLIC: Access = Access::Public;
const VIEWER: Access = Access::Role(Role::Viewer);
const OPERATOR: Access = Access::Role(Role::Operator);
const ADMIN: Access = Access::Role(Role::Admin);
/// The `bms` role or an admin.
const BMS: Access = Access::Role(Role::Bms);

/// What an endpoint answers with.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Produces {
    Json,
    Csv,
    Toml,
    Text,
    Svg,
    WebSocket,
    Nothing,
}

/// One endpoint as documented.
#[derive(Clone, Debug)]
pub struct Op {
    pub method: Method,
    pub path: &'static str,
    pub access: Access,
    pub summary: &'static str,
    /// What the request body holds, if it takes one.
    pub body: Option<&'static str>,
    /// Accepted query parameters and what they mean.
    pub query: &'static [(&'static str, &'static str)],
    pub produces: Produces,
}

impl Op {
    fn new(method: Method, path: &'static str, access: Access, summary: &'static str) -> Op {
        Op {
            method,
            path,
            access,
            summary,
            body: None,
            query: &[],
            produces: Produces::Json,
        }
    }

    fn body(mut self, body: &'static str) -> Op {
        self.body = Some(body);
        self
    }

    fn query(mut self, query: &'static [(&'static str, &'static str)]) -> Op {
        self.query = query;
        self
    }

    fn produces(mut self, produces: Produces) -> Op {
        self.produces = produces;
        self
    }
}

fn get(path: &'static str, access: Access, summary: &'static str) -> Op {
    Op::new(Method::GET, path, access, summary)
}
fn post(path: &'static str, access: Access, summary: &'static str) -> Op {
    Op::new(Method::POST, path, access, summary)
}
fn put(path: &'static str, access: Access, summary: &'static str) -> Op {
    Op::new(Method::PUT, path, access, summary)
}
fn delete(path: &'static str, access: Access, summary: &'static str) -> Op {
    Op::new(Method::DELETE, path, access, summary).produces(Produces::Nothing)
}

/// Where the table goes: into the server, or into the document.
pub trait Table {
    fn add<F, Args>(&mut self, op: Op, handler: F)
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static;
}

const TX_QUERY: &[(&str, &str)] = &[
    ("station", "only this station"),
    ("from", "started at or after (RFC 3339)"),
    ("to", "started before (RFC 3339)"),
];
const LOG_QUERY: &[(&str, &str)] = &[
    ("station", "only this station"),
    ("limit", "newest N entries (default 500, at most 100000)"),
];

/// Every endpoint of the API.
pub fn table<T: Table>(t: &mut T) {
    use Produces::*;
    // Unauthenticated.
    t.add(
        get("/api/v1/health", PUBLIC, "Liveness: {\"status\":\"ok\"}"),
        health,
    );
    t.add(
        get("/api/v1/openapi.json", PUBLIC, "This OpenAPI document"),
        openapi,
    );
    t.add(
        get("/metrics", PUBLIC, "Prometheus metrics (text format)").produces(Text),
        metrics::metrics,
    );
    t.add(
        get(
            "/api/v1/setup",
            PUBLIC,
            "Whether first-start setup is still open",
        ),
        session::setup_state,
    );
    t.add(
        post(
            "/api/v1/setup",
            PUBLIC,
            "Create the first admin with the one-time setup code printed at start; opens a session",
        )
        .body("{code, name, password}"),
        session::setup,
    );
    t.add(
        post(
            "/api/v1/auth/login",
            PUBLIC,
            "Log in; sets the session cookie and returns the CSRF token",
        )
        .body("{name, password}"),
        session::login,
    );
    t.add(
        post("/api/v1/auth/logout", PUBLIC, "End the session").produces(Nothing),
        session::logout,
    );
    t.add(
        get(
            "/api/v1/auth/session",
            PUBLIC,
            "Who is logged in, with the session's CSRF token",
        ),
        session::current,
    );

    // Live state.
    t.add(
        get(
            "/api/v1/site",
            VIEWER,
            "Live totals per zone: limit, EV budget, EV draw, other loads, production",
        ),
        site::site,
    );
    t.add(
        get(
            "/api/v1/site/chart.svg",
            VIEWER,
            "The last hours of site load, EV load and EV budget of a root zone, as SVG",
        )
        .query(&[
            ("zone", "a root zone (default: the first)"),
            ("hours", "1 to 24 (default 24)"),
            ("t", "ignored: lets a page reload the image"),
        ])
        .produces(Svg),
        site::chart,
    );
    t.add(
        get(
            "/api/v1/uplink",
            VIEWER,
            "The CPO uplink: per station its upstream connection, backlog, last error and the CPO's limits",
        ),
        uplink::status,
    );
    t.add(
        get(
            "/api/v1/bms",
            VIEWER,
            "The BMS interface: caps in force (site and zones, remaining time, fail-safe), Modbus clients, log of writes",
        ),
        bms::status,
    );
    t.add(
        put(
            "/api/v1/bms/cap",
            BMS,
            "Write the site EV cap for a validity; then the fail-safe cap applies (bms role or admin; bms.write = true)",
        )
        .body("{value, unit?: \"A\" (per phase, default) | \"W\" (in all), validity_s?}"),
        bms::write_site,
    );
    t.add(
        delete(
            "/api/v1/bms/cap",
            BMS,
            "End the written site cap now: the fail-safe cap applies",
        )
        .produces(Json),
        bms::release_site,
    );
    t.add(
        put(
            "/api/v1/bms/zones/{zone}/cap",
            BMS,
            "Write a zone's EV cap (A per phase) for a validity; then its fail-safe cap, if any, applies",
        )
        .body("{value, validity_s?}"),
        bms::write_zone,
    );
    t.add(
        delete(
            "/api/v1/bms/zones/{zone}/cap",
            BMS,
            "End a zone's written cap now",
        )
        .produces(Json),
        bms::release_zone,
    );
    t.add(
        get(
            "/api/v1/bms/registers",
            VIEWER,
            "The BMS Modbus register map for this configuration (every register, its type, unit and access)",
        ),
        bms::register_map,
    );
    t.add(
        get(
            "/api/v1/bms/registers.csv",
            VIEWER,
            "The register map as CSV, for BMS tools",
        )
        .produces(Csv),
        bms::register_map_csv,
    );
    t.add(
        get(
            "/api/v1/federation",
            VIEWER,
            "This controller's federation: a primary's secondaries (link, grant, demand), or a secondary's link",
        ),
        federation::federation,
    );
    t.add(
        get(
            "/api/v1/federation/stations",
            VIEWER,
            "Every station of every secondary, as last reported, with its secondary",
        )
        .query(&[("secondary", "only this secondary's")]),
        federation::stations,
    );
    t.add(
        post(
            "/api/v1/federation/secondaries/{name}/revoke",
            ADMIN,
            "Revoke a secondary's token: its link closes and the token is refused until reinstated",
        )
        .body("none"),
        federation::revoke,
    );
    t.add(
        get(
            "/api/v1/federation/secondaries/{name}/transactions",
            VIEWER,
            "A secondary's transactions, newest first, read over its link",
        )
        .query(&[
            ("station", "only this station's"),
            ("limit", "at most this many (default 200, at most 1000)"),
        ]),
        federation::transactions,
    );
    t.add(
        get(
            "/api/v1/federation/secondaries/{name}/logs",
            VIEWER,
            "A secondary's operator log, newest first, read over its link",
        )
        .query(&[
            ("station", "only this station's"),
            ("limit", "at most this many (default 200, at most 1000)"),
        ]),
        federation::logs,
    );
    t.add(
        post(
            "/api/v1/federation/secondaries/{name}/stations/{id}/actions/{action}",
            OPERATOR,
            "A remote action on a secondary's station (as /api/v1/stations/{id}/actions/{action}), relayed to it",
        )
        .body("as the station action's"),
        federation::relay_action,
    );
    t.add(
        delete(
            "/api/v1/federation/secondaries/{name}/revoke",
            ADMIN,
            "Reinstate a revoked secondary's token",
        ),
        federation::unrevoke,
    );
    t.add(
        get(
            "/api/v1/events",
            VIEWER,
            "WebSocket of live updates (station snapshots, site totals)",
        )
        .produces(WebSocket),
        events::events,
    );

    // Stations.
    t.add(
        get(
            "/api/v1/stations",
            VIEWER,
            "Stations: configuration and live state",
        ),
        stations::list,
    );
    t.add(
        post("/api/v1/stations", ADMIN, "Add a station")
            .body("{id, zone, max_current_a, phases?, phase?, vip?, password?, connectors?}"),
        stations::add,
    );
    t.add(
        get(
            "/api/v1/stations/{id}",
            VIEWER,
            "One station: configuration and live state",
        ),
        stations::detail,
    );
    t.add(
        put(
            "/api/v1/stations/{id}",
            ADMIN,
            "Edit a station (fields left out keep their value)",
        )
        .body("{zone?, max_current_a?, phases?, phase?, vip?, password?, connectors?}"),
        stations::edit,
    );
    t.add(
        delete(
            "/api/v1/stations/{id}",
            ADMIN,
            "Remove a station (closes its connection)",
        ),
        stations::remove,
    );
    t.add(
        post("/api/v1/stations/{id}/actions/{action}", OPERATOR, "Remote action: start, stop, reset, unlock, availability")
            .body("start {connector?, id_tag}; stop {transaction_id}; reset {type: Soft|Hard}; unlock {connector}; availability {connector?, available}"),
        stations::action,
    );
    t.add(
        get(
            "/api/v1/stations/{id}/configuration",
            OPERATOR,
            "Read the station's configuration keys (GetConfiguration)",
        )
        .query(&[("key", "one key (default: all)")]),
        stations::get_configuration,
    );
    t.add(
        put(
            "/api/v1/stations/{id}/configuration",
            ADMIN,
            "Change one configuration key (ChangeConfiguration)",
        )
        .body("{key, value}"),
        stations::change_configuration,
    );
    t.add(
        post(
            "/api/v1/stations/{id}/firmware",
            ADMIN,
            "Ask the station to install firmware (UpdateFirmware)",
        )
        .body("{location, retrieve_date?, retries?, retry_interval_s?}"),
        stations::update_firmware,
    );
    t.add(
        post(
            "/api/v1/stations/{id}/diagnostics",
            ADMIN,
            "Ask the station to upload diagnostics (GetDiagnostics)",
        )
        .body("{location, retries?, retry_interval_s?, start_time?, stop_time?}"),
        stations::diagnostics,
    );
    t.add(
        get(
            "/api/v1/commissioning",
            VIEWER,
            "Unknown stations that tried to connect",
        ),
        stations::commissioning,
    );
    t.add(
        post(
            "/api/v1/commissioning/{id}/accept",
            ADMIN,
            "Accept a waiting station into a zone",
        )
        .body("{zone}"),
        stations::accept,
    );
    t.add(
        post(
            "/api/v1/commissioning/accept-all",
            ADMIN,
            "Accept every waiting station into a zone",
        )
        .body("{zone}"),
        stations::accept_all,
    );

    // Transactions.
    t.add(
        get(
            "/api/v1/transactions",
            VIEWER,
            "Transactions with per-station and site totals",
        )
        .query(TX_QUERY),
        transactions::list,
    );
    t.add(
        get("/api/v1/transactions.csv", VIEWER, "Transactions as CSV")
            .query(TX_QUERY)
            .produces(Csv),
        transactions::csv,
    );
    t.add(
        get(
            "/api/v1/transactions/{id}",
            VIEWER,
            "One transaction with its meter samples",
        ),
        transactions::detail,
    );

    // Badges.
    t.add(
        get(
            "/api/v1/badges",
            VIEWER,
            "Badges (stored and from the file)",
        ),
        badges::list,
    );
    t.add(
        post("/api/v1/badges", OPERATOR, "Add a badge")
            .body("{id_tag, vip?, expires?, blocked?, note?}"),
        badges::add,
    );
    t.add(
        get(
            "/api/v1/badges.csv",
            VIEWER,
            "Badges as CSV (id_tag,vip,expires,blocked,note)",
        )
        .produces(Csv),
        badges::export_csv,
    );
    t.add(
        post(
            "/api/v1/badges.csv",
            OPERATOR,
            "Import badges from CSV (same columns as the export)",
        )
        .query(&[(
            "replace",
            "true: the CSV becomes the whole stored list (default: add and update)",
        )])
        .body("text/csv"),
        badges::import_csv,
    );
    t.add(
        post(
            "/api/v1/badges/push",
            OPERATOR,
            "Send the local authorisation list to the connected stations (SendLocalList)",
        )
        .query(&[("station", "only this station")]),
        badges::push,
    );
    t.add(
        get("/api/v1/badges/{id_tag}", VIEWER, "One badge"),
        badges::detail,
    );
    t.add(
        put("/api/v1/badges/{id_tag}", OPERATOR, "Edit a badge")
            .body("{vip?, expires?, blocked?, note?}"),
        badges::edit,
    );
    t.add(
        delete("/api/v1/badges/{id_tag}", OPERATOR, "Delete a stored badge"),
        badges::remove,
    );

    // Configuration of the site.
    t.add(
        get("/api/v1/zones", VIEWER, "Zones (the tree of supplies)"),
        settings::zones,
    );
    t.add(
        post("/api/v1/zones", ADMIN, "Add a zone")
            .body("{id, parent?, limit_a, static_ev_limit_a?, meter?}"),
        settings::add_zone,
    );
    t.add(
        get("/api/v1/zones/{id}", VIEWER, "One zone"),
        settings::zone,
    );
    t.add(
        put("/api/v1/zones/{id}", ADMIN, "Replace a zone")
            .body("{parent?, limit_a, static_ev_limit_a?, meter?}"),
        settings::edit_zone,
    );
    t.add(
        delete("/api/v1/zones/{id}", ADMIN, "Remove a zone"),
        settings::remove_zone,
    );
    t.add(
        get("/api/v1/meters", VIEWER, "Meters with their latest status"),
        settings::meters,
    );
    t.add(
        post("/api/v1/meters", ADMIN, "Add a meter")
            .body("the [[meters]] fields of the configuration file"),
        settings::add_meter,
    );
    t.add(
        get("/api/v1/meters/{id}", VIEWER, "One meter"),
        settings::meter,
    );
    t.add(
        get(
            "/api/v1/meters/{id}/reading",
            VIEWER,
            "Read now: the meter's latest reading and status",
        ),
        settings::meter_reading,
    );
    t.add(
        put("/api/v1/meters/{id}", ADMIN, "Replace a meter")
            .body("the [[meters]] fields without id"),
        settings::edit_meter,
    );
    t.add(
        delete("/api/v1/meters/{id}", ADMIN, "Remove a meter"),
        settings::remove_meter,
    );
    t.add(
        get("/api/v1/tariffs", VIEWER, "Time-of-use periods"),
        settings::tariffs,
    );
    t.add(
        put("/api/v1/tariffs", ADMIN, "Replace the time-of-use periods")
            .body("[{name, days, from, to, ev_cap_pct?, price_per_kwh?}]"),
        settings::put_tariffs,
    );
    t.add(
        get(
            "/api/v1/settings",
            VIEWER,
            "Site settings: site, control, auth; server (read-only)",
        ),
        settings::settings,
    );
    t.add(
        put(
            "/api/v1/settings",
            ADMIN,
            "Change site settings (sections left out keep their value)",
        )
        .body("{site?, control?, auth?}"),
        settings::put_settings,
    );

    // Logs.
    t.add(
        get("/api/v1/logs", VIEWER, "The operator log, newest first").query(LOG_QUERY),
        logs::list,
    );
    t.add(
        get("/api/v1/logs.csv", VIEWER, "The operator log as CSV")
            .query(LOG_QUERY)
            .produces(Csv),
        logs::csv,
    );

    // Save & restore.
    t.add(
        get(
            "/api/v1/config",
            ADMIN,
            "Backup: configuration, badges, users and tokens, stations (JSON)",
        ),
        backup::export,
    );
    t.add(
        get(
            "/api/v1/config.toml",
            ADMIN,
            "The configuration in force as a TOML file",
        )
        .produces(Toml),
        backup::export_toml,
    );
    t.add(
        put(
            "/api/v1/config",
            ADMIN,
            "Restore a backup (checked completely before anything is written)",
        )
        .body("a backup as given by GET /api/v1/config"),
        backup::import,
    );

    // Users and API tokens.
    t.add(get("/api/v1/users", ADMIN, "Users"), users::list);
    t.add(
        post("/api/v1/users", ADMIN, "Add a user").body("{name, password, role}"),
        users::add,
    );
    t.add(
        put(
            "/api/v1/users/{name}",
            ADMIN,
            "Change a user's role or password",
        )
        .body("{role?, password?}"),
        users::edit,
    );
    t.add(
        delete("/api/v1/users/{name}", ADMIN, "Remove a user"),
        users::remove,
    );
    t.add(
        put("/api/v1/auth/password", VIEWER, "Change one's own password")
            .body("{current, password}"),
        users::change_own_password,
    );
    t.add(
        get(
            "/api/v1/tokens",
            ADMIN,
            "API tokens (without their secrets)",
        ),
        users::tokens,
    );
    t.add(
        post(
            "/api/v1/tokens",
            ADMIN,
            "Create an API token; its secret is shown once",
        )
        .body("{name, role}"),
        users::add_token,
    );
    t.add(
        delete("/api/v1/tokens/{id}", ADMIN, "Revoke an API token"),
        users::remove_token,
    );
}

async fn health() -> HttpResponse {
    HttpResponse::Ok().json(json!({ "status": "ok" }))
}

async fn openapi() -> HttpResponse {
    static DOCUMENT: std::sync::OnceLock<Value> = std::sync::OnceLock::new();
    HttpResponse::Ok().json(DOCUMENT.get_or_init(openapi_document))
}

// --- registration -----------------------------------------------------------------------

/// Registers the table into an actix app, one resource per path, each route wrapped in
/// its access check.
#[derive(Default)]
pub struct Registrar {
    resources: Vec<(&'static str, actix_web::Resource)>,
}

impl Table for Registrar {
    fn add<F, Args>(&mut self, op: Op, handler: F)
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let access = op.access;
        let route = web::method(op.method).to(handler).wrap(from_fn(
            move |req: ServiceRequest, next: Next<BoxBody>| check_access(access, req, next),
        ));
        match self.resources.iter().position(|(p, _)| *p == op.path) {
            Some(i) => {
                let (path, resource) = self.resources.remove(i);
                self.resources.insert(i, (path, resource.route(route)));
            }
            None => self
                .resources
                .push((op.path, web::resource(op.path).route(route))),
        }
    }
}

impl Registrar {
    pub fn register(self, cfg: &mut web::ServiceConfig) {
        for (_, resource) in self.resources {
            cfg.service(resource.default_service(web::to(method_not_allowed)));
        }
    }
}

async fn method_not_allowed() -> HttpResponse {
    actix_web::ResponseError::error_response(&ApiError::new(
        actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
        "this method is not allowed here (see /api/v1/openapi.json)",
    ))
}

// --- the OpenAPI document ------------------------------------------------------------------

#[derive(Default)]
struct Documenter {
    ops: Vec<Op>,
}

impl Table for Documenter {
    fn add<F, Args>(&mut self, op: Op, _: F)
    where
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        self.ops.push(op);
    }
}

/// Every documented endpoint.
pub fn ops() -> Vec<Op> {
    let mut d = Documenter::default();
    table(&mut d);
    d.ops
}

fn access_text(access: Access) -> &'static str {
    match access {
        Access::Public => "public",
        Access::Role(r) => r.as_str(),
    }
}

fn operation(op: &Op) -> Value {
    let tag = op
        .path
        .trim_start_matches("/api/v1/")
        .trim_start_matches('/')
        .split(['/', '.'])
        .next()
        .unwrap_or("api");
    let mut parameters: Vec<Value> = op
        .path
        .split('/')
        .filter_map(|seg| seg.strip_prefix('{')?.strip_suffix('}'))
        .map(|name| json!({"name": name, "in": "path", "required": true, "schema": {"type": "string"}}))
        .collect();
    parameters.extend(op.query.iter().map(|(name, what)| {
        json!({"name": name, "in": "query", "required": false, "description": what, "schema": {"type": "string"}})
    }));
    let (ok_status, ok_type) = match op.produces {
        Produces::Json => ("200", Some("application/json")),
        Produces::Csv => ("200", Some("text/csv")),
        Produces::Toml => ("200", Some("application/toml")),
        Produces::Text => ("200", Some("text/plain")),
        Produces::Svg => ("200", Some("image/svg+xml")),
        Produces::WebSocket => ("101", None),
        Produces::Nothing => ("204", None),
    };
    let mut ok = json!({"description": "success"});
    if let Some(t) = ok_type {
        ok["content"] = json!({ t: {} });
    }
    let error = json!({"description": "error", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}});
    let mut o = json!({
        "summary": op.summary,
        "tags": [tag],
        "x-required-role": access_text(op.access),
        "parameters": parameters,
        "responses": { ok_status: ok, "default": error },
    });
    if op.access == Access::Public {
        o["security"] = json!([]);
    }
    if let Some(body) = op.body {
        let media = if body == "text/csv" {
            "text/csv"
        } else {
            "application/json"
        };
        o["requestBody"] = json!({"required": true, "description": body, "content": {media: {}}});
    }
    o
}

/// The OpenAPI 3.1 document of [`table`].
pub fn openapi_document() -> Value {
    let mut paths = Map::new();
    for op in ops() {
        let entry = paths.entry(op.path.to_owned()).or_insert_with(|| json!({}));
        entry[op.method.as_str().to_ascii_lowercase()] = operation(&op);
    }
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "ampwarden",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Operator API of the ampwarden EV-charging load manager. Roles: viewer (read), operator (remote actions, badges), admin (everything); each operation's x-required-role says which. Cookie sessions must send X-CSRF-Token on changes."
        },
        "paths": paths,
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer", "description": "an API token created by an admin"},
                "session": {"type": "apiKey", "in": "cookie", "name": super::auth::SESSION_COOKIE}
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "required": ["error"],
                    "properties": {
                        "error": {"type": "string"},
                        "field": {"type": "string", "description": "the request field or configuration key at fault"}
                    }
                }
            }
        },
        "security": [{"bearer": []}, {"session": []}]
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_endpoint_is_listed_once() {
        let ops = ops();
        let mut seen = std::collections::HashSet::new();
        for op in &ops {
            assert!(
                seen.insert((op.method.clone(), op.path)),
                "{} {} twice",
                op.method,
                op.path
            );
        }
        let doc = openapi_document();
        let documented: usize = doc["paths"]
            .as_object()
            .expect("paths")
            .values()
            .map(|p| p.as_object().expect("operations").len())
            .sum();
        assert_eq!(documented, ops.len());
    }

    #[test]
    fn changes_are_never_public_except_login_and_setup() {
        for op in ops() {
            if op.method != Method::GET && op.access == Access::Public {
                assert!(
                    ["/api/v1/setup", "/api/v1/auth/login", "/api/v1/auth/logout"]
                        .contains(&op.path),
                    "{} {} is public",
                    op.method,
                    op.path
                );
            }
        }
    }
}
