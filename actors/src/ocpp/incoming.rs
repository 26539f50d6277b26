//! One frame as a session receives it, with a CALL's payload already in its type.
//!
//! [`Frame::parse`] then [`RequestSet::parse`] read a call's payload twice: once to
//! find its end (as a raw value), once into its type. Calls are most of the traffic
//! (MeterValues every few seconds from every station), so [`Incoming::parse`] first
//! tries to read a well-formed call in one pass; anything else (answers, bad frames,
//! bad payloads) goes the two-step way, which names the fault. Both ways give the same
//! result; only the cost differs.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use serde::de::{self, DeserializeSeed, Deserializer as _, IgnoredAny, SeqAccess, Visitor};
use serde_json::value::RawValue;

use super::dispatch::RequestSet;
use super::error::CallError;
use super::frame::{is_unique_id, Element, Frame, FrameError};

/// A frame received by one side of the link: `R` is [`super::StationRequest`] on the
/// central system, [`super::CentralCall`] on a station.
#[derive(Clone, Debug)]
pub enum Incoming<'a, R> {
    /// A call: answer `Ok` with a CALLRESULT, `Err` with this CALLERROR, both under
    /// `unique_id`.
    Call {
        unique_id: Cow<'a, str>,
        request: Result<R, CallError>,
    },
    /// The answer to our pending call `unique_id`; parse it with the pending call's type.
    CallResult {
        unique_id: Cow<'a, str>,
        payload: &'a RawValue,
    },
    /// Our pending call `unique_id` failed.
    CallError {
        unique_id: Cow<'a, str>,
        error: CallError,
        details: &'a RawValue,
    },
}

impl<'a, R: RequestSet> Incoming<'a, R> {
    /// Reads one frame; a bad frame is a [`FrameError`] (see [`FrameError::answer`]).
    pub fn parse(text: &'a str) -> Result<Incoming<'a, R>, FrameError> {
        if let Some((unique_id, request)) = one_pass::<R>(text) {
            return Ok(Incoming::Call {
                unique_id,
                request: Ok(request),
            });
        }
        Ok(match Frame::parse(text)? {
            Frame::Call {
                unique_id,
                action,
                payload,
            } => Incoming::Call {
                unique_id,
                request: R::parse(&action, payload),
            },
            Frame::CallResult { unique_id, payload } => Incoming::CallResult { unique_id, payload },
            Frame::CallError {
                unique_id,
                error,
                details,
            } => Incoming::CallError {
                unique_id,
                error,
                details,
            },
        })
    }
}

/// A well-formed call with a valid payload, read in one pass; `None` for anything else.
fn one_pass<R: RequestSet>(text: &str) -> Option<(Cow<'_, str>, R)> {
    let mut deserializer = serde_json::Deserializer::from_str(text);
    let call = deserializer
        .deserialize_seq(CallVisitor(PhantomData))
        .ok()?;
    deserializer.end().ok()?;
    Some(call)
}

struct CallVisitor<R>(PhantomData<R>);

impl<'de, R: RequestSet> Visitor<'de> for CallVisitor<R> {
    type Value = (Cow<'de, str>, R);

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a CALL frame")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        // Any departure from the common shape ends the fast path; the message is only
        // for the compiler, as the two-step path then explains.
        let other = || de::Error::custom("not a well-formed call");
        let Some(Element::Integer(2)) = seq.next_element::<Element>()? else {
            return Err(other());
        };
        let Some(Element::Text(unique_id)) = seq.next_element::<Element>()? else {
            return Err(other());
        };
        if !is_unique_id(&unique_id) {
            return Err(other());
        }
        let Some(Element::Text(action)) = seq.next_element::<Element>()? else {
            return Err(other());
        };
        let request = seq
            .next_element_seed(PayloadSeed::<R> {
                action: &action,
                marker: PhantomData,
            })?
            .ok_or_else(other)?;
        if seq.next_element::<IgnoredAny>()?.is_some() {
            return Err(other());
        }
        Ok((unique_id, request))
    }
}

struct PayloadSeed<'s, R> {
    action: &'s str,
    marker: PhantomData<R>,
}

