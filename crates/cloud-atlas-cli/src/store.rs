//! Which session store a command uses: `--store` (or `ATLAS_DATABASE_URL`, or `store` in
//! `[server]` for `atlas serve`), else the SQLite file in the data directory.
//!
//! `sqlite` is the data directory's file, `postgres://…` the shared PostgreSQL store
//! (several nodes, one account), anything else a SQLite file path. The description
//! printed for a store never holds a password.

use std::sync::Arc;
use std::time::Duration;

use cloud_atlas::orchestrator::store::{SessionStore, SqliteSessionStore};
use cloud_atlas::orchestrator::LeaderLease;
use cloud_atlas::{Error, Result};

use crate::context::Context;

/// The environment variable naming the store when `--store` is not given.
pub(crate) const DATABASE_URL_ENV: &str = "ATLAS_DATABASE_URL";
/// The environment variable naming the PostgreSQL tables' prefix (default `atlas_`), so
/// several deployments (or test runs) can share one database.
pub(crate) const TABLE_PREFIX_ENV: &str = "ATLAS_DATABASE_TABLE_PREFIX";
/// The environment variable holding the key PostgreSQL rows are signed with (at least 32
/// bytes; the same on every node): an edited or forged row is then refused.
pub(crate) const RECORD_KEY_ENV: &str = "ATLAS_RECORD_KEY";

/// An open store, how to describe it, and (PostgreSQL) the reaper lease that makes one
/// reaper run per cluster.
pub(crate) struct Opened {
    /// The store.
    pub(crate) store: Arc<dyn SessionStore>,
    /// `sqlite /path` or `postgres host:port/db` (no password).
    pub(crate) desc: String,
    /// The reaper leader lease, for a store several nodes share.
    pub(crate) lease: Option<Arc<dyn LeaderLease>>,
}

/// Open the store `spec` names (`None`: the data directory's SQLite file); `node` holds
/// the reaper lease of a shared store.
pub(crate) async fn open(ctx: &Context, spec: Option<&str>, node: &str) -> Result<Opened> {
    match spec
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or("sqlite")
    {
        "sqlite" => Ok(sqlite(SqliteSessionStore::from_config(&ctx.config)?)),
        url if url.starts_with("postgres://") || url.starts_with("postgresql://") => {
            postgres(
                url,
                ctx.config.env(TABLE_PREFIX_ENV),
                ctx.config.env(RECORD_KEY_ENV),
                node,
            )
            .await
        }
        path => Ok(sqlite(SqliteSessionStore::open(path)?)),
    }
}

fn sqlite(s: SqliteSessionStore) -> Opened {
    Opened {
        desc: format!("sqlite {}", s.path().display()),
        store: Arc::new(s),
        lease: None,
    }
}

#[cfg(feature = "postgres")]
async fn postgres(
    url: &str,
    prefix: Option<&str>,
    key: Option<&str>,
    node: &str,
) -> Result<Opened> {
    use cloud_atlas::orchestrator::store::{PgSessionStore, RecordKey, DEFAULT_TABLE_PREFIX};
    let prefix = prefix.unwrap_or(DEFAULT_TABLE_PREFIX);
    // Checked before connecting: a short key is refused, never used.
    let key = key
        .map(|k| {
            RecordKey::new(k.trim()).map_err(|e| {
                Error::validation(
                    RECORD_KEY_ENV,
                    e.message().trim_start_matches("record_key: "),
                )
            })
        })
        .transpose()?;
    let mut s = PgSessionStore::connect_with_prefix(url, prefix).await?;
    let signed = key.is_some();
    if let Some(k) = key {
        s = s.with_record_key(k);
    }
    // Several reaper intervals (60 s each): a dead leader hands over within 5 min.
    let lease = s.leader_lease("reaper", node, Duration::from_secs(300))?;
    Ok(Opened {
        desc: format!(
            "postgres (tables {prefix}*{})",
            if signed { ", signed rows" } else { "" }
        ),
        store: Arc::new(s),
        lease: Some(Arc::new(lease)),
    })
}

#[cfg(not(feature = "postgres"))]
async fn postgres(
    _url: &str,
    _prefix: Option<&str>,
    _key: Option<&str>,
    _node: &str,
) -> Result<Opened> {
    let _ = Duration::ZERO;
    Err(Error::validation(
        "store",
        "this atlas was built without PostgreSQL support; rebuild with --features postgres",
    ))
}

/// `NotFound` for a session id the store does not hold.
pub(crate) fn not_tracked(id: &str, desc: &str) -> Error {
    Error::new(
        cloud_atlas::ErrorKind::NotFound,
        format!("session {id} is not tracked in {desc}"),
    )
}
