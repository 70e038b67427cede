//! Compute commands: `spawn`, `ls`, `get`, `stop`, `start`, `terminate`.
//!
//! `spawn`'s flags mirror [`ComputeRequest`]; every value is checked by the library's
//! builder, so a bad one is a one-line `Validation` error naming the field (exit 2).
//! Durations are bounded by clap before anything runs ([`crate::flags`]), and the
//! request is checked against the provider's capabilities before the create call: a
//! limit nothing would enforce is refused (exit 7), never dropped. `--idle-ttl` needs a
//! tracked session (`atlas session spawn`); `--max-runtime` needs a provider whose
//! machine can end itself (the mock; RunPod, Fly and Vast when a command is given with
//! `-- CMD ARGS…`; see `cloud_atlas::spec::deadline`).
//!
//! SIGINT/SIGTERM never lose the machine: the create call runs to its outcome, then the
//! machine's id, state and one-time credentials go to stderr and the exit code is 130
//! or 143 ([`crate::signal`]).

use std::io::Write;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;
use cloud_atlas::auth::AuthHandle;
use cloud_atlas::spec::deadline;
use cloud_atlas::{
    AuthMode, Checked, CloudType, Compute, ComputeRequest, ComputeStatus, Error, ErrorKind,
    GpuChoice, ListFilter, Provider, Result,
};
use comfy_table::Cell;
use serde::Serialize;

use crate::context::{Context, ALL_PROVIDERS};
use crate::output::{or_dash, price, Out};
use crate::signal::{Sig, Signals};
use crate::wait::{self, Progress};

/// Arguments of `atlas spawn` (they mirror `ComputeRequest`).
#[derive(Debug, Default, Args)]
pub(crate) struct SpawnArgs {
    /// GPU model (h100, a100-sxm4-80g, rtx-4090, …; `atlas gpus` lists them), or the
    /// provider's own id as native:ID (native:"NVIDIA A40"); omit for CPU-only compute
    #[arg(long, value_name = "GPU")]
    pub(crate) gpu: Option<String>,
    /// GPUs per machine [default: 1 with --gpu]
    #[arg(long, value_name = "N")]
    pub(crate) gpu_count: Option<u32>,
    /// vCPUs (CPU-only compute, or a floor)
    #[arg(long, value_name = "N")]
    pub(crate) cpus: Option<u32>,
    /// Memory in GB (CPU-only compute, or a floor)
    #[arg(long, value_name = "GB")]
    pub(crate) memory_gb: Option<u32>,
    /// Container image (required)
    #[arg(long, value_name = "IMAGE")]
    pub(crate) image: Option<String>,
    /// Machine pool: secure, community or any [default: any]
    #[arg(long, value_name = "TYPE")]
    pub(crate) cloud: Option<String>,
    /// Interruptible/spot pricing
    #[arg(long)]
    pub(crate) spot: bool,
    /// Preferred region, most preferred first (repeatable)
    #[arg(long = "region", value_name = "REGION")]
    pub(crate) regions: Vec<String>,
    /// Port to expose, PORT/PROTO with PROTO http, tcp or udp (repeatable), e.g. 8000/http
    #[arg(long = "port", value_name = "PORT/PROTO")]
    pub(crate) ports: Vec<String>,
    /// Environment variable KEY=VALUE (repeatable)
    #[arg(long = "env", value_name = "KEY=VALUE")]
    pub(crate) env: Vec<String>,
    /// Persistent volume in GB
    #[arg(long, value_name = "GB")]
    pub(crate) volume_gb: Option<u32>,
    /// Container disk in GB
    #[arg(long, value_name = "GB")]
    pub(crate) disk_gb: Option<u32>,
    /// Provider network volume to attach
    #[arg(long, value_name = "ID")]
    pub(crate) network_volume: Option<String>,
    /// Provider template
    #[arg(long, value_name = "ID")]
    pub(crate) template: Option<String>,
    /// Name prefix (lowercase letters, digits, -); a unique launch id is appended
    #[arg(long, value_name = "NAME")]
    pub(crate) name: Option<String>,
    /// Browser-to-pod auth: none, bearer or signed-url [default: none]
    #[arg(long, value_name = "MODE")]
    pub(crate) auth: Option<String>,
    /// Idle time-to-live, 1s to 365d, e.g. 15m: tracked sessions only (`atlas session spawn`)
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::limit, allow_hyphen_values = true)]
    pub(crate) idle_ttl: Option<Duration>,
    /// Maximum runtime, 1s to 365d, e.g. 2h: held by the machine where it can end itself (with RunPod, Fly and Vast: give a command after --), else refused
    #[arg(long, value_name = "DURATION", value_parser = crate::flags::limit, allow_hyphen_values = true)]
    pub(crate) max_runtime: Option<Duration>,
    /// Provider-specific option key=value; the value is JSON if it parses, else a string (repeatable)
    #[arg(long = "provider-opt", value_name = "KEY=VALUE")]
    pub(crate) provider_opts: Vec<String>,
    /// Label key=value (repeatable)
    #[arg(long = "label", value_name = "KEY=VALUE")]
    pub(crate) labels: Vec<String>,
    /// Wait until the compute is running
    #[arg(long)]
    pub(crate) wait: bool,
    /// How long --wait waits, 1s to 7d, e.g. 10m
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "10m",
        requires = "wait",
        value_parser = crate::flags::wait,
        allow_hyphen_values = true
    )]
    pub(crate) timeout: Duration,
    /// The command the machine runs instead of the image's (as `docker run IMAGE CMD…`);
    /// with --max-runtime, the machine ends when it ends or at max runtime
    #[arg(last = true, value_name = "CMD")]
    pub(crate) command: Vec<String>,
}

