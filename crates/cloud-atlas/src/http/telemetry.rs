//! Per-request tracing spans and metrics.
//!
//! Metric names (via the `metrics` facade; install any recorder to export them):
//! - `atlas_http_requests_total` counter, labels `provider`, `api`, `method`, `status`
//!   (`status` is the HTTP code or `error`);
//! - `atlas_http_request_duration_seconds` histogram, same labels.

use std::time::Duration;

use metrics::{Label, SharedString};

/// Record one finished attempt.
pub(crate) fn record(
    provider: &'static str,
    api: &'static str,
    method: &reqwest::Method,
    status: Option<u16>,
    elapsed: Duration,
) {
    // Static label values where possible: no allocation per request for them.
    let status: SharedString = match status {
        Some(s) => SharedString::from(s.to_string()),
        None => SharedString::const_str("error"),
    };
    let labels = [
        Label::from_static_parts("provider", provider),
        Label::from_static_parts("api", api),
        Label::from_static_parts("method", method_label(method)),
        Label::new("status", status),
    ];
    metrics::counter!("atlas_http_requests_total", labels.iter()).increment(1);
    metrics::histogram!("atlas_http_request_duration_seconds", labels.iter())
        .record(elapsed.as_secs_f64());
}

fn method_label(m: &reqwest::Method) -> &'static str {
    match *m {
        reqwest::Method::GET => "GET",
        reqwest::Method::POST => "POST",
        reqwest::Method::PUT => "PUT",
        reqwest::Method::PATCH => "PATCH",
        reqwest::Method::DELETE => "DELETE",
        reqwest::Method::HEAD => "HEAD",
        reqwest::Method::OPTIONS => "OPTIONS",
        _ => "OTHER",
    }
}
