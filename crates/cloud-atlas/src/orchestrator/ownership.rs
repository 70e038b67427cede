//! Who may act on a stored session: owners and their leases.
//!
//! Every orchestrator is a node with an id ([`OrchestratorConfig::node_id`], by default
//! `{host}-{pid}-{random}`, unique per process). What it spawns or adopts carries its id
//! as [`owner`](super::Session::owner), and it keeps a lease in the store (renewed every
//! third of [`lease_ttl`](super::OrchestratorConfig::lease_ttl), released at shutdown).
//!
//! The rule: **no node acts on a record another live owner holds.** Re-adoption at start,
//! the reaper and `stop_tracked` leave such records alone; a record whose owner's lease
//! has expired or was released (or that has no owner: written before owners existed) is
//! taken over with a compare-and-set [`claim`](super::store::SessionStore::claim), so two
//! nodes racing for it cannot both win.

use std::collections::BTreeMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::{Inner, OrchestratorConfig, Session};
use crate::error::{Error, ErrorKind, Result};

/// Check a node id: 1-64 ASCII letters, digits, `-`, `_` or `.`.
///
/// # Errors
/// `Validation` naming `node_id`.
pub fn validate_node_id(n: &str) -> Result<()> {
    let ok = !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            "node_id",
            format!("{n:?} is not allowed; use 1-64 letters, digits, -, _ or ."),
        ))
    }
}

/// This host's name as a node-id part (`node` when it has none usable).
fn host_label() -> String {
    let host: String = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(32)
        .collect();
    if host.is_empty() {
        "node".into()
    } else {
        host
    }
}

/// Eight random hex characters.
fn random8() -> String {
    uuid::Uuid::new_v4().simple().to_string()[..8].to_string()
}

/// This process's node id when none is configured: `{host}-{pid}-{random}`.
pub(super) fn default_node_id() -> String {
    format!("{}-{}-{}", host_label(), std::process::id(), random8())
}

/// File in a data directory holding the node id of the server that runs there.
pub const NODE_ID_FILE: &str = "node-id";

/// A node id kept across restarts, and the lock that makes it this process's own.
#[derive(Debug)]
pub struct StableNodeId {
    /// The id.
    pub id: String,
    /// Held while the process runs; `None` when another process had the kept id.
    _lock: Option<crate::files::FileLock>,
}

/// The node id kept in `dir/node-id` (generated `{host}-{random}` and written 0600 on
/// first use), so a restarted server adopts its own sessions at once instead of waiting
/// for its previous lease to expire. The id is held with an exclusive file lock while
/// the returned value lives; a second process on the same data directory (whose first
/// is alive) gets a fresh per-process id instead, so two live processes never share one.
///
/// # Errors
/// `Unknown` naming the file when it cannot be created or read; `Validation` when it
/// holds something that is not a node id.
pub fn stable_node_id(dir: &std::path::Path) -> Result<StableNodeId> {
    crate::config::ensure_private_dir(dir)?;
    let path = dir.join(NODE_ID_FILE);
    let lock = match crate::files::FileLock::acquire_within(
        dir.join(format!("{NODE_ID_FILE}.lock")),
        std::time::Duration::ZERO,
    ) {
        Ok(l) => l,
        Err(e) if e.kind() == ErrorKind::Timeout => {
            let id = default_node_id();
            tracing::warn!(node = %id, file = %path.display(), "another live process holds this data directory's node id; using a per-process one");
            return Ok(StableNodeId { id, _lock: None });
        }
        Err(e) => return Err(e),
    };
    let kept = std::fs::read_to_string(&path)
        .ok()
        .and_then(|t| t.lines().next().map(str::to_string))
        .filter(|l| !l.trim().is_empty());
    let id = match kept {
        Some(l) => {
            let id = l.trim().to_string();
            validate_node_id(&id).map_err(|e| {
                Error::validation(
                    "node_id",
                    format!("{} holds {id:?}: {}", path.display(), e.message()),
                )
            })?;
            id
        }
        None => {
            // No pid: it would mean nothing across restarts.
            let id = format!("{}-{}", host_label(), random8());
            crate::files::replace(&path, format!("{id}\n").as_bytes())?;
            id
        }
    };
    Ok(StableNodeId {
        id,
        _lock: Some(lock),
    })
}

/// The node id `cfg` names, or a fresh default one.
pub(super) fn node_id(cfg: &OrchestratorConfig) -> String {
    cfg.node_id.clone().unwrap_or_else(default_node_id)
}

