//! OCPP 1.6J messages (pure): frames, typed messages of every action we send or
//! receive, and their checking against the official JSON schemas' rules.
//!
//! * [`frame`] reads and writes the OCPP-J arrays; payloads stay raw there.
//! * [`dispatch`] is the one place mapping action names to types: [`StationRequest`]
//!   (what a station may send us), [`CentralRequest`] (what we may send a station),
//!   and their answers.
//! * [`error`] is the one place turning a parse failure into a CALLERROR code.
//! * One module per message family holds the plain message structs.
//!
//! A message that deserialises is known good: lengths, enum values, zones of
//! date-times, required fields and extra fields are all checked by the types.
//!
//! Receiving a call, in the WebSocket session:
//! ```
//! use ampwarden_actors::ocpp::{encode_call_result, Frame, HeartbeatResponse, StationRequest};
//!
//! let text = r#"[2,"19223201","Heartbeat",{}]"#;
//! let Ok(Frame::Call { unique_id, action, payload }) = Frame::parse(text) else { panic!() };
//! let answer = match StationRequest::parse(&action, payload) {
//!     Ok(StationRequest::Heartbeat(_)) => {
//!         encode_call_result(&unique_id, &HeartbeatResponse { current_time: chrono::Utc::now() })
//!     }
//!     Ok(_) => unreachable!(),
//!     Err(error) => ampwarden_actors::ocpp::encode_call_error(&unique_id, &error),
//! };
//! assert!(answer.starts_with(r#"[3,"19223201",{"currentTime":""#));
//! ```

#[macro_use]
mod strict;

pub mod core;
pub mod dispatch;
pub mod error;
pub mod firmware;
pub mod frame;
pub mod local_auth;
pub mod meter_values;
pub mod remote;
pub mod smart_charging;
pub mod types;

pub use self::core::*;
pub use dispatch::{
    parse_payload, CentralCall, CentralRequest, CentralResponse, ChargePointRequest, Payload,
    Request, StationRequest, StationResponse, OCPP16_ACTIONS,
};
pub use error::{CallError, ErrorCode};
pub use firmware::*;
pub use frame::{
    encode_call, encode_call_error, encode_call_result, Frame, FrameError, MessageType,
    MAX_FRAME_BYTES, MAX_UNIQUE_ID_CHARS, UNKNOWN_UNIQUE_ID,
};
pub use local_auth::*;
pub use meter_values::*;
pub use remote::*;
pub use smart_charging::*;
pub use types::*;
