//! Durable token storage: the trait, and what is stored.

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::TokenSource;
use crate::auth::Secret;
use crate::error::Result;

/// The two kinds of stored token, kept apart because they fail differently.
///
/// A damaged [`TokenSlot::Cache`] is rebuilt (its tokens can be acquired again); a
/// damaged [`TokenSlot::Manual`] is kept for the operator and reported, because its
/// tokens were typed in by a person and exist nowhere else.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSlot {
    /// Tokens acquired by the resolver (minted by the CLI, or the current manual token).
    Cache,
    /// Manual overrides set by the host.
    Manual,
}

impl TokenSlot {
    /// Both slots.
    pub const ALL: [TokenSlot; 2] = [TokenSlot::Cache, TokenSlot::Manual];

    /// `cache` or `manual`.
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSlot::Cache => "cache",
            TokenSlot::Manual => "manual",
        }
    }
}

/// One stored token.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct StoredToken {
    /// The token (written to the store as is: stores must keep it private).
    pub token: Secret,
    /// Where it was first acquired.
    pub origin: TokenSource,
    /// When it was acquired.
    pub obtained_at: DateTime<Utc>,
    /// When it stops working, when known.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<DateTime<Utc>>,
}

impl StoredToken {
    /// A token acquired now from `origin`.
    pub fn new(token: Secret, origin: TokenSource) -> StoredToken {
        StoredToken {
            token,
            origin,
            obtained_at: Utc::now(),
            expires_at: None,
        }
    }

    /// Set when it acquired.
    pub fn with_obtained_at(mut self, t: DateTime<Utc>) -> StoredToken {
        self.obtained_at = t;
        self
    }

    /// Set when it expires.
    pub fn with_expires_at(mut self, t: Option<DateTime<Utc>>) -> StoredToken {
        self.expires_at = t;
        self
    }

    /// Whether it has expired at `now`.
    pub fn is_expired(&self, now: DateTime<Utc>) -> bool {
        self.expires_at.is_some_and(|e| e <= now)
    }
}

impl fmt::Debug for StoredToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredToken")
            .field("token", &self.token)
            .field("origin", &self.origin)
            .field("obtained_at", &self.obtained_at)
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Where tokens outlive the process. Implementations must be safe for concurrent use.
///
/// # Contract
/// Checked by `cloud_atlas::testing::run_token_store_conformance` (feature `testing`):
/// - `load` of a missing entry is `Ok(None)`; `save` then `load` gives the same token,
///   origin and times (to the millisecond); a second `save` replaces the first;
/// - slots and apps are independent; `remove` is idempotent;
/// - `save` returns only once the token is durable (a failed write is an error);
/// - concurrent `save`s for different apps all persist;
/// - a damaged manual slot is an error on every call that touches it, and is never
///   overwritten; a damaged cache slot is rebuilt.
#[crate::async_trait]
pub trait TokenStore: Send + Sync + fmt::Debug {
    /// The token stored for `app` in `slot`.
    async fn load(&self, slot: TokenSlot, app: &str) -> Result<Option<StoredToken>>;
    /// Store `token` for `app` in `slot`, durably, replacing any previous one.
    async fn save(&self, slot: TokenSlot, app: &str, token: &StoredToken) -> Result<()>;
    /// Forget the token for `app` in `slot` (no error when there is none).
    async fn remove(&self, slot: TokenSlot, app: &str) -> Result<()>;
    /// The apps with a token in `slot`, sorted.
    async fn apps(&self, slot: TokenSlot) -> Result<Vec<String>>;
}

#[crate::async_trait]
impl<T: TokenStore + ?Sized> TokenStore for std::sync::Arc<T> {
    async fn load(&self, slot: TokenSlot, app: &str) -> Result<Option<StoredToken>> {
        (**self).load(slot, app).await
    }
    async fn save(&self, slot: TokenSlot, app: &str, token: &StoredToken) -> Result<()> {
        (**self).save(slot, app, token).await
    }
    async fn remove(&self, slot: TokenSlot, app: &str) -> Result<()> {
        (**self).remove(slot, app).await
    }
    async fn apps(&self, slot: TokenSlot) -> Result<Vec<String>> {
        (**self).apps(slot).await
    }
}
