//! The shared HTTP layer against a scripted local server: retries, `Retry-After`,
//! dropped connections, slow bodies, malformed JSON, creates that must not be
//! replayed, retry budgets, and a canary API key that must never leak.
//!
//! Every test uses the canary key (as Bearer and as an `api_key` query parameter) and
//! logs at TRACE into one process-wide buffer (reqwest's `log` records included), and
//! `canary_never_leaks` checks that buffer and every error it can provoke.

mod support;

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use cloud_atlas::auth::Secret;
use cloud_atlas::http::{ApiAuth, ApiClient, HttpClient, HttpOptions, Idempotency, RetryConfig};
use cloud_atlas::{Error, ErrorKind};
use serde::Deserialize;
use serde_json::json;
use support::queue_server::{closed_port_url, Action, QueueServer};

const CANARY: &str = "canary-7f3a-SECRET";

// ---- log capture ----

#[derive(Clone, Default)]
struct Buf(Arc<Mutex<Vec<u8>>>);

impl Write for Buf {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The process-wide TRACE log buffer (installed on first use).
fn logs() -> &'static Buf {
    static LOGS: OnceLock<Buf> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Buf::default();
        let w = buf.clone();
        tracing_subscriber::fmt()
            .with_max_level(tracing::Level::TRACE)
            .with_ansi(false)
            .with_writer(move || w.clone())
            .try_init()
            .expect("install the log capture (it also captures `log` records)");
        buf
    })
}

fn captured() -> String {
    String::from_utf8_lossy(&logs().0.lock().unwrap()).into_owned()
}

// ---- clients ----

fn fast() -> RetryConfig {
    RetryConfig {
        init_backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(40),
        base: 2.0,
        max_retries: 4,
        retry_timeout: Duration::from_secs(20),
    }
}

fn client_at(base: &str, retry: RetryConfig) -> ApiClient {
    logs();
    let http = HttpClient::new(HttpOptions {
        connect_timeout: Duration::from_secs(2),
        request_timeout: Duration::from_secs(5),
        ..HttpOptions::default()
    })
    .unwrap();
    ApiClient::new(
        http,
        "faults",
        "rest",
        base,
        ApiAuth::Bearer(Secret::new(CANARY)),
    )
    .unwrap()
    .with_retry(retry)
}

fn client(server: &QueueServer) -> ApiClient {
    client_at(&server.base_url(), fast())
}

#[derive(Debug, Deserialize, PartialEq)]
struct Thing {
    id: String,
    count: u32,
}

const THING: &str = r#"{"id":"t-1","count":3}"#;

fn assert_no_canary(e: &Error) {
    let dbg = format!("{e:?}");
    assert!(!dbg.contains(CANARY), "Debug leaks the key: {dbg}");
    let shown = e.to_string();
    assert!(!shown.contains(CANARY), "Display leaks the key: {shown}");
    if let Some(raw) = e.raw() {
        assert!(!raw.contains(CANARY), "raw leaks the key: {raw}");
    }
    let mut src = std::error::Error::source(e);
    while let Some(s) = src {
        assert!(
            !s.to_string().contains(CANARY),
            "a source leaks the key: {s}"
        );
        src = s.source();
    }
}

// ---- retries ----

