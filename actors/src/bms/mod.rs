//! The building management system's side of the controller: what it reads (a register
//! image of the site, its zones and stations, refreshed every second and after every
//! allocation round) and what it may write (caps with a validity that end in a fail-safe
//! cap, never in "unlimited").
//!
//! * [`caps`]: the cap semantics, one implementation for Modbus and REST.
//! * [`registers`]: the register map and image.
//! * [`actor`]: the [`BmsActor`], which holds the caps, tells the supervisor what is in
//!   force, rebuilds the image and keeps the log of writes.
//! * [`server`]: the Modbus TCP server (tokio-modbus) in front of it.

pub mod actor;
pub mod caps;
pub mod registers;
pub mod server;

pub use actor::*;
pub use caps::*;

use std::net::IpAddr;

use ipnet::IpNet;

/// At most this many zones and stations have a block in the register map.
pub const BMS_MAX_ZONES: usize = 200;
pub const BMS_MAX_STATIONS: usize = 100;

/// An entry of `bms.allow`: an address (`10.0.0.5`) or a network (`10.0.0.0/24`).
pub fn parse_allowed(s: &str) -> Option<IpNet> {
    let s = s.trim();
    s.parse::<IpNet>()
        .ok()
        .or_else(|| s.parse::<IpAddr>().ok().map(IpNet::from))
}

/// Whether a client address is on the allow-list (an IPv4 client seen as an IPv6-mapped
/// address counts as its IPv4 address).
pub fn is_allowed(allow: &[String], ip: IpAddr) -> bool {
    let ip = match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    };
    allow
        .iter()
        .filter_map(|a| parse_allowed(a))
        .any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_allow_list_takes_addresses_and_networks() {
        let allow = vec!["127.0.0.1".to_string(), "10.1.0.0/16".to_string()];
        assert!(is_allowed(&allow, "127.0.0.1".parse().expect("ip")));
        assert!(is_allowed(&allow, "10.1.200.3".parse().expect("ip")));
        assert!(is_allowed(&allow, "::ffff:10.1.0.1".parse().expect("ip")));
        assert!(!is_allowed(&allow, "10.2.0.1".parse().expect("ip")));
        assert!(!is_allowed(&allow, "127.0.0.2".parse().expect("ip")));
        assert!(parse_allowed("10.0.0.0/33").is_none());
        assert!(parse_allowed("bms.local").is_none());
    }
}
