//! Fly.io Machines: fast-booting VMs as a cloud-atlas provider (feature `fly`).
//!
//! API: <https://fly.io/docs/machines/api/> (`https://api.machines.dev/v1`). Fly retired
//! GPU Machines in 2026, so this is CPU compute: the provider declares no `SpawnGpu`; a
//! request naming a canonical GPU is `Unsupported`. Organisations that still have GPU
//! access can pass `--provider-opt gpu_kind=a100-pcie-40gb` (and `gpus=N`), sent as-is.
//!
//! # Apps and ids
//! Machines live in an app. The app is, in order: provider option `app` on the request,
//! `app` under `[providers.fly]` in `atlas.toml`, `FLY_APP_NAME`, or
//! [`FlyMachinesBuilder::with_app`]. With `create_app=true` and `org=<slug>` provider
//! options, spawn creates the app first when it does not exist. Compute ids are the
//! machine id when the machine lives in the configured default app, and `app/machine_id`
//! otherwise, so `get`/`stop`/`terminate` always know the app.
//!
//! Without a default app, `list` covers the whole organisation: the apps of the org
//! (`GET /apps?org_slug=`; option `org` under `[providers.fly]`, `FLY_ORG`, or
//! [`FlyMachinesBuilder::with_org`]; default `personal`), then the machines of every app,
//! at most [`LIST_CONCURRENCY`] apps at a time, each machine as
//! `app/machine_id`.
//!
//! # Spawn
//! See [`translate::create_body`]: guest size from `cpus`/`memory_gb`, services for the
//! requested ports (HTTP through Fly's proxy at `https://{app}.fly.dev`; to reach one
//! specific machine send the `fly-force-instance-id: <machine id>` header), region from
//! the first region hint, `auto_destroy: true` and `restart: no` for transient compute,
//! metadata carrying the launch id and name, and the machine named `req.launch_name()`.
//! A create that fails ambiguously (timeout or 5xx after it was sent, a 2xx that cannot
//! be decoded or names no machine) is reconciled by listing the app for that name (the
//! shared `providers::reconcile` step) — several times with growing pauses, because Fly's
//! listing is eventually consistent — before the error is returned; never two machines.
//!
//! # Capabilities and limits
//! Stop, start (and [`FlyMachines::suspend`]), ports and CPU-only spawns. No GPU catalog:
//! the Machines API publishes no prices, so `gpu_types` is `Unsupported`. Fly has no
//! "terminate after" setting, but `auto_destroy` destroys a machine when its process
//! exits: a `max_runtime` with a command is held by the machine itself
//! ([`Capability::CommandDeadline`]; the command, `init.cmd`, is wrapped to exit at max
//! runtime, see [`crate::spec::deadline`]). Without a command `max_runtime` is refused.
//! Requests are paced per Fly's documented limits ([`machines::FlyLimits`]).
//!
//! # Auth
//! `FLY_API_TOKEN`; macaroon tokens (`fm1r_`, `fm1a_`, `fm2_`) are sent as `FlyV1 …`,
//! others as `Bearer …` ([`crate::fly::token_kind::FlyAuth`]).

pub mod config;
pub mod error;
pub mod machines;
pub mod translate;

