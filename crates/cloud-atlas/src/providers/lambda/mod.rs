//! Lambda Cloud (Lambda Labs) on-demand GPU instances as a cloud-atlas provider (feature `lambda`).
//!
//! API: <https://docs.lambda.ai/api/cloud> (base `https://cloud.lambda.ai`, paths under
//! `/api/v1`, spec 1.8.3). Auth: `LAMBDA_API_KEY` (alias `LAMBDA_LABS_API_KEY`), sent as
//! `Authorization: Bearer …`.
//!
//! # Spawn
//! 1. **Instance type**: the canonical GPU and count become `gpu_{n}x_{fragment}` (the
//!    `lambda` column of the GPU table, e.g. `gpu_1x_a10`); other catalog types with the
//!    same GPU and count are accepted too (`gpu_8x_a100` is the 40 GB SXM4 type). CPU-only
//!    requests take the cheapest GPU-less type meeting `cpus`/`memory_gb`. Provider option
//!    `instance_type=NAME` pins a type.
//! 2. **Region**: region hints (in order) ∩ regions with capacity now, from the catalog
//!    (cached [`DEFAULT_CATALOG_TTL`]); with no hints, the first region with capacity.
//!    Otherwise spawn fails with `Capacity` naming what was asked and what has capacity.
//! 3. **SSH key** (Lambda requires exactly one): provider option `ssh_key=NAME` (or
//!    `ssh_keys`), else `ssh_key_names = ["NAME"]` under `[providers.lambda]` in
//!    `atlas.toml`, else [`LambdaBuilder::with_ssh_keys`]; missing → `Validation` saying so.
//! 4. **Image**: Lambda launches VM images, not containers. `image` is a container image
//!    that cloud-init runs with Docker on the VM (Lambda Stack ships Docker and the NVIDIA
//!    toolkit; see [`translate::container_script`]): env and minted auth credentials go
//!    into a root-only env file, requested ports are published on the same host ports.
//!    `--image lambda-stack` launches the plain VM. The VM image itself is Lambda's
//!    default unless provider option `vm_image_family` / `vm_image_id` names one
//!    (`GET /api/v1/images`); provider option `user_data` sends your own cloud-init.
//!    The request's `command` follows the image (`docker run … IMAGE CMD…`); on the
//!    plain VM it runs as root in the background ([`translate::vm_command_script`]).
//! 5. **Ports**: opened in the account's inbound firewall rules (only missing rules are
//!    added; see [`firewall`]; opt out with `open_ports = false`), reported as
//!    `http://ip:port` / `tcp://ip:port` once the instance has an IP.
//! 6. **Name and tags**: the instance is named `req.launch_name()` and tagged with the
//!    launch id; a launch that fails ambiguously (timeout or 5xx after it was sent, a
//!    2xx that cannot be decoded or names no instance) is reconciled by listing instances
//!    for that name (the shared `providers::reconcile` step) before anything else: never
//!    two instances. A launch declined with 429 is sent again by the HTTP layer.
//!
//! # Get, list, terminate
//! Lambda statuses map as `booting` → starting, `active` → running, `terminating` →
//! terminated, `unhealthy` → `Other("unhealthy")`. `get` of a `terminated` or `preempted`
//! instance is `NotFound`; `list` leaves out terminated ones. `terminate` reads the
//! instance first, so terminating something already terminating or gone is `NotFound`.
//!
//! # Capabilities and limits
//! GPU catalog with live regional stock, GPU and CPU spawns, ports. Lambda cannot pause
//! instances: `stop`/`start` are not declared and return `Unsupported` (terminate instead;
//! keep data on a [file system](file_systems)). [`Lambda::restart`] reboots an instance.
//! No machine-side deadline: a Lambda VM bills until it is terminated through the API,
//! and the account key is never put on a machine, so a `max_runtime` is refused
//! (`Unsupported`) before anything is created; a tracked session's orchestrator holds it.
//! Requests are paced to about 1/s and launches to about one per 12 s ([`LambdaLimits`]);
//! a 429 that comes anyway is honoured (`Retry-After`) and a rate-limited launch is
//! retried after it, because a 429 means nothing was created.
//!
//! # Configuration (`[providers.lambda]` in `atlas.toml`)
//! Supported keys: `api_key`, `base_url` (or `ATLAS_LAMBDA_BASE_URL`), `ssh_key_names`
//! (list or string), `open_ports` (bool, default true), `firewall_source` (CIDR, default
//! `0.0.0.0/0`), `catalog_ttl` (duration, default `15s`).

