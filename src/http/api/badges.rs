//! Badges (RFID cards, app tokens): add, edit, delete, CSV export and import, and
//! pushing the local authorisation list to the stations.
//!
//! Operators' badges live in the store; the configuration file may list more. A stored
//! badge overrides a file badge with the same tag (as in authorisation); editing a file
//! badge stores an override, and only stored badges can be deleted.

use std::collections::BTreeMap;

use actix_web::{web, HttpRequest, HttpResponse};
use ampwarden_actors::config::BadgeConfig;
use ampwarden_actors::ocpp::{
    AuthorizationData, AuthorizationStatus, IdTagInfo, IdToken, SendLocalListRequest, UpdateType,
};
use ampwarden_actors::station::{Call, CallFailure};
use ampwarden_actors::store::BadgeRecord;
use ampwarden_actors::units::{ChargePointId, IdTag};
use chrono::{DateTime, NaiveDate, Utc};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::{created, download, no_content, ok, Ctl};
use crate::controller::Controller;
use crate::http::auth::{audit, Identity};
use crate::http::error::{ApiError, ApiResult, Body};

/// OCPP 1.6 `IdToken`: at most 20 characters.
const MAX_ID_TAG_LEN: usize = 20;
const CSV_HEADER: [&str; 5] = ["id_tag", "vip", "expires", "blocked", "note"];

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Source {
    /// Added by an operator (UI, API, CSV import).
    Store,
    /// From the `[[badges]]` of the configuration.
    File,
}

#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct BadgeView {
    #[serde(flatten)]
    pub badge: BadgeRecord,
    pub source: Source,
}

fn key(tag: &str) -> String {
    tag.to_ascii_uppercase()
}

fn from_file(b: &BadgeConfig) -> BadgeRecord {
    BadgeRecord {
        id_tag: b.id_tag.clone(),
        vip: b.vip,
        expires: b.expires,
        blocked: b.blocked,
        note: None,
    }
}

/// Every badge in force, stored ones first-class, sorted by tag.
pub fn effective(ctl: &Controller) -> ApiResult<Vec<BadgeView>> {
    let mut all: BTreeMap<String, BadgeView> = BTreeMap::new();
    for b in &ctl.config().badges {
        all.insert(
            key(b.id_tag.as_str()),
            BadgeView {
                badge: from_file(b),
                source: Source::File,
            },
        );
    }
    for b in ctl.store().badges()? {
        all.insert(
            key(b.id_tag.as_str()),
            BadgeView {
                badge: b,
                source: Source::Store,
            },
        );
    }
    Ok(all.into_values().collect())
}

fn check_tag(field: &str, tag: &str) -> ApiResult<()> {
    let n = tag.chars().count();
    if n == 0 || n > MAX_ID_TAG_LEN || tag.trim() != tag {
        return Err(ApiError::bad(
            field,
            format!("must be 1 to {MAX_ID_TAG_LEN} characters without surrounding spaces"),
        ));
    }
    Ok(())
}

pub async fn list(ctl: Ctl) -> ApiResult<HttpResponse> {
    Ok(ok(effective(&ctl)?))
}

/// The badge in force with this tag, in any case (tags are matched as the stations match
/// them); a 404 naming it otherwise.
fn find(ctl: &Controller, tag: &str) -> ApiResult<BadgeView> {
    effective(ctl)?
        .into_iter()
        .find(|v| v.badge.id_tag.as_str().eq_ignore_ascii_case(tag))
        .ok_or_else(|| no_badge(tag))
}

/// The one wording of "there is no such badge", for detail, edit and delete.
fn no_badge(tag: &str) -> ApiError {
    ApiError::not_found(format!("no badge {tag}"))
}

pub async fn detail(ctl: Ctl, path: web::Path<String>) -> ApiResult<HttpResponse> {
    find(&ctl, &path).map(ok)
}

/// A badge's settings as an operator gives them: the body of an edit, and a new badge's
/// body without its tag. The fields are declared again in [`NewBadge`] because serde's
/// `flatten` does not work with `deny_unknown_fields`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BadgeChange {
    #[serde(default)]
    vip: bool,
    expires: Option<DateTime<Utc>>,
    #[serde(default)]
    blocked: bool,
    note: Option<String>,
}

