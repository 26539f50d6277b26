//! Stations that obey their limits, and a timeline of every limit in force, from the
//! stations' side: a limit is in force from the moment the station answers Accepted.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use ampwarden::simulate::client::{routine_answer, StationClient};
use serde_json::{json, Value};

#[derive(Clone, Debug, PartialEq)]
pub enum Purpose {
    Default { connector: u32 },
    Tx { transaction: i64 },
}

#[derive(Clone, Debug)]
pub struct LimitEvent {
    pub at: Instant,
    pub station: String,
    pub purpose: Purpose,
    pub limit: f64,
}

#[derive(Clone, Debug)]
struct Span {
    station: String,
    transaction: i64,
    start: Instant,
    end: Option<Instant>,
}

#[derive(Default)]
struct Inner {
    events: Vec<LimitEvent>,
    spans: Vec<Span>,
    rejected: usize,
}

/// Every limit the stations took, and when their transactions ran.
#[derive(Clone, Default)]
pub struct Timeline {
    inner: Arc<Mutex<Inner>>,
}

/// How a watched station behaves.
#[derive(Clone, Copy, Debug, Default)]
pub struct Behaviour {
    /// Answers SetChargingProfile only after this long (the limit changes then).
    pub answer_delay: Option<Duration>,
    /// Reports `Current.Import` = its limit in force after every change (it draws it all).
    pub report_draw: bool,
    /// Answers every SetChargingProfile with `Rejected` (the limit does not change).
    pub reject: bool,
    /// Never answers a SetChargingProfile (firmware that ignores them); what it applies
    /// is unknown, so it counts at its maximum.
    pub silent: bool,
    /// With `silent`: it applies every profile it receives all the same (the worst case
    /// for the breaker when the profile was an increase).
    pub applies_unanswered: bool,
}

impl Behaviour {
    /// Whether this station ever accepts a profile.
    pub fn answers_profiles(&self) -> bool {
        !self.reject && !self.silent
    }
}

impl Timeline {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Takes over the station's incoming calls: answers them (SetChargingProfile after
    /// the behaviour's delay) and records each accepted limit.
    pub fn watch(&self, client: &mut StationClient, station: &str, behaviour: Behaviour) {
        let mut calls = client.take_calls();
        let answerer = client.answerer();
        let timeline = self.clone();
        let station = station.to_owned();
        tokio::spawn(async move {
            while let Some(call) = calls.recv().await {
                if call.action != "SetChargingProfile" {
                    if let Some(a) = routine_answer(&call.action, &call.payload) {
                        let _ = answerer.answer(&call.unique_id, a);
                    }
                    continue;
                }
                let p = &call.payload;
                let profile = &p["csChargingProfiles"];
                let limit = profile["chargingSchedule"]["chargingSchedulePeriod"][0]["limit"]
                    .as_f64()
                    .unwrap_or(f64::NAN);
                let purpose = match profile["chargingProfilePurpose"].as_str() {
                    Some("TxProfile") => Purpose::Tx {
                        transaction: profile["transactionId"].as_i64().unwrap_or(-1),
                    },
                    _ => Purpose::Default {
                        connector: p["connectorId"].as_u64().unwrap_or(0) as u32,
                    },
                };
                if behaviour.silent {
                    if behaviour.applies_unanswered {
                        timeline.lock().events.push(LimitEvent {
                            at: Instant::now(),
                            station: station.clone(),
                            purpose,
                            limit,
                        });
                    }
                    continue;
                }
                if behaviour.reject {
                    let _ = answerer.answer(&call.unique_id, json!({ "status": "Rejected" }));
                    timeline.lock().rejected += 1;
                    continue;
                }
                let (timeline, answerer, station) =
                    (timeline.clone(), answerer.clone(), station.clone());
                let uid = call.unique_id.clone();
                let apply = async move {
                    if let Some(d) = behaviour.answer_delay {
                        tokio::time::sleep(d).await;
                    }
                    let at = Instant::now();
                    timeline.lock().events.push(LimitEvent {
                        at,
                        station: station.clone(),
                        purpose,
                        limit,
                    });
                    let _ = answerer.answer(&uid, json!({ "status": "Accepted" }));
                    if behaviour.report_draw {
                        if let Some((tx, draw)) = timeline.open_limit(&station, at) {
                            let _ = answerer.send_raw(meter_values_frame(tx, draw));
                        }
                    }
                };
                if behaviour.answer_delay.is_some() {
                    tokio::spawn(apply);
                } else {
                    apply.await;
                }
            }
        });
    }

