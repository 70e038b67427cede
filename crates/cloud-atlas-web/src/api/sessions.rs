//! `/v1/sessions`: create (spawn), list, get, touch, stop.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::Json;
use chrono::{DateTime, Utc};
use cloud_atlas::orchestrator::{
    Session, SessionFilter, SessionRequest, SessionState, TerminateReason,
};
use cloud_atlas::spec::{parse_duration_in, DurationRange};
use cloud_atlas::{AuthMode, CloudType, ComputeRequest, Gpu, GpuChoice};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Caller, JsonBody, StrictQuery};
use crate::access::Principal;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::state::AppState;

/// Body of `POST /v1/sessions`: the fields are named as `atlas session spawn`'s flags
/// (`--region` → `regions`, `--port` → `ports`, `--env K=V` → `env`, `--label` → `labels`,
/// `--provider-opt` → `provider_opts`). Durations are strings like the flags' (`15m`, `2h`).
#[derive(Debug, Clone, Default, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateSession {
    /// Who the session is for.
    #[schema(example = "user-42")]
    pub user: String,
    /// Provider [default: the server's default provider].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "mock")]
    pub provider: Option<String>,
    /// GPU model (h100, a100-sxm4-80g, l4, …), or the provider's own id as `native:ID`
    /// (`native:NVIDIA A40`); omit for CPU-only compute.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "l4")]
    pub gpu: Option<String>,
    /// GPUs per machine [default: 1 with `gpu`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gpu_count: Option<u32>,
    /// vCPUs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cpus: Option<u32>,
    /// Memory in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_gb: Option<u32>,
    /// Container image (required).
    #[schema(example = "ghcr.io/acme/app:1")]
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Machine pool: secure, community or any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cloud: Option<String>,
    /// Interruptible/spot pricing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub spot: bool,
    /// Preferred regions, most preferred first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub regions: Vec<String>,
    /// Ports to expose, `PORT/PROTO` (http, tcp, udp).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schema(example = json!(["8000/http"]))]
    pub ports: Vec<String>,
    /// Environment variables.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Persistent volume in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_gb: Option<u32>,
    /// Container disk in GB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub disk_gb: Option<u32>,
    /// Provider network volume to attach.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub network_volume: Option<String>,
    /// Provider template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub template: Option<String>,
    /// Name prefix (a unique launch id is appended).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Browser-to-pod auth: none, bearer or signed-url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "bearer")]
    pub auth: Option<String>,
    /// Idle time-to-live, e.g. `15m` (enforced by this server).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "15m")]
    pub idle_ttl: Option<String>,
    /// Maximum runtime, e.g. `2h`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_runtime: Option<String>,
    /// Provider-specific options.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    #[schema(value_type = Object)]
    pub provider_opts: BTreeMap<String, serde_json::Value>,
    /// Labels.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Cost cap in USD for this session.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cost: Option<f64>,
    /// Resource name prefix (the reaper's prefix) [default: atlas-session-].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub prefix: Option<String>,
    /// The command the machine runs instead of the image's (`atlas session spawn … -- CMD ARGS…`);
    /// where a provider can, the machine then ends itself after `max_runtime`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub command: Vec<String>,
    /// Answer only once the machine runs and its first HTTP port answers, waiting at
    /// most this long (e.g. `10m`); `atlas session spawn --wait --timeout`. On timeout
    /// the answer is 504 and the session stays tracked (its limits still apply).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schema(example = "10m")]
    pub wait: Option<String>,
}

/// Library field names → body field names, so errors name what the caller sent.
fn body_field(f: &str) -> &str {
    match f {
        "user_id" => "user",
        "region" | "regions" => "regions",
        "port" | "ports" => "ports",
        "cloud_type" => "cloud",
        "container_disk_gb" => "disk_gb",
        "network_volume_id" => "network_volume",
        "template_id" => "template",
        "max_cost_usd" => "max_cost",
        "name_prefix" => "prefix",
        "label" => "labels",
        other => other,
    }
}

