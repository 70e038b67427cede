//! The pod-side auth layers through a real axum server on 127.0.0.1 and a real HTTP client.

use std::time::{Duration, SystemTime};

use axum::routing::{get, post};
use axum::{Json, Router};
use cloud_atlas::auth::layer::{PresharedKeyLayer, PresharedOrSignedLayer, SignedUrlLayer};
use cloud_atlas::auth::{signed_url, token, Secret};
use reqwest::StatusCode;
use serde_json::{json, Value};

struct Pod {
    base: String,
    key: String,
    secret: Secret,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Pod {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn infer(Json(body): Json<Value>) -> Json<Value> {
    Json(json!({ "output": body["prompt"], "ok": true }))
}

/// A pod like the example: POST /infer needs the bearer key, GET /media/{name} a
/// signed URL, GET /either/{name} either one, GET /health nothing.
async fn start_pod() -> Pod {
    let minted = token::mint();
    let secret = Secret::new("pod-signing-secret-0123456789abcdef");
    let app = Router::new()
        .route("/infer", post(infer))
        .layer(PresharedKeyLayer::from_hash(&minted.hash).unwrap())
        .merge(
            Router::new()
                .route("/media/{name}", get(|| async { "media-bytes" }))
                .layer(SignedUrlLayer::new(secret.clone()).unwrap()),
        )
        .merge(
            Router::new()
                .route("/either/{name}", get(|| async { "either-bytes" }))
                .layer(PresharedOrSignedLayer::new(minted.token.clone(), secret.clone()).unwrap()),
        )
        .route("/health", get(|| async { "ok" }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let task = tokio::spawn(async move {
        axum::serve(listener, app).await.unwrap();
    });
    Pod {
        base,
        key: minted.token.expose().to_string(),
        secret,
        task,
    }
}

fn client() -> reqwest::Client {
    reqwest::Client::builder().no_proxy().build().unwrap()
}

#[tokio::test]
async fn bearer_guards_the_inference_route() {
    let pod = start_pod().await;
    let c = client();
    let url = format!("{}/infer", pod.base);
    let body = json!({ "prompt": "hi" });

    let r = c.post(&url).json(&body).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");
    assert_eq!(r.text().await.unwrap(), "missing bearer token");

    let r = c
        .post(&url)
        .bearer_auth("wrong-token")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    let challenge = r.headers()["www-authenticate"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(challenge.starts_with("Bearer"), "{challenge}");
    assert_eq!(r.text().await.unwrap(), "invalid bearer token");

    // A prefix of the right key is still wrong.
    let r = c
        .post(&url)
        .bearer_auth(&pod.key[..20])
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let r = c
        .post(&url)
        .bearer_auth(&pod.key)
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.json::<Value>().await.unwrap()["output"], "hi");

    // Unguarded routes stay open.
    let r = c.get(format!("{}/health", pod.base)).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}

#[tokio::test]
async fn signed_url_guards_the_media_route() {
    let pod = start_pod().await;
    let c = client();
    let good = signed_url::sign(
        &format!("{}/media/clip.mp4?w=640&title=a+b", pod.base),
        &pod.secret,
        Duration::from_secs(300),
    )
    .unwrap();
    let r = c.get(&good).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "media-bytes");

    // No signature at all.
    let r = c
        .get(format!("{}/media/clip.mp4", pod.base))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.text().await.unwrap(), "malformed signed URL: missing exp");

    // Tampered parameter, tampered path.
    let r = c.get(good.replace("w=640", "w=641")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.text().await.unwrap(), "bad signature");
    let r = c
        .get(good.replace("clip.mp4", "other.mp4"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Signed with another secret.
    let foreign = signed_url::sign(
        &format!("{}/media/clip.mp4", pod.base),
        &Secret::new("another-secret-0123456789abcdef-xyz"),
        Duration::from_secs(300),
    )
    .unwrap();
    let r = c.get(&foreign).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    // Expired: 403 with its own body.
    let expired = signed_url::sign_at(
        &format!("{}/media/clip.mp4", pod.base),
        &pod.secret,
        Duration::from_secs(60),
        SystemTime::now() - Duration::from_secs(3600),
    )
    .unwrap();
    let r = c.get(&expired).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    assert_eq!(r.text().await.unwrap(), "signed URL expired");

    // A bearer key does not open a signed-URL-only route.
    let r = c
        .get(format!("{}/media/clip.mp4", pod.base))
        .bearer_auth(&pod.key)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn either_layer_accepts_bearer_or_signed_url() {
    let pod = start_pod().await;
    let c = client();
    let plain = format!("{}/either/x", pod.base);

    let r = c.get(&plain).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.headers()["www-authenticate"], "Bearer");

    let r = c.get(&plain).bearer_auth("wrong").send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);

    let r = c.get(&plain).bearer_auth(&pod.key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.text().await.unwrap(), "either-bytes");

    let signed = signed_url::sign(&plain, &pod.secret, Duration::from_secs(60)).unwrap();
    let r = c.get(&signed).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);

    let r = c.get(format!("{signed}&extra=1")).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    assert_eq!(r.text().await.unwrap(), "bad signature");

    let expired = signed_url::sign_at(
        &plain,
        &pod.secret,
        Duration::from_secs(1),
        SystemTime::now() - Duration::from_secs(60),
    )
    .unwrap();
    let r = c.get(&expired).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
    // ... unless the bearer key is also there.
    let r = c.get(&expired).bearer_auth(&pod.key).send().await.unwrap();
    assert_eq!(r.status(), StatusCode::OK);
}
