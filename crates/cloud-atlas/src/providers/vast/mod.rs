//! Vast.ai: a GPU marketplace as a cloud-atlas provider (feature `vast`).
//!
//! Vast has no instance types: hosts list *offers* (asks) with live prices, and you
//! rent one. Base `https://console.vast.ai` (override with `ATLAS_VAST_BASE_URL` or
//! [`VastBuilder::with_base_url`]), `Authorization: Bearer $VAST_API_KEY`.
//!
//! # Spawn
//! 1. Search offers for the request ([`translate::OfferQuery::for_request`],
//!    [`translate::search_body`]): GPU names (every Vast name of the canonical GPU) with
//!    a `gpu_ram` bound in MB from its memory (Vast's names do not carry memory:
//!    `A100 SXM4` is a 40 GB or an 80 GB card; a native name is sent without a bound) and
//!    exact count, verified, rentable, not
//!    rented, reliability floor (option `min_reliability`, default 0.98), price
//!    ceiling (option `max_price`, $/h), countries from region hints (two-letter
//!    codes), CUDA floor (option `min_cuda`), disk, vCPU and RAM floors; data-centre
//!    hosts only for `cloud_type = secure`. Offers are re-checked client-side (the
//!    memory bound too: an offer that does not report `gpu_ram` is never rented) and
//!    sorted cheapest first (then most reliable).
//! 2. Rent the best (`PUT /api/v0/asks/{offer}/`, [`translate::create_body`]) with the
//!    image, disk, env (the request's env merged with the env minted by
//!    [`AuthHandle::mint`]), ports, `onstart`, and `label = req.launch_name()`.
//! 3. A rent declined with 429 is sent again by the HTTP layer (nothing was rented).
//!    An offer that is gone (taken by someone else, or cannot start now:
//!    `no_such_ask`, 404/410) → the next one, at most
//!    [`VastBuilder::with_max_offer_attempts`] (default 3); the reasons are collected
//!    into the final `Capacity` error.
//! 4. A rent whose outcome is unknown (timeout or 5xx after it was sent, a 2xx that
//!    cannot be decoded or names no instance: [`Error::is_ambiguous`]) is reconciled by
//!    listing instances for the label (the shared `providers::reconcile` step) —
//!    several times, as the listing may lag — before anything else happens; a found
//!    instance is the result (extra ones of the same launch are destroyed), none found
//!    returns the error saying a new spawn is safe. Never two instances.
//! 5. Spot (`spot: true`) searches interruptible offers (`type: bid`) and bids
//!    option `bid_price` ($/h for the machine) or the offer's `min_bid` + 10 %.
//!    An underbid instance comes back stopped: it is destroyed and the spawn fails with
//!    `Capacity` ("outbid"), so callers raise the bid or fail over.
//!
//! The account API key is never written onto the rented machine: a request whose
//! env, `onstart` or `args_str` would carry it fails with `Validation` before anything
//! is sent. (Vast gives each container its own scoped `CONTAINER_API_KEY`.)
//!
//! # Cost
//! `cost_per_hour` is Vast's `dph_total` (GPU + storage). **A stopped Vast instance
//! still bills storage** for its disk (the disk is kept, so `start` resumes with the
//! same data, if the host still has the GPU free); only `terminate` stops all billing.
//!
//! # Where Vast's spec and its CLI disagree, and what we send
//! Vast's published OpenAPI spec (`tests/fixtures/vast/openapi.yaml`) and its own
//! `vastai` 1.9.1 CLI disagree in places. Per field, what the real service accepts
//! and what cloud-atlas sends:
//!
//! | field | spec | CLI / docs | we send, and why |
//! |---|---|---|---|
//! | paths | no trailing slash | trailing slash everywhere (`/api/v0/asks/1/`) | **trailing slash**: what the CLI and the docs' curl examples send every day; the spec is patched to serve both |
//! | search `type` | enum `ondemand`, `bid`, `reserved` | CLI `on-demand`; docs `ondemand` | **`ondemand`** / **`bid`**: in the spec's enum and the docs; the service takes both spellings |
//! | search `order` | `minItems: 2` on the outer list | `[["score","desc"]]` | **two pairs** `[["dph_total","asc"],["reliability","desc"]]`: valid under both readings; we sort client-side as well |
//! | search answer `offers` | schema list, example one object | list | read a list, and tolerate one object |
//! | `gpu_name` | example `RTX_4090` | `RTX 4090` (CLI turns `_` into spaces) | **`RTX 4090`**, Vast's own name as offers report it |
//! | rent `env` | string of docker flags | JSON object, ports as `"-p 8000:8000": "1"` | **object**: docs and CLI agree, and values may contain spaces; the spec is patched to allow it |
//! | rent `client_id: "me"` | absent | CLI sends it | omitted: the key already names the account |
//! | show instance | no `owner` | `?owner=me` | **`owner=me`**, as the CLI (unknown query parameters are allowed by the spec) |
//! | instance `ports` | list of integers (`Instance`), Docker port map (`/api/v1/instances`) | port map | read the **port map**; a list carries no mapping and gives no bindings |
//! | instance `extra_env` | list of strings (`Instance`), `[k, v]` pairs (v1) | pairs | read both |
//! | list query values | JSON in strings | objects JSON-encoded, strings raw | `select_filters`/`order_by` as JSON text, `after_token` raw |
//! | destroy body | none | `{}` | none |
//!
//! The spec patch used by the contract tests is `tests/fixtures/vast/patch_spec.py`
//! (notes in `PATCHES.md` beside it).
//!
//! # Statuses, ports, ids
//! See [`translate::status`] and [`translate::port_bindings`]: direct ports map to
//! `http://public_ipaddr:HostPort` (HTTP) or `tcp://…`; the requested protocols are
//! recorded in the instance env as `ATLAS_PORTS`. Compute ids are Vast instance ids
//! (numbers); a non-numeric id is `NotFound`.
//!
//! # Runtype and command
//! Default `args`: the image's own entrypoint runs, as on other providers. Option
//! `onstart=SCRIPT` switches to `ssh_direct` (Vast's SSH entrypoint, then the script);
//! option `runtype` overrides (`ssh_direct`, `jupyter_direct`, …); option `args_str`
//! replaces the image's `CMD`. The request's `command` is sent as `args` (it replaces
//! the image's `CMD`) with the `args` runtype, and as the `onstart` script with the
//! SSH/Jupyter runtypes.
//!
//! A `max_runtime` with a command is held by the instance itself
//! ([`Capability::CommandDeadline`]): the command is wrapped so the instance destroys
//! itself with its own `CONTAINER_API_KEY` when the command ends or at max runtime
//! (see [`crate::spec::deadline`]). Without a command `max_runtime` is refused.
//!
//! # Limits
//! Vast limits requests per endpoint ("API requests too frequent endpoint
//! threshold=…"). Every request goes through one pacer (default 2/s, burst 4; set
//! `requests_per_second` and `burst` under `[providers.vast]` in `atlas.toml`); a 429
//! holds the pacer and is retried by the HTTP layer (a rent that met a 429 was not
//! processed and is retried here, bounded). No volumes (`volume_gb`,
//! `network_volume_id` are `Unsupported`: the local disk already persists across
//! stop/start; size it with `container_disk_gb`), no CPU-only machines, no
//! provider-side deadline.

