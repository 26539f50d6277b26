//! OCPP-J framing: the JSON arrays that carry CALL, CALLRESULT and CALLERROR.
//! Payloads stay raw here (borrowed from the text) and are parsed once, into their
//! typed message, by [`super::dispatch`].
//!
//! How a bad frame is answered (OCPP-J 1.6 §4 names the codes but not every case):
//!
//! | problem | code | why |
//! |---|---|---|
//! | not JSON | FormationViolation | "syntactically incorrect" |
//! | not an array, an element of the wrong JSON type, too many elements, payload or errorDetails not an object, uniqueId empty or over 36 characters | FormationViolation | "not conform the PDU structure" |
//! | too few elements | ProtocolError | "incomplete" |
//! | message type id other than 2, 3, 4 | ProtocolError | the RPC framework itself was not followed; 1.6 says to ignore such a payload, and we still answer so the sender sees why |
//!
//! The answer carries the frame's uniqueId when it could be read, else `"-1"`.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, Deserializer as _, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;

use super::dispatch::{Payload, Request};
use super::error::{CallError, ErrorCode};
use super::strict::WireEnum;

/// The longest uniqueId OCPP-J allows.
pub const MAX_UNIQUE_ID_CHARS: usize = 36;
/// The largest WebSocket message we accept (the session closes with 1009 above it).
pub const MAX_FRAME_BYTES: usize = 1 << 20;
/// The uniqueId of an answer to a frame whose own id could not be read.
pub const UNKNOWN_UNIQUE_ID: &str = "-1";

/// The message type id, the first element of every frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum MessageType {
    Call = 2,
    CallResult = 3,
    CallError = 4,
}

impl MessageType {
    fn from_id(id: u64) -> Option<MessageType> {
        match id {
            2 => Some(MessageType::Call),
            3 => Some(MessageType::CallResult),
            4 => Some(MessageType::CallError),
            _ => None,
        }
    }

    /// Elements of a frame of this type.
    fn len(self) -> usize {
        match self {
            MessageType::Call => 4,
            MessageType::CallResult => 3,
            MessageType::CallError => 5,
        }
    }
}

/// One OCPP-J frame, borrowing from the text it was parsed from.
#[derive(Clone, Debug)]
pub enum Frame<'a> {
    /// `[2, uniqueId, action, payload]`: parse the payload with
    /// `StationRequest::parse(&action, payload)` (or `CentralCall::parse` on the station side).
    Call {
        unique_id: Cow<'a, str>,
        action: Cow<'a, str>,
        payload: &'a RawValue,
    },
    /// `[3, uniqueId, payload]`: the answer to the pending call with this id; parse the
    /// payload with `parse_payload::<R::Response>` or `CentralResponse::parse`.
    CallResult {
        unique_id: Cow<'a, str>,
        payload: &'a RawValue,
    },
    /// `[4, uniqueId, errorCode, errorDescription, errorDetails]`: the pending call
    /// with this id failed.
    CallError {
        unique_id: Cow<'a, str>,
        error: CallError,
        details: &'a RawValue,
    },
}

impl<'a> Frame<'a> {
    /// Parses one frame. Only the frame is checked here; payloads are checked when
    /// parsed into their message.
    pub fn parse(text: &'a str) -> Result<Frame<'a>, FrameError> {
        let mut header = Header::default();
        let mut deserializer = serde_json::Deserializer::from_str(text);
        let parsed = deserializer.deserialize_any(FrameVisitor {
            header: &mut header,
        });
        let fault = match parsed {
            Ok(Ok(frame)) => match deserializer.end() {
                Ok(()) => return Ok(frame),
                Err(_) => Fault::formation("text follows the frame's closing bracket"),
            },
            Ok(Err(fault)) => fault,
            Err(error) if error.classify() == serde_json::error::Category::Data => {
                Fault::formation("a frame must be a JSON array")
            }
            Err(error) => Fault::formation(format!("not valid JSON: {error}")),
        };
        Err(FrameError {
            unique_id: header.unique_id.map(Cow::into_owned),
            message_type: header.message_type,
            error: CallError::new(fault.code, fault.description),
        })
    }

    pub fn unique_id(&self) -> &str {
        match self {
            Frame::Call { unique_id, .. }
            | Frame::CallResult { unique_id, .. }
            | Frame::CallError { unique_id, .. } => unique_id,
        }
    }

    pub fn message_type(&self) -> MessageType {
        match self {
            Frame::Call { .. } => MessageType::Call,
            Frame::CallResult { .. } => MessageType::CallResult,
            Frame::CallError { .. } => MessageType::CallError,
        }
    }

    /// The frame as text again (e.g. to forward it).
    pub fn to_text(&self) -> String {
        let mut out = String::with_capacity(64);
        match self {
            Frame::Call {
                unique_id,
                action,
                payload,
            } => {
                out.push_str("[2,");
                push_json_str(&mut out, unique_id);
                out.push(',');
                push_json_str(&mut out, action);
                out.push(',');
                out.push_str(payload.get());
            }
            Frame::CallResult { unique_id, payload } => {
                out.push_str("[3,");
                push_json_str(&mut out, unique_id);
                out.push(',');
                out.push_str(payload.get());
            }
            Frame::CallError {
                unique_id,
                error,
                details,
            } => {
                push_call_error_head(&mut out, unique_id, error);
                out.push_str(details.get());
            }
        }
        out.push(']');
        out
    }
}

/// A frame that could not be parsed, with what is needed to answer it.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad OCPP-J frame: {error}")]
pub struct FrameError {
    /// The frame's uniqueId, when it could be read (a string of 1 to 36 characters).
    pub unique_id: Option<String>,
    /// The message type, when it could be read.
    pub message_type: Option<MessageType>,
    pub error: CallError,
}

impl FrameError {
    /// The uniqueId to answer with: the frame's, or `"-1"`.
    pub fn answer_id(&self) -> &str {
        self.unique_id.as_deref().unwrap_or(UNKNOWN_UNIQUE_ID)
    }

