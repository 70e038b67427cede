//! RunPod provider against Prism running RunPod's published REST v2 spec (every request
//! must validate), plus what a static contract server cannot show, against small local
//! servers: reconciling a create that answered 500 after creating the pod, pacing from
//! `RateLimit` headers, and the serverless runtime (built from the docs' samples). The
//! conformance suite runs against Prism with the options for a static contract server.

mod support;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::routing::{delete, get, post};
use axum::{Json, Router};
use cloud_atlas::providers::runpod::{
    BillingQuery, BucketSize, LogQuery, PollConfig, RunPod, RunPodBuilder,
};
use cloud_atlas::{
    AuthMode, Capability, Checked, ComputeRequest, ComputeStatus, ErrorKind, Gpu, JobRequest,
    JobStatus, ListFilter, Provider,
};
use futures::StreamExt;
use serde_json::{json, Value};
use support::garble::{assert_nothing_created, Create, Garble};
use support::prism::Prism;
use support::runpod_runtime::{self, sample, Rt};

const SPEC: &str = "runpod/rest-v2.openapi.json";

fn builder(base: &str) -> RunPodBuilder {
    RunPod::builder()
        .with_api_key("rp_placeholder_key")
        .with_base_url(base)
        .with_serverless_base_url(base)
        .with_reconcile(3, Duration::from_millis(20))
        // Prism's example headers always say the minute window is spent (r=0;t=12):
        // honour them, but only briefly, so the suite does not sleep 12 s per request.
        .with_rate_limit_max_wait(Duration::from_millis(20))
        .with_poll(PollConfig {
            initial: Duration::from_millis(10),
            max: Duration::from_millis(40),
        })
}

fn provider(base: &str) -> RunPod {
    builder(base).build().unwrap()
}

fn done_when_request() -> ComputeRequest {
    ComputeRequest::builder()
        .gpu(Gpu::RTX_4090)
        .image("img")
        .port("8000/http")
        .env("A", "1")
        .auth(AuthMode::Bearer)
        .build()
        .unwrap()
}

#[tokio::test]
async fn lifecycle_conforms_to_the_spec() {
    let prism = Prism::start(SPEC);
    let runpod = provider(&prism.base_url());
    let rp = Checked::new(Arc::new(runpod.clone()));

    let c = rp.spawn(&done_when_request()).await.unwrap();
    assert_eq!(c.provider, "runpod");
    assert_eq!(c.id, "7h9k2m4n6p");
    let auth = c.auth.as_ref().expect("bearer auth minted");
    assert!(auth.token.is_some() && auth.token_hash.is_some());
    assert_eq!(c.gpu, Some(Gpu::RTX_4090));

    let listed = rp.list(&ListFilter::all()).await.unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        rp.list(&ListFilter::all().with_status(ComputeStatus::Stopped))
            .await
            .unwrap()
            .len(),
        0
    );
    assert_eq!(
        rp.list(&ListFilter::all().with_name("pytorch-training"))
            .await
            .unwrap()
            .len(),
        1
    );
    let got = rp.get(&c.id).await.unwrap();
    assert_eq!(got.status, ComputeStatus::Running);
    assert_eq!(
        got.http_url(),
        Some("https://7h9k2m4n6p-8888.proxy.runpod.net")
    );
    rp.stop(&c.id).await.unwrap();
    rp.start(&c.id).await.unwrap();
    runpod.restart(&c.id).await.unwrap();
    rp.terminate(&c.id).await.unwrap();

    let gpus = rp.gpu_types().await.unwrap();
    assert_eq!(gpus[0].gpu, Some(Gpu::RTX_4090));
    assert_eq!(gpus[0].price_on_demand, Some(0.44));
    let before = prism.request_count();
    rp.gpu_types().await.unwrap();
    assert_eq!(prism.request_count(), before, "catalog served from cache");

    // CPU pod, network volume, template, community cloud, region hints.
    let cpu = ComputeRequest::builder()
        .image("img")
        .cpus(4)
        .network_volume_id("vol_xyz")
        .template_id("30zmvf89kd")
        .cloud_type(cloud_atlas::CloudType::Community)
        .region("US-TX-3")
        .container_disk_gb(20)
        .provider_opt("start_ssh", true)
        .build()
        .unwrap();
    rp.spawn(&cpu).await.unwrap();

    prism.assert_no_violations();
    assert!(prism.request_count() >= 10, "{}", prism.log());
}

