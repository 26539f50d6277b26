//! ZoneActor: one per zone. It holds the zone's configuration and the latest readings of
//! its meters (consumption and production) and reports them to the supervisor, which
//! turns them into the zone's EV budget with `allocation::zone_budgets`.

use actix::prelude::*;

use crate::allocation::{ConsumptionKind, MeterReading as BudgetReading, ZoneIdx, ZoneReading};
use crate::config::{Config, Measures, ZoneConfig};
use crate::meter::{MeterReading, MeterStale};

/// A zone's readings changed (or its meter went stale).
#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "()")]
pub struct ZoneUpdate {
    pub zone: ZoneIdx,
    /// The zone tree the index is of: an update of an earlier tree (a configuration
    /// change meanwhile) names another zone, and is dropped.
    pub generation: u64,
    pub reading: ZoneReading,
    /// The meter just went stale: the budget falls back to static.
    pub stale: bool,
}

pub struct ZoneActor {
    index: ZoneIdx,
    generation: u64,
    config: ZoneConfig,
    reading: ZoneReading,
    supervisor: Recipient<ZoneUpdate>,
}

impl ZoneActor {
    /// The zone at `index` of the tree of `generation`, with the kind of its meters
    /// from `config`.
    pub fn new(
        index: ZoneIdx,
        generation: u64,
        zone: ZoneConfig,
        config: &Config,
        supervisor: Recipient<ZoneUpdate>,
    ) -> Self {
        let consumption =
            zone.meter
                .as_ref()
                .and_then(|m| config.meter(m))
                .map(|m| match m.measures {
                    Measures::OtherLoads => ConsumptionKind::OtherLoads,
                    // A production meter is refused here by validation; total is the safe reading.
                    Measures::Total | Measures::Production => ConsumptionKind::Total,
                });
        ZoneActor {
            index,
            generation,
            config: zone,
            reading: ZoneReading {
                consumption: consumption.map(|k| (k, None)),
                production: None,
                imposed: None,
                bms_cap: None,
            },
            supervisor,
        }
    }

    fn publish(&self, stale: bool) {
        self.supervisor.do_send(ZoneUpdate {
            zone: self.index,
            generation: self.generation,
            reading: self.reading,
            stale,
        });
    }
}

impl Actor for ZoneActor {
    type Context = Context<Self>;

    fn started(&mut self, _: &mut Self::Context) {
        self.publish(false);
    }
}

impl Handler<MeterReading> for ZoneActor {
    type Result = ();

    fn handle(&mut self, r: MeterReading, _: &mut Self::Context) {
        let reading = BudgetReading {
            currents: r.currents,
            read_at: r.at,
        };
        if self.config.meter.as_ref() == Some(&r.meter) {
            if let Some((_, slot)) = &mut self.reading.consumption {
                *slot = Some(reading);
            }
        } else if self.config.production_meter.as_ref() == Some(&r.meter) {
            self.reading.production = Some(reading);
        } else {
            return;
        }
        self.publish(false);
    }
}

impl Handler<MeterStale> for ZoneActor {
    type Result = ();

    fn handle(&mut self, s: MeterStale, _: &mut Self::Context) {
        tracing::warn!(zone = %self.config.id, meter = %s.meter, since = %s.since, "meter stale: the zone falls back to its static limit");
        self.publish(true);
    }
}
