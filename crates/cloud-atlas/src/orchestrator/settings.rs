//! The `[orchestrator]` table of `atlas.toml`, parsed strictly: an unknown key is an error
//! naming the allowed ones, a value of the wrong type or out of range names its key and
//! what is allowed. [`OrchestratorSettings::config`] turns it into an
//! [`OrchestratorConfig`]; every key left out keeps the documented default.
//!
//! ```toml
//! [orchestrator]
//! idle_ttl = "15m"                    # default idle TTL of a session (1s to 365d)
//! max_runtime = "8h"                  # default max runtime of a session (1s to 365d)
//! heartbeat_flush = "5s"              # how often touches are persisted (100ms to 1h)
//! shutdown = "terminate"              # atlas serve on SIGINT/SIGTERM: terminate | release
//! node_id = "node-a"                  # this node's name (several nodes on one store)
//! lease_ttl = "90s"                   # how long a node's ownership lease lasts (1s to 1h)
//! reaper = true                       # run the orphan reaper on its interval
//! reaper_prefix = "atlas-session-"    # only untracked machines named so are reaped
//! reaper_grace = "10m"                # machines younger than this are never reaped (0s to 365d)
//! reaper_interval = "60s"             # time between reaper rounds (1s to 1d)
//! max_sessions_per_user = 3           # 1 to 100000
//! max_usd_per_hour_per_user = 10.0    # USD, more than 0
//! max_total_usd_per_user = 100.0
//! max_usd_per_user_per_month = 50.0   # calendar month, UTC
//! max_total_usd = 1000.0              # every user of the store together
//! ```
//!
//! `node_id` and `lease_ttl` are read and checked here; `atlas serve` uses `node_id`
//! when `[server]` and `--node-id` name none.

use std::time::Duration;

use super::{OrchestratorConfig, ShutdownPolicy};
use crate::error::{Error, Result};
use crate::spec::{parse_duration_in, DurationRange};

/// The keys `[orchestrator]` allows.
pub const ORCHESTRATOR_KEYS: &[&str] = &[
    "idle_ttl",
    "max_runtime",
    "heartbeat_flush",
    "shutdown",
    "node_id",
    "lease_ttl",
    "reaper",
    "reaper_prefix",
    "reaper_grace",
    "reaper_interval",
    "max_sessions_per_user",
    "max_usd_per_hour_per_user",
    "max_total_usd_per_user",
    "max_usd_per_user_per_month",
    "max_total_usd",
];

/// `heartbeat_flush`: 100 ms to 1 h.
const FLUSH: DurationRange =
    DurationRange::new(Duration::from_millis(100), Duration::from_secs(3600));
/// `reaper_grace`: 0 s to 365 d.
const GRACE: DurationRange = DurationRange::new(Duration::ZERO, Duration::from_secs(365 * 86_400));
/// `reaper_interval`: 1 s to 1 d.
const INTERVAL: DurationRange =
    DurationRange::new(Duration::from_secs(1), Duration::from_secs(86_400));
/// `lease_ttl`: 1 s to 1 h.
const LEASE: DurationRange = DurationRange::new(Duration::from_secs(1), Duration::from_secs(3600));
/// Largest USD amount a cap may name.
const MAX_USD: f64 = 1e9;
/// Largest `max_sessions_per_user`.
const MAX_SESSIONS: i64 = 100_000;

/// What `[orchestrator]` sets; `None` keeps the default.
#[derive(Debug, Clone, Default, PartialEq)]
#[non_exhaustive]
pub struct OrchestratorSettings {
    /// Default idle TTL.
    pub idle_ttl: Option<Duration>,
    /// Default max runtime.
    pub max_runtime: Option<Duration>,
    /// Heartbeat flush interval.
    pub heartbeat_flush: Option<Duration>,
    /// Shutdown policy of a long-running orchestrator (`atlas serve`).
    pub shutdown: Option<ShutdownPolicy>,
    /// This node's id.
    pub node_id: Option<String>,
    /// Ownership lease length.
    pub lease_ttl: Option<Duration>,
    /// Run the reaper on its interval.
    pub reaper: Option<bool>,
    /// Reaper prefix.
    pub reaper_prefix: Option<String>,
    /// Reaper grace window.
    pub reaper_grace: Option<Duration>,
    /// Reaper interval.
    pub reaper_interval: Option<Duration>,
    /// Cap on concurrent sessions per user.
    pub max_sessions_per_user: Option<usize>,
    /// Cap on USD per hour per user.
    pub max_usd_per_hour_per_user: Option<f64>,
    /// Cap on USD per user, all time.
    pub max_total_usd_per_user: Option<f64>,
    /// Cap on USD per user per calendar month.
    pub max_usd_per_user_per_month: Option<f64>,
    /// Cap on USD of the whole store.
    pub max_total_usd: Option<f64>,
}

