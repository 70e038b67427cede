//! Who runs the interval reaper rounds when several nodes share one store.
//!
//! With one node (SQLite, memory) every node is the leader: [`AlwaysLeader`], the
//! default. With a shared store (PostgreSQL) only the holder of a [`LeaderLease`] runs
//! the interval rounds, so one reaper runs per cluster; the others skip theirs and
//! try to take the lease at every interval, so it passes to another node when the
//! holder stops (released on [`shutdown`](super::Orchestrator::shutdown)) or dies (the
//! lease expires). On-demand rounds ([`Orchestrator::reap`](super::Orchestrator::reap))
//! are explicit and run regardless.

use std::fmt::Debug;

use async_trait::async_trait;

use crate::error::Result;

/// A lease deciding which node runs the interval reaper rounds.
///
/// # Contract
/// - `acquire` takes the lease when it is free or expired, renews it when this holder
///   already has it, and returns whether this holder holds it now; at most one holder
///   gets `true` for the same lease at a time.
/// - `release` gives the lease up when this holder has it (no-op otherwise), so another
///   node can take it at once.
///
/// The orchestrator calls `acquire` once per reaper interval, so a lease that expires
/// must live several intervals.
#[async_trait]
pub trait LeaderLease: Send + Sync + Debug + 'static {
    /// Take or renew the lease; `true` when this node holds it now.
    async fn acquire(&self) -> Result<bool>;
    /// Give the lease up if this node holds it.
    async fn release(&self) -> Result<()>;
}

/// The single-node default: always the leader.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AlwaysLeader;

#[async_trait]
impl LeaderLease for AlwaysLeader {
    async fn acquire(&self) -> Result<bool> {
        Ok(true)
    }
    async fn release(&self) -> Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn always_leader_always_holds() {
        assert!(AlwaysLeader.acquire().await.unwrap());
        AlwaysLeader.release().await.unwrap();
        assert!(AlwaysLeader.acquire().await.unwrap());
    }
}