/// A limit (`idle_ttl`, `max_runtime`: 1s to 365d) or a wait (`wait`: 1s to 7d).
fn bounded(field: &str, s: &str) -> cloud_atlas::Result<std::time::Duration> {
    let range = if field == "wait" {
        DurationRange::WAIT
    } else {
        DurationRange::LIMIT
    };
    parse_duration_in(field, s, range)
}

impl CreateSession {
    /// The validated session request on `default_provider` unless the body names one.
    ///
    /// # Errors
    /// 400 naming the first bad field.
    pub fn to_request(&self, default_provider: &str) -> ApiResult<SessionRequest> {
        self.build(default_provider)
            .map_err(|e| ApiError::from(e).map_field(body_field))
    }

    fn build(&self, default_provider: &str) -> cloud_atlas::Result<SessionRequest> {
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
        for (k, v) in &self.env {
            b = b.env(k.clone(), v.clone());
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
        if let Some(d) = &self.idle_ttl {
            b = b.idle_ttl(bounded("idle_ttl", d)?);
        }
        if let Some(d) = &self.max_runtime {
            b = b.max_runtime(bounded("max_runtime", d)?);
        }
        for (k, v) in &self.labels {
            b = b.label(k.clone(), v.clone());
        }
        if !self.command.is_empty() {
            b = b.command(self.command.iter().cloned());
        }
        for (k, v) in &self.provider_opts {
            b = b.provider_opt(k.clone(), v.clone());
        }
        let provider = self
            .provider
            .as_deref()
            .unwrap_or(default_provider)
            .trim()
            .to_ascii_lowercase();
        let mut req = SessionRequest::new(provider, self.user.clone(), b.build()?);
        if let Some(p) = &self.prefix {
            req = req.with_name_prefix(p.clone());
        }
        if let Some(usd) = self.max_cost {
            req = req.with_max_cost(usd);
        }
        req.validate()?;
        Ok(req)
    }
}

/// A tracked session: the library's `Session` fields (so clients can decode it as one)
/// plus what the server computes for display.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct SessionView {
    /// Session id (32 hex characters).
    pub id: String,
    /// Owner.
    pub user_id: String,
    /// Provider name.
    pub provider: String,
    /// Launch id of the compute request.
    pub launch_id: String,
    /// Resource name.
    pub name: String,
    /// Provider's compute id, once the provider answered.
    pub compute_id: Option<String>,
    /// `pending`, `active`, `terminating` or `terminated`.
    #[schema(value_type = String, example = "active")]
    pub state: SessionState,
    /// When the intent was written.
    pub created_at: DateTime<Utc>,
    /// When the provider's answer was recorded.
    pub spawned_at: Option<DateTime<Utc>>,
    /// Latest heartbeat.
    pub last_touch: DateTime<Utc>,
    /// Idle TTL in milliseconds.
    pub idle_ttl: u64,
    /// Maximum runtime in milliseconds.
    pub max_runtime: u64,
    /// Cost cap in USD.
    pub max_cost_usd: Option<f64>,
    /// Current billing rate, USD per hour.
    pub cost_per_hour: f64,
    /// Since when `cost_per_hour` applies.
    pub rate_since: DateTime<Utc>,
    /// USD accrued before `rate_since`.
    pub accrued_before_usd: f64,
    /// What the provider's billing said at the last reconciliation.
    pub billed_usd: Option<f64>,
    /// SHA-256 hex of the pod token handed out at spawn (never the token).
    pub token_hash: Option<String>,
    /// `none`, `bearer` or `signed-url`.
    #[schema(value_type = String)]
    pub auth_mode: AuthMode,
    /// URL of the first HTTP port.
    pub http_url: Option<String>,
    /// GPU model (`h100`, `l4`, …).
    #[schema(value_type = Option<String>)]
    pub gpu: Option<Gpu>,
    /// Why termination started (`idle`, `max_runtime`, `budget`, `requested`, …).
    #[schema(value_type = Option<String>)]
    pub terminate_reason: Option<TerminateReason>,
    /// The node that holds the session (its orchestrator's node id).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    /// Why the stored record is damaged, when it is (never scheduled; can be stopped).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub damaged: Option<String>,
    /// USD accrued up to `as_of` (estimate at the recorded rates).
    pub accrued_usd: f64,
    /// When the idle TTL ends the session unless touched.
    pub idle_expires_at: DateTime<Utc>,
    /// When the maximum runtime ends the session.
    pub runtime_expires_at: DateTime<Utc>,
    /// When these figures were computed.
    pub as_of: DateTime<Utc>,
}

