//! Register maps of the supported meters and the decoding of their registers into a
//! [`MeterReading`]. Pure: words in, a reading (or the reason it is not one) out.
//!
//! Register numbers are the ones printed in the makers' manuals; the address sent on the
//! wire is the number minus 1. Sources for every map are in `docs/meters.md`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::{GenericMap, MeterConfig, MeterProfile, RegisterKind, RegisterType, WordOrder};
use crate::units::{Amps, MeterId, PerPhase, Phase};

/// The most registers one Modbus read may ask for (Modbus application protocol, FC 03/04).
pub const MAX_REGISTERS_PER_READ: u16 = 125;

/// A current below zero by more than this is a wiring or decoding fault, not noise.
/// Smaller negatives (a meter's offset around zero) read as 0 A.
pub const NEGATIVE_CURRENT_TOLERANCE_A: f64 = 0.5;

/// No low-voltage supply we manage carries more than this per phase.
pub const MAX_PLAUSIBLE_CURRENT_A: f64 = 10_000.0;

/// 10 kA on three phases at 480 V is 14.4 MW: anything above 20 MW is a decoding fault.
pub const MAX_PLAUSIBLE_POWER_KW: f64 = 20_000.0;

/// Schneider's "not available" pattern for a Float32 register (a quiet NaN).
const FLOAT_NOT_AVAILABLE: u32 = 0xFFC0_0000;

/// A reading of one meter: what the allocation uses.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MeterReading {
    pub meter: MeterId,
    /// RMS current of each phase.
    pub currents: PerPhase<Amps>,
    /// Total active power, positive when importing; `None` when the meter has no such
    /// register or says it cannot measure it.
    pub power_kw: Option<f64>,
    /// When the registers were read.
    pub at: DateTime<Utc>,
}

/// Which quantity a decoding problem is about, for messages an installer can act on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Quantity {
    Current(Phase),
    TotalPower,
}

impl fmt::Display for Quantity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Quantity::Current(phase) => write!(f, "current {}", phase_label(*phase)),
            Quantity::TotalPower => f.write_str("total active power"),
        }
    }
}

fn phase_label(phase: Phase) -> &'static str {
    match phase {
        Phase::L1 => "I1",
        Phase::L2 => "I2",
        Phase::L3 => "I3",
    }
}

/// Why a set of registers is not a reading.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ReadingError {
    #[error("register {register} was not read")]
    MissingRegister { register: u16 },
    #[error("{quantity}: the meter marks it not available (raw {raw:#x})")]
    NotAvailable { quantity: Quantity, raw: u32 },
    #[error("{quantity} is not a number ({value})")]
    NotANumber { quantity: Quantity, value: f64 },
    #[error("{quantity} is negative ({value:.2} A): check the CT orientation or the register map")]
    NegativeCurrent { quantity: Quantity, value: f64 },
    #[error(
        "{quantity} = {value} is implausible (limit {limit}): check the register map and scale"
    )]
    Implausible {
        quantity: Quantity,
        value: f64,
        limit: f64,
    },
}

/// Why a register map cannot be built from a meter's configuration.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ProfileError {
    #[error("the generic profile needs its register map ([meters.generic])")]
    MissingGenericMap,
    #[error("register numbers start at 1 (the wire address is number - 1)")]
    RegisterZero,
}

/// Where one quantity lives and how it is encoded.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Field {
    /// Register number as in the maker's manual (the wire address is this minus 1).
    pub register: u16,
    pub register_type: RegisterType,
    /// Multiplies the raw value to give amperes (currents) or kilowatts (power).
    pub scale: f64,
}

impl Field {
    const fn new(register: u16, register_type: RegisterType, scale: f64) -> Field {
        Field {
            register,
            register_type,
            scale,
        }
    }

    /// The address on the wire; `RegisterMap` never holds register 0.
    fn address(&self) -> u16 {
        self.register - 1
    }

    fn width(&self) -> u16 {
        match self.register_type {
            RegisterType::U16 | RegisterType::I16 => 1,
            RegisterType::U32 | RegisterType::I32 | RegisterType::F32 => 2,
        }
    }
}

