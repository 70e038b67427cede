//! Logs client and streamer against a local server speaking Fly's JSON:API logs shape.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use cloud_atlas::auth::Secret;
use cloud_atlas::fly::logs::{
    LogEvent, LogQuery, LogStreamer, LogsClient, LogsClientBuilder, PollerEvent, StopReason,
    StreamerOptions, SubscribeOptions,
};
use cloud_atlas::fly::tokens::AppTokens;
use cloud_atlas::http::RetryConfig;
use cloud_atlas::{ErrorKind, Result};

const SAMPLE_PAGE: &str = include_str!("fixtures/fly/samples/logs-api-response.constructed.json");
const SAMPLE_NDJSON: &str =
    include_str!("fixtures/fly/samples/logs-ndjson-normalized.constructed.ndjson");

#[derive(Debug, Clone)]
struct Seen {
    app: String,
    query: HashMap<String, String>,
    auth: String,
}

type Handler = dyn Fn(&Seen, usize) -> (u16, &'static str, String) + Send + Sync;

struct Srv {
    seen: Mutex<Vec<Seen>>,
    handler: Box<Handler>,
}

async fn logs(
    State(s): State<Arc<Srv>>,
    Path(app): Path<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let seen = Seen {
        app,
        query,
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    };
    let n = {
        let mut v = s.seen.lock().unwrap();
        v.push(seen.clone());
        v.len()
    };
    let (status, ctype, body) = (s.handler)(&seen, n);
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", ctype)],
        body,
    )
        .into_response()
}

struct Server {
    url: String,
    srv: Arc<Srv>,
}

