//! Placement: live offers from every configured provider, ranked by price.
//!
//! A [`Placer`] holds the providers to ask. [`Placer::offers`] asks each of them
//! **concurrently** for its catalog ([`Provider::gpu_types`]: RunPod's catalog with stock,
//! Lambda's instance types with the regions that have capacity, Vast's offers, the mock's
//! catalog), keeps only what meets the [`Requirements`], prices each entry for the whole
//! request and returns the offers cheapest first, with a per-provider report: a provider
//! that fails, times out or publishes no catalog is one [`ProviderReport`] with its error,
//! never a failure of the whole placement.
//!
//! # Cache
//! Each provider's catalog is kept **in memory**, in the `Placer`, for a TTL per provider
//! ([`DEFAULT_TTL`], 30 s, unless [`Placer::with_ttl`] sets another): within the TTL a
//! placement does not call the provider again, whatever the requirements (filtering runs on
//! the cached catalog). Failures are not cached: the next placement asks again. The cache
//! is per `Placer`; a one-shot CLI call starts empty. Providers keep their own catalog
//! caches too (RunPod, Lambda), which this one sits in front of.
//!
//! # Pricing and counts
//! An entry's price is for the entry as listed ([`GpuType::gpu_count`] GPUs). For `n` GPUs:
//! an entry with exactly `n` GPUs is priced as listed; an entry of one GPU is priced `n`
//! times when the provider sells any count of that GPU (no entry of the same provider
//! lists a fixed multi-GPU shape or a CPU-only shape, as Lambda's instance types do);
//! otherwise the entry is left out. The price is the lowest of on-demand and community,
//! and of spot when [`Requirements::spot`] allows it ([`Offer::pricing`] says which).
//!
//! # CPU requirements
//! [`Requirements::cpu`] keeps entries without a GPU (`gpu_count` 0: Lambda's CPU instance
//! types). Fly.io's Machines API publishes no price catalog, so Fly is reported as
//! `unsupported`, not offered.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};
use crate::provider::Provider;
use crate::spec::{Gpu, GpuType};

/// How long a provider's catalog is reused when no TTL is set for it.
pub const DEFAULT_TTL: Duration = Duration::from_secs(30);

/// How long a provider may take to answer when [`Placer::with_timeout`] sets nothing.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(30);

/// What a placement must satisfy.
#[derive(Debug, Clone, PartialEq)]
pub struct Requirements {
    /// This GPU; `None` with `gpu_count > 0` means any GPU.
    pub gpu: Option<Gpu>,
    /// GPUs per machine; 0 asks for a CPU machine.
    pub gpu_count: u32,
    /// Highest acceptable USD per hour for the whole machine.
    pub max_price: Option<f64>,
    /// Acceptable regions (case-insensitive); empty means any. With regions named, an
    /// offer that reports no region with capacity is left out.
    pub regions: Vec<String>,
    /// Whether spot (interruptible) pricing may be used.
    pub spot: bool,
    /// Providers that may be asked; `None` means every provider of the [`Placer`].
    pub providers: Option<Vec<String>>,
    /// Leave out offers the provider reports as unavailable right now.
    pub available_only: bool,
}

impl Default for Requirements {
    fn default() -> Self {
        Requirements {
            gpu: None,
            gpu_count: 1,
            max_price: None,
            regions: Vec::new(),
            spot: false,
            providers: None,
            available_only: false,
        }
    }
}

impl Requirements {
    /// One GPU of any kind, any price, any region, no spot.
    pub fn any_gpu() -> Requirements {
        Requirements::default()
    }

    /// `count` GPUs of kind `gpu`.
    pub fn gpu(gpu: Gpu, count: u32) -> Requirements {
        Requirements {
            gpu: Some(gpu),
            gpu_count: count,
            ..Requirements::default()
        }
    }

    /// A machine without a GPU.
    pub fn cpu() -> Requirements {
        Requirements {
            gpu_count: 0,
            ..Requirements::default()
        }
    }

