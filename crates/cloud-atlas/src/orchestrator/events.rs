//! Session events on a tokio broadcast channel: slow subscribers see a lag signal and
//! never block the orchestrator.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast;

/// Why a session is being terminated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum TerminateReason {
    /// No heartbeat within the idle TTL.
    Idle,
    /// The orchestrator's maximum runtime passed.
    MaxRuntime,
    /// A spend cap was crossed (session `max_cost`, or a per-user limit).
    Budget,
    /// The caller asked ([`Orchestrator::stop_tracked`](super::Orchestrator::stop_tracked)).
    Requested,
    /// Orchestrator shutdown with [`ShutdownPolicy::Terminate`](super::ShutdownPolicy::Terminate).
    Shutdown,
    /// A machine no session could keep: reaped by the reaper, or spawned while its
    /// record could not be written.
    Orphan,
    /// The machine disappeared upstream (provider deadline, someone else, a crash).
    Vanished,
}

impl TerminateReason {
    /// Lower-case name (metric label).
    pub fn as_str(self) -> &'static str {
        match self {
            TerminateReason::Idle => "idle",
            TerminateReason::MaxRuntime => "max_runtime",
            TerminateReason::Budget => "budget",
            TerminateReason::Requested => "requested",
            TerminateReason::Shutdown => "shutdown",
            TerminateReason::Orphan => "orphan",
            TerminateReason::Vanished => "vanished",
        }
    }
}

impl fmt::Display for TerminateReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum EventKind {
    /// The provider created the machine and the session is tracked.
    Spawned {
        /// Resource name.
        name: String,
    },
    /// The provider reports the machine running.
    Running {
        /// URL of the first HTTP port, if any.
        url: Option<String>,
    },
    /// Heartbeats since the last batch were persisted; `last_touch` is the newest.
    Heartbeat {
        /// Time of the latest touch.
        last_touch: DateTime<Utc>,
    },
    /// Termination started.
    Terminating {
        /// Why.
        reason: TerminateReason,
    },
    /// The machine is gone and the session forgotten.
    Terminated {
        /// Why termination started.
        reason: TerminateReason,
        /// Estimated USD spent by the session.
        spent_usd: f64,
    },
    /// This node took the session over from a node whose lease ended (or from a record
    /// written before owners existed, `from: None`); its timers continue from the stored
    /// values.
    TakenOver {
        /// The previous owner.
        from: Option<String>,
    },
    /// A terminate call failed; the session stays tracked and it is retried with backoff.
    TerminateFailed {
        /// The error, as text.
        error: String,
        /// Attempt number (1 = first failure).
        attempt: u32,
    },
}

/// One event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Event {
    /// Session id; empty for resources no session tracked (reaped orphans).
    pub session_id: String,
    /// Provider compute id, once known.
    pub compute_id: Option<String>,
    /// When.
    pub at: DateTime<Utc>,
    /// What.
    pub kind: EventKind,
}

/// A subscription: every event, or one session's.
///
/// `recv` never blocks the orchestrator: a subscriber that falls behind by more than
/// the channel capacity gets [`Recv::Lagged`] with the number of events it missed and
/// continues from the oldest event still held.
#[derive(Debug)]
pub struct Subscription {
    rx: broadcast::Receiver<Event>,
    session: Option<String>,
}

/// What [`Subscription::recv`] gives.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub enum Recv {
    /// The next event.
    Event(Event),
    /// This subscriber fell behind and missed this many events (of all sessions).
    Lagged(u64),
    /// The orchestrator is gone.
    Closed,
}

impl Subscription {
    pub(crate) fn new(rx: broadcast::Receiver<Event>, session: Option<String>) -> Subscription {
        Subscription { rx, session }
    }

    /// The next event (for a per-session subscription, the next of that session).
    pub async fn recv(&mut self) -> Recv {
        loop {
            match self.rx.recv().await {
                Ok(e) => {
                    if self.session.as_deref().is_none_or(|s| s == e.session_id) {
                        return Recv::Event(e);
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => return Recv::Lagged(n),
                Err(broadcast::error::RecvError::Closed) => return Recv::Closed,
            }
        }
    }

    /// The next event if one is ready, without waiting.
    pub fn try_recv(&mut self) -> Option<Recv> {
        loop {
            match self.rx.try_recv() {
                Ok(e) => {
                    if self.session.as_deref().is_none_or(|s| s == e.session_id) {
                        return Some(Recv::Event(e));
                    }
                }
                Err(broadcast::error::TryRecvError::Lagged(n)) => return Some(Recv::Lagged(n)),
                Err(broadcast::error::TryRecvError::Closed) => return Some(Recv::Closed),
                Err(broadcast::error::TryRecvError::Empty) => return None,
            }
        }
    }
}

/// The sending side, owned by the orchestrator.
#[derive(Debug)]
pub(crate) struct Events {
    tx: broadcast::Sender<Event>,
}

impl Events {
    pub(crate) fn new(capacity: usize) -> Events {
        Events {
            tx: broadcast::channel(capacity.max(1)).0,
        }
    }

    pub(crate) fn emit(
        &self,
        session_id: &str,
        compute_id: Option<&str>,
        at: DateTime<Utc>,
        kind: EventKind,
    ) {
        // No subscribers is fine: events are a view, never a dependency.
        let _ = self.tx.send(Event {
            session_id: session_id.to_string(),
            compute_id: compute_id.map(str::to_string),
            at,
            kind,
        });
    }

    pub(crate) fn subscribe(&self, session: Option<String>) -> Subscription {
        Subscription::new(self.tx.subscribe(), session)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn lagging_subscriber_gets_a_signal_and_sender_never_blocks() {
        let ev = Events::new(4);
        let mut all = ev.subscribe(None);
        let mut one = ev.subscribe(Some("b".into()));
        for i in 0..10 {
            let id = if i % 2 == 0 { "a" } else { "b" };
            ev.emit(id, None, Utc::now(), EventKind::Running { url: None });
        }
        assert_eq!(all.recv().await, Recv::Lagged(6));
        assert!(matches!(all.recv().await, Recv::Event(e) if e.session_id == "a"));
        assert_eq!(one.recv().await, Recv::Lagged(6));
        assert!(matches!(one.recv().await, Recv::Event(e) if e.session_id == "b"));
        assert!(matches!(one.recv().await, Recv::Event(e) if e.session_id == "b"));
        assert!(one.try_recv().is_none());
    }
}
