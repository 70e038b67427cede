//! A token store that lives in memory only (tests, short-lived tools).

use std::collections::BTreeMap;
use std::sync::Mutex;

use super::storage::{StoredToken, TokenSlot, TokenStore};
use crate::error::Result;

/// Tokens in a map; nothing survives the process.
#[derive(Debug, Default)]
pub struct MemoryTokenStore {
    map: Mutex<BTreeMap<(TokenSlot, String), StoredToken>>,
}

impl MemoryTokenStore {
    /// An empty store.
    pub fn new() -> MemoryTokenStore {
        MemoryTokenStore::default()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(TokenSlot, String), StoredToken>> {
        self.map.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[crate::async_trait]
impl TokenStore for MemoryTokenStore {
    async fn load(&self, slot: TokenSlot, app: &str) -> Result<Option<StoredToken>> {
        Ok(self.lock().get(&(slot, app.to_string())).cloned())
    }
    async fn save(&self, slot: TokenSlot, app: &str, token: &StoredToken) -> Result<()> {
        self.lock().insert((slot, app.to_string()), token.clone());
        Ok(())
    }
    async fn remove(&self, slot: TokenSlot, app: &str) -> Result<()> {
        self.lock().remove(&(slot, app.to_string()));
        Ok(())
    }
    async fn apps(&self, slot: TokenSlot) -> Result<Vec<String>> {
        Ok(self
            .lock()
            .keys()
            .filter(|(s, _)| *s == slot)
            .map(|(_, a)| a.clone())
            .collect())
    }
}
