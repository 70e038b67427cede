//! `atlas gpus [--gpu G] [--sort price]`: the provider's GPU catalog with prices.
//! `--provider all`: every configured provider's offers at once, through
//! [`cloud_atlas::placement`], cheapest first.

use std::cmp::Ordering;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use clap::{Args, ValueEnum};
use cloud_atlas::placement::{Offer, Placer, Requirements};
use cloud_atlas::wait::within;
use cloud_atlas::{Capability, Gpu, GpuType, Provider, Result};
use comfy_table::Cell;
use serde::Serialize;

use crate::cmd::compute::{completeness, ListingError, TimeoutArg, TIMEOUT_HINT};
use crate::context::{Context, ALL_PROVIDERS};
use crate::output::{or_dash, price, Out};

/// `atlas gpus --help`, after the flags.
pub(crate) const GPUS_ALL_HELP: &str = "With --provider all, every configured provider that publishes a GPU catalog (the mock, and RunPod, Lambda and Vast.ai when their API key is set; Fly.io publishes none) is asked at once, and their offers are printed in one table with a PROVIDER column, cheapest first (PRICE: the lowest of on-demand and community for one machine; AVAILABLE: whether it can be rented now); --sort is not used then. -o json prints {\"offers\": [...], \"providers\": [{\"provider\", \"ok\": true, \"offers\": N} or {\"provider\", \"ok\": false, \"error\": {\"kind\", \"message\", \"exit_code\"}}]}.\n\nA provider that fails is one `error:` line on stderr and the others are still listed. Exit codes: 0 when every provider answered, 12 when at least one failed (the listing is incomplete); the usual codes for bad flags.";

