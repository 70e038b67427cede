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
//! progress are resumed, and dangling intents are resolved by listing the provider by
//! launch name: the machine is adopted, or the intent dropped when there is none.
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

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::{CancellationToken, DropGuard};
use tokio_util::task::TaskTracker;
use tracing::Instrument;

pub mod events;
pub mod lease;
pub mod reaper;
pub mod schedule;
pub mod session;
pub mod settings;
pub mod spend;
pub mod store;

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
use crate::provider::{Provider, ProviderExt};
use crate::spec::{Compute, ComputeStatus, ListFilter};
use events::Events;
use schedule::{Beat, Clock, Deadlines, TouchLog};

/// What [`Orchestrator::shutdown`] does with tracked compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ShutdownPolicy {
    /// Destroy all tracked compute (the default: nothing leaks). Sessions whose
    /// terminate still fails at the shutdown timeout stay in the store for the next start.
    #[default]
    Terminate,
    /// Leave compute running and tracked in the store, for the next start (or another
    /// node sharing the store) to adopt. The provider-side deadline still applies.
    Release,
}

/// Orchestrator settings. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OrchestratorConfig {
    /// Idle TTL when the request sets none (default 15 min).
    pub default_idle_ttl: Duration,
    /// Max runtime when the request sets none (default 8 h).
    pub default_max_runtime: Duration,
    /// Pass `max_runtime + provider_deadline_slack` to providers that enforce a deadline (default on).
    pub provider_deadline: bool,
    /// Extra time the provider-side deadline allows past the orchestrator's (default 2 min),
    /// so the orchestrator normally ends the session itself, with its reason.
    pub provider_deadline_slack: Duration,
    /// How often touched heartbeats are persisted in one batch (default 5 s).
    pub heartbeat_flush_interval: Duration,
    /// How often per-user spend caps are checked (default 30 s).
    pub spend_interval: Duration,
    /// How often estimates are reconciled with provider billing (default 5 min).
    pub reconcile_interval: Duration,
    /// Per-user limits (default none).
    pub limits: SpendLimits,
    /// Reaper settings.
    pub reaper: ReaperConfig,
    /// Events held per subscriber before it lags (default 1024).
    pub event_capacity: usize,
    /// First retry delay of a failed terminate (default 1 s; doubles).
    pub terminate_backoff: Duration,
    /// Longest retry delay of a failed terminate (default 60 s).
    pub terminate_backoff_max: Duration,
    /// How long shutdown waits for terminations (default 60 s).
    pub shutdown_timeout: Duration,
    /// Watch each new machine until it runs, to emit [`EventKind::Running`] (default on).
    pub watch_running: bool,
    /// How long to watch for `running` (default 15 min).
    pub boot_timeout: Duration,
}

impl Default for OrchestratorConfig {
    fn default() -> OrchestratorConfig {
        OrchestratorConfig {
            default_idle_ttl: Duration::from_secs(15 * 60),
            default_max_runtime: Duration::from_secs(8 * 3600),
            provider_deadline: true,
            provider_deadline_slack: Duration::from_secs(120),
            heartbeat_flush_interval: Duration::from_secs(5),
            spend_interval: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(300),
            limits: SpendLimits::default(),
            reaper: ReaperConfig::default(),
            event_capacity: 1024,
            terminate_backoff: Duration::from_secs(1),
            terminate_backoff_max: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(60),
            watch_running: true,
            boot_timeout: Duration::from_secs(15 * 60),
        }
    }
}

impl OrchestratorConfig {
    fn validate(&self) -> Result<()> {
        self.reaper.validate()?;
        self.limits.validate()?;
        for (field, d) in [
            ("default_idle_ttl", self.default_idle_ttl),
            ("default_max_runtime", self.default_max_runtime),
        ] {
            crate::spec::DurationRange::LIMIT.check(field, d)?;
        }
        for (field, d) in [
            ("default_idle_ttl", self.default_idle_ttl),
            ("default_max_runtime", self.default_max_runtime),
            ("heartbeat_flush_interval", self.heartbeat_flush_interval),
            ("spend_interval", self.spend_interval),
            ("reconcile_interval", self.reconcile_interval),
            ("terminate_backoff", self.terminate_backoff),
        ] {
            if d.is_zero() {
                return Err(Error::validation(field, "must be greater than zero"));
            }
        }
        Ok(())
    }
}

/// Builder for [`Orchestrator`].
#[derive(Debug, Default)]
pub struct OrchestratorBuilder {
    store: Option<Arc<dyn SessionStore>>,
    providers: BTreeMap<String, Arc<dyn Provider>>,
    billing: BTreeMap<String, Arc<dyn BillingSource>>,
    config: OrchestratorConfig,
    lease: Option<Arc<dyn LeaderLease>>,
}

impl OrchestratorBuilder {
    /// The session store (required; [`store::SqliteSessionStore`] is the embedded default).
    pub fn store(self, s: impl SessionStore) -> OrchestratorBuilder {
        self.store_arc(Arc::new(s))
    }
    /// The session store, already shared.
    pub fn store_arc(mut self, s: Arc<dyn SessionStore>) -> OrchestratorBuilder {
        self.store = Some(s);
        self
    }
    /// Add a provider sessions may use (and the reaper lists).
    pub fn provider(self, p: impl Provider) -> OrchestratorBuilder {
        self.provider_arc(Arc::new(p))
    }
    /// Add a provider already behind an `Arc`.
    pub fn provider_arc(mut self, p: Arc<dyn Provider>) -> OrchestratorBuilder {
        self.providers.insert(p.name().to_string(), p);
        self
    }
    /// Reconcile spend on `provider` against `source`.
    pub fn billing(
        mut self,
        provider: impl Into<String>,
        source: Arc<dyn BillingSource>,
    ) -> OrchestratorBuilder {
        self.billing.insert(provider.into(), source);
        self
    }
    /// Settings.
    pub fn config(mut self, c: OrchestratorConfig) -> OrchestratorBuilder {
        self.config = c;
        self
    }
    /// Run interval reaper rounds only while holding `lease` (default [`AlwaysLeader`]);
    /// use one when several nodes share a store, so one reaper runs per cluster.
    pub fn leader_lease(self, lease: impl LeaderLease) -> OrchestratorBuilder {
        self.leader_lease_arc(Arc::new(lease))
    }
    /// The reaper lease, already shared.
    pub fn leader_lease_arc(mut self, lease: Arc<dyn LeaderLease>) -> OrchestratorBuilder {
        self.lease = Some(lease);
        self
    }

