//! The operator's maintenance log: a bounded ring (`logs`).

use chrono::Utc;

use crate::units::ChargePointId;

use super::records::{LogEntry, LogLevel};
use super::{decode, encode, take_next, Result, Store};

/// How many operator log entries are kept; older ones are dropped.
pub const LOG_CAPACITY: u64 = 100_000;

const NEXT_LOG_SEQ: &[u8] = b"next_log_seq";

impl Store {
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
}

#[cfg(test)]
mod tests {
    use super::*;

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
}