/// One Modbus read: `count` registers from wire address `address`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadRequest {
    pub kind: RegisterKind,
    pub address: u16,
    pub count: u16,
    /// Holds no current, only the power: a device without that register (a MicroLogic A
    /// ammeter, say) answers it with an exception and still gives its currents.
    pub optional: bool,
}

/// The words answered to the read requests, by wire address.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RegisterWords {
    words: BTreeMap<u16, u16>,
}

impl RegisterWords {
    pub fn new() -> RegisterWords {
        RegisterWords::default()
    }

    /// Records the answer to a read that started at wire address `address`.
    pub fn insert_block(&mut self, address: u16, words: &[u16]) {
        for (offset, word) in words.iter().enumerate() {
            // A block never runs past address 65535: the reads are planned inside it.
            if let Some(at) = u16::try_from(offset)
                .ok()
                .and_then(|o| address.checked_add(o))
            {
                self.words.insert(at, *word);
            }
        }
    }

    pub fn get(&self, address: u16) -> Option<u16> {
        self.words.get(&address).copied()
    }

    /// `count` words from `address`, or `None` if any of them is missing.
    pub fn block(&self, address: u16, count: u16) -> Option<Vec<u16>> {
        (0..count)
            .map(|i| address.checked_add(i).and_then(|a| self.get(a)))
            .collect()
    }
}

/// The register map of one meter: where its currents and power are and how to read them.
#[derive(Clone, Debug, PartialEq)]
pub struct RegisterMap {
    pub profile: MeterProfile,
    /// Holding (FC 03) or input (FC 04) registers.
    pub kind: RegisterKind,
    /// Order of the two words of a 32-bit value.
    pub word_order: WordOrder,
    /// I1, I2, I3.
    pub currents: [Field; 3],
    pub power: Option<Field>,
}

impl RegisterMap {
    /// The built-in map of a profile; `None` for `generic`, whose map comes from the
    /// configuration ([`RegisterMap::generic`]).
    pub fn builtin(profile: MeterProfile) -> Option<RegisterMap> {
        use RegisterType::{F32, I16, U16};
        let f32_map = |currents: [u16; 3], power: u16, power_scale: f64| RegisterMap {
            profile,
            kind: RegisterKind::Holding,
            word_order: WordOrder::HighFirst,
            currents: currents.map(|r| Field::new(r, F32, 1.0)),
            power: Some(Field::new(power, F32, power_scale)),
        };
        match profile {
            // iEM3x5x and PM5300: currents in A, total active power in kW.
            MeterProfile::Iem3155 | MeterProfile::Pm5320 => {
                Some(f32_map([3000, 3002, 3004], 3060, 1.0))
            }
            // PowerTag Energy through its gateway: total active power in W.
            MeterProfile::Powertag => Some(f32_map([3000, 3002, 3004], 3060, 0.001)),
            // MicroLogic X: total active power in W.
            MeterProfile::Mtz => Some(f32_map([32028, 32030, 32032], 32078, 0.001)),
            // MicroLogic 5/6/7 E: currents INT16U in A, Ptot INT16 in kW × 10.
            MeterProfile::Nsx => Some(RegisterMap {
                profile,
                kind: RegisterKind::Holding,
                word_order: WordOrder::HighFirst,
                currents: [1016, 1017, 1018].map(|r| Field::new(r, U16, 1.0)),
                power: Some(Field::new(1037, I16, 0.1)),
            }),
            MeterProfile::Generic => None,
        }
    }

    /// The map of a `generic` meter, as configured.
    pub fn generic(map: &GenericMap) -> Result<RegisterMap, ProfileError> {
        if map.currents.contains(&0) || map.power == Some(0) {
            return Err(ProfileError::RegisterZero);
        }
        Ok(RegisterMap {
            profile: MeterProfile::Generic,
            kind: map.kind,
            word_order: map.word_order,
            currents: map
                .currents
                .map(|r| Field::new(r, map.register_type, map.current_scale)),
            power: map
                .power
                .map(|r| Field::new(r, map.register_type, map.power_scale)),
        })
    }

    /// The map a configured meter is read with.
    pub fn for_meter(config: &MeterConfig) -> Result<RegisterMap, ProfileError> {
        match RegisterMap::builtin(config.profile) {
            Some(map) => Ok(map),
            None => RegisterMap::generic(
                config
                    .generic
                    .as_ref()
                    .ok_or(ProfileError::MissingGenericMap)?,
            ),
        }
    }

