//! RunPod provider against Prism running RunPod's published REST v2 spec (every request
//! must validate), plus what a static contract server cannot show, against small local
//! servers: reconciling a create that answered 500 after creating the pod, pacing from
//! `RateLimit` headers, and the serverless runtime (built from the docs' samples).

mod support;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
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
use support::prism::{fixture, Prism};

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
    seq: usize,
}

type Pods = Arc<Mutex<PodServer>>;

async fn create_pod(State(s): State<Pods>, Json(body): Json<Value>) -> impl IntoResponse {
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
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [("content-type", "application/problem+json")],
        r#"{"title":"Internal Server Error","status":500,"detail":"upstream error"}"#,
    )
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
    let state: Pods = Arc::new(Mutex::new(PodServer {
        make,
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

fn sample(name: &str) -> Value {
    let p = fixture(&format!("runpod/samples/serverless-{name}.response.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[derive(Default)]
struct Runtime {
    /// job id → (mode, polls so far)
    jobs: HashMap<String, (String, usize)>,
    seen: Vec<String>,
    seq: usize,
}

type Rt = Arc<Mutex<Runtime>>;

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some("Bearer rp_placeholder_key")
}

fn new_job(s: &mut Runtime, mode: &str) -> String {
    s.seq += 1;
    let id = format!("job-{}-u1", s.seq);
    s.jobs.insert(id.clone(), (mode.to_string(), 0));
    id
}

async fn rt_run(
    State(s): State<Rt>,
    Path((ep, op)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
    h: HeaderMap,
    Json(body): Json<Value>,
) -> impl IntoResponse {
    if !authorized(&h) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized"})),
        );
    }
    let mode = body["input"]["mode"]
        .as_str()
        .unwrap_or("complete")
        .to_string();
    let id = {
        let mut s = s.lock().unwrap();
        s.seen
            .push(format!("{op} {ep} wait={:?} body={body}", q.get("wait")));
        new_job(&mut s, &mode)
    };
    match (op.as_str(), mode.as_str()) {
        ("run", _) => {
            let mut v = sample("run");
            v["id"] = json!(id);
            (StatusCode::OK, Json(v))
        }
        ("runsync", "complete") => {
            let mut v = sample("runsync");
            v["id"] = json!(id);
            (StatusCode::OK, Json(v))
        }
        ("runsync", "queued") => (
            StatusCode::OK,
            Json(json!({"id": id, "status": "IN_QUEUE"})),
        ),
        ("runsync", _) => {
            // Honour RunPod's wait, far longer than the client's timeout.
            tokio::time::sleep(Duration::from_secs(10)).await;
            (
                StatusCode::OK,
                Json(json!({"id": id, "status": "IN_PROGRESS"})),
            )
        }
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such operation"})),
        ),
    }
}

async fn rt_job(
    State(s): State<Rt>,
    Path((ep, op, job)): Path<(String, String, String)>,
    h: HeaderMap,
) -> impl IntoResponse {
    if !authorized(&h) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized"})),
        );
    }
    let mut s = s.lock().unwrap();
    s.seen.push(format!("{op} {ep} {job}"));
    let Some((mode, polls)) = s.jobs.get_mut(&job) else {
        return (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "job not found"})),
        );
    };
    let n = *polls;
    if op == "stream" || op == "status" {
        *polls += 1;
    }
    let chunk = |i: usize| {
        let mut c = sample("stream")[0].clone();
        c["output"]["text"] = json!([format!(" tok{i}")]);
        c["metrics"]["stream_index"] = json!(i);
        c
    };
    let v = match (op.as_str(), mode.as_str()) {
        ("status", "fail") => {
            json!({"id": job, "status": "FAILED", "delayTime": 10, "executionTime": 5, "error": "handler raised ValueError: bad prompt"})
        }
        ("status", "timeout") => {
            json!({"id": job, "status": "TIMED_OUT", "error": "job exceeded executionTimeout of 5000 ms"})
        }
        ("status", "queued") if n < 2 => json!({"id": job, "status": "IN_PROGRESS"}),
        ("status", _) => {
            let mut v = sample("status");
            v["id"] = json!(job);
            v
        }
        ("stream", "stream") => match n {
            0 => json!({"status": "IN_PROGRESS", "stream": [chunk(0)]}),
            1 => json!({"status": "IN_PROGRESS", "stream": [chunk(1), chunk(2)]}),
            2 => json!({"status": "IN_PROGRESS", "stream": []}),
            3 => json!({"status": "COMPLETED", "stream": [chunk(3)]}),
            _ => json!({"status": "COMPLETED", "stream": []}),
        },
        // The docs' bare-array form: chunks first, then nothing once done.
        ("stream", "array") => match n {
            0 => sample("stream"),
            _ => json!([]),
        },
        ("stream", "fail") => json!({"status": "FAILED", "stream": []}),
        ("stream", "timeout") => json!({"status": "TIMED_OUT", "stream": []}),
        ("stream", _) => json!({"status": "COMPLETED", "stream": []}),
        ("cancel", _) => {
            let mut v = sample("cancel");
            v["id"] = json!(job);
            v
        }
        ("retry", _) => {
            let mut v = sample("retry");
            v["id"] = json!(job);
            v
        }
        _ => {
            return (
                StatusCode::NOT_FOUND,
                Json(json!({"error": "no such operation"})),
            )
        }
    };
    (StatusCode::OK, Json(v))
}

async fn rt_endpoint(
    State(s): State<Rt>,
    Path((ep, op)): Path<(String, String)>,
    h: HeaderMap,
) -> impl IntoResponse {
    if !authorized(&h) {
        return (
            StatusCode::UNAUTHORIZED,
            Json(json!({"error": "unauthorized"})),
        );
    }
    s.lock().unwrap().seen.push(format!("{op} {ep}"));
    match op.as_str() {
        "purge-queue" => (StatusCode::OK, Json(sample("purge-queue"))),
        "health" => (StatusCode::OK, Json(sample("health"))),
        _ => (
            StatusCode::NOT_FOUND,
            Json(json!({"error": "no such operation"})),
        ),
    }
}

async fn rt_purge(State(s): State<Rt>, Path(ep): Path<String>, h: HeaderMap) -> impl IntoResponse {
    rt_endpoint(State(s), Path((ep, "purge-queue".to_string())), h).await
}

async fn runtime() -> (RunPod, Rt) {
    let state: Rt = Arc::new(Mutex::new(Runtime::default()));
    let app = Router::new()
        .route("/{ep}/{op}", post(rt_run).get(rt_endpoint))
        .route("/{ep}/purge-queue", post(rt_purge))
        .route("/{ep}/{op}/{job}", get(rt_job).post(rt_job))
        .with_state(Arc::clone(&state));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    let rp = builder("http://127.0.0.1:9")
        .with_serverless_base_url(format!("http://{addr}"))
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
