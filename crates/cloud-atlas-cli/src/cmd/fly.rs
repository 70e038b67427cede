//! `atlas fly …`: Fly.io platform operations, usable without any compute provider.
//!
//! ```text
//! atlas fly apps [PATH] [--max-depth N]
//! atlas fly deploy [PATH] [--app A] [--activity-timeout 5m] [--timeout 30m]
//! atlas fly logs APP [--region R] [--instance I] [--follow]
//! atlas fly token get|refresh|invalidate|set APP [--reveal]
//! ```
//!
//! The `fly` binary is `fly` on `PATH`, or `$ATLAS_FLY_BIN`; the logs API is
//! `https://api.fly.io`, or `$ATLAS_FLY_LOGS_URL`. Tokens for `logs` and `token` come
//! from the resolver chain (memory → storage → `FLY_API_TOKEN` → `~/.fly/config.yml`
//! (`$FLY_CONFIG_DIR`) → `fly tokens create readonly` → the manual token set with
//! `atlas fly token set`), stored in `<data dir>/fly-tokens` (0600 files, 0700 folder).
//!
//! # JSON shapes
//!
//! | command | shape |
//! |---|---|
//! | `fly apps` | `{"apps": [{"app", "dir"}], "skipped": [{"file", "reason"}]}` |
//! | `fly deploy` | jsonl: one `{"stream": "stdout" \| "stderr", "text"}` per line as it comes, then `{"app", "status": {"result", …}, "lines"}`; json: that last object with `"output": [lines]` |
//! | `fly logs` | array of `{"id", "timestamp", "message", "level", "region", "instance", "app", "provider"}` (jsonl: one per line; with `--follow`, as they come) |
//! | `fly token get`, `refresh`, `set` | `{"app", "source", "origin", "fingerprint", "obtained_at", "expires_at"}`, plus `"token"` only with `--reveal` |
//! | `fly token invalidate` | `{"app", "invalidated": true}` |
//!
//! Lines of one stream keep their order exactly. Between stdout and stderr the order
//! is the order atlas read them: two pipes carry no order between them, so lines that
//! `fly` wrote to both within one scheduling tick may come either way round.
//!
//! # Exit codes
//!
//! `fly deploy` exits with the deploy's own exit code (0 when it succeeded), `124` when a
//! timer stopped it (as `timeout(1)`), and `128 + n` when signal `n` stopped it: `130`
//! for Ctrl-C (SIGINT), `143` for SIGTERM, `129` for SIGHUP (the terminal went away).
//! `fly` runs in its own process group, so these signals do not reach it: atlas stops
//! the whole group first (SIGTERM, then SIGKILL after a grace period), then exits. Errors before `fly` starts (bad folder or app, `fly`
//! not installed: exit 4) use the usual table. `fly logs --follow` ends with 0 on Ctrl-C.

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

use clap::{Args, Subcommand};
use cloud_atlas::auth::Secret;
use cloud_atlas::files;
use cloud_atlas::fly::logs::{
    LogEntry, LogEvent, LogQuery, LogStreamer, LogsClientBuilder, StreamerOptions, SubscribeOptions,
};
use cloud_atlas::fly::tokens::ResolvedToken;
use cloud_atlas::fly::{
    discover_apps, stream_deploy, DeployLine, DeployOptions, DeployStatus, Discovery, Flyctl,
    OutputStream, TokenResolver, DEFAULT_MAX_DEPTH,
};
use cloud_atlas::{Error, ErrorKind, Result};
use comfy_table::Cell;
use serde::Serialize;

use crate::context::Context;
use crate::output::{to_json, Format, Out};
use crate::signal::{Sig, Signals};

/// Exit code of a deploy stopped by one of its timers (as `timeout(1)`).
const EXIT_TIMED_OUT: u8 = 124;
/// Batches a `logs --follow` subscriber may have queued before it counts as too slow.
const FOLLOW_CAPACITY: usize = 1024;

/// `atlas fly` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum FlyCommand {
    /// Find fly.toml files and their app names
    Apps(AppsArgs),
    /// Run `fly deploy --remote-only`, streaming its output; exits with the deploy's code
    Deploy(DeployArgs),
    /// An app's recent logs, or follow them
    Logs(LogsArgs),
    /// The app's Fly API token: where it comes from, refresh, forget, set
    Token {
        #[command(subcommand)]
        command: TokenCommand,
    },
}

