//! The shared [`SessionStore`]: PostgreSQL, for several app nodes sharing one cloud
//! account, plus the reaper [`LeaderLease`] those nodes elect one reaper with.
//!
//! Same semantics as the SQLite store: one row per session (the [`Session`] as JSON,
//! token hashes only) with its heartbeat in a column that never moves backwards, and
//! closed spend per user. Every operation is one statement (the `finish` delete and
//! spend update are one statement too), so the store needs no client-side
//! transactions and concurrent calls are pipelined on one connection, which is
//! re-opened when it drops.
//!
//! Tables are created on connect (`CREATE TABLE IF NOT EXISTS`) with a name prefix
//! (default `atlas_`: `atlas_sessions`, `atlas_closed_spend`, `atlas_leases`,
//! `atlas_owners`), so a
//! database can be shared and tests can isolate themselves with a prefix of their own.
//!
//! Connections are plain TCP or Unix sockets (`NoTls`): reach a remote server through
//! a TLS-terminating proxy or a private network.
//!
//! # Owners
//! Every session row names its owner node (column `owner`) and every node keeps a lease
//! row in `{prefix}owners`; a node adopts at start only the sessions whose owner's lease
//! has expired or was released, taking each over with a compare-and-set (see
//! [`orchestrator::ownership`](crate::orchestrator::ownership)). Before a node ends a
//! session as idle it reads the heartbeat the store holds, so a session kept alive through
//! another node is not ended; that heartbeat lags by up to one persistence interval
//! (`heartbeat_flush_interval`), so keep the idle TTL well above it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use tokio_postgres::{Client, NoTls};

use super::{decode_row, exists, missing, RecordKey, SessionStore};
use crate::error::{Error, ErrorKind, Result};
use crate::orchestrator::lease::LeaderLease;
use crate::orchestrator::schedule::from_ms;
use crate::orchestrator::session::Session;

/// Default table name prefix.
pub const DEFAULT_TABLE_PREFIX: &str = "atlas_";

/// Serializes concurrent schema creation across nodes (`CREATE TABLE IF NOT EXISTS`
/// alone can race on the catalog).
const SCHEMA_LOCK_KEY: i64 = 0x6174_6c61_735f_7067; // "atlas_pg"

/// Sessions in PostgreSQL. Cheap to clone: clones share the connection.
#[derive(Clone)]
pub struct PgSessionStore {
    shared: Arc<Shared>,
    /// Signs and checks rows when set ([`with_record_key`](Self::with_record_key)).
    key: Option<Arc<RecordKey>>,
}

struct Shared {
    config: tokio_postgres::Config,
    /// `host:port/db`, never the password.
    target: String,
    prefix: String,
    sql: Sql,
    conn: tokio::sync::Mutex<Option<Arc<Client>>>,
}

impl std::fmt::Debug for PgSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgSessionStore")
            .field("target", &self.shared.target)
            .field("prefix", &self.shared.prefix)
            .finish()
    }
}

/// Every statement, with the table prefix filled in.
struct Sql {
    schema: String,
    drop: String,
    insert: String,
    update: String,
    get: String,
    list: String,
    touch_many: String,
    finish: String,
    closed_spend: String,
    lease_acquire: String,
    lease_release: String,
    lease_holder: String,
    claim: String,
    renew_owner: String,
    release_owner: String,
    owners: String,
}

