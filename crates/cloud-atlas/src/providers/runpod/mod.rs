//! RunPod as a cloud-atlas provider (feature `runpod`), on REST v2 and the serverless
//! runtime API.
//!
//! REST v1 is deprecated (retirement announced for 2026-12-01) and GraphQL retires in
//! early 2027, so pods, catalog, templates, endpoints, network volumes and billing use
//! REST v2 (`https://api.runpod.io/v2/…`, [`DEFAULT_BASE_URL`]); jobs use the runtime API
//! (`https://api.runpod.ai/v2/{endpoint_id}/…`, [`serverless`]).
//!
//! ```no_run
//! # async fn demo() -> cloud_atlas::Result<()> {
//! use cloud_atlas::providers::runpod::RunPod;
//! use cloud_atlas::{ComputeRequest, Gpu, Provider};
//!
//! let runpod = RunPod::from_env()?; // RUNPOD_API_KEY
//! let pod = runpod
//!     .spawn(&ComputeRequest::builder().gpu(Gpu::RTX_4090).image("img").port("8000/http").build()?)
//!     .await?;
//! for t in runpod.templates().list().await? {
//!     println!("{} {}", t.id, t.name);
//! }
//! runpod.terminate(&pod.id).await?;
//! # Ok(()) }
//! ```
//!
//! # Spawn
//! [`translate::create_body`] maps the request: GPU id from the canonical table (or
//! `--provider-opt gpu_id=…` for a RunPod id the table lacks) and count, or a CPU pod
//! (`cpu_flavor`, vCPUs a power of two); secure/community cloud; ports (`http`/`tcp`);
//! env merged with the minted auth env (`ATLAS_PRESHARED_KEY` / `ATLAS_SIGNING_SECRET`);
//! container disk; a persistent volume (≥ 10 GB) or a network volume; template; data
//! centres from the region hints; and the unique name [`ComputeRequest::launch_name`].
//!
//! The request's `command` is v2's `args` string (shell-quoted; v2 has no entrypoint
//! field, so an image `ENTRYPOINT` receives it as arguments).
//!
//! Not expressible in REST v2, so not faked: **spot** (v2 has no interruptible pods:
//! `spot: true` is `Unsupported`) and a **provider-side deadline** (v2 has no
//! terminate-after field, so [`Capability::ProviderDeadline`] is not declared). A
//! `max_runtime` with a command is held by the pod itself
//! ([`Capability::CommandDeadline`]): the command is wrapped so the pod runs
//! `runpodctl remove pod $RUNPOD_POD_ID` when it ends or at max runtime (RunPod puts
//! `runpodctl` and a pod-scoped key on every pod; see [`crate::spec::deadline`]). Without
//! a command, `max_runtime` is refused (`Unsupported`) before anything is created.
//!
//! # A create that cannot duplicate
//! RunPod has no idempotency key and has answered 500 after creating a billing pod. The
//! create is sent once ([`Idempotency::Unsafe`](crate::http::Idempotency::Unsafe)); after
//! an ambiguous failure (timeout or 5xx after the request was sent, a 2xx that cannot be
//! decoded or names no pod) the pods are listed (the shared `providers::reconcile` step)
//! for the launch name, several times with growing pauses. A pod found is returned (with
//! the credentials minted for it); several (never expected) keep the oldest and the rest
//! are terminated; none means the original error is returned and a new spawn is safe.
//!
//! # Pacing
//! Every response's `RateLimit` / `RateLimit-Policy` headers feed a [`RateGate`] that
//! slows the following requests before RunPod would answer 429 ([`ratelimit`]).

pub mod billing;
pub mod catalog;
pub mod config;
pub mod endpoints;
pub mod error;
pub mod logs;
pub mod network_volumes;
pub mod pods;
pub mod ratelimit;
mod resource;
pub mod serverless;
pub mod templates;
pub mod translate;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde::de::DeserializeOwned;
use serde_json::Value;