fn plus(t: DateTime<Utc>, d: std::time::Duration) -> DateTime<Utc> {
    chrono::Duration::from_std(d)
        .ok()
        .and_then(|d| t.checked_add_signed(d))
        .unwrap_or(DateTime::<Utc>::MAX_UTC)
}

impl SessionView {
    /// The view of `s` at `now`.
    pub fn of(s: &Session, now: DateTime<Utc>) -> SessionView {
        SessionView {
            id: s.id.clone(),
            user_id: s.user_id.clone(),
            provider: s.provider.clone(),
            launch_id: s.launch_id.clone(),
            name: s.name.clone(),
            compute_id: s.compute_id.clone(),
            state: s.state,
            created_at: s.created_at,
            spawned_at: s.spawned_at,
            last_touch: s.last_touch,
            idle_ttl: u64::try_from(s.idle_ttl.as_millis()).unwrap_or(u64::MAX),
            max_runtime: u64::try_from(s.max_runtime.as_millis()).unwrap_or(u64::MAX),
            max_cost_usd: s.max_cost_usd,
            cost_per_hour: s.cost_per_hour,
            rate_since: s.rate_since,
            accrued_before_usd: s.accrued_before_usd,
            billed_usd: s.billed_usd,
            token_hash: s.token_hash.clone(),
            auth_mode: s.auth_mode,
            http_url: s.http_url.clone(),
            gpu: s.gpu,
            terminate_reason: s.terminate_reason,
            owner: s.owner.clone(),
            damaged: s.damaged.clone(),
            accrued_usd: s.accrued_usd(now),
            idle_expires_at: plus(s.last_touch, s.idle_ttl),
            runtime_expires_at: plus(s.created_at, s.max_runtime),
            as_of: now,
        }
    }
}

/// What `POST /v1/sessions` answers (the shape `atlas session spawn -o json` prints).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct CreatedSession {
    /// The tracked session.
    pub session: SessionView,
    /// The compute as the provider answered (the library's `Compute`). With `auth`
    /// bearer or signed-url, `compute.auth` carries the raw token or signing secret:
    /// this response is the only place it is ever served.
    #[schema(value_type = Object)]
    pub compute: serde_json::Value,
}

/// What `GET /v1/sessions` answers.
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct SessionList {
    /// Sessions passing the filters, oldest first.
    pub sessions: Vec<SessionView>,
    /// The newest event id when the list was taken: open `GET /v1/events` with
    /// `Last-Event-ID` set to it to follow on without a gap.
    pub event_id: String,
    /// When the list was taken.
    pub as_of: DateTime<Utc>,
}

/// Filters of `GET /v1/sessions`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    /// Only this user's sessions.
    pub user: Option<String>,
    /// Only sessions on this provider.
    pub provider: Option<String>,
    /// Only sessions in this state: pending, active, terminating.
    pub status: Option<String>,
}

/// What `POST /v1/sessions/{id}/stop` answers (the shape `atlas session stop -o json` prints).
#[derive(Debug, Serialize, Deserialize, ToSchema)]
pub struct Stopped {
    /// Session id.
    pub id: String,
    /// Always `terminated`.
    #[schema(example = "terminated")]
    pub action: String,
}

fn check_id(id: &str) -> ApiResult<()> {
    if id.is_empty() || id.len() > 128 {
        return Err(ApiError::not_found(format!("no session {id:?}")));
    }
    Ok(())
}

