//! The people and machines allowed in: users (argon2 password hashes) and API tokens
//! (only a hash of the secret is kept), stored as JSON records in the store's `users` tree.

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use base64::Engine;
use blake2::{Blake2s256, Digest};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use ampwarden_actors::store::{Store, StoreError};

use super::Role;

/// Shortest password accepted for a user.
pub const MIN_PASSWORD_LEN: usize = 10;
const MAX_PASSWORD_LEN: usize = 256;
const MAX_NAME_LEN: usize = 64;
/// Every API token starts with this, so a leaked one is easy to recognise.
const TOKEN_PREFIX: &str = "awt_";

/// A user of the UI (or of the API with a password login).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct UserRecord {
    pub name: String,
    pub role: Role,
    /// PHC string (`$argon2id$v=19$...`).
    pub password_hash: String,
    pub created_at: DateTime<Utc>,
}

/// An API token for a machine (BMS, scripts). The secret is shown once, at creation.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TokenRecord {
    /// Public part of the token, used to find it.
    pub id: String,
    pub name: String,
    pub role: Role,
    /// BLAKE2s-256 of the secret part, base64url. Tokens are long random strings, so a
    /// fast hash suffices (a password hash would cost every API request ~50 ms).
    pub secret_hash: String,
    pub created_at: DateTime<Utc>,
    pub created_by: String,
}

/// One record of the `users` tree.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum AccountRecord {
    User(UserRecord),
    Token(TokenRecord),
}

fn user_key(name: &str) -> String {
    format!("user:{name}")
}

fn token_key(id: &str) -> String {
    format!("token:{id}")
}

/// Typed access to the accounts in the store.
#[derive(Clone)]
pub struct Accounts {
    store: Store,
}

impl Accounts {
    pub fn new(store: Store) -> Accounts {
        Accounts { store }
    }

    pub fn all(&self) -> Result<Vec<AccountRecord>, StoreError> {
        self.store.users::<AccountRecord>()
    }

    pub fn users(&self) -> Result<Vec<UserRecord>, StoreError> {
        Ok(self
            .all()?
            .into_iter()
            .filter_map(|r| match r {
                AccountRecord::User(u) => Some(u),
                AccountRecord::Token(_) => None,
            })
            .collect())
    }

    pub fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        Ok(self
            .all()?
            .into_iter()
            .filter_map(|r| match r {
                AccountRecord::Token(t) => Some(t),
                AccountRecord::User(_) => None,
            })
            .collect())
    }

    pub fn has_users(&self) -> Result<bool, StoreError> {
        Ok(!self.users()?.is_empty())
    }

    pub fn user(&self, name: &str) -> Result<Option<UserRecord>, StoreError> {
        Ok(match self.store.user::<AccountRecord>(&user_key(name))? {
            Some(AccountRecord::User(u)) => Some(u),
            _ => None,
        })
    }

    pub fn put_user(&self, user: &UserRecord) -> Result<(), StoreError> {
        self.store
            .put_user(&user_key(&user.name), &AccountRecord::User(user.clone()))
    }

    pub fn delete_user(&self, name: &str) -> Result<bool, StoreError> {
        self.store.delete_user(&user_key(name))
    }

    pub fn put_token(&self, token: &TokenRecord) -> Result<(), StoreError> {
        self.store
            .put_user(&token_key(&token.id), &AccountRecord::Token(token.clone()))
    }

    pub fn delete_token(&self, id: &str) -> Result<bool, StoreError> {
        self.store.delete_user(&token_key(id))
    }

    /// Replaces every account (restore of a backup).
    pub fn replace_all(&self, records: &[AccountRecord]) -> Result<(), StoreError> {
        for r in self.all()? {
            match r {
                AccountRecord::User(u) => self.delete_user(&u.name)?,
                AccountRecord::Token(t) => self.delete_token(&t.id)?,
            };
        }
        for r in records {
            match r {
                AccountRecord::User(u) => self.put_user(u)?,
                AccountRecord::Token(t) => self.put_token(t)?,
            }
        }
        Ok(())
    }

    /// The token a bearer secret belongs to, if any.
    pub fn token_for(&self, bearer: &str) -> Result<Option<TokenRecord>, StoreError> {
        let Some((id, secret)) = split_token(bearer) else {
            return Ok(None);
        };
        Ok(match self.store.user::<AccountRecord>(&token_key(id))? {
            Some(AccountRecord::Token(t)) if t.secret_hash == hash_secret(secret) => Some(t),
            _ => None,
        })
    }
}

