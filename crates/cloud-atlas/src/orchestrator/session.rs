//! What a caller asks for ([`SessionRequest`]) and what the orchestrator tracks ([`Session`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::events::TerminateReason;
use crate::auth::AuthHandle;
use crate::error::{Error, Result};
use crate::spec::{AuthMode, Compute, ComputeRequest, Gpu};

/// Default name prefix of every resource the orchestrator spawns (and the reaper may reap):
/// [`SESSION_NAME_PREFIX`](crate::spec::SESSION_NAME_PREFIX), `atlas-session-`, a namespace
/// plain spawns cannot use (their default names are `atlas-…`).
pub const DEFAULT_NAME_PREFIX: &str = crate::spec::SESSION_NAME_PREFIX;

/// A tracked per-user session to spawn: a [`ComputeRequest`] plus who it is for and
/// the limits that end it.
///
/// Unset limits take the orchestrator's defaults
/// ([`OrchestratorConfig`](super::OrchestratorConfig)); `idle_ttl` and `max_runtime`
/// set on the compute request are used when the session's own are unset.
///
/// # Examples
/// ```
/// # fn main() -> cloud_atlas::Result<()> {
/// use std::time::Duration;
/// use cloud_atlas::{ComputeRequest, Gpu};
/// use cloud_atlas::orchestrator::SessionRequest;
///
/// let compute = ComputeRequest::builder().gpu(Gpu::L4).image("ghcr.io/acme/app:1").port("8000/http").build()?;
/// let req = SessionRequest::new("mock", "user-42", compute)
///     .with_idle_ttl(Duration::from_secs(600))
///     .with_max_cost(5.0);
/// assert_eq!(req.name_prefix, "atlas-session-");
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct SessionRequest {
    /// What to spawn.
    pub compute: ComputeRequest,
    /// Provider name (`mock`, `runpod`, …) among the orchestrator's providers.
    pub provider: String,
    /// Who the session belongs to (per-user limits and totals).
    pub user_id: String,
    /// Idle time-to-live: the session ends this long after the last [`touch`](super::Orchestrator::touch).
    pub idle_ttl: Option<Duration>,
    /// Hard cap on the session's life (also passed to the provider as its own deadline).
    pub max_runtime: Option<Duration>,
    /// Cap on the session's accrued cost in USD.
    pub max_cost_usd: Option<f64>,
    /// Resource name prefix (default `atlas-session-`); the reaper only ever reaps names with its prefix.
    pub name_prefix: String,
}

impl SessionRequest {
    /// A request for `user_id` on `provider`, with default limits and prefix.
    pub fn new(
        provider: impl Into<String>,
        user_id: impl Into<String>,
        compute: ComputeRequest,
    ) -> SessionRequest {
        SessionRequest {
            compute,
            provider: provider.into(),
            user_id: user_id.into(),
            idle_ttl: None,
            max_runtime: None,
            max_cost_usd: None,
            name_prefix: DEFAULT_NAME_PREFIX.to_string(),
        }
    }

    /// Set the idle TTL.
    pub fn with_idle_ttl(mut self, d: Duration) -> SessionRequest {
        self.idle_ttl = Some(d);
        self
    }

    /// Set the maximum runtime.
    pub fn with_max_runtime(mut self, d: Duration) -> SessionRequest {
        self.max_runtime = Some(d);
        self
    }

    /// Set the cost cap in USD.
    pub fn with_max_cost(mut self, usd: f64) -> SessionRequest {
        self.max_cost_usd = Some(usd);
        self
    }

    /// Set the resource name prefix.
    pub fn with_name_prefix(mut self, p: impl Into<String>) -> SessionRequest {
        self.name_prefix = p.into();
        self
    }

