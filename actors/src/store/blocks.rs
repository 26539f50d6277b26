//! Closed transactions in blocks of [`CLOSED_BLOCK`] consecutive ids
//! (`closed_transactions`), and each block's [`Span`] of start times (`closed_spans`).

use sled::transaction::{ConflictableTransactionError, TransactionalTree};

use super::records::{TransactionFilter, TransactionRecord};
use super::{decode, encode, StoreError};

/// Closed transactions are kept in blocks of this many consecutive ids, one sled key each
/// (sorted records, a few KB). sled keeps ~20 bytes of memory for every key it holds,
/// evicted or not (BENCHMARKS.md): a key per record made the controller grow with its
/// history for good, ~40 MB a year at a 1000-station depot, and the soak's RSS with it.
const CLOSED_BLOCK: u32 = 16;

/// The key of the block holding closed transaction `id`; `None` for an id we never give.
pub(super) fn block_key(id: i32) -> Option<[u8; 4]> {
    u32::try_from(id)
        .ok()
        .map(|id| (id / CLOSED_BLOCK).to_be_bytes())
}

/// The earliest and latest start (milliseconds since the epoch, rounded down) of the
/// transactions in a block, stored as two big-endian i64s.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) struct Span {
    first_ms: i64,
    last_ms: i64,
}

impl Span {
    pub(super) fn of(block: &[TransactionRecord]) -> Option<Span> {
        let starts = block.iter().map(|t| t.started_at.timestamp_millis());
        Some(Span {
            first_ms: starts.clone().min()?,
            last_ms: starts.max()?,
        })
    }

    pub(super) fn to_bytes(self) -> [u8; 16] {
        let mut bytes = [0; 16];
        bytes[..8].copy_from_slice(&self.first_ms.to_be_bytes());
        bytes[8..].copy_from_slice(&self.last_ms.to_be_bytes());
        bytes
    }

    pub(super) fn from_bytes(bytes: &[u8]) -> Option<Span> {
        let first = <[u8; 8]>::try_from(bytes.get(..8)?).ok()?;
        let last = <[u8; 8]>::try_from(bytes.get(8..16)?).ok()?;
        Some(Span {
            first_ms: i64::from_be_bytes(first),
            last_ms: i64::from_be_bytes(last),
        })
    }

    /// Whether a transaction started in this span could match the filter's times.
    pub(super) fn may_match(self, filter: &TransactionFilter) -> bool {
        filter
            .from
            .is_none_or(|from| self.last_ms >= from.timestamp_millis())
            && filter
                .to
                .is_none_or(|to| self.first_ms <= to.timestamp_millis())
    }
}

/// Inside a sled transaction: puts `records` (closed, of one block) into their block,
/// replacing any there with the same id, and takes them out of the open records; the
/// block's span follows.
pub(super) fn file_closed(
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

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::test_support::{new_tx, open_ids, stop};
    use crate::store::upgrade::BLOCK_SPANS_BUILT;
    use crate::store::Store;

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
}