    /// The reads that fetch every register of the map: adjacent or overlapping registers
    /// share one read, up to [`MAX_REGISTERS_PER_READ`]. Gaps are never bridged, because a
    /// meter may answer "illegal data address" for the reserved registers in between.
    pub fn read_requests(&self) -> Vec<ReadRequest> {
        // (start, end, holds a current)
        let mut spans: Vec<(u32, u32, bool)> = self
            .currents
            .iter()
            .map(|f| (f, true))
            .chain(self.power.iter().map(|f| (f, false)))
            .map(|(f, current)| {
                let start = u32::from(f.address());
                (start, start + u32::from(f.width()), current)
            })
            .collect();
        spans.sort_unstable_by_key(|&(start, end, _)| (start, end));
        let mut merged: Vec<(u32, u32, bool)> = Vec::new();
        for (start, end, current) in spans {
            match merged.last_mut() {
                Some(last)
                    if start <= last.1
                        && end.max(last.1) - last.0 <= u32::from(MAX_REGISTERS_PER_READ) =>
                {
                    last.1 = last.1.max(end);
                    last.2 |= current;
                }
                _ => merged.push((start, end, current)),
            }
        }
        merged
            .into_iter()
            .map(|(start, end, current)| ReadRequest {
                kind: self.kind,
                // Both fit: a field's address is a u16 and a span is at most 125 registers.
                address: u16::try_from(start).expect("span starts at a u16 address"),
                count: u16::try_from(end - start).expect("span is at most 125 registers"),
                optional: !current,
            })
            .collect()
    }

    /// Turns the words read into a reading, or says why they are not one.
    ///
    /// Currents must all be present and plausible. The power is optional: a meter that
    /// marks it "not available" (a 3-wire breaker, say) or refuses its read still gives a
    /// reading, without power; a power that is garbage (NaN, absurd) makes the whole read
    /// suspect.
    pub fn decode(
        &self,
        words: &RegisterWords,
        meter: &MeterId,
        at: DateTime<Utc>,
    ) -> Result<MeterReading, ReadingError> {
        let mut currents = PerPhase::splat(Amps::ZERO);
        for (phase, field) in Phase::ALL.into_iter().zip(&self.currents) {
            let quantity = Quantity::Current(phase);
            let amps = self.value(field, words, quantity)?;
            currents.set(phase, plausible_current(quantity, amps)?);
        }
        let power_kw = match &self.power {
            None => None,
            Some(field) => match self.value(field, words, Quantity::TotalPower) {
                Ok(kw) if kw.abs() > MAX_PLAUSIBLE_POWER_KW => {
                    return Err(ReadingError::Implausible {
                        quantity: Quantity::TotalPower,
                        value: kw,
                        limit: MAX_PLAUSIBLE_POWER_KW,
                    })
                }
                Ok(kw) => Some(kw),
                // Not measured, or its optional read was refused: currents only.
                Err(ReadingError::NotAvailable { .. } | ReadingError::MissingRegister { .. }) => {
                    None
                }
                Err(other) => return Err(other),
            },
        };
        Ok(MeterReading {
            meter: meter.clone(),
            currents,
            power_kw,
            at,
        })
    }

    /// The raw value of a field, scaled; sentinels and non-numbers are errors.
    fn value(
        &self,
        field: &Field,
        words: &RegisterWords,
        quantity: Quantity,
    ) -> Result<f64, ReadingError> {
        let block =
            words
                .block(field.address(), field.width())
                .ok_or(ReadingError::MissingRegister {
                    register: field.register,
                })?;
        let bits = match block.as_slice() {
            [one] => u32::from(*one),
            [first, second] => match self.word_order {
                WordOrder::HighFirst => (u32::from(*first) << 16) | u32::from(*second),
                WordOrder::LowFirst => (u32::from(*second) << 16) | u32::from(*first),
            },
            _ => {
                return Err(ReadingError::MissingRegister {
                    register: field.register,
                })
            }
        };
        if is_not_available(field.register_type, bits) {
            return Err(ReadingError::NotAvailable {
                quantity,
                raw: bits,
            });
        }
        let raw = match field.register_type {
            RegisterType::U16 | RegisterType::U32 => f64::from(bits),
            // The casts reinterpret the two's complement bits, which is what the meter sent.
            RegisterType::I16 => f64::from(bits as u16 as i16),
            RegisterType::I32 => f64::from(bits as i32),
            RegisterType::F32 => f64::from(f32::from_bits(bits)),
        };
        let value = raw * field.scale;
        if value.is_finite() {
            Ok(value)
        } else {
            Err(ReadingError::NotANumber { quantity, value })
        }
    }

