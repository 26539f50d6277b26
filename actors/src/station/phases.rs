//! Which of a station's phases a vehicle really charges on, from its per-phase
//! `Current.Import`. Pure. Many cars charge on one phase of a 3-phase station; budgeting
//! them on three wastes two thirds of what they are given.
//!
//! Fail closed: until known, every phase of the station counts. A phase stops counting
//! only after [`SAMPLES_TO_DROP`] samples in a row below [`IN_USE_A`] taken while the
//! vehicle draws on another phase and is offered at least the minimum current (so a
//! paused or full vehicle says nothing); a phase that shows current counts again at once.

use crate::units::{Amps, Phase};

/// A phase carries the vehicle's current above this.
pub const IN_USE_A: f64 = 1.5;
/// Samples in a row below [`IN_USE_A`] before a phase stops counting.
pub const SAMPLES_TO_DROP: u8 = 2;

/// The evidence about one connector's vehicle, in the station's own phases.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PhaseDetector {
    /// Samples in a row below [`IN_USE_A`], per station phase.
    below: [u8; 3],
    /// Whether any sample was evidence.
    seen: bool,
}

impl PhaseDetector {
    /// One MeterValues: the station's currents per phase (`None` where it reported
    /// nothing), while `offered` is the most the vehicle may take.
    pub fn sample(&mut self, current: [Option<Amps>; 3], offered: Amps, min_current: Amps) {
        let drawing = current
            .iter()
            .flatten()
            .any(|a| a.is_finite() && a.0 > IN_USE_A);
        if !drawing || offered < min_current {
            return;
        }
        self.seen = true;
        for (below, a) in self.below.iter_mut().zip(current) {
            // A phase the station leaves out while it reports another carries nothing
            // (stations report the phases a vehicle uses); garbage counts as current.
            match a.unwrap_or(Amps::ZERO) {
                a if a.is_finite() && a.0 <= IN_USE_A => *below = below.saturating_add(1),
                _ => *below = 0,
            }
        }
    }

    /// The station phases the vehicle charges on (all three until known).
    pub fn in_use(&self) -> [bool; 3] {
        self.below.map(|b| b < SAMPLES_TO_DROP)
    }

    /// The vehicle charges on exactly one of the station's phases: which.
    pub fn single_phase(&self) -> Option<Phase> {
        let used = self.in_use();
        let mut on = Phase::ALL.into_iter().filter(|p| used[p.index()]);
        match (on.next(), on.next()) {
            (Some(p), None) => Some(p),
            _ => None,
        }
    }

    /// Whether enough was seen to say which phases are in use.
    pub fn is_known(&self) -> bool {
        self.seen && self.below.iter().all(|&b| b == 0 || b >= SAMPLES_TO_DROP)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MIN: Amps = Amps(6.0);

    fn one_phase(a: f64) -> [Option<Amps>; 3] {
        [Some(Amps(a)), Some(Amps(0.1)), Some(Amps(0.0))]
    }

    #[test]
    fn every_phase_counts_until_two_samples_show_otherwise() {
        let mut d = PhaseDetector::default();
        assert_eq!(d.in_use(), [true; 3]);
        assert!(!d.is_known());
        d.sample(one_phase(15.8), Amps(16.0), MIN);
        assert_eq!(d.in_use(), [true; 3], "one sample is not enough");
        d.sample(one_phase(15.9), Amps(16.0), MIN);
        assert_eq!(d.in_use(), [true, false, false]);
        assert_eq!(d.single_phase(), Some(Phase::L1));
        assert!(d.is_known());
    }

    #[test]
    fn a_paused_or_underoffered_vehicle_is_no_evidence() {
        let mut d = PhaseDetector::default();
        for _ in 0..5 {
            d.sample([Some(Amps::ZERO); 3], Amps(16.0), MIN);
            d.sample(one_phase(4.0), Amps(4.0), MIN);
        }
        assert_eq!(d.in_use(), [true; 3]);
        assert!(!d.is_known());
    }

    #[test]
    fn a_phase_that_shows_current_counts_again_at_once() {
        let mut d = PhaseDetector::default();
        d.sample(one_phase(10.0), Amps(16.0), MIN);
        d.sample(one_phase(10.0), Amps(16.0), MIN);
        assert_eq!(d.single_phase(), Some(Phase::L1));
        d.sample([Some(Amps(10.0)); 3], Amps(16.0), MIN);
        assert_eq!(d.in_use(), [true; 3]);
        assert_eq!(d.single_phase(), None);
    }

    #[test]
    fn phases_left_out_of_a_report_carry_nothing_and_garbage_counts_as_current() {
        let mut d = PhaseDetector::default();
        for _ in 0..2 {
            d.sample([None, Some(Amps(12.0)), None], Amps(16.0), MIN);
        }
        assert_eq!(d.single_phase(), Some(Phase::L2));
        let mut d = PhaseDetector::default();
        for _ in 0..3 {
            d.sample(
                [Some(Amps(12.0)), Some(Amps(f64::NAN)), None],
                Amps(16.0),
                MIN,
            );
        }
        assert_eq!(d.in_use(), [true, true, false]);
    }
}
