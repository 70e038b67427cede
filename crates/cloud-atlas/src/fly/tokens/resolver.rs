//! [`TokenResolver`]: the per-app resolution chain, coalescing and refresh.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use chrono::Utc;
use futures::future::{BoxFuture, FutureExt, Shared};
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tracing::Instrument;

use super::memory_store::MemoryTokenStore;
use super::storage::{StoredToken, TokenSlot, TokenStore};
use super::{ResolvedToken, TokenSource};
use crate::auth::Secret;
use crate::config::Config;
use crate::error::{Error, ErrorKind, Result};
use crate::fly::apps::require_app_name;
use crate::fly::flyctl::Flyctl;
use crate::fly::token_kind::FlyAuth;
use crate::fly::FileTokenStore;

/// How long a token stays in the in-memory cache.
pub const MEMORY_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// How long `fly tokens create readonly` may take before it is killed.
pub const CLI_TIMEOUT: Duration = Duration::from_secs(15);
/// Default lifetime asked of `fly tokens create readonly` (`--expiry`).
pub const DEFAULT_CLI_TOKEN_EXPIRY: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Default time before a known expiry at which a token is refreshed in the background.
pub const DEFAULT_REFRESH_AHEAD: Duration = Duration::from_secs(60 * 60);
/// The env var holding a Fly API token.
pub const FLY_API_TOKEN_ENV: &str = "FLY_API_TOKEN";
/// The env var naming flyctl's config folder (default `~/.fly`).
pub const FLY_CONFIG_DIR_ENV: &str = "FLY_CONFIG_DIR";

/// Builds a [`TokenResolver`].
#[derive(Debug, Clone)]
pub struct TokenResolverBuilder {
    store: Arc<dyn TokenStore>,
    env_token: Option<Secret>,
    fly_config_dir: Option<PathBuf>,
    flyctl: Option<Flyctl>,
    org: Option<String>,
    cli_timeout: Duration,
    cli_token_expiry: Option<Duration>,
    memory_ttl: Duration,
    refresh_ahead: Duration,
}

impl Default for TokenResolverBuilder {
    fn default() -> Self {
        TokenResolverBuilder::new()
    }
}

impl TokenResolverBuilder {
    /// Nothing configured: an in-memory store, no env token, no flyctl config, `fly` on `PATH`.
    pub fn new() -> TokenResolverBuilder {
        TokenResolverBuilder {
            store: Arc::new(MemoryTokenStore::new()),
            env_token: None,
            fly_config_dir: None,
            flyctl: Some(Flyctl::default()),
            org: None,
            cli_timeout: CLI_TIMEOUT,
            cli_token_expiry: Some(DEFAULT_CLI_TOKEN_EXPIRY),
            memory_ttl: MEMORY_TTL,
            refresh_ahead: DEFAULT_REFRESH_AHEAD,
        }
    }

    /// From resolved configuration: the file store in the data directory,
    /// `FLY_API_TOKEN`, `$FLY_CONFIG_DIR` (else `~/.fly`) and `ATLAS_FLY_BIN`.
    pub fn from_config(config: &Config) -> TokenResolverBuilder {
        let env_token = config
            .env(FLY_API_TOKEN_ENV)
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(Secret::new);
        let dir = config
            .env(FLY_CONFIG_DIR_ENV)
            .filter(|s| !s.trim().is_empty())
            .map(PathBuf::from)
            .or_else(|| {
                config
                    .env("HOME")
                    .filter(|s| !s.is_empty())
                    .map(PathBuf::from)
                    .or_else(dirs::home_dir)
                    .map(|h| h.join(".fly"))
            });
        let mut b = TokenResolverBuilder::new()
            .with_store(Arc::new(FileTokenStore::in_data_dir(config)))
            .with_flyctl(Flyctl::from_config(config));
        b.env_token = env_token;
        b.fly_config_dir = dir;
        b
    }

