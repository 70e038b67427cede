//! Orchestrator bench with 100,000 tracked sessions on the in-memory mock cloud and
//! the embedded SQLite session store (the default):
//! - median `touch` latency (criterion);
//! - RSS per tracked session (`/proc/self/status` VmRSS before/after, with the mock
//!   cloud's own share measured separately and subtracted);
//! - CPU cost of an expiry sweep when 1% expire: the deadline structure alone
//!   (criterion, at 0.1%, 1% and 10% to show it is proportional to the expiring
//!   entries), and end to end (1,000 of 100,000 sessions idle out and are terminated on
//!   the mock), CPU time read from `/proc/self/task/*/schedstat`.
//!
//! Run: `cargo bench -p cloud-atlas --bench orchestrator`. Figures go in `benches/README.md`.

use std::sync::Arc;
use std::time::Duration;

use cloud_atlas::orchestrator::schedule::Deadlines;
use cloud_atlas::orchestrator::store::SqliteSessionStore;
use cloud_atlas::orchestrator::{
    EventKind, Orchestrator, OrchestratorConfig, Recv, SessionRequest, ShutdownPolicy,
};
use cloud_atlas::providers::mock::{Mock, MockOptions};
use cloud_atlas::{ComputeRequest, Gpu, Provider};
use criterion::{black_box, Criterion};

const N: usize = 100_000;

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmRSS line")
}

/// CPU time of every thread of this process, in nanoseconds.
fn cpu_ns() -> u64 {
    let mut total = 0;
    for e in std::fs::read_dir("/proc/self/task")
        .expect("/proc/self/task")
        .flatten()
    {
        if let Ok(s) = std::fs::read_to_string(e.path().join("schedstat")) {
            total += s
                .split_whitespace()
                .next()
                .and_then(|x| x.parse::<u64>().ok())
                .unwrap_or(0);
        }
    }
    total
}

fn mock() -> Mock {
    Mock::in_memory_with(MockOptions {
        boot_delay: Duration::ZERO,
        ..MockOptions::default()
    })
}