    /// The CALLERROR text to send back, or `None` for a broken CALLRESULT or CALLERROR:
    /// an answer is never answered (it could loop). For those, fail the pending call
    /// with [`FrameError::unique_id`] instead.
    pub fn answer(&self) -> Option<String> {
        match self.message_type {
            Some(MessageType::CallResult | MessageType::CallError) => None,
            Some(MessageType::Call) | None => {
                Some(encode_call_error(self.answer_id(), &self.error))
            }
        }
    }
}

/// `[2, uniqueId, action, payload]` for a request we send.
pub fn encode_call<R: Request>(unique_id: &str, request: &R) -> String {
    let mut out = Vec::with_capacity(256);
    out.extend_from_slice(b"[2,");
    write_json(&mut out, unique_id);
    out.push(b',');
    write_json(&mut out, R::ACTION);
    out.push(b',');
    write_json(&mut out, request);
    out.push(b']');
    into_text(out)
}

/// `[3, uniqueId, payload]` answering a call.
pub fn encode_call_result<P: Payload>(unique_id: &str, response: &P) -> String {
    let mut out = Vec::with_capacity(128);
    out.extend_from_slice(b"[3,");
    write_json(&mut out, unique_id);
    out.push(b',');
    write_json(&mut out, response);
    out.push(b']');
    into_text(out)
}

/// `[4, uniqueId, errorCode, errorDescription, {}]` answering a call.
pub fn encode_call_error(unique_id: &str, error: &CallError) -> String {
    let mut out = String::with_capacity(64 + error.description.len());
    push_call_error_head(&mut out, unique_id, error);
    out.push_str("{}]");
    out
}

fn push_call_error_head(out: &mut String, unique_id: &str, error: &CallError) {
    out.push_str("[4,");
    push_json_str(out, unique_id);
    out.push_str(",\"");
    out.push_str(error.code.as_str());
    out.push_str("\",");
    push_json_str(out, &error.description);
    out.push(',');
}

fn push_json_str(out: &mut String, text: &str) {
    let mut bytes = std::mem::take(out).into_bytes();
    write_json(&mut bytes, text);
    *out = into_text(bytes);
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect(
        "OCPP payloads serialise infallibly: strings, numbers and string-keyed objects into a Vec",
    );
}

fn into_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("serde_json writes UTF-8 and the rest is ASCII")
}

/// What the visitor learnt before it failed, to answer with.
#[derive(Default)]
struct Header<'a> {
    message_type: Option<MessageType>,
    unique_id: Option<Cow<'a, str>>,
}

struct Fault {
    code: ErrorCode,
    description: String,
}

impl Fault {
    fn formation(description: impl Into<String>) -> Fault {
        Fault {
            code: ErrorCode::FormationViolation,
            description: description.into(),
        }
    }

    fn protocol(description: impl Into<String>) -> Fault {
        Fault {
            code: ErrorCode::ProtocolError,
            description: description.into(),
        }
    }
}

