//! `atlas session …`: tracked sessions in the local store (SQLite in the data directory).
//!
//! `spawn` runs the orchestrator just long enough to spawn and record one session, then
//! releases it: the machine keeps running, tracked, with its provider-side deadline; the
//! next orchestrator on this store (or `atlas session stop`) enforces its idle TTL and
//! max runtime. `ls`/`get` read the store; `touch` writes a heartbeat to it. `stop`
//! terminates a session and forgets it.
//!
//! With `--server URL` (or `$ATLAS_SERVER`) the same commands, flags and outputs are
//! answered by a running `atlas serve` instead (see `remote.rs`), which enforces the
//! limits for as long as it runs.
//!
//! The `[orchestrator]` table of `atlas.toml` (caps, default idle TTL and max runtime,
//! heartbeat flush; see `cloud_atlas::orchestrator::settings`) applies to every local
//! subcommand; an unknown or bad key there is an error (exit 2) before anything runs.

use std::time::Duration;

use clap::{Args, Subcommand};
use cloud_atlas::orchestrator::store::SessionStore;
use cloud_atlas::orchestrator::{
    Orchestrator, OrchestratorSettings, Session, SessionRequest, ShutdownPolicy,
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
    /// Show one tracked session
    Get {
        /// Session id
        id: String,
    },
    /// Record activity: restart the session's idle timer
    Touch {
        /// Session id
        id: String,
    },
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
    pub(crate) user: String,
    /// Cost cap in USD for this session
    #[arg(long, value_name = "USD", value_parser = crate::flags::usd, allow_negative_numbers = true)]
    pub(crate) max_cost: Option<f64>,
    /// Resource name prefix (the reaper's default scope is atlas-session-)
    #[arg(long, value_name = "PREFIX", default_value = cloud_atlas::spec::SESSION_NAME_PREFIX)]
    pub(crate) prefix: String,
    #[command(flatten)]
    pub(crate) compute: SpawnArgs,
}

/// What `atlas session spawn` prints (its JSON shape).
#[derive(Debug, Serialize)]
struct Spawned {
    session: Session,
    compute: Compute,
}

/// The `[orchestrator]` table of `atlas.toml`, checked.
pub(crate) fn settings(ctx: &Context) -> Result<OrchestratorSettings> {
    OrchestratorSettings::from_table(&ctx.config.orchestrator)
}

async fn orchestrator(
    ctx: &Context,
    settings: &OrchestratorSettings,
    store: std::sync::Arc<dyn SessionStore>,
) -> Result<Orchestrator> {
    // The file's caps and defaults hold; this short-lived orchestrator runs no reaper
    // (`atlas reap` and `atlas serve` do) and always releases its sessions on exit.
    let mut cfg = settings.config()?;
    cfg.reaper.enabled = false;
    cfg.watch_running = false;
    cfg.shutdown_timeout = Duration::from_secs(30);
    Orchestrator::builder()
        .store_arc(store)
        .provider(ctx.provider()?)
        .config(cfg)
        .start()
        .await
}

/// `atlas session …` on the local store (`--store`: another SQLite file or PostgreSQL).
pub(crate) async fn run(ctx: &Context, store: Option<&str>, cmd: SessionCmd) -> Result<()> {
    let settings = settings(ctx)?;
    // This process is a node of its own (it holds the reaper lease of no store).
    let crate::store::Opened { store, desc, .. } =
        crate::store::open(ctx, store, "atlas-session-cli").await?;
    match cmd {
        SessionCmd::Spawn(a) => {
            let mut req =
                SessionRequest::new(ctx.provider.clone(), a.user.clone(), a.compute.request()?)
                    .with_name_prefix(a.prefix.clone());
            if let Some(usd) = a.max_cost {
                req = req.with_max_cost(usd);
            }
            req.validate()?;
            let orch = orchestrator(ctx, &settings, store).await?;
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
            print_spawned(ctx, session, s.compute)
        }
        SessionCmd::Ls => {
            let mut all = store.list().await?;
            all.sort_by_key(|s| s.created_at);
            print_list(ctx, &all)
        }
        SessionCmd::Get { id } => {
            let s = store
                .get(&id)
                .await?
                .ok_or_else(|| crate::store::not_tracked(&id, &desc))?;
            print_one(ctx, &s)
        }
        SessionCmd::Touch { id } => {
            // No orchestrator runs here: the heartbeat goes to the store, where the next
            // orchestrator on it (atlas serve, session stop) reads it before ending the session.
            if store.get(&id).await?.is_none() {
                return Err(crate::store::not_tracked(&id, &desc));
            }
            store
                .touch_many(&[(id.clone(), chrono::Utc::now())])
                .await?;
            print_action(ctx, &id, "touched")
        }
        SessionCmd::Stop { id } => {
            let orch = orchestrator(ctx, &settings, store).await?;
            let res = orch.stop_tracked(&id).await;
            orch.shutdown(ShutdownPolicy::Release).await?;
            res?;
            print_action(ctx, &id, "terminated")
        }
    }
}

/// Print what `session spawn` made (its session, then the one-time credentials).
pub(crate) fn print_spawned(ctx: &Context, session: Session, compute: Compute) -> Result<()> {
    let out = Spawned { session, compute };
    ctx.out.one(&out, |o, s| {
        let mut text = session_table(o, &s.session).to_string();
        for l in credential_lines(&s.compute) {
            text.push('\n');
            text.push_str(&l);
        }
        text
    })
}

/// Print a listing of sessions.
pub(crate) fn print_list(ctx: &Context, all: &[Session]) -> Result<()> {
    ctx.out.many(all, list_table)
}

/// Print one session.
pub(crate) fn print_one(ctx: &Context, s: &Session) -> Result<()> {
    ctx.out.one(s, |o, s| session_table(o, s).to_string())
}

/// Print `{"id", "action"}` (`session {id} {action}` as a table).
pub(crate) fn print_action(ctx: &Context, id: &str, action: &str) -> Result<()> {
    ctx.out
        .one(&serde_json::json!({"id": id, "action": action}), |_, _| {
            format!("session {id} {action}")
        })
}

/// A session's state as shown: `damaged` for a record that cannot be trusted.
fn state_of(s: &Session) -> &'static str {
    if s.damaged.is_some() {
        "damaged"
    } else {
        s.state.as_str()
    }
}

fn session_table(out: &Out, s: &Session) -> comfy_table::Table {
    let mut t = out.kv_table(vec![
        ("session", Cell::new(&s.id)),
        ("user", Cell::new(&s.user_id)),
        ("provider", Cell::new(&s.provider)),
        ("compute", Cell::new(or_dash(s.compute_id.as_deref()))),
        ("name", Cell::new(&s.name)),
        ("state", out.status_cell(state_of(s))),
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
        ("owner", Cell::new(or_dash(s.owner.as_deref()))),
    ]);
    if let Some(why) = &s.damaged {
        t.add_row(vec![
            Cell::new("damaged"),
            Cell::new(format!(
                "{why}; `atlas session stop {}` terminates its machine and forgets it",
                s.id
            )),
        ]);
    }
    t
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
            out.status_cell(state_of(s)),
            Cell::new(price(Some(s.cost_per_hour))),
            Cell::new(s.last_touch.format("%Y-%m-%d %H:%M:%S UTC")),
        ]);
    }
    t.to_string()
}