/// Arguments of `atlas fly apps`.
#[derive(Debug, Args)]
pub(crate) struct AppsArgs {
    /// Folder to search
    #[arg(default_value = ".")]
    path: PathBuf,
    /// Levels of sub-folders searched below PATH (0 = PATH only)
    #[arg(long, value_name = "N", default_value_t = DEFAULT_MAX_DEPTH)]
    max_depth: usize,
}

/// Arguments of `atlas fly deploy`.
#[derive(Debug, Args)]
pub(crate) struct DeployArgs {
    /// Folder holding fly.toml (where `fly deploy` runs)
    #[arg(default_value = ".")]
    path: PathBuf,
    /// App to deploy [default: `app` from PATH/fly.toml]
    #[arg(long, value_name = "APP")]
    app: Option<String>,
    /// Stop the deploy when it prints nothing for this long (1s to 7d)
    #[arg(long, value_name = "DURATION", default_value = "5m", value_parser = crate::flags::wait)]
    activity_timeout: std::time::Duration,
    /// Stop the deploy after this long whatever happens (1s to 7d)
    #[arg(long, value_name = "DURATION", default_value = "30m", value_parser = crate::flags::wait)]
    timeout: std::time::Duration,
}

/// Arguments of `atlas fly logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// The app
    app: String,
    /// Only lines from this region (e.g. ord)
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// Only lines from this Machine id
    #[arg(long, value_name = "ID")]
    instance: Option<String>,
    /// Keep printing new lines until Ctrl-C
    #[arg(long, short = 'f')]
    follow: bool,
}

/// `atlas fly token` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum TokenCommand {
    /// Find the app's token (prints its source and fingerprint)
    Get(TokenShowArgs),
    /// Acquire a new token, skipping the cached one
    Refresh(TokenShowArgs),
    /// Forget the cached token (the manual one set with `token set` stays)
    Invalidate(AppArg),
    /// Set the app's token manually, read from stdin (never from the command line)
    Set(AppArg),
}

/// One app.
#[derive(Debug, Args)]
pub(crate) struct AppArg {
    /// The app
    app: String,
}

/// Arguments of `token get` and `token refresh`.
#[derive(Debug, Args)]
pub(crate) struct TokenShowArgs {
    #[command(flatten)]
    app: AppArg,
    /// Also print the token itself
    #[arg(long)]
    reveal: bool,
}

/// Run an `atlas fly` subcommand; the exit code is the deploy's for `deploy`.
pub(crate) async fn run(ctx: &Context, command: FlyCommand) -> Result<ExitCode> {
    match command {
        FlyCommand::Apps(a) => apps(ctx, a).map(|()| ExitCode::SUCCESS),
        FlyCommand::Deploy(a) => deploy(ctx, a).await,
        FlyCommand::Logs(a) => logs(ctx, a).await.map(|()| ExitCode::SUCCESS),
        FlyCommand::Token { command } => token(ctx, command).await.map(|()| ExitCode::SUCCESS),
    }
}

// ---------------------------------------------------------------------------------------
// apps

fn apps(ctx: &Context, a: AppsArgs) -> Result<()> {
    let found = discover_apps(&a.path, a.max_depth)?;
    ctx.out.one(&found, apps_table)
}

fn apps_table(out: &Out, d: &Discovery) -> String {
    let mut s = if d.apps.is_empty() {
        "no apps found".to_string()
    } else {
        let mut t = out.table(&["APP", "DIR"]);
        for a in &d.apps {
            t.add_row(vec![Cell::new(&a.app), Cell::new(a.dir.display())]);
        }
        t.to_string()
    };
    if !d.skipped.is_empty() {
        let mut t = out.table(&["SKIPPED FILE", "REASON"]);
        for f in &d.skipped {
            t.add_row(vec![Cell::new(f.file.display()), Cell::new(&f.reason)]);
        }
        s.push('\n');
        s.push_str(&t.to_string());
    }
    s
}

// ---------------------------------------------------------------------------------------
// deploy

