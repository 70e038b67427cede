//! Terminating a session: retried with backoff until the machine is gone, then finished.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tracing::Instrument;

use super::{lock, EventKind, Inner, Live, SessionState, SessionStore, TerminateReason};
use crate::provider::ProviderExt;

impl Inner {
    /// Start terminating `live` in the background; `false` when already terminating.
    pub(super) fn begin_terminate(
        self: &Arc<Self>,
        live: &Arc<Live>,
        reason: TerminateReason,
    ) -> bool {
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

    pub(super) async fn terminate_task(self: Arc<Self>, live: Arc<Live>, reason: TerminateReason) {
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
    pub(super) async fn finish(&self, live: &Arc<Live>, reason: TerminateReason) {
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
            let month = super::spend::month_start(now);
            if m.0 != month {
                *m = (month, std::collections::BTreeMap::new());
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
}

impl Inner {
    /// Stop a session this node does not track live: refused while another live node
    /// holds it; a damaged record has its machine terminated (by id, else by launch
    /// name) and is forgotten.
    pub(super) async fn stop_stored(&self, id: &str) -> crate::Result<()> {
        let Some(s) = self.store.get(id).await? else {
            return Err(super::not_tracked(id));
        };
        let (leases, now) = self.leases().await?;
        if super::ownership::held_elsewhere(s.owner.as_deref(), &leases, Some(&self.node), now) {
            let until = s.owner.as_deref().and_then(|o| leases.get(o)).copied();
            return Err(super::ownership::held_error(&s, until));
        }
        let Some(why) = &s.damaged else {
            return Err(super::not_tracked(id));
        };
        if let Some(cid) = &s.compute_id {
            self.provider(&s.provider)?.terminate_if_exists(cid).await?;
        } else if !s.name.is_empty() {
            let p = self.provider(&s.provider)?;
            let found = p
                .list(&crate::spec::ListFilter::all().with_name(s.name.clone()))
                .await?;
            for c in found.iter().filter(|c| c.name.as_deref() == Some(&s.name)) {
                p.terminate_if_exists(&c.id).await?;
            }
        } else {
            tracing::warn!(session.id = %s.id, %why, "damaged record names no machine; forgotten (`atlas reap` ends a session machine left behind)");
        }
        self.store.finish(&s.id, 0.0).await?;
        tracing::info!(session.id = %s.id, compute.id = ?s.compute_id, %why, "damaged session stopped and forgotten");
        Ok(())
    }
}
