//! Tail a Fly app's logs with `cloud_atlas::fly::logs::LogsClient`: fetch a page, print
//! it, follow the cursor, stop when a page comes back empty (a real tail keeps polling).
//!
//! Runs against a local server speaking the Fly logs API (`GET
//! /api/v1/apps/{app}/logs?next_token=…`, JSON:API pages), started on a free port, so it
//! needs no token or network. Point it at Fly with
//! `LogsClientBuilder::new().with_token(…)` and the default base URL.
//!
//! `cargo run -p cloud-atlas-examples --example fly_logs_tail` (its test runs under `cargo test`).

use std::collections::HashMap;

use axum::extract::{Path, Query};
use axum::routing::get;
use axum::Router;
use cloud_atlas::auth::Secret;
use cloud_atlas::fly::logs::{LogEntry, LogQuery, LogsClientBuilder};

/// A page holding line `n` (cursor `n`), or an empty page after `last`.
async fn logs(
    Path(app): Path<String>,
    Query(q): Query<HashMap<String, String>>,
) -> ([(&'static str, &'static str); 1], String) {
    let at: u64 = q
        .get("next_token")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    let data = if at < 3 {
        vec![serde_json::json!({
            "id": (at + 1).to_string(),
            "type": "log",
            "attributes": {
                "timestamp": format!("2026-05-20T00:00:0{}.000000000Z", at + 1),
                "message": format!("{app}: line {}", at + 1),
                "level": "info",
                "instance": "3d8d9014b32d89",
                "region": "ord",
                "meta": {"event": {"provider": "app"}}
            }
        })]
    } else {
        Vec::new()
    };
    let next = if at < 3 { at + 1 } else { at };
    let body = serde_json::json!({"data": data, "meta": {"next_token": next.to_string()}});
    ([("content-type", "application/json")], body.to_string())
}

/// Start the local logs server; returns its base URL.
async fn local_fly_logs_api() -> anyhow::Result<String> {
    let app = Router::new().route("/api/v1/apps/{app}/logs", get(logs));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(url)
}

/// Every entry of `app` until a page comes back empty.
async fn tail(base_url: &str, app: &str) -> anyhow::Result<Vec<LogEntry>> {
    let client = LogsClientBuilder::new()
        .with_base_url(base_url)
        .with_token(Secret::new("FlyV1 fm2_example"))
        .build()?;
    let mut query = LogQuery::new(app);
    let mut seen = Vec::new();
    loop {
        let page = client.fetch_with_retry(&query).await?;
        if page.entries.is_empty() {
            return Ok(seen);
        }
        for e in &page.entries {
            println!("{} [{}] {}", e.timestamp, e.region, e.message);
        }
        seen.extend(page.entries);
        match page.next_token {
            Some(t) => query = query.next_token(t),
            None => return Ok(seen),
        }
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let url = local_fly_logs_api().await?;
    let lines = tail(&url, "web-app").await?;
    println!("{} lines", lines.len());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn tails_every_line_then_stops() {
        let url = local_fly_logs_api().await.unwrap();
        let lines = tail(&url, "web-app").await.unwrap();
        let msgs: Vec<&str> = lines.iter().map(|e| e.message.as_str()).collect();
        assert_eq!(
            msgs,
            ["web-app: line 1", "web-app: line 2", "web-app: line 3"]
        );
    }
}
