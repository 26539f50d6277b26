//! Authorisation of id tags (pure): the badge lists and the mode decide, the station
//! actor asks. The answer carries the VIP flag the allocation needs.

use chrono::{DateTime, Utc};

use crate::config::{AuthMode, BadgeConfig, OfflineAuth};
use crate::ocpp::core::{AuthorizationStatus, IdTagInfo};
use crate::store::records::BadgeRecord;
use crate::units::IdTag;

/// The OCPP 1.6 authorisation outcomes we give (`ConcurrentTx` is not used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Blocked,
    Expired,
    Invalid,
    /// The CPO's answer: the tag is already in use elsewhere.
    ConcurrentTx,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Authorization {
    pub verdict: Verdict,
    pub vip: bool,
    pub expires: Option<DateTime<Utc>>,
}

impl Authorization {
    pub fn accepted(vip: bool) -> Self {
        Authorization {
            verdict: Verdict::Accepted,
            vip,
            expires: None,
        }
    }

    fn invalid() -> Self {
        Authorization {
            verdict: Verdict::Invalid,
            vip: false,
            expires: None,
        }
    }
}

/// A badge from either list, seen the same way.
struct Badge {
    vip: bool,
    blocked: bool,
    expires: Option<DateTime<Utc>>,
}

/// Decides on `tag`. Badges stored by operators (UI, API) take precedence over the ones of
/// the configuration file; tags compare case-insensitively (OCPP CiString).
pub fn authorize(
    mode: AuthMode,
    tag: &IdTag,
    stored: Option<&BadgeRecord>,
    configured: &[BadgeConfig],
    now: DateTime<Utc>,
) -> Authorization {
    let badge = stored
        .map(|b| Badge {
            vip: b.vip,
            blocked: b.blocked,
            expires: b.expires,
        })
        .or_else(|| {
            configured
                .iter()
                .find(|b| b.id_tag.as_str().eq_ignore_ascii_case(tag.as_str()))
                .map(|b| Badge {
                    vip: b.vip,
                    blocked: b.blocked,
                    expires: b.expires,
                })
        });
    match (mode, badge) {
        (AuthMode::AcceptAll, None) => Authorization {
            verdict: Verdict::Accepted,
            vip: false,
            expires: None,
        },
        (AuthMode::Local | AuthMode::Uplink, None) => Authorization::invalid(),
        (_, Some(b)) => {
            let verdict = if b.blocked {
                Verdict::Blocked
            } else if b.expires.is_some_and(|e| e <= now) {
                Verdict::Expired
            } else {
                Verdict::Accepted
            };
            Authorization {
                verdict,
                vip: b.vip && verdict == Verdict::Accepted,
                expires: b.expires,
            }
        }
    }
}

/// The CPO's answer for a tag (an Authorize, or cached from one): Accepted turns Expired
/// once its expiry date is past. `vip` comes from the local badges.
pub fn from_cpo(info: &IdTagInfo, vip: bool, now: DateTime<Utc>) -> Authorization {
    let verdict = match info.status {
        AuthorizationStatus::Accepted if info.expiry_date.is_some_and(|e| e <= now) => {
            Verdict::Expired
        }
        AuthorizationStatus::Accepted => Verdict::Accepted,
        AuthorizationStatus::Blocked => Verdict::Blocked,
        AuthorizationStatus::Expired => Verdict::Expired,
        AuthorizationStatus::Invalid => Verdict::Invalid,
        AuthorizationStatus::ConcurrentTx => Verdict::ConcurrentTx,
    };
    Authorization {
        verdict,
        vip: vip && verdict == Verdict::Accepted,
        expires: info.expiry_date,
    }
}

/// `auth.mode = "uplink"` while the CPO cannot be asked (`auth.offline`): the local
/// badges, then the CPO's cached answer (`cached`, read only when needed).
pub fn offline(
    policy: OfflineAuth,
    tag: &IdTag,
    stored: Option<&BadgeRecord>,
    configured: &[BadgeConfig],
    cached: impl FnOnce() -> Option<IdTagInfo>,
    now: DateTime<Utc>,
) -> Authorization {
    let local = authorize(AuthMode::Local, tag, stored, configured, now);
    let known_locally = stored.is_some()
        || configured
            .iter()
            .any(|b| b.id_tag.as_str().eq_ignore_ascii_case(tag.as_str()));
    match policy {
        OfflineAuth::Reject => Authorization::invalid(),
        OfflineAuth::Accept => Authorization::accepted(local.vip),
        OfflineAuth::LocalThenCache if known_locally => local,
        OfflineAuth::LocalThenCache => {
            cached().map_or_else(Authorization::invalid, |info| from_cpo(&info, false, now))
        }
    }
}