#[tokio::test]
async fn management_surfaces_and_logs_conform() {
    let prism = Prism::start(SPEC);
    let rp = provider(&prism.base_url());

    let templates = rp.templates().list().await.unwrap();
    assert_eq!(templates[0].id, "9x4m2p7v");
    assert_eq!(templates[0].name, "PyTorch GPU Template");
    rp.templates().get("9x4m2p7v").await.unwrap();

    let vols = rp.network_volumes().list().await.unwrap();
    assert_eq!(vols[0].size_gb, 100);
    assert_eq!(vols[0].data_center, "US-KS-2");
    rp.network_volumes().get("2q9m7x4c").await.unwrap();
    rp.network_volumes()
        .create("training-dataset", 100, "US-KS-2")
        .await
        .unwrap();
    rp.network_volumes()
        .update("2q9m7x4c", None, Some(200))
        .await
        .unwrap();
    rp.network_volumes().delete("2q9m7x4c").await.unwrap();

    let total = rp
        .billing()
        .summary(&BillingQuery::last(7, BucketSize::Day))
        .await
        .unwrap();
    assert_eq!(total.total, 42.34);
    let pods = rp
        .billing()
        .pods(&BillingQuery::default(), Some("7h9k2m4n6p"))
        .await
        .unwrap();
    assert_eq!(pods.records[0].resource_id.as_deref(), Some("7h9k2m4n6p"));
    for family in [
        cloud_atlas::providers::runpod::billing::BillingFamily::Serverless,
        cloud_atlas::providers::runpod::billing::BillingFamily::Endpoints,
        cloud_atlas::providers::runpod::billing::BillingFamily::NetworkVolumes,
    ] {
        rp.billing()
            .read(family, &BillingQuery::default(), None)
            .await
            .unwrap();
    }

    let recent = rp.logs().recent("7h9k2m4n6p", 50).await.unwrap();
    assert_eq!(recent[0].line, "Model loaded.");
    let mut follow = rp
        .logs()
        .follow("7h9k2m4n6p", LogQuery::tail(10))
        .await
        .unwrap();
    let first = follow.next().await.unwrap().unwrap();
    assert_eq!(first.source.as_deref(), Some("container"));
    let stopper = follow.stopper();
    stopper.stop();
    assert!(follow.next().await.is_none(), "a stopped follow ends");

    prism.assert_no_violations();
}

/// The spec's own `listEndpoints`/`getEndpoint` examples break its `requestUrls` schema
/// (templated `{job_id}` URLs, no `base`), so Prism refuses to serve them; the endpoint
/// reads are checked against schema-generated answers instead.
#[tokio::test]
async fn endpoint_reads_conform() {
    let prism = Prism::start_with(SPEC, &["--dynamic"]);
    let rp = provider(&prism.base_url());
    let endpoints = rp.endpoints().list().await.unwrap();
    for e in &endpoints {
        assert!(!e.id.is_empty());
        assert!(e.raw.is_object());
    }
    rp.endpoints().get("4m7x2k9q").await.unwrap();
    prism.assert_no_violations();
}

#[tokio::test]
async fn rate_limit_headers_from_the_spec_slow_requests() {
    let prism = Prism::start(SPEC);
    let rp = builder(&prism.base_url())
        .with_rate_limit_max_wait(Duration::from_millis(300))
        .build()
        .unwrap();
    rp.pods().list(false).await.unwrap();
    let windows = rp.rate_gate().windows();
    assert_eq!(windows.len(), 3, "{windows:?}");
    assert_eq!(windows[0].remaining, 0);
    assert_eq!(windows[0].quota, Some(60));
    let t0 = Instant::now();
    rp.pods().list(false).await.unwrap();
    assert!(rp.rate_gate().delayed_requests() >= 1);
    assert!(t0.elapsed() >= Duration::from_millis(250));
    prism.assert_no_violations();
}

