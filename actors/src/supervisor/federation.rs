//! The supervisor's side of a federation.
//!
//! **Primary:** every secondary is a subtree below the zone it feeds. It enters the
//! round as pseudo-sessions (`@name`): its VIP and normal demand as a 3-phase piece and
//! 1-phase pieces whose maxima add up to what it asked for per phase, what it cannot
//! control as fixed pieces, and a piece that carries its vehicles' draw (for a `total`
//! meter). What the round gives its pieces, added up per phase, is its next grant,
//! dispatched like a station's limit: lower grants first, and higher ones only once every
//! decrease (of a station or a secondary) is acknowledged. For a secondary it cannot
//! trust to be on a grant — link down, grant close to expiry, or a grant unanswered —
//! it reserves the most it may take: max(what it may still hold, its fallback).
//!
//! **Secondary:** the link imposes the grant on the root ([`ImposeBudget`]) and is told,
//! after every round whose decreases are in force, whether the limits in force fit it
//! ([`InForce`]): only then does it acknowledge the grant.

use super::*;
use crate::federation::{Pieces, RemoteStation, Report, EXPIRY_MARGIN_S, SESSION_PREFIX};

/// Connectors of a secondary's pseudo-sessions: the draw carrier, then the pieces.
const CARRIER: u32 = 0;
const VIP: u32 = 1;
const NORMAL: u32 = 5;
const FIXED: u32 = 9;
/// A secondary's report counts for its vehicles' draw this long after it arrived (it
/// reports every second).
const REPORT_FRESH_FOR: TimeDelta = TimeDelta::seconds(3);
/// A grant moves up only by at least this on some phase (as a station's limit).
const MIN_GRANT_STEP_A: f64 = allocation::MIN_INCREASE_A;

// --- messages --------------------------------------------------------------------------

/// Primary: a secondary said hello on an authenticated link. Refused (with the reason
/// the secondary is told) when its name or token is already linked, when nine are, or
/// when it does not match its entry in the configuration.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct SecondaryLinked {
    pub link_id: u64,
    /// Index of its token in `federation.tokens`.
    pub token: usize,
    pub name: String,
    pub zone: ZoneId,
    pub fallback: Amps,
    pub limit: Amps,
    pub software: String,
    pub grants: Recipient<SendGrant>,
    pub closer: Recipient<CloseLink>,
    pub relay: Recipient<RelayCommand>,
}

/// Primary → link: a remote action on one of the secondary's stations; answered with
/// the HTTP status and JSON body of the secondary's API.
#[derive(Clone, Message)]
#[rtype(result = "Result<(u16, serde_json::Value), CallFailure>")]
pub struct RelayCommand {
    pub station: String,
    pub action: String,
    pub body: serde_json::Value,
}

/// Primary: relay a command to secondary `name` (`NotConnected` if its link is down).
#[derive(Message)]
#[rtype(result = "Result<(u16, serde_json::Value), CallFailure>")]
pub struct RelayToSecondary {
    pub name: String,
    pub command: RelayCommand,
}

/// Primary → link: close it, telling the secondary why (its token was revoked).
#[derive(Message)]
#[rtype(result = "()")]
pub struct CloseLink(pub String);

/// Primary: close a secondary's link (if up), e.g. after its token was revoked.
#[derive(Message)]
#[rtype(result = "()")]
pub struct DropSecondaryLink {
    pub name: String,
    pub reason: String,
}

/// Primary: a secondary's report (already checked and clamped).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SecondaryReported {
    pub link_id: u64,
    pub report: Report,
}

/// Primary: the secondary acknowledged a grant sent at `sent_at` (a refresh included).
#[derive(Message)]
#[rtype(result = "()")]
pub struct SecondaryConfirmed {
    pub link_id: u64,
    pub sent_at: DateTime<Utc>,
    /// An acknowledgement of the newest grant on the link: its limits in force fit this
    /// budget (a late one, after the dispatch gave up waiting, counts too).
    pub in_force: Option<PerPhase<Amps>>,
}

/// Primary: the link closed.
#[derive(Message)]
#[rtype(result = "()")]
pub struct SecondaryUnlinked {
    pub link_id: u64,
}

/// Primary → link: send this grant; answered with when it was sent once the secondary
/// acknowledged it (its limits in force fit), or why not.
#[derive(Message)]
#[rtype(result = "Result<DateTime<Utc>, CallFailure>")]
pub struct SendGrant(pub PerPhase<Amps>);

