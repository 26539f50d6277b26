//! `GET /metrics`: Prometheus text exposition of what the controller knows, written by
//! hand (a few gauges do not justify a metrics framework).

use std::fmt::Write;

use actix_web::HttpResponse;

use ampwarden_actors::units::{Amps, PerPhase};

use super::api::site::site_view;
use super::api::stations::views;
use super::api::Ctl;
use crate::http::error::ApiResult;

/// Escapes a label value (backslash, quote, newline).
fn label(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

struct Exposition(String);

impl Exposition {
    fn family(&mut self, name: &str, help: &str) {
        self.typed(name, help, "gauge");
    }

    fn counter(&mut self, name: &str, help: &str) {
        self.typed(name, help, "counter");
    }

    fn typed(&mut self, name: &str, help: &str, kind: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: f64) {
        let labels: Vec<String> = labels
            .iter()
            .map(|(k, v)| format!("{k}=\"{}\"", label(v)))
            .collect();
        if labels.is_empty() {
            let _ = writeln!(self.0, "{name} {value}");
        } else {
            let _ = writeln!(self.0, "{name}{{{}}} {value}", labels.join(","));
        }
    }
}

const PHASES: [&str; 3] = ["L1", "L2", "L3"];

pub async fn metrics(ctl: Ctl) -> ApiResult<HttpResponse> {
    let config = ctl.config();
    let views = views(&ctl).await?;
    let mut m = Exposition(String::new());

    m.family(
        "ampwarden_stations_configured",
        "Stations in the configuration.",
    );
    m.sample(
        "ampwarden_stations_configured",
        &[],
        config.stations.len() as f64,
    );
    m.family(
        "ampwarden_stations_connected",
        "Stations with an open OCPP connection.",
    );
    let connected = views
        .iter()
        .filter(|v| v.live.as_ref().is_some_and(|l| l.connected))
        .count();
    m.sample("ampwarden_stations_connected", &[], connected as f64);
    m.counter(
        "ampwarden_security_events_total",
        "SecurityEventNotifications from stations since start, critical by the OCPP 1.6 security extension's list or not.",
    );
    let (events, critical) = views
        .iter()
        .filter_map(|v| v.live.as_ref())
        .fold((0, 0), |(e, c), l| {
            (e + l.security.events, c + l.security.critical)
        });
    m.sample(
        "ampwarden_security_events_total",
        &[("critical", "true")],
        critical as f64,
    );
    m.sample(
        "ampwarden_security_events_total",
        &[("critical", "false")],
        (events - critical) as f64,
    );
    m.family(
        "ampwarden_station_critical_security_event",
        "Per station with a critical security event since start: when the latest was reported (Unix time).",
    );
    for v in &views {
        if let Some((_, at, _)) = v
            .live
            .as_ref()
            .and_then(|l| l.security.last_critical.as_ref())
        {
            m.sample(
                "ampwarden_station_critical_security_event",
                &[("station", v.id.as_str())],
                at.timestamp() as f64,
            );
        }
    }

    m.family(
        "ampwarden_event_sockets",
        "Dashboard event sockets open (one per browser tab showing live data).",
    );
    m.sample("ampwarden_event_sockets", &[], ctl.event_sockets() as f64);

    m.family(
        "ampwarden_transactions_open",
        "Charging sessions in progress.",
    );
    let open: usize = views
        .iter()
        .filter_map(|v| v.live.as_ref())
        .flat_map(|l| &l.connectors)
        .filter(|c| c.transaction.is_some())
        .count();
    m.sample("ampwarden_transactions_open", &[], open as f64);

    m.family(
        "ampwarden_connector_limit_amps",
        "The most a connector may draw now, per phase: its limit in force, or while a profile is unanswered the highest it may have taken.",
    );
    for v in &views {
        for c in v.live.iter().flat_map(|l| &l.connectors) {
            let n = c.connector.to_string();
            m.sample(
                "ampwarden_connector_limit_amps",
                &[("station", v.id.as_str()), ("connector", &n)],
                c.limit_in_force.0,
            );
        }
    }
    m.family(
        "ampwarden_connector_draw_amps",
        "Current drawn on a connector (MeterValues), per phase.",
    );
    for v in &views {
        for c in v.live.iter().flat_map(|l| &l.connectors) {
            let n = c.connector.to_string();
            for (phase, draw) in PHASES.iter().zip(c.draw.0) {
                if let Some(a) = draw {
                    m.sample(
                        "ampwarden_connector_draw_amps",
                        &[
                            ("station", v.id.as_str()),
                            ("connector", &n),
                            ("phase", phase),
                        ],
                        a.0,
                    );
                }
            }
        }
    }

    let site = site_view(&ctl).await?;
    let zones = &site.status.zones;
    let per_phase = |m: &mut Exposition, name: &str, zone: &str, values: &PerPhase<Amps>| {
        for (phase, a) in PHASES.iter().zip(values.0) {
            m.sample(name, &[("zone", zone), ("phase", phase)], a.0);
        }
    };
    m.family(
        "ampwarden_zone_limit_amps",
        "Breaker or subscribed limit of a zone, per phase.",
    );
    for z in zones {
        m.sample(
            "ampwarden_zone_limit_amps",
            &[("zone", z.id.as_str())],
            z.limit_a.0,
        );
    }
    m.family(
        "ampwarden_zone_ev_budget_amps",
        "EV budget of a zone in force, per phase.",
    );
    for z in zones {
        per_phase(
            &mut m,
            "ampwarden_zone_ev_budget_amps",
            z.id.as_str(),
            &z.budget,
        );
    }
    m.family(
        "ampwarden_zone_ev_draw_amps",
        "What the vehicles below a zone draw, per phase.",
    );
    for z in zones {
        per_phase(
            &mut m,
            "ampwarden_zone_ev_draw_amps",
            z.id.as_str(),
            &z.ev_draw,
        );
    }
    m.family(
        "ampwarden_zone_allocated_amps",
        "Sum of the limits given below a zone, per phase.",
    );
    for z in zones {
        per_phase(
            &mut m,
            "ampwarden_zone_allocated_amps",
            z.id.as_str(),
            &z.allocated,
        );
    }
    m.family(
        "ampwarden_zone_other_loads_amps",
        "Other loads of a metered zone, per phase.",
    );
    for z in zones {
        if let Some(o) = &z.other_loads {
            per_phase(&mut m, "ampwarden_zone_other_loads_amps", z.id.as_str(), o);
        }
    }
    m.family(
        "ampwarden_zone_production_amps",
        "Local production feeding a zone, per phase.",
    );
    for z in zones {
        if let Some(p) = &z.production {
            per_phase(&mut m, "ampwarden_zone_production_amps", z.id.as_str(), p);
        }
    }
    m.family(
        "ampwarden_zone_budget_fallback",
        "1 while a dynamic zone runs on its static limit (stale meter).",
    );
    for z in zones {
        let fallback = if z.source == "stale_fallback" {
            1.0
        } else {
            0.0
        };
        m.sample(
            "ampwarden_zone_budget_fallback",
            &[("zone", z.id.as_str())],
            fallback,
        );
    }
    m.counter(
        "ampwarden_zone_safety_cuts_total",
        "Safety cuts since start: rounds in which a phase of the zone's meter was above its limit less half the safety margin and the budget came from the measurement.",
    );
    for z in zones {
        m.sample(
            "ampwarden_zone_safety_cuts_total",
            &[("zone", z.id.as_str())],
            z.safety_cuts as f64,
        );
    }
    m.family(
        "ampwarden_zone_suspended_sessions",
        "Vehicles suspended (limit 0) below a zone.",
    );
    for z in zones {
        m.sample(
            "ampwarden_zone_suspended_sessions",
            &[("zone", z.id.as_str())],
            f64::from(z.suspended),
        );
    }
    if let Some(round) = &site.status.last_round {
        m.family(
            "ampwarden_allocation_round_seconds",
            "Time the last allocation took to compute.",
        );
        m.sample(
            "ampwarden_allocation_round_seconds",
            &[],
            round.compute_us as f64 / 1e6,
        );
        m.family(
            "ampwarden_allocation_sessions",
            "Sessions in the last allocation round.",
        );
        m.sample("ampwarden_allocation_sessions", &[], round.sessions as f64);
    }
    m.family(
        "ampwarden_meter_reading_age_seconds",
        "Age of a meter's last good reading.",
    );
    let mut stale = Vec::new();
    for meter in &config.meters {
        if let Some(status) = ctl.meter_status(&meter.id).await {
            if let Some(age) = status.age {
                m.sample(
                    "ampwarden_meter_reading_age_seconds",
                    &[("meter", meter.id.as_str())],
                    age.as_secs_f64(),
                );
            }
            stale.push((meter.id.clone(), status.stale));
        }
    }
    m.family(
        "ampwarden_meter_stale",
        "1 while a meter has no recent good reading.",
    );
    for (id, is_stale) in stale {
        m.sample(
            "ampwarden_meter_stale",
            &[("meter", id.as_str())],
            if is_stale { 1.0 } else { 0.0 },
        );
    }
    federation_metrics(&ctl, &mut m).await?;
    bms_metrics(&ctl, &mut m).await?;
    memory_metrics(&mut m);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(m.0))
}

