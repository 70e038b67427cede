//! `atlas`: spawn, inspect and terminate GPU/CPU compute on any cloud-atlas provider.
//!
//! ```text
//! atlas [--provider P] [--api-key-file F] [--base-url URL] [--config FILE] [-o table|json|jsonl] <command>
//! ```
//!
//! The provider is `--provider`, else `default_provider` from `atlas.toml`, else `mock`
//! (the embedded mock cloud, SQLite under the data directory; no keys needed).
//! API keys come from `--api-key`, `atlas.toml` or the provider's env var
//! (`RUNPOD_API_KEY`, `LAMBDA_API_KEY`, `VAST_API_KEY`, `FLY_API_TOKEN`).
//!
//! # Output
//!
//! `-o table` (default) prints tables for people: they respect `NO_COLOR` and fit the
//! terminal width. `-o json` prints one JSON document on stdout: an object for commands
//! about one thing, an array for listings. `-o jsonl` prints the same objects one per line
//! (a listing is one line per item; a single result is one line).
//!
//! The JSON shapes are the serialized library types, so they are stable and documented
//! there:
//!
//! | command | shape |
//! |---|---|
//! | `spawn`, `get` | [`cloud_atlas::Compute`]: `id`, `provider`, `status`, `public_ip`, `ports` (`[{internal, external, protocol, url}]`), `gpu`, `gpu_count`, `cost_per_hour`, `region`, `image`, `name`, `labels`, `auth`, `created_at`, `raw` |
//! | `ls` | array of [`cloud_atlas::Compute`]; with `--provider all`, one entry per provider asked: `{"provider", "ok": true, "machines": [Compute…]}` or `{"provider", "ok": false, "error": {"kind", "message", "exit_code"}}` (jsonl: one entry per line) |
//! | `stop`, `start`, `terminate` | `{"id", "provider", "action": "stopped" \| "started" \| "terminated"}` |
//! | `gpus` | array of [`cloud_atlas::GpuType`]: `provider`, `id`, `gpu`, `name`, `memory_gb`, `gpu_count`, `price_on_demand`, `price_spot`, `price_community`, `available`, `stock`, `regions`, `raw` |
//! | `providers` | array of `{"name", "default", "available", "capabilities": [..], "max_gpus_per_instance", "api_key": {"required", "configured", "source", "env_vars": [..]}, "note"}` |
//! | `job run`, `job status`, `job cancel`, `job retry` | [`cloud_atlas::Job`]: `id`, `endpoint_id`, `status`, `output`, `error`, `delay_time_ms`, `execution_time_ms`, `raw` |
//! | `job stream` | array of the handler's partial outputs (jsonl: one per line as they arrive) |
//! | `job purge` | `{"endpoint_id", "purged"}` |
//! | `job health` | [`cloud_atlas::spec::EndpointHealth`]: `jobs`, `workers`, `raw` |
//! | `logs` | array of [`LogLine`](cloud_atlas::providers::runpod::LogLine) (on the mock its [`LogLine`](cloud_atlas::providers::mock::LogLine), same fields): `id`, `ts`, `source`, `line` (jsonl, and `--follow`: one per line as they arrive; `--follow -o json` is refused) |
//! | `runpod templates list\|get` | (array of) [`Template`](cloud_atlas::providers::runpod::Template): `id`, `name`, `image`, `serverless`, `public`, `category`, `disk`, `ports`, `raw` |
//! | `runpod endpoints list\|get` | (array of) [`Endpoint`](cloud_atlas::providers::runpod::Endpoint): `id`, `name`, `type`, `image`, `workers` (`min`, `max`, `idleTimeout`), `dataCenterIds`, `timeout`, `createdAt`, `raw` |
//! | `runpod volumes list\|get\|create\|update` | (array of) [`NetworkVolume`](cloud_atlas::providers::runpod::NetworkVolume): `id`, `name`, `size` (GB), `dataCenter`, `type`, `raw` |
//! | `runpod … delete` | `{"id", "provider": "runpod", "kind", "action": "deleted"}` |
//! | `runpod billing` | [`BillingSummary`](cloud_atlas::providers::runpod::BillingSummary): `records` (`[{start_time, end_time, resource_id, total, amounts}]`), `total`, `totals`, `start_time`, `end_time`, `bucket_size`, `raw` |
//! | `lambda ssh-keys list`, `lambda file-systems list` | arrays of `cloud_atlas::providers::lambda::{SshKey, FileSystem}` |
//! | `lambda instance-types` | array of `{"instance_type": {name, description, gpu_description, price_cents_per_hour, specs}, "regions_with_capacity_available": [{name, description}]}` |
//! | `lambda restart` | [`cloud_atlas::Compute`] |
//! | `vast offers` | array of [`cloud_atlas::GpuType`], one per offer, cheapest first: `id` = offer id, `gpu_count`, `price_on_demand` (`--spot`: `price_spot`, the bid floor) for the whole offer, `regions` = `[country]`, `raw` = Vast's offer |
//! | `token mint` | `{"token", "hash", "header", "env": {"ATLAS_PRESHARED_KEY"}}` (the raw token, shown once) |
//! | `token verify`, `url verify` | `{"valid": true}` (`url verify` adds `expires_at`); invalid → exit 3 |
//! | `url sign` | `{"url", "expires_at"}` |
//! | `reap` | [`cloud_atlas::orchestrator::ReapReport`]: `dry_run`, `decisions` (`[{provider, compute_id, name, session_id, action, reason, done, error}]`) |
//! | `session spawn` | `{"session": Session, "compute": Compute}` ([`cloud_atlas::orchestrator::Session`]; the raw token only in `compute.auth`) |
//! | `session ls` | array of [`cloud_atlas::orchestrator::Session`] |
//! | `session get` | [`cloud_atlas::orchestrator::Session`] |
//! | `session touch`, `session stop` | `{"id", "action": "touched" \| "terminated"}` |
//! | `mock seed` | [`cloud_atlas::Compute`] |
//! | `fly apps`, `fly deploy`, `fly logs`, `fly token …` | see `cmd/fly.rs` (`fly deploy` exits with the deploy's own code) |
//!
//! `spawn` is the only command whose output holds a secret: with `--auth bearer` the
//! `auth` object carries `token` and `header` (with `--auth signed-url`,
//! `signing_secret`). They are shown once; later reads carry only `token_hash`.
//!
//! # Errors and exit codes
//!
//! Errors go to stderr as one line, `error: <what happened and what to do>`, and the
//! process exits with a code for the error's kind. With `-o json` or `-o jsonl` the line
//! is one JSON object instead, for programs (usage errors from bad flags too):
//!
//! ```json
//! {"kind":"not_found","message":"compute m-1 not found","provider":"mock","status":null,"exit_code":4}
//! ```
//!
//! `kind` is the library's [`ErrorKind`](cloud_atlas::ErrorKind) name (`unauthorized`,
//! `forbidden`, `not_found`, `rate_limited`, `timeout`, `unsupported`, `validation`
//! (usage errors too), `capacity`, `provider`, `transport`, `unknown`), or `interrupted`;
//! `provider` and `status` (the provider's HTTP status) are `null` when unknown.
//!
//!
//! | code | meaning |
//! |---|---|
//! | 0 | ok |
//! | 1 | unknown |
//! | 2 | validation or usage (bad flag values, missing arguments) |
//! | 3 | unauthorized or forbidden (missing or rejected API key; a token or signed URL that `verify` rejects) |
//! | 4 | not found |
//! | 5 | rate limited |
//! | 6 | timeout |
//! | 7 | unsupported by the provider |
//! | 8 | no capacity |
//! | 9 | provider error |
//! | 10 | transport (network) |
//! | 11 | conflict: another live node holds the session (see `docs/sessions.md`) |
//! | 12 | incomplete listing: `ls --provider all` listed what it could, and at least one provider failed (one `error:` line each on stderr) |
//! | 130, 143 | interrupted by SIGINT, SIGTERM (see below) |
//!
//! # Signals
//!
//! `spawn`, `session spawn` and `demo` never lose what was paid for: on SIGINT or SIGTERM
//! a create call in flight runs to its outcome first, then the machine's id, its state
//! and the one-time token go to stderr (`demo` terminates its machine instead), and the
//! exit code is 130 (SIGINT) or 143 (SIGTERM). Other commands end at once, as usual.
//!
//! # Limits
//!
//! Every limit flag is enforced or refused before anything bills. Durations are bounded
//! per flag (`--max-runtime`/`--idle-ttl` 1s to 365d, `--timeout` 1s to 7d; the error
//! names the flag and the range) and amounts (`--max-cost`) must be dollars above 0.
//! `spawn --max-runtime` is held by the machine itself (the mock; RunPod, Fly and Vast when
//! a command follows `--`) or refused with exit 7 naming what would enforce it;
//! `spawn --idle-ttl` is refused (exit 7): only a tracked session has an idle TTL.
//!
//! Every provider call runs within one time budget, retries and waits included: 30s for
//! reads, 2m for `spawn` (the create with its reconciliation), `stop`, `start` and
//! `terminate`; `--call-timeout`, `$ATLAS_TIMEOUT` or `timeout = "…"` in atlas.toml set one
//! budget for every call (1s to 7d). When stderr is a terminal, or with `-v`, each retry
//! prints one `retry: …` line on stderr.
//!
//! Set `ATLAS_LOG` (or `RUST_LOG`), e.g. `ATLAS_LOG=debug`, to log to stderr.

