//! A local Vast.ai server with the shapes the official `vastai` CLI sees (trailing-slash
//! paths only, `{"instances": {...}}` on show, the Docker port map, keyset paging with
//! raw `after_token`s), keeping instances in memory and recording every request.
//!
//! Knobs on [`Fake`] script what a static contract server cannot: offers that are gone,
//! outbid spot instances, rents that fail after (or before) creating, 429s, failing
//! listings. It runs on its own thread and runtime, so any test can use it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Json, Router};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
pub struct Rec {
    pub method: String,
    pub path: String,
    pub query: String,
    pub body: String,
    pub auth: String,
}

#[derive(Default)]
pub struct Fake {
    pub offers: Vec<Value>,
    /// Offer ids that answer 404 no_such_ask (rented by someone else meanwhile).
    pub gone: Vec<u64>,
    /// Spot bids below this come back stopped (outbid).
    pub outbid_below: f64,
    /// Rent creates the instance, then answers 500.
    pub fail_after_create: bool,
    /// Rent answers 500 without creating anything.
    pub fail_before_create: bool,
    /// Rent creates the instance, then answers 200 `{"success": true}` without
    /// `new_contract`.
    pub answer_without_id: bool,
    /// Answer this many requests with 429 first.
    pub throttle: usize,
    /// Listing answers 503.
    pub fail_lists: bool,
    /// Answer this many rents with 429 first.
    pub throttle_rents: usize,
    pub instances: BTreeMap<u64, Value>,
    pub next_id: u64,
    pub recs: Vec<Rec>,
    pub unmatched: Vec<String>,
}

pub type Shared = Arc<Mutex<Fake>>;

fn record(s: &Shared, method: &Method, uri: &Uri, headers: &HeaderMap, body: &[u8]) -> bool {
    let mut f = s.lock().unwrap();
    f.recs.push(Rec {
        method: method.to_string(),
        path: uri.path().to_string(),
        query: uri.query().unwrap_or("").to_string(),
        body: String::from_utf8_lossy(body).into_owned(),
        auth: headers
            .get("authorization")
            .map(|v| v.to_str().unwrap().to_string())
            .unwrap_or_default(),
    });
    if f.throttle > 0 {
        f.throttle -= 1;
        return true;
    }
    false
}

fn too_frequent() -> Response {
    (
        StatusCode::TOO_MANY_REQUESTS,
        Json(json!({"detail": "API requests too frequent endpoint threshold=1.0"})),
    )
        .into_response()
}

pub fn offer(id: u64, price: f64) -> Value {
    json!({"id": id, "ask_contract_id": id, "machine_id": id + 1000, "gpu_name": "RTX 4090",
        "num_gpus": 1, "gpu_ram": 24564, "dph_total": price, "min_bid": price / 2.0,
        "reliability2": 0.995, "geolocation": "Oregon, US", "cuda_max_good": 12.4,
        "disk_space": 500.0, "verified": true, "rentable": true, "rented": false})
}

async fn bundles(
    State(s): State<Shared>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if record(&s, &method, &uri, &headers, &body) {
        return too_frequent();
    }
    Json(json!({"offers": s.lock().unwrap().offers.clone()})).into_response()
}

async fn rent(
    State(s): State<Shared>,
    Path(offer_id): Path<u64>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if record(&s, &method, &uri, &headers, &body) {
        return too_frequent();
    }
    let b: Value = serde_json::from_slice(&body).unwrap();
    let mut f = s.lock().unwrap();
    if f.throttle_rents > 0 {
        f.throttle_rents -= 1;
        return too_frequent();
    }
    if f.gone.contains(&offer_id) {
        return (StatusCode::NOT_FOUND, Json(json!({"success": false, "error": "invalid_args",
            "msg": format!("error 404/3603: no_such_ask Instance type by id {offer_id} is not available."),
            "ask_id": offer_id}))).into_response();
    }
    if f.fail_before_create {
        return (StatusCode::BAD_GATEWAY, "bad gateway").into_response();
    }
    let o = f
        .offers
        .iter()
        .find(|o| o["id"] == offer_id)
        .cloned()
        .unwrap();
    f.next_id += 1;
    let id = f.next_id;
    let outbid = b
        .get("price")
        .and_then(Value::as_f64)
        .is_some_and(|p| p < f.outbid_below);
    let env = b["env"].as_object().cloned().unwrap_or_default();
    let mut ports = serde_json::Map::new();
    for k in env.keys() {
        if let Some(p) = k.strip_prefix("-p ") {
            let inner = p.split(':').nth(1).unwrap();
            let (port, proto) = inner.split_once('/').unwrap_or((inner, "tcp"));
            let host: u64 = 40000 + port.parse::<u64>().unwrap() % 1000;
            ports.insert(
                format!("{port}/{proto}"),
                json!([{"HostIp": "0.0.0.0", "HostPort": host.to_string()}]),
            );
        }
    }
    let state = if outbid { "stopped" } else { "running" };
    let inst = json!({"id": id, "actual_status": if outbid { "exited" } else { "running" },
        "intended_status": state, "cur_state": state, "next_state": state,
        "label": b["label"], "image_uuid": b["image"], "gpu_name": o["gpu_name"], "gpu_ram": o["gpu_ram"],
        "num_gpus": o["num_gpus"], "dph_total": b.get("price").cloned().unwrap_or(o["dph_total"].clone()),
        "public_ipaddr": "198.51.100.7", "geolocation": o["geolocation"],
        "ports": ports, "start_date": 1_790_000_000.5,
        "extra_env": env.iter().map(|(k, v)| json!([k, v])).collect::<Vec<_>>()});
    f.instances.insert(id, inst);
    if f.fail_after_create {
        return (StatusCode::INTERNAL_SERVER_ERROR, "internal error").into_response();
    }
    if f.answer_without_id {
        return Json(json!({"success": true})).into_response();
    }
    Json(json!({"success": true, "new_contract": id})).into_response()
}

