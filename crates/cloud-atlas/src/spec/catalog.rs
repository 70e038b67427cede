//! GPU catalog entries with live prices and stock.

use serde::{Deserialize, Serialize};

use super::gpu::Gpu;

/// One GPU type (or marketplace offer) a provider rents, with prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct GpuType {
    /// Provider name.
    pub provider: String,
    /// The provider's id for this type or offer.
    pub id: String,
    /// Canonical GPU, when it maps to one.
    pub gpu: Option<Gpu>,
    /// Display name.
    pub name: String,
    /// GPU memory in GB.
    pub memory_gb: Option<u32>,
    /// GPUs per instance for this entry (1 when priced per GPU).
    pub gpu_count: u32,
    /// On-demand (secure) USD per hour for the whole entry.
    pub price_on_demand: Option<f64>,
    /// Spot/interruptible USD per hour.
    pub price_spot: Option<f64>,
    /// Community-cloud USD per hour.
    pub price_community: Option<f64>,
    /// Whether it can be rented right now.
    pub available: Option<bool>,
    /// Stock level as the provider says it (`High`, `Low`, a count, …).
    pub stock: Option<String>,
    /// Regions with capacity now.
    pub regions: Vec<String>,
    /// Native JSON.
    #[serde(default)]
    pub raw: serde_json::Value,
}

impl GpuType {
    /// An entry with id and name; other fields empty.
    pub fn new(
        provider: impl Into<String>,
        id: impl Into<String>,
        name: impl Into<String>,
    ) -> GpuType {
        GpuType {
            provider: provider.into(),
            id: id.into(),
            gpu: None,
            name: name.into(),
            memory_gb: None,
            gpu_count: 1,
            price_on_demand: None,
            price_spot: None,
            price_community: None,
            available: None,
            stock: None,
            regions: Vec::new(),
            raw: serde_json::Value::Null,
        }
    }

    /// The lowest known price per hour (for sorting).
    pub fn lowest_price(&self) -> Option<f64> {
        [self.price_on_demand, self.price_spot, self.price_community]
            .into_iter()
            .flatten()
            .reduce(f64::min)
    }
}