impl Server {
    async fn start(
        handler: impl Fn(&Seen, usize) -> (u16, &'static str, String) + Send + Sync + 'static,
    ) -> Server {
        let srv = Arc::new(Srv {
            seen: Mutex::new(Vec::new()),
            handler: Box::new(handler),
        });
        let app = Router::new()
            .route("/api/v1/apps/{app}/logs", get(logs))
            .with_state(Arc::clone(&srv));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Server { url, srv }
    }
    fn seen(&self) -> Vec<Seen> {
        self.srv.seen.lock().unwrap().clone()
    }
    fn client(&self, token: &str) -> LogsClient {
        LogsClient::builder()
            .with_base_url(&self.url)
            .with_retry(RetryConfig::none())
            .with_token(Secret::new(token))
            .build()
            .unwrap()
    }
}

const JSON: &str = "application/json";

fn empty_page(next: &str) -> String {
    format!(r#"{{"data":[],"meta":{{"next_token":"{next}"}}}}"#)
}

/// A page with one entry per number in `ns`, cursor `next`.
fn page(ns: &[u64], region: &str, next: u64) -> String {
    let data: Vec<serde_json::Value> = ns
        .iter()
        .map(|n| {
            serde_json::json!({
                "id": n.to_string(),
                "type": "log",
                "attributes": {
                    "timestamp": format!("2026-05-20T00:00:{:02}.{:09}Z", n / 1000 % 60, n % 1000),
                    "message": format!("line {n}"),
                    "level": "info",
                    "instance": "3d8d9014b32d89",
                    "region": region,
                    "meta": {"event": {"provider": "app"}}
                }
            })
        })
        .collect();
    serde_json::json!({"data": data, "meta": {"next_token": next.to_string()}}).to_string()
}

/// Each request gets the next line after its cursor: a never-ending log.
fn endless(s: &Seen, _n: usize) -> (u16, &'static str, String) {
    let at: u64 = s
        .query
        .get("next_token")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    (200, JSON, page(&[at + 1], "ord", at + 1))
}

#[tokio::test]
async fn fetch_parses_pages_sends_filters_and_advances_the_cursor() {
    let server = Server::start(|s, _| match s.query.get("next_token").map(String::as_str) {
        Some("") => (200, JSON, SAMPLE_PAGE.to_string()),
        Some("1779235201987654322") => (200, JSON, page(&[7], "ams", 1779235300000000000)),
        _ => (200, JSON, empty_page("")),
    })
    .await;
    let client = server.client("FlyV1 fm2_abc,fm2_def");
    let q = LogQuery::new("my-app")
        .region("ord")
        .instance("3d8d9014b32d89");
    let p1 = client.fetch(&q).await.unwrap();
    assert_eq!(p1.entries.len(), 2);
    assert_eq!(p1.entries[0].app, "my-app");
    assert_eq!(p1.entries[1].message, "Machine started in 1.02s");
    assert_eq!(p1.next_token.as_deref(), Some("1779235201987654322"));
    let p2 = client
        .fetch(&q.clone().next_token(p1.next_token.unwrap()))
        .await
        .unwrap();
    assert_eq!(p2.entries[0].message, "line 7");
    assert_eq!(p2.next_token.as_deref(), Some("1779235300000000000"));

    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[0].app, "my-app");
    assert_eq!(
        seen[0].query.get("next_token").map(String::as_str),
        Some("")
    );
    assert_eq!(seen[0].query.get("region").map(String::as_str), Some("ord"));
    assert_eq!(
        seen[0].query.get("instance").map(String::as_str),
        Some("3d8d9014b32d89")
    );
    assert_eq!(seen[0].auth, "FlyV1 fm2_abc,fm2_def");
    assert_eq!(
        seen[1].query.get("next_token").map(String::as_str),
        Some("1779235201987654322")
    );

    // A user token goes as Bearer.
    server
        .client("fo1_user")
        .fetch(&LogQuery::new("my-app"))
        .await
        .unwrap();
    assert_eq!(server.seen()[2].auth, "Bearer fo1_user");
}

#[tokio::test]
async fn malformed_entries_and_empty_pages() {
    let server = Server::start(|s, _| match s.app.as_str() {
        "mixed" => (
            200,
            JSON,
            r#"{"data":[
                {"id":"1","attributes":{"timestamp":"2026-05-20T00:00:00Z","message":"good","level":"info","region":"ord","instance":"m1"}},
                {"id":"2","attributes":{"timestamp":"not a time","message":"bad"}},
                {"id":"3"},
                "junk",
                {"id":"4","attributes":{"timestamp":"2026-05-20T00:00:01Z","message":"also good"}}
            ],"meta":{"next_token":"9"}}"#
                .to_string(),
        ),
        "legacy" => (200, "application/x-ndjson", format!("{SAMPLE_NDJSON}garbage line\n")),
        _ => (200, JSON, empty_page("")),
    })
    .await;
    let c = server.client("fo1_user");
    let p = c.fetch(&LogQuery::new("mixed")).await.unwrap();
    let msgs: Vec<&str> = p.entries.iter().map(|e| e.message.as_str()).collect();
    assert_eq!(msgs, ["good", "also good"]);
    assert_eq!(p.skipped, 3);
    assert_eq!(p.next_token.as_deref(), Some("9"));

    let p = c.fetch(&LogQuery::new("quiet")).await.unwrap();
    assert!(p.entries.is_empty());
    assert_eq!(p.next_token, None);

    let p = c.fetch(&LogQuery::new("legacy")).await.unwrap();
    assert_eq!(p.entries.len(), 4);
    assert_eq!(p.skipped, 1);
    assert!(p.next_token.is_some(), "cursor = newest + 1ns");
}

#[derive(Debug, Default)]
struct Rotating {
    refreshes: AtomicUsize,
}

#[cloud_atlas::async_trait]
impl AppTokens for Rotating {
    async fn token(&self, _app: &str) -> Result<Secret> {
        Ok(Secret::new(if self.refreshes.load(Ordering::SeqCst) == 0 {
            "fo1_old"
        } else {
            "fo1_new"
        }))
    }
    async fn refresh(&self, _app: &str) -> Result<Secret> {
        self.refreshes.fetch_add(1, Ordering::SeqCst);
        Ok(Secret::new("fo1_new"))
    }
}

