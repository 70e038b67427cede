//! Fly telemetry carries counts, sources and results, never line contents or tokens.
#![cfg(unix)]

use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};

use axum::routing::get;
use cloud_atlas::auth::Secret;
use cloud_atlas::fly::logs::{LogQuery, LogsClient};
use cloud_atlas::fly::{deploy, DeployOptions, Flyctl, TokenResolver};
use cloud_atlas::http::RetryConfig;
use tracing_subscriber::fmt::format::FmtSpan;
use tracing_subscriber::fmt::MakeWriter;

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl<'a> MakeWriter<'a> for Buf {
    type Writer = Buf;
    fn make_writer(&'a self) -> Buf {
        self.clone()
    }
}

#[tokio::test(flavor = "current_thread")]
async fn spans_have_counts_and_sources_but_no_contents() {
    let buf = Buf::default();
    let sub = tracing_subscriber::fmt()
        .with_writer(buf.clone())
        .with_max_level(tracing::Level::TRACE)
        .with_span_events(FmtSpan::CLOSE)
        .with_ansi(false)
        .finish();
    let _g = tracing::subscriber::set_default(sub);

    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("fly");
    std::fs::write(
        &bin,
        "#!/bin/sh\ncase \"$1\" in\n  tokens) echo 'FlyV1 fm2_tokencanary';;\n  *) echo 'deploy-line-canary'; echo 'err-canary' 1>&2;;\nesac\n",
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let app_dir = tmp.path().join("app");
    std::fs::create_dir_all(&app_dir).unwrap();

    // Deploy.
    let r = deploy(
        &app_dir,
        Some("demo-app"),
        &DeployOptions::default().with_flyctl(Flyctl::new(&bin)),
    )
    .await
    .unwrap();
    assert!(r.output.contains("deploy-line-canary"));

    // Token acquisition through the CLI.
    let resolver = TokenResolver::builder()
        .with_fly_config_dir(tmp.path().join("none"))
        .with_flyctl(Flyctl::new(&bin))
        .build();
    resolver.get("demo-app").await.unwrap();
    resolver.get("demo-app").await.unwrap();

    // A log fetch.
    let router = axum::Router::new().route(
        "/api/v1/apps/{app}/logs",
        get(|| async {
            r#"{"data":[{"id":"1","attributes":{"timestamp":"2026-05-20T00:00:00Z","message":"log-message-canary"}}],"meta":{"next_token":"2"}}"#
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    let c = LogsClient::builder()
        .with_base_url(&url)
        .with_retry(RetryConfig::none())
        .with_token(Secret::new("fo1_headercanary"))
        .build()
        .unwrap();
    let page = c.fetch(&LogQuery::new("demo-app")).await.unwrap();
    assert_eq!(page.entries[0].message, "log-message-canary");

    let out = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
    for want in [
        "atlas.fly.deploy",
        "fly.deploy.lines=2",
        "fly.deploy.result=\"succeeded\"",
        "atlas.fly.token",
        "fly.token.source=\"cli\"",
        "fly.token.source=\"cache\"",
        "fly.token.fast_path=true",
        "atlas.fly.logs.fetch",
        "fly.logs.count=1",
        "http.response.status_code=200",
    ] {
        assert!(out.contains(want), "missing {want} in:\n{out}");
    }
    for never in [
        "deploy-line-canary",
        "err-canary",
        "tokencanary",
        "log-message-canary",
        "headercanary",
    ] {
        assert!(
            !out.contains(never),
            "{never} leaked into telemetry:\n{out}"
        );
    }
}