/// Arguments of `atlas gpus`.
#[derive(Debug, Args)]
pub(crate) struct GpusArgs {
    /// Only this GPU (canonical name, e.g. h100, a100-80g)
    #[arg(long, value_name = "GPU")]
    gpu: Option<String>,
    /// Sort order [default: the provider's order]
    #[arg(long, value_enum)]
    sort: Option<SortKey>,
    #[command(flatten)]
    timeout: TimeoutArg,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
enum SortKey {
    /// Cheapest first (lowest of on-demand, spot and community)
    Price,
    /// By name
    Name,
    /// Most GPU memory first
    Memory,
}

/// `atlas gpus`.
pub(crate) async fn run(ctx: &Context, args: GpusArgs) -> Result<ExitCode> {
    let want: Option<Gpu> = args.gpu.as_deref().map(str::parse).transpose()?;
    if ctx.provider == ALL_PROVIDERS {
        return all(ctx, want, args.timeout.timeout).await;
    }
    let p = ctx.provider()?;
    let mut types = within(
        args.timeout.timeout,
        p.name(),
        "gpu_types",
        TIMEOUT_HINT,
        p.gpu_types(),
    )
    .await?;
    if let Some(g) = want {
        types.retain(|t| t.gpu.is_some_and(|o| g.covers(o)));
    }
    match args.sort {
        Some(SortKey::Price) => types.sort_by(by_price),
        Some(SortKey::Name) => types.sort_by(|a, b| a.name.cmp(&b.name)),
        Some(SortKey::Memory) => types.sort_by_key(|g| std::cmp::Reverse(g.memory_gb)),
        None => {}
    }
    ctx.out.many(&types, table)?;
    Ok(ExitCode::SUCCESS)
}

/// `atlas gpus --provider all` in JSON.
#[derive(Debug, Serialize)]
struct AllOffers {
    /// Cheapest first.
    offers: Vec<Offer>,
    providers: Vec<ProviderEntry>,
}

/// One provider's part of `atlas gpus --provider all`.
#[derive(Debug, Serialize)]
struct ProviderEntry {
    provider: String,
    /// Whether this provider answered.
    ok: bool,
    /// How many offers it gave (after `--gpu`).
    #[serde(skip_serializing_if = "Option::is_none")]
    offers: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ListingError>,
}

/// `atlas gpus --provider all`: every configured provider with a catalog, concurrently.
async fn all(ctx: &Context, want: Option<Gpu>, timeout: Duration) -> Result<ExitCode> {
    let mut placer = Placer::new().with_timeout(timeout);
    for (name, built) in ctx.configured()? {
        placer = match built {
            Ok(p) if p.capabilities().contains(Capability::GpuTypes) => {
                placer.with_provider(Arc::new(p))
            }
            Ok(_) => placer,
            Err(e) => placer.with_unavailable(name, &e),
        };
    }
    let req = Requirements {
        gpu: want,
        ..Requirements::any_gpu()
    };
    let placement = placer.offers(&req).await?;
    let providers: Vec<ProviderEntry> = placement
        .providers
        .into_iter()
        .map(|r| ProviderEntry {
            ok: r.ok(),
            offers: r.ok().then_some(r.offers),
            error: r.error.as_ref().map(ListingError::of),
            provider: r.provider,
        })
        .collect();
    let result = AllOffers {
        offers: placement.offers,
        providers,
    };
    ctx.out
        .one(&result, |out, r| offers_table(out, &r.offers))?;
    Ok(completeness(
        result.providers.iter().filter_map(|p| p.error.as_ref()),
    ))
}

fn offers_table(out: &Out, offers: &[Offer]) -> String {
    let mut t = out.table(&[
        "PROVIDER",
        "GPU",
        "ID",
        "MEMORY",
        "PRICE",
        "PRICING",
        "AVAILABLE",
        "STOCK",
        "REGIONS",
    ]);
    for o in offers {
        let available = match o.available {
            Some(true) => "yes",
            Some(false) => "no",
            None => "-",
        };
        t.add_row(vec![
            Cell::new(&o.provider),
            Cell::new(or_dash(o.gpu)),
            Cell::new(&o.id),
            Cell::new(or_dash(o.memory_gb.map(|m| format!("{m} GB")))),
            Cell::new(price(Some(o.price_per_hour))),
            Cell::new(o.pricing.as_str()),
            Cell::new(available),
            Cell::new(or_dash(o.stock.as_deref())),
            Cell::new(o.regions.join(", ")),
        ]);
    }
    t.to_string()
}

/// Known prices ascending; unknown prices last.
fn by_price(a: &GpuType, b: &GpuType) -> Ordering {
    match (a.lowest_price(), b.lowest_price()) {
        (Some(x), Some(y)) => x.total_cmp(&y),
        (Some(_), None) => Ordering::Less,
        (None, Some(_)) => Ordering::Greater,
        (None, None) => Ordering::Equal,
    }
}

fn table(out: &Out, types: &[GpuType]) -> String {
    let mut t = out.table(&[
        "GPU",
        "ID",
        "MEMORY",
        "ON-DEMAND",
        "SPOT",
        "COMMUNITY",
        "STOCK",
        "REGIONS",
    ]);
    for g in types {
        let stock = match (g.available, &g.stock) {
            (_, Some(s)) => s.clone(),
            (Some(true), None) => "available".into(),
            (Some(false), None) => "none".into(),
            (None, None) => "-".into(),
        };
        t.add_row(vec![
            Cell::new(or_dash(g.gpu)),
            Cell::new(&g.id),
            Cell::new(or_dash(g.memory_gb.map(|m| format!("{m} GB")))),
            Cell::new(price(g.price_on_demand)),
            Cell::new(price(g.price_spot)),
            Cell::new(price(g.price_community)),
            Cell::new(stock),
            Cell::new(g.regions.join(", ")),
        ]);
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_prices_sort_last() {
        let mut a = GpuType::new("p", "a", "A");
        a.price_spot = Some(1.0);
        let b = GpuType::new("p", "b", "B");
        let mut c = GpuType::new("p", "c", "C");
        c.price_on_demand = Some(0.5);
        let mut v = [b, a, c];
        v.sort_by(by_price);
        let ids: Vec<&str> = v.iter().map(|g| g.id.as_str()).collect();
        assert_eq!(ids, ["c", "a", "b"]);
    }
}