    /// Keep tokens in `store`.
    pub fn with_store(mut self, store: Arc<dyn TokenStore>) -> Self {
        self.store = store;
        self
    }
    /// The token the env step answers with (normally `FLY_API_TOKEN`).
    pub fn with_env_token(mut self, token: Option<Secret>) -> Self {
        self.env_token = token;
        self
    }
    /// flyctl's config folder holding `config.yml`.
    pub fn with_fly_config_dir(mut self, dir: impl Into<PathBuf>) -> Self {
        self.fly_config_dir = Some(dir.into());
        self
    }
    /// Use this `fly` for `fly tokens create readonly`.
    pub fn with_flyctl(mut self, flyctl: Flyctl) -> Self {
        self.flyctl = Some(flyctl);
        self
    }
    /// Never run `fly` to mint tokens.
    pub fn without_cli(mut self) -> Self {
        self.flyctl = None;
        self
    }
    /// Pass `--org` to `fly tokens create readonly`.
    pub fn with_org(mut self, org: impl Into<String>) -> Self {
        self.org = Some(org.into());
        self
    }
    /// How long `fly tokens create readonly` may take (default 15 s).
    pub fn with_cli_timeout(mut self, d: Duration) -> Self {
        self.cli_timeout = d;
        self
    }
    /// Lifetime asked of minted tokens (`--expiry`); `None` takes Fly's default (20 years)
    /// and records no expiry.
    pub fn with_cli_token_expiry(mut self, d: Option<Duration>) -> Self {
        self.cli_token_expiry = d;
        self
    }
    /// In-memory cache lifetime (default 24 h).
    pub fn with_memory_ttl(mut self, d: Duration) -> Self {
        self.memory_ttl = d;
        self
    }
    /// Refresh this long before a known expiry (default 1 h).
    pub fn with_refresh_ahead(mut self, d: Duration) -> Self {
        self.refresh_ahead = d;
        self
    }

    /// The resolver.
    pub fn build(self) -> TokenResolver {
        TokenResolver {
            inner: Arc::new(Inner {
                opts: self,
                state: Mutex::new(State::default()),
            }),
        }
    }
}

/// Resolves, caches and refreshes Fly API tokens per app. Cheap to clone.
///
/// See the [module docs](super) for the chain.
#[derive(Debug, Clone)]
pub struct TokenResolver {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    opts: TokenResolverBuilder,
    state: Mutex<State>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum Mode {
    Get,
    Refresh,
}

type Flight = Shared<BoxFuture<'static, std::result::Result<ResolvedToken, Arc<Error>>>>;

#[derive(Default)]
struct State {
    cache: HashMap<String, CacheEntry>,
    flights: HashMap<(String, Mode), Flight>,
    epoch: HashMap<String, u64>,
    timers: HashMap<String, tokio::task::AbortHandle>,
}

impl std::fmt::Debug for State {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("State")
            .field("cached_apps", &self.cache.len())
            .field("flights", &self.flights.len())
            .finish()
    }
}

#[derive(Clone)]
struct CacheEntry {
    token: StoredToken,
    cached_at: Instant,
}

impl TokenResolver {
    /// A builder.
    pub fn builder() -> TokenResolverBuilder {
        TokenResolverBuilder::new()
    }

    /// From resolved configuration (see [`TokenResolverBuilder::from_config`]).
    pub fn from_config(config: &Config) -> TokenResolver {
        TokenResolverBuilder::from_config(config).build()
    }

    /// The store.
    pub fn store(&self) -> &Arc<dyn TokenStore> {
        &self.inner.opts.store
    }