    /// Check fields the [`ComputeRequest`] builder does not cover.
    ///
    /// # Errors
    /// `Validation` naming the field.
    pub fn validate(&self) -> Result<()> {
        let u = self.user_id.trim();
        if u.is_empty() || u.len() > 128 || u.chars().any(char::is_control) {
            return Err(Error::validation(
                "user_id",
                "must be 1-128 printable characters",
            ));
        }
        if self.provider.trim().is_empty() {
            return Err(Error::validation(
                "provider",
                "is required (e.g. mock, runpod)",
            ));
        }
        validate_prefix(&self.name_prefix)?;
        for (field, d) in [
            ("idle_ttl", self.idle_ttl),
            ("max_runtime", self.max_runtime),
        ] {
            if let Some(d) = d {
                crate::spec::DurationRange::LIMIT.check(field, d)?;
            }
        }
        if let Some(c) = self.max_cost_usd {
            if !c.is_finite() || c <= 0.0 {
                return Err(Error::validation(
                    "max_cost_usd",
                    format!("{c} is not allowed; use a positive amount of USD"),
                ));
            }
        }
        Ok(())
    }

    /// The compute request actually sent: its name carries the prefix, so its launch
    /// name starts with `name_prefix`; it carries the label
    /// [`SESSION_LABEL`](crate::spec::SESSION_LABEL)` = 1` (providers that keep labels store
    /// it); `max_runtime` is set for the provider-side deadline.
    pub(crate) fn compute_request(
        &self,
        provider_deadline: Option<Duration>,
    ) -> Result<ComputeRequest> {
        let mut c = self.compute.clone();
        let prefix = self.name_prefix.as_str();
        let name = match c.name.as_deref() {
            None => prefix.trim_end_matches('-').to_string(),
            Some(n) if n.starts_with(prefix) => n.to_string(),
            Some(n) => format!("{prefix}{n}"),
        };
        let ok = !name.is_empty()
            && name.len() <= 40
            && name.starts_with(|ch: char| ch.is_ascii_lowercase())
            && name
                .chars()
                .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit() || ch == '-');
        if !ok {
            return Err(Error::validation(
                "name",
                format!("{name:?} (prefix + compute name) is not allowed; use 1-40 lowercase letters, digits and -, starting with a letter"),
            ));
        }
        c.name = Some(name);
        c.labels
            .insert(crate::spec::SESSION_LABEL.to_string(), "1".to_string());
        c.max_runtime = provider_deadline;
        if c.launch_name().starts_with(prefix) {
            Ok(c)
        } else {
            Err(Error::validation(
                "name_prefix",
                format!(
                    "{prefix:?} does not prefix the launch name {:?}",
                    c.launch_name()
                ),
            ))
        }
    }
}

/// Check a reaper/session name prefix: 1-32 lowercase letters, digits and `-`, starting with a letter.
///
/// # Errors
/// `Validation` naming `name_prefix`.
pub fn validate_prefix(p: &str) -> Result<()> {
    let ok = !p.is_empty()
        && p.len() <= 32
        && p.starts_with(|c: char| c.is_ascii_lowercase())
        && p.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            "name_prefix",
            format!("{p:?} is not allowed; use 1-32 lowercase letters, digits and -, starting with a letter (e.g. atlas-)"),
        ))
    }
}

/// Where a tracked session is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum SessionState {
    /// Intent written, the provider's answer not yet recorded.
    Pending,
    /// The machine exists and is tracked.
    Active,
    /// Termination started (and is retried until it succeeds).
    Terminating,
    /// Gone upstream; the record is being forgotten.
    Terminated,
}

impl SessionState {
    /// Lower-case name.
    pub fn as_str(self) -> &'static str {
        match self {
            SessionState::Pending => "pending",
            SessionState::Active => "active",
            SessionState::Terminating => "terminating",
            SessionState::Terminated => "terminated",
        }
    }

    /// Every state, in life order.
    pub const ALL: [SessionState; 4] = [
        SessionState::Pending,
        SessionState::Active,
        SessionState::Terminating,
        SessionState::Terminated,
    ];
}

