//! Live tests against the real RunPod API. They spend money and are ignored by default:
//!
//! ```sh
//! RUNPOD_API_KEY=... cargo test -p cloud-atlas --test live_runpod -- --ignored
//! ```
//!
//! Without the key they FAIL (never pass by skipping). The serverless test also needs
//! `RUNPOD_ENDPOINT_ID` (a queue endpoint whose handler accepts any input). Each of these
//! covers a gap the contract server cannot: real state transitions, real prices, real
//! SSE log streams and real job execution.

use std::time::Duration;

use cloud_atlas::providers::runpod::{BillingQuery, BucketSize, RunPod};
use cloud_atlas::{ComputeRequest, ComputeStatus, JobRequest, ListFilter, Provider, ProviderExt};

fn runpod() -> RunPod {
    assert!(
        std::env::var("RUNPOD_API_KEY").is_ok_and(|k| !k.trim().is_empty()),
        "live test: set RUNPOD_API_KEY to run it (it creates real, billed resources)"
    );
    RunPod::from_env().expect("RunPod from RUNPOD_API_KEY")
}

/// Terminates the pod when the test ends, even on panic.
struct Cleanup(RunPod, Option<String>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        if let Some(id) = self.1.take() {
            let rp = self.0.clone();
            let _ = std::thread::spawn(move || {
                let rt = tokio::runtime::Runtime::new().expect("runtime");
                rt.block_on(async { rp.terminate_if_exists(&id).await })
            })
            .join();
        }
    }
}

#[tokio::test]
#[ignore = "live: needs RUNPOD_API_KEY; spends money"]
async fn live_cpu_pod_lifecycle() {
    let rp = runpod();
    let req = ComputeRequest::builder()
        .image("runpod/base:0.6.2-cpu")
        .cpus(2)
        .port("8000/http")
        .name("atlas-live")
        .build()
        .unwrap();
    let pod = rp.spawn(&req).await.expect("spawn");
    let mut guard = Cleanup(rp.clone(), Some(pod.id.clone()));
    assert_eq!(pod.name.as_deref(), Some(req.launch_name().as_str()));
    let running = rp
        .wait_for(&pod.id, ComputeStatus::Running, Duration::from_secs(600))
        .await
        .expect("running");
    assert_eq!(
        running.http_url(),
        Some(format!("https://{}-8000.proxy.runpod.net", pod.id).as_str())
    );
    let listed = rp
        .list(&ListFilter::all().with_name(req.launch_name()))
        .await
        .unwrap();
    assert_eq!(listed.len(), 1);
    let lines = rp.logs().recent(&pod.id, 20).await.expect("logs");
    eprintln!("{} log lines", lines.len());
    rp.stop(&pod.id).await.expect("stop");
    rp.wait_for(&pod.id, ComputeStatus::Stopped, Duration::from_secs(300))
        .await
        .expect("stopped");
    rp.terminate(&pod.id).await.expect("terminate");
    guard.1 = None;
    assert!(rp.get_opt(&pod.id).await.unwrap().is_none());
}

#[tokio::test]
#[ignore = "live: needs RUNPOD_API_KEY; spends money"]
async fn live_catalog_and_reads() {
    let rp = runpod();
    let gpus = rp.gpu_types().await.expect("catalog");
    assert!(
        gpus.iter().any(|g| g.gpu.is_some()),
        "some GPU maps to the canonical table"
    );
    assert!(gpus.iter().any(|g| g.price_on_demand.is_some()));
    rp.templates().list().await.expect("templates");
    rp.endpoints().list().await.expect("endpoints");
    rp.network_volumes().list().await.expect("network volumes");
    rp.billing()
        .summary(&BillingQuery::last(7, BucketSize::Day))
        .await
        .expect("billing");
    assert!(
        !rp.rate_gate().windows().is_empty(),
        "RunPod sends RateLimit headers"
    );
}

#[tokio::test]
#[ignore = "live: needs RUNPOD_API_KEY; spends money"]
async fn live_serverless_job() {
    let rp = runpod();
    let ep = std::env::var("RUNPOD_ENDPOINT_ID")
        .expect("live test: set RUNPOD_ENDPOINT_ID to a queue endpoint of your account");
    let sl = rp.serverless().unwrap();
    let job = sl
        .run_sync(
            &JobRequest::new(ep.clone(), serde_json::json!({"prompt": "hello"})).unwrap(),
            Duration::from_secs(120),
        )
        .await
        .expect("runsync");
    assert!(job.status.is_terminal(), "{:?}", job.status);
    sl.health(&ep).await.expect("health");
}
