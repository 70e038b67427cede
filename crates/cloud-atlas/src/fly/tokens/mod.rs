//! The Fly API-token lifecycle: find a token for an app, keep it, refresh it.
//!
//! [`TokenResolver::get`] walks a per-app chain; the first hit wins:
//!
//! 1. the in-memory cache (24 h TTL);
//! 2. durable storage ([`TokenStore`], slot [`TokenSlot::Cache`]): tokens minted by the
//!    CLI or set by hand, kept across restarts;
//! 3. the `FLY_API_TOKEN` environment variable;
//! 4. `~/.fly/config.yml` (`$FLY_CONFIG_DIR/config.yml` when set), key `access_token`;
//! 5. `fly tokens create readonly` (15 s timeout; the child is killed on timeout);
//! 6. the manual override set by the host ([`TokenResolver::set_manual`], slot
//!    [`TokenSlot::Manual`]).
//!
//! Concurrent callers for one app share one acquisition; different apps resolve in
//! parallel. Tokens are [`Secret`]s: only fingerprints reach logs and telemetry.

mod file_store;
mod memory_store;
mod resolver;
mod storage;

pub use file_store::{FileTokenStore, CACHE_FILE, MANUAL_FILE, TOKEN_DIR};
pub use memory_store::MemoryTokenStore;
pub use resolver::{
    parse_cli_token, read_fly_config, TokenResolver, TokenResolverBuilder, CLI_TIMEOUT,
    DEFAULT_CLI_TOKEN_EXPIRY, DEFAULT_REFRESH_AHEAD, FLY_API_TOKEN_ENV, FLY_CONFIG_DIR_ENV,
    MEMORY_TTL,
};
pub use storage::{StoredToken, TokenSlot, TokenStore};

use std::fmt;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::token_kind::FlyAuth;
use crate::auth::Secret;
use crate::error::Result;

/// Where a token came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TokenSource {
    /// The in-memory cache.
    Cache,
    /// Durable storage.
    Storage,
    /// The `FLY_API_TOKEN` environment variable.
    Env,
    /// `~/.fly/config.yml`.
    Config,
    /// `fly tokens create readonly`.
    Cli,
    /// The manual override set by the host.
    Manual,
    /// Nothing was found.
    None,
}

impl TokenSource {
    /// Stable lower-case name (`cache`, `storage`, `env`, `config`, `cli`, `manual`, `none`).
    pub fn as_str(self) -> &'static str {
        match self {
            TokenSource::Cache => "cache",
            TokenSource::Storage => "storage",
            TokenSource::Env => "env",
            TokenSource::Config => "config",
            TokenSource::Cli => "cli",
            TokenSource::Manual => "manual",
            TokenSource::None => "none",
        }
    }
}

impl fmt::Display for TokenSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A token for one app and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ResolvedToken {
    /// The app.
    pub app: String,
    /// The token as found (may carry a `FlyV1 `/`Bearer ` prefix).
    pub token: Secret,
    /// Which step of the chain answered this call.
    pub source: TokenSource,
    /// Where the token was first acquired (`env`, `config`, `cli` or `manual`).
    pub origin: TokenSource,
    /// Whether the answer came from the in-memory cache without waiting.
    pub fast_path: bool,
    /// When it was acquired.
    pub obtained_at: DateTime<Utc>,
    /// When it stops working, when known.
    pub expires_at: Option<DateTime<Utc>>,
}

impl ResolvedToken {
    /// The `Authorization` scheme and credential for this token.
    pub fn auth(&self) -> Option<FlyAuth> {
        FlyAuth::parse(self.token.expose())
    }

    /// A short, non-reversible fingerprint of the token.
    pub fn fingerprint(&self) -> String {
        self.token.fingerprint()
    }
}

/// Something that hands out a token per app and can refresh it (the logs client's view).
#[crate::async_trait]
pub trait AppTokens: Send + Sync + fmt::Debug {
    /// The current token for `app`.
    async fn token(&self, app: &str) -> Result<Secret>;
    /// A fresh token for `app`, after the current one was rejected.
    async fn refresh(&self, app: &str) -> Result<Secret>;
}

/// One fixed token for every app; `refresh` gives the same token back.
#[derive(Debug, Clone)]
pub struct StaticToken(pub Secret);

#[crate::async_trait]
impl AppTokens for StaticToken {
    async fn token(&self, _app: &str) -> Result<Secret> {
        Ok(self.0.clone())
    }
    async fn refresh(&self, _app: &str) -> Result<Secret> {
        Ok(self.0.clone())
    }
}

#[crate::async_trait]
impl AppTokens for TokenResolver {
    async fn token(&self, app: &str) -> Result<Secret> {
        Ok(self.get(app).await?.token)
    }
    async fn refresh(&self, app: &str) -> Result<Secret> {
        Ok(TokenResolver::refresh(self, app).await?.token)
    }
}