use super::reconcile::{create_once_listed, no_id, Launch, Launched, ReconcilePolicy};
use crate::auth::{AuthHandle, Secret};
use crate::config::{Config, ProviderSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{ApiAuth, ApiClient, HttpClient, RetryConfig};
use crate::provider::{Provider, Serverless};
use crate::spec::{
    Capabilities, Capability, Compute, ComputeRequest, ComputeStatus, GpuType, ListFilter,
};

pub use billing::{BillingApi, BillingQuery, BillingSummary, BucketSize};
pub use catalog::{Catalog, CatalogQuery, DEFAULT_CATALOG_TTL};
pub use config::RunPodConfigKey;
pub use endpoints::{Endpoint, EndpointsApi};
pub use logs::{LogFollow, LogLine, LogQuery, LogSource, LogStopper, LogsApi};
pub use network_volumes::{NetworkVolume, NetworkVolumesApi};
pub use pods::{PodAction, PodsApi};
pub use ratelimit::{RateGate, RateWindow, Rest};
pub use serverless::{PollConfig, RunPodServerless, DEFAULT_SERVERLESS_BASE_URL};
pub use templates::{Template, TemplatesApi};
use translate::NAME;

/// Default REST v2 base URL (paths are `/v2/...`).
pub const DEFAULT_BASE_URL: &str = "https://api.runpod.io";
/// Longest a request waits for the rate-limit gate unless configured otherwise.
pub const DEFAULT_RATE_LIMIT_MAX_WAIT: Duration = Duration::from_secs(60);

/// The RunPod provider. Cheap to clone.
#[derive(Debug, Clone)]
pub struct RunPod {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    rest: Rest,
    serverless: RunPodServerless,
    catalog: Catalog,
    reconcile: ReconcilePolicy,
}

/// Builder for [`RunPod`] (explicit calls > `atlas.toml` > env vars), set by
/// [`RunPodConfigKey`] from any source: [`from_env`](Self::from_env),
/// [`from_config`](Self::from_config), [`with_config`](Self::with_config).
#[derive(Debug, Clone, Default)]
pub struct RunPodBuilder {
    settings: ProviderSettings,
    retry: Option<RetryConfig>,
    catalog_ttl: Option<Duration>,
    reconcile: Option<ReconcilePolicy>,
    rate_limit_max_wait: Option<Duration>,
    poll: Option<PollConfig>,
}

impl RunPod {
    /// Build from `RUNPOD_API_KEY`, `ATLAS_RUNPOD_BASE_URL` and
    /// `ATLAS_RUNPOD_SERVERLESS_BASE_URL`.
    ///
    /// # Errors
    /// `Unauthorized` naming `RUNPOD_API_KEY` when no key is set.
    pub fn from_env() -> Result<RunPod> {
        RunPodBuilder::from_env().build()
    }

    /// Start a builder.
    pub fn builder() -> RunPodBuilder {
        RunPodBuilder::default()
    }

    /// Raw pod calls (native JSON).
    pub fn pods(&self) -> PodsApi {
        PodsApi::new(self.inner.rest.clone())
    }
    /// Templates.
    pub fn templates(&self) -> TemplatesApi {
        TemplatesApi::new(self.inner.rest.clone())
    }
    /// Serverless endpoints (management; jobs go through [`RunPod::jobs`]).
    pub fn endpoints(&self) -> EndpointsApi {
        EndpointsApi::new(self.inner.rest.clone())
    }
    /// Network volumes.
    pub fn network_volumes(&self) -> NetworkVolumesApi {
        NetworkVolumesApi::new(self.inner.rest.clone())
    }
    /// Billing history.
    pub fn billing(&self) -> BillingApi {
        BillingApi::new(self.inner.rest.clone())
    }
    /// Pod logs.
    pub fn logs(&self) -> LogsApi {
        LogsApi::new(self.inner.rest.clone())
    }
    /// The cached GPU catalog.
    pub fn catalog(&self) -> &Catalog {
        &self.inner.catalog
    }
    /// The serverless job API.
    pub fn jobs(&self) -> &RunPodServerless {
        &self.inner.serverless
    }
    /// The REST rate-limit gate (windows seen, requests delayed).
    pub fn rate_gate(&self) -> &Arc<RateGate> {
        self.inner.rest.gate()
    }

    /// Restart a running pod's container in place.
    ///
    /// # Errors
    /// `Validation` when the pod is not running; `NotFound`.
    pub async fn restart(&self, id: &str) -> Result<()> {
        self.pods().action(id, PodAction::Restart).await.map(|_| ())
    }
}

impl RunPodBuilder {
    /// Settings from the environment: `RUNPOD_API_KEY`, `ATLAS_RUNPOD_BASE_URL`,
    /// `ATLAS_RUNPOD_SERVERLESS_BASE_URL` (the env vars of [`RunPodConfigKey`]).
    pub fn from_env() -> RunPodBuilder {
        RunPodBuilder::from_settings(ProviderSettings::from_env(NAME))
    }

    /// Settings from a loaded configuration: `[providers.runpod]` in `atlas.toml`, then
    /// the environment it was loaded with.
    pub fn from_config(config: &Config) -> RunPodBuilder {
        RunPodBuilder::from_settings(config.provider_settings(NAME))
    }

    /// Resolved settings (keys of [`RunPodConfigKey`]; checked in [`build`](Self::build)).
    pub fn from_settings(settings: ProviderSettings) -> RunPodBuilder {
        RunPodBuilder {
            settings,
            ..RunPodBuilder::default()
        }
    }

    /// Set one key from its string form, as the environment and `atlas.toml` give it
    /// (checked in [`build`](Self::build)).
    pub fn with_config(mut self, key: RunPodConfigKey, value: impl Into<String>) -> RunPodBuilder {
        self.settings.set(key, value);
        self
    }

    /// The API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> RunPodBuilder {
        self.settings.api_key = Some(Secret::new(key.into()));
        self
    }
    /// The REST v2 base URL (default [`DEFAULT_BASE_URL`]).
    pub fn with_base_url(mut self, url: impl Into<String>) -> RunPodBuilder {
        self.settings.base_url = Some(url.into());
        self
    }
    /// The serverless runtime base URL (default [`DEFAULT_SERVERLESS_BASE_URL`]).
    pub fn with_serverless_base_url(self, url: impl Into<String>) -> RunPodBuilder {
        self.with_config(RunPodConfigKey::ServerlessBaseUrl, url)
    }
    /// The retry policy of the HTTP layer.
    pub fn with_retry(mut self, retry: RetryConfig) -> RunPodBuilder {
        self.retry = Some(retry);
        self
    }
    /// How long a GPU catalog read is reused (default [`DEFAULT_CATALOG_TTL`]).
    pub fn with_catalog_ttl(mut self, ttl: Duration) -> RunPodBuilder {
        self.catalog_ttl = Some(ttl);
        self
    }
    /// How many listings, and the first pause between them, before an ambiguous create
    /// is concluded to have created nothing (default 4 listings from 1 s, doubling).
    pub fn with_reconcile(mut self, attempts: u32, first_delay: Duration) -> RunPodBuilder {
        self.reconcile = Some(ReconcilePolicy::new(attempts, first_delay));
        self
    }
    /// The longest one request waits for the rate-limit gate (default 60 s).
    pub fn with_rate_limit_max_wait(mut self, d: Duration) -> RunPodBuilder {
        self.rate_limit_max_wait = Some(d);
        self
    }
    /// How serverless `stream`/`run_sync` poll.
    pub fn with_poll(mut self, poll: PollConfig) -> RunPodBuilder {
        self.poll = Some(poll);
        self
    }

    /// Build.
    ///
    /// # Errors
    /// `Unauthorized` naming `RUNPOD_API_KEY` when no key is set; `Validation` naming
    /// the key (`base_url`, `serverless_base_url`, `catalog_ttl`, …) when malformed.
    pub fn build(self) -> Result<RunPod> {
        let mut s = self.settings;
        s.provider = NAME.to_string();
        s.check::<RunPodConfigKey>()?;
        let key = s.require_api_key("RunPod")?;
        if key.expose().trim().is_empty() {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "RUNPOD_API_KEY is empty: set it to a RunPod API key",
            )
            .with_provider(NAME));
        }
        let catalog_ttl = match self.catalog_ttl {
            Some(t) => t,
            None => s
                .duration(RunPodConfigKey::CatalogTtl)?
                .unwrap_or(DEFAULT_CATALOG_TTL),
        };
        let max_wait = match self.rate_limit_max_wait {
            Some(d) => d,
            None => s
                .duration(RunPodConfigKey::RateLimitMaxWait)?
                .unwrap_or(DEFAULT_RATE_LIMIT_MAX_WAIT),
        };
        let retry = self.retry.unwrap_or_default();
        let rest_base = s
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.into());
        let rest = paced_client("rest", &rest_base, &key, retry, max_wait)?;
        let sl_base = s
            .get(RunPodConfigKey::ServerlessBaseUrl)
            .unwrap_or(DEFAULT_SERVERLESS_BASE_URL)
            .to_string();
        let sl = paced_client("serverless", &sl_base, &key, retry, max_wait).map_err(|e| {
            if e.kind() == ErrorKind::Validation {
                Error::validation(RunPodConfigKey::ServerlessBaseUrl.as_str(), e.message())
            } else {
                e
            }
        })?;
        Ok(RunPod {
            inner: Arc::new(Inner {
                catalog: Catalog::new(rest.clone(), catalog_ttl),
                serverless: RunPodServerless::new(sl, self.poll.unwrap_or_default()),
                rest,
                reconcile: self
                    .reconcile
                    .unwrap_or(ReconcilePolicy::new(4, Duration::from_secs(1))),
            }),
        })
    }
}

