//! Orchestrator for tracked per-user GPU sessions: an app spawns a machine per active
//! user, hands the browser a URL and a preshared key, heartbeats while the user is
//! active, and never leaves a machine billing after the user has gone.
//!
//! # Kill switches (all on by default)
//! 1. **Idle TTL**: no [`touch`](Orchestrator::touch) within `idle_ttl` → terminated.
//! 2. **Max runtime** enforced by the orchestrator.
//! 3. **Machine-side deadline**: `max_runtime` (plus
//!    [`provider_deadline_slack`](OrchestratorConfig::provider_deadline_slack)) is passed
//!    in the [`ComputeRequest`](crate::ComputeRequest) wherever the machine can hold it
//!    ([`Capability::ProviderDeadline`](crate::Capability::ProviderDeadline), or [`Capability::CommandDeadline`](crate::Capability::CommandDeadline) with a
//!    command, see [`crate::spec::deadline`]), so the machine ends even if every process
//!    of ours is gone.
//!
//! Spend caps ([`SpendLimits`], per-session `max_cost_usd`) add a fourth.
//!
//! # Crash safety
//! Spawn writes an intent (session id, launch id, name) to the [`SessionStore`]
//! **before** calling the provider, and the compute id after. On start, every stored
//! session is re-adopted (timers rebuilt from stored wall-clock times), terminations in
//! progress are resumed, and dangling intents older than the reaper's grace window are
//! resolved by listing the provider by launch name: the machine is adopted, or the intent
//! dropped when there is none. Younger intents are left to their owner (another process
//! sharing the store may be spawning them right now).
//! A failed terminate never drops the record: it is retried with backoff and reported
//! as [`EventKind::TerminateFailed`].
//!
//! # Shape
//! [`Orchestrator::builder`] … [`start`](OrchestratorBuilder::start) spawns background
//! tasks (timers, heartbeat batches, spend checks, reaper); the handle is cheap to clone.
//! [`shutdown`](Orchestrator::shutdown) ends them with an explicit [`ShutdownPolicy`].
//! Dropping every handle without `shutdown` stops the tasks like a crash would: nothing
//! is terminated, the store keeps everything for the next start.
//!
//! # Examples
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cloud_atlas::Result<()> {
//! use std::time::Duration;
//! use cloud_atlas::{AuthMode, ComputeRequest, Gpu};
//! use cloud_atlas::orchestrator::{Orchestrator, SessionRequest, ShutdownPolicy};
//! use cloud_atlas::orchestrator::store::MemorySessionStore;
//! use cloud_atlas::providers::mock::Mock;
//!
//! let cloud = Mock::in_memory();
//! let orch = Orchestrator::builder()
//!     .store(MemorySessionStore::new())
//!     .provider(cloud.clone())
//!     .start()
//!     .await?;
//! let compute = ComputeRequest::builder().gpu(Gpu::L4).image("ghcr.io/acme/app:1")
//!     .port("8000/http").auth(AuthMode::Bearer).build()?;
//! let s = orch.spawn(SessionRequest::new("mock", "user-42", compute)
//!     .with_idle_ttl(Duration::from_secs(600))).await?;
//! let key = s.auth().and_then(|a| a.token.clone()); // hand to the browser, once
//! assert!(key.is_some());
//! orch.touch(&s.session.id)?;                       // on user activity
//! orch.shutdown(ShutdownPolicy::Terminate).await?;
//! assert_eq!(cloud.live_count()?, 0);
//! # Ok(()) }
//! ```

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;

mod accounting;
mod builder;
mod config;
mod driver;
pub mod events;
pub mod lease;
mod live;
pub mod ownership;
pub mod reaper;
mod reaping;
mod recovery;
pub mod schedule;
pub mod session;
pub mod settings;
mod spawn;
pub mod spend;
pub mod store;
mod terminate;

pub use builder::OrchestratorBuilder;
pub use config::{OrchestratorConfig, ShutdownPolicy};
pub use events::{Event, EventKind, Recv, Subscription, TerminateReason};
pub use lease::{AlwaysLeader, LeaderLease};
pub use reaper::{ReapAction, ReapDecision, ReapOptions, ReapReport, Reaper, ReaperConfig};
pub use session::{
    Session, SessionFilter, SessionRequest, SessionState, SpawnedSession, DEFAULT_NAME_PREFIX,
};
pub use settings::{OrchestratorSettings, ORCHESTRATOR_KEYS};
pub use spend::{month_start, BillingSource, SpendLimits, SpendReport, UserSpend};
pub use store::SessionStore;

use crate::error::{Error, ErrorKind, Result};
use crate::provider::Provider;
use driver::Cmd;
use events::Events;
use live::{Live, LiveMap, LiveSet};
use schedule::{Clock, TouchLog};

/// Cancels everything when the last handle is dropped without `shutdown` (like a crash).
#[derive(Debug)]
struct Guard {
    _drop: DropGuard,
    loops: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

/// What [`Orchestrator::shutdown`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ShutdownReport {
    /// The policy applied.
    pub policy: ShutdownPolicy,
    /// Sessions terminated during shutdown.
    pub terminated: usize,
    /// Sessions left tracked in the store (released, or terminate still failing).
    pub left_tracked: usize,
}

/// The running orchestrator. Cheap to clone; see the [module docs](self).
#[derive(Debug, Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
    guard: Arc<Guard>,
}

