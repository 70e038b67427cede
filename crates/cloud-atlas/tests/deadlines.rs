//! Deadline arithmetic never panics and never wraps (issue 12, defect 5): every library
//! call that takes a timeout or a limit is given the longest duration there is, and
//! either works or refuses it with a `Validation` error naming the field.

#[path = "support/mod.rs"]
mod support;

use std::time::Duration;

use cloud_atlas::orchestrator::store::MemorySessionStore;
use cloud_atlas::orchestrator::{Orchestrator, OrchestratorConfig, SessionRequest, ShutdownPolicy};
use cloud_atlas::providers::mock::{Mock, MockOptions, MOCK_ENDPOINT};
use cloud_atlas::providers::runpod::RunPodBuilder;
use cloud_atlas::{
    ComputeRequest, ComputeStatus, ErrorKind, JobRequest, JobStatus, Provider, ProviderExt,
};

fn mock() -> Mock {
    Mock::in_memory_with(MockOptions {
        boot_delay: Duration::from_millis(50),
        queue_delay: Duration::from_millis(10),
        exec_time: Duration::from_millis(10),
        ..MockOptions::default()
    })
}

fn compute() -> ComputeRequest {
    ComputeRequest::builder().image("img").build().unwrap()
}

#[tokio::test]
async fn wait_for_takes_the_longest_timeout() {
    let m = mock();
    let c = m.spawn(&compute()).await.unwrap();
    let up = m
        .wait_for(&c.id, ComputeStatus::Running, Duration::MAX)
        .await
        .unwrap();
    assert_eq!(up.status, ComputeStatus::Running);
}

#[tokio::test]
async fn jobs_take_the_longest_timeout() {
    let (base, _state) = support::runpod_runtime::serve().await;
    let runpod = RunPodBuilder::default()
        .with_api_key(support::runpod_runtime::KEY)
        .with_base_url("http://127.0.0.1:9")
        .with_serverless_base_url(base)
        .build()
        .unwrap();
    let mock = mock();
    let runs: [(&dyn Provider, &str, serde_json::Value); 2] = [
        (&mock, MOCK_ENDPOINT, serde_json::json!({"prompt": "hi"})),
        (&runpod, "ep1", serde_json::json!({"mode": "queued"})),
    ];
    for (p, endpoint, input) in runs {
        let job = JobRequest::new(endpoint, input).unwrap();
        let sl = p.serverless().unwrap();
        let done = sl.run_sync(&job, Duration::MAX).await.unwrap();
        assert_eq!(done.status, JobStatus::Completed, "{}", p.name());
    }
}

/// An orchestrator on `provider` with no reaper and no boot watch.
async fn orchestrator(provider: impl Provider) -> Orchestrator {
    let mut cfg = OrchestratorConfig::default();
    cfg.reaper.enabled = false;
    cfg.watch_running = false;
    Orchestrator::builder()
        .store(MemorySessionStore::new())
        .provider(provider)
        .config(cfg)
        .start()
        .await
        .unwrap()
}

#[tokio::test]
async fn sessions_refuse_unbounded_limits_and_wait_with_the_longest_timeout() {
    let cloud = mock();
    let orch = orchestrator(cloud.clone()).await;
    for (field, req) in [
        (
            "idle_ttl",
            SessionRequest::new("mock", "u", compute()).with_idle_ttl(Duration::MAX),
        ),
        (
            "max_runtime",
            SessionRequest::new("mock", "u", compute()).with_max_runtime(Duration::MAX),
        ),
    ] {
        let e = orch.spawn(req).await.unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
        assert!(e.message().starts_with(field), "{e}");
    }
    assert_eq!(cloud.live_count().unwrap(), 0, "nothing may be spawned");

    // The longest allowed limits are deadlines far away, not now.
    let year = Duration::from_secs(365 * 86_400);
    let s = orch
        .spawn(
            SessionRequest::new("mock", "u", compute())
                .with_idle_ttl(year)
                .with_max_runtime(year),
        )
        .await
        .unwrap();
    let ready = orch.wait_ready(&s.session.id, Duration::MAX).await.unwrap();
    assert_eq!(ready.id, s.session.id);
    let (at, _) = ready.next_deadline(ready.last_touch);
    assert!(
        at > chrono::Utc::now() + chrono::Duration::days(364),
        "{at}"
    );
    orch.shutdown(ShutdownPolicy::Terminate).await.unwrap();
}