    /// Validate, re-adopt stored sessions, resolve dangling intents, and start the
    /// background tasks. Must be called inside a tokio runtime.
    ///
    /// # Errors
    /// `Validation` for bad settings or a missing store/provider; store errors.
    ///
    /// # Cost
    /// May terminate sessions whose deadlines passed while nothing was running.
    pub async fn start(self) -> Result<Orchestrator> {
        self.config.validate()?;
        let store = self.store.ok_or_else(|| {
            Error::validation(
                "store",
                "is required (e.g. SqliteSessionStore::from_config)",
            )
        })?;
        if self.providers.is_empty() {
            return Err(Error::validation("providers", "add at least one provider"));
        }
        let (tx, rx) = mpsc::unbounded_channel();
        let root = CancellationToken::new();
        let closed = store.closed_spend().await?;
        let clock = Clock::new();
        // The monthly cap needs the month's closed spend; a store without it refuses here.
        let month = spend::month_start(clock.now());
        let month_closed = if self.config.limits.max_usd_per_user_per_month.is_some() {
            store.closed_spend_since(month).await?
        } else {
            BTreeMap::new()
        };
        let inner = Arc::new(Inner {
            store,
            providers: self.providers,
            billing: self.billing,
            events: Events::new(self.config.event_capacity),
            cfg: self.config,
            clock,
            live: RwLock::new(LiveMap::default()),
            touches: TouchLog::default(),
            cmd: tx,
            loops: root.child_token(),
            work: root.child_token(),
            tasks: TaskTracker::new(),
            closed_spend: Mutex::new(closed),
            month_closed: Mutex::new((month, month_closed)),
            drift: Mutex::new(0.0),
            shut: AtomicBool::new(false),
            by_user: Mutex::new(HashMap::new()),
            states: Default::default(),
            lease: self.lease.unwrap_or_else(|| Arc::new(AlwaysLeader)),
            leader: AtomicBool::new(false),
        });
        inner.readopt().await?;
        let lp = Arc::clone(&inner);
        let main = tokio::spawn(
            lp.main_loop(rx)
                .instrument(tracing::info_span!("atlas.orchestrator")),
        );
        let reaper = if inner.cfg.reaper.enabled {
            let rp = Arc::clone(&inner);
            Some(tokio::spawn(
                rp.reaper_loop()
                    .instrument(tracing::info_span!("atlas.reaper")),
            ))
        } else {
            None
        };
        Ok(Orchestrator {
            inner,
            guard: Arc::new(Guard {
                _drop: root.drop_guard(),
                loops: Mutex::new(vec![main].into_iter().chain(reaper).collect()),
            }),
        })
    }
}

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

/// One tracked session in memory. `repr(C)` keeps what `touch` reads (the heartbeat
/// and the terminating flag) at the front, in the cache line of the `Arc` header.
#[derive(Debug)]
#[repr(C)]
struct Live {
    beat: Beat,
    terminating: AtomicBool,
    running_seen: AtomicBool,
    id: Arc<str>,
    rec: Mutex<Session>,
    span: tracing::Span,
}

/// Live sessions, keyed for a cheap `touch`: our ids are 32 lowercase hex characters,
/// held as their 128-bit value (hashing and comparing 16 inline bytes, no pointer to
/// follow); any other id (a foreign store's) goes to a plain map.
#[derive(Debug, Default)]
struct LiveMap {
    hex: HashMap<u128, Arc<Live>, std::hash::BuildHasherDefault<IdHasher>>,
    other: HashMap<Arc<str>, Arc<Live>>,
}

impl LiveMap {
    fn key(id: &str) -> Option<u128> {
        if id.len() != 32 {
            return None;
        }
        let mut v: u128 = 0;
        for b in id.bytes() {
            let d = match b {
                b'0'..=b'9' => b - b'0',
                b'a'..=b'f' => b - b'a' + 10,
                _ => return None,
            };
            v = (v << 4) | u128::from(d);
        }
        Some(v)
    }
    fn get(&self, id: &str) -> Option<&Arc<Live>> {
        match LiveMap::key(id) {
            Some(k) => self.hex.get(&k),
            None => self.other.get(id),
        }
    }
    fn insert(&mut self, l: Arc<Live>) {
        match LiveMap::key(&l.id) {
            Some(k) => {
                self.hex.insert(k, l);
            }
            None => {
                self.other.insert(Arc::clone(&l.id), l);
            }
        }
    }
    fn remove(&mut self, id: &str) -> Option<Arc<Live>> {
        match LiveMap::key(id) {
            Some(k) => self.hex.remove(&k),
            None => self.other.remove(id),
        }
    }
    fn values(&self) -> impl Iterator<Item = &Arc<Live>> {
        self.hex.values().chain(self.other.values())
    }
    fn len(&self) -> usize {
        self.hex.len() + self.other.len()
    }
}