#[tokio::test]
async fn honest_capabilities_and_refusals() {
    let rp = provider("http://127.0.0.1:9");
    let caps = rp.capabilities();
    assert!(caps.contains(Capability::Stop) && caps.contains(Capability::Serverless));
    assert!(!caps.contains(Capability::SpawnSpot));
    assert!(!caps.contains(Capability::ProviderDeadline));
    assert!(rp.serverless().is_some());
    let spot = ComputeRequest::builder()
        .gpu(Gpu::RTX_4090)
        .image("img")
        .spot(true)
        .build()
        .unwrap();
    let e = Checked::new(Arc::new(rp.clone()))
        .spawn(&spot)
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unsupported);
    let e = RunPod::builder().build().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Unauthorized);
    assert!(e.message().contains("RUNPOD_API_KEY"));
    let e = RunPod::builder()
        .with_api_key("k")
        .with_serverless_base_url("ftp://x")
        .build()
        .unwrap_err();
    assert!(e.message().starts_with("serverless_base_url"), "{e}");
}

// ---------------------------------------------------------------------------------
// 500 after create: a local server that creates the pod, then answers 500.

#[derive(Default)]
struct PodServer {
    pods: Vec<Value>,
    creates: usize,
    deletes: Vec<String>,
    /// How many pods one create makes before answering 500 (0: none).
    make: usize,
    /// Answer 201 with the (last) pod made instead of 500.
    ok: bool,
    seq: usize,
}

type Pods = Arc<Mutex<PodServer>>;

async fn create_pod(State(s): State<Pods>, Json(body): Json<Value>) -> axum::response::Response {
    let mut s = s.lock().unwrap();
    s.creates += 1;
    for _ in 0..s.make {
        s.seq += 1;
        let id = format!("pod{:04}", s.seq);
        let created = format!("2026-06-01T12:00:{:02}Z", s.seq);
        s.pods.push(json!({
            "id": id,
            "name": body["name"],
            "image": body["image"],
            "status": "PROVISIONING",
            "gpu": body["gpu"],
            "ports": body["ports"],
            "env": body["env"],
            "cost": 0.44,
            "createdAt": created,
        }));
    }
    if s.ok {
        if let Some(p) = s.pods.last() {
            return (StatusCode::CREATED, Json(p.clone())).into_response();
        }
    }
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [("content-type", "application/problem+json")],
        r#"{"title":"Internal Server Error","status":500,"detail":"upstream error"}"#,
    )
        .into_response()
}

async fn list_pods(State(s): State<Pods>) -> Json<Value> {
    Json(json!({"pods": s.lock().unwrap().pods}))
}

async fn delete_pod(State(s): State<Pods>, Path(id): Path<String>) -> StatusCode {
    let mut s = s.lock().unwrap();
    s.pods.retain(|p| p["id"] != id.as_str());
    s.deletes.push(id);
    StatusCode::NO_CONTENT
}

async fn pod_server(make: usize) -> (String, Pods) {
    pod_server_answering(make, false).await
}

async fn pod_server_answering(make: usize, ok: bool) -> (String, Pods) {
    let state: Pods = Arc::new(Mutex::new(PodServer {
        make,
        ok,
        ..PodServer::default()
    }));
    let app = Router::new()
        .route("/v2/pods", post(create_pod).get(list_pods))
        .route("/v2/pods/{id}", delete(delete_pod))
        .with_state(Arc::clone(&state));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), state)
}

#[tokio::test]
async fn a_500_after_create_returns_the_one_pod() {
    let (base, state) = pod_server(1).await;
    let rp = provider(&base);
    let req = done_when_request();
    let c = rp.spawn(&req).await.unwrap();
    let s = state.lock().unwrap();
    assert_eq!(s.creates, 1, "the create was not replayed");
    assert_eq!(s.pods.len(), 1, "exactly one pod exists");
    assert_eq!(c.id, s.pods[0]["id"]);
    assert_eq!(c.name.as_deref(), Some(req.launch_name().as_str()));
    let auth = c
        .auth
        .expect("the found pod comes with the minted credentials");
    assert_eq!(
        s.pods[0]["env"]["ATLAS_PRESHARED_KEY"],
        auth.token.unwrap().expose()
    );
    assert_eq!(s.pods[0]["env"]["A"], "1");
}

