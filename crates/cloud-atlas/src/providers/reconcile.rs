//! A create that cannot duplicate: create once, and when the outcome is unknown, look
//! for the launch by listing before deciding anything.
//!
//! No provider has an idempotency key for creates, and a create that timed out, got a
//! 5xx, or got a 2xx whose body could not be read (or named no id) may still have made a
//! billing machine. Every provider therefore names each launch uniquely
//! ([`ComputeRequest::launch_name`](crate::ComputeRequest::launch_name)) and sends its
//! create through [`create_once`], which on an [ambiguous](crate::Error::is_ambiguous)
//! failure lists the provider's machines, as [`Compute`], for that name or the launch
//! id label. This is the one copy of that step for every provider.
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

use crate::error::{Error, ErrorKind, Result};
use crate::http::budget;
use crate::provider::Provider;
use crate::spec::{Compute, ComputeRequest, ComputeStatus, ListFilter, LAUNCH_ID_LABEL};

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
    provider: &'static str,
    /// What the provider calls a machine in messages: `pod`, `instance`, `machine`.
    noun: &'static str,
    /// [`ComputeRequest::launch_name`].
    name: String,
    /// [`ComputeRequest::launch_id`].
    launch_id: String,
    /// Listings and pauses.
    policy: ReconcilePolicy,
    /// What [`create_once_listed`] asks the provider to list.
    filter: ListFilter,
}

impl Launch {
    /// The launch of `req` on `provider`, whose machines are called `noun`s.
    pub(crate) fn new(
        provider: &'static str,
        noun: &'static str,
        req: &ComputeRequest,
        policy: ReconcilePolicy,
    ) -> Launch {
        Launch {
            provider,
            noun,
            name: req.launch_name(),
            launch_id: req.launch_id.clone(),
            policy,
            filter: ListFilter::all(),
        }
    }

    /// List only the launch's name (for a provider that filters names server-side and
    /// whose full listing is slow); by default everything is listed, so a machine
    /// carrying the launch id under another name is found too.
    pub(crate) fn by_name(mut self) -> Launch {
        self.filter = ListFilter::all().with_name(self.name.clone());
        self
    }

    /// Whether `c` was made by this launch (its name or launch-id label) and is not gone.
    fn is_ours(&self, c: &Compute) -> bool {
        (c.name.as_deref() == Some(self.name.as_str())
            || c.labels.get(LAUNCH_ID_LABEL) == Some(&self.launch_id))
            && c.status != ComputeStatus::Terminated
    }
}

/// What [`create_once`] ended with.
#[derive(Debug)]
pub(crate) enum Launched<C> {
    /// The create answered with the new machine.
    Created(C),
    /// The create's outcome was unknown; the listing found the launch's machine.
    Adopted(Box<Compute>),
}

/// [`create_once`], listing and terminating through `provider` itself.
///
/// # Errors
/// As [`create_once`].
pub(crate) async fn create_once_listed<C, P: Provider + ?Sized>(
    provider: &P,
    launch: &Launch,
    create: impl Future<Output = Result<C>>,
) -> Result<Launched<C>> {
    create_once(
        launch,
        create,
        || provider.list(&launch.filter),
        |id| async move { provider.terminate(&id).await },
    )
    .await
}

