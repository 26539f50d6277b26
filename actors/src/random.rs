//! (pure) A small seeded random generator (SplitMix64) for the simulation, the property
//! tests and the benchmarks. Our own rather than a crate's so that a seed gives the same
//! fleet, case or benchmark site on every release and platform: `rand`'s `StdRng`
//! explicitly does not promise that.

/// Deterministic pseudo-random numbers from a 64-bit seed.
#[derive(Clone, Debug)]
pub struct SimRng {
    state: u64,
}

impl SimRng {
    pub fn new(seed: u64) -> SimRng {
        SimRng { state: seed }
    }

    /// An independent stream for one member of a fleet (station `index` of `seed`).
    pub fn for_member(seed: u64, index: u64) -> SimRng {
        let mut mixer = SimRng::new(seed ^ index.wrapping_mul(0xA076_1D64_78BD_642F));
        SimRng::new(mixer.next_u64())
    }

    pub fn next_u64(&mut self) -> u64 {
        self.state = self.state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn unit(&mut self) -> f64 {
        // The top 53 bits make every value exactly representable.
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Uniform in [low, high); `low` when the range is empty.
    pub fn uniform(&mut self, low: f64, high: f64) -> f64 {
        if high <= low {
            return low;
        }
        low + (high - low) * self.unit()
    }

    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// Exponentially distributed with the given mean (waiting times of a Poisson process).
    pub fn exponential(&mut self, mean: f64) -> f64 {
        -mean * (1.0 - self.unit()).ln()
    }

    /// One element of a non-empty slice; `None` for an empty one.
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> Option<&'a T> {
        if items.is_empty() {
            return None;
        }
        let i = (self.unit() * items.len() as f64) as usize;
        items.get(i.min(items.len() - 1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_sequence() {
        let mut a = SimRng::for_member(42, 7);
        let mut b = SimRng::for_member(42, 7);
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
    }

    #[test]
    fn fleet_members_get_different_streams() {
        let mut a = SimRng::for_member(42, 1);
        let mut b = SimRng::for_member(42, 2);
        let same = (0..100).filter(|_| a.next_u64() == b.next_u64()).count();
        assert_eq!(same, 0);
    }

    #[test]
    fn uniform_values_stay_in_their_range_and_cover_it() {
        let mut rng = SimRng::new(1);
        let values: Vec<f64> = (0..10_000).map(|_| rng.uniform(2.0, 5.0)).collect();
        assert!(values.iter().all(|v| (2.0..5.0).contains(v)));
        assert!(values.iter().any(|v| *v < 2.1));
        assert!(values.iter().any(|v| *v > 4.9));
    }

    #[test]
    fn exponential_waits_average_to_their_mean() {
        let mut rng = SimRng::new(3);
        let n = 20_000;
        let mean = (0..n).map(|_| rng.exponential(10.0)).sum::<f64>() / n as f64;
        assert!((mean - 10.0).abs() < 0.5, "mean {mean}");
    }

    #[test]
    fn pick_returns_none_only_for_an_empty_slice() {
        let mut rng = SimRng::new(5);
        assert_eq!(rng.pick::<u8>(&[]), None);
        assert!(rng.pick(&[1, 2, 3]).is_some());
    }
}