/// Primary: every secondary known (configured, or linked since the start).
#[derive(Message)]
#[rtype(result = "Vec<SecondaryStatus>")]
pub struct GetSecondaries;

/// Secondary: tell this link after every round whose decreases are in force.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchInForce(pub Recipient<InForce>);

#[derive(Clone, Copy, Debug, Message)]
#[rtype(result = "()")]
pub struct InForce {
    /// The budget imposed on the root during that round.
    pub imposed: Option<PerPhase<Amps>>,
    /// Σ of the limits in force at the root (fixed reservations included).
    pub in_force: PerPhase<Amps>,
    /// Whether `in_force` fits `imposed` on every phase.
    pub fits: bool,
}

/// A secondary, as the primary's API shows it.
#[derive(Clone, Debug, Serialize)]
pub struct SecondaryStatus {
    pub name: String,
    pub zone: ZoneId,
    pub fallback_budget_a: Amps,
    /// `linked`, `unreachable` (known, link down) or `never_seen` (since this start).
    pub link: &'static str,
    /// Whether it is known to be on a grant that will not expire before the next one.
    pub on_grant: bool,
    /// What is kept for it in its zone: what it may take now.
    pub reserved_a: PerPhase<Amps>,
    /// The last grant it acknowledged.
    pub granted_a: Option<PerPhase<Amps>>,
    /// What the last round gave it.
    pub target_a: Option<PerPhase<Amps>>,
    pub software: Option<String>,
    pub linked_since: Option<DateTime<Utc>>,
    pub last_report_at: Option<DateTime<Utc>>,
    pub report: Option<Report>,
    pub stations: Vec<RemoteStation>,
    /// Which of `federation.tokens` its link presented (while linked).
    #[serde(skip)]
    pub token: Option<usize>,
}

// --- state -----------------------------------------------------------------------------

pub(super) struct SecondaryEntry {
    zone: ZoneId,
    fallback: Amps,
    limit: Amps,
    /// From the configuration (a described token): kept when the link goes.
    configured: bool,
    link: Option<Link>,
    report: Option<(Report, DateTime<Utc>)>,
    stations: Vec<RemoteStation>,
    /// When the newest grant it acknowledged was sent: it holds a grant until then +
    /// `valid_for` at least.
    confirmed: Option<DateTime<Utc>>,
    /// The most it may take now (per phase).
    reserved: PerPhase<Amps>,
    granted: Option<PerPhase<Amps>>,
    target: Option<PerPhase<Amps>>,
    /// A grant went unanswered: it is reserved, not shared, until it acknowledges the
    /// newest grant, or for 30 s.
    unresponsive_since: Option<DateTime<Utc>>,
    /// A late acknowledgement that came during a dispatch, applied after it.
    late_ack: Option<PerPhase<Amps>>,
    software: Option<String>,
}

struct Link {
    id: u64,
    token: usize,
    grants: Recipient<SendGrant>,
    closer: Recipient<CloseLink>,
    relay: Recipient<RelayCommand>,
    since: DateTime<Utc>,
}

impl SecondaryEntry {
    fn new(zone: ZoneId, fallback: Amps, limit: Amps, configured: bool) -> SecondaryEntry {
        SecondaryEntry {
            zone,
            fallback,
            limit,
            configured,
            link: None,
            report: None,
            stations: Vec::new(),
            confirmed: None,
            // Fail closed: after our own restart it may well be on its fallback.
            reserved: PerPhase::splat(fallback),
            granted: None,
            target: None,
            unresponsive_since: None,
            late_ack: None,
            software: None,
        }
    }

    fn late_acknowledged(&mut self, budget: PerPhase<Amps>) {
        self.reserved = budget;
        self.granted = Some(budget);
        self.unresponsive_since = None;
        self.late_ack = None;
    }

    fn on_grant(&self, now: DateTime<Utc>, valid_for: TimeDelta) -> bool {
        self.link.is_some()
            && self
                .confirmed
                .is_some_and(|c| now - c < valid_for - TimeDelta::seconds(EXPIRY_MARGIN_S))
    }

    /// Whether this round may share current with it (else its reservation is fixed).
    fn controllable(&self, now: DateTime<Utc>) -> bool {
        self.link.is_some()
            && self.report.is_some()
            && self
                .unresponsive_since
                .is_none_or(|t| now - t >= UNRESPONSIVE_RETRY)
    }
}

