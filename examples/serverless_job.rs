//! Run a serverless job on the mock cloud's echo endpoint: queue it, stream its
//! partial output, then read the final status. Reads no env vars; runs without keys.
//! Swap `Mock::in_memory()` for `RunPod::from_env()?` and a real endpoint id for RunPod.
//!
//! `cargo run -p cloud-atlas-examples --example serverless_job`

use cloud_atlas::providers::mock::{Mock, MOCK_ENDPOINT};
use cloud_atlas::{JobRequest, Provider};

/// `StreamExt::next` without a combinator crate in the examples package.
async fn next<S: futures_core::Stream + Unpin>(s: &mut S) -> Option<S::Item> {
    std::future::poll_fn(|cx| std::pin::Pin::new(&mut *s).poll_next(cx)).await
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt().with_env_filter("info").init();
    run().await
}

/// The whole example (also run by `cargo test`).
async fn run() -> anyhow::Result<()> {
    let cloud = Mock::in_memory();
    let jobs = cloud.serverless().expect("the mock has a serverless API");
    let req = JobRequest::new(
        MOCK_ENDPOINT,
        serde_json::json!({"prompt": "hello", "chunks": 4}),
    )?;
    let job = jobs.run(&req).await?;
    println!("queued job {} ({})", job.id, job.status);
    let mut stream = jobs.stream(MOCK_ENDPOINT, &job.id).await?;
    while let Some(chunk) = next(&mut stream).await {
        println!("chunk: {}", chunk?);
    }
    let done = jobs.status(MOCK_ENDPOINT, &job.id).await?;
    println!(
        "{} → {} with output {}",
        done.id,
        done.status,
        done.output.unwrap_or_default()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn example_runs_on_the_mock() {
        super::run().await.expect("the example runs end to end");
    }
}
