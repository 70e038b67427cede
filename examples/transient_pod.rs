//! Spawn a GPU for one user on the mock cloud, wait for it, hand out its URL and
//! bearer token, then terminate it. Reads no env vars; runs without keys.
//!
//! `cargo run -p cloud-atlas-examples --example transient_pod`

use std::time::Duration;

use cloud_atlas::providers::mock::Mock;
use cloud_atlas::{AuthMode, ComputeRequest, ComputeStatus, Gpu, Provider, ProviderExt};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    run().await
}

/// The whole example (also run by `cargo test`).
async fn run() -> anyhow::Result<()> {
    let cloud = Mock::in_memory();
    let req = ComputeRequest::builder()
        .gpu(Gpu::H100)
        .image("ghcr.io/acme/infer:latest")
        .port("8000/http")
        .auth(AuthMode::Bearer)
        .build()?;
    let pod = cloud.spawn(&req).await?;
    let auth = pod.auth.clone();
    let pod = cloud
        .wait_for(&pod.id, ComputeStatus::Running, Duration::from_secs(30))
        .await?;
    println!("pod {} is {} at {:?}", pod.id, pod.status, pod.http_url());
    if let Some(token) = auth.and_then(|a| a.token) {
        println!("give the browser this token once: {}", token.expose());
    }
    cloud.terminate(&pod.id).await?;
    println!("terminated {}", pod.id);
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn example_runs_on_the_mock() {
        super::run().await.expect("the example runs end to end");
    }
}