/// Hasher for random 128-bit ids: their low 64 bits are already uniformly distributed.
#[derive(Debug, Default)]
struct IdHasher(u64);

impl std::hash::Hasher for IdHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u128(&mut self, v: u128) {
        self.0 = v as u64;
    }
}

impl Live {
    fn new(rec: Session) -> Arc<Live> {
        let span = tracing::info_span!(
            "atlas.session",
            session.id = %rec.id,
            user.id = %rec.user_id,
            provider = %rec.provider,
            compute.id = tracing::field::Empty,
        );
        if let Some(c) = &rec.compute_id {
            span.record("compute.id", c.as_str());
        }
        Arc::new(Live {
            id: Arc::from(rec.id.as_str()),
            beat: Beat::new(rec.last_touch),
            rec: Mutex::new(rec),
            terminating: AtomicBool::new(false),
            running_seen: AtomicBool::new(false),
            span,
        })
    }

    fn snapshot(&self) -> Session {
        let mut s = lock(&self.rec).clone();
        s.last_touch = s.last_touch.max(self.beat.last());
        s
    }
}

/// Live sessions keyed by session id.
type LiveSet = HashMap<Arc<str>, Arc<Live>>;

#[derive(Debug)]
enum Cmd {
    Schedule(Arc<str>, Instant),
    Cancel(Arc<str>),
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
    month_closed: Mutex<(DateTime<Utc>, BTreeMap<String, f64>)>,
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
    /// # Errors
    /// `NotFound` when not tracked; the provider's error when the first terminate failed.
    ///
    /// # Cost
    /// Stops billing.
    pub async fn stop_tracked(&self, id: &str) -> Result<()> {
        let live = self.inner.get_live(id).ok_or_else(|| not_tracked(id))?;
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

    /// Whether this node held the reaper lease at its last interval round (see
    /// [`LeaderLease`]); `false` before the first round and after shutdown.
    pub fn is_reaper_leader(&self) -> bool {
        self.inner.leader.load(Ordering::Acquire)
    }

    /// Reconcile estimates with provider billing now (providers with a [`BillingSource`]).
    ///
    /// # Errors
    /// The first billing error.
    pub async fn reconcile(&self) -> Result<()> {
        self.inner.reconcile().await
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
    fn get_live(&self, id: &str) -> Option<Arc<Live>> {
        self.live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .get(id)
            .cloned()
    }

    fn provider(&self, name: &str) -> Result<&Arc<dyn Provider>> {
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

    fn state_of(l: &Live) -> SessionState {
        if l.terminating.load(Ordering::Acquire) {
            SessionState::Terminating
        } else {
            lock(&l.rec).state
        }
    }

    /// Adjust the count of sessions in `state` (and its gauge): O(1), no scan.
    fn bump(&self, state: SessionState, delta: i64) {
        let i = match state {
            SessionState::Pending => 0,
            SessionState::Active => 1,
            _ => 2,
        };
        let n = self.states[i].fetch_add(delta, Ordering::AcqRel) + delta;
        metrics::gauge!("atlas_sessions", "state" => state.as_str()).set(n as f64);
    }

    /// Count a live session as terminating (called once, by whoever flipped the flag).
    fn bump_terminating(&self, l: &Live) {
        let prev = lock(&l.rec).state;
        if prev != SessionState::Terminating {
            self.bump(prev, -1);
            self.bump(SessionState::Terminating, 1);
        }
    }

    fn schedule(&self, live: &Live) {
        let (at, _) = lock(&live.rec).next_deadline(live.beat.last());
        let _ = self.cmd.send(Cmd::Schedule(
            Arc::clone(&live.id),
            self.clock.instant_of(at),
        ));
    }

    fn insert_live(&self, rec: Session) -> Arc<Live> {
        let user = rec.user_id.clone();
        let l = Live::new(rec);
        self.bump(Inner::state_of(&l), 1);
        self.live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .insert(Arc::clone(&l));
        lock(&self.by_user)
            .entry(user)
            .or_default()
            .insert(Arc::clone(&l.id), Arc::clone(&l));
        l
    }

    fn user_spend(&self, user: &str, now: DateTime<Utc>) -> UserSpend {
        let mut u = UserSpend {
            closed_usd: lock(&self.closed_spend).get(user).copied().unwrap_or(0.0),
            ..UserSpend::default()
        };
        let mine: Vec<Arc<Live>> = lock(&self.by_user)
            .get(user)
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default();
        for l in mine {
            let r = lock(&l.rec);
            u.sessions += 1;
            u.usd_per_hour += r.cost_per_hour;
            u.live_usd += r.spent_usd(now);
        }
        u.month_usd = u.live_usd + self.month_closed_usd(user, now);
        u
    }

    /// What `user`'s sessions closed this calendar month spent.
    fn month_closed_usd(&self, user: &str, now: DateTime<Utc>) -> f64 {
        let m = lock(&self.month_closed);
        if m.0 == spend::month_start(now) {
            m.1.get(user).copied().unwrap_or(0.0)
        } else {
            0.0
        }
    }

    async fn spawn(self: &Arc<Self>, req: SessionRequest) -> Result<SpawnedSession> {
        if self.shut.load(Ordering::SeqCst) {
            return Err(Error::new(
                ErrorKind::Unknown,
                "the orchestrator is shutting down; no new sessions are spawned",
            ));
        }
        req.validate()?;
        let provider = Arc::clone(self.provider(&req.provider)?);
        let idle_ttl = req
            .idle_ttl
            .or(req.compute.idle_ttl)
            .unwrap_or(self.cfg.default_idle_ttl);
        let max_runtime = req
            .max_runtime
            .or(req.compute.max_runtime)
            .unwrap_or(self.cfg.default_max_runtime);
        // Wherever the machine can hold its own deadline (a provider TTL, or its command
        // wrapped to end it), it gets max runtime + slack.
        let deadline = (self.cfg.provider_deadline
            && crate::spec::deadline::held_by_machine(&provider.capabilities(), &req.compute))
        .then(|| max_runtime.saturating_add(self.cfg.provider_deadline_slack));
        let creq = req.compute_request(deadline)?;
        let now = self.clock.now();
        spend::refuse_spawn(
            &self.cfg.limits,
            &req.user_id,
            &self.user_spend(&req.user_id, now),
            self.spend_report().total_usd,
        )?;

        let id = uuid::Uuid::new_v4().simple().to_string();
        let rec = Session::intent(id.clone(), &req, &creq, idle_ttl, max_runtime, now);
        self.store.insert(&rec).await?;
        let live = self.insert_live(rec);
        let span = live.span.clone();
        let fut = async {
            let res = match provider.spawn(&creq).await {
                Ok(c) => Ok(c),
                Err(e) if e.is_ambiguous() => {
                    // The create may have happened: find it by its unique launch name.
                    match provider.list(&ListFilter::all().with_name(creq.launch_name())).await {
                        Ok(found) if !found.is_empty() => Ok(found.into_iter().next().expect("non-empty")),
                        Ok(_) => Err(e),
                        Err(le) => {
                            // Unknown outcome: keep the intent for the reaper/restart to resolve.
                            self.forget_memory(&live.id);
                            tracing::warn!(error = %le, "spawn outcome unknown; intent kept for reconciliation");
                            if live.terminating.load(Ordering::Acquire) {
                                self.events.emit(&live.id, None, self.clock.now(), EventKind::TerminateFailed {
                                    error: format!("spawn outcome unknown ({le}); the intent is kept and the reaper resolves it"),
                                    attempt: 1,
                                });
                            }
                            return Err(e);
                        }
                    }
                }
                Err(e) => Err(e),
            };
            let compute = match res {
                Ok(c) => c,
                Err(e) => {
                    metrics::counter!("atlas_session_spawn_failures_total", "provider" => req.provider.clone()).increment(1);
                    if live.terminating.load(Ordering::Acquire) {
                        // Stopped while spawning, and nothing was created: that is the end.
                        let reason = lock(&live.rec).terminate_reason.unwrap_or(TerminateReason::Requested);
                        self.finish(&live, reason).await;
                        return Err(e);
                    }
                    self.forget_memory(&live.id);
                    if let Err(se) = self.store.finish(&live.id, 0.0).await {
                        tracing::warn!(error = %se, "could not drop the spawn intent; the reaper will");
                    }
                    return Err(e);
                }
            };
            live.span.record("compute.id", compute.id.as_str());
            let rec = {
                let mut r = lock(&live.rec);
                r.adopt(&compute, self.clock.now());
                r.clone()
            };
            if live.terminating.load(Ordering::Acquire) {
                // Stopped (or shut down) while spawning: record the machine, then end it.
                let reason = rec.terminate_reason.unwrap_or(TerminateReason::Requested);
                if let Err(e) = self.store.update(&rec).await {
                    tracing::warn!(error = %e, "could not record the machine of a stopped spawn");
                }
                let me = Arc::clone(self);
                let l = Arc::clone(&live);
                self.tasks.spawn(async move { me.terminate_task(l, reason).await }.instrument(span.clone()));
                return Err(Error::new(
                    ErrorKind::Unknown,
                    format!("session {} was stopped while it was being spawned; machine {} is being terminated", rec.id, compute.id),
                ));
            }
            self.bump(SessionState::Pending, -1);
            self.bump(SessionState::Active, 1);
            if let Err(e) = self.store.update(&rec).await {
                tracing::error!(error = %e, compute.id = %compute.id, "spawned but the record could not be written; terminating the machine");
                self.begin_terminate(&live, TerminateReason::Orphan);
                return Err(e.with_message(format!(
                    "machine {} was spawned but its session could not be recorded; it is being terminated",
                    compute.id
                )));
            }
            metrics::counter!("atlas_session_spawns_total", "provider" => req.provider.clone()).increment(1);
            self.events.emit(&rec.id, Some(&compute.id), self.clock.now(), EventKind::Spawned { name: rec.name.clone() });
            self.schedule(&live);
            if compute.status == ComputeStatus::Running {
                self.mark_running(&live, compute.http_url().map(str::to_string));
            } else if self.cfg.watch_running {
                let me = Arc::clone(self);
                let l = Arc::clone(&live);
                self.tasks.spawn(me.watch_running(l).instrument(span.clone()));
            }
            tracing::info!(compute.id = %compute.id, name = %rec.name, "session spawned");
            Ok(SpawnedSession { session: rec, compute })
        }
        .instrument(span.clone());
        // Tracked, so shutdown waits for spawns in flight (and what they start).
        self.tasks.track_future(fut).await
    }

    fn forget_memory(&self, id: &Arc<str>) {
        let removed = self
            .live
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(id);
        if let Some(l) = removed {
            self.bump(Inner::state_of(&l), -1);
            let user = lock(&l.rec).user_id.clone();
            let mut by_user = lock(&self.by_user);
            if let Some(m) = by_user.get_mut(&user) {
                m.remove(id);
                if m.is_empty() {
                    by_user.remove(&user);
                }
            }
        }
        let _ = self.cmd.send(Cmd::Cancel(Arc::clone(id)));
    }

    fn mark_running(&self, live: &Live, url: Option<String>) {
        if !live.running_seen.swap(true, Ordering::AcqRel) {
            let cid = lock(&live.rec).compute_id.clone();
            self.events.emit(
                &live.id,
                cid.as_deref(),
                self.clock.now(),
                EventKind::Running { url },
            );
        }
    }

    async fn watch_running(self: Arc<Self>, live: Arc<Live>) {
        let (provider, cid) = {
            let r = lock(&live.rec);
            (r.provider.clone(), r.compute_id.clone())
        };
        let (Ok(p), Some(cid)) = (self.provider(&provider), cid) else {
            return;
        };
        let end = crate::spec::deadline_in(self.cfg.boot_timeout);
        let mut delay = Duration::from_millis(250);
        while Instant::now() < end
            && !live.terminating.load(Ordering::Relaxed)
            && !live.running_seen.load(Ordering::Relaxed)
        {
            match p.get(&cid).await {
                Ok(c) if c.status == ComputeStatus::Running => {
                    self.mark_running(&live, c.http_url().map(str::to_string));
                    return;
                }
                Ok(c) if c.status.is_terminal() => return,
                Err(e) if e.kind() == ErrorKind::NotFound => return,
                _ => {}
            }
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = self.work.cancelled() => return,
            }
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn wait_ready(&self, id: &str, timeout: Duration) -> Result<Session> {
        let live = self.get_live(id).ok_or_else(|| not_tracked(id))?;
        let (provider, cid) = {
            let r = lock(&live.rec);
            (r.provider.clone(), r.compute_id.clone())
        };
        let p = Arc::clone(self.provider(&provider)?);
        let cid = cid.ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("session {id} has no machine yet"),
            )
        })?;
        let deadline = crate::spec::deadline_in(timeout);
        let mut delay = Duration::from_millis(250);
        let http = crate::http::HttpClient::shared();
        let mut last: String;
        loop {
            let c = p.get(&cid).await?;
            if c.status.is_terminal() {
                return Err(Error::new(
                    ErrorKind::Provider,
                    format!("session {id}: machine {cid} became {}", c.status),
                )
                .with_provider(provider.clone()));
            }
            if c.status == ComputeStatus::Running {
                self.mark_running(&live, c.http_url().map(str::to_string));
                match c.http_url() {
                    None => return Ok(live.snapshot()),
                    Some(url) => {
                        let left = deadline
                            .saturating_duration_since(Instant::now())
                            .max(Duration::from_millis(1));
                        match http
                            .reqwest_client()
                            .get(url)
                            .timeout(left.min(Duration::from_secs(5)))
                            .send()
                            .await
                        {
                            Ok(r) if r.status().as_u16() < 500 => return Ok(live.snapshot()),
                            Ok(r) => {
                                last =
                                    format!("running, port answered HTTP {}", r.status().as_u16())
                            }
                            Err(e) => {
                                last = format!(
                                    "running, port not answering ({})",
                                    crate::http::redact_text(&e.to_string(), &[])
                                )
                            }
                        }
                    }
                }
            } else {
                last = c.status.to_string();
            }
            let now = Instant::now();
            if now >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("session {id} not ready after {}: {last}; wait longer with a bigger timeout", humantime::format_duration(timeout)),
                )
                .with_operation("wait_ready"));
            }
            tokio::time::sleep(delay.min(deadline - now)).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    /// Start terminating `live` in the background; `false` when already terminating.
    fn begin_terminate(self: &Arc<Self>, live: &Arc<Live>, reason: TerminateReason) -> bool {
        if live.terminating.swap(true, Ordering::AcqRel) {
            return false;
        }
        self.bump_terminating(live);
        let me = Arc::clone(self);
        let l = Arc::clone(live);
        let span = live.span.clone();
        self.tasks
            .spawn(async move { me.terminate_task(l, reason).await }.instrument(span));
        true
    }