pub mod config;
pub mod error;
pub mod instances;
pub mod offers;
pub mod translate;

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use serde_json::{json, Value};

use super::reconcile::{create_once_listed, Launch, Launched, ReconcilePolicy};
use crate::auth::{AuthHandle, Secret};
use crate::config::{Config, ProviderSettings};
use crate::error::{Error, ErrorKind, Result};
use crate::http::{ApiAuth, ApiClient, HttpClient, Pacer, RetryConfig};
use crate::provider::Provider;
use crate::spec::{
    Capabilities, Capability, Compute, ComputeRequest, ComputeStatus, GpuType, ListFilter,
    LAUNCH_ID_LABEL,
};

pub use config::VastConfigKey;
pub use instances::InstancesApi;
pub use offers::OffersApi;
use translate::NAME;
pub use translate::{Offer, OfferQuery};

/// Default Vast API base URL.
pub const DEFAULT_BASE_URL: &str = "https://console.vast.ai";
/// Env var holding the Vast API key.
pub const VAST_API_KEY_ENV: &str = "VAST_API_KEY";

/// The Vast.ai provider.
#[derive(Debug, Clone)]
pub struct Vast {
    offers: OffersApi,
    instances: InstancesApi,
    key: Secret,
    tuning: Tuning,
}

#[derive(Debug, Clone, Copy)]
struct Tuning {
    max_offer_attempts: usize,
    reconcile: ReconcilePolicy,
    spot_checks: u32,
    spot_check_interval: Duration,
}

