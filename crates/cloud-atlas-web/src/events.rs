//! `GET /v1/events`: the orchestrator's events as server-sent events, with ids, a bounded
//! replay buffer and an explicit signal for every gap.
//!
//! # Guarantees
//! - Every event has an id `EPOCH:SEQ`: `EPOCH` is this server process, `SEQ` counts up
//!   from 1 without holes.
//! - A client reconnecting with `Last-Event-ID` (or `?last_event_id=`) gets every event
//!   after that id still in the replay buffer, then the live stream, in order, each once.
//! - What cannot be replayed is never skipped silently: a client too far behind (its id
//!   fell out of the buffer, or it was too slow to keep up live) gets a `lagged` event
//!   saying how many events it missed, and should refetch `GET /v1/sessions`; an id of
//!   another server process gets a `reset` event. Events the hub itself missed from the
//!   orchestrator are a `lagged` event in the stream, with their count.
//! - Every event's `data` is one JSON object ([`EventData`]) with a `type`; all events use
//!   the default SSE event name, so `EventSource.onmessage` sees all of them.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use cloud_atlas::orchestrator::{Event, Orchestrator, Recv};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;
use utoipa::ToSchema;

/// Default number of events the replay buffer holds.
pub const DEFAULT_REPLAY_BUFFER: usize = 4096;

/// The `data` of one server-sent event.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct EventData {
    /// The event id (also the SSE `id:` line), `EPOCH:SEQ`.
    pub id: String,
    /// `spawned`, `running`, `heartbeat`, `terminating`, `terminated`,
    /// `terminate_failed`, `taken_over`; or the stream's own `lagged` and `reset`.
    #[serde(rename = "type")]
    pub kind: String,
    /// Session id (empty for a reaped orphan, absent for `lagged`/`reset`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub session_id: Option<String>,
    /// The session's user, when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Provider compute id, once known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compute_id: Option<String>,
    /// When it happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub at: Option<DateTime<Utc>>,
    /// `spawned`: the machine's name.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `running`: URL of the first HTTP port.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// `heartbeat`: the latest touch.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_touch: Option<DateTime<Utc>>,
    /// `terminating`/`terminated`: why (`idle`, `max_runtime`, `budget`, `requested`,
    /// `shutdown`, `orphan`, `vanished`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    /// `terminated`: estimated USD the session spent.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub spent_usd: Option<f64>,
    /// `terminate_failed`: the error.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// `terminate_failed`: attempt number.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
    /// `taken_over`: the node that held the session before.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub from: Option<String>,
    /// `lagged`: how many events were missed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub missed: Option<u64>,
    /// `lagged`/`reset`: what to do.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl EventData {
    fn from_event(e: &Event, user: Option<String>) -> EventData {
        let v = serde_json::to_value(&e.kind).unwrap_or_default();
        let s = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        EventData {
            kind: s("type").unwrap_or_else(|| "unknown".into()),
            session_id: Some(e.session_id.clone()),
            user_id: user,
            compute_id: e.compute_id.clone(),
            at: Some(e.at),
            name: s("name"),
            url: s("url"),
            last_touch: v
                .get("last_touch")
                .and_then(|x| serde_json::from_value(x.clone()).ok()),
            reason: s("reason"),
            spent_usd: v.get("spent_usd").and_then(serde_json::Value::as_f64),
            error: s("error"),
            from: s("from"),
            attempt: v
                .get("attempt")
                .and_then(serde_json::Value::as_u64)
                .and_then(|a| u32::try_from(a).ok()),
            ..EventData::default()
        }
    }
}

/// One buffered event.
#[derive(Debug)]
pub(crate) struct Stored {
    seq: u64,
    session_id: Option<String>,
    user_id: Option<String>,
    /// The whole SSE frame (`id:` and `data:` lines), built once for every subscriber.
    frame: Bytes,
}

#[derive(Debug)]
struct Ring {
    buf: VecDeque<Arc<Stored>>,
    next: u64,
}