    async fn terminate_task(self: Arc<Self>, live: Arc<Live>, reason: TerminateReason) {
        {
            let mut r = lock(&live.rec);
            if r.state == SessionState::Pending && r.compute_id.is_none() {
                // The spawn is in flight: it terminates the machine as soon as it exists.
                r.terminate_reason = Some(reason);
                drop(r);
                self.events.emit(
                    &live.id,
                    None,
                    self.clock.now(),
                    EventKind::Terminating { reason },
                );
                return;
            }
        }
        let rec = {
            let mut r = lock(&live.rec);
            r.state = SessionState::Terminating;
            r.terminate_reason = Some(reason);
            r.last_touch = r.last_touch.max(live.beat.last());
            r.clone()
        };
        let cid = rec.compute_id.clone();
        self.events.emit(
            &rec.id,
            cid.as_deref(),
            self.clock.now(),
            EventKind::Terminating { reason },
        );
        if let Err(e) = self.store.update(&rec).await {
            tracing::warn!(error = %e, "could not record the terminating state; continuing");
        }
        tracing::info!(%reason, "terminating session");
        if let Some(cid) = &cid {
            let p = match self.provider(&rec.provider) {
                Ok(p) => Arc::clone(p),
                Err(e) => {
                    tracing::error!(error = %e, "no provider to terminate with; the session stays tracked");
                    return;
                }
            };
            let mut delay = self.cfg.terminate_backoff;
            let mut attempt = 0u32;
            loop {
                match p.terminate_if_exists(cid).await {
                    Ok(_) => break,
                    Err(e) => {
                        attempt += 1;
                        metrics::counter!("atlas_session_terminate_failures_total", "provider" => rec.provider.clone()).increment(1);
                        tracing::warn!(error = %e, attempt, "terminate failed; retrying with backoff");
                        self.events.emit(
                            &rec.id,
                            Some(cid),
                            self.clock.now(),
                            EventKind::TerminateFailed {
                                error: e.to_string(),
                                attempt,
                            },
                        );
                        tokio::select! {
                            _ = tokio::time::sleep(delay) => {}
                            _ = self.work.cancelled() => return,
                        }
                        delay = (delay * 2).min(self.cfg.terminate_backoff_max);
                    }
                }
            }
        }
        self.finish(&live, reason).await;
    }

