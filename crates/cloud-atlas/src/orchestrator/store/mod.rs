//! Where tracked sessions live: the [`SessionStore`] trait, an in-memory store, the
//! embedded SQLite default, PostgreSQL for several nodes (feature `postgres`), and the public conformance suite every store must pass.
//!
//! Stores keep what [`Session`] holds: token hashes, never raw tokens.

use std::collections::BTreeMap;
use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::session::Session;
use crate::error::Result;

mod conformance;
mod memory;
#[cfg(feature = "postgres")]
mod postgres;
mod signing;
#[cfg(feature = "sqlite")]
mod sqlite;

pub use conformance::{run_store_conformance, StoreConformanceFailure};
pub use memory::MemorySessionStore;
#[cfg(feature = "postgres")]
pub use postgres::{PgLeaderLease, PgSessionStore, DEFAULT_TABLE_PREFIX};
pub use signing::RecordKey;
#[cfg(feature = "sqlite")]
pub use sqlite::{SqliteSessionStore, SESSIONS_DB_FILE};

/// Persistence for tracked sessions.
///
/// # Contract
/// Checked by [`run_store_conformance`]:
/// - `insert` writes a new session and fails (`Validation`) when the id exists;
/// - `update` replaces a session and fails with `NotFound` when it is absent;
/// - `touch_many` persists heartbeats in one batch, ignores unknown ids and never moves
///   `last_touch` backwards; `get`/`list` return the newest persisted heartbeat;
/// - `finish` forgets a session and adds `spent_usd` to its user's closed spend in one
///   step (`Ok(false)` and nothing added when the id is unknown);
/// - `insert` records the session's [`owner`](Session::owner); `update` never changes it;
///   only `claim` does, as a compare-and-set, so two nodes taking over one record cannot
///   both win;
/// - `renew_owner`/`release_owner`/`owners` keep one lease per node: the time until which
///   its owner is known to be alive;
/// - a stored record that cannot be decoded or holds out-of-range values is returned by
///   `get`/`list` with [`damaged`](Session::damaged) set (never an error that hides the
///   other sessions), and `finish` forgets it like any other;
/// - everything written is visible to the next call, from any clone or process sharing it.
#[async_trait]
pub trait SessionStore: Send + Sync + Debug + 'static {
    /// Write a new session (the spawn intent).
    async fn insert(&self, s: &Session) -> Result<()>;
    /// Replace an existing session.
    async fn update(&self, s: &Session) -> Result<()>;
    /// One session.
    async fn get(&self, id: &str) -> Result<Option<Session>>;
    /// Every session.
    async fn list(&self) -> Result<Vec<Session>>;
    /// Persist a batch of heartbeats `(session id, last touch)`.
    async fn touch_many(&self, beats: &[(String, DateTime<Utc>)]) -> Result<()>;
    /// Forget a session, adding what it spent to its user's closed spend.
    async fn finish(&self, id: &str, spent_usd: f64) -> Result<bool>;
    /// USD spent by closed sessions, per user.
    async fn closed_spend(&self) -> Result<BTreeMap<String, f64>>;
    /// Hand session `id` to node `to` if its owner is still `from` (compare-and-set);
    /// `Ok(false)` when another node took it first or the id is unknown.
    async fn claim(&self, id: &str, from: Option<&str>, to: &str) -> Result<bool>;
    /// Renew (or take) node `node`'s ownership lease until `until`.
    async fn renew_owner(&self, node: &str, until: DateTime<Utc>) -> Result<()>;
    /// Give node `node`'s lease up: its records may be taken over at once.
    async fn release_owner(&self, node: &str) -> Result<()>;
    /// Every node's lease and when it ends (expired leases included).
    async fn owners(&self) -> Result<BTreeMap<String, DateTime<Utc>>>;
    /// USD spent by sessions closed at or after `since`, per user (the monthly cap).
    ///
    /// # Errors
    /// `Unsupported` (the default) for a store that keeps closed spend as totals only;
    /// the orchestrator then refuses `max_usd_per_user_per_month` at start.
    async fn closed_spend_since(&self, since: DateTime<Utc>) -> Result<BTreeMap<String, f64>> {
        let _ = since;
        Err(crate::Error::new(
            crate::ErrorKind::Unsupported,
            "this session store keeps no closed spend by time; max_usd_per_user_per_month needs the memory or SQLite store",
        ))
    }
}

#[async_trait]
impl<T: SessionStore + ?Sized> SessionStore for Arc<T> {
    async fn insert(&self, s: &Session) -> Result<()> {
        (**self).insert(s).await
    }
    async fn update(&self, s: &Session) -> Result<()> {
        (**self).update(s).await
    }
    async fn get(&self, id: &str) -> Result<Option<Session>> {
        (**self).get(id).await
    }
    async fn list(&self) -> Result<Vec<Session>> {
        (**self).list().await
    }
    async fn touch_many(&self, beats: &[(String, DateTime<Utc>)]) -> Result<()> {
        (**self).touch_many(beats).await
    }
    async fn finish(&self, id: &str, spent_usd: f64) -> Result<bool> {
        (**self).finish(id, spent_usd).await
    }
    async fn closed_spend(&self) -> Result<BTreeMap<String, f64>> {
        (**self).closed_spend().await
    }
    async fn claim(&self, id: &str, from: Option<&str>, to: &str) -> Result<bool> {
        (**self).claim(id, from, to).await
    }
    async fn renew_owner(&self, node: &str, until: DateTime<Utc>) -> Result<()> {
        (**self).renew_owner(node, until).await
    }
    async fn release_owner(&self, node: &str) -> Result<()> {
        (**self).release_owner(node).await
    }
    async fn owners(&self) -> Result<BTreeMap<String, DateTime<Utc>>> {
        (**self).owners().await
    }
    async fn closed_spend_since(&self, since: DateTime<Utc>) -> Result<BTreeMap<String, f64>> {
        (**self).closed_spend_since(since).await
    }
}

/// Decode a stored row; never fails: a body that does not decode, or decodes to values
/// out of range, comes back as a [`damaged`](Session::damaged) session carrying what
/// could be read (id, user, provider, machine id, name). `owner` (the row's owner column)
/// and `last_touch_ms` (the row's heartbeat column) win over the body's copies.
pub(crate) fn decode_row(
    id: &str,
    user_id: &str,
    owner: Option<String>,
    body: &str,
    last_touch_ms: i64,
) -> Session {
    let mut s = match serde_json::from_str::<Session>(body) {
        Ok(s) => match s.out_of_range() {
            None => s,
            Some(why) => Session::damaged_from(id, user_id, body, why),
        },
        Err(e) => Session::damaged_from(
            id,
            user_id,
            body,
            format!("the stored record does not decode ({e})"),
        ),
    };
    s.owner = owner;
    if s.damaged.is_none() {
        s.last_touch = s
            .last_touch
            .max(crate::orchestrator::schedule::from_ms(last_touch_ms));
    }
    s
}

pub(crate) fn exists(id: &str) -> crate::Error {
    crate::Error::validation(
        "session id",
        format!("{id} is already stored; session ids are unique"),
    )
}

pub(crate) fn missing(id: &str) -> crate::Error {
    crate::Error::new(
        crate::ErrorKind::NotFound,
        format!("session {id} is not tracked"),
    )
}
