//! `atlas runpod …`: RunPod's management surfaces that have no place in the
//! provider-neutral commands: templates, serverless endpoints, network volumes and billing.
//!
//! These always talk to RunPod (`RUNPOD_API_KEY`, `ATLAS_RUNPOD_BASE_URL`, `--api-key`
//! and `--base-url` apply); `--provider` naming another provider is a usage error.
//! Serverless *jobs* are the generic `atlas job … --provider runpod`.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand, ValueEnum};
use cloud_atlas::providers::runpod::billing::{BillingFamily, BillingRecord};
use cloud_atlas::providers::runpod::{
    BillingQuery, BillingSummary, BucketSize, Endpoint, NetworkVolume, RunPod, RunPodBuilder,
    Template,
};
use cloud_atlas::{Error, Result};
use comfy_table::Cell;
use serde::Serialize;

use crate::context::Context;
use crate::output::{or_dash, Out};

/// The provider name these commands use.
pub(crate) const NAME: &str = "runpod";

/// `atlas runpod` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum RunpodCommand {
    /// Pod and serverless templates
    Templates {
        #[command(subcommand)]
        command: ResourceCommand,
    },
    /// Serverless endpoints (their jobs: `atlas job --provider runpod`)
    Endpoints {
        #[command(subcommand)]
        command: ResourceCommand,
    },
    /// Network volumes
    Volumes {
        #[command(subcommand)]
        command: VolumeCommand,
    },
    /// Spend per time bucket, for everything or one family of resources
    Billing(BillingArgs),
}

/// `list`, `get`, `delete` of one kind of resource.
#[derive(Debug, Subcommand)]
pub(crate) enum ResourceCommand {
    /// List them
    List,
    /// Show one
    Get(ResourceId),
    /// Delete one
    Delete(ResourceId),
}

/// `atlas runpod volumes` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum VolumeCommand {
    /// List network volumes
    List,
    /// Show one network volume
    Get(ResourceId),
    /// Create a network volume (bills for its size until deleted)
    Create(CreateVolumeArgs),
    /// Rename or grow a network volume
    Update(UpdateVolumeArgs),
    /// Delete a network volume and its data
    Delete(ResourceId),
}

/// One resource id.
#[derive(Debug, Args)]
pub(crate) struct ResourceId {
    /// Id (as printed by `list`)
    id: String,
}

/// Arguments of `atlas runpod volumes create`.
#[derive(Debug, Args)]
pub(crate) struct CreateVolumeArgs {
    /// Volume name
    name: String,
    /// Size in GB (10-4096)
    #[arg(long, value_name = "N")]
    size_gb: u32,
    /// Data center, e.g. EU-RO-1 (pods using the volume run there)
    #[arg(long = "dc", visible_alias = "data-center", value_name = "DC")]
    dc: String,
}

/// Arguments of `atlas runpod volumes update`.
#[derive(Debug, Args)]
pub(crate) struct UpdateVolumeArgs {
    /// Volume id
    id: String,
    /// New name
    #[arg(long, value_name = "NAME")]
    name: Option<String>,
    /// New size in GB (volumes only grow)
    #[arg(long, value_name = "N")]
    size_gb: Option<u32>,
}

/// Arguments of `atlas runpod billing`.
#[derive(Debug, Args)]
pub(crate) struct BillingArgs {
    /// Which resources [default: all]
    #[arg(long, value_enum, default_value_t = Family::All)]
    family: Family,
    /// Only this resource (a pod, serverless endpoint, network volume or cluster id)
    #[arg(long, value_name = "ID")]
    resource: Option<String>,
    /// The last N buckets, ending with the current one
    #[arg(long, value_name = "N", conflicts_with_all = ["start", "end"])]
    last: Option<u32>,
    /// Bucket length: hour, day, week, month or year [default: RunPod's, day]
    #[arg(long, value_name = "SIZE")]
    bucket: Option<String>,
    /// Window start, RFC 3339 (e.g. 2026-05-01T00:00:00Z) [default: RunPod's, 30 days ago]
    #[arg(long, value_name = "TIME")]
    start: Option<String>,
    /// Window end, exclusive, RFC 3339 [default: now]
    #[arg(long, value_name = "TIME")]
    end: Option<String>,
}

