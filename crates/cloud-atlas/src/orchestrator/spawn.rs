//! Spawning a tracked session, and watching its machine until it runs.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tracing::Instrument;

use super::{
    lock, not_tracked, spend, EventKind, Inner, Live, Session, SessionRequest, SessionState,
    SessionStore, SpawnedSession, TerminateReason,
};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::Provider;
use crate::spec::{ComputeStatus, ListFilter};
use crate::wait::{Poll, Window};

impl Inner {
    pub(super) async fn spawn(self: &Arc<Self>, req: SessionRequest) -> Result<SpawnedSession> {
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
        let mut rec = Session::intent(id.clone(), &req, &creq, idle_ttl, max_runtime, now);
        rec.owner = Some(self.node.clone());
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

    pub(super) fn mark_running(&self, live: &Live, url: Option<String>) {
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

    /// Poll the machine until it runs (then emit [`EventKind::Running`]), ends, is
    /// gone, the session terminates, or `boot_timeout` passes; failed polls are retried.
    pub(super) async fn watch_running(self: Arc<Self>, live: Arc<Live>) {
        let (provider, cid) = {
            let r = lock(&live.rec);
            (r.provider.clone(), r.compute_id.clone())
        };
        let (Ok(p), Some(cid)) = (self.provider(&provider), cid) else {
            return;
        };
        let (me, live, cid) = (&*self, &*live, cid.as_str());
        let watch = crate::wait::until(
            self.cfg.boot_timeout,
            crate::wait::Backoff::DEFAULT,
            |_| async move {
                if live.terminating.load(Ordering::Relaxed)
                    || live.running_seen.load(Ordering::Relaxed)
                {
                    return Ok(Poll::Ready(()));
                }
                Ok(match p.get(cid).await {
                    Ok(c) if c.status == ComputeStatus::Running => {
                        me.mark_running(live, c.http_url().map(str::to_string));
                        Poll::Ready(())
                    }
                    Ok(c) if c.status.is_terminal() => Poll::Ready(()),
                    Err(e) if e.kind() == ErrorKind::NotFound => Poll::Ready(()),
                    Ok(c) => Poll::Pending(c.status.to_string()),
                    Err(e) => Poll::Pending(e.to_string()),
                })
            },
            |last| {
                Error::new(
                    ErrorKind::Timeout,
                    format!("machine {cid} not running after the boot timeout: {last}"),
                )
            },
        );
        tokio::select! {
            r = watch => {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "stopped watching for running");
                }
            }
            _ = self.work.cancelled() => {}
        }
    }

    pub(super) async fn wait_ready(&self, id: &str, timeout: Duration) -> Result<Session> {
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
        let http = crate::http::HttpClient::shared();
        let (p, http) = (&*p, &http);
        let (live, cid, provider) = (&*live, cid.as_str(), provider.as_str());
        crate::wait::until(
            timeout,
            crate::wait::Backoff::DEFAULT,
            |w: Window| async move {
                let c = p.get(cid).await?;
                if c.status.is_terminal() {
                    return Err(Error::new(
                        ErrorKind::Provider,
                        format!("session {id}: machine {cid} became {}", c.status),
                    )
                    .with_provider(provider.to_string()));
                }
                if c.status != ComputeStatus::Running {
                    return Ok(Poll::Pending(c.status.to_string()));
                }
                self.mark_running(live, c.http_url().map(str::to_string));
                let Some(url) = c.http_url() else {
                    return Ok(Poll::Ready(live.snapshot()));
                };
                let left = w.left().max(Duration::from_millis(1));
                Ok(
                    match http
                        .reqwest_client()
                        .get(url)
                        .timeout(left.min(Duration::from_secs(5)))
                        .send()
                        .await
                    {
                        Ok(r) if r.status().as_u16() < 500 => Poll::Ready(live.snapshot()),
                        Ok(r) => Poll::Pending(format!(
                            "running, port answered HTTP {}",
                            r.status().as_u16()
                        )),
                        Err(e) => Poll::Pending(format!(
                            "running, port not answering ({})",
                            crate::http::redact_text(&e.to_string(), &[])
                        )),
                    },
                )
            },
            |last| {
                Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "session {id} not ready after {}: {last}; wait longer with a bigger timeout",
                        humantime::format_duration(timeout)
                    ),
                )
                .with_operation("wait_ready")
            },
        )
        .await
    }
}
