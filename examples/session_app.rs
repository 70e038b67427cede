//! A per-user GPU session app: an axum server that gives each signed-in user their own
//! machine through the [`Orchestrator`], keeps it alive while the user's browser sends
//! heartbeats, and lets the orchestrator end it when they leave (idle TTL) or hit a cap.
//! The "pod" side is an axum app behind [`PresharedKeyLayer`]: only the user who got the
//! token can reach their machine.
//!
//! Routes of the app server (put your own user authentication in front of them):
//!
//! | route                              | does                                                  |
//! |------------------------------------|-------------------------------------------------------|
//! | `POST   /users/{user}/session`     | spawn the user's session (409 if one is live); returns id, URL and the one-time token |
//! | `GET    /sessions/{id}/ready`      | wait until the machine runs and its URL answers       |
//! | `POST   /sessions/{id}/heartbeat`  | the browser is still there (the idle TTL restarts)    |
//! | `DELETE /sessions/{id}`            | the user is done: terminate now                       |
//! | `GET    /sessions`                 | live sessions (token hashes only, never tokens)       |
//!
//! Runs on the mock cloud with an in-memory store, so it needs no keys; for real use swap
//! in `RunPod::from_env()?` (or any provider) and a `SqliteSessionStore`/PostgreSQL store
//! so sessions survive restarts. The mock's HTTP ports point at the in-process pod app,
//! so the session URL really answers.
//!
//! ```text
//! cargo run -p cloud-atlas-examples --example session_app            # serve on 127.0.0.1:7900
//! cargo run -p cloud-atlas-examples --example session_app -- --check # serve, walk the flow, exit
//! ```

use std::sync::Arc;
use std::time::Duration;

use anyhow::{ensure, Context};
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use cloud_atlas::auth::layer::PresharedKeyLayer;
use cloud_atlas::auth::Secret;
use cloud_atlas::orchestrator::store::MemorySessionStore;
use cloud_atlas::orchestrator::{
    EventKind, Orchestrator, OrchestratorConfig, Recv, SessionFilter, SessionRequest,
    ShutdownPolicy, TerminateReason,
};
use cloud_atlas::providers::mock::{Mock, MockOptions};
use cloud_atlas::{AuthMode, ComputeRequest, ErrorKind, Gpu};
use serde_json::{json, Value};
use tokio::net::TcpListener;

/// The app server's state: one orchestrator for every user.
#[derive(Clone)]
struct App {
    orch: Arc<Orchestrator>,
    /// Idle TTL given to new sessions (short in the self-check).
    idle_ttl: Duration,
}

/// A library error as an HTTP answer; the message never holds a secret.
struct ApiError(cloud_atlas::Error);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = match self.0.kind() {
            ErrorKind::Validation => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorKind::NotFound => StatusCode::NOT_FOUND,
            ErrorKind::Capacity | ErrorKind::RateLimited => StatusCode::SERVICE_UNAVAILABLE,
            ErrorKind::Forbidden => StatusCode::FORBIDDEN,
            _ => StatusCode::BAD_GATEWAY,
        };
        let body = json!({ "error": self.0.kind().as_str(), "message": self.0.to_string() });
        (status, Json(body)).into_response()
    }
}

impl From<cloud_atlas::Error> for ApiError {
    fn from(e: cloud_atlas::Error) -> ApiError {
        ApiError(e)
    }
}

/// `POST /users/{user}/session`: one live session per user.
async fn open_session(
    State(app): State<App>,
    Path(user): Path<String>,
) -> Result<Response, ApiError> {
    if let Some(live) = app.orch.list(&SessionFilter::all().user(&user)).first() {
        let body = json!({ "error": "conflict", "session_id": live.id,
                           "message": format!("user {user} already has session {}", live.id) });
        return Ok((StatusCode::CONFLICT, Json(body)).into_response());
    }
    let compute = ComputeRequest::builder()
        .gpu(Gpu::L4)
        .image("ghcr.io/acme/infer:1")
        .port("8000/http")
        .auth(AuthMode::Bearer)
        .build()?;
    let req = SessionRequest::new("mock", &user, compute)
        .with_idle_ttl(app.idle_ttl)
        .with_max_runtime(Duration::from_secs(4 * 3600))
        .with_max_cost(10.0);
    let spawned = app.orch.spawn(req).await?;
    let id = spawned.session.id.clone();
    // The raw token exists only here: hand it to this user's browser once.
    let token = spawned
        .auth()
        .and_then(|a| a.token.as_ref())
        .map(|t| t.expose().to_string());
    let url = spawned.compute.http_url().map(str::to_string);
    let state = spawned.session.state.as_str();
    let body = json!({ "session_id": id, "state": state, "url": url, "token": token });
    Ok((StatusCode::CREATED, Json(body)).into_response())
}