pub mod catalog;
pub mod config;
pub mod error;
pub mod file_systems;
pub mod firewall;
pub mod instances;
pub mod ssh_keys;
pub mod translate;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::Value;

use super::reconcile::{create_once_listed, Launch, Launched, ReconcilePolicy};
use crate::auth::AuthHandle;
use crate::config::{Config, ProviderSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{ApiAuth, ApiClient, HttpClient, Pacer, RetryConfig};
use crate::provider::Provider;
use crate::spec::{
    Capabilities, Capability, Compute, ComputeRequest, ComputeStatus, GpuType, ListFilter,
};

pub use catalog::{CatalogApi, DEFAULT_CATALOG_TTL};
pub use config::LambdaConfigKey;
pub use file_systems::{FileSystem, FileSystemsApi};
pub use firewall::{FirewallApi, FirewallRule};
pub use instances::InstancesApi;
pub use ssh_keys::{SshKey, SshKeysApi};
use translate::NAME;

/// Default API base URL.
pub const DEFAULT_BASE_URL: &str = "https://cloud.lambda.ai";
/// Env var holding the API key.
pub const LAMBDA_API_KEY_ENV: &str = "LAMBDA_API_KEY";
/// Older alias of [`LAMBDA_API_KEY_ENV`].
pub const LAMBDA_LABS_API_KEY_ENV: &str = "LAMBDA_LABS_API_KEY";
/// Most GPUs in one Lambda instance.
pub const MAX_GPUS_PER_INSTANCE: u32 = 8;

/// Client-side pacing, per Lambda's documented limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LambdaLimits {
    /// Interval between any two requests (default 1 s).
    pub request_interval: Duration,
    /// Interval between launches (default 12 s). A launch Lambda declines with 429 is
    /// sent again by the HTTP layer's retry policy after `Retry-After`.
    pub launch_interval: Duration,
}

impl Default for LambdaLimits {
    fn default() -> LambdaLimits {
        LambdaLimits {
            request_interval: Duration::from_secs(1),
            launch_interval: Duration::from_secs(12),
        }
    }
}

impl LambdaLimits {
    /// Limits with these intervals (tests use short ones).
    pub fn new(request_interval: Duration, launch_interval: Duration) -> LambdaLimits {
        LambdaLimits {
            request_interval,
            launch_interval,
        }
    }
}

/// The Lambda Cloud provider.
#[derive(Debug, Clone)]
pub struct Lambda {
    instances: InstancesApi,
    catalog: CatalogApi,
    ssh_keys: SshKeysApi,
    file_systems: FileSystemsApi,
    firewall: FirewallApi,
    ssh_key_names: Vec<String>,
    open_ports: bool,
    firewall_source: String,
    reconcile: ReconcilePolicy,
}

/// Builder for [`Lambda`].
#[derive(Debug, Clone, Default)]
pub struct LambdaBuilder {
    settings: ProviderSettings,
    ssh_keys: Option<Vec<String>>,
    retry: Option<RetryConfig>,
    limits: LambdaLimits,
    catalog_ttl: Option<Duration>,
    open_ports: Option<bool>,
    firewall_source: Option<String>,
    reconcile: Option<ReconcilePolicy>,
}

impl Lambda {
    /// Build from `LAMBDA_API_KEY` (or `LAMBDA_LABS_API_KEY`) and `ATLAS_LAMBDA_BASE_URL`.
    ///
    /// # Errors
    /// `Unauthorized` naming `LAMBDA_API_KEY` when no key is set.
    pub fn from_env() -> Result<Lambda> {
        LambdaBuilder::from_env().build()
    }

    /// The instance endpoints (list, get, launch, terminate, restart, rename).
    pub fn instances(&self) -> &InstancesApi {
        &self.instances
    }
    /// The instance-type catalog with live regional capacity.
    pub fn catalog(&self) -> &CatalogApi {
        &self.catalog
    }
    /// SSH keys on the account.
    pub fn ssh_keys(&self) -> &SshKeysApi {
        &self.ssh_keys
    }
    /// Shared file systems.
    pub fn file_systems(&self) -> &FileSystemsApi {
        &self.file_systems
    }
    /// Inbound firewall rules.
    pub fn firewall(&self) -> &FirewallApi {
        &self.firewall
    }