    /// A token for `app`: the first hit of the chain. Concurrent calls for one app
    /// share one acquisition.
    ///
    /// # Errors
    /// `Validation` for a bad app name; `Unauthorized` when no step had a token (the
    /// message lists what was tried); `Timeout` when the CLI step timed out and nothing
    /// came after it; `Validation` when the manual store is damaged and was needed.
    pub async fn get(&self, app: &str) -> Result<ResolvedToken> {
        require_app_name("app", app)?;
        let span = tracing::info_span!(
            "atlas.fly.token",
            fly.app = %app,
            fly.token.source = tracing::field::Empty,
            fly.token.fast_path = tracing::field::Empty,
        );
        let flight = {
            let mut st = self.inner.lock();
            if let Some(e) = st.cache.get(app) {
                if self.inner.fresh(e) {
                    let r = resolved(app, &e.token, TokenSource::Cache, true);
                    span.record("fly.token.source", "cache");
                    span.record("fly.token.fast_path", true);
                    crate::fly::telemetry::token_resolved("cache", true);
                    return Ok(r);
                }
                st.cache.remove(app);
            }
            // A refresh in flight yields a token that is good for a get too.
            match st.flights.get(&(app.to_string(), Mode::Refresh)) {
                Some(f) => f.clone(),
                None => self.inner.flight(&mut st, app, Mode::Get),
            }
        };
        self.finish(flight, span).await
    }

    /// Acquire a new token for `app`, skipping the cache and storage steps, and swap
    /// it in atomically: until it is ready, [`get`](Self::get) keeps answering with the
    /// old one; when it fails, the old one stays. Concurrent refreshes share one run.
    ///
    /// # Errors
    /// As [`get`](Self::get).
    pub async fn refresh(&self, app: &str) -> Result<ResolvedToken> {
        require_app_name("app", app)?;
        let span = tracing::info_span!(
            "atlas.fly.token",
            fly.app = %app,
            fly.token.source = tracing::field::Empty,
            fly.token.fast_path = tracing::field::Empty,
            fly.token.refresh = true,
        );
        let flight = {
            let mut st = self.inner.lock();
            self.inner.flight(&mut st, app, Mode::Refresh)
        };
        self.finish(flight, span).await
    }

    async fn finish(&self, flight: Flight, span: tracing::Span) -> Result<ResolvedToken> {
        let out = flight.instrument(span.clone()).await;
        span.record("fly.token.fast_path", false);
        match out {
            Ok(r) => {
                span.record("fly.token.source", r.source.as_str());
                crate::fly::telemetry::token_resolved(r.source.as_str(), false);
                Ok(r)
            }
            Err(e) => {
                span.record("fly.token.source", "none");
                crate::fly::telemetry::token_resolved("none", false);
                Err(clone_error(&e))
            }
        }
    }

    /// Forget `app`'s token in memory and in the storage cache slot (not the manual
    /// override), so the next [`get`](Self::get) walks the chain again.
    ///
    /// # Errors
    /// When the store cannot remove it.
    pub async fn invalidate(&self, app: &str) -> Result<()> {
        require_app_name("app", app)?;
        {
            let mut st = self.inner.lock();
            st.cache.remove(app);
            *st.epoch.entry(app.to_string()).or_default() += 1;
            if let Some(t) = st.timers.remove(app) {
                t.abort();
            }
        }
        self.inner.opts.store.remove(TokenSlot::Cache, app).await
    }

    /// Set the manual override for `app` and use it from now on. It is written to the
    /// store's manual slot before this returns.
    ///
    /// # Errors
    /// `Validation` for a bad app name or an empty token; the store's error when the
    /// token could not be persisted (then nothing changed).
    pub async fn set_manual(&self, app: &str, token: Secret) -> Result<ResolvedToken> {
        self.set_manual_with_expiry(app, token, None).await
    }

    /// [`set_manual`](Self::set_manual) with a known expiry, ahead of which the token is
    /// refreshed in the background.
    ///
    /// # Errors
    /// As [`set_manual`](Self::set_manual).
    pub async fn set_manual_with_expiry(
        &self,
        app: &str,
        token: Secret,
        expires_at: Option<chrono::DateTime<Utc>>,
    ) -> Result<ResolvedToken> {
        require_app_name("app", app)?;
        let trimmed = token.expose().trim();
        if FlyAuth::parse(trimmed).is_none() {
            return Err(Error::validation("token", "is empty"));
        }
        let stored =
            StoredToken::new(Secret::new(trimmed), TokenSource::Manual).with_expires_at(expires_at);
        self.inner
            .opts
            .store
            .save(TokenSlot::Manual, app, &stored)
            .await?;
        if let Err(e) = self
            .inner
            .opts
            .store
            .save(TokenSlot::Cache, app, &stored)
            .await
        {
            tracing::warn!(fly.app = %app, error = %e, "could not copy the manual token to the token cache");
        }
        {
            let mut st = self.inner.lock();
            *st.epoch.entry(app.to_string()).or_default() += 1;
            self.inner.install(&mut st, app, stored.clone());
        }
        Ok(resolved(app, &stored, TokenSource::Manual, false))
    }

