//! When a plugin is suspended: at its first failure (`on_error = "halt"`), after
//! `max_consecutive_failures` in a row, or when failures take too large a share of its recent
//! calls or of the recent time. The shares catch a plugin that fails often but not always (a
//! filter timing out on 9 events of 10 would otherwise hold the pipeline at a fraction of its
//! speed for good).

use crate::config::{OnError, PluginConfig};
use std::time::{Duration, Instant};

/// Calls the share of failures is taken over.
const CALL_WINDOW: u32 = 100;
/// Time the share of time spent failing is taken over.
const TIME_WINDOW: Duration = Duration::from_secs(10);
/// Failed calls among the last [`CALL_WINDOW`] before the share of time counts: one slow
/// failure (a plugin whose `timeout_ms` is long) is not yet "often".
const MIN_FAILURES_FOR_TIME: u32 = 3;

/// A plugin's failure policy and its recent record.
#[derive(Debug)]
pub struct FailurePolicy {
    on_error: OnError,
    max_consecutive: u32,
    max_percent: u32,
    consecutive: u32,
    /// The outcomes of the last [`CALL_WINDOW`] calls, one bit each (1: failed), newest lowest.
    recent: u128,
    /// Calls recorded, up to [`CALL_WINDOW`].
    calls: u32,
    /// Time spent in failed calls since `window_start`, and in the window before it.
    failing: Duration,
    failing_before: Duration,
    window_start: Instant,
}

impl FailurePolicy {
    /// The policy `config` sets, with a clean record.
    pub fn new(config: &PluginConfig) -> FailurePolicy {
        FailurePolicy {
            on_error: config.on_error,
            max_consecutive: config.max_consecutive_failures,
            max_percent: config.max_failure_percent,
            consecutive: 0,
            recent: 0,
            calls: 0,
            failing: Duration::ZERO,
            failing_before: Duration::ZERO,
            window_start: Instant::now(),
        }
    }

    /// Record a call that took `took`; why the plugin must be suspended, if it must.
    pub fn record(&mut self, failed: bool, took: Duration) -> Option<String> {
        self.consecutive = if failed { self.consecutive + 1 } else { 0 };
        let mask = (1u128 << CALL_WINDOW) - 1;
        self.recent = ((self.recent << 1) | u128::from(failed)) & mask;
        self.calls = (self.calls + 1).min(CALL_WINDOW);
        // Two back-to-back windows: the share is judged over the current one and the part of
        // the previous one it still overlaps.
        let now = Instant::now();
        while now.duration_since(self.window_start) >= TIME_WINDOW {
            self.failing_before = std::mem::take(&mut self.failing);
            self.window_start += TIME_WINDOW;
            if now.duration_since(self.window_start) >= TIME_WINDOW {
                (self.failing_before, self.window_start) = (Duration::ZERO, now);
            }
        }
        if failed {
            self.failing += took;
        }
        if !failed {
            return None;
        }
        if self.on_error == OnError::Halt {
            return Some("on_error = \"halt\"".into());
        }
        if self.consecutive >= self.max_consecutive {
            return Some(format!("{} failed calls in a row", self.consecutive));
        }
        let failures = self.recent.count_ones();
        if self.calls == CALL_WINDOW && failures * 100 >= self.max_percent * CALL_WINDOW {
            return Some(format!("{failures} of its last {CALL_WINDOW} calls failed"));
        }
        let into_window = now.duration_since(self.window_start);
        let overlap = TIME_WINDOW.saturating_sub(into_window).as_secs_f64() / TIME_WINDOW.as_secs_f64();
        let failing = self.failing.as_secs_f64() + self.failing_before.as_secs_f64() * overlap;
        if failures >= MIN_FAILURES_FOR_TIME
            && failing * 100.0 >= f64::from(self.max_percent) * TIME_WINDOW.as_secs_f64()
        {
            return Some(format!("its failed calls took {failing:.1} s of the last {} s", TIME_WINDOW.as_secs()));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(toml: &str) -> FailurePolicy {
        let config = format!("[[plugins]]\nname = \"p\"\npath = \"Cargo.toml\"\n{toml}");
        FailurePolicy::new(&crate::config::Config::parse(&config).unwrap().plugins[0])
    }

    #[test]
    fn failing_nine_calls_in_ten_suspends_within_a_window_of_calls() {
        let mut policy = policy("");
        let verdicts: Vec<Option<String>> =
            (0..CALL_WINDOW).map(|i| policy.record(i % 10 != 0, Duration::from_micros(1))).collect();
        assert!(verdicts[..99].iter().all(Option::is_none), "not before a whole window: {verdicts:?}");
        assert_eq!(verdicts[99].as_deref(), Some("90 of its last 100 calls failed"));
    }

    #[test]
    fn failing_one_call_in_four_quickly_is_tolerated() {
        let mut policy = policy("");
        for i in 0..10 * CALL_WINDOW {
            assert_eq!(policy.record(i % 4 == 0, Duration::from_micros(1)), None, "call {i}");
        }
    }

    #[test]
    fn failures_taking_half_the_time_suspend_even_when_rare() {
        // One call in three times out after 2 s; the others succeed at once.
        let mut policy = policy("");
        let verdicts: Vec<Option<String>> = (0..9).map(|i| policy.record(i % 3 == 2, Duration::from_secs(2))).collect();
        assert!(verdicts[..8].iter().all(Option::is_none), "not before three failures: {verdicts:?}");
        assert_eq!(verdicts[8].as_deref(), Some("its failed calls took 6.0 s of the last 10 s"));
    }

    #[test]
    fn one_long_failure_alone_does_not_suspend() {
        let mut policy = policy("timeout_ms = 9000");
        assert_eq!(policy.record(true, Duration::from_secs(9)), None);
        assert_eq!(policy.record(false, Duration::ZERO), None);
    }

    #[test]
    fn halt_and_consecutive_failures_still_suspend() {
        assert!(policy("on_error = \"halt\"").record(true, Duration::ZERO).is_some());
        let mut policy = policy("max_consecutive_failures = 3");
        assert_eq!(policy.record(true, Duration::ZERO), None);
        assert_eq!(policy.record(true, Duration::ZERO), None);
        assert_eq!(policy.record(true, Duration::ZERO).as_deref(), Some("3 failed calls in a row"));
    }
}
