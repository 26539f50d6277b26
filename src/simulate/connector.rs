//! One connector of a simulated station and the vehicles that come to it: arrivals,
//! sessions, the OCPP status, the energy register. Pure: it says what the station must tell
//! the central system ([`Action`]); the station's I/O sends it and reports the answers back.
//!
//! Status path of a visit: Available → Preparing → Charging ↔ SuspendedEVSE / SuspendedEV
//! → Finishing → Available.

use ampwarden_actors::config::PhaseRotation;
use ampwarden_actors::ocpp::core::{ChargePointStatus, StopReason};
use ampwarden_actors::units::{Amps, PerPhase, Phase};

use super::random::SimRng;
use super::vehicle::{Vehicle, VehicleMix};

/// A draw above the limit in force by more than this is a violation (float noise aside).
const OVER_LIMIT_TOLERANCE: Amps = Amps(0.05);

/// What the station must send, in order.
#[derive(Clone, Debug, PartialEq)]
pub enum Action {
    Status(ChargePointStatus),
    /// Authorize `id_tag` (not for a remote start), then StartTransaction.
    Start {
        id_tag: String,
        meter_start_wh: i64,
        remote: bool,
    },
    Stop {
        transaction: i32,
        id_tag: Option<String>,
        meter_stop_wh: i64,
        reason: StopReason,
    },
}

#[derive(Clone, Debug, PartialEq)]
enum Session {
    /// No session (the vehicle, if any, is waiting for its driver or was refused).
    Idle,
    /// StartTransaction asked, not answered yet.
    Starting {
        id_tag: String,
    },
    Running {
        transaction: i32,
        id_tag: String,
    },
}

/// How a connector is wired and what it allows.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Wiring {
    /// The station's own maximum per phase.
    pub max_current: Amps,
    /// 1 or 3.
    pub phases: u8,
    /// The supply phase of a 1-phase station.
    pub phase: Phase,
    /// The site phases a 3-phase station's L1, L2, L3 are wired to.
    pub rotation: PhaseRotation,
    pub voltage_v: f64,
}

/// A connector and the vehicle at it.
#[derive(Clone, Debug)]
pub struct Connector {
    wiring: Wiring,
    vehicle: Option<Vehicle>,
    /// Simulated seconds the vehicle has been plugged in.
    plugged_s: f64,
    /// The driver has come back: the vehicle leaves at the next step.
    leaving: bool,
    session: Session,
    status: ChargePointStatus,
    /// The energy register, Wh (never decreases).
    energy_wh: f64,
    /// Current per used phase.
    draw: Amps,
    /// Simulated seconds until the next vehicle, while free.
    next_arrival_s: f64,
    available: bool,
    id_tag: String,
}

impl Connector {
    /// A connector in a site's steady state: occupied with the long-run probability, by a
    /// vehicle part-way through its stay; `id_tag` is the badge its drivers present.
    pub fn new(wiring: Wiring, mix: &VehicleMix, id_tag: String, rng: &mut SimRng) -> Connector {
        let mut c = Connector {
            wiring,
            vehicle: None,
            plugged_s: 0.0,
            leaving: false,
            session: Session::Idle,
            status: ChargePointStatus::Available,
            energy_wh: rng.uniform(0.0, 5_000_000.0).floor(),
            draw: Amps::ZERO,
            next_arrival_s: mix.absence_s(rng),
            available: true,
            id_tag,
        };
        if rng.chance(mix.occupied_share()) {
            let vehicle = mix.arrive(rng);
            c.plugged_s = rng.uniform(0.0, vehicle.stays_s * 0.9);
            c.vehicle = Some(vehicle);
        }
        c
    }

    /// What to send after (re)booting: the status, and a start for a vehicle that is
    /// waiting for one (the fleet starts with vehicles already plugged in).
    pub fn after_boot(&mut self) -> Vec<Action> {
        let mut actions = vec![Action::Status(self.status)];
        if self.vehicle.is_some() && self.session == Session::Idle && !self.leaving {
            actions.extend(self.begin(self.id_tag.clone(), false));
        }
        actions
    }

    fn begin(&mut self, id_tag: String, remote: bool) -> Vec<Action> {
        self.session = Session::Starting {
            id_tag: id_tag.clone(),
        };
        let mut actions = self.set_status(ChargePointStatus::Preparing);
        actions.push(Action::Start {
            id_tag,
            meter_start_wh: self.meter_wh(),
            remote,
        });
        actions
    }