    /// Remove the manual override for `app` (the cached token, if any, stays until
    /// invalidated).
    ///
    /// # Errors
    /// The store's error.
    pub async fn remove_manual(&self, app: &str) -> Result<()> {
        require_app_name("app", app)?;
        self.inner.opts.store.remove(TokenSlot::Manual, app).await
    }

    /// The token in the in-memory cache for `app`, without acquiring anything.
    pub fn cached(&self, app: &str) -> Option<ResolvedToken> {
        let st = self.inner.lock();
        st.cache
            .get(app)
            .filter(|e| self.inner.fresh(e))
            .map(|e| resolved(app, &e.token, TokenSource::Cache, true))
    }
}

fn resolved(app: &str, t: &StoredToken, source: TokenSource, fast: bool) -> ResolvedToken {
    ResolvedToken {
        app: app.to_string(),
        token: t.token.clone(),
        source,
        origin: t.origin,
        fast_path: fast,
        obtained_at: t.obtained_at,
        expires_at: t.expires_at,
    }
}

/// Errors are shared between coalesced callers; each gets its own copy.
fn clone_error(e: &Error) -> Error {
    let mut c = Error::new(e.kind(), e.message());
    if let Some(p) = e.provider() {
        c = c.with_provider(p.to_string());
    }
    if let Some(op) = e.operation() {
        c = c.with_operation(op);
    }
    if let Some(s) = e.status() {
        c = c.with_status(s);
    }
    if let Some(r) = e.raw() {
        c = c.with_raw(r.to_string());
    }
    c
}

impl Inner {
    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn fresh(&self, e: &CacheEntry) -> bool {
        e.cached_at.elapsed() < self.opts.memory_ttl && !e.token.is_expired(Utc::now())
    }