    /// The words a meter of this map would hold for these values: the inverse of
    /// [`RegisterMap::decode`], for simulated meters. `None` writes the maker's
    /// "not available" pattern (NaN for floats). Integers are rounded and saturate.
    pub fn encode(&self, currents: [Option<f64>; 3], power_kw: Option<f64>) -> RegisterWords {
        let mut words = RegisterWords::new();
        for (field, value) in self.currents.iter().zip(currents) {
            words.insert_block(field.address(), &self.encode_field(field, value));
        }
        if let Some(field) = &self.power {
            words.insert_block(field.address(), &self.encode_field(field, power_kw));
        }
        words
    }

    fn encode_field(&self, field: &Field, value: Option<f64>) -> Vec<u16> {
        let bits: u32 = match (field.register_type, value) {
            (RegisterType::F32, Some(v)) => ((v / field.scale) as f32).to_bits(),
            (RegisterType::F32, None) => FLOAT_NOT_AVAILABLE,
            (t, None) => not_available_bits(t),
            // `as` saturates float-to-int conversions; the ranges leave out the sentinels.
            (RegisterType::U16, Some(v)) => {
                u32::from(((v / field.scale).round() as u16).min(0xFFFE))
            }
            (RegisterType::I16, Some(v)) => {
                u32::from(((v / field.scale).round() as i16).max(-0x7FFF) as u16)
            }
            (RegisterType::U32, Some(v)) => ((v / field.scale).round() as u32).min(0xFFFF_FFFE),
            (RegisterType::I32, Some(v)) => {
                ((v / field.scale).round() as i32).max(-0x7FFF_FFFF) as u32
            }
        };
        let (high, low) = ((bits >> 16) as u16, bits as u16);
        match (field.width(), self.word_order) {
            (1, _) => vec![low],
            (_, WordOrder::HighFirst) => vec![high, low],
            (_, WordOrder::LowFirst) => vec![low, high],
        }
    }
}

/// The makers' "not available" codes: all ones for unsigned registers, the most negative
/// value for signed ones, the quiet NaN 0xFFC00000 for floats (other NaNs are caught as
/// not-a-number).
fn is_not_available(register_type: RegisterType, bits: u32) -> bool {
    bits == not_available_bits(register_type)
}

fn not_available_bits(register_type: RegisterType) -> u32 {
    match register_type {
        RegisterType::U16 => 0xFFFF,
        RegisterType::I16 => 0x8000,
        RegisterType::U32 => 0xFFFF_FFFF,
        RegisterType::I32 => 0x8000_0000,
        RegisterType::F32 => FLOAT_NOT_AVAILABLE,
    }
}

