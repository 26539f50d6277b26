//! Persistence on sled, behind one small type so the engine could change later.
//! Trees: `stations`, `transactions` (the open ones), `closed_transactions` (in blocks of
//! [`CLOSED_BLOCK`]), `open_transactions` (an index by station), `samples` (in chunks
//! per transaction), `closed_samples` (the short sessions' samples, packed per block),
//! `badges`, `users`, `logs` (a bounded ring), `config_snapshots`, and `meta` (counters).
//! Values are JSON.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{ConflictableTransactionError, TransactionError, TransactionalTree};
use sled::Transactional;

use crate::units::{ChargePointId, IdTag, ZoneId};

/// How many operator log entries are kept; older ones are dropped.
pub const LOG_CAPACITY: u64 = 100_000;

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

/// A station as the controller has seen it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StationRecord {
    pub id: ChargePointId,
    /// `None` while it waits in the commissioning scan.
    pub zone: Option<ZoneId>,
    pub vendor: Option<String>,
    pub model: Option<String>,
    pub serial: Option<String>,
    pub firmware: Option<String>,
    pub first_seen: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
}

/// The end of a transaction.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransactionStop {
    pub at: DateTime<Utc>,
    pub meter_stop_wh: i64,
    pub reason: Option<String>,
    pub id_tag: Option<IdTag>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TransactionRecord {
    pub id: i32,
    pub station: ChargePointId,
    pub connector: u32,
    pub id_tag: IdTag,
    pub meter_start_wh: i64,
    pub started_at: DateTime<Utc>,
    pub reservation_id: Option<i32>,
    /// Whether the badge was a VIP one when the transaction started.
    pub vip: bool,
    /// The latest energy register seen in MeterValues, in Wh.
    pub last_meter_wh: Option<f64>,
    /// Cost so far at the tariff prices in force, in the site's currency.
    pub cost: f64,
    pub stop: Option<TransactionStop>,
}

impl TransactionRecord {
    pub fn is_open(&self) -> bool {
        self.stop.is_none()
    }

    /// Moves the energy register to `wh`, pricing the energy since the previous reading at
    /// the price in force now (registers never go back; a lower reading is ignored).
    pub fn advance_register(&mut self, wh: f64, price_per_kwh: Option<f64>) {
        let previous = self.last_meter_wh.unwrap_or(self.meter_start_wh as f64);
        if !wh.is_finite() || wh <= previous {
            return;
        }
        if let Some(price) = price_per_kwh {
            self.cost += (wh - previous) / 1000.0 * price;
        }
        self.last_meter_wh = Some(wh);
    }

    /// Energy since start, in Wh, from the latest register seen.
    pub fn energy_wh(&self) -> f64 {
        let end = match &self.stop {
            Some(s) => s.meter_stop_wh as f64,
            None => self.last_meter_wh.unwrap_or(self.meter_start_wh as f64),
        };
        (end - self.meter_start_wh as f64).max(0.0)
    }
}

/// What a StartTransaction brings.
#[derive(Clone, Debug)]
pub struct NewTransaction {
    pub station: ChargePointId,
    pub connector: u32,
    pub id_tag: IdTag,
    pub meter_start_wh: i64,
    pub started_at: DateTime<Utc>,
    pub reservation_id: Option<i32>,
    pub vip: bool,
}

/// One meter sample of a transaction (from MeterValues or transactionData).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub at: DateTime<Utc>,
    pub measurand: String,
    pub phase: Option<String>,
    pub value: f64,
    pub unit: Option<String>,
}

/// The stored form of one message's samples: one timestamp (milliseconds since the
/// epoch) per meter value and one `[measurand, phase, value, unit]` tuple per sample, the
/// measurand as its index in [`MEASURANDS`] — a quarter of the bytes of a list of
/// [`Sample`]s with field names and a timestamp each.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SampleBatch {
    v: Vec<(i64, Vec<StoredValue>)>,
}

/// `[measurand, phase, value, unit]`.
type StoredValue = (MeasurandCode, Option<String>, f64, Option<String>);

/// The OCPP 1.6 measurands, by stored code. Append only: stored batches refer to these
/// positions.
const MEASURANDS: [&str; 22] = [
    "Energy.Active.Export.Register",
    "Energy.Active.Import.Register",
    "Energy.Reactive.Export.Register",
    "Energy.Reactive.Import.Register",
    "Energy.Active.Export.Interval",
    "Energy.Active.Import.Interval",
    "Energy.Reactive.Export.Interval",
    "Energy.Reactive.Import.Interval",
    "Power.Active.Export",
    "Power.Active.Import",
    "Power.Offered",
    "Power.Reactive.Export",
    "Power.Reactive.Import",
    "Power.Factor",
    "Current.Import",
    "Current.Export",
    "Current.Offered",
    "Voltage",
    "Frequency",
    "Temperature",
    "SoC",
    "RPM",
];

#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(untagged)]
enum MeasurandCode {
    Known(u8),
    Other(String),
}

impl MeasurandCode {
    fn of(measurand: &str) -> MeasurandCode {
        match MEASURANDS.iter().position(|m| *m == measurand) {
            Some(i) => MeasurandCode::Known(i as u8),
            None => MeasurandCode::Other(measurand.to_owned()),
        }
    }

    fn name(self) -> String {
        match self {
            MeasurandCode::Known(i) => MEASURANDS
                .get(usize::from(i))
                .map_or_else(|| format!("#{i}"), |m| (*m).to_owned()),
            MeasurandCode::Other(m) => m,
        }
    }
}

impl SampleBatch {
    fn from_samples(samples: &[Sample]) -> SampleBatch {
        let mut v: Vec<(i64, Vec<_>)> = Vec::new();
        for s in samples {
            let at = s.at.timestamp_millis();
            let value = (
                MeasurandCode::of(&s.measurand),
                s.phase.clone(),
                s.value,
                s.unit.clone(),
            );
            match v.last_mut() {
                Some((last, values)) if *last == at => values.push(value),
                _ => v.push((at, vec![value])),
            }
        }
        SampleBatch { v }
    }

    fn into_samples(self, out: &mut Vec<Sample>) {
        for (at, values) in self.v {
            let at = DateTime::from_timestamp_millis(at).unwrap_or_default();
            out.extend(
                values
                    .into_iter()
                    .map(|(measurand, phase, value, unit)| Sample {
                        at,
                        measurand: measurand.name(),
                        phase,
                        value,
                        unit,
                    }),
            );
        }
    }
}

/// The samples of the closed transactions of one block (`closed_samples` tree) that had
/// at most [`PACKED_SAMPLES_MAX`] bytes of them, by transaction id.
#[derive(Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct SamplePack {
    t: Vec<(i32, SampleBatch)>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BadgeRecord {
    pub id_tag: IdTag,
    pub vip: bool,
    pub expires: Option<DateTime<Utc>>,
    pub blocked: bool,
    pub note: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogLevel {
    Info,
    Warn,
    Error,
}

/// One line of the operator's maintenance log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LogEntry {
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub level: LogLevel,
    pub station: Option<ChargePointId>,
    pub message: String,
}

/// Filters for listing transactions; every field is optional.
#[derive(Clone, Debug, Default)]
pub struct TransactionFilter {
    pub station: Option<ChargePointId>,
    pub from: Option<DateTime<Utc>>,
    pub to: Option<DateTime<Utc>>,
}

impl TransactionFilter {
    fn matches(&self, t: &TransactionRecord) -> bool {
        self.station.as_ref().is_none_or(|s| &t.station == s)
            && self.from.is_none_or(|f| t.started_at >= f)
            && self.to.is_none_or(|to| t.started_at < to)
    }
}