    /// The flight for `(app, mode)`, started if none is running. Call with the state lock held.
    fn flight(self: &Arc<Self>, st: &mut State, app: &str, mode: Mode) -> Flight {
        let key = (app.to_string(), mode);
        if let Some(f) = st.flights.get(&key) {
            return f.clone();
        }
        let epoch = st.epoch.get(app).copied().unwrap_or(0);
        let inner = Arc::clone(self);
        let app_owned = app.to_string();
        let task = tokio::spawn(async move {
            let out = inner.acquire(&app_owned, mode).await;
            let mut st = inner.lock();
            st.flights.remove(&(app_owned.clone(), mode));
            if let Ok((stored, _)) = &out {
                let current = st.epoch.get(&app_owned).copied().unwrap_or(0);
                // A get that raced an invalidate, set_manual or refresh does not
                // overwrite their newer result; a refresh always wins.
                if mode == Mode::Refresh || current == epoch {
                    *st.epoch.entry(app_owned.clone()).or_default() += 1;
                    inner.install(&mut st, &app_owned, stored.clone());
                }
            }
            out.map(|(stored, source)| resolved(&app_owned, &stored, source, false))
                .map_err(Arc::new)
        });
        let fut: BoxFuture<'static, std::result::Result<ResolvedToken, Arc<Error>>> = async move {
            match task.await {
                Ok(r) => r,
                Err(e) => Err(Arc::new(Error::new(
                    ErrorKind::Unknown,
                    format!("token acquisition task failed: {e}"),
                ))),
            }
        }
        .boxed();
        let shared = fut.shared();
        st.flights.insert(key, shared.clone());
        shared
    }

    /// Put `token` in the memory cache and schedule its background refresh.
    fn install(self: &Arc<Self>, st: &mut State, app: &str, token: StoredToken) {
        if let Some(t) = st.timers.remove(app) {
            t.abort();
        }
        if let Some(exp) = token.expires_at {
            let ahead = chrono::Duration::from_std(self.opts.refresh_ahead)
                .unwrap_or(chrono::Duration::zero());
            let due = (exp - ahead - Utc::now()).to_std().ok();
            if let Some(wait) = due.filter(|d| !d.is_zero()) {
                let weak: Weak<Inner> = Arc::downgrade(self);
                let app_owned = app.to_string();
                let obtained = token.obtained_at;
                let handle = tokio::spawn(async move {
                    tokio::time::sleep(wait).await;
                    let Some(inner) = weak.upgrade() else { return };
                    let still_current = inner
                        .lock()
                        .cache
                        .get(&app_owned)
                        .is_some_and(|e| e.token.obtained_at == obtained);
                    if !still_current {
                        return;
                    }
                    let resolver = TokenResolver { inner };
                    match resolver.refresh(&app_owned).await {
                        Ok(r) => {
                            tracing::info!(fly.app = %app_owned, source = r.source.as_str(), "refreshed the Fly token ahead of its expiry")
                        }
                        Err(e) => {
                            tracing::warn!(fly.app = %app_owned, error = %e, "background refresh of the Fly token failed")
                        }
                    }
                });
                st.timers.insert(app.to_string(), handle.abort_handle());
            }
        }
        st.cache.insert(
            app.to_string(),
            CacheEntry {
                token,
                cached_at: Instant::now(),
            },
        );
    }

    /// Walk the chain (from storage on for a get, from env on for a refresh).
    async fn acquire(&self, app: &str, mode: Mode) -> Result<(StoredToken, TokenSource)> {
        let mut tried: Vec<String> = Vec::new();
        let mut timed_out = false;
        let store = &self.opts.store;

        if mode == Mode::Get {
            match store.load(TokenSlot::Cache, app).await {
                Ok(Some(t)) if !t.is_expired(Utc::now()) => return Ok((t, TokenSource::Storage)),
                Ok(_) => tried.push("storage: none".into()),
                Err(e) => {
                    tracing::warn!(fly.app = %app, error = %e, "token storage unreadable; continuing");
                    tried.push(format!("storage: {}", e.message()));
                }
            }
        }

        match &self.opts.env_token {
            Some(t) if FlyAuth::parse(t.expose()).is_some() => {
                return Ok((
                    StoredToken::new(t.clone(), TokenSource::Env),
                    TokenSource::Env,
                ))
            }
            _ => tried.push(format!("{FLY_API_TOKEN_ENV}: not set")),
        }

        match &self.opts.fly_config_dir {
            Some(dir) => match read_fly_config(dir) {
                Ok(Some(t)) => {
                    return Ok((
                        StoredToken::new(t, TokenSource::Config),
                        TokenSource::Config,
                    ))
                }
                Ok(None) => tried.push(format!(
                    "{}: no access_token",
                    dir.join("config.yml").display()
                )),
                Err(e) => {
                    tracing::warn!(error = %e, "flyctl config unreadable; continuing");
                    tried.push(e.message().to_string());
                }
            },
            None => tried.push("flyctl config: no folder known".into()),
        }

        if let Some(flyctl) = &self.opts.flyctl {
            match self.mint(flyctl, app).await {
                Ok(stored) => {
                    if let Err(e) = store.save(TokenSlot::Cache, app, &stored).await {
                        tracing::warn!(fly.app = %app, error = %e, "could not persist the minted Fly token");
                    }
                    return Ok((stored, TokenSource::Cli));
                }
                Err(e) => {
                    timed_out |= e.kind() == ErrorKind::Timeout;
                    tried.push(e.message().to_string());
                }
            }
        } else {
            tried.push("fly CLI: disabled".into());
        }

        match store.load(TokenSlot::Manual, app).await? {
            Some(t) if !t.is_expired(Utc::now()) => return Ok((t, TokenSource::Manual)),
            Some(_) => tried.push("manual override: expired".into()),
            None => tried.push("manual override: none".into()),
        }

        let kind = if timed_out {
            ErrorKind::Timeout
        } else {
            ErrorKind::Unauthorized
        };
        Err(Error::new(
            kind,
            format!(
                "no Fly API token for app {app}: set {FLY_API_TOKEN_ENV}, run `fly auth login`, or set one with `atlas fly token set {app}` (tried: {})",
                tried.join("; ")
            ),
        )
        .with_provider("fly"))
    }

    /// `fly tokens create readonly`, killed after the CLI timeout.
    async fn mint(&self, flyctl: &Flyctl, app: &str) -> Result<StoredToken> {
        let mut args: Vec<String> = vec![
            "tokens".into(),
            "create".into(),
            "readonly".into(),
            "--name".into(),
            format!("cloud-atlas {app}"),
        ];
        if let Some(exp) = self.opts.cli_token_expiry {
            args.push("--expiry".into());
            args.push(format!("{}s", exp.as_secs()));
        }
        if let Some(org) = &self.opts.org {
            args.push("--org".into());
            args.push(org.clone());
        }
        let mut cmd = flyctl.command(&args);
        let mut child = flyctl.spawn(&mut cmd)?;
        let pgid = child.id();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let run = async {
            let mut out = Vec::new();
            let mut err = Vec::new();
            let (_, _, st) = tokio::join!(
                async {
                    // Bounded: a runaway `fly` stalls on a full pipe and the timer kills it.
                    if let Some(s) = stdout.as_mut() {
                        let _ = s.take(CLI_OUTPUT_CAP).read_to_end(&mut out).await;
                    }
                },
                async {
                    if let Some(s) = stderr.as_mut() {
                        let _ = s.take(CLI_OUTPUT_CAP).read_to_end(&mut err).await;
                    }
                },
                child.wait()
            );
            (out, err, st)
        };
        let started = Instant::now();
        let (out, err, status) = match tokio::time::timeout(self.opts.cli_timeout, run).await {
            Ok(r) => r,
            Err(_) => {
                flyctl.kill_tree(&mut child, pgid).await;
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "`fly tokens create readonly` gave no answer within {:.1}s and was killed",
                        self.opts.cli_timeout.as_secs_f64()
                    ),
                )
                .with_provider("fly"));
            }
        };
        let status = status.map_err(|e| {
            Error::new(ErrorKind::Unknown, "could not wait for `fly tokens create`").with_source(e)
        })?;
        let stdout = String::from_utf8_lossy(&out);
        if !status.success() {
            let stderr = String::from_utf8_lossy(&err);
            let first = crate::http::redact_text(
                stderr.lines().find(|l| !l.trim().is_empty()).unwrap_or(""),
                &[stdout.trim()],
            );
            let first: String = first.chars().take(200).collect();
            return Err(Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "`fly tokens create readonly` failed ({}){}",
                    status
                        .code()
                        .map(|c| format!("exit code {c}"))
                        .unwrap_or_else(|| "killed".into()),
                    if first.is_empty() {
                        String::new()
                    } else {
                        format!(": {first}")
                    }
                ),
            )
            .with_provider("fly"));
        }
        let token = parse_cli_token(&stdout).ok_or_else(|| {
            Error::new(
                ErrorKind::Provider,
                "`fly tokens create readonly` printed no token",
            )
            .with_provider("fly")
        })?;
        tracing::debug!(fly.app = %app, elapsed_ms = started.elapsed().as_millis() as u64, "minted a read-only Fly token");
        let now = Utc::now();
        let expires = self
            .opts
            .cli_token_expiry
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| now + d);
        Ok(StoredToken::new(token, TokenSource::Cli)
            .with_obtained_at(now)
            .with_expires_at(expires))
    }
}