impl SpawnArgs {
    /// The validated request.
    ///
    /// # Errors
    /// `Validation` naming the first bad field and what is allowed.
    pub(crate) fn request(&self) -> Result<ComputeRequest> {
        let mut b = ComputeRequest::builder();
        if let Some(g) = &self.gpu {
            b = b.gpu_choice(g.parse::<GpuChoice>()?);
        }
        if let Some(n) = self.gpu_count {
            b = b.gpu_count(n);
        }
        if let Some(n) = self.cpus {
            b = b.cpus(n);
        }
        if let Some(n) = self.memory_gb {
            b = b.memory_gb(n);
        }
        if let Some(i) = &self.image {
            b = b.image(i.clone());
        }
        if let Some(c) = &self.cloud {
            b = b.cloud_type(c.parse::<CloudType>()?);
        }
        b = b.spot(self.spot);
        for r in &self.regions {
            b = b.region(r.clone());
        }
        for p in &self.ports {
            b = b.port(p.clone());
        }
        for kv in &self.env {
            let (k, v) = split_kv("env", kv)?;
            b = b.env(k, v);
        }
        if let Some(n) = self.volume_gb {
            b = b.volume_gb(n);
        }
        if let Some(n) = self.disk_gb {
            b = b.container_disk_gb(n);
        }
        if let Some(v) = &self.network_volume {
            b = b.network_volume_id(v.clone());
        }
        if let Some(t) = &self.template {
            b = b.template_id(t.clone());
        }
        if let Some(n) = &self.name {
            b = b.name(n.clone());
        }
        if let Some(a) = &self.auth {
            b = b.auth(a.parse::<AuthMode>()?);
        }
        if let Some(d) = self.idle_ttl {
            b = b.idle_ttl(d);
        }
        if let Some(d) = self.max_runtime {
            b = b.max_runtime(d);
        }
        b = b.command(self.command.iter().cloned());
        for kv in &self.labels {
            let (k, v) = split_kv("labels", kv)?;
            b = b.label(k, v);
        }
        for kv in &self.provider_opts {
            let (k, v) = split_kv("provider_opts", kv)?;
            b = b.provider_opt(k, json_or_string(v));
        }
        b.build()
    }
}

/// `KEY=VALUE` → (`KEY`, `VALUE`); the key must not be empty.
fn split_kv<'a>(field: &str, s: &'a str) -> Result<(&'a str, &'a str)> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v)),
        _ => Err(Error::validation(
            field,
            format!(
                "{s:?} is not KEY=VALUE (e.g. {field_example})",
                field_example = example(field)
            ),
        )),
    }
}

fn example(field: &str) -> &'static str {
    match field {
        "env" => "--env HF_HOME=/data",
        "labels" => "--label team=ml",
        _ => "--provider-opt min_vcpu=8",
    }
}

