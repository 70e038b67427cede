//! An `atlas run`-style task from the library: spawn compute that runs one command with a
//! max runtime, wait for it to run, terminate it when done. On the mock cloud (no keys);
//! the machine itself holds the max runtime, so a crashed caller cannot leave it billing.
//!
//! `cargo run -p cloud-atlas-examples --example run_task` (its test runs under `cargo test`).

use std::time::Duration;

use cloud_atlas::providers::mock::Mock;
use cloud_atlas::{Compute, ComputeRequest, ComputeStatus, Provider, ProviderExt};

/// Spawn `argv` with `max_runtime` on `cloud`, wait until it runs, then terminate it.
/// Returns the machine as it was while running.
async fn run_task(
    cloud: &dyn Provider,
    argv: &[&str],
    max_runtime: Duration,
) -> cloud_atlas::Result<Compute> {
    let req = ComputeRequest::builder()
        .image("python:3.12-slim")
        .cpus(2)
        .command(argv.iter().copied())
        .max_runtime(max_runtime)
        .build()?;
    let c = cloud.spawn(&req).await?;
    let running = cloud
        .wait_for(&c.id, ComputeStatus::Running, Duration::from_secs(60))
        .await;
    // Terminate whatever happened while waiting: it bills until then.
    let end = cloud.terminate(&c.id).await;
    let running = running?;
    end?;
    Ok(running)
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cloud = Mock::in_memory();
    let c = run_task(
        &cloud,
        // The mock runs it on this host (the image is ignored); long enough to be seen running.
        &["sh", "-c", "echo hello from the task; sleep 5"],
        Duration::from_secs(600),
    )
    .await?;
    println!("task ran on {} ({}), terminated", c.id, c.provider);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn task_runs_and_is_terminated() {
        let cloud = Mock::in_memory();
        let c = run_task(&cloud, &["sleep", "30"], Duration::from_secs(60))
            .await
            .unwrap();
        assert_eq!(c.status, ComputeStatus::Running);
        let after = cloud.get(&c.id).await;
        assert!(
            after.map(|c| c.status.is_terminal()).unwrap_or(true),
            "terminated (or gone)"
        );
    }

    #[tokio::test]
    async fn a_bad_limit_is_refused_before_anything_bills() {
        let cloud = Mock::in_memory();
        let err = run_task(&cloud, &["echo"], Duration::ZERO)
            .await
            .unwrap_err();
        assert_eq!(err.kind(), cloud_atlas::ErrorKind::Validation, "{err}");
        assert!(cloud.list(&Default::default()).await.unwrap().is_empty());
    }
}
