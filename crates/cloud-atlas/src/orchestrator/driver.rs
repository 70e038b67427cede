//! The timer driver: deadlines, heartbeat batches, spend checks and billing reconciliation.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::time::Instant;

use super::schedule::Deadlines;
use super::{lock, EventKind, Inner, Live, SessionStore, TerminateReason};
use crate::error::Result;

#[derive(Debug)]
pub(super) enum Cmd {
    Schedule(Arc<str>, Instant),
    Cancel(Arc<str>),
}

impl Inner {
    pub(super) fn schedule(&self, live: &Live) {
        let (at, _) = lock(&live.rec).next_deadline(live.beat.last());
        let _ = self.cmd.send(Cmd::Schedule(
            Arc::clone(&live.id),
            self.clock.instant_of(at),
        ));
    }

    pub(super) fn on_expired(self: &Arc<Self>, id: &str) {
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

    pub(super) async fn main_loop(self: Arc<Self>, mut rx: mpsc::UnboundedReceiver<Cmd>) {
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

    pub(super) async fn flush(&self) -> Result<usize> {
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
}