mod cmd;
mod context;
mod exit;
mod flags;
mod output;
mod signal;
mod store;
mod wait;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use cloud_atlas::{Error, ErrorKind, Result};

use crate::context::Context;
use crate::output::{Format, Out};

/// Spawn, inspect and terminate GPU/CPU compute on RunPod, Lambda, Vast.ai, Fly Machines or the mock cloud.
#[derive(Debug, Parser)]
#[command(
    name = "atlas",
    version,
    propagate_version = true,
    arg_required_else_help = true
)]
pub(crate) struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

/// Options every command takes.
#[derive(Debug, Clone, Args)]
pub(crate) struct GlobalArgs {
    /// Provider to use [default: `default_provider` from atlas.toml, else mock]; `all`
    /// (every configured provider) with `ls`
    #[arg(long, global = true, value_name = "NAME")]
    pub(crate) provider: Option<String>,
    /// API key for the provider (overrides atlas.toml and the env var). Visible to other
    /// users in `ps`: prefer the provider's env var or --api-key-file
    #[arg(
        long,
        global = true,
        value_name = "KEY",
        conflicts_with = "api_key_file"
    )]
    pub(crate) api_key: Option<String>,
    /// Read the provider's API key from FILE (`-` = stdin; one line, at most 64 KiB);
    /// overrides atlas.toml and the env var
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) api_key_file: Option<PathBuf>,
    /// Base URL of the provider's API (e.g. a local contract server)
    #[arg(long, global = true, value_name = "URL")]
    pub(crate) base_url: Option<String>,
    /// Config file [default: $ATLAS_CONFIG, else the nearest atlas.toml]
    #[arg(long, global = true, value_name = "FILE")]
    pub(crate) config: Option<PathBuf>,
    /// Output format
    #[arg(short = 'o', long, global = true, value_enum, default_value_t = Format::Table)]
    pub(crate) output: Format,
    /// Time budget of each provider call, retries and waits included [default: $ATLAS_TIMEOUT,
    /// else `timeout` in atlas.toml, else 30s for reads and 2m for spawn (with its
    /// reconciliation), stop, start and terminate]
    #[arg(long, global = true, value_name = "DURATION", value_parser = flags::wait)]
    pub(crate) call_timeout: Option<std::time::Duration>,
    /// Show each retry on stderr, one line each (shown anyway when stderr is a terminal)
    #[arg(short = 'v', long, global = true)]
    pub(crate) verbose: bool,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Set a project up: atlas.toml with commented defaults, the data directory, .gitignore (--rust: Cargo.toml + example)
    Init(cmd::init::InitArgs),
    /// Move atlas.toml forward to this atlas's format version (--dry-run shows the diff)
    Upgrade(cmd::upgrade::UpgradeArgs),
    /// Known providers, their capabilities and whether a key is configured
    Providers,
    /// GPU catalog with prices (`--provider all`: every configured provider's offers, cheapest first)
    #[command(after_help = cmd::gpus::GPUS_ALL_HELP)]
    Gpus(cmd::gpus::GpusArgs),
    /// Spawn compute (starts billing)
    Spawn(Box<cmd::compute::SpawnArgs>),
    /// List compute (`--provider all`: every configured provider at once)
    #[command(after_help = cmd::compute::LS_ALL_HELP)]
    Ls(cmd::compute::LsArgs),
    /// Show one compute
    Get(cmd::compute::IdArg),
    /// Stop (pause) compute; storage may keep billing
    Stop(cmd::compute::IdArg),
    /// Start stopped compute (starts billing)
    Start(cmd::compute::IdArg),
    /// Terminate compute (stops billing)
    Terminate(cmd::compute::IdArg),
    /// Logs of compute (--follow until Ctrl-C, or until a mock command ends); RunPod and the mock
    Logs(cmd::logs::LogsArgs),
    /// Serverless jobs (job ids are scoped to an endpoint)
    Job {
        #[command(subcommand)]
        command: cmd::job::JobCommand,
    },
    /// Lambda Cloud: SSH keys, file systems, instance types with live capacity, restart
    Lambda {
        #[command(subcommand)]
        command: cmd::lambda::LambdaCommand,
    },
    /// Fly.io platform ops: find apps, deploy, logs, API tokens
    Fly {
        #[command(subcommand)]
        command: cmd::fly::FlyCommand,
    },
    /// RunPod templates, serverless endpoints, network volumes and billing
    Runpod {
        #[command(subcommand)]
        command: cmd::runpod::RunpodCommand,
    },
    /// Vast.ai: live offers from the GPU marketplace, cheapest first
    Vast {
        #[command(subcommand)]
        command: cmd::vast::VastCommand,
    },
    /// Tracked sessions: the local store, or a running `atlas serve` with --server (spawn, ls, get, touch, stop)
    Session {
        /// URL of a running `atlas serve` to ask instead of the local store (admin token from ATLAS_ADMIN_TOKEN)
        #[arg(long, global = true, env = "ATLAS_SERVER", value_name = "URL")]
        server: Option<String>,
        /// Session store: sqlite (the data dir), a SQLite file, or postgres://… (several nodes) [default: sqlite]
        #[arg(
            long,
            global = true,
            env = "ATLAS_DATABASE_URL",
            hide_env_values = true,
            value_name = "STORE"
        )]
        store: Option<String>,
        #[command(subcommand)]
        command: cmd::session::SessionCmd,
    },
    /// The control plane: REST API, events, metrics and the dashboard; enforces session limits while it runs
    Serve(Box<cmd::serve::ServeArgs>),
    /// Terminate untracked machines with the atlas- prefix past the grace window (--dry-run explains)
    Reap(cmd::reap::ReapArgs),
    /// The local mock cloud (seed machines for reaper demos)
    Mock {
        #[command(subcommand)]
        command: cmd::mock::MockCmd,
    },
    /// Print shell completions
    Completions(cmd::completions::CompletionsArgs),
    /// Run the main job on the mock cloud: spawn, wait, get, list, terminate
    Demo,
    /// Preshared bearer tokens for browser-to-pod auth (mint, verify)
    Token {
        #[command(subcommand)]
        command: cmd::auth::TokenCmd,
    },
    /// Signed URLs for browser-to-pod auth (sign, verify)
    Url {
        #[command(subcommand)]
        command: cmd::auth::UrlCmd,
    },
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            exit::set_format(exit::format_in_args(std::env::args_os().skip(1)));
            return exit::clap_error(e);
        }
    };
    exit::set_format(cli.global.output);
    init_tracing(cli.global.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(e) => exit::report(&e),
    }
}