fn compute() -> ComputeRequest {
    ComputeRequest::builder()
        .gpu(Gpu::L4)
        .image("ghcr.io/acme/app:1")
        .port("8000/http")
        .build()
        .unwrap()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();

    // The mock cloud's own memory for N machines (it lives in this process too).
    let r0 = rss_kib();
    let baseline = mock();
    rt.block_on(async {
        for _ in 0..N {
            baseline.spawn(&compute()).await.unwrap();
        }
    });
    let r1 = rss_kib();

    // N tracked sessions: 99% with a long idle TTL, the last 1% idle out after 20 s.
    let cloud = mock();
    let mut cfg = OrchestratorConfig::default();
    cfg.watch_running = false;
    cfg.reaper.enabled = false;
    cfg.spend_interval = Duration::from_secs(3600);
    cfg.heartbeat_flush_interval = Duration::from_secs(5);
    cfg.event_capacity = 4096;
    let store = SqliteSessionStore::open(dir.path().join("sessions.sqlite")).unwrap();
    let orch = rt
        .block_on(
            Orchestrator::builder()
                .store(store)
                .provider(cloud.clone())
                .config(cfg)
                .start(),
        )
        .unwrap();
    let short = N / 100;
    let t_fill = std::time::Instant::now();
    let ids: Vec<String> = rt.block_on(async {
        let mut ids = Vec::with_capacity(N);
        for i in 0..N {
            let idle = if i >= N - short {
                Duration::from_secs(20)
            } else {
                Duration::from_secs(3600)
            };
            let r = SessionRequest::new("mock", format!("user-{}", i % 1000), compute())
                .with_idle_ttl(idle);
            ids.push(orch.spawn(r).await.unwrap().session.id);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        ids
    });
    let fill = t_fill.elapsed();
    let r2 = rss_kib();
    let mut sub = orch.subscribe_all();

    // Idle CPU with N tracked sessions and nothing expiring: 3 s.
    let c0 = cpu_ns();
    rt.block_on(async { tokio::time::sleep(Duration::from_secs(3)).await });
    let idle_cpu = cpu_ns() - c0;

    // End to end: the 1% short sessions idle out (20 s after spawn) and are terminated.
    let c1 = cpu_ns();
    let t1 = std::time::Instant::now();
    let ended = rt.block_on(async {
        let mut n = 0;
        while n < short {
            match tokio::time::timeout(Duration::from_secs(120), sub.recv())
                .await
                .expect("expiries within 2 min")
            {
                Recv::Event(e) if matches!(e.kind, EventKind::Terminated { .. }) => n += 1,
                Recv::Lagged(_) => panic!("bench subscriber lagged"),
                _ => {}
            }
        }
        n
    });
    let sweep_cpu = cpu_ns() - c1;
    let sweep_wall = t1.elapsed();
    let remaining = orch.len();

    // touch latency (criterion), on the 99% that stay.
    let mut c = Criterion::default()
        .sample_size(50)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3))
        .configure_from_args();
    {
        let _g = rt.enter();
        let mut i = 0usize;
        let live = N - short;
        c.bench_function("orchestrator/touch (100k sessions)", |b| {
            b.iter(|| {
                i = (i + 7919) % live;
                orch.touch(black_box(&ids[i])).unwrap();
            })
        });
    }

    // The same call on one session over and over: the code path without cache misses.
    {
        let _g = rt.enter();
        let hot = ids[0].clone();
        c.bench_function("orchestrator/touch (one hot session)", |b| {
            b.iter(|| orch.touch(black_box(&hot)).unwrap())
        });
    }
    // Median per touch over batches of 1,000 random-order touches across the 100k.
    let touch_median_ns = {
        let _g = rt.enter();
        let live = N - short;
        let mut per = Vec::with_capacity(2000);
        let mut i = 0usize;
        for _ in 0..2000 {
            let t = std::time::Instant::now();
            for _ in 0..1000 {
                i = (i + 7919) % live;
                orch.touch(black_box(&ids[i])).unwrap();
            }
            per.push(t.elapsed().as_nanos() as f64 / 1000.0);
        }
        per.sort_by(f64::total_cmp);
        per[per.len() / 2]
    };

    // The deadline structure alone: drain when 0.1%, 1% and 10% of 100k are due.
    for pct in [0.1f64, 1.0, 10.0] {
        let due = ((N as f64) * pct / 100.0) as usize;
        let name = format!("orchestrator/expiry sweep, {pct}% of 100k due");
        let (mut dl, keys) = rt.block_on(async {
            let mut d = Deadlines::new();
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            let keys: Vec<Arc<str>> = (0..N)
                .map(|i| Arc::from(format!("session-{i:06}")))
                .collect();
            for k in &keys {
                d.schedule(Arc::clone(k), far);
            }
            (d, keys)
        });
        c.bench_function(&name, |b| {
            b.iter_custom(|iters| {
                rt.block_on(async {
                    let mut total = Duration::ZERO;
                    for it in 0..iters {
                        let now = tokio::time::Instant::now();
                        let start = (it as usize * due) % (N - due);
                        for k in &keys[start..start + due] {
                            dl.schedule(Arc::clone(k), now);
                        }
                        tokio::time::sleep(Duration::from_millis(2)).await;
                        let t = std::time::Instant::now();
                        let fired = dl.drain_expired().await;
                        total += t.elapsed();
                        assert_eq!(fired.len(), due);
                        let far = tokio::time::Instant::now() + Duration::from_secs(3600);
                        for k in fired {
                            dl.schedule(k, far);
                        }
                    }
                    total
                })
            })
        });
    }

    println!();
    println!("RESULT fill: {N} sessions spawned in {:.1} s ({:.1} µs/spawn incl. SQLite intent + record)", fill.as_secs_f64(), fill.as_secs_f64() * 1e6 / N as f64);
    println!("RESULT rss: mock alone {:.0} B/machine; orchestrator+store+mock {:.0} B/session; orchestrator share {:.0} B/session",
        (r1 - r0) as f64 * 1024.0 / N as f64,
        (r2 - r1) as f64 * 1024.0 / N as f64,
        (r2 as f64 - r1 as f64 - (r1 - r0) as f64) * 1024.0 / N as f64);
    println!(
        "RESULT touch median: {touch_median_ns:.0} ns per touch (median of 2,000 batches of 1,000 random-order touches over {} sessions)",
        N - short
    );
    println!(
        "RESULT idle cpu: {:.1} ms CPU over 3 s with {N} tracked sessions and no expiries",
        idle_cpu as f64 / 1e6
    );
    println!("RESULT e2e sweep: {ended} of {N} sessions expired; {:.1} ms CPU total ({:.1} µs CPU per expiry, incl. mock terminate + SQLite writes + events) over {:.2} s wall (window includes waiting for the deadline); {remaining} still tracked",
        sweep_cpu as f64 / 1e6, sweep_cpu as f64 / 1e3 / ended as f64, sweep_wall.as_secs_f64());
    let report = rt
        .block_on(orch.shutdown(ShutdownPolicy::Terminate))
        .unwrap();
    assert_eq!(report.left_tracked, 0);
    assert_eq!(cloud.live_count().unwrap(), 0);
    drop(baseline);
    c.final_summary();
}