impl Sql {
    fn new(p: &str) -> Sql {
        let (s, c, l) = (
            format!("{p}sessions"),
            format!("{p}closed_spend"),
            format!("{p}leases"),
        );
        let o = format!("{p}owners");
        Sql {
            schema: format!(
                "BEGIN;
                 SELECT pg_advisory_xact_lock({SCHEMA_LOCK_KEY});
                 CREATE TABLE IF NOT EXISTS {s} (
                     id TEXT PRIMARY KEY,
                     user_id TEXT NOT NULL,
                     last_touch_ms BIGINT NOT NULL,
                     body TEXT NOT NULL);
                 CREATE TABLE IF NOT EXISTS {c} (
                     user_id TEXT PRIMARY KEY,
                     usd DOUBLE PRECISION NOT NULL);
                 CREATE TABLE IF NOT EXISTS {l} (
                     name TEXT PRIMARY KEY,
                     holder TEXT NOT NULL,
                     expires_at TIMESTAMPTZ NOT NULL);
                 ALTER TABLE {s} ADD COLUMN IF NOT EXISTS owner TEXT;
                 ALTER TABLE {s} ADD COLUMN IF NOT EXISTS sig TEXT;
                 ALTER TABLE {s} ADD COLUMN IF NOT EXISTS owner_sig TEXT;
                 CREATE TABLE IF NOT EXISTS {o} (
                     node TEXT PRIMARY KEY,
                     expires_ms BIGINT NOT NULL);
                 ALTER TABLE {o} ADD COLUMN IF NOT EXISTS sig TEXT;
                 COMMIT;"
            ),
            drop: format!("DROP TABLE IF EXISTS {s}, {c}, {l}, {o}"),
            insert: format!(
                "INSERT INTO {s} (id, user_id, last_touch_ms, body, owner, sig, owner_sig)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT (id) DO NOTHING"
            ),
            update: format!(
                "UPDATE {s} SET user_id = $2, body = $3, last_touch_ms = GREATEST(last_touch_ms, $4),
                 sig = $5 WHERE id = $1"
            ),
            get: format!(
                "SELECT body, last_touch_ms, id, user_id, owner, sig, owner_sig FROM {s} WHERE id = $1"
            ),
            list: format!(
                "SELECT body, last_touch_ms, id, user_id, owner, sig, owner_sig FROM {s} ORDER BY id"
            ),
            touch_many: format!(
                "UPDATE {s} AS s SET last_touch_ms = GREATEST(s.last_touch_ms, b.ms)
                 FROM (SELECT id, MAX(ms) AS ms FROM unnest($1::text[], $2::bigint[]) AS t(id, ms)
                       GROUP BY id) AS b
                 WHERE s.id = b.id"
            ),
            finish: format!(
                "WITH gone AS (DELETE FROM {s} WHERE id = $1 RETURNING user_id)
                 INSERT INTO {c} (user_id, usd) SELECT user_id, $2 FROM gone
                 ON CONFLICT (user_id) DO UPDATE SET usd = {c}.usd + excluded.usd
                 RETURNING user_id"
            ),
            closed_spend: format!("SELECT user_id, usd FROM {c}"),
            lease_acquire: format!(
                "INSERT INTO {l} (name, holder, expires_at)
                 VALUES ($1, $2, clock_timestamp() + $3::bigint * interval '1 millisecond')
                 ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
                 WHERE {l}.holder = excluded.holder OR {l}.expires_at <= clock_timestamp()
                 RETURNING holder"
            ),
            lease_release: format!("DELETE FROM {l} WHERE name = $1 AND holder = $2"),
            lease_holder: format!(
                "SELECT holder FROM {l} WHERE name = $1 AND expires_at > clock_timestamp()"
            ),
            claim: format!(
                "UPDATE {s} SET owner = $3, owner_sig = $4 WHERE id = $1 AND owner IS NOT DISTINCT FROM $2"
            ),
            renew_owner: format!(
                "INSERT INTO {o} (node, expires_ms, sig) VALUES ($1, $2, $3)
                 ON CONFLICT (node) DO UPDATE SET expires_ms = excluded.expires_ms, sig = excluded.sig"
            ),
            release_owner: format!("DELETE FROM {o} WHERE node = $1"),
            owners: format!("SELECT node, expires_ms, sig FROM {o}"),
        }
    }
}