/// The value as JSON when it parses (`8`, `true`, `{"a":1}`), else as a string.
fn json_or_string(v: &str) -> serde_json::Value {
    serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()))
}

/// Arguments of `atlas ls`.
#[derive(Debug, Args)]
pub(crate) struct LsArgs {
    /// Only compute in this status: provisioning, starting, running, stopped, terminated, failed
    #[arg(long, value_name = "STATUS")]
    status: Option<String>,
    /// Only names starting with this
    #[arg(long, value_name = "PREFIX")]
    name_prefix: Option<String>,
    #[command(flatten)]
    timeout: TimeoutArg,
}

/// One compute id.
#[derive(Debug, Args)]
pub(crate) struct IdArg {
    /// Compute id (as printed by spawn and ls)
    id: String,
}

const STATUSES: &[&str] = &[
    "provisioning",
    "starting",
    "running",
    "stopped",
    "terminated",
    "failed",
];

fn parse_status(s: &str) -> Result<ComputeStatus> {
    let lower = s.trim().to_ascii_lowercase();
    if STATUSES.contains(&lower.as_str()) {
        Ok(lower.parse().unwrap_or(ComputeStatus::Other(lower)))
    } else {
        Err(Error::validation(
            "status",
            format!("{s:?} is not allowed; allowed: {}", STATUSES.join(", ")),
        ))
    }
}

/// `atlas spawn`.
pub(crate) async fn spawn(ctx: &Context, args: SpawnArgs) -> Result<ExitCode> {
    let req = args.request()?;
    if req.idle_ttl.is_some() {
        return Err(Error::new(
            ErrorKind::Unsupported,
            "--idle-ttl: nothing tracks the activity of a plain spawn, so nothing would end it when idle; spawn it as a tracked session instead: `atlas session spawn --user USER … --idle-ttl …` (its orchestrator ends it after the idle TTL while one runs)",
        ));
    }
    let p = ctx.provider()?;
    // Everything is checked before the first call that can bill.
    p.check_request(&req)?;
    let mut signals = Signals::install()?;
    let (spawned, caught) = signals.shielded(p.spawn(&req)).await;
    if let Some(sig) = caught {
        match &spawned {
            Ok(c) => report_interrupted(sig, c, None),
            Err(e) => {
                crate::exit::report(e);
                sig.exit()
            }
        }
    }
    let spawned = spawned?;
    if !args.wait {
        ctx.out.one(&spawned, spawn_table)?;
        return Ok(ExitCode::SUCCESS);
    }
    let mut progress = Progress::on_stderr();
    let waited = signals
        .interruptible(wait::until_running(
            &p,
            &spawned.id,
            args.timeout,
            &mut progress,
        ))
        .await;
    drop(progress);
    match waited {
        Ok(Ok(mut running)) => {
            // The credentials come once, with the spawn result; later reads only have the hash.
            running.auth = keep_secret(spawned.auth, running.auth);
            ctx.out.one(&running, spawn_table)?;
            Ok(ExitCode::SUCCESS)
        }
        Ok(Err(e)) => {
            // The machine exists and bills: print it (and its one-time credentials) anyway.
            ctx.out.one(&spawned, spawn_table)?;
            Err(e)
        }
        Err(sig) => {
            let now = current_status(&p, &spawned.id).await;
            report_interrupted(sig, &spawned, now)
        }
    }
}

/// The machine's status now, asked briefly (an interrupted command must not hang).
pub(crate) async fn current_status(p: &Checked, id: &str) -> Option<ComputeStatus> {
    tokio::time::timeout(Duration::from_secs(5), p.get(id))
        .await
        .ok()
        .and_then(|r| r.ok())
        .map(|c| c.status)
}

/// After a signal: what exists, its state and its one-time credentials on stderr, then
/// exit 130/143.
pub(crate) fn report_interrupted(sig: Sig, c: &Compute, now: Option<ComputeStatus>) -> ! {
    let status = now.unwrap_or_else(|| c.status.clone());
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "interrupted ({}): machine {} on {} exists and bills; status {status}",
        sig.name(),
        c.id,
        c.provider
    );
    for line in credential_lines(c) {
        let _ = writeln!(err, "{line}");
    }
    let _ = writeln!(
        err,
        "stop it with: atlas --provider {} terminate {}",
        c.provider, c.id
    );
    drop(err);
    sig.exit()
}

