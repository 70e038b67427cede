//! The `[server]` table of `atlas.toml`, parsed strictly (an unknown key is an error
//! naming the allowed ones). Flags of `atlas serve` override it.
//!
//! ```toml
//! [server]
//! bind = "127.0.0.1:7878"          # address to listen on
//! providers = ["mock"]             # providers sessions may use ([providers.X] tables hold their keys)
//! default_provider = "mock"        # where a session goes when the request names none
//! store = "sqlite"                 # "sqlite" (<data dir>/sessions.db), a SQLite file path, or postgres://…
//! node_id = "node-a"               # this node's name (several nodes on one store)
//! reaper = true                    # run the orphan reaper
//! shutdown = "terminate"           # on SIGINT/SIGTERM: "terminate" tracked sessions or "release" them
//! allow_destructive = false        # let the dashboard stop sessions
//! cors_origins = []                # origins allowed to call the API cross-origin (bearer only)
//! admin_token_file = "server/admin-token"   # relative to the data dir
//! replay_buffer = 4096             # events kept for Last-Event-ID resume
//! ```

use std::path::PathBuf;

use cloud_atlas::orchestrator::ShutdownPolicy;
use cloud_atlas::{Error, Result};
use serde::Deserialize;

/// Default listen address.
pub const DEFAULT_BIND: &str = "127.0.0.1:7878";
/// Default admin token file, relative to the data directory.
pub const DEFAULT_TOKEN_FILE: &str = "server/admin-token";

/// The keys `[server]` allows.
pub const SERVER_KEYS: &[&str] = &[
    "bind",
    "providers",
    "default_provider",
    "store",
    "node_id",
    "reaper",
    "shutdown",
    "allow_destructive",
    "cors_origins",
    "admin_token_file",
    "replay_buffer",
];

/// `[server]` settings; `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Address to listen on.
    pub bind: String,
    /// Providers sessions may use (default `["mock"]`).
    pub providers: Vec<String>,
    /// Default provider (default: the top-level `default_provider` when listed, else the first).
    pub default_provider: Option<String>,
    /// `sqlite` (the default), a SQLite file path, or a `postgres://` URL.
    pub store: Option<String>,
    /// This node's id.
    pub node_id: Option<String>,
    /// Run the orphan reaper (default on).
    pub reaper: bool,
    /// `terminate` (default) or `release`.
    pub shutdown: String,
    /// Let the dashboard stop sessions (default off).
    pub allow_destructive: bool,
    /// Origins allowed to call the API cross-origin (default none).
    pub cors_origins: Vec<String>,
    /// Admin token file, relative to the data directory (default `server/admin-token`).
    pub admin_token_file: Option<PathBuf>,
    /// Events kept for resume (default 4096).
    pub replay_buffer: usize,
}

impl Default for ServerConfig {
    fn default() -> ServerConfig {
        ServerConfig {
            bind: DEFAULT_BIND.to_string(),
            providers: vec!["mock".to_string()],
            default_provider: None,
            store: None,
            node_id: None,
            reaper: true,
            shutdown: "terminate".to_string(),
            allow_destructive: false,
            cors_origins: Vec::new(),
            admin_token_file: None,
            replay_buffer: crate::events::DEFAULT_REPLAY_BUFFER,
        }
    }
}

impl ServerConfig {
    /// Parse a `[server]` table.
    ///
    /// # Errors
    /// `Validation` naming `server.<key>` for an unknown key (listing the allowed ones)
    /// or a bad value.
    pub fn from_table(t: &toml::Table) -> Result<ServerConfig> {
        for k in t.keys() {
            if !SERVER_KEYS.contains(&k.as_str()) {
                return Err(Error::validation(
                    &format!("server.{k}"),
                    format!("is not a [server] key; allowed: {}", SERVER_KEYS.join(", ")),
                ));
            }
        }
        let c: ServerConfig =
            toml::Value::Table(t.clone())
                .try_into()
                .map_err(|e: toml::de::Error| {
                    Error::validation("server", format!("[server] is not valid: {}", e.message()))
                })?;
        c.validate()?;
        Ok(c)
    }

    /// Check values.
    ///
    /// # Errors
    /// `Validation` naming the key.
    pub fn validate(&self) -> Result<()> {
        self.bind.parse::<std::net::SocketAddr>().map_err(|_| {
            Error::validation(
                "bind",
                format!(
                    "{:?} is not HOST:PORT with an IP address (e.g. 127.0.0.1:7878)",
                    self.bind
                ),
            )
        })?;
        self.shutdown_policy()?;
        if self.providers.is_empty() {
            return Err(Error::validation(
                "providers",
                "list at least one provider (e.g. [\"mock\"])",
            ));
        }
        if self.replay_buffer < 16 || self.replay_buffer > 1_000_000 {
            return Err(Error::validation(
                "replay_buffer",
                "must be between 16 and 1000000",
            ));
        }
        if let Some(n) = &self.node_id {
            let ok = !n.is_empty()
                && n.len() <= 64
                && n.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
            if !ok {
                return Err(Error::validation(
                    "node_id",
                    "use 1-64 letters, digits, -, _ or .",
                ));
            }
        }
        Ok(())
    }

    /// The shutdown policy.
    ///
    /// # Errors
    /// `Validation` naming `shutdown`.
    pub fn shutdown_policy(&self) -> Result<ShutdownPolicy> {
        match self.shutdown.as_str() {
            "terminate" => Ok(ShutdownPolicy::Terminate),
            "release" => Ok(ShutdownPolicy::Release),
            other => Err(Error::validation(
                "shutdown",
                format!("{other:?} is not allowed; allowed: terminate, release"),
            )),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_are_errors_naming_the_allowed_ones() {
        let t: toml::Table = toml::from_str("bind = \"127.0.0.1:1\"\nbnid = 3").unwrap();
        let e = ServerConfig::from_table(&t).unwrap_err();
        assert!(e.message().starts_with("server.bnid: "), "{e}");
        assert!(e.message().contains("allowed: bind"), "{e}");
    }

    #[test]
    fn values_are_checked() {
        let t: toml::Table = toml::from_str("shutdown = \"later\"").unwrap();
        assert!(ServerConfig::from_table(&t)
            .unwrap_err()
            .message()
            .starts_with("shutdown: "));
        let t: toml::Table = toml::from_str("bind = \"localhost\"").unwrap();
        assert!(ServerConfig::from_table(&t)
            .unwrap_err()
            .message()
            .starts_with("bind: "));
        let t: toml::Table = toml::from_str("reaper = \"yes\"").unwrap();
        assert!(ServerConfig::from_table(&t).is_err());
        let c = ServerConfig::from_table(&toml::Table::new()).unwrap();
        assert_eq!(c, ServerConfig::default());
    }
}
