//! `atlas reap`: the orchestrator's orphan reaper, run once against the session store
//! (SQLite in the data directory, or `--store`/`ATLAS_DATABASE_URL`) and the chosen provider.
//!
//! A machine is terminated only when no tracked session owns it, its name starts with
//! `--prefix` (default `atlas-session-`: the session machines' namespace, so machines of a
//! plain `atlas spawn`, named `atlas-…`, are kept as "not a session machine"), and it is
//! older than `--grace` (default 10m). A failed listing reaps nothing. `--dry-run` prints
//! every decision with its reason and changes nothing. `reaper_prefix` and `reaper_grace`
//! of the `[orchestrator]` table apply when the flags are not given.

use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use cloud_atlas::orchestrator::{ReapAction, ReapOptions, ReapReport, Reaper, ReaperConfig};
use cloud_atlas::spec::DurationRange;

/// `--grace`: 0s to 365d.
const GRACE: DurationRange = DurationRange::new(Duration::ZERO, Duration::from_secs(365 * 86_400));
use cloud_atlas::Result;
use comfy_table::Cell;

use crate::context::Context;
use crate::output::{or_dash, Out};

/// Arguments of `atlas reap`.
#[derive(Debug, Args)]
pub(crate) struct ReapArgs {
    /// Decide and explain; terminate nothing
    #[arg(long)]
    dry_run: bool,
    /// Only untracked machines whose name starts with this are reaped (default: session
    /// machines only; a wider prefix such as atlas- also reaps plain `atlas spawn` machines)
    /// [default: [orchestrator] reaper_prefix, else atlas-session-]
    #[arg(long, value_name = "PREFIX")]
    prefix: Option<String>,
    /// Machines younger than this are never reaped, 0s to 365d, e.g. 10m [default:
    /// [orchestrator] reaper_grace, else 10m]
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::duration(GRACE))]
    grace: Option<Duration>,
    /// Allow an empty --prefix: reap every untracked machine of the account
    #[arg(long)]
    force_empty_prefix: bool,
    /// Session store: sqlite (the data dir), a SQLite file, or postgres://… [default: sqlite]
    #[arg(
        long,
        env = "ATLAS_DATABASE_URL",
        hide_env_values = true,
        value_name = "STORE"
    )]
    store: Option<String>,
}

/// `atlas reap`.
pub(crate) async fn run(ctx: &Context, a: ReapArgs) -> Result<()> {
    let settings = crate::cmd::session::settings(ctx)?;
    let file = settings.config()?.reaper;
    let config = ReaperConfig::default()
        .with_prefix(a.prefix.unwrap_or(file.prefix))
        .with_grace(a.grace.unwrap_or(file.grace))
        .with_force_empty_prefix(a.force_empty_prefix);
    config.validate()?;
    let store = crate::store::open(ctx, a.store.as_deref(), "atlas-reap-cli")
        .await?
        .store;
    let provider = ctx.provider()?;
    let reaper = Reaper::new(store, config).provider(Arc::new(provider));
    let opts = if a.dry_run {
        ReapOptions::dry_run()
    } else {
        ReapOptions::default()
    }
    .provider(ctx.provider.clone());
    let report = reaper.run(&opts).await?;
    ctx.out.one(&report, table)
}

fn table(out: &Out, r: &ReapReport) -> String {
    let mut t = out.table(&["ACTION", "COMPUTE", "NAME", "SESSION", "REASON"]);
    for d in &r.decisions {
        let action = match (d.action, r.dry_run, d.done, &d.error) {
            (ReapAction::Keep, ..) => "keep".to_string(),
            (a, true, ..) => format!("would {a}"),
            (a, false, _, Some(_)) => format!("{a} (failed)"),
            (a, false, true, None) => format!("{a}: done"),
            (a, false, false, None) => a.to_string(),
        };
        let reason = match &d.error {
            Some(e) => format!("{}: {e}", d.reason),
            None => d.reason.clone(),
        };
        t.add_row(vec![
            Cell::new(action),
            Cell::new(or_dash(d.compute_id.as_deref())),
            Cell::new(or_dash(d.name.as_deref())),
            Cell::new(or_dash(
                d.session_id.as_deref().map(|s| &s[..s.len().min(12)]),
            )),
            Cell::new(reason),
        ]);
    }
    let head = if r.dry_run {
        "dry run: nothing was changed"
    } else {
        "reaped"
    };
    let terminate = r.with_action(ReapAction::Terminate).count();
    format!(
        "{t}\n{head}; {} decisions, {terminate} orphan(s) to terminate",
        r.decisions.len()
    )
}
