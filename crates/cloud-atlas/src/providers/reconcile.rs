//! Reconciling an ambiguous create: did the provider make a machine, and only one?
//!
//! No provider has an idempotency key for creates, and a create that timed out or got a
//! 5xx may still have made a billing machine. Every provider therefore names each launch
//! uniquely ([`ComputeRequest::launch_name`](crate::ComputeRequest::launch_name)) and,
//! after an ambiguous failure, looks for that name here before deciding anything.
//!
//! # Guarantees
//! - "Nothing was created" is concluded only from a listing that succeeded; when every
//!   listing failed, the last listing error comes back and the caller must not retry.
//! - Listings may lag behind creates (Fly's is eventually consistent), so an empty
//!   listing is retried with doubling pauses before it is believed.
//! - When one launch somehow made several machines, the first in the caller's order is
//!   kept and the others are terminated (a failure to terminate is logged, not hidden).

use std::future::Future;
use std::time::Duration;

use crate::error::{ErrorKind, Result};

/// How hard to look for a launch's machine after an ambiguous create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReconcilePolicy {
    /// Listings to try (at least 1).
    pub(crate) attempts: u32,
    /// Pause before the second listing; doubles after each.
    pub(crate) first_delay: Duration,
}

/// List up to `policy.attempts` times until `is_ours` matches something.
///
/// Returns the matches of the first listing that has any; an empty vector when at
/// least one listing succeeded and none matched; the last error when all failed.
pub(crate) async fn find_launch<T, Fut>(
    policy: ReconcilePolicy,
    mut list: impl FnMut() -> Fut,
    is_ours: impl Fn(&T) -> bool,
) -> Result<Vec<T>>
where
    Fut: Future<Output = Result<Vec<T>>>,
{
    let mut delay = policy.first_delay;
    let mut listed = false;
    let mut last_err = None;
    for attempt in 0..policy.attempts.max(1) {
        if attempt > 0 {
            tokio::time::sleep(delay).await;
            delay = delay.saturating_mul(2);
        }
        match list().await {
            Ok(all) => {
                listed = true;
                let found: Vec<T> = all.into_iter().filter(|t| is_ours(t)).collect();
                if !found.is_empty() {
                    return Ok(found);
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "reconcile listing failed");
                last_err = Some(e);
            }
        }
    }
    match (listed, last_err) {
        (false, Some(e)) => Err(e),
        _ => Ok(Vec::new()),
    }
}

/// Keep the first of `found` and terminate the rest with `terminate(extra)`.
pub(crate) async fn keep_first<T, Fut>(
    provider: &str,
    found: Vec<T>,
    id_of: impl Fn(&T) -> String,
    terminate: impl Fn(String) -> Fut,
) -> Option<T>
where
    Fut: Future<Output = Result<()>>,
{
    let mut it = found.into_iter();
    let keep = it.next()?;
    for extra in it {
        let id = id_of(&extra);
        tracing::warn!(provider, compute.id = %id, "terminating a duplicate machine of one launch");
        if let Err(e) = terminate(id.clone()).await {
            if e.kind() != ErrorKind::NotFound {
                tracing::error!(provider, compute.id = %id, error = %e, "could not terminate a duplicate machine of one launch");
            }
        }
    }
    Some(keep)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::Error;
    use std::sync::atomic::{AtomicU32, Ordering};

    const FAST: ReconcilePolicy = ReconcilePolicy {
        attempts: 3,
        first_delay: Duration::from_millis(1),
    };

    #[tokio::test]
    async fn lag_then_found() {
        let calls = AtomicU32::new(0);
        let found = find_launch(
            FAST,
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move { Ok(if n == 0 { vec![] } else { vec![1, 2, 7] }) }
            },
            |x: &i32| *x == 7,
        )
        .await
        .unwrap();
        assert_eq!(found, vec![7]);
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test]
    async fn failed_listings_never_mean_nothing_was_created() {
        let e = find_launch(
            FAST,
            || async { Err::<Vec<i32>, _>(Error::new(ErrorKind::Transport, "down")) },
            |_| true,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Transport);
        // One good (empty) listing among failures: nothing was created.
        let calls = AtomicU32::new(0);
        let found = find_launch(
            FAST,
            || {
                let n = calls.fetch_add(1, Ordering::SeqCst);
                async move {
                    if n == 1 {
                        Ok(vec![])
                    } else {
                        Err(Error::new(ErrorKind::Transport, "down"))
                    }
                }
            },
            |_: &i32| true,
        )
        .await
        .unwrap();
        assert!(found.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn pauses_between_listings_double() {
        let policy = ReconcilePolicy {
            attempts: 4,
            first_delay: Duration::from_secs(2),
        };
        let start = tokio::time::Instant::now();
        let at = std::sync::Mutex::new(Vec::new());
        let found = find_launch(
            policy,
            || {
                at.lock().unwrap().push(start.elapsed());
                async { Ok(Vec::<i32>::new()) }
            },
            |_| true,
        )
        .await
        .unwrap();
        assert!(found.is_empty());
        let secs: Vec<u64> = at.lock().unwrap().iter().map(|d| d.as_secs()).collect();
        // Listings at 0, then after pauses of 2, 4 and 8 seconds.
        assert_eq!(secs, vec![0, 2, 6, 14]);
    }

    #[tokio::test(start_paused = true)]
    async fn zero_attempts_still_list_once() {
        let calls = AtomicU32::new(0);
        let policy = ReconcilePolicy {
            attempts: 0,
            first_delay: Duration::from_secs(1),
        };
        let found = find_launch(
            policy,
            || {
                calls.fetch_add(1, Ordering::SeqCst);
                async { Ok(vec![1]) }
            },
            |x: &i32| *x == 1,
        )
        .await
        .unwrap();
        assert_eq!(found, vec![1]);
        assert_eq!(calls.load(Ordering::SeqCst), 1);
    }

    #[tokio::test]
    async fn keeps_first_terminates_rest() {
        let killed = std::sync::Mutex::new(Vec::new());
        let kept = keep_first(
            "t",
            vec!["a", "b", "c"],
            |s| s.to_string(),
            |id| {
                killed.lock().unwrap().push(id);
                async { Ok(()) }
            },
        )
        .await;
        assert_eq!(kept, Some("a"));
        assert_eq!(
            *killed.lock().unwrap(),
            vec!["b".to_string(), "c".to_string()]
        );
    }
}