/// The BMS interface: who is connected, what is imposed, what was refused.
async fn bms_metrics(ctl: &Ctl, m: &mut Exposition) -> ApiResult<()> {
    use ampwarden_actors::bms::{CapState, CapTarget, GetBms};
    let v = ctl
        .bms()
        .send(GetBms)
        .await
        .map_err(crate::http::error::ApiError::internal)?;
    if !v.configured {
        return Ok(());
    }
    m.family(
        "ampwarden_bms_clients",
        "Modbus clients of the BMS server connected now.",
    );
    m.sample("ampwarden_bms_clients", &[], v.clients.len() as f64);
    m.counter(
        "ampwarden_bms_refused_connections_total",
        "BMS Modbus connections refused (not on bms.allow, or bms.max_clients reached).",
    );
    m.sample(
        "ampwarden_bms_refused_connections_total",
        &[],
        v.refused_connections as f64,
    );
    m.counter(
        "ampwarden_bms_writes_total",
        "Cap writes (Modbus and REST), by outcome.",
    );
    m.sample(
        "ampwarden_bms_writes_total",
        &[("outcome", "accepted")],
        v.writes_accepted as f64,
    );
    m.sample(
        "ampwarden_bms_writes_total",
        &[("outcome", "refused")],
        v.writes_refused as f64,
    );
    let caps: Vec<(String, &ampwarden_actors::bms::CapView)> = std::iter::once(&v.site)
        .chain(v.zones.iter().filter(|c| c.state != CapState::None))
        .map(|cap| {
            let target = match &cap.target {
                CapTarget::Site => "site".to_owned(),
                CapTarget::Zone(z) => format!("zone:{z}"),
            };
            (target, cap)
        })
        .collect();
    m.family(
        "ampwarden_bms_cap_state",
        "Per target (site or zone): 0 no cap, 1 a written cap, 2 the fail-safe cap.",
    );
    for (target, cap) in &caps {
        m.sample(
            "ampwarden_bms_cap_state",
            &[("target", target)],
            f64::from(cap.state.code()),
        );
    }
    m.family(
        "ampwarden_bms_cap_amperes",
        "The BMS cap in force per phase, per target (absent when none).",
    );
    for (target, cap) in &caps {
        if let Some(a) = cap.effective_a {
            m.sample("ampwarden_bms_cap_amperes", &[("target", target)], a.0);
        }
    }
    Ok(())
}

