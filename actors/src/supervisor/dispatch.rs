//! Sending a round's plan: the decreases, and only once all are acknowledged the
//! increases and recoveries; what the answers leave reserved.
//!
//! No round runs while a plan is being sent, the safety loop's neither: so a setpoint
//! is waited for at most [`SETPOINT_WAIT`] (or the call timeout, if shorter), not the
//! whole call timeout. One a station has not answered by then is settled as
//! unconfirmed — the higher of its old and new limit stays reserved — and the station's
//! own call goes on (its answer, when it comes, is what the station reports next).

use super::*;

/// The longest a dispatch waits for one station's answer before it counts it as not
/// confirmed and lets the next round run (grants to secondaries: `GRANT_TIMEOUT`).
pub(super) const SETPOINT_WAIT: Duration = Duration::from_secs(5);

impl ZoneSupervisor {
    /// Sends the plan: all decreases, then — only if every decrease was acknowledged —
    /// the increases. Events meanwhile are folded into one more round afterwards.
    pub(super) fn dispatch(
        &mut self,
        a: &Allocation,
        sessions: &[(Session, Option<i32>)],
        now: DateTime<Utc>,
        ctx: &mut Context<Self>,
    ) {
        let to_send = |changes: &[allocation::SetpointChange]| -> Vec<Setpoint> {
            changes
                .iter()
                .filter_map(|c| {
                    let (session, tx) = sessions.get(c.session)?;
                    let tx = (*tx)?;
                    let entry = self.stations.get(&session.key.charge_point)?;
                    Some(Setpoint {
                        addr: entry.addr.clone(),
                        key: session.key.clone(),
                        from: c.from,
                        msg: ApplyLimit {
                            connector: session.key.connector,
                            limit: c.to,
                            purpose: LimitPurpose::Transaction(tx),
                        },
                    })
                })
                .collect()
        };
        let decreases = to_send(&a.plan.decreases);
        let increases = to_send(&a.plan.increases);
        let recoveries = self.due_recoveries(a, sessions, now);
        let (grants_down, grants_up) = self.plan_grants(a, sessions, now);
        let in_force = self.in_force_of(a);
        if decreases.is_empty()
            && increases.is_empty()
            && recoveries.is_empty()
            && grants_down.is_empty()
            && grants_up.is_empty()
        {
            // Nothing moves: what the round planned is what is in force.
            if let Some((watcher, m)) = in_force {
                let _ = watcher.try_send(m);
            }
            return;
        }
        for inc in &increases {
            if inc.from.is_none_or(|f| f.0 == 0.0) {
                self.resumed.insert(inc.key.clone(), now);
            }
        }
        // A higher grant may be in force as soon as it arrives.
        self.reserve_grants(&grants_up);
        self.dispatching = true;
        let wait = Duration::from_secs(u64::from(self.current.server.call_timeout_s.max(1)))
            .min(SETPOINT_WAIT);
        let fut = async move {
            let (down, granted_down) = futures_util::future::join(
                send_all(decreases, wait),
                federation::send_grants(grants_down),
            )
            .await;
            let all_down = down
                .iter()
                .all(|(_, _, r)| matches!(r, Ok(LimitOutcome::Accepted)))
                && granted_down.iter().all(|(_, _, r)| r.is_ok());
            // A recovery re-sends this round's limit, so it is an increase like the
            // others: only once every decrease is in force, never beside a later round.
            let (up, granted_up) = if all_down {
                let (up, _, granted) = futures_util::future::join3(
                    send_all(increases, wait),
                    // Its steps go to one station in order: one cut short leaves the rest
                    // unsent, and a later round's limits still queue behind what was.
                    tokio::time::timeout(wait, recover_all(recoveries)),
                    federation::send_grants(grants_up),
                )
                .await;
                (up, granted)
            } else {
                (Vec::new(), Vec::new())
            };
            (down, up, granted_down, granted_up, all_down)
        };
        ctx.spawn(fut.into_actor(self).map(
            move |(down, up, granted_down, granted_up, all_down), act, ctx| {
                act.dispatching = false;
                let now = Utc::now();
                let moved: Vec<SessionKey> = down
                    .iter()
                    .chain(&up)
                    .filter(|(_, _, r)| matches!(r, Ok(LimitOutcome::Accepted)))
                    .map(|(k, _, _)| k.clone())
                    .collect();
                for (key, sp, result) in down.into_iter().chain(up) {
                    act.settle(key, sp, result, now);
                }
                let sent_to: Vec<String> = granted_down
                    .iter()
                    .chain(&granted_up)
                    .map(|(name, _, _)| name.clone())
                    .collect();
                for sent in granted_down.into_iter().chain(granted_up) {
                    act.settle_grant(sent, now);
                }
                act.apply_late_acks(&sent_to);
                act.ask_for_reports(moved, ctx);
                if all_down {
                    if let Some((watcher, m)) = in_force {
                        let _ = watcher.try_send(m);
                    }
                } else {
                    tracing::warn!(
                        "a decrease was not acknowledged: increases wait for the next round"
                    );
                    act.rerun = true;
                }
                if std::mem::take(&mut act.rerun) {
                    act.schedule_round(ctx);
                }
            },
        ));
    }