/// After a signal during `atlas session spawn`: the session and its machine (recorded,
/// billing), their state and the one-time credentials on stderr, then exit 130/143.
pub(crate) fn report_interrupted_session(
    sig: Sig,
    res: &Result<cloud_atlas::orchestrator::SpawnedSession>,
) -> ! {
    let s = match res {
        Ok(s) => s,
        Err(e) => {
            crate::exit::report(e);
            sig.exit()
        }
    };
    let mut err = std::io::stderr().lock();
    let _ = writeln!(
        err,
        "interrupted ({}): session {} is recorded ({}) with machine {} on {}, which bills; status {}",
        sig.name(),
        s.session.id,
        s.session.state.as_str(),
        s.compute.id,
        s.compute.provider,
        s.compute.status
    );
    for line in credential_lines(&s.compute) {
        let _ = writeln!(err, "{line}");
    }
    let _ = writeln!(err, "stop it with: atlas session stop {}", s.session.id);
    drop(err);
    sig.exit()
}

/// What `atlas session spawn` says on stderr when no orchestrator keeps running after
/// it: which limits hold only while one runs, and whether the machine holds its max
/// runtime itself. Two lines.
pub(crate) fn session_limits_note(
    p: &Checked,
    req: &ComputeRequest,
    idle_ttl: Duration,
    max_runtime: Duration,
    max_cost: Option<f64>,
) -> String {
    let held = deadline::held_by_machine(&p.capabilities(), req);
    let mut limits = vec![format!("idle TTL {}", humantime::format_duration(idle_ttl))];
    if !held {
        limits.push(format!(
            "max runtime {}",
            humantime::format_duration(max_runtime)
        ));
    }
    if let Some(usd) = max_cost {
        limits.push(format!("the ${usd} cost cap"));
    }
    let (last, rest) = limits.split_last().expect("idle TTL is always there");
    let list = if rest.is_empty() {
        last.clone()
    } else {
        format!("{} and {last}", rest.join(", "))
    };
    let name = p.name();
    let second = if held {
        format!("max runtime {} is held by the machine itself: {name} ends it by then even with no orchestrator running", humantime::format_duration(max_runtime))
    } else if p
        .capabilities()
        .contains(cloud_atlas::Capability::CommandDeadline)
    {
        format!("{name} can end the machine by itself only when it runs a command (`-- CMD ARGS…`); until an orchestrator runs, stop it yourself: `atlas session stop ID`")
    } else {
        format!("{name} cannot end the machine by itself; until an orchestrator runs, stop it yourself: `atlas session stop ID`")
    };
    let verb = if rest.is_empty() { "holds" } else { "hold" };
    format!("note: {list} {verb} only while an orchestrator runs on this store (`atlas serve`, or your app's Orchestrator), and none runs once this command exits\nnote: {second}")
}

fn keep_secret(spawned: Option<AuthHandle>, later: Option<AuthHandle>) -> Option<AuthHandle> {
    match spawned {
        Some(a) if a.token.is_some() || a.signing_secret.is_some() => Some(a),
        _ => later,
    }
}

/// `atlas ls --help`, after the flags.
pub(crate) const LS_ALL_HELP: &str = "With --provider all, every configured provider (the mock, and each one whose API key is set) is listed at once, in one table with a PROVIDER column; -o json prints one entry per provider: {\"provider\", \"ok\": true, \"machines\": [...]} or {\"provider\", \"ok\": false, \"error\": {\"kind\", \"message\", \"exit_code\"}}.\n\nA provider that fails is one `error:` line on stderr and the others are still listed. Exit codes: 0 when every provider answered (the listing is complete), 12 when at least one failed (the listing is incomplete); the usual codes for bad flags.";

/// `atlas ls`.
pub(crate) async fn ls(ctx: &Context, args: LsArgs) -> Result<ExitCode> {
    let mut filter = ListFilter::all();
    if let Some(s) = &args.status {
        filter = filter.with_status(parse_status(s)?);
    }
    if let Some(prefix) = &args.name_prefix {
        filter = filter.with_name_prefix(prefix.clone());
    }
    if ctx.provider == ALL_PROVIDERS {
        return ls_all(ctx, &filter, args.timeout.timeout).await;
    }
    let p = ctx.provider()?;
    let items = list_within(&p, &filter, args.timeout.timeout).await?;
    ctx.out.many(&items, list_table)?;
    Ok(ExitCode::SUCCESS)
}