/// The process's memory: what an operator watches on a box that runs for years.
async fn federation_metrics(ctl: &Ctl, m: &mut Exposition) -> ApiResult<()> {
    use crate::federation::FederationCounters as C;
    let c = ctl.federation_counters();
    m.counter(
        "ampwarden_federation_refused_total",
        "Federation links refused: an unknown or missing token, or a hello refused (name or token in use, a tenth secondary, wrong zone).",
    );
    m.sample(
        "ampwarden_federation_refused_total",
        &[("reason", "token")],
        C::get(&c.refused_token) as f64,
    );
    m.sample(
        "ampwarden_federation_refused_total",
        &[("reason", "hello")],
        C::get(&c.refused_hello) as f64,
    );
    m.counter(
        "ampwarden_federation_malformed_total",
        "Federation frames ignored: not JSON, unknown type or version, absurd values.",
    );
    m.sample(
        "ampwarden_federation_malformed_total",
        &[],
        C::get(&c.malformed) as f64,
    );
    m.counter(
        "ampwarden_federation_grants_total",
        "Grants sent to secondaries (refreshes included).",
    );
    m.sample(
        "ampwarden_federation_grants_total",
        &[],
        C::get(&c.grants_sent) as f64,
    );
    let secondaries = ctl
        .supervisor()
        .send(ampwarden_actors::supervisor::GetSecondaries)
        .await
        .map_err(crate::http::error::ApiError::internal)?;
    if !secondaries.is_empty() {
        m.family(
            "ampwarden_federation_secondary_linked",
            "1 while the secondary's link is up.",
        );
        for s in &secondaries {
            m.sample(
                "ampwarden_federation_secondary_linked",
                &[("secondary", &s.name)],
                f64::from(u8::from(s.link == "linked")),
            );
        }
        m.family(
            "ampwarden_federation_secondary_reserved_amperes",
            "What the primary keeps for the secondary in its zone, per phase.",
        );
        for s in &secondaries {
            for p in ampwarden_actors::units::Phase::ALL {
                m.sample(
                    "ampwarden_federation_secondary_reserved_amperes",
                    &[("secondary", &s.name), ("phase", &p.to_string())],
                    s.reserved_a.get(p).0,
                );
            }
        }
    }
    if let Some(link) = ctl.link_status() {
        m.family(
            "ampwarden_federation_on_fallback",
            "Secondary: 1 while no valid grant holds (the fallback budget is in force).",
        );
        m.sample(
            "ampwarden_federation_on_fallback",
            &[],
            f64::from(u8::from(
                link.mode == ampwarden_actors::federation::LinkMode::Fallback,
            )),
        );
    }
    Ok(())
}

