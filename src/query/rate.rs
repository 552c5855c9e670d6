//! A token bucket per query token.
//!
//! ```yaml
//! service:
//!   api:
//!     auth:
//!       tokens:
//!         - name: auditor
//!           token: ${env:VELLUM_AUDITOR_TOKEN}
//!           pipelines: ["*"]
//!           rate_limit: { requests_per_second: 50, burst: 500 }   # the default
//! ```
//!
//! The bucket holds up to `burst` requests and refills at `requests_per_second`; a
//! request finding it empty is answered 429 with `Retry-After` (whole seconds, one at
//! least) and counted in `vellum_query_rate_limited_total{token="<name>"}`. The default lets
//! an auditor page through a large result at once and still stops a runaway script.

use std::time::{Duration, Instant};

use serde::Deserialize;

/// `rate_limit` of a query token.
#[derive(Debug, Clone, Copy, PartialEq, Deserialize, schemars::JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RateLimit {
    #[serde(default = "default_rate")]
    pub requests_per_second: f64,
    #[serde(default = "default_burst")]
    pub burst: u32,
}

fn default_rate() -> f64 {
    50.0
}

fn default_burst() -> u32 {
    500
}

impl Default for RateLimit {
    fn default() -> RateLimit {
        RateLimit {
            requests_per_second: default_rate(),
            burst: default_burst(),
        }
    }
}

impl RateLimit {
    pub fn problems(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        if !(self.requests_per_second.is_finite() && self.requests_per_second > 0.0) {
            out.push((
                "requests_per_second".into(),
                "must be a number above 0".into(),
            ));
        }
        if self.burst == 0 {
            out.push(("burst".into(), "must be at least 1".into()));
        }
        out
    }
}

/// The requests a token may still make, refilled with time.
#[derive(Debug)]
pub struct Bucket {
    rate: f64,
    burst: f64,
    available: f64,
    at: Instant,
}

impl Bucket {
    /// A full bucket.
    pub fn new(limit: &RateLimit, now: Instant) -> Bucket {
        let burst = f64::from(limit.burst.max(1));
        Bucket {
            rate: limit.requests_per_second.max(f64::MIN_POSITIVE),
            burst,
            available: burst,
            at: now,
        }
    }

    /// Takes one request; `Err` holds how long until one is available.
    pub fn take(&mut self, now: Instant) -> Result<(), Duration> {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.available = (self.available + elapsed * self.rate).min(self.burst);
        self.at = now.max(self.at);
        if self.available >= 1.0 {
            self.available -= 1.0;
            return Ok(());
        }
        let wait = (1.0 - self.available) / self.rate;
        Err(Duration::try_from_secs_f64(wait).unwrap_or(Duration::MAX))
    }
}

/// `Retry-After` for a wait: whole seconds, rounded up, at least 1.
pub fn retry_after_seconds(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_gives_its_burst_then_refills_at_its_rate() {
        let t0 = Instant::now();
        let limit = RateLimit {
            requests_per_second: 2.0,
            burst: 3,
        };
        let mut b = Bucket::new(&limit, t0);
        for _ in 0..3 {
            assert!(b.take(t0).is_ok());
        }
        let wait = b.take(t0).unwrap_err();
        assert_eq!(wait, Duration::from_millis(500));
        assert!(b.take(t0 + Duration::from_millis(499)).is_err());
        assert!(b.take(t0 + Duration::from_millis(1000)).is_ok());
        // A long pause refills to the burst, no more.
        let later = t0 + Duration::from_secs(3600);
        for _ in 0..3 {
            assert!(b.take(later).is_ok());
        }
        assert!(b.take(later).is_err());
    }

    #[test]
    fn retry_after_rounds_up_to_whole_seconds() {
        assert_eq!(retry_after_seconds(Duration::from_millis(1)), 1);
        assert_eq!(retry_after_seconds(Duration::ZERO), 1);
        assert_eq!(retry_after_seconds(Duration::from_secs(2)), 2);
        assert_eq!(retry_after_seconds(Duration::from_millis(2001)), 3);
    }

    #[test]
    fn zero_or_odd_limits_are_problems() {
        let bad = RateLimit {
            requests_per_second: f64::NAN,
            burst: 0,
        };
        assert_eq!(bad.problems().len(), 2);
        assert!(RateLimit::default().problems().is_empty());
    }
}