    /// Check the values before asking anyone.
    ///
    /// # Errors
    /// `Validation` naming the field: a GPU with `gpu_count` 0, a `max_price` that is not a
    /// positive finite number, an empty region or provider name.
    pub fn validate(&self) -> Result<()> {
        if self.gpu.is_some() && self.gpu_count == 0 {
            return Err(Error::validation(
                "gpu_count",
                "0 is not allowed with a GPU; allowed: 1 or more",
            ));
        }
        if let Some(p) = self.max_price {
            if !p.is_finite() || p <= 0.0 {
                return Err(Error::validation(
                    "max_price",
                    format!("{p} is not allowed; allowed: a positive USD per hour, e.g. 2.5"),
                ));
            }
        }
        if self.regions.iter().any(|r| r.trim().is_empty()) {
            return Err(Error::validation(
                "regions",
                "an empty region is not allowed; name a region, e.g. us-west-1",
            ));
        }
        if let Some(ps) = &self.providers {
            if ps.iter().any(|p| p.trim().is_empty()) {
                return Err(Error::validation(
                    "providers",
                    "an empty provider name is not allowed; e.g. runpod",
                ));
            }
        }
        Ok(())
    }
}

/// Which of an entry's prices an offer uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Pricing {
    /// On-demand (secure cloud).
    OnDemand,
    /// Community cloud (RunPod).
    Community,
    /// Spot / interruptible.
    Spot,
}

impl Pricing {
    /// Lower-case name: `on_demand`, `community`, `spot`.
    pub fn as_str(self) -> &'static str {
        match self {
            Pricing::OnDemand => "on_demand",
            Pricing::Community => "community",
            Pricing::Spot => "spot",
        }
    }
}

/// One way to meet the requirements: a provider's catalog entry priced for the request.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Offer {
    /// Provider name.
    pub provider: String,
    /// The provider's id of the type or offer.
    pub id: String,
    /// Display name.
    pub name: String,
    /// Canonical GPU, when the entry maps to one.
    pub gpu: Option<Gpu>,
    /// GPUs in the machine offered.
    pub gpu_count: u32,
    /// GPU memory in GB (per GPU).
    pub memory_gb: Option<u32>,
    /// USD per hour for the whole machine.
    pub price_per_hour: f64,
    /// Which price that is.
    pub pricing: Pricing,
    /// Whether it can be rented right now, as the provider says (`None`: not said).
    pub available: Option<bool>,
    /// Stock level as the provider says it.
    pub stock: Option<String>,
    /// Regions with capacity (narrowed to the requested ones when regions were named).
    pub regions: Vec<String>,
}

/// How one provider answered.
#[derive(Debug)]
pub struct ProviderReport {
    /// Provider name.
    pub provider: String,
    /// Offers of this provider that met the requirements.
    pub offers: usize,
    /// Whether its catalog came from the cache (no call made).
    pub cached: bool,
    /// Why it gave no catalog; `None` when it answered.
    pub error: Option<Error>,
}

impl ProviderReport {
    /// Whether the provider answered.
    pub fn ok(&self) -> bool {
        self.error.is_none()
    }
}

/// The outcome of [`Placer::offers`].
#[derive(Debug)]
pub struct Placement {
    /// Offers cheapest first (ties: available before unknown before unavailable, then
    /// provider and id).
    pub offers: Vec<Offer>,
    /// One report per provider asked, in the order they were added.
    pub providers: Vec<ProviderReport>,
}

impl Placement {
    /// Whether every provider asked answered.
    pub fn complete(&self) -> bool {
        self.providers.iter().all(ProviderReport::ok)
    }

    /// The cheapest offer not reported unavailable.
    pub fn best(&self) -> Option<&Offer> {
        self.offers.iter().find(|o| o.available != Some(false))
    }
}

#[derive(Debug)]
enum Source {
    Ready(Arc<dyn Provider>),
    /// Could not be built: asked never, reported every time.
    Broken(ErrorKind, String),
}

