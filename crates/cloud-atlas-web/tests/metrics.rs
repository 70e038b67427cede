//! `/metrics` parses as Prometheus text and carries the HTTP-layer, orchestrator,
//! Fly-ops and control-plane metrics.
#![cfg(unix)]

mod support;

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;

use axum::routing::get;
use cloud_atlas::providers::runpod::RunPodBuilder;
use cloud_atlas::{ListFilter, Provider};
use serde_json::json;
use support::Server;

#[tokio::test]
async fn metrics_parse_as_prometheus_text_with_the_expected_names() {
    let s = Server::start().await;
    // Orchestrator: a spawn and a stop.
    let id = s.spawn("m", json!({})).await["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    assert_eq!(
        s.post_empty(&format!("/v1/sessions/{id}/stop"))
            .await
            .status(),
        200
    );
    // The shared provider HTTP layer: one RunPod listing against a local server.
    let stub = axum::Router::new().fallback(get(|| async { axum::Json(json!({"pods": []})) }));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, stub).await.unwrap() });
    let rp = RunPodBuilder::from_settings(cloud_atlas::config::ProviderSettings::new("runpod"))
        .with_api_key("k-test")
        .with_base_url(&base)
        .build()
        .unwrap();
    let _ = rp.list(&ListFilter::all()).await;
    // Fly ops: a deploy with a stand-in `fly` binary.
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("fly");
    std::fs::write(&bin, "#!/bin/sh\necho deployed\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let opts =
        cloud_atlas::fly::DeployOptions::default().with_flyctl(cloud_atlas::fly::Flyctl::new(&bin));
    let _ = cloud_atlas::fly::deploy(tmp.path(), Some("demo"), &opts).await;

    let r = s.get("/metrics").await;
    assert_eq!(r.status(), 200);
    assert!(r.headers()["content-type"]
        .to_str()
        .unwrap()
        .starts_with("text/plain; version=0.0.4"));
    let text = r.text().await.unwrap();
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus text format");
    let names: BTreeSet<&str> = scrape.samples.iter().map(|s| s.metric.as_str()).collect();
    for want in [
        "atlas_web_requests_total",
        "atlas_web_request_duration_seconds",
        "atlas_http_requests_total",
        "atlas_http_request_duration_seconds",
        "atlas_session_spawns_total",
        "atlas_session_terminations_total",
        "atlas_sessions",
        "atlas_fly_deploys_total",
        "atlas_fly_deploy_duration_seconds",
    ] {
        assert!(
            names.contains(want),
            "{want} missing from /metrics: {names:?}"
        );
    }
    // Latencies are histograms (buckets a Prometheus server can aggregate), not summaries.
    for h in [
        "atlas_web_request_duration_seconds",
        "atlas_http_request_duration_seconds",
    ] {
        let s = scrape.samples.iter().find(|s| s.metric == h).unwrap();
        assert!(
            matches!(s.value, prometheus_parse::Value::Histogram(_)),
            "{h}: {:?}",
            s.value
        );
    }
    // Route labels are templates, never raw ids (bounded label sets).
    assert!(text.contains("route=\"/v1/sessions/{id}/stop\""), "{text}");
    assert!(!text.contains(&id), "a session id leaked into a label");
    assert!(!text.contains("k-test"));
    s.stop().await;
}