/// Check a table prefix: it is pasted into SQL, so only `[a-z_][a-z0-9_]*`, at most 40.
fn validate_prefix(p: &str) -> Result<()> {
    let ok = !p.is_empty()
        && p.len() <= 40
        && p.starts_with(|c: char| c.is_ascii_lowercase() || c == '_')
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            "postgres table prefix",
            format!("{p:?} is not allowed; use 1-40 of a-z, 0-9 and _, not starting with a digit (e.g. atlas_)"),
        ))
    }
}

fn target_of(c: &tokio_postgres::Config) -> String {
    let host = match c.get_hosts().first() {
        Some(tokio_postgres::config::Host::Tcp(h)) => h.clone(),
        #[cfg(unix)]
        Some(tokio_postgres::config::Host::Unix(p)) => p.display().to_string(),
        None => "localhost".into(),
    };
    let port = c.get_ports().first().copied().unwrap_or(5432);
    format!("{host}:{port}/{}", c.get_dbname().unwrap_or(""))
}

impl PgSessionStore {
    /// Connect to `url` (`postgres://user@host:5432/db` or a `key=value` string) with
    /// the default table prefix, creating the tables when missing.
    ///
    /// # Errors
    /// `Validation` for an unparsable URL (the URL itself, which may hold a password,
    /// is not repeated); `Transport` when the server cannot be reached; `Unknown` for
    /// other database errors.
    pub async fn connect(url: &str) -> Result<PgSessionStore> {
        PgSessionStore::connect_with_prefix(url, DEFAULT_TABLE_PREFIX).await
    }

    /// As [`connect`](Self::connect), with tables named `{prefix}sessions`,
    /// `{prefix}closed_spend` and `{prefix}leases`.
    ///
    /// # Errors
    /// As [`connect`](Self::connect); `Validation` for a bad prefix.
    pub async fn connect_with_prefix(url: &str, prefix: &str) -> Result<PgSessionStore> {
        validate_prefix(prefix)?;
        let config: tokio_postgres::Config = url.parse().map_err(|e: tokio_postgres::Error| {
            Error::validation(
                "database url",
                format!("is not a PostgreSQL connection string ({e}); e.g. postgres://user@host:5432/db"),
            )
        })?;
        let store = PgSessionStore {
            shared: Arc::new(Shared {
                target: target_of(&config),
                config,
                prefix: prefix.to_string(),
                sql: Sql::new(prefix),
                conn: tokio::sync::Mutex::new(None),
            }),
            key: None,
        };
        store.client().await?;
        Ok(store)
    }

    /// Sign every row this store writes with `key`, and treat rows whose signature does
    /// not match (edited or forged in the database) as damaged, and node leases whose
    /// signature does not match as absent: never acted on (see
    /// [`RecordKey`](super::RecordKey) for what is signed). Every node sharing the
    /// database must use the same key; rows written without one read as damaged.
    pub fn with_record_key(mut self, key: RecordKey) -> PgSessionStore {
        self.key = Some(Arc::new(key));
        self
    }

    fn sign_session(&self, id: &str, user: &str, body: &str) -> Option<String> {
        self.key.as_ref().map(|k| {
            k.sign(
                "session",
                &[id.as_bytes(), user.as_bytes(), body.as_bytes()],
            )
        })
    }

    fn sign_owner(&self, id: &str, owner: Option<&str>) -> Option<String> {
        self.key.as_ref().map(|k| {
            k.sign(
                "owner",
                &[id.as_bytes(), owner.unwrap_or_default().as_bytes()],
            )
        })
    }

    fn sign_lease(&self, node: &str, expires_ms: i64) -> Option<String> {
        self.key
            .as_ref()
            .map(|k| k.sign("lease", &[node.as_bytes(), &expires_ms.to_be_bytes()]))
    }

    /// The table prefix.
    pub fn prefix(&self) -> &str {
        &self.shared.prefix
    }

