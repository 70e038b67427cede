//! `atlas vast …`: the Vast.ai offer market.
//!
//! `atlas vast offers [--gpu G] [--count N] [--spot] [--region CC] [--max-price USD]
//! [--limit N] [--verified]` prints live offers (rentable, not rented, reliability at
//! least 0.98, priced with the default 16 GB disk), cheapest first. Without
//! `--verified` offers from any host are shown; `spawn` rents verified hosts only
//! unless `--provider-opt verified=false`. `-o json` prints the offers as
//! [`cloud_atlas::GpuType`] entries (`id` = offer id, `price_on_demand` or, with
//! `--spot`, `price_spot` = the bid floor, for the whole offer; `raw` = Vast's offer).
//!
//! These commands always talk to Vast.ai (`--provider` may be omitted or `vast`);
//! `--api-key` and `--base-url` apply to them, as do `VAST_API_KEY`,
//! `ATLAS_VAST_BASE_URL` and `[providers.vast]` in `atlas.toml`.

use clap::{Args, Subcommand};
use cloud_atlas::providers::vast::{translate, Offer, OfferQuery, Vast, VastBuilder};
use cloud_atlas::{Error, GpuChoice, Result};
use comfy_table::Cell;

use crate::context::Context;
use crate::output::{or_dash, price};

/// Offers shown when `--limit` is not given.
const DEFAULT_LIMIT: u32 = 20;

/// `atlas vast <command>`.
#[derive(Debug, Subcommand)]
pub(crate) enum VastCommand {
    /// Live offers, cheapest first (what `spawn --provider vast` chooses from)
    Offers(OffersArgs),
}

/// Arguments of `atlas vast offers`.
#[derive(Debug, Args)]
pub(crate) struct OffersArgs {
    /// Only this GPU (canonical name, e.g. rtx_4090, a100_sxm4_80g; or native:NAME with
    /// Vast's own gpu_name)
    #[arg(long, value_name = "GPU")]
    gpu: Option<String>,
    /// Only offers with exactly this many GPUs
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    count: Option<String>,
    /// Interruptible offers, priced at the lowest accepted bid
    #[arg(long)]
    spot: bool,
    /// Only hosts in these countries (two-letter codes; repeat or comma-separate)
    #[arg(long, value_name = "CC", value_delimiter = ',')]
    region: Vec<String>,
    /// Price ceiling in $/h for the whole offer
    #[arg(long, value_name = "USD", allow_negative_numbers = true)]
    max_price: Option<String>,
    /// Most offers to show (1–1000)
    #[arg(long, value_name = "N", allow_negative_numbers = true)]
    limit: Option<String>,
    /// Only verified hosts
    #[arg(long)]
    verified: bool,
}

impl OffersArgs {
    /// The search these flags describe; `Validation` naming the flag for a bad value.
    fn query(&self) -> Result<OfferQuery> {
        let mut q = OfferQuery::catalog(self.spot);
        q.verified = self.verified;
        if let Some(g) = &self.gpu {
            match g.parse::<GpuChoice>()? {
                GpuChoice::Canonical(gpu) => {
                    q.gpu_names = gpu
                        .require_provider_ids("vast")?
                        .iter()
                        .map(|n| n.to_string())
                        .collect();
                    q.gpu_ram_mb = Some(gpu.memory_mb_bounds());
                }
                GpuChoice::Native(name) => q.gpu_names = vec![name],
            }
        }
        q.num_gpus = self
            .count
            .as_deref()
            .map(|c| positive_int("count", c, u32::MAX))
            .transpose()?;
        q.limit = self.limit.as_deref().map_or(Ok(DEFAULT_LIMIT), |l| {
            positive_int("limit", l, translate::CATALOG_SEARCH_LIMIT)
        })?;
        q.max_price = self.max_price.as_deref().map(max_price).transpose()?;
        q.countries = self
            .region
            .iter()
            .map(|r| country(r))
            .collect::<Result<_>>()?;
        Ok(q)
    }
}

fn positive_int(field: &str, v: &str, max: u32) -> Result<u32> {
    match v.trim().parse::<u32>() {
        Ok(n) if (1..=max).contains(&n) => Ok(n),
        _ => Err(Error::validation(
            field,
            format!("{v:?} is not a whole number from 1 to {max}"),
        )),
    }
}

fn max_price(v: &str) -> Result<f64> {
    match v.trim().trim_start_matches('$').parse::<f64>() {
        Ok(p) if p.is_finite() && p > 0.0 => Ok(p),
        _ => Err(Error::validation(
            "max_price",
            format!("{v:?} is not a price; give dollars per hour above 0, e.g. 0.50"),
        )),
    }
}