    /// The machine is gone: forget the session and account its spend.
    async fn finish(&self, live: &Arc<Live>, reason: TerminateReason) {
        let now = self.clock.now();
        let rec = live.snapshot();
        let spent = rec.spent_usd(now);
        if let Err(e) = self.store.finish(&rec.id, spent).await {
            tracing::warn!(error = %e, "could not forget the session in the store; the next start resolves it");
        }
        *lock(&self.closed_spend)
            .entry(rec.user_id.clone())
            .or_default() += spent;
        {
            let mut m = lock(&self.month_closed);
            let month = spend::month_start(now);
            if m.0 != month {
                *m = (month, BTreeMap::new());
            }
            *m.1.entry(rec.user_id.clone()).or_default() += spent;
        }
        self.forget_memory(&live.id);
        metrics::counter!("atlas_session_terminations_total", "reason" => reason.as_str())
            .increment(1);
        metrics::counter!("atlas_spend_usd_closed_total", "provider" => rec.provider.clone())
            .increment((spent * 1e6) as u64);
        self.events.emit(
            &rec.id,
            rec.compute_id.as_deref(),
            now,
            EventKind::Terminated {
                reason,
                spent_usd: spent,
            },
        );
        tracing::info!(%reason, spent_usd = spent, "session terminated");
    }