#[derive(Debug)]
struct Inner {
    store: Arc<dyn SessionStore>,
    providers: BTreeMap<String, Arc<dyn Provider>>,
    billing: BTreeMap<String, Arc<dyn BillingSource>>,
    cfg: OrchestratorConfig,
    clock: Clock,
    live: RwLock<LiveMap>,
    touches: TouchLog,
    events: Events,
    cmd: mpsc::UnboundedSender<Cmd>,
    /// Stops the timer, heartbeat, spend and reaper loops.
    loops: CancellationToken,
    /// Stops terminations and watchers in progress.
    work: CancellationToken,
    tasks: TaskTracker,
    closed_spend: Mutex<BTreeMap<String, f64>>,
    /// Closed spend per user of the month starting at `.0` (the monthly cap).
    month_closed: Mutex<(chrono::DateTime<chrono::Utc>, BTreeMap<String, f64>)>,
    drift: Mutex<f64>,
    shut: AtomicBool,
    /// Live sessions per user (per-user limits without scanning every session).
    by_user: Mutex<HashMap<String, LiveSet>>,
    /// Sessions pending, active, terminating (gauges without scanning).
    states: [AtomicI64; 3],
    /// Interval reaper rounds run only while this is held.
    lease: Arc<dyn LeaderLease>,
    /// Whether the last lease attempt held it.
    leader: AtomicBool,
    /// This node's id: the owner of what it spawns or adopts (see [`ownership`]).
    node: String,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn not_tracked(id: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("session {id} is not tracked (never spawned here, or already terminated)"),
    )
}

impl Orchestrator {
    /// Start building.
    pub fn builder() -> OrchestratorBuilder {
        OrchestratorBuilder::default()
    }

    /// Spawn a tracked session.
    ///
    /// Writes the intent to the store, then calls the provider, then records the compute
    /// id. If the provider's answer cannot be recorded, the machine is terminated (and
    /// the intent left for restart to resolve if even that fails) — never leaked.
    ///
    /// # Errors
    /// `Validation` for a bad request or unknown provider; `Forbidden` when a spend limit
    /// refuses it (the message names the limit); whatever the provider or store fails with.
    ///
    /// # Cost
    /// Starts billing.
    pub async fn spawn(&self, req: SessionRequest) -> Result<SpawnedSession> {
        self.inner.spawn(req).await
    }