/// JSON shape of a finished deploy with `-o json`.
#[derive(Debug, Serialize)]
struct DeployJson {
    #[serde(flatten)]
    outcome: cloud_atlas::fly::DeployOutcome,
    output: Vec<DeployLine>,
}

async fn deploy(ctx: &Context, a: DeployArgs) -> Result<ExitCode> {
    let (activity, cap) = (a.activity_timeout, a.timeout);
    let opts = DeployOptions::default()
        .with_flyctl(Flyctl::from_config(&ctx.config))
        .with_activity_timeout(activity)
        .with_stream_timeout(cap);
    // Before fly starts: it runs in its own process group, so Ctrl-C, SIGTERM and
    // SIGHUP reach only us and we must stop it.
    let mut signals = Signals::install_with_hangup()?;
    let mut stream = stream_deploy(&a.path, a.app.as_deref(), &opts).await?;
    let format = ctx.out.format();
    let mut collected = Vec::new();
    let mut interrupted = false;
    let mut signal: Option<Sig> = None;
    loop {
        let line = tokio::select! {
            l = stream.next_line() => l,
            sig = signals.recv() => {
                interrupted = true;
                signal = Some(sig);
                break;
            }
        };
        let Some(line) = line else { break };
        match format {
            Format::Table => {
                if !write_line(line.stream, &line.text) {
                    // Nobody reads our output any more: stop the deploy.
                    interrupted = true;
                    break;
                }
            }
            Format::Jsonl => {
                if !write_line(OutputStream::Stdout, &to_json(&line, false)?) {
                    interrupted = true;
                    break;
                }
            }
            Format::Json => collected.push(line),
        }
    }
    let outcome = if interrupted {
        stream.cancel().await?
    } else {
        stream.outcome().await?
    };
    match format {
        Format::Table => {}
        Format::Jsonl => {
            write_line(OutputStream::Stdout, &to_json(&outcome, false)?);
        }
        Format::Json => {
            let doc = DeployJson {
                outcome: outcome.clone(),
                output: collected,
            };
            ctx.out.text(&to_json(&doc, true)?)?;
        }
    }
    if interrupted {
        // No signal: our reader went away (a closed pipe), as good as Ctrl-C.
        let sig = signal.unwrap_or(Sig::Int);
        let how = match sig {
            Sig::Int => "interrupted".to_string(),
            other => format!("stopped by {}", other.name()),
        };
        let code = u8::try_from(sig.code()).unwrap_or(1);
        crate::exit::report_text(
            "interrupted",
            &format!(
                "deploy of {} {how}; the fly process group was stopped",
                outcome.app
            ),
            Some("fly"),
            code,
        );
        return Ok(ExitCode::from(code));
    }
    let code = match outcome.status {
        DeployStatus::Succeeded => 0,
        DeployStatus::TimedOut { .. } => EXIT_TIMED_OUT,
        status => u8::try_from(status.exit_code()).unwrap_or(1).max(1),
    };
    if code != 0 {
        let what = outcome.status.to_string();
        let what = what.strip_prefix("deploy ").unwrap_or(&what);
        let kind = match outcome.status {
            DeployStatus::TimedOut { .. } => ErrorKind::Timeout,
            _ => ErrorKind::Provider,
        };
        crate::exit::report_text(
            kind.as_str(),
            &format!("deploy of {} {what}", outcome.app),
            Some("fly"),
            code,
        );
    }
    Ok(ExitCode::from(code))
}

/// A future that resolves on Ctrl-C (SIGINT). The handler is installed by this call,
/// so a Ctrl-C right after it is not lost (nor does it kill the process).
fn ctrl_c() -> Result<impl std::future::Future<Output = ()>> {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let mut sig = signal(SignalKind::interrupt())
            .map_err(|e| Error::new(ErrorKind::Unknown, "cannot handle Ctrl-C").with_source(e))?;
        Ok(async move {
            sig.recv().await;
        })
    }
    #[cfg(not(unix))]
    {
        Ok(async {
            let _ = tokio::signal::ctrl_c().await;
        })
    }
}