    /// Drop this store's tables (sessions, closed spend, leases): for tests and
    /// uninstalling. Other prefixes are untouched.
    ///
    /// # Errors
    /// Database errors.
    pub async fn drop_tables(&self) -> Result<()> {
        let c = self.client().await?;
        c.batch_execute(&self.shared.sql.drop)
            .await
            .map_err(|e| self.err(e))
    }

    /// A reaper lease named `name` on this store's tables for the holder `holder` (a
    /// unique id per node), valid `ttl` after each renewal. Expiry is measured on the
    /// database clock, so node clocks do not matter. `ttl` should span several reaper
    /// intervals, since the orchestrator renews once per interval.
    ///
    /// # Errors
    /// `Validation` for an empty name or holder, or a `ttl` under one second.
    pub fn leader_lease(
        &self,
        name: impl Into<String>,
        holder: impl Into<String>,
        ttl: Duration,
    ) -> Result<PgLeaderLease> {
        let (name, holder) = (name.into(), holder.into());
        if name.trim().is_empty() {
            return Err(Error::validation("lease name", "must not be empty"));
        }
        if holder.trim().is_empty() {
            return Err(Error::validation(
                "lease holder",
                "must not be empty; use a unique id per node",
            ));
        }
        if ttl < Duration::from_secs(1) {
            return Err(Error::validation(
                "lease ttl",
                "must be at least 1s (and span several reaper intervals)",
            ));
        }
        Ok(PgLeaderLease {
            store: self.clone(),
            name,
            holder,
            ttl_ms: i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX),
        })
    }

    /// The open connection, or a new one (tables ensured) when there is none or it dropped.
    async fn client(&self) -> Result<Arc<Client>> {
        let mut slot = self.shared.conn.lock().await;
        if let Some(c) = slot.as_ref().filter(|c| !c.is_closed()) {
            return Ok(Arc::clone(c));
        }
        let (client, conn) = self
            .shared
            .config
            .connect(NoTls)
            .await
            .map_err(|e| self.err(e))?;
        let target = self.shared.target.clone();
        tokio::spawn(async move {
            if let Err(e) = conn.await {
                tracing::warn!(target = %target, error = %e, "postgres session store connection ended; reconnecting on next use");
            }
        });
        client
            .batch_execute(&self.shared.sql.schema)
            .await
            .map_err(|e| self.err(e))?;
        let client = Arc::new(client);
        *slot = Some(Arc::clone(&client));
        Ok(client)
    }

    fn err(&self, e: tokio_postgres::Error) -> Error {
        // No SQLSTATE: the connection failed or closed.
        let kind = if e.code().is_none() {
            ErrorKind::Transport
        } else {
            ErrorKind::Unknown
        };
        Error::new(
            kind,
            format!("postgres session store {}: {e}", self.shared.target),
        )
        .with_source(e)
    }

    fn rows(&self, rows: &[tokio_postgres::Row]) -> Result<Vec<Session>> {
        rows.iter()
            .map(|r| {
                let body: String = r.try_get(0).map_err(|e| self.err(e))?;
                let ms: i64 = r.try_get(1).map_err(|e| self.err(e))?;
                let id: String = r.try_get(2).map_err(|e| self.err(e))?;
                let user: String = r.try_get(3).map_err(|e| self.err(e))?;
                let owner: Option<String> = r.try_get(4).map_err(|e| self.err(e))?;
                let sig: Option<String> = r.try_get(5).map_err(|e| self.err(e))?;
                let owner_sig: Option<String> = r.try_get(6).map_err(|e| self.err(e))?;
                if let Some(k) = &self.key {
                    let fields = [id.as_bytes(), user.as_bytes(), body.as_bytes()];
                    let owner_fields = [id.as_bytes(), owner.as_deref().unwrap_or_default().as_bytes()];
                    let why = if !k.verify("session", &fields, sig.as_deref()) {
                        Some("its signature does not match: edited or written outside atlas, or without the record key")
                    } else if !k.verify("owner", &owner_fields, owner_sig.as_deref()) {
                        Some("its owner's signature does not match: edited outside atlas")
                    } else {
                        None
                    };
                    if let Some(why) = why {
                        tracing::warn!(session.id = %id, why, "refusing a session row");
                        let mut s = Session::damaged_from(&id, &user, &body, why.to_string());
                        s.owner = owner;
                        return Ok(s);
                    }
                }
                Ok(decode_row(&id, &user, owner, &body, ms))
            })
            .collect()
    }
}

