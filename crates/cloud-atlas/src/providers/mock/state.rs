//! What the mock cloud remembers, and where: machines and jobs, in memory or in one
//! SQLite file shared by every process that opens it (SQLite's own locking keeps
//! concurrent `atlas` invocations consistent; the one-launch-one-machine check runs in
//! an `IMMEDIATE` transaction).

use std::collections::BTreeMap;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::sync::Mutex;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::process::{ProcessEnv, ProcessState};
use super::{Mock, NAME};
use crate::error::{Error, ErrorKind, Result};
use crate::spec::{Gpu, PortSpec};

/// Whether a machine is powered.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) enum Power {
    On,
    Off,
}

/// One machine, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct Machine {
    pub(super) id: String,
    pub(super) name: String,
    pub(super) image: String,
    pub(super) gpu: Option<Gpu>,
    pub(super) gpu_count: u32,
    pub(super) cpus: Option<u32>,
    pub(super) memory_gb: Option<u32>,
    pub(super) region: String,
    /// The command it was spawned with (run on this host, see [`super::process`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) command: Vec<String>,
    pub(super) ports: Vec<PortSpec>,
    pub(super) env_keys: Vec<String>,
    /// Environment of the command (kept for a restart); its `Debug` shows keys only.
    #[serde(default, skip_serializing_if = "ProcessEnv::is_empty")]
    pub(super) env: ProcessEnv,
    /// The command's process, when spawned with a command.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub(super) process: Option<ProcessState>,
    pub(super) labels: BTreeMap<String, String>,
    pub(super) spot: bool,
    pub(super) volume_gb: Option<u32>,
    pub(super) created_at: DateTime<Utc>,
    pub(super) power: Power,
    /// When the machine was last powered on.
    pub(super) powered_at: DateTime<Utc>,
    /// When the current billing rate started.
    pub(super) rate_since: DateTime<Utc>,
    /// USD accrued before `rate_since`.
    pub(super) accrued_before: f64,
    pub(super) running_rate: f64,
    pub(super) stopped_rate: f64,
    pub(super) deadline: Option<DateTime<Utc>>,
    pub(super) token_hash: Option<String>,
    pub(super) auth_mode: crate::spec::AuthMode,
}

/// One serverless job, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct MockJob {
    pub(super) id: String,
    pub(super) endpoint_id: String,
    pub(super) input: serde_json::Value,
    pub(super) created_at: DateTime<Utc>,
    pub(super) queue_ms: u64,
    pub(super) exec_ms: u64,
    pub(super) chunks: u32,
    pub(super) outcome: Outcome,
    pub(super) cancelled_at: Option<DateTime<Utc>>,
    pub(super) retries: u32,
}

/// How a job ends.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(super) enum Outcome {
    Complete,
    Fail(String),
    TimeOut,
}

/// In-memory state.
#[derive(Debug, Default)]
pub(super) struct MemoryState {
    pub(super) machines: BTreeMap<String, Machine>,
    /// Machine name -> id, so one-launch-one-machine checks do not scan every machine.
    pub(super) names: std::collections::HashMap<String, String>,
    pub(super) jobs: BTreeMap<String, MockJob>,
}

/// Where state lives.
pub(super) enum Backend {
    Memory(Mutex<MemoryState>),
    #[cfg(feature = "sqlite")]
    Sqlite(Mutex<rusqlite::Connection>),
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Backend::Memory(_) => f.write_str("Memory"),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(_) => f.write_str("Sqlite"),
        }
    }
}

/// The mock's clock.
#[derive(Debug)]
pub(super) enum Clock {
    /// Wall clock (SQLite mode: shared across processes).
    System,
    /// Wall clock at creation plus tokio time elapsed (honours paused time in tests).
    Tokio(DateTime<Utc>, tokio::time::Instant),
}

impl Clock {
    pub(super) fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Tokio(wall, inst) => {
                *wall + chrono::Duration::from_std(inst.elapsed()).unwrap_or_default()
            }
        }
    }
}

impl Mock {
    pub(super) fn load(&self, id: &str) -> Result<Option<Machine>> {
        match &self.inner.backend {
            Backend::Memory(s) => Ok(lock(s).machines.get(id).cloned()),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let c = lock(c);
                let body: Option<String> = c
                    .query_row("SELECT body FROM machines WHERE id = ?1", [id], |r| {
                        r.get(0)
                    })
                    .map(Some)
                    .or_else(|e| {
                        if matches!(e, rusqlite::Error::QueryReturnedNoRows) {
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| self.db_err(e))?;
                body.map(|b| serde_json::from_str(&b).map_err(|e| self.decode_err(e)))
                    .transpose()
            }
        }
    }

    pub(super) fn load_all(&self) -> Result<Vec<Machine>> {
        match &self.inner.backend {
            Backend::Memory(s) => Ok(lock(s).machines.values().cloned().collect()),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let c = lock(c);
                let mut st = c
                    .prepare("SELECT body FROM machines ORDER BY id")
                    .map_err(|e| self.db_err(e))?;
                let rows = st
                    .query_map([], |r| r.get::<_, String>(0))
                    .map_err(|e| self.db_err(e))?;
                let mut out = Vec::new();
                for r in rows {
                    let b = r.map_err(|e| self.db_err(e))?;
                    out.push(serde_json::from_str(&b).map_err(|e| self.decode_err(e))?);
                }
                Ok(out)
            }
        }
    }

