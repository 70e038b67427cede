//! An in-memory [`SessionStore`]: for tests and single-process use where a crash may
//! forget sessions (the provider-side deadline still ends them).

use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use super::{exists, missing, SessionStore};
use crate::error::Result;
use crate::orchestrator::session::Session;

#[derive(Debug, Default)]
struct State {
    sessions: BTreeMap<String, Session>,
    closed: BTreeMap<String, f64>,
    /// (user, when closed, USD), for the monthly cap.
    closed_log: Vec<(String, DateTime<Utc>, f64)>,
    /// Node leases: until when each owner is known alive.
    owners: BTreeMap<String, DateTime<Utc>>,
}

/// Sessions in memory; share it behind an `Arc`.
#[derive(Debug, Default)]
pub struct MemorySessionStore {
    state: Mutex<State>,
}

impl MemorySessionStore {
    /// An empty store.
    pub fn new() -> MemorySessionStore {
        MemorySessionStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

#[async_trait]
impl SessionStore for MemorySessionStore {
    async fn insert(&self, s: &Session) -> Result<()> {
        let mut st = self.lock();
        if st.sessions.contains_key(&s.id) {
            return Err(exists(&s.id));
        }
        st.sessions.insert(s.id.clone(), s.clone());
        Ok(())
    }

    async fn update(&self, s: &Session) -> Result<()> {
        let mut st = self.lock();
        let slot = st.sessions.get_mut(&s.id).ok_or_else(|| missing(&s.id))?;
        let last = slot.last_touch.max(s.last_touch);
        let owner = slot.owner.take();
        *slot = s.clone();
        slot.last_touch = last;
        slot.owner = owner;
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Session>> {
        Ok(self.lock().sessions.get(id).cloned())
    }

    async fn list(&self) -> Result<Vec<Session>> {
        Ok(self.lock().sessions.values().cloned().collect())
    }

    async fn touch_many(&self, beats: &[(String, DateTime<Utc>)]) -> Result<()> {
        let mut st = self.lock();
        for (id, at) in beats {
            if let Some(s) = st.sessions.get_mut(id) {
                s.last_touch = s.last_touch.max(*at);
            }
        }
        Ok(())
    }

    async fn finish(&self, id: &str, spent_usd: f64) -> Result<bool> {
        let mut st = self.lock();
        match st.sessions.remove(id) {
            Some(s) => {
                *st.closed.entry(s.user_id.clone()).or_default() += spent_usd;
                st.closed_log.push((s.user_id, Utc::now(), spent_usd));
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn closed_spend(&self) -> Result<BTreeMap<String, f64>> {
        Ok(self.lock().closed.clone())
    }

    async fn claim(&self, id: &str, from: Option<&str>, to: &str) -> Result<bool> {
        let mut st = self.lock();
        match st.sessions.get_mut(id) {
            Some(s) if s.owner.as_deref() == from => {
                s.owner = Some(to.to_string());
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn renew_owner(&self, node: &str, until: DateTime<Utc>) -> Result<()> {
        self.lock().owners.insert(node.to_string(), until);
        Ok(())
    }

    async fn release_owner(&self, node: &str) -> Result<()> {
        self.lock().owners.remove(node);
        Ok(())
    }

    async fn owners(&self) -> Result<BTreeMap<String, DateTime<Utc>>> {
        Ok(self.lock().owners.clone())
    }

    async fn closed_spend_since(&self, since: DateTime<Utc>) -> Result<BTreeMap<String, f64>> {
        let mut out = BTreeMap::new();
        for (u, at, usd) in &self.lock().closed_log {
            if *at >= since {
                *out.entry(u.clone()).or_insert(0.0) += usd;
            }
        }
        Ok(out)
    }
}