use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::reconcile::{create_once, no_id, Launch, Launched, ReconcilePolicy};
use crate::auth::AuthHandle;
use crate::config::{Config, ProviderSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::fly::token_kind::FlyAuth;
use crate::http::{ApiAuth, ApiClient, HttpClient, RetryConfig};
use crate::provider::Provider;
use crate::spec::{Capabilities, Capability, Compute, ComputeRequest, GpuType, ListFilter};

pub use config::FlyConfigKey;
pub use machines::{FlyLimits, MachinesApi};
use translate::NAME;

/// Default Machines API base URL.
pub const DEFAULT_BASE_URL: &str = "https://api.machines.dev/v1";
/// The organisation listed when none is configured (the user's personal one).
pub const DEFAULT_ORG: &str = "personal";
/// Most apps whose machines are listed at once when listing a whole organisation.
pub const LIST_CONCURRENCY: usize = 8;

/// The Fly Machines provider.
#[derive(Debug, Clone)]
pub struct FlyMachines {
    api: MachinesApi,
    app: Option<String>,
    org: String,
    reconcile: ReconcilePolicy,
}

/// Builder for [`FlyMachines`], set by [`FlyConfigKey`] from any source:
/// [`from_env`](Self::from_env), [`from_config`](Self::from_config),
/// [`with_config`](Self::with_config).
#[derive(Debug, Clone, Default)]
pub struct FlyMachinesBuilder {
    settings: ProviderSettings,
    retry: Option<RetryConfig>,
    limits: FlyLimits,
    reconcile: Option<ReconcilePolicy>,
}

impl FlyMachines {
    /// Build from `FLY_API_TOKEN`, `FLY_APP_NAME` and `ATLAS_FLY_BASE_URL`.
    ///
    /// # Errors
    /// `Unauthorized` naming `FLY_API_TOKEN` when no token is set.
    pub fn from_env() -> Result<FlyMachines> {
        FlyMachinesBuilder::from_env().build()
    }

    /// The raw Machines API client.
    pub fn api(&self) -> &MachinesApi {
        &self.api
    }

    /// Suspend a machine (snapshot memory; resume with `start`). Suspended machines bill storage.
    ///
    /// # Errors
    /// `NotFound` when the machine is gone.
    pub async fn suspend(&self, id: &str) -> Result<()> {
        let (app, mid) = self.locate(id)?;
        self.api.action(&app, &mid, "suspend").await
    }

    /// Wait server-side (Fly's `/wait`) until the machine reaches `state`
    /// (`started`, `stopped`, `suspended`, `destroyed`), instead of polling.
    ///
    /// # Errors
    /// `Timeout` when the state is not reached within `timeout` (at most 60 s per call).
    pub async fn wait_state(&self, id: &str, state: &str, timeout: Duration) -> Result<()> {
        if !matches!(state, "started" | "stopped" | "suspended" | "destroyed") {
            return Err(Error::validation(
                "state",
                format!(
                    "{state:?} is not allowed; allowed: started, stopped, suspended, destroyed"
                ),
            ));
        }
        let (app, mid) = self.locate(id)?;
        self.api.wait(&app, &mid, state, timeout).await
    }

    fn app_for(&self, req: &ComputeRequest) -> Result<String> {
        req.opt_str("app")
            .map(str::to_string)
            .or_else(|| self.app.clone())
            .ok_or_else(|| {
                Error::validation(
                    "provider_opts.app",
                    "Fly machines live in an app: pass --provider-opt app=NAME, or set app under [providers.fly] in atlas.toml, or FLY_APP_NAME",
                )
            })
    }

    fn external_id(&self, app: &str, machine_id: &str) -> String {
        if self.app.as_deref() == Some(app) {
            machine_id.to_string()
        } else {
            format!("{app}/{machine_id}")
        }
    }

    fn locate(&self, id: &str) -> Result<(String, String)> {
        match id.split_once('/') {
            Some((app, mid)) if !app.is_empty() && !mid.is_empty() => Ok((app.to_string(), mid.to_string())),
            Some(_) => Err(Error::validation("id", format!("{id:?} is not a Fly compute id; use MACHINE_ID or APP/MACHINE_ID"))),
            None => match &self.app {
                Some(app) => Ok((app.clone(), id.to_string())),
                None => Err(Error::validation(
                    "id",
                    format!("{id:?} names no app; use APP/MACHINE_ID, or set app under [providers.fly] or FLY_APP_NAME"),
                )),
            },
        }
    }

    /// The apps to list: the default app, or every app of the organisation (each one is
    /// listed, whatever its `machine_count` says: a listing must not hide a machine
    /// that bills).
    async fn apps_to_list(&self) -> Result<Vec<String>> {
        if let Some(app) = &self.app {
            return Ok(vec![app.clone()]);
        }
        self.api.list_apps(&self.org).await
    }

    /// The machines of `apps`, at most [`LIST_CONCURRENCY`] apps at a time, in the order
    /// of `apps`. An app deleted since the apps were listed (404) has no machines; any
    /// other failure fails the listing, naming the app.
    async fn machines_of(
        &self,
        apps: Vec<String>,
    ) -> Result<Vec<(String, Vec<serde_json::Value>)>> {
        use futures::stream::{self, StreamExt, TryStreamExt};
        let several = apps.len() > 1;
        stream::iter(apps)
            .map(|app| async move {
                match self.api.list(&app, None).await {
                    Ok(ms) => Ok((app, ms)),
                    Err(e) if several && e.kind() == ErrorKind::NotFound => Ok((app, Vec::new())),
                    Err(e) if several => {
                        let msg = format!("listing the machines of app {app}: {}", e.message());
                        Err(e.with_message(msg))
                    }
                    Err(e) => Err(e),
                }
            })
            .buffered(LIST_CONCURRENCY)
            .try_collect()
            .await
    }

    async fn ensure_app(&self, app: &str, req: &ComputeRequest) -> Result<()> {
        let wanted = req
            .provider_opts
            .get("create_app")
            .and_then(serde_json::Value::as_bool)
            .unwrap_or(false);
        if !wanted {
            return Ok(());
        }
        match self.api.get_app(app).await {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => {
                let org = req.opt_str("org").ok_or_else(|| {
                    Error::validation(
                        "provider_opts.org",
                        "create_app=true needs the organisation: --provider-opt org=SLUG",
                    )
                })?;
                self.api.create_app(app, org).await
            }
            Err(e) => Err(e),
        }
    }
}

impl FlyMachines {
    /// The machines of `app` matching `filter` (destroyed ones left out).
    async fn list_app(&self, app: &str, filter: &ListFilter) -> Result<Vec<Compute>> {
        let all = self.api.list(app, None).await?;
        Ok(all
            .iter()
            .map(|m| {
                let mid = m.get("id").and_then(|v| v.as_str()).unwrap_or_default();
                translate::compute(app, self.external_id(app, mid), m)
            })
            .filter(|c| c.status != crate::spec::ComputeStatus::Terminated)
            .filter(|c| filter.matches(c))
            .collect())
    }
}

impl FlyMachinesBuilder {
    /// Settings from the environment: `FLY_API_TOKEN`, `FLY_APP_NAME`,
    /// `ATLAS_FLY_BASE_URL` (the env vars of [`FlyConfigKey`]).
    pub fn from_env() -> FlyMachinesBuilder {
        FlyMachinesBuilder::from_settings(ProviderSettings::from_env(NAME))
    }

    /// Settings from a loaded configuration: `[providers.fly]` in `atlas.toml`, then the
    /// environment it was loaded with.
    pub fn from_config(config: &Config) -> FlyMachinesBuilder {
        FlyMachinesBuilder::from_settings(config.provider_settings(NAME))
    }

    /// Resolved settings (keys of [`FlyConfigKey`]; checked in [`build`](Self::build)).
    pub fn from_settings(settings: ProviderSettings) -> FlyMachinesBuilder {
        FlyMachinesBuilder {
            settings,
            ..FlyMachinesBuilder::default()
        }
    }

    /// Set one key from its string form, as the environment and `atlas.toml` give it
    /// (checked in [`build`](Self::build)).
    pub fn with_config(
        mut self,
        key: FlyConfigKey,
        value: impl Into<String>,
    ) -> FlyMachinesBuilder {
        self.settings.set(key, value);
        self
    }

    /// The default app, if set.
    pub fn app(&self) -> Option<&str> {
        self.settings.get(FlyConfigKey::App)
    }

    /// The API token (macaroons or a user token).
    pub fn with_api_key(mut self, token: impl Into<String>) -> FlyMachinesBuilder {
        self.settings.api_key = Some(crate::auth::Secret::new(token.into()));
        self
    }

    /// The base URL (default [`DEFAULT_BASE_URL`]).
    pub fn with_base_url(mut self, url: impl Into<String>) -> FlyMachinesBuilder {
        self.settings.base_url = Some(url.into());
        self
    }

    /// The default app.
    pub fn with_app(self, app: impl Into<String>) -> FlyMachinesBuilder {
        self.with_config(FlyConfigKey::App, app)
    }

    /// The organisation whose apps `list` covers when no app is set (default
    /// [`DEFAULT_ORG`]).
    pub fn with_org(self, org: impl Into<String>) -> FlyMachinesBuilder {
        self.with_config(FlyConfigKey::Org, org)
    }

    /// The retry policy of the HTTP layer.
    pub fn with_retry(mut self, retry: RetryConfig) -> FlyMachinesBuilder {
        self.retry = Some(retry);
        self
    }

    /// Client-side pacing limits (defaults are Fly's documented ones).
    pub fn with_limits(mut self, limits: FlyLimits) -> FlyMachinesBuilder {
        self.limits = limits;
        self
    }

    /// How many listings, and the first pause between them, before an ambiguous create
    /// is concluded to have created nothing (default 4 listings from 500 ms, doubling).
    pub fn with_reconcile(mut self, attempts: u32, first_delay: Duration) -> FlyMachinesBuilder {
        self.reconcile = Some(ReconcilePolicy::new(attempts, first_delay));
        self
    }

    /// Build.
    ///
    /// # Errors
    /// `Unauthorized` naming `FLY_API_TOKEN` when no token is set; `Validation` for a bad
    /// base URL or app name.
    pub fn build(self) -> Result<FlyMachines> {
        let mut s = self.settings;
        s.provider = NAME.to_string();
        s.check::<FlyConfigKey>()?;
        let key = s.require_api_key("Fly.io")?;
        let auth = FlyAuth::parse(key.expose()).ok_or_else(|| {
            Error::new(
                ErrorKind::Unauthorized,
                "FLY_API_TOKEN is empty: set it to a Fly API token (`fly tokens create deploy`)",
            )
        })?;
        let app = s.get(FlyConfigKey::App).map(str::to_string);
        if let Some(app) = &app {
            validate_app(app)?;
        }
        let org = s.get(FlyConfigKey::Org).unwrap_or(DEFAULT_ORG).to_string();
        validate_org(&org)?;
        let base = s
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let api = ApiClient::new(
            HttpClient::shared(),
            NAME,
            "machines",
            &base,
            ApiAuth::Scheme(auth.scheme, auth.credential),
        )?
        .with_retry(self.retry.unwrap_or_default())
        .with_error_parser(error::parse_error);
        Ok(FlyMachines {
            api: MachinesApi::new(api, self.limits),
            app,
            org,
            reconcile: self
                .reconcile
                .unwrap_or(ReconcilePolicy::new(4, Duration::from_millis(500))),
        })
    }
}

fn validate_org(org: &str) -> Result<()> {
    let ok = !org.is_empty()
        && org.len() <= 63
        && org
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            "org",
            format!("{org:?} is not a Fly organisation slug; use lowercase letters, digits and - (or personal)"),
        ))
    }
}