    /// Moves time on by `dt_s` simulated seconds with `limit` the limit in force now
    /// (`None`: only the station's own maximum). The vehicle drew its previous current
    /// during the interval; from now on it draws what the new limit allows.
    pub fn advance(
        &mut self,
        dt_s: f64,
        limit: Option<Amps>,
        mix: &VehicleMix,
        rng: &mut SimRng,
    ) -> Vec<Action> {
        let mut actions = Vec::new();
        let phases_used = self.phases_used();
        if let (Some(vehicle), Session::Running { .. }) = (self.vehicle.as_mut(), &self.session) {
            self.energy_wh += vehicle.charge(self.draw, phases_used, self.wiring.voltage_v, dt_s);
        }
        if self.vehicle.is_some() {
            self.plugged_s += dt_s;
        }
        if self.leaving {
            self.leaving = false;
            self.vehicle = None;
            self.draw = Amps::ZERO;
            self.next_arrival_s = mix.absence_s(rng);
            actions.extend(self.set_status(self.idle_status()));
        } else if let Some(vehicle) = &self.vehicle {
            if self.plugged_s >= vehicle.stays_s {
                actions.extend(self.depart());
            }
        } else if self.available {
            self.next_arrival_s -= dt_s;
            if self.next_arrival_s <= 0.0 {
                self.vehicle = Some(mix.arrive(rng));
                self.plugged_s = 0.0;
                actions.extend(self.begin(self.id_tag.clone(), false));
            }
        }
        actions.extend(self.follow_limit(limit));
        actions
    }

    /// The driver comes back: a running session ends, the vehicle leaves at the next step.
    /// A session still starting waits for its answer.
    fn depart(&mut self) -> Vec<Action> {
        match &self.session {
            Session::Starting { .. } => Vec::new(),
            Session::Running { .. } => {
                self.leaving = true;
                self.stop(StopReason::Local)
            }
            Session::Idle => {
                self.leaving = true;
                Vec::new()
            }
        }
    }

    fn stop(&mut self, reason: StopReason) -> Vec<Action> {
        let Session::Running {
            transaction,
            id_tag,
        } = std::mem::replace(&mut self.session, Session::Idle)
        else {
            return Vec::new();
        };
        self.draw = Amps::ZERO;
        let mut actions = vec![Action::Stop {
            transaction,
            id_tag: Some(id_tag),
            meter_stop_wh: self.meter_wh(),
            reason,
        }];
        actions.extend(self.set_status(ChargePointStatus::Finishing));
        actions
    }

    /// Sets the draw for `limit` and reports a status change it causes.
    pub fn follow_limit(&mut self, limit: Option<Amps>) -> Vec<Action> {
        let (Some(vehicle), Session::Running { .. }) = (&self.vehicle, &self.session) else {
            return Vec::new();
        };
        let offered = limit
            .unwrap_or(self.wiring.max_current)
            .min(self.wiring.max_current);
        self.draw = vehicle.draw(offered);
        let status = if self.draw.0 > 0.0 {
            ChargePointStatus::Charging
        } else if vehicle.acceptance().0 <= 0.0 || offered.0 >= super::vehicle::MIN_EV_CURRENT.0 {
            ChargePointStatus::SuspendedEv
        } else {
            ChargePointStatus::SuspendedEvse
        };
        self.set_status(status)
    }

    /// The central system answered StartTransaction: the session runs if the badge was
    /// accepted; otherwise the station ends it at once (OCPP `StopTransactionOnInvalidId`).
    pub fn started(&mut self, transaction: i32, accepted: bool) -> Vec<Action> {
        let Session::Starting { id_tag } = std::mem::replace(&mut self.session, Session::Idle)
        else {
            return Vec::new();
        };
        self.session = Session::Running {
            transaction,
            id_tag,
        };
        if accepted {
            Vec::new()
        } else {
            self.leaving = true;
            self.stop(StopReason::DeAuthorized)
        }
    }

    /// The badge was refused or the start failed: the driver gives up and leaves.
    pub fn start_refused(&mut self) -> Vec<Action> {
        if matches!(self.session, Session::Starting { .. }) {
            self.session = Session::Idle;
            self.leaving = true;
        }
        Vec::new()
    }

