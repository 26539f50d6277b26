//! The commissioned configuration: what operators changed in the UI or API, kept in the
//! store so that it survives a restart.
//!
//! A snapshot remembers the file it was made on top of (`base`). At start the snapshot
//! wins while the file is unchanged; once an installer edits the file, the file wins
//! (and a warning says so) — whoever changed something last is obeyed. The listeners,
//! the storage path, the TLS files and the federation link always come from the file:
//! they cannot be changed on a running controller.

use ampwarden_actors::config::{Config, ConfigProblems};
use ampwarden_actors::store::{Store, StoreError};
use serde::{Deserialize, Serialize};

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigSnapshot {
    /// The configuration file as it was when the snapshot was taken.
    pub base: Config,
    /// The configuration in force after the change.
    pub config: Config,
}

/// `edited` with the sections that only the file may set taken from `running`.
pub fn with_file_sections(mut edited: Config, running: &Config) -> Config {
    edited.server = running.server.clone();
    edited.storage = running.storage.clone();
    edited.federation = running.federation.clone();
    edited.tls = running.tls.clone();
    edited
}

/// Saves the configuration in force; `base` is the file it grew from.
pub fn save(store: &Store, base: &Config, config: &Config) -> Result<(), StoreError> {
    let snapshot = ConfigSnapshot {
        base: base.clone(),
        config: config.clone(),
    };
    let text = toml::to_string(&snapshot).expect("a configuration snapshot serialises to TOML");
    store.save_config_snapshot(&text)
}

/// Why the file's configuration is used rather than the stored one.
#[derive(Debug, thiserror::Error)]
pub enum NotRestored {
    #[error("no configuration was changed from the UI or API yet")]
    None,
    #[error(
        "the configuration file changed since the last change from the UI or API; the file is used"
    )]
    FileChanged,
    #[error("the stored configuration cannot be read ({0}); the file is used")]
    Unreadable(String),
    #[error("the stored configuration is no longer valid ({0}); the file is used")]
    Invalid(ConfigProblems),
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The configuration to run: the stored one if it was made on this very file.
pub fn restore(store: &Store, file: &Config) -> Result<Config, NotRestored> {
    let text = store.latest_config_snapshot()?.ok_or(NotRestored::None)?;
    let snapshot: ConfigSnapshot =
        toml::from_str(&text).map_err(|e| NotRestored::Unreadable(e.to_string()))?;
    if snapshot.base != *file {
        return Err(NotRestored::FileChanged);
    }
    let config = with_file_sections(snapshot.config, file);
    config.validate().map_err(NotRestored::Invalid)?;
    Ok(config)
}

#[cfg(test)]
mod tests {
    use super::*;
    use ampwarden_actors::units::Amps;

    fn edited(file: &Config) -> Config {
        let mut c = file.clone();
        c.zones[0].limit_a = Amps(70.0);
        c
    }

    #[test]
    fn the_snapshot_wins_until_the_file_changes() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("store");
        let file = Config::embedded_default();
        assert!(matches!(restore(&store, &file), Err(NotRestored::None)));
        save(&store, &file, &edited(&file)).expect("save");
        assert_eq!(restore(&store, &file).expect("restored"), edited(&file));

        let mut new_file = file.clone();
        new_file.site.name = "renamed in the file".into();
        assert!(matches!(
            restore(&store, &new_file),
            Err(NotRestored::FileChanged)
        ));
    }

    #[test]
    fn listeners_and_storage_always_come_from_the_file() {
        let file = Config::embedded_default();
        let mut other = file.clone();
        other.server.http_listen = "0.0.0.0:1".parse().expect("addr");
        other.storage.path = "/elsewhere".into();
        assert_eq!(
            with_file_sections(other, &file).server.http_listen,
            file.server.http_listen
        );
    }
}