/// One provider's part of `atlas ls --provider all` (its JSON shape).
#[derive(Debug, Serialize)]
struct ProviderListing {
    provider: &'static str,
    /// Whether this provider answered.
    ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    machines: Option<Vec<Compute>>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<ListingError>,
}

/// Why a provider could not be listed (`--provider all`: `ls`, `gpus`).
#[derive(Debug, Serialize)]
pub(crate) struct ListingError {
    kind: &'static str,
    message: String,
    /// The exit code the same command with `--provider P` would have ended with.
    exit_code: u8,
}

impl ListingError {
    /// A provider's failure `e` (which should name the provider).
    pub(crate) fn of(e: &Error) -> ListingError {
        ListingError {
            kind: e.kind().as_str(),
            message: crate::exit::one_line(&e.to_string()),
            exit_code: crate::exit::code(e.kind()),
        }
    }
}

/// Print each failure as one `error:` line on stderr; exit 0 when there was none (the
/// listing is complete), [`crate::exit::INCOMPLETE`] otherwise.
pub(crate) fn completeness<'a>(errors: impl IntoIterator<Item = &'a ListingError>) -> ExitCode {
    let mut complete = true;
    for e in errors {
        complete = false;
        crate::exit::print_line(&format!("error: {}", e.message));
    }
    if complete {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(crate::exit::INCOMPLETE)
    }
}

/// `atlas ls --provider all`: every configured provider concurrently.
async fn ls_all(ctx: &Context, filter: &ListFilter, timeout: Duration) -> Result<ExitCode> {
    let asked = ctx.configured()?;
    let listings = futures::future::join_all(asked.into_iter().map(|(name, built)| async move {
        let listed = match built {
            Ok(p) => list_within(&p, filter, timeout).await,
            Err(e) => Err(e),
        };
        match listed {
            Ok(machines) => ProviderListing {
                provider: name,
                ok: true,
                machines: Some(machines),
                error: None,
            },
            Err(e) => {
                let e = if e.provider().is_none() {
                    e.with_provider(name)
                } else {
                    e
                };
                ProviderListing {
                    provider: name,
                    ok: false,
                    machines: None,
                    error: Some(ListingError::of(&e)),
                }
            }
        }
    }))
    .await;
    ctx.out.many(&listings, all_table)?;
    Ok(completeness(
        listings.iter().filter_map(|l| l.error.as_ref()),
    ))
}

/// `p.list(filter)`, or `Timeout` when it has not answered within `timeout`.
async fn list_within(p: &Checked, filter: &ListFilter, timeout: Duration) -> Result<Vec<Compute>> {
    cloud_atlas::wait::within(timeout, p.name(), "list", TIMEOUT_HINT, p.list(filter)).await
}

/// Ends the message of a provider that did not answer within `--timeout`.
pub(crate) const TIMEOUT_HINT: &str = "; give it longer with --timeout";

/// `--timeout` of the commands that ask every provider with `--provider all`.
#[derive(Debug, Args)]
pub(crate) struct TimeoutArg {
    /// Give up on a provider that has not answered after this long (with --provider
    /// all, the others are still listed), 1s to 7d
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "30s",
        value_parser = crate::flags::wait,
        allow_hyphen_values = true
    )]
    pub(crate) timeout: Duration,
}

fn all_table(out: &Out, listings: &[ProviderListing]) -> String {
    let mut t = out.table(&[
        "PROVIDER", "ID", "NAME", "STATUS", "GPU", "PRICE", "REGION", "URL",
    ]);
    for c in listings.iter().flat_map(|l| l.machines.iter().flatten()) {
        t.add_row(vec![
            Cell::new(&c.provider),
            Cell::new(&c.id),
            Cell::new(or_dash(c.name.as_deref())),
            out.status_cell(c.status.as_str()),
            Cell::new(gpu_text(c)),
            Cell::new(price(c.cost_per_hour)),
            Cell::new(or_dash(c.region.as_deref())),
            Cell::new(endpoint_text(c)),
        ]);
    }
    t.to_string()
}