/// `--family`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Family {
    /// Every billable resource
    All,
    /// Pods
    Pods,
    /// Serverless workers
    Serverless,
    /// Public endpoints
    Endpoints,
    /// Network volumes
    Volumes,
    /// Instant clusters
    Clusters,
}

impl Family {
    fn native(self) -> BillingFamily {
        match self {
            Family::All => BillingFamily::All,
            Family::Pods => BillingFamily::Pods,
            Family::Serverless => BillingFamily::Serverless,
            Family::Endpoints => BillingFamily::Endpoints,
            Family::Volumes => BillingFamily::NetworkVolumes,
            Family::Clusters => BillingFamily::Clusters,
        }
    }
}

/// JSON shape of the `delete` commands.
#[derive(Debug, Serialize)]
struct Deleted<'a> {
    id: &'a str,
    provider: &'static str,
    kind: &'static str,
    action: &'static str,
}

/// RunPod itself, built from the same settings `--provider runpod` uses (the
/// `--api-key`/`--base-url` overrides apply when RunPod is the chosen provider).
///
/// # Errors
/// `Unauthorized` naming `RUNPOD_API_KEY` when no key is set; `Validation` for bad options.
pub(crate) fn client(ctx: &Context) -> Result<RunPod> {
    RunPodBuilder::from_settings(ctx.settings(NAME)).build()
}

/// Run an `atlas runpod` subcommand.
pub(crate) async fn run(mut ctx: Context, command: RunpodCommand) -> Result<()> {
    if ctx.provider_explicit && ctx.provider != NAME {
        return Err(Error::validation(
            "provider",
            format!(
                "`atlas runpod` always uses RunPod; drop `--provider {}`",
                ctx.provider
            ),
        ));
    }
    // So `--api-key`/`--base-url` apply to RunPod whatever `default_provider` says.
    ctx.provider = NAME.to_string();
    match command {
        RunpodCommand::Templates { command } => templates(&ctx, command).await,
        RunpodCommand::Endpoints { command } => endpoints(&ctx, command).await,
        RunpodCommand::Volumes { command } => volumes(&ctx, command).await,
        RunpodCommand::Billing(a) => billing(&ctx, a).await,
    }
}

async fn templates(ctx: &Context, command: ResourceCommand) -> Result<()> {
    let api = client(ctx)?.templates();
    match command {
        ResourceCommand::List => ctx.out.many(&api.list().await?, template_rows),
        ResourceCommand::Get(a) => ctx.out.one(&api.get(&a.id).await?, template_detail),
        ResourceCommand::Delete(a) => {
            api.delete(&a.id).await?;
            deleted(&ctx.out, &a.id, "template")
        }
    }
}

async fn endpoints(ctx: &Context, command: ResourceCommand) -> Result<()> {
    let api = client(ctx)?.endpoints();
    match command {
        ResourceCommand::List => ctx.out.many(&api.list().await?, endpoint_rows),
        ResourceCommand::Get(a) => ctx.out.one(&api.get(&a.id).await?, endpoint_detail),
        ResourceCommand::Delete(a) => {
            api.delete(&a.id).await?;
            deleted(&ctx.out, &a.id, "endpoint")
        }
    }
}

async fn volumes(ctx: &Context, command: VolumeCommand) -> Result<()> {
    let api = client(ctx)?.network_volumes();
    match command {
        VolumeCommand::List => ctx.out.many(&api.list().await?, volume_rows),
        VolumeCommand::Get(a) => ctx.out.one(&api.get(&a.id).await?, volume_detail),
        VolumeCommand::Create(a) => ctx
            .out
            .one(&api.create(&a.name, a.size_gb, &a.dc).await?, volume_detail),
        VolumeCommand::Update(a) => ctx.out.one(
            &api.update(&a.id, a.name.as_deref(), a.size_gb).await?,
            volume_detail,
        ),
        VolumeCommand::Delete(a) => {
            api.delete(&a.id).await?;
            deleted(&ctx.out, &a.id, "network volume")
        }
    }
}

fn deleted(out: &Out, id: &str, kind: &'static str) -> Result<()> {
    let r = Deleted {
        id,
        provider: NAME,
        kind,
        action: "deleted",
    };
    out.one(&r, |_, r| format!("deleted {} {}", r.kind, r.id))
}