fn plausible_current(quantity: Quantity, amps: f64) -> Result<Amps, ReadingError> {
    if amps < -NEGATIVE_CURRENT_TOLERANCE_A {
        Err(ReadingError::NegativeCurrent {
            quantity,
            value: amps,
        })
    } else if amps > MAX_PLAUSIBLE_CURRENT_A {
        Err(ReadingError::Implausible {
            quantity,
            value: amps,
            limit: MAX_PLAUSIBLE_CURRENT_A,
        })
    } else {
        Ok(Amps(amps.max(0.0)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 3, 1, 12, 0, 0)
            .single()
            .expect("a valid date")
    }

    fn meter() -> MeterId {
        MeterId::from("m1")
    }

    fn words(blocks: &[(u16, &[u16])]) -> RegisterWords {
        let mut w = RegisterWords::new();
        for (address, block) in blocks {
            w.insert_block(*address, block);
        }
        w
    }

    fn float_words(value: f32) -> [u16; 2] {
        let bits = value.to_bits();
        [(bits >> 16) as u16, bits as u16]
    }

    fn generic(register_type: RegisterType, word_order: WordOrder) -> GenericMap {
        GenericMap {
            currents: [101, 103, 105],
            power: Some(111),
            register_type,
            word_order,
            kind: RegisterKind::Input,
            current_scale: 0.01,
            power_scale: 0.001,
        }
    }

    fn builtin(profile: MeterProfile) -> RegisterMap {
        RegisterMap::builtin(profile).expect("a built-in profile")
    }

    #[test]
    fn iem3155_reads_currents_and_power_in_two_requests_at_number_minus_one() {
        let map = builtin(MeterProfile::Iem3155);
        assert_eq!(
            map.read_requests(),
            vec![
                ReadRequest {
                    kind: RegisterKind::Holding,
                    address: 2999,
                    count: 6,
                    optional: false
                },
                ReadRequest {
                    kind: RegisterKind::Holding,
                    address: 3059,
                    count: 2,
                    optional: true
                },
            ]
        );
    }

    #[test]
    fn iem3155_decodes_high_word_first_floats() {
        let map = builtin(MeterProfile::Iem3155);
        let mut currents = Vec::new();
        for a in [12.5f32, 30.25, 7.0] {
            currents.extend(float_words(a));
        }
        let w = words(&[(2999, &currents), (3059, &float_words(15.5))]);
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(12.5), Amps(30.25), Amps(7.0)])
        );
        assert_eq!(reading.power_kw, Some(15.5));
        assert_eq!(reading.meter, meter());
        assert_eq!(reading.at, at());
    }

    #[test]
    fn pm5320_uses_the_same_registers_as_iem3155() {
        let pm = builtin(MeterProfile::Pm5320);
        let iem = builtin(MeterProfile::Iem3155);
        assert_eq!(pm.currents, iem.currents);
        assert_eq!(pm.power, iem.power);
        let w = pm.encode([Some(1.0), Some(2.0), Some(3.0)], Some(4.0));
        let reading = pm.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(1.0), Amps(2.0), Amps(3.0)])
        );
        assert_eq!(reading.power_kw, Some(4.0));
    }

    #[test]
    fn powertag_power_is_read_in_watts_and_given_in_kilowatts() {
        let map = builtin(MeterProfile::Powertag);
        let mut currents = Vec::new();
        for a in [10.0f32, 11.0, 12.0] {
            currents.extend(float_words(a));
        }
        let w = words(&[(2999, &currents), (3059, &float_words(7_360.0))]);
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(10.0), Amps(11.0), Amps(12.0)])
        );
        let kw = reading.power_kw.expect("power");
        assert!((kw - 7.36).abs() < 1e-9, "{kw}");
    }

    #[test]
    fn mtz_reads_micrologic_x_float_registers() {
        let map = builtin(MeterProfile::Mtz);
        assert_eq!(
            map.read_requests(),
            vec![
                ReadRequest {
                    kind: RegisterKind::Holding,
                    address: 32027,
                    count: 6,
                    optional: false
                },
                ReadRequest {
                    kind: RegisterKind::Holding,
                    address: 32077,
                    count: 2,
                    optional: true
                },
            ]
        );
        let mut currents = Vec::new();
        for a in [800.0f32, 810.5, 790.25] {
            currents.extend(float_words(a));
        }
        let w = words(&[(32027, &currents), (32077, &float_words(-150_000.0))]);
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(800.0), Amps(810.5), Amps(790.25)])
        );
        assert_eq!(reading.power_kw, Some(-150.0));
    }

    #[test]
    fn nsx_reads_integer_currents_and_tenths_of_kilowatts() {
        let map = builtin(MeterProfile::Nsx);
        assert_eq!(
            map.read_requests(),
            vec![
                ReadRequest {
                    kind: RegisterKind::Holding,
                    address: 1015,
                    count: 3,
                    optional: false
                },
                ReadRequest {
                    kind: RegisterKind::Holding,
                    address: 1036,
                    count: 1,
                    optional: true
                },
            ]
        );
        // -12.3 kW exported: INT16 -123.
        let w = words(&[(1015, &[120, 98, 131]), (1036, &[(-123i16) as u16])]);
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(120.0), Amps(98.0), Amps(131.0)])
        );
        let kw = reading.power_kw.expect("power");
        assert!((kw + 12.3).abs() < 1e-9, "{kw}");
    }

    #[test]
    fn nsx_power_not_available_still_gives_the_currents() {
        let map = builtin(MeterProfile::Nsx);
        let w = words(&[(1015, &[10, 20, 30]), (1036, &[0x8000])]);
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(10.0), Amps(20.0), Amps(30.0)])
        );
        assert_eq!(reading.power_kw, None);
    }

    #[test]
    fn nsx_current_not_available_is_not_a_reading() {
        let map = builtin(MeterProfile::Nsx);
        let w = words(&[(1015, &[10, 0xFFFF, 30]), (1036, &[5])]);
        assert_eq!(
            map.decode(&w, &meter(), at()),
            Err(ReadingError::NotAvailable {
                quantity: Quantity::Current(Phase::L2),
                raw: 0xFFFF
            })
        );
    }

    #[test]
    fn float_not_available_pattern_is_not_a_reading() {
        let map = builtin(MeterProfile::Iem3155);
        let w = map.encode([Some(1.0), None, Some(3.0)], Some(1.0));
        assert_eq!(
            map.decode(&w, &meter(), at()),
            Err(ReadingError::NotAvailable {
                quantity: Quantity::Current(Phase::L2),
                raw: 0xFFC0_0000
            })
        );
    }

    #[test]
    fn any_nan_or_infinity_is_not_a_reading() {
        let map = builtin(MeterProfile::Iem3155);
        for bad in [
            f32::NAN,
            f32::INFINITY,
            f32::NEG_INFINITY,
            f32::from_bits(0x7FC0_0001),
        ] {
            let mut currents = Vec::new();
            for a in [1.0f32, 2.0, bad] {
                currents.extend(float_words(a));
            }
            let w = words(&[(2999, &currents), (3059, &float_words(1.0))]);
            assert!(
                matches!(
                    map.decode(&w, &meter(), at()),
                    Err(ReadingError::NotANumber {
                        quantity: Quantity::Current(Phase::L3),
                        ..
                    })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn nan_power_that_is_not_the_sentinel_is_not_a_reading() {
        let map = builtin(MeterProfile::Iem3155);
        let mut w = map.encode([Some(1.0), Some(2.0), Some(3.0)], None);
        w.insert_block(3059, &float_words(f32::NAN));
        assert!(matches!(
            map.decode(&w, &meter(), at()),
            Err(ReadingError::NotANumber {
                quantity: Quantity::TotalPower,
                ..
            })
        ));
    }

    #[test]
    fn small_negative_current_reads_as_zero() {
        let map = builtin(MeterProfile::Iem3155);
        let w = map.encode([Some(-0.2), Some(0.0), Some(5.0)], Some(1.0));
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(0.0), Amps(0.0), Amps(5.0)])
        );
    }

    #[test]
    fn negative_current_beyond_tolerance_is_not_a_reading() {
        let map = builtin(MeterProfile::Iem3155);
        let w = map.encode([Some(-3.0), Some(0.0), Some(5.0)], Some(1.0));
        assert!(matches!(
            map.decode(&w, &meter(), at()),
            Err(ReadingError::NegativeCurrent { .. })
        ));
    }

    #[test]
    fn currents_above_ten_kiloamperes_are_not_a_reading() {
        let map = builtin(MeterProfile::Iem3155);
        let w = map.encode([Some(1.0), Some(10_000.5), Some(5.0)], Some(1.0));
        assert!(matches!(
            map.decode(&w, &meter(), at()),
            Err(ReadingError::Implausible {
                quantity: Quantity::Current(Phase::L2),
                ..
            })
        ));
        let w = map.encode([Some(1.0), Some(10_000.0), Some(5.0)], Some(1.0));
        assert!(map.decode(&w, &meter(), at()).is_ok());
    }

    #[test]
    fn absurd_power_is_not_a_reading() {
        let map = builtin(MeterProfile::Iem3155);
        let w = map.encode([Some(1.0), Some(1.0), Some(1.0)], Some(-1.0e6));
        assert!(matches!(
            map.decode(&w, &meter(), at()),
            Err(ReadingError::Implausible {
                quantity: Quantity::TotalPower,
                ..
            })
        ));
    }

    #[test]
    fn a_missing_register_is_not_a_reading() {
        let map = builtin(MeterProfile::Iem3155);
        let mut currents = Vec::new();
        for a in [1.0f32, 2.0, 3.0] {
            currents.extend(float_words(a));
        }
        let w = words(&[(2999, &currents[..5])]);
        assert_eq!(
            map.decode(&w, &meter(), at()),
            Err(ReadingError::MissingRegister { register: 3004 })
        );
    }

    #[test]
    fn generic_without_power_register_reads_currents_only() {
        let mut g = generic(RegisterType::U16, WordOrder::HighFirst);
        g.power = None;
        let map = RegisterMap::generic(&g).expect("a valid map");
        assert_eq!(
            map.read_requests(),
            vec![
                ReadRequest {
                    kind: RegisterKind::Input,
                    address: 100,
                    count: 1,
                    optional: false
                },
                ReadRequest {
                    kind: RegisterKind::Input,
                    address: 102,
                    count: 1,
                    optional: false
                },
                ReadRequest {
                    kind: RegisterKind::Input,
                    address: 104,
                    count: 1,
                    optional: false
                }
            ]
        );
        let w = words(&[(100, &[1234]), (102, &[0]), (104, &[6300])]);
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(12.34), Amps(0.0), Amps(63.0)])
        );
        assert_eq!(reading.power_kw, None);
    }

    #[test]
    fn generic_i16_reads_signed_power_and_rejects_its_sentinel_current() {
        let map = RegisterMap::generic(&generic(RegisterType::I16, WordOrder::HighFirst))
            .expect("a valid map");
        let w = words(&[
            (100, &[1000]),
            (102, &[2000]),
            (104, &[3000]),
            (110, &[(-4500i16) as u16]),
        ]);
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(10.0), Amps(20.0), Amps(30.0)])
        );
        let kw = reading.power_kw.expect("power");
        assert!((kw + 4.5).abs() < 1e-9, "{kw}");
        let w = words(&[
            (100, &[0x8000]),
            (102, &[2000]),
            (104, &[3000]),
            (110, &[0]),
        ]);
        assert!(matches!(
            map.decode(&w, &meter(), at()),
            Err(ReadingError::NotAvailable { .. })
        ));
    }

    #[test]
    fn generic_u32_high_word_first_merges_adjacent_registers_into_one_read() {
        let mut g = generic(RegisterType::U32, WordOrder::HighFirst);
        g.power = Some(107);
        let map = RegisterMap::generic(&g).expect("a valid map");
        assert_eq!(
            map.read_requests(),
            vec![ReadRequest {
                kind: RegisterKind::Input,
                address: 100,
                count: 8,
                optional: false
            }]
        );
        // 70_000 × 0.01 = 700 A needs both words.
        let w = words(&[(100, &[0x0001, 0x1170, 0, 500, 0, 0, 0, 2000])]);
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(700.0), Amps(5.0), Amps(0.0)])
        );
        assert_eq!(reading.power_kw, Some(2.0));
    }

    #[test]
    fn generic_low_word_first_swaps_the_words_of_32_bit_values() {
        let map = RegisterMap::generic(&generic(RegisterType::U32, WordOrder::LowFirst))
            .expect("a valid map");
        let w = words(&[(100, &[0x1170, 0x0001, 500, 0, 0, 0]), (110, &[2000, 0])]);
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(700.0), Amps(5.0), Amps(0.0)])
        );
        assert_eq!(reading.power_kw, Some(2.0));
    }

    #[test]
    fn generic_i32_and_f32_round_trip_in_both_word_orders() {
        for register_type in [
            RegisterType::I32,
            RegisterType::F32,
            RegisterType::U32,
            RegisterType::I16,
            RegisterType::U16,
        ] {
            for word_order in [WordOrder::HighFirst, WordOrder::LowFirst] {
                let map =
                    RegisterMap::generic(&generic(register_type, word_order)).expect("a valid map");
                let w = map.encode([Some(12.34), Some(0.5), Some(250.0)], Some(-3.5));
                let reading = map.decode(&w, &meter(), at()).expect("a reading");
                for (got, want) in reading.currents.0.iter().zip([12.34, 0.5, 250.0]) {
                    assert!(
                        (got.0 - want).abs() < 1e-3,
                        "{register_type:?} {word_order:?}: {got:?} vs {want}"
                    );
                }
                let kw = reading.power_kw.expect("power");
                let want = if matches!(register_type, RegisterType::U16 | RegisterType::U32) {
                    0.0
                } else {
                    -3.5
                };
                assert!(
                    (kw - want).abs() < 1e-3,
                    "{register_type:?} {word_order:?}: {kw}"
                );
            }
        }
    }

    #[test]
    fn generic_i32_negative_power_low_word_first() {
        let map = RegisterMap::generic(&generic(RegisterType::I32, WordOrder::LowFirst))
            .expect("a valid map");
        let raw = (-7_250i32) as u32;
        let w = words(&[
            (100, &[100, 0, 200, 0, 300, 0]),
            (110, &[raw as u16, (raw >> 16) as u16]),
        ]);
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(1.0), Amps(2.0), Amps(3.0)])
        );
        let kw = reading.power_kw.expect("power");
        assert!((kw + 7.25).abs() < 1e-9, "{kw}");
    }

    #[test]
    fn generic_map_refuses_register_zero_and_needs_a_map() {
        let mut g = generic(RegisterType::U16, WordOrder::HighFirst);
        g.currents[1] = 0;
        assert_eq!(RegisterMap::generic(&g), Err(ProfileError::RegisterZero));
        let config = MeterConfig {
            id: meter(),
            protocol: Default::default(),
            address: "127.0.0.1:502".into(),
            unit_id: 1,
            profile: MeterProfile::Generic,
            poll_ms: 1000,
            timeout_ms: 1000,
            measures: Default::default(),
            baud_rate: 19200,
            parity: Default::default(),
            stop_bits: 1,
            generic: None,
        };
        assert_eq!(
            RegisterMap::for_meter(&config),
            Err(ProfileError::MissingGenericMap)
        );
    }

    #[test]
    fn reads_never_bridge_a_gap() {
        let g = GenericMap {
            currents: [1, 200, 400],
            power: Some(124),
            register_type: RegisterType::F32,
            word_order: WordOrder::HighFirst,
            kind: RegisterKind::Holding,
            current_scale: 1.0,
            power_scale: 1.0,
        };
        let requests = RegisterMap::generic(&g)
            .expect("a valid map")
            .read_requests();
        let starts: Vec<u16> = requests.iter().map(|r| r.address).collect();
        assert_eq!(starts, vec![0, 123, 199, 399]);
        assert!(requests.iter().all(|r| r.count == 2));
    }

    #[test]
    fn overlapping_fields_share_one_read() {
        let g = GenericMap {
            currents: [10, 12, 14],
            power: Some(11),
            register_type: RegisterType::F32,
            word_order: WordOrder::HighFirst,
            kind: RegisterKind::Holding,
            current_scale: 1.0,
            power_scale: 1.0,
        };
        let requests = RegisterMap::generic(&g)
            .expect("a valid map")
            .read_requests();
        assert_eq!(
            requests,
            vec![ReadRequest {
                kind: RegisterKind::Holding,
                address: 9,
                count: 6,
                optional: false
            }]
        );
    }

    #[test]
    fn encode_saturates_integers_short_of_the_sentinels() {
        let mut g = generic(RegisterType::U16, WordOrder::HighFirst);
        g.current_scale = 1.0;
        let map = RegisterMap::generic(&g).expect("a valid map");
        let w = map.encode([Some(1.0e9), Some(0.0), Some(0.0)], None);
        assert_eq!(w.get(100), Some(0xFFFE));
    }

    #[test]
    fn a_refused_power_read_still_gives_the_currents() {
        let map = builtin(MeterProfile::Nsx);
        let w = words(&[(1015, &[10, 20, 30])]);
        let reading = map.decode(&w, &meter(), at()).expect("a reading");
        assert_eq!(
            reading.currents,
            PerPhase([Amps(10.0), Amps(20.0), Amps(30.0)])
        );
        assert_eq!(reading.power_kw, None);
    }
}
