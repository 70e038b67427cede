//! A pod-side server that only talks to its own user: `POST /v1/infer` needs the
//! preshared bearer key (the browser's `fetch` sets `Authorization`), `GET /media/{name}`
//! needs a signed URL (a `<video src>` cannot set headers), `GET /health` is open.
//!
//! Reads `ATLAS_PRESHARED_KEY` and `ATLAS_SIGNING_SECRET`, which a pod spawned with
//! `auth: bearer` / `auth: signed_url` receives. When they are unset (running on your
//! laptop) it mints both, as the app server would at spawn, and prints them once.
//! Listens on `ATLAS_POD_ADDR` (default `127.0.0.1:8000`).
//!
//! ```text
//! cargo run -p cloud-atlas-examples --example pod_auth_axum            # serve
//! cargo run -p cloud-atlas-examples --example pod_auth_axum -- --check # serve, probe itself, exit
//! ```
//!
//! Put a CORS layer outside the auth layers in a real pod: browser preflights carry no
//! credentials.

use std::time::Duration;

use anyhow::{ensure, Context};
use axum::extract::Path;
use axum::routing::{get, post};
use axum::{Json, Router};
use cloud_atlas::auth::layer::{PresharedKeyLayer, SignedUrlLayer};
use cloud_atlas::auth::token::PRESHARED_KEY_ENV;
use cloud_atlas::auth::{signed_url, AuthHandle, Secret, SIGNING_SECRET_ENV};
use cloud_atlas::AuthMode;
use serde_json::{json, Value};

/// The inference-like route: echoes a "completion".
async fn infer(Json(req): Json<Value>) -> Json<Value> {
    let prompt = req["prompt"].as_str().unwrap_or_default();
    Json(json!({ "completion": format!("{prompt} … (generated)"), "tokens": prompt.len() }))
}

/// The media route: would stream a file; here a few bytes.
async fn media(Path(name): Path<String>) -> String {
    format!("<bytes of {name}>")
}

fn app(key: Secret, signing: Secret) -> anyhow::Result<Router> {
    let inference = Router::new()
        .route("/v1/infer", post(infer))
        .layer(PresharedKeyLayer::new(key)?);
    let media = Router::new()
        .route("/media/{name}", get(media))
        .layer(SignedUrlLayer::new(signing)?);
    Ok(inference
        .merge(media)
        .route("/health", get(|| async { "ok" })))
}

/// The pod's credentials: from the environment, or minted here for a local run.
fn credentials() -> (Secret, Secret) {
    let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
    match (env(PRESHARED_KEY_ENV), env(SIGNING_SECRET_ENV)) {
        (Some(k), Some(s)) => (Secret::new(k), Secret::new(s)),
        (k, s) => {
            let key = k.map(Secret::new).unwrap_or_else(|| {
                let (handle, _env) = AuthHandle::mint(AuthMode::Bearer);
                let key = handle
                    .and_then(|h| h.token)
                    .expect("bearer mode mints a token");
                println!(
                    "{PRESHARED_KEY_ENV} unset; minted one for this run: {}",
                    key.expose()
                );
                key
            });
            let secret = s.map(Secret::new).unwrap_or_else(|| {
                let (handle, _env) = AuthHandle::mint(AuthMode::SignedUrl);
                let s = handle
                    .and_then(|h| h.signing_secret)
                    .expect("signed_url mode mints a secret");
                println!(
                    "{SIGNING_SECRET_ENV} unset; minted one for this run: {}",
                    s.expose()
                );
                s
            });
            (key, secret)
        }
    }
}

/// Probe the running server the way a browser and a stranger would.
async fn check(base: &str, key: &Secret, signing: &Secret) -> anyhow::Result<()> {
    let http = reqwest::Client::builder().no_proxy().build()?;
    let infer_url = format!("{base}/v1/infer");
    let body = json!({ "prompt": "a cat" });

    let anon = http.post(&infer_url).json(&body).send().await?;
    println!("POST /v1/infer without a token      -> {}", anon.status());
    ensure!(
        anon.status() == 401,
        "unauthenticated inference must be rejected"
    );

    let wrong = http
        .post(&infer_url)
        .bearer_auth("guess")
        .json(&body)
        .send()
        .await?;
    println!("POST /v1/infer with a wrong token   -> {}", wrong.status());
    ensure!(wrong.status() == 401, "a wrong token must be rejected");

    let ok = http
        .post(&infer_url)
        .bearer_auth(key.expose())
        .json(&body)
        .send()
        .await?;
    println!("POST /v1/infer with the pod's token -> {}", ok.status());
    ensure!(ok.status() == 200, "the pod's own token must be served");
    println!("    {}", ok.text().await?);

    let media_url = format!("{base}/media/intro.mp4");
    let unsigned = http.get(&media_url).send().await?;
    println!(
        "GET /media/intro.mp4 unsigned       -> {}",
        unsigned.status()
    );
    ensure!(
        unsigned.status() == 401,
        "an unsigned media URL must be rejected"
    );

    let signed = signed_url::sign(&media_url, signing, Duration::from_secs(600))?;
    let res = http.get(&signed).send().await?;
    println!("GET signed media URL                -> {}", res.status());
    ensure!(res.status() == 200, "a signed media URL must be served");

    let tampered = signed.replace("intro.mp4", "other.mp4");
    let res = http.get(&tampered).send().await?;
    println!("GET tampered media URL              -> {}", res.status());
    ensure!(res.status() == 401, "a tampered URL must be rejected");

    let past = std::time::SystemTime::now() - Duration::from_secs(3600);
    let expired = signed_url::sign_at(&media_url, signing, Duration::from_secs(60), past)?;
    let res = http.get(&expired).send().await?;
    println!("GET expired media URL               -> {}", res.status());
    ensure!(res.status() == 403, "an expired URL must be refused");
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    let self_check = std::env::args().any(|a| a == "--check");
    let (key, signing) = credentials();
    let addr = std::env::var("ATLAS_POD_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into());
    let addr = if self_check {
        "127.0.0.1:0".to_string()
    } else {
        addr
    };
    let listener = tokio::net::TcpListener::bind(&addr)
        .await
        .with_context(|| format!("binding {addr}"))?;
    let router = app(key.clone(), signing.clone())?;
    tracing::info!(addr = %listener.local_addr()?, "pod listening");
    if !self_check {
        axum::serve(listener, router).await?;
        return Ok(());
    }
    check_against(listener, router, &key, &signing).await?;
    println!("all checks passed");
    Ok(())
}

/// Serve `router` on `listener`, probe it, stop it.
async fn check_against(
    listener: tokio::net::TcpListener,
    router: Router,
    key: &Secret,
    signing: &Secret,
) -> anyhow::Result<()> {
    let base = format!("http://{}", listener.local_addr()?);
    let server = tokio::spawn(async move { axum::serve(listener, router).await });
    let result = check(&base, key, signing).await;
    server.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `cargo test -p cloud-atlas-examples --example pod_auth_axum` runs the self-check.
    #[tokio::test]
    async fn rejects_strangers_and_serves_its_user() {
        let key = Secret::new("example-key");
        let signing = Secret::new("example-signing-secret-of-32-bytes-or-more");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let router = app(key.clone(), signing.clone()).unwrap();
        check_against(listener, router, &key, &signing)
            .await
            .unwrap();
    }
}
