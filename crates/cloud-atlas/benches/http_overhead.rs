//! Per-request overhead of the shared HTTP layer (`ApiClient`) over a bare
//! `reqwest::Client`, both doing GET + JSON decode against the same local server in
//! the same run. Prints the ratio of criterion's mean times per request and a paired
//! A/B ratio (interleaved rounds, robust to load on a shared machine); target ≤ 1.2×.
//!
//! Run: `cargo bench -p cloud-atlas --bench http_overhead` (see benches/README.md).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::get;
use axum::{Json, Router};
use cloud_atlas::auth::Secret;
use cloud_atlas::http::{ApiAuth, ApiClient, HttpClient, HttpOptions, RetryConfig};
use criterion::{Criterion, Throughput};
use serde::{Deserialize, Serialize};

#[derive(Debug, Serialize, Deserialize)]
struct Pod {
    id: String,
    name: String,
    status: String,
    gpu_count: u32,
    cost_per_hr: f64,
    ports: Vec<String>,
}

fn pod() -> Pod {
    Pod {
        id: "pod-1234abcd".into(),
        name: "atlas-0123456789ab".into(),
        status: "RUNNING".into(),
        gpu_count: 1,
        cost_per_hr: 2.99,
        ports: vec!["8000/http".into(), "22/tcp".into()],
    }
}

const KEY: &str = "bench-key-not-a-secret";

/// Total nanoseconds and iterations per variant, over every criterion sample.
#[derive(Default)]
struct Tally {
    nanos: AtomicU64,
    iters: AtomicU64,
}

impl Tally {
    fn add(&self, d: Duration, iters: u64) {
        self.nanos.fetch_add(d.as_nanos() as u64, Ordering::Relaxed);
        self.iters.fetch_add(iters, Ordering::Relaxed);
    }
    fn mean_ns(&self) -> Option<f64> {
        let i = self.iters.load(Ordering::Relaxed);
        (i > 0).then(|| self.nanos.load(Ordering::Relaxed) as f64 / i as f64)
    }
}

/// The server runs on its own thread and runtime so it does not share the client's.
fn start_server() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let app = Router::new().route("/v2/pods/pod-1234abcd", get(|| async { Json(pod()) }));
            let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(l.local_addr().unwrap()).unwrap();
            axum::serve(l, app).await.unwrap();
        });
    });
    format!("http://{}", rx.recv().unwrap())
}

async fn bare_get(raw: &reqwest::Client, url: &str) -> Pod {
    raw.get(url)
        .bearer_auth(KEY)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap()
}

async fn api_get(api: &ApiClient) -> Pod {
    api.get("/v2/pods/pod-1234abcd")
        .operation("get")
        .json()
        .await
        .unwrap()
}

/// Interleaved A/B rounds (robust against load drifting on a shared machine): the
/// median over rounds of (ApiClient time / bare time) for `per_round` requests each.
fn paired_ratio(
    rt: &tokio::runtime::Runtime,
    raw: &reqwest::Client,
    api: &ApiClient,
    url: &str,
) -> f64 {
    let per_round = 300;
    let mut ratios: Vec<f64> = (0..25)
        .map(|_| {
            rt.block_on(async {
                let t0 = Instant::now();
                for _ in 0..per_round {
                    std::hint::black_box(bare_get(raw, url).await);
                }
                let b = t0.elapsed();
                let t1 = Instant::now();
                for _ in 0..per_round {
                    std::hint::black_box(api_get(api).await);
                }
                t1.elapsed().as_secs_f64() / b.as_secs_f64()
            })
        })
        .collect();
    ratios.sort_by(f64::total_cmp);
    ratios[ratios.len() / 2]
}

struct Setup {
    rt: tokio::runtime::Runtime,
    raw: reqwest::Client,
    api: ApiClient,
    url: String,
}

fn setup() -> Setup {
    let base = start_server();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    // Same transport settings on both sides.
    let options = HttpOptions::default();
    let raw = reqwest::Client::builder()
        .connect_timeout(options.connect_timeout)
        .user_agent(options.user_agent.clone())
        .pool_idle_timeout(Duration::from_secs(90))
        .build()
        .unwrap();
    let api = ApiClient::new(
        HttpClient::new(options).unwrap(),
        "bench",
        "rest",
        &base,
        ApiAuth::Bearer(Secret::new(KEY)),
    )
    .unwrap()
    .with_retry(RetryConfig::default());
    let url = format!("{base}/v2/pods/pod-1234abcd");
    Setup { rt, raw, api, url }
}

fn bench(c: &mut Criterion, s: &Setup, bare: &Arc<Tally>, layered: &Arc<Tally>) {
    let Setup { rt, raw, api, url } = s;
    let mut g = c.benchmark_group("http_overhead");
    g.throughput(Throughput::Elements(1));
    g.bench_function("bare_reqwest", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let tally = Arc::clone(bare);
            async move {
                let t0 = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(bare_get(raw, url).await);
                }
                let d = t0.elapsed();
                tally.add(d, iters);
                d
            }
        })
    });
    g.bench_function("api_client", |b| {
        b.to_async(rt).iter_custom(|iters| {
            let tally = Arc::clone(layered);
            async move {
                let t0 = Instant::now();
                for _ in 0..iters {
                    std::hint::black_box(api_get(api).await);
                }
                let d = t0.elapsed();
                tally.add(d, iters);
                d
            }
        })
    });
    g.finish();
}

fn main() {
    let bare = Arc::new(Tally::default());
    let layered = Arc::new(Tally::default());
    let mut c = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(2))
        .measurement_time(Duration::from_secs(6))
        .configure_from_args();
    let s = setup();
    bench(&mut c, &s, &bare, &layered);
    c.final_summary();
    if let (Some(b), Some(a)) = (bare.mean_ns(), layered.mean_ns()) {
        println!(
            "http_overhead: bare reqwest {:.1} µs/request, ApiClient {:.1} µs/request, ratio of means {:.3}x",
            b / 1000.0,
            a / 1000.0,
            a / b
        );
        // Only under `cargo bench` (which passes --bench), not in `cargo test` smoke mode.
        if std::env::args().any(|a| a == "--bench") {
            let paired = paired_ratio(&s.rt, &s.raw, &s.api, &s.url);
            println!(
                "http_overhead: paired A/B ratio (median of 25 rounds) {paired:.3}x (target <= 1.2x)"
            );
        }
    }
}
