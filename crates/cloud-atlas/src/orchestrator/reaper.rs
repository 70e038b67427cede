//! The orphan reaper: lists each provider and terminates what no session tracks.
//!
//! # Which machines are session machines (the naming rule)
//! The orchestrator names every session machine `atlas-session-{name}-{launch_id}`
//! ([`SESSION_NAME_PREFIX`], or the session's own `name_prefix`) and, on providers that
//! keep labels, labels it [`SESSION_LABEL`]` = 1` (mock labels, Fly `config.metadata`,
//! Lambda tags; RunPod and Vast keep only the name). A plain `atlas spawn` is named
//! `atlas-{launch_id}` (or `{name}-{launch_id}`) and may not use the `atlas-session-`
//! namespace nor the label (the [`ComputeRequest`](crate::ComputeRequest) builder refuses
//! both), so it is never in the reaper's default scope: its decision is "keep: not a
//! session machine". A wider `prefix` (e.g. `atlas-`) is an explicit choice of the operator.
//!
//! # Rules, per provider and round
//! - The provider is listed in full. A failed (or partial: `list` is complete or `Err`)
//!   listing reaps **nothing** that round on that provider.
//! - A machine is terminated only when no stored session tracks it (by compute id or by
//!   launch name), its name starts with the configured prefix (default `atlas-session-`;
//!   an empty prefix is refused unless explicitly forced), and it is older than the grace
//!   window (default 10 min, so in-flight spawns are never raced). Anything else is kept,
//!   with the reason; a machine whose age is unknown is kept.
//! - A tracked session whose machine is no longer listed (and was recorded before the
//!   listing started) is marked terminated.
//! - A spawn intent (no compute id) older than the grace window and not in flight here
//!   is resolved by launch name: the machine is adopted when listed, the intent dropped
//!   when not. Younger (or in-flight) intents are left alone.
//! - Dry-run returns every decision with its reason and changes nothing.
//!
//! [`Reaper`] runs these rules against a store without an orchestrator (the `atlas reap`
//! command); a running [`Orchestrator`](super::Orchestrator) runs them on its interval
//! and on demand ([`Orchestrator::reap`](super::Orchestrator::reap)), applying the
//! effects to its live sessions too.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::session::{dur, validate_prefix, Session, DEFAULT_NAME_PREFIX};
use super::store::SessionStore;
use crate::error::{Error, Result};
use crate::provider::{Provider, ProviderExt};
use crate::spec::{Compute, ListFilter};
#[cfg(doc)]
use crate::spec::{SESSION_LABEL, SESSION_NAME_PREFIX};

/// Reaper settings.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReaperConfig {
    /// Time between rounds (default 60 s).
    pub interval: Duration,
    /// Only names starting with this are ever reaped (default `atlas-session-`, the
    /// session machines' namespace).
    pub prefix: String,
    /// Machines younger than this are never reaped (default 10 min).
    pub grace: Duration,
    /// Allow an empty prefix (reap every untracked machine of the account).
    pub force_empty_prefix: bool,
    /// Run rounds on the interval (on-demand rounds work either way).
    pub enabled: bool,
}

impl Default for ReaperConfig {
    fn default() -> ReaperConfig {
        ReaperConfig {
            interval: Duration::from_secs(60),
            prefix: DEFAULT_NAME_PREFIX.to_string(),
            grace: Duration::from_secs(600),
            force_empty_prefix: false,
            enabled: true,
        }
    }
}

impl ReaperConfig {
    /// Set the prefix.
    pub fn with_prefix(mut self, p: impl Into<String>) -> ReaperConfig {
        self.prefix = p.into();
        self
    }
    /// Set the grace window.
    pub fn with_grace(mut self, d: Duration) -> ReaperConfig {
        self.grace = d;
        self
    }
    /// Set the interval.
    pub fn with_interval(mut self, d: Duration) -> ReaperConfig {
        self.interval = d;
        self
    }
    /// Turn interval rounds on or off.
    pub fn with_enabled(mut self, on: bool) -> ReaperConfig {
        self.enabled = on;
        self
    }
    /// Allow (or not) an empty prefix.
    pub fn with_force_empty_prefix(mut self, on: bool) -> ReaperConfig {
        self.force_empty_prefix = on;
        self
    }