/// The controller's storage. Cheap to clone (sled handles are shared).
#[derive(Clone)]
pub struct Store {
    db: sled::Db,
    stations: sled::Tree,
    /// Open transactions, a key each: they change once a minute.
    transactions: sled::Tree,
    /// Closed transactions, [`CLOSED_BLOCK`] consecutive ids per key: they no longer change.
    closed: sled::Tree,
    /// The small samples of closed transactions, a [`SamplePack`] per block of ids.
    closed_samples: sled::Tree,
    /// Per block, the span of its transactions' start times ([`Span`]): a listing by time
    /// reads only the blocks that can match.
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
    /// Writes since the last flush, shared by every clone.
    unflushed: Arc<AtomicU64>,
}

/// A transaction's samples are stored in chunks of about this many bytes (half an hour
/// of a station sending every minute), one sled key each. sled keeps ~20 bytes of memory
/// for every key it holds, evicted or not (BENCHMARKS.md): a key per message, at one kept
/// message a minute per charging vehicle for 30 days, grew a 1000-station depot's
/// controller by hundreds of MB. Read and rewritten whole on each append, so kept small.
const SAMPLE_CHUNK_BYTES: usize = 4096;
/// A transaction that stops with at most this many bytes of samples (a short session)
/// moves them from their own key into its block's pack: otherwise each short session
/// would still cost sled's ~20 bytes for a key of its own until the samples are pruned.
const PACKED_SAMPLES_MAX: usize = SAMPLE_CHUNK_BYTES / 2;

/// Closed transactions are kept in blocks of this many consecutive ids, one sled key each
/// (sorted records, a few KB). sled keeps ~20 bytes of memory for every key it holds,
/// evicted or not (BENCHMARKS.md): a key per record made the controller grow with its
/// history for good, ~40 MB a year at a 1000-station depot, and the soak's RSS with it.
const CLOSED_BLOCK: u32 = 16;

/// The key of the block holding closed transaction `id`; `None` for an id we never give.
fn block_key(id: i32) -> Option<[u8; 4]> {
    u32::try_from(id)
        .ok()
        .map(|id| (id / CLOSED_BLOCK).to_be_bytes())
}

/// The earliest and latest start (milliseconds since the epoch, rounded down) of the
/// transactions in a block, stored as two big-endian i64s.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Span {
    first_ms: i64,
    last_ms: i64,
}

impl Span {
    fn of(block: &[TransactionRecord]) -> Option<Span> {
        let starts = block.iter().map(|t| t.started_at.timestamp_millis());
        Some(Span {
            first_ms: starts.clone().min()?,
            last_ms: starts.max()?,
        })
    }

    fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.first_ms.to_be_bytes());
        bytes[8..].copy_from_slice(&self.last_ms.to_be_bytes());
        bytes
    }

    fn from_bytes(bytes: &[u8]) -> Option<Span> {
        let first = <[u8; 8]>::try_from(bytes.get(..8)?).ok()?;
        let last = <[u8; 8]>::try_from(bytes.get(8..16)?).ok()?;
        Some(Span {
            first_ms: i64::from_be_bytes(first),
            last_ms: i64::from_be_bytes(last),
        })
    }

    /// Whether a transaction started in this span could match the filter's times.
    fn may_match(self, filter: &TransactionFilter) -> bool {
        filter
            .from
            .is_none_or(|from| self.last_ms >= from.timestamp_millis())
            && filter
                .to
                .is_none_or(|to| self.first_ms <= to.timestamp_millis())
    }
}

const NEXT_TX_ID: &[u8] = b"next_transaction_id";
const NEXT_LOG_SEQ: &[u8] = b"next_log_seq";
/// Every transaction below this id has had its samples pruned (or never had any to prune).
const SAMPLES_PRUNED_BELOW: &[u8] = b"samples_pruned_below";
/// Every transaction below this id has been deleted (with `storage.transaction_retention_days`).
const TRANSACTIONS_PRUNED_BELOW: &[u8] = b"transactions_pruned_below";

/// What [`Store::prune`] removes of a transaction past its retention.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Pruned {
    /// Its meter samples; the record stays.
    Samples,
    /// The record and its samples.
    Transactions,
}
/// Set once the open-transaction index covers the history (stores written before the
/// index existed build it at their first open).
const OPEN_INDEX_BUILT: &[u8] = b"open_index_built";
/// Set once every closed transaction is in a block (stores written before the blocks
/// existed move theirs at their first open).
const CLOSED_IN_BLOCKS: &[u8] = b"closed_in_blocks";
/// Set once every block has its span.
const BLOCK_SPANS_BUILT: &[u8] = b"block_spans_built";

/// The prefix of a station's keys in the open-transaction index: the id's length (two
/// bytes) then the id, so no station's prefix is another's.
fn open_prefix(station: &ChargePointId) -> Vec<u8> {
    let id = station.as_str().as_bytes();
    let len = u16::try_from(id.len()).unwrap_or(u16::MAX);
    let mut key = Vec::with_capacity(2 + id.len() + 4);
    key.extend_from_slice(&len.to_be_bytes());
    key.extend_from_slice(&id[..usize::from(len)]);
    key
}

