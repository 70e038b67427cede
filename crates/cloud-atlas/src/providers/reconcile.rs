//! A create that cannot duplicate: create once, and when the outcome is unknown, look
//! for the launch by listing before deciding anything.
//!
//! No provider has an idempotency key for creates, and a create that timed out, got a
//! 5xx, or got a 2xx whose body could not be read (or named no id) may still have made a
//! billing machine. Every provider therefore names each launch uniquely
//! ([`ComputeRequest::launch_name`](crate::ComputeRequest::launch_name)) and sends its
//! create through [`create_once`], which on an [ambiguous](crate::Error::is_ambiguous)
//! failure lists the provider's machines ([`Launches`]) for that name. This is the one
//! copy of that step for every provider.
//!
//! # Guarantees
//! - The create is sent once; the HTTP layer replays it only when nothing reached the
//!   provider or it declined with 429.
//! - Found → the machine is adopted (a warning is logged with the create error).
//! - "Nothing was created" is concluded only from a listing that succeeded. Listings may
//!   lag behind creates (Fly's is eventually consistent), so an empty listing is retried
//!   with doubling pauses before it is believed; then the create error comes back, still
//!   ambiguous, saying a new spawn is safe ([`explain`]).
//! - When every listing failed, the create error comes back, still ambiguous, saying the
//!   outcome is unknown and naming the launch so the user can look for it.
//! - When one launch somehow made several machines, the oldest is kept and the others
//!   are terminated (a failure to terminate is logged, not hidden).

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};

/// How hard to look for a launch's machine after an ambiguous create.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ReconcilePolicy {
    /// Listings to try (at least 1).
    pub(crate) attempts: u32,
    /// Pause before the second listing; doubles after each.
    pub(crate) first_delay: Duration,
}

impl ReconcilePolicy {
    /// `attempts` listings (at least 1), the first pause `first_delay`.
    pub(crate) fn new(attempts: u32, first_delay: Duration) -> ReconcilePolicy {
        ReconcilePolicy {
            attempts: attempts.max(1),
            first_delay,
        }
    }
}

/// One launch: whose it is, what it is called, and how hard to look for it.
#[derive(Debug, Clone)]
pub(crate) struct Launch {
    /// The provider's name (`runpod`).
    pub(crate) provider: &'static str,
    /// [`ComputeRequest::launch_name`](crate::ComputeRequest::launch_name).
    pub(crate) name: String,
    /// Listings and pauses.
    pub(crate) policy: ReconcilePolicy,
}

/// What [`create_once`] ended with.
#[derive(Debug)]
pub(crate) enum Launched<C, M> {
    /// The create answered with the new machine.
    Created(C),
    /// The create's outcome was unknown; the listing found the launch's machine.
    Adopted(M),
}

/// How one provider finds the machines of a launch.
#[async_trait]
pub(crate) trait Launches: Sync {
    /// A listed machine (native JSON, or a [`Compute`](crate::Compute)).
    type Machine: Send;
    /// What the provider calls a machine in messages: `pod`, `instance`, `machine`.
    fn noun(&self) -> &'static str;
    /// Every machine the launch's could be among (a failure fails the whole listing).
    async fn list(&self) -> Result<Vec<Self::Machine>>;
    /// Whether `m` was made by this launch and is not gone.
    fn is_ours(&self, m: &Self::Machine) -> bool;
    /// The provider's id of `m`.
    fn id_of(&self, m: &Self::Machine) -> String;
    /// Order `found` oldest first (default: as listed).
    fn oldest_first(&self, _found: &mut [Self::Machine]) {}
    /// Terminate an extra machine of the launch.
    async fn terminate(&self, id: String) -> Result<()>;
}

/// Send `create` once; on an ambiguous failure look for `launch` with `machines`.
///
/// # Errors
/// A failure that is not ambiguous, as it is. An ambiguous one that the listings could
/// not resolve: the create error, still [ambiguous](Error::is_ambiguous), its message
/// extended by [`explain`].
pub(crate) async fn create_once<C, L: Launches>(
    launch: &Launch,
    machines: &L,
    create: impl Future<Output = Result<C>>,
) -> Result<Launched<C, L::Machine>> {
    let err = match create.await {
        Ok(c) => return Ok(Launched::Created(c)),
        Err(e) if !e.is_ambiguous() => return Err(e),
        Err(e) => e,
    };
    let provider = launch.provider;
    tracing::warn!(provider, launch = %launch.name, error = %err, "create outcome unknown; looking for the launch by listing");
    let found = find_launch(launch.policy, || machines.list(), |m| machines.is_ours(m)).await;
    match found {
        Ok(mut found) if !found.is_empty() => {
            machines.oldest_first(&mut found);
            let kept = keep_first(
                provider,
                found,
                |m| machines.id_of(m),
                |id| machines.terminate(id),
            )
            .await;
            match kept {
                Some(m) => {
                    tracing::warn!(provider, launch = %launch.name, compute.id = %machines.id_of(&m), "the create did happen: adopting the machine found by listing");
                    Ok(Launched::Adopted(m))
                }
                None => Err(explain(err, launch, machines.noun(), None)),
            }
        }
        Ok(_) => Err(explain(err, launch, machines.noun(), None)),
        Err(list_err) => Err(explain(err, launch, machines.noun(), Some(&list_err))),
    }
}

/// The one wording of an unresolved ambiguous create: `create_err` (kind, status and
/// ambiguity kept) with what the listing showed appended. `list_err` is `None` when a
/// listing succeeded and found nothing (a new spawn is safe), else the listing failure
/// (the outcome is unknown).
pub(crate) fn explain(
    create_err: Error,
    launch: &Launch,
    noun: &str,
    list_err: Option<&Error>,
) -> Error {
    let name = &launch.name;
    let tail = match list_err {
        None => format!(
            "; no {noun} named {name} appeared after {} listings, so nothing was created and a new spawn is safe",
            launch.policy.attempts
        ),
        Some(le) => format!(
            "; whether a {noun} was created is unknown: listing {noun}s to look for {name} failed ({}). One may exist and bill: check `atlas ls --provider {}` for {name} before spawning again",
            le.message(),
            launch.provider
        ),
    };
    let msg = format!("{}{tail}", create_err.message());
    create_err.with_message(msg).with_ambiguous()
}

/// The error for a create answered 2xx without a usable id: the create may have made a
/// machine, so it is ambiguous and reconciled like a timeout. `detail` is what the
/// provider said instead, if anything.
pub(crate) fn no_id(provider: &'static str, noun: &str, detail: Option<&str>) -> Error {
    let detail = detail.map(|d| format!(" ({d})")).unwrap_or_default();
    Error::new(
        ErrorKind::Provider,
        format!("the provider accepted the create but its answer names no {noun} id{detail}"),
    )
    .with_provider(provider)
    .with_operation("spawn")
    .with_ambiguous()
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