    pub fn started(&self, station: &str, transaction: i64) {
        self.lock().spans.push(Span {
            station: station.into(),
            transaction,
            start: Instant::now(),
            end: None,
        });
    }

    pub fn stopped(&self, station: &str) {
        let now = Instant::now();
        for s in self
            .lock()
            .spans
            .iter_mut()
            .filter(|s| s.station == station && s.end.is_none())
        {
            s.end = Some(now);
        }
    }

    /// The limit in force on a station's connector 1 at `at` (SPEC §3): the last TxProfile
    /// of its running transaction, else the last TxDefaultProfile of connector 1, else 0's.
    fn in_force(inner: &Inner, station: &str, transaction: i64, at: Instant) -> Option<f64> {
        let last = |want: &dyn Fn(&Purpose) -> bool| {
            inner
                .events
                .iter()
                .filter(|e| e.station == station && e.at <= at && want(&e.purpose))
                .max_by_key(|e| e.at)
                .map(|e| e.limit)
        };
        last(&|p| *p == Purpose::Tx { transaction })
            .or_else(|| last(&|p| *p == Purpose::Default { connector: 1 }))
            .or_else(|| last(&|p| *p == Purpose::Default { connector: 0 }))
    }

    /// The running transaction of `station` at `at` and its limit in force.
    fn open_limit(&self, station: &str, at: Instant) -> Option<(i64, f64)> {
        let inner = self.lock();
        let span = inner
            .spans
            .iter()
            .find(|s| s.station == station && s.start <= at && s.end.is_none_or(|e| e > at))?;
        Some((
            span.transaction,
            Self::in_force(&inner, station, span.transaction, at).unwrap_or(0.0),
        ))
    }

    /// Limits in force now of every running transaction, by station.
    pub fn current(&self) -> HashMap<String, f64> {
        let now = Instant::now();
        let inner = self.lock();
        inner
            .spans
            .iter()
            .filter(|s| s.end.is_none())
            .map(|s| {
                (
                    s.station.clone(),
                    Self::in_force(&inner, &s.station, s.transaction, now).unwrap_or(f64::NAN),
                )
            })
            .collect()
    }

    /// The highest sum of limits in force over all moments (stations with no limit yet
    /// count as `unlimited_a`), and every limit ever in force.
    pub fn worst_sum(&self, unlimited_a: f64) -> f64 {
        self.worst_sum_of(|_| true, unlimited_a)
    }

    /// [`Timeline::worst_sum`] over the stations `counted` selects (a zone's).
    pub fn worst_sum_of(&self, counted: impl Fn(&str) -> bool, unlimited_a: f64) -> f64 {
        self.worst_moment_of(counted, unlimited_a).0
    }

    /// The worst moment for the stations `counted` selects: the sum, and each running
    /// station's limit in force then with the recent events (to tell what happened).
    pub fn worst_moment_of(
        &self,
        counted: impl Fn(&str) -> bool,
        unlimited_a: f64,
    ) -> (f64, String) {
        let inner = self.lock();
        let mut moments: Vec<Instant> = inner.events.iter().map(|e| e.at).collect();
        moments.extend(inner.spans.iter().map(|s| s.start));
        let (inner, counted) = (&*inner, &counted);
        let running = |t: Instant| {
            inner
                .spans
                .iter()
                .filter(move |s| counted(&s.station) && s.start <= t && s.end.is_none_or(|e| e > t))
        };
        let sum_at = |t: Instant| {
            running(t)
                .map(|s| Self::in_force(inner, &s.station, s.transaction, t).unwrap_or(unlimited_a))
                .sum::<f64>()
        };
        let Some(worst) = moments
            .into_iter()
            .max_by(|&a, &b| sum_at(a).total_cmp(&sum_at(b)))
        else {
            return (0.0, String::new());
        };
        let mut story = format!("{:?} ago: ", worst.elapsed());
        for s in running(worst) {
            let limit = Self::in_force(inner, &s.station, s.transaction, worst);
            story.push_str(&format!("{} tx {}: {limit:?};", s.station, s.transaction));
        }
        let recent = inner
            .events
            .iter()
            .filter(|e| e.at <= worst && worst.duration_since(e.at) < Duration::from_secs(3));
        for e in recent {
            story.push_str(&format!(
                " [{} {:?} {} at -{:?}]",
                e.station,
                e.purpose,
                e.limit,
                worst.duration_since(e.at)
            ));
        }
        (sum_at(worst), story)
    }