#[async_trait]
impl SessionStore for PgSessionStore {
    async fn insert(&self, s: &Session) -> Result<()> {
        let b = serde_json::to_string(s)?;
        let c = self.client().await?;
        let n = c
            .execute(
                &self.shared.sql.insert,
                &[
                    &s.id,
                    &s.user_id,
                    &s.last_touch.timestamp_millis(),
                    &b,
                    &s.owner,
                    &self.sign_session(&s.id, &s.user_id, &b),
                    &self.sign_owner(&s.id, s.owner.as_deref()),
                ],
            )
            .await
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(exists(&s.id));
        }
        Ok(())
    }

    async fn update(&self, s: &Session) -> Result<()> {
        let b = serde_json::to_string(s)?;
        let c = self.client().await?;
        let n = c
            .execute(
                &self.shared.sql.update,
                &[
                    &s.id,
                    &s.user_id,
                    &b,
                    &s.last_touch.timestamp_millis(),
                    &self.sign_session(&s.id, &s.user_id, &b),
                ],
            )
            .await
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(missing(&s.id));
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Session>> {
        let c = self.client().await?;
        let rows = c
            .query(&self.shared.sql.get, &[&id])
            .await
            .map_err(|e| self.err(e))?;
        Ok(self.rows(&rows)?.pop())
    }

    async fn list(&self) -> Result<Vec<Session>> {
        let c = self.client().await?;
        let rows = c
            .query(&self.shared.sql.list, &[])
            .await
            .map_err(|e| self.err(e))?;
        self.rows(&rows)
    }

    async fn touch_many(&self, beats: &[(String, DateTime<Utc>)]) -> Result<()> {
        if beats.is_empty() {
            return Ok(());
        }
        let ids: Vec<&str> = beats.iter().map(|(id, _)| id.as_str()).collect();
        let ms: Vec<i64> = beats.iter().map(|(_, t)| t.timestamp_millis()).collect();
        let c = self.client().await?;
        c.execute(&self.shared.sql.touch_many, &[&ids, &ms])
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn finish(&self, id: &str, spent_usd: f64) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(&self.shared.sql.finish, &[&id, &spent_usd])
            .await
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    async fn claim(&self, id: &str, from: Option<&str>, to: &str) -> Result<bool> {
        let c = self.client().await?;
        let n = c
            .execute(
                &self.shared.sql.claim,
                &[&id, &from, &to, &self.sign_owner(id, Some(to))],
            )
            .await
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    async fn renew_owner(&self, node: &str, until: DateTime<Utc>) -> Result<()> {
        let c = self.client().await?;
        let ms = until.timestamp_millis();
        c.execute(
            &self.shared.sql.renew_owner,
            &[&node, &ms, &self.sign_lease(node, ms)],
        )
        .await
        .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn release_owner(&self, node: &str) -> Result<()> {
        let c = self.client().await?;
        c.execute(&self.shared.sql.release_owner, &[&node])
            .await
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn owners(&self) -> Result<BTreeMap<String, DateTime<Utc>>> {
        let c = self.client().await?;
        let rows = c
            .query(&self.shared.sql.owners, &[])
            .await
            .map_err(|e| self.err(e))?;
        let mut out = BTreeMap::new();
        for r in &rows {
            let node: String = r.try_get(0).map_err(|e| self.err(e))?;
            let ms: i64 = r.try_get(1).map_err(|e| self.err(e))?;
            let sig: Option<String> = r.try_get(2).map_err(|e| self.err(e))?;
            if let Some(k) = &self.key {
                if !k.verify(
                    "lease",
                    &[node.as_bytes(), &ms.to_be_bytes()],
                    sig.as_deref(),
                ) {
                    tracing::warn!(%node, "ignoring a node lease whose signature does not match (edited outside atlas)");
                    continue;
                }
            }
            out.insert(node, from_ms(ms));
        }
        Ok(out)
    }

    async fn closed_spend(&self) -> Result<BTreeMap<String, f64>> {
        let c = self.client().await?;
        let rows = c
            .query(&self.shared.sql.closed_spend, &[])
            .await
            .map_err(|e| self.err(e))?;
        rows.iter()
            .map(|r| {
                Ok((
                    r.try_get::<_, String>(0).map_err(|e| self.err(e))?,
                    r.try_get::<_, f64>(1).map_err(|e| self.err(e))?,
                ))
            })
            .collect()
    }
}

/// A [`LeaderLease`] held as a row (name, holder, expiry) in the store's
/// `{prefix}leases` table; made by [`PgSessionStore::leader_lease`].
///
/// Taking it is one upsert that succeeds only when the row is absent, expired or
/// already this holder's, so at most one holder has it at a time. A holder that dies
/// without releasing loses it after the ttl.
#[derive(Debug, Clone)]
pub struct PgLeaderLease {
    store: PgSessionStore,
    name: String,
    holder: String,
    ttl_ms: i64,
}

impl PgLeaderLease {
    /// This node's holder id.
    pub fn holder(&self) -> &str {
        &self.holder
    }

    /// Who holds the lease now (`None` when free or expired).
    ///
    /// # Errors
    /// Database errors.
    pub async fn current_holder(&self) -> Result<Option<String>> {
        let c = self.store.client().await?;
        let rows = c
            .query(&self.store.shared.sql.lease_holder, &[&self.name])
            .await
            .map_err(|e| self.store.err(e))?;
        rows.first()
            .map(|r| r.try_get(0).map_err(|e| self.store.err(e)))
            .transpose()
    }
}

#[async_trait]
impl LeaderLease for PgLeaderLease {
    async fn acquire(&self) -> Result<bool> {
        let c = self.store.client().await?;
        let rows = c
            .query(
                &self.store.shared.sql.lease_acquire,
                &[&self.name, &self.holder, &self.ttl_ms],
            )
            .await
            .map_err(|e| self.store.err(e))?;
        Ok(!rows.is_empty())
    }

    async fn release(&self) -> Result<()> {
        let c = self.store.client().await?;
        c.execute(
            &self.store.shared.sql.lease_release,
            &[&self.name, &self.holder],
        )
        .await
        .map_err(|e| self.store.err(e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_are_checked_before_reaching_sql() {
        for ok in ["atlas_", "t_0123abcd_", "_x"] {
            assert!(validate_prefix(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "1x",
            "Atlas_",
            "a-b",
            "x; DROP TABLE y",
            &"a".repeat(41),
        ] {
            let e = validate_prefix(bad).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Validation, "{bad}");
            assert!(e.to_string().contains("postgres table prefix"), "{e}");
        }
    }

    #[tokio::test]
    async fn a_bad_url_is_a_validation_error_that_does_not_echo_it() {
        let e = PgSessionStore::connect("postgres://u:hunter2@host:notaport/db")
            .await
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.to_string().contains("database url"), "{e}");
        assert!(!e.to_string().contains("hunter2"), "{e}");
    }

    #[test]
    fn statements_use_the_prefix() {
        let s = Sql::new("t_abc_");
        assert!(s.insert.contains("t_abc_sessions"));
        assert!(s.finish.contains("t_abc_closed_spend"));
        assert!(s.lease_acquire.contains("t_abc_leases"));
        assert!(s
            .drop
            .contains("t_abc_sessions, t_abc_closed_spend, t_abc_leases"));
    }
}