async fn instance(
    State(s): State<Shared>,
    Path(id): Path<u64>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if record(&s, &method, &uri, &headers, &body) {
        return too_frequent();
    }
    let mut f = s.lock().unwrap();
    match method {
        Method::GET => Json(json!({"instances": f.instances.get(&id).cloned()})).into_response(),
        Method::DELETE => match f.instances.remove(&id) {
            Some(_) => Json(json!({"success": true, "msg": "Instance destroyed successfully"}))
                .into_response(),
            None => (
                StatusCode::NOT_FOUND,
                Json(json!({"success": false, "error": "not_found", "msg": "Instance not found"})),
            )
                .into_response(),
        },
        _ => {
            let b: Value = serde_json::from_slice(&body).unwrap();
            let Some(inst) = f.instances.get_mut(&id) else {
                return (
                    StatusCode::NOT_FOUND,
                    Json(json!({"success": false, "error": "not_found", "msg": "Instance not found"})),
                )
                    .into_response();
            };
            let st = b["state"].as_str().unwrap().to_string();
            inst["intended_status"] = json!(st);
            inst["cur_state"] = json!(st);
            inst["actual_status"] = json!(if st == "running" { "running" } else { "exited" });
            Json(json!({"success": true})).into_response()
        }
    }
}

async fn list(
    State(s): State<Shared>,
    RawQuery(q): RawQuery,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    if record(&s, &method, &uri, &headers, b"") {
        return too_frequent();
    }
    if s.lock().unwrap().fail_lists {
        return (StatusCode::SERVICE_UNAVAILABLE, "unavailable").into_response();
    }
    let params: BTreeMap<String, String> =
        url::form_urlencoded::parse(q.unwrap_or_default().as_bytes())
            .into_owned()
            .collect();
    let limit: usize = params.get("limit").map_or(25, |l| l.parse().unwrap());
    assert!(limit <= 25, "the service caps pages at 25");
    let after: u64 = match params.get("after_token") {
        None => 0,
        Some(t) => match t.strip_prefix("tok-") {
            Some(n) => n.parse().unwrap(),
            // A JSON-quoted or otherwise mangled token.
            None => {
                return (
                    StatusCode::BAD_REQUEST,
                    Json(json!({"error": "invalid_token", "msg": "invalid after_token"})),
                )
                    .into_response()
            }
        },
    };
    let label: Option<String> = params
        .get("select_filters")
        .map(|f| serde_json::from_str::<Value>(f).expect("select_filters is JSON"))
        .and_then(|f| {
            f.pointer("/label/eq")
                .and_then(Value::as_str)
                .map(str::to_string)
        });
    let f = s.lock().unwrap();
    let matching: Vec<&Value> = f
        .instances
        .range(after + 1..)
        .map(|(_, v)| v)
        .filter(|v| label.as_deref().is_none_or(|l| v["label"] == l))
        .collect();
    let page: Vec<Value> = matching.iter().take(limit).map(|v| (*v).clone()).collect();
    let next = (matching.len() > limit).then(|| format!("tok-{}", page.last().unwrap()["id"]));
    Json(json!({"success": true, "instances_found": page.len(),
        "total_instances": f.instances.len(), "next_token": next, "instances": page}))
    .into_response()
}

async fn unmatched(State(s): State<Shared>, method: Method, uri: Uri) -> StatusCode {
    s.lock().unwrap().unmatched.push(format!("{method} {uri}"));
    StatusCode::NOT_FOUND
}

pub fn start(setup: impl FnOnce(&mut Fake)) -> (String, Shared) {
    let mut f = Fake {
        offers: vec![
            offer(101, 0.40),
            offer(102, 0.45),
            offer(103, 0.50),
            offer(104, 0.55),
        ],
        next_id: 9000,
        ..Fake::default()
    };
    setup(&mut f);
    let state: Shared = Arc::new(Mutex::new(f));
    // Trailing-slash routes only, as the service is called by the CLI.
    let app = Router::new()
        .route("/api/v0/bundles/", post(bundles))
        .route("/api/v0/asks/{id}/", put(rent))
        .route(
            "/api/v0/instances/{id}/",
            get(instance).put(instance).delete(instance),
        )
        .route("/api/v1/instances/", get(list))
        .fallback(unmatched)
        .with_state(Arc::clone(&state));
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.set_nonblocking(true).unwrap();
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(l).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    (format!("http://{addr}"), state)
}

/// Recorded requests with `method` whose path starts with `prefix`.
pub fn recs(s: &Shared, method: &str, prefix: &str) -> Vec<Rec> {
    s.lock()
        .unwrap()
        .recs
        .iter()
        .filter(|r| r.method == method && r.path.starts_with(prefix))
        .cloned()
        .collect()
}