    /// Reboot an instance.
    ///
    /// # Errors
    /// `NotFound` when the instance is gone.
    pub async fn restart(&self, id: &str) -> Result<Compute> {
        let restarted = self.instances.restart(&[id]).await?;
        match restarted.iter().find(|i| i.get("id").and_then(Value::as_str) == Some(id)) {
            Some(v) => translate::compute(v),
            None => Err(Error::new(
                ErrorKind::Provider,
                format!("Lambda did not report instance {id} as restarted; check it with `atlas get {id}`"),
            )
            .with_provider(NAME)
            .with_operation("restart")),
        }
    }

    fn opens_ports(&self, req: &ComputeRequest) -> Result<bool> {
        match req.provider_opts.get("open_ports") {
            None => Ok(self.open_ports),
            Some(Value::Bool(b)) => Ok(*b),
            Some(Value::String(s)) if s == "true" || s == "false" => Ok(s == "true"),
            Some(_) => Err(Error::validation(
                "provider_opts.open_ports",
                "must be true or false",
            )),
        }
    }

    async fn launch(
        &self,
        req: &ComputeRequest,
        body: Value,
        target: &translate::LaunchTarget,
    ) -> Result<String> {
        let launch = Launch::new(NAME, "instance", req, self.reconcile);
        let launched = self.instances.launch(body);
        match create_once_listed(self, &launch, launched).await {
            Ok(Launched::Created(ids)) => Ok(ids[0].clone()),
            Ok(Launched::Adopted(c)) => Ok(c.id),
            Err(e) if e.kind() == ErrorKind::Capacity => {
                self.catalog.invalidate();
                let msg = format!(
                    "Lambda has no capacity for {} in {} right now: {}",
                    target.instance_type,
                    target.region,
                    e.message()
                );
                Err(e.with_message(msg))
            }
            Err(e) => Err(e),
        }
    }
}

impl LambdaBuilder {
    /// Settings from the environment: `LAMBDA_API_KEY` (or `LAMBDA_LABS_API_KEY`),
    /// `ATLAS_LAMBDA_BASE_URL` (the env vars of [`LambdaConfigKey`]).
    pub fn from_env() -> LambdaBuilder {
        LambdaBuilder::from_settings(ProviderSettings::from_env(NAME))
    }

    /// Settings from a loaded configuration: `[providers.lambda]` in `atlas.toml`, then
    /// the environment it was loaded with.
    pub fn from_config(config: &Config) -> LambdaBuilder {
        LambdaBuilder::from_settings(config.provider_settings(NAME))
    }

    /// Resolved settings (keys of [`LambdaConfigKey`]; checked in [`build`](Self::build)).
    pub fn from_settings(settings: ProviderSettings) -> LambdaBuilder {
        LambdaBuilder {
            settings,
            ..LambdaBuilder::default()
        }
    }

    /// Set one key from its string form, as the environment and `atlas.toml` give it
    /// (lists comma-separated; checked in [`build`](Self::build)).
    pub fn with_config(mut self, key: LambdaConfigKey, value: impl Into<String>) -> LambdaBuilder {
        self.settings.set(key, value);
        self
    }

