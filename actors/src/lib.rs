//! ampwarden's domain: OCPP 1.6J messages, the allocation engine, configuration,
//! storage, and the actors that join them. Nothing here knows about HTTP.
//!
//! Modules marked *pure* take values and return values: no actix, tokio, sled or I/O.

pub mod allocation; // pure
pub mod authorization; // pure
pub mod bms;
pub mod calendar;
pub mod config; // pure
pub mod federation; // pure
pub mod meter;
pub mod ocpp; // pure
pub mod random; // pure
pub mod station;
pub mod store;
pub mod supervisor;
pub mod tariff; // pure
pub mod units;
pub mod zone;
