//! Pruning by retention: the samples, or the whole transactions, that stopped before a
//! cutoff.

use chrono::{DateTime, Utc};

use super::blocks::block_key;
use super::records::TransactionRecord;
use super::transactions::id_of_key;
use super::{decode, encode, Result, Store};

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

impl Store {
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::test_support::{days_ago, history, new_tx, open_ids, stop};
    use crate::store::TransactionFilter;

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
}