/// The event hub: one task reads the orchestrator, numbers the events, buffers them and
/// fans them out.
#[derive(Debug)]
pub struct Hub {
    epoch: String,
    capacity: usize,
    ring: Mutex<Ring>,
    tx: broadcast::Sender<Arc<Stored>>,
    users: Mutex<HashMap<String, String>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl Hub {
    /// A hub holding up to `capacity` events for replay (at least 16).
    pub(crate) fn new(capacity: usize) -> Arc<Hub> {
        let capacity = capacity.max(16);
        Arc::new(Hub {
            epoch: crate::access::random_token()[..8].to_ascii_lowercase(),
            capacity,
            ring: Mutex::new(Ring {
                buf: VecDeque::with_capacity(capacity.min(1024)),
                next: 1,
            }),
            tx: broadcast::channel(capacity.clamp(16, 4096)).0,
            users: Mutex::new(HashMap::new()),
        })
    }

    /// Follow `orch`'s events until it closes. Must run inside a tokio runtime.
    pub(crate) fn start(self: &Arc<Hub>, orch: &Orchestrator) {
        for s in orch.list(&Default::default()) {
            self.note_user(&s.id, &s.user_id);
        }
        let mut sub = orch.subscribe_all();
        let hub = Arc::clone(self);
        let orch = orch.clone();
        tokio::spawn(async move {
            loop {
                match sub.recv().await {
                    Recv::Event(e) => hub.ingest(&orch, &e),
                    Recv::Lagged(n) => hub.push(
                        None,
                        None,
                        EventData {
                            kind: "lagged".into(),
                            missed: Some(n),
                            message: Some(format!(
                                "the server missed {n} orchestrator events; refetch GET /v1/sessions"
                            )),
                            ..EventData::default()
                        },
                    ),
                    Recv::Closed => break,
                    _ => {}
                }
            }
        });
    }

    /// Remember whose session `id` is (events carry only the session id).
    pub(crate) fn note_user(&self, id: &str, user: &str) {
        lock(&self.users).insert(id.to_string(), user.to_string());
    }

    fn ingest(&self, orch: &Orchestrator, e: &Event) {
        let user = if e.session_id.is_empty() {
            None
        } else {
            let known = lock(&self.users).get(&e.session_id).cloned();
            known.or_else(|| {
                let u = orch.get(&e.session_id).ok().map(|s| s.user_id)?;
                let mut users = lock(&self.users);
                if users.len() > 2 * orch.len() + 1024 {
                    users.retain(|id, _| orch.get(id).is_ok());
                }
                users.insert(e.session_id.clone(), u.clone());
                Some(u)
            })
        };
        let data = EventData::from_event(e, user.clone());
        if data.kind == "terminated" {
            lock(&self.users).remove(&e.session_id);
        }
        self.push(Some(e.session_id.clone()), user, data);
    }

    fn push(&self, session_id: Option<String>, user_id: Option<String>, mut data: EventData) {
        let mut ring = lock(&self.ring);
        let seq = ring.next;
        ring.next += 1;
        data.id = self.id_of(seq);
        let json = serde_json::to_string(&data).unwrap_or_else(|_| "{}".into());
        let stored = Arc::new(Stored {
            seq,
            session_id,
            user_id,
            frame: sse(&data.id, &json),
        });
        if ring.buf.len() >= self.capacity {
            ring.buf.pop_front();
        }
        ring.buf.push_back(Arc::clone(&stored));
        metrics::counter!("atlas_web_events_total").increment(1);
        // Sent under the lock, so a subscriber's catch-up and its live stream never
        // disagree about what came before.
        let _ = self.tx.send(stored);
    }

    fn id_of(&self, seq: u64) -> String {
        format!("{}:{seq}", self.epoch)
    }

    /// The id of the newest event (`EPOCH:0` before the first).
    pub fn head(&self) -> String {
        self.id_of(lock(&self.ring).next - 1)
    }

    /// Subscribe after `last_id` (None: from now on) with `filter`.
    pub(crate) fn subscribe(self: &Arc<Hub>, last_id: Option<&str>, filter: Filter) -> Cursor {
        let rx = self.tx.subscribe();
        let mut c = Cursor {
            hub: Arc::clone(self),
            rx,
            last: 0,
            filter,
            pending: VecDeque::new(),
        };
        match last_id.map(|s| s.split_once(':')) {
            Some(Some((epoch, seq))) if epoch == self.epoch => match seq.parse::<u64>() {
                Ok(seq) => {
                    c.last = seq.min(lock(&self.ring).next - 1);
                    c.catch_up();
                }
                Err(_) => c.reset("the Last-Event-ID is not one of this server's"),
            },
            Some(_) => c.reset("the server restarted (or the Last-Event-ID is not one of this server's); events before now are gone: refetch GET /v1/sessions"),
            None => c.last = lock(&self.ring).next - 1,
        }
        c
    }
}

/// Which events a subscriber wants.
#[derive(Debug, Clone, Default)]
pub(crate) struct Filter {
    pub(crate) session: Option<String>,
    pub(crate) user: Option<String>,
}

impl Filter {
    fn matches(&self, s: &Stored) -> bool {
        // Stream signals (`lagged`) concern every subscriber.
        if s.session_id.is_none() {
            return true;
        }
        self.session
            .as_deref()
            .is_none_or(|want| s.session_id.as_deref() == Some(want))
            && self
                .user
                .as_deref()
                .is_none_or(|want| s.user_id.as_deref() == Some(want))
    }
}

pub(crate) struct Cursor {
    hub: Arc<Hub>,
    rx: broadcast::Receiver<Arc<Stored>>,
    last: u64,
    filter: Filter,
    pending: VecDeque<Bytes>,
}

/// One SSE frame. `json` is compact JSON (no newline), so one `data:` line carries it.
fn sse(id: &str, json: &str) -> Bytes {
    Bytes::from(format!("id: {id}\ndata: {json}\n\n"))
}

impl Cursor {
    fn reset(&mut self, message: &str) {
        self.last = lock(&self.hub.ring).next - 1;
        let id = self.hub.id_of(self.last);
        let data = EventData {
            id: id.clone(),
            kind: "reset".into(),
            message: Some(message.to_string()),
            ..EventData::default()
        };
        self.pending
            .push_back(sse(&id, &serde_json::to_string(&data).unwrap_or_default()));
    }

