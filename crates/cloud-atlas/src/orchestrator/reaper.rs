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

use super::ownership::held_elsewhere;
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
                format!("tracked by session {}{}", s.id, owned_by(s)),
            );
            out.push((d.compute(c).session(s), None, None));
            continue;
        }
        if let Some(s) = by_name.get(name).filter(|s| s.compute_id.is_none()) {
            let d = if in_flight.contains(&s.id) || s.created_at + grace > now {
                ReapDecision::new(
                    provider,
                    ReapAction::Keep,
                    format!("spawn of session {} is in flight{}", s.id, owned_by(s)),
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
            Some(id)
                if !listed_ids.contains(id)
                    && s.spawned_at.is_some_and(|t| t < listed_at)
                    && !in_flight.contains(&s.id) =>
            {
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

/// `, owner NODE` for a record that names its owner (what `--dry-run` shows).
fn owned_by(s: &Session) -> String {
    s.owner
        .as_deref()
        .map_or_else(String::new, |o| format!(", owner {o}"))
}

/// How a round's effects on sessions are applied (store only, or orchestrator + store).
#[async_trait]
pub(crate) trait Effects: Send + Sync {
    fn now(&self) -> DateTime<Utc>;
    /// This node's id, when the round runs in an orchestrator (its records are its own).
    fn node(&self) -> Option<&str>;
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
        let leases = store.owners().await?;
        let now = effects.now();
        // Hands off: spawns in flight here, records another live node holds, damaged ones.
        let mut hands_off = effects.in_flight();
        hands_off.extend(
            tracked
                .iter()
                .filter(|s| {
                    s.damaged.is_some()
                        || held_elsewhere(s.owner.as_deref(), &leases, effects.node(), now)
                })
                .map(|s| s.id.clone()),
        );
        if !opts.dry_run {
            effects.listed(name, &listing).await;
        }
        for (mut d, s, c) in plan(name, &listing, &tracked, &hands_off, cfg, now, listed_at) {
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
    fn node(&self) -> Option<&str> {
        None
    }
    fn in_flight(&self) -> HashSet<String> {
        HashSet::new()
    }
    async fn vanished(&self, s: &Session) -> Result<()> {
        self.store
            .finish(&s.id, s.spent_usd(Utc::now()))
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
    //! Every decision of [`plan`] and every effect of [`round`], with their boundaries:
    //! these are what keep a wrong decision from passing unnoticed (mutation testing).
    use std::sync::Mutex;

    use super::*;
    use crate::orchestrator::session::SessionRequest;
    use crate::orchestrator::store::MemorySessionStore;
    use crate::providers::mock::{Fault, Mock, MockOp};
    use crate::spec::{ComputeRequest, ComputeStatus};
    use crate::ErrorKind;

    const MS: i64 = 1;

    fn t0() -> DateTime<Utc> {
        DateTime::parse_from_rfc3339("2026-06-01T12:00:00Z")
            .unwrap()
            .with_timezone(&Utc)
    }

    fn ago(ms: i64) -> DateTime<Utc> {
        t0() - chrono::Duration::milliseconds(ms)
    }

    const GRACE_MS: i64 = 600_000;

    fn machine(id: &str, name: &str, age_ms: i64) -> Compute {
        let mut c = Compute::new(id, "mock", ComputeStatus::Running);
        c.name = Some(name.into());
        c.created_at = Some(ago(age_ms));
        c
    }

    /// A spawn intent written `age_ms` ago (no compute id yet).
    fn intent(id: &str, provider: &str, age_ms: i64) -> Session {
        let req = SessionRequest::new(
            provider,
            "u",
            ComputeRequest::builder().image("i").build().unwrap(),
        );
        let c = req.compute_request(None).unwrap();
        Session::intent(
            id.into(),
            &req,
            &c,
            Duration::from_secs(60),
            Duration::from_secs(60),
            ago(age_ms),
        )
    }

    /// A session whose machine `cid` was recorded `age_ms` ago.
    fn tracked(id: &str, cid: &str, age_ms: i64) -> Session {
        let mut s = intent(id, "mock", age_ms);
        s.adopt(&machine(cid, &s.name.clone(), age_ms), ago(age_ms));
        s
    }

    fn decide(
        listing: &[Compute],
        sessions: &[Session],
        in_flight: &[&str],
    ) -> Vec<(ReapDecision, Option<Session>, Option<Compute>)> {
        let fl: HashSet<String> = in_flight.iter().map(|s| s.to_string()).collect();
        plan(
            "mock",
            listing,
            sessions,
            &fl,
            &ReaperConfig::default(),
            t0(),
            t0(),
        )
    }

    fn about_machine<'a>(
        d: &'a [(ReapDecision, Option<Session>, Option<Compute>)],
        cid: &str,
    ) -> &'a (ReapDecision, Option<Session>, Option<Compute>) {
        let all: Vec<_> = d
            .iter()
            .filter(|x| x.0.compute_id.as_deref() == Some(cid))
            .collect();
        assert_eq!(all.len(), 1, "one decision about {cid}: {d:#?}");
        all[0]
    }

    fn about_session<'a>(
        d: &'a [(ReapDecision, Option<Session>, Option<Compute>)],
        sid: &str,
    ) -> Vec<&'a (ReapDecision, Option<Session>, Option<Compute>)> {
        d.iter()
            .filter(|x| x.0.session_id.as_deref() == Some(sid))
            .collect()
    }

    #[test]
    fn a_tracked_machine_is_kept_whatever_its_name_and_age() {
        let s = tracked("s1", "m1", 10 * GRACE_MS);
        // Even a name outside the prefix and an unknown age: tracking wins.
        let mut m = machine("m1", "renamed", 10 * GRACE_MS);
        m.created_at = None;
        let d = decide(&[m], &[s], &[]);
        assert_eq!(d.len(), 1, "{d:#?}");
        let (x, sess, c) = &d[0];
        assert_eq!(x.action, ReapAction::Keep);
        assert_eq!(x.reason, "tracked by session s1");
        assert_eq!(x.session_id.as_deref(), Some("s1"));
        assert_eq!(x.name.as_deref(), Some("renamed"), "the machine's own name");
        assert!(sess.is_none() && c.is_none());
    }

    #[test]
    fn untracked_session_machines_are_terminated_from_the_grace_boundary_on() {
        let at = machine("m-at", "atlas-session-a-1", GRACE_MS);
        let before = machine("m-before", "atlas-session-b-1", GRACE_MS - MS);
        let old = machine("m-old", "atlas-session-c-1", 30 * 60_000);
        let d = decide(&[at, before, old], &[], &[]);
        let (x, s, c) = about_machine(&d, "m-at");
        assert_eq!(x.action, ReapAction::Terminate, "age == grace is reaped");
        assert_eq!(c.as_ref().map(|c| c.id.as_str()), Some("m-at"));
        assert!(s.is_none());
        assert_eq!(
            x.reason,
            "orphan: untracked, name starts with \"atlas-session-\", age 10m >= grace 10m"
        );
        let (x, _, c) = about_machine(&d, "m-before");
        assert_eq!(
            x.action,
            ReapAction::Keep,
            "1 ms younger than grace is kept"
        );
        assert!(c.is_none());
        assert_eq!(
            x.reason,
            "untracked, but younger than the grace window (age 9m 59s < 10m)"
        );
        let (x, _, _) = about_machine(&d, "m-old");
        assert_eq!(x.action, ReapAction::Terminate);
        assert!(x.reason.contains("age 30m >= grace 10m"), "{}", x.reason);
        assert_eq!(d.len(), 3);
    }

    #[test]
    fn a_machine_from_the_future_is_young() {
        // Clock skew: created "after" now. Kept, and the age reads 0s, not a panic.
        let d = decide(&[machine("m", "atlas-session-x-1", -60_000)], &[], &[]);
        let (x, _, _) = about_machine(&d, "m");
        assert_eq!(x.action, ReapAction::Keep);
        assert!(x.reason.contains("age 0s < 10m"), "{}", x.reason);
    }

    #[test]
    fn plain_spawns_and_foreign_machines_are_not_session_machines() {
        let plain = machine("m-plain", "atlas-0123456789ab", 100 * GRACE_MS);
        let foreign = machine("m-foreign", "prod-db", 100 * GRACE_MS);
        let mut unnamed = machine("m-unnamed", "", 100 * GRACE_MS);
        unnamed.name = None;
        let d = decide(&[plain, foreign, unnamed], &[], &[]);
        for id in ["m-plain", "m-foreign", "m-unnamed"] {
            let (x, s, c) = about_machine(&d, id);
            assert_eq!(x.action, ReapAction::Keep, "{id}");
            assert!(
                x.reason.starts_with("not a session machine"),
                "{id}: {}",
                x.reason
            );
            assert!(s.is_none() && c.is_none());
        }
        let (x, _, _) = about_machine(&d, "m-plain");
        assert_eq!(
            x.reason,
            "not a session machine: untracked, and its name \"atlas-0123456789ab\" does not start with the prefix \"atlas-session-\""
        );
    }

    #[test]
    fn an_explicit_wider_prefix_reaches_plain_spawns() {
        let cfg = ReaperConfig::default().with_prefix("atlas-");
        let d = plan(
            "mock",
            &[machine("m-plain", "atlas-0123456789ab", GRACE_MS)],
            &[],
            &HashSet::new(),
            &cfg,
            t0(),
            t0(),
        );
        assert_eq!(d[0].0.action, ReapAction::Terminate);
        // The grace window comes from the config, not a constant.
        let cfg = ReaperConfig::default().with_grace(Duration::from_millis(GRACE_MS as u64 + 1));
        let d = plan(
            "mock",
            &[machine("m-plain", "atlas-session-x-1", GRACE_MS)],
            &[],
            &HashSet::new(),
            &cfg,
            t0(),
            t0(),
        );
        assert_eq!(d[0].0.action, ReapAction::Keep);
    }

    #[test]
    fn unknown_age_is_never_reaped() {
        let mut m = machine("m", "atlas-session-x-1", 0);
        m.created_at = None;
        let d = decide(&[m], &[], &[]);
        let (x, _, c) = about_machine(&d, "m");
        assert_eq!(x.action, ReapAction::Keep);
        assert_eq!(
            x.reason,
            "untracked, but its creation time is unknown; not reaped"
        );
        assert!(c.is_none());
    }

    #[test]
    fn a_dangling_intent_is_adopted_from_the_grace_boundary_on() {
        let at = intent("s-at", "mock", GRACE_MS);
        let before = intent("s-before", "mock", GRACE_MS - MS);
        let listing = vec![
            machine("m-at", &at.name, GRACE_MS),
            machine("m-before", &before.name, GRACE_MS),
        ];
        let d = decide(&listing, &[at.clone(), before.clone()], &[]);
        assert_eq!(
            d.len(),
            2,
            "no drop for an intent whose machine is listed: {d:#?}"
        );
        let (x, s, c) = about_machine(&d, "m-at");
        assert_eq!(x.action, ReapAction::AdoptIntent);
        assert_eq!(x.session_id.as_deref(), Some("s-at"));
        assert_eq!(s.as_ref().map(|s| s.id.as_str()), Some("s-at"));
        assert_eq!(
            c.as_ref().map(|c| c.id.as_str()),
            Some("m-at"),
            "the machine to adopt"
        );
        assert!(x.reason.contains("found by launch name"), "{}", x.reason);
        let (x, s, c) = about_machine(&d, "m-before");
        assert_eq!(x.action, ReapAction::Keep);
        assert_eq!(x.reason, "spawn of session s-before is in flight");
        assert!(s.is_some(), "the session rides along");
        assert!(c.is_none(), "nothing to adopt");
    }

    #[test]
    fn an_in_flight_intent_is_never_adopted_nor_dropped_however_old() {
        let listed = intent("s-listed", "mock", 100 * GRACE_MS);
        let unlisted = intent("s-unlisted", "mock", 100 * GRACE_MS);
        let listing = vec![machine("m", &listed.name, 100 * GRACE_MS)];
        let d = decide(&listing, &[listed, unlisted], &["s-listed", "s-unlisted"]);
        let (x, _, c) = about_machine(&d, "m");
        assert_eq!(x.action, ReapAction::Keep);
        assert!(c.is_none());
        assert!(about_session(&d, "s-unlisted").is_empty(), "{d:#?}");
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn a_dangling_intent_with_no_machine_is_dropped_from_the_grace_boundary_on() {
        let at = intent("s-at", "mock", GRACE_MS);
        let before = intent("s-before", "mock", GRACE_MS - MS);
        let d = decide(&[], &[at, before], &[]);
        let x = about_session(&d, "s-at");
        assert_eq!(x.len(), 1);
        let (x, s, c) = x[0];
        assert_eq!(x.action, ReapAction::DropIntent);
        assert!(x.compute_id.is_none());
        assert!(x.name.as_deref().unwrap().starts_with("atlas-session-"));
        assert!(
            x.reason
                .starts_with("dangling spawn intent; no machine named atlas-session-"),
            "{}",
            x.reason
        );
        assert_eq!(s.as_ref().map(|s| s.id.as_str()), Some("s-at"));
        assert!(c.is_none());
        assert!(
            about_session(&d, "s-before").is_empty(),
            "a young intent is left to its spawn: {d:#?}"
        );
        assert_eq!(d.len(), 1);
    }

    #[test]
    fn a_name_match_counts_only_for_intents() {
        // A machine named like a session that already has its own machine is a duplicate
        // (e.g. a second create): untracked, in the namespace, old → terminated.
        let s = tracked("s1", "m1", 100 * GRACE_MS);
        let listing = vec![
            machine("m1", &s.name, 100 * GRACE_MS),
            machine("m-dup", &s.name, 100 * GRACE_MS),
        ];
        let d = decide(&listing, &[s], &[]);
        assert_eq!(about_machine(&d, "m1").0.action, ReapAction::Keep);
        let (x, _, c) = about_machine(&d, "m-dup");
        assert_eq!(x.action, ReapAction::Terminate);
        assert!(x.session_id.is_none());
        assert_eq!(c.as_ref().map(|c| c.id.as_str()), Some("m-dup"));
    }

    #[test]
    fn a_vanished_machine_is_marked_only_if_recorded_before_the_listing() {
        let before = tracked("s-before", "m-before", GRACE_MS);
        let mut at = tracked("s-at", "m-at", GRACE_MS);
        at.spawned_at = Some(t0());
        let mut after = tracked("s-after", "m-after", GRACE_MS);
        after.spawned_at = Some(t0() + chrono::Duration::milliseconds(MS));
        let mut never = tracked("s-never", "m-never", GRACE_MS);
        never.spawned_at = None;
        let listed = tracked("s-listed", "m-listed", GRACE_MS);
        let listing = vec![machine("m-listed", &listed.name, GRACE_MS)];
        let d = decide(&listing, &[before, at, after, never, listed], &[]);
        let x = about_session(&d, "s-before");
        assert_eq!(x.len(), 1);
        let (x, s, c) = x[0];
        assert_eq!(x.action, ReapAction::MarkTerminated);
        assert_eq!(
            x.compute_id.as_deref(),
            Some("m-before"),
            "from the session"
        );
        assert!(x.name.as_deref().unwrap().starts_with("atlas-session-"));
        assert_eq!(
            x.reason,
            "tracked machine m-before is no longer listed upstream"
        );
        assert_eq!(s.as_ref().map(|s| s.id.as_str()), Some("s-before"));
        assert!(c.is_none());
        for sid in ["s-at", "s-after", "s-never"] {
            assert!(about_session(&d, sid).is_empty(), "{sid}: {d:#?}");
        }
        let x = about_session(&d, "s-listed");
        assert_eq!(x.len(), 1);
        assert_eq!(x[0].0.action, ReapAction::Keep);
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn sessions_of_other_providers_are_out_of_scope() {
        let mut other = tracked("s-other", "m-shared-id", 100 * GRACE_MS);
        other.provider = "runpod".into();
        let other_intent = intent("s-oi", "runpod", 100 * GRACE_MS);
        let listing = vec![machine("m-shared-id", "atlas-session-z-1", 100 * GRACE_MS)];
        let d = decide(&listing, &[other, other_intent.clone()], &[]);
        assert_eq!(
            d.len(),
            1,
            "no mark/drop for another provider's sessions: {d:#?}"
        );
        assert_eq!(
            about_machine(&d, "m-shared-id").0.action,
            ReapAction::Terminate,
            "an id tracked on another provider does not track this machine"
        );
        // Nor does another provider's intent claim this provider's machine by name.
        let listing = vec![machine("m", &other_intent.name, 100 * GRACE_MS)];
        let d = decide(&listing, &[other_intent], &[]);
        assert_eq!(d.len(), 1);
        assert_eq!(about_machine(&d, "m").0.action, ReapAction::Terminate);
    }

    #[test]
    fn config_is_validated() {
        assert!(ReaperConfig::default().with_prefix("").validate().is_err());
        ReaperConfig::default()
            .with_prefix("")
            .with_force_empty_prefix(true)
            .validate()
            .unwrap();
        let e = ReaperConfig::default()
            .with_prefix("Bad")
            .validate()
            .unwrap_err();
        assert!(e.message().starts_with("reaper.name_prefix"), "{e}");
        let e = ReaperConfig::default()
            .with_interval(Duration::ZERO)
            .validate()
            .unwrap_err();
        assert!(e.message().starts_with("reaper.interval"), "{e}");
        ReaperConfig::default()
            .with_interval(Duration::from_millis(1))
            .validate()
            .unwrap();
        let c = ReaperConfig::default()
            .with_prefix("")
            .with_force_empty_prefix(true)
            .with_grace(Duration::from_secs(7))
            .with_interval(Duration::from_secs(9))
            .with_enabled(false);
        assert_eq!(
            (
                c.prefix.as_str(),
                c.force_empty_prefix,
                c.grace,
                c.interval,
                c.enabled
            ),
            (
                "",
                true,
                Duration::from_secs(7),
                Duration::from_secs(9),
                false
            )
        );
        let c = ReaperConfig::default();
        assert_eq!(c.prefix, "atlas-session-");
        assert_eq!(c.grace, Duration::from_secs(600));
        assert_eq!(c.interval, Duration::from_secs(60));
        assert!(c.enabled && !c.force_empty_prefix);
        assert!(!c.clone().with_enabled(false).enabled);
    }

    #[test]
    fn action_names() {
        let names: Vec<String> = [
            ReapAction::Terminate,
            ReapAction::Keep,
            ReapAction::MarkTerminated,
            ReapAction::AdoptIntent,
            ReapAction::DropIntent,
            ReapAction::SkipProvider,
        ]
        .iter()
        .map(|a| {
            assert_eq!(
                serde_json::to_value(a).unwrap().as_str(),
                Some(a.as_str()),
                "Display and JSON agree"
            );
            a.to_string()
        })
        .collect();
        assert_eq!(
            names,
            [
                "terminate",
                "keep",
                "mark_terminated",
                "adopt_intent",
                "drop_intent",
                "skip_provider"
            ]
        );
        let o = ReapOptions::dry_run().provider("mock");
        assert!(o.dry_run);
        assert_eq!(o.provider.as_deref(), Some("mock"));
        assert!(!ReapOptions::default().dry_run);
    }

    /// Effects that record what a round asked for; `fail` makes every session effect fail.
    #[derive(Default)]
    struct Record {
        calls: Mutex<Vec<String>>,
        in_flight: HashSet<String>,
        fail: bool,
    }

    impl Record {
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
        fn push(&self, c: String) -> Result<()> {
            self.calls.lock().unwrap().push(c);
            if self.fail {
                Err(Error::new(ErrorKind::Unknown, "store down"))
            } else {
                Ok(())
            }
        }
    }

    #[async_trait]
    impl Effects for Record {
        fn now(&self) -> DateTime<Utc> {
            Utc::now()
        }
        fn node(&self) -> Option<&str> {
            Some("me")
        }
        fn in_flight(&self) -> HashSet<String> {
            self.in_flight.clone()
        }
        async fn vanished(&self, s: &Session) -> Result<()> {
            self.push(format!("vanished {}", s.id))
        }
        async fn adopt(&self, s: &Session, c: &Compute) -> Result<()> {
            self.push(format!("adopt {} {}", s.id, c.id))
        }
        async fn drop_intent(&self, s: &Session) -> Result<()> {
            self.push(format!("drop {}", s.id))
        }
        async fn listed(&self, provider: &str, listing: &[Compute]) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("listed {provider} {}", listing.len()));
        }
        fn orphan_terminated(&self, provider: &str, c: &Compute) {
            self.calls
                .lock()
                .unwrap()
                .push(format!("orphan {provider} {}", c.id));
        }
    }

    /// The mock under another name, to reap two providers in one round.
    #[derive(Debug)]
    struct Renamed(&'static str, Mock);

    #[async_trait]
    impl Provider for Renamed {
        fn name(&self) -> &str {
            self.0
        }
        fn capabilities(&self) -> crate::spec::Capabilities {
            self.1.capabilities()
        }
        async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
            self.1.spawn(req).await
        }
        async fn get(&self, id: &str) -> Result<Compute> {
            self.1.get(id).await
        }
        async fn list(&self, f: &ListFilter) -> Result<Vec<Compute>> {
            self.1.list(f).await
        }
        async fn stop(&self, id: &str) -> Result<()> {
            self.1.stop(id).await
        }
        async fn start(&self, id: &str) -> Result<()> {
            self.1.start(id).await
        }
        async fn terminate(&self, id: &str) -> Result<()> {
            self.1.terminate(id).await
        }
        async fn gpu_types(&self) -> Result<Vec<crate::spec::GpuType>> {
            self.1.gpu_types().await
        }
    }

    /// A store with a pending intent `s-i` (old), a live session `s-gone` whose machine
    /// is gone, and a mock with an old orphan, a young orphan, a plain spawn and the
    /// intent's machine.
    struct World {
        store: Arc<MemorySessionStore>,
        mock: Mock,
        orphan: String,
        intent_machine: String,
    }

    async fn world() -> World {
        let mock = Mock::in_memory();
        let store = Arc::new(MemorySessionStore::new());
        let orphan = mock
            .seed("atlas-session-orphan-1", None, Duration::from_secs(3600))
            .unwrap()
            .id;
        mock.seed("atlas-session-young-1", None, Duration::from_secs(60))
            .unwrap();
        mock.seed("atlas-0123456789ab", None, Duration::from_secs(3600))
            .unwrap();
        let mut i = intent("s-i", "mock", 0);
        i.created_at = Utc::now() - chrono::Duration::hours(1);
        let intent_machine = mock
            .seed(&i.name, None, Duration::from_secs(3600))
            .unwrap()
            .id;
        store.insert(&i).await.unwrap();
        let mut gone = tracked("s-gone", "m-gone", 0);
        gone.spawned_at = Some(Utc::now() - chrono::Duration::hours(1));
        gone.created_at = Utc::now() - chrono::Duration::hours(1);
        store.insert(&gone).await.unwrap();
        World {
            store,
            mock,
            orphan,
            intent_machine,
        }
    }

    fn providers(m: &Mock) -> BTreeMap<String, Arc<dyn Provider>> {
        let mut p: BTreeMap<String, Arc<dyn Provider>> = BTreeMap::new();
        p.insert("mock".into(), Arc::new(m.clone()));
        p
    }

    /// Issue 12, defect 1: a round never acts on a record another live node holds, nor on
    /// a damaged one; once the holder's lease has ended the same records are acted on.
    #[tokio::test]
    async fn records_held_by_a_live_node_or_damaged_are_left_alone() {
        let w = world().await;
        // Both session records of the world belong to node "other".
        for id in ["s-i", "s-gone"] {
            assert!(w.store.claim(id, None, "other").await.unwrap());
        }
        let mut broken = tracked("s-broken", "m-broken", 3_600_000);
        broken.created_at = Utc::now() - chrono::Duration::hours(1);
        broken.spawned_at = broken.created_at.into();
        broken.damaged = Some("idle_ttl out of range".into());
        w.store.insert(&broken).await.unwrap();
        let (ps, cfg, opts) = (
            providers(&w.mock),
            ReaperConfig::default(),
            ReapOptions::default(),
        );
        let run = |fx| round(w.store.as_ref(), &ps, &cfg, &opts, fx);
        let later = Utc::now() + chrono::Duration::hours(1);
        w.store.renew_owner("other", later).await.unwrap();
        let fx = Record::default();
        let r = run(&fx as &dyn Effects).await.unwrap();
        let calls = fx.calls();
        assert!(
            !calls
                .iter()
                .any(|c| c.contains("s-i") || c.contains("s-gone") || c.contains("s-broken")),
            "acted on held or damaged records: {calls:?}"
        );
        let intent = r.for_compute(&w.intent_machine).unwrap();
        assert_eq!(intent.action, ReapAction::Keep, "{intent:?}");
        assert!(
            intent.reason.ends_with(", owner other"),
            "{}",
            intent.reason
        );
        // The same node is "me" for an orchestrator whose node id it is: not held.
        assert!(!held_elsewhere(
            Some("me"),
            &BTreeMap::from([("me".to_string(), later)]),
            Some("me"),
            Utc::now()
        ));
        // The holder's lease ends: the old intent is adopted, the vanished session marked.
        w.store
            .renew_owner("other", Utc::now() - chrono::Duration::seconds(1))
            .await
            .unwrap();
        let fx = Record::default();
        run(&fx as &dyn Effects).await.unwrap();
        let calls = fx.calls();
        assert!(
            calls.contains(&format!("adopt s-i {}", w.intent_machine)),
            "{calls:?}"
        );
        assert!(calls.contains(&"vanished s-gone".to_string()), "{calls:?}");
        assert!(!calls.iter().any(|c| c.contains("s-broken")), "{calls:?}");
    }

    #[tokio::test]
    async fn a_dry_run_changes_nothing_and_calls_no_effect() {
        let w = world().await;
        let fx = Record::default();
        let r = round(
            w.store.as_ref(),
            &providers(&w.mock),
            &ReaperConfig::default(),
            &ReapOptions::dry_run(),
            &fx,
        )
        .await
        .unwrap();
        assert!(r.dry_run);
        assert!(fx.calls().is_empty(), "{:?}", fx.calls());
        assert!(r.decisions.iter().all(|d| !d.done && d.error.is_none()));
        assert_eq!(
            r.for_compute(&w.orphan).unwrap().action,
            ReapAction::Terminate
        );
        assert_eq!(w.mock.live_count().unwrap(), 4);
        assert_eq!(w.store.list().await.unwrap().len(), 2);
    }

    #[tokio::test]
    async fn a_round_carries_out_each_decision_and_marks_it_done() {
        let w = world().await;
        let fx = Record::default();
        let r = round(
            w.store.as_ref(),
            &providers(&w.mock),
            &ReaperConfig::default(),
            &ReapOptions::default(),
            &fx,
        )
        .await
        .unwrap();
        assert!(!r.dry_run);
        let mut calls = fx.calls();
        calls.sort();
        assert_eq!(
            calls,
            [
                format!("adopt s-i {}", w.intent_machine),
                "listed mock 4".to_string(),
                format!("orphan mock {}", w.orphan),
                "vanished s-gone".to_string(),
            ]
        );
        assert_eq!(
            w.mock.get(&w.orphan).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        assert_eq!(w.mock.live_count().unwrap(), 3);
        for d in &r.decisions {
            assert_eq!(d.done, d.action != ReapAction::Keep, "{d:?}");
            assert!(d.error.is_none());
        }
        assert_eq!(r.with_action(ReapAction::Keep).count(), 2);
        assert_eq!(r.decisions.len(), 5);
    }

    #[tokio::test]
    async fn failed_effects_are_reported_not_done() {
        let w = world().await;
        let fx = Record {
            fail: true,
            ..Record::default()
        };
        let r = round(
            w.store.as_ref(),
            &providers(&w.mock),
            &ReaperConfig::default(),
            &ReapOptions::default(),
            &fx,
        )
        .await
        .unwrap();
        for a in [ReapAction::AdoptIntent, ReapAction::MarkTerminated] {
            let d = r.with_action(a).next().unwrap();
            assert!(!d.done, "{d:?}");
            assert!(d.error.as_deref().unwrap().contains("store down"), "{d:?}");
        }
        // A terminate the provider refuses is reported, and not counted as reaped.
        w.mock.clear_faults();
        let orphan2 = w
            .mock
            .seed("atlas-session-orphan-2", None, Duration::from_secs(3600))
            .unwrap()
            .id;
        w.mock.inject(MockOp::Terminate, Fault::Unavailable, 1);
        let fx = Record::default();
        let r = round(
            w.store.as_ref(),
            &providers(&w.mock),
            &ReaperConfig::default(),
            &ReapOptions::default(),
            &fx,
        )
        .await
        .unwrap();
        let d = r.for_compute(&orphan2).unwrap();
        assert_eq!(d.action, ReapAction::Terminate);
        assert!(!d.done);
        assert!(d.error.as_deref().unwrap().contains("unavailable"), "{d:?}");
        assert!(
            !fx.calls().iter().any(|c| c.starts_with("orphan")),
            "{:?}",
            fx.calls()
        );
    }

    #[tokio::test]
    async fn a_failed_listing_reaps_nothing_on_that_provider_only() {
        let w = world().await;
        let other = Mock::in_memory();
        let other_orphan = other
            .seed("atlas-session-o-1", None, Duration::from_secs(3600))
            .unwrap()
            .id;
        let mut ps = providers(&w.mock);
        ps.insert("other".into(), Arc::new(Renamed("other", other.clone())));
        w.mock.inject(MockOp::List, Fault::Unavailable, 1);
        let fx = Record::default();
        let r = round(
            w.store.as_ref(),
            &ps,
            &ReaperConfig::default(),
            &ReapOptions::default(),
            &fx,
        )
        .await
        .unwrap();
        let skipped: Vec<&ReapDecision> = r.with_action(ReapAction::SkipProvider).collect();
        assert_eq!(skipped.len(), 1);
        assert_eq!(skipped[0].provider, "mock");
        assert!(!skipped[0].done);
        assert!(skipped[0].error.as_deref().unwrap().contains("unavailable"));
        assert!(r
            .decisions
            .iter()
            .all(|d| d.provider == "other" || d.action == ReapAction::SkipProvider));
        assert_eq!(w.mock.live_count().unwrap(), 4, "nothing reaped on mock");
        assert_eq!(w.store.list().await.unwrap().len(), 2);
        assert!(r.for_compute(&other_orphan).unwrap().done);
        assert_eq!(other.live_count().unwrap(), 0);
        assert_eq!(
            fx.calls(),
            [
                "listed other 1".to_string(),
                format!("orphan other {other_orphan}")
            ]
        );
    }

    #[tokio::test]
    async fn one_provider_only_and_unknown_providers_refused() {
        let w = world().await;
        let other = Mock::in_memory();
        let keep = other
            .seed("atlas-session-o-1", None, Duration::from_secs(3600))
            .unwrap()
            .id;
        let mut ps = providers(&w.mock);
        ps.insert("other".into(), Arc::new(Renamed("other", other.clone())));
        let fx = Record::default();
        let r = round(
            w.store.as_ref(),
            &ps,
            &ReaperConfig::default(),
            &ReapOptions::default().provider("mock"),
            &fx,
        )
        .await
        .unwrap();
        assert!(r.decisions.iter().all(|d| d.provider == "mock"));
        assert!(r.for_compute(&keep).is_none());
        other.get(&keep).await.unwrap();
        let e = round(
            w.store.as_ref(),
            &ps,
            &ReaperConfig::default(),
            &ReapOptions::default().provider("nope"),
            &fx,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("mock, other"), "{e}");
        let e = round(
            w.store.as_ref(),
            &ps,
            &ReaperConfig::default().with_prefix(""),
            &ReapOptions::default(),
            &fx,
        )
        .await
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        other.get(&keep).await.unwrap();
    }

    #[tokio::test]
    async fn in_flight_intents_come_from_the_effects() {
        let w = world().await;
        let fx = Record {
            in_flight: ["s-i".to_string()].into(),
            ..Record::default()
        };
        let r = round(
            w.store.as_ref(),
            &providers(&w.mock),
            &ReaperConfig::default(),
            &ReapOptions::default(),
            &fx,
        )
        .await
        .unwrap();
        let d = r.for_compute(&w.intent_machine).unwrap();
        assert_eq!(d.action, ReapAction::Keep);
        assert!(!fx.calls().iter().any(|c| c.starts_with("adopt")));
    }

    #[tokio::test]
    async fn the_standalone_reaper_applies_effects_to_the_store() {
        let w = world().await;
        let mut dropped = intent("s-drop", "mock", 0);
        dropped.created_at = Utc::now() - chrono::Duration::hours(1);
        w.store.insert(&dropped).await.unwrap();
        let store: Arc<dyn SessionStore> = Arc::clone(&w.store) as Arc<dyn SessionStore>;
        let reaper = Reaper::new(Arc::clone(&store), ReaperConfig::default())
            .provider(Arc::new(w.mock.clone()));
        let r = reaper.run(&ReapOptions::default()).await.unwrap();
        assert!(r.decisions.iter().all(|d| d.error.is_none()), "{r:#?}");
        let left = store.list().await.unwrap();
        assert_eq!(
            left.len(),
            1,
            "vanished and dropped are finished: {left:#?}"
        );
        assert_eq!(left[0].id, "s-i");
        assert_eq!(
            left[0].compute_id.as_deref(),
            Some(w.intent_machine.as_str()),
            "adopted"
        );
        assert_eq!(left[0].state, crate::orchestrator::SessionState::Active);
        assert_eq!(
            w.mock.get(&w.orphan).await.unwrap_err().kind(),
            ErrorKind::NotFound
        );
        let closed = store.closed_spend().await.unwrap();
        assert!(closed.contains_key("u"), "{closed:?}");
    }
}