/// `atlas get`.
pub(crate) async fn get(ctx: &Context, args: IdArg) -> Result<()> {
    let p = ctx.provider()?;
    let c = p.get(&args.id).await?;
    ctx.out.one(&c, |out, c| detail_table(out, c).to_string())
}

/// A state change asked of one compute.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Action {
    /// `atlas stop`.
    Stop,
    /// `atlas start`.
    Start,
    /// `atlas terminate`.
    Terminate,
}

/// JSON shape of `stop`, `start` and `terminate`.
#[derive(Debug, Serialize)]
struct ActionResult<'a> {
    id: &'a str,
    provider: &'a str,
    action: &'static str,
}

/// `atlas stop|start|terminate ID`.
pub(crate) async fn act(ctx: &Context, args: IdArg, action: Action) -> Result<()> {
    let p = ctx.provider()?;
    let done = match action {
        Action::Stop => p.stop(&args.id).await.map(|()| "stopped")?,
        Action::Start => p.start(&args.id).await.map(|()| "started")?,
        Action::Terminate => p.terminate(&args.id).await.map(|()| "terminated")?,
    };
    let r = ActionResult {
        id: &args.id,
        provider: p.name(),
        action: done,
    };
    ctx.out.one(&r, |_, r| {
        format!("{} {} on {}", r.action, r.id, r.provider)
    })
}

/// `1× h100`, or `cpu`.
pub(crate) fn gpu_text(c: &Compute) -> String {
    match c.gpu {
        Some(g) => format!("{}× {g}", c.gpu_count.max(1)),
        None => "cpu".to_string(),
    }
}

/// Where to reach it: the first HTTP URL, else the first port's URL.
pub(crate) fn endpoint_text(c: &Compute) -> String {
    c.http_url()
        .or_else(|| c.ports.iter().find_map(|p| p.url.as_deref()))
        .unwrap_or("-")
        .to_string()
}

fn list_table(out: &Out, items: &[Compute]) -> String {
    let mut t = out.table(&["ID", "NAME", "STATUS", "GPU", "PRICE", "REGION", "URL"]);
    for c in items {
        t.add_row(vec![
            Cell::new(&c.id),
            Cell::new(or_dash(c.name.as_deref())),
            out.status_cell(c.status.as_str()),
            Cell::new(gpu_text(c)),
            Cell::new(price(c.cost_per_hour)),
            Cell::new(or_dash(c.region.as_deref())),
            Cell::new(endpoint_text(c)),
        ]);
    }
    t.to_string()
}

/// Key/value table of one compute.
pub(crate) fn detail_table(out: &Out, c: &Compute) -> comfy_table::Table {
    let ports = c
        .ports
        .iter()
        .map(|p| {
            format!(
                "{}/{} → {}",
                p.internal,
                p.protocol,
                p.url.as_deref().unwrap_or("-")
            )
        })
        .collect::<Vec<_>>()
        .join("\n");
    let labels = c
        .labels
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join("\n");
    out.kv_table(vec![
        ("id", Cell::new(&c.id)),
        ("provider", Cell::new(&c.provider)),
        ("name", Cell::new(or_dash(c.name.as_deref()))),
        ("status", out.status_cell(c.status.as_str())),
        ("gpu", Cell::new(gpu_text(c))),
        ("price", Cell::new(price(c.cost_per_hour))),
        ("region", Cell::new(or_dash(c.region.as_deref()))),
        ("image", Cell::new(or_dash(c.image.as_deref()))),
        ("public ip", Cell::new(or_dash(c.public_ip.as_deref()))),
        (
            "ports",
            Cell::new(if ports.is_empty() { "-".into() } else { ports }),
        ),
        (
            "labels",
            Cell::new(if labels.is_empty() {
                "-".into()
            } else {
                labels
            }),
        ),
        ("auth", Cell::new(auth_text(c.auth.as_ref()))),
        (
            "created",
            Cell::new(or_dash(c.created_at.map(|t| t.to_rfc3339()))),
        ),
    ])
}

fn auth_text(a: Option<&AuthHandle>) -> &'static str {
    match a.map(|a| a.mode) {
        Some(AuthMode::Bearer) => "bearer",
        Some(AuthMode::SignedUrl) => "signed url",
        _ => "none",
    }
}

