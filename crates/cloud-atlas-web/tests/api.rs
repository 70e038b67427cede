//! The REST API through a real server on 127.0.0.1 with a real HTTP client.

mod support;

use std::time::Duration;

use cloud_atlas::orchestrator::OrchestratorConfig;
use reqwest::header;
use serde_json::{json, Value};
use support::{assert_error, Server, TOKEN};

/// Every (method, path) of the OpenAPI document, with `{id}` filled in.
fn documented_routes(id: &str) -> Vec<(String, String)> {
    let doc = serde_json::to_value(cloud_atlas_web::openapi()).unwrap();
    let mut out = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for m in ["get", "post", "put", "patch", "delete"] {
            if item.get(m).is_some() {
                out.push((m.to_uppercase(), format!("/v1{}", path.replace("{id}", id))));
            }
        }
    }
    out
}

#[tokio::test]
async fn every_route_needs_the_admin_token() {
    let s = Server::start().await;
    let spawned = s.spawn("alice", json!({})).await;
    let id = spawned["session"]["id"].as_str().unwrap().to_string();
    let mut routes = documented_routes(&id);
    assert!(routes.len() >= 9, "{routes:?}");
    routes.push(("GET".into(), "/v1/openapi.json".into()));
    routes.push(("GET".into(), "/metrics".into()));
    routes.push(("GET".into(), "/v1/no-such-route".into()));
    for (m, path) in &routes {
        let method: reqwest::Method = m.parse().unwrap();
        // No credentials.
        let r = s
            .http
            .request(method.clone(), s.url(path))
            .send()
            .await
            .unwrap();
        assert_error(r, 401, "unauthorized", None).await;
        // A wrong token (from a client without connect info limits: each is delayed, not refused yet).
        let r = s
            .http
            .request(method.clone(), s.url(path))
            .header(header::AUTHORIZATION, "Basic YWRtaW46YWRtaW4=")
            .send()
            .await
            .unwrap();
        assert_error(r, 401, "unauthorized", None).await;
    }
    // With the token, the session still exists: nothing above acted.
    assert_eq!(s.get(&format!("/v1/sessions/{id}")).await.status(), 200);
    // Open routes.
    for path in [
        "/healthz",
        "/readyz",
        "/",
        "/assets/app.js",
        "/assets/app.css",
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
    }
    s.stop().await;
}

#[tokio::test]
async fn repeated_bad_tokens_are_slowed_then_refused() {
    let s = Server::start().await;
    let started = std::time::Instant::now();
    for _ in 0..cloud_atlas_web::access::MAX_FAILURES {
        let r = s
            .http
            .get(s.url("/v1/sessions"))
            .bearer_auth("wrong-token-guess-000")
            .send()
            .await
            .unwrap();
        assert_error(r, 401, "unauthorized", None).await;
    }
    assert!(
        started.elapsed()
            >= cloud_atlas_web::access::FAILURE_DELAY * cloud_atlas_web::access::MAX_FAILURES,
        "every bad token is held back"
    );
    // Now even the right token from this client is refused until the window passes.
    let r = s.get("/v1/sessions").await;
    assert!(r.headers().get(header::RETRY_AFTER).is_some());
    assert_error(r, 429, "rate_limited", None).await;
    s.stop().await;
}

