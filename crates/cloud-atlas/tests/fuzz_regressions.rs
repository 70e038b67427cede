//! Every input the fuzz targets (`fuzz/`) found to crash, kept as a regression test in
//! the normal suite. Each test names the target and the input.

mod support;

use std::time::{Duration, UNIX_EPOCH};

use cloud_atlas::auth::Secret;
use cloud_atlas::http::{parse_retry_after, ApiAuth, ApiClient, HttpClient, RetryConfig};
use cloud_atlas::ErrorKind;
use support::queue_server::{Action, QueueServer};

/// `retry_after`: `crash-530bf7d7556a2b2efd32efa1816dba41af9396d3` — delta seconds past
/// `u64::MAX` fell through to the float parse and panicked converting to a `Duration`.
#[test]
fn retry_after_beyond_u64_seconds_does_not_panic() {
    let now = UNIX_EPOCH + Duration::from_secs(1_280_000_000);
    for v in [
        "99999999999999999999",
        "18446744073709551616",
        "1e300",
        "18446744073709551615",
    ] {
        let d = parse_retry_after(v, now).expect("a number of seconds is a wait");
        assert!(d >= Duration::from_secs(u64::MAX / 2), "{v}: {d:?}");
    }
    assert_eq!(parse_retry_after("NaN", now), None);
    assert_eq!(parse_retry_after("-1", now), None);
    assert_eq!(parse_retry_after("inf", now), None);
}

/// The same header from a server: the client gives up at once (the wait is past any
/// retry budget) instead of overflowing while adding it to the time spent.
#[tokio::test]
async fn a_server_asking_to_retry_after_forever_is_a_rate_limit_error() {
    for header in ["99999999999999999999", "18446744073709551615"] {
        let s = QueueServer::start([
            Action::json_with(429, ("retry-after", header), r#"{"error":"quota"}"#),
            Action::json(200, r#"{}"#),
        ])
        .await;
        let client = ApiClient::new(
            HttpClient::shared(),
            "fuzz",
            "rest",
            &s.base_url(),
            ApiAuth::Bearer(Secret::new("k")),
        )
        .unwrap()
        .with_retry(RetryConfig {
            retry_timeout: Duration::from_secs(5),
            ..RetryConfig::default()
        });
        let e = client.get("/v1/things").send().await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::RateLimited, "{header}: {e}");
        assert_eq!(s.count(), 1, "{header}");
    }
}