    /// Check the settings.
    ///
    /// # Errors
    /// `Validation` for an empty prefix (unless forced), a bad prefix, or a zero interval.
    pub fn validate(&self) -> Result<()> {
        if self.prefix.is_empty() {
            if !self.force_empty_prefix {
                return Err(Error::validation(
                    "reaper.prefix",
                    "is empty, which would reap every untracked machine of the account; set a prefix (default atlas-session-) or force_empty_prefix",
                ));
            }
        } else {
            validate_prefix(&self.prefix).map_err(|e| {
                let m = format!("reaper.{}", e.message());
                e.with_message(m)
            })?;
        }
        if self.interval.is_zero() {
            return Err(Error::validation(
                "reaper.interval",
                "must be greater than zero",
            ));
        }
        Ok(())
    }
}

/// Options of one round.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReapOptions {
    /// Decide and report, change nothing.
    pub dry_run: bool,
    /// Only this provider (default: every configured one).
    pub provider: Option<String>,
}

impl ReapOptions {
    /// A dry run.
    pub fn dry_run() -> ReapOptions {
        ReapOptions {
            dry_run: true,
            provider: None,
        }
    }
    /// Only `provider`.
    pub fn provider(mut self, provider: impl Into<String>) -> ReapOptions {
        self.provider = Some(provider.into());
        self
    }
}

/// What the reaper does (or, in a dry run, would do) with one item.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum ReapAction {
    /// Terminate an untracked machine.
    Terminate,
    /// Leave the machine alone.
    Keep,
    /// Mark a tracked session terminated: its machine is gone upstream.
    MarkTerminated,
    /// Adopt the machine of a dangling spawn intent.
    AdoptIntent,
    /// Drop a dangling spawn intent that has no machine.
    DropIntent,
    /// Do nothing on this provider this round (its listing failed).
    SkipProvider,
}

impl ReapAction {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            ReapAction::Terminate => "terminate",
            ReapAction::Keep => "keep",
            ReapAction::MarkTerminated => "mark_terminated",
            ReapAction::AdoptIntent => "adopt_intent",
            ReapAction::DropIntent => "drop_intent",
            ReapAction::SkipProvider => "skip_provider",
        }
    }
}

impl fmt::Display for ReapAction {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One decision with its reason.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReapDecision {
    /// Provider.
    pub provider: String,
    /// Compute id, when the decision is about a machine.
    pub compute_id: Option<String>,
    /// Resource name.
    pub name: Option<String>,
    /// Session id, when a session is involved.
    pub session_id: Option<String>,
    /// What.
    pub action: ReapAction,
    /// Why, in words.
    pub reason: String,
    /// Whether the action was carried out (`false` in a dry run, for `Keep`, or on failure).
    pub done: bool,
    /// The error when carrying it out failed.
    pub error: Option<String>,
}

impl ReapDecision {
    fn new(provider: &str, action: ReapAction, reason: String) -> ReapDecision {
        ReapDecision {
            provider: provider.to_string(),
            compute_id: None,
            name: None,
            session_id: None,
            action,
            reason,
            done: false,
            error: None,
        }
    }
    fn compute(mut self, c: &Compute) -> ReapDecision {
        self.compute_id = Some(c.id.clone());
        self.name = c.name.clone();
        self
    }
    fn session(mut self, s: &Session) -> ReapDecision {
        self.session_id = Some(s.id.clone());
        if self.name.is_none() {
            self.name = Some(s.name.clone());
        }
        if self.compute_id.is_none() {
            self.compute_id = s.compute_id.clone();
        }
        self
    }
}

/// The result of a round.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct ReapReport {
    /// Whether it was a dry run.
    pub dry_run: bool,
    /// Every decision, provider by provider.
    pub decisions: Vec<ReapDecision>,
}

impl ReapReport {
    /// Decisions with `action`.
    pub fn with_action(&self, action: ReapAction) -> impl Iterator<Item = &ReapDecision> {
        self.decisions.iter().filter(move |d| d.action == action)
    }
    /// The decision about compute `id`, if any.
    pub fn for_compute(&self, id: &str) -> Option<&ReapDecision> {
        self.decisions
            .iter()
            .find(|d| d.compute_id.as_deref() == Some(id))
    }
}