fn open_key(station: &ChargePointId, id: i32) -> Vec<u8> {
    let mut key = open_prefix(station);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

fn encode<T: Serialize>(value: &T) -> Vec<u8> {
    serde_json::to_vec(value).expect("store records always serialise to JSON")
}

fn decode<T: DeserializeOwned>(tree: &'static str, bytes: &[u8]) -> Result<T> {
    serde_json::from_slice(bytes).map_err(|source| StoreError::Corrupt { tree, source })
}

/// A transaction id as stored in keys, from a key's last four bytes.
fn id_of_key(key: &[u8]) -> Option<i32> {
    let at = key.len().checked_sub(4)?;
    <[u8; 4]>::try_from(&key[at..]).ok().map(i32::from_be_bytes)
}

/// Inside a sled transaction: puts `records` (closed, of one block) into their block,
/// replacing any there with the same id, and takes them out of the open records; the
/// block's span follows.
fn file_closed(
    [open_records, closed, spans]: [&TransactionalTree; 3],
    records: &[TransactionRecord],
) -> std::result::Result<(), ConflictableTransactionError<StoreError>> {
    let Some(key) = records.first().and_then(|t| block_key(t.id)) else {
        return Ok(());
    };
    let mut block: Vec<TransactionRecord> = match closed.get(key)? {
        Some(bytes) => {
            decode("closed_transactions", &bytes).map_err(ConflictableTransactionError::Abort)?
        }
        None => Vec::new(),
    };
    for record in records {
        match block.binary_search_by_key(&record.id, |t| t.id) {
            Ok(at) => block[at] = record.clone(),
            Err(at) => block.insert(at, record.clone()),
        }
        open_records.remove(&record.id.to_be_bytes())?;
    }
    closed.insert(&key, encode(&block))?;
    if let Some(span) = Span::of(&block) {
        spans.insert(&key, &span.to_bytes())?;
    }
    Ok(())
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
            unflushed: Arc::new(AtomicU64::new(0)),
            db,
        }
        .upgraded()
    }

    /// Brings a store written by an older version to the current layout, each step once
    /// (a marker in `meta` says it ran), in order.
    fn upgraded(self) -> Result<Store> {
        self.upgrade_once(
            OPEN_INDEX_BUILT,
            "indexed the open transactions of an older store",
            Store::index_open_transactions,
        )?;
        self.upgrade_once(
            CLOSED_IN_BLOCKS,
            "moved the closed transactions of an older store into blocks",
            Store::move_closed_into_blocks,
        )?;
        self.upgrade_once(
            BLOCK_SPANS_BUILT,
            "gave the blocks of closed transactions their spans",
            Store::span_blocks,
        )?;
        Ok(self)
    }

    /// Runs `upgrade` unless `marker` says it ran, then sets the marker; logs `done` with
    /// the count `upgrade` returns, when it changed anything.
    fn upgrade_once(
        &self,
        marker: &[u8],
        done: &str,
        upgrade: fn(&Store) -> Result<usize>,
    ) -> Result<()> {
        if self.meta.contains_key(marker)? {
            return Ok(());
        }
        let changed = upgrade(self)?;
        self.meta.insert(marker, &[1])?;
        self.flush()?;
        if changed > 0 {
            tracing::info!(changed, "{done}");
        }
        Ok(())
    }

    /// Builds the open-transaction index from the history: one scan.
    fn index_open_transactions(&self) -> Result<usize> {
        let mut built = 0;
        for value in self.transactions.iter().values() {
            let t: TransactionRecord = decode("transactions", &value?)?;
            if t.is_open() {
                self.open.insert(open_key(&t.station, t.id), &[])?;
                built += 1;
            }
        }
        Ok(built)
    }

    /// Moves the closed transactions kept a key each into blocks: one walk of the
    /// history, a block at a time.
    fn move_closed_into_blocks(&self) -> Result<usize> {
        let mut moved = 0;
        let mut pending: Vec<TransactionRecord> = Vec::new();
        for value in self.transactions.iter().values() {
            let t: TransactionRecord = decode("transactions", &value?)?;
            if t.is_open() {
                continue;
            }
            if pending
                .last()
                .is_some_and(|p| block_key(p.id) != block_key(t.id))
            {
                moved += self.move_closed(&std::mem::take(&mut pending))?;
            }
            pending.push(t);
        }
        moved += self.move_closed(&pending)?;
        Ok(moved)
    }

    /// Gives every block its span (blocks written before spans existed).
    fn span_blocks(&self) -> Result<usize> {
        let mut spanned = 0;
        for entry in self.closed.iter() {
            let (key, block) = entry?;
            let block: Vec<TransactionRecord> = decode("closed_transactions", &block)?;
            if let Some(span) = Span::of(&block) {
                self.closed_spans.insert(key, &span.to_bytes())?;
                spanned += 1;
            }
        }
        Ok(spanned)
    }

    /// Files closed `records`, all of one block, atomically; returns how many.
    fn move_closed(&self, records: &[TransactionRecord]) -> Result<usize> {
        (&self.transactions, &self.closed, &self.closed_spans)
            .transaction(|(open_records, closed, spans)| {
                file_closed([open_records, closed, spans], records)
            })
            .map_err(transaction_error)?;
        Ok(records.len())
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

    // --- stations -------------------------------------------------------------

    pub fn station(&self, id: &ChargePointId) -> Result<Option<StationRecord>> {
        self.stations
            .get(id.as_str())?
            .map(|b| decode("stations", &b))
            .transpose()
    }

    pub fn put_station(&self, record: &StationRecord) -> Result<()> {
        self.stations.insert(record.id.as_str(), encode(record))?;
        Ok(())
    }

    pub fn remove_station(&self, id: &ChargePointId) -> Result<()> {
        self.stations.remove(id.as_str())?;
        self.flush()
    }

    pub fn stations(&self) -> Result<Vec<StationRecord>> {
        self.stations
            .iter()
            .values()
            .map(|v| decode("stations", &v?))
            .collect()
    }

    // --- transactions ---------------------------------------------------------

    /// Opens a transaction with a fresh id (never reused, also across restarts) and
    /// flushes it before returning, so the answer to the station is durable.
    pub fn begin_transaction(&self, new: NewTransaction) -> Result<TransactionRecord> {
        let id = take_next(&self.meta, NEXT_TX_ID, 1)?;
        let id = i32::try_from(id).map_err(|_| StoreError::TransactionIdsExhausted)?;
        let record = TransactionRecord {
            id,
            station: new.station,
            connector: new.connector,
            id_tag: new.id_tag,
            meter_start_wh: new.meter_start_wh,
            started_at: new.started_at,
            reservation_id: new.reservation_id,
            vip: new.vip,
            last_meter_wh: None,
            cost: 0.0,
            stop: None,
        };
        // The index first: an entry whose record a crash lost is dropped when read.
        self.open.insert(open_key(&record.station, id), &[])?;
        self.transactions
            .insert(id.to_be_bytes(), encode(&record))?;
        self.flush()?;
        Ok(record)
    }

    /// A transaction, open or closed.
    pub fn transaction(&self, id: i32) -> Result<Option<TransactionRecord>> {
        if let Some(bytes) = self.transactions.get(id.to_be_bytes())? {
            return decode("transactions", &bytes).map(Some);
        }
        self.closed_transaction(id)
    }

    fn closed_transaction(&self, id: i32) -> Result<Option<TransactionRecord>> {
        let Some(bytes) = block_key(id).map(|key| self.closed.get(key)).transpose()? else {
            return Ok(None);
        };
        let Some(bytes) = bytes else {
            return Ok(None);
        };
        let block: Vec<TransactionRecord> = decode("closed_transactions", &bytes)?;
        Ok(block.into_iter().find(|t| t.id == id))
    }

    /// Replaces an open transaction's record (energy, cost); not flushed: it is rebuilt
    /// from the station's own registers at the stop. A transaction closed meanwhile keeps
    /// what its stop wrote.
    pub fn update_transaction(&self, record: &TransactionRecord) -> Result<()> {
        let value = encode(record);
        self.transactions
            .fetch_and_update(record.id.to_be_bytes(), |old| old.map(|_| value.clone()))?;
        self.wrote(1)
    }

    /// Closes a transaction, moving it into its block and out of the index in one sled
    /// transaction, and flushes. Closing an already closed one keeps the first stop.
    pub fn stop_transaction(
        &self,
        id: i32,
        stop: TransactionStop,
        price_per_kwh: Option<f64>,
    ) -> Result<TransactionRecord> {
        let closed = (
            &self.transactions,
            &self.closed,
            &self.closed_spans,
            &self.open,
        )
            .transaction(|(open_records, closed, spans, index)| {
                let Some(bytes) = open_records.get(id.to_be_bytes())? else {
                    return Ok(None);
                };
                let mut record: TransactionRecord =
                    decode("transactions", &bytes).map_err(ConflictableTransactionError::Abort)?;
                record.advance_register(stop.meter_stop_wh as f64, price_per_kwh);
                record.stop = Some(stop.clone());
                file_closed([open_records, closed, spans], std::slice::from_ref(&record))?;
                index.remove(open_key(&record.station, id))?;
                Ok(Some(record))
            })
            .map_err(transaction_error)?;
        match closed {
            Some(record) => {
                self.pack_samples(id)?;
                self.flush()?;
                Ok(record)
            }
            None => self
                .closed_transaction(id)?
                .ok_or(StoreError::UnknownTransaction(id)),
        }
    }

    /// The open transactions of one station, oldest first (what its actor restores), from
    /// the index, not the history. An entry whose record is gone or closed (a crash
    /// between the two writes of [`Store::begin_transaction`]) is dropped.
    pub fn open_transactions_of(&self, station: &ChargePointId) -> Result<Vec<TransactionRecord>> {
        let mut open = Vec::new();
        for key in self.open.scan_prefix(open_prefix(station)).keys() {
            let key = key?;
            match id_of_key(&key).map(|id| self.transaction(id)).transpose()? {
                Some(Some(t)) if t.is_open() => open.push(t),
                _ => {
                    self.open.remove(&key)?;
                }
            }
        }
        Ok(open)
    }

    /// Transactions matching the filter, oldest first.
    pub fn transactions(&self, filter: &TransactionFilter) -> Result<Vec<TransactionRecord>> {
        let mut out = Vec::new();
        let mut add_block = |bytes: &[u8]| -> Result<()> {
            let block: Vec<TransactionRecord> = decode("closed_transactions", bytes)?;
            out.extend(block.into_iter().filter(|t| filter.matches(t)));
            Ok(())
        };
        if filter.from.is_none() && filter.to.is_none() {
            for block in self.closed.iter().values() {
                add_block(&block?)?;
            }
        } else {
            // Only the blocks whose span can match: a month out of years reads a month.
            for entry in self.closed_spans.iter() {
                let (key, span) = entry?;
                if Span::from_bytes(&span).is_none_or(|span| span.may_match(filter)) {
                    if let Some(block) = self.closed.get(&key)? {
                        add_block(&block)?;
                    }
                }
            }
        }
        for value in self.transactions.iter().values() {
            let t: TransactionRecord = decode("transactions", &value?)?;
            if filter.matches(&t) {
                out.push(t);
            }
        }
        // Two runs sorted by id, closed then open: the merge sort takes them as such.
        out.sort_by_key(|t| t.id);
        Ok(out)
    }

    /// Appends one message's samples, in the compact [`SampleBatch`] form, to the
    /// transaction's last chunk (key: transaction, sequence) while that is under
    /// [`SAMPLE_CHUNK_BYTES`], else starts a chunk. Only the transaction's station actor
    /// writes its samples, so the read-append-write needs no lock.
    pub fn add_samples(&self, transaction: i32, samples: &[Sample]) -> Result<()> {
        if samples.is_empty() {
            return Ok(());
        }
        let batch = SampleBatch::from_samples(samples);
        let last = self
            .samples
            .scan_prefix(transaction.to_be_bytes())
            .next_back()
            .transpose()?;
        if let Some((key, value)) = last.filter(|(_, v)| v.len() < SAMPLE_CHUNK_BYTES) {
            // A chunk in the oldest form (a list of samples) is left as it is.
            if let Ok(mut chunk) = serde_json::from_slice::<SampleBatch>(&value) {
                chunk.v.extend(batch.v);
                self.samples.insert(key, encode(&chunk))?;
                return self.wrote(1);
            }
        }
        let seq = self.db.generate_id()?;
        let mut key = transaction.to_be_bytes().to_vec();
        key.extend_from_slice(&seq.to_be_bytes());
        self.samples.insert(key, encode(&batch))?;
        self.wrote(1)
    }

    /// A transaction's samples in the order they came: those packed at its stop, then any
    /// that came after it.
    pub fn samples(&self, transaction: i32) -> Result<Vec<Sample>> {
        let mut out = Vec::new();
        if let Some(packed) = self.packed_samples(transaction)? {
            packed.into_samples(&mut out);
        }
        for value in self.samples.scan_prefix(transaction.to_be_bytes()).values() {
            let value = value?;
            match serde_json::from_slice::<SampleBatch>(&value) {
                Ok(batch) => batch.into_samples(&mut out),
                // Written before the compact form (a list of samples).
                Err(_) => out.extend(decode::<Vec<Sample>>("samples", &value)?),
            }
        }
        Ok(out)
    }

    /// Moves a just closed transaction's samples into its block's pack if they are no more
    /// than [`PACKED_SAMPLES_MAX`] bytes, in one sled transaction (chunks out, pack entry
    /// in). Chunks in the oldest form are left as they are.
    fn pack_samples(&self, transaction: i32) -> Result<()> {
        let Some(pack_key) = block_key(transaction) else {
            return Ok(());
        };
        let mut chunks = Vec::new();
        let mut bytes = 0;
        let mut merged = SampleBatch { v: Vec::new() };
        for entry in self.samples.scan_prefix(transaction.to_be_bytes()) {
            let (key, value) = entry?;
            bytes += value.len();
            let Some(batch) = (bytes <= PACKED_SAMPLES_MAX)
                .then(|| serde_json::from_slice::<SampleBatch>(&value).ok())
                .flatten()
            else {
                return Ok(());
            };
            merged.v.extend(batch.v);
            chunks.push(key);
        }
        if chunks.is_empty() {
            return Ok(());
        }
        (&self.samples, &self.closed_samples)
            .transaction(|(samples, packs)| {
                // A prune may have taken the chunks since the scan (a stop reported long
                // after it happened): then there is nothing left to pack.
                for key in &chunks {
                    if samples.get(key)?.is_none() {
                        return Ok(());
                    }
                }
                let mut pack: SamplePack = match packs.get(pack_key)? {
                    Some(b) => {
                        decode("closed_samples", &b).map_err(ConflictableTransactionError::Abort)?
                    }
                    None => SamplePack::default(),
                };
                match pack.t.binary_search_by_key(&transaction, |(t, _)| *t) {
                    Ok(at) => pack.t[at].1.v.extend(merged.v.iter().cloned()),
                    Err(at) => pack.t.insert(at, (transaction, merged.clone())),
                }
                for key in &chunks {
                    samples.remove(key)?;
                }
                packs.insert(&pack_key, encode(&pack))?;
                Ok(())
            })
            .map_err(transaction_error)
    }

    /// A transaction's entry in its block's pack.
    fn packed_samples(&self, transaction: i32) -> Result<Option<SampleBatch>> {
        let Some(key) = block_key(transaction) else {
            return Ok(None);
        };
        let Some(bytes) = self.closed_samples.get(key)? else {
            return Ok(None);
        };
        let pack: SamplePack = decode("closed_samples", &bytes)?;
        Ok(pack
            .t
            .into_iter()
            .find_map(|(t, batch)| (t == transaction).then_some(batch)))
    }

    /// Deletes the samples of transactions that stopped before `cutoff`; the transactions
    /// themselves (energy, cost, times) stay. Returns how many transactions lost their
    /// samples. See [`Store::prune`].
    pub fn prune_samples(&self, cutoff: DateTime<Utc>) -> Result<usize> {
        self.prune(Pruned::Samples, cutoff)
    }

    /// Deletes the transactions that stopped before `cutoff`, records and samples: for a
    /// site that keeps its history elsewhere (CSV exports) and wants the store bounded.
    /// Returns how many went.
    pub fn prune_transactions(&self, cutoff: DateTime<Utc>) -> Result<usize> {
        self.prune(Pruned::Transactions, cutoff)
    }

    /// Removes `what` of the transactions that stopped before `cutoff`. Resumes where the
    /// last call of its kind stopped and walks the closed blocks forward only while
    /// transactions started before `cutoff`, so a call costs the transactions that aged
    /// since the last one, not the whole history. A transaction still open holds the
    /// resume point back (it may yet close with an old stop) but does not block the ones
    /// after it.
    fn prune(&self, what: Pruned, cutoff: DateTime<Utc>) -> Result<usize> {
        let marker = match what {
            Pruned::Samples => SAMPLES_PRUNED_BELOW,
            Pruned::Transactions => TRANSACTIONS_PRUNED_BELOW,
        };
        let from = self
            .meta
            .get(marker)?
            .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
            .map_or(0, i32::from_be_bytes);
        let mut pruned = 0;
        let mut resume = None;
        let mut walked_to = from;
        let mut reached_cutoff = false;
        for entry in self.closed.range(block_key(from).unwrap_or_default()..) {
            let (key, block) = entry?;
            let block: Vec<TransactionRecord> = decode("closed_transactions", &block)?;
            // Past their retention: their samples go, and with `Transactions` they too.
            let mut expired = Vec::new();
            let mut gone = Vec::new();
            for t in block.iter().filter(|t| t.id >= from) {
                if t.started_at >= cutoff {
                    reached_cutoff = true;
                    break;
                }
                walked_to = t.id + 1;
                if t.stop.as_ref().is_none_or(|stop| stop.at >= cutoff) {
                    resume.get_or_insert(t.id);
                    continue;
                }
                expired.push(t.id);
            }
            let had_samples = self.remove_samples(&key, &expired)?;
            match what {
                Pruned::Samples => pruned += had_samples,
                Pruned::Transactions => gone = expired,
            }
            if !gone.is_empty() {
                pruned += gone.len();
                // The span may now be wider than the block: harmless, it only filters.
                let left = self.closed.update_and_fetch(&key, |old| {
                    let old = old?;
                    let Ok(mut block) = serde_json::from_slice::<Vec<TransactionRecord>>(old)
                    else {
                        return Some(old.to_vec());
                    };
                    block.retain(|t| !gone.contains(&t.id));
                    (!block.is_empty()).then(|| encode(&block))
                })?;
                if left.is_none() {
                    self.closed_spans.remove(&key)?;
                }
            }
            if reached_cutoff {
                break;
            }
        }
        let first_open = self.transactions.first()?.and_then(|(k, _)| id_of_key(&k));
        let resume = [resume.unwrap_or(walked_to), first_open.unwrap_or(i32::MAX)]
            .into_iter()
            .min()
            .unwrap_or(walked_to);
        self.meta.insert(marker, &resume.to_be_bytes())?;
        self.flush()?;
        Ok(pruned)
    }

    /// Removes the samples, packed and in chunks, of `transactions` (closed, of the block
    /// whose key is `block`); returns how many had any. The block's pack is read and
    /// rewritten once for them all.
    fn remove_samples(&self, block: &[u8], transactions: &[i32]) -> Result<usize> {
        if transactions.is_empty() {
            return Ok(0);
        }
        let mut had: Vec<i32> = Vec::new();
        let packed = match self.closed_samples.get(block)? {
            Some(bytes) => decode::<SamplePack>("closed_samples", &bytes)?
                .t
                .iter()
                .any(|(t, _)| transactions.contains(t)),
            None => false,
        };
        if packed {
            // A compare-and-swap: a stop may be packing into the same block meanwhile.
            self.closed_samples.update_and_fetch(block, |old| {
                let old = old?;
                let Ok(mut pack) = serde_json::from_slice::<SamplePack>(old) else {
                    return Some(old.to_vec());
                };
                had.clear();
                pack.t.retain(|(t, _)| {
                    let expired = transactions.contains(t);
                    if expired {
                        had.push(*t);
                    }
                    !expired
                });
                (!pack.t.is_empty()).then(|| encode(&pack))
            })?;
        }
        let mut batch = sled::Batch::default();
        for &transaction in transactions {
            let mut chunks = false;
            for key in self.samples.scan_prefix(transaction.to_be_bytes()).keys() {
                batch.remove(key?);
                chunks = true;
            }
            if chunks && !had.contains(&transaction) {
                had.push(transaction);
            }
        }
        self.samples.apply_batch(batch)?;
        Ok(had.len())
    }

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

    // --- operator log -----------------------------------------------------------

    /// Appends to the log ring, dropping the oldest entry beyond [`LOG_CAPACITY`].
    pub fn log(
        &self,
        level: LogLevel,
        station: Option<&ChargePointId>,
        message: impl Into<String>,
    ) -> Result<LogEntry> {
        let seq = take_next(&self.meta, NEXT_LOG_SEQ, 0)?;
        let entry = LogEntry {
            seq,
            at: Utc::now(),
            level,
            station: station.cloned(),
            message: message.into(),
        };
        self.logs.insert(seq.to_be_bytes(), encode(&entry))?;
        if seq >= LOG_CAPACITY {
            self.logs.remove((seq - LOG_CAPACITY).to_be_bytes())?;
        }
        Ok(entry)
    }

    /// The newest `limit` log entries matching `station`, newest first.
    pub fn logs(&self, station: Option<&ChargePointId>, limit: usize) -> Result<Vec<LogEntry>> {
        let mut out = Vec::new();
        for value in self.logs.iter().values().rev() {
            let e: LogEntry = decode("logs", &value?)?;
            if station.is_none_or(|s| e.station.as_ref() == Some(s)) {
                out.push(e);
                if out.len() >= limit {
                    break;
                }
            }
        }
        Ok(out)
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

    fn new_tx(station: &str) -> NewTransaction {
        NewTransaction {
            station: station.into(),
            connector: 1,
            id_tag: "TAG".into(),
            meter_start_wh: 1000,
            started_at: Utc::now(),
            reservation_id: None,
            vip: false,
        }
    }

    fn days_ago(days: i64) -> DateTime<Utc> {
        Utc::now() - chrono::TimeDelta::days(days)
    }

    /// A history on CP1, one transaction per `(started, with_a_sample, stopped)` in days
    /// ago (`stopped`: `None` for one still open); their ids, in that order.
    fn history(store: &Store, transactions: &[(i64, bool, Option<i64>)]) -> Vec<i32> {
        let sample = Sample {
            at: Utc::now(),
            measurand: "Energy.Active.Import.Register".into(),
            phase: None,
            value: 1.0,
            unit: Some("Wh".into()),
        };
        let mut ids = Vec::new();
        for &(started, with_sample, _) in transactions {
            let mut new = new_tx("CP1");
            new.started_at = days_ago(started);
            let t = store.begin_transaction(new).expect("begin");
            if with_sample {
                store
                    .add_samples(t.id, std::slice::from_ref(&sample))
                    .expect("add");
            }
            ids.push(t.id);
        }
        for (&id, &(_, _, stopped)) in ids.iter().zip(transactions) {
            if let Some(days) = stopped {
                store
                    .stop_transaction(id, stop(days_ago(days), 2000), None)
                    .expect("stop");
            }
        }
        ids
    }

    /// A stop at `at` with the register at `meter_stop_wh`.
    fn stop(at: DateTime<Utc>, meter_stop_wh: i64) -> TransactionStop {
        TransactionStop {
            at,
            meter_stop_wh,
            reason: None,
            id_tag: None,
        }
    }

    /// The ids of a station's open transactions.
    fn open_ids(store: &Store, station: &str) -> Vec<i32> {
        store
            .open_transactions_of(&ChargePointId::new(station))
            .expect("read")
            .iter()
            .map(|t| t.id)
            .collect()
    }

    #[test]
    fn transaction_ids_never_repeat_across_reopen() {
        let dir = tempfile::tempdir().expect("temp dir");
        let first = {
            let store = Store::open(dir.path()).expect("open");
            let a = store.begin_transaction(new_tx("CP1")).expect("begin").id;
            let b = store.begin_transaction(new_tx("CP1")).expect("begin").id;
            assert!(b > a);
            b
        };
        let store = Store::open(dir.path()).expect("reopen");
        let next = store.begin_transaction(new_tx("CP1")).expect("begin").id;
        assert!(next > first, "{next} after {first}");
        assert_eq!(open_ids(&store, "CP1").len(), 3);
    }

    #[test]
    fn open_transactions_are_found_per_station_without_the_history() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let done = stop(Utc::now(), 2000);
        // "CP1" is a prefix of "CP10": their entries must not mix.
        let a = store.begin_transaction(new_tx("CP1")).expect("begin").id;
        let b = store.begin_transaction(new_tx("CP10")).expect("begin").id;
        let c = store.begin_transaction(new_tx("CP1")).expect("begin").id;
        store.stop_transaction(a, done, None).expect("stop");
        let ids = |station: &str| open_ids(&store, station);
        assert_eq!(ids("CP1"), vec![c]);
        assert_eq!(ids("CP10"), vec![b]);
        assert!(ids("CP").is_empty());
        assert_eq!(store.open.len(), 2, "the stop took its entry out");

        // An index entry whose record a crash lost (begin_transaction writes the entry
        // first) is dropped when read.
        store.transactions.remove(b.to_be_bytes()).expect("remove");
        assert!(ids("CP10").is_empty());
        assert_eq!(store.open.len(), 1);
    }

    #[test]
    fn closed_transactions_share_blocks_and_read_as_before() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        // 40 transactions (ids 1..=40), every third left open.
        let ids: Vec<i32> = (0..40)
            .map(|_| store.begin_transaction(new_tx("CP1")).expect("begin").id)
            .collect();
        for (n, &id) in ids.iter().enumerate() {
            if n % 3 != 0 {
                store
                    .stop_transaction(id, stop(Utc::now(), 1000 + i64::from(id)), None)
                    .expect("stop");
            }
        }
        let open: Vec<i32> = ids.iter().copied().step_by(3).collect();
        assert_eq!(store.transactions.len(), open.len(), "only the open ones");
        assert_eq!(store.closed.len(), 3, "ids 1..=40 in blocks of 16");
        assert_eq!(open_ids(&store, "CP1"), open);

        // Read one by one and all together, in id order, closed and open mixed.
        for &id in &ids {
            let t = store.transaction(id).expect("read").expect("known");
            assert_eq!(t.id, id);
            assert_eq!(t.is_open(), open.contains(&id), "transaction {id}");
        }
        let all = store
            .transactions(&TransactionFilter::default())
            .expect("list");
        assert_eq!(all.iter().map(|t| t.id).collect::<Vec<_>>(), ids);
        assert_eq!(store.transaction(999).expect("read"), None);
        assert_eq!(store.transaction(-1).expect("read"), None);

        // A closed record is final: a late energy update does not reopen or change it.
        let mut late = store.transaction(ids[1]).expect("read").expect("known");
        let before = late.clone();
        late.stop = None;
        late.cost = 99.0;
        store.update_transaction(&late).expect("update");
        assert_eq!(store.transaction(ids[1]).expect("read"), Some(before));
        assert_eq!(store.transactions.len(), open.len());

        // The open ones close into the blocks they belong to; the layout survives a reopen.
        for &id in &open {
            store
                .stop_transaction(id, stop(Utc::now(), 5000), None)
                .expect("stop");
        }
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert!(store.transactions.is_empty());
        assert_eq!(store.closed.len(), 3);
        let all = store
            .transactions(&TransactionFilter::default())
            .expect("list");
        assert_eq!(all.iter().map(|t| t.id).collect::<Vec<_>>(), ids);
        assert!(all.iter().all(|t| !t.is_open()));
    }

    #[test]
    fn a_listing_by_time_reads_the_blocks_that_can_match_and_finds_all_that_do() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        // 60 transactions started a day apart, newest first (ids 1..=60: 60 days ago to
        // yesterday), a few out of order as a station back from offline reports them;
        // every fifth left open.
        let t0 = Utc::now();
        let started = |n: i64| {
            let days = if n % 7 == 3 { 60 - n / 2 } else { 60 - n };
            t0 - chrono::TimeDelta::days(days) + chrono::TimeDelta::microseconds(n * 333)
        };
        let ids: Vec<i32> = (0..60)
            .map(|n| {
                let mut new = new_tx(if n % 2 == 0 { "CP1" } else { "CP2" });
                new.started_at = started(n);
                store.begin_transaction(new).expect("begin").id
            })
            .collect();
        for (n, &id) in ids.iter().enumerate() {
            if n % 5 != 0 {
                store
                    .stop_transaction(id, stop(t0, 2000), None)
                    .expect("stop");
            }
        }
        let everything = store
            .transactions(&TransactionFilter::default())
            .expect("list");
        assert_eq!(everything.len(), 60);
        let check = |filter: TransactionFilter| {
            let expected: Vec<i32> = everything
                .iter()
                .filter(|t| filter.matches(t))
                .map(|t| t.id)
                .collect();
            let listed: Vec<i32> = store
                .transactions(&filter)
                .expect("list")
                .iter()
                .map(|t| t.id)
                .collect();
            assert_eq!(listed, expected, "{filter:?}");
            expected.len()
        };
        // Bounds exactly on a start (to the microsecond), between, and outside; 14, 30
        // and 46 are the latest starts of blocks 0, 1 and 2, 15 and 31 the earliest of 1, 2.
        let mut matched = 0;
        let bounds = [(10, 20), (0, 60), (25, 26), (59, 70), (-5, 3), (33, 33)];
        for (from, to) in bounds.into_iter().chain([(14, 31), (30, 46), (46, 15)]) {
            for shift in [-1, 0, 1] {
                let at = |n: i64| started(n) + chrono::TimeDelta::microseconds(shift);
                matched += check(TransactionFilter {
                    station: None,
                    from: Some(at(from)),
                    to: Some(at(to)),
                });
                matched += check(TransactionFilter {
                    station: Some("CP2".into()),
                    from: Some(at(from)),
                    to: None,
                });
                matched += check(TransactionFilter {
                    station: None,
                    from: None,
                    to: Some(at(to)),
                });
            }
        }
        assert!(matched > 100, "the filters matched something: {matched}");

        // Spans built for a store whose blocks have none (written before they existed).
        store.closed_spans.clear().expect("clear");
        store.meta.remove(BLOCK_SPANS_BUILT).expect("remove");
        store.flush().expect("flush");
        drop(store);
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.closed_spans.len(), store.closed.len());
        let month = TransactionFilter {
            station: None,
            from: Some(t0 - chrono::TimeDelta::days(30)),
            to: None,
        };
        let expected = everything.iter().filter(|t| month.matches(t)).count();
        assert_eq!(store.transactions(&month).expect("list").len(), expected);
    }

    #[test]
    fn a_store_from_before_the_blocks_moves_its_closed_transactions_at_its_first_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let ids = {
            let store = Store::open(dir.path()).expect("open");
            let ids = history(
                &store,
                &[(3, true, Some(2)), (2, false, None), (1, true, Some(0))],
            );
            // What a store written by an older version looks like: every record under its
            // own key in `transactions`, no blocks, no mark.
            for block in store.closed.iter().values() {
                let block: Vec<TransactionRecord> =
                    serde_json::from_slice(&block.expect("read")).expect("decode");
                for t in block {
                    store
                        .transactions
                        .insert(t.id.to_be_bytes(), encode(&t))
                        .expect("write");
                }
            }
            store.closed.clear().expect("clear");
            store.meta.remove(CLOSED_IN_BLOCKS).expect("remove");
            store.flush().expect("flush");
            assert_eq!(store.transactions.len(), 3);
            ids
        };
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.transactions.len(), 1, "the open one stays");
        assert_eq!(store.closed.len(), 1);
        let all = store
            .transactions(&TransactionFilter::default())
            .expect("list");
        assert_eq!(all.iter().map(|t| t.id).collect::<Vec<_>>(), ids);
        assert_eq!(
            all.iter()
                .map(TransactionRecord::is_open)
                .collect::<Vec<_>>(),
            [false, true, false]
        );
        assert_eq!(store.samples(ids[2]).expect("samples").len(), 1);
        assert!(store.meta.contains_key(CLOSED_IN_BLOCKS).expect("read"));
    }

    #[test]
    fn a_store_from_before_the_index_gets_it_at_its_first_open() {
        let dir = tempfile::tempdir().expect("temp dir");
        let id = {
            let store = Store::open(dir.path()).expect("open");
            let id = store.begin_transaction(new_tx("CP7")).expect("begin").id;
            // What a store written by an older version looks like: no index, no mark.
            store.open.clear().expect("clear");
            store.meta.remove(OPEN_INDEX_BUILT).expect("remove");
            store.flush().expect("flush");
            assert!(store
                .open_transactions_of(&ChargePointId::new("CP7"))
                .expect("read")
                .is_empty());
            id
        };
        let store = Store::open(dir.path()).expect("reopen");
        let open = store
            .open_transactions_of(&ChargePointId::new("CP7"))
            .expect("read");
        assert_eq!(open.iter().map(|t| t.id).collect::<Vec<_>>(), vec![id]);
        assert!(store.meta.contains_key(OPEN_INDEX_BUILT).expect("read"));
    }

    #[test]
    fn a_stopped_transaction_keeps_its_first_stop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let t = store.begin_transaction(new_tx("CP1")).expect("begin");
        assert_eq!(
            store
                .stop_transaction(t.id, stop(Utc::now(), 5000), None)
                .expect("stop")
                .energy_wh(),
            4000.0
        );
        assert_eq!(
            store
                .stop_transaction(t.id, stop(Utc::now(), 9000), None)
                .expect("stop")
                .energy_wh(),
            4000.0
        );
        assert!(open_ids(&store, "CP1").is_empty());
        assert!(matches!(
            store.stop_transaction(999, stop(Utc::now(), 1), None),
            Err(StoreError::UnknownTransaction(999))
        ));
    }

    #[test]
    fn energy_is_priced_at_the_price_in_force_when_it_was_taken() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let mut t = store.begin_transaction(new_tx("CP1")).expect("begin");
        t.advance_register(3000.0, Some(0.30)); // 2 kWh at 0.30
        t.advance_register(2500.0, Some(9.99)); // a register never goes back
        t.advance_register(4000.0, None); // 1 kWh outside any period: free
        store.update_transaction(&t).expect("update");
        let done = store
            .stop_transaction(t.id, stop(Utc::now(), 6000), Some(0.10))
            .expect("stop"); // 2 kWh at 0.10
        assert!((done.cost - 0.80).abs() < 1e-9, "cost {}", done.cost);
        assert_eq!(done.energy_wh(), 5000.0);
    }

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

    #[test]
    fn the_log_is_a_bounded_ring_listed_newest_first() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let cp: ChargePointId = "CP1".into();
        store.log(LogLevel::Info, None, "boot").expect("log");
        store
            .log(LogLevel::Warn, Some(&cp), "rejected profile")
            .expect("log");
        let all = store.logs(None, 10).expect("logs");
        assert_eq!(
            all.iter().map(|e| e.message.as_str()).collect::<Vec<_>>(),
            ["rejected profile", "boot"]
        );
        assert_eq!(store.logs(Some(&cp), 10).expect("logs").len(), 1);
    }

    #[test]
    fn samples_are_kept_per_transaction_in_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let s = |v| Sample {
            at: Utc::now(),
            measurand: "Current.Import".into(),
            phase: Some("L1".into()),
            value: v,
            unit: Some("A".into()),
        };
        store.add_samples(7, &[s(1.0), s(2.0)]).expect("add");
        store.add_samples(8, &[s(9.0)]).expect("add");
        store.add_samples(7, &[s(3.0)]).expect("add");
        let values: Vec<f64> = store
            .samples(7)
            .expect("samples")
            .iter()
            .map(|s| s.value)
            .collect();
        assert_eq!(values, [1.0, 2.0, 3.0]);
    }

    #[test]
    fn a_transactions_samples_share_a_few_keys_and_keep_their_order() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let t0 = DateTime::from_timestamp_millis(1_780_000_000_000).expect("a time");
        let message = |minute: i64, tx: i32| -> Vec<Sample> {
            let at = t0 + chrono::TimeDelta::minutes(minute);
            ["L1", "L2", "L3"]
                .iter()
                .map(|phase| Sample {
                    at,
                    measurand: "Current.Import".into(),
                    phase: Some((*phase).into()),
                    value: f64::from(tx) * 1000.0 + minute as f64,
                    unit: Some("A".into()),
                })
                .collect()
        };
        // Two vehicles charging side by side for five hours, a kept message a minute each.
        let minutes = 300;
        let mut expected = Vec::new();
        for minute in 0..minutes {
            store.add_samples(1, &message(minute, 1)).expect("add");
            store.add_samples(2, &message(minute, 2)).expect("add");
            expected.extend(message(minute, 1));
        }
        assert_eq!(store.samples(1).expect("samples"), expected);
        assert_eq!(store.samples(2).expect("samples").len(), expected.len());
        let keys = store.samples.scan_prefix(1i32.to_be_bytes()).count();
        let bytes: usize = store
            .samples
            .scan_prefix(1i32.to_be_bytes())
            .values()
            .map(|v| v.expect("read").len())
            .sum();
        // Chunks of about SAMPLE_CHUNK_BYTES, not a key per message.
        assert!(keys >= 2, "{keys} keys for {bytes} bytes");
        assert!(
            keys <= bytes / SAMPLE_CHUNK_BYTES + 1,
            "{keys} keys for {bytes} bytes"
        );
    }

    #[test]
    fn a_short_sessions_samples_move_into_its_blocks_pack_at_the_stop() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        let t0 = DateTime::from_timestamp_millis(1_780_000_000_000).expect("a time");
        let message = |minute: i64| -> Vec<Sample> {
            vec![Sample {
                at: t0 + chrono::TimeDelta::minutes(minute),
                measurand: "Energy.Active.Import.Register".into(),
                phase: None,
                value: 1000.0 + minute as f64,
                unit: Some("Wh".into()),
            }]
        };
        let expected =
            |minutes: std::ops::Range<i64>| -> Vec<Sample> { minutes.flat_map(message).collect() };
        // Three short sessions and a long one (five hours at a kept message a minute).
        let ids: Vec<i32> = (0..4)
            .map(|_| store.begin_transaction(new_tx("CP1")).expect("begin").id)
            .collect();
        for minute in 0..10 {
            for &id in &ids[..3] {
                store.add_samples(id, &message(minute)).expect("add");
            }
        }
        for minute in 0..300 {
            store.add_samples(ids[3], &message(minute)).expect("add");
        }
        for &id in &ids {
            store
                .stop_transaction(id, stop(Utc::now(), 2000), None)
                .expect("stop");
        }
        let own_keys = |id: i32| store.samples.scan_prefix(id.to_be_bytes()).count();
        // The short ones share their block's pack; the long one keeps its chunks.
        assert_eq!(
            ids[..3].iter().map(|&id| own_keys(id)).collect::<Vec<_>>(),
            [0, 0, 0]
        );
        assert!(own_keys(ids[3]) >= 2, "{} chunks", own_keys(ids[3]));
        assert_eq!(store.closed_samples.len(), 1);
        for &id in &ids[..3] {
            assert_eq!(store.samples(id).expect("samples"), expected(0..10));
        }
        assert_eq!(store.samples(ids[3]).expect("samples"), expected(0..300));

        // A late message (after the stop) comes after the packed ones.
        store.add_samples(ids[0], &message(10)).expect("add late");
        assert_eq!(store.samples(ids[0]).expect("samples"), expected(0..11));

        // Pruning takes pack entries and chunks alike, and the pack once empty.
        assert_eq!(store.prune_samples(days_ago(-1)).expect("prune"), 4);
        for &id in &ids {
            assert!(store.samples(id).expect("samples").is_empty(), "{id}");
        }
        assert!(store.closed_samples.is_empty());
        assert!(store.samples.is_empty());
    }

    #[test]
    fn pruning_drops_old_samples_of_closed_transactions_only() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        // 1: old and closed; 2: old and still open; 3: old and closed; 4: recent.
        let ids = history(
            &store,
            &[
                (100, true, Some(97)),
                (99, true, None),
                (98, true, Some(96)),
                (1, true, Some(0)),
            ],
        );

        let cutoff = days_ago(90);
        assert_eq!(store.prune_samples(cutoff).expect("prune"), 2);
        let left = |id| store.samples(id).expect("samples").len();
        assert_eq!(
            ids.iter().map(|&id| left(id)).collect::<Vec<_>>(),
            [0, 1, 0, 1]
        );
        // The records stay, with their energy.
        let first = store.transaction(ids[0]).expect("read").expect("kept");
        assert_eq!(first.energy_wh(), 1000.0);
        assert_eq!(store.prune_samples(cutoff).expect("again"), 0);

        // The open one closes long ago (an offline station reporting late): the resume
        // point held it back, so it is pruned now.
        store
            .stop_transaction(ids[1], stop(days_ago(95), 2000), None)
            .expect("stop");
        assert_eq!(store.prune_samples(cutoff).expect("prune"), 1);
        assert_eq!(left(ids[1]), 0);
        assert_eq!(left(ids[3]), 1, "recent samples stay");
    }

    #[test]
    fn transactions_past_their_retention_go_with_their_samples_and_ids_never_return() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        // 1: old and closed; 2: old and still open; 3: old, closed, no samples; 4: recent.
        let ids = history(
            &store,
            &[
                (800, true, Some(797)),
                (799, true, None),
                (798, false, Some(796)),
                (10, true, Some(9)),
            ],
        );

        let cutoff = days_ago(365);
        assert_eq!(store.prune_transactions(cutoff).expect("prune"), 2);
        let kept = |id| store.transaction(id).expect("read").is_some();
        assert_eq!(
            ids.iter().map(|&id| kept(id)).collect::<Vec<_>>(),
            [false, true, false, true]
        );
        assert!(store.samples(ids[0]).expect("samples").is_empty());
        assert_eq!(store.samples(ids[3]).expect("samples").len(), 1);
        assert_eq!(open_ids(&store, "CP1"), [ids[1]]);
        assert_eq!(store.prune_transactions(cutoff).expect("again"), 0);

        // The open one closes long ago (reported late): the resume point held it back.
        store
            .stop_transaction(ids[1], stop(days_ago(795), 2000), None)
            .expect("stop");
        assert_eq!(store.prune_transactions(cutoff).expect("prune"), 1);
        assert!(!kept(ids[1]));
        assert!(kept(ids[3]), "recent transactions stay");
        // Deleted ids are not given again.
        let next = store.begin_transaction(new_tx("CP1")).expect("begin");
        assert!(next.id > ids[3], "{} after {:?}", next.id, ids);
    }

    #[test]
    fn pruning_walks_across_blocks_and_deletes_emptied_ones() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        // Ids 1..=50: 1..=34 old and closed but 21 still open, 35..=50 recent.
        let plan: Vec<(i64, bool, Option<i64>)> = (1..=50)
            .map(|id| match id {
                21 => (500, true, None),
                ..=34 => (500, true, Some(499)),
                _ => (1, true, Some(0)),
            })
            .collect();
        let ids = history(&store, &plan);
        assert_eq!(ids, (1..=50).collect::<Vec<_>>());
        assert_eq!(
            store.closed.len(),
            4,
            "blocks 0 (1..=15), 1, 2, 3 (48..=50)"
        );

        let cutoff = days_ago(365);
        assert_eq!(store.prune_samples(cutoff).expect("prune"), 33);
        assert_eq!(store.prune_transactions(cutoff).expect("prune"), 33);
        let kept: Vec<i32> = store
            .transactions(&TransactionFilter::default())
            .expect("list")
            .iter()
            .map(|t| t.id)
            .collect();
        assert_eq!(kept, [21].into_iter().chain(35..=50).collect::<Vec<_>>());
        assert_eq!(store.closed.len(), 2, "blocks 0 and 1 emptied and gone");
        assert_eq!(store.samples(35).expect("samples").len(), 1);

        // Held back by 21, which closes long ago and goes at the next call.
        store
            .stop_transaction(21, stop(days_ago(499), 2000), None)
            .expect("stop");
        assert_eq!(store.closed.len(), 3);
        assert_eq!(store.prune_transactions(cutoff).expect("prune"), 1);
        assert_eq!(store.transaction(21).expect("read"), None);
        assert_eq!(store.samples(21).expect("samples").len(), 0);
        assert_eq!(store.closed.len(), 2);
        assert_eq!(store.prune_transactions(cutoff).expect("again"), 0);
    }

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

    #[test]
    fn samples_are_stored_compactly_and_the_older_form_still_reads() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::open(dir.path()).expect("open");
        // Stored to the millisecond, as stations send them.
        let t0 = DateTime::from_timestamp_millis(Utc::now().timestamp_millis()).expect("now");
        let t1 = t0 + chrono::TimeDelta::seconds(60);
        let s = |at, m: &str, phase: Option<&str>, value, unit: Option<&str>| Sample {
            at,
            measurand: m.into(),
            phase: phase.map(Into::into),
            value,
            unit: unit.map(Into::into),
        };
        let message = vec![
            s(t0, "Current.Import", Some("L1"), 16.0, Some("A")),
            s(t0, "Current.Import", Some("L2"), 15.5, Some("A")),
            s(
                t0,
                "Energy.Active.Import.Register",
                None,
                1234.0,
                Some("Wh"),
            ),
            s(t1, "Power.Active.Import", None, 11000.0, None),
            s(t1, "Vendor.Specific", None, 1.0, None),
        ];
        store.add_samples(5, &message).expect("add");
        // A batch in the form of session 1 (a list of samples), as an older store has it.
        let mut key = 5i32.to_be_bytes().to_vec();
        let seq = store.db.generate_id().expect("id");
        key.extend_from_slice(&seq.to_be_bytes());
        let old_form = vec![s(t1, "SoC", None, 80.0, Some("Percent"))];
        store
            .samples
            .insert(key, encode(&old_form))
            .expect("insert");
        // A message after the older batch starts a chunk of its own beside it.
        let later = vec![s(t1, "Current.Import", Some("L3"), 7.0, Some("A"))];
        store
            .add_samples(5, &later)
            .expect("add after the older form");
        let mut expected = message.clone();
        expected.extend(old_form);
        expected.extend(later);
        assert_eq!(store.samples(5).expect("samples"), expected);

        let compact = store
            .samples
            .scan_prefix(5i32.to_be_bytes())
            .values()
            .next()
            .expect("one")
            .expect("read");
        assert!(
            compact.len() * 3 < encode(&message).len(),
            "{} bytes against {}",
            compact.len(),
            encode(&message).len()
        );
    }

    #[test]
    fn every_ocpp_measurand_has_a_stored_code() {
        for m in crate::ocpp::meter_values::Measurand::ALL {
            assert!(
                matches!(MeasurandCode::of(m.as_str()), MeasurandCode::Known(_)),
                "{m}"
            );
        }
    }
}