    /// Once vehicles whose limits changed had time to follow, asks their stations for a
    /// MeterValues (where supported), so that a zone meter's move is attributed to them
    /// without waiting for their own clock; until then their zone's other loads are held.
    pub(super) fn ask_for_reports(&self, moved: Vec<SessionKey>, ctx: &mut Context<Self>) {
        if moved.is_empty() || self.params.budget.mode != crate::config::SiteMode::Dynamic {
            return;
        }
        let wait = allocation::RAMP_ALLOWANCE
            .to_std()
            .unwrap_or(Duration::from_secs(5))
            + Duration::from_millis(500);
        ctx.run_later(wait, move |act, _| {
            for key in moved {
                let Some(entry) = act.stations.get(&key.charge_point) else {
                    continue;
                };
                let trigger = TriggerMessageRequest {
                    requested_message: MessageTrigger::MeterValues,
                    connector_id: std::num::NonZeroU32::new(key.connector),
                };
                entry.addr.do_send(Call(trigger));
            }
        });
    }

    pub(super) fn settle(
        &mut self,
        key: SessionKey,
        sp: ApplyLimit,
        result: Result<LimitOutcome, CallFailure>,
        now: DateTime<Utc>,
    ) {
        match result {
            Ok(LimitOutcome::Accepted) => {
                self.unconfirmed.remove(&key);
                self.rejections.remove(&key);
            }
            Ok(LimitOutcome::Rejected) => {
                let n = self.rejections.entry(key.clone()).or_insert(0);
                *n += 1;
                let message = if *n >= REJECTIONS_BEFORE_MAX {
                    format!(
                        "connector {} keeps rejecting its limit: assumed to draw its maximum",
                        key.connector
                    )
                } else {
                    format!(
                        "connector {} rejected a limit of {}: retrying",
                        key.connector, sp.limit
                    )
                };
                tracing::warn!(station = %key.charge_point, connector = key.connector, "{message}");
                self.log(&key.charge_point, LogLevel::Warn, message);
            }
            Err(CallFailure::NotConnected | CallFailure::Stopped) => {}
            Err(e) => {
                tracing::warn!(station = %key.charge_point, connector = key.connector, error = %e, "setpoint not confirmed: the higher limit is reserved");
                self.unconfirmed.insert(
                    key,
                    Unconfirmed {
                        reserved: sp.limit,
                        since: now,
                    },
                );
            }
        }
    }