fn validate_app(app: &str) -> Result<()> {
    let ok = !app.is_empty()
        && app.len() <= 63
        && app
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && !app.starts_with('-');
    if ok {
        Ok(())
    } else {
        Err(Error::validation(
            "app",
            format!("{app:?} is not a Fly app name; use lowercase letters, digits and -"),
        ))
    }
}

#[async_trait]
impl Provider for FlyMachines {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new([
            Capability::Stop,
            Capability::Start,
            Capability::SpawnCpu,
            Capability::SpawnWithPorts,
            Capability::CommandDeadline,
        ])
    }

    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        if let Some(g) = req.gpu {
            return Err(Error::unsupported(
                NAME,
                "spawn",
                format!("Fly.io retired GPU Machines in 2026, so {g} cannot be requested; orgs that still have GPU access can pass --gpu native:KIND (e.g. native:a100-pcie-40gb) or --provider-opt gpu_kind=KIND"),
            ));
        }
        let app = self.app_for(req)?;
        validate_app(&app)?;
        self.ensure_app(&app, req).await?;
        let (auth, env) = AuthHandle::mint_for(req);
        let body = translate::create_body(req, &env)?;
        let launch = Launch::new(NAME, "machine", req, self.reconcile);
        let create = async {
            let m = self.api.create(&app, body).await?;
            match m.get("id").and_then(Value::as_str) {
                Some(id) if !id.is_empty() => Ok(m),
                _ => Err(no_id(NAME, "machine", None)),
            }
        };
        // The launch's app, which need not be the default one `list` shows.
        let everything = ListFilter::all();
        let list = || self.list_app(&app, &everything);
        let terminate = |id: String| async move { self.terminate(&id).await };
        let mut c = match create_once(&launch, create, list, terminate).await? {
            Launched::Created(m) => {
                let mid = m.get("id").and_then(Value::as_str).unwrap_or_default();
                translate::compute(&app, self.external_id(&app, mid), &m)
            }
            Launched::Adopted(c) => *c,
        };
        c.auth = auth;
        Ok(c)
    }

    async fn get(&self, id: &str) -> Result<Compute> {
        let (app, mid) = self.locate(id)?;
        let m = self.api.get(&app, &mid).await?;
        let c = translate::compute(&app, id.to_string(), &m);
        if c.status == crate::spec::ComputeStatus::Terminated {
            return Err(
                Error::new(ErrorKind::NotFound, format!("machine {id} was destroyed"))
                    .with_provider(NAME),
            );
        }
        Ok(c)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
        let apps = self.apps_to_list().await?;
        let mut out = Vec::new();
        for (app, machines) in self.machines_of(apps).await? {
            out.extend(
                machines
                    .iter()
                    .map(|m| {
                        let mid = m.get("id").and_then(|v| v.as_str()).unwrap_or_default();
                        translate::compute(&app, self.external_id(&app, mid), m)
                    })
                    .filter(|c| c.status != crate::spec::ComputeStatus::Terminated)
                    .filter(|c| filter.matches(c)),
            );
        }
        Ok(out)
    }

    async fn stop(&self, id: &str) -> Result<()> {
        let (app, mid) = self.locate(id)?;
        self.api.action(&app, &mid, "stop").await
    }

    async fn start(&self, id: &str) -> Result<()> {
        let (app, mid) = self.locate(id)?;
        self.api.action(&app, &mid, "start").await
    }

    async fn terminate(&self, id: &str) -> Result<()> {
        let (app, mid) = self.locate(id)?;
        self.api.destroy(&app, &mid).await
    }

    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        Err(Error::unsupported(
            NAME,
            "gpu_types",
            "the Machines API publishes no GPU price catalog",
        ))
    }
}