#[tokio::test]
async fn a_500_without_create_returns_the_error() {
    let (base, state) = pod_server(0).await;
    let e = provider(&base)
        .spawn(&done_when_request())
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider);
    assert!(e.is_ambiguous());
    assert!(e.message().contains("nothing was created"), "{e}");
    let s = state.lock().unwrap();
    assert_eq!(s.creates, 1);
    assert!(s.pods.is_empty());
}

#[tokio::test]
async fn an_undecodable_2xx_create_is_adopted_from_the_listing() {
    let (upstream, state) = pod_server_answering(1, true).await;
    let proxy = Garble::start(&upstream, "POST", "/v2/pods", Create::Forwarded).await;
    let req = done_when_request();
    let c = provider(proxy.base_url()).spawn(&req).await.unwrap();
    assert_eq!(proxy.creates(), 1, "the create was not replayed");
    let s = state.lock().unwrap();
    assert_eq!(s.pods.len(), 1, "exactly one pod exists");
    assert_eq!(c.id, s.pods[0]["id"]);
    assert_eq!(c.name.as_deref(), Some(req.launch_name().as_str()));
    assert!(c.auth.is_some(), "the minted credentials come back");
}

#[tokio::test]
async fn an_undecodable_2xx_create_that_made_nothing_is_ambiguous() {
    let (upstream, state) = pod_server(0).await;
    let proxy = Garble::start(&upstream, "POST", "/v2/pods", Create::Swallowed).await;
    let req = done_when_request();
    let e = provider(proxy.base_url()).spawn(&req).await.unwrap_err();
    assert_nothing_created(&e, &req);
    assert_eq!(proxy.creates(), 1, "the create was sent exactly once");
    assert!(state.lock().unwrap().pods.is_empty());
}

#[tokio::test]
async fn duplicates_of_one_launch_keep_the_oldest() {
    let (base, state) = pod_server(2).await;
    let c = provider(&base).spawn(&done_when_request()).await.unwrap();
    let s = state.lock().unwrap();
    assert_eq!(c.id, "pod0001", "the oldest is kept");
    assert_eq!(s.deletes, vec!["pod0002".to_string()]);
    assert_eq!(s.pods.len(), 1);
}

// ---------------------------------------------------------------------------------
// Pacing before a 429: a window running low spreads the remaining requests.