/// One array element read without committing to its type, so that a wrong type is a
/// [`Fault`] (answered with the uniqueId) rather than a serde error.
pub(crate) enum Element<'a> {
    Integer(u64),
    Text(Cow<'a, str>),
    Other(&'static str),
}

impl<'de> Deserialize<'de> for Element<'de> {
    fn deserialize<D: de::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(ElementVisitor)
    }
}

struct ElementVisitor;

impl<'de> Visitor<'de> for ElementVisitor {
    type Value = Element<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Element<'de>, E> {
        Ok(Element::Other("a boolean"))
    }

    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Element<'de>, E> {
        Ok(Element::Other("a negative number"))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<Element<'de>, E> {
        Ok(Element::Integer(value))
    }

    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Element<'de>, E> {
        Ok(Element::Other("a fractional number"))
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Element<'de>, E> {
        Ok(Element::Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Element<'de>, E> {
        Ok(Element::Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Element<'de>, E> {
        Ok(Element::Text(Cow::Owned(text)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Element<'de>, E> {
        Ok(Element::Other("null"))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Element<'de>, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Element::Other("an array"))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Element<'de>, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(Element::Other("an object"))
    }
}

impl Element<'_> {
    fn kind(&self) -> &'static str {
        match self {
            Element::Integer(_) => "a number",
            Element::Text(_) => "a string",
            Element::Other(kind) => kind,
        }
    }
}

struct FrameVisitor<'h, 'a> {
    header: &'h mut Header<'a>,
}

impl<'de> Visitor<'de> for FrameVisitor<'_, 'de> {
    type Value = Result<Frame<'de>, Fault>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an OCPP-J frame (a JSON array)")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        let result = read_frame(&mut seq, self.header)?;
        // The rest must be consumed for serde_json to accept the array; count it.
        let mut extra = 0usize;
        while seq.next_element::<IgnoredAny>()?.is_some() {
            extra += 1;
        }
        match result {
            Ok(frame) if extra > 0 => Ok(Err(Fault::formation(format!(
                "a {} frame has {} elements, this one has {}",
                type_name(frame.message_type()),
                frame.message_type().len(),
                frame.message_type().len() + extra
            )))),
            other => Ok(other),
        }
    }
}

fn type_name(message_type: MessageType) -> &'static str {
    match message_type {
        MessageType::Call => "CALL",
        MessageType::CallResult => "CALLRESULT",
        MessageType::CallError => "CALLERROR",
    }
}

/// Reads the elements of a frame in order. The outer `Result` is a JSON syntax error;
/// the inner one a frame that is JSON but not OCPP-J.
fn read_frame<'de, A: SeqAccess<'de>>(
    seq: &mut A,
    header: &mut Header<'de>,
) -> Result<Result<Frame<'de>, Fault>, A::Error> {
    let message_type = match seq.next_element::<Element>()? {
        None => {
            return Ok(Err(Fault::protocol(
                "empty array where a frame was expected",
            )))
        }
        Some(Element::Integer(id)) => MessageType::from_id(id).ok_or(id),
        Some(other) => {
            return Ok(Err(Fault::formation(format!(
                "the message type id must be a number, not {}",
                other.kind()
            ))));
        }
    };
    header.message_type = message_type.ok();
    let unique_id = match seq.next_element::<Element>()? {
        None => return Ok(Err(Fault::protocol("the frame ends before its uniqueId"))),
        Some(Element::Text(id)) => {
            if !is_unique_id(&id) {
                return Ok(Err(Fault::formation(format!(
                    "the uniqueId must have 1 to {MAX_UNIQUE_ID_CHARS} characters, it has {}",
                    id.chars().count()
                ))));
            }
            header.unique_id = Some(id.clone());
            id
        }
        Some(other) => {
            return Ok(Err(Fault::formation(format!(
                "the uniqueId must be a string, not {}",
                other.kind()
            ))))
        }
    };
    let message_type = match message_type {
        Ok(message_type) => message_type,
        Err(id) => {
            return Ok(Err(Fault::protocol(format!(
                "unknown message type id {id} (2 = CALL, 3 = CALLRESULT, 4 = CALLERROR)"
            ))));
        }
    };
    let ends_early = |what: &str| {
        Ok(Err(Fault::protocol(format!(
            "the {} frame ends before its {what}",
            type_name(message_type)
        ))))
    };
    match message_type {
        MessageType::Call => {
            let action = match seq.next_element::<Element>()? {
                None => return ends_early("action"),
                Some(Element::Text(action)) => action,
                Some(other) => {
                    return Ok(Err(Fault::formation(format!(
                        "the action must be a string, not {}",
                        other.kind()
                    ))));
                }
            };
            let Some(payload) = seq.next_element::<&RawValue>()? else {
                return ends_early("payload");
            };
            if !is_object(payload) {
                return Ok(Err(Fault::formation("the payload must be a JSON object")));
            }
            Ok(Ok(Frame::Call {
                unique_id,
                action,
                payload,
            }))
        }
        MessageType::CallResult => {
            let Some(payload) = seq.next_element::<&RawValue>()? else {
                return ends_early("payload");
            };
            if !is_object(payload) {
                return Ok(Err(Fault::formation("the payload must be a JSON object")));
            }
            Ok(Ok(Frame::CallResult { unique_id, payload }))
        }
        MessageType::CallError => {
            let code = match seq.next_element::<Element>()? {
                None => return ends_early("errorCode"),
                Some(Element::Text(code)) => match ErrorCode::from_wire(&code) {
                    Some(code) => code,
                    None => {
                        return Ok(Err(Fault::formation(format!("unknown errorCode `{code}`"))))
                    }
                },
                Some(other) => {
                    return Ok(Err(Fault::formation(format!(
                        "the errorCode must be a string, not {}",
                        other.kind()
                    ))));
                }
            };
            let description = match seq.next_element::<Element>()? {
                None => return ends_early("errorDescription"),
                Some(Element::Text(description)) => description,
                Some(other) => {
                    return Ok(Err(Fault::formation(format!(
                        "the errorDescription must be a string, not {}",
                        other.kind()
                    ))));
                }
            };
            let Some(details) = seq.next_element::<&RawValue>()? else {
                return ends_early("errorDetails");
            };
            if !is_object(details) {
                return Ok(Err(Fault::formation(
                    "the errorDetails must be a JSON object",
                )));
            }
            let error = CallError::new(code, description);
            Ok(Ok(Frame::CallError {
                unique_id,
                error,
                details,
            }))
        }
    }
}