    /// The API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> LambdaBuilder {
        self.settings.api_key = Some(crate::auth::Secret::new(key.into()));
        self
    }

    /// The base URL (default [`DEFAULT_BASE_URL`]).
    pub fn with_base_url(mut self, url: impl Into<String>) -> LambdaBuilder {
        self.settings.base_url = Some(url.into());
        self
    }

    /// SSH key names used when a request names none (overrides `ssh_key_names` from config).
    pub fn with_ssh_keys<I, S>(mut self, names: I) -> LambdaBuilder
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.ssh_keys = Some(names.into_iter().map(Into::into).collect());
        self
    }

    /// The retry policy of the HTTP layer.
    pub fn with_retry(mut self, retry: RetryConfig) -> LambdaBuilder {
        self.retry = Some(retry);
        self
    }

    /// Client-side pacing (defaults are Lambda's documented limits).
    pub fn with_limits(mut self, limits: LambdaLimits) -> LambdaBuilder {
        self.limits = limits;
        self
    }

    /// How long a fetched catalog is reused (default [`DEFAULT_CATALOG_TTL`]).
    pub fn with_catalog_ttl(mut self, ttl: Duration) -> LambdaBuilder {
        self.catalog_ttl = Some(ttl);
        self
    }

    /// Whether spawns open requested ports in the firewall (default true).
    pub fn with_open_ports(mut self, open: bool) -> LambdaBuilder {
        self.open_ports = Some(open);
        self
    }

    /// Source network (CIDR) of firewall rules spawns add (default `0.0.0.0/0`).
    pub fn with_firewall_source(mut self, cidr: impl Into<String>) -> LambdaBuilder {
        self.firewall_source = Some(cidr.into());
        self
    }

    /// How many listings, and the first pause between them, before an ambiguous launch
    /// is concluded to have created nothing (default 4 listings from 2 s, doubling).
    pub fn with_reconcile(mut self, attempts: u32, first_delay: Duration) -> LambdaBuilder {
        self.reconcile = Some(ReconcilePolicy::new(attempts, first_delay));
        self
    }

    /// Build.
    ///
    /// # Errors
    /// `Unauthorized` naming `LAMBDA_API_KEY` when no key is set; `Validation` naming the
    /// setting for a bad base URL or option.
    pub fn build(self) -> Result<Lambda> {
        let mut s = self.settings;
        s.provider = NAME.to_string();
        s.check::<LambdaConfigKey>()?;
        let key = s.require_api_key("Lambda")?;
        if key.expose().trim().is_empty() {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "LAMBDA_API_KEY is empty: set it to a key from https://cloud.lambda.ai/api-keys",
            )
            .with_provider(NAME));
        }
        let ssh_key_names = match self.ssh_keys {
            Some(k) => k,
            None => s.list(LambdaConfigKey::SshKeyNames).unwrap_or_default(),
        };
        let open_ports = match self.open_ports {
            Some(b) => b,
            None => s.bool(LambdaConfigKey::OpenPorts)?.unwrap_or(true),
        };
        let firewall_source = match self.firewall_source {
            Some(c) => c,
            None => s
                .get(LambdaConfigKey::FirewallSource)
                .unwrap_or(firewall::ANYWHERE)
                .to_string(),
        };
        let catalog_ttl = match self.catalog_ttl {
            Some(t) => t,
            None => s
                .duration(LambdaConfigKey::CatalogTtl)?
                .unwrap_or(DEFAULT_CATALOG_TTL),
        };
        let base = s
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let pacer = Arc::new(Pacer::new(self.limits.request_interval, 1));
        let api = ApiClient::new(
            HttpClient::shared(),
            NAME,
            "cloud",
            &base,
            ApiAuth::Bearer(key),
        )?
        .with_retry(self.retry.unwrap_or_default())
        .with_pacer(pacer)
        .with_error_parser(error::parse_error);
        let launch_pacer = Arc::new(Pacer::new(self.limits.launch_interval, 1));
        Ok(Lambda {
            instances: InstancesApi::new(api.clone(), launch_pacer),
            catalog: CatalogApi::new(api.clone(), catalog_ttl),
            ssh_keys: SshKeysApi::new(api.clone()),
            file_systems: FileSystemsApi::new(api.clone()),
            firewall: FirewallApi::new(api),
            ssh_key_names,
            open_ports,
            firewall_source,
            reconcile: self
                .reconcile
                .unwrap_or(ReconcilePolicy::new(4, Duration::from_secs(2))),
        })
    }
}

fn gone(native: Option<&str>) -> bool {
    matches!(native, Some("terminated" | "preempted"))
}

