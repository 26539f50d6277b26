//! Types that carry units and meaning, shared by every layer: currents per phase,
//! the identifiers of stations, zones, meters and badges, and the three phases.

use std::fmt;
use std::ops::{Add, AddAssign, Mul, Sub, SubAssign};

use serde::{Deserialize, Serialize};

/// A current in amperes, per phase.
#[derive(Clone, Copy, Debug, Default, PartialEq, PartialOrd, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Amps(pub f64);

impl Amps {
    pub const ZERO: Amps = Amps(0.0);

    /// Rounded down to 0.1 A, as setpoints are sent (never round a limit up).
    /// The small epsilon keeps 21.0 from becoming 20.9 through float noise.
    pub fn floor_tenth(self) -> Amps {
        Amps(((self.0 + 1e-9) * 10.0).floor() / 10.0)
    }

    pub fn max(self, other: Amps) -> Amps {
        Amps(self.0.max(other.0))
    }

    pub fn min(self, other: Amps) -> Amps {
        Amps(self.0.min(other.0))
    }

    pub fn is_finite(self) -> bool {
        self.0.is_finite()
    }
}

impl fmt::Display for Amps {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.1} A", self.0)
    }
}

impl Add for Amps {
    type Output = Amps;
    fn add(self, rhs: Amps) -> Amps {
        Amps(self.0 + rhs.0)
    }
}

impl AddAssign for Amps {
    fn add_assign(&mut self, rhs: Amps) {
        self.0 += rhs.0;
    }
}

impl Sub for Amps {
    type Output = Amps;
    fn sub(self, rhs: Amps) -> Amps {
        Amps(self.0 - rhs.0)
    }
}

impl SubAssign for Amps {
    fn sub_assign(&mut self, rhs: Amps) {
        self.0 -= rhs.0;
    }
}

impl Mul<f64> for Amps {
    type Output = Amps;
    fn mul(self, rhs: f64) -> Amps {
        Amps(self.0 * rhs)
    }
}

/// One of the three phases of the supply.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum Phase {
    #[default]
    L1,
    L2,
    L3,
}

impl Phase {
    pub const ALL: [Phase; 3] = [Phase::L1, Phase::L2, Phase::L3];

    pub fn index(self) -> usize {
        match self {
            Phase::L1 => 0,
            Phase::L2 => 1,
            Phase::L3 => 2,
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Phase::L1 => "L1",
            Phase::L2 => "L2",
            Phase::L3 => "L3",
        })
    }
}

/// A value for each phase, indexed by [`Phase`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PerPhase<T>(pub [T; 3]);

impl<T: Copy> PerPhase<T> {
    pub fn splat(value: T) -> Self {
        PerPhase([value; 3])
    }

    pub fn get(&self, phase: Phase) -> T {
        self.0[phase.index()]
    }

    pub fn set(&mut self, phase: Phase, value: T) {
        self.0[phase.index()] = value;
    }

    pub fn map<U>(self, f: impl FnMut(T) -> U) -> PerPhase<U> {
        PerPhase(self.0.map(f))
    }
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(pub String);

        impl $name {
            pub fn new(id: impl Into<String>) -> Self {
                $name(id.into())
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl From<&str> for $name {
            fn from(id: &str) -> Self {
                $name(id.to_owned())
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }
    };
}

string_id!(
    /// The OCPP chargePointId of a station (the last path segment of its WebSocket URL).
    ChargePointId
);
string_id!(
    /// The id of a zone of the site's electrical tree.
    ZoneId
);
string_id!(
    /// The id of a power meter.
    MeterId
);
string_id!(
    /// An authorisation token (RFID badge, app token), at most 20 characters in OCPP 1.6.
    IdTag
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn floor_tenth_never_rounds_up() {
        assert_eq!(Amps(21.0).floor_tenth(), Amps(21.0));
        assert_eq!(Amps(6.299_999).floor_tenth(), Amps(6.2));
        assert_eq!(Amps(63.0 / 10.0).floor_tenth(), Amps(6.3));
        assert_eq!(Amps(0.05).floor_tenth(), Amps(0.0));
    }
}