fn paced_client(
    api: &'static str,
    base: &str,
    key: &Secret,
    retry: RetryConfig,
    max_wait: Duration,
) -> Result<Rest> {
    let gate = Arc::new(RateGate::new(max_wait));
    let observer = Arc::clone(&gate);
    let client = ApiClient::new(
        HttpClient::shared(),
        NAME,
        api,
        base,
        ApiAuth::Bearer(key.clone()),
    )?
    .with_retry(retry)
    .with_error_parser(move |status, headers, body| {
        observer.observe(headers);
        error::parse_error(status, headers, body)
    });
    Ok(Rest::new(client, gate))
}

/// Decode one native object into a summary type, keeping the object in `raw`.
pub(crate) fn decode<T: DeserializeOwned + WithRaw>(v: &Value) -> Result<T> {
    let mut t: T = serde_path_to_error::deserialize(v).map_err(|e| {
        Error::new(
            ErrorKind::Provider,
            format!(
                "could not decode the response at `{}`: {}",
                e.path(),
                e.inner()
            ),
        )
        .with_provider(NAME)
    })?;
    t.set_raw(v.clone());
    Ok(t)
}

/// Decode the array under `key` of a list response.
pub(crate) fn decode_list<T: DeserializeOwned + WithRaw>(v: &Value, key: &str) -> Result<Vec<T>> {
    v.get(key)
        .and_then(Value::as_array)
        .ok_or_else(|| {
            Error::new(
                ErrorKind::Provider,
                format!("the response has no `{key}` array"),
            )
            .with_provider(NAME)
        })?
        .iter()
        .map(decode)
        .collect()
}