#[tokio::test]
async fn a_401_refreshes_the_token_once_and_retries_once() {
    let server = Server::start(|s, _| {
        if s.auth == "Bearer fo1_new" {
            (200, JSON, SAMPLE_PAGE.to_string())
        } else {
            (401, JSON, r#"{"error":"unauthorized"}"#.to_string())
        }
    })
    .await;
    let tokens = Arc::new(Rotating::default());
    let c = LogsClientBuilder::new()
        .with_base_url(&server.url)
        .with_retry(RetryConfig::none())
        .with_tokens(Arc::clone(&tokens) as Arc<dyn AppTokens>)
        .build()
        .unwrap();
    let p = c.fetch_with_retry(&LogQuery::new("my-app")).await.unwrap();
    assert_eq!(p.entries.len(), 2);
    assert_eq!(tokens.refreshes.load(Ordering::SeqCst), 1);
    let auths: Vec<String> = server.seen().into_iter().map(|s| s.auth).collect();
    assert_eq!(auths, ["Bearer fo1_old", "Bearer fo1_new"]);

    // Plain fetch does not retry.
    let e = server
        .client("fo1_old")
        .fetch(&LogQuery::new("my-app"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);

    // Still 401 after the refresh: the error comes back after exactly two requests.
    let before = server.seen().len();
    let e = server
        .client("fo1_old")
        .fetch_with_retry(&LogQuery::new("my-app"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert_eq!(e.status(), Some(401));
    assert_eq!(server.seen().len() - before, 2);
}

#[cfg(unix)]
#[tokio::test]
async fn a_401_with_the_token_resolver_mints_a_new_token() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("fly");
    let counter = tmp.path().join("n");
    std::fs::write(
        &bin,
        format!(
            "#!/bin/sh\necho x >> '{0}'\necho \"FlyV1 fm2_minted$(wc -l < '{0}' | tr -d ' ')\"\n",
            counter.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    let resolver = cloud_atlas::fly::TokenResolver::builder()
        .with_fly_config_dir(tmp.path().join("no-fly-config"))
        .with_flyctl(cloud_atlas::fly::Flyctl::new(&bin))
        .build();
    let server = Server::start(|s, _| {
        if s.auth == "FlyV1 fm2_minted2" {
            (200, JSON, SAMPLE_PAGE.to_string())
        } else {
            (401, JSON, "{}".to_string())
        }
    })
    .await;
    let c = LogsClient::builder()
        .with_base_url(&server.url)
        .with_retry(RetryConfig::none())
        .with_tokens(Arc::new(resolver.clone()))
        .build()
        .unwrap();
    let p = c.fetch_with_retry(&LogQuery::new("my-app")).await.unwrap();
    assert_eq!(p.entries.len(), 2);
    assert_eq!(
        resolver.cached("my-app").unwrap().token.expose(),
        "FlyV1 fm2_minted2"
    );
}

#[tokio::test]
async fn error_statuses_and_base_url_from_env() {
    let server = Server::start(|s, _| match s.app.as_str() {
        "gone" => (404, JSON, r#"{"error":"app not found"}"#.to_string()),
        _ => (503, "text/plain", "down".to_string()),
    })
    .await;
    let env: BTreeMap<String, String> =
        [("ATLAS_FLY_LOGS_URL".to_string(), server.url.clone())].into();
    let config = cloud_atlas::config::Config::load_with(
        std::path::Path::new("/nonexistent"),
        None,
        &env,
        None,
    )
    .unwrap();
    let c = LogsClientBuilder::from_config(&config)
        .with_retry(RetryConfig::none())
        .with_token(Secret::new("fo1_x"))
        .build()
        .unwrap();
    assert_eq!(c.base_url(), server.url);
    let e = c.fetch(&LogQuery::new("gone")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::NotFound);
    let e = c.fetch(&LogQuery::new("down")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider);
    assert!(!e.to_string().contains("fo1_x"));
    let e = c.fetch(&LogQuery::new("Bad App")).await.unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    let e = LogsClient::builder().build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
}

fn fast_opts() -> StreamerOptions {
    StreamerOptions::default()
        .with_waits(Duration::from_millis(5), Duration::from_millis(40))
        .with_max_consecutive_errors(3)
}

async fn next_batch(sub: &mut cloud_atlas::fly::logs::Subscription) -> Vec<String> {
    match tokio::time::timeout(Duration::from_secs(10), sub.recv()).await {
        Ok(Some(LogEvent::Batch(b))) => b.into_iter().map(|e| e.message).collect(),
        other => panic!("expected a batch, got {other:?}"),
    }
}

async fn next_event(ev: &mut tokio::sync::broadcast::Receiver<PollerEvent>) -> PollerEvent {
    tokio::time::timeout(Duration::from_secs(10), ev.recv())
        .await
        .expect("a poller event")
        .unwrap()
}

#[tokio::test]
async fn two_subscribers_share_one_poller_which_stops_after_the_last() {
    let server = Server::start(endless).await;
    let streamer = LogStreamer::new(server.client("fo1_user"), fast_opts());
    let mut events = streamer.events();
    let mut a = streamer
        .subscribe("my-app", SubscribeOptions::default())
        .unwrap();
    let mut b = streamer
        .subscribe("my-app", SubscribeOptions::default())
        .unwrap();
    assert_eq!(
        next_event(&mut events).await,
        PollerEvent::Started {
            app: "my-app".into()
        }
    );
    assert_eq!(streamer.subscriber_count("my-app"), 2);
    // Both see the very first batch and the ones after it.
    assert_eq!(next_batch(&mut a).await, ["line 1"]);
    assert_eq!(next_batch(&mut b).await, ["line 1"]);
    assert_eq!(next_batch(&mut a).await, ["line 2"]);
    drop(b);
    assert_eq!(streamer.subscriber_count("my-app"), 1);
    for _ in 0..3 {
        next_batch(&mut a).await;
    }
    assert!(streamer.is_polling("my-app"));
    drop(a);
    assert_eq!(
        next_event(&mut events).await,
        PollerEvent::Stopped {
            app: "my-app".into(),
            reason: StopReason::LastSubscriberLeft
        }
    );
    assert!(!streamer.is_polling("my-app"));
    // One poller: every cursor was requested once, in order.
    let tokens: Vec<u64> = server
        .seen()
        .iter()
        .map(|s| s.query["next_token"].parse().unwrap_or(0))
        .collect();
    let unique: HashSet<u64> = tokens.iter().copied().collect();
    assert_eq!(unique.len(), tokens.len(), "duplicate polls: {tokens:?}");
    assert!(tokens.windows(2).all(|w| w[0] < w[1]));
    // And it really stopped: a new subscriber starts a new poller.
    let stopped_at = server.seen().len();
    let mut c = streamer
        .subscribe("my-app", SubscribeOptions::default())
        .unwrap();
    assert!(matches!(
        next_event(&mut events).await,
        PollerEvent::Started { .. }
    ));
    assert_eq!(next_batch(&mut c).await, ["line 1"]);
    assert!(server.seen().len() > stopped_at);
}

#[tokio::test]
async fn the_first_batch_is_never_lost() {
    let server = Server::start(|s, _| match s.query.get("next_token").map(String::as_str) {
        Some("") => (200, JSON, SAMPLE_PAGE.to_string()),
        Some(t) => (200, JSON, empty_page(t)),
        None => (400, JSON, "{}".into()),
    })
    .await;
    for _ in 0..20 {
        let streamer = LogStreamer::new(server.client("fo1_user"), fast_opts());
        let mut sub = streamer
            .subscribe("my-app", SubscribeOptions::default())
            .unwrap();
        assert_eq!(
            next_batch(&mut sub).await,
            ["Listening on 0.0.0.0:8080", "Machine started in 1.02s"]
        );
    }
}

#[tokio::test]
async fn a_slow_subscriber_is_evicted_without_slowing_the_others() {
    let server = Server::start(endless).await;
    let streamer = LogStreamer::new(server.client("fo1_user"), fast_opts());
    let mut slow = streamer
        .subscribe("my-app", SubscribeOptions::default().capacity(1))
        .unwrap();
    let mut fast = streamer
        .subscribe("my-app", SubscribeOptions::default())
        .unwrap();
    for i in 1..=10 {
        assert_eq!(next_batch(&mut fast).await, [format!("line {i}")]);
    }
    assert_eq!(
        streamer.subscriber_count("my-app"),
        1,
        "the slow one was evicted"
    );
    // The slow one reads what it had buffered, then the eviction signal, then the end.
    assert_eq!(next_batch(&mut slow).await, ["line 1"]);
    assert!(matches!(slow.recv().await, Some(LogEvent::Evicted)));
    assert!(slow.recv().await.is_none());
    // The others go on.
    assert_eq!(next_batch(&mut fast).await, ["line 11"]);
}

#[tokio::test]
async fn repeated_errors_end_the_poller_with_the_error() {
    let server = Server::start(|_, _| (500, "text/plain", "boom".to_string())).await;
    let streamer = LogStreamer::new(server.client("fo1_user"), fast_opts());
    let mut events = streamer.events();
    let mut a = streamer
        .subscribe("my-app", SubscribeOptions::default())
        .unwrap();
    let mut b = streamer
        .subscribe("my-app", SubscribeOptions::default())
        .unwrap();
    for sub in [&mut a, &mut b] {
        match tokio::time::timeout(Duration::from_secs(10), sub.recv())
            .await
            .unwrap()
        {
            Some(LogEvent::Failed(e)) => {
                assert_eq!(e.kind(), ErrorKind::Provider);
                assert_eq!(e.status(), Some(500));
            }
            other => panic!("expected the error, got {other:?}"),
        }
        assert!(sub.recv().await.is_none());
    }
    assert!(matches!(
        next_event(&mut events).await,
        PollerEvent::Started { .. }
    ));
    assert_eq!(
        next_event(&mut events).await,
        PollerEvent::Stopped {
            app: "my-app".into(),
            reason: StopReason::GaveUp
        }
    );
    assert_eq!(server.seen().len(), 3, "max_consecutive_errors = 3");

    // A rejected token ends it at once (after the one refresh-and-retry).
    let denied = Server::start(|_, _| (401, JSON, "{}".to_string())).await;
    let streamer = LogStreamer::new(denied.client("fo1_user"), fast_opts());
    let mut s = streamer
        .subscribe("my-app", SubscribeOptions::default())
        .unwrap();
    match tokio::time::timeout(Duration::from_secs(10), s.recv())
        .await
        .unwrap()
    {
        Some(LogEvent::Failed(e)) => assert_eq!(e.kind(), ErrorKind::Unauthorized),
        other => panic!("expected Unauthorized, got {other:?}"),
    }
    assert_eq!(denied.seen().len(), 2);
}

#[tokio::test]
async fn errors_between_successes_do_not_end_the_poller_and_filters_apply() {
    // Every third request fails; the rest alternate regions.
    let server = Server::start(|s, n| {
        if n % 3 == 0 {
            return (502, "text/plain", "bad gateway".to_string());
        }
        let at: u64 = s.query["next_token"].parse().unwrap_or(0);
        let region = if at % 2 == 0 { "ams" } else { "ord" };
        (200, JSON, page(&[at + 1], region, at + 1))
    })
    .await;
    let streamer = LogStreamer::new(server.client("fo1_user"), fast_opts());
    let mut ams = streamer
        .subscribe("my-app", SubscribeOptions::default().region("ams"))
        .unwrap();
    let mut all = streamer
        .subscribe("my-app", SubscribeOptions::default())
        .unwrap();
    for want in ["line 1", "line 3", "line 5"] {
        assert_eq!(next_batch(&mut ams).await, [want]);
    }
    for want in ["line 1", "line 2", "line 3", "line 4"] {
        assert_eq!(next_batch(&mut all).await, [want]);
    }
    streamer.shutdown();
    // Buffered batches first, then the stop signal.
    loop {
        match all.recv().await {
            Some(LogEvent::Batch(_)) => continue,
            Some(LogEvent::Stopped) => break,
            other => panic!("expected Stopped, got {other:?}"),
        }
    }
    assert!(all.recv().await.is_none());
}

#[tokio::test]
async fn empty_pages_keep_the_poller_alive_and_the_cursor_kept() {
    let calls = Arc::new(AtomicUsize::new(0));
    let c2 = Arc::clone(&calls);
    let server = Server::start(move |s, _| {
        c2.fetch_add(1, Ordering::SeqCst);
        match s.query["next_token"].as_str() {
            "" => (200, JSON, page(&[1], "ord", 100)),
            // Empty pages may come without a cursor: the last one is kept.
            _ => (200, JSON, r#"{"data":[],"meta":{}}"#.to_string()),
        }
    })
    .await;
    let streamer = LogStreamer::new(server.client("fo1_user"), fast_opts());
    let mut sub = streamer
        .subscribe("my-app", SubscribeOptions::default())
        .unwrap();
    assert_eq!(next_batch(&mut sub).await, ["line 1"]);
    while calls.load(Ordering::SeqCst) < 6 {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let later: Vec<String> = server.seen()[1..]
        .iter()
        .map(|s| s.query["next_token"].clone())
        .collect();
    assert!(later.iter().all(|t| t == "100"), "{later:?}");
    assert!(streamer.is_polling("my-app"));
}
