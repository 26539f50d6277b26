//! The stations as the controller has seen them (`stations` tree).

use crate::units::ChargePointId;

use super::records::StationRecord;
use super::{decode, encode, Result, Store};

impl Store {
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
}