#[async_trait]
impl Provider for Lambda {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new([
            Capability::GpuTypes,
            Capability::SpawnGpu,
            Capability::SpawnCpu,
            Capability::SpawnWithPorts,
        ])
        .with_max_gpus_per_instance(MAX_GPUS_PER_INSTANCE)
    }

    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        if req.spot {
            return Err(Error::unsupported(
                NAME,
                "spawn",
                "Lambda has no spot/interruptible instances",
            ));
        }
        // A VM bills until terminated through the API; nothing on it may end it.
        crate::spec::deadline::machine_command(NAME, req, None)?;
        if req.volume_gb.is_some() {
            return Err(Error::unsupported(
                NAME,
                "spawn",
                "Lambda instances have fixed local storage; attach a shared file system instead (network_volume_id or --provider-opt file_systems=NAME)",
            ));
        }
        if req.native_gpu.is_some() && req.opt_str("instance_type").is_some() {
            return Err(Error::validation(
                "provider_opts.instance_type",
                "set together with a native GPU id; give one of them (--gpu native:gpu_8x_a100 names the instance type too)",
            ));
        }
        if req.wants_gpu() && req.gpu_count > MAX_GPUS_PER_INSTANCE {
            return Err(Error::validation(
                "gpu_count",
                format!(
                    "{} is too many; Lambda instances have 1-{MAX_GPUS_PER_INSTANCE} GPUs",
                    req.gpu_count
                ),
            ));
        }
        if let Some(g) = req.gpu {
            if req.opt_str("instance_type").is_none() {
                g.require_provider_id(NAME)?;
            }
        }
        let keys = translate::ssh_key_names(req, &self.ssh_key_names)?;
        let open_ports = self.opens_ports(req)?;
        let source = req
            .opt_str("firewall_source")
            .unwrap_or(&self.firewall_source)
            .to_string();
        let catalog = self.catalog.list().await?;
        let (target, entry) = catalog::choose(&catalog, req, keys)?;
        let (auth, env) = AuthHandle::mint_for(req);
        let body = translate::launch_body(req, &target, &env)?;
        if open_ports && !req.ports.is_empty() {
            let added = self.firewall.open_ports(&req.ports, &source).await?;
            if !added.is_empty() {
                tracing::info!(
                    provider = NAME,
                    rules = added.len(),
                    "opened ports in the Lambda firewall"
                );
            }
        }
        let id = self.launch(req, body, &target).await?;
        let mut c =
            translate::launched(&id, req, &target, entry.as_ref().map(|e| &e.instance_type));
        c.auth = auth;
        Ok(c)
    }

    async fn get(&self, id: &str) -> Result<Compute> {
        let v = self.instances.get(id).await?;
        let native = v.get("status").and_then(Value::as_str);
        if gone(native) {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("instance {id} was {}", native.unwrap_or("terminated")),
            )
            .with_provider(NAME)
            .with_operation("get"));
        }
        translate::compute(&v)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
        let all = self.instances.list().await?;
        let mut out = Vec::with_capacity(all.len());
        for v in &all {
            let c = translate::compute(v)?;
            if c.status != ComputeStatus::Terminated && filter.matches(&c) {
                out.push(c);
            }
        }
        Ok(out)
    }

    async fn stop(&self, _id: &str) -> Result<()> {
        Err(Error::unsupported(
            NAME,
            "stop",
            "Lambda cannot pause instances; terminate the instance instead (keep data on a Lambda file system)",
        ))
    }

    async fn start(&self, _id: &str) -> Result<()> {
        Err(Error::unsupported(
            NAME,
            "start",
            "Lambda cannot pause or resume instances; spawn a new one instead",
        ))
    }

    async fn terminate(&self, id: &str) -> Result<()> {
        // Lambda may accept a second terminate of a terminating instance; the contract
        // says `NotFound` once it is already going or gone.
        let v = self.instances.get(id).await?;
        if let Some(s @ ("terminating" | "terminated" | "preempted")) =
            v.get("status").and_then(Value::as_str)
        {
            return Err(
                Error::new(ErrorKind::NotFound, format!("instance {id} is already {s}"))
                    .with_provider(NAME)
                    .with_operation("terminate"),
            );
        }
        self.instances.terminate(&[id]).await.map(|_| ())
    }

    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        let cat = self.catalog.list().await?;
        Ok(cat.iter().map(translate::gpu_type).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builder_reads_settings_and_names_the_env_var() {
        let e = LambdaBuilder::default().build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(e.message().contains(LAMBDA_API_KEY_ENV), "{e}");
        use LambdaConfigKey as K;
        let b = LambdaBuilder::default()
            .with_config(K::ApiKey, "k")
            .with_config(K::SshKeyNames, "a, b")
            .with_config(K::CatalogTtl, "5s")
            .with_config(K::OpenPorts, "false");
        let l = b.clone().build().unwrap();
        assert_eq!(l.ssh_key_names, vec!["a", "b"]);
        assert!(!l.open_ports);
        assert!(!format!("{l:?}").contains("\"k\""));
        let e = b.with_config(K::OpenPorts, "maybe").build().unwrap_err();
        assert!(e.message().starts_with("open_ports"), "{e}");
        let e = LambdaBuilder::default()
            .with_api_key("k")
            .with_base_url("ftp://x")
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
    }

    #[tokio::test]
    async fn stop_and_start_are_unsupported_without_a_request() {
        let l = LambdaBuilder::default()
            .with_api_key("k")
            .with_base_url("http://127.0.0.1:9")
            .build()
            .unwrap();
        let e = l.stop("i").await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(e.message().contains("Lambda cannot pause instances"), "{e}");
        assert_eq!(
            l.start("i").await.unwrap_err().kind(),
            ErrorKind::Unsupported
        );
        assert!(!l.capabilities().contains(Capability::Stop));
    }
}
