//! Whole-server benchmarks of `atlas serve` (not tests; `benches/serve.sh` runs them).
//!
//! Drives a real `atlas serve` process (`$ATLAS_BIN`, a release build) on 127.0.0.1
//! with the mock cloud and SQLite, and measures, each next to a baseline taken in the
//! same run:
//! - time from process start to the first `200` on `/healthz` (baseline: `atlas --version`);
//! - idle RSS after start, and RSS with 10,000 tracked sessions;
//! - `atlas session ls --server` end to end (baseline: `atlas --version`);
//! - with 10,000 sessions: `GET /v1/sessions?user=…`, the full listing, and touch with 64
//!   concurrent clients, all with `wrk` (Debian's), next to `/healthz` under the same load;
//! - 1,000 SSE subscribers: time from an event's emission to its arrival at the last of them;
//! - the dashboard's first-load bytes.
//!
//! Every loop is bounded in count and time; all traffic goes to 127.0.0.1.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use eventsource_stream::Eventsource;
use futures::StreamExt;
use serde_json::{json, Value};

const TOKEN: &str = "bench-admin-token-0123456789";

fn atlas_bin() -> PathBuf {
    let p = std::env::var_os("ATLAS_BIN").map(PathBuf::from).expect(
        "set ATLAS_BIN to a release atlas binary (benches/serve.sh does: cargo build --release --bin atlas)",
    );
    assert!(p.exists(), "{} does not exist", p.display());
    p
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Serve {
    child: Child,
    port: u16,
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn home() -> tempfile::TempDir {
    let d = tempfile::tempdir().unwrap();
    std::fs::write(
        d.path().join("atlas.toml"),
        "default_provider = \"mock\"\n[mock]\nboot_delay = \"0s\"\n",
    )
    .unwrap();
    d
}

fn command(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(atlas_bin());
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("ATLAS_HOME", dir.join("data"))
        .env("ATLAS_CONFIG", dir.join("atlas.toml"))
        .env("ATLAS_ADMIN_TOKEN", TOKEN);
    c
}

/// One raw `GET /healthz`; true on a 200.
fn healthz(port: u16) -> bool {
    let Ok(mut s) = TcpStream::connect(("127.0.0.1", port)) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if s.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
        .is_err()
    {
        return false;
    }
    let mut buf = [0u8; 12];
    s.read_exact(&mut buf).is_ok() && buf.starts_with(b"HTTP/1.1 200")
}

/// Start `atlas serve`; returns it and the time to its first healthy answer.
fn start(dir: &Path) -> (Serve, Duration) {
    let port = free_port();
    let bind = format!("127.0.0.1:{port}");
    let t = Instant::now();
    let child = command(dir, &["serve", "--bind", &bind, "--no-reaper"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let s = Serve { child, port };
    loop {
        if healthz(port) {
            return (s, t.elapsed());
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "atlas serve did not start"
        );
        std::thread::sleep(Duration::from_micros(500));
    }
}

fn rss_mib(pid: u32) -> f64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<f64>().ok())
        .map_or(f64::NAN, |kib| kib / 1024.0)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v[i.min(v.len() - 1)]
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

/// Median wall time of `n` runs of a command.
fn time_runs(n: usize, mut make: impl FnMut() -> Command) -> (f64, f64) {
    let mut t = Vec::new();
    for _ in 0..n {
        let start = Instant::now();
        let out = make()
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        t.push(ms(start.elapsed()));
    }
    (pct(&mut t.clone(), 0.5), pct(&mut t, 0.95))
}

struct Wrk {
    rps: f64,
    p50: f64,
    p99: f64,
}

/// Run wrk (bounded by `secs`) and read its latency distribution.
fn wrk(url: &str, conns: u32, secs: u32, script: Option<&Path>) -> Wrk {
    let mut c = Command::new("wrk");
    let threads = conns.clamp(1, 2).to_string();
    c.args([
        "-t",
        &threads,
        "-c",
        &conns.to_string(),
        "-d",
        &format!("{secs}s"),
        "--latency",
        "--timeout",
        "5s",
    ])
    .args(["-H", &format!("Authorization: Bearer {TOKEN}")]);
    if let Some(s) = script {
        c.arg("-s").arg(s);
    }
    let out = c
        .arg(url)
        .output()
        .expect("wrk is needed: apt-get install wrk");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success() && text.contains("Requests/sec:"),
        "wrk failed: {text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let field = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1).map(str::to_string))
            .map_or(f64::NAN, |v| parse_wrk_time(&v))
    };
    let rps = text
        .lines()
        .find(|l| l.starts_with("Requests/sec:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN);
    let non2xx = text.lines().find(|l| l.contains("Non-2xx"));
    assert!(non2xx.is_none(), "wrk saw errors: {text}");
    Wrk {
        rps,
        p50: field("50%"),
        p99: field("99%"),
    }
}

/// wrk times (`812.00us`, `1.20ms`, `2.01s`) in ms.
fn parse_wrk_time(v: &str) -> f64 {
    let (num, mult) = if let Some(n) = v.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = v.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = v.strip_suffix('s') {
        (n, 1000.0)
    } else if let Some(n) = v.strip_suffix('m') {
        (n, 60_000.0)
    } else {
        (v, 1.0)
    };
    num.parse::<f64>().map_or(f64::NAN, |x| x * mult)
}

async fn spawn_many(port: u16, n: usize, users: usize, conc: usize) -> Vec<String> {
    let http = reqwest::Client::new();
    let ids = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..conc {
        let (http, ids, next) = (http.clone(), Arc::clone(&ids), Arc::clone(&next));
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= n {
                    break;
                }
                let r = http
                    .post(format!("http://127.0.0.1:{port}/v1/sessions"))
                    .bearer_auth(TOKEN)
                    .json(&json!({"user": format!("u{}", i % users), "gpu": "l4", "image": "x", "idle_ttl": "8h", "max_runtime": "8h"}))
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 201);
                let v: Value = r.json().await.unwrap();
                ids.lock().unwrap().push(v["session"]["id"].as_str().unwrap().to_string());
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let v = ids.lock().unwrap().clone();
    v
}

/// Per session: subscribers that got its `spawned` event, and the longest delay (ms).
type Arrivals = Arc<Mutex<std::collections::HashMap<String, (usize, f64)>>>;

/// 1,000 subscribers; `events` spawns; per event, the delay until the last subscriber has it.
async fn fanout(port: u16, subscribers: usize, events: usize) -> Vec<f64> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .build()
        .unwrap();
    let list: Value = http
        .get(format!("http://127.0.0.1:{port}/v1/sessions?user=nobody"))
        .bearer_auth(TOKEN)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let from = list["event_id"].as_str().unwrap().to_string();
    // arrival[(session)] = latest arrival over subscribers, and the count.
    let arrivals: Arrivals = Arc::default();
    let ready = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    for _ in 0..subscribers {
        let (http, from, arrivals, ready) = (
            http.clone(),
            from.clone(),
            Arc::clone(&arrivals),
            Arc::clone(&ready),
        );
        tokio::spawn(async move {
            let r = http
                .get(format!("http://127.0.0.1:{port}/v1/events?user=fan"))
                .bearer_auth(TOKEN)
                .header("Last-Event-ID", from)
                .send()
                .await
                .unwrap();
            ready.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            let mut es = r.bytes_stream().eventsource();
            while let Some(Ok(e)) = es.next().await {
                let now = chrono::Utc::now();
                let v: Value = serde_json::from_str(&e.data).unwrap();
                if v["type"] != "spawned" {
                    continue;
                }
                let at: chrono::DateTime<chrono::Utc> = v["at"].as_str().unwrap().parse().unwrap();
                let delay = (now - at).num_microseconds().unwrap_or(0) as f64 / 1000.0;
                let mut a = arrivals.lock().unwrap();
                let e = a
                    .entry(v["session_id"].as_str().unwrap().to_string())
                    .or_insert((0, 0.0));
                e.0 += 1;
                e.1 = e.1.max(delay);
            }
        });
    }
    let t = Instant::now();
    while ready.load(std::sync::atomic::Ordering::SeqCst) < subscribers {
        assert!(
            t.elapsed() < Duration::from_secs(60),
            "subscribers did not connect"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    for _ in 0..events {
        let r = http
            .post(format!("http://127.0.0.1:{port}/v1/sessions"))
            .bearer_auth(TOKEN)
            .json(&json!({"user": "fan", "image": "x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let t = Instant::now();
    loop {
        let done = {
            let a = arrivals.lock().unwrap();
            a.len() == events && a.values().all(|(n, _)| *n == subscribers)
        };
        if done {
            break;
        }
        assert!(
            t.elapsed() < Duration::from_secs(30),
            "not every subscriber got every event"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let a = arrivals.lock().unwrap();
    a.values().map(|(_, d)| *d).collect()
}

fn main() {
    // `cargo bench` passes `--bench`; nothing else is expected.
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut report = String::new();
    let mut line = |s: String| {
        println!("{s}");
        report.push_str(&s);
        report.push('\n');
    };

    // 1. Start-up and idle RSS.
    let base = home();
    let (ver50, _) = time_runs(20, || command(base.path(), &["--version"]));
    let mut starts = Vec::new();
    let mut rss = Vec::new();
    for _ in 0..10 {
        let d = home();
        let (s, t) = start(d.path());
        starts.push(ms(t));
        std::thread::sleep(Duration::from_secs(1));
        rss.push(rss_mib(s.child.id()));
    }
    let start50 = pct(&mut starts.clone(), 0.5);
    let start_max = pct(&mut starts, 1.0);
    let rss50 = pct(&mut rss, 0.5);
    line(format!("startup: /healthz 200 after {start50:.1} ms median, {start_max:.1} ms max (10 fresh starts); atlas --version {ver50:.2} ms (ratio {:.1}x)", start50 / ver50));
    line(format!("idle RSS: {rss50:.1} MiB median"));

    // 2. `atlas session ls --server` end to end, 10 sessions.
    let d = home();
    let (s, _) = start(d.path());
    rt.block_on(spawn_many(s.port, 10, 5, 4));
    let url = format!("http://127.0.0.1:{}", s.port);
    let (ls50, ls95) = time_runs(30, || {
        command(d.path(), &["session", "ls", "--server", &url])
    });
    let (lsj50, _) = time_runs(30, || {
        command(d.path(), &["session", "ls", "--server", &url, "-o", "json"])
    });
    line(format!("atlas session ls --server (10 sessions): {ls50:.2} ms median, {ls95:.2} ms p95 (json {lsj50:.2} ms); atlas --version {ver50:.2} ms (ratio {:.1}x)", ls50 / ver50));
    drop(s);

    // 3. 10,000 sessions on SQLite.
    let d = home();
    let (s, _) = start(d.path());
    let t = Instant::now();
    let ids = rt.block_on(spawn_many(s.port, 10_000, 1_000, 32));
    line(format!(
        "seeded 10,000 sessions (1,000 users) in {:.1} s",
        t.elapsed().as_secs_f64()
    ));
    std::thread::sleep(Duration::from_secs(2));
    line(format!(
        "RSS with 10,000 sessions: {:.1} MiB",
        rss_mib(s.child.id())
    ));
    let dir = tempfile::tempdir().unwrap();
    let ids_file = dir.path().join("ids.txt");
    std::fs::write(&ids_file, ids.join("\n")).unwrap();
    let touch_lua = dir.path().join("touch.lua");
    std::fs::write(
        &touch_lua,
        format!(
            "local ids = {{}}\nfor l in io.lines(\"{}\") do ids[#ids + 1] = l end\nwrk.method = \"POST\"\nrequest = function()\n  return wrk.format(\"POST\", \"/v1/sessions/\" .. ids[math.random(#ids)] .. \"/touch\")\nend\n",
            ids_file.display()
        ),
    )
    .unwrap();
    let h1 = wrk(&format!("http://127.0.0.1:{}/healthz", s.port), 1, 5, None);
    let user = wrk(
        &format!("http://127.0.0.1:{}/v1/sessions?user=u42", s.port),
        1,
        10,
        None,
    );
    line(format!("GET /v1/sessions?user=… (10 of 10,000), 1 client: p50 {:.2} ms, p99 {:.2} ms, {:.0} req/s; /healthz p99 {:.2} ms (ratio {:.1}x)", user.p50, user.p99, user.rps, h1.p99, user.p99 / h1.p99));
    let full = wrk(
        &format!("http://127.0.0.1:{}/v1/sessions", s.port),
        1,
        10,
        None,
    );
    line(format!(
        "GET /v1/sessions (all 10,000), 1 client: p50 {:.2} ms, p99 {:.2} ms, {:.1} req/s",
        full.p50, full.p99, full.rps
    ));
    let h64 = wrk(
        &format!("http://127.0.0.1:{}/healthz", s.port),
        64,
        10,
        None,
    );
    let touch = wrk(
        &format!("http://127.0.0.1:{}", s.port),
        64,
        10,
        Some(&touch_lua),
    );
    line(format!("touch, 64 clients: {:.0} req/s, p50 {:.2} ms, p99 {:.2} ms; /healthz with 64 clients {:.0} req/s, p99 {:.2} ms (throughput ratio {:.2})", touch.rps, touch.p50, touch.p99, h64.rps, h64.p99, touch.rps / h64.rps));

    // 4. 1,000 SSE subscribers (with the 10,000 sessions still tracked).
    let mut lag = rt.block_on(fanout(s.port, 1_000, 50));
    line(format!(
        "SSE fan-out, 1,000 subscribers, 50 events: last subscriber p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        pct(&mut lag.clone(), 0.5),
        pct(&mut lag.clone(), 0.99),
        pct(&mut lag, 1.0)
    ));
    drop(s);

    // 5. Dashboard bytes.
    let bytes = cloud_atlas_web::dashboard::INDEX_HTML.len()
        + cloud_atlas_web::dashboard::APP_JS.len()
        + cloud_atlas_web::dashboard::APP_CSS.len();
    line(format!(
        "dashboard first load: {bytes} bytes ({:.1} KiB) in 3 files, no third-party requests",
        bytes as f64 / 1024.0
    ));
    if let Some(out) = std::env::var_os("BENCH_REPORT") {
        std::fs::write(out, report).unwrap();
    }
}