#[tokio::test]
async fn get_is_retried_after_5xx_until_it_succeeds() {
    let s = QueueServer::start([
        Action::json(503, r#"{"error":"busy"}"#),
        Action::json(502, "bad gateway"),
        Action::json(200, THING),
    ])
    .await;
    let t: Thing = client(&s)
        .get("/v1/things/t-1")
        .query("api_key", CANARY)
        .operation("get")
        .json()
        .await
        .unwrap();
    assert_eq!(t.id, "t-1");
    assert_eq!(s.count(), 3, "two 5xx then success is three attempts");
    for r in s.received() {
        assert_eq!(r.method, "GET");
        assert_eq!(
            r.header("authorization"),
            Some(format!("Bearer {CANARY}").as_str())
        );
    }
}

#[tokio::test]
async fn retry_after_seconds_is_honoured() {
    let s = QueueServer::start([
        Action::json_with(429, ("retry-after", "1"), r#"{"error":"slow down"}"#),
        Action::json(200, THING),
    ])
    .await;
    let t: Thing = client(&s).get("/v1/things").json().await.unwrap();
    assert_eq!(t.count, 3);
    assert_eq!(s.count(), 2);
    // Behaviour, not performance: the retry waited for the server's Retry-After
    // (the backoff alone would retry after ~10 ms).
    let gap = s.gaps()[0];
    assert!(gap >= Duration::from_millis(950), "retried after {gap:?}");
}

#[tokio::test]
async fn retry_after_http_date_is_honoured() {
    let at = httpdate::fmt_http_date(SystemTime::now() + Duration::from_secs(3));
    let s = QueueServer::start([
        Action::json_with(503, ("retry-after", &at), r#"{"error":"maintenance"}"#),
        Action::json(200, THING),
    ])
    .await;
    let t: Thing = client(&s).get("/v1/things").json().await.unwrap();
    assert_eq!(t.id, "t-1");
    assert_eq!(s.count(), 2);
    // The date has one-second resolution: the wait is between 2 and 3 s.
    let gap = s.gaps()[0];
    assert!(gap >= Duration::from_millis(1900), "retried after {gap:?}");
}

#[tokio::test]
async fn a_dropped_connection_is_retried_for_a_get() {
    let s = QueueServer::start([Action::Drop, Action::json(200, THING)]).await;
    let t: Thing = client(&s).get("/v1/things").json().await.unwrap();
    assert_eq!(t.id, "t-1");
    assert_eq!(s.count(), 2);
}

#[tokio::test]
async fn a_body_slower_than_the_timeout_is_a_timeout() {
    let s = QueueServer::start([Action::StallBody {
        status: 200,
        body: THING.repeat(4),
        sent: 10,
        hold: Duration::from_secs(10),
    }])
    .await;
    let e = client_at(&s.base_url(), RetryConfig::none())
        .get("/v1/things")
        .timeout(Duration::from_millis(400))
        .json::<Thing>()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert_eq!(e.status(), Some(200), "{e:?}");
    assert_eq!(s.count(), 1);
    assert_no_canary(&e);
}

#[tokio::test]
async fn a_get_whose_body_stalls_is_retried() {
    let s = QueueServer::start([
        Action::StallBody {
            status: 200,
            body: THING.into(),
            sent: 5,
            hold: Duration::from_secs(10),
        },
        Action::json(200, THING),
    ])
    .await;
    let t: Thing = client(&s)
        .get("/v1/things")
        .timeout(Duration::from_millis(1500))
        .json()
        .await
        .unwrap();
    assert_eq!(t.id, "t-1");
    assert_eq!(s.count(), 2);
}

#[tokio::test]
async fn a_stream_whose_head_never_comes_times_out_and_is_retried() {
    let s = QueueServer::start([
        Action::Stall(Duration::from_secs(10)),
        Action::Respond {
            status: 200,
            headers: vec![("content-type".into(), "text/event-stream".into())],
            body: "data: {\"n\":1}\n\n".into(),
        },
    ])
    .await;
    let resp = client(&s)
        .get("/v1/stream")
        .timeout(Duration::from_millis(1500))
        .send_streaming()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    assert_eq!(resp.text().await.unwrap(), "data: {\"n\":1}\n\n");
    assert_eq!(s.count(), 2);
}

#[tokio::test]
async fn an_unsafe_stream_whose_head_never_comes_is_ambiguous() {
    let s = QueueServer::start([Action::Stall(Duration::from_secs(10))]).await;
    let e = client(&s)
        .post("/v1/jobs")
        .body(json!({"input": 1}))
        .timeout(Duration::from_millis(400))
        .send_streaming()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_ambiguous());
    assert_eq!(s.count(), 1);
}

#[tokio::test]
async fn malformed_json_is_a_provider_error_naming_the_path() {
    let body = r#"{"items":[{"id":"a","count":1},{"id":"b","count":"many"}]}"#;
    let s = QueueServer::start([Action::json(200, body)]).await;
    #[derive(Debug, Deserialize)]
    struct List {
        #[allow(dead_code)]
        items: Vec<Thing>,
    }
    let e = client(&s)
        .get("/v1/things")
        .operation("list")
        .json::<List>()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider, "{e}");
    assert!(e.message().contains("items[1].count"), "{e}");
    assert_eq!(e.raw(), Some(body), "the raw body is kept");
    assert_eq!(e.provider(), Some("faults"));
    assert_eq!(e.operation(), Some("list"));
    assert_eq!(s.count(), 1, "a decode error is not retried");
}

// ---- creates are never blindly replayed ----

#[tokio::test]
async fn an_unsafe_post_that_reached_the_server_and_stalled_is_not_replayed() {
    let s = QueueServer::start([
        Action::Stall(Duration::from_secs(10)),
        Action::json(201, THING),
    ])
    .await;
    let e = client(&s)
        .post("/v1/pods")
        .body(json!({"name": "atlas-1234"}))
        .idempotency(Idempotency::Unsafe)
        .operation("spawn")
        .timeout(Duration::from_millis(400))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.is_ambiguous(), "{e:?}");
    assert_eq!(s.count(), 1, "the create was replayed");
    let got = &s.received()[0];
    assert_eq!(got.method, "POST");
    assert_eq!(
        serde_json::from_slice::<serde_json::Value>(&got.body).unwrap(),
        json!({"name": "atlas-1234"})
    );
    assert_no_canary(&e);
}

