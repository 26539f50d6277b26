//! MeterValues: what stations measure, and the extraction of what the controller needs
//! from it (per-phase current drawn, energy register, power) in our units.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::strict::{date_time, non_empty_objects, some};
use crate::units::{Amps, PerPhase, Phase};

ocpp_enum! {
    /// Why a value was sampled.
    pub enum ReadingContext {
        InterruptionBegin = "Interruption.Begin",
        InterruptionEnd = "Interruption.End",
        SampleClock = "Sample.Clock",
        SamplePeriodic = "Sample.Periodic",
        TransactionBegin = "Transaction.Begin",
        TransactionEnd = "Transaction.End",
        Trigger = "Trigger",
        Other = "Other",
    }
}

ocpp_enum! {
    /// A plain decimal, or signed data we cannot read as a number.
    pub enum ValueFormat {
        Raw = "Raw",
        SignedData = "SignedData",
    }
}

ocpp_enum! {
    /// What was measured. Absent means `Energy.Active.Import.Register`.
    pub enum Measurand {
        EnergyActiveExportRegister = "Energy.Active.Export.Register",
        EnergyActiveImportRegister = "Energy.Active.Import.Register",
        EnergyReactiveExportRegister = "Energy.Reactive.Export.Register",
        EnergyReactiveImportRegister = "Energy.Reactive.Import.Register",
        EnergyActiveExportInterval = "Energy.Active.Export.Interval",
        EnergyActiveImportInterval = "Energy.Active.Import.Interval",
        EnergyReactiveExportInterval = "Energy.Reactive.Export.Interval",
        EnergyReactiveImportInterval = "Energy.Reactive.Import.Interval",
        PowerActiveExport = "Power.Active.Export",
        PowerActiveImport = "Power.Active.Import",
        PowerOffered = "Power.Offered",
        PowerReactiveExport = "Power.Reactive.Export",
        PowerReactiveImport = "Power.Reactive.Import",
        PowerFactor = "Power.Factor",
        /// The current the vehicle draws, per phase: what the controller subtracts
        /// from a zone meter's total.
        CurrentImport = "Current.Import",
        CurrentExport = "Current.Export",
        CurrentOffered = "Current.Offered",
        Voltage = "Voltage",
        Frequency = "Frequency",
        Temperature = "Temperature",
        SoC = "SoC",
        Rpm = "RPM",
    }
}

ocpp_enum! {
    /// The phase (or pair of conductors) a value was measured on.
    pub enum MeterPhase {
        L1 = "L1",
        L2 = "L2",
        L3 = "L3",
        N = "N",
        L1N = "L1-N",
        L2N = "L2-N",
        L3N = "L3-N",
        L1L2 = "L1-L2",
        L2L3 = "L2-L3",
        L3L1 = "L3-L1",
    }
}

impl MeterPhase {
    /// The supply phase of a line or line-to-neutral measurement.
    pub fn line(self) -> Option<Phase> {
        match self {
            MeterPhase::L1 | MeterPhase::L1N => Some(Phase::L1),
            MeterPhase::L2 | MeterPhase::L2N => Some(Phase::L2),
            MeterPhase::L3 | MeterPhase::L3N => Some(Phase::L3),
            MeterPhase::N | MeterPhase::L1L2 | MeterPhase::L2L3 | MeterPhase::L3L1 => None,
        }
    }
}

ocpp_enum! {
    /// Where a value was measured. Absent means `Outlet`.
    pub enum Location {
        Cable = "Cable",
        Ev = "EV",
        Inlet = "Inlet",
        Outlet = "Outlet",
        Body = "Body",
    }
}

ocpp_enum! {
    /// The unit of a value. Absent means `Wh`.
    pub enum UnitOfMeasure {
        Wh = "Wh",
        KWh = "kWh",
        Varh = "varh",
        Kvarh = "kvarh",
        W = "W",
        KW = "kW",
        Va = "VA",
        KVa = "kVA",
        Var = "var",
        Kvar = "kvar",
        A = "A",
        V = "V",
        K = "K",
        /// Sent with the spec's own spelling "Celcius", the only one that both the
        /// MeterValues and the StopTransaction schemas accept; "Celsius" is read too.
        Celsius = "Celcius" | "Celsius",
        Fahrenheit = "Fahrenheit",
        Percent = "Percent",
    }
}

/// One measured value with its meaning.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct SampledValue {
    /// A decimal as text for `Raw`, opaque data for `SignedData`.
    pub value: String,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub context: Option<ReadingContext>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub format: Option<ValueFormat>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub measurand: Option<Measurand>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub phase: Option<MeterPhase>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub location: Option<Location>,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub unit: Option<UnitOfMeasure>,
}

