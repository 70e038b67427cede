//! Building and starting an [`Orchestrator`].

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, RwLock};

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tracing::Instrument;

use super::events::Events;
use super::ownership;
use super::schedule::{Clock, TouchLog};
use super::{
    AlwaysLeader, BillingSource, Guard, Inner, LeaderLease, LiveMap, Orchestrator,
    OrchestratorConfig, SessionStore,
};
use crate::error::{Error, Result};
use crate::provider::Provider;

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
        let month = super::spend::month_start(clock.now());
        let month_closed = if self.config.limits.max_usd_per_user_per_month.is_some() {
            store.closed_spend_since(month).await?
        } else {
            BTreeMap::new()
        };
        let node = ownership::node_id(&self.config);
        let inner = Arc::new(Inner {
            node,
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
        // The lease first: from here on, what this node owns is not taken over.
        inner.renew_lease().await?;
        inner.readopt(true).await?;
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
        let lp = Arc::clone(&inner);
        let lease = tokio::spawn(
            lp.lease_loop()
                .instrument(tracing::info_span!("atlas.lease")),
        );
        Ok(Orchestrator {
            inner,
            guard: Arc::new(Guard {
                _drop: root.drop_guard(),
                loops: Mutex::new(vec![main, lease].into_iter().chain(reaper).collect()),
            }),
        })
    }
}
