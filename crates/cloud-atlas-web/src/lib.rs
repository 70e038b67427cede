//! # cloud-atlas-web
//!
//! The cloud-atlas control plane as an axum [`Router`]: a REST API under `/v1` with an
//! OpenAPI 3.1 document generated from the handlers (`/v1/openapi.json`), server-sent
//! events with resumable ids (`/v1/events`), `/healthz`, `/readyz`, Prometheus
//! `/metrics`, and an operator dashboard at `/`. `atlas serve` mounts it; you can nest
//! it into your own axum app, the way a LiveDashboard page drops into an existing
//! dashboard.
//!
//! ## Nest it into your app
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cloud_atlas::Result<()> {
//! use std::sync::Arc;
//! use cloud_atlas::orchestrator::{Orchestrator, store::MemorySessionStore};
//! use cloud_atlas::providers::mock::Mock;
//! use cloud_atlas_web::{AdminToken, ControlPlane};
//!
//! let cloud = Arc::new(Mock::in_memory());
//! let orch = Orchestrator::builder()
//!     .store(MemorySessionStore::new())
//!     .provider_arc(cloud.clone())
//!     .start()
//!     .await?;
//! let atlas = ControlPlane::builder(orch.clone(), AdminToken::new("change-me-to-a-long-secret")?)
//!     .provider(cloud)
//!     .build()?;
//! // Your app, with the control plane under /atlas (dashboard at /atlas/).
//! let app: axum::Router = axum::Router::new()
//!     .route("/", axum::routing::get(|| async { "my app" }))
//!     .nest("/atlas", atlas);
//! // Serve with connect info, so repeated bad tokens are slowed down per client:
//! // axum::serve(listener, app.into_make_service_with_connect_info::<std::net::SocketAddr>())
//! # let _ = app;
//! orch.shutdown(cloud_atlas::orchestrator::ShutdownPolicy::Terminate).await?;
//! # Ok(()) }
//! ```
//!
//! ## Routes
//! | route | auth | what |
//! |---|---|---|
//! | `GET /` , `/assets/*` | none (static) | the dashboard; it signs in with the admin token |
//! | `POST/GET/DELETE /auth/session` | the token in the body | sign in / CSRF token / sign out |
//! | `/v1/*` | admin token or session cookie | the API ([`openapi`]) |
//! | `GET /metrics` | admin token or session cookie | Prometheus text |
//! | `GET /healthz`, `GET /readyz` | none | liveness; readiness (store answers, providers configured) |
//!
//! Access rules are in [`access`]; the event stream's guarantees in [`events`].
//!
//! ## Dependencies and why
//! `axum` is the HTTP framework (its `Router` is what users nest); `utoipa` and
//! `utoipa-axum` generate the OpenAPI 3.1 document from the handlers themselves, so a
//! route cannot exist without its documentation; `metrics-exporter-prometheus` (no HTTP
//! listener, no push gateway) renders the `metrics` facade the library already writes to;
//! `tower-http` provides the CORS layer (only when origins are configured); `subtle`
//! compares tokens in constant time and `sha2` digests them so no raw admin token is
//! kept in memory; `rand`/`base64` make tokens; `serde_path_to_error` names the field a
//! bad body got wrong; `futures` builds the event streams. Cookies are parsed by hand
//! (one header, one name): a cookie crate would add more than it saves.

#![deny(missing_docs)]

pub mod access;
mod api;
pub mod config;
pub mod dashboard;
pub mod error;
pub mod events;
mod ops;
mod state;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::extract::DefaultBodyLimit;
use axum::http::{header, HeaderName, HeaderValue, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use cloud_atlas::orchestrator::{Orchestrator, SessionStore};
use cloud_atlas::{Error, Provider, Result};

pub use access::{AdminToken, TokenSource, ADMIN_TOKEN_ENV};
pub use api::catalog::{
    CatalogResponse, GpuView, GpusQuery, ProviderFailure, ProviderView, CATALOG_TIMEOUT,
    CATALOG_TTL,
};
pub use api::events::EventsQuery;
pub use api::sessions::{
    CreateSession, CreatedSession, ListQuery, SessionList, SessionView, Stopped,
};
pub use api::spend::{SpendQuery, SpendView, UserSpendView};
pub use api::MAX_BODY_BYTES;
pub use config::ServerConfig;
pub use error::{ApiError, ErrorBody};
pub use events::EventData;
pub use ops::prometheus;

/// The OpenAPI document of `/v1`, as served at `/v1/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    api::router().1
}

/// Entry point: [`ControlPlane::builder`].
#[derive(Debug)]
pub struct ControlPlane;

impl ControlPlane {
    /// Start building the router around `orch`, guarded by `token`.
    pub fn builder(orch: Orchestrator, token: AdminToken) -> ControlPlaneBuilder {
        ControlPlaneBuilder {
            orch,
            token,
            providers: BTreeMap::new(),
            default_provider: None,
            store: None,
            allow_destructive: false,
            cors_origins: Vec::new(),
            replay_buffer: events::DEFAULT_REPLAY_BUFFER,
            metrics: true,
        }
    }
}

/// Builder of the control-plane [`Router`].
#[derive(Debug)]
pub struct ControlPlaneBuilder {
    orch: Orchestrator,
    token: AdminToken,
    providers: BTreeMap<String, Arc<dyn Provider>>,
    default_provider: Option<String>,
    store: Option<Arc<dyn SessionStore>>,
    allow_destructive: bool,
    cors_origins: Vec<String>,
    replay_buffer: usize,
    metrics: bool,
}

impl ControlPlaneBuilder {
    /// A provider the orchestrator uses (for `/v1/providers` and `/v1/gpus`). The first
    /// one added is the default unless [`default_provider`](Self::default_provider) says otherwise.
    pub fn provider(mut self, p: Arc<dyn Provider>) -> ControlPlaneBuilder {
        self.default_provider
            .get_or_insert_with(|| p.name().to_string());
        self.providers.insert(p.name().to_string(), p);
        self
    }

    /// Where `POST /v1/sessions` goes when the body names no provider.
    pub fn default_provider(mut self, name: impl Into<String>) -> ControlPlaneBuilder {
        self.default_provider = Some(name.into());
        self
    }

    /// The orchestrator's store, so `/readyz` can check that it answers.
    pub fn store(mut self, s: Arc<dyn SessionStore>) -> ControlPlaneBuilder {
        self.store = Some(s);
        self
    }

    /// Let the dashboard stop sessions (default off; bearer-token API clients always can).
    pub fn allow_destructive(mut self, on: bool) -> ControlPlaneBuilder {
        self.allow_destructive = on;
        self
    }

    /// Origins allowed to call the API cross-origin with a bearer token (default none:
    /// no CORS headers at all). Cookies are never accepted cross-origin.
    pub fn cors_origins(mut self, origins: Vec<String>) -> ControlPlaneBuilder {
        self.cors_origins = origins;
        self
    }

    /// Events held for `Last-Event-ID` resume (default 4096).
    pub fn replay_buffer(mut self, n: usize) -> ControlPlaneBuilder {
        self.replay_buffer = n;
        self
    }

    /// Serve `/metrics` from the process-wide Prometheus recorder (default on).
    pub fn metrics(mut self, on: bool) -> ControlPlaneBuilder {
        self.metrics = on;
        self
    }

    /// Build the router. Must be called inside a tokio runtime (the event hub starts).
    ///
    /// # Errors
    /// `Validation` when no provider was added, the default provider is not among
    /// them, or a CORS origin is not a valid origin.
    pub fn build(self) -> Result<Router> {
        if self.providers.is_empty() {
            return Err(Error::validation("providers", "add at least one provider"));
        }
        let default_provider = self.default_provider.unwrap_or_default();
        if !self.providers.contains_key(&default_provider) {
            return Err(Error::validation(
                "default_provider",
                format!(
                    "{default_provider:?} is not among the providers ({})",
                    self.providers
                        .keys()
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            ));
        }
        let mut origins = Vec::new();
        for o in &self.cors_origins {
            let ok = (o.starts_with("http://") || o.starts_with("https://"))
                && !o
                    .trim_end_matches('/')
                    .contains(|c: char| c.is_whitespace());
            let v = HeaderValue::from_str(o.trim_end_matches('/'))
                .ok()
                .filter(|_| ok);
            origins.push(v.ok_or_else(|| {
                Error::validation(
                    "cors_origins",
                    format!("{o:?} is not an origin (e.g. https://app.example.com)"),
                )
            })?);
        }
        let metrics = if self.metrics {
            ops::prometheus()
        } else {
            None
        };
        let hub = events::Hub::new(self.replay_buffer);
        hub.start(&self.orch);
        let (v1, doc) = api::router();
        let openapi = doc.to_pretty_json().map_err(|e| {
            Error::new(
                cloud_atlas::ErrorKind::Unknown,
                format!("OpenAPI document: {e}"),
            )
        })?;
        let st = state::AppState(Arc::new(state::Shared {
            orch: self.orch,
            providers: self.providers,
            default_provider,
            store: self.store,
            access: access::Access::new(self.token),
            hub,
            allow_destructive: self.allow_destructive,
            metrics,
            catalog: Mutex::new(None),
            openapi,
        }));
        let auth = axum::middleware::from_fn_with_state(st.clone(), api::require_auth);
        let v1 = v1
            .route("/openapi.json", get(openapi_json))
            .fallback(not_found)
            .layer(auth.clone());
        let metrics_route = Router::new()
            .route("/metrics", get(ops::metrics))
            .route_layer(auth);
        let mut app = Router::new()
            .route("/", get(dashboard::index))
            .route("/assets/app.js", get(dashboard::app_js))
            .route("/assets/app.css", get(dashboard::app_css))
            .route(
                "/auth/session",
                get(dashboard::current)
                    .post(dashboard::sign_in)
                    .delete(dashboard::sign_out),
            )
            .route("/healthz", get(ops::healthz))
            .route("/readyz", get(ops::readyz))
            .merge(metrics_route)
            .nest("/v1", v1)
            .fallback(not_found)
            .with_state(st)
            .layer(axum::middleware::from_fn(ops::track))
            .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
            .layer(tower_http::catch_panic::CatchPanicLayer::custom(
                ops::panicked,
            ))
            .layer(axum::middleware::from_fn(ops::harden));
        if !origins.is_empty() {
            use tower_http::cors::{AllowOrigin, CorsLayer};
            app = app.layer(
                CorsLayer::new()
                    .allow_origin(AllowOrigin::list(origins))
                    .allow_methods([Method::GET, Method::POST])
                    .allow_headers([
                        header::AUTHORIZATION,
                        header::CONTENT_TYPE,
                        HeaderName::from_static("last-event-id"),
                    ])
                    .allow_credentials(false),
            );
        }
        Ok(app)
    }
}

async fn openapi_json(
    axum::extract::State(st): axum::extract::State<state::AppState>,
) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        st.openapi.clone(),
    )
}

async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::new(
        StatusCode::NOT_FOUND,
        "not_found",
        format!("no route {}; see /v1/openapi.json", uri.path()),
    )
}