/// Write one line to stdout or stderr and flush it. `false` when the reader is gone
/// (a closed pipe, e.g. `atlas fly logs --follow | head`).
fn write_line(stream: OutputStream, text: &str) -> bool {
    fn put(w: &mut dyn Write, text: &str) -> std::io::Result<()> {
        w.write_all(text.as_bytes())?;
        w.write_all(b"\n")?;
        w.flush()
    }
    let r = match stream {
        OutputStream::Stdout => put(&mut std::io::stdout().lock(), text),
        OutputStream::Stderr => put(&mut std::io::stderr().lock(), text),
    };
    r.is_ok()
}

// ---------------------------------------------------------------------------------------
// logs

async fn logs(ctx: &Context, a: LogsArgs) -> Result<()> {
    cloud_atlas::fly::apps::require_app_name("app", &a.app)?;
    if a.follow && ctx.out.format() == Format::Json {
        return Err(Error::validation(
            "output",
            "--follow prints lines as they come; use -o jsonl or -o table",
        ));
    }
    let resolver = TokenResolver::from_config(&ctx.config);
    let client = LogsClientBuilder::from_config(&ctx.config)
        .with_tokens(Arc::new(resolver))
        .build()?;
    if !a.follow {
        let mut q = LogQuery::new(&a.app);
        if let Some(r) = &a.region {
            q = q.region(r);
        }
        if let Some(i) = &a.instance {
            q = q.instance(i);
        }
        let page = client.fetch_with_retry(&q).await?;
        return ctx.out.many(&page.entries, |_, entries| {
            entries.iter().map(log_line).collect::<Vec<_>>().join("\n")
        });
    }
    let streamer = LogStreamer::new(client, StreamerOptions::default());
    let mut sub_opts = SubscribeOptions::default().capacity(FOLLOW_CAPACITY);
    if let Some(r) = &a.region {
        sub_opts = sub_opts.region(r);
    }
    if let Some(i) = &a.instance {
        sub_opts = sub_opts.instance(i);
    }
    let ctrl_c = ctrl_c()?;
    tokio::pin!(ctrl_c);
    let mut sub = streamer.subscribe(&a.app, sub_opts)?;
    let jsonl = ctx.out.format() == Format::Jsonl;
    let result = loop {
        let event = tokio::select! {
            ev = sub.recv() => ev,
            _ = &mut ctrl_c => break Ok(()),
        };
        match event {
            Some(LogEvent::Batch(entries)) => {
                let mut open = true;
                for e in &entries {
                    let line = if jsonl {
                        to_json(e, false)?
                    } else {
                        log_line(e)
                    };
                    open = write_line(OutputStream::Stdout, &line);
                    if !open {
                        break;
                    }
                }
                if !open {
                    break Ok(());
                }
            }
            Some(LogEvent::Failed(e)) => {
                break Err(Error::new(
                    e.kind(),
                    format!("stopped following the logs of {}: {}", a.app, e.message()),
                ))
            }
            Some(LogEvent::Evicted) => {
                break Err(Error::new(
                    ErrorKind::Unknown,
                    format!(
                        "stopped following the logs of {}: output fell too far behind",
                        a.app
                    ),
                ))
            }
            Some(LogEvent::Stopped) | None => break Ok(()),
        }
    };
    drop(sub);
    streamer.shutdown();
    result
}

/// One log entry for people, like `fly logs`:
/// `2026-05-20T00:00:00.123Z app[3d8d9014b32d89] ord [info] message`.
fn log_line(e: &LogEntry) -> String {
    let provider = e.provider.as_deref().unwrap_or("app");
    let level = if e.level.is_empty() {
        String::new()
    } else {
        format!(" [{}]", e.level)
    };
    format!(
        "{} {provider}[{}] {}{level} {}",
        e.timestamp.format("%Y-%m-%dT%H:%M:%S%.3fZ"),
        e.instance,
        e.region,
        e.message
    )
}

// ---------------------------------------------------------------------------------------
// token

/// JSON shape of `token get|refresh|set`. Holds the token only when asked to reveal it.
#[derive(Debug, Serialize)]
struct TokenInfo {
    app: String,
    /// Which step of the chain answered this call.
    source: String,
    /// Where the token was first acquired.
    origin: String,
    fingerprint: String,
    obtained_at: String,
    expires_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    token: Option<String>,
}

