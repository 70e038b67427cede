//! Spans and metrics for Fly platform operations. Line contents never go here.
//!
//! Spans: `atlas.fly.token` (`fly.app`, `fly.token.source`, `fly.token.fast_path`),
//! `atlas.fly.logs.fetch` (`fly.app`, `http.response.status_code`, `fly.logs.count`),
//! `atlas.fly.deploy` (`fly.app`, `fly.deploy.lines`, `fly.deploy.result`).
//!
//! Metrics (via the `metrics` facade):
//! - `atlas_fly_token_resolutions_total` counter, labels `source`
//!   (`cache`/`storage`/`env`/`config`/`cli`/`manual`/`none`) and `fast_path` (`true`/`false`);
//! - `atlas_fly_log_fetches_total` counter, labels `app`, `status` (HTTP code or `error`);
//! - `atlas_fly_log_entries_total` counter, label `app`;
//! - `atlas_fly_deploy_lines_total` counter;
//! - `atlas_fly_deploys_total` counter, label `result`;
//! - `atlas_fly_deploy_duration_seconds` histogram, label `result`.

use std::time::Duration;

use super::deploy::DeployStatus;

pub(crate) fn token_resolved(source: &'static str, fast_path: bool) {
    metrics::counter!(
        "atlas_fly_token_resolutions_total",
        "source" => source,
        "fast_path" => if fast_path { "true" } else { "false" }
    )
    .increment(1);
}

pub(crate) fn log_fetch(app: &str, status: Option<u16>, count: usize) {
    let status = status
        .map(|s| s.to_string())
        .unwrap_or_else(|| "error".to_string());
    metrics::counter!("atlas_fly_log_fetches_total", "app" => app.to_string(), "status" => status)
        .increment(1);
    metrics::counter!("atlas_fly_log_entries_total", "app" => app.to_string())
        .increment(count as u64);
}

pub(crate) fn deploy_lines(n: u64) {
    if n > 0 {
        metrics::counter!("atlas_fly_deploy_lines_total").increment(n);
    }
}

pub(crate) fn deploy_finished(status: &DeployStatus, _lines: u64, elapsed: Duration) {
    metrics::counter!("atlas_fly_deploys_total", "result" => status.as_str()).increment(1);
    metrics::histogram!("atlas_fly_deploy_duration_seconds", "result" => status.as_str())
        .record(elapsed.as_secs_f64());
}