/// One grant to send this round.
pub(super) struct GrantCall {
    name: String,
    link: Recipient<SendGrant>,
    budget: PerPhase<Amps>,
}

pub(super) type GrantSent = (String, PerPhase<Amps>, Result<DateTime<Utc>, CallFailure>);

pub(super) async fn send_grants(calls: Vec<GrantCall>) -> Vec<GrantSent> {
    let each = calls.into_iter().map(|c| async move {
        let result = c
            .link
            .send(SendGrant(c.budget))
            .await
            .unwrap_or(Err(CallFailure::Stopped));
        (c.name, c.budget, result)
    });
    futures_util::future::join_all(each).await
}

fn session_key(name: &str, connector: u32) -> SessionKey {
    SessionKey::new(
        ChargePointId::new(format!("{SESSION_PREFIX}{name}")),
        connector,
    )
}

/// The secondary a pseudo-session belongs to, if it is one.
pub(super) fn secondary_of(key: &SessionKey) -> Option<&str> {
    key.charge_point.as_str().strip_prefix(SESSION_PREFIX)
}

fn max_phases(a: PerPhase<Amps>, b: PerPhase<Amps>) -> PerPhase<Amps> {
    PerPhase([0, 1, 2].map(|i| a.0[i].max(b.0[i])))
}

fn min_phases(a: PerPhase<Amps>, b: PerPhase<Amps>) -> PerPhase<Amps> {
    PerPhase([0, 1, 2].map(|i| a.0[i].min(b.0[i])))
}

impl ZoneSupervisor {
    fn valid_for(&self) -> TimeDelta {
        TimeDelta::seconds(i64::from(
            self.current
                .federation
                .as_ref()
                .map_or(10, |f| f.valid_for_s),
        ))
    }

    /// Whether a secondary stopped being trusted to hold a grant since the last round and
    /// its fallback is not reserved yet: checked every second, so that the reservation
    /// starts on time however short `valid_for_s` and however long `control.interval_s`.
    pub(super) fn fallback_due(&self) -> bool {
        let now = Utc::now();
        let valid_for = self.valid_for();
        self.secondaries
            .values()
            .any(|e| !e.on_grant(now, valid_for) && e.reserved.0.iter().any(|a| a.0 < e.fallback.0))
    }

    /// The secondaries the configuration describes are known from the start (and
    /// reserved at their fallback until they are heard).
    pub(super) fn configure_secondaries(&mut self) {
        let Some(f) = self
            .current
            .federation
            .as_ref()
            .filter(|f| f.role == crate::config::FederationRole::Primary)
        else {
            self.secondaries.clear();
            return;
        };
        for d in f.tokens.iter().filter_map(|t| t.described()) {
            let limit = self.current.zone(&d.zone).map_or(Amps::ZERO, |z| z.limit_a);
            let e = self.secondaries.entry(d.name.clone()).or_insert_with(|| {
                SecondaryEntry::new(d.zone.clone(), d.fallback_budget_a, limit, true)
            });
            e.zone = d.zone.clone();
            e.fallback = d.fallback_budget_a;
            e.configured = true;
        }
    }

    /// Every secondary's pseudo-sessions for this round (with no transaction).
    pub(super) fn secondary_sessions(
        &mut self,
        now: DateTime<Utc>,
        out: &mut Vec<(Session, Option<i32>)>,
    ) {
        let valid_for = self.valid_for();
        for (name, e) in &mut self.secondaries {
            if !e.on_grant(now, valid_for) {
                e.reserved = max_phases(e.reserved, PerPhase::splat(e.fallback));
            }
            let Some(zone) = self.tree.index_of(e.zone.as_str()) else {
                // Its zone is gone: the first root carries what it may take.
                push_fixed(out, name, FIXED, ZoneIdx(0), e.reserved, now);
                continue;
            };
            // Its vehicles' draw counts only from a fresh report: counting a stale one
            // (vehicles cut or stopped since) as drawn would understate the other loads
            // behind a `total` meter; counting nothing overstates them, which is safe.
            let fresh = e
                .report
                .as_ref()
                .filter(|(_, received)| now - *received < REPORT_FRESH_FOR);
            if let Some((r, _)) = fresh {
                let mut carrier = piece(name, CARRIER, zone, None, Amps::ZERO, false, now);
                carrier.draw = Some(r.ev_draw_a);
                carrier.draw_at = Some(r.at);
                carrier.limit_in_force = Some(Amps(f64::INFINITY));
                // Its vehicles follow a changed limit: the primary's meter sees them
                // before their stations report; hold the other-loads estimate meanwhile.
                carrier.changed_at = r.ramping.then_some(r.at);
                carrier.lowest_limit_since_draw = r.ramping.then_some(Amps(f64::INFINITY));
                out.push((carrier, None));
            }
            match &e.report {
                Some((r, _)) if e.controllable(now) => {
                    for (first, max, vip) in [(VIP, r.vip_max_a, true), (NORMAL, r.max_a, false)] {
                        for (i, (phase, a)) in Pieces::of(max).iter().enumerate() {
                            let c = first + u32::try_from(i).unwrap_or(0);
                            out.push((piece(name, c, zone, phase, a, vip, now), None));
                        }
                    }
                    push_fixed(out, name, FIXED, zone, r.fixed_a, now);
                }
                _ => push_fixed(out, name, FIXED, zone, e.reserved, now),
            }
        }
    }

