//! `atlas session …`: tracked sessions in the local store (SQLite in the data directory).
//!
//! `spawn` runs the orchestrator just long enough to spawn and record one session, then
//! releases it: the machine keeps running, tracked, with its provider-side deadline; the
//! next orchestrator on this store (or `atlas session stop`) enforces its idle TTL and
//! max runtime. `ls` reads the store. `stop` terminates a session and forgets it.

use std::time::Duration;

use clap::{Args, Subcommand};
use cloud_atlas::orchestrator::store::{SessionStore, SqliteSessionStore};
use cloud_atlas::orchestrator::{
    Orchestrator, OrchestratorConfig, Session, SessionRequest, ShutdownPolicy,
};
use cloud_atlas::{Compute, Result};
use comfy_table::Cell;
use serde::Serialize;

use crate::cmd::compute::{credential_lines, SpawnArgs};
use crate::context::Context;
use crate::output::{or_dash, price, Out};

/// `atlas session …`.
#[derive(Debug, Subcommand)]
pub(crate) enum SessionCmd {
    /// Spawn a tracked session (starts billing) and leave it running, tracked
    Spawn(Box<SessionSpawnArgs>),
    /// List tracked sessions
    Ls,
    /// Terminate a tracked session and forget it (stops billing)
    Stop {
        /// Session id
        id: String,
    },
}

/// Arguments of `atlas session spawn`.
#[derive(Debug, Args)]
pub(crate) struct SessionSpawnArgs {
    /// Who the session is for
    #[arg(long, value_name = "USER")]
    user: String,
    /// Cost cap in USD for this session
    #[arg(long, value_name = "USD", value_parser = crate::flags::usd, allow_negative_numbers = true)]
    max_cost: Option<f64>,
    /// Resource name prefix (the reaper's prefix)
    #[arg(long, value_name = "PREFIX", default_value = "atlas-")]
    prefix: String,
    #[command(flatten)]
    compute: SpawnArgs,
}

/// What `atlas session spawn` prints (its JSON shape).
#[derive(Debug, Serialize)]
struct Spawned {
    session: Session,
    compute: Compute,
}

async fn orchestrator(ctx: &Context) -> Result<Orchestrator> {
    let store = SqliteSessionStore::from_config(&ctx.config)?;
    let mut cfg = OrchestratorConfig::default();
    cfg.reaper.enabled = false;
    cfg.watch_running = false;
    cfg.shutdown_timeout = Duration::from_secs(30);
    Orchestrator::builder()
        .store(store)
        .provider(ctx.provider()?)
        .config(cfg)
        .start()
        .await
}

/// `atlas session …`.
pub(crate) async fn run(ctx: &Context, cmd: SessionCmd) -> Result<()> {
    match cmd {
        SessionCmd::Spawn(a) => {
            let mut req =
                SessionRequest::new(ctx.provider.clone(), a.user.clone(), a.compute.request()?)
                    .with_name_prefix(a.prefix.clone());
            if let Some(usd) = a.max_cost {
                req = req.with_max_cost(usd);
            }
            req.validate()?;
            let orch = orchestrator(ctx).await?;
            // SIGINT/SIGTERM: the spawn reaches its outcome, the session stays recorded,
            // and what exists is reported (crate::signal).
            let mut signals = crate::signal::Signals::install()?;
            let (res, mut caught) = signals.shielded(orch.spawn(req)).await;
            let ready = match (&res, a.compute.wait, caught) {
                (Ok(s), true, None) => {
                    let waiting = orch.wait_ready(&s.session.id, a.compute.timeout);
                    signals
                        .interruptible(waiting)
                        .await
                        .map_err(|sig| caught = Some(sig))
                        .ok()
                }
                _ => None,
            };
            let released = orch.shutdown(ShutdownPolicy::Release).await;
            if let Some(sig) = caught {
                crate::cmd::compute::report_interrupted_session(sig, &res);
            }
            released?;
            let s = res?;
            eprintln!(
                "{}",
                crate::cmd::compute::session_limits_note(
                    &ctx.provider()?,
                    &a.compute.request()?,
                    s.session.idle_ttl,
                    s.session.max_runtime,
                    s.session.max_cost_usd,
                )
            );
            let session = match ready {
                Some(r) => r?,
                None => s.session,
            };
            let out = Spawned {
                session,
                compute: s.compute,
            };
            ctx.out.one(&out, |o, s| {
                let mut text = session_table(o, &s.session).to_string();
                for l in credential_lines(&s.compute) {
                    text.push('\n');
                    text.push_str(&l);
                }
                text
            })
        }
        SessionCmd::Ls => {
            let store = SqliteSessionStore::from_config(&ctx.config)?;
            let mut all = store.list().await?;
            all.sort_by_key(|s| s.created_at);
            ctx.out.many(&all, list_table)
        }
        SessionCmd::Stop { id } => {
            let orch = orchestrator(ctx).await?;
            let res = orch.stop_tracked(&id).await;
            orch.shutdown(ShutdownPolicy::Release).await?;
            res?;
            ctx.out.one(
                &serde_json::json!({"id": id, "action": "terminated"}),
                |_, _| format!("session {id} terminated"),
            )
        }
    }
}

fn session_table(out: &Out, s: &Session) -> comfy_table::Table {
    out.kv_table(vec![
        ("session", Cell::new(&s.id)),
        ("user", Cell::new(&s.user_id)),
        ("provider", Cell::new(&s.provider)),
        ("compute", Cell::new(or_dash(s.compute_id.as_deref()))),
        ("name", Cell::new(&s.name)),
        ("state", out.status_cell(s.state.as_str())),
        ("url", Cell::new(or_dash(s.http_url.as_deref()))),
        ("price", Cell::new(price(Some(s.cost_per_hour)))),
        (
            "idle ttl",
            Cell::new(humantime::format_duration(s.idle_ttl)),
        ),
        (
            "max runtime",
            Cell::new(humantime::format_duration(s.max_runtime)),
        ),
    ])
}

fn list_table(out: &Out, all: &[Session]) -> String {
    let mut t = out.table(&[
        "SESSION",
        "USER",
        "PROVIDER",
        "COMPUTE",
        "STATE",
        "PRICE",
        "LAST TOUCH",
    ]);
    for s in all {
        t.add_row(vec![
            Cell::new(&s.id),
            Cell::new(&s.user_id),
            Cell::new(&s.provider),
            Cell::new(or_dash(s.compute_id.as_deref())),
            out.status_cell(s.state.as_str()),
            Cell::new(price(Some(s.cost_per_hour))),
            Cell::new(s.last_touch.format("%Y-%m-%d %H:%M:%S UTC")),
        ]);
    }
    t.to_string()
}