#[tokio::test]
async fn a_low_window_spreads_requests() {
    async fn pods() -> impl IntoResponse {
        (
            [
                ("ratelimit", r#""minute";r=2;t=1"#),
                ("ratelimit-policy", r#""minute";q=60;w=60"#),
            ],
            Json(json!({"pods": []})),
        )
    }
    let app = Router::new().route("/v2/pods", get(pods));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let rp = builder(&format!("http://{addr}"))
        .with_rate_limit_max_wait(Duration::from_secs(5))
        .build()
        .unwrap();
    let t0 = Instant::now();
    for _ in 0..3 {
        rp.list(&ListFilter::all()).await.unwrap();
    }
    // 2 left in 1 s: one request per 500 ms after the first response.
    assert_eq!(rp.rate_gate().delayed_requests(), 2);
    assert!(t0.elapsed() >= Duration::from_millis(900));
}

// ---------------------------------------------------------------------------------
// Serverless runtime: a local server answering with the docs' samples.

async fn runtime() -> (RunPod, Rt) {
    let (base, state) = runpod_runtime::serve().await;
    let rp = builder("http://127.0.0.1:9")
        .with_serverless_base_url(base)
        .build()
        .unwrap();
    (rp, state)
}

fn job(mode: &str) -> JobRequest {
    JobRequest::new("ep1", json!({"mode": mode, "prompt": "Hello, world!"})).unwrap()
}

#[tokio::test]
async fn serverless_completing_job() {
    let (rp, state) = runtime().await;
    let sl = rp.serverless().unwrap();
    let j = sl
        .run_sync(
            &job("complete").with_webhook("https://example.invalid/hook"),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    assert_eq!(j.status, JobStatus::Completed);
    assert_eq!(j.output.unwrap()[0]["seed"], 46578);
    assert_eq!(j.delay_time_ms, Some(824));
    // Queued first, then polled to completion within the timeout.
    let j = sl
        .run_sync(&job("queued"), Duration::from_secs(30))
        .await
        .unwrap();
    assert_eq!(j.status, JobStatus::Completed);
    assert_eq!(j.output.unwrap()["output_tokens"], 16);

    let queued = sl
        .run(&job("complete").with_policy(json!({"executionTimeout": 900000, "ttl": 3600000})))
        .await
        .unwrap();
    assert_eq!(queued.status, JobStatus::InQueue);
    let st = sl.status("ep1", &queued.id).await.unwrap();
    assert_eq!(st.status, JobStatus::Completed);
    assert_eq!(
        sl.cancel("ep1", &queued.id).await.unwrap().status,
        JobStatus::Cancelled
    );
    assert_eq!(
        sl.retry("ep1", &queued.id).await.unwrap().status,
        JobStatus::InQueue
    );
    assert_eq!(sl.purge_queue("ep1").await.unwrap(), 2);
    let h = sl.health("ep1").await.unwrap();
    assert_eq!(h.jobs["inQueue"], 2);

    let seen = state.lock().unwrap().seen.clone();
    assert!(
        seen[0].starts_with("runsync ep1 wait=Some(\"30000\")"),
        "{seen:?}"
    );
    assert!(seen[0].contains("\"webhook\":\"https://example.invalid/hook\""));
    assert!(seen
        .iter()
        .any(|s| s.contains("\"policy\":{\"executionTimeout\":900000")));
}

#[tokio::test]
async fn serverless_failing_job() {
    let (rp, _) = runtime().await;
    let sl = rp.serverless().unwrap();
    let queued = sl.run(&job("fail")).await.unwrap();
    let st = sl.status("ep1", &queued.id).await.unwrap();
    assert_eq!(st.status, JobStatus::Failed);
    assert_eq!(
        st.error.as_deref(),
        Some("handler raised ValueError: bad prompt")
    );
    let mut stream = sl.stream("ep1", &queued.id).await.unwrap();
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Provider);
    assert!(e.message().contains("bad prompt"), "{e}");
    assert!(stream.next().await.is_none());
}

#[tokio::test]
async fn serverless_timing_out_job() {
    let (rp, _) = runtime().await;
    let sl = rp.serverless().unwrap();
    let t0 = Instant::now();
    let e = sl
        .run_sync(&job("slow"), Duration::from_millis(300))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "the caller is not held for the server's 10 s"
    );
    let queued = sl.run(&job("timeout")).await.unwrap();
    let mut stream = sl.stream("ep1", &queued.id).await.unwrap();
    let e = stream.next().await.unwrap().unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert!(e.message().contains("executionTimeout"), "{e}");
}

#[tokio::test]
async fn serverless_stream_of_several_chunks() {
    let (rp, _) = runtime().await;
    let sl = rp.serverless().unwrap();
    let queued = sl.run(&job("stream")).await.unwrap();
    let chunks: Vec<Value> = sl
        .stream("ep1", &queued.id)
        .await
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
        .await;
    let texts: Vec<&str> = chunks
        .iter()
        .map(|c| c["text"][0].as_str().unwrap())
        .collect();
    assert_eq!(
        texts,
        vec![" tok0", " tok1", " tok2", " tok3"],
        "each chunk once, in order"
    );

    let queued = sl.run(&job("array")).await.unwrap();
    let chunks: Vec<Value> = sl
        .stream("ep1", &queued.id)
        .await
        .unwrap()
        .map(|c| c.unwrap())
        .collect()
        .await;
    assert_eq!(chunks, vec![sample("stream")[0]["output"].clone()]);
}

#[tokio::test]
async fn a_job_id_without_its_endpoint_is_refused() {
    let (rp, state) = runtime().await;
    let sl = rp.serverless().unwrap();
    for e in [
        sl.status("", "job-1").await.unwrap_err(),
        sl.cancel(" ", "job-1").await.unwrap_err(),
        sl.stream("", "job-1").await.err().unwrap(),
    ] {
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("endpoint"), "{e}");
    }
    assert!(state.lock().unwrap().seen.is_empty(), "nothing was sent");
    assert!(JobRequest::new("", json!({})).is_err());
}