impl<'de, R: RequestSet> DeserializeSeed<'de> for PayloadSeed<'_, R> {
    type Value = R;

    fn deserialize<D: de::Deserializer<'de>>(self, deserializer: D) -> Result<R, D::Error> {
        R::deserialize_call(self.action, deserializer)
            .unwrap_or_else(|| Err(de::Error::custom("not received here")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ocpp::{CentralCall, ErrorCode, StationRequest};

    fn same_as_two_steps(text: &str) {
        let one = Incoming::<StationRequest>::parse(text);
        let two = Frame::parse(text).map(|frame| match frame {
            Frame::Call {
                unique_id,
                action,
                payload,
            } => (
                unique_id.into_owned(),
                Some(StationRequest::parse(&action, payload)),
            ),
            other => (other.unique_id().to_owned(), None),
        });
        match (one, two) {
            (Ok(Incoming::Call { unique_id, request }), Ok((id, Some(expected)))) => {
                assert_eq!(
                    (unique_id.as_ref(), request),
                    (id.as_str(), expected),
                    "{text}"
                );
            }
            (
                Ok(Incoming::CallResult { unique_id, .. } | Incoming::CallError { unique_id, .. }),
                Ok((id, None)),
            ) => {
                assert_eq!(unique_id, id, "{text}");
            }
            (Err(one), Err(two)) => assert_eq!(one, two, "{text}"),
            (one, two) => panic!("{text}: one pass {one:?}, two steps {two:?}"),
        }
    }

    #[test]
    fn one_pass_agrees_with_two_steps_on_good_and_bad_frames() {
        for text in [
            r#"[2,"1","Heartbeat",{}]"#,
            r#"[2,"1","Heartbeat",{}] "#,
            r#" [ 2 , "1" , "Heartbeat" , { } ] "#,
            r#"[2,"\u0031","Heart\u0062eat",{}]"#,
            r#"[2,"1","Heartbeat",{"x":1}]"#,
            r#"[2,"1","Heartbeat",[]]"#,
            r#"[2,"1","Heartbeat",{},1]"#,
            r#"[2,"1","Heartbeat",{}]x"#,
            r#"[2,"1","Heartbeat"]"#,
            r#"[2,"","Heartbeat",{}]"#,
            r#"[2,"1","Reset",{"type":"Hard"}]"#,
            r#"[2,"1","Nope",{}]"#,
            r#"[2.0,"1","Heartbeat",{}]"#,
            r#"[3,"1",{}]"#,
            r#"[4,"1","GenericError","",{}]"#,
            r#"[5,"1",{}]"#,
            r#"{"a":1}"#,
            "",
            r#"[2,"1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"Charging"}]"#,
            r#"[2,"1","StatusNotification",{"connectorId":1,"errorCode":"NoError","status":"charging"}]"#,
            r#"[2,"1","StatusNotification",{"connectorId":1,"errorCode":"NoError"}]"#,
        ] {
            same_as_two_steps(text);
        }
    }

    #[test]
    fn a_station_receives_central_calls_and_refuses_station_ones() {
        let Ok(Incoming::Call { request, .. }) =
            Incoming::<CentralCall>::parse(r#"[2,"9","ClearCache",{}]"#)
        else {
            panic!("a call");
        };
        assert!(matches!(request, Ok(CentralCall::ClearCache(_))));
        let Ok(Incoming::Call { request, .. }) =
            Incoming::<CentralCall>::parse(r#"[2,"9","Heartbeat",{}]"#)
        else {
            panic!("a call");
        };
        assert_eq!(
            request.map_err(|e| e.code).err(),
            Some(ErrorCode::NotSupported)
        );
    }
}