fn run(cli: Cli) -> Result<ExitCode> {
    let Cli { global, command } = cli;
    // Commands that need neither config nor a runtime come first, so they stay instant.
    match command {
        Command::Completions(args) => {
            return cmd::completions::run(&args).map(|()| ExitCode::SUCCESS)
        }
        Command::Token { command } => {
            return cmd::auth::token(command, global.output).map(|()| ExitCode::SUCCESS)
        }
        Command::Url { command } => {
            return cmd::auth::url(command, global.output).map(|()| ExitCode::SUCCESS)
        }
        // Before loading the config: they must work on a file the loader refuses.
        Command::Init(args) => {
            return cmd::init::run(&args, &Out::new(global.output)).map(|()| ExitCode::SUCCESS)
        }
        Command::Upgrade(args) => {
            return cmd::upgrade::run(&args, global.config.as_deref(), &Out::new(global.output))
                .map(|()| ExitCode::SUCCESS)
        }
        _ => {}
    }
    let mut global = global;
    if matches!(command, Command::Lambda { .. }) {
        global.provider.get_or_insert_with(|| "lambda".to_string());
    }
    if matches!(command, Command::Vast { .. }) {
        global.provider.get_or_insert_with(|| "vast".to_string());
    }
    let ctx = Context::load(&global)?;
    // The server uses every core; every other command one thread (starts in microseconds).
    let rt = if matches!(command, Command::Serve(_)) {
        tokio::runtime::Builder::new_multi_thread()
    } else {
        tokio::runtime::Builder::new_current_thread()
    }
    .enable_all()
    .build()
    .map_err(|e| Error::new(ErrorKind::Unknown, "cannot start the async runtime").with_source(e))?;
    rt.block_on(dispatch(ctx, command))
}