fn key(k: &str) -> String {
    format!("orchestrator.{k}")
}

fn duration(k: &str, v: &toml::Value, range: DurationRange) -> Result<Duration> {
    match v.as_str() {
        Some(s) => parse_duration_in(&key(k), s, range),
        None => Err(Error::validation(
            &key(k),
            format!(
                "{v} is not a duration string; write it quoted, e.g. \"15m\" (allowed: {range})"
            ),
        )),
    }
}

fn usd(k: &str, v: &toml::Value) -> Result<f64> {
    let n = match v {
        toml::Value::Float(f) => *f,
        toml::Value::Integer(i) => *i as f64,
        _ => {
            return Err(Error::validation(
                &key(k),
                format!("{v} is not a number; use an amount of USD, e.g. 25.0 (more than 0, at most {MAX_USD})"),
            ))
        }
    };
    if n.is_finite() && n > 0.0 && n <= MAX_USD {
        Ok(n)
    } else {
        Err(Error::validation(
            &key(k),
            format!("{v} is out of range; allowed: more than 0, at most {MAX_USD} USD"),
        ))
    }
}

fn string<'a>(k: &str, v: &'a toml::Value) -> Result<&'a str> {
    v.as_str()
        .ok_or_else(|| Error::validation(&key(k), format!("{v} is not a string; write it quoted")))
}

impl OrchestratorSettings {
    /// Parse an `[orchestrator]` table.
    ///
    /// # Errors
    /// `Validation` naming `orchestrator.<key>`: an unknown key (listing the allowed
    /// ones), a value of the wrong type, or one out of range (naming the range).
    pub fn from_table(t: &toml::Table) -> Result<OrchestratorSettings> {
        let mut s = OrchestratorSettings::default();
        for (k, v) in t {
            match k.as_str() {
                "idle_ttl" => s.idle_ttl = Some(duration(k, v, DurationRange::LIMIT)?),
                "max_runtime" => s.max_runtime = Some(duration(k, v, DurationRange::LIMIT)?),
                "heartbeat_flush" => s.heartbeat_flush = Some(duration(k, v, FLUSH)?),
                "lease_ttl" => s.lease_ttl = Some(duration(k, v, LEASE)?),
                "reaper_grace" => s.reaper_grace = Some(duration(k, v, GRACE)?),
                "reaper_interval" => s.reaper_interval = Some(duration(k, v, INTERVAL)?),
                "shutdown" => {
                    s.shutdown = Some(match string(k, v)? {
                        "terminate" => ShutdownPolicy::Terminate,
                        "release" => ShutdownPolicy::Release,
                        other => {
                            return Err(Error::validation(
                                &key(k),
                                format!("{other:?} is not allowed; allowed: terminate, release"),
                            ))
                        }
                    })
                }
                "node_id" => {
                    let n = string(k, v)?;
                    if super::ownership::validate_node_id(n).is_err() {
                        return Err(Error::validation(
                            &key(k),
                            format!("{n:?} is not allowed; use 1-64 letters, digits, -, _ or ."),
                        ));
                    }
                    s.node_id = Some(n.to_string());
                }
                "reaper" => {
                    s.reaper = Some(v.as_bool().ok_or_else(|| {
                        Error::validation(&key(k), format!("{v} is not allowed; use true or false"))
                    })?)
                }
                "reaper_prefix" => {
                    let p = string(k, v)?;
                    super::session::validate_prefix(p).map_err(|e| {
                        let why = e.message().trim_start_matches("name_prefix: ").to_string();
                        Error::validation(&key(k), why)
                    })?;
                    s.reaper_prefix = Some(p.to_string());
                }
                "max_sessions_per_user" => {
                    s.max_sessions_per_user = Some(match v.as_integer() {
                        Some(n) if (1..=MAX_SESSIONS).contains(&n) => n as usize,
                        _ => {
                            return Err(Error::validation(
                                &key(k),
                                format!(
                                "{v} is not allowed; use a whole number from 1 to {MAX_SESSIONS}"
                            ),
                            ))
                        }
                    })
                }
                "max_usd_per_hour_per_user" => s.max_usd_per_hour_per_user = Some(usd(k, v)?),
                "max_total_usd_per_user" => s.max_total_usd_per_user = Some(usd(k, v)?),
                "max_usd_per_user_per_month" => s.max_usd_per_user_per_month = Some(usd(k, v)?),
                "max_total_usd" => s.max_total_usd = Some(usd(k, v)?),
                _ => {
                    return Err(Error::validation(
                        &key(k),
                        format!(
                            "is not an [orchestrator] key; allowed: {}",
                            ORCHESTRATOR_KEYS.join(", ")
                        ),
                    ))
                }
            }
        }
        Ok(s)
    }

