//! Orchestrator settings and the shutdown policy.

use std::time::Duration;

use super::{ReaperConfig, SpendLimits};
use crate::error::{Error, Result};

/// What [`Orchestrator::shutdown`] does with tracked compute.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[non_exhaustive]
pub enum ShutdownPolicy {
    /// Destroy all tracked compute (the default: nothing leaks). Sessions whose
    /// terminate still fails at the shutdown timeout stay in the store for the next start.
    #[default]
    Terminate,
    /// Leave compute running and tracked in the store, for the next start (or another
    /// node sharing the store) to adopt. The provider-side deadline still applies.
    Release,
}

/// Orchestrator settings. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct OrchestratorConfig {
    /// Idle TTL when the request sets none (default 15 min).
    pub default_idle_ttl: Duration,
    /// Max runtime when the request sets none (default 8 h).
    pub default_max_runtime: Duration,
    /// Pass `max_runtime + provider_deadline_slack` to providers that enforce a deadline (default on).
    pub provider_deadline: bool,
    /// Extra time the provider-side deadline allows past the orchestrator's (default 2 min),
    /// so the orchestrator normally ends the session itself, with its reason.
    pub provider_deadline_slack: Duration,
    /// How often touched heartbeats are persisted in one batch (default 5 s).
    pub heartbeat_flush_interval: Duration,
    /// How often per-user spend caps are checked (default 30 s).
    pub spend_interval: Duration,
    /// How often estimates are reconciled with provider billing (default 5 min).
    pub reconcile_interval: Duration,
    /// Per-user limits (default none).
    pub limits: SpendLimits,
    /// Reaper settings.
    pub reaper: ReaperConfig,
    /// Events held per subscriber before it lags (default 1024).
    pub event_capacity: usize,
    /// First retry delay of a failed terminate (default 1 s; doubles).
    pub terminate_backoff: Duration,
    /// Longest retry delay of a failed terminate (default 60 s).
    pub terminate_backoff_max: Duration,
    /// How long shutdown waits for terminations (default 60 s).
    pub shutdown_timeout: Duration,
    /// Watch each new machine until it runs, to emit [`EventKind::Running`] (default on).
    pub watch_running: bool,
    /// How long to watch for `running` (default 15 min).
    pub boot_timeout: Duration,
    /// This node's name in the store: the [`owner`](super::Session::owner) of what it
    /// spawns or adopts (1-64 letters, digits, `-`, `_`, `.`). `None` (the default) names
    /// it `{host}-{pid}-{random}`, unique per process.
    pub node_id: Option<String>,
    /// How long this node's ownership lease lasts without renewal (default 90 s; renewed
    /// every third of it). Another node takes over its records only once it has expired.
    pub lease_ttl: Duration,
}

impl Default for OrchestratorConfig {
    fn default() -> OrchestratorConfig {
        OrchestratorConfig {
            default_idle_ttl: Duration::from_secs(15 * 60),
            default_max_runtime: Duration::from_secs(8 * 3600),
            provider_deadline: true,
            provider_deadline_slack: Duration::from_secs(120),
            heartbeat_flush_interval: Duration::from_secs(5),
            spend_interval: Duration::from_secs(30),
            reconcile_interval: Duration::from_secs(300),
            limits: SpendLimits::default(),
            reaper: ReaperConfig::default(),
            event_capacity: 1024,
            terminate_backoff: Duration::from_secs(1),
            terminate_backoff_max: Duration::from_secs(60),
            shutdown_timeout: Duration::from_secs(60),
            watch_running: true,
            boot_timeout: Duration::from_secs(15 * 60),
            node_id: None,
            lease_ttl: Duration::from_secs(90),
        }
    }
}

impl OrchestratorConfig {
    pub(super) fn validate(&self) -> Result<()> {
        self.reaper.validate()?;
        self.limits.validate()?;
        if let Some(n) = &self.node_id {
            super::ownership::validate_node_id(n)?;
        }
        for (field, d) in [
            ("default_idle_ttl", self.default_idle_ttl),
            ("default_max_runtime", self.default_max_runtime),
        ] {
            crate::spec::DurationRange::LIMIT.check(field, d)?;
        }
        for (field, d) in [
            ("default_idle_ttl", self.default_idle_ttl),
            ("default_max_runtime", self.default_max_runtime),
            ("heartbeat_flush_interval", self.heartbeat_flush_interval),
            ("spend_interval", self.spend_interval),
            ("reconcile_interval", self.reconcile_interval),
            ("terminate_backoff", self.terminate_backoff),
            ("lease_ttl", self.lease_ttl),
        ] {
            if d.is_zero() {
                return Err(Error::validation(field, "must be greater than zero"));
            }
        }
        Ok(())
    }
}
