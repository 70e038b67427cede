//! `atlas gpus [--gpu G] [--sort price]`: the provider's GPU catalog with prices.

use std::cmp::Ordering;

use clap::{Args, ValueEnum};
use cloud_atlas::{Gpu, GpuType, Provider, Result};
use comfy_table::Cell;

use crate::context::Context;
use crate::output::{or_dash, price, Out};

/// Arguments of `atlas gpus`.
#[derive(Debug, Args)]
pub(crate) struct GpusArgs {
    /// Only this GPU (canonical name, e.g. h100, a100-80g)
    #[arg(long, value_name = "GPU")]
    gpu: Option<String>,
    /// Sort order [default: the provider's order]
    #[arg(long, value_enum)]
    sort: Option<SortKey>,
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
pub(crate) async fn run(ctx: &Context, args: GpusArgs) -> Result<()> {
    let want: Option<Gpu> = args.gpu.as_deref().map(str::parse).transpose()?;
    let p = ctx.provider()?;
    let mut types = p.gpu_types().await?;
    if let Some(g) = want {
        types.retain(|t| t.gpu.is_some_and(|o| g.covers(o)));
    }
    match args.sort {
        Some(SortKey::Price) => types.sort_by(by_price),
        Some(SortKey::Name) => types.sort_by(|a, b| a.name.cmp(&b.name)),
        Some(SortKey::Memory) => types.sort_by_key(|g| std::cmp::Reverse(g.memory_gb)),
        None => {}
    }
    ctx.out.many(&types, table)
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
