//! Session deadlines: idle, runtime and budget deadlines in ONE deadline-ordered
//! structure, plus the cheap heartbeat that `touch` writes.
//!
//! Each tracked session has exactly one entry in a tokio-util [`DelayQueue`] at its
//! earliest deadline. `touch` never moves the entry: it stores the time in an atomic.
//! When an entry fires, the orchestrator reads the atomic and either terminates the
//! session or re-inserts it at the new deadline. The work per sweep therefore grows
//! with the entries that fire, not with the number of sessions, and `touch` is an
//! atomic store (plus, once per persistence batch, a push onto a short list).

use std::collections::HashMap;
use std::future::poll_fn;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};

use chrono::{DateTime, TimeZone, Utc};
use tokio::time::Instant;
use tokio_util::time::delay_queue::{DelayQueue, Key};

/// Deadlines keyed by session id, in deadline order.
#[derive(Debug, Default)]
pub struct Deadlines {
    queue: DelayQueue<Arc<str>>,
    keys: HashMap<Arc<str>, Key>,
}

impl Deadlines {
    /// An empty structure. Must be used inside a tokio runtime (it holds a timer).
    pub fn new() -> Deadlines {
        Deadlines::default()
    }

    /// Set `id`'s deadline to `at` (insert, or move the existing entry).
    pub fn schedule(&mut self, id: Arc<str>, at: Instant) {
        match self.keys.get(&id) {
            Some(k) => self.queue.reset_at(k, at),
            None => {
                let k = self.queue.insert_at(Arc::clone(&id), at);
                self.keys.insert(id, k);
            }
        }
    }

    /// Drop `id`'s deadline; `true` when it had one.
    pub fn cancel(&mut self, id: &str) -> bool {
        match self.keys.remove(id) {
            Some(k) => {
                self.queue.remove(&k);
                true
            }
            None => false,
        }
    }

    /// Number of scheduled sessions.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether nothing is scheduled.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// Poll for the next id whose deadline passed (`Ready(None)` when empty).
    pub fn poll_expired(&mut self, cx: &mut Context<'_>) -> Poll<Option<Arc<str>>> {
        match self.queue.poll_expired(cx) {
            Poll::Ready(Some(e)) => {
                let id = e.into_inner();
                self.keys.remove(&id);
                Poll::Ready(Some(id))
            }
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Wait for the next id whose deadline passed; pending forever when empty.
    pub async fn next_expired(&mut self) -> Arc<str> {
        loop {
            if let Some(id) = poll_fn(|cx| self.poll_expired(cx)).await {
                return id;
            }
            std::future::pending::<()>().await;
        }
    }

    /// Every id whose deadline has passed, without waiting for later ones.
    ///
    /// Runs outside tokio's cooperative budget, so one call drains everything due
    /// (a plain poll loop would stop after 128 entries per task tick).
    pub async fn drain_expired(&mut self) -> Vec<Arc<str>> {
        tokio::task::unconstrained(poll_fn(|cx| {
            let mut out = Vec::new();
            while let Poll::Ready(Some(id)) = self.poll_expired(cx) {
                out.push(id);
            }
            Poll::Ready(out)
        }))
        .await
    }
}

/// The orchestrator's clock: wall time anchored at start plus tokio time elapsed, so
/// paused-time tests are deterministic and stored wall-clock times convert to timers.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Clock {
    wall: DateTime<Utc>,
    inst: Instant,
}

impl Clock {
    pub(crate) fn new() -> Clock {
        Clock {
            wall: Utc::now(),
            inst: Instant::now(),
        }
    }

    pub(crate) fn now(&self) -> DateTime<Utc> {
        self.wall + chrono::Duration::from_std(self.inst.elapsed()).unwrap_or_default()
    }

    pub(crate) fn now_ms(&self) -> i64 {
        self.wall.timestamp_millis() + self.inst.elapsed().as_millis() as i64
    }

