//! Our CALLs to the station: queued, sent one at a time, correlated by uniqueId and
//! failed after the call timeout.

use super::*;

pub(super) type Responder = oneshot::Sender<Result<String, CallFailure>>;

pub(super) struct Outgoing {
    unique_id: String,
    action: &'static str,
    text: String,
    responder: Responder,
}

pub(super) struct InFlight {
    unique_id: String,
    action: &'static str,
    responder: Responder,
    timeout: SpawnHandle,
}

impl StationActor {
    // --- outgoing calls -------------------------------------------------------------

    pub(super) fn enqueue<R: Request>(
        &mut self,
        request: &R,
        ctx: &mut Context<Self>,
    ) -> oneshot::Receiver<Result<String, CallFailure>> {
        let (responder, rx) = oneshot::channel();
        if self.session.is_none() {
            let _ = responder.send(Err(CallFailure::NotConnected));
            return rx;
        }
        let unique_id = self.next_unique_id.to_string();
        self.next_unique_id += 1;
        let text = encode_call(&unique_id, request);
        // Charging profiles overtake the other queued CALLs (never an earlier profile): at
        // boot the safe default must not wait behind the configuration calls while a
        // vehicle that was plugged in starts on no limit at all.
        let at = if is_profile_call(R::ACTION) {
            self.outbox
                .iter()
                .rposition(|o| is_profile_call(o.action))
                .map_or(0, |i| i + 1)
        } else {
            self.outbox.len()
        };
        self.outbox.insert(
            at,
            Outgoing {
                unique_id,
                action: R::ACTION,
                text,
                responder,
            },
        );
        self.pump(ctx);
        rx
    }

    /// Sends the next queued CALL if none is in flight.
    pub(super) fn pump(&mut self, ctx: &mut Context<Self>) {
        if self.in_flight.is_some() {
            return;
        }
        while let Some(next) = self.outbox.pop_front() {
            if next.responder.is_closed() {
                continue; // the asker gave up
            }
            if self.session.is_none() {
                let _ = next.responder.send(Err(CallFailure::NotConnected));
                continue;
            }
            let wait = self.call_timeout();
            let unique_id = next.unique_id.clone();
            let timeout = ctx.run_later(wait, move |act, ctx| act.time_out(&unique_id, wait, ctx));
            self.send_text(next.text);
            self.in_flight = Some(InFlight {
                unique_id: next.unique_id,
                action: next.action,
                responder: next.responder,
                timeout,
            });
            return;
        }
    }

    pub(super) fn time_out(&mut self, unique_id: &str, wait: Duration, ctx: &mut Context<Self>) {
        if self
            .in_flight
            .as_ref()
            .is_some_and(|f| f.unique_id == unique_id)
        {
            if let Some(f) = self.in_flight.take() {
                tracing::warn!(station = %self.id, action = f.action, unique_id, "no answer within {wait:?}");
                let _ = f.responder.send(Err(CallFailure::Timeout(wait)));
            }
            self.pump(ctx);
        }
    }

    pub(super) fn resolve(
        &mut self,
        unique_id: &str,
        outcome: Result<String, CallFailure>,
        ctx: &mut Context<Self>,
    ) {
        match self.in_flight.take() {
            Some(f) if f.unique_id == unique_id => {
                ctx.cancel_future(f.timeout);
                let _ = f.responder.send(outcome);
                self.pump(ctx);
            }
            other => {
                self.in_flight = other;
                tracing::warn!(station = %self.id, unique_id, "answer to no pending call: ignored");
            }
        }
    }

    pub(super) fn fail_all_calls(&mut self, ctx: &mut Context<Self>) {
        if let Some(f) = self.in_flight.take() {
            ctx.cancel_future(f.timeout);
            // It was written: the station may have acted on it.
            let _ = f.responder.send(Err(CallFailure::ConnectionLost));
        }
        for o in self.outbox.drain(..) {
            let _ = o.responder.send(Err(CallFailure::NotConnected));
        }
    }
}

/// Whether a CALL sets or clears charging profiles (these keep their order among
/// themselves).
pub(super) fn is_profile_call(action: &str) -> bool {
    action == SetChargingProfileRequest::ACTION || action == ClearChargingProfileRequest::ACTION
}

/// Waits for the answer to a queued CALL and parses it into the request's response type.
pub(super) async fn answer<R: Request>(
    rx: oneshot::Receiver<Result<String, CallFailure>>,
) -> Result<R::Response, CallFailure> {
    let text = rx.await.map_err(|_| CallFailure::Stopped)??;
    let raw: Box<serde_json::value::RawValue> = serde_json::from_str(&text).map_err(|e| {
        CallFailure::BadAnswer(CallError::new(ErrorCode::FormationViolation, e.to_string()))
    })?;
    parse_payload::<R::Response>(&raw).map_err(CallFailure::BadAnswer)
}