    /// Queue what the buffer still holds after `last`, and a `lagged` event for any gap.
    fn catch_up(&mut self) {
        let ring = lock(&self.hub.ring);
        let oldest = ring.buf.front().map_or(ring.next, |s| s.seq);
        if oldest > self.last + 1 {
            let missed = oldest - self.last - 1;
            let id = self.hub.id_of(oldest - 1);
            let data = EventData {
                id: id.clone(),
                kind: "lagged".into(),
                missed: Some(missed),
                message: Some(format!(
                    "{missed} events are no longer in the replay buffer; refetch GET /v1/sessions"
                )),
                ..EventData::default()
            };
            metrics::counter!("atlas_web_sse_lagged_total").increment(1);
            self.pending
                .push_back(sse(&id, &serde_json::to_string(&data).unwrap_or_default()));
        }
        let from = self.last;
        let mut last = from;
        for s in ring.buf.iter().filter(|s| s.seq > from) {
            if self.filter.matches(s) {
                self.pending.push_back(s.frame.clone());
            }
            last = s.seq;
        }
        drop(ring);
        self.last = last;
    }

    /// The next event for this subscriber.
    pub(crate) async fn next(&mut self) -> Option<Bytes> {
        loop {
            if let Some(e) = self.pending.pop_front() {
                return Some(e);
            }
            match self.rx.recv().await {
                Ok(s) => {
                    if s.seq <= self.last {
                        continue;
                    }
                    if s.seq > self.last + 1 {
                        // Should not happen (sent in order); recover from the buffer.
                        self.catch_up();
                        continue;
                    }
                    self.last = s.seq;
                    if self.filter.matches(&s) {
                        return Some(s.frame.clone());
                    }
                }
                // Too slow to keep up live: the buffer may still hold what was missed.
                Err(broadcast::error::RecvError::Lagged(_)) => self.catch_up(),
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn push(h: &Hub, sid: &str, user: &str) {
        h.push(
            Some(sid.into()),
            Some(user.into()),
            EventData {
                kind: "heartbeat".into(),
                session_id: Some(sid.into()),
                ..EventData::default()
            },
        );
    }

    fn ids(c: &mut Cursor) -> Vec<String> {
        c.pending
            .drain(..)
            .map(|e| format!("{e:?}"))
            .collect::<Vec<_>>()
    }

    #[test]
    fn resume_replays_exactly_what_followed_and_flags_gaps() {
        let h = Hub::new(16);
        for i in 0..10 {
            push(&h, &format!("s{}", i % 2), "u");
        }
        let mut c = h.subscribe(Some(&h.id_of(7)), Filter::default());
        let got = ids(&mut c);
        assert_eq!(got.len(), 3, "{got:?}");
        assert!(got[0].contains(":8"), "{got:?}");
        // Far behind: 30 more events with a buffer of 16 → a lagged event first.
        for _ in 0..30 {
            push(&h, "s0", "u");
        }
        let mut c = h.subscribe(Some(&h.id_of(2)), Filter::default());
        let got = ids(&mut c);
        assert!(
            got[0].contains("lagged") && got[0].contains("\\\"missed\\\":22"),
            "{got:?}"
        );
        assert_eq!(got.len(), 17);
        // Another epoch → reset.
        let mut c = h.subscribe(Some("zzzz:3"), Filter::default());
        let got = ids(&mut c);
        assert_eq!(got.len(), 1);
        assert!(got[0].contains("reset"));
        // Filters.
        let mut c = h.subscribe(
            Some(&h.id_of(30)),
            Filter {
                session: Some("s1".into()),
                user: None,
            },
        );
        assert!(ids(&mut c).is_empty());
        let mut c = h.subscribe(
            Some(&h.id_of(0)),
            Filter {
                session: None,
                user: Some("nobody".into()),
            },
        );
        let got = ids(&mut c);
        assert_eq!(got.len(), 1, "only the lagged signal: {got:?}");
    }
}
