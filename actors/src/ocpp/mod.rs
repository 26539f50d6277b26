//! OCPP 1.6J messages (pure): frames, typed messages of every action we send or
//! receive, and their checking against the official JSON schemas' rules.
//!
//! * [`frame`] reads and writes the OCPP-J arrays; payloads stay raw there.
//! * [`incoming`] reads a frame and, for a call, its payload in one pass: what a
//!   session uses.
//! * [`dispatch`] is the one place mapping action names to types: [`StationRequest`]
//!   (what a station may send us), [`CentralRequest`] (what we may send a station),
//!   and their answers.
//! * [`error`] is the one place turning a parse failure into a CALLERROR code.
//! * One module per message family holds the plain message structs.
//!
//! A message that deserialises is known good: lengths, enum values, zones of
//! date-times, required fields and extra fields are all checked by the types.
//!
//! Receiving a frame, in the WebSocket session:
//! ```
//! use ampwarden_actors::ocpp::{encode_call_error, encode_call_result, HeartbeatResponse};
//! use ampwarden_actors::ocpp::{Incoming, StationRequest};
//!
//! let text = r#"[2,"19223201","Heartbeat",{}]"#;
//! let answer = match Incoming::<StationRequest>::parse(text) {
//!     Ok(Incoming::Call { unique_id, request: Ok(StationRequest::Heartbeat(_)) }) => Some(
//!         encode_call_result(&unique_id, &HeartbeatResponse { current_time: chrono::Utc::now() }),
//!     ),
//!     Ok(Incoming::Call { unique_id, request: Err(error) }) => Some(encode_call_error(&unique_id, &error)),
//!     // A call handled elsewhere, or the answer to one of our calls.
//!     Ok(_) => None,
//!     Err(bad_frame) => bad_frame.answer(),
//! };
//! assert!(answer.is_some_and(|a| a.starts_with(r#"[3,"19223201",{"currentTime":""#)));
//! ```

#[macro_use]
mod strict;

pub mod core;
pub mod dispatch;
pub mod error;
pub mod firmware;
pub mod frame;
pub mod incoming;
pub mod local_auth;
pub mod meter_values;
pub mod remote;
pub mod security;
pub mod smart_charging;
pub mod types;

pub use self::core::*;
pub use dispatch::{
    parse_payload, CentralCall, CentralRequest, CentralResponse, ChargePointRequest, Payload,
    Request, RequestSet, StationRequest, StationResponse, OCPP16_ACTIONS, SECURITY_ACTIONS,
};
pub use error::{CallError, ErrorCode};
pub use firmware::*;
pub use frame::{
    encode_call, encode_call_error, encode_call_result, Frame, FrameError, MessageType,
    MAX_FRAME_BYTES, MAX_UNIQUE_ID_CHARS, UNKNOWN_UNIQUE_ID,
};
pub use incoming::Incoming;
pub use local_auth::*;
pub use meter_values::*;
pub use remote::*;
pub use security::*;
pub use smart_charging::*;
pub use types::*;