/// Spawn a tracked session (starts billing).
#[utoipa::path(
    post,
    path = "/sessions",
    tag = "sessions",
    request_body = CreateSession,
    responses(
        (status = 201, description = "Spawned and tracked", body = CreatedSession),
        (status = 400, description = "A bad field (named in `field`)", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "A spend limit refuses it, or a bad CSRF token", body = ErrorBody),
        (status = 415, description = "Not JSON", body = ErrorBody),
        (status = 422, description = "The provider cannot do what was asked", body = ErrorBody),
        (status = 502, description = "The provider failed", body = ErrorBody),
        (status = 503, description = "No capacity", body = ErrorBody),
        (status = 504, description = "`wait` ran out (the session stays tracked)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn create(
    State(st): State<AppState>,
    JsonBody(body): JsonBody<CreateSession>,
) -> ApiResult<(StatusCode, Json<CreatedSession>)> {
    let req = body.to_request(&st.default_provider)?;
    let wait = body
        .wait
        .as_deref()
        .map(|w| bounded("wait", w))
        .transpose()
        .map_err(ApiError::from)?;
    let user = req.user_id.clone();
    let s = st.orch.spawn(req).await?;
    st.hub.note_user(&s.session.id, &user);
    let session = match wait {
        Some(t) => st.orch.wait_ready(&s.session.id, t).await.map_err(|e| {
            let m = format!(
                "{} (session {} stays tracked; its idle TTL and max runtime still apply)",
                e.message(),
                s.session.id
            );
            ApiError::from(e.with_message(m))
        })?,
        None => s.session,
    };
    let compute = serde_json::to_value(&s.compute).unwrap_or_default();
    Ok((
        StatusCode::CREATED,
        Json(CreatedSession {
            session: SessionView::of(&session, Utc::now()),
            compute,
        }),
    ))
}

/// List tracked sessions, oldest first.
#[utoipa::path(
    get,
    path = "/sessions",
    tag = "sessions",
    params(ListQuery),
    responses(
        (status = 200, description = "The sessions", body = SessionList),
        (status = 400, description = "A bad filter (named in `field`)", body = ErrorBody),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn list(
    State(st): State<AppState>,
    StrictQuery(q): StrictQuery<ListQuery>,
) -> ApiResult<Json<SessionList>> {
    let mut f = SessionFilter::all();
    if let Some(u) = q.user {
        f = f.user(u);
    }
    if let Some(p) = q.provider {
        f = f.provider(p);
    }
    if let Some(s) = q.status {
        let state: SessionState = s.parse().map_err(|e: cloud_atlas::Error| {
            ApiError::validation("status", e.message().replacen("state", "status", 1))
        })?;
        f = f.state(state);
    }
    let event_id = st.hub.head();
    let now = Utc::now();
    let sessions = st
        .orch
        .list(&f)
        .iter()
        .map(|s| SessionView::of(s, now))
        .collect();
    Ok(Json(SessionList {
        sessions,
        event_id,
        as_of: now,
    }))
}

/// One tracked session.
#[utoipa::path(
    get,
    path = "/sessions/{id}",
    tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "The session", body = SessionView),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 404, description = "Not tracked (never spawned here, or ended)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn get(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<Json<SessionView>> {
    check_id(&id)?;
    let s = st.orch.get(&id)?;
    Ok(Json(SessionView::of(&s, Utc::now())))
}