impl TokenInfo {
    fn new(r: &ResolvedToken, reveal: bool) -> TokenInfo {
        TokenInfo {
            app: r.app.clone(),
            source: r.source.to_string(),
            origin: r.origin.to_string(),
            fingerprint: r.fingerprint(),
            obtained_at: r.obtained_at.to_rfc3339(),
            expires_at: r.expires_at.map(|t| t.to_rfc3339()),
            token: reveal.then(|| r.token.expose().to_string()),
        }
    }
}

/// JSON shape of `token invalidate`.
#[derive(Debug, Serialize)]
struct Invalidated<'a> {
    app: &'a str,
    invalidated: bool,
}

async fn token(ctx: &Context, command: TokenCommand) -> Result<()> {
    let resolver = TokenResolver::from_config(&ctx.config);
    let out = &ctx.out;
    match command {
        TokenCommand::Get(a) => {
            let r = resolver.get(&a.app.app).await?;
            out.one(&TokenInfo::new(&r, a.reveal), token_table)
        }
        TokenCommand::Refresh(a) => {
            let r = resolver.refresh(&a.app.app).await?;
            out.one(&TokenInfo::new(&r, a.reveal), token_table)
        }
        TokenCommand::Invalidate(a) => {
            resolver.invalidate(&a.app).await?;
            let r = Invalidated {
                app: &a.app,
                invalidated: true,
            };
            out.one(&r, |_, r| {
                format!(
                    "forgot the cached token of {} (a token set with `atlas fly token set` stays)",
                    r.app
                )
            })
        }
        TokenCommand::Set(a) => {
            cloud_atlas::fly::apps::require_app_name("app", &a.app)?;
            let token = read_token_from_stdin()?;
            let r = resolver.set_manual(&a.app, token).await?;
            out.one(&TokenInfo::new(&r, false), token_table)
        }
    }
}

fn token_table(out: &Out, t: &TokenInfo) -> String {
    let mut rows = vec![
        ("app", Cell::new(&t.app)),
        ("source", Cell::new(&t.source)),
        ("origin", Cell::new(&t.origin)),
        ("fingerprint", Cell::new(&t.fingerprint)),
        ("obtained at", Cell::new(&t.obtained_at)),
        (
            "expires at",
            Cell::new(t.expires_at.as_deref().unwrap_or("-")),
        ),
    ];
    if let Some(token) = &t.token {
        rows.push(("token", Cell::new(token)));
    }
    out.kv_table(rows).to_string()
}

/// The token for `token set`: all of stdin (at most 64 KiB), trimmed; one line.
fn read_token_from_stdin() -> Result<Secret> {
    let stdin = std::io::stdin();
    if stdin.is_terminal() {
        write_line(
            OutputStream::Stderr,
            "paste the token, then press Enter and Ctrl-D:",
        );
    }
    let bytes = files::read_limited(stdin.lock(), files::MAX_SECRET_BYTES)
        .map_err(|e| Error::validation("token", format!("cannot read stdin: {e}")))?;
    let s = String::from_utf8(bytes)
        .map_err(|_| Error::validation("token", "stdin is not UTF-8 text"))?;
    let token = Secret::new(s.trim());
    if token.expose().is_empty() {
        return Err(Error::validation(
            "token",
            "stdin was empty; pipe the token in, e.g. `fly tokens create readonly | atlas fly token set APP`",
        ));
    }
    if token.expose().contains(['\n', '\r']) {
        return Err(Error::validation(
            "token",
            "stdin held several lines; give the token on one line (several macaroons are joined with commas)",
        ));
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_lines_read_like_fly_logs() {
        let page = cloud_atlas::fly::logs::parse_page(
            "my-app",
            r#"{"data":[{"id":"1","attributes":{"timestamp":"2026-05-20T00:00:00.123456789Z","message":"hello","level":"info","instance":"m1","region":"ord","meta":{"event":{"provider":"runner"}}}}],"meta":{"next_token":"2"}}"#,
        );
        assert_eq!(
            log_line(&page.entries[0]),
            "2026-05-20T00:00:00.123Z runner[m1] ord [info] hello"
        );
    }
}