impl Default for Tuning {
    fn default() -> Tuning {
        Tuning {
            max_offer_attempts: 3,
            reconcile: ReconcilePolicy::new(4, Duration::from_secs(1)),
            spot_checks: 3,
            spot_check_interval: Duration::from_secs(2),
        }
    }
}

/// Builder for [`Vast`].
#[derive(Debug, Clone, Default)]
pub struct VastBuilder {
    settings: ProviderSettings,
    retry: Option<RetryConfig>,
    pacing: Option<(f64, u32)>,
    tuning: Tuning,
}

impl Vast {
    /// Build from `VAST_API_KEY` and `ATLAS_VAST_BASE_URL`.
    ///
    /// # Errors
    /// `Unauthorized` naming `VAST_API_KEY` when no key is set.
    pub fn from_env() -> Result<Vast> {
        VastBuilder::from_env().build()
    }

    /// The offer-search client.
    pub fn offers_api(&self) -> &OffersApi {
        &self.offers
    }

    /// The instance client.
    pub fn instances_api(&self) -> &InstancesApi {
        &self.instances
    }

    /// Live offers matching `q`, cheapest first.
    ///
    /// # Errors
    /// Whatever the search fails with.
    pub async fn offers(&self, q: &OfferQuery) -> Result<Vec<Offer>> {
        self.offers.search(q).await
    }

    /// Live offers matching `q` as catalog entries (id = offer id, price for the whole
    /// offer), cheapest first. This is what `atlas vast offers` prints.
    ///
    /// # Errors
    /// Whatever the search fails with.
    pub async fn offer_entries(&self, q: &OfferQuery) -> Result<Vec<GpuType>> {
        Ok(self
            .offers(q)
            .await?
            .iter()
            .map(|o| translate::offer_entry(o, q.spot))
            .collect())
    }

    /// The offers `spawn` would choose from for `req`, best first.
    ///
    /// # Errors
    /// `Validation` for a request Vast cannot serve; whatever the search fails with.
    pub async fn offers_for(&self, req: &ComputeRequest) -> Result<Vec<Offer>> {
        self.offers(&OfferQuery::for_request(req)?).await
    }

    fn check_no_account_key(&self, body: &Value) -> Result<()> {
        let key = self.key.expose();
        // Keys are 64 hex characters; a very short test key would match anything.
        if key.len() >= 16 && body.to_string().contains(key) {
            return Err(Error::validation(
                "env",
                "the request would write the Vast account API key onto the rented machine (env, onstart or args_str); pass a scoped key instead",
            ));
        }
        Ok(())
    }