async fn billing(ctx: &Context, a: BillingArgs) -> Result<()> {
    let q = billing_query(&a)?;
    let family = a.family.native();
    let summary = client(ctx)?
        .billing()
        .read(family, &q, a.resource.as_deref())
        .await?;
    ctx.out.one(&summary, billing_table)
}

/// The query from the flags; bad values are `Validation` errors naming the flag.
fn billing_query(a: &BillingArgs) -> Result<BillingQuery> {
    let mut q = BillingQuery::default();
    q.bucket_size = a
        .bucket
        .as_deref()
        .map(str::parse::<BucketSize>)
        .transpose()?;
    q.last_n = a.last;
    q.start_time = a.start.as_deref().map(|s| time("start", s)).transpose()?;
    q.end_time = a.end.as_deref().map(|s| time("end", s)).transpose()?;
    if let (Some(s), Some(e)) = (q.start_time, q.end_time) {
        if s >= e {
            return Err(Error::validation("start", "must be before --end"));
        }
    }
    if a.last == Some(0) {
        return Err(Error::validation("last", "must be at least 1"));
    }
    Ok(q)
}

fn time(field: &str, s: &str) -> Result<DateTime<Utc>> {
    DateTime::parse_from_rfc3339(s.trim())
        .map(|t| t.with_timezone(&Utc))
        .map_err(|_| {
            Error::validation(
                field,
                format!("{s:?} is not an RFC 3339 time; use e.g. 2026-05-01T00:00:00Z"),
            )
        })
}

fn usd(v: f64) -> String {
    format!("${v:.2}")
}

fn time_text(t: Option<DateTime<Utc>>) -> String {
    or_dash(t.map(|t| t.format("%Y-%m-%d %H:%M")))
}

fn billing_table(out: &Out, s: &BillingSummary) -> String {
    let mut t = out.table(&["START", "END", "RESOURCE", "TOTAL", "PARTS"]);
    for r in &s.records {
        t.add_row(record_row(r));
    }
    let window = format!(
        "total {} from {} to {} (buckets: {})",
        usd(s.total),
        time_text(s.start_time),
        time_text(s.end_time),
        s.bucket_size.as_deref().unwrap_or("-")
    );
    format!("{t}\n{window}")
}

fn record_row(r: &BillingRecord) -> Vec<Cell> {
    let parts = r
        .amounts
        .iter()
        .filter(|(k, v)| k.as_str() != "totalAmount" && **v != 0.0)
        .map(|(k, v)| format!("{}: {}", k.trim_end_matches("Amount"), usd(*v)))
        .collect::<Vec<_>>()
        .join(", ");
    vec![
        Cell::new(time_text(r.start_time)),
        Cell::new(time_text(r.end_time)),
        Cell::new(or_dash(r.resource_id.as_deref())),
        Cell::new(usd(r.total)),
        Cell::new(if parts.is_empty() { "-".into() } else { parts }),
    ]
}

fn yes_no(b: bool) -> &'static str {
    if b {
        "yes"
    } else {
        "no"
    }
}

fn template_rows(out: &Out, items: &[Template]) -> String {
    let mut t = out.table(&["ID", "NAME", "IMAGE", "SERVERLESS", "PUBLIC", "CATEGORY"]);
    for x in items {
        t.add_row(vec![
            Cell::new(&x.id),
            Cell::new(&x.name),
            Cell::new(or_dash(x.image.as_deref())),
            Cell::new(yes_no(x.serverless)),
            Cell::new(yes_no(x.public)),
            Cell::new(or_dash(x.category.as_deref())),
        ]);
    }
    t.to_string()
}

fn template_detail(out: &Out, x: &Template) -> String {
    out.kv_table(vec![
        ("id", Cell::new(&x.id)),
        ("name", Cell::new(&x.name)),
        ("image", Cell::new(or_dash(x.image.as_deref()))),
        ("serverless", Cell::new(yes_no(x.serverless))),
        ("public", Cell::new(yes_no(x.public))),
        ("category", Cell::new(or_dash(x.category.as_deref()))),
        (
            "disk",
            Cell::new(or_dash(x.disk.map(|d| format!("{d} GB")))),
        ),
        ("ports", Cell::new(dash_join(&x.ports))),
    ])
    .to_string()
}

