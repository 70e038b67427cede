//! The embedded default [`SessionStore`]: one SQLite file in the data directory
//! (0600 in a 0700 folder), shared by every process that opens it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension, TransactionBehavior};

use super::{decode_row, exists, missing, SessionStore};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::orchestrator::schedule::from_ms;
use crate::orchestrator::session::Session;

/// File name of the session store inside the data directory.
pub const SESSIONS_DB_FILE: &str = "sessions.sqlite";

/// How long a statement waits for another process's write lock before failing with
/// "database is locked" (many `atlas` processes may share one store).
const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

/// Sessions in SQLite (WAL mode; writes are short transactions, taken `IMMEDIATE` so a
/// read-then-write waits on the busy timeout instead of failing when another process wrote).
pub struct SqliteSessionStore {
    conn: Mutex<Connection>,
    path: PathBuf,
}

impl std::fmt::Debug for SqliteSessionStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SqliteSessionStore")
            .field("path", &self.path)
            .finish()
    }
}

impl SqliteSessionStore {
    /// Open (or create) the store at `path`; a folder or file it creates is 0700 / 0600.
    ///
    /// # Errors
    /// `Unknown` naming the file when it cannot be created or opened.
    pub fn open(path: impl AsRef<Path>) -> Result<SqliteSessionStore> {
        let path = path.as_ref().to_path_buf();
        if let Some(dir) = path.parent() {
            crate::config::ensure_private_dir(dir)?;
        }
        crate::files::create_private_file(&path)?;
        let mut conn = Connection::open(&path).map_err(|e| db_err(&path, e))?;
        conn.busy_timeout(BUSY_TIMEOUT)
            .map_err(|e| db_err(&path, e))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS sessions (
                 id TEXT PRIMARY KEY,
                 user_id TEXT NOT NULL,
                 last_touch_ms INTEGER NOT NULL,
                 body TEXT NOT NULL,
                 owner TEXT);
             CREATE TABLE IF NOT EXISTS owners (
                 node TEXT PRIMARY KEY,
                 expires_ms INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS closed_spend (
                 user_id TEXT PRIMARY KEY,
                 usd REAL NOT NULL);
             CREATE TABLE IF NOT EXISTS closed_spend_log (
                 user_id TEXT NOT NULL,
                 closed_ms INTEGER NOT NULL,
                 usd REAL NOT NULL);",
        )
        .map_err(|e| db_err(&path, e))?;
        add_owner_column(&mut conn).map_err(|e| db_err(&path, e))?;
        Ok(SqliteSessionStore {
            conn: Mutex::new(conn),
            path,
        })
    }

    /// The store in the configured data directory ([`SESSIONS_DB_FILE`]).
    ///
    /// # Errors
    /// As [`open`](Self::open).
    pub fn from_config(config: &Config) -> Result<SqliteSessionStore> {
        SqliteSessionStore::open(config.data_dir.join(SESSIONS_DB_FILE))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn err(&self, e: rusqlite::Error) -> Error {
        db_err(&self.path, e)
    }
}

/// The columns every read selects, in [`row`]'s order.
const COLUMNS: &str = "id, user_id, owner, body, last_touch_ms";

fn row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Session> {
    let (id, user, owner, body, ms): (String, String, Option<String>, String, i64) =
        (r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?);
    Ok(decode_row(&id, &user, owner, &body, ms))
}

/// Stores made before owners existed lack the `owner` column: add it once, inside a
/// write transaction so two processes opening the file together do not both try.
fn add_owner_column(conn: &mut Connection) -> rusqlite::Result<()> {
    let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
    let has: bool = tx
        .prepare("SELECT 1 FROM pragma_table_info('sessions') WHERE name = 'owner'")?
        .exists([])?;
    if !has {
        tx.execute("ALTER TABLE sessions ADD COLUMN owner TEXT", [])?;
    }
    tx.commit()
}

fn db_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::new(
        ErrorKind::Unknown,
        format!("session store {}: {e}", path.display()),
    )
}

fn body(s: &Session) -> Result<String> {
    Ok(serde_json::to_string(s)?)
}

#[async_trait]
impl SessionStore for SqliteSessionStore {
    async fn insert(&self, s: &Session) -> Result<()> {
        let b = body(s)?;
        let c = self.lock();
        let n = c
            .execute(
                "INSERT INTO sessions (id, user_id, last_touch_ms, body, owner) VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT(id) DO NOTHING",
                params![s.id, s.user_id, s.last_touch.timestamp_millis(), b, s.owner],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(exists(&s.id));
        }
        Ok(())
    }