impl SampledValue {
    /// A plain reading: `value` with a measurand, unit and optional phase.
    pub fn reading(
        value: f64,
        measurand: Measurand,
        unit: UnitOfMeasure,
        phase: Option<MeterPhase>,
    ) -> SampledValue {
        SampledValue {
            value: value.to_string(),
            context: None,
            format: None,
            measurand: Some(measurand),
            phase,
            location: None,
            unit: Some(unit),
        }
    }

    /// The value as a number: `None` for signed data or text that is not a finite decimal.
    pub fn number(&self) -> Option<f64> {
        if self.format == Some(ValueFormat::SignedData) {
            return None;
        }
        self.value
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|v| v.is_finite())
    }

    /// The measurand, with the spec's default.
    pub fn measurand_or_default(&self) -> Measurand {
        self.measurand
            .unwrap_or(Measurand::EnergyActiveImportRegister)
    }
}

/// Values sampled at one instant.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterValue {
    #[serde(with = "date_time")]
    pub timestamp: DateTime<Utc>,
    /// At least one.
    #[serde(deserialize_with = "non_empty_objects")]
    pub sampled_value: Vec<SampledValue>,
}

/// MeterValues.req: periodic or triggered samples of a connector (0 = the station's
/// main meter).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct MeterValuesRequest {
    pub connector_id: u32,
    #[serde(
        default,
        skip_serializing_if = "Option::is_none",
        deserialize_with = "some"
    )]
    pub transaction_id: Option<i32>,
    /// At least one.
    #[serde(deserialize_with = "non_empty_objects")]
    pub meter_value: Vec<MeterValue>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MeterValuesResponse {}

/// What the controller reads from a station's meter values, in our units: for each
/// quantity, the newest value (by timestamp; on a tie, the later in the list).
///
/// Only plain, finite, non-negative values count; signed data, values measured in
/// the station's body, and units that do not fit the measurand are skipped.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct ImportReadings {
    /// `Current.Import` on L1, L2, L3 (or L1-N, ...), in A (unit `A` or absent).
    pub current: PerPhase<Option<Amps>>,
    /// `Current.Import` without a phase: the current of a 1-phase station, or a value
    /// a 3-phase station does not split by phase. The caller knows which.
    pub current_unphased: Option<Amps>,
    /// `Energy.Active.Import.Register` without a phase, in Wh (kWh converted).
    pub energy_wh: Option<f64>,
    /// `Power.Active.Import` without a phase, in W (kW converted).
    pub power_w: Option<f64>,
    /// The timestamp of the newest meter value that gave any of the above.
    pub timestamp: Option<DateTime<Utc>>,
}

/// A value and when it was measured, so that the newest wins.
#[derive(Clone, Copy)]
struct Stamped {
    at: DateTime<Utc>,
    value: f64,
}

fn keep_newest(slot: &mut Option<Stamped>, at: DateTime<Utc>, value: f64) {
    if slot.is_none_or(|old| at >= old.at) {
        *slot = Some(Stamped { at, value });
    }
}

