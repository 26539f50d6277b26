//! The CPO uplink's journal: every message a station owes the CPO, persisted before it is
//! sent and removed once the CPO answered it, so that an outage or a restart loses none and
//! sends none twice; and the transaction ids the CPO gave for the local ones.
//!
//! Keys: journal `[len][station][seq u64 BE]` → entry; ids `t[len][station][local i32 BE]`
//! → CPO id, `b[len][station]` → the last BootNotification payload, `s[len][station]` →
//! the next sequence number, `m[len][station]` → the CPO's MeterValueSampleInterval.

use serde::{Deserialize, Serialize};

use super::{decode, encode, Result, Store};
use crate::ocpp::core::IdTagInfo;
use crate::units::{ChargePointId, IdTag};

/// One message for the CPO.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct JournalEntry {
    pub action: String,
    /// The payload as the station sent it (transaction ids still the local ones).
    pub payload: serde_json::Value,
    /// For a StartTransaction: the local transaction id it started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_transaction: Option<i32>,
}

fn prefix(kind: &[u8], station: &ChargePointId) -> Vec<u8> {
    let id = station.as_str().as_bytes();
    let mut key = Vec::with_capacity(kind.len() + 1 + id.len() + 8);
    key.extend_from_slice(kind);
    key.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    key.extend_from_slice(id);
    key
}

impl Store {
    /// Appends an entry to a station's journal (durably: flushed before it returns).
    pub fn journal_append(&self, station: &ChargePointId, entry: &JournalEntry) -> Result<u64> {
        let seq_key = prefix(b"s", station);
        let seq = self
            .uplink_ids
            .update_and_fetch(&seq_key, |old| {
                let n = old
                    .and_then(|b| <[u8; 8]>::try_from(b).ok())
                    .map_or(0, u64::from_be_bytes);
                Some((n + 1).to_be_bytes().to_vec())
            })?
            .and_then(|b| <[u8; 8]>::try_from(b.as_ref()).ok())
            .map_or(1, u64::from_be_bytes);
        let mut key = prefix(b"", station);
        key.extend_from_slice(&seq.to_be_bytes());
        self.uplink.insert(key, encode(entry))?;
        self.uplink.flush()?;
        Ok(seq)
    }

    /// The oldest entry of a station's journal.
    pub fn journal_first(&self, station: &ChargePointId) -> Result<Option<(u64, JournalEntry)>> {
        let p = prefix(b"", station);
        match self.uplink.scan_prefix(&p).next() {
            Some(item) => {
                let (key, value) = item?;
                let seq = <[u8; 8]>::try_from(&key[p.len()..])
                    .map(u64::from_be_bytes)
                    .unwrap_or(0);
                Ok(Some((seq, decode("uplink_journal", &value)?)))
            }
            None => Ok(None),
        }
    }

    /// Removes an entry the CPO answered.
    pub fn journal_remove(&self, station: &ChargePointId, seq: u64) -> Result<()> {
        let mut key = prefix(b"", station);
        key.extend_from_slice(&seq.to_be_bytes());
        self.uplink.remove(key)?;
        self.uplink.flush()?;
        Ok(())
    }

    /// How many entries a station still owes the CPO. Entries leave only from the front,
    /// so the journal is contiguous: its length is from its first to its last sequence
    /// number (no scan of a long backlog).
    pub fn journal_len(&self, station: &ChargePointId) -> usize {
        let p = prefix(b"", station);
        let seq = |item: Option<sled::Result<(sled::IVec, sled::IVec)>>| {
            item.and_then(|i| i.ok()).and_then(|(key, _)| {
                <[u8; 8]>::try_from(&key[p.len()..])
                    .ok()
                    .map(u64::from_be_bytes)
            })
        };
        let mut entries = self.uplink.scan_prefix(&p);
        match (seq(entries.next()), seq(entries.next_back())) {
            (Some(first), Some(last)) => usize::try_from(last - first + 1).unwrap_or(usize::MAX),
            (Some(_), None) => 1,
            _ => 0,
        }
    }

    /// Remembers the CPO's id for a local transaction.
    pub fn set_cpo_transaction(&self, station: &ChargePointId, local: i32, cpo: i32) -> Result<()> {
        let mut key = prefix(b"t", station);
        key.extend_from_slice(&local.to_be_bytes());
        self.uplink_ids.insert(key, &cpo.to_be_bytes())?;
        self.uplink_ids.flush()?;
        Ok(())
    }

    /// The CPO's id for a local transaction, once the CPO gave one.
    pub fn cpo_transaction(&self, station: &ChargePointId, local: i32) -> Result<Option<i32>> {
        let mut key = prefix(b"t", station);
        key.extend_from_slice(&local.to_be_bytes());
        Ok(self
            .uplink_ids
            .get(key)?
            .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
            .map(i32::from_be_bytes))
    }