    /// What the round gives each controllable secondary, and the grants to send: lower
    /// ones now, higher ones once every decrease is in force.
    pub(super) fn plan_grants(
        &mut self,
        a: &Allocation,
        sessions: &[(Session, Option<i32>)],
        now: DateTime<Utc>,
    ) -> (Vec<GrantCall>, Vec<GrantCall>) {
        let mut targets: BTreeMap<&str, PerPhase<f64>> = BTreeMap::new();
        for ((s, _), sa) in sessions.iter().zip(&a.sessions) {
            let Some(name) = secondary_of(&s.key) else {
                continue;
            };
            let t = targets.entry(name).or_default();
            for p in Phase::ALL {
                if s.phases.loads(p) && s.key.connector != CARRIER {
                    t.0[p.index()] += sa.target.0;
                }
            }
        }
        let valid_for = self.valid_for();
        let (mut down, mut up) = (Vec::new(), Vec::new());
        for (name, e) in &mut self.secondaries {
            let Some(link) = e.link.as_ref().filter(|_| e.report.is_some()) else {
                e.target = None;
                continue;
            };
            if !e.controllable(now) {
                continue;
            }
            let target = targets
                .get(name.as_str())
                .map_or(PerPhase::splat(Amps::ZERO), |t| {
                    t.map(|a| Amps(a).floor_tenth())
                });
            e.target = Some(target);
            let lower = min_phases(e.reserved, target);
            let decrease = Phase::ALL
                .iter()
                .any(|&p| target.get(p).0 < e.reserved.get(p).0 - 0.05);
            if decrease {
                down.push(GrantCall {
                    name: name.clone(),
                    link: link.grants.clone(),
                    budget: lower,
                });
            }
            let increase = Phase::ALL
                .iter()
                .any(|&p| target.get(p).0 >= lower.get(p).0 + MIN_GRANT_STEP_A - 1e-9);
            // A secondary not known to hold a grant (just linked, or its grants were
            // lost) gets one even when it changes nothing here: it ends its fallback.
            if increase || (!decrease && !e.on_grant(now, valid_for)) {
                up.push(GrantCall {
                    name: name.clone(),
                    link: link.grants.clone(),
                    budget: target,
                });
            }
        }
        (down, up)
    }

    /// Before an increase goes out, what it grants is reserved.
    pub(super) fn reserve_grants(&mut self, calls: &[GrantCall]) {
        for c in calls {
            if let Some(e) = self.secondaries.get_mut(&c.name) {
                e.reserved = max_phases(e.reserved, c.budget);
            }
        }
    }

    /// After a dispatch: the late acknowledgements that came meanwhile, for the
    /// secondaries this dispatch sent nothing to (for the others, its answers decide).
    pub(super) fn apply_late_acks(&mut self, sent_to: &[String]) {
        for (name, e) in &mut self.secondaries {
            match e.late_ack {
                Some(budget) if !sent_to.contains(name) && e.unresponsive_since.is_some() => {
                    e.late_acknowledged(budget);
                }
                _ => e.late_ack = None,
            }
        }
    }