    /// The rented instance as seen right after the rent. For spot, an instance that
    /// comes back stopped was outbid: it is destroyed and `Capacity` returned.
    async fn settle(
        &self,
        req: &ComputeRequest,
        id: u64,
        mut seen: Option<Value>,
        bid: Option<f64>,
    ) -> Result<Option<Value>> {
        let checks = if req.spot {
            self.tuning.spot_checks.max(1)
        } else {
            1
        };
        for n in 0..checks {
            if n > 0 || seen.is_none() {
                if n > 0 {
                    tokio::time::sleep(self.tuning.spot_check_interval).await;
                }
                match self.instances.get(id).await {
                    Ok(v) => seen = v.or(seen),
                    Err(e) => {
                        tracing::warn!(provider = NAME, instance = id, error = %e, "could not read the new instance");
                    }
                }
            }
            let status = seen.as_ref().map(translate::status);
            match status {
                Some(ComputeStatus::Stopped) if req.spot => {
                    let cleanup = match self.instances.destroy(id).await {
                        Ok(()) => "and was destroyed".to_string(),
                        Err(e) => {
                            tracing::warn!(provider = NAME, instance = id, error = %e, "could not destroy an outbid instance");
                            format!("and could not be destroyed ({}): terminate it with `atlas terminate --provider vast {id}`", e.message())
                        }
                    };
                    return Err(Error::new(
                        ErrorKind::Capacity,
                        format!(
                            "spot bid ${:.4}/h was outbid: Vast instance {id} came back stopped {cleanup}; bid higher (--provider-opt bid_price=…) or rent on-demand",
                            bid.unwrap_or_default()
                        ),
                    )
                    .with_provider(NAME)
                    .with_operation("spawn"));
                }
                Some(ComputeStatus::Provisioning) | None if req.spot => {}
                _ => break,
            }
        }
        Ok(seen)
    }

    fn compute_for(
        &self,
        req: &ComputeRequest,
        id: u64,
        inst: Option<&Value>,
        offer: Option<&Offer>,
        bid: Option<f64>,
    ) -> Compute {
        let mut c = match inst {
            Some(v) => translate::compute(v),
            None => Compute::new(id.to_string(), NAME, ComputeStatus::Provisioning),
        };
        c.id = id.to_string();
        if c.name.is_none() {
            c.name = Some(req.launch_name());
        }
        c.labels
            .insert(LAUNCH_ID_LABEL.to_string(), req.launch_id.clone());
        if c.gpu.is_none() {
            c.gpu = req.gpu;
        }
        if c.gpu_count == 0 {
            c.gpu_count = req.gpu_count;
        }
        if c.image.is_none() {
            c.image = Some(req.image.clone());
        }
        if let Some(o) = offer {
            if c.cost_per_hour.is_none() {
                c.cost_per_hour = Some(bid.unwrap_or(o.dph_total));
            }
            if c.region.is_none() {
                c.region.clone_from(&o.geolocation);
            }
        }
        c
    }
}

impl VastBuilder {
    /// Settings from the environment: `VAST_API_KEY`, `ATLAS_VAST_BASE_URL` (the env
    /// vars of [`VastConfigKey`]).
    pub fn from_env() -> VastBuilder {
        VastBuilder::from_settings(ProviderSettings::from_env(NAME))
    }

    /// Settings from a loaded configuration: `[providers.vast]` in `atlas.toml`, then
    /// the environment it was loaded with.
    pub fn from_config(config: &Config) -> VastBuilder {
        VastBuilder::from_settings(config.provider_settings(NAME))
    }

    /// Resolved settings (keys of [`VastConfigKey`], e.g. the pacing options
    /// `requests_per_second` and `burst`; checked in [`build`](Self::build)).
    pub fn from_settings(settings: ProviderSettings) -> VastBuilder {
        VastBuilder {
            settings,
            ..VastBuilder::default()
        }
    }

    /// Set one key from its string form, as the environment and `atlas.toml` give it
    /// (checked in [`build`](Self::build)).
    pub fn with_config(mut self, key: VastConfigKey, value: impl Into<String>) -> VastBuilder {
        self.settings.set(key, value);
        self
    }

    /// The API key.
    pub fn with_api_key(mut self, key: impl Into<String>) -> VastBuilder {
        self.settings.api_key = Some(Secret::new(key.into()));
        self
    }

    /// The base URL (default [`DEFAULT_BASE_URL`]).
    pub fn with_base_url(mut self, url: impl Into<String>) -> VastBuilder {
        self.settings.base_url = Some(url.into());
        self
    }

    /// The retry policy of the HTTP layer.
    pub fn with_retry(mut self, retry: RetryConfig) -> VastBuilder {
        self.retry = Some(retry);
        self
    }