/// Whether `owner` is a live node other than `me` (its lease ends after `now`).
pub(crate) fn held_elsewhere(
    owner: Option<&str>,
    leases: &BTreeMap<String, DateTime<Utc>>,
    me: Option<&str>,
    now: DateTime<Utc>,
) -> bool {
    match owner {
        Some(o) if Some(o) != me => leases.get(o).is_some_and(|until| *until > now),
        _ => false,
    }
}

/// The refusal for acting on `s` while `owner` holds it until `until`.
pub(crate) fn held_error(s: &Session, until: Option<DateTime<Utc>>) -> Error {
    let owner = s.owner.as_deref().unwrap_or("?");
    let until = until.map_or_else(String::new, |t| {
        format!(" (lease until {})", t.format("%Y-%m-%d %H:%M:%S UTC"))
    });
    Error::new(
        ErrorKind::Conflict,
        format!(
            "session {} is held by node {owner}{until}, which is alive; act on it through that node, or retry once it has exited",
            s.id
        ),
    )
}

impl Inner {
    /// Renew this node's lease until `now + lease_ttl`.
    pub(super) async fn renew_lease(&self) -> Result<()> {
        let until = crate::spec::utc_after(self.clock.now(), self.cfg.lease_ttl);
        self.store.renew_owner(&self.node, until).await
    }

    /// Every third of the lease TTL until the loops stop: renew the lease, then take
    /// over what nodes that are gone left behind.
    pub(super) async fn lease_loop(self: Arc<Self>) {
        let every = self.cfg.lease_ttl / 3;
        loop {
            tokio::select! {
                _ = self.loops.cancelled() => break,
                _ = tokio::time::sleep(every) => {
                    if let Err(e) = self.renew_lease().await {
                        tracing::warn!(error = %e, node = %self.node, "could not renew this node's ownership lease; retrying");
                        continue;
                    }
                    if let Err(e) = self.readopt(false).await {
                        tracing::warn!(error = %e, "could not take over the sessions of stopped nodes; retrying");
                    }
                }
            }
        }
    }

    /// Every node's lease, and the time to judge them by.
    pub(super) async fn leases(&self) -> Result<(BTreeMap<String, DateTime<Utc>>, DateTime<Utc>)> {
        Ok((self.store.owners().await?, self.clock.now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn only_another_nodes_unexpired_lease_holds_a_record() {
        let leases = BTreeMap::from([("a".to_string(), at(10)), ("b".to_string(), at(5))]);
        // a's lease runs to 10: held until then, the boundary belongs to the expired side.
        assert!(held_elsewhere(Some("a"), &leases, Some("me"), at(9)));
        assert!(!held_elsewhere(Some("a"), &leases, Some("me"), at(10)));
        assert!(!held_elsewhere(Some("b"), &leases, Some("me"), at(9)));
        // My own records, records without an owner, owners without a lease: not held.
        assert!(!held_elsewhere(Some("a"), &leases, Some("a"), at(0)));
        assert!(!held_elsewhere(None, &leases, Some("me"), at(0)));
        assert!(!held_elsewhere(Some("gone"), &leases, Some("me"), at(0)));
        // A store-only reaper (no node of its own) respects every live lease.
        assert!(held_elsewhere(Some("a"), &leases, None, at(0)));
    }

    #[test]
    fn a_kept_node_id_survives_restarts_and_is_never_shared_by_two_live_processes() {
        let dir = tempfile::tempdir().unwrap();
        let first = stable_node_id(dir.path()).unwrap();
        validate_node_id(&first.id).unwrap();
        // While the first holds it, a second gets a per-process id of its own.
        let second = stable_node_id(dir.path()).unwrap();
        assert_ne!(first.id, second.id);
        let kept = first.id.clone();
        drop((first, second));
        // After a restart: the same id again.
        assert_eq!(stable_node_id(dir.path()).unwrap().id, kept);
        std::fs::write(dir.path().join(NODE_ID_FILE), "not a node id\n").unwrap();
        let e = stable_node_id(dir.path()).unwrap_err();
        assert!(e.to_string().contains("node_id"), "{e}");
    }

    #[test]
    fn node_ids_are_checked_and_defaults_are_unique_and_valid() {
        for ok in ["node-a", "n.1_x", &"a".repeat(64)] {
            validate_node_id(ok).unwrap();
        }
        for bad in ["", "a b", "ä", &"a".repeat(65)] {
            let e = validate_node_id(bad).unwrap_err();
            assert!(e.to_string().contains("node_id"), "{e}");
        }
        let (x, y) = (default_node_id(), default_node_id());
        assert_ne!(x, y);
        validate_node_id(&x).unwrap();
        assert!(x.contains(&std::process::id().to_string()), "{x}");
    }
}