/// Summary types that keep their native JSON.
pub(crate) trait WithRaw {
    fn set_raw(&mut self, raw: Value);
}

macro_rules! with_raw {
    ($($t:ty),*) => {$(
        impl WithRaw for $t {
            fn set_raw(&mut self, raw: Value) {
                self.raw = crate::http::redact_raw(raw);
            }
        }
    )*};
}
with_raw!(Template, Endpoint, NetworkVolume);

#[async_trait]
impl Provider for RunPod {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new([
            Capability::Stop,
            Capability::Start,
            Capability::GpuTypes,
            Capability::Serverless,
            Capability::SpawnGpu,
            Capability::SpawnCpu,
            Capability::SpawnWithVolume,
            Capability::SpawnWithPorts,
            Capability::CommandDeadline,
            Capability::Logs,
        ])
        .with_max_gpus_per_instance(translate::MAX_GPUS_PER_POD)
    }

    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        let (auth, env) = AuthHandle::mint_for(req);
        let body = translate::create_body(req, &env)?;
        let launch = Launch::new(NAME, "pod", req, self.inner.reconcile);
        let create = async {
            let pod = self.pods().create(&body).await?;
            match pod["id"].as_str() {
                Some(id) if !id.is_empty() => Ok(pod),
                _ => Err(no_id(NAME, "pod", None)),
            }
        };
        let mut c = match create_once_listed(self, &launch, create).await? {
            Launched::Created(pod) => translate::compute(&pod),
            Launched::Adopted(c) => *c,
        };
        c.auth = auth;
        Ok(c)
    }

    async fn get(&self, id: &str) -> Result<Compute> {
        let c = translate::compute(&self.pods().get(id).await?);
        if c.status == ComputeStatus::Terminated {
            return Err(
                Error::new(ErrorKind::NotFound, format!("pod {id} was terminated"))
                    .with_provider(NAME)
                    .with_operation("get"),
            );
        }
        Ok(c)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
        let all = self.pods().list(false).await?;
        Ok(all
            .iter()
            .map(translate::compute)
            .filter(|c| {
                c.status != ComputeStatus::Terminated
                    || filter.status == Some(ComputeStatus::Terminated)
            })
            .filter(|c| filter.matches(c))
            .collect())
    }

    async fn stop(&self, id: &str) -> Result<()> {
        self.pods().action(id, PodAction::Stop).await.map(|_| ())
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.pods().action(id, PodAction::Start).await.map(|_| ())
    }

    async fn terminate(&self, id: &str) -> Result<()> {
        self.pods().delete(id).await
    }

    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        self.inner.catalog.gpu_types().await
    }

    fn serverless(&self) -> Option<&dyn Serverless> {
        Some(&self.inner.serverless)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(options: &[(RunPodConfigKey, &str)]) -> RunPodBuilder {
        let mut b = RunPodBuilder::default().with_api_key("k");
        for (k, v) in options {
            b = b.with_config(*k, *v);
        }
        b
    }

    #[test]
    fn builder_reads_options_and_reports_bad_ones() {
        use RunPodConfigKey as K;
        let rp = settings(&[
            (K::ServerlessBaseUrl, "http://127.0.0.1:1/v2"),
            (K::CatalogTtl, "5m"),
            (K::RateLimitMaxWait, "2s"),
        ])
        .build()
        .unwrap();
        assert_eq!(rp.jobs().base_url(), "http://127.0.0.1:1/v2");
        let e = settings(&[(K::CatalogTtl, "soon")]).build().unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().starts_with("catalog_ttl"), "{e}");
        let e = settings(&[(K::BaseUrl, "api.runpod.io")])
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().starts_with("base_url"), "{e}");
        let e = RunPodBuilder::from_settings(ProviderSettings::new(NAME))
            .build()
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(!format!(
            "{:?}",
            RunPodBuilder::default().with_api_key("secret-canary")
        )
        .contains("secret-canary"));
    }

    #[test]
    fn from_config_takes_the_serverless_url_from_the_env_unless_the_file_sets_it() {
        let env: std::collections::BTreeMap<String, String> = [
            (
                "ATLAS_RUNPOD_SERVERLESS_BASE_URL".to_string(),
                "http://127.0.0.1:2".to_string(),
            ),
            ("RUNPOD_API_KEY".to_string(), "k".to_string()),
        ]
        .into();
        let dir = tempfile::tempdir().unwrap();
        let config = Config::load_with(dir.path(), None, &env, None).unwrap();
        let rp = RunPodBuilder::from_config(&config).build().unwrap();
        assert_eq!(rp.jobs().base_url(), "http://127.0.0.1:2");
        let file = dir.path().join("atlas.toml");
        std::fs::write(
            &file,
            "[providers.runpod]\nserverless_url = \"http://127.0.0.1:3\"\n",
        )
        .unwrap();
        let config = Config::load_with(dir.path(), Some(&file), &env, None).unwrap();
        let rp = RunPodBuilder::from_config(&config).build().unwrap();
        assert_eq!(rp.jobs().base_url(), "http://127.0.0.1:3");
    }
}
