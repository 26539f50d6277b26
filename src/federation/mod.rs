//! The federation link between a primary and its secondaries (protocol in
//! `docs/federation.md`, messages in `ampwarden_actors::federation`):
//!
//! * [`primary`]: the `/federation` WebSocket endpoint on the primary's HTTP listener;
//!   one actor per secondary that checks its token and hello, forwards its reports to
//!   the supervisor, sends the grants the supervisor decides and refreshes them.
//! * [`secondary`]: the link a secondary dials out to its primary: it reports, imposes
//!   the grant on its root, acknowledges it once in force, and falls back when the grant
//!   expires.

pub mod primary;
pub mod secondary;

use std::sync::atomic::{AtomicU64, Ordering};

use blake2::{Blake2s256, Digest};

/// How a secondary's token is stored: `blake2s:` and the hash in unpadded base64url.
pub fn token_hash(token: &str) -> String {
    use base64::Engine;
    format!(
        "blake2s:{}",
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(Blake2s256::digest(token.as_bytes()))
    )
}

/// A new random token for a secondary (32 bytes, base64url).
pub fn new_token() -> Result<String, getrandom::Error> {
    use base64::Engine;
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

/// Constant-time comparison of two hashes of equal length.
fn same(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |acc, (x, y)| acc | (x ^ y))
            == 0
}

/// Federation counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct FederationCounters {
    pub refused_token: AtomicU64,
    pub refused_hello: AtomicU64,
    pub malformed: AtomicU64,
    pub grants_sent: AtomicU64,
}

impl FederationCounters {
    pub fn bump(counter: &AtomicU64) {
        counter.fetch_add(1, Ordering::Relaxed);
    }

    pub fn get(counter: &AtomicU64) -> u64 {
        counter.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_token_hash_is_what_check_config_accepts() {
        let h = token_hash("secret-of-hall-a-000");
        assert!(ampwarden_actors::config::is_token_hash(&h), "{h}");
        assert_ne!(h, token_hash("secret-of-hall-a-001"));
        assert!(same(&h, &token_hash("secret-of-hall-a-000")));
        assert!(!same(&h, &token_hash("secret-of-hall-a-001")));
        assert_eq!(new_token().unwrap().len(), 43);
    }
}