/// The spawn result: details, then the one-time credentials with a warning.
fn spawn_table(out: &Out, c: &Compute) -> String {
    let mut s = detail_table(out, c).to_string();
    s.push('\n');
    s.push_str(&credential_lines(c).join("\n"));
    s
}

/// Lines that show a spawn's one-time credentials (empty when there are none).
pub(crate) fn credential_lines(c: &Compute) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(a) = &c.auth {
        if let Some(t) = &a.token {
            lines.push(format!("bearer token: {}", t.expose()));
            lines.push(
                "  shown only once: store it now; send it as `Authorization: Bearer <token>`"
                    .to_string(),
            );
        }
        if let Some(s) = &a.signing_secret {
            lines.push(format!("url signing secret: {}", s.expose()));
            lines.push("  shown only once: store it now; sign URLs with it".to_string());
        }
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use cloud_atlas::Gpu;

    fn args() -> SpawnArgs {
        SpawnArgs {
            image: Some("img".into()),
            timeout: Duration::from_secs(600),
            ..SpawnArgs::default()
        }
    }

    #[test]
    fn flags_build_the_request() {
        let a = SpawnArgs {
            gpu: Some("H100".into()),
            gpu_count: Some(2),
            ports: vec!["8000/http".into(), "22/tcp".into()],
            env: vec!["A=1".into(), "B=x=y".into()],
            auth: Some("signed-url".into()),
            idle_ttl: Some(Duration::from_secs(900)),
            command: vec!["python".into(), "train.py".into()],
            provider_opts: vec!["min_vcpu=8".into(), "zone=eu".into(), "o={\"a\":1}".into()],
            labels: vec!["team=ml".into()],
            regions: vec!["eu-1".into(), "us-2".into()],
            cloud: Some("secure".into()),
            ..args()
        };
        let r = a.request().unwrap();
        assert_eq!(r.gpu, Some(Gpu::H100));
        assert_eq!(r.gpu_count, 2);
        assert_eq!(r.ports.len(), 2);
        assert_eq!(r.env["B"], "x=y");
        assert_eq!(r.auth, AuthMode::SignedUrl);
        assert_eq!(r.idle_ttl, Some(Duration::from_secs(900)));
        assert_eq!(r.provider_opts["min_vcpu"], serde_json::json!(8));
        assert_eq!(r.provider_opts["zone"], serde_json::json!("eu"));
        assert_eq!(r.provider_opts["o"], serde_json::json!({"a": 1}));
        assert_eq!(r.labels["team"], "ml");
        assert_eq!(r.region_hints, ["eu-1", "us-2"]);
        assert_eq!(r.cloud_type, CloudType::Secure);
        assert_eq!(r.command, ["python", "train.py"]);
    }

    #[test]
    fn bad_values_name_the_field_and_what_is_allowed() {
        let cases: Vec<(SpawnArgs, &str, &str)> = vec![
            (
                SpawnArgs {
                    gpu: Some("nonsense".into()),
                    ..args()
                },
                "gpu",
                "h100",
            ),
            (
                SpawnArgs {
                    auth: Some("magic".into()),
                    ..args()
                },
                "auth",
                "bearer",
            ),
            (
                SpawnArgs {
                    cloud: Some("moon".into()),
                    ..args()
                },
                "cloud_type",
                "community",
            ),
            (
                SpawnArgs {
                    env: vec!["NOEQUALS".into()],
                    ..args()
                },
                "env",
                "KEY=VALUE",
            ),
            (
                SpawnArgs {
                    ports: vec!["80/sctp".into()],
                    ..args()
                },
                "ports",
                "tcp",
            ),
            (
                SpawnArgs {
                    image: None,
                    ..args()
                },
                "image",
                "required",
            ),
        ];
        for (a, field, allowed) in cases {
            let e = a.request().unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Validation);
            assert!(e.message().starts_with(field), "{field}: {e}");
            assert!(e.message().contains(allowed), "{field}: {e}");
        }
    }

    #[test]
    fn status_filter_is_checked() {
        assert_eq!(parse_status("Running").unwrap(), ComputeStatus::Running);
        let e = parse_status("up").unwrap_err();
        assert!(e.message().contains("allowed: provisioning"), "{e}");
    }
}
