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

/// This process's node id when none is configured: `{host}-{pid}-{random}`.
pub(super) fn default_node_id() -> String {
    let host: String = std::env::var("HOSTNAME")
        .ok()
        .or_else(|| std::fs::read_to_string("/etc/hostname").ok())
        .unwrap_or_default()
        .trim()
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.')
        .take(32)
        .collect();
    let host = if host.is_empty() { "node".into() } else { host };
    let rand = &uuid::Uuid::new_v4().simple().to_string()[..8];
    format!("{host}-{}-{rand}", std::process::id())
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
