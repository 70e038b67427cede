//! A real control-plane server on 127.0.0.1 (random port) around an in-memory mock
//! cloud, for tests that talk to it with a real HTTP client.
#![allow(dead_code, unreachable_pub)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cloud_atlas::orchestrator::store::MemorySessionStore;
use cloud_atlas::orchestrator::{Orchestrator, OrchestratorConfig, ShutdownPolicy};
use cloud_atlas::providers::mock::Mock;
use cloud_atlas_web::{AdminToken, ControlPlane, ControlPlaneBuilder};
use serde_json::{json, Value};

/// The admin token of every test server.
pub const TOKEN: &str = "test-admin-token-0123456789";

/// A running server.
pub struct Server {
    pub base: String,
    pub orch: Orchestrator,
    pub cloud: Arc<Mock>,
    pub http: reqwest::Client,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Default options: destructive actions on, reaper off.
    pub async fn start() -> Server {
        Server::start_with(|b| b.allow_destructive(true), OrchestratorConfig::default()).await
    }

    /// With builder and orchestrator settings.
    pub async fn start_with(
        web: impl FnOnce(ControlPlaneBuilder) -> ControlPlaneBuilder,
        mut cfg: OrchestratorConfig,
    ) -> Server {
        cfg.reaper.enabled = false;
        let cloud = Arc::new(Mock::in_memory());
        let store = Arc::new(MemorySessionStore::new());
        let orch = Orchestrator::builder()
            .store_arc(Arc::clone(&store) as _)
            .provider_arc(Arc::clone(&cloud) as _)
            .config(cfg)
            .start()
            .await
            .unwrap();
        let b = ControlPlane::builder(orch.clone(), AdminToken::new(TOKEN).unwrap())
            .provider(Arc::clone(&cloud) as _)
            .store(store);
        let app = web(b).build().unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .await
            .unwrap();
        });
        Server {
            base: format!("http://{addr}"),
            orch,
            cloud,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            task,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// GET with the admin token.
    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// POST JSON with the admin token.
    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// POST without a body, with the admin token.
    pub async fn post_empty(&self, path: &str) -> reqwest::Response {
        self.http
            .post(self.url(path))
            .bearer_auth(TOKEN)
            .send()
            .await
            .unwrap()
    }

    /// Spawn a session for `user`; returns the whole 201 body.
    pub async fn spawn(&self, user: &str, extra: Value) -> Value {
        let mut body = json!({"user": user, "gpu": "l4", "image": "ghcr.io/acme/app:1", "ports": ["8000/http"]});
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        let r = self.post("/v1/sessions", &body).await;
        assert_eq!(r.status(), 201, "{:?}", r.text().await);
        r.json().await.unwrap()
    }

    pub async fn stop(self) {
        self.task.abort();
        let _ = self.orch.shutdown(ShutdownPolicy::Terminate).await;
    }
}

/// Assert an error answer: status, the one error body, its kind and field.
pub async fn assert_error(
    r: reqwest::Response,
    status: u16,
    kind: &str,
    field: Option<&str>,
) -> Value {
    assert_eq!(r.status().as_u16(), status, "status");
    let b: Value = r.json().await.expect("error body is JSON");
    assert_eq!(b["kind"], kind, "{b}");
    assert!(b["message"].as_str().is_some_and(|m| !m.is_empty()), "{b}");
    assert_eq!(
        b.as_object().unwrap().len(),
        3,
        "exactly kind, message, field: {b}"
    );
    match field {
        Some(f) => assert_eq!(b["field"], f, "{b}"),
        None => assert!(b["field"].is_null(), "{b}"),
    }
    b
}
