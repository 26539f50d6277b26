//! Simulated OCPP 1.6J stations and the vehicles at them: `ampwarden simulate`, the demo
//! site, the load benchmarks and the integration tests all run on this.
//!
//! Pure models ([`vehicle`], [`connector`], [`profiles`], [`site`], [`random`]) decide;
//! [`station`] and [`fleet`] only move their decisions over WebSockets and Modbus.

pub mod cli;
pub mod client;
pub mod connector;
pub mod demo;
pub mod federation_demo;
pub mod fleet;
pub mod profiles;
pub use ampwarden_actors::random;
pub mod scenario;
pub mod site;
mod station;
pub mod vehicle;
