//! The integration tests, as one test binary: every module drives a real controller
//! (started in-process on loopback ports with its own data directory, or the real
//! `ampwarden` executable) through real sockets — OCPP WebSocket clients, a Modbus TCP
//! meter served by tokio-modbus, HTTP clients and a headless browser.
//!
//! One binary rather than one per file: each linked test executable carries the whole
//! controller, so a dozen of them cost minutes of linking and gigabytes of disk.
//! Run one area with `cargo test --test integration api_auth::`.

mod common;

mod api_auth;
mod api_config;
mod api_live;
mod api_records;
mod api_stations;
mod bms;
mod cli;
mod control_loop;
mod control_plant;
mod federation;
mod federation_processes;
mod interop;
mod load_short;
mod ocpp_central_system;
mod restart;
mod safety;
mod safety_model;
mod tls;
mod ui_browser;
mod uplink;
