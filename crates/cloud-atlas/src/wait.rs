//! The one wait-until-ready loop: poll with doubling pauses until a probe says ready,
//! a probe fails, or the time is up.
//!
//! [`ProviderExt::wait_for`](crate::ProviderExt::wait_for), the orchestrator's
//! [`wait_ready`](crate::orchestrator::Orchestrator::wait_ready) and the CLI's
//! `--wait` all poll through [`until`]; each brings only its probe (what "ready" means
//! and what to say about the last thing seen).
//!
//! # Examples
//! ```
//! # #[tokio::main(flavor = "current_thread", start_paused = true)] async fn main() -> cloud_atlas::Result<()> {
//! use std::time::Duration;
//! use cloud_atlas::wait::{self, Backoff, Poll};
//! use cloud_atlas::{Error, ErrorKind};
//!
//! let mut polls = 0;
//! let n = wait::until(Duration::from_secs(60), Backoff::DEFAULT, |_| {
//!     polls += 1;
//!     let n = polls;
//!     async move { Ok(if n == 3 { Poll::Ready(n) } else { Poll::Pending(format!("poll {n}")) }) }
//! }, |last| Error::new(ErrorKind::Timeout, format!("not ready: {last}"))).await?;
//! assert_eq!(n, 3);
//! # Ok(()) }
//! ```

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

use crate::error::{Error, Result};

/// Pauses between polls: `first`, doubling up to `max`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    /// The first pause.
    pub first: Duration,
    /// The longest pause.
    pub max: Duration,
}

impl Backoff {
    /// 250 ms doubling to 5 s (the SDK's waits).
    pub const DEFAULT: Backoff = Backoff {
        first: Duration::from_millis(250),
        max: Duration::from_secs(5),
    };
}

/// What one probe saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Poll<T> {
    /// Ready: the wait ends with this value.
    Ready(T),
    /// Not yet; the text says what was seen (it ends up in the timeout error).
    Pending(String),
}

/// The time window of a wait, handed to each probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// When the wait started.
    pub started: Instant,
    /// When it gives up.
    pub deadline: Instant,
}

impl Window {
    /// Time since the wait started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }
    /// Time left before the deadline (zero once passed).
    pub fn left(&self) -> Duration {
        self.deadline.saturating_duration_since(Instant::now())
    }
}

/// `call`'s outcome, or a `Timeout` error naming `provider` and `operation` when it has not
/// answered within `timeout` ("no answer within 2s", then `hint`, e.g. "; give it longer
/// with --timeout").
///
/// # Errors
/// Whatever `call` fails with; `Timeout` after `timeout`.
pub async fn within<T>(
    timeout: Duration,
    provider: &str,
    operation: &'static str,
    hint: &str,
    call: impl Future<Output = Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(r) => r,
        Err(_) => Err(Error::new(
            crate::error::ErrorKind::Timeout,
            format!(
                "no answer within {}{hint}",
                humantime::format_duration(timeout)
            ),
        )
        .with_provider(provider.to_string())
        .with_operation(operation)),
    }
}

/// Call `probe` until it returns [`Poll::Ready`], pausing per `backoff` between calls
/// (never past the deadline). The probe runs at least once, even with a zero timeout.
///
/// # Errors
/// Whatever the probe fails with (immediately, no retry); after `timeout`,
/// `timed_out(last)` with the text of the last [`Poll::Pending`].
pub async fn until<T, F, Fut>(
    timeout: Duration,
    backoff: Backoff,
    mut probe: F,
    timed_out: impl FnOnce(&str) -> Error,
) -> Result<T>
where
    F: FnMut(Window) -> Fut,
    Fut: Future<Output = Result<Poll<T>>>,
{
    let started = Instant::now();
    let window = Window {
        started,
        deadline: crate::spec::instant_after(started, timeout),
    };
    let mut pause = backoff.first;
    loop {
        let last = match probe(window).await? {
            Poll::Ready(v) => return Ok(v),
            Poll::Pending(last) => last,
        };
        let now = Instant::now();
        if now >= window.deadline {
            return Err(timed_out(&last));
        }
        tokio::time::sleep(pause.min(window.deadline - now)).await;
        pause = pause.saturating_mul(2).min(backoff.max);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::ErrorKind;

    fn timeout_err(last: &str) -> Error {
        Error::new(ErrorKind::Timeout, format!("last: {last}"))
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_double_up_to_the_cap_and_stop_at_the_deadline() {
        let start = Instant::now();
        let mut at = Vec::new();
        let e = until::<(), _, _>(
            Duration::from_secs(10),
            Backoff {
                first: Duration::from_secs(1),
                max: Duration::from_secs(3),
            },
            |_| {
                at.push(start.elapsed().as_secs());
                let n = at.len();
                async move { Ok(Poll::Pending(format!("poll {n}"))) }
            },
            timeout_err,
        )
        .await
        .unwrap_err();
        // 1, 2, 3 (capped), 3 (capped), then the last pause is cut at the deadline.
        assert_eq!(at, vec![0, 1, 3, 6, 9, 10]);
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(e.message(), "last: poll 6");
    }

    #[tokio::test(start_paused = true)]
    async fn ready_ends_the_wait_with_its_value() {
        let mut n = 0;
        let v = until(
            Duration::from_secs(60),
            Backoff::DEFAULT,
            |_| {
                n += 1;
                let ready = n == 4;
                async move {
                    Ok(if ready {
                        Poll::Ready("up")
                    } else {
                        Poll::Pending(String::new())
                    })
                }
            },
            timeout_err,
        )
        .await
        .unwrap();
        assert_eq!((v, n), ("up", 4));
    }

    #[tokio::test(start_paused = true)]
    async fn a_probe_error_ends_the_wait_at_once() {
        let mut n = 0;
        let e = until::<(), _, _>(
            Duration::from_secs(60),
            Backoff::DEFAULT,
            |_| {
                n += 1;
                async { Err(Error::new(ErrorKind::NotFound, "gone")) }
            },
            timeout_err,
        )
        .await
        .unwrap_err();
        assert_eq!((e.kind(), n), (ErrorKind::NotFound, 1));
    }

    #[tokio::test(start_paused = true)]
    async fn zero_timeout_probes_once_and_huge_timeout_does_not_panic() {
        let mut n = 0;
        let e = until::<(), _, _>(
            Duration::ZERO,
            Backoff::DEFAULT,
            |w: Window| {
                n += 1;
                assert_eq!(w.left(), Duration::ZERO);
                async { Ok(Poll::Pending("booting".into())) }
            },
            timeout_err,
        )
        .await
        .unwrap_err();
        assert_eq!((n, e.message()), (1, "last: booting"));
        let v = until(
            Duration::MAX,
            Backoff::DEFAULT,
            |w: Window| async move { Ok(Poll::Ready(w.left() > Duration::from_secs(3600))) },
            timeout_err,
        )
        .await
        .unwrap();
        assert!(v);
    }
}
