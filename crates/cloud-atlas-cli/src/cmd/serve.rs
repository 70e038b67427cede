//! `atlas serve`: the control plane. Runs the orchestrator (idle TTLs, max runtimes,
//! spend caps and the reaper are enforced while it runs, whoever spawned the session)
//! and serves `cloud-atlas-web`: the REST API under `/v1`, events, metrics and the
//! dashboard at `/`.
//!
//! Works on a fresh machine with no keys: the mock cloud, SQLite under the data
//! directory, `127.0.0.1:7878`, reaper on. Settings come from flags, else the `[server]`
//! table of `atlas.toml` (see `cloud_atlas_web::config`), else the defaults. The admin
//! token is `$ATLAS_ADMIN_TOKEN`, else the token file (created 0600 in a 0700 folder on
//! first start and printed that once).
//!
//! On SIGINT/SIGTERM it stops accepting requests, applies the shutdown policy
//! (`terminate`: every tracked machine is terminated; `release`: left running and
//! tracked for the next start), prints what it did and what is still tracked, and exits 0.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use clap::Args;
use cloud_atlas::orchestrator::{Orchestrator, SessionFilter, ShutdownPolicy};
use cloud_atlas::{Error, ErrorKind, Provider, Result};
use cloud_atlas_web::{AdminToken, ControlPlane, ServerConfig, TokenSource, ADMIN_TOKEN_ENV};

use crate::context::Context;

/// Arguments of `atlas serve`.
#[derive(Debug, Args)]
pub(crate) struct ServeArgs {
    /// Address to listen on [default: [server] bind, else 127.0.0.1:7878]
    #[arg(long, value_name = "HOST:PORT")]
    bind: Option<String>,
    /// Providers sessions may use, comma-separated [default: [server] providers, else mock]
    #[arg(long, value_name = "LIST", value_delimiter = ',')]
    providers: Vec<String>,
    /// Session store: sqlite (the data dir), a SQLite file, or postgres://… [default: sqlite]
    #[arg(long, value_name = "STORE")]
    store: Option<String>,
    /// This node's id (several nodes sharing one store)
    #[arg(long, value_name = "ID")]
    node_id: Option<String>,
    /// Do not run the orphan reaper
    #[arg(long)]
    no_reaper: bool,
    /// On SIGINT/SIGTERM: terminate tracked sessions, or release them for the next start
    #[arg(long, value_name = "POLICY")]
    shutdown: Option<String>,
    /// Let the dashboard stop sessions (API clients with the token always can)
    #[arg(long)]
    allow_destructive: bool,
    /// Origin allowed to call the API cross-origin with the token (repeatable)
    #[arg(long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Admin token file [default: <data dir>/server/admin-token]
    #[arg(long, value_name = "FILE")]
    admin_token_file: Option<std::path::PathBuf>,
}

/// `[server]` settings with the flags on top.
fn settings(ctx: &Context, a: &ServeArgs) -> Result<ServerConfig> {
    let mut c = ServerConfig::from_table(&ctx.config.server)?;
    if let Some(b) = &a.bind {
        c.bind = b.clone();
    }
    if !a.providers.is_empty() {
        c.providers = a
            .providers
            .iter()
            .map(|p| p.trim().to_ascii_lowercase())
            .collect();
    }
    if ctx.provider_explicit {
        c.default_provider = Some(ctx.provider.clone());
    } else if c.default_provider.is_none() {
        c.default_provider = ctx
            .config
            .default_provider
            .clone()
            .filter(|p| c.providers.contains(p));
    }
    if let Some(d) = &c.default_provider {
        if !c.providers.contains(d) {
            c.providers.push(d.clone());
        }
    }
    if let Some(s) = &a.store {
        c.store = Some(s.clone());
    }
    if let Some(n) = &a.node_id {
        c.node_id = Some(n.clone());
    }
    if a.no_reaper {
        c.reaper = false;
    }
    if let Some(s) = &a.shutdown {
        c.shutdown = s.clone();
    }
    if a.allow_destructive {
        c.allow_destructive = true;
    }
    if !a.cors_origins.is_empty() {
        c.cors_origins = a.cors_origins.clone();
    }
    if let Some(f) = &a.admin_token_file {
        c.admin_token_file = Some(f.clone());
    }
    c.validate()?;
    Ok(c)
}

