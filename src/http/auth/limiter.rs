//! Login rate limiting per client address: after [`MAX_FAILURES`] failed attempts within
//! [`WINDOW`], further attempts from that address are refused until the oldest ages out.
//! This makes guessing a password (or the setup code) over the network impractical.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant};

pub const MAX_FAILURES: usize = 5;
pub const WINDOW: Duration = Duration::from_secs(60);

#[derive(Default)]
pub struct LoginLimiter {
    failures: HashMap<IpAddr, Vec<Instant>>,
}

impl LoginLimiter {
    /// `Err(seconds to wait)` when `client` may not try now.
    pub fn check(&mut self, client: IpAddr, now: Instant) -> Result<(), u64> {
        self.forget_old(now);
        match self.failures.get(&client) {
            Some(times) if times.len() >= MAX_FAILURES => {
                let oldest = times.iter().min().copied().unwrap_or(now);
                let wait = WINDOW.saturating_sub(now.saturating_duration_since(oldest));
                Err(wait.as_secs().max(1))
            }
            _ => Ok(()),
        }
    }

    pub fn failed(&mut self, client: IpAddr, now: Instant) {
        self.failures.entry(client).or_default().push(now);
    }

    /// A successful login clears the address's record.
    pub fn succeeded(&mut self, client: IpAddr) {
        self.failures.remove(&client);
    }

    fn forget_old(&mut self, now: Instant) {
        self.failures.retain(|_, times| {
            times.retain(|t| now.saturating_duration_since(*t) < WINDOW);
            !times.is_empty()
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sixth_attempt_within_a_minute_is_refused_until_the_first_ages_out() {
        let mut limiter = LoginLimiter::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let b: IpAddr = [10, 0, 0, 2].into();
        let t0 = Instant::now();
        for i in 0..MAX_FAILURES {
            assert!(limiter.check(a, t0 + Duration::from_secs(i as u64)).is_ok());
            limiter.failed(a, t0 + Duration::from_secs(i as u64));
        }
        let wait = limiter
            .check(a, t0 + Duration::from_secs(10))
            .expect_err("locked out");
        assert_eq!(wait, 50);
        assert!(
            limiter.check(b, t0).is_ok(),
            "other addresses are not affected"
        );
        assert!(limiter.check(a, t0 + WINDOW).is_ok());
    }

    #[test]
    fn success_clears_the_record() {
        let mut limiter = LoginLimiter::default();
        let a: IpAddr = [10, 0, 0, 1].into();
        let t0 = Instant::now();
        for _ in 0..MAX_FAILURES - 1 {
            limiter.failed(a, t0);
        }
        limiter.succeeded(a);
        limiter.failed(a, t0);
        assert!(limiter.check(a, t0).is_ok());
    }
}