/// How much of `fly tokens create`'s stdout and stderr is read (a token is a few KiB).
const CLI_OUTPUT_CAP: u64 = 1024 * 1024;

/// The token in the output of `fly tokens create readonly`: the plain form (one line
/// `FlyV1 fm2_…`) or the `--json` form (`{"token": "FlyV1 fm2_…"}`).
pub fn parse_cli_token(stdout: &str) -> Option<Secret> {
    let t = stdout.trim();
    if t.starts_with('{') {
        #[derive(Deserialize)]
        struct J {
            token: String,
        }
        return serde_json::from_str::<J>(t)
            .ok()
            .map(|j| j.token.trim().to_string())
            .filter(|s| FlyAuth::parse(s).is_some())
            .map(Secret::new);
    }
    let lines: Vec<&str> = t.lines().map(str::trim).filter(|l| !l.is_empty()).collect();
    let pick = lines
        .iter()
        .rev()
        .find(|l| {
            l.starts_with("FlyV1 ")
                || crate::fly::token_kind::MACAROON_PREFIXES
                    .iter()
                    .any(|p| l.starts_with(p))
        })
        .or(lines.last())?;
    FlyAuth::parse(pick).map(|_| Secret::new(*pick))
}

/// The `access_token` of `<dir>/config.yml` (flyctl's config), `None` when the file
/// or the key is missing or empty.
///
/// # Errors
/// `Validation` naming the file when it exists but is not valid YAML.
pub fn read_fly_config(dir: &Path) -> Result<Option<Secret>> {
    #[derive(Deserialize)]
    struct FlyConfigFile {
        #[serde(default)]
        access_token: Option<String>,
    }
    let path = dir.join("config.yml");
    let text = match crate::files::read_file_to_string(&path, crate::files::MAX_CONFIG_BYTES) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(Error::validation(
                "fly config",
                format!("cannot read {}: {e}", path.display()),
            ))
        }
    };
    if text.trim().is_empty() {
        return Ok(None);
    }
    let cfg: FlyConfigFile = serde_norway::from_str(&text).map_err(|e| {
        Error::validation(
            "fly config",
            format!("{} is not valid YAML: {e}", path.display()),
        )
    })?;
    Ok(cfg
        .access_token
        .map(|s| s.trim().to_string())
        .filter(|s| FlyAuth::parse(s).is_some())
        .map(Secret::new))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cli_output_forms() {
        let plain = include_str!(
            "../../../tests/fixtures/fly/samples/fly-tokens-create-readonly.stdout.constructed.txt"
        );
        let t = parse_cli_token(plain).unwrap();
        assert!(t.expose().starts_with("FlyV1 fm2_"));
        assert_eq!(FlyAuth::parse(t.expose()).unwrap().scheme, "FlyV1");
        let json = include_str!(
            "../../../tests/fixtures/fly/samples/fly-tokens-create-readonly.json-stdout.constructed.txt"
        );
        assert_eq!(parse_cli_token(json).unwrap(), t);
        let noisy = format!("A new version is available\n{plain}");
        assert_eq!(parse_cli_token(&noisy).unwrap(), t);
        assert!(parse_cli_token("   \n").is_none());
    }

    #[test]
    fn fly_config_samples() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("config.yml");
        std::fs::write(
            &p,
            include_str!("../../../tests/fixtures/fly/samples/flyctl-config.yml.constructed"),
        )
        .unwrap();
        let t = read_fly_config(dir.path()).unwrap().unwrap();
        let auth = FlyAuth::parse(t.expose()).unwrap();
        assert_eq!(auth.scheme, "FlyV1");
        assert!(!auth.credential.expose().contains("fo1_"));
        std::fs::write(
            &p,
            include_str!(
                "../../../tests/fixtures/fly/samples/flyctl-config-after-web-login.yml.constructed"
            ),
        )
        .unwrap();
        let t = read_fly_config(dir.path()).unwrap().unwrap();
        assert_eq!(FlyAuth::parse(t.expose()).unwrap().scheme, "Bearer");
        std::fs::write(&p, "access_token: \"\"\nmetrics_token: \"\"\n").unwrap();
        assert!(read_fly_config(dir.path()).unwrap().is_none());
        std::fs::write(&p, "access_token: [unclosed\n").unwrap();
        let e = read_fly_config(dir.path()).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(read_fly_config(&dir.path().join("nope")).unwrap().is_none());
    }
}