    /// Record user activity: resets the idle TTL. No I/O, no await; heartbeats are
    /// persisted in batches every `heartbeat_flush_interval`.
    ///
    /// # Errors
    /// `NotFound` when the session is not tracked or is terminating.
    pub fn touch(&self, id: &str) -> Result<()> {
        let live = self
            .inner
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let l = live.get(id).ok_or_else(|| not_tracked(id))?;
        if l.terminating.load(Ordering::Relaxed) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("session {id} is terminating"),
            ));
        }
        if l.beat.touch(self.inner.clock.now_ms()) {
            self.inner.touches.push(Arc::clone(&l.id));
        }
        Ok(())
    }

    /// A tracked session.
    ///
    /// # Errors
    /// `NotFound` when not tracked.
    pub fn get(&self, id: &str) -> Result<Session> {
        self.inner
            .get_live(id)
            .map(|l| l.snapshot())
            .ok_or_else(|| not_tracked(id))
    }

    /// Tracked sessions passing `filter`, oldest first.
    pub fn list(&self, filter: &SessionFilter) -> Vec<Session> {
        // Filter before copying (a listing of one user's sessions copies only those), and
        // go through the per-user index when a user is asked for.
        let pick = |l: &Arc<Live>| {
            let ok = filter.matches(&lock(&l.rec));
            ok.then(|| l.snapshot())
        };
        let mut out: Vec<Session> = match &filter.user_id {
            Some(u) => {
                let mine: Vec<Arc<Live>> = lock(&self.inner.by_user)
                    .get(u)
                    .map(|m| m.values().cloned().collect())
                    .unwrap_or_default();
                mine.iter().filter_map(pick).collect()
            }
            None => self
                .inner
                .live
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .values()
                .filter_map(pick)
                .collect(),
        };
        out.sort_by(|a, b| {
            a.created_at
                .cmp(&b.created_at)
                .then_with(|| a.id.cmp(&b.id))
        });
        out
    }

    /// Number of tracked sessions.
    pub fn len(&self) -> usize {
        self.inner
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .len()
    }

    /// Whether no session is tracked.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Terminate a session upstream, then forget it. Waits for the terminate; if it fails,
    /// the session stays tracked, retries continue in the background, and the error is returned.
    ///
    /// A stored session this node does not track: refused with `Conflict` while another
    /// live node holds it; a [damaged](Session::damaged) one has its machine terminated
    /// and is forgotten.
    ///
    /// # Errors
    /// `NotFound` when not tracked; `Conflict` when another live node holds it; the
    /// provider's error when the first terminate failed.
    ///
    /// # Cost
    /// Stops billing.
    pub async fn stop_tracked(&self, id: &str) -> Result<()> {
        let Some(live) = self.inner.get_live(id) else {
            return self.inner.stop_stored(id).await;
        };
        let mut sub = self.inner.events.subscribe(Some(id.to_string()));
        if !self
            .inner
            .begin_terminate(&live, TerminateReason::Requested)
        {
            // Already terminating: wait for the outcome below.
        }
        loop {
            match sub.recv().await {
                Recv::Event(e) => match e.kind {
                    EventKind::Terminated { .. } => return Ok(()),
                    EventKind::TerminateFailed { error, .. } => {
                        return Err(Error::new(
                            ErrorKind::Provider,
                            format!("terminate of session {id} failed: {error}; the session stays tracked and the terminate is retried"),
                        ))
                    }
                    _ => {}
                },
                Recv::Lagged(_) => {
                    if self.inner.get_live(id).is_none() {
                        return Ok(());
                    }
                }
                Recv::Closed => return Ok(()),
            }
        }
    }

    /// Wait until the provider reports the machine running **and** its first HTTP port
    /// answers (any HTTP response below 500), polling with backoff (250 ms doubling to 5 s).
    /// A session without HTTP ports is ready when running.
    ///
    /// # Errors
    /// `Timeout` naming what was last seen; `NotFound` when the session is not tracked
    /// or its machine is gone; `Provider` when the machine failed.
    pub async fn wait_ready(&self, id: &str, timeout: Duration) -> Result<Session> {
        self.inner.wait_ready(id, timeout).await
    }

    /// Events of one session.
    pub fn subscribe(&self, id: &str) -> Subscription {
        self.inner.events.subscribe(Some(id.to_string()))
    }

    /// Events of every session (and of reaped orphans, with an empty session id).
    pub fn subscribe_all(&self) -> Subscription {
        self.inner.events.subscribe(None)
    }

    /// Spend per session, per user and overall, right now.
    pub fn spend(&self) -> SpendReport {
        self.inner.spend_report()
    }

    /// Run a reaper round now.
    ///
    /// # Errors
    /// `Validation` for an unknown provider; store errors.
    ///
    /// # Cost
    /// Terminates orphans unless `opts.dry_run`.
    pub async fn reap(&self, opts: &ReapOptions) -> Result<ReapReport> {
        self.inner.reap(opts).await
    }

    /// This node's id in the store: the owner of the sessions it spawns or adopts.
    pub fn node_id(&self) -> &str {
        &self.inner.node
    }

    /// Whether this node held the reaper lease at its last interval round (see
    /// [`LeaderLease`]); `false` before the first round and after shutdown.
    pub fn is_reaper_leader(&self) -> bool {
        self.inner.leader.load(Ordering::Acquire)
    }

    /// Reconcile the spend estimates with the providers' bills now (providers with a
    /// [`BillingSource`]); also done every `reconcile_interval`.
    ///
    /// # Errors
    /// The first billing error.
    pub async fn reconcile_bills(&self) -> Result<()> {
        self.inner.reconcile_bills().await
    }

    /// Persist pending heartbeats now (also done every `heartbeat_flush_interval`).
    ///
    /// # Errors
    /// Store errors (the heartbeats stay pending).
    pub async fn flush_heartbeats(&self) -> Result<usize> {
        self.inner.flush().await
    }

    /// Stop the background tasks and apply `policy` to tracked compute.
    ///
    /// # Errors
    /// Store errors while flushing heartbeats.
    ///
    /// # Cost
    /// `Terminate` stops billing of every tracked machine.
    pub async fn shutdown(&self, policy: ShutdownPolicy) -> Result<ShutdownReport> {
        let inner = &self.inner;
        inner.shut.store(true, Ordering::SeqCst);
        inner.loops.cancel();
        let loops = std::mem::take(&mut *lock(&self.guard.loops));
        for h in loops {
            let _ = h.await;
        }
        if inner.leader.swap(false, Ordering::AcqRel) {
            if let Err(e) = inner.lease.release().await {
                tracing::warn!(error = %e, "could not release the reaper lease; it passes on when it expires");
            }
        }
        let flushed = inner.flush().await;
        let before = self.len();
        if policy == ShutdownPolicy::Terminate {
            let all: Vec<Arc<Live>> = inner
                .live
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .values()
                .cloned()
                .collect();
            for l in &all {
                inner.begin_terminate(l, TerminateReason::Shutdown);
            }
        }
        inner.tasks.close();
        if tokio::time::timeout(inner.cfg.shutdown_timeout, inner.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(
                "shutdown timeout: sessions still terminating stay in the store for the next start"
            );
        }
        inner.work.cancel();
        inner.tasks.wait().await;
        // What is left is released to the next node on this store, at once.
        if let Err(e) = inner.store.release_owner(&inner.node).await {
            tracing::warn!(error = %e, node = %inner.node, "could not release this node's ownership lease; its sessions pass on when it expires");
        }
        let left = self.len();
        flushed?;
        Ok(ShutdownReport {
            policy,
            terminated: before.saturating_sub(left),
            left_tracked: left,
        })
    }
}

impl Inner {
    pub(super) fn provider(&self, name: &str) -> Result<&Arc<dyn Provider>> {
        self.providers.get(name).ok_or_else(|| {
            Error::validation(
                "provider",
                format!(
                    "{name:?} is not configured in this orchestrator; configured: {}",
                    self.providers
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            )
        })
    }
}
