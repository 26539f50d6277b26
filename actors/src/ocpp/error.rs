//! OCPP-J error codes, and the one place where a failure to read a payload becomes the
//! code and description of a CALLERROR.

/// Raised by the strict helpers for an empty array where the spec says `1..*`.
pub(crate) const EMPTY_LIST: &str = "empty array where at least one element is required";

/// The longest errorDescription we send: enough to name the field and the problem,
/// short enough that an echoed bad value cannot inflate the answer.
pub const MAX_DESCRIPTION_CHARS: usize = 255;

ocpp_enum! {
    /// The error codes of a CALLERROR (OCPP-J 1.6, section 4.2.3).
    pub enum ErrorCode {
        /// The action is not known to the receiver.
        NotImplemented = "NotImplemented",
        /// The action is known but not supported by the receiver (e.g. a charge point
        /// sending an action only a central system may send).
        NotSupported = "NotSupported",
        /// The receiver failed while handling a well-formed call.
        InternalError = "InternalError",
        /// The payload is incomplete; we also use it for frames with too few elements
        /// or an unknown message type id.
        ProtocolError = "ProtocolError",
        /// A security issue prevented the receiver from completing the action.
        SecurityError = "SecurityError",
        /// The frame or payload is syntactically wrong or not of the PDU's structure
        /// (not JSON, not an array, unknown property, ...).
        FormationViolation = "FormationViolation",
        /// A field holds a value it may not (enum value, length, range, format).
        PropertyConstraintViolation = "PropertyConstraintViolation",
        /// A required field is missing, or a list is empty where one element is required.
        /// Spelled as in OCPP 1.6; the corrected spelling of OCPP 2.0 is read as the same.
        OccurenceConstraintViolation = "OccurenceConstraintViolation" | "OccurrenceConstraintViolation",
        /// A field holds the wrong JSON type (e.g. a string where a number is required).
        TypeConstraintViolation = "TypeConstraintViolation",
        /// Any other error.
        GenericError = "GenericError",
    }
}

/// What goes into a CALLERROR frame besides the uniqueId: the code and a description
/// naming the field at fault.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {description}")]
pub struct CallError {
    pub code: ErrorCode,
    pub description: String,
}

impl CallError {
    /// The description is cut to [`MAX_DESCRIPTION_CHARS`].
    pub fn new(code: ErrorCode, description: impl Into<String>) -> CallError {
        let mut description = description.into();
        if let Some((cut, _)) = description.char_indices().nth(MAX_DESCRIPTION_CHARS) {
            description.truncate(cut);
        }
        CallError { code, description }
    }

    /// The action is not one of OCPP 1.6.
    pub(crate) fn unknown_action(action: &str) -> CallError {
        CallError::new(
            ErrorCode::NotImplemented,
            format!("unknown action `{action}`"),
        )
    }

    /// The action is of OCPP 1.6 but not one this side of the link receives.
    pub(crate) fn unsupported_action(action: &str, receiver: &str) -> CallError {
        CallError::new(
            ErrorCode::NotSupported,
            format!("action `{action}` is not received by a {receiver}"),
        )
    }

    /// Maps a failure to deserialize a payload to its OCPP code: the single place where
    /// serde's error shapes meet OCPP's codes.
    ///
    /// | serde error | OCPP code |
    /// |---|---|
    /// | missing field, empty `1..*` array | OccurenceConstraintViolation |
    /// | invalid type (incl. `null`, an array for an object, a float for an integer) | TypeConstraintViolation |
    /// | invalid value (enum value, range, date-time without zone, decimals), invalid length (too long) | PropertyConstraintViolation |
    /// | unknown field, duplicate field, anything else | FormationViolation |
    pub(crate) fn from_payload_error(
        error: serde_path_to_error::Error<serde_json::Error>,
    ) -> CallError {
        let path = error.path().to_string();
        let inner = error.into_inner();
        let full = inner.to_string();
        // serde_json appends " at line L column C"; the field path says more.
        let message = match full.rfind(" at line ") {
            Some(cut) if inner.line() > 0 => &full[..cut],
            _ => full.as_str(),
        };
        let here = |field: &str| {
            if path == "." {
                field.to_owned()
            } else {
                format!("{path}.{field}")
            }
        };
        if inner.classify() != serde_json::error::Category::Data {
            return CallError::new(
                ErrorCode::FormationViolation,
                format!("payload is not valid JSON: {message}"),
            );
        }
        if let Some(field) = quoted_after(message, "missing field `") {
            return CallError::new(
                ErrorCode::OccurenceConstraintViolation,
                format!("required field `{}` is missing", here(field)),
            );
        }
        if let Some(field) = quoted_after(message, "unknown field `") {
            // The path already ends with the unknown key.
            let at = if path.ends_with(field) {
                path.clone()
            } else {
                here(field)
            };
            return CallError::new(
                ErrorCode::FormationViolation,
                format!("unknown field `{at}` (OCPP 1.6 allows no additional properties)"),
            );
        }
        if let Some(field) = quoted_after(message, "duplicate field `") {
            return CallError::new(
                ErrorCode::FormationViolation,
                format!("field `{}` appears twice", here(field)),
            );
        }
        let code = if message.starts_with(EMPTY_LIST) {
            ErrorCode::OccurenceConstraintViolation
        } else if message.starts_with("invalid type") {
            ErrorCode::TypeConstraintViolation
        } else if message.starts_with("invalid value")
            || message.starts_with("invalid length")
            || message.starts_with("unknown variant")
        {
            ErrorCode::PropertyConstraintViolation
        } else {
            ErrorCode::FormationViolation
        };
        let description = if path == "." {
            message.to_owned()
        } else {
            format!("{path}: {message}")
        };
        CallError::new(code, description)
    }
}

/// The text between `prefix` and the next backquote, if `message` starts with `prefix`.
fn quoted_after<'m>(message: &'m str, prefix: &str) -> Option<&'m str> {
    let rest = message.strip_prefix(prefix)?;
    rest.split_once('`').map(|(field, _)| field)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn description_is_cut_to_its_maximum_on_a_char_boundary() {
        let error = CallError::new(ErrorCode::GenericError, "é".repeat(400));
        assert_eq!(error.description.chars().count(), MAX_DESCRIPTION_CHARS);
    }

    #[test]
    fn both_spellings_of_the_occurrence_code_are_read() {
        for text in [
            "\"OccurenceConstraintViolation\"",
            "\"OccurrenceConstraintViolation\"",
        ] {
            let code: ErrorCode = serde_json::from_str(text).expect("a known spelling");
            assert_eq!(code, ErrorCode::OccurenceConstraintViolation);
        }
        assert_eq!(
            ErrorCode::OccurenceConstraintViolation.as_str(),
            "OccurenceConstraintViolation"
        );
    }
}