/// Record activity: resets the idle TTL.
#[utoipa::path(
    post,
    path = "/sessions/{id}/touch",
    tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 204, description = "Touched"),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Bad CSRF token (dashboard session)", body = ErrorBody),
        (status = 404, description = "Not tracked, or terminating", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn touch(
    State(st): State<AppState>,
    Path(id): Path<String>,
) -> ApiResult<StatusCode> {
    check_id(&id)?;
    st.orch.touch(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// Stop a session: terminate its machine (stops billing) and forget it. Waits for the
/// provider; when the terminate fails the session stays tracked, the terminate is
/// retried in the background, and the answer is 502. From the dashboard this is a
/// destructive action, refused unless the server enables them.
#[utoipa::path(
    post,
    path = "/sessions/{id}/stop",
    tag = "sessions",
    params(("id" = String, Path, description = "Session id")),
    responses(
        (status = 200, description = "Terminated", body = Stopped),
        (status = 401, description = "No or wrong admin token", body = ErrorBody),
        (status = 403, description = "Destructive actions are off for the dashboard, or a bad CSRF token", body = ErrorBody),
        (status = 404, description = "Not tracked", body = ErrorBody),
        (status = 502, description = "The provider's terminate failed (retried in the background)", body = ErrorBody),
    ),
    security(("bearer" = []), ("cookie" = []))
)]
pub(crate) async fn stop(
    State(st): State<AppState>,
    Caller(who): Caller,
    Path(id): Path<String>,
) -> ApiResult<Json<Stopped>> {
    check_id(&id)?;
    if who == Principal::Cookie && !st.allow_destructive {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            "destructive actions are off for the dashboard; start atlas serve with --allow-destructive (or [server] allow_destructive = true)",
        ));
    }
    st.orch.stop_tracked(&id).await?;
    Ok(Json(Stopped {
        id,
        action: "terminated".into(),
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bad_fields_are_named_as_sent() {
        let b = CreateSession {
            user: "u".into(),
            image: Some("img".into()),
            idle_ttl: Some("soon".into()),
            ..CreateSession::default()
        };
        let e = b.to_request("mock").unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("idle_ttl"));
        let b = CreateSession {
            user: "".into(),
            image: Some("img".into()),
            ..CreateSession::default()
        };
        let e = b.to_request("mock").unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("user"), "{e:?}");
        let b = CreateSession {
            user: "u".into(),
            image: Some("img".into()),
            gpu: Some("h9000".into()),
            ..CreateSession::default()
        };
        assert_eq!(
            b.to_request("mock").unwrap_err().body.field.as_deref(),
            Some("gpu")
        );
    }

    #[test]
    fn a_gpu_is_canonical_or_native_and_ambiguous_names_are_refused() {
        let body = |g: &str| CreateSession {
            user: "u".into(),
            image: Some("img".into()),
            gpu: Some(g.into()),
            ..CreateSession::default()
        };
        let r = body("native:NVIDIA A40").to_request("runpod").unwrap();
        assert_eq!(r.compute.native_gpu.as_deref(), Some("NVIDIA A40"));
        assert_eq!((r.compute.gpu, r.compute.gpu_count), (None, 1));
        let r = body("a100-sxm4-80g").to_request("runpod").unwrap();
        assert_eq!(r.compute.gpu, Some(Gpu::A100_SXM4_80G));
        let e = body("a100").to_request("runpod").unwrap_err();
        assert_eq!(e.body.field.as_deref(), Some("gpu"));
        assert!(e.body.message.contains("a100_sxm4_80g"), "{e:?}");
    }

    #[test]
    fn the_view_carries_every_field_of_the_library_session() {
        let b = CreateSession {
            user: "u".into(),
            image: Some("img".into()),
            ..CreateSession::default()
        };
        let req = b.to_request("mock").unwrap();
        // A Session decoded from a view must round-trip: the view has every field.
        let now = Utc::now();
        let s = serde_json::json!({
            "id": "a", "user_id": req.user_id, "provider": "mock", "launch_id": "l",
            "name": "atlas-l", "compute_id": null, "state": "pending", "created_at": now,
            "spawned_at": null, "last_touch": now, "idle_ttl": 1000, "max_runtime": 2000,
            "max_cost_usd": null, "cost_per_hour": 0.5, "rate_since": now,
            "accrued_before_usd": 0.0, "billed_usd": null, "token_hash": null,
            "auth_mode": "none", "http_url": null, "gpu": "l4", "terminate_reason": null
        });
        let session: Session = serde_json::from_value(s).unwrap();
        let lib = serde_json::to_value(&session).unwrap();
        let view = serde_json::to_value(SessionView::of(&session, now)).unwrap();
        for (k, v) in lib.as_object().unwrap() {
            assert_eq!(view.get(k), Some(v), "view field {k}");
        }
        let back: Session = serde_json::from_value(view).unwrap();
        assert_eq!(back, session);
    }
}
