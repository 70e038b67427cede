//! A local RunPod serverless runtime (`/{endpoint}/run`, `/runsync`, `/status/{job}`,
//! `/stream/{job}`, `/cancel/{job}`, `/retry/{job}`, `/purge-queue`, `/health`) answering
//! with the samples from RunPod's docs (`fixtures/runpod/samples/`). The runtime API has
//! no published spec, so this server is built from those samples.
//!
//! A job's `input.mode` picks its script: `complete` (default), `queued` (runsync answers
//! IN_QUEUE, status completes on the third poll), `fail`, `timeout`, `slow` (runsync holds
//! 10 s), `stream` (four chunks over several polls) and `array` (the docs' bare-array stream).
#![allow(dead_code)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{json, Value};

use super::prism::fixture;

/// The API key the runtime accepts (`Authorization: Bearer …`); anything else is 401.
pub const KEY: &str = "rp_placeholder_key";

pub fn sample(name: &str) -> Value {
    let p = fixture(&format!("runpod/samples/serverless-{name}.response.json"));
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

#[derive(Default)]
pub struct Runtime {
    /// job id → (mode, polls so far)
    pub jobs: HashMap<String, (String, usize)>,
    /// Every request, one line each (`{op} {endpoint} …`).
    pub seen: Vec<String>,
    pub seq: usize,
}

pub type Rt = Arc<Mutex<Runtime>>;

fn authorized(h: &HeaderMap) -> bool {
    h.get("authorization").and_then(|v| v.to_str().ok()) == Some(format!("Bearer {KEY}").as_str())
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

/// Serve the runtime on a free loopback port (on the current tokio runtime); returns
/// its base URL (`http://127.0.0.1:PORT`) and its state.
pub async fn serve() -> (String, Rt) {
    let state: Rt = Arc::new(Mutex::new(Runtime::default()));
    let app = Router::new()
        .route("/{ep}/{op}", post(rt_run).get(rt_endpoint))
        .route("/{ep}/purge-queue", post(rt_purge))
        .route("/{ep}/{op}/{job}", get(rt_job).post(rt_job))
        .with_state(Arc::clone(&state));
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = l.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(l, app).await.unwrap() });
    (format!("http://{addr}"), state)
}