    pub(super) fn save(&self, m: &Machine) -> Result<()> {
        match &self.inner.backend {
            Backend::Memory(s) => {
                let mut s = lock(s);
                s.names.insert(m.name.clone(), m.id.clone());
                s.machines.insert(m.id.clone(), m.clone());
                Ok(())
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let body = serde_json::to_string(m)?;
                lock(c)
                    .execute(
                        "INSERT INTO machines (id, name, body) VALUES (?1, ?2, ?3)
                         ON CONFLICT(id) DO UPDATE SET name = excluded.name, body = excluded.body",
                        rusqlite::params![m.id, m.name, body],
                    )
                    .map_err(|e| self.db_err(e))?;
                Ok(())
            }
        }
    }

    /// Insert `m` unless a machine named `m.name` exists; returns the machine that holds the name.
    pub(super) fn insert_unique(&self, m: &Machine) -> Result<(Machine, bool)> {
        match &self.inner.backend {
            Backend::Memory(s) => {
                let mut s = lock(s);
                if let Some(existing) = s.names.get(&m.name).and_then(|id| s.machines.get(id)) {
                    return Ok((existing.clone(), false));
                }
                s.names.insert(m.name.clone(), m.id.clone());
                s.machines.insert(m.id.clone(), m.clone());
                Ok((m.clone(), true))
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let mut c = lock(c);
                let tx = c
                    .transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)
                    .map_err(|e| self.db_err(e))?;
                let existing: Option<String> = tx
                    .query_row(
                        "SELECT body FROM machines WHERE name = ?1",
                        [&m.name],
                        |r| r.get(0),
                    )
                    .map(Some)
                    .or_else(|e| {
                        if matches!(e, rusqlite::Error::QueryReturnedNoRows) {
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| self.db_err(e))?;
                if let Some(b) = existing {
                    return Ok((
                        serde_json::from_str(&b).map_err(|e| self.decode_err(e))?,
                        false,
                    ));
                }
                tx.execute(
                    "INSERT INTO machines (id, name, body) VALUES (?1, ?2, ?3)",
                    rusqlite::params![m.id, m.name, serde_json::to_string(m)?],
                )
                .map_err(|e| self.db_err(e))?;
                tx.commit().map_err(|e| self.db_err(e))?;
                Ok((m.clone(), true))
            }
        }
    }

    pub(super) fn remove(&self, id: &str) -> Result<bool> {
        match &self.inner.backend {
            Backend::Memory(s) => {
                let mut s = lock(s);
                match s.machines.remove(id) {
                    Some(m) => {
                        if s.names.get(&m.name).is_some_and(|x| x == id) {
                            s.names.remove(&m.name);
                        }
                        Ok(true)
                    }
                    None => Ok(false),
                }
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let n = lock(c)
                    .execute("DELETE FROM machines WHERE id = ?1", [id])
                    .map_err(|e| self.db_err(e))?;
                Ok(n > 0)
            }
        }
    }

    #[cfg(feature = "sqlite")]
    pub(super) fn db_err(&self, e: rusqlite::Error) -> Error {
        sqlite_err(
            self.inner.path.as_deref().unwrap_or(Path::new(":memory:")),
            e,
        )
    }

    pub(super) fn decode_err(&self, e: serde_json::Error) -> Error {
        Error::new(
            ErrorKind::Unknown,
            "mock cloud state is corrupt; delete the mock database to start afresh",
        )
        .with_provider(NAME)
        .with_source(e)
    }

    /// Replace a machine that still exists; `Ok(false)` when it is gone (terminated
    /// meanwhile by another call or process), so it is never brought back.
    pub(super) fn update(&self, m: &Machine) -> Result<bool> {
        match &self.inner.backend {
            Backend::Memory(s) => {
                let mut s = lock(s);
                match s.machines.get_mut(&m.id) {
                    Some(slot) => {
                        *slot = m.clone();
                        Ok(true)
                    }
                    None => Ok(false),
                }
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let body = serde_json::to_string(m)?;
                let n = lock(c)
                    .execute(
                        "UPDATE machines SET body = ?2 WHERE id = ?1",
                        rusqlite::params![m.id, body],
                    )
                    .map_err(|e| self.db_err(e))?;
                Ok(n > 0)
            }
        }
    }
}

#[cfg(feature = "sqlite")]
pub(super) fn sqlite_err(path: &Path, e: rusqlite::Error) -> Error {
    Error::new(
        ErrorKind::Unknown,
        format!("mock cloud database {}: {e}", path.display()),
    )
    .with_provider(NAME)
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}