impl fmt::Display for SessionState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for SessionState {
    type Err = Error;
    fn from_str(s: &str) -> Result<SessionState> {
        SessionState::ALL
            .into_iter()
            .find(|x| x.as_str() == s)
            .ok_or_else(|| {
                Error::validation(
                    "state",
                    format!(
                        "{s:?} is not allowed; allowed: pending, active, terminating, terminated"
                    ),
                )
            })
    }
}

mod ms {
    use serde::{Deserialize, Deserializer, Serializer};
    use std::time::Duration;
    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_millis() as u64)
    }
    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        Ok(Duration::from_millis(u64::deserialize(d)?))
    }
}

/// A tracked session: what the store keeps (token hashes only, never raw tokens).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Session {
    /// Session id (32 hex chars).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Provider name.
    pub provider: String,
    /// Launch id of the compute request (also in the resource name and labels).
    pub launch_id: String,
    /// Resource name (`{prefix}…-{launch_id}`), known before the provider is called.
    pub name: String,
    /// Provider's compute id, once the provider answered.
    pub compute_id: Option<String>,
    /// Life stage.
    pub state: SessionState,
    /// When the intent was written.
    pub created_at: DateTime<Utc>,
    /// When the provider's answer was recorded.
    pub spawned_at: Option<DateTime<Utc>>,
    /// Last heartbeat (persisted in batches, so it may lag the in-memory value a little).
    pub last_touch: DateTime<Utc>,
    /// Idle TTL.
    #[serde(with = "ms")]
    pub idle_ttl: Duration,
    /// Orchestrator-enforced maximum runtime.
    #[serde(with = "ms")]
    pub max_runtime: Duration,
    /// Cost cap in USD.
    pub max_cost_usd: Option<f64>,
    /// Current billing rate, USD per hour (running price, or storage price when stopped).
    pub cost_per_hour: f64,
    /// Since when `cost_per_hour` applies.
    pub rate_since: DateTime<Utc>,
    /// USD accrued before `rate_since`.
    pub accrued_before_usd: f64,
    /// What the provider's billing said at the last reconciliation, when it has billing.
    pub billed_usd: Option<f64>,
    /// SHA-256 hex of the bearer token handed out at spawn.
    pub token_hash: Option<String>,
    /// Browser-to-pod auth mode.
    pub auth_mode: AuthMode,
    /// URL of the first HTTP port.
    pub http_url: Option<String>,
    /// GPU model.
    pub gpu: Option<Gpu>,
    /// Why termination started.
    pub terminate_reason: Option<TerminateReason>,
    /// The node that holds this record (its orchestrator's node id): only its owner acts
    /// on it while the owner's lease is live; another node takes it over once the lease
    /// expires or is released (see [`SessionStore::claim`](super::store::SessionStore::claim)).
    /// `None` for records written before owners existed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Set when the stored record could not be decoded or holds values out of range
    /// (why, in words). A damaged session is never scheduled; it is listed, and it can be
    /// stopped (its machine terminated, when its id is known) and forgotten.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
}

impl Session {
    /// A pending session (the intent) for `req` sent as `compute` at `now`.
    pub(crate) fn intent(
        id: String,
        req: &SessionRequest,
        compute: &ComputeRequest,
        idle_ttl: Duration,
        max_runtime: Duration,
        now: DateTime<Utc>,
    ) -> Session {
        Session {
            id,
            user_id: req.user_id.clone(),
            provider: req.provider.clone(),
            launch_id: compute.launch_id.clone(),
            name: compute.launch_name(),
            compute_id: None,
            state: SessionState::Pending,
            created_at: now,
            spawned_at: None,
            last_touch: now,
            idle_ttl,
            max_runtime,
            max_cost_usd: req.max_cost_usd,
            cost_per_hour: 0.0,
            rate_since: now,
            accrued_before_usd: 0.0,
            billed_usd: None,
            token_hash: None,
            auth_mode: compute.auth,
            http_url: None,
            gpu: compute.gpu,
            terminate_reason: None,
            owner: None,
            damaged: None,
        }
    }

