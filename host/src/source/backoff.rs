//! Exponential reconnect delay with jitter, reset after a healthy connection.

use std::time::{Duration, Instant};

/// Delays between reconnect attempts: 0.5 s doubling to 30 s, ±25 % jitter.
pub struct Backoff {
    attempt: u32,
}

const BASE: Duration = Duration::from_millis(500);
const MAX: Duration = Duration::from_secs(30);
/// A connection that lived this long counts as healthy and resets the delay.
pub const HEALTHY: Duration = Duration::from_secs(30);

impl Backoff {
    /// Start with the shortest delay.
    pub fn new() -> Backoff {
        Backoff { attempt: 0 }
    }

    /// The delay before the next attempt; a `healthy` last connection (it delivered events, or
    /// lived [`HEALTHY`] long) starts again from the shortest.
    pub fn next_delay(&mut self, healthy: bool) -> Duration {
        if healthy {
            self.attempt = 0;
        }
        let exponential = BASE.saturating_mul(1 << self.attempt.min(16)).min(MAX);
        self.attempt += 1;
        exponential.mul_f64(0.75 + 0.5 * jitter())
    }
}

/// A number in [0, 1) that differs between calls and processes; good enough to spread reconnects.
fn jitter() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(Instant::now()) % 1000) as f64 / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grows_caps_and_resets() {
        let mut backoff = Backoff::new();
        let first = backoff.next_delay(false);
        assert!(first >= BASE.mul_f64(0.75) && first <= BASE.mul_f64(1.25));
        let delays: Vec<_> = (0..20).map(|_| backoff.next_delay(false)).collect();
        assert!(delays.iter().all(|d| *d <= MAX.mul_f64(1.25)));
        assert!(delays.last().unwrap() >= &MAX.mul_f64(0.75));
        assert!(backoff.next_delay(true) <= BASE.mul_f64(1.25));
    }
}