/// A uniqueId has 1 to 36 characters.
pub(crate) fn is_unique_id(id: &str) -> bool {
    !id.is_empty() && (id.len() <= MAX_UNIQUE_ID_CHARS || id.chars().count() <= MAX_UNIQUE_ID_CHARS)
}

/// serde_json's raw values start at the value itself, without leading whitespace.
fn is_object(value: &RawValue) -> bool {
    value.get().starts_with('{')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fault(text: &str) -> FrameError {
        match Frame::parse(text) {
            Ok(frame) => panic!("{text} parsed as {frame:?}"),
            Err(error) => error,
        }
    }

    #[test]
    fn call_keeps_its_payload_raw_and_borrowed() {
        let text = r#"[2, "abc-1", "Heartbeat", {"x": [1, 2]}]"#;
        let Ok(Frame::Call {
            unique_id,
            action,
            payload,
        }) = Frame::parse(text)
        else {
            panic!("a valid call");
        };
        assert!(matches!(unique_id, Cow::Borrowed("abc-1")));
        assert_eq!(action, "Heartbeat");
        assert_eq!(payload.get(), r#"{"x": [1, 2]}"#);
    }

    #[test]
    fn call_result_and_call_error_are_read() {
        let Ok(Frame::CallResult { unique_id, payload }) =
            Frame::parse(r#"[3,"7",{"status":"Accepted"}]"#)
        else {
            panic!("a valid result");
        };
        assert_eq!(
            (unique_id.as_ref(), payload.get()),
            ("7", r#"{"status":"Accepted"}"#)
        );
        let text = r#"[4,"8","OccurrenceConstraintViolation","missing",{"a":1}]"#;
        let Ok(Frame::CallError {
            unique_id,
            error,
            details,
        }) = Frame::parse(text)
        else {
            panic!("a valid error");
        };
        assert_eq!(unique_id, "8");
        assert_eq!(
            error,
            CallError::new(ErrorCode::OccurenceConstraintViolation, "missing")
        );
        assert_eq!(details.get(), r#"{"a":1}"#);
    }

    #[test]
    fn frames_survive_a_round_trip_through_text() {
        for text in [
            r#"[2,"a\"b","Heartbeat",{}]"#,
            r#"[3,"x",{"currentTime":"2025-01-01T00:00:00Z"}]"#,
            r#"[4,"y","GenericError","bad \u00e9",{}]"#,
        ] {
            let frame = Frame::parse(text).expect("valid");
            let again = frame.to_text();
            assert_eq!(Frame::parse(&again).expect("valid again").to_text(), again);
        }
    }

    #[test]
    fn non_json_is_a_formation_violation_answered_with_minus_one() {
        let error = fault("[2, \"abc\", \"Heartbeat\", {");
        assert_eq!(error.error.code, ErrorCode::FormationViolation);
        assert_eq!(error.unique_id.as_deref(), Some("abc"));
        let error = fault("hello");
        assert_eq!(
            (error.error.code, error.answer_id()),
            (ErrorCode::FormationViolation, "-1")
        );
    }

    #[test]
    fn json_that_is_not_an_array_is_a_formation_violation() {
        for text in [r#"{"a":1}"#, "42", "\"text\"", "null"] {
            let error = fault(text);
            assert_eq!(
                (error.error.code, error.answer_id()),
                (ErrorCode::FormationViolation, "-1"),
                "{text}"
            );
        }
    }

    #[test]
    fn too_few_elements_are_a_protocol_error_with_the_unique_id() {
        for text in [
            "[]",
            "[2]",
            r#"[2,"id"]"#,
            r#"[2,"id","Heartbeat"]"#,
            r#"[3,"id"]"#,
            r#"[4,"id","GenericError",""]"#,
        ] {
            let error = fault(text);
            assert_eq!(error.error.code, ErrorCode::ProtocolError, "{text}");
        }
        assert_eq!(fault(r#"[2,"id","Heartbeat"]"#).answer_id(), "id");
    }

    #[test]
    fn too_many_elements_are_a_formation_violation_with_the_unique_id() {
        let error = fault(r#"[2,"id","Heartbeat",{},{}]"#);
        assert_eq!(
            (error.error.code, error.answer_id()),
            (ErrorCode::FormationViolation, "id")
        );
    }

    #[test]
    fn unknown_message_type_is_a_protocol_error_with_the_unique_id() {
        let error = fault(r#"[5,"id","Heartbeat",{}]"#);
        assert_eq!(
            (error.error.code, error.answer_id()),
            (ErrorCode::ProtocolError, "id")
        );
        assert!(error.answer().is_some());
    }

    #[test]
    fn elements_of_the_wrong_type_are_formation_violations() {
        for (text, id) in [
            (r#"["2","id","Heartbeat",{}]"#, "-1"),
            (r#"[2.5,"id","Heartbeat",{}]"#, "-1"),
            (r#"[2,17,"Heartbeat",{}]"#, "-1"),
            (r#"[2,"id",17,{}]"#, "id"),
            (r#"[2,"id","Heartbeat",[]]"#, "id"),
            (r#"[2,"id","Heartbeat","{}"]"#, "id"),
            (r#"[3,"id",null]"#, "id"),
            (r#"[4,"id",5,"",{}]"#, "id"),
            (r#"[4,"id","NoSuchCode","",{}]"#, "id"),
            (r#"[4,"id","GenericError",null,{}]"#, "id"),
            (r#"[4,"id","GenericError","",[]]"#, "id"),
        ] {
            let error = fault(text);
            assert_eq!(
                (error.error.code, error.answer_id()),
                (ErrorCode::FormationViolation, id),
                "{text}"
            );
        }
    }

    #[test]
    fn unique_id_longer_than_36_characters_is_refused_and_not_echoed() {
        let text = format!(r#"[2,"{}","Heartbeat",{{}}]"#, "x".repeat(37));
        let error = fault(&text);
        assert_eq!(
            (error.error.code, error.answer_id()),
            (ErrorCode::FormationViolation, "-1")
        );
        let text = format!(r#"[2,"{}","Heartbeat",{{}}]"#, "x".repeat(36));
        assert!(Frame::parse(&text).is_ok());
        assert_eq!(
            fault(r#"[2,"","Heartbeat",{}]"#).error.code,
            ErrorCode::FormationViolation
        );
    }

    #[test]
    fn trailing_text_after_the_frame_is_refused_with_the_unique_id() {
        let error = fault(r#"[2,"id","Heartbeat",{}] x"#);
        assert_eq!(
            (error.error.code, error.answer_id()),
            (ErrorCode::FormationViolation, "id")
        );
    }

    #[test]
    fn a_broken_answer_is_never_answered() {
        assert_eq!(fault(r#"[3,"id",[]]"#).answer(), None);
        assert_eq!(fault(r#"[4,"id","Nope","",{}]"#).answer(), None);
        assert_eq!(
            fault(r#"[4,"id","Nope","",{}]"#).unique_id.as_deref(),
            Some("id")
        );
    }

    #[test]
    fn call_error_answer_is_a_five_element_frame() {
        let error = CallError::new(ErrorCode::NotImplemented, "unknown action `Foo`");
        assert_eq!(
            encode_call_error("42", &error),
            r#"[4,"42","NotImplemented","unknown action `Foo`",{}]"#
        );
    }
}