/// `atlas serve`.
pub(crate) async fn run(ctx: &Context, a: ServeArgs) -> Result<()> {
    let mut cfg = settings(ctx, &a)?;
    // `[orchestrator]`: caps, default limits, reaper, heartbeat flush; its `shutdown`,
    // `reaper` and `node_id` apply where `[server]` and the flags set none.
    let orch_settings = crate::cmd::session::settings(ctx)?;
    let mut ocfg = orch_settings.config()?;
    if a.shutdown.is_none() && !ctx.config.server.contains_key("shutdown") {
        if let Some(p) = orch_settings.shutdown {
            cfg.shutdown = match p {
                ShutdownPolicy::Release => "release",
                _ => "terminate",
            }
            .to_string();
        }
    }
    if a.no_reaper || ctx.config.server.contains_key("reaper") {
        ocfg.reaper.enabled = cfg.reaper;
    } else {
        cfg.reaper = ocfg.reaper.enabled;
    }
    if cfg.node_id.is_none() {
        cfg.node_id = orch_settings.node_id.clone();
    }
    let policy = cfg.shutdown_policy()?;
    // Installed before anything is started, so no signal finds the default action.
    let mut signals = crate::signal::Signals::install()?;
    let addr: SocketAddr = cfg
        .bind
        .parse()
        .map_err(|_| Error::validation("bind", "is not HOST:PORT"))?;
    // Everything is validated and built before anything can bill.
    let mut providers: Vec<Arc<dyn Provider>> = Vec::new();
    for name in &cfg.providers {
        // Behind capability checks (`Checked`), as every other command uses providers.
        providers.push(Arc::new(ctx.build(name)?));
    }
    let token_file = match &cfg.admin_token_file {
        Some(f) if f.is_absolute() => f.clone(),
        Some(f) => ctx.config.data_dir.join(f),
        None => ctx
            .config
            .data_dir
            .join(cloud_atlas_web::config::DEFAULT_TOKEN_FILE),
    };
    let env_token = ctx.config.env(ADMIN_TOKEN_ENV).map(str::to_string);
    let (token, source) = AdminToken::resolve(env_token.as_deref(), &token_file)?;
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|e| {
        Error::new(
            ErrorKind::Transport,
            format!("cannot listen on {addr}: {e} (choose another with --bind)"),
        )
    })?;
    let local = listener.local_addr().unwrap_or(addr);

    // The node id names this process to other nodes: the owner of its sessions and the
    // reaper lease's holder.
    // Without one configured, the id kept in the data directory (held while this runs).
    let kept = match cfg.node_id {
        Some(_) => None,
        None => Some(cloud_atlas::orchestrator::ownership::stable_node_id(
            &ctx.config.data_dir,
        )?),
    };
    let node = cfg
        .node_id
        .clone()
        .or_else(|| kept.as_ref().map(|k| k.id.clone()))
        .unwrap_or_default();
    ocfg.node_id = Some(node.clone());
    let store_spec = cfg.store.clone().or_else(|| {
        ctx.config
            .env(crate::store::DATABASE_URL_ENV)
            .map(str::to_string)
    });
    let crate::store::Opened {
        store,
        desc: store_desc,
        lease,
    } = crate::store::open(ctx, store_spec.as_deref(), &node).await?;
    let mut b = Orchestrator::builder()
        .store_arc(Arc::clone(&store))
        .config(ocfg);
    if let Some(l) = lease {
        b = b.leader_lease_arc(l);
    }
    for p in &providers {
        b = b.provider_arc(Arc::clone(p));
    }
    let orch = b.start().await?;

    let mut web = ControlPlane::builder(orch.clone(), token)
        .store(store)
        .allow_destructive(cfg.allow_destructive)
        .cors_origins(cfg.cors_origins.clone())
        .replay_buffer(cfg.replay_buffer);
    for p in &providers {
        web = web.provider(Arc::clone(p));
    }
    let default_provider = cfg
        .default_provider
        .clone()
        .unwrap_or_else(|| cfg.providers[0].clone());
    web = web.default_provider(default_provider.clone());
    let app = match web.build() {
        Ok(app) => app,
        Err(e) => {
            orch.shutdown(ShutdownPolicy::Release).await?;
            return Err(e);
        }
    };

    let url = format!("http://{local}/");
    let mut banner = format!(
        "atlas serve: listening on {url}\n  dashboard  {url}\n  api        {url}v1/openapi.json\n  providers  {} (default {default_provider})\n  store      {store_desc}\n  reaper     {}\n  shutdown   {}\n",
        cfg.providers.join(", "),
        if cfg.reaper { "on" } else { "off" },
        cfg.shutdown,
    );
    banner.push_str(&format!("  node       {node}\n"));
    match &source {
        TokenSource::Created(path, raw) => banner.push_str(&format!(
            "  admin token (shown once; saved 0600 in {}):\n    {raw}\n",
            path.display()
        )),
        TokenSource::File(path) => {
            banner.push_str(&format!("  admin token in {}\n", path.display()))
        }
        TokenSource::Env => banner.push_str(&format!("  admin token from {ADMIN_TOKEN_ENV}\n")),
        _ => {}
    }
    print!("{banner}");
    use std::io::Write;
    let _ = std::io::stdout().flush();

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(async {
            let _ = stop_rx.await;
        })
        .await
    });
    let sig = tokio::select! {
        s = signals.recv() => s.name(),
        r = server_died(&server) => {
            let _ = orch.shutdown(policy).await;
            return r;
        }
    };
    eprintln!(
        "atlas serve: {sig}: no new requests; applying shutdown policy {}",
        cfg.shutdown
    );
    let _ = stop_tx.send(());
    // Open event streams never end by themselves: give requests in flight 3 s.
    let abort = server.abort_handle();
    if tokio::time::timeout(Duration::from_secs(3), server)
        .await
        .is_err()
    {
        abort.abort();
    }
    let report = orch.shutdown(policy).await?;
    let left = orch.list(&SessionFilter::all());
    eprintln!(
        "atlas serve: stopped: {} session(s) terminated, {} left tracked{}",
        report.terminated,
        report.left_tracked,
        if policy == ShutdownPolicy::Release {
            " (released: still running; the next atlas serve on this store adopts them)"
        } else {
            ""
        }
    );
    for s in left {
        eprintln!(
            "  tracked: session {} user {} {} compute {} ({})",
            s.id,
            s.user_id,
            s.provider,
            s.compute_id.as_deref().unwrap_or("-"),
            s.state
        );
    }
    Ok(())
}

async fn server_died(h: &tokio::task::JoinHandle<std::io::Result<()>>) -> Result<()> {
    while !h.is_finished() {
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    Err(Error::new(
        ErrorKind::Transport,
        "the HTTP server stopped unexpectedly",
    ))
}
