//! Value types of OCPP 1.6 that carry a constraint: length-limited strings, decimals
//! with one digit after the point, URIs. Once deserialised, the constraint holds.

use std::fmt;
use std::ops::Deref;

use serde::de::{self, Unexpected, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::units::IdTag;

/// A string of at most `N` characters (OCPP's `CiStringNType`). "Ci" means the spec
/// compares these case-insensitively: use [`CiString::eq_ignore_case`] where that
/// matters; `==` compares exactly.
#[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CiString<const N: usize>(String);

pub type CiString20 = CiString<20>;
pub type CiString25 = CiString<25>;
pub type CiString50 = CiString<50>;
pub type CiString255 = CiString<255>;
pub type CiString500 = CiString<500>;
/// An authorisation token (RFID badge, app token) as OCPP 1.6 carries it.
pub type IdToken = CiString20;

/// A string too long for its OCPP type.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{len} characters where OCPP allows at most {max}")]
pub struct TooLong {
    pub len: usize,
    pub max: usize,
}

impl<const N: usize> CiString<N> {
    pub const MAX_CHARS: usize = N;

    pub fn new(text: impl Into<String>) -> Result<Self, TooLong> {
        let text = text.into();
        check_length::<N>(&text)?;
        Ok(CiString(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }

    /// Compares as OCPP compares CiStrings: ignoring ASCII case.
    pub fn eq_ignore_case(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

fn check_length<const N: usize>(text: &str) -> Result<(), TooLong> {
    // Bytes bound characters from above: the common short ASCII case needs no count.
    if text.len() <= N {
        return Ok(());
    }
    let len = text.chars().count();
    if len <= N {
        Ok(())
    } else {
        Err(TooLong { len, max: N })
    }
}

impl<const N: usize> Deref for CiString<N> {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> AsRef<str> for CiString<N> {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl<const N: usize> fmt::Display for CiString<N> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<const N: usize> TryFrom<&str> for CiString<N> {
    type Error = TooLong;
    fn try_from(text: &str) -> Result<Self, TooLong> {
        CiString::new(text)
    }
}

impl<const N: usize> TryFrom<String> for CiString<N> {
    type Error = TooLong;
    fn try_from(text: String) -> Result<Self, TooLong> {
        CiString::new(text)
    }
}

impl From<IdToken> for IdTag {
    fn from(token: IdToken) -> IdTag {
        IdTag(token.0)
    }
}

impl TryFrom<&IdTag> for IdToken {
    type Error = TooLong;
    fn try_from(tag: &IdTag) -> Result<IdToken, TooLong> {
        CiString::new(tag.as_str())
    }
}

impl<const N: usize> Serialize for CiString<N> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

struct CiStringVisitor<const N: usize>;

impl<const N: usize> CiStringVisitor<N> {
    fn checked<E: de::Error>(text: String) -> Result<CiString<N>, E> {
        match check_length::<N>(&text) {
            Ok(()) => Ok(CiString(text)),
            Err(TooLong { len, .. }) => Err(E::invalid_length(len, &CiStringVisitor::<N>)),
        }
    }
}

impl<const N: usize> Visitor<'_> for CiStringVisitor<N> {
    type Value = CiString<N>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a string of at most {N} characters")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<CiString<N>, E> {
        Self::checked(text.to_owned())
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<CiString<N>, E> {
        Self::checked(text)
    }
}

impl<'de, const N: usize> Deserialize<'de> for CiString<N> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_string(CiStringVisitor::<N>)
    }
}

/// A non-negative decimal with at most one digit after the point: the `limit` and
/// `minChargingRate` of a charging schedule (schema: `multipleOf 0.1`). Held as the
/// nearest `f64`, so it prints with one decimal at most.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd)]
pub struct OneDecimal(f64);

impl OneDecimal {
    pub const ZERO: OneDecimal = OneDecimal(0.0);

    /// `value` if it is finite, non-negative and has at most one decimal (within
    /// float noise).
    pub fn new(value: f64) -> Option<OneDecimal> {
        let tenths = value * 10.0;
        let rounded = tenths.round();
        (value.is_finite() && value >= 0.0 && (tenths - rounded).abs() < 1e-6)
            .then(|| OneDecimal(rounded / 10.0))
    }

    /// Rounded down to the tenth, never up: a limit must not grow by rounding. A
    /// negative or non-finite value gives zero, the safe limit.
    pub fn floor(value: f64) -> OneDecimal {
        if !value.is_finite() || value <= 0.0 {
            return OneDecimal::ZERO;
        }
        // The epsilon keeps 21.0 (held as 20.999…) from becoming 20.9.
        OneDecimal(((value + 1e-9) * 10.0).floor() / 10.0)
    }

    pub fn value(self) -> f64 {
        self.0
    }
}

impl fmt::Display for OneDecimal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1}", self.0)
    }
}

impl Serialize for OneDecimal {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(self.0)
    }
}