#[tokio::test]
async fn bad_bodies_are_400_naming_the_field() {
    let s = Server::start().await;
    let cases: &[(Value, &str)] = &[
        (json!({"image": "x"}), "user"),
        (
            json!({"user": "u", "image": "x", "colour": "red"}),
            "colour",
        ),
        (
            json!({"user": "u", "image": "x", "gpu_count": "two"}),
            "gpu_count",
        ),
        (
            json!({"user": "u", "image": "x", "idle_ttl": "soon"}),
            "idle_ttl",
        ),
        (
            json!({"user": "u", "image": "x", "max_runtime": "300000000000y"}),
            "max_runtime",
        ),
        (json!({"user": "u", "image": "x", "gpu": "h9000"}), "gpu"),
        (
            json!({"user": "u", "image": "x", "ports": ["80/ftp"]}),
            "ports",
        ),
        (json!({"user": "u", "image": "x", "auth": "magic"}), "auth"),
        (
            json!({"user": "u", "image": "x", "max_cost": -1}),
            "max_cost",
        ),
        (json!({"user": "", "image": "x"}), "user"),
        (
            json!({"user": "u", "image": "x", "provider": "nowhere"}),
            "provider",
        ),
        (json!({"user": "u", "image": "x", "env": {"A": 1}}), "env"),
    ];
    for (body, field) in cases {
        let r = s.post("/v1/sessions", body).await;
        assert_error(r, 400, "validation", Some(field)).await;
    }
    // Not JSON at all.
    let r = s
        .http
        .post(s.url("/v1/sessions"))
        .bearer_auth(TOKEN)
        .header(header::CONTENT_TYPE, "application/json")
        .body("{\"user\": ")
        .send()
        .await
        .unwrap();
    assert_error(r, 400, "validation", None).await;
    let r = s
        .http
        .post(s.url("/v1/sessions"))
        .bearer_auth(TOKEN)
        .body("user=u")
        .send()
        .await
        .unwrap();
    assert_error(r, 415, "unsupported_media_type", None).await;
    let big = "x".repeat(cloud_atlas_web::MAX_BODY_BYTES + 1);
    let r = s
        .post("/v1/sessions", &json!({"user": "u", "image": big}))
        .await;
    assert_error(r, 413, "payload_too_large", None).await;
    // Bad filters.
    let r = s.get("/v1/sessions?status=sleeping").await;
    assert_error(r, 400, "validation", Some("status")).await;
    let r = s.get("/v1/sessions?colour=red").await;
    assert_error(r, 400, "validation", Some("colour")).await;
    let r = s.get("/v1/gpus?gpu=h9000").await;
    assert_error(r, 400, "validation", Some("gpu")).await;
    // Nothing was spawned by any of it.
    assert_eq!(s.cloud.live_count().unwrap(), 0);
    s.stop().await;
}

#[tokio::test]
async fn unknown_sessions_are_404() {
    let s = Server::start().await;
    for id in ["nope", "0123456789abcdef0123456789abcdef"] {
        assert_error(
            s.get(&format!("/v1/sessions/{id}")).await,
            404,
            "not_found",
            None,
        )
        .await;
        assert_error(
            s.post_empty(&format!("/v1/sessions/{id}/touch")).await,
            404,
            "not_found",
            None,
        )
        .await;
        assert_error(
            s.post_empty(&format!("/v1/sessions/{id}/stop")).await,
            404,
            "not_found",
            None,
        )
        .await;
    }
    s.stop().await;
}

