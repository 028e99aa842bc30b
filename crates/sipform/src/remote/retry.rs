//! When a failed request is tried again: the backoff, the failure budgets (429s counted
//! apart from other failures) and how long the server may hold us.

use std::time::{Duration, Instant};

use rand::Rng;

use super::error::ClientError;

/// Backoff policy for transient failures.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub max_attempts: u32,
    pub base: Duration,
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_attempts: 8,
            base: Duration::from_millis(100),
            cap: Duration::from_secs(5),
        }
    }
}

impl RetryPolicy {
    /// Full jitter: a random wait up to `min(cap, base × 2^attempt)`.
    pub fn backoff(&self, attempt: u32) -> Duration {
        let exp = self
            .base
            .saturating_mul(1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX));
        let ceiling = exp.min(self.cap);
        let ms = ceiling.as_millis().max(1) as u64;
        Duration::from_millis(rand::rng().random_range(ms / 2..=ms))
    }
}

/// How many 429 answers one request may take before giving up. They are counted apart from
/// `max_attempts`: a 429 says the server is fine and only asks us to slow down, and a server
/// that throttles below the client's pace answers many of them in a row.
pub(crate) const MAX_THROTTLED_ATTEMPTS: u32 = 40;

/// A `Retry-After` longer than this holds every request of the client, not only the one that
/// got it: the server asks for a real break, not a slower pace.
pub(crate) const HOLD_ALL_AFTER: Duration = Duration::from_secs(2);

/// Failed attempts of one request: 429s apart from the rest (see [`MAX_THROTTLED_ATTEMPTS`]).
#[derive(Default)]
pub(super) struct Tries {
    pub(super) failures: u32,
    pub(super) throttled: u32,
    /// When this request was first throttled: the time since counts against the cap.
    pub(super) throttled_since: Option<Instant>,
}

impl Tries {
    /// Counts `e`; returns the attempt number its backoff should use.
    pub(super) fn count(&mut self, e: &ClientError) -> u32 {
        if e.status() == Some(429) {
            self.throttled_since.get_or_insert_with(Instant::now);
            self.throttled += 1;
            self.throttled
        } else {
            self.failures += 1;
            self.failures
        }
    }

    pub(super) fn exhausted(&self, p: &RetryPolicy) -> bool {
        self.failures >= p.max_attempts || self.throttled >= MAX_THROTTLED_ATTEMPTS
    }
}

/// `1s`, `2.5s`, `250ms`: a wait as a person reads it.
pub(super) fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{}s", d.as_secs())
    } else if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else {
        format!("{:.1}s", d.as_secs_f64())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::Method;

    #[test]
    fn backoff_grows_and_is_capped() {
        let p = RetryPolicy {
            max_attempts: 5,
            base: Duration::from_millis(100),
            cap: Duration::from_millis(800),
        };
        for _ in 0..50 {
            let d1 = p.backoff(1);
            assert!(d1 >= Duration::from_millis(100) && d1 <= Duration::from_millis(200));
            let d10 = p.backoff(10);
            assert!(d10 <= Duration::from_millis(800) && d10 >= Duration::from_millis(400));
        }
    }

    #[test]
    fn throttling_does_not_spend_the_failure_budget() {
        let p = RetryPolicy::default();
        let s = |status| ClientError::Status {
            method: Method::GET,
            route: "/api/agents".into(),
            status,
            message: String::new(),
        };
        let mut t = Tries::default();
        for i in 1..MAX_THROTTLED_ATTEMPTS {
            assert_eq!(t.count(&s(429)), i);
            assert!(!t.exhausted(&p), "{i} × 429 must not give up");
        }
        assert_eq!(t.count(&s(500)), 1, "a 5xx starts its own count");
        t.count(&s(429));
        assert!(t.exhausted(&p));
        let mut t = Tries::default();
        for _ in 0..p.max_attempts {
            t.count(&s(503));
        }
        assert!(t.exhausted(&p));
    }
}