async fn dispatch(ctx: Context, command: Command) -> Result<ExitCode> {
    use cmd::compute::Action;
    let done = match command {
        Command::Providers => cmd::providers::run(&ctx),
        Command::Gpus(a) => return cmd::gpus::run(&ctx, a).await,
        Command::Spawn(a) => return cmd::compute::spawn(&ctx, *a).await,
        Command::Ls(a) => return cmd::compute::ls(&ctx, a).await,
        Command::Get(a) => cmd::compute::get(&ctx, a).await,
        Command::Stop(a) => cmd::compute::act(&ctx, a, Action::Stop).await,
        Command::Start(a) => cmd::compute::act(&ctx, a, Action::Start).await,
        Command::Terminate(a) => cmd::compute::act(&ctx, a, Action::Terminate).await,
        Command::Logs(a) => cmd::logs::run(&ctx, a).await,
        Command::Job { command } => cmd::job::run(&ctx, command).await,
        Command::Runpod { command } => cmd::runpod::run(ctx, command).await,
        Command::Lambda { command } => cmd::lambda::run(&ctx, command).await,
        Command::Vast { command } => cmd::vast::run(&ctx, command).await,
        Command::Demo => cmd::demo::run(&ctx).await,
        Command::Session {
            server,
            store,
            command,
        } => match server.filter(|u| !u.trim().is_empty()) {
            Some(url) => cmd::remote::run(&ctx, &url, command).await,
            None => cmd::session::run(&ctx, store.as_deref(), command).await,
        },
        Command::Reap(a) => cmd::reap::run(&ctx, a).await,
        Command::Serve(a) => cmd::serve::run(&ctx, *a).await,
        Command::Mock { command } => cmd::mock::run(&ctx, command).await,
        Command::Fly { command } => return cmd::fly::run(&ctx, command).await,
        Command::Completions(a) => cmd::completions::run(&a),
        Command::Token { command } => cmd::auth::token(command, ctx.out.format()),
        Command::Url { command } => cmd::auth::url(command, ctx.out.format()),
        Command::Init(a) => cmd::init::run(&a, &ctx.out),
        Command::Upgrade(a) => cmd::upgrade::run(&a, ctx.config.file.as_deref(), &ctx.out),
    };
    done.map(|()| ExitCode::SUCCESS)
}

/// Logs go to stderr, and only when asked for (`ATLAS_LOG` or `RUST_LOG`). Without them,
/// each retry of a provider request prints one line on stderr when stderr is a terminal
/// or with `-v` ([`output::RetryNotices`]).
fn init_tracing(verbose: bool) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    use tracing_subscriber::Layer;
    let filter = std::env::var("ATLAS_LOG")
        .or_else(|_| std::env::var("RUST_LOG"))
        .ok()
        .filter(|f| !f.trim().is_empty());
    if let Some(filter) = filter {
        let filter = tracing_subscriber::EnvFilter::try_new(&filter)
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
        let _ = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .with_ansi(output::stderr_color())
            .try_init();
    } else if verbose || std::io::stderr().is_terminal() {
        let only_retries = tracing_subscriber::filter::Targets::new()
            .with_target(cloud_atlas::http::RETRY_TARGET, tracing::Level::INFO);
        let _ = tracing_subscriber::registry()
            .with(output::RetryNotices.with_filter(only_retries))
            .try_init();
    }
}