/// `GET /sessions/{id}/ready`: waits (up to 60 s) until the machine runs and its URL
/// answers. The browser keeps sending heartbeats meanwhile: the idle TTL runs from spawn.
async fn ready(State(app): State<App>, Path(id): Path<String>) -> Result<Json<Value>, ApiError> {
    let s = app.orch.wait_ready(&id, Duration::from_secs(60)).await?;
    Ok(Json(
        json!({ "session_id": s.id, "state": s.state.as_str() }),
    ))
}

/// `POST /sessions/{id}/heartbeat`.
async fn heartbeat(State(app): State<App>, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
    app.orch.touch(&id)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `DELETE /sessions/{id}`.
async fn close_session(
    State(app): State<App>,
    Path(id): Path<String>,
) -> Result<StatusCode, ApiError> {
    app.orch.stop_tracked(&id).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /sessions`.
async fn list_sessions(State(app): State<App>) -> Json<Value> {
    let sessions = app.orch.list(&SessionFilter::all());
    Json(json!(sessions))
}

fn app_router(app: App) -> Router {
    Router::new()
        .route("/users/{user}/session", post(open_session))
        .route("/sessions/{id}/ready", get(ready))
        .route("/sessions/{id}/heartbeat", post(heartbeat))
        .route("/sessions/{id}", delete(close_session))
        .route("/sessions", get(list_sessions))
        .with_state(app)
}

/// What runs on the machine: inference behind the preshared key the pod received as
/// `ATLAS_PRESHARED_KEY` (here handed over in-process).
fn pod_router(key: Secret) -> anyhow::Result<Router> {
    Ok(Router::new()
        .route(
            "/v1/infer",
            post(|Json(v): Json<Value>| async move {
                Json(json!({ "completion": format!("{} …", v["prompt"].as_str().unwrap_or("")) }))
            }),
        )
        .layer(PresharedKeyLayer::new(key)?))
}

/// Start the app server: the orchestrator on a mock whose HTTP ports point at
/// `pod_base` (or the mock's unresolvable default URLs). Returns the app's base URL,
/// the orchestrator and the cloud.
async fn start_app(
    pod_base: Option<&str>,
    idle_ttl: Duration,
    addr: &str,
) -> anyhow::Result<(String, Arc<Orchestrator>, Mock)> {
    let cloud = Mock::in_memory_with(MockOptions {
        http_base: pod_base.map(str::to_string),
        ..MockOptions::default()
    });
    let mut config = OrchestratorConfig::default();
    config.heartbeat_flush_interval = Duration::from_secs(1);
    let orch = Arc::new(
        Orchestrator::builder()
            .store(MemorySessionStore::new())
            .provider(cloud.clone())
            .config(config)
            .start()
            .await?,
    );
    let listener = TcpListener::bind(addr)
        .await
        .context("bind the app server")?;
    let base = format!("http://{}", listener.local_addr()?);
    let router = app_router(App {
        orch: Arc::clone(&orch),
        idle_ttl,
    });
    tokio::spawn(async move { axum::serve(listener, router).await });
    Ok((base, orch, cloud))
}

/// Walk the whole flow as two users and a stranger would. `idle_ttl` is the TTL given
/// to sessions; bob's session is left without heartbeats and must end by itself.
async fn check(idle_ttl: Duration) -> anyhow::Result<()> {
    let pod_listener = TcpListener::bind("127.0.0.1:0").await?;
    let pod_base = format!("http://{}", pod_listener.local_addr()?);
    let (base, orch, cloud) = start_app(Some(&pod_base), idle_ttl, "127.0.0.1:0").await?;
    let http = reqwest::Client::builder().no_proxy().build()?;

    // Alice opens a session and gets her URL and token once.
    let res = http
        .post(format!("{base}/users/alice/session"))
        .send()
        .await?;
    let status = res.status();
    ensure!(
        status == 201,
        "open alice's session: {status} {}",
        res.text().await?
    );
    let alice: Value = res.json().await?;
    let id = alice["session_id"]
        .as_str()
        .context("session_id")?
        .to_string();
    let token = alice["token"].as_str().context("token")?.to_string();
    let url = alice["url"].as_str().context("url")?.to_string();
    println!("alice: session {id} at {url}");

    // A second tab does not rent a second GPU.
    let again = http
        .post(format!("{base}/users/alice/session"))
        .send()
        .await?;
    ensure!(
        again.status() == 409,
        "second session for alice: {}",
        again.status()
    );

    // Her browser sends heartbeats while the machine boots; the machine (here
    // in-process, with the key a real pod receives as ATLAS_PRESHARED_KEY) comes up.
    let hb = http
        .post(format!("{base}/sessions/{id}/heartbeat"))
        .send()
        .await?;
    ensure!(
        hb.status() == 204,
        "heartbeat while booting: {}",
        hb.status()
    );
    let pod = pod_router(Secret::new(token.clone()))?;
    tokio::spawn(async move { axum::serve(pod_listener, pod).await });
    let up = http
        .get(format!("{base}/sessions/{id}/ready"))
        .send()
        .await?;
    ensure!(up.status() == 200, "alice's machine ready: {}", up.status());
    let body = json!({ "prompt": "a cat" });
    let stranger = http
        .post(format!("{url}/v1/infer"))
        .json(&body)
        .send()
        .await?;
    ensure!(stranger.status() == 401, "no token: {}", stranger.status());
    let ok = http
        .post(format!("{url}/v1/infer"))
        .bearer_auth(&token)
        .json(&body)
        .send()
        .await?;
    ensure!(ok.status() == 200, "alice's token: {}", ok.status());
    println!("alice's pod answers her and nobody else");

    // Heartbeats keep it; the list never shows a token.
    let hb = http
        .post(format!("{base}/sessions/{id}/heartbeat"))
        .send()
        .await?;
    ensure!(hb.status() == 204, "heartbeat: {}", hb.status());
    let list = http
        .get(format!("{base}/sessions"))
        .send()
        .await?
        .text()
        .await?;
    ensure!(list.contains(&id), "alice listed");
    ensure!(
        !list.contains(&token),
        "the list must never carry the token"
    );

    // Alice is done: terminate now; nothing is left billing.
    let bye = http.delete(format!("{base}/sessions/{id}")).send().await?;
    ensure!(
        bye.status() == 204,
        "close alice's session: {}",
        bye.status()
    );
    let gone = http
        .post(format!("{base}/sessions/{id}/heartbeat"))
        .send()
        .await?;
    ensure!(
        gone.status() == 404,
        "heartbeat after close: {}",
        gone.status()
    );
    // Bob opens a session and walks away: the idle TTL ends it with no call from us.
    let mut events = orch.subscribe_all();
    let res = http
        .post(format!("{base}/users/bob/session"))
        .send()
        .await?;
    ensure!(res.status() == 201, "open bob's session: {}", res.status());
    let bob: Value = res.json().await?;
    let bob_id = bob["session_id"].as_str().context("bob's id")?.to_string();
    let ended = tokio::time::timeout(idle_ttl + Duration::from_secs(30), async {
        loop {
            match events.recv().await {
                Recv::Event(e) if e.session_id == bob_id => {
                    if let EventKind::Terminated { reason, .. } = e.kind {
                        return Ok(reason);
                    }
                }
                Recv::Closed => anyhow::bail!("orchestrator closed"),
                _ => {}
            }
        }
    })
    .await
    .context("bob's idle session did not end")??;
    ensure!(ended == TerminateReason::Idle, "bob ended by {ended:?}");
    println!("bob left: his session ended by idle TTL");

    ensure!(orch.is_empty(), "no session left");
    ensure!(cloud.live_count()? == 0, "no machine left on the cloud");
    println!("nothing is left billing");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("warn").init();
    if std::env::args().any(|a| a == "--check") {
        return check(Duration::from_secs(5)).await;
    }
    // Served for real, the mock's machines run nothing: their URLs do not resolve.
    let (base, orch, _cloud) = start_app(None, Duration::from_secs(900), "127.0.0.1:7900").await?;
    println!("session app on {base}: POST {base}/users/alice/session (Ctrl-C ends every session)");
    tokio::signal::ctrl_c().await?;
    let report = orch.shutdown(ShutdownPolicy::Terminate).await?;
    println!("terminated {} session(s)", report.terminated);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn per_user_sessions_end_to_end() {
        super::check(std::time::Duration::from_secs(5))
            .await
            .expect("the session app's flow");
    }
}