    /// Client-side pacing: `per_second` requests, up to `burst` at once (default 2/s, 4).
    pub fn with_pacing(mut self, per_second: f64, burst: u32) -> VastBuilder {
        self.pacing = Some((per_second, burst));
        self
    }

    /// How many offers one spawn tries when offers turn out to be gone (default 3).
    pub fn with_max_offer_attempts(mut self, n: usize) -> VastBuilder {
        self.tuning.max_offer_attempts = n.max(1);
        self
    }

    /// Listings, and the first pause between them, before an ambiguous rent is
    /// concluded to have created nothing (default 4 from 1 s, doubling).
    pub fn with_reconcile(mut self, attempts: u32, first_delay: Duration) -> VastBuilder {
        self.tuning.reconcile = ReconcilePolicy::new(attempts, first_delay);
        self
    }

    /// Reads of a new spot instance, and the pause between them, while it is still
    /// being placed, to catch an underbid one (default 3, 2 s apart).
    pub fn with_spot_check(mut self, checks: u32, interval: Duration) -> VastBuilder {
        self.tuning.spot_checks = checks.max(1);
        self.tuning.spot_check_interval = interval;
        self
    }

    /// Build.
    ///
    /// # Errors
    /// `Unauthorized` naming `VAST_API_KEY` when no key is set; `Validation` for a bad
    /// base URL.
    pub fn build(self) -> Result<Vast> {
        let mut s = self.settings;
        s.provider = NAME.to_string();
        s.check::<VastConfigKey>()?;
        let key = s.require_api_key("Vast.ai")?;
        if key.expose().trim().is_empty() {
            return Err(Error::new(
                ErrorKind::Unauthorized,
                "VAST_API_KEY is empty: set it to an API key from cloud.vast.ai → Account → API keys",
            )
            .with_provider(NAME));
        }
        let base = s
            .base_url
            .clone()
            .unwrap_or_else(|| DEFAULT_BASE_URL.to_string());
        let (rate, burst) = match self.pacing {
            Some(p) => p,
            None => match s.number(VastConfigKey::RequestsPerSecond)? {
                #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
                Some(rate) => {
                    let burst = s
                        .number(VastConfigKey::Burst)?
                        .map_or(4, |b| b.min(10_000.0) as u32);
                    (rate, burst.max(1))
                }
                None => (2.0, 4),
            },
        };
        let api = ApiClient::new(
            HttpClient::shared(),
            NAME,
            "rest",
            &base,
            ApiAuth::Bearer(key.clone()),
        )?
        .with_retry(self.retry.unwrap_or_default())
        .with_pacer(Arc::new(Pacer::per_second(rate, burst)))
        .with_error_parser(error::parse_error);
        Ok(Vast {
            offers: OffersApi::new(api.clone()),
            instances: InstancesApi::new(api),
            key,
            tuning: self.tuning,
        })
    }
}

fn instance_id(id: &str) -> Result<u64> {
    id.trim().parse::<u64>().map_err(|_| {
        Error::new(
            ErrorKind::NotFound,
            format!("no Vast instance has id {id:?} (Vast instance ids are numbers)"),
        )
        .with_provider(NAME)
    })
}