    /// RemoteStopTransaction: accepted (with what to send) if `transaction` runs here.
    pub fn remote_stop(&mut self, transaction: i32) -> Option<Vec<Action>> {
        (self.transaction() == Some(transaction)).then(|| self.stop(StopReason::Remote))
    }

    /// RemoteStartTransaction: accepted if a vehicle is plugged in without a session.
    pub fn remote_start(&mut self, id_tag: String) -> Option<Vec<Action>> {
        let free = self.vehicle.is_some()
            && !self.leaving
            && self.available
            && self.session == Session::Idle;
        free.then(|| self.begin(id_tag, true))
    }

    /// Reset or unlock: a running session ends with `reason`.
    pub fn interrupt(&mut self, reason: StopReason) -> Vec<Action> {
        self.stop(reason)
    }

    /// The fleet stops: a running session ends and the vehicle is unplugged.
    pub fn leave(&mut self) -> Vec<Action> {
        let mut actions = self.stop(StopReason::Local);
        self.vehicle = None;
        self.leaving = false;
        self.draw = Amps::ZERO;
        actions.extend(self.set_status(self.idle_status()));
        actions
    }

    /// ChangeAvailability: true if applied now, false if it waits for the session to end.
    pub fn set_available(&mut self, available: bool) -> (bool, Vec<Action>) {
        self.available = available;
        if self.vehicle.is_some() {
            return (false, Vec::new());
        }
        (true, self.set_status(self.idle_status()))
    }

    fn idle_status(&self) -> ChargePointStatus {
        if self.available {
            ChargePointStatus::Available
        } else {
            ChargePointStatus::Unavailable
        }
    }

    fn set_status(&mut self, status: ChargePointStatus) -> Vec<Action> {
        if self.status == status {
            return Vec::new();
        }
        self.status = status;
        vec![Action::Status(status)]
    }

    fn phases_used(&self) -> u8 {
        let vehicle = self.vehicle.as_ref().map_or(3, |v| v.phases);
        vehicle.min(self.wiring.phases)
    }

    pub fn status(&self) -> ChargePointStatus {
        self.status
    }

    pub fn transaction(&self) -> Option<i32> {
        match self.session {
            Session::Running { transaction, .. } => Some(transaction),
            _ => None,
        }
    }

    pub fn has_vehicle(&self) -> bool {
        self.vehicle.is_some()
    }

    /// The energy register, whole Wh as sent in OCPP messages.
    pub fn meter_wh(&self) -> i64 {
        self.energy_wh.floor() as i64
    }

    /// What the connector draws on each supply (site) phase.
    pub fn draw(&self) -> PerPhase<Amps> {
        let own = self.station_draw();
        if self.wiring.phases == 1 {
            let mut d = PerPhase::splat(Amps::ZERO);
            d.set(self.wiring.phase, own.0[0]);
            return d;
        }
        let mut d = PerPhase::splat(Amps::ZERO);
        for phase in Phase::ALL {
            d.set(self.wiring.rotation.site_phase(phase), own.get(phase));
        }
        d
    }

    /// What the station's own meter sees on its L1, L2, L3 (a 1-phase car on L1).
    pub fn station_draw(&self) -> PerPhase<Amps> {
        if self.draw.0 <= 0.0 {
            return PerPhase::splat(Amps::ZERO);
        }
        match (self.wiring.phases, self.phases_used()) {
            (1, _) | (_, 1) => PerPhase([self.draw, Amps::ZERO, Amps::ZERO]),
            _ => PerPhase::splat(self.draw),
        }
    }

    pub fn power_w(&self) -> f64 {
        self.draw().0.iter().map(|a| a.0).sum::<f64>() * self.wiring.voltage_v
    }