    /// An acknowledged grant is what the secondary may take; an unanswered one stays
    /// reserved (with the higher one before it) and its secondary is not shared with for
    /// a while.
    pub(super) fn settle_grant(&mut self, sent: GrantSent, now: DateTime<Utc>) {
        let (name, budget, result) = sent;
        let Some(e) = self.secondaries.get_mut(&name) else {
            return;
        };
        match result {
            Ok(sent_at) => {
                e.reserved = budget;
                e.granted = Some(budget);
                e.confirmed = Some(e.confirmed.map_or(sent_at, |c| c.max(sent_at)));
                e.unresponsive_since = None;
            }
            Err(CallFailure::NotConnected | CallFailure::Stopped) => {}
            Err(why) => {
                tracing::warn!(secondary = %name, error = %why, "grant not acknowledged: what it may hold stays reserved");
                e.unresponsive_since = Some(now);
            }
        }
    }

    pub(super) fn secondary_statuses(&self) -> Vec<SecondaryStatus> {
        let now = Utc::now();
        let valid_for = self.valid_for();
        self.secondaries
            .iter()
            .map(|(name, e)| SecondaryStatus {
                name: name.clone(),
                zone: e.zone.clone(),
                fallback_budget_a: e.fallback,
                link: match (&e.link, &e.report) {
                    (Some(_), _) => "linked",
                    (None, Some(_)) => "unreachable",
                    (None, None) if e.software.is_some() => "unreachable",
                    (None, None) => "never_seen",
                },
                on_grant: e.on_grant(now, valid_for),
                reserved_a: e.reserved,
                granted_a: e.granted,
                target_a: e.target,
                software: e.software.clone(),
                linked_since: e.link.as_ref().map(|l| l.since),
                last_report_at: e.report.as_ref().map(|(_, at)| *at),
                report: e.report.as_ref().map(|(r, _)| {
                    let mut r = r.clone();
                    r.stations = None;
                    r
                }),
                stations: e.stations.clone(),
                token: e.link.as_ref().map(|l| l.token),
            })
            .collect()
    }

    /// What to tell the link after this round, once its decreases are all in force:
    /// whether what is in force at the root then fits the imposed budget.
    pub(super) fn in_force_of(&self, a: &Allocation) -> Option<(Recipient<InForce>, InForce)> {
        let watcher = self.in_force_watcher.clone()?;
        let mut in_force = PerPhase::splat(Amps::ZERO);
        for (z, za) in self.tree.zones().iter().zip(&a.zones) {
            if z.parent.is_none() {
                for p in Phase::ALL {
                    in_force.set(p, in_force.get(p) + za.allocated_after.get(p));
                }
            }
        }
        let fits = self.imposed.is_none_or(|b| {
            Phase::ALL
                .iter()
                .all(|&p| in_force.get(p).0 <= b.get(p).0 + 0.05)
        });
        Some((
            watcher,
            InForce {
                imposed: self.imposed,
                in_force,
                fits,
            },
        ))
    }
}

fn piece(
    name: &str,
    connector: u32,
    zone: ZoneIdx,
    phase: Option<Phase>,
    max: Amps,
    vip: bool,
    now: DateTime<Utc>,
) -> Session {
    Session {
        key: session_key(name, connector),
        zone,
        phases: phase.map_or(SessionPhases::Three, SessionPhases::One),
        max_current: max,
        vip,
        energy_wh: 0.0,
        connected_since: now,
        draw: None,
        // No limit of its own to ramp from: every target goes out as it is (the
        // secondary holds its vehicles' increases itself).
        limit_in_force: Some(Amps(f64::INFINITY)),
        fixed: None,
        changed_at: None,
        draw_at: None,
        lowest_limit_since_draw: None,
    }
}

fn push_fixed(
    out: &mut Vec<(Session, Option<i32>)>,
    name: &str,
    first: u32,
    zone: ZoneIdx,
    amount: PerPhase<Amps>,
    now: DateTime<Utc>,
) {
    for (i, (phase, a)) in Pieces::of(amount).iter().enumerate() {
        let c = first + u32::try_from(i).unwrap_or(0);
        let mut s = piece(name, c, zone, phase, a, false, now);
        s.limit_in_force = Some(a);
        s.fixed = Some(a);
        out.push((s, None));
    }
}

// --- handlers --------------------------------------------------------------------------

impl Handler<SecondaryLinked> for ZoneSupervisor {
    type Result = Result<(), String>;