    /// Override `cfg` with what the table sets.
    pub fn apply(&self, cfg: &mut OrchestratorConfig) {
        if let Some(d) = self.idle_ttl {
            cfg.default_idle_ttl = d;
        }
        if let Some(d) = self.max_runtime {
            cfg.default_max_runtime = d;
        }
        if let Some(d) = self.heartbeat_flush {
            cfg.heartbeat_flush_interval = d;
        }
        if let Some(n) = &self.node_id {
            cfg.node_id = Some(n.clone());
        }
        if let Some(d) = self.lease_ttl {
            cfg.lease_ttl = d;
        }
        if let Some(on) = self.reaper {
            cfg.reaper.enabled = on;
        }
        if let Some(p) = &self.reaper_prefix {
            cfg.reaper.prefix = p.clone();
        }
        if let Some(d) = self.reaper_grace {
            cfg.reaper.grace = d;
        }
        if let Some(d) = self.reaper_interval {
            cfg.reaper.interval = d;
        }
        let l = &mut cfg.limits;
        if let Some(n) = self.max_sessions_per_user {
            l.max_sessions_per_user = Some(n);
        }
        if let Some(v) = self.max_usd_per_hour_per_user {
            l.max_usd_per_hour_per_user = Some(v);
        }
        if let Some(v) = self.max_total_usd_per_user {
            l.max_total_usd_per_user = Some(v);
        }
        if let Some(v) = self.max_usd_per_user_per_month {
            l.max_usd_per_user_per_month = Some(v);
        }
        if let Some(v) = self.max_total_usd {
            l.max_total_usd = Some(v);
        }
    }

    /// The defaults with this table on top, checked.
    ///
    /// # Errors
    /// `Validation` naming the setting (as the orchestrator builder would at start).
    pub fn config(&self) -> Result<OrchestratorConfig> {
        let mut c = OrchestratorConfig::default();
        self.apply(&mut c);
        c.validate()?;
        Ok(c)
    }