// ---------------------------------------------------------------------------------
// The conformance suite against the contract server (and the runtime fake for jobs).

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_suite_passes_against_the_contract_server() {
    use cloud_atlas::testing::{self, Outcome, SuiteOptions};

    let prism = tokio::task::spawn_blocking(|| Prism::start(SPEC))
        .await
        .unwrap();
    let (runtime_url, _state) = runpod_runtime::serve().await;
    let rp = builder(&prism.base_url())
        .with_serverless_base_url(runtime_url)
        .build()
        .unwrap();
    let opts = SuiteOptions {
        // Prism answers every create with the spec's example pod, an RTX 4090.
        gpu: Some(Gpu::RTX_4090),
        serverless_endpoint: Some("ep1".into()),
        ..SuiteOptions::contract_server()
    };
    let report = testing::run_all(&rp, &opts).await;
    println!("{report}");
    report.assert_passed();
    for name in [
        "spawn_get_list_terminate",
        "ports_get_urls",
        "stop_start",
        "gpu_types_have_prices",
        "serverless_run_status",
        "unoffered_gpu_is_validation",
        "max_runtime_is_held_or_refused",
        "undeclared_capabilities_are_unsupported",
    ] {
        let case = report.case(name).expect("case is reported");
        assert!(matches!(case.outcome, Outcome::Passed), "{case}");
    }
    prism.assert_no_violations();
}

/// The orchestrator reconciles its spend estimate against RunPod's billing API.
#[tokio::test]
async fn billing_feeds_spend_reconciliation() {
    use cloud_atlas::orchestrator::BillingSource;
    let prism = Prism::start("runpod/rest-v2.openapi.json");
    let rp = provider(&prism.base_url());
    let since = chrono::Utc::now() - chrono::Duration::hours(6);
    let billed = rp
        .billed_usd(&["7h9k2m4n6p".to_string(), "not-ours".to_string()], since)
        .await
        .unwrap();
    assert_eq!(billed.len(), 1, "{billed:?}");
    assert!((billed["7h9k2m4n6p"] - 12.34).abs() < 1e-9);
    prism.assert_no_violations();
}

/// The GPUs RunPod sells that the table used to lack, and a native gpuTypeId, create
/// pods whose bodies validate against the spec (`Checked`: refused before any call when
/// RunPod does not sell the GPU, e.g. a 40 GB A100).
#[tokio::test]
async fn new_and_native_gpus_create_valid_pods() {
    let prism = Prism::start(SPEC);
    let rp = Checked::new(Arc::new(provider(&prism.base_url())));
    for b in [
        ComputeRequest::builder().gpu(Gpu::A100_SXM4_80G),
        ComputeRequest::builder().gpu(Gpu::RTX_5090),
        ComputeRequest::builder().gpu(Gpu::H200_NVL),
        ComputeRequest::builder().gpu(Gpu::RTX_PRO_6000_SERVER),
        ComputeRequest::builder().native_gpu("NVIDIA RTX A4500"),
    ] {
        rp.spawn(&b.image("img").build().unwrap()).await.unwrap();
    }
    let before = prism.request_count();
    let e = rp
        .spawn(
            &ComputeRequest::builder()
                .gpu(Gpu::A100_40G)
                .image("img")
                .build()
                .unwrap(),
        )
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation, "{e}");
    assert_eq!(prism.request_count(), before, "refused before any call");
    prism.assert_no_violations();
}