/// Send `create` once; on an ambiguous failure look for `launch` among what `list`
/// returns (the provider's machines as [`Compute`]), terminating extra machines of the
/// launch with `terminate(id)`.
///
/// # Errors
/// A failure that is not ambiguous, as it is. An ambiguous one that the listings could
/// not resolve: the create error, still [ambiguous](Error::is_ambiguous), its message
/// extended by [`explain`].
pub(crate) async fn create_once<C, LF, TF>(
    launch: &Launch,
    create: impl Future<Output = Result<C>>,
    list: impl FnMut() -> LF,
    terminate: impl Fn(String) -> TF,
) -> Result<Launched<C>>
where
    LF: Future<Output = Result<Vec<Compute>>>,
    TF: Future<Output = Result<()>>,
{
    // Within a time budget, a quarter of what is left is kept for the reconciliation.
    let err = match budget::leaving(4, create).await {
        Ok(c) => return Ok(Launched::Created(c)),
        Err(e) if !e.is_ambiguous() => return Err(e),
        Err(e) => e,
    };
    let provider = launch.provider;
    tracing::warn!(provider, launch = %launch.name, error = %err, "create outcome unknown; looking for the launch by listing");
    match find_launch(launch.policy, list, |c| launch.is_ours(c)).await {
        Ok(mut found) => {
            // Oldest first; a machine without a creation time after those with one.
            found.sort_by(|a, b| {
                let key = |c: &Compute| (c.created_at.is_none(), c.created_at, c.id.clone());
                key(a).cmp(&key(b))
            });
            match keep_first(provider, found, |c| c.id.clone(), terminate).await {
                Some(c) => {
                    tracing::warn!(provider, launch = %launch.name, compute.id = %c.id, "the create did happen: adopting the machine found by listing");
                    Ok(Launched::Adopted(Box::new(c)))
                }
                None => Err(explain(err, launch, None)),
            }
        }
        Err(list_err) => Err(explain(err, launch, Some(&list_err))),
    }
}