    /// Why a stored session cannot be trusted, if it cannot: a limit longer than any
    /// limit may be ([`DurationRange::LIMIT`](crate::spec::DurationRange::LIMIT)), or an
    /// amount that is negative or not finite.
    pub(crate) fn out_of_range(&self) -> Option<String> {
        let max = crate::spec::DurationRange::LIMIT.max;
        for (field, d) in [
            ("idle_ttl", self.idle_ttl),
            ("max_runtime", self.max_runtime),
        ] {
            if d > max {
                return Some(format!(
                    "{field} {} is out of range (at most {})",
                    humantime::format_duration(Duration::from_secs(d.as_secs())),
                    humantime::format_duration(max)
                ));
            }
        }
        let amounts = [
            ("cost_per_hour", Some(self.cost_per_hour)),
            ("accrued_before_usd", Some(self.accrued_before_usd)),
            ("billed_usd", self.billed_usd),
            ("max_cost_usd", self.max_cost_usd),
        ];
        for (field, v) in amounts {
            if let Some(v) = v {
                if !v.is_finite() || v < 0.0 {
                    return Some(format!(
                        "{field} {v} is out of range (a non-negative amount)"
                    ));
                }
            }
        }
        None
    }

    /// A damaged record (`why`), with what can still be read from its raw `body`: the
    /// provider, machine id, name, launch id, user, state and times, where present.
    pub(crate) fn damaged_from(id: &str, user_id: &str, body: &str, why: String) -> Session {
        let v: serde_json::Value = serde_json::from_str(body).unwrap_or_default();
        let text = |k: &str| v.get(k).and_then(|x| x.as_str()).map(str::to_string);
        let time = |k: &str| {
            text(k)
                .and_then(|t| DateTime::parse_from_rfc3339(&t).ok())
                .map(|t| t.with_timezone(&Utc))
        };
        let created = time("created_at").unwrap_or_default();
        Session {
            id: id.to_string(),
            user_id: user_id.to_string(),
            provider: text("provider").unwrap_or_default(),
            launch_id: text("launch_id").unwrap_or_default(),
            name: text("name").unwrap_or_default(),
            compute_id: text("compute_id"),
            state: text("state")
                .and_then(|s| s.parse().ok())
                .unwrap_or(SessionState::Active),
            created_at: created,
            spawned_at: time("spawned_at"),
            last_touch: time("last_touch").unwrap_or(created),
            idle_ttl: Duration::ZERO,
            max_runtime: Duration::ZERO,
            max_cost_usd: None,
            cost_per_hour: 0.0,
            rate_since: created,
            accrued_before_usd: 0.0,
            billed_usd: None,
            token_hash: None,
            auth_mode: AuthMode::default(),
            http_url: text("http_url"),
            gpu: None,
            terminate_reason: None,
            owner: None,
            damaged: Some(why),
        }
    }

    /// Record the provider's answer: compute id, price, URL, token hash (never the raw token).
    pub(crate) fn adopt(&mut self, c: &Compute, now: DateTime<Utc>) {
        self.compute_id = Some(c.id.clone());
        self.state = SessionState::Active;
        self.spawned_at = Some(now);
        self.cost_per_hour = c.cost_per_hour.unwrap_or(0.0);
        self.rate_since = c.created_at.map_or(now, |t| t.min(now));
        self.http_url = c.http_url().map(str::to_string);
        if let Some(h) = c
            .auth
            .as_ref()
            .and_then(|a: &AuthHandle| a.token_hash.clone())
        {
            self.token_hash = Some(h);
        }
        if self.gpu.is_none() {
            self.gpu = c.gpu;
        }
    }

    /// USD accrued up to `now` at the recorded rates.
    pub fn accrued_usd(&self, now: DateTime<Utc>) -> f64 {
        let ms = (now - self.rate_since).num_milliseconds().max(0) as f64;
        self.accrued_before_usd + ms / 3_600_000.0 * self.cost_per_hour
    }