    /// The local transaction the CPO knows under `cpo` (a RemoteStop from the CPO).
    pub fn local_transaction(&self, station: &ChargePointId, cpo: i32) -> Result<Option<i32>> {
        let p = prefix(b"t", station);
        for item in self.uplink_ids.scan_prefix(&p) {
            let (key, value) = item?;
            if value.as_ref() == cpo.to_be_bytes() {
                if let Ok(local) = <[u8; 4]>::try_from(&key[p.len()..]) {
                    return Ok(Some(i32::from_be_bytes(local)));
                }
            }
        }
        Ok(None)
    }

    /// Keeps the station's last BootNotification, to replay on every upstream connection.
    pub fn set_uplink_boot(
        &self,
        station: &ChargePointId,
        payload: &serde_json::Value,
    ) -> Result<()> {
        self.uplink_ids
            .insert(prefix(b"b", station), encode(payload))?;
        Ok(())
    }

    pub fn uplink_boot(&self, station: &ChargePointId) -> Result<Option<serde_json::Value>> {
        self.uplink_ids
            .get(prefix(b"b", station))?
            .map(|b| decode("uplink_ids", &b))
            .transpose()
    }

    /// Keeps the MeterValueSampleInterval the CPO set for the station (seconds).
    pub fn set_uplink_meter_interval(&self, station: &ChargePointId, every_s: u32) -> Result<()> {
        self.uplink_ids
            .insert(prefix(b"m", station), &every_s.to_be_bytes())?;
        Ok(())
    }

    /// The MeterValueSampleInterval the CPO set for the station, if it ever did.
    pub fn uplink_meter_interval(&self, station: &ChargePointId) -> Result<Option<u32>> {
        Ok(self
            .uplink_ids
            .get(prefix(b"m", station))?
            .and_then(|b| <[u8; 4]>::try_from(b.as_ref()).ok())
            .map(u32::from_be_bytes))
    }
}

impl Store {
    /// Keeps the CPO's answer for an id tag (tags compare case-insensitively).
    pub fn cache_authorization(&self, tag: &IdTag, info: &IdTagInfo) -> Result<()> {
        self.uplink_ids.insert(auth_key(tag), encode(info))?;
        Ok(())
    }

    /// The CPO's last answer for an id tag.
    pub fn cached_authorization(&self, tag: &IdTag) -> Result<Option<IdTagInfo>> {
        self.uplink_ids
            .get(auth_key(tag))?
            .map(|b| decode("uplink_auth_cache", &b))
            .transpose()
    }
}

fn auth_key(tag: &IdTag) -> Vec<u8> {
    let mut key = b"a".to_vec();
    key.extend_from_slice(tag.as_str().to_ascii_uppercase().as_bytes());
    key
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_journal_keeps_order_per_station_across_a_reopen() {
        let dir = tempfile::tempdir().expect("dir");
        let a = ChargePointId::from("A");
        let ab = ChargePointId::from("AB");
        {
            let store = Store::open(dir.path()).expect("open");
            for (i, st) in [&a, &ab, &a].into_iter().enumerate() {
                let entry = JournalEntry {
                    action: format!("M{i}"),
                    payload: serde_json::json!({"n": i}),
                    local_transaction: None,
                };
                store.journal_append(st, &entry).expect("append");
            }
            store.set_cpo_transaction(&a, 7, 7001).expect("map");
            store.set_uplink_meter_interval(&ab, 900).expect("interval");
        }
        let store = Store::open(dir.path()).expect("reopen");
        assert_eq!(store.uplink_meter_interval(&ab).expect("read"), Some(900));
        assert_eq!(store.uplink_meter_interval(&a).expect("read"), None);
        assert_eq!(
            store.journal_len(&a),
            2,
            "a station's prefix is not another's"
        );
        let (seq, first) = store.journal_first(&a).expect("read").expect("an entry");
        assert_eq!(first.action, "M0");
        store.journal_remove(&a, seq).expect("remove");
        assert_eq!(
            store
                .journal_first(&a)
                .expect("read")
                .expect("entry")
                .1
                .action,
            "M2"
        );
        assert_eq!(
            store
                .journal_first(&ab)
                .expect("read")
                .expect("entry")
                .1
                .action,
            "M1"
        );
        assert_eq!(store.cpo_transaction(&a, 7).expect("read"), Some(7001));
        assert_eq!(store.local_transaction(&a, 7001).expect("read"), Some(7));
        assert_eq!(store.cpo_transaction(&ab, 7).expect("read"), None);
    }
}
