//! Transactions: the open ones a key each (`transactions`), their index by station
//! (`open_transactions`), and the reads and the stop that reach into the closed blocks.

use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use crate::units::ChargePointId;

use super::blocks::{block_key, file_closed, Span};
use super::records::{NewTransaction, TransactionFilter, TransactionRecord, TransactionStop};
use super::{decode, encode, take_next, transaction_error, Result, Store, StoreError};

const NEXT_TX_ID: &[u8] = b"next_transaction_id";

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

pub(super) fn open_key(station: &ChargePointId, id: i32) -> Vec<u8> {
    let mut key = open_prefix(station);
    key.extend_from_slice(&id.to_be_bytes());
    key
}

/// A transaction id as stored in keys, from a key's last four bytes.
pub(super) fn id_of_key(key: &[u8]) -> Option<i32> {
    let at = key.len().checked_sub(4)?;
    <[u8; 4]>::try_from(&key[at..]).ok().map(i32::from_be_bytes)
}

impl Store {
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
            notes: Vec::new(),
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
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::test_support::{new_tx, open_ids, stop};

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
}
