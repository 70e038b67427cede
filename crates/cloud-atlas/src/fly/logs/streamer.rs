//! [`LogStreamer`]: one poller per app, however many subscribers.
//!
//! # Guarantees
//! - One poller per app: subscribers of one app share its requests. Per-subscriber
//!   `region`/`instance` filters are applied on delivery.
//! - A subscriber is registered before [`LogStreamer::subscribe`] returns and before a
//!   new poller makes its first request, so the first batch is never lost. A new
//!   poller starts with the most recent page (up to 100 lines of the last 24 h);
//!   a subscriber joining a running poller gets the batches fetched after it joined.
//! - Each subscriber has a bounded channel. One that falls behind (its channel is full
//!   when a batch is ready) is evicted: it reads what is buffered, then
//!   [`LogEvent::Evicted`], then the end. The others are not slowed down.
//! - Empty pages back the poller off from [`StreamerOptions::min_wait`] (100 ms) to
//!   [`StreamerOptions::max_wait`] (4 s); a page with lines resets it.
//! - After [`StreamerOptions::max_consecutive_errors`] failed fetches in a row, or at
//!   once on `Unauthorized` (after one token refresh), `Forbidden`, `NotFound` or
//!   `Validation`, the poller gives up: every subscriber gets [`LogEvent::Failed`]
//!   with the error, then the end.
//! - When the last subscriber goes, the poller stops (even mid-request or mid-wait)
//!   and [`PollerEvent::Stopped`] with [`StopReason::LastSubscriberLeft`] is sent on
//!   [`LogStreamer::events`].

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::task::{Context, Poll};
use std::time::Duration;

use futures::Stream;
use tokio::sync::{broadcast, mpsc, Notify};

use super::{LogEntry, LogQuery, LogsClient};
use crate::error::{Error, ErrorKind, Result};
use crate::fly::apps::require_app_name;

/// Poller knobs.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct StreamerOptions {
    /// Wait after a page with lines, and the first backoff step.
    pub min_wait: Duration,
    /// Longest wait between polls.
    pub max_wait: Duration,
    /// Failed fetches in a row before giving up.
    pub max_consecutive_errors: u32,
    /// Default channel capacity (batches) per subscriber.
    pub channel_capacity: usize,
}

impl Default for StreamerOptions {
    fn default() -> StreamerOptions {
        StreamerOptions {
            min_wait: Duration::from_millis(100),
            max_wait: Duration::from_secs(4),
            max_consecutive_errors: 10,
            channel_capacity: 64,
        }
    }
}

impl StreamerOptions {
    /// Set the shortest and longest wait between polls.
    pub fn with_waits(mut self, min: Duration, max: Duration) -> Self {
        self.min_wait = min;
        self.max_wait = max.max(min);
        self
    }
    /// Set how many failed fetches in a row end the poller.
    pub fn with_max_consecutive_errors(mut self, n: u32) -> Self {
        self.max_consecutive_errors = n.max(1);
        self
    }
    /// Set the default channel capacity per subscriber.
    pub fn with_channel_capacity(mut self, n: usize) -> Self {
        self.channel_capacity = n.max(1);
        self
    }
}

/// What one subscriber wants.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct SubscribeOptions {
    /// Only lines from this region.
    pub region: Option<String>,
    /// Only lines from this Machine.
    pub instance: Option<String>,
    /// Channel capacity in batches (default [`StreamerOptions::channel_capacity`]).
    pub capacity: Option<usize>,
}

impl SubscribeOptions {
    /// Only lines from `region`.
    pub fn region(mut self, r: impl Into<String>) -> Self {
        self.region = Some(r.into());
        self
    }
    /// Only lines from Machine `i`.
    pub fn instance(mut self, i: impl Into<String>) -> Self {
        self.instance = Some(i.into());
        self
    }
    /// Channel capacity in batches.
    pub fn capacity(mut self, n: usize) -> Self {
        self.capacity = Some(n.max(1));
        self
    }
}