/// Decide, for one provider's full listing.
pub(crate) fn plan(
    provider: &str,
    listing: &[Compute],
    tracked: &[Session],
    in_flight: &HashSet<String>,
    cfg: &ReaperConfig,
    now: DateTime<Utc>,
    listed_at: DateTime<Utc>,
) -> Vec<(ReapDecision, Option<Session>, Option<Compute>)> {
    let mine: Vec<&Session> = tracked.iter().filter(|s| s.provider == provider).collect();
    let by_id: HashMap<&str, &Session> = mine
        .iter()
        .filter_map(|s| s.compute_id.as_deref().map(|id| (id, *s)))
        .collect();
    let by_name: HashMap<&str, &Session> = mine.iter().map(|s| (s.name.as_str(), *s)).collect();
    let listed_ids: HashSet<&str> = listing.iter().map(|c| c.id.as_str()).collect();
    let listed_names: HashSet<&str> = listing.iter().filter_map(|c| c.name.as_deref()).collect();
    let grace = dur(cfg.grace);
    let human = |d: chrono::Duration| {
        humantime::format_duration(Duration::from_secs(d.num_seconds().max(0) as u64)).to_string()
    };
    let mut out = Vec::new();
    for c in listing {
        let name = c.name.as_deref().unwrap_or("");
        if let Some(s) = by_id.get(c.id.as_str()) {
            let d = ReapDecision::new(
                provider,
                ReapAction::Keep,
                format!("tracked by session {}", s.id),
            );
            out.push((d.compute(c).session(s), None, None));
            continue;
        }
        if let Some(s) = by_name.get(name).filter(|s| s.compute_id.is_none()) {
            let d = if in_flight.contains(&s.id) || s.created_at + grace > now {
                ReapDecision::new(
                    provider,
                    ReapAction::Keep,
                    format!("spawn of session {} is in flight", s.id),
                )
            } else {
                ReapDecision::new(
                    provider,
                    ReapAction::AdoptIntent,
                    format!(
                        "dangling spawn intent of session {}; its machine was found by launch name",
                        s.id
                    ),
                )
            };
            let act = d.action;
            out.push((
                d.compute(c).session(s),
                Some((*s).clone()),
                (act == ReapAction::AdoptIntent).then(|| c.clone()),
            ));
            continue;
        }
        if !name.starts_with(cfg.prefix.as_str()) {
            let d = ReapDecision::new(
                provider,
                ReapAction::Keep,
                format!("not a session machine: untracked, and its name {name:?} does not start with the prefix {:?}", cfg.prefix),
            );
            out.push((d.compute(c), None, None));
            continue;
        }
        let d = match c.created_at {
            None => ReapDecision::new(
                provider,
                ReapAction::Keep,
                "untracked, but its creation time is unknown; not reaped".into(),
            ),
            Some(t) if now - t < grace => ReapDecision::new(
                provider,
                ReapAction::Keep,
                format!(
                    "untracked, but younger than the grace window (age {} < {})",
                    human(now - t),
                    human(grace)
                ),
            ),
            Some(t) => ReapDecision::new(
                provider,
                ReapAction::Terminate,
                format!(
                    "orphan: untracked, name starts with {:?}, age {} >= grace {}",
                    cfg.prefix,
                    human(now - t),
                    human(grace)
                ),
            ),
        };
        let act = d.action;
        out.push((
            d.compute(c),
            None,
            (act == ReapAction::Terminate).then(|| c.clone()),
        ));
    }
    for s in mine {
        match s.compute_id.as_deref() {
            // Recorded before the listing started, so the listing must have shown it.
            Some(id) if !listed_ids.contains(id) && s.spawned_at.is_some_and(|t| t < listed_at) => {
                let d = ReapDecision::new(
                    provider,
                    ReapAction::MarkTerminated,
                    format!("tracked machine {id} is no longer listed upstream"),
                );
                out.push((d.session(s), Some(s.clone()), None));
            }
            None if !listed_names.contains(s.name.as_str())
                && !in_flight.contains(&s.id)
                && s.created_at + grace <= now =>
            {
                let d = ReapDecision::new(
                    provider,
                    ReapAction::DropIntent,
                    format!(
                        "dangling spawn intent; no machine named {} upstream",
                        s.name
                    ),
                );
                out.push((d.session(s), Some(s.clone()), None));
            }
            _ => {}
        }
    }
    out
}

