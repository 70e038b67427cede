//! One total time budget per provider call.
//!
//! A provider call (`list`, `spawn`, …) may send several requests, retry each, wait for
//! pacers and `Retry-After`, and, for a create whose outcome is unknown, list again
//! with pauses. [`within`] bounds all of that at once: every request sent while the
//! future runs takes its attempt timeout, and its decision to retry, from the time left
//! ([`remaining`]), and when the budget is spent the call fails with
//! [`ErrorKind::Timeout`](crate::ErrorKind::Timeout) instead of waiting on.
//!
//! The budget is a task-local deadline (on `tokio::time`, so tests under a paused clock
//! are exact); budgets nest, and the earlier deadline holds. Without a budget only the
//! per-request bounds of [`RetryConfig`](super::RetryConfig) apply.

use std::future::Future;
use std::time::Duration;

use tokio::time::Instant;

tokio::task_local! {
    static DEADLINE: Instant;
}

/// Default budget of a call that only reads (`ls`, `get`, `gpus`): 30 s.
pub const DEFAULT_READ_BUDGET: Duration = Duration::from_secs(30);
/// Default budget of a create with its reconciliation (`spawn`): 2 min.
pub const DEFAULT_CREATE_BUDGET: Duration = Duration::from_secs(120);

/// The budgets a [`Checked`](crate::Checked) provider gives its calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CallBudget {
    /// `get`, `list`, `gpu_types`.
    pub read: Duration,
    /// `spawn` (the create and its reconciliation), `stop`, `start`, `terminate`.
    pub write: Duration,
}

impl Default for CallBudget {
    /// [`DEFAULT_READ_BUDGET`] and [`DEFAULT_CREATE_BUDGET`].
    fn default() -> CallBudget {
        CallBudget {
            read: DEFAULT_READ_BUDGET,
            write: DEFAULT_CREATE_BUDGET,
        }
    }
}

impl CallBudget {
    /// The same budget for every call (what `--timeout`/`ATLAS_TIMEOUT` set).
    pub fn every_call(d: Duration) -> CallBudget {
        CallBudget { read: d, write: d }
    }
}

/// Run `fut` with at most `budget` for everything it sends; inside an outer budget the
/// earlier deadline holds.
pub async fn within<F: Future>(budget: Duration, fut: F) -> F::Output {
    let now = Instant::now();
    // Past what an Instant holds: as good as no bound of its own.
    let mine = now
        .checked_add(budget)
        .unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 86_400));
    let at = match deadline() {
        Some(outer) => outer.min(mine),
        None => mine,
    };
    DEADLINE.scope(at, fut).await
}

/// The current budget's deadline, if the running task has one.
pub fn deadline() -> Option<Instant> {
    DEADLINE.try_with(|d| *d).ok()
}

/// Time left in the current budget (`None`: no budget; zero once spent).
pub fn remaining() -> Option<Duration> {
    deadline().map(|d| d.saturating_duration_since(Instant::now()))
}

/// `d`, shortened to the time left in the current budget.
pub(crate) fn cap(d: Duration) -> Duration {
    remaining().map_or(d, |r| r.min(d))
}

/// Run `fut` with all but `share`⁻¹ of the time left, keeping the rest for what
/// follows (a create keeps time for its reconciliation): with no budget, as is.
pub(crate) async fn leaving<F: Future>(share: u32, fut: F) -> F::Output {
    match remaining() {
        Some(r) => within(r.saturating_sub(r / share.max(1)), fut).await,
        None => fut.await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn budgets_nest_and_the_earlier_deadline_holds() {
        assert_eq!(remaining(), None);
        within(Duration::from_secs(10), async {
            assert_eq!(remaining(), Some(Duration::from_secs(10)));
            within(Duration::from_secs(60), async {
                assert_eq!(remaining(), Some(Duration::from_secs(10)));
            })
            .await;
            within(Duration::from_secs(4), async {
                assert_eq!(remaining(), Some(Duration::from_secs(4)));
            })
            .await;
            tokio::time::sleep(Duration::from_secs(3)).await;
            assert_eq!(remaining(), Some(Duration::from_secs(7)));
            assert_eq!(cap(Duration::from_secs(30)), Duration::from_secs(7));
            leaving(4, async {
                // 7 s left, a quarter kept back.
                assert_eq!(remaining(), Some(Duration::from_millis(5250)));
            })
            .await;
        })
        .await;
        assert_eq!(remaining(), None);
        assert_eq!(cap(Duration::from_secs(30)), Duration::from_secs(30));
    }

    #[tokio::test(start_paused = true)]
    async fn a_huge_budget_does_not_overflow() {
        within(Duration::MAX, async {
            assert!(remaining().unwrap() > Duration::from_secs(86_400));
        })
        .await;
    }
}
