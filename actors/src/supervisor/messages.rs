//! What the supervisor takes and answers, and the site status it publishes.

use super::*;

// --- messages --------------------------------------------------------------------------

/// The configuration in force changed (already validated and stored).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ConfigChanged;

/// The live state of the site, for the API and the dashboard.
#[derive(Message)]
#[rtype(result = "Arc<SiteStatus>")]
pub struct GetSiteStatus;

/// The recent allocation rounds, newest first.
#[derive(Message)]
#[rtype(result = "Vec<RoundSummary>")]
pub struct GetRecentRounds;

/// The last 24 h of site samples (one a minute), oldest first.
#[derive(Message)]
#[rtype(result = "Vec<SiteSample>")]
pub struct GetHistory;

/// Receive every new [`SiteStatus`] after each round.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe(pub Recipient<SiteUpdate>);

#[derive(Clone, Message)]
#[rtype(result = "()")]
pub struct SiteUpdate(pub Arc<SiteStatus>);

/// The actor polling a meter, to ask it for its status ("read now" in the UI).
#[derive(Message)]
#[rtype(result = "Option<Addr<MeterActor>>")]
pub struct GetMeter(pub MeterId);

/// Stops the meters and the calendar (controller shutdown).
#[derive(Message)]
#[rtype(result = "()")]
pub struct StopSupervisor;

/// The budget a federation primary grants to this site's root zones (`None`: none).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ImposeBudget(pub Option<PerPhase<Amps>>);

/// The caps of the building management system in force (see [`crate::bms`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ImposeBmsCaps(pub crate::bms::CapsInForce);

/// Every station's latest snapshot, as the supervisor knows it.
#[derive(Message)]
#[rtype(result = "Vec<StationSnapshot>")]
pub struct GetStationSnapshots;

// --- what the UI sees ----------------------------------------------------------------

#[derive(Clone, Debug, Serialize)]
pub struct ZoneStatus {
    pub id: ZoneId,
    pub parent: Option<ZoneId>,
    pub limit_a: Amps,
    /// `static`, `dynamic`, `stale_fallback` or `imposed`.
    pub source: &'static str,
    pub budget: PerPhase<Amps>,
    pub ev_draw: PerPhase<Amps>,
    pub other_loads: Option<PerPhase<Amps>>,
    pub production: Option<PerPhase<Amps>>,
    pub ev_cap_fraction: f64,
    /// Sum of the limits below the zone once this round's plan is applied.
    pub allocated: PerPhase<Amps>,
    /// Reservations below the zone that are not shared (connectors not under control).
    pub fixed: PerPhase<Amps>,
    /// A vehicle below had its limit changed and has not reported since it could follow.
    pub ramping: bool,
    /// What the vehicles below could take.
    pub demand: PerPhase<Amps>,
    pub suspended: u32,
    /// How the other loads behind its meter were estimated: `measured`, `held` (while
    /// vehicles follow changed limits and have not reported) or `safety_cut` (a phase of the
    /// meter is above `limit − safety_margin/2`: cut from the measurement at once).
    pub estimate: &'static str,
    /// The meter-derived budget was kept: the meter moved less than the deadband.
    pub deadband: bool,
    /// Safety cuts since the controller started: rounds in which the safety loop began
    /// to cut (a cut that stands over several rounds counts once).
    pub safety_cuts: u64,
}

#[derive(Clone, Debug, Serialize)]
pub struct SessionStatus {
    pub station: ChargePointId,
    pub connector: u32,
    pub transaction: Option<i32>,
    /// What the budgets allow.
    pub target: Amps,
    /// The limit once this round's plan is applied (lower than target while held).
    pub limit: Amps,
    pub max: Amps,
    pub fraction: f64,
    pub vip: bool,
    /// `at_max`, `shared`, `suspended`, `max_below_minimum`, `fixed`.
    pub decision: &'static str,
    pub bottleneck: Option<ZoneId>,
    pub bottleneck_phase: Option<Phase>,
    pub suspended_since: Option<DateTime<Utc>>,
    pub held_until: Option<DateTime<Utc>>,
    /// The site phases it is budgeted on (one, for a 1-phase vehicle detected on a
    /// 3-phase station).
    pub phases: Vec<Phase>,
    /// Which loop decided its limit: `safety_cut` (the meter of its bottleneck zone is
    /// near the breaker), `hold` (an increase waits, or the zone's estimate or budget is
    /// held), or `allocation`.
    pub control_loop: &'static str,
    /// A sentence an operator reads: why this vehicle has this limit.
    pub why: String,
    /// The CPO's limit on this connector (its charging profiles, via the uplink).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cpo_limit: Option<Amps>,
}

#[derive(Clone, Debug, Serialize)]
pub struct RoundSummary {
    pub at: DateTime<Utc>,
    /// Time spent in `allocate`, in microseconds.
    pub compute_us: u64,
    pub sessions: usize,
    pub decreases: usize,
    pub increases: usize,
    pub rotation: bool,
}

#[derive(Clone, Debug, Serialize)]
pub struct SiteSample {
    pub at: DateTime<Utc>,
    /// Per root zone: its id, the measured load (meter), EV draw and budget, on the
    /// most loaded phase.
    pub zones: Vec<(ZoneId, Option<Amps>, Amps, Amps)>,
}

#[derive(Clone, Debug, Default, Serialize)]
pub struct SiteStatus {
    pub at: Option<DateTime<Utc>>,
    pub tariff_period: Option<String>,
    pub ev_cap_fraction: f64,
    pub price_per_kwh: Option<f64>,
    pub zones: Vec<ZoneStatus>,
    pub sessions: Vec<SessionStatus>,
    pub last_round: Option<RoundSummary>,
    /// Meters attached to no zone (other feeders), reported only.
    pub other_meters: Vec<MeterReading>,
}