    /// Whether the vehicle draws more than `limit` on some phase.
    pub fn over_limit(&self, limit: Option<Amps>) -> bool {
        let allowed = limit
            .unwrap_or(self.wiring.max_current)
            .min(self.wiring.max_current);
        self.draw.0 > allowed.0 + OVER_LIMIT_TOLERANCE.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const WIRING: Wiring = Wiring {
        max_current: Amps(32.0),
        phases: 3,
        phase: Phase::L1,
        rotation: PhaseRotation(Phase::ALL),
        voltage_v: 230.0,
    };

    /// A mix with a vehicle at once and a one-hour stay.
    fn busy_mix() -> VehicleMix {
        VehicleMix {
            mean_absence_minutes: 0.0,
            stay_hours: (1.0, 1.0),
            arrival_soc: (0.2, 0.2),
            target_soc: (1.0, 1.0),
            three_phase_share: 1.0,
            max_currents_a: vec![32.0],
            ..VehicleMix::default()
        }
    }

    fn free_connector(mix: &VehicleMix) -> (Connector, SimRng) {
        let mut rng = SimRng::new(1);
        let idle = VehicleMix {
            stay_hours: (0.0, 0.0),
            ..mix.clone()
        };
        let c = Connector::new(WIRING, &idle, "TAG".into(), &mut rng);
        (c, rng)
    }

    fn statuses(actions: &[Action]) -> Vec<ChargePointStatus> {
        actions
            .iter()
            .filter_map(|a| match a {
                Action::Status(s) => Some(*s),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_visit_walks_the_ocpp_status_path() {
        let mix = busy_mix();
        let (mut c, mut rng) = free_connector(&mix);
        let arrival = c.advance(1.0, None, &mix, &mut rng);
        assert_eq!(statuses(&arrival), [ChargePointStatus::Preparing]);
        assert!(matches!(
            arrival.last(),
            Some(Action::Start { remote: false, .. })
        ));
        assert!(c.started(11, true).is_empty());
        let charging = c.advance(1.0, None, &mix, &mut rng);
        assert_eq!(statuses(&charging), [ChargePointStatus::Charging]);
        let suspended = c.advance(1.0, Some(Amps::ZERO), &mix, &mut rng);
        assert_eq!(statuses(&suspended), [ChargePointStatus::SuspendedEvse]);
        let resumed = c.advance(1.0, Some(Amps(10.0)), &mix, &mut rng);
        assert_eq!(statuses(&resumed), [ChargePointStatus::Charging]);
        let departure = c.advance(3600.0, None, &mix, &mut rng);
        assert!(matches!(
            departure.first(),
            Some(Action::Stop {
                transaction: 11,
                reason: StopReason::Local,
                ..
            })
        ));
        assert_eq!(statuses(&departure), [ChargePointStatus::Finishing]);
        let gone = c.advance(1.0, None, &mix, &mut rng);
        assert_eq!(statuses(&gone), [ChargePointStatus::Available]);
        assert!(!c.has_vehicle());
    }

    #[test]
    fn the_vehicle_never_draws_above_the_limit_in_force() {
        let mix = busy_mix();
        let (mut c, mut rng) = free_connector(&mix);
        c.advance(1.0, None, &mix, &mut rng);
        c.started(1, true);
        for limit in [None, Some(Amps(40.0)), Some(Amps(16.0)), Some(Amps(5.0))] {
            c.follow_limit(limit);
            assert!(!c.over_limit(limit), "limit {limit:?}");
            let allowed = limit.unwrap_or(WIRING.max_current).min(WIRING.max_current);
            assert!(c.draw().0.iter().all(|a| a.0 <= allowed.0));
        }
    }

    #[test]
    fn a_full_vehicle_is_suspended_by_itself() {
        let mix = VehicleMix {
            arrival_soc: (0.99, 0.99),
            target_soc: (1.0, 1.0),
            stay_hours: (10.0, 10.0),
            ..busy_mix()
        };
        let (mut c, mut rng) = free_connector(&mix);
        c.advance(1.0, None, &mix, &mut rng);
        c.started(1, true);
        c.advance(1.0, None, &mix, &mut rng);
        let later = c.advance(3600.0, None, &mix, &mut rng);
        assert_eq!(statuses(&later), [ChargePointStatus::SuspendedEv]);
        assert_eq!(c.draw(), PerPhase::splat(Amps::ZERO));
    }

    #[test]
    fn energy_is_counted_at_the_current_drawn_before_a_change() {
        let mix = busy_mix();
        let (mut c, mut rng) = free_connector(&mix);
        c.advance(1.0, None, &mix, &mut rng);
        c.started(1, true);
        c.advance(0.0, Some(Amps(10.0)), &mix, &mut rng);
        let before = c.meter_wh();
        // One hour at 10 A on 3 phases, then the limit drops to zero.
        c.advance(3599.0, Some(Amps::ZERO), &mix, &mut rng);
        let wh = c.meter_wh() - before;
        assert!(
            (wh as f64 - 10.0 * 230.0 * 3.0 * 3599.0 / 3600.0).abs() <= 1.0,
            "{wh}"
        );
    }

    #[test]
    fn a_refused_badge_ends_the_started_transaction_at_once() {
        let mix = busy_mix();
        let (mut c, mut rng) = free_connector(&mix);
        c.advance(1.0, None, &mix, &mut rng);
        let actions = c.started(5, false);
        assert!(matches!(
            actions.first(),
            Some(Action::Stop {
                transaction: 5,
                reason: StopReason::DeAuthorized,
                ..
            })
        ));
        assert_eq!(c.transaction(), None);
    }

    #[test]
    fn remote_stop_applies_only_to_the_running_transaction() {
        let mix = busy_mix();
        let (mut c, mut rng) = free_connector(&mix);
        c.advance(1.0, None, &mix, &mut rng);
        c.started(5, true);
        assert!(c.remote_stop(6).is_none());
        let stop = c.remote_stop(5).expect("accepted");
        assert!(matches!(
            stop.first(),
            Some(Action::Stop {
                reason: StopReason::Remote,
                ..
            })
        ));
        // The vehicle stays until its driver comes; a remote start can resume it.
        assert!(c.has_vehicle());
        let start = c.remote_start("OTHER".into()).expect("accepted");
        assert!(matches!(
            start.last(),
            Some(Action::Start { remote: true, .. })
        ));
    }

    /// A connector (built with no stay of its own) whose vehicle then started and was
    /// given 16 A a second ago.
    fn charging_at_16_a(wiring: Wiring, mix: &VehicleMix, rng: &mut SimRng) -> Connector {
        let idle = VehicleMix {
            stay_hours: (0.0, 0.0),
            ..mix.clone()
        };
        let mut c = Connector::new(wiring, &idle, "TAG".into(), rng);
        c.advance(1.0, None, mix, rng);
        c.started(1, true);
        c.advance(1.0, Some(Amps(16.0)), mix, rng);
        c
    }

    #[test]
    fn a_one_phase_station_loads_only_its_phase() {
        let mix = busy_mix();
        let mut rng = SimRng::new(2);
        let wiring = Wiring {
            phases: 1,
            phase: Phase::L2,
            ..WIRING
        };
        let c = charging_at_16_a(wiring, &mix, &mut rng);
        assert_eq!(c.draw(), PerPhase([Amps::ZERO, Amps(16.0), Amps::ZERO]));
    }

    #[test]
    fn a_one_phase_car_on_a_rotated_station_loads_the_site_phase_its_l1_is_wired_to() {
        let mut mix = busy_mix();
        mix.three_phase_share = 0.0;
        let mut rng = SimRng::new(2);
        let wiring = Wiring {
            rotation: PhaseRotation::starting_at(Phase::L3),
            ..WIRING
        };
        let c = charging_at_16_a(wiring, &mix, &mut rng);
        assert_eq!(
            c.station_draw(),
            PerPhase([Amps(16.0), Amps::ZERO, Amps::ZERO])
        );
        assert_eq!(c.draw(), PerPhase([Amps::ZERO, Amps::ZERO, Amps(16.0)]));
    }

    #[test]
    fn an_unavailable_connector_gets_no_vehicle() {
        let mix = busy_mix();
        let (mut c, mut rng) = free_connector(&mix);
        let (now, actions) = c.set_available(false);
        assert!(now);
        assert_eq!(statuses(&actions), [ChargePointStatus::Unavailable]);
        assert!(c.advance(100.0, None, &mix, &mut rng).is_empty());
        assert!(!c.has_vehicle());
    }

    #[test]
    fn the_energy_register_never_decreases() {
        let mix = busy_mix();
        let (mut c, mut rng) = free_connector(&mix);
        let mut last = c.meter_wh();
        for step in 0..500 {
            let limit = Some(Amps(f64::from(step % 40)));
            for a in c.advance(60.0, limit, &mix, &mut rng) {
                if let Action::Start { .. } = a {
                    c.started(step, true);
                }
            }
            assert!(c.meter_wh() >= last);
            last = c.meter_wh();
        }
    }
}