struct OneDecimalVisitor;

impl Visitor<'_> for OneDecimalVisitor {
    type Value = OneDecimal;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative number with at most one decimal")
    }

    fn visit_f64<E: de::Error>(self, value: f64) -> Result<OneDecimal, E> {
        OneDecimal::new(value).ok_or_else(|| E::invalid_value(Unexpected::Float(value), &self))
    }

    fn visit_u64<E: de::Error>(self, value: u64) -> Result<OneDecimal, E> {
        self.visit_f64(value as f64)
    }

    fn visit_i64<E: de::Error>(self, value: i64) -> Result<OneDecimal, E> {
        if value < 0 {
            return Err(E::invalid_value(Unexpected::Signed(value), &self));
        }
        self.visit_f64(value as f64)
    }
}

impl<'de> Deserialize<'de> for OneDecimal {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_f64(OneDecimalVisitor)
    }
}

/// A URI (OCPP's `anyURI`: firmware and diagnostics locations). Checked as far as it
/// matters to us: a scheme, then no whitespace or control characters.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct AnyUri(String);

impl AnyUri {
    pub fn new(text: impl Into<String>) -> Option<AnyUri> {
        let text = text.into();
        is_uri(&text).then_some(AnyUri(text))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// `scheme ":" rest` with scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." ) (RFC 3986).
fn is_uri(text: &str) -> bool {
    let Some((scheme, rest)) = text.split_once(':') else {
        return false;
    };
    let mut scheme_chars = scheme.chars();
    let scheme_ok = scheme_chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && scheme_chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.'));
    scheme_ok && !rest.chars().any(|c| c.is_whitespace() || c.is_control())
}

impl fmt::Display for AnyUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for AnyUri {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

struct AnyUriVisitor;

impl Visitor<'_> for AnyUriVisitor {
    type Value = AnyUri;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a URI such as ftp://host/path")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<AnyUri, E> {
        AnyUri::new(text).ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
    }
}

impl<'de> Deserialize<'de> for AnyUri {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(AnyUriVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ci_string_counts_characters_not_bytes() {
        assert!(CiString20::new("é".repeat(20)).is_ok());
        assert_eq!(
            CiString20::new("é".repeat(21)),
            Err(TooLong { len: 21, max: 20 })
        );
    }

    #[test]
    fn ci_string_compares_ignoring_case_only_on_request() {
        let tag = IdToken::new("04a1b2c3").expect("short");
        assert!(tag.eq_ignore_case("04A1B2C3"));
        assert_ne!(tag, IdToken::new("04A1B2C3").expect("short"));
    }

    #[test]
    fn one_decimal_floor_never_rounds_up() {
        assert_eq!(OneDecimal::floor(21.0).value(), 21.0);
        assert_eq!(OneDecimal::floor(6.299_999).value(), 6.2);
        assert_eq!(OneDecimal::floor(63.0 / 10.0).value(), 6.3);
        assert_eq!(OneDecimal::floor(-3.0), OneDecimal::ZERO);
        assert_eq!(OneDecimal::floor(f64::NAN), OneDecimal::ZERO);
    }

    #[test]
    fn one_decimal_accepts_tenths_only() {
        assert_eq!(OneDecimal::new(16.7).map(OneDecimal::value), Some(16.7));
        assert_eq!(OneDecimal::new(0.1 + 0.2).map(OneDecimal::value), Some(0.3));
        assert_eq!(OneDecimal::new(16.75), None);
        assert_eq!(OneDecimal::new(-1.0), None);
    }

    #[test]
    fn uri_needs_a_scheme_and_no_spaces() {
        assert!(AnyUri::new("ftp://user@host/diag").is_some());
        assert!(AnyUri::new("https://example.org/fw.bin").is_some());
        assert!(AnyUri::new("/no/scheme").is_none());
        assert!(AnyUri::new("ftp://host/with space").is_none());
    }
}