    fn on_expired(self: &Arc<Self>, id: &str) {
        let Some(live) = self.get_live(id) else {
            return;
        };
        if live.terminating.load(Ordering::Relaxed) {
            return;
        }
        let (at, reason) = lock(&live.rec).next_deadline(live.beat.last());
        if self.clock.now() < at {
            self.schedule(&live);
        } else if reason == TerminateReason::Idle {
            // Before ending a session as idle, take in the heartbeat the store holds: with
            // a store shared by several nodes another node may be the one being touched.
            // One read per idle expiry, never on the touch path.
            let me = Arc::clone(self);
            self.tasks.spawn(async move {
                if let Ok(Some(stored)) = me.store.get(&live.id).await {
                    live.beat.observe(stored.last_touch);
                }
                let (at, reason) = lock(&live.rec).next_deadline(live.beat.last());
                if me.clock.now() >= at {
                    me.begin_terminate(&live, reason);
                } else {
                    me.schedule(&live);
                }
            });
        } else {
            self.begin_terminate(&live, reason);
        }
    }

    async fn main_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        enum Wake {
            Stop,
            Cmd(Cmd),
            Expired(Arc<str>),
            Flush,
            Spend,
            Reconcile,
        }
        let mut deadlines = Deadlines::new();
        let start = Instant::now();
        let mut flush = tokio::time::interval_at(
            start + self.cfg.heartbeat_flush_interval,
            self.cfg.heartbeat_flush_interval,
        );
        let mut spend =
            tokio::time::interval_at(start + self.cfg.spend_interval, self.cfg.spend_interval);
        let mut reconcile = tokio::time::interval_at(
            start + self.cfg.reconcile_interval,
            self.cfg.reconcile_interval,
        );
        for t in [&mut flush, &mut spend, &mut reconcile] {
            t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        }
        loop {
            let wake = tokio::select! {
                biased;
                _ = self.loops.cancelled() => Wake::Stop,
                c = rx.recv() => match c { Some(c) => Wake::Cmd(c), None => Wake::Stop },
                id = deadlines.next_expired() => Wake::Expired(id),
                _ = flush.tick() => Wake::Flush,
                _ = spend.tick() => Wake::Spend,
                _ = reconcile.tick() => Wake::Reconcile,
            };
            match wake {
                Wake::Stop => break,
                Wake::Cmd(Cmd::Schedule(id, at)) => deadlines.schedule(id, at),
                Wake::Cmd(Cmd::Cancel(id)) => {
                    deadlines.cancel(&id);
                }
                Wake::Expired(id) => self.on_expired(&id),
                Wake::Flush => {
                    if let Err(e) = self.flush().await {
                        tracing::warn!(error = %e, "heartbeat batch not persisted; retrying next interval");
                    }
                }
                Wake::Spend => self.check_user_caps(),
                Wake::Reconcile => {
                    if !self.billing.is_empty() {
                        let me = Arc::clone(&self);
                        self.tasks.spawn(async move {
                            if let Err(e) = me.reconcile().await {
                                tracing::warn!(error = %e, "billing reconciliation failed");
                            }
                        });
                    }
                }
            }
        }
    }

    async fn reaper_loop(self: Arc<Self>) {
        let every = self.cfg.reaper.interval;
        let mut t = tokio::time::interval_at(crate::spec::deadline_in(every), every);
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.loops.cancelled() => break,
                _ = t.tick() => {
                    if !self.hold_lease().await {
                        continue;
                    }
                    match self.reap(&ReapOptions::default()).await {
                        Ok(r) => tracing::debug!(decisions = r.decisions.len(), "reaper round"),
                        Err(e) => tracing::warn!(error = %e, "reaper round failed"),
                    }
                }
            }
        }
    }

    /// Take or renew the reaper lease; a failed attempt counts as not held (another
    /// node may hold it), so the round is skipped.
    async fn hold_lease(&self) -> bool {
        let held = match self.lease.acquire().await {
            Ok(h) => h,
            Err(e) => {
                tracing::warn!(error = %e, "reaper lease check failed; skipping this round");
                false
            }
        };
        let was = self.leader.swap(held, Ordering::AcqRel);
        match (was, held) {
            (false, true) => tracing::info!("holding the reaper lease; this node runs the reaper"),
            (true, false) => tracing::info!("lost the reaper lease; another node runs the reaper"),
            (false, false) => tracing::debug!("reaper lease held elsewhere; round skipped"),
            (true, true) => {}
        }
        held
    }

    async fn flush(&self) -> Result<usize> {
        let ids = self.touches.take();
        if ids.is_empty() {
            return Ok(0);
        }
        let mut beats = Vec::with_capacity(ids.len());
        let mut lives = Vec::with_capacity(ids.len());
        for id in &ids {
            if let Some(l) = self.get_live(id) {
                beats.push((id.to_string(), l.beat.take()));
                lives.push(l);
            }
        }
        if let Err(e) = self.store.touch_many(&beats).await {
            for l in &lives {
                if l.beat.touch(0) {
                    self.touches.push(Arc::clone(&l.id));
                }
            }
            return Err(e);
        }
        for (l, (_, at)) in lives.iter().zip(&beats) {
            let cid = {
                let mut r = lock(&l.rec);
                r.last_touch = r.last_touch.max(*at);
                r.compute_id.clone()
            };
            self.events.emit(
                &l.id,
                cid.as_deref(),
                self.clock.now(),
                EventKind::Heartbeat { last_touch: *at },
            );
        }
        Ok(beats.len())
    }

    fn spend_report(&self) -> SpendReport {
        let now = self.clock.now();
        let mut r = SpendReport {
            at: Some(now),
            reconciliation_drift_usd: *lock(&self.drift),
            ..SpendReport::default()
        };
        for (u, usd) in lock(&self.closed_spend).iter() {
            r.users.entry(u.clone()).or_default().closed_usd = *usd;
        }
        let live = self
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for l in live.values() {
            let s = lock(&l.rec);
            let acc = s.spent_usd(now);
            let u = r.users.entry(s.user_id.clone()).or_default();
            u.sessions += 1;
            u.usd_per_hour += s.cost_per_hour;
            u.live_usd += acc;
            r.sessions.insert(s.id.clone(), acc);
            r.usd_per_hour += s.cost_per_hour;
        }
        drop(live);
        for (u, spend) in r.users.iter_mut() {
            spend.month_usd = spend.live_usd + self.month_closed_usd(u, now);
        }
        r.total_usd = r.users.values().map(UserSpend::total_usd).sum();
        metrics::gauge!("atlas_spend_usd").set(r.total_usd);
        metrics::gauge!("atlas_spend_usd_per_hour").set(r.usd_per_hour);
        r
    }

    /// Terminate sessions of users over a per-user cap (newest first for $/h, all for
    /// total and month), and every session once all users together reach `max_total_usd`.
    fn check_user_caps(self: &Arc<Self>) {
        let report = self.spend_report();
        let limits = &self.cfg.limits;
        if spend::crossed_total(limits, report.total_usd) {
            tracing::warn!(
                total_usd = report.total_usd,
                "the store's spend reached max_total_usd; terminating every session"
            );
            let all: Vec<Arc<Live>> = self
                .live
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .values()
                .cloned()
                .collect();
            for l in all {
                self.begin_terminate(&l, TerminateReason::Budget);
            }
            return;
        }
        for (user, spend) in &report.users {
            let Some(which) = spend::crossed(limits, spend) else {
                continue;
            };
            let mut mine: Vec<Arc<Live>> = lock(&self.by_user)
                .get(user)
                .map(|m| {
                    m.values()
                        .filter(|l| !l.terminating.load(Ordering::Relaxed))
                        .cloned()
                        .collect()
                })
                .unwrap_or_default();
            mine.sort_by_key(|l| std::cmp::Reverse(lock(&l.rec).created_at));
            tracing::warn!(user = %user, limit = which, "user crossed a spend cap; terminating sessions");
            let mut rate = spend.usd_per_hour;
            for l in mine {
                if which == "max_usd_per_hour_per_user"
                    && limits
                        .max_usd_per_hour_per_user
                        .is_some_and(|cap| rate <= cap + 1e-9)
                {
                    break;
                }
                rate -= lock(&l.rec).cost_per_hour;
                self.begin_terminate(&l, TerminateReason::Budget);
            }
        }
    }

    async fn reconcile(self: &Arc<Self>) -> Result<()> {
        for (provider, source) in &self.billing {
            let lives: Vec<Arc<Live>> = self
                .live
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .values()
                .filter(|l| lock(&l.rec).provider == *provider)
                .cloned()
                .collect();
            let by_cid: HashMap<String, Arc<Live>> = lives
                .into_iter()
                .filter_map(|l| {
                    let c = lock(&l.rec).compute_id.clone();
                    c.map(|c| (c, l))
                })
                .collect();
            if by_cid.is_empty() {
                continue;
            }
            let ids: Vec<String> = by_cid.keys().cloned().collect();
            let since = by_cid
                .values()
                .map(|l| lock(&l.rec).created_at)
                .min()
                .unwrap_or_else(|| self.clock.now());
            let billed = source.billed_usd(&ids, since).await?;
            let now = self.clock.now();
            let mut drift = 0.0;
            for (cid, usd) in billed {
                if let Some(l) = by_cid.get(&cid) {
                    let over = {
                        let mut r = lock(&l.rec);
                        drift += usd - r.accrued_usd(now);
                        r.billed_usd = Some(usd);
                        // The session's own cap, against a bill that ran ahead of the estimate.
                        r.max_cost_usd.is_some_and(|max| r.spent_usd(now) >= max)
                    };
                    if over {
                        self.begin_terminate(l, TerminateReason::Budget);
                    }
                }
            }
            *lock(&self.drift) = drift;
            metrics::gauge!("atlas_spend_reconciliation_drift_usd", "provider" => provider.clone())
                .set(drift);
        }
        // Per-user and store caps now count the bills just recorded.
        self.check_user_caps();
        Ok(())
    }

    async fn reap(self: &Arc<Self>, opts: &ReapOptions) -> Result<ReapReport> {
        let fx = OrchEffects {
            inner: Arc::clone(self),
        };
        reaper::round(
            self.store.as_ref(),
            &self.providers,
            &self.cfg.reaper,
            opts,
            &fx,
        )
        .await
    }

    /// Re-adopt every stored session; resolve dangling intents by launch name.
    async fn readopt(self: &Arc<Self>) -> Result<()> {
        let stored = self.store.list().await?;
        let mut listings: BTreeMap<String, Option<Vec<Compute>>> = BTreeMap::new();
        for s in stored {
            let Ok(p) = self.provider(&s.provider).map(Arc::clone) else {
                tracing::warn!(session.id = %s.id, provider = %s.provider, "stored session on a provider not configured here; left in the store");
                continue;
            };
            match s.state {
                SessionState::Pending => {
                    let listing = match listings.get(&s.provider) {
                        Some(l) => l.clone(),
                        None => {
                            let l = p.list(&ListFilter::all()).await.ok();
                            listings.insert(s.provider.clone(), l.clone());
                            l
                        }
                    };
                    let Some(listing) = listing else {
                        tracing::warn!(session.id = %s.id, "cannot list the provider; intent left for the reaper");
                        continue;
                    };
                    match listing
                        .iter()
                        .find(|c| c.name.as_deref() == Some(s.name.as_str()))
                    {
                        Some(c) => {
                            let mut s = s.clone();
                            s.adopt(c, self.clock.now());
                            self.store.update(&s).await?;
                            tracing::info!(session.id = %s.id, compute.id = %c.id, "adopted the machine of a dangling spawn intent");
                            let l = self.insert_live(s);
                            self.schedule(&l);
                        }
                        None => {
                            self.store.finish(&s.id, 0.0).await?;
                            tracing::info!(session.id = %s.id, "dropped a dangling spawn intent with no machine");
                        }
                    }
                }
                SessionState::Active => {
                    let l = self.insert_live(s);
                    self.schedule(&l);
                }
                SessionState::Terminating | SessionState::Terminated => {
                    let reason = s.terminate_reason.unwrap_or(TerminateReason::Shutdown);
                    let l = self.insert_live(s);
                    self.begin_terminate(&l, reason);
                }
            }
        }
        Ok(())
    }
}