fn memory_metrics(m: &mut Exposition) {
    if let Some(rss) = crate::memory::resident_bytes() {
        m.family(
            "process_resident_memory_bytes",
            "Resident memory size in bytes.",
        );
        m.sample("process_resident_memory_bytes", &[], rss as f64);
    }
    if let Some(heap) = crate::memory::heap_usage() {
        m.family(
            "ampwarden_heap_in_use_bytes",
            "Bytes in live heap allocations (grows only if something is kept).",
        );
        m.sample("ampwarden_heap_in_use_bytes", &[], heap.in_use_bytes as f64);
        m.family(
            "ampwarden_heap_free_held_bytes",
            "Free bytes the allocator keeps in its heap (fragmentation).",
        );
        m.sample(
            "ampwarden_heap_free_held_bytes",
            &[],
            heap.free_held_bytes as f64,
        );
        m.family(
            "ampwarden_heap_mapped_bytes",
            "Large allocations mapped on their own (address space; written pages are resident).",
        );
        m.sample("ampwarden_heap_mapped_bytes", &[], heap.mapped_bytes as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_values_are_escaped() {
        let mut m = Exposition(String::new());
        m.sample("x", &[("station", "a\"b\\c\nd")], 1.5);
        assert_eq!(m.0, "x{station=\"a\\\"b\\\\c\\nd\"} 1.5\n");
    }
}
