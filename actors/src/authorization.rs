//! Authorisation of id tags (pure): the badge lists and the mode decide, the station
//! actor asks. The answer carries the VIP flag the allocation needs.

use chrono::{DateTime, Utc};

use crate::config::{AuthMode, BadgeConfig};
use crate::store::records::BadgeRecord;
use crate::units::IdTag;

/// The OCPP 1.6 authorisation outcomes we give (`ConcurrentTx` is not used).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verdict {
    Accepted,
    Blocked,
    Expired,
    Invalid,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Authorization {
    pub verdict: Verdict,
    pub vip: bool,
    pub expires: Option<DateTime<Utc>>,
}

impl Authorization {
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
        (AuthMode::Uplink, _) => Authorization::invalid(),
        (AuthMode::AcceptAll, None) => Authorization {
            verdict: Verdict::Accepted,
            vip: false,
            expires: None,
        },
        (AuthMode::Local, None) => Authorization::invalid(),
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
}
