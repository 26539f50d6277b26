//! Badges (`badges`), users (`users`, records owned by the HTTP layer) and the snapshots
//! of the configuration in force (`config_snapshots`).

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::units::IdTag;

use super::records::BadgeRecord;
use super::{decode, encode, Result, Store};

impl Store {
    // --- badges -----------------------------------------------------------------

    fn badge_key(tag: &IdTag) -> String {
        // idTags compare case-insensitively (OCPP CiString).
        tag.as_str().to_ascii_uppercase()
    }

    pub fn badge(&self, tag: &IdTag) -> Result<Option<BadgeRecord>> {
        self.badges
            .get(Self::badge_key(tag))?
            .map(|b| decode("badges", &b))
            .transpose()
    }

    pub fn put_badge(&self, badge: &BadgeRecord) -> Result<()> {
        self.badges
            .insert(Self::badge_key(&badge.id_tag), encode(badge))?;
        self.flush()
    }

    /// Replaces every badge at once (CSV import, restore).
    pub fn replace_badges(&self, badges: &[BadgeRecord]) -> Result<()> {
        let mut batch = sled::Batch::default();
        for key in self.badges.iter().keys() {
            batch.remove(key?);
        }
        for b in badges {
            batch.insert(Self::badge_key(&b.id_tag).as_bytes(), encode(b));
        }
        self.badges.apply_batch(batch)?;
        self.flush()
    }

    pub fn delete_badge(&self, tag: &IdTag) -> Result<bool> {
        let existed = self.badges.remove(Self::badge_key(tag))?.is_some();
        self.flush()?;
        Ok(existed)
    }

    pub fn badges(&self) -> Result<Vec<BadgeRecord>> {
        self.badges
            .iter()
            .values()
            .map(|v| decode("badges", &v?))
            .collect()
    }

    // --- users (records owned by the HTTP layer) ----------------------------------

    pub fn user<T: DeserializeOwned>(&self, name: &str) -> Result<Option<T>> {
        self.users
            .get(name)?
            .map(|b| decode("users", &b))
            .transpose()
    }

    pub fn put_user<T: Serialize>(&self, name: &str, user: &T) -> Result<()> {
        self.users.insert(name, encode(user))?;
        self.flush()
    }

    pub fn delete_user(&self, name: &str) -> Result<bool> {
        let existed = self.users.remove(name)?.is_some();
        self.flush()?;
        Ok(existed)
    }

    pub fn users<T: DeserializeOwned>(&self) -> Result<Vec<T>> {
        self.users
            .iter()
            .values()
            .map(|v| decode("users", &v?))
            .collect()
    }

    // --- configuration snapshots -----------------------------------------------------

    /// Keeps the configuration in force (TOML) so a restart and a restore find it.
    pub fn save_config_snapshot(&self, toml: &str) -> Result<()> {
        let seq = self.db.generate_id()?;
        self.config_snapshots
            .insert(seq.to_be_bytes(), toml.as_bytes())?;
        self.flush()
    }

    pub fn latest_config_snapshot(&self) -> Result<Option<String>> {
        Ok(self
            .config_snapshots
            .last()?
            .map(|(_, v)| String::from_utf8_lossy(&v).into_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn badges_are_case_insensitive() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let badge = BadgeRecord {
            id_tag: "04a1b2".into(),
            vip: true,
            expires: None,
            blocked: false,
            note: None,
        };
        store.put_badge(&badge).expect("put");
        assert_eq!(store.badge(&"04A1B2".into()).expect("get"), Some(badge));
        assert!(store.delete_badge(&"04A1b2".into()).expect("delete"));
        assert!(store.badges().expect("list").is_empty());
    }
}

// --- revoked federation tokens ----------------------------------------------------

/// Keys in `meta` of the federation tokens revoked (by their hash).
const REVOKED_TOKEN: &str = "revoked_federation_token:";

impl Store {
    /// Refuses this token hash at the federation handshake from now on, whatever the
    /// configuration says (until [`Store::unrevoke_token`]).
    pub fn revoke_token(&self, hash: &str, secondary: &str) -> Result<()> {
        self.meta
            .insert(format!("{REVOKED_TOKEN}{hash}"), secondary.as_bytes())?;
        self.flush()
    }

    pub fn unrevoke_token(&self, hash: &str) -> Result<bool> {
        let existed = self
            .meta
            .remove(format!("{REVOKED_TOKEN}{hash}"))?
            .is_some();
        self.flush()?;
        Ok(existed)
    }

    pub fn is_token_revoked(&self, hash: &str) -> Result<bool> {
        Ok(self.meta.contains_key(format!("{REVOKED_TOKEN}{hash}"))?)
    }
}

#[cfg(test)]
mod revoked_tests {
    use super::*;

    #[test]
    fn a_revoked_token_stays_revoked_across_a_reopen_until_unrevoked() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.revoke_token("blake2s:abc", "hall-b").unwrap();
        drop(store);
        let store = Store::open(dir.path()).unwrap();
        assert!(store.is_token_revoked("blake2s:abc").unwrap());
        assert!(!store.is_token_revoked("blake2s:abd").unwrap());
        assert!(store.unrevoke_token("blake2s:abc").unwrap());
        assert!(!store.is_token_revoked("blake2s:abc").unwrap());
    }
}