    /// What the session has cost by `now`, as far as anyone knows: the larger of the
    /// estimate ([`accrued_usd`](Self::accrued_usd)) and the provider's last reconciled
    /// bill ([`billed_usd`](Self::billed_usd)). Spend caps compare against this.
    pub fn spent_usd(&self, now: DateTime<Utc>) -> f64 {
        let est = self.accrued_usd(now);
        match self.billed_usd {
            Some(b) if b.is_finite() && b > est => b,
            _ => est,
        }
    }

    /// Change the billing rate from `now` (a stopped machine bills storage only).
    pub(crate) fn set_rate(&mut self, rate: f64, now: DateTime<Utc>) {
        if (rate - self.cost_per_hour).abs() > f64::EPSILON {
            self.accrued_before_usd = self.accrued_usd(now);
            self.rate_since = now;
            self.cost_per_hour = rate;
        }
    }

    /// The earliest deadline and which kill switch it belongs to, given the latest touch.
    pub fn next_deadline(&self, last_touch: DateTime<Utc>) -> (DateTime<Utc>, TerminateReason) {
        // Saturating: a stored duration too long for a timestamp is "never", not a panic.
        let idle = crate::spec::utc_after(last_touch, self.idle_ttl);
        let runtime = crate::spec::utc_after(self.created_at, self.max_runtime);
        let mut best = if runtime <= idle {
            (runtime, TerminateReason::MaxRuntime)
        } else {
            (idle, TerminateReason::Idle)
        };
        if let Some(max) = self.max_cost_usd {
            if self.cost_per_hour > 0.0 {
                let now = self.rate_since;
                let left = (max - self.accrued_before_usd).max(0.0);
                let ms = (left / self.cost_per_hour * 3_600_000.0).ceil().min(1e15) as i64;
                let at = now + chrono::Duration::milliseconds(ms);
                if at < best.0 {
                    best = (at, TerminateReason::Budget);
                }
            } else if self.accrued_before_usd >= max {
                best = (self.rate_since, TerminateReason::Budget);
            }
        }
        best
    }
}

pub(crate) fn dur(d: Duration) -> chrono::Duration {
    chrono::Duration::from_std(d).unwrap_or(chrono::Duration::MAX)
}

/// What [`Orchestrator::spawn`](super::Orchestrator::spawn) returns: the tracked record and
/// the compute as the provider answered, whose `auth` carries the raw token this once.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct SpawnedSession {
    /// The tracked record.
    pub session: Session,
    /// The spawned compute (ports with URLs; raw credentials in `auth`, only here).
    pub compute: Compute,
}

impl SpawnedSession {
    /// The auth handle with the raw token (hand it to the browser; it is not kept).
    pub fn auth(&self) -> Option<&AuthHandle> {
        self.compute.auth.as_ref()
    }
}

/// Which sessions [`Orchestrator::list`](super::Orchestrator::list) returns.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct SessionFilter {
    /// Only this user's.
    pub user_id: Option<String>,
    /// Only on this provider.
    pub provider: Option<String>,
    /// Only in this state.
    pub state: Option<SessionState>,
}