    async fn update(&self, s: &Session) -> Result<()> {
        let b = body(s)?;
        let n = self
            .lock()
            .execute(
                "UPDATE sessions SET user_id = ?2, body = ?3, last_touch_ms = MAX(last_touch_ms, ?4) WHERE id = ?1",
                params![s.id, s.user_id, b, s.last_touch.timestamp_millis()],
            )
            .map_err(|e| self.err(e))?;
        if n == 0 {
            return Err(missing(&s.id));
        }
        Ok(())
    }

    async fn get(&self, id: &str) -> Result<Option<Session>> {
        self.lock()
            .query_row(
                &format!("SELECT {COLUMNS} FROM sessions WHERE id = ?1"),
                [id],
                row,
            )
            .optional()
            .map_err(|e| self.err(e))
    }

    async fn list(&self) -> Result<Vec<Session>> {
        let c = self.lock();
        let mut st = c
            .prepare(&format!("SELECT {COLUMNS} FROM sessions ORDER BY id"))
            .map_err(|e| self.err(e))?;
        let rows = st.query_map([], row).map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    async fn touch_many(&self, beats: &[(String, DateTime<Utc>)]) -> Result<()> {
        if beats.is_empty() {
            return Ok(());
        }
        let mut c = self.lock();
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        {
            let mut st = tx
                .prepare_cached(
                    "UPDATE sessions SET last_touch_ms = MAX(last_touch_ms, ?2) WHERE id = ?1",
                )
                .map_err(|e| self.err(e))?;
            for (id, at) in beats {
                st.execute(params![id, at.timestamp_millis()])
                    .map_err(|e| self.err(e))?;
            }
        }
        tx.commit().map_err(|e| self.err(e))
    }

    async fn finish(&self, id: &str, spent_usd: f64) -> Result<bool> {
        let mut c = self.lock();
        let tx = c
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(|e| self.err(e))?;
        let user: Option<String> = tx
            .query_row("SELECT user_id FROM sessions WHERE id = ?1", [id], |r| {
                r.get(0)
            })
            .optional()
            .map_err(|e| self.err(e))?;
        let Some(user) = user else {
            return Ok(false);
        };
        tx.execute("DELETE FROM sessions WHERE id = ?1", [id])
            .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO closed_spend (user_id, usd) VALUES (?1, ?2)
             ON CONFLICT(user_id) DO UPDATE SET usd = usd + excluded.usd",
            params![user, spent_usd],
        )
        .map_err(|e| self.err(e))?;
        tx.execute(
            "INSERT INTO closed_spend_log (user_id, closed_ms, usd) VALUES (?1, ?2, ?3)",
            params![user, Utc::now().timestamp_millis(), spent_usd],
        )
        .map_err(|e| self.err(e))?;
        tx.commit().map_err(|e| self.err(e))?;
        Ok(true)
    }

