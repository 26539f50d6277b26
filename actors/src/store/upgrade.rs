//! Bringing a store written by an older version to the current layout, at open.

use sled::Transactional;

use super::blocks::{block_key, file_closed, Span};
use super::records::TransactionRecord;
use super::transactions::open_key;
use super::{decode, transaction_error, Result, Store};

/// Set once the open-transaction index covers the history (stores written before the
/// index existed build it at their first open).
const OPEN_INDEX_BUILT: &[u8] = b"open_index_built";
/// Set once every closed transaction is in a block (stores written before the blocks
/// existed move theirs at their first open).
const CLOSED_IN_BLOCKS: &[u8] = b"closed_in_blocks";
/// Set once every block has its span.
pub(super) const BLOCK_SPANS_BUILT: &[u8] = b"block_spans_built";

impl Store {
    /// Brings a store written by an older version to the current layout, each step once
    /// (a marker in `meta` says it ran), in order.
    pub(super) fn upgraded(self) -> Result<Store> {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{history, new_tx};
    use crate::store::{encode, TransactionFilter};
    use crate::units::ChargePointId;

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
}