    /// The timer instant of wall time `t` (now, when `t` is in the past).
    pub(crate) fn instant_of(&self, t: DateTime<Utc>) -> Instant {
        let now = Instant::now();
        let wall_now = self.now();
        match (t - wall_now).to_std() {
            Ok(d) => now + d,
            Err(_) => now,
        }
    }
}

pub(crate) fn from_ms(ms: i64) -> DateTime<Utc> {
    Utc.timestamp_millis_opt(ms).single().unwrap_or_default()
}

/// A session's heartbeat: written by `touch`, read at expiry and by the batch writer.
#[derive(Debug)]
pub(crate) struct Beat {
    last_touch_ms: AtomicI64,
    dirty: AtomicBool,
}

impl Beat {
    pub(crate) fn new(at: DateTime<Utc>) -> Beat {
        Beat {
            last_touch_ms: AtomicI64::new(at.timestamp_millis()),
            dirty: AtomicBool::new(false),
        }
    }

    /// Record a touch at `now_ms`; `true` when this touch made the beat dirty (the
    /// caller then queues the session for the next persistence batch).
    pub(crate) fn touch(&self, now_ms: i64) -> bool {
        self.last_touch_ms.fetch_max(now_ms, Ordering::Relaxed);
        !self.dirty.swap(true, Ordering::AcqRel)
    }

    /// Take in a heartbeat another node persisted (never moves backwards, never dirties).
    pub(crate) fn observe(&self, at: DateTime<Utc>) {
        self.last_touch_ms
            .fetch_max(at.timestamp_millis(), Ordering::Relaxed);
    }

    pub(crate) fn last(&self) -> DateTime<Utc> {
        from_ms(self.last_touch_ms.load(Ordering::Relaxed))
    }

    /// Clear the dirty flag (before persisting), returning the time to persist.
    pub(crate) fn take(&self) -> DateTime<Utc> {
        self.dirty.store(false, Ordering::Release);
        self.last()
    }
}

/// Sessions touched since the last persistence batch.
#[derive(Debug, Default)]
pub(crate) struct TouchLog {
    pending: Mutex<Vec<Arc<str>>>,
}

impl TouchLog {
    pub(crate) fn push(&self, id: Arc<str>) {
        self.pending
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(id);
    }

    pub(crate) fn take(&self) -> Vec<Arc<str>> {
        std::mem::take(
            &mut *self
                .pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test(start_paused = true)]
    async fn fires_in_deadline_order_and_reschedules() {
        let mut d = Deadlines::new();
        let t0 = Instant::now();
        d.schedule("b".into(), t0 + Duration::from_secs(2));
        d.schedule("a".into(), t0 + Duration::from_secs(1));
        d.schedule("c".into(), t0 + Duration::from_secs(3));
        d.schedule("b".into(), t0 + Duration::from_secs(5));
        assert!(d.cancel("c"));
        assert!(!d.cancel("zz"));
        assert_eq!(&*d.next_expired().await, "a");
        assert_eq!(Instant::now() - t0, Duration::from_secs(1));
        assert_eq!(&*d.next_expired().await, "b");
        assert_eq!(Instant::now() - t0, Duration::from_secs(5));
        assert!(d.is_empty());
    }

    #[tokio::test(start_paused = true)]
    async fn drain_takes_only_what_is_due() {
        let mut d = Deadlines::new();
        let t0 = Instant::now();
        for i in 0..1000 {
            let at = if i % 10 < 3 {
                t0 + Duration::from_millis(5)
            } else {
                t0 + Duration::from_secs(3600)
            };
            d.schedule(Arc::from(i.to_string()), at);
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        assert_eq!(
            d.drain_expired().await.len(),
            300,
            "more than one coop budget"
        );
        assert_eq!(d.len(), 700);
    }

    #[test]
    fn beat_is_dirty_once_per_batch() {
        let b = Beat::new(from_ms(0));
        assert!(b.touch(10));
        assert!(!b.touch(5));
        assert_eq!(b.take().timestamp_millis(), 10);
        assert!(b.touch(20));
    }
}