    fn handle(&mut self, m: SecondaryLinked, ctx: &mut Self::Context) -> Self::Result {
        let described = self
            .current
            .federation
            .as_ref()
            .and_then(|f| f.tokens.get(m.token))
            .and_then(|t| t.described());
        if let Some(d) = described {
            if d.name != m.name {
                return Err(format!(
                    "this token belongs to secondary {:?}, not {:?}",
                    d.name, m.name
                ));
            }
            if d.zone != m.zone {
                return Err(format!(
                    "secondary {:?} feeds zone {:?} here, not {:?}",
                    d.name,
                    d.zone.as_str(),
                    m.zone.as_str()
                ));
            }
        } else if self.current.zone(&m.zone).is_none() {
            return Err(format!("this primary has no zone {:?}", m.zone.as_str()));
        }
        if let Some((other, _)) = self
            .secondaries
            .iter()
            .find(|(n, e)| *n != &m.name && e.link.as_ref().is_some_and(|l| l.token == m.token))
        {
            return Err(format!(
                "this token is already in use by secondary {other:?}"
            ));
        }
        if self
            .secondaries
            .get(&m.name)
            .is_some_and(|e| e.link.is_some())
        {
            return Err(format!("a secondary named {:?} is already linked", m.name));
        }
        let linked = self
            .secondaries
            .values()
            .filter(|e| e.link.is_some())
            .count();
        if linked >= crate::config::MAX_SECONDARIES {
            return Err(format!(
                "{linked} secondaries are linked: a primary leads at most {}",
                crate::config::MAX_SECONDARIES
            ));
        }
        let limit = self
            .current
            .zone(&m.zone)
            .map_or(m.limit, |z| z.limit_a.min(m.limit));
        let fallback = described.map_or(m.fallback, |d| d.fallback_budget_a.max(m.fallback));
        let e = self
            .secondaries
            .entry(m.name.clone())
            .or_insert_with(|| SecondaryEntry::new(m.zone.clone(), fallback, limit, false));
        e.zone = m.zone;
        e.fallback = fallback;
        e.limit = limit;
        e.reserved = max_phases(e.reserved, PerPhase::splat(fallback));
        e.software = Some(m.software);
        e.unresponsive_since = None;
        // Whatever it held before this link, it holds nothing of this one's yet.
        e.confirmed = None;
        e.granted = None;
        e.link = Some(Link {
            id: m.link_id,
            token: m.token,
            grants: m.grants,
            closer: m.closer,
            relay: m.relay,
            since: Utc::now(),
        });
        tracing::info!(secondary = %m.name, "secondary linked");
        self.log_site(LogLevel::Info, format!("secondary {} linked", m.name));
        self.schedule_round(ctx);
        Ok(())
    }
}

impl ZoneSupervisor {
    fn secondary_by_link(&mut self, link_id: u64) -> Option<(&String, &mut SecondaryEntry)> {
        self.secondaries
            .iter_mut()
            .find(|(_, e)| e.link.as_ref().is_some_and(|l| l.id == link_id))
    }
}

impl Handler<SecondaryReported> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, m: SecondaryReported, ctx: &mut Self::Context) {
        let now = Utc::now();
        let Some((_, e)) = self.secondary_by_link(m.link_id) else {
            return;
        };
        let Ok(mut report) = m.report.sanitised(e.limit) else {
            return;
        };
        if let Some(stations) = report.stations.take() {
            e.stations = stations;
        }
        // A round at once when what it needs or takes moved; else the periodic one.
        let moved = e.report.as_ref().is_none_or(|(old, _)| {
            let apart = |a: PerPhase<Amps>, b: PerPhase<Amps>| {
                Phase::ALL
                    .iter()
                    .any(|&p| (a.get(p).0 - b.get(p).0).abs() >= MIN_GRANT_STEP_A)
            };
            apart(old.max_a, report.max_a)
                || apart(old.vip_max_a, report.vip_max_a)
                || apart(old.fixed_a, report.fixed_a)
                || old.mode != report.mode
        });
        e.report = Some((report, now));
        if moved {
            self.schedule_round(ctx);
        }
    }
}

impl Handler<SecondaryConfirmed> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, m: SecondaryConfirmed, ctx: &mut Self::Context) {
        let dispatching = self.dispatching;
        let Some((_, e)) = self.secondary_by_link(m.link_id) else {
            return;
        };
        e.confirmed = Some(e.confirmed.map_or(m.sent_at, |c| c.max(m.sent_at)));
        // A late acknowledgement of the newest grant: what it may take is that grant
        // again, and it is shared with again. During a dispatch (which may be about to
        // send it a higher one) it is applied once the dispatch is over.
        if let (Some(budget), Some(_)) = (m.in_force, e.unresponsive_since) {
            if dispatching {
                e.late_ack = Some(budget);
            } else {
                e.late_acknowledged(budget);
                self.schedule_round(ctx);
            }
        }
    }
}

