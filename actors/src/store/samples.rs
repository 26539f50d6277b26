//! Meter samples: in chunks per transaction (`samples`), the short sessions' packed per
//! block at their stop (`closed_samples`), in a compact stored form.

use chrono::DateTime;
use serde::{Deserialize, Serialize};
use sled::transaction::ConflictableTransactionError;
use sled::Transactional;

use super::blocks::block_key;
use super::records::Sample;
use super::{decode, encode, transaction_error, Result, Store};

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

impl Store {
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
    pub(super) fn pack_samples(&self, transaction: i32) -> Result<()> {
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

    /// Removes the samples, packed and in chunks, of `transactions` (closed, of the block
    /// whose key is `block`); returns how many had any. The block's pack is read and
    /// rewritten once for them all.
    pub(super) fn remove_samples(&self, block: &[u8], transactions: &[i32]) -> Result<usize> {
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
}

#[cfg(test)]
mod tests {
    use chrono::Utc;

    use super::*;
    use crate::store::test_support::{days_ago, new_tx, stop};

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