/// What a subscriber receives.
#[derive(Debug, Clone)]
pub enum LogEvent {
    /// New lines, oldest first.
    Batch(Vec<LogEntry>),
    /// Final: this subscriber fell behind and was dropped.
    Evicted,
    /// Final: the poller gave up after this error.
    Failed(Arc<Error>),
    /// Final: the streamer was shut down.
    Stopped,
}

/// Why a poller stopped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopReason {
    /// Its last subscriber went away.
    LastSubscriberLeft,
    /// Too many errors (or a permanent one).
    GaveUp,
    /// [`LogStreamer::shutdown`].
    Shutdown,
}

/// Poller lifecycle, broadcast on [`LogStreamer::events`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PollerEvent {
    /// A poller started for `app`.
    Started {
        /// The app.
        app: String,
    },
    /// The poller of `app` stopped.
    Stopped {
        /// The app.
        app: String,
        /// Why.
        reason: StopReason,
    },
}

/// Shares one log poller per app among any number of subscribers. Cheap to clone.
#[derive(Debug, Clone)]
pub struct LogStreamer {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    client: LogsClient,
    opts: StreamerOptions,
    pollers: Mutex<HashMap<String, PollerState>>,
    events: broadcast::Sender<PollerEvent>,
    ids: AtomicU64,
}

#[derive(Debug)]
struct PollerState {
    generation: u64,
    wake: Arc<Notify>,
    subs: HashMap<u64, Sub>,
}

#[derive(Debug)]
struct Sub {
    tx: mpsc::Sender<LogEvent>,
    terminal: Arc<Mutex<Option<LogEvent>>>,
    region: Option<String>,
    instance: Option<String>,
}

impl Sub {
    /// Leave `event` as the last thing the subscriber sees (the sender drops with `self`).
    fn end_with(self, event: LogEvent) {
        *self.terminal.lock().unwrap_or_else(|p| p.into_inner()) = Some(event);
    }

    fn wants(&self, e: &LogEntry) -> bool {
        self.region.as_ref().is_none_or(|r| r == &e.region)
            && self.instance.as_ref().is_none_or(|i| i == &e.instance)
    }
}

impl LogStreamer {
    /// A streamer fetching through `client`.
    pub fn new(client: LogsClient, opts: StreamerOptions) -> LogStreamer {
        let (events, _) = broadcast::channel(256);
        LogStreamer {
            inner: Arc::new(Inner {
                client,
                opts,
                pollers: Mutex::new(HashMap::new()),
                events,
                ids: AtomicU64::new(1),
            }),
        }
    }

    /// Poller start/stop notifications.
    pub fn events(&self) -> broadcast::Receiver<PollerEvent> {
        self.inner.events.subscribe()
    }

    /// Whether a poller runs for `app`.
    pub fn is_polling(&self, app: &str) -> bool {
        self.inner.lock().contains_key(app)
    }

    /// Subscribers of `app`.
    pub fn subscriber_count(&self, app: &str) -> usize {
        self.inner.lock().get(app).map_or(0, |p| p.subs.len())
    }

    /// Subscribe to `app`'s logs, starting its poller if none runs.
    ///
    /// # Errors
    /// `Validation` for a bad app name.
    pub fn subscribe(&self, app: &str, opts: SubscribeOptions) -> Result<Subscription> {
        require_app_name("app", app)?;
        let cap = opts
            .capacity
            .unwrap_or(self.inner.opts.channel_capacity)
            .max(1);
        let (tx, rx) = mpsc::channel(cap);
        let terminal = Arc::new(Mutex::new(None));
        let id = self.inner.ids.fetch_add(1, Ordering::Relaxed);
        let sub = Sub {
            tx,
            terminal: Arc::clone(&terminal),
            region: opts.region,
            instance: opts.instance,
        };
        let start = {
            let mut pollers = self.inner.lock();
            match pollers.get_mut(app) {
                Some(p) => {
                    p.subs.insert(id, sub);
                    None
                }
                None => {
                    let generation = self.inner.ids.fetch_add(1, Ordering::Relaxed);
                    let wake = Arc::new(Notify::new());
                    let mut subs = HashMap::new();
                    subs.insert(id, sub);
                    pollers.insert(
                        app.to_string(),
                        PollerState {
                            generation,
                            wake: Arc::clone(&wake),
                            subs,
                        },
                    );
                    Some((generation, wake))
                }
            }
        };
        if let Some((generation, wake)) = start {
            let _ = self.inner.events.send(PollerEvent::Started {
                app: app.to_string(),
            });
            let inner = Arc::clone(&self.inner);
            let app_owned = app.to_string();
            tokio::spawn(async move { inner.poll_loop(app_owned, generation, wake).await });
        }
        Ok(Subscription {
            app: app.to_string(),
            id,
            rx,
            terminal,
            streamer: Arc::downgrade(&self.inner),
            done: false,
        })
    }

