//! SetChargingProfile: the setpoints we send and what their answers leave in force.

use super::*;

impl StationActor {
    // --- setpoints ---------------------------------------------------------------------

    pub(super) fn apply_limit(
        &mut self,
        msg: ApplyLimit,
        ctx: &mut Context<Self>,
    ) -> (Ticket, oneshot::Receiver<Result<String, CallFailure>>) {
        let (purpose, profile_id) = match msg.purpose {
            LimitPurpose::Default => (
                SetpointPurpose::TxDefault,
                profile_id(DEFAULT_PROFILE_ID_BASE, msg.connector),
            ),
            LimitPurpose::Transaction(t) => (
                SetpointPurpose::Tx { transaction_id: t },
                profile_id(TX_PROFILE_ID_BASE, msg.connector),
            ),
        };
        let stack_level = match msg.purpose {
            LimitPurpose::Default => DEFAULT_STACK_LEVEL,
            LimitPurpose::Transaction(_) => TX_STACK_LEVEL,
        };
        let request = SetChargingProfileRequest::current_limit(
            msg.connector,
            profile_id,
            stack_level,
            purpose,
            msg.limit,
            self.station.phases.count(),
        );
        let profile = match msg.purpose {
            LimitPurpose::Default => Profile::Default,
            LimitPurpose::Transaction(t) => Profile::Transaction(t),
        };
        // Recorded before it is queued: from now on the station may take it.
        let ticket = self
            .limits
            .send(msg.connector, profile, msg.limit.floor_tenth());
        (ticket, self.enqueue(&request, ctx))
    }

    /// Sends a limit, and once answered, records what is in force and reports it.
    pub(super) fn set_limit(
        &mut self,
        msg: ApplyLimit,
        ctx: &mut Context<Self>,
    ) -> ResponseActFuture<Self, Result<LimitOutcome, CallFailure>> {
        let (ticket, rx) = self.apply_limit(msg, ctx);
        Box::pin(
            answer::<SetChargingProfileRequest>(rx)
                .into_actor(self)
                .map(move |answer, act, _| {
                    let outcome = answer.map(|r| match r.status {
                        ChargingProfileStatus::Accepted => LimitOutcome::Accepted,
                        _ => LimitOutcome::Rejected,
                    });
                    act.limit_answered(&msg, ticket, &outcome);
                    act.report(ReportReason::LimitChanged);
                    outcome
                }),
        )
    }

    /// The first CALL after a boot: the 0 A default profile on connector 0.
    pub(super) fn send_safe_default(&mut self, ctx: &mut Context<Self>) {
        let msg = ApplyLimit {
            connector: 0,
            limit: SAFE_DEFAULT,
            purpose: LimitPurpose::Default,
        };
        let sent = self.set_limit(msg, ctx).map(|outcome, act, _| match outcome {
            Ok(LimitOutcome::Accepted) => tracing::info!(station = %act.id, "safe default profile (0 A) in force"),
            other => {
                tracing::warn!(station = %act.id, outcome = ?other, "the safe default profile was not accepted");
                act.log(LogLevel::Warn, format!("the 0 A default profile was not accepted ({other:?})"));
            }
        });
        ctx.spawn(sent);
    }

    pub(super) fn limit_answered(
        &mut self,
        msg: &ApplyLimit,
        ticket: Ticket,
        outcome: &Result<LimitOutcome, CallFailure>,
    ) {
        let answer = match outcome {
            Ok(LimitOutcome::Accepted) => Answer::Accepted,
            Ok(LimitOutcome::Rejected) | Err(CallFailure::Refused(_)) => Answer::Refused,
            Err(CallFailure::NotConnected) => Answer::NotSent,
            // It may have reached the station and be in force.
            Err(
                CallFailure::Timeout(_)
                | CallFailure::ConnectionLost
                | CallFailure::BadAnswer(_)
                | CallFailure::Stopped,
            ) => Answer::Unknown,
        };
        let accepted = self.limits.answered(ticket, answer);
        if let (Some(a), LimitPurpose::Transaction(_)) = (accepted, msg.purpose) {
            if a.is_change() && msg.connector > 0 {
                let c = self.connector(msg.connector);
                c.changed_at = Some(Utc::now());
                c.lowest_limit_since_draw = Some(
                    c.lowest_limit_since_draw
                        .map_or(a.value, |l| l.min(a.value)),
                );
            }
        }
        if let Ok(LimitOutcome::Rejected) = outcome {
            self.log(
                LogLevel::Warn,
                format!(
                    "connector {} rejected a limit of {}",
                    msg.connector,
                    msg.limit.floor_tenth()
                ),
            );
        }
    }
}

/// The TxDefaultProfile every station gets at boot, before anything else: 0 A. A vehicle
/// that starts draws nothing until its TxProfile is sent, after the decreases that make
/// room for it, so the sum of limits in force stays within every budget at every instant
/// (and a vehicle starting while the controller is away waits instead of overloading).
pub const SAFE_DEFAULT: Amps = Amps::ZERO;

/// Profile ids are fixed per connector and purpose, so each new setpoint replaces the last.
pub(super) const DEFAULT_PROFILE_ID_BASE: i32 = 1000;
pub(super) const TX_PROFILE_ID_BASE: i32 = 2000;

/// Our profile id for a connector: one per purpose and connector, the purposes' ranges
/// apart (connectors are at most 10 by configuration; the clamp keeps any id in range).
pub(super) fn profile_id(base: i32, connector: u32) -> i32 {
    base + i32::try_from(connector.min(999)).expect("999 fits i32")
}

/// One stack level per purpose (SPEC: the limit in force is then well defined).
pub(super) const DEFAULT_STACK_LEVEL: u32 = 0;
pub(super) const TX_STACK_LEVEL: u32 = 1;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn profile_ids_of_the_two_purposes_never_meet() {
        assert_eq!(profile_id(TX_PROFILE_ID_BASE, 1), 2001);
        assert!(profile_id(DEFAULT_PROFILE_ID_BASE, u32::MAX) < TX_PROFILE_ID_BASE);
        assert!(profile_id(TX_PROFILE_ID_BASE, u32::MAX) > 0);
    }
}
