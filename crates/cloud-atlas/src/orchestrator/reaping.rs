//! The reaper loop of a running orchestrator, its leader lease and its effects.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{
    lock, reaper, EventKind, Inner, Live, ReapOptions, ReapReport, Session, SessionState,
    SessionStore, TerminateReason,
};
use crate::error::Result;
use crate::spec::Compute;

impl Inner {
    pub(super) async fn reaper_loop(self: Arc<Self>) {
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
    pub(super) async fn hold_lease(&self) -> bool {
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

    pub(super) async fn reap(self: &Arc<Self>, opts: &ReapOptions) -> Result<ReapReport> {
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
}

pub(super) struct OrchEffects {
    inner: Arc<Inner>,
}

#[async_trait]
impl reaper::Effects for OrchEffects {
    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }
    fn node(&self) -> Option<&str> {
        Some(&self.inner.node)
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
                .finish(&s.id, s.spent_usd(self.now()))
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