#[async_trait]
impl Provider for Vast {
    fn name(&self) -> &str {
        NAME
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities::new([
            Capability::Stop,
            Capability::Start,
            Capability::GpuTypes,
            Capability::SpawnGpu,
            Capability::SpawnSpot,
            Capability::SpawnWithPorts,
            Capability::CommandDeadline,
        ])
    }

    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        if req.volume_gb.is_some() || req.network_volume_id.is_some() {
            return Err(Error::unsupported(
                NAME,
                "spawn",
                "Vast instances have one local disk, kept across stop/start; size it with container_disk_gb instead of a volume",
            ));
        }
        let query = OfferQuery::for_request(req)?;
        let (auth, env) = AuthHandle::mint_for(req);
        // Validate what can be validated before spending a search.
        translate::runtype(req)?;
        self.check_no_account_key(&translate::create_body(req, &env, None)?)?;
        let offers = self.offers.search(&query).await?;
        if offers.is_empty() {
            return Err(Error::new(
                ErrorKind::Capacity,
                format!(
                    "no Vast offer matches {}x {}{}{}; widen the search (other regions, --provider-opt max_price=…, min_reliability=…)",
                    req.gpu_count,
                    query.gpu_names.join("/"),
                    query
                        .gpu_ram_mb
                        .map(|(lo, hi)| format!(" with {lo}-{hi} MB per GPU"))
                        .unwrap_or_default(),
                    if req.spot { " (interruptible)" } else { "" }
                ),
            )
            .with_provider(NAME)
            .with_operation("spawn"));
        }
        // Vast filters labels server-side; its full listing pages slowly.
        let launch = Launch::new(NAME, "instance", req, self.tuning.reconcile).by_name();
        let mut reasons: Vec<String> = Vec::new();
        for offer in offers.iter().take(self.tuning.max_offer_attempts) {
            let bid = if req.spot {
                Some(translate::bid_price(req, offer)?)
            } else {
                None
            };
            let body = translate::create_body(req, &env, bid)?;
            self.check_no_account_key(&body)?;
            let rent = self.instances.rent(offer.id, body);
            let id = match create_once_listed(self, &launch, rent).await {
                Ok(Launched::Created(id)) => id,
                Ok(Launched::Adopted(c)) => instance_id(&c.id)?,
                Err(e) if error::is_offer_gone(&e) => {
                    tracing::info!(provider = NAME, offer = offer.id, reason = %e.message(), "offer gone; trying the next");
                    reasons.push(format!("offer {}: {}", offer.id, e.message()));
                    continue;
                }
                Err(e) => return Err(e),
            };
            let inst = self.settle(req, id, None, bid).await?;
            let mut c = self.compute_for(req, id, inst.as_ref(), Some(offer), bid);
            c.auth = auth;
            return Ok(c);
        }
        Err(Error::new(
            ErrorKind::Capacity,
            format!(
                "no Vast offer could be rented after {} tries: {}",
                reasons.len(),
                reasons.join("; ")
            ),
        )
        .with_provider(NAME)
        .with_operation("spawn"))
    }

    async fn get(&self, id: &str) -> Result<Compute> {
        let n = instance_id(id)?;
        let inst = self.instances.get(n).await?.ok_or_else(|| {
            Error::new(ErrorKind::NotFound, format!("Vast instance {id} not found"))
                .with_provider(NAME)
                .with_operation("get")
        })?;
        let mut c = translate::compute(&inst);
        if c.id.is_empty() {
            c.id = id.to_string();
        }
        if c.status == ComputeStatus::Terminated {
            return Err(Error::new(
                ErrorKind::NotFound,
                format!("Vast instance {id} was destroyed"),
            )
            .with_provider(NAME)
            .with_operation("get"));
        }
        Ok(c)
    }

    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
        let server_filter = filter.name.as_ref().map(|n| json!({"label": {"eq": n}}));
        let all = self.instances.list_all(server_filter.as_ref()).await?;
        Ok(all
            .iter()
            .map(translate::compute)
            .filter(|c| c.status != ComputeStatus::Terminated)
            .filter(|c| filter.matches(c))
            .collect())
    }

    async fn stop(&self, id: &str) -> Result<()> {
        self.instances.set_state(instance_id(id)?, "stopped").await
    }

    async fn start(&self, id: &str) -> Result<()> {
        self.instances.set_state(instance_id(id)?, "running").await
    }

    async fn terminate(&self, id: &str) -> Result<()> {
        self.instances.destroy(instance_id(id)?).await
    }

    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        let (od, spot) = (OfferQuery::catalog(false), OfferQuery::catalog(true));
        let (on_demand, bid) =
            futures::try_join!(self.offers.search(&od), self.offers.search(&spot))?;
        Ok(translate::catalog(&on_demand, &bid))
    }
}