#[test]
fn an_orchestrator_config_with_unbounded_defaults_is_refused() {
    let mut cfg = OrchestratorConfig::default();
    cfg.default_idle_ttl = Duration::MAX;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let e = rt
        .block_on(
            Orchestrator::builder()
                .store(MemorySessionStore::new())
                .provider(mock())
                .config(cfg)
                .start(),
        )
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
    assert!(e.message().starts_with("default_idle_ttl"), "{e}");
}

#[cfg(unix)]
#[tokio::test]
async fn a_fly_deploy_takes_the_longest_timeouts() {
    use std::os::unix::fs::PermissionsExt;
    let tmp = tempfile::tempdir().unwrap();
    let bin = tmp.path().join("fly");
    std::fs::write(&bin, "#!/bin/sh\necho deployed\n").unwrap();
    std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    std::fs::write(tmp.path().join("fly.toml"), "app = 'demo-app'\n").unwrap();
    let opts = cloud_atlas::fly::DeployOptions::default()
        .with_flyctl(cloud_atlas::fly::Flyctl::new(&bin))
        .with_activity_timeout(Duration::MAX)
        .with_stream_timeout(Duration::MAX)
        .with_deploy_timeout(Duration::MAX);
    let r = cloud_atlas::fly::deploy(tmp.path(), None, &opts)
        .await
        .unwrap();
    assert!(r.outcome.status.is_success(), "{r:?}");
    let mut s = cloud_atlas::fly::stream_deploy(tmp.path(), None, &opts)
        .await
        .unwrap();
    while s.next_line().await.is_some() {}
    assert!(s.outcome().await.unwrap().status.is_success());
}

/// A tracked session's max runtime rides on the RunPod pod: the orchestrator passes
/// max runtime + slack, and the pod's command is wrapped to remove the pod by then.
/// (A stand-in that records the create body; Prism checks the same body against the
/// spec in `contract_runpod.rs`.)
#[tokio::test]
async fn a_sessions_max_runtime_rides_on_the_pod_through_the_wrapper() {
    use axum::routing::post;
    use axum::{extract::State, Json, Router};
    use std::sync::{Arc, Mutex};

    let bodies: Arc<Mutex<Vec<serde_json::Value>>> = Arc::default();
    let app = Router::new()
        .route(
            "/v2/pods",
            post(
                |State(b): State<Arc<Mutex<Vec<serde_json::Value>>>>,
                 Json(body): Json<serde_json::Value>| async move {
                    let pod = serde_json::json!({
                        "id": "pod0001", "name": body["name"], "image": body["image"],
                        "status": "PROVISIONING", "gpu": body["gpu"], "cost": 0.44,
                        "createdAt": "2026-06-01T12:00:00Z",
                    });
                    b.lock().unwrap().push(body);
                    (axum::http::StatusCode::CREATED, Json(pod))
                },
            ),
        )
        .with_state(Arc::clone(&bodies));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });

    let rp = RunPodBuilder::default()
        .with_api_key(support::runpod_runtime::KEY)
        .with_base_url(base)
        .build()
        .unwrap();
    let orch = orchestrator(rp).await;
    let with_cmd = ComputeRequest::builder()
        .gpu(cloud_atlas::Gpu::RTX_4090)
        .image("img")
        .command(["python", "train.py"])
        .build()
        .unwrap();
    orch.spawn(
        SessionRequest::new("runpod", "u", with_cmd).with_max_runtime(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    // Without a command nothing on the pod can hold it: the session is spawned without a
    // machine-side deadline (the orchestrator holds it while it runs, and says so).
    let bare = ComputeRequest::builder()
        .gpu(cloud_atlas::Gpu::RTX_4090)
        .image("img")
        .build()
        .unwrap();
    orch.spawn(
        SessionRequest::new("runpod", "u", bare).with_max_runtime(Duration::from_secs(3600)),
    )
    .await
    .unwrap();
    orch.shutdown(ShutdownPolicy::Release).await.unwrap();

    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2);
    let args = bodies[0]["args"].as_str().unwrap();
    // 3600 s + the default 120 s of slack, then removed the RunPod way.
    assert!(
        args.contains(" atlas-deadline 3720 10 runpod -- python train.py"),
        "{args}"
    );
    assert!(bodies[1].get("args").is_none(), "{}", bodies[1]);
}
