//! Per-request tracing spans and metrics.
//!
//! Metric names (via the `metrics` facade; install any recorder to export them):
//! - `atlas_http_requests_total` counter, labels `provider`, `api`, `method`, `status`
//!   (`status` is the HTTP code or `error`);
//! - `atlas_http_request_duration_seconds` histogram, same labels.

use std::time::Duration;

/// Record one finished attempt.
pub(crate) fn record(
    provider: &'static str,
    api: &'static str,
    method: &str,
    status: Option<u16>,
    elapsed: Duration,
) {
    let status = status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "error".to_string());
    let labels = [
        ("provider", provider.to_string()),
        ("api", api.to_string()),
        ("method", method.to_string()),
        ("status", status),
    ];
    metrics::counter!("atlas_http_requests_total", &labels).increment(1);
    metrics::histogram!("atlas_http_request_duration_seconds", &labels)
        .record(elapsed.as_secs_f64());
}