impl Handler<SecondaryUnlinked> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, m: SecondaryUnlinked, ctx: &mut Self::Context) {
        let Some((name, e)) = self.secondary_by_link(m.link_id) else {
            return;
        };
        let name = name.clone();
        e.link = None;
        // It may hold its last grant until it expires, then its fallback.
        e.reserved = max_phases(e.reserved, PerPhase::splat(e.fallback));
        tracing::warn!(secondary = %name, "secondary link lost: its fallback is reserved");
        self.log_site(
            LogLevel::Warn,
            format!("secondary {name} link lost: max(last grant, fallback) reserved"),
        );
        self.schedule_round(ctx);
    }
}

impl Handler<GetSecondaries> for ZoneSupervisor {
    type Result = MessageResult<GetSecondaries>;

    fn handle(&mut self, _: GetSecondaries, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.secondary_statuses())
    }
}

impl Handler<WatchInForce> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, WatchInForce(r): WatchInForce, ctx: &mut Self::Context) {
        self.in_force_watcher = Some(r);
        self.schedule_round(ctx);
    }
}

/// Secondary: its report from the site status of its last round (one root zone).
pub fn report_of(
    status: &SiteStatus,
    min_current: Amps,
    mode: crate::federation::LinkMode,
    grant_seq: u64,
) -> Report {
    let mut r = Report {
        v: crate::federation::VERSION,
        at: status.at.unwrap_or_else(Utc::now),
        mode,
        grant_seq,
        ..Report::default()
    };
    let add = |sum: &mut PerPhase<Amps>, phases: &[Phase], a: Amps| {
        for &p in phases {
            sum.set(p, sum.get(p) + a);
        }
    };
    for z in status.zones.iter().filter(|z| z.parent.is_none()) {
        for p in Phase::ALL {
            r.ev_draw_a.set(p, r.ev_draw_a.get(p) + z.ev_draw.get(p));
            r.fixed_a.set(p, r.fixed_a.get(p) + z.fixed.get(p));
            r.in_force_a
                .set(p, r.in_force_a.get(p) + z.allocated.get(p));
        }
        if let Some(o) = z.other_loads {
            let meter = PerPhase([0, 1, 2].map(|i| o.0[i] + z.ev_draw.0[i]));
            r.meter_a = Some(match r.meter_a {
                Some(m) => PerPhase([0, 1, 2].map(|i| m.0[i] + meter.0[i])),
                None => meter,
            });
        }
        r.ramping |= z.ramping;
    }
    for s in &status.sessions {
        match s.decision {
            "fixed" => continue,
            "suspended" => r.suspended += 1,
            _ if s.limit.0 > 0.0 => r.active += 1,
            _ => r.waiting += 1,
        }
        let (max, min) = if s.vip {
            (&mut r.vip_max_a, &mut r.vip_min_a)
        } else {
            (&mut r.max_a, &mut r.min_a)
        };
        add(max, &s.phases, s.max);
        if s.decision != "suspended" && s.max >= min_current {
            add(min, &s.phases, min_current);
        }
    }
    r
}

impl Handler<DropSecondaryLink> for ZoneSupervisor {
    type Result = ();

    fn handle(&mut self, m: DropSecondaryLink, _: &mut Self::Context) {
        if let Some(link) = self.secondaries.get(&m.name).and_then(|e| e.link.as_ref()) {
            link.closer.do_send(CloseLink(m.reason));
        }
    }
}

impl Handler<RelayToSecondary> for ZoneSupervisor {
    type Result = ResponseFuture<Result<(u16, serde_json::Value), CallFailure>>;

    fn handle(&mut self, m: RelayToSecondary, _: &mut Self::Context) -> Self::Result {
        let relay = self
            .secondaries
            .get(&m.name)
            .and_then(|e| e.link.as_ref())
            .map(|l| l.relay.clone());
        Box::pin(async move {
            match relay {
                None => Err(CallFailure::NotConnected),
                Some(r) => r.send(m.command).await.unwrap_or(Err(CallFailure::Stopped)),
            }
        })
    }
}
