//! Persistence on sled, behind one small type so the engine could change later.
//! Trees: `stations`, `transactions` (the open ones), `closed_transactions` (in blocks of
//! `CLOSED_BLOCK`, see `blocks`), `open_transactions` (an index by station), `samples` (in
//! chunks per transaction), `closed_samples` (the short sessions' samples, packed per
//! block), `badges`, `users`, `logs` (a bounded ring), `config_snapshots`, and `meta`
//! (counters). Values are JSON.
//!
//! One job per file: the pure `records` (what is stored), this file (the [`Store`] handle:
//! open, flush, errors), `stations`, `transactions` (open ones and their index), `blocks`
//! (closed transactions in blocks, with their spans), `samples` (chunks and packs),
//! `prune`, `upgrade` (older layouts, at open), `log` (the operator's log) and `accounts`
//! (badges, users, configuration snapshots). Each is an `impl Store` of its own.

mod accounts;
mod blocks;
mod log;
mod prune;
pub(crate) mod records; // pure
pub use uplink::JournalEntry;
mod samples;
mod stations;
mod transactions;
mod upgrade;
mod uplink;

#[cfg(test)]
mod test_support;

pub use self::log::LOG_CAPACITY;
pub use records::{
    BadgeRecord, LogEntry, LogLevel, NewTransaction, Sample, StationRecord, TransactionFilter,
    TransactionRecord, TransactionStop,
};

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::de::DeserializeOwned;
use serde::Serialize;
use sled::transaction::TransactionError;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("storage error: {0}")]
    Sled(#[from] sled::Error),
    #[error("stored record in {tree} is unreadable: {source}")]
    Corrupt {
        tree: &'static str,
        #[source]
        source: serde_json::Error,
    },
    #[error("transaction {0} is not known")]
    UnknownTransaction(i32),
    #[error("transaction ids are exhausted")]
    TransactionIdsExhausted,
}

pub type Result<T> = std::result::Result<T, StoreError>;

/// The controller's storage. Cheap to clone (sled handles are shared).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    stations: sled::Tree,
    /// Open transactions, a key each: they change once a minute.
    transactions: sled::Tree,
    /// Closed transactions, [`CLOSED_BLOCK`](blocks) consecutive ids per key: they no
    /// longer change.
    closed: sled::Tree,
    /// The small samples of closed transactions, a [`SamplePack`](samples) per block of ids.
    closed_samples: sled::Tree,
    /// Per block, the span of its transactions' start times ([`Span`](blocks::Span)): a
    /// listing by time reads only the blocks that can match.
    closed_spans: sled::Tree,
    /// The open transactions by station: `[len][station][id]` keys, no values. A restart
    /// reads a station's open transactions from here instead of the whole history.
    open: sled::Tree,
    samples: sled::Tree,
    badges: sled::Tree,
    users: sled::Tree,
    logs: sled::Tree,
    config_snapshots: sled::Tree,
    meta: sled::Tree,
    /// The CPO uplink's journal: what each station still has to send upstream, in order.
    uplink: sled::Tree,
    /// The CPO uplink's memory: transaction ids the CPO gave, the last BootNotification.
    uplink_ids: sled::Tree,
    /// Writes since the last flush, shared by every clone.
    unflushed: Arc<AtomicU64>,
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records always serialise to JSON")
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

/// The error of a sled transaction whose closure aborts with a [`StoreError`].
fn transaction_error(e: TransactionError<StoreError>) -> StoreError {
    match e {
        TransactionError::Abort(e) => e,
        TransactionError::Storage(e) => StoreError::Sled(e),
    }
}

/// Increments a big-endian u64 counter and returns the value before the increment.
fn take_next(tree: &sled::Tree, key: &[u8], first: u64) -> Result<u64> {
    let mut taken = first;
    tree.fetch_and_update(key, |old| {
        let current = old
            .and_then(|b| <[u8; 8]>::try_from(b).ok())
            .map(u64::from_be_bytes)
            .unwrap_or(first);
        taken = current;
        Some((current + 1).to_be_bytes().to_vec())
    })?;
    Ok(taken)
}

/// sled's page cache. Its default (1 GiB) lets a busy controller grow to hundreds of MB
/// of samples it rarely reads again; a small box has better use for that memory. What is
/// hot — the open transactions — the station actors keep in memory themselves, and what
/// the API reads again the kernel's file cache serves; a larger cache only made the RSS
/// climb for its first minutes of every run (the soak in BENCHMARKS.md).
const CACHE_BYTES: u64 = 2 * 1024 * 1024;
/// Under a steady stream of meter samples sled's background flusher falls behind, and
/// what it has not written stays in memory (measured: 1 GB after 400 000 MeterValues).
/// The writers flush themselves after this many unflushed writes, which bounds it.
const FLUSH_AFTER_WRITES: u64 = 1000;
/// How long opening waits for a previous instance's lock (see [`Store::open`]).
const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

impl Store {
    /// Opens (or creates) the store. sled finishes its last writes on background threads
    /// after a close and only then releases the directory's lock, so a reopen right after
    /// a stop (a restart) waits up to [`LOCK_WAIT`] for it; another live process holding
    /// the lock is still an error after that.
    pub fn open(path: &Path) -> Result<Store> {
        let config = sled::Config::new()
            .path(path)
            .mode(sled::Mode::HighThroughput)
            .cache_capacity(CACHE_BYTES);
        let deadline = std::time::Instant::now() + LOCK_WAIT;
        let db = loop {
            match config.open() {
                Err(sled::Error::Io(e))
                    if e.to_string().contains("could not acquire lock")
                        && std::time::Instant::now() < deadline =>
                {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
                other => break other?,
            }
        };
        Store {
            stations: db.open_tree("stations")?,
            transactions: db.open_tree("transactions")?,
            closed: db.open_tree("closed_transactions")?,
            closed_samples: db.open_tree("closed_samples")?,
            closed_spans: db.open_tree("closed_spans")?,
            open: db.open_tree("open_transactions")?,
            samples: db.open_tree("samples")?,
            badges: db.open_tree("badges")?,
            users: db.open_tree("users")?,
            logs: db.open_tree("logs")?,
            config_snapshots: db.open_tree("config_snapshots")?,
            meta: db.open_tree("meta")?,
            uplink: db.open_tree("uplink_journal")?,
            uplink_ids: db.open_tree("uplink_ids")?,
            unflushed: Arc::new(AtomicU64::new(0)),
            db,
        }
        .upgraded()
    }

    /// Counts `writes`, and flushes once too many are unflushed.
    fn wrote(&self, writes: u64) -> Result<()> {
        let before = self.unflushed.fetch_add(writes, Ordering::Relaxed);
        if before + writes >= FLUSH_AFTER_WRITES {
            self.unflushed.store(0, Ordering::Relaxed);
            self.db.flush()?;
        }
        Ok(())
    }

    /// Writes everything to disk; called before acknowledging writes that matter.
    pub fn flush(&self) -> Result<()> {
        self.db.flush()?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{new_tx, open_ids};
    use super::*;

    #[test]
    fn a_reopen_waits_for_the_previous_instance_to_let_go() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = Store::open(dir.path()).expect("open");
        first.begin_transaction(new_tx("CP1")).expect("begin");
        let closing = std::thread::spawn(move || {
            std::thread::sleep(std::time::Duration::from_millis(300));
            drop(first);
        });
        // Opened while the first still holds the lock: waits, then sees its data.
        let second = Store::open(dir.path()).expect("reopen after the first let go");
        closing.join().expect("closing thread");
        assert_eq!(open_ids(&second, "CP1").len(), 1);
    }
}