/// The one wording of an unresolved ambiguous create: `create_err` (kind, status and
/// ambiguity kept) with what the listing showed appended. `list_err` is `None` when a
/// listing succeeded and found nothing (a new spawn is safe), else the listing failure
/// (the outcome is unknown).
pub(crate) fn explain(create_err: Error, launch: &Launch, list_err: Option<&Error>) -> Error {
    let (name, noun) = (&launch.name, launch.noun);
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
    let attempts = policy.attempts.max(1);
    for attempt in 0..attempts {
        if attempt > 0 {
            if budget::remaining().is_some_and(|left| delay >= left) {
                // Listings may lag: an empty one is believed only after all the pauses.
                return Err(last_err.filter(|_| !listed).unwrap_or_else(|| {
                    Error::new(
                        ErrorKind::Timeout,
                        format!("the call's time budget ran out after {attempt} of {attempts} listings, too early to believe an empty one"),
                    )
                }));
            }
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

    /// Machines as a provider lists them; listing fails while `down`.
    struct Fake {
        machines: Vec<Compute>,
        down: bool,
        lists: AtomicU32,
        killed: std::sync::Mutex<Vec<String>>,
    }

    fn machine(id: &str, name: &str, created_secs: Option<i64>) -> Compute {
        let mut c = Compute::new(id, "t", ComputeStatus::Running);
        c.name = Some(name.to_string());
        c.created_at = created_secs.and_then(|s| chrono::DateTime::from_timestamp(s, 0));
        c
    }

    impl Fake {
        fn new(machines: Vec<Compute>, down: bool) -> Fake {
            Fake {
                machines,
                down,
                lists: AtomicU32::new(0),
                killed: std::sync::Mutex::new(Vec::new()),
            }
        }

        async fn create_once(&self, create: Result<()>) -> Result<Launched<()>> {
            create_once(
                &launch(),
                async { create },
                || async {
                    self.lists.fetch_add(1, Ordering::SeqCst);
                    if self.down {
                        return Err(Error::new(ErrorKind::Transport, "listing is down"));
                    }
                    Ok(self.machines.clone())
                },
                |id| async move {
                    self.killed.lock().unwrap().push(id);
                    Ok(())
                },
            )
            .await
        }
    }

    fn request() -> ComputeRequest {
        ComputeRequest::builder()
            .image("img")
            .cpus(1)
            .launch_id("0123456789ab")
            .build()
            .unwrap()
    }

    fn launch() -> Launch {
        Launch::new("t", "pod", &request(), FAST)
    }

    fn timed_out() -> Error {
        Error::new(ErrorKind::Timeout, "create timed out")
            .with_status(504)
            .with_ambiguous()
    }

    #[tokio::test]
    async fn a_clear_failure_is_returned_without_listing() {
        let fake = Fake::new(vec![], false);
        let e = fake
            .create_once(Err(Error::new(ErrorKind::Capacity, "sold out")))
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Capacity);
        assert_eq!(e.message(), "sold out");
        assert_eq!(fake.lists.load(Ordering::SeqCst), 0);
    }

    #[tokio::test]
    async fn an_ambiguous_create_adopts_the_oldest_machine_found() {
        let name = request().launch_name();
        let mut by_label = machine("c", "renamed", Some(20));
        by_label
            .labels
            .insert(LAUNCH_ID_LABEL.into(), "0123456789ab".into());
        let mut gone = machine("d", &name, Some(1));
        gone.status = ComputeStatus::Terminated;
        let fake = Fake::new(
            vec![
                machine("x", "other", Some(0)),
                machine("b", &name, None),
                by_label,
                machine("a", &name, Some(10)),
                gone,
            ],
            false,
        );
        let got = fake.create_once(Err(timed_out())).await.unwrap();
        let Launched::Adopted(c) = got else {
            panic!("not adopted: {got:?}")
        };
        assert_eq!(c.id, "a", "the oldest is kept");
        assert_eq!(
            *fake.killed.lock().unwrap(),
            vec!["c".to_string(), "b".to_string()],
            "the others of the launch are terminated, oldest first"
        );
    }

    #[tokio::test]
    async fn nothing_found_keeps_the_create_error_and_says_a_new_spawn_is_safe() {
        let fake = Fake::new(vec![machine("x", "other", None)], false);
        let e = fake.create_once(Err(timed_out())).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert_eq!(e.status(), Some(504));
        assert!(e.is_ambiguous());
        assert_eq!(
            e.message(),
            format!(
                "create timed out; no pod named {} appeared after 3 listings, so nothing was created and a new spawn is safe",
                request().launch_name()
            )
        );
        assert_eq!(fake.lists.load(Ordering::SeqCst), 3);
    }

    #[tokio::test]
    async fn a_failed_listing_keeps_the_create_error_and_says_the_outcome_is_unknown() {
        let fake = Fake::new(vec![], true);
        let e = fake.create_once(Err(timed_out())).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout, "the create error is kept");
        assert!(e.is_ambiguous());
        let m = e.message();
        assert!(m.starts_with("create timed out; "), "{m}");
        assert!(m.contains("is unknown"), "{m}");
        assert!(m.contains("listing is down"), "{m}");
        assert!(
            m.contains(&request().launch_name()),
            "names the launch: {m}"
        );
        assert!(m.contains("atlas ls --provider t"), "{m}");
        assert!(!m.contains("safe"), "{m}");
    }

    #[tokio::test]
    async fn a_created_machine_is_returned_without_listing() {
        let fake = Fake::new(vec![], true);
        let got = fake.create_once(Ok(())).await.unwrap();
        assert!(matches!(got, Launched::Created(())));
        assert_eq!(fake.lists.load(Ordering::SeqCst), 0);
    }

    #[test]
    fn a_create_without_an_id_is_ambiguous() {
        let e = no_id("t", "machine", Some("queued"));
        assert!(e.is_ambiguous());
        assert_eq!(e.kind(), ErrorKind::Provider);
        assert!(e.message().contains("no machine id (queued)"), "{e}");
    }

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
    async fn a_budget_too_short_for_the_pauses_never_concludes_nothing_was_created() {
        let policy = ReconcilePolicy::new(4, Duration::from_secs(2));
        let calls = AtomicU32::new(0);
        let e = budget::within(Duration::from_secs(5), async {
            find_launch(
                policy,
                || {
                    calls.fetch_add(1, Ordering::SeqCst);
                    async { Ok(Vec::<i32>::new()) }
                },
                |_| true,
            )
            .await
        })
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.message().contains("2 of 4 listings"), "{e}");
        // Listings at 0 and 2 s; the 4 s pause would pass the budget.
        assert_eq!(calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(start_paused = true)]
    async fn a_create_keeps_a_quarter_of_the_budget_for_the_reconciliation() {
        let left = budget::within(Duration::from_secs(120), async {
            create_once(
                &launch(),
                async { Ok::<_, Error>(budget::remaining()) },
                || async { Ok(vec![]) },
                |_| async { Ok(()) },
            )
            .await
        })
        .await
        .unwrap();
        let Launched::Created(left) = left else {
            panic!("created")
        };
        assert_eq!(left, Some(Duration::from_secs(90)));
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
