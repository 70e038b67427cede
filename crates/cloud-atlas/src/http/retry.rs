//! Retry policy: which failures are retried, how long to wait, and for how long in total.
//!
//! Backoff delays come from [`backon`]'s exponential builder with jitter; the
//! policy around it (idempotency classes, `Retry-After`, the total time budget)
//! is ours, because only the call site knows whether a request may be replayed.

use std::time::{Duration, SystemTime};

use backon::{BackoffBuilder, ExponentialBuilder};

/// Whether a request may be sent again after it may have reached the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Idempotency {
    /// Reads (`GET`, `HEAD`): retried on transport errors, 408, 429 and 5xx.
    Safe,
    /// Writes whose replay has the same effect (terminate, stop, `PUT` state): retried like `Safe`.
    Idempotent,
    /// Creates: replayed **only** when the connection never opened, so no byte reached
    /// the provider, or when the provider declined it with 429 (nothing was done).
    /// Anything ambiguous goes back to the caller, which reconciles
    /// (e.g. `spawn` lists by its unique name) before deciding to try again.
    Unsafe,
}

impl Idempotency {
    /// The default for an HTTP method: safe methods are `Safe`, `PUT`/`DELETE`
    /// `Idempotent`, everything else `Unsafe`.
    pub fn for_method(m: &reqwest::Method) -> Idempotency {
        if m.is_safe() {
            Idempotency::Safe
        } else if m == reqwest::Method::PUT || m == reqwest::Method::DELETE {
            Idempotency::Idempotent
        } else {
            Idempotency::Unsafe
        }
    }

    /// Whether a request that may have been received may be replayed.
    pub fn replayable(self) -> bool {
        !matches!(self, Idempotency::Unsafe)
    }
}

/// Bounds on retrying one request.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct RetryConfig {
    /// First backoff delay.
    pub init_backoff: Duration,
    /// Largest backoff delay.
    pub max_backoff: Duration,
    /// Growth factor per attempt.
    pub base: f32,
    /// Most retries after the first attempt.
    pub max_retries: usize,
    /// Most total time spent on one request including waits; no retry starts after it.
    pub retry_timeout: Duration,
}

impl Default for RetryConfig {
    fn default() -> RetryConfig {
        RetryConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(15),
            base: 2.0,
            max_retries: 10,
            retry_timeout: Duration::from_secs(180),
        }
    }
}

impl RetryConfig {
    /// No retries at all.
    pub fn none() -> RetryConfig {
        RetryConfig {
            max_retries: 0,
            ..RetryConfig::default()
        }
    }

    /// The jittered backoff delays for one request.
    pub fn backoff(&self) -> impl Iterator<Item = Duration> + Send {
        ExponentialBuilder::default()
            .with_min_delay(self.init_backoff)
            .with_max_delay(self.max_backoff)
            .with_factor(self.base)
            .with_jitter()
            .with_max_times(self.max_retries)
            .build()
    }
}

/// Whether an HTTP status is worth retrying (for replayable requests).
pub fn retryable_status(status: u16) -> bool {
    status == 408 || status == 429 || (500..=599).contains(&status)
}

/// Whether a status says the server declined the request without acting on it (429),
/// so that even an [`Idempotency::Unsafe`] request may be sent again.
pub fn declined(status: u16) -> bool {
    status == 429
}

/// Parse a `Retry-After` header: delta-seconds or an HTTP date.
pub fn parse_retry_after(value: &str, now: SystemTime) -> Option<Duration> {
    let v = value.trim();
    if let Ok(secs) = v.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    if let Ok(secs) = v.parse::<f64>() {
        if secs.is_finite() && secs >= 0.0 {
            // Past what a Duration holds (e.g. more digits than u64): as long as can be.
            return Some(Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX));
        }
    }
    let at = httpdate::parse_http_date(v).ok()?;
    Some(at.duration_since(now).unwrap_or(Duration::ZERO))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        assert_eq!(parse_retry_after("3", now), Some(Duration::from_secs(3)));
        let later = httpdate::fmt_http_date(now + Duration::from_secs(7));
        assert_eq!(parse_retry_after(&later, now), Some(Duration::from_secs(7)));
        assert_eq!(parse_retry_after("soon", now), None);
    }

    #[test]
    fn only_408_and_429_of_the_4xx_are_retryable() {
        let retried: Vec<u16> = (400..500).filter(|s| retryable_status(*s)).collect();
        assert_eq!(retried, vec![408, 429]);
        assert!((500..600).all(retryable_status));
        assert!(!(200..400).any(retryable_status));
    }

    #[test]
    fn hostile_retry_after_never_panics() {
        let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_000_000);
        for v in [
            "-1", "-0.5", "NaN", "nan", "inf", "-inf", "infinity", "1e400", "", " ",
        ] {
            assert_eq!(parse_retry_after(v, now), None, "{v:?}");
        }
        // Larger than a Duration holds: as long as can be (the caller's budget then gives up).
        assert_eq!(parse_retry_after("1e30", now), Some(Duration::MAX));
        assert_eq!(
            parse_retry_after("99999999999999999999999", now),
            Some(Duration::MAX)
        );
        assert_eq!(
            parse_retry_after("0.25", now),
            Some(Duration::from_millis(250))
        );
        // A date in the past means "now", not a negative wait.
        let past = httpdate::fmt_http_date(now - Duration::from_secs(60));
        assert_eq!(parse_retry_after(&past, now), Some(Duration::ZERO));
    }

    #[test]
    fn backoff_is_bounded() {
        let cfg = RetryConfig {
            max_retries: 5,
            ..RetryConfig::default()
        };
        let delays: Vec<_> = cfg.backoff().collect();
        assert_eq!(delays.len(), 5);
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(30)));
    }

    #[test]
    fn idempotency_defaults() {
        assert_eq!(
            Idempotency::for_method(&reqwest::Method::GET),
            Idempotency::Safe
        );
        assert_eq!(
            Idempotency::for_method(&reqwest::Method::POST),
            Idempotency::Unsafe
        );
        assert_eq!(
            Idempotency::for_method(&reqwest::Method::DELETE),
            Idempotency::Idempotent
        );
    }
}