impl BadgeChange {
    /// The record stored for `id_tag`, built the same way whether the badge is new or edited.
    fn into_record(self, id_tag: IdTag) -> BadgeRecord {
        BadgeRecord {
            id_tag,
            vip: self.vip,
            expires: self.expires,
            blocked: self.blocked,
            note: non_empty(self.note),
        }
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NewBadge {
    id_tag: String,
    #[serde(default)]
    vip: bool,
    expires: Option<DateTime<Utc>>,
    #[serde(default)]
    blocked: bool,
    note: Option<String>,
}

impl NewBadge {
    /// The tag and the settings apart, so that the record is built by
    /// [`BadgeChange::into_record`] as in an edit.
    fn split(self) -> (String, BadgeChange) {
        let NewBadge {
            id_tag,
            vip,
            expires,
            blocked,
            note,
        } = self;
        (
            id_tag,
            BadgeChange {
                vip,
                expires,
                blocked,
                note,
            },
        )
    }
}

/// An empty note is no note: a form sends `""` for a cleared field, a CSV an empty cell.
fn non_empty(note: Option<String>) -> Option<String> {
    note.filter(|n| !n.is_empty())
}

/// Stores `badge` (over a stored badge with its tag) and logs what was `done` to it; a
/// stored badge is what add and edit answer with.
fn store_badge(
    ctl: &Controller,
    who: &Identity,
    badge: BadgeRecord,
    done: &str,
) -> ApiResult<BadgeView> {
    ctl.store().put_badge(&badge)?;
    audit(
        ctl.store(),
        &who.name,
        format!("badge {} {done}", badge.id_tag),
    );
    Ok(BadgeView {
        badge,
        source: Source::Store,
    })
}

pub async fn add(ctl: Ctl, who: Identity, Body(b): Body<NewBadge>) -> ApiResult<HttpResponse> {
    let (id_tag, settings) = b.split();
    check_tag("id_tag", &id_tag)?;
    let tag = IdTag::new(id_tag);
    if ctl.store().badge(&tag)?.is_some() {
        return Err(ApiError::conflict(format!("badge {tag} exists already")).with_field("id_tag"));
    }
    let badge = settings.into_record(tag);
    Ok(created(store_badge(&ctl, &who, badge, "added")?))
}

/// Replaces a badge's settings (a file badge gets a stored override).
pub async fn edit(
    ctl: Ctl,
    who: Identity,
    path: web::Path<String>,
    Body(b): Body<BadgeChange>,
) -> ApiResult<HttpResponse> {
    let existing = find(&ctl, &path)?;
    let badge = b.into_record(existing.badge.id_tag);
    Ok(ok(store_badge(&ctl, &who, badge, "changed")?))
}

pub async fn remove(ctl: Ctl, who: Identity, path: web::Path<String>) -> ApiResult<HttpResponse> {
    let tag = IdTag::new(path.into_inner());
    if ctl.store().delete_badge(&tag)? {
        audit(ctl.store(), &who.name, format!("badge {tag} deleted"));
        return Ok(no_content());
    }
    let in_file = ctl
        .config()
        .badges
        .iter()
        .any(|b| b.id_tag.as_str().eq_ignore_ascii_case(tag.as_str()));
    if in_file {
        Err(ApiError::conflict(format!(
            "badge {tag} comes from the configuration file's [[badges]]; remove it there, or block it here"
        )))
    } else {
        Err(no_badge(tag.as_str()))
    }
}

// --- CSV ----------------------------------------------------------------------------------

pub fn to_csv(badges: &[BadgeRecord]) -> Result<Vec<u8>, csv::Error> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(CSV_HEADER)?;
    for b in badges {
        w.write_record([
            b.id_tag.to_string(),
            b.vip.to_string(),
            b.expires.map(|e| e.to_rfc3339()).unwrap_or_default(),
            b.blocked.to_string(),
            b.note.clone().unwrap_or_default(),
        ])?;
    }
    w.into_inner().map_err(|e| e.into_error().into())
}

fn parse_bool(line: u64, field: &str, text: &str) -> ApiResult<bool> {
    match text.trim().to_ascii_lowercase().as_str() {
        "" | "false" | "0" | "no" => Ok(false),
        "true" | "1" | "yes" => Ok(true),
        other => Err(ApiError::bad(
            field,
            format!("line {line}: {other:?} is not true or false"),
        )),
    }
}

fn parse_expiry(line: u64, text: &str) -> ApiResult<Option<DateTime<Utc>>> {
    let text = text.trim();
    if text.is_empty() {
        return Ok(None);
    }
    if let Ok(t) = DateTime::parse_from_rfc3339(text) {
        return Ok(Some(t.with_timezone(&Utc)));
    }
    NaiveDate::parse_from_str(text, "%Y-%m-%d")
        .ok()
        .and_then(|d| d.and_hms_opt(23, 59, 59))
        .map(|t| Some(t.and_utc()))
        .ok_or_else(|| {
            ApiError::bad(
                "expires",
                format!(
                    "line {line}: {text:?} is not a date-time (2027-12-31T23:59:59Z) or a date"
                ),
            )
        })
}

/// Reads badges from CSV with the export's columns (`id_tag` required, the others
/// optional, any order). Every line is checked before anything is kept.
pub fn from_csv(bytes: &[u8]) -> ApiResult<Vec<BadgeRecord>> {
    let mut reader = csv::ReaderBuilder::new()
        .trim(csv::Trim::All)
        .flexible(false)
        .from_reader(bytes);
    let headers = reader
        .headers()
        .map_err(|e| ApiError::bad("body", format!("not CSV: {e}")))?
        .clone();
    let column = |name: &str| headers.iter().position(|h| h.eq_ignore_ascii_case(name));
    let Some(tag_col) = column("id_tag") else {
        return Err(ApiError::bad(
            "id_tag",
            "the first line must name the columns, with at least id_tag",
        ));
    };
    for h in headers.iter() {
        if !CSV_HEADER.iter().any(|c| c.eq_ignore_ascii_case(h)) {
            return Err(ApiError::bad(
                "body",
                format!(
                    "unknown column {h:?}; the columns are {}",
                    CSV_HEADER.join(",")
                ),
            ));
        }
    }
    let (vip, expires, blocked, note) = (
        column("vip"),
        column("expires"),
        column("blocked"),
        column("note"),
    );
    let mut seen = std::collections::HashMap::new();
    let mut out = Vec::new();
    for row in reader.records() {
        let row = row.map_err(|e| ApiError::bad("body", format!("bad CSV: {e}")))?;
        let line = row.position().map_or(0, |p| p.line());
        let cell = |c: Option<usize>| c.and_then(|i| row.get(i)).unwrap_or("");
        let tag = cell(Some(tag_col));
        check_tag("id_tag", tag)
            .map_err(|e| ApiError::bad("id_tag", format!("line {line}: {}", e.error)))?;
        if let Some(first) = seen.insert(key(tag), line) {
            return Err(ApiError::bad(
                "id_tag",
                format!("line {line}: badge {tag} is also on line {first}"),
            ));
        }
        out.push(BadgeRecord {
            id_tag: IdTag::new(tag),
            vip: parse_bool(line, "vip", cell(vip))?,
            expires: parse_expiry(line, cell(expires))?,
            blocked: parse_bool(line, "blocked", cell(blocked))?,
            note: non_empty(Some(cell(note).to_owned())),
        });
    }
    Ok(out)
}

pub async fn export_csv(ctl: Ctl) -> ApiResult<HttpResponse> {
    let badges: Vec<BadgeRecord> = effective(&ctl)?.into_iter().map(|v| v.badge).collect();
    let body = to_csv(&badges).map_err(ApiError::internal)?;
    Ok(download("text/csv; charset=utf-8", "badges.csv", body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ImportQuery {
    #[serde(default)]
    replace: bool,
}

pub async fn import_csv(
    req: HttpRequest,
    ctl: Ctl,
    who: Identity,
    query: web::Query<ImportQuery>,
    body: web::Bytes,
) -> ApiResult<HttpResponse> {
    let is_csv = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.to_ascii_lowercase().starts_with("text/csv"));
    if !is_csv {
        return Err(ApiError::new(
            actix_web::http::StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "send the badges as CSV with Content-Type: text/csv",
        )
        .with_field("Content-Type"));
    }
    let imported = from_csv(&body)?;
    let count = imported.len();
    let badges = if query.replace {
        imported
    } else {
        let mut merged: BTreeMap<String, BadgeRecord> = ctl
            .store()
            .badges()?
            .into_iter()
            .map(|b| (key(b.id_tag.as_str()), b))
            .collect();
        for b in imported {
            merged.insert(key(b.id_tag.as_str()), b);
        }
        merged.into_values().collect()
    };
    ctl.store().replace_badges(&badges)?;
    let how = if query.replace {
        "replacing the list"
    } else {
        "added or updated"
    };
    audit(
        ctl.store(),
        &who.name,
        format!("{count} badges imported from CSV ({how})"),
    );
    Ok(ok(json!({ "imported": count, "stored": badges.len() })))
}

// --- local authorisation list --------------------------------------------------------------

fn local_list(badges: &[BadgeView], now: DateTime<Utc>) -> Vec<AuthorizationData> {
    badges
        .iter()
        .filter_map(|v| {
            let b = &v.badge;
            let id_tag = IdToken::try_from(&b.id_tag).ok()?;
            let status = if b.blocked {
                AuthorizationStatus::Blocked
            } else if b.expires.is_some_and(|e| e <= now) {
                AuthorizationStatus::Expired
            } else {
                AuthorizationStatus::Accepted
            };
            Some(AuthorizationData {
                id_tag,
                id_tag_info: Some(IdTagInfo {
                    expiry_date: b.expires,
                    parent_id_tag: None,
                    status,
                }),
            })
        })
        .collect()
}

/// A list version that grows with time (seconds since 2024), so that every push is newer
/// than the last one without storing a counter.
fn list_version(now: DateTime<Utc>) -> i32 {
    let epoch = DateTime::parse_from_rfc3339("2024-01-01T00:00:00Z")
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or(now);
    i32::try_from((now - epoch).num_seconds().max(1)).unwrap_or(i32::MAX)
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PushQuery {
    station: Option<String>,
}

pub async fn push(
    ctl: Ctl,
    who: Identity,
    query: web::Query<PushQuery>,
) -> ApiResult<HttpResponse> {
    let now = Utc::now();
    let list = local_list(&effective(&ctl)?, now);
    let version = list_version(now);
    let targets: Vec<ChargePointId> = match &query.station {
        Some(s) => {
            let id = ChargePointId::new(s.as_str());
            if ctl.config().station(&id).is_none() {
                return Err(ApiError::not_found(format!("no station {id}")).with_field("station"));
            }
            vec![id]
        }
        None => ctl.config().stations.iter().map(|s| s.id.clone()).collect(),
    };
    let sends = targets.iter().map(|id| {
        let addr = ctl.station(id);
        let request = SendLocalListRequest {
            list_version: version,
            local_authorization_list: list.clone(),
            update_type: UpdateType::Full,
        };
        async move {
            let status = match addr {
                None => "NotConnected".to_owned(),
                Some(addr) => match addr.send(Call(request)).await {
                    Ok(Ok(answer)) => answer.status.to_string(),
                    Ok(Err(CallFailure::NotConnected)) => "NotConnected".to_owned(),
                    Ok(Err(e)) => e.to_string(),
                    Err(e) => e.to_string(),
                },
            };
            (id.clone(), status)
        }
    });
    let results: Vec<_> = futures_util::future::join_all(sends)
        .await
        .into_iter()
        .map(|(station, status)| json!({ "station": station, "status": status }))
        .collect();
    audit(
        ctl.store(),
        &who.name,
        format!(
            "local authorisation list ({} badges, version {version}) pushed to {} stations",
            list.len(),
            results.len()
        ),
    );
    Ok(ok(
        json!({ "list_version": version, "badges": list.len(), "stations": results }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn csv_export_reads_back_the_same() {
        let badges = vec![
            BadgeRecord {
                id_tag: "04A1B2".into(),
                vip: true,
                expires: Some(
                    DateTime::parse_from_rfc3339("2027-12-31T23:59:59Z")
                        .expect("date")
                        .with_timezone(&Utc),
                ),
                blocked: false,
                note: Some("Anne, van 3, \"night shift\"".into()),
            },
            BadgeRecord {
                id_tag: "LOST1".into(),
                vip: false,
                expires: None,
                blocked: true,
                note: None,
            },
        ];
        let text = to_csv(&badges).expect("csv");
        assert_eq!(from_csv(&text).expect("parse"), badges);
    }

    #[test]
    fn a_bad_line_names_its_field_and_line() {
        let e = from_csv(b"id_tag,vip\nA,true\nB,perhaps\n").expect_err("bad vip");
        assert_eq!(e.field.as_deref(), Some("vip"));
        assert!(e.error.contains("line 3"), "{}", e.error);
        let e = from_csv(b"id_tag\nA\na\n").expect_err("duplicate");
        assert_eq!(e.field.as_deref(), Some("id_tag"));
        let e = from_csv(b"tag\nA\n").expect_err("no id_tag column");
        assert_eq!(e.field.as_deref(), Some("id_tag"));
    }

    #[test]
    fn list_versions_grow_with_time() {
        let t = Utc::now();
        assert!(list_version(t + chrono::Duration::seconds(1)) > list_version(t));
    }
}
