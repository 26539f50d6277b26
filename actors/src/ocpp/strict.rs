//! Serde helpers that make deserialisation as strict as the OCPP 1.6 JSON schemas:
//! enums by exact string, objects only as objects, no `null` for an absent field,
//! date-times with a zone, non-empty lists where the spec says `1..*`.
//!
//! Every error raised here uses one of serde's standard error shapes (or a message
//! constant of [`super::error`]), so that `error::classify` can name its OCPP code.

use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::de::{self, DeserializeSeed, Deserializer, SeqAccess, Unexpected, Visitor};
use serde::{Deserialize, Serializer};

use super::error::EMPTY_LIST;

/// An enum whose values travel as exact strings.
pub(crate) trait WireEnum: Sized + Copy + 'static {
    /// The OCPP name of the type, for error descriptions.
    const TYPE_NAME: &'static str;
    fn from_wire(text: &str) -> Option<Self>;
}

/// Declares an OCPP enumeration: exact wire strings (plus accepted aliases), `as_str`,
/// `ALL`, `Display`, and serde impls that accept only a string naming a variant.
macro_rules! ocpp_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $variant:ident = $wire:literal $(| $alias:literal)* ),+ $(,)?
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $variant ),+
        }

        impl $name {
            /// Every value, in the order of the specification.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The string sent on the wire.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( $name::$variant => $wire ),+
                }
            }
        }

        impl $crate::ocpp::strict::WireEnum for $name {
            const TYPE_NAME: &'static str = stringify!($name);
            fn from_wire(text: &str) -> Option<Self> {
                match text {
                    $( $wire $(| $alias)* => Some($name::$variant), )+
                    _ => None,
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl serde::Serialize for $name {
            fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> serde::Deserialize<'de> for $name {
            fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                deserializer.deserialize_str($crate::ocpp::strict::WireEnumVisitor::<$name>::new())
            }
        }
    };
}

/// Reads a [`WireEnum`] from a JSON string; anything else is a type error, an unknown
/// string an invalid value.
pub(crate) struct WireEnumVisitor<T>(PhantomData<T>);

impl<T> WireEnumVisitor<T> {
    pub(crate) fn new() -> Self {
        WireEnumVisitor(PhantomData)
    }
}

impl<T: WireEnum> Visitor<'_> for WireEnumVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "a {} value of OCPP 1.6", T::TYPE_NAME)
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        T::from_wire(text).ok_or_else(|| E::invalid_value(Unexpected::Str(text), &self))
    }
}

/// Serde's derived structs also accept an array of their fields in order; the OCPP
/// schemas only allow objects. This deserializer turns a struct request into a map
/// request, so an array is a type error.
pub(crate) struct ObjectOnly<D>(pub D);

impl<'de, D: Deserializer<'de>> Deserializer<'de> for ObjectOnly<D> {
    type Error = D::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, D::Error> {
        self.0.deserialize_any(visitor)
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, D::Error> {
        self.0.deserialize_map(visitor)
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf
        option unit unit_struct newtype_struct seq tuple tuple_struct map enum identifier
        ignored_any
    }
}

struct ObjectSeed<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> DeserializeSeed<'de> for ObjectSeed<T> {
    type Value = T;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<T, D::Error> {
        T::deserialize(ObjectOnly(deserializer))
    }
}

/// A required nested object.
pub(crate) fn object<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(ObjectOnly(deserializer))
}

/// An optional nested object: absent is `None` (with `#[serde(default)]`), `null` is
/// a type error.
pub(crate) fn some_object<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(ObjectOnly(deserializer)).map(Some)
}

/// An optional scalar: absent is `None` (with `#[serde(default)]`), `null` is a type
/// error, as the schemas give every property a single JSON type.
pub(crate) fn some<'de, D, T>(deserializer: D) -> Result<Option<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    T::deserialize(deserializer).map(Some)
}

struct ObjectsVisitor<T> {
    at_least_one: bool,
    marker: PhantomData<T>,
}

impl<'de, T: Deserialize<'de>> Visitor<'de> for ObjectsVisitor<T> {
    type Value = Vec<T>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an array of objects")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Vec<T>, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0).min(64));
        while let Some(item) = seq.next_element_seed(ObjectSeed(PhantomData))? {
            items.push(item);
        }
        if self.at_least_one && items.is_empty() {
            return Err(de::Error::custom(EMPTY_LIST));
        }
        Ok(items)
    }
}

/// An array of objects that may be empty (`0..*`).
pub(crate) fn objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(ObjectsVisitor {
        at_least_one: false,
        marker: PhantomData,
    })
}

/// An array of objects with at least one element (`1..*`).
pub(crate) fn non_empty_objects<'de, D, T>(deserializer: D) -> Result<Vec<T>, D::Error>
where
    D: Deserializer<'de>,
    T: Deserialize<'de>,
{
    deserializer.deserialize_seq(ObjectsVisitor {
        at_least_one: true,
        marker: PhantomData,
    })
}

struct DateTimeVisitor;

impl Visitor<'_> for DateTimeVisitor {
    type Value = DateTime<Utc>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an RFC 3339 date-time with a zone, e.g. 2025-01-31T12:00:00Z")
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<DateTime<Utc>, E> {
        DateTime::parse_from_rfc3339(text)
            .map(|t| t.with_timezone(&Utc))
            .map_err(|_| E::invalid_value(Unexpected::Str(text), &self))
    }
}

/// A required date-time: RFC 3339 with a zone (a local time without one is
/// meaningless across a site and is refused), kept in UTC, sent with millisecond
/// precision and `Z`.
pub(crate) mod date_time {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        time: &DateTime<Utc>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        serializer.collect_str(&time.to_rfc3339_opts(SecondsFormat::Millis, true))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<DateTime<Utc>, D::Error> {
        deserializer.deserialize_str(DateTimeVisitor)
    }
}

/// An optional date-time (use with `#[serde(default, skip_serializing_if = "Option::is_none")]`).
pub(crate) mod some_date_time {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(
        time: &Option<DateTime<Utc>>,
        serializer: S,
    ) -> Result<S::Ok, S::Error> {
        match time {
            Some(time) => date_time::serialize(time, serializer),
            None => serializer.serialize_none(),
        }
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(
        deserializer: D,
    ) -> Result<Option<DateTime<Utc>>, D::Error> {
        deserializer.deserialize_str(DateTimeVisitor).map(Some)
    }
}
