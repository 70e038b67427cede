//! `/healthz`, `/readyz`, `/metrics`, and the layers every response passes: request
//! metrics and security headers.

use std::sync::OnceLock;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Json;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use serde_json::json;

use crate::state::AppState;

/// Latency buckets (seconds) for every `*_duration_seconds` histogram.
const BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0, 300.0,
];

/// The process-wide Prometheus recorder: installed on first use; `None` when the
/// application already installed another `metrics` recorder (then `/metrics` says so).
pub fn prometheus() -> Option<PrometheusHandle> {
    static HANDLE: OnceLock<Option<PrometheusHandle>> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), BUCKETS)
                .ok()?
                .build_recorder();
            let handle = recorder.handle();
            metrics::set_global_recorder(recorder).ok()?;
            describe();
            Some(handle)
        })
        .clone()
}

fn describe() {
    use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
    describe_counter!(
        "atlas_web_requests_total",
        "HTTP requests answered by the control plane"
    );
    describe_histogram!(
        "atlas_web_request_duration_seconds",
        Unit::Seconds,
        "Control-plane request latency"
    );
    describe_counter!(
        "atlas_web_auth_failures_total",
        "Requests with a wrong admin token"
    );
    describe_gauge!("atlas_web_sse_subscribers", "Open event streams");
    describe_counter!("atlas_web_events_total", "Events numbered by the event hub");
    describe_counter!(
        "atlas_web_sse_lagged_total",
        "Lagged signals sent to event subscribers"
    );
    describe_gauge!(
        "atlas_web_dashboard_sessions",
        "Signed-in dashboard sessions"
    );
    describe_counter!(
        "atlas_http_requests_total",
        "Provider API requests (every attempt)"
    );
    describe_histogram!(
        "atlas_http_request_duration_seconds",
        Unit::Seconds,
        "Provider API request latency"
    );
    describe_gauge!("atlas_sessions", "Tracked sessions by state");
    describe_counter!("atlas_session_spawns_total", "Sessions spawned");
    describe_counter!(
        "atlas_session_spawn_failures_total",
        "Session spawns that failed"
    );
    describe_counter!(
        "atlas_session_terminations_total",
        "Sessions terminated, by reason"
    );
    describe_counter!(
        "atlas_session_terminate_failures_total",
        "Failed terminate attempts"
    );
    describe_counter!(
        "atlas_reaped_orphans_total",
        "Orphan machines terminated by the reaper"
    );
    describe_gauge!("atlas_spend_usd", "Estimated USD spent (live + closed)");
    describe_gauge!("atlas_spend_usd_per_hour", "USD per hour billing now");
    describe_counter!(
        "atlas_spend_usd_closed_total",
        "USD spent by ended sessions"
    );
    describe_gauge!(
        "atlas_spend_reconciliation_drift_usd",
        "Provider-billed minus estimated USD"
    );
}

/// Liveness: the process answers.
pub(crate) async fn healthz() -> Json<serde_json::Value> {
    Json(json!({"status": "ok"}))
}

/// Readiness: the store answers and providers are configured.
pub(crate) async fn readyz(State(st): State<AppState>) -> Response {
    let store = match &st.store {
        None => Ok("not checked (the application owns the store)".to_string()),
        Some(s) => match tokio::time::timeout(
            std::time::Duration::from_secs(5),
            s.get("00000000000000000000000000000000"),
        )
        .await
        {
            Ok(Ok(_)) => Ok("ok".to_string()),
            Ok(Err(e)) => Err(format!("unreachable: {}", e.message())),
            Err(_) => Err("no answer within 5s".to_string()),
        },
    };
    let providers: Vec<&String> = st.providers.keys().collect();
    let ready = store.is_ok() && !providers.is_empty();
    let body = json!({
        "ready": ready,
        "checks": {
            "store": match &store { Ok(s) | Err(s) => s },
            "providers": providers,
        }
    });
    let code = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Prometheus text format.
pub(crate) async fn metrics(State(st): State<AppState>) -> Response {
    match &st.metrics {
        Some(h) => {
            h.run_upkeep();
            (
                [(
                    header::CONTENT_TYPE,
                    HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
                )],
                h.render(),
            )
                .into_response()
        }
        None => crate::error::ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            "metrics are off: the application installed its own metrics recorder",
        )
        .into_response(),
    }
}

/// Count and time every request by route template (never by raw path: bounded labels).
pub(crate) async fn track(req: Request, next: Next) -> Response {
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let method = req.method().as_str().to_string();
    let t = Instant::now();
    let r = next.run(req).await;
    let status = r.status().as_u16().to_string();
    metrics::counter!("atlas_web_requests_total", "method" => method.clone(), "route" => route.clone(), "status" => status).increment(1);
    metrics::histogram!("atlas_web_request_duration_seconds", "method" => method, "route" => route)
        .record(t.elapsed().as_secs_f64());
    r
}

/// Security headers on every response; API answers are never cached.
pub(crate) async fn harden(req: Request, next: Next) -> Response {
    let api = req.uri().path().contains("/v1/") || req.uri().path().contains("/auth/");
    let mut r = next.run(req).await;
    let h = r.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
        ),
    );
    h.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("no-referrer"),
    );
    if api && !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    r
}

/// A handler that panicked answers 500 with the one error body (the panic message is
/// logged, not served: it could carry internals).
pub(crate) fn panicked(err: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let what = err
        .downcast_ref::<String>()
        .map(String::as_str)
        .or_else(|| err.downcast_ref::<&str>().copied())
        .unwrap_or("unknown");
    tracing::error!(panic = what, "a request handler panicked");
    metrics::counter!("atlas_web_panics_total").increment(1);
    crate::error::ApiError::new(
        StatusCode::INTERNAL_SERVER_ERROR,
        "unknown",
        "internal error while handling the request; the server log has the details",
    )
    .into_response()
}
