//! Save & restore as one file: the commissioned configuration with the badges, the
//! users and API tokens (hashed, as stored) and the known stations. Used by the API
//! (`GET`/`PUT /api/v1/config`) and by `ampwarden backup` / `ampwarden restore`.
//!
//! Transactions, meter samples and the log are history, not configuration: they are not
//! part of a backup and a restore leaves them alone.

use std::path::Path;

use ampwarden_actors::config::Config;
use ampwarden_actors::store::{BadgeRecord, StationRecord, Store, StoreError};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::http::auth::accounts::{check_name, AccountRecord, Accounts};
use crate::snapshot;

/// The `format` field of every backup file.
pub const FORMAT: &str = "ampwarden-backup";
/// The version written; a restore accepts this one only.
pub const VERSION: u32 = 1;
/// OCPP 1.6 `IdToken`: at most 20 characters.
const MAX_ID_TAG_LEN: usize = 20;

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Backup {
    pub format: String,
    pub version: u32,
    pub created_at: DateTime<Utc>,
    /// The configuration in force (the listeners and storage path of the controller
    /// that restores it are kept, not these).
    pub config: Config,
    pub badges: Vec<BadgeRecord>,
    pub accounts: Vec<AccountRecord>,
    pub stations: Vec<StationRecord>,
}

/// A backup that cannot be restored, with the path of the offending field.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct BackupProblem {
    pub field: String,
    pub message: String,
}

impl BackupProblem {
    fn new(field: impl Into<String>, message: impl Into<String>) -> BackupProblem {
        BackupProblem {
            field: field.into(),
            message: message.into(),
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    #[error("{0}")]
    Problem(#[from] BackupProblem),
    #[error("{0}")]
    Store(#[from] StoreError),
    #[error("cannot open the storage at {path} ({source}); is the controller still running? Stop it first")]
    Open {
        path: String,
        #[source]
        source: StoreError,
    },
    #[error("cannot read or write {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a backup: {message}")]
    Parse { path: String, message: String },
}

/// Everything a backup holds, read from `store`; `config` is the one in force.
pub fn export(store: &Store, config: &Config) -> Result<Backup, StoreError> {
    Ok(Backup {
        format: FORMAT.into(),
        version: VERSION,
        created_at: Utc::now(),
        config: config.clone(),
        badges: store.badges()?,
        accounts: Accounts::new(store.clone()).all()?,
        stations: store.stations()?,
    })
}

/// Checks a backup completely before anything is written; `running` gives the sections
/// the file decides (listeners, storage). Returns the configuration to put in force.
pub fn check(backup: &Backup, running: &Config) -> Result<Config, BackupProblem> {
    if backup.format != FORMAT {
        return Err(BackupProblem::new(
            "format",
            format!("must be {FORMAT:?}, not {:?}", backup.format),
        ));
    }
    if backup.version != VERSION {
        return Err(BackupProblem::new(
            "version",
            format!(
                "version {} is not supported (this controller reads {VERSION})",
                backup.version
            ),
        ));
    }
    let config = snapshot::with_file_sections(backup.config.clone(), running);
    if let Err(problems) = config.validate() {
        let first = problems.0.first().map_or_else(
            || BackupProblem::new("config", "is not valid"),
            |p| BackupProblem::new(format!("config.{}", p.path), p.message.clone()),
        );
        return Err(first);
    }
    for (i, b) in backup.badges.iter().enumerate() {
        let n = b.id_tag.as_str().chars().count();
        if n == 0 || n > MAX_ID_TAG_LEN {
            return Err(BackupProblem::new(
                format!("badges[{i}].id_tag"),
                format!("must be 1 to {MAX_ID_TAG_LEN} characters"),
            ));
        }
    }
    for (i, a) in backup.accounts.iter().enumerate() {
        if let AccountRecord::User(u) = a {
            check_name(&u.name)
                .map_err(|m| BackupProblem::new(format!("accounts[{i}].name"), m))?;
        }
    }
    Ok(config)
}

/// Writes a checked backup's records (badges, accounts, stations), replacing the ones
/// in the store.
pub fn write_records(store: &Store, backup: &Backup) -> Result<(), StoreError> {
    store.replace_badges(&backup.badges)?;
    Accounts::new(store.clone()).replace_all(&backup.accounts)?;
    for s in store.stations()? {
        if !backup.stations.iter().any(|b| b.id == s.id) {
            store.remove_station(&s.id)?;
        }
    }
    for s in &backup.stations {
        store.put_station(s)?;
    }
    store.flush()
}

fn open_store(config: &Config) -> Result<Store, BackupError> {
    Store::open(&config.storage.path).map_err(|source| BackupError::Open {
        path: config.storage.path.display().to_string(),
        source,
    })
}

/// `ampwarden backup`: writes the backup of a stopped controller to `out`.
pub fn backup_to_file(file_config: &Config, out: &Path) -> Result<Backup, BackupError> {
    let store = open_store(file_config)?;
    let config = snapshot::restore(&store, file_config).unwrap_or_else(|_| file_config.clone());
    let backup = export(&store, &config)?;
    let text = serde_json::to_string_pretty(&backup).expect("a backup serialises to JSON");
    std::fs::write(out, text).map_err(|source| BackupError::File {
        path: out.display().to_string(),
        source,
    })?;
    Ok(backup)
}

/// `ampwarden restore`: checks the backup in `from`, then writes it into the storage of
/// the (stopped) controller configured by `file_config`. The next start runs it.
pub fn restore_from_file(file_config: &Config, from: &Path) -> Result<Backup, BackupError> {
    let text = std::fs::read(from).map_err(|source| BackupError::File {
        path: from.display().to_string(),
        source,
    })?;
    let backup: Backup = crate::http::error::parse_json(&text).map_err(|e| BackupError::Parse {
        path: from.display().to_string(),
        message: match &e.field {
            Some(f) => format!("{f}: {}", e.error),
            None => e.error.clone(),
        },
    })?;
    let config = check(&backup, file_config)?;
    let store = open_store(file_config)?;
    snapshot::save(&store, file_config, &config)?;
    write_records(&store, &backup)?;
    Ok(backup)
}