    /// Stop every poller; subscribers get [`LogEvent::Stopped`].
    pub fn shutdown(&self) {
        let drained: Vec<(String, PollerState)> = self.inner.lock().drain().collect();
        for (app, p) in drained {
            for (_, s) in p.subs {
                s.end_with(LogEvent::Stopped);
            }
            p.wake.notify_one();
            let _ = self.inner.events.send(PollerEvent::Stopped {
                app,
                reason: StopReason::Shutdown,
            });
        }
    }
}

/// The wait before the next poll: back to the minimum after lines, doubled (up to
/// the maximum) after an empty page or an error.
fn next_wait(opts: &StreamerOptions, current: Duration, idle: bool) -> Duration {
    if idle {
        (current * 2).clamp(opts.min_wait, opts.max_wait)
    } else {
        opts.min_wait
    }
}

enum Next {
    Fetched(Result<super::LogPage>),
    Woken,
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, PollerState>> {
        self.pollers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether this poller should go on; if not, it is removed (under the lock, so no
    /// subscriber can join a dead poller) and the stop is announced.
    fn keep_going(&self, app: &str, generation: u64) -> bool {
        let mut pollers = self.lock();
        match pollers.get(app) {
            Some(p) if p.generation == generation => {
                if p.subs.is_empty() {
                    pollers.remove(app);
                    drop(pollers);
                    let _ = self.events.send(PollerEvent::Stopped {
                        app: app.to_string(),
                        reason: StopReason::LastSubscriberLeft,
                    });
                    tracing::debug!(fly.app = %app, "log poller stopped: no subscribers left");
                    false
                } else {
                    true
                }
            }
            // Shut down (or replaced): someone else announced it.
            _ => false,
        }
    }

    async fn poll_loop(self: Arc<Self>, app: String, generation: u64, wake: Arc<Notify>) {
        let mut query = LogQuery::new(&app);
        let mut wait = self.opts.min_wait;
        let mut errors: u32 = 0;
        loop {
            if !self.keep_going(&app, generation) {
                return;
            }
            let next = tokio::select! {
                r = self.client.fetch_with_retry(&query) => Next::Fetched(r),
                _ = wake.notified() => Next::Woken,
            };
            match next {
                Next::Woken => continue,
                Next::Fetched(Ok(page)) => {
                    errors = 0;
                    if let Some(t) = page.next_token.clone() {
                        query.next_token = Some(t);
                    }
                    wait = next_wait(&self.opts, wait, page.entries.is_empty());
                    if !page.entries.is_empty() {
                        self.deliver(&app, generation, page.entries);
                    }
                }
                Next::Fetched(Err(e)) => {
                    errors += 1;
                    let permanent = matches!(
                        e.kind(),
                        ErrorKind::Unauthorized
                            | ErrorKind::Forbidden
                            | ErrorKind::NotFound
                            | ErrorKind::Validation
                    );
                    tracing::warn!(fly.app = %app, errors, kind = %e.kind(), "log fetch failed");
                    if permanent || errors >= self.opts.max_consecutive_errors {
                        self.give_up(&app, generation, e);
                        return;
                    }
                    wait = next_wait(&self.opts, wait, true);
                }
            }
            tokio::select! {
                _ = tokio::time::sleep(wait) => {}
                _ = wake.notified() => {}
            }
        }
    }

    fn deliver(&self, app: &str, generation: u64, entries: Vec<LogEntry>) {
        let mut pollers = self.lock();
        let Some(p) = pollers.get_mut(app).filter(|p| p.generation == generation) else {
            return;
        };
        let mut gone = Vec::new();
        for (id, s) in &p.subs {
            let batch: Vec<LogEntry> = if s.region.is_none() && s.instance.is_none() {
                entries.clone()
            } else {
                entries.iter().filter(|e| s.wants(e)).cloned().collect()
            };
            if batch.is_empty() {
                continue;
            }
            match s.tx.try_send(LogEvent::Batch(batch)) {
                Ok(()) => {}
                Err(mpsc::error::TrySendError::Full(_)) => gone.push((*id, true)),
                Err(mpsc::error::TrySendError::Closed(_)) => gone.push((*id, false)),
            }
        }
        for (id, evicted) in gone {
            if let Some(s) = p.subs.remove(&id) {
                if evicted {
                    tracing::warn!(fly.app = %app, subscriber = id, "evicted a slow log subscriber");
                    s.end_with(LogEvent::Evicted);
                }
            }
        }
        if p.subs.is_empty() {
            p.wake.notify_one();
        }
    }

    fn give_up(&self, app: &str, generation: u64, e: Error) {
        let err = Arc::new(e);
        let mut pollers = self.lock();
        if pollers.get(app).is_some_and(|p| p.generation == generation) {
            if let Some(p) = pollers.remove(app) {
                for (_, s) in p.subs {
                    s.end_with(LogEvent::Failed(Arc::clone(&err)));
                }
            }
            drop(pollers);
            let _ = self.events.send(PollerEvent::Stopped {
                app: app.to_string(),
                reason: StopReason::GaveUp,
            });
        }
    }
}

/// One subscriber's view of an app's logs: a [`Stream`] of [`LogEvent`]s.
///
/// After a final event ([`LogEvent::Evicted`], [`LogEvent::Failed`],
/// [`LogEvent::Stopped`]) the stream ends. Dropping it unsubscribes.
#[derive(Debug)]
pub struct Subscription {
    app: String,
    id: u64,
    rx: mpsc::Receiver<LogEvent>,
    terminal: Arc<Mutex<Option<LogEvent>>>,
    streamer: Weak<Inner>,
    done: bool,
}

impl Subscription {
    /// The app.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The next event, or `None` at the end.
    pub async fn recv(&mut self) -> Option<LogEvent> {
        if self.done {
            return None;
        }
        match self.rx.recv().await {
            Some(ev) => Some(ev),
            None => self.take_terminal(),
        }
    }

    fn take_terminal(&mut self) -> Option<LogEvent> {
        self.done = true;
        self.terminal
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }
}

impl Stream for Subscription {
    type Item = LogEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<LogEvent>> {
        if self.done {
            return Poll::Ready(None);
        }
        match self.rx.poll_recv(cx) {
            Poll::Ready(Some(ev)) => Poll::Ready(Some(ev)),
            Poll::Ready(None) => Poll::Ready(self.take_terminal()),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        let Some(inner) = self.streamer.upgrade() else {
            return;
        };
        let mut pollers = inner.lock();
        if let Some(p) = pollers.get_mut(&self.app) {
            if p.subs.remove(&self.id).is_some() && p.subs.is_empty() {
                p.wake.notify_one();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_on_empty_pages_and_resets_on_lines() {
        let o = StreamerOptions::default();
        let mut w = o.min_wait;
        let mut seen = vec![w];
        for _ in 0..8 {
            w = next_wait(&o, w, true);
            seen.push(w);
        }
        let ms: Vec<u128> = seen.iter().map(Duration::as_millis).collect();
        assert_eq!(ms, [100, 200, 400, 800, 1600, 3200, 4000, 4000, 4000]);
        assert_eq!(next_wait(&o, w, false), o.min_wait);
    }
}