    /// The shutdown policy, `default` when the table sets none.
    pub fn shutdown_or(&self, default: ShutdownPolicy) -> ShutdownPolicy {
        self.shutdown.unwrap_or(default)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(s: &str) -> Result<OrchestratorSettings> {
        OrchestratorSettings::from_table(&toml::from_str(s).unwrap())
    }

    fn err(s: &str) -> String {
        parse(s).unwrap_err().message().to_string()
    }

    #[test]
    fn an_empty_table_keeps_every_default() {
        let s = parse("").unwrap();
        assert_eq!(s, OrchestratorSettings::default());
        assert_eq!(s.config().unwrap(), OrchestratorConfig::default());
        assert_eq!(
            s.shutdown_or(ShutdownPolicy::Release),
            ShutdownPolicy::Release
        );
    }

    #[test]
    fn every_key_lands_in_the_config() {
        let s = parse(
            r#"
            idle_ttl = "20m"
            max_runtime = "2h"
            heartbeat_flush = "500ms"
            shutdown = "release"
            node_id = "node-a"
            lease_ttl = "45s"
            reaper = false
            reaper_prefix = "team-"
            reaper_grace = "0s"
            reaper_interval = "5m"
            max_sessions_per_user = 3
            max_usd_per_hour_per_user = 10
            max_total_usd_per_user = 100.5
            max_usd_per_user_per_month = 50.0
            max_total_usd = 1000.0
            "#,
        )
        .unwrap();
        let c = s.config().unwrap();
        assert_eq!(c.default_idle_ttl, Duration::from_secs(1200));
        assert_eq!(c.default_max_runtime, Duration::from_secs(7200));
        assert_eq!(c.heartbeat_flush_interval, Duration::from_millis(500));
        assert!(!c.reaper.enabled);
        assert_eq!(c.reaper.prefix, "team-");
        assert_eq!(c.reaper.grace, Duration::ZERO);
        assert_eq!(c.reaper.interval, Duration::from_secs(300));
        assert_eq!(c.limits.max_sessions_per_user, Some(3));
        assert_eq!(c.limits.max_usd_per_hour_per_user, Some(10.0));
        assert_eq!(c.limits.max_total_usd_per_user, Some(100.5));
        assert_eq!(c.limits.max_usd_per_user_per_month, Some(50.0));
        assert_eq!(c.limits.max_total_usd, Some(1000.0));
        assert_eq!(
            s.shutdown_or(ShutdownPolicy::Terminate),
            ShutdownPolicy::Release
        );
        assert_eq!(s.node_id.as_deref(), Some("node-a"));
        assert_eq!(s.lease_ttl, Some(Duration::from_secs(45)));
    }

    #[test]
    fn unknown_keys_name_the_allowed_ones() {
        let e = err("max_usd = 5.0");
        assert!(
            e.starts_with("orchestrator.max_usd: is not an [orchestrator] key; allowed: idle_ttl, max_runtime,"),
            "{e}"
        );
        for k in ORCHESTRATOR_KEYS {
            assert!(e.contains(k), "{k} missing from {e}");
        }
    }

    #[test]
    fn wrong_types_and_ranges_name_the_key_and_what_is_allowed() {
        for (toml, starts, has) in [
            ("idle_ttl = 15", "orchestrator.idle_ttl: ", "quoted"),
            ("idle_ttl = \"0s\"", "orchestrator.idle_ttl: ", "1s to 365d"),
            (
                "max_runtime = \"366d\"",
                "orchestrator.max_runtime: ",
                "1s to 365d",
            ),
            (
                "max_runtime = \"soon\"",
                "orchestrator.max_runtime: ",
                "not a duration",
            ),
            (
                "heartbeat_flush = \"10ms\"",
                "orchestrator.heartbeat_flush: ",
                "100ms to 1h",
            ),
            ("lease_ttl = \"2h\"", "orchestrator.lease_ttl: ", "1s to 1h"),
            (
                "reaper_grace = \"400d\"",
                "orchestrator.reaper_grace: ",
                "0s to 365d",
            ),
            (
                "reaper_interval = \"0s\"",
                "orchestrator.reaper_interval: ",
                "1s to 1d",
            ),
            (
                "shutdown = \"later\"",
                "orchestrator.shutdown: ",
                "terminate, release",
            ),
            ("shutdown = 1", "orchestrator.shutdown: ", "not a string"),
            ("node_id = \"a b\"", "orchestrator.node_id: ", "1-64"),
            ("reaper = \"yes\"", "orchestrator.reaper: ", "true or false"),
            (
                "reaper_prefix = \"\"",
                "orchestrator.reaper_prefix: ",
                "1-32 lowercase",
            ),
            (
                "reaper_prefix = \"Atlas-\"",
                "orchestrator.reaper_prefix: ",
                "1-32 lowercase",
            ),
            (
                "max_sessions_per_user = 0",
                "orchestrator.max_sessions_per_user: ",
                "1 to 100000",
            ),
            (
                "max_sessions_per_user = 2.5",
                "orchestrator.max_sessions_per_user: ",
                "whole number",
            ),
            (
                "max_total_usd = 0",
                "orchestrator.max_total_usd: ",
                "more than 0",
            ),
            (
                "max_total_usd = -3.0",
                "orchestrator.max_total_usd: ",
                "more than 0",
            ),
            (
                "max_total_usd = inf",
                "orchestrator.max_total_usd: ",
                "more than 0",
            ),
            (
                "max_total_usd = nan",
                "orchestrator.max_total_usd: ",
                "more than 0",
            ),
            (
                "max_total_usd = 1e10",
                "orchestrator.max_total_usd: ",
                "at most",
            ),
            (
                "max_usd_per_user_per_month = \"5\"",
                "orchestrator.max_usd_per_user_per_month: ",
                "not a number",
            ),
            (
                "max_usd_per_hour_per_user = 0.0",
                "orchestrator.max_usd_per_hour_per_user: ",
                "more than 0",
            ),
            (
                "max_total_usd_per_user = false",
                "orchestrator.max_total_usd_per_user: ",
                "not a number",
            ),
        ] {
            let e = err(toml);
            assert!(e.starts_with(starts) && e.contains(has), "{toml}: {e}");
        }
        // Exact bounds are allowed.
        parse("idle_ttl = \"1s\"\nmax_runtime = \"365d\"\nheartbeat_flush = \"100ms\"\nlease_ttl = \"1h\"\nreaper_interval = \"1d\"\nmax_sessions_per_user = 100000\nmax_total_usd = 1e9")
            .unwrap()
            .config()
            .unwrap();
    }
}