#[derive(Debug)]
struct Entry {
    name: String,
    source: Source,
    ttl: Duration,
}

#[derive(Debug)]
struct Cached {
    at: Instant,
    types: Arc<Vec<GpuType>>,
}

/// Asks providers for offers concurrently and caches their catalogs briefly (see the
/// module docs).
#[derive(Debug)]
pub struct Placer {
    entries: Vec<Entry>,
    timeout: Duration,
    cache: Mutex<HashMap<String, Cached>>,
}

impl Default for Placer {
    fn default() -> Self {
        Placer::new()
    }
}

impl Placer {
    /// No providers yet; [`DEFAULT_TIMEOUT`].
    pub fn new() -> Placer {
        Placer {
            entries: Vec::new(),
            timeout: DEFAULT_TIMEOUT,
            cache: Mutex::new(HashMap::new()),
        }
    }

    /// Ask `provider` too, its catalog cached for [`DEFAULT_TTL`].
    pub fn with_provider(mut self, provider: Arc<dyn Provider>) -> Placer {
        self.entries.push(Entry {
            name: provider.name().to_string(),
            source: Source::Ready(provider),
            ttl: DEFAULT_TTL,
        });
        self
    }

    /// A provider that could not be built (no key, bad settings): reported as failed
    /// with `error` in every placement, never asked.
    pub fn with_unavailable(mut self, name: impl Into<String>, error: &Error) -> Placer {
        self.entries.push(Entry {
            name: name.into(),
            source: Source::Broken(error.kind(), error.message().to_string()),
            ttl: DEFAULT_TTL,
        });
        self
    }

    /// Cache provider `name`'s catalog for `ttl` (zero: never cached).
    pub fn with_ttl(mut self, name: &str, ttl: Duration) -> Placer {
        for e in self.entries.iter_mut().filter(|e| e.name == name) {
            e.ttl = ttl;
        }
        self
    }

    /// Give up on a provider that has not answered after `timeout` (it is reported as
    /// `Timeout`; the others still count).
    pub fn with_timeout(mut self, timeout: Duration) -> Placer {
        self.timeout = timeout;
        self
    }

    /// Drop every cached catalog (e.g. after a launch met no capacity).
    pub fn invalidate(&self) {
        self.lock().clear();
    }