impl SessionFilter {
    /// Everything.
    pub fn all() -> SessionFilter {
        SessionFilter::default()
    }
    /// Only `user`'s sessions.
    pub fn user(mut self, user: impl Into<String>) -> SessionFilter {
        self.user_id = Some(user.into());
        self
    }
    /// Only sessions on `provider`.
    pub fn provider(mut self, provider: impl Into<String>) -> SessionFilter {
        self.provider = Some(provider.into());
        self
    }
    /// Only sessions in `state`.
    pub fn state(mut self, state: SessionState) -> SessionFilter {
        self.state = Some(state);
        self
    }
    /// Whether `s` passes.
    pub fn matches(&self, s: &Session) -> bool {
        self.user_id.as_deref().is_none_or(|u| u == s.user_id)
            && self.provider.as_deref().is_none_or(|p| p == s.provider)
            && self.state.is_none_or(|st| st == s.state)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn compute() -> ComputeRequest {
        ComputeRequest::builder().image("i").build().unwrap()
    }

    #[test]
    fn prefix_lands_in_launch_name() {
        let r = SessionRequest::new("mock", "u", compute());
        let c = r.compute_request(None).unwrap();
        assert!(
            c.launch_name().starts_with("atlas-session-"),
            "{}",
            c.launch_name()
        );
        assert_eq!(c.labels[crate::spec::SESSION_LABEL], "1");
        let mut named = compute();
        named.name = Some("chat".into());
        let r = SessionRequest::new("mock", "u", named).with_name_prefix("team-");
        let c = r.compute_request(Some(Duration::from_secs(5))).unwrap();
        assert!(
            c.launch_name().starts_with("team-chat-"),
            "{}",
            c.launch_name()
        );
        assert_eq!(c.max_runtime, Some(Duration::from_secs(5)));
        assert_eq!(
            c.labels[crate::spec::SESSION_LABEL],
            "1",
            "a custom prefix is still marked"
        );
    }

    #[test]
    fn bad_fields_are_named() {
        let cases = [
            (SessionRequest::new("mock", "", compute()), "user_id"),
            (
                SessionRequest::new("mock", "u", compute()).with_name_prefix(""),
                "name_prefix",
            ),
            (
                SessionRequest::new("mock", "u", compute()).with_name_prefix("Bad"),
                "name_prefix",
            ),
            (
                SessionRequest::new("mock", "u", compute()).with_max_cost(-1.0),
                "max_cost_usd",
            ),
            (
                SessionRequest::new("mock", "u", compute()).with_idle_ttl(Duration::ZERO),
                "idle_ttl",
            ),
            (SessionRequest::new("", "u", compute()), "provider"),
        ];
        for (r, field) in cases {
            let e = r.validate().unwrap_err();
            assert!(e.message().starts_with(field), "{field}: {e}");
        }
    }

    #[test]
    fn deadlines_pick_the_earliest_switch() {
        let now = Utc::now();
        let r = SessionRequest::new("mock", "u", compute());
        let c = r.compute_request(None).unwrap();
        let mut s = Session::intent(
            "s".into(),
            &r,
            &c,
            Duration::from_secs(60),
            Duration::from_secs(3600),
            now,
        );
        assert_eq!(s.next_deadline(now).1, TerminateReason::Idle);
        assert_eq!(
            s.next_deadline(now + chrono::Duration::hours(2)).1,
            TerminateReason::MaxRuntime
        );
        s.max_cost_usd = Some(0.01);
        s.cost_per_hour = 3.6; // 0.001 USD/s: 10 s to the cap
        s.rate_since = now;
        let (at, why) = s.next_deadline(now);
        assert_eq!(why, TerminateReason::Budget);
        assert_eq!((at - now).num_seconds(), 10);
        assert!((s.accrued_usd(now + chrono::Duration::seconds(10)) - 0.01).abs() < 1e-9);
    }

    #[test]
    fn spent_is_the_larger_of_estimate_and_bill() {
        let now = Utc::now();
        let req = SessionRequest::new("mock", "u", compute());
        let c = req.compute_request(None).unwrap();
        let mut s = Session::intent(
            "s".into(),
            &req,
            &c,
            Duration::from_secs(60),
            Duration::from_secs(60),
            now,
        );
        s.cost_per_hour = 2.0;
        s.rate_since = now - chrono::Duration::hours(1);
        assert!((s.spent_usd(now) - 2.0).abs() < 1e-9, "estimate only");
        s.billed_usd = Some(1.5);
        assert!((s.spent_usd(now) - 2.0).abs() < 1e-9, "a lagging bill");
        s.billed_usd = Some(3.25);
        assert!(
            (s.spent_usd(now) - 3.25).abs() < 1e-9,
            "a bill above the estimate"
        );
        s.billed_usd = Some(f64::NAN);
        assert!(
            (s.spent_usd(now) - 2.0).abs() < 1e-9,
            "a nonsense bill is ignored"
        );
    }
}