struct OrchEffects {
    inner: Arc<Inner>,
}

#[async_trait]
impl reaper::Effects for OrchEffects {
    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }
    fn in_flight(&self) -> HashSet<String> {
        self.inner
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .filter(|l| lock(&l.rec).state == SessionState::Pending)
            .map(|l| l.id.to_string())
            .collect()
    }
    async fn vanished(&self, s: &Session) -> Result<()> {
        match self.inner.get_live(&s.id) {
            Some(l) => {
                if !l.terminating.swap(true, Ordering::AcqRel) {
                    self.inner.bump_terminating(&l);
                    self.inner.finish(&l, TerminateReason::Vanished).await;
                }
                Ok(())
            }
            None => self
                .inner
                .store
                .finish(&s.id, s.accrued_usd(self.now()))
                .await
                .map(drop),
        }
    }
    async fn adopt(&self, s: &Session, c: &Compute) -> Result<()> {
        let mut s = s.clone();
        s.adopt(c, self.now());
        self.inner.store.update(&s).await?;
        let l = self.inner.insert_live(s);
        self.inner.schedule(&l);
        Ok(())
    }
    async fn drop_intent(&self, s: &Session) -> Result<()> {
        self.inner.store.finish(&s.id, 0.0).await.map(drop)
    }
    async fn listed(&self, provider: &str, listing: &[Compute]) {
        // Rates seen upstream (a stopped machine bills storage only) update the estimates.
        let now = self.now();
        let by_id: HashMap<&str, &Compute> = listing.iter().map(|c| (c.id.as_str(), c)).collect();
        let lives: Vec<Arc<Live>> = self
            .inner
            .live
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .values()
            .cloned()
            .collect();
        for l in lives {
            let changed = {
                let mut r = lock(&l.rec);
                if r.provider != provider {
                    continue;
                }
                match r
                    .compute_id
                    .as_deref()
                    .and_then(|id| by_id.get(id))
                    .and_then(|c| c.cost_per_hour)
                {
                    Some(rate) if (rate - r.cost_per_hour).abs() > 1e-12 => {
                        r.set_rate(rate, now);
                        true
                    }
                    _ => false,
                }
            };
            if changed {
                self.inner.schedule(&l);
            }
        }
    }
    fn orphan_terminated(&self, provider: &str, c: &Compute) {
        metrics::counter!("atlas_reaped_orphans_total", "provider" => provider.to_string())
            .increment(1);
        let now = self.now();
        self.inner.events.emit(
            "",
            Some(&c.id),
            now,
            EventKind::Terminating {
                reason: TerminateReason::Orphan,
            },
        );
        self.inner.events.emit(
            "",
            Some(&c.id),
            now,
            EventKind::Terminated {
                reason: TerminateReason::Orphan,
                spent_usd: 0.0,
            },
        );
        tracing::info!(provider, compute.id = %c.id, name = c.name.as_deref().unwrap_or(""), "reaper: terminated orphan");
    }
}