    async fn closed_spend(&self) -> Result<BTreeMap<String, f64>> {
        let c = self.lock();
        let mut st = c
            .prepare("SELECT user_id, usd FROM closed_spend")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?)))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    async fn claim(&self, id: &str, from: Option<&str>, to: &str) -> Result<bool> {
        let n = self
            .lock()
            .execute(
                "UPDATE sessions SET owner = ?3 WHERE id = ?1 AND owner IS ?2",
                params![id, from, to],
            )
            .map_err(|e| self.err(e))?;
        Ok(n > 0)
    }

    async fn renew_owner(&self, node: &str, until: DateTime<Utc>) -> Result<()> {
        self.lock()
            .execute(
                "INSERT INTO owners (node, expires_ms) VALUES (?1, ?2)
                 ON CONFLICT(node) DO UPDATE SET expires_ms = excluded.expires_ms",
                params![node, until.timestamp_millis()],
            )
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn release_owner(&self, node: &str) -> Result<()> {
        self.lock()
            .execute("DELETE FROM owners WHERE node = ?1", [node])
            .map_err(|e| self.err(e))?;
        Ok(())
    }

    async fn owners(&self) -> Result<BTreeMap<String, DateTime<Utc>>> {
        let c = self.lock();
        let mut st = c
            .prepare("SELECT node, expires_ms FROM owners")
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([], |r| Ok((r.get::<_, String>(0)?, from_ms(r.get(1)?))))
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }

    async fn closed_spend_since(&self, since: DateTime<Utc>) -> Result<BTreeMap<String, f64>> {
        let c = self.lock();
        let mut st = c
            .prepare(
                "SELECT user_id, SUM(usd) FROM closed_spend_log WHERE closed_ms >= ?1 GROUP BY user_id",
            )
            .map_err(|e| self.err(e))?;
        let rows = st
            .query_map([since.timestamp_millis()], |r| {
                Ok((r.get::<_, String>(0)?, r.get::<_, f64>(1)?))
            })
            .map_err(|e| self.err(e))?;
        rows.collect::<rusqlite::Result<_>>()
            .map_err(|e| self.err(e))
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::orchestrator::session::SessionRequest;
    use crate::ComputeRequest;

    fn session(id: &str) -> Session {
        let compute = ComputeRequest::builder().image("app").build().unwrap();
        let req = SessionRequest::new("mock", "u", compute);
        let c = req.compute_request(None).unwrap();
        let mut s = Session::intent(
            id.into(),
            &req,
            &c,
            Duration::from_secs(60),
            Duration::from_secs(3600),
            Utc::now(),
        );
        s.compute_id = Some(format!("mock-{id}"));
        s.state = crate::orchestrator::SessionState::Active;
        s
    }

    fn raw(path: &Path, sql: &str, p: impl rusqlite::Params) {
        Connection::open(path).unwrap().execute(sql, p).unwrap();
    }

    #[tokio::test]
    async fn damaged_rows_are_listed_as_damaged_and_the_others_keep_working() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.sqlite");
        let store = SqliteSessionStore::open(&path).unwrap();
        for id in ["good", "huge", "junk"] {
            store.insert(&session(id)).await.unwrap();
        }
        // An out-of-range limit (as `--idle-ttl 300000000y` once stored) and a body
        // that is not a session at all.
        let huge = serde_json::to_string(&session("huge"))
            .unwrap()
            .replace("\"idle_ttl\":60000", "\"idle_ttl\":9460800000000000000");
        assert!(huge.contains("9460800000000000000"));
        raw(
            &path,
            "UPDATE sessions SET body = ?1 WHERE id = 'huge'",
            [&huge],
        );
        raw(
            &path,
            "UPDATE sessions SET body = '{not json' WHERE id = 'junk'",
            [],
        );

        let all = store.list().await.unwrap();
        assert_eq!(all.len(), 3, "{all:?}");
        let by = |id: &str| all.iter().find(|s| s.id == id).unwrap().clone();
        assert_eq!(by("good").damaged, None);
        let h = by("huge");
        let why = h.damaged.as_deref().unwrap();
        assert!(
            why.starts_with("idle_ttl ") && why.contains("out of range"),
            "{why}"
        );
        assert_eq!(
            h.compute_id.as_deref(),
            Some("mock-huge"),
            "what can be read is kept"
        );
        assert_eq!(h.provider, "mock");
        let j = by("junk");
        assert!(
            j.damaged.as_deref().unwrap().contains("does not decode"),
            "{j:?}"
        );
        assert_eq!((j.user_id.as_str(), j.compute_id.as_deref()), ("u", None));
        // A damaged record is still readable one by one, and can be forgotten.
        assert!(store.get("huge").await.unwrap().unwrap().damaged.is_some());
        assert!(store.finish("junk", 0.0).await.unwrap());
        assert_eq!(store.list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_store_from_before_owners_gains_the_column_and_keeps_its_rows() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("old.sqlite");
        let body = serde_json::to_string(&session("old")).unwrap();
        {
            let c = Connection::open(&path).unwrap();
            c.execute_batch(
                "CREATE TABLE sessions (id TEXT PRIMARY KEY, user_id TEXT NOT NULL,
                 last_touch_ms INTEGER NOT NULL, body TEXT NOT NULL);",
            )
            .unwrap();
            c.execute("INSERT INTO sessions VALUES ('old', 'u', 0, ?1)", [&body])
                .unwrap();
        }
        let store = SqliteSessionStore::open(&path).unwrap();
        // Opening twice (a second process) does not add the column twice.
        let again = SqliteSessionStore::open(&path).unwrap();
        let s = again.get("old").await.unwrap().unwrap();
        assert_eq!((s.owner, s.damaged), (None, None));
        assert!(store.claim("old", None, "n1").await.unwrap());
        assert_eq!(
            again.get("old").await.unwrap().unwrap().owner.as_deref(),
            Some("n1")
        );
    }

    #[tokio::test]
    async fn the_sqlite_store_passes_the_conformance_suite() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteSessionStore::open(dir.path().join("c.sqlite")).unwrap();
        crate::orchestrator::store::run_store_conformance(&store)
            .await
            .unwrap();
    }
}
