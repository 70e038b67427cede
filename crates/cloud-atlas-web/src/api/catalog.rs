//! `/v1/providers` (what each configured provider can do) and `/v1/gpus` (the GPU
//! catalog across providers with live prices, cheapest first).

use std::cmp::Ordering;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use chrono::{DateTime, Utc};
use cloud_atlas::{Gpu, GpuType, Provider};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::StrictQuery;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// How long one catalog answer is reused (prices are live, but not per request).
pub const CATALOG_TTL: Duration = Duration::from_secs(30);
/// How long one provider's catalog may take before it is reported as failed.
pub const CATALOG_TIMEOUT: Duration = Duration::from_secs(15);

/// One configured provider.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderView {
    /// Name (`mock`, `runpod`, …).
    pub name: String,
    /// Whether sessions go here when the request names no provider.
    pub default: bool,
    /// Declared capabilities (`stop`, `spawn_gpu`, …).
    pub capabilities: Vec<String>,
    /// Largest GPU count per machine, when limited.
    pub max_gpus_per_instance: Option<u32>,
}

/// Configured providers.
#[utoipa::path(
    get,
    path = "/providers",
    tag = "catalog",
    responses(
        (status = 200, description = "Providers and their capabilities", body = Vec<ProviderView>),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn providers(State(st): State<AppState>) -> Json<Vec<ProviderView>> {
    Json(
        st.providers
            .iter()
            .map(|(name, p)| {
                let caps = p.capabilities();
                ProviderView {
                    name: name.clone(),
                    default: *name == st.default_provider,
                    capabilities: caps.iter().map(|c| c.to_string()).collect(),
                    max_gpus_per_instance: caps.max_gpus_per_instance(),
                }
            })
            .collect(),
    )
}

/// One catalog entry (the library's `GpuType` without its native JSON).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct GpuView {
    /// Provider name.
    pub provider: String,
    /// The provider's id for this type or offer.
    pub id: String,
    /// Canonical GPU, when it maps to one.
    pub gpu: Option<String>,
    /// Display name.
    pub name: String,
    /// GPU memory in GB.
    pub memory_gb: Option<u32>,
    /// GPUs per entry.
    pub gpu_count: u32,
    /// On-demand USD per hour.
    pub price_on_demand: Option<f64>,
    /// Spot USD per hour.
    pub price_spot: Option<f64>,
    /// Community-cloud USD per hour.
    pub price_community: Option<f64>,
    /// Lowest of the known prices (the sort key).
    pub lowest_price: Option<f64>,
    /// Whether it can be rented now.
    pub available: Option<bool>,
    /// Stock as the provider says it.
    pub stock: Option<String>,
    /// Regions with capacity now.
    pub regions: Vec<String>,
}

impl GpuView {
    fn of(g: &GpuType) -> GpuView {
        GpuView {
            provider: g.provider.clone(),
            id: g.id.clone(),
            gpu: g.gpu.as_ref().map(super::text),
            name: g.name.clone(),
            memory_gb: g.memory_gb,
            gpu_count: g.gpu_count,
            price_on_demand: g.price_on_demand,
            price_spot: g.price_spot,
            price_community: g.price_community,
            lowest_price: g.lowest_price(),
            available: g.available,
            stock: g.stock.clone(),
            regions: g.regions.clone(),
        }
    }
}

/// A provider whose catalog could not be read.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProviderFailure {
    /// Provider name.
    pub provider: String,
    /// Error body.
    pub error: ErrorBody,
}

/// What `GET /v1/gpus` answers.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct CatalogResponse {
    /// Entries of every provider, cheapest first (unknown prices last).
    pub gpus: Vec<GpuView>,
    /// Providers that failed (the rest of the catalog is still complete for the others).
    pub errors: Vec<ProviderFailure>,
    /// When the providers were asked.
    pub fetched_at: DateTime<Utc>,
}

/// Filters of `GET /v1/gpus`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct GpusQuery {
    /// Only this GPU (canonical name, e.g. h100).
    pub gpu: Option<String>,
    /// Only this provider.
    pub provider: Option<String>,
}

fn by_price(a: &GpuView, b: &GpuView) -> Ordering {
    match (a.lowest_price, b.lowest_price) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
    .then_with(|| a.provider.cmp(&b.provider))
    .then_with(|| a.id.cmp(&b.id))
}

async fn fetch(st: &AppState) -> CatalogResponse {
    let asks = st.providers.iter().map(|(name, p)| async move {
        let r = tokio::time::timeout(CATALOG_TIMEOUT, p.gpu_types()).await;
        (name.clone(), r)
    });
    let mut gpus = Vec::new();
    let mut errors = Vec::new();
    for (name, r) in futures::future::join_all(asks).await {
        match r {
            Ok(Ok(types)) => gpus.extend(types.iter().map(GpuView::of)),
            Ok(Err(e)) => errors.push(ProviderFailure {
                provider: name,
                error: ApiError::from(e).body,
            }),
            Err(_) => errors.push(ProviderFailure {
                provider: name,
                error: ErrorBody {
                    kind: "timeout".into(),
                    message: format!("no catalog within {}s", CATALOG_TIMEOUT.as_secs()),
                    field: None,
                },
            }),
        }
    }
    gpus.sort_by(by_price);
    CatalogResponse {
        gpus,
        errors,
        fetched_at: Utc::now(),
    }
}

/// The GPU catalog across configured providers, cheapest first (cached 30 s).
#[utoipa::path(
    get,
    path = "/gpus",
    tag = "catalog",
    params(GpusQuery),
    responses(
        (status = 200, description = "The catalog; failing providers are listed in `errors`", body = CatalogResponse),
        (status = 400, description = "A bad filter (named in `field`)", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn gpus(
    State(st): State<AppState>,
    StrictQuery(q): StrictQuery<GpusQuery>,
) -> ApiResult<Json<CatalogResponse>> {
    let want: Option<Gpu> = q
        .gpu
        .as_deref()
        .map(str::parse)
        .transpose()
        .map_err(ApiError::from)?;
    if let Some(p) = &q.provider {
        if !st.providers.contains_key(p) {
            return Err(ApiError::validation(
                "provider",
                format!(
                    "provider: {p:?} is not configured here; configured: {}",
                    st.providers.keys().cloned().collect::<Vec<_>>().join(", ")
                ),
            ));
        }
    }
    let cached = st
        .catalog
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .as_ref()
        .filter(|(at, _)| at.elapsed() < CATALOG_TTL)
        .and_then(|(_, c)| serde_json::from_value::<CatalogResponse>(c.clone()).ok());
    let mut c = match cached {
        Some(c) => c,
        None => {
            let c = fetch(&st).await;
            *st.catalog
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                serde_json::to_value(&c).ok().map(|v| (Instant::now(), v));
            c
        }
    };
    let want = want.as_ref().map(super::text);
    c.gpus.retain(|g| {
        want.as_deref().is_none_or(|w| g.gpu.as_deref() == Some(w))
            && q.provider.as_deref().is_none_or(|p| g.provider == p)
    });
    Ok(Json(c))
}