#[tokio::test]
async fn an_unsafe_post_answered_500_is_not_replayed() {
    let s = QueueServer::start([
        Action::json(500, r#"{"error":"internal"}"#),
        Action::json(201, THING),
    ])
    .await;
    let e = client(&s)
        .post("/v1/pods")
        .body(json!({"name": "atlas-1"}))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert_eq!(e.kind(), ErrorKind::Provider, "{e}");
    assert!(e.is_ambiguous(), "{e:?}");
    assert_eq!(s.count(), 1);
}

#[tokio::test]
async fn an_unsafe_post_answered_2xx_with_an_undecodable_body_is_ambiguous() {
    let s = QueueServer::start([
        Action::json(201, r#"{"id": "t-1", "count": "#),
        Action::json(201, THING),
    ])
    .await;
    let e = client(&s)
        .post("/v1/pods")
        .body(json!({"name": "atlas-1"}))
        .operation("spawn")
        .json::<Thing>()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider, "{e}");
    assert!(e.is_ambiguous(), "a 2xx may have created the pod: {e:?}");
    assert!(e.message().contains("may have taken effect"), "{e}");
    assert_eq!(s.count(), 1, "the create was not replayed");
    // The same body on a read is a plain decode error.
    let s = QueueServer::start([Action::json(200, r#"{"id": "t-1", "count": "#)]).await;
    let e = client(&s)
        .get("/v1/pods/t-1")
        .json::<Thing>()
        .await
        .unwrap_err();
    assert!(!e.is_ambiguous(), "{e:?}");
}

#[tokio::test]
async fn an_unsafe_post_declined_with_429_is_sent_again_after_retry_after() {
    let s = QueueServer::start([
        Action::json_with(429, ("retry-after", "1"), r#"{"error":"slow down"}"#),
        Action::json(201, THING),
    ])
    .await;
    let t: Thing = client(&s)
        .post("/v1/pods")
        .body(json!({"name": "atlas-1"}))
        .json()
        .await
        .unwrap();
    assert_eq!(t.id, "t-1");
    let got = s.received();
    assert_eq!(
        got.len(),
        2,
        "a 429 created nothing, so the create is sent again"
    );
    assert!(got[1].at - got[0].at >= Duration::from_millis(900));
}

#[tokio::test]
async fn an_unsafe_post_whose_connection_drops_is_not_replayed() {
    let s = QueueServer::start([Action::Drop, Action::json(201, THING)]).await;
    let e = client(&s)
        .post("/v1/pods")
        .body(json!({"name": "atlas-1"}))
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    assert!(e.is_ambiguous(), "{e:?}");
    assert_eq!(s.count(), 1);
}

#[tokio::test]
async fn an_unsafe_post_to_a_closed_port_is_retried_and_fails_as_transport() {
    let base = closed_port_url().await;
    let retry = RetryConfig {
        max_retries: 2,
        ..fast()
    };
    let e = client_at(&base, retry)
        .post("/v1/pods")
        .query("api_key", CANARY)
        .body(json!({"name": "atlas-1"}))
        .idempotency(Idempotency::Unsafe)
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Transport, "{e}");
    assert!(!e.is_ambiguous(), "nothing reached the server: {e:?}");
    assert!(e.message().contains("after 2 retries"), "{e}");
    assert_no_canary(&e);
}

// ---- retry budget ----

#[tokio::test]
async fn max_retries_bounds_the_attempts() {
    let s = QueueServer::start([]).await; // every answer is a 500
    let retry = RetryConfig {
        max_retries: 2,
        ..fast()
    };
    let e = client_at(&s.base_url(), retry)
        .get("/v1/things")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.status(), Some(500));
    assert!(e.message().contains("after 2 retries"), "{e}");
    assert_eq!(s.count(), 3, "one attempt plus two retries");
}

#[tokio::test]
async fn retry_timeout_bounds_the_attempts() {
    let s = QueueServer::start([]).await;
    let retry = RetryConfig {
        init_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(200),
        base: 1.0,
        max_retries: 1000,
        retry_timeout: Duration::from_millis(500),
    };
    let e = client_at(&s.base_url(), retry)
        .get("/v1/things")
        .send()
        .await
        .unwrap_err();
    assert!(e.message().contains("retry budget"), "{e}");
    // Jittered 200-400 ms waits inside a 500 ms budget: at most three attempts.
    let n = s.count();
    assert!((1..=3).contains(&n), "{n} attempts");
}

#[tokio::test]
async fn a_retry_after_beyond_the_budget_fails_at_once() {
    let s = QueueServer::start([
        Action::json_with(429, ("retry-after", "30"), r#"{"error":"quota"}"#),
        Action::json(200, THING),
    ])
    .await;
    let retry = RetryConfig {
        retry_timeout: Duration::from_secs(5),
        ..fast()
    };
    let e = client_at(&s.base_url(), retry)
        .get("/v1/things")
        .send()
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::RateLimited, "{e}");
    assert_eq!(e.retry_after(), Some(Duration::from_secs(30)));
    assert_eq!(s.count(), 1);
}

// ---- secrets ----

#[tokio::test]
async fn canary_never_leaks() {
    let echo = r#"{"error":"invalid credentials: {authorization}","seen":"{authorization}","request":"{target}","detail":"key canary-7f3a-SECRET is revoked"}"#;
    let s = QueueServer::start([
        // retried 5xx echoing the key (exercises the retry logging)
        Action::json(503, echo),
        // final 401 echoing the key
        Action::json(401, echo),
        // a 200 whose body does not decode and contains the key
        Action::json(200, r#"{"id":"{authorization}","count":"{target}"}"#),
        // a dropped connection (transport error with a source)
        Action::Drop,
        Action::Drop,
    ])
    .await;
    let api = client_at(
        &s.base_url(),
        RetryConfig {
            max_retries: 1,
            ..fast()
        },
    );
    let mut errors = Vec::new();
    errors.push(
        api.get("/v1/me")
            .query("api_key", CANARY)
            .operation("whoami")
            .send()
            .await
            .unwrap_err(),
    );
    errors.push(
        api.get("/v1/things")
            .query("api_key", CANARY)
            .json::<Thing>()
            .await
            .unwrap_err(),
    );
    errors.push(
        api.get("/v1/things")
            .query("api_key", CANARY)
            .send()
            .await
            .unwrap_err(),
    );
    // The server really echoed the key: the test would catch a leak.
    let got = s.received();
    assert_eq!(got.len(), 5);
    assert!(got[0].target.contains(CANARY));
    assert_eq!(errors[0].kind(), ErrorKind::Unauthorized, "{}", errors[0]);
    assert!(
        errors[0].raw().unwrap().contains("REDACTED"),
        "{:?}",
        errors[0]
    );
    assert_eq!(errors[1].kind(), ErrorKind::Provider);
    assert_eq!(errors[2].kind(), ErrorKind::Transport);
    for e in &errors {
        assert_no_canary(e);
    }
    // The ApiClient's own Debug shows no key either.
    assert!(!format!("{api:?}").contains(CANARY));

    // Logs at TRACE (spans, retries, reqwest/hyper records) never show the key.
    let logs = captured();
    assert!(logs.contains("atlas.http"), "the span was logged: {logs}");
    assert!(
        logs.contains("api_key=REDACTED"),
        "the URL was logged redacted: {logs}"
    );
    assert!(logs.contains("retrying"), "the retry was logged: {logs}");
    assert!(
        logs.contains("hyper_util") && logs.contains("reqwest"),
        "the HTTP stack's own records were captured too: {logs}"
    );
    assert!(!logs.contains(CANARY), "the key leaked into logs:\n{logs}");
}

// ---- one time budget per call ----

#[tokio::test]
async fn a_budget_bounds_a_read_that_keeps_failing() {
    let s = QueueServer::start(
        std::iter::repeat_n(Action::json(503, r#"{"error":"busy"}"#), 200).collect::<Vec<_>>(),
    )
    .await;
    // Per request alone this would retry for up to 180 s.
    let slow = RetryConfig {
        init_backoff: Duration::from_millis(200),
        max_backoff: Duration::from_millis(400),
        max_retries: 100,
        ..RetryConfig::default()
    };
    let t0 = std::time::Instant::now();
    let e = cloud_atlas::http::budget::within(Duration::from_millis(1500), async {
        client_at(&s.base_url(), slow)
            .get("/v1/things")
            .operation("list")
            .json::<Thing>()
            .await
    })
    .await
    .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_millis(2500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
    assert!(e.message().contains("time budget ran out"), "{e}");
    assert!(
        e.message().contains("busy"),
        "the last failure is named: {e}"
    );
    assert!(s.count() >= 2, "it did retry within the budget");
}

#[tokio::test]
async fn a_budget_cuts_a_hanging_request() {
    let s = QueueServer::start([Action::Stall(Duration::from_secs(20))]).await;
    let t0 = std::time::Instant::now();
    let e = cloud_atlas::http::budget::within(Duration::from_millis(600), async {
        client(&s).get("/v1/things").json::<Thing>().await
    })
    .await
    .unwrap_err();
    assert!(
        t0.elapsed() < Duration::from_millis(1500),
        "{:?}",
        t0.elapsed()
    );
    assert_eq!(e.kind(), ErrorKind::Timeout, "{e}");
}

#[tokio::test]
async fn each_retry_emits_one_notice_line() {
    let s = QueueServer::start([
        Action::json(503, r#"{"error":"busy"}"#),
        Action::json(503, r#"{"error":"busy"}"#),
        Action::json(200, THING),
    ])
    .await;
    client(&s)
        .get("/v1/things")
        .operation("noticed")
        .json::<Thing>()
        .await
        .unwrap();
    let notices: Vec<String> = captured()
        .lines()
        .filter(|l| l.contains(cloud_atlas::http::RETRY_TARGET) && l.contains("faults noticed: "))
        .map(str::to_string)
        .collect();
    assert_eq!(notices.len(), 2, "{notices:#?}");
    assert!(notices[0].contains("busy; retrying in "), "{}", notices[0]);
    assert!(notices[0].ends_with("(retry 1)"), "{}", notices[0]);
    assert!(notices[1].ends_with("(retry 2)"), "{}", notices[1]);
}