    /// Offers meeting `req` from every allowed provider, cheapest first.
    ///
    /// # Errors
    /// `Validation` for bad requirements only (nothing is asked then); a provider's
    /// failure is in its [`ProviderReport`].
    pub async fn offers(&self, req: &Requirements) -> Result<Placement> {
        req.validate()?;
        let allowed = |name: &str| match &req.providers {
            None => true,
            Some(ps) => ps.iter().any(|p| p.trim().eq_ignore_ascii_case(name)),
        };
        let asked = self.entries.iter().filter(|e| allowed(&e.name));
        let answers = futures::future::join_all(asked.map(|e| async move {
            let got = self.catalog(e).await;
            (e, got)
        }))
        .await;
        let mut offers = Vec::new();
        let mut providers = Vec::new();
        for (e, got) in answers {
            match got {
                Ok((types, cached)) => {
                    let mine = matching(&types, req);
                    providers.push(ProviderReport {
                        provider: e.name.clone(),
                        offers: mine.len(),
                        cached,
                        error: None,
                    });
                    offers.extend(mine);
                }
                Err(err) => providers.push(ProviderReport {
                    provider: e.name.clone(),
                    offers: 0,
                    cached: false,
                    error: Some(err),
                }),
            }
        }
        rank(&mut offers);
        Ok(Placement { offers, providers })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Cached>> {
        self.cache.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The provider's catalog, from the cache within its TTL; whether it was cached.
    async fn catalog(&self, e: &Entry) -> Result<(Arc<Vec<GpuType>>, bool)> {
        let p = match &e.source {
            Source::Ready(p) => p,
            Source::Broken(kind, message) => {
                return Err(Error::new(*kind, message.clone())
                    .with_provider(e.name.clone())
                    .with_operation("gpu_types"))
            }
        };
        if let Some(c) = self.lock().get(&e.name) {
            if c.at.elapsed() < e.ttl {
                return Ok((Arc::clone(&c.types), true));
            }
        }
        let types = crate::wait::within(self.timeout, &e.name, "gpu_types", "", p.gpu_types())
            .await
            .map_err(|err| {
                if err.provider().is_none() {
                    err.with_provider(e.name.clone())
                } else {
                    err
                }
            })?;
        let types = Arc::new(types);
        if !e.ttl.is_zero() {
            self.lock().insert(
                e.name.clone(),
                Cached {
                    at: Instant::now(),
                    types: Arc::clone(&types),
                },
            );
        }
        Ok((types, false))
    }
}

/// One provider's entries that meet `req`, priced for it.
fn matching(types: &[GpuType], req: &Requirements) -> Vec<Offer> {
    // A provider listing fixed shapes (multi-GPU or CPU-only types) sells only those.
    let fixed_shapes = types.iter().any(|t| t.gpu_count != 1);
    let wanted_regions: Vec<String> = req
        .regions
        .iter()
        .map(|r| r.trim().to_ascii_lowercase())
        .collect();
    types
        .iter()
        .filter_map(|t| {
            let factor = if req.gpu_count == 0 {
                if t.gpu_count != 0 || t.gpu.is_some() {
                    return None;
                }
                1
            } else {
                if t.gpu_count == 0 {
                    return None;
                }
                if let Some(g) = req.gpu {
                    if t.gpu != Some(g) {
                        return None;
                    }
                }
                if t.gpu_count == req.gpu_count {
                    1
                } else if t.gpu_count == 1 && !fixed_shapes {
                    req.gpu_count
                } else {
                    return None;
                }
            };
            let mut prices = vec![
                (t.price_on_demand, Pricing::OnDemand),
                (t.price_community, Pricing::Community),
            ];
            if req.spot {
                prices.push((t.price_spot, Pricing::Spot));
            }
            let (unit, pricing) = prices
                .into_iter()
                .filter_map(|(p, k)| p.filter(|p| p.is_finite() && *p >= 0.0).map(|p| (p, k)))
                .min_by(|a, b| a.0.total_cmp(&b.0))?;
            let price_per_hour = unit * f64::from(factor);
            if req.max_price.is_some_and(|max| price_per_hour > max) {
                return None;
            }
            if req.available_only && t.available == Some(false) {
                return None;
            }
            let regions = if wanted_regions.is_empty() {
                t.regions.clone()
            } else {
                let r: Vec<String> = t
                    .regions
                    .iter()
                    .filter(|r| wanted_regions.contains(&r.to_ascii_lowercase()))
                    .cloned()
                    .collect();
                if r.is_empty() {
                    return None;
                }
                r
            };
            Some(Offer {
                provider: t.provider.clone(),
                id: t.id.clone(),
                name: t.name.clone(),
                gpu: t.gpu,
                gpu_count: if req.gpu_count == 0 {
                    0
                } else {
                    t.gpu_count * factor
                },
                memory_gb: t.memory_gb,
                price_per_hour,
                pricing,
                available: t.available,
                stock: t.stock.clone(),
                regions,
            })
        })
        .collect()
}

/// Cheapest first; ties: available, unknown, unavailable; then provider and id.
fn rank(offers: &mut [Offer]) {
    let avail = |o: &Offer| match o.available {
        Some(true) => 0,
        None => 1,
        Some(false) => 2,
    };
    offers.sort_by(|a, b| {
        a.price_per_hour
            .total_cmp(&b.price_per_hour)
            .then_with(|| avail(a).cmp(&avail(b)))
            .then_with(|| a.provider.cmp(&b.provider))
            .then_with(|| a.id.cmp(&b.id))
    });
}

#[cfg(test)]
mod tests;