    /// The vehicles raised from 0 that are still not charging after `resume_check_s`:
    /// each gets a recovery (its profile cleared and this round's limit sent again, and a
    /// StatusNotification asked for) as a step of this round's dispatch. One whose limit
    /// changes this round, or is 0 now, needs none.
    pub(super) fn due_recoveries(
        &mut self,
        a: &Allocation,
        sessions: &[(Session, Option<i32>)],
        now: DateTime<Utc>,
    ) -> Vec<Recovery> {
        let wait = TimeDelta::seconds(i64::from(self.current.control.resume_check_s));
        let due: Vec<SessionKey> = self
            .resumed
            .iter()
            .filter(|(_, at)| now - **at >= wait)
            .map(|(k, _)| k.clone())
            .collect();
        let mut out = Vec::new();
        for key in due {
            self.resumed.remove(&key);
            let Some(i) = sessions.iter().position(|(s, _)| s.key == key) else {
                continue;
            };
            let (session, Some(tx)) = &sessions[i] else {
                continue;
            };
            let (Some(sa), Some(entry)) = (a.sessions.get(i), self.stations.get(&key.charge_point))
            else {
                continue;
            };
            let Some(c) = entry
                .snapshot
                .connectors
                .iter()
                .find(|c| c.connector == key.connector)
            else {
                continue;
            };
            let limit = sa.limit_after;
            let unchanged = session.limit_in_force == Some(limit);
            if c.status != "SuspendedEVSE"
                || limit.0 <= 0.0
                || !unchanged
                || session.fixed.is_some()
            {
                continue;
            }
            let message = format!(
                "connector {} stays SuspendedEVSE after a raise to {limit}: clearing and re-sending its profile",
                key.connector
            );
            tracing::warn!(station = %key.charge_point, "{message}");
            self.log(&key.charge_point, LogLevel::Warn, message);
            out.push(Recovery {
                addr: entry.addr.clone(),
                apply: ApplyLimit {
                    connector: key.connector,
                    limit,
                    purpose: LimitPurpose::Transaction(*tx),
                },
            });
        }
        out
    }
}

/// One SetChargingProfile to send.
pub(super) struct Setpoint {
    addr: Addr<StationActor>,
    key: SessionKey,
    from: Option<Amps>,
    msg: ApplyLimit,
}

pub(super) type Sent = (SessionKey, ApplyLimit, Result<LimitOutcome, CallFailure>);

/// Clear, re-send and ask for the status of a vehicle that did not resume.
pub(super) struct Recovery {
    addr: Addr<StationActor>,
    apply: ApplyLimit,
}

pub(super) async fn recover_all(recoveries: Vec<Recovery>) {
    let each = recoveries.into_iter().map(|r| async move {
        let connector = r.apply.connector;
        let clear = ClearChargingProfileRequest {
            id: None,
            connector_id: Some(connector),
            charging_profile_purpose: Some(ChargingProfilePurpose::TxProfile),
            stack_level: None,
        };
        let _ = r.addr.send(Call(clear)).await;
        let _ = r.addr.send(r.apply).await;
        let trigger = TriggerMessageRequest {
            requested_message: MessageTrigger::StatusNotification,
            connector_id: std::num::NonZeroU32::new(connector),
        };
        let _ = r.addr.send(Call(trigger)).await;
    });
    futures_util::future::join_all(each).await;
}

/// Sends every setpoint at once and waits for every answer, each at most `wait` (an
/// answer not in by then is a timeout here; the station's call itself goes on, and what
/// it sends to that station later queues behind it).
pub(super) async fn send_all(setpoints: Vec<Setpoint>, wait: Duration) -> Vec<Sent> {
    let futures = setpoints.into_iter().map(|sp| async move {
        let result = match tokio::time::timeout(wait, sp.addr.send(sp.msg)).await {
            Ok(answer) => answer.unwrap_or(Err(CallFailure::Stopped)),
            Err(_) => Err(CallFailure::Timeout(wait)),
        };
        (sp.key, sp.msg, result)
    });
    futures_util::future::join_all(futures).await
}