#[tokio::test]
async fn spawn_list_touch_stop() {
    let s = Server::start().await;
    let created = s
        .spawn(
            "alice",
            json!({"auth": "bearer", "idle_ttl": "10m", "max_cost": 5.0}),
        )
        .await;
    let raw = created["compute"]["auth"]["token"]
        .as_str()
        .expect("raw token once")
        .to_string();
    let id = created["session"]["id"].as_str().unwrap().to_string();
    assert_eq!(created["session"]["user_id"], "alice");
    assert_eq!(created["session"]["idle_ttl"], 600_000);
    assert_eq!(created["session"]["state"], "active");
    s.spawn("bob", json!({})).await;

    let all: Value = s.get("/v1/sessions").await.json().await.unwrap();
    assert_eq!(all["sessions"].as_array().unwrap().len(), 2);
    assert!(all["event_id"].as_str().unwrap().contains(':'));
    let mine: Value = s
        .get("/v1/sessions?user=alice&provider=mock&status=active")
        .await
        .json()
        .await
        .unwrap();
    let mine = mine["sessions"].as_array().unwrap();
    assert_eq!(mine.len(), 1);
    assert_eq!(mine[0]["id"], id.as_str());
    let none: Value = s
        .get("/v1/sessions?status=pending")
        .await
        .json()
        .await
        .unwrap();
    assert!(none["sessions"].as_array().unwrap().is_empty());

    let before: Value = s
        .get(&format!("/v1/sessions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(30)).await;
    let r = s.post_empty(&format!("/v1/sessions/{id}/touch")).await;
    assert_eq!(r.status(), 204);
    let after: Value = s
        .get(&format!("/v1/sessions/{id}"))
        .await
        .json()
        .await
        .unwrap();
    assert!(after["last_touch"].as_str().unwrap() > before["last_touch"].as_str().unwrap());
    assert!(
        after["idle_expires_at"].as_str().unwrap() > before["idle_expires_at"].as_str().unwrap()
    );

    // The raw pod token is never served again.
    for path in [
        format!("/v1/sessions/{id}"),
        "/v1/sessions".into(),
        "/v1/spend".into(),
    ] {
        let body = s.get(&path).await.text().await.unwrap();
        assert!(!body.contains(&raw), "{path} serves the raw token");
    }
    let spend: Value = s.get("/v1/spend").await.json().await.unwrap();
    assert_eq!(spend["users"]["alice"]["sessions"], 1);
    let only: Value = s.get("/v1/spend?user=bob").await.json().await.unwrap();
    assert!(only["users"].get("alice").is_none());

    let r = s.post_empty(&format!("/v1/sessions/{id}/stop")).await;
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b, json!({"id": id, "action": "terminated"}));
    assert_error(
        s.get(&format!("/v1/sessions/{id}")).await,
        404,
        "not_found",
        None,
    )
    .await;
    assert_eq!(s.cloud.live_count().unwrap(), 1, "bob's machine only");
    s.stop().await;
}

#[tokio::test]
async fn idle_expiry_is_enforced_by_the_server_after_the_client_is_gone() {
    let s = Server::start().await;
    {
        // A client that spawns and disappears.
        let c = reqwest::Client::new();
        let r = c
            .post(s.url("/v1/sessions"))
            .bearer_auth(TOKEN)
            .json(&json!({"user": "gone", "image": "x", "idle_ttl": "1s"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    }
    assert_eq!(s.cloud.live_count().unwrap(), 1);
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while s.cloud.live_count().unwrap() > 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "idle session still billing"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let list: Value = s.get("/v1/sessions").await.json().await.unwrap();
    assert!(list["sessions"].as_array().unwrap().is_empty());
    s.stop().await;
}

#[tokio::test]
async fn providers_catalog_and_health() {
    let s = Server::start().await;
    let p: Value = s.get("/v1/providers").await.json().await.unwrap();
    assert_eq!(p[0]["name"], "mock");
    assert_eq!(p[0]["default"], true);
    assert!(p[0]["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "stop"));
    let c: Value = s.get("/v1/gpus").await.json().await.unwrap();
    let prices: Vec<f64> = c["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|g| g["lowest_price"].as_f64())
        .collect();
    assert!(prices.len() > 3);
    assert!(
        prices.windows(2).all(|w| w[0] <= w[1]),
        "cheapest first: {prices:?}"
    );
    let h100: Value = s.get("/v1/gpus?gpu=h100").await.json().await.unwrap();
    assert!(h100["gpus"]
        .as_array()
        .unwrap()
        .iter()
        .all(|g| g["gpu"] == "h100"));
    let r: Value = s
        .http
        .get(s.url("/readyz"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(r["ready"], true);
    assert_eq!(r["checks"]["store"], "ok");
    s.stop().await;
}

/// Sign in like the dashboard: returns (cookie header value, csrf token).
async fn sign_in(s: &Server) -> (String, String) {
    let r = s
        .http
        .post(s.url("/auth/session"))
        .json(&json!({"token": TOKEN}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let set = r.headers()[header::SET_COOKIE]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        set.contains("HttpOnly") && set.contains("SameSite=Strict"),
        "{set}"
    );
    let cookie = set.split(';').next().unwrap().to_string();
    let b: Value = r.json().await.unwrap();
    (cookie, b["csrf"].as_str().unwrap().to_string())
}

#[tokio::test]
async fn dashboard_sessions_use_a_strict_cookie_and_csrf_on_every_mutation() {
    let s = Server::start_with(|b| b, OrchestratorConfig::default()).await;
    let r = s
        .http
        .post(s.url("/auth/session"))
        .json(&json!({"token": "not-the-token"}))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "unauthorized", None).await;
    let (cookie, csrf) = sign_in(&s).await;
    let id = s.spawn("carol", json!({})).await["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let with_cookie = |rb: reqwest::RequestBuilder| rb.header(header::COOKIE, cookie.clone());
    // Reads work with the cookie alone.
    let r = with_cookie(s.http.get(s.url("/v1/sessions")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    // A mutation without the CSRF token, with a wrong one, or from another origin: 403.
    let touch = s.url(&format!("/v1/sessions/{id}/touch"));
    let r = with_cookie(s.http.post(&touch)).send().await.unwrap();
    assert_error(r, 403, "csrf", None).await;
    let r = with_cookie(s.http.post(&touch))
        .header("x-csrf-token", "guess")
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "csrf", None).await;
    let r = with_cookie(s.http.post(&touch))
        .header("x-csrf-token", &csrf)
        .header(header::ORIGIN, "http://evil.example")
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "csrf", None).await;
    let r = with_cookie(s.http.post(&touch))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    // Destructive actions are off unless enabled: the dashboard cannot stop…
    let r = with_cookie(s.http.post(s.url(&format!("/v1/sessions/{id}/stop"))))
        .header("x-csrf-token", &csrf)
        .send()
        .await
        .unwrap();
    assert_error(r, 403, "forbidden", None).await;
    assert_eq!(s.cloud.live_count().unwrap(), 1);
    // …while the API with the admin token can.
    assert_eq!(
        s.post_empty(&format!("/v1/sessions/{id}/stop"))
            .await
            .status(),
        200
    );
    // The CSRF token can be read back by the page (same origin), and sign-out ends the session.
    let r = with_cookie(s.http.get(s.url("/auth/session")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.json::<Value>().await.unwrap()["csrf"], csrf.as_str());
    let r = with_cookie(s.http.delete(s.url("/auth/session")))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let r = with_cookie(s.http.get(s.url("/v1/sessions")))
        .send()
        .await
        .unwrap();
    assert_error(r, 401, "unauthorized", None).await;
    s.stop().await;
}

#[tokio::test]
async fn no_cors_unless_configured() {
    let s = Server::start().await;
    let r = s
        .http
        .get(s.url("/v1/sessions"))
        .bearer_auth(TOKEN)
        .header(header::ORIGIN, "https://app.example.com")
        .send()
        .await
        .unwrap();
    assert!(r
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
    s.stop().await;
    let s = Server::start_with(
        |b| b.cors_origins(vec!["https://app.example.com".into()]),
        OrchestratorConfig::default(),
    )
    .await;
    let r = s
        .http
        .request(reqwest::Method::OPTIONS, s.url("/v1/sessions"))
        .header(header::ORIGIN, "https://app.example.com")
        .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
        .header(
            header::ACCESS_CONTROL_REQUEST_HEADERS,
            "authorization,content-type",
        )
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.headers()[header::ACCESS_CONTROL_ALLOW_ORIGIN],
        "https://app.example.com"
    );
    assert!(r
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_CREDENTIALS)
        .is_none());
    let r = s
        .http
        .get(s.url("/v1/sessions"))
        .bearer_auth(TOKEN)
        .header(header::ORIGIN, "https://evil.example")
        .send()
        .await
        .unwrap();
    assert!(r
        .headers()
        .get(header::ACCESS_CONTROL_ALLOW_ORIGIN)
        .is_none());
    s.stop().await;
}

#[tokio::test]
async fn the_dashboard_is_embedded_small_and_locked_down() {
    let s = Server::start().await;
    let mut total = 0;
    for (path, ct) in [
        ("/", "text/html"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/app.css", "text/css"),
    ] {
        let r = s.http.get(s.url(path)).send().await.unwrap();
        assert!(r.headers()[header::CONTENT_TYPE]
            .to_str()
            .unwrap()
            .starts_with(ct));
        let csp = r.headers()[header::CONTENT_SECURITY_POLICY]
            .to_str()
            .unwrap()
            .to_string();
        assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
        let body = r.text().await.unwrap();
        assert!(
            !body.contains("http://") && !body.contains("https://"),
            "{path}: no third-party URL"
        );
        total += body.len();
    }
    assert!(total <= 150 * 1024, "first load is {total} bytes");
    s.stop().await;
}
