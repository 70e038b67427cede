//! The embedded default [`SessionStore`]: one SQLite file in the data directory
//! (0600 in a 0700 folder), shared by every process that opens it.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use rusqlite::{params, Connection, OptionalExtension};

use super::{exists, missing, SessionStore};
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::orchestrator::schedule::from_ms;
use crate::orchestrator::session::Session;

/// File name of the session store inside the data directory.
pub const SESSIONS_DB_FILE: &str = "sessions.sqlite";

/// Sessions in SQLite (WAL mode; writes are short transactions).
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
        let conn = Connection::open(&path).map_err(|e| db_err(&path, e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .map_err(|e| db_err(&path, e))?;
        conn.execute_batch(
            "PRAGMA journal_mode=WAL;
             PRAGMA synchronous=NORMAL;
             CREATE TABLE IF NOT EXISTS sessions (
                 id TEXT PRIMARY KEY,
                 user_id TEXT NOT NULL,
                 last_touch_ms INTEGER NOT NULL,
                 body TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS closed_spend (
                 user_id TEXT PRIMARY KEY,
                 usd REAL NOT NULL);
             CREATE TABLE IF NOT EXISTS closed_spend_log (
                 user_id TEXT NOT NULL,
                 closed_ms INTEGER NOT NULL,
                 usd REAL NOT NULL);",
        )
        .map_err(|e| db_err(&path, e))?;
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

    fn decode(&self, body: &str, last_ms: i64) -> Result<Session> {
        let mut s: Session = serde_json::from_str(body).map_err(|e| {
            Error::new(
                ErrorKind::Unknown,
                format!(
                    "session store {} holds a damaged record; inspect or move the file",
                    self.path.display()
                ),
            )
            .with_source(e)
        })?;
        s.last_touch = s.last_touch.max(from_ms(last_ms));
        Ok(s)
    }
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
                "INSERT INTO sessions (id, user_id, last_touch_ms, body) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT(id) DO NOTHING",
                params![s.id, s.user_id, s.last_touch.timestamp_millis(), b],
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
        let row: Option<(String, i64)> = self
            .lock()
            .query_row(
                "SELECT body, last_touch_ms FROM sessions WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()
            .map_err(|e| self.err(e))?;
        row.map(|(b, ms)| self.decode(&b, ms)).transpose()
    }

    async fn list(&self) -> Result<Vec<Session>> {
        let rows: Vec<(String, i64)> = {
            let c = self.lock();
            let mut st = c
                .prepare("SELECT body, last_touch_ms FROM sessions ORDER BY id")
                .map_err(|e| self.err(e))?;
            let rows = st
                .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
                .map_err(|e| self.err(e))?;
            rows.collect::<rusqlite::Result<_>>()
                .map_err(|e| self.err(e))?
        };
        rows.iter().map(|(b, ms)| self.decode(b, *ms)).collect()
    }

    async fn touch_many(&self, beats: &[(String, DateTime<Utc>)]) -> Result<()> {
        if beats.is_empty() {
            return Ok(());
        }
        let mut c = self.lock();
        let tx = c.transaction().map_err(|e| self.err(e))?;
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
        let tx = c.transaction().map_err(|e| self.err(e))?;
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
