//! Simulated OCPP 1.6J stations: the transport client here, used by `ampwarden simulate`,
//! the demo and the integration tests.

pub mod client;