/// How a round's effects on sessions are applied (store only, or orchestrator + store).
#[async_trait]
pub(crate) trait Effects: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    fn in_flight(&self) -> HashSet<String>;
    async fn vanished(&self, s: &Session) -> Result<()>;
    async fn adopt(&self, s: &Session, c: &Compute) -> Result<()>;
    async fn drop_intent(&self, s: &Session) -> Result<()>;
    async fn listed(&self, provider: &str, listing: &[Compute]);
    fn orphan_terminated(&self, provider: &str, c: &Compute);
}

/// One round over `providers` with `effects`.
pub(crate) async fn round(
    store: &dyn SessionStore,
    providers: &BTreeMap<String, Arc<dyn Provider>>,
    cfg: &ReaperConfig,
    opts: &ReapOptions,
    effects: &dyn Effects,
) -> Result<ReapReport> {
    cfg.validate()?;
    if let Some(p) = &opts.provider {
        if !providers.contains_key(p) {
            return Err(Error::validation(
                "provider",
                format!(
                    "{p:?} is not configured here; configured: {}",
                    providers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let mut report = ReapReport {
        dry_run: opts.dry_run,
        decisions: Vec::new(),
    };
    for (name, p) in providers {
        if opts.provider.as_ref().is_some_and(|want| want != name) {
            continue;
        }
        let listed_at = effects.now();
        let listing = match p.list(&ListFilter::all()).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(provider = %name, error = %e, "reaper: listing failed; nothing reaped on this provider this round");
                let mut d = ReapDecision::new(
                    name,
                    ReapAction::SkipProvider,
                    "listing failed or was partial; nothing is reaped on this provider this round"
                        .into(),
                );
                d.error = Some(e.to_string());
                report.decisions.push(d);
                continue;
            }
        };
        // Sessions are read after the listing, so a spawn recorded in between is tracked.
        let tracked = store.list().await?;
        let now = effects.now();
        if !opts.dry_run {
            effects.listed(name, &listing).await;
        }
        for (mut d, s, c) in plan(
            name,
            &listing,
            &tracked,
            &effects.in_flight(),
            cfg,
            now,
            listed_at,
        ) {
            if !opts.dry_run {
                let res = match (d.action, s.as_ref(), c.as_ref()) {
                    (ReapAction::Terminate, _, Some(c)) => match p.terminate_if_exists(&c.id).await
                    {
                        Ok(_) => {
                            effects.orphan_terminated(name, c);
                            Ok(())
                        }
                        Err(e) => Err(e),
                    },
                    (ReapAction::MarkTerminated, Some(s), _) => effects.vanished(s).await,
                    (ReapAction::AdoptIntent, Some(s), Some(c)) => effects.adopt(s, c).await,
                    (ReapAction::DropIntent, Some(s), _) => effects.drop_intent(s).await,
                    _ => Ok(()),
                };
                match res {
                    Ok(()) => d.done = d.action != ReapAction::Keep,
                    Err(e) => d.error = Some(e.to_string()),
                }
            }
            report.decisions.push(d);
        }
    }
    Ok(report)
}

/// The reaper without an orchestrator: rules applied to a store (the `atlas reap` command).
///
/// Its effects go to the store only: a vanished session is finished, an intent adopted
/// (compute id recorded; the next orchestrator start tracks its timers) or dropped.
#[derive(Debug, Clone)]
pub struct Reaper {
    store: Arc<dyn SessionStore>,
    providers: BTreeMap<String, Arc<dyn Provider>>,
    config: ReaperConfig,
}

impl Reaper {
    /// A reaper over `store` with `config` and no providers yet.
    pub fn new(store: Arc<dyn SessionStore>, config: ReaperConfig) -> Reaper {
        Reaper {
            store,
            providers: BTreeMap::new(),
            config,
        }
    }

    /// Add a provider to reap.
    pub fn provider(mut self, p: Arc<dyn Provider>) -> Reaper {
        self.providers.insert(p.name().to_string(), p);
        self
    }

    /// Run one round.
    ///
    /// # Errors
    /// `Validation` for a bad config or an unknown provider; store errors. Provider
    /// failures are reported per decision, never as an error of the round.
    ///
    /// # Cost
    /// Terminates orphans (stops their billing), unless `dry_run`.
    pub async fn run(&self, opts: &ReapOptions) -> Result<ReapReport> {
        let fx = StoreEffects {
            store: self.store.as_ref(),
        };
        round(
            self.store.as_ref(),
            &self.providers,
            &self.config,
            opts,
            &fx,
        )
        .await
    }
}

struct StoreEffects<'a> {
    store: &'a dyn SessionStore,
}

#[async_trait]
impl Effects for StoreEffects<'_> {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
    fn in_flight(&self) -> HashSet<String> {
        HashSet::new()
    }
    async fn vanished(&self, s: &Session) -> Result<()> {
        self.store
            .finish(&s.id, s.accrued_usd(Utc::now()))
            .await
            .map(drop)
    }
    async fn adopt(&self, s: &Session, c: &Compute) -> Result<()> {
        let mut s = s.clone();
        s.adopt(c, Utc::now());
        self.store.update(&s).await
    }
    async fn drop_intent(&self, s: &Session) -> Result<()> {
        self.store.finish(&s.id, 0.0).await.map(drop)
    }
    async fn listed(&self, _provider: &str, _listing: &[Compute]) {}
    fn orphan_terminated(&self, provider: &str, c: &Compute) {
        metrics::counter!("atlas_reaped_orphans_total", "provider" => provider.to_string())
            .increment(1);
        tracing::info!(provider, compute.id = %c.id, "reaper: terminated orphan");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::orchestrator::session::SessionRequest;
    use crate::spec::{ComputeRequest, ComputeStatus};

    fn machine(id: &str, name: &str, age_min: i64, now: DateTime<Utc>) -> Compute {
        let mut c = Compute::new(id, "mock", ComputeStatus::Running);
        c.name = Some(name.into());
        c.created_at = Some(now - chrono::Duration::minutes(age_min));
        c
    }

    #[test]
    fn rules() {
        let now = Utc::now();
        let req = SessionRequest::new(
            "mock",
            "u",
            ComputeRequest::builder().image("i").build().unwrap(),
        );
        let c = req.compute_request(None).unwrap();
        let mut tracked = Session::intent(
            "s1".into(),
            &req,
            &c,
            Duration::from_secs(60),
            Duration::from_secs(60),
            now - chrono::Duration::hours(1),
        );
        tracked.adopt(
            &machine("m-tracked", &tracked.name, 60, now),
            now - chrono::Duration::hours(1),
        );
        let mut gone = tracked.clone();
        gone.id = "s2".into();
        gone.name = "atlas-gone".into();
        gone.compute_id = Some("m-gone".into());
        let listing = vec![
            machine("m-tracked", &tracked.name, 60, now),
            machine("m-orphan", "atlas-old", 30, now),
            machine("m-young", "atlas-new", 2, now),
            machine("m-foreign", "prod-db", 300, now),
        ];
        let cfg = ReaperConfig::default();
        let d = plan(
            "mock",
            &listing,
            &[tracked, gone],
            &HashSet::new(),
            &cfg,
            now,
            now,
        );
        let act = |id: &str| {
            d.iter()
                .find(|x| x.0.compute_id.as_deref() == Some(id))
                .map(|x| x.0.action)
        };
        assert_eq!(act("m-tracked"), Some(ReapAction::Keep));
        assert_eq!(act("m-orphan"), Some(ReapAction::Terminate));
        assert_eq!(act("m-young"), Some(ReapAction::Keep));
        assert_eq!(act("m-foreign"), Some(ReapAction::Keep));
        assert_eq!(act("m-gone"), Some(ReapAction::MarkTerminated));
    }

    #[test]
    fn empty_prefix_needs_force() {
        assert!(ReaperConfig::default().with_prefix("").validate().is_err());
        ReaperConfig::default()
            .with_prefix("")
            .with_force_empty_prefix(true)
            .validate()
            .unwrap();
        assert!(ReaperConfig::default()
            .with_prefix("Bad")
            .validate()
            .is_err());
    }
}