/// A user name: 1 to 64 letters, digits or `. _ @ -`.
pub fn check_name(name: &str) -> Result<(), String> {
    if name.is_empty() || name.len() > MAX_NAME_LEN {
        return Err(format!("must be 1 to {MAX_NAME_LEN} characters"));
    }
    if !name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || "._@-".contains(c))
    {
        return Err("may hold only letters, digits and . _ @ -".into());
    }
    Ok(())
}

pub fn check_password(password: &str) -> Result<(), String> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_LEN {
        return Err(format!("must be at least {MIN_PASSWORD_LEN} characters"));
    }
    if n > MAX_PASSWORD_LEN {
        return Err(format!("must be at most {MAX_PASSWORD_LEN} characters"));
    }
    Ok(())
}

/// Argon2id with the crate's recommended parameters and a random salt.
pub fn hash_password(password: &str) -> Result<String, String> {
    Argon2::default()
        .hash_password(password.as_bytes())
        .map(|h| h.to_string())
        .map_err(|e| format!("cannot hash the password: {e}"))
}

pub fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|hash| {
        Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok()
    })
}

/// A hash to compare against when the user does not exist, so that a login for an
/// unknown name costs as long as one with a wrong password.
pub fn decoy_hash() -> &'static str {
    static DECOY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DECOY.get_or_init(|| hash_password("decoy password for unknown users").unwrap_or_default())
}

/// `n` random bytes from the operating system, base64url without padding.
pub fn random_text(n: usize) -> Result<String, getrandom::Error> {
    let mut bytes = vec![0u8; n];
    getrandom::fill(&mut bytes)?;
    Ok(base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes))
}

fn hash_secret(secret: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Blake2s256::digest(secret.as_bytes()))
}

/// `awt_<id>_<secret>` into its id and secret.
fn split_token(bearer: &str) -> Option<(&str, &str)> {
    let rest = bearer.strip_prefix(TOKEN_PREFIX)?;
    let (id, secret) = rest.split_once('.')?;
    (!id.is_empty() && !secret.is_empty()).then_some((id, secret))
}

/// A new token: its record (to store) and the bearer text (to show once).
pub fn new_token(
    name: &str,
    role: Role,
    created_by: &str,
) -> Result<(TokenRecord, String), getrandom::Error> {
    let id = random_text(9)?;
    let secret = random_text(32)?;
    let record = TokenRecord {
        id: id.clone(),
        name: name.to_owned(),
        role,
        secret_hash: hash_secret(&secret),
        created_at: Utc::now(),
        created_by: created_by.to_owned(),
    };
    Ok((record, format!("{TOKEN_PREFIX}{id}.{secret}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_password_verifies_only_against_its_own_hash() {
        let hash = hash_password("correct horse battery").expect("hash");
        assert!(hash.starts_with("$argon2id$"), "{hash}");
        assert!(verify_password("correct horse battery", &hash));
        assert!(!verify_password("correct horse battery!", &hash));
        assert!(!verify_password("anything", "not a phc string"));
    }

    #[test]
    fn a_token_is_found_by_its_whole_secret_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let accounts = Accounts::new(Store::open(dir.path()).expect("store"));
        let (record, bearer) = new_token("bms", Role::Viewer, "admin").expect("token");
        accounts.put_token(&record).expect("put");
        assert_eq!(
            accounts.token_for(&bearer).expect("lookup"),
            Some(record.clone())
        );
        let tampered = format!("{bearer}x");
        assert_eq!(accounts.token_for(&tampered).expect("lookup"), None);
        assert_eq!(accounts.token_for("awt_nothing").expect("lookup"), None);
        assert!(!bearer.contains(&record.secret_hash));
    }

    #[test]
    fn names_are_checked() {
        assert!(check_name("anne.o-brien@site").is_ok());
        assert!(check_name("").is_err());
        assert!(check_name("with space").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("long enough now").is_ok());
    }
}
