//! `atlas session … --server URL` (or `$ATLAS_SERVER`): the same commands, flags and
//! outputs, answered by a running `atlas serve` over its REST API instead of the local
//! store. The admin token comes from `$ATLAS_ADMIN_TOKEN`.
//!
//! Every flag is checked here before the request is sent (so nothing bills on a typo),
//! and again by the server. Server errors keep their kind, so exit codes are the local ones.

use std::time::Duration;

use cloud_atlas::orchestrator::Session;
use cloud_atlas::{Compute, Error, ErrorKind, Result};
use cloud_atlas_web::{CreateSession, ErrorBody, ADMIN_TOKEN_ENV};
use serde::de::DeserializeOwned;

use crate::cmd::session::{SessionCmd, SessionSpawnArgs};
use crate::context::Context;

/// A client of one server.
#[derive(Debug)]
struct Remote {
    base: String,
    token: String,
    http: reqwest::Client,
}

fn kind_of(kind: &str) -> ErrorKind {
    match kind {
        "validation" | "payload_too_large" | "unsupported_media_type" => ErrorKind::Validation,
        "unauthorized" => ErrorKind::Unauthorized,
        "forbidden" | "csrf" => ErrorKind::Forbidden,
        "not_found" => ErrorKind::NotFound,
        "rate_limited" => ErrorKind::RateLimited,
        "timeout" => ErrorKind::Timeout,
        "unsupported" => ErrorKind::Unsupported,
        "capacity" => ErrorKind::Capacity,
        "provider" => ErrorKind::Provider,
        "transport" => ErrorKind::Transport,
        _ => ErrorKind::Unknown,
    }
}

impl Remote {
    fn new(ctx: &Context, url: &str) -> Result<Remote> {
        let base = url.trim().trim_end_matches('/').to_string();
        if !(base.starts_with("http://") || base.starts_with("https://")) {
            return Err(Error::validation(
                "server",
                format!("{url:?} is not an http(s) URL (e.g. http://127.0.0.1:7878)"),
            ));
        }
        let token = ctx
            .config
            .env(ADMIN_TOKEN_ENV)
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| {
                Error::new(
                    ErrorKind::Unauthorized,
                    format!("set {ADMIN_TOKEN_ENV} to the admin token atlas serve printed (or its token file)"),
                )
            })?
            .to_string();
        let http = reqwest::Client::builder()
            .connect_timeout(Duration::from_secs(10))
            .build()
            .map_err(|e| {
                Error::new(ErrorKind::Unknown, "cannot build the HTTP client").with_source(e)
            })?;
        Ok(Remote { base, token, http })
    }

    async fn call<T: DeserializeOwned>(&self, rb: reqwest::RequestBuilder) -> Result<Option<T>> {
        let r = rb.bearer_auth(&self.token).send().await.map_err(|e| {
            Error::new(
                ErrorKind::Transport,
                format!(
                    "cannot reach atlas serve at {}: is it running? ({e})",
                    self.base
                ),
            )
        })?;
        let status = r.status();
        let bytes = r.bytes().await.map_err(|e| {
            Error::new(
                ErrorKind::Transport,
                format!("reading the answer of {}: {e}", self.base),
            )
        })?;
        if !status.is_success() {
            return Err(match serde_json::from_slice::<ErrorBody>(&bytes) {
                Ok(b) => Error::new(kind_of(&b.kind), format!("server: {}", b.message)),
                Err(_) => Error::new(
                    ErrorKind::from_status(status.as_u16()),
                    format!(
                        "server answered HTTP {status} (is {} an atlas serve?)",
                        self.base
                    ),
                ),
            }
            .with_status(status.as_u16()));
        }
        if bytes.is_empty() {
            return Ok(None);
        }
        serde_json::from_slice(&bytes).map(Some).map_err(|e| {
            Error::new(
                ErrorKind::Unknown,
                format!("the answer of {} is not what this atlas expects ({e}); are both the same version?", self.base),
            )
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/v1{path}", self.base)
    }
}

/// The request body for `spawn`, its flags checked first (nothing is sent on a bad one).
fn body(ctx: &Context, a: &SessionSpawnArgs) -> Result<CreateSession> {
    let c = &a.compute;
    // The same validation as the local path: the whole request is built once here.
    c.request()?;
    // Durations were parsed and bounded by clap; they travel as exact milliseconds.
    let ms = |d: Duration| format!("{}ms", d.as_millis());
    let wait = c.wait.then(|| ms(c.timeout));
    let mut env = std::collections::BTreeMap::new();
    for kv in &c.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        env.insert(k.trim().to_string(), v.to_string());
    }
    let mut labels = std::collections::BTreeMap::new();
    for kv in &c.labels {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        labels.insert(k.trim().to_string(), v.to_string());
    }
    let mut provider_opts = std::collections::BTreeMap::new();
    for kv in &c.provider_opts {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        let v =
            serde_json::from_str(v).unwrap_or_else(|_| serde_json::Value::String(v.to_string()));
        provider_opts.insert(k.trim().to_string(), v);
    }
    Ok(CreateSession {
        user: a.user.clone(),
        provider: ctx.provider_explicit.then(|| ctx.provider.clone()),
        gpu: c.gpu.clone(),
        gpu_count: c.gpu_count,
        cpus: c.cpus,
        memory_gb: c.memory_gb,
        image: c.image.clone(),
        cloud: c.cloud.clone(),
        spot: c.spot,
        regions: c.regions.clone(),
        ports: c.ports.clone(),
        env,
        volume_gb: c.volume_gb,
        disk_gb: c.disk_gb,
        network_volume: c.network_volume.clone(),
        template: c.template.clone(),
        name: c.name.clone(),
        auth: c.auth.clone(),
        idle_ttl: c.idle_ttl.map(ms),
        max_runtime: c.max_runtime.map(ms),
        provider_opts,
        labels,
        max_cost: a.max_cost,
        prefix: Some(a.prefix.clone()),
        command: c.command.clone(),
        wait,
    })
}