    /// Whether `station` has accepted a TxDefaultProfile (the 0 A the controller sends
    /// first after a boot).
    pub fn has_default(&self, station: &str) -> bool {
        self.lock()
            .events
            .iter()
            .any(|e| e.station == station && matches!(e.purpose, Purpose::Default { .. }))
    }

    /// How many profiles the watched stations rejected.
    pub fn rejected(&self) -> usize {
        self.lock().rejected
    }

    /// Every TxProfile limit sent, in order.
    pub fn tx_limits(&self) -> Vec<f64> {
        self.lock()
            .events
            .iter()
            .filter(|e| matches!(e.purpose, Purpose::Tx { .. }))
            .map(|e| e.limit)
            .collect()
    }

    /// Waits until `check` holds for the current limits; returns them.
    pub async fn wait_for(
        &self,
        what: &str,
        wait: Duration,
        check: impl Fn(&HashMap<String, f64>) -> bool,
    ) -> HashMap<String, f64> {
        let deadline = Instant::now() + wait;
        loop {
            let now = self.current();
            if check(&now) {
                return now;
            }
            if Instant::now() > deadline {
                panic!("timed out waiting for {what}; limits now {now:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
}

/// Connects, boots and watches `n` stations, and waits until each has taken the 0 A
/// default the controller sends first after a boot; none is charging yet. (A vehicle
/// plugged in before that runs on the station's own default — nothing a central system
/// can prevent — so the invariants below are about stations that were told.)
pub async fn boot_fleet(
    app: &super::TestApp,
    timeline: &Timeline,
    n: usize,
    behaviour: impl Fn(usize) -> Behaviour,
) -> Vec<ampwarden::simulate::client::StationClient> {
    boot_fleet_as(app, timeline, "EV", n, behaviour).await
}

/// [`boot_fleet`] with stations named `{prefix}01`, `{prefix}02`, …
pub async fn boot_fleet_as(
    app: &super::TestApp,
    timeline: &Timeline,
    prefix: &str,
    n: usize,
    behaviour: impl Fn(usize) -> Behaviour,
) -> Vec<ampwarden::simulate::client::StationClient> {
    let mut out = Vec::new();
    for i in 1..=n {
        let id = format!("{prefix}{i:02}");
        let mut client = app.manual(&id).await;
        timeline.watch(&mut client, &id, behaviour(i));
        super::ok(
            client
                .call("BootNotification", super::boot_payload())
                .await
                .expect("boot"),
        );
        out.push(client);
    }
    let deadline = std::time::Instant::now() + super::LONG;
    for i in 1..=n {
        let id = format!("{prefix}{i:02}");
        while !timeline.has_default(&id) && behaviour(i).answers_profiles() {
            assert!(
                std::time::Instant::now() < deadline,
                "{id} never got its default profile"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
    out
}

/// A MeterValues CALL reporting `draw` A on each of the three phases.
pub fn meter_values_frame(transaction: i64, draw: f64) -> String {
    let sample = |phase: &str| json!({ "value": format!("{draw:.1}"), "measurand": "Current.Import", "phase": phase, "unit": "A" });
    let payload: Value = json!({
        "connectorId": 1,
        "transactionId": transaction,
        "meterValue": [{ "timestamp": super::now_text(), "sampledValue": [sample("L1"), sample("L2"), sample("L3")] }]
    });
    json!([
        2,
        format!("mv-{transaction}-{}", rand_suffix()),
        "MeterValues",
        payload
    ])
    .to_string()
}

fn rand_suffix() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0)
}

/// Starts a transaction on connector 1 and records it; the transaction id.
pub async fn start_transaction(
    timeline: &Timeline,
    station: &StationClient,
    id: &str,
    tag: &str,
) -> i64 {
    let tx = super::start_transaction(station, 1, tag, 0).await;
    timeline.started(id, tx);
    tx
}

pub async fn stop_transaction(timeline: &Timeline, station: &StationClient, id: &str, tx: i64) {
    let stop = json!({ "transactionId": tx, "meterStop": 1000, "timestamp": super::now_text() });
    super::ok(
        station
            .call("StopTransaction", stop)
            .await
            .expect("answered"),
    );
    timeline.stopped(id);
}