impl ImportReadings {
    pub fn from_meter_values(values: &[MeterValue]) -> ImportReadings {
        let mut current: [Option<Stamped>; 3] = [None; 3];
        let mut unphased = None;
        let mut energy = None;
        let mut power = None;
        let mut newest: Option<DateTime<Utc>> = None;
        for meter_value in values {
            let at = meter_value.timestamp;
            for sample in &meter_value.sampled_value {
                if sample.location == Some(Location::Body) {
                    continue;
                }
                let Some(number) = sample.number().filter(|v| *v >= 0.0) else {
                    continue;
                };
                let used = match (sample.measurand_or_default(), sample.unit, sample.phase) {
                    (Measurand::CurrentImport, None | Some(UnitOfMeasure::A), None) => {
                        keep_newest(&mut unphased, at, number);
                        true
                    }
                    (Measurand::CurrentImport, None | Some(UnitOfMeasure::A), Some(phase)) => {
                        match phase.line() {
                            Some(line) => {
                                keep_newest(&mut current[line.index()], at, number);
                                true
                            }
                            None => false,
                        }
                    }
                    (
                        Measurand::EnergyActiveImportRegister,
                        None | Some(UnitOfMeasure::Wh),
                        None,
                    ) => {
                        keep_newest(&mut energy, at, number);
                        true
                    }
                    (Measurand::EnergyActiveImportRegister, Some(UnitOfMeasure::KWh), None) => {
                        keep_newest(&mut energy, at, number * 1000.0);
                        true
                    }
                    (Measurand::PowerActiveImport, None | Some(UnitOfMeasure::W), None) => {
                        keep_newest(&mut power, at, number);
                        true
                    }
                    (Measurand::PowerActiveImport, Some(UnitOfMeasure::KW), None) => {
                        keep_newest(&mut power, at, number * 1000.0);
                        true
                    }
                    _ => false,
                };
                if used && newest.is_none_or(|t| at > t) {
                    newest = Some(at);
                }
            }
        }
        let amps = |slot: Option<Stamped>| slot.map(|s| Amps(s.value));
        ImportReadings {
            current: PerPhase(current.map(amps)),
            current_unphased: amps(unphased),
            energy_wh: energy.map(|s| s.value),
            power_w: power.map(|s| s.value),
            timestamp: newest,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn at(second: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2025, 3, 1, 12, 0, second)
            .single()
            .expect("a valid date")
    }

    fn current(value: &str, phase: Option<MeterPhase>) -> SampledValue {
        SampledValue {
            value: value.to_owned(),
            context: None,
            format: None,
            measurand: Some(Measurand::CurrentImport),
            phase,
            location: None,
            unit: Some(UnitOfMeasure::A),
        }
    }

    #[test]
    fn per_phase_current_is_read_from_line_and_line_to_neutral_labels() {
        let values = [MeterValue {
            timestamp: at(0),
            sampled_value: vec![
                current("16.2", Some(MeterPhase::L1)),
                current("15.9", Some(MeterPhase::L2N)),
                current("0", Some(MeterPhase::L3)),
                current("3.0", Some(MeterPhase::N)),
            ],
        }];
        let readings = ImportReadings::from_meter_values(&values);
        assert_eq!(
            readings.current,
            PerPhase([Some(Amps(16.2)), Some(Amps(15.9)), Some(Amps(0.0))])
        );
        assert_eq!(readings.current_unphased, None);
        assert_eq!(readings.timestamp, Some(at(0)));
    }

    #[test]
    fn energy_without_measurand_or_unit_is_the_import_register_in_wh() {
        let bare = SampledValue {
            measurand: None,
            unit: None,
            ..current("1234", None)
        };
        let in_kwh = SampledValue {
            measurand: Some(Measurand::EnergyActiveImportRegister),
            unit: Some(UnitOfMeasure::KWh),
            ..current("1.5", None)
        };
        let older = [MeterValue {
            timestamp: at(0),
            sampled_value: vec![bare],
        }];
        assert_eq!(
            ImportReadings::from_meter_values(&older).energy_wh,
            Some(1234.0)
        );
        let newer = [
            older[0].clone(),
            MeterValue {
                timestamp: at(1),
                sampled_value: vec![in_kwh],
            },
        ];
        assert_eq!(
            ImportReadings::from_meter_values(&newer).energy_wh,
            Some(1500.0)
        );
    }

    #[test]
    fn the_newest_value_wins_whatever_the_order_of_the_list() {
        let values = [
            MeterValue {
                timestamp: at(5),
                sampled_value: vec![current("10", Some(MeterPhase::L1))],
            },
            MeterValue {
                timestamp: at(1),
                sampled_value: vec![current("30", Some(MeterPhase::L1))],
            },
        ];
        assert_eq!(
            ImportReadings::from_meter_values(&values)
                .current
                .get(Phase::L1),
            Some(Amps(10.0))
        );
    }

    #[test]
    fn unreadable_negative_and_foreign_unit_values_are_skipped() {
        let values = [MeterValue {
            timestamp: at(0),
            sampled_value: vec![
                SampledValue {
                    format: Some(ValueFormat::SignedData),
                    ..current("16", Some(MeterPhase::L1))
                },
                current("-2", Some(MeterPhase::L2)),
                current("NaN", Some(MeterPhase::L3)),
                SampledValue {
                    unit: Some(UnitOfMeasure::V),
                    ..current("230", Some(MeterPhase::L3))
                },
                SampledValue {
                    location: Some(Location::Body),
                    ..current("8", None)
                },
            ],
        }];
        assert_eq!(
            ImportReadings::from_meter_values(&values),
            ImportReadings::default()
        );
    }

    #[test]
    fn power_in_kw_is_converted_to_w() {
        let power = SampledValue {
            measurand: Some(Measurand::PowerActiveImport),
            unit: Some(UnitOfMeasure::KW),
            ..current("11.04", None)
        };
        let values = [MeterValue {
            timestamp: at(0),
            sampled_value: vec![power],
        }];
        let watts = ImportReadings::from_meter_values(&values)
            .power_w
            .expect("a power reading");
        assert!((watts - 11_040.0).abs() < 1e-6);
    }
}