fn session_of(v: serde_json::Value) -> Result<Session> {
    serde_json::from_value(v).map_err(|e| {
        Error::new(
            ErrorKind::Unknown,
            format!("the server's session is not what this atlas expects ({e})"),
        )
    })
}

fn path_id(id: &str) -> String {
    percent_encode(id)
}

fn percent_encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// `atlas session …` against the server at `url`.
pub(crate) async fn run(ctx: &Context, url: &str, cmd: SessionCmd) -> Result<()> {
    use crate::cmd::session::{print_list, print_one, print_spawned};
    // Check the flags before anything is sent.
    let body = match &cmd {
        SessionCmd::Spawn(a) => Some(body(ctx, a)?),
        _ => None,
    };
    let r = Remote::new(ctx, url)?;
    match cmd {
        SessionCmd::Spawn(_) => {
            let body = body.expect("built above");
            let v: serde_json::Value = r
                .call(r.http.post(r.url("/sessions")).json(&body))
                .await?
                .unwrap_or_default();
            let session = session_of(v["session"].clone())?;
            let compute: Compute = serde_json::from_value(v["compute"].clone()).map_err(|e| {
                Error::new(
                    ErrorKind::Unknown,
                    format!("the server's compute is not what this atlas expects ({e})"),
                )
            })?;
            print_spawned(ctx, session, compute)
        }
        SessionCmd::Ls => {
            let v: serde_json::Value = r
                .call(r.http.get(r.url("/sessions")))
                .await?
                .unwrap_or_default();
            let mut all = Vec::new();
            for s in v["sessions"].as_array().cloned().unwrap_or_default() {
                all.push(session_of(s)?);
            }
            print_list(ctx, &all)
        }
        SessionCmd::Get { id } => {
            let v: serde_json::Value = r
                .call(r.http.get(r.url(&format!("/sessions/{}", path_id(&id)))))
                .await?
                .unwrap_or_default();
            print_one(ctx, &session_of(v)?)
        }
        SessionCmd::Touch { id } => {
            r.call::<serde_json::Value>(
                r.http
                    .post(r.url(&format!("/sessions/{}/touch", path_id(&id)))),
            )
            .await?;
            crate::cmd::session::print_action(ctx, &id, "touched")
        }
        SessionCmd::Stop { id } => {
            r.call::<serde_json::Value>(
                r.http
                    .post(r.url(&format!("/sessions/{}/stop", path_id(&id)))),
            )
            .await?;
            crate::cmd::session::print_action(ctx, &id, "terminated")
        }
    }
}