#[cfg(test)]
mod tests {
    use chrono::Duration;

    use super::*;

    fn configured(tag: &str, vip: bool, expires: Option<DateTime<Utc>>) -> BadgeConfig {
        BadgeConfig {
            id_tag: tag.into(),
            vip,
            expires,
            blocked: false,
        }
    }

    #[test]
    fn local_mode_knows_only_listed_badges() {
        let now = Utc::now();
        let list = [configured("04A1B2C3", true, None)];
        let ok = authorize(AuthMode::Local, &"04a1b2c3".into(), None, &list, now);
        assert_eq!(ok.verdict, Verdict::Accepted);
        assert!(ok.vip);
        assert_eq!(
            authorize(AuthMode::Local, &"FFFF".into(), None, &list, now).verdict,
            Verdict::Invalid
        );
    }

    #[test]
    fn expired_and_blocked_badges_are_refused() {
        let now = Utc::now();
        let list = [configured("OLD", false, Some(now - Duration::days(1)))];
        assert_eq!(
            authorize(AuthMode::Local, &"OLD".into(), None, &list, now).verdict,
            Verdict::Expired
        );
        let blocked = BadgeRecord {
            id_tag: "B".into(),
            vip: true,
            expires: None,
            blocked: true,
            note: None,
        };
        let a = authorize(AuthMode::AcceptAll, &"B".into(), Some(&blocked), &[], now);
        assert_eq!(a.verdict, Verdict::Blocked);
        assert!(!a.vip, "a refused badge gives no VIP priority");
    }

    #[test]
    fn stored_badges_override_configured_ones() {
        let now = Utc::now();
        let list = [configured("T", true, None)];
        let stored = BadgeRecord {
            id_tag: "T".into(),
            vip: false,
            expires: None,
            blocked: false,
            note: None,
        };
        assert!(!authorize(AuthMode::Local, &"T".into(), Some(&stored), &list, now).vip);
    }

    #[test]
    fn accept_all_accepts_unknown_tags_and_uplink_refuses_until_it_exists() {
        let now = Utc::now();
        assert_eq!(
            authorize(AuthMode::AcceptAll, &"ANY".into(), None, &[], now).verdict,
            Verdict::Accepted
        );
        assert_eq!(
            authorize(AuthMode::Uplink, &"ANY".into(), None, &[], now).verdict,
            Verdict::Invalid
        );
    }

    #[test]
    fn offline_the_local_list_then_the_cpo_cache_decide() {
        let now = Utc::now();
        let list = [configured("LOCAL1", true, None)];
        let info = |status, expiry_date| IdTagInfo {
            expiry_date,
            parent_id_tag: None,
            status,
        };
        let cached = |i: Option<IdTagInfo>| move || i;
        let decide = |policy, tag: &str, c: Option<IdTagInfo>| {
            offline(policy, &tag.into(), None, &list, cached(c), now)
        };
        let lc = OfflineAuth::LocalThenCache;
        let local = decide(lc, "local1", Some(info(AuthorizationStatus::Blocked, None)));
        assert_eq!(
            (local.verdict, local.vip),
            (Verdict::Accepted, true),
            "the local list first"
        );
        assert_eq!(
            decide(lc, "GOOD", Some(info(AuthorizationStatus::Accepted, None))).verdict,
            Verdict::Accepted
        );
        let past = Some(now - Duration::hours(1));
        assert_eq!(
            decide(lc, "OLD", Some(info(AuthorizationStatus::Accepted, past))).verdict,
            Verdict::Expired
        );
        assert_eq!(
            decide(lc, "BAD", Some(info(AuthorizationStatus::Blocked, None))).verdict,
            Verdict::Blocked
        );
        assert_eq!(
            decide(lc, "NEW", None).verdict,
            Verdict::Invalid,
            "unknown to both"
        );
        assert_eq!(
            decide(OfflineAuth::Accept, "NEW", None).verdict,
            Verdict::Accepted
        );
        assert_eq!(
            decide(OfflineAuth::Reject, "LOCAL1", None).verdict,
            Verdict::Invalid
        );
    }
}
