//! The GPU catalog (`GET /v2/catalog/gpus`) with prices and pod stock, cached with a TTL.
//!
//! Read with `include=AVAILABILITY&product=POD`, so each entry carries the current pod
//! stock level and the data centres that have it. Prices are per GPU per hour for the
//! secure and community clouds; REST v2 quotes no spot price.
//!
//! API: <https://docs.runpod.io/api-reference-v2/catalog/list-gpu-types>

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use serde_json::Value;
use tokio::time::Instant;

use super::ratelimit::Rest;
use super::translate;
use crate::error::{Error, ErrorKind, Result};
use crate::spec::{CloudType, GpuType};

/// How long a catalog read is reused unless configured otherwise.
pub const DEFAULT_CATALOG_TTL: Duration = Duration::from_secs(60);

/// Filters for an uncached catalog read ([`Catalog::gpu_types_with`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct CatalogQuery {
    /// GPUs per pod for stock and price (default 1).
    pub count: Option<u32>,
    /// Cloud for stock and price (RunPod's default is secure).
    pub cloud: Option<CloudType>,
    /// ISO 3166-1 alpha-2 country codes to narrow stock to (`FR`, `DE`).
    pub country_codes: Vec<String>,
}

/// The GPU catalog, cached.
#[derive(Debug, Clone)]
pub struct Catalog {
    rest: Rest,
    ttl: Duration,
    cache: Arc<Mutex<Option<Cached>>>,
}

/// A catalog read and when it was made.
type Cached = (Instant, Vec<GpuType>);

impl Catalog {
    pub(crate) fn new(rest: Rest, ttl: Duration) -> Catalog {
        Catalog {
            rest,
            ttl,
            cache: Arc::new(Mutex::new(None)),
        }
    }

    /// Every GPU type with prices and pod stock; served from the cache while it is
    /// younger than the TTL.
    ///
    /// # Errors
    /// Request errors; a body without `gpus` is a `Provider` error.
    pub async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        if let Some((at, cached)) = self
            .cache
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
        {
            if at.elapsed() < self.ttl {
                return Ok(cached.clone());
            }
        }
        let fresh = self.gpu_types_with(&CatalogQuery::default()).await?;
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) =
            Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// Drop the cached catalog; the next read goes to RunPod.
    pub fn invalidate(&self) {
        *self.cache.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }

    /// An uncached read with filters.
    ///
    /// # Errors
    /// `Validation` for a malformed country code; request errors.
    pub async fn gpu_types_with(&self, q: &CatalogQuery) -> Result<Vec<GpuType>> {
        for c in &q.country_codes {
            if c.len() != 2 || !c.chars().all(|ch| ch.is_ascii_uppercase()) {
                return Err(Error::validation(
                    "country_codes",
                    format!(
                        "{c:?} is not allowed; use uppercase ISO 3166-1 alpha-2 codes (FR, DE)"
                    ),
                ));
            }
        }
        let mut rq = self
            .rest
            .api()
            .get("/v2/catalog/gpus")
            .query("include", "AVAILABILITY")
            .query("product", "POD")
            .query_opt("count", q.count)
            .operation("gpu_types");
        match q.cloud {
            Some(CloudType::Secure) => rq = rq.query("cloud", "SECURE"),
            Some(CloudType::Community) => rq = rq.query("cloud", "COMMUNITY"),
            _ => {}
        }
        if !q.country_codes.is_empty() {
            rq = rq.query("countryCodes", q.country_codes.join(","));
        }
        let v: Value = self.rest.json(rq).await?;
        let gpus = v.get("gpus").and_then(Value::as_array).ok_or_else(|| {
            Error::new(ErrorKind::Provider, "the GPU catalog has no `gpus` array")
                .with_provider(translate::NAME)
                .with_operation("gpu_types")
        })?;
        Ok(gpus.iter().map(translate::gpu_type).collect())
    }
}