fn country(v: &str) -> Result<String> {
    let c = v.trim();
    if c.len() == 2 && c.chars().all(|ch| ch.is_ascii_alphabetic()) {
        Ok(c.to_ascii_uppercase())
    } else {
        Err(Error::validation(
            "region",
            format!("{v:?} is not a country code; Vast.ai filters by two-letter country code (e.g. US, DE, CA)"),
        ))
    }
}

fn vast(ctx: &Context) -> Result<Vast> {
    if ctx.provider != "vast" {
        return Err(Error::validation(
            "provider",
            format!(
                "`atlas vast` commands always use Vast.ai, not {:?}; drop --provider or pass --provider vast",
                ctx.provider
            ),
        ));
    }
    VastBuilder::from_settings(ctx.settings("vast")).build()
}

/// Run `atlas vast …`.
pub(crate) async fn run(ctx: &Context, command: VastCommand) -> Result<()> {
    match command {
        VastCommand::Offers(a) => offers(ctx, &a).await,
    }
}

async fn offers(ctx: &Context, a: &OffersArgs) -> Result<()> {
    // Flags are checked before anything is built or sent.
    let q = a.query()?;
    let v = vast(ctx)?;
    let found = v.offers(&q).await?;
    let mut rows: Vec<(Offer, cloud_atlas::GpuType)> = found
        .into_iter()
        .map(|o| {
            let e = translate::offer_entry(&o, q.spot);
            (o, e)
        })
        .collect();
    // Cheapest by the price shown (for spot that is the bid floor, not `dph_total`).
    rows.sort_by(|x, y| shown_price(&x.1).total_cmp(&shown_price(&y.1)));
    let (offers, entries): (Vec<Offer>, Vec<_>) = rows.into_iter().unzip();
    ctx.out.many(&entries, |out, entries| {
        let mut t = out.table(&["OFFER", "GPU", "COUNT", "$/H", "RELIABILITY", "LOCATION"]);
        for (o, e) in offers.iter().zip(entries) {
            t.add_row(vec![
                Cell::new(o.id),
                Cell::new(&o.gpu_name),
                Cell::new(o.num_gpus),
                Cell::new(price(e.price_on_demand.or(e.price_spot))),
                Cell::new(or_dash(o.reliability.map(|r| format!("{:.1}%", r * 100.0)))),
                Cell::new(or_dash(o.geolocation.as_deref())),
            ]);
        }
        t.to_string()
    })
}

fn shown_price(e: &cloud_atlas::GpuType) -> f64 {
    e.price_on_demand.or(e.price_spot).unwrap_or(f64::INFINITY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(f: impl FnOnce(&mut OffersArgs)) -> OffersArgs {
        let mut a = OffersArgs {
            gpu: None,
            count: None,
            spot: false,
            region: Vec::new(),
            max_price: None,
            limit: None,
            verified: false,
        };
        f(&mut a);
        a
    }

    #[test]
    fn flags_become_the_query() {
        let q = args(|a| {
            a.gpu = Some("rtx_4090".into());
            a.count = Some("2".into());
            a.spot = true;
            a.region = vec!["us".into(), "DE".into()];
            a.max_price = Some("$1.50".into());
            a.limit = Some("5".into());
            a.verified = true;
        })
        .query()
        .unwrap();
        assert_eq!(q.gpu_names, ["RTX 4090"]);
        assert_eq!(q.num_gpus, Some(2));
        assert!(q.spot && q.verified);
        assert_eq!(q.countries, ["US", "DE"]);
        assert_eq!(q.max_price, Some(1.5));
        assert_eq!(q.limit, 5);
        let d = args(|_| {}).query().unwrap();
        assert!(!d.verified && d.gpu_names.is_empty() && d.num_gpus.is_none());
        assert_eq!(d.limit, DEFAULT_LIMIT);
    }

    #[test]
    fn bad_values_are_validation_errors_naming_the_field() {
        let cases: [(&str, OffersArgs); 7] = [
            ("max_price", args(|a| a.max_price = Some("cheap".into()))),
            ("max_price", args(|a| a.max_price = Some("-1".into()))),
            ("max_price", args(|a| a.max_price = Some("NaN".into()))),
            ("count", args(|a| a.count = Some("0".into()))),
            ("limit", args(|a| a.limit = Some("5000".into()))),
            ("region", args(|a| a.region = vec!["us-east-1".into()])),
            ("gpu", args(|a| a.gpu = Some("voodoo2".into()))),
        ];
        for (field, a) in cases {
            let e = a.query().unwrap_err();
            assert_eq!(e.kind(), cloud_atlas::ErrorKind::Validation, "{e}");
            assert!(e.to_string().contains(field), "{field}: {e}");
        }
    }
}