fn workers(e: &Endpoint) -> String {
    format!("{}-{}", e.workers.min, e.workers.max)
}

fn endpoint_rows(out: &Out, items: &[Endpoint]) -> String {
    let mut t = out.table(&["ID", "NAME", "TYPE", "IMAGE", "WORKERS", "DATA CENTERS"]);
    for e in items {
        t.add_row(vec![
            Cell::new(&e.id),
            Cell::new(&e.name),
            Cell::new(or_dash(e.endpoint_type.as_deref())),
            Cell::new(or_dash(e.image.as_deref())),
            Cell::new(workers(e)),
            Cell::new(dash_join(&e.data_center_ids)),
        ]);
    }
    t.to_string()
}

fn endpoint_detail(out: &Out, e: &Endpoint) -> String {
    out.kv_table(vec![
        ("id", Cell::new(&e.id)),
        ("name", Cell::new(&e.name)),
        ("type", Cell::new(or_dash(e.endpoint_type.as_deref()))),
        ("image", Cell::new(or_dash(e.image.as_deref()))),
        ("workers", Cell::new(workers(e))),
        (
            "idle timeout",
            Cell::new(or_dash(e.workers.idle_timeout.map(|s| format!("{s}s")))),
        ),
        ("data centers", Cell::new(dash_join(&e.data_center_ids))),
        ("created", Cell::new(or_dash(e.created_at.as_deref()))),
    ])
    .to_string()
}

fn volume_rows(out: &Out, items: &[NetworkVolume]) -> String {
    let mut t = out.table(&["ID", "NAME", "SIZE", "DATA CENTER", "TYPE"]);
    for v in items {
        t.add_row(vec![
            Cell::new(&v.id),
            Cell::new(&v.name),
            Cell::new(format!("{} GB", v.size_gb)),
            Cell::new(&v.data_center),
            Cell::new(or_dash(v.volume_type.as_deref())),
        ]);
    }
    t.to_string()
}

fn volume_detail(out: &Out, v: &NetworkVolume) -> String {
    out.kv_table(vec![
        ("id", Cell::new(&v.id)),
        ("name", Cell::new(&v.name)),
        ("size", Cell::new(format!("{} GB", v.size_gb))),
        ("data center", Cell::new(&v.data_center)),
        ("type", Cell::new(or_dash(v.volume_type.as_deref()))),
    ])
    .to_string()
}

fn dash_join(items: &[String]) -> String {
    if items.is_empty() {
        "-".into()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloud_atlas::ErrorKind;

    fn args(start: Option<&str>, end: Option<&str>, bucket: Option<&str>) -> BillingArgs {
        BillingArgs {
            family: Family::All,
            resource: None,
            last: None,
            bucket: bucket.map(str::to_string),
            start: start.map(str::to_string),
            end: end.map(str::to_string),
        }
    }

    #[test]
    fn billing_flags_become_a_query_or_name_the_bad_flag() {
        let q = billing_query(&args(
            Some("2026-05-01T00:00:00Z"),
            Some("2026-05-08T00:00:00+02:00"),
            Some("week"),
        ))
        .unwrap();
        assert_eq!(q.bucket_size, Some(BucketSize::Week));
        assert_eq!(
            q.end_time.unwrap().to_rfc3339(),
            "2026-05-07T22:00:00+00:00"
        );
        for (a, field) in [
            (args(Some("yesterday"), None, None), "start"),
            (args(None, Some("2026-13-01"), None), "end"),
            (args(None, None, Some("fortnight")), "bucket_size"),
            (
                args(
                    Some("2026-05-02T00:00:00Z"),
                    Some("2026-05-01T00:00:00Z"),
                    None,
                ),
                "start",
            ),
        ] {
            let e = billing_query(&a).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Validation);
            assert!(e.message().starts_with(field), "{field}: {e}");
        }
        let mut zero = args(None, None, None);
        zero.last = Some(0);
        assert!(billing_query(&zero)
            .unwrap_err()
            .message()
            .starts_with("last"));
    }
}
