//! Unit tests of the mock cloud.

use super::*;
use crate::spec::{JobRequest, JobStatus};
use crate::ProviderExt;
use futures::StreamExt;

fn req() -> ComputeRequest {
    ComputeRequest::builder()
        .gpu(Gpu::H100)
        .image("img")
        .port("8000/http")
        .port("22/tcp")
        .auth(crate::AuthMode::Bearer)
        .volume_gb(10)
        .build()
        .unwrap()
}

#[tokio::test(start_paused = true)]
async fn lifecycle_and_cost() {
    let m = Mock::in_memory();
    let c = m.spawn(&req()).await.unwrap();
    assert_eq!(c.status, ComputeStatus::Provisioning);
    assert!(c.auth.as_ref().unwrap().token.is_some());
    assert!(c.http_url().unwrap().starts_with("https://"));
    let c = m
        .wait_for(&c.id, ComputeStatus::Running, Duration::from_secs(5))
        .await
        .unwrap();
    assert!(
        c.auth.as_ref().unwrap().token.is_none(),
        "raw token only once"
    );
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let cost = m.accrued_usd(&c.id).unwrap();
    assert!((cost - 2.99).abs() < 0.01, "{cost}");
    m.stop(&c.id).await.unwrap();
    assert_eq!(m.get(&c.id).await.unwrap().status, ComputeStatus::Stopped);
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let stopped_cost = m.accrued_usd(&c.id).unwrap() - cost;
    assert!(stopped_cost > 0.0 && stopped_cost < 0.01, "{stopped_cost}");
    m.start(&c.id).await.unwrap();
    m.terminate(&c.id).await.unwrap();
    assert_eq!(m.get(&c.id).await.unwrap_err().kind(), ErrorKind::NotFound);
    assert_eq!(m.live_count().unwrap(), 0);
}

#[tokio::test]
async fn same_launch_is_one_machine_and_faults() {
    let m = Mock::in_memory();
    let r = req();
    m.inject(MockOp::Spawn, Fault::ErrorAfterCreate, 1);
    let e = m.spawn(&r).await.unwrap_err();
    assert!(e.is_ambiguous());
    let again = m.spawn(&r).await.unwrap();
    assert_eq!(m.list(&ListFilter::all()).await.unwrap().len(), 1);
    assert_eq!(again.name.as_deref(), Some(r.launch_name().as_str()));
    m.inject(MockOp::Spawn, Fault::Capacity, 1);
    assert_eq!(
        m.spawn(&r.relaunch()).await.unwrap_err().kind(),
        ErrorKind::Capacity
    );
    let mi = ComputeRequest::builder()
        .gpu(Gpu::MI300X)
        .image("i")
        .build()
        .unwrap();
    assert_eq!(m.spawn(&mi).await.unwrap_err().kind(), ErrorKind::Capacity);
}

#[tokio::test(start_paused = true)]
async fn max_runtime_is_enforced_upstream() {
    let m = Mock::in_memory();
    let r = ComputeRequest::builder()
        .image("i")
        .max_runtime(Duration::from_secs(60))
        .build()
        .unwrap();
    let c = m.spawn(&r).await.unwrap();
    tokio::time::sleep(Duration::from_secs(61)).await;
    assert_eq!(m.get(&c.id).await.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test(start_paused = true)]
async fn the_longest_max_runtime_is_a_deadline_in_the_future_not_now() {
    let m = Mock::in_memory();
    let r = ComputeRequest::builder()
        .image("i")
        .max_runtime(Duration::from_secs(365 * 86_400))
        .command(["sleep", "30"])
        .build()
        .unwrap();
    let c = m.spawn(&r).await.unwrap();
    tokio::time::sleep(Duration::from_secs(3600)).await;
    let got = m.get(&c.id).await.unwrap();
    assert_eq!(got.status, ComputeStatus::Running);
    assert_eq!(got.raw["command"], serde_json::json!(["sleep", "30"]));
    m.terminate(&c.id).await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn a_slow_create_answer_comes_after_the_machine_exists() {
    let m = Mock::in_memory_with(MockOptions {
        create_delay: Duration::from_secs(5),
        ..MockOptions::default()
    });
    let r = req();
    let spawning = {
        let m = m.clone();
        let r = r.clone();
        tokio::spawn(async move { m.spawn(&r).await })
    };
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(!spawning.is_finished());
    assert_eq!(
        m.live_count().unwrap(),
        1,
        "listed while the answer is pending"
    );
    let c = spawning.await.unwrap().unwrap();
    assert_eq!(c.name.as_deref(), Some(r.launch_name().as_str()));
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn sqlite_state_is_shared() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.sqlite");
    let a = Mock::open(&p, MockOptions::default()).unwrap();
    let b = Mock::open(&p, MockOptions::default()).unwrap();
    let c = a.spawn(&req()).await.unwrap();
    assert_eq!(b.get(&c.id).await.unwrap().id, c.id);
    b.terminate(&c.id).await.unwrap();
    assert_eq!(a.get(&c.id).await.unwrap_err().kind(), ErrorKind::NotFound);
    let mode = std::fs::metadata(dir.path()).unwrap();
    let _ = mode;
}

#[tokio::test]
async fn serverless_jobs() {
    let m = Mock::in_memory();
    let s = m.serverless().unwrap();
    let req = JobRequest::new(
        MOCK_ENDPOINT,
        serde_json::json!({"prompt": "hi", "chunks": 4}),
    )
    .unwrap();
    let job = s.run(&req).await.unwrap();
    assert_eq!(job.status, JobStatus::InQueue);
    let chunks: Vec<_> = s
        .stream(MOCK_ENDPOINT, &job.id)
        .await
        .unwrap()
        .collect()
        .await;
    assert_eq!(chunks.len(), 4);
    assert!(chunks.iter().all(|c| c.is_ok()));
    let done = s.status(MOCK_ENDPOINT, &job.id).await.unwrap();
    assert_eq!(done.status, JobStatus::Completed);
    assert_eq!(done.output.unwrap()["echo"]["prompt"], "hi");

    let bad = JobRequest::new(MOCK_ENDPOINT, serde_json::json!({"fail": "boom"})).unwrap();
    let j = s.run(&bad).await.unwrap();
    let items: Vec<_> = s
        .stream(MOCK_ENDPOINT, &j.id)
        .await
        .unwrap()
        .collect()
        .await;
    let err = items.last().unwrap().as_ref().unwrap_err();
    assert!(err.message().contains("boom"));

    let slow = JobRequest::new(MOCK_ENDPOINT, serde_json::json!({"sleep_ms": 10_000})).unwrap();
    let e = s
        .run_sync(&slow, Duration::from_millis(100))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Timeout);
    assert_eq!(
        s.status("other", &j.id).await.unwrap_err().kind(),
        ErrorKind::NotFound
    );
}

// ---- commands run on this host ----

fn fast() -> Mock {
    Mock::in_memory_with(MockOptions {
        boot_delay: Duration::from_millis(50),
        ..MockOptions::default()
    })
}

fn sh(script: &str) -> ComputeRequest {
    ComputeRequest::builder()
        .image("ignored")
        .command(["sh", "-c", script])
        .build()
        .unwrap()
}

/// Poll `get` (real time) until `done` says so, or panic after 10 s.
async fn until(m: &Mock, id: &str, what: &str, done: impl Fn(&Compute) -> bool) -> Compute {
    let end = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let c = m.get(id).await.unwrap();
        if done(&c) {
            return c;
        }
        assert!(std::time::Instant::now() < end, "{what}: still {c:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test]
async fn a_command_runs_its_output_is_the_log_and_its_exit_code_is_kept() {
    let m = fast();
    let c = m
        .spawn(&sh("echo hi; echo oops >&2; exit 3"))
        .await
        .unwrap();
    let p = m.process(&c.id).unwrap().expect("a process");
    assert!(p.pid.is_some());
    let done = until(&m, &c.id, "exit", |c| c.status == ComputeStatus::Stopped).await;
    assert_eq!(done.raw["exit_code"], 3, "{:?}", done.raw);
    let p = m.process(&c.id).unwrap().unwrap();
    assert_eq!((p.running, p.exit_code, p.runs), (false, Some(3), 1));
    let lines: Vec<String> = m
        .logs(&c.id, 100)
        .unwrap()
        .into_iter()
        .map(|l| l.line)
        .collect();
    assert_eq!(lines, ["hi", "oops"]);
    assert_eq!(m.logs(&c.id, 1).unwrap()[0].line, "oops");
    // Ended: it bills its disks only (none here).
    assert_eq!(done.cost_per_hour, Some(0.0));
    // A start runs it again; the log grows.
    m.start(&c.id).await.unwrap();
    until(&m, &c.id, "second run", |c| {
        c.status == ComputeStatus::Stopped && c.raw["runs"] == 2
    })
    .await;
    assert_eq!(m.logs(&c.id, 100).unwrap().len(), 4);
    let followed: Vec<String> = m
        .follow_logs(&c.id)
        .unwrap()
        .map(|l| l.unwrap().line)
        .collect()
        .await;
    assert_eq!(followed, ["hi", "oops", "hi", "oops"]);
    m.terminate(&c.id).await.unwrap();
}

#[tokio::test]
async fn a_signal_death_is_128_plus_the_signal() {
    let m = fast();
    let c = m.spawn(&sh("kill -TERM $$")).await.unwrap();
    let done = until(&m, &c.id, "exit", |c| c.status == ComputeStatus::Stopped).await;
    assert_eq!(done.raw["exit_code"], 128 + 15, "{:?}", done.raw);
}

#[tokio::test]
async fn terminate_and_stop_kill_the_process_group() {
    let m = fast();
    // A background child too: the whole group goes.
    let c = m.spawn(&sh("sleep 300 & sleep 300")).await.unwrap();
    let pid = m.process(&c.id).unwrap().unwrap().pid.unwrap();
    until(&m, &c.id, "running", |c| c.status == ComputeStatus::Running).await;
    assert!(process::group_alive(pid));
    m.stop(&c.id).await.unwrap();
    assert!(gone(pid), "stop kills it");
    assert_eq!(m.get(&c.id).await.unwrap().status, ComputeStatus::Stopped);
    m.start(&c.id).await.unwrap();
    let pid = m.process(&c.id).unwrap().unwrap().pid.unwrap();
    assert!(process::group_alive(pid));
    let log = m.process(&c.id).unwrap().unwrap().log;
    m.terminate(&c.id).await.unwrap();
    assert!(gone(pid), "terminate kills it");
    assert!(!log.exists(), "its files are gone with it");
    assert_eq!(m.live_count().unwrap(), 0);
}

#[tokio::test]
async fn max_runtime_kills_the_command_on_the_machine_side() {
    let m = fast();
    let r = ComputeRequest::builder()
        .image("i")
        .command(["sleep", "300"])
        .max_runtime(Duration::from_secs(1))
        .build()
        .unwrap();
    let c = m.spawn(&r).await.unwrap();
    let pid = m.process(&c.id).unwrap().unwrap().pid.unwrap();
    // Nobody reads the machine: the wrapper ends the group itself.
    let end = std::time::Instant::now() + Duration::from_secs(10);
    while process::group_alive(pid) {
        assert!(
            std::time::Instant::now() < end,
            "still running after max runtime"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(m.get(&c.id).await.unwrap_err().kind(), ErrorKind::NotFound);
}

#[tokio::test]
async fn a_port_is_served_by_the_command_on_127_0_0_1() {
    // The server below needs python3 (CI has it); fail loudly rather than pass quietly.
    let py = which_python().expect("python3 is needed for this test");
    let m = fast();
    // http.server takes the port as its last argument: $PORT_8000 through sh.
    let r = ComputeRequest::builder()
        .image("ignored")
        .port("8000/http")
        .command([
            "sh",
            "-c",
            &format!("exec {py} -m http.server --bind 127.0.0.1 \"$PORT_8000\""),
        ])
        .build()
        .unwrap();
    let c = m.spawn(&r).await.unwrap();
    let url = c.http_url().unwrap().to_string();
    let host = m.process(&c.id).unwrap().unwrap().host_ports[&8000];
    assert_eq!(url, format!("http://127.0.0.1:{host}"));
    let end = std::time::Instant::now() + Duration::from_secs(20);
    let body = loop {
        match reqwest::get(&url).await {
            Ok(r) if r.status().is_success() => break r.text().await.unwrap(),
            other => {
                assert!(
                    std::time::Instant::now() < end,
                    "{url} never answered: {other:?}"
                );
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    };
    assert!(body.contains("Directory listing"), "{body}");
    let pid = m.process(&c.id).unwrap().unwrap().pid.unwrap();
    m.terminate(&c.id).await.unwrap();
    assert!(gone(pid));
    assert!(
        reqwest::get(&url).await.is_err(),
        "nothing listens once terminated"
    );
}

/// Whether group `pid` is gone within 5 s: killed processes stay listed as zombies until
/// reaped (orphans by init, which may take a moment in a container).
fn gone(pid: u32) -> bool {
    let end = std::time::Instant::now() + Duration::from_secs(5);
    while process::group_alive(pid) {
        if std::time::Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    true
}

fn which_python() -> Option<String> {
    for p in ["python3", "python"] {
        if std::process::Command::new(p)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
        {
            return Some(p.to_string());
        }
    }
    None
}

#[tokio::test]
async fn the_command_gets_its_env_and_ports_and_not_the_hosts_secrets() {
    let m = fast();
    let r = ComputeRequest::builder()
        .image("ignored")
        .port("8000/http")
        .port("22/tcp")
        .env("GREETING", "hello")
        .auth(crate::AuthMode::Bearer)
        .command([
            "sh",
            "-c",
            "echo \"$GREETING $PORT $PORT_8000 $PORT_22\"; env | grep -c '^CARGO' || true",
        ])
        .build()
        .unwrap();
    let c = m.spawn(&r).await.unwrap();
    until(&m, &c.id, "exit", |c| c.status == ComputeStatus::Stopped).await;
    let p = m.process(&c.id).unwrap().unwrap();
    let lines = m.logs(&c.id, 10).unwrap();
    let (h, t) = (p.host_ports[&8000], p.host_ports[&22]);
    assert_eq!(lines[0].line, format!("hello {h} {h} {t}"));
    assert_eq!(lines[1].line, "0", "host variables stay out");
    let got = m.get(&c.id).await.unwrap();
    assert_eq!(
        got.ports[1].url.as_deref(),
        Some(format!("tcp://127.0.0.1:{t}").as_str())
    );
    let debug = format!("{:?}", m.load(&c.id).unwrap().unwrap());
    assert!(
        !debug.contains("hello"),
        "env values stay out of Debug: {debug}"
    );
}

#[cfg(feature = "sqlite")]
#[tokio::test]
async fn a_persisted_mock_leaves_the_command_running_for_the_next_process() {
    let dir = tempfile::tempdir().unwrap();
    let p = dir.path().join("m.sqlite");
    let opts = || MockOptions {
        boot_delay: Duration::from_millis(50),
        ..MockOptions::default()
    };
    let a = Mock::open(&p, opts()).unwrap();
    let c = a.spawn(&sh("echo started; sleep 300")).await.unwrap();
    let pid = a.process(&c.id).unwrap().unwrap().pid.unwrap();
    drop(a);
    assert!(
        process::group_alive(pid),
        "outlives the handle that spawned it"
    );
    let b = Mock::open(&p, opts()).unwrap();
    until(&b, &c.id, "running", |c| c.status == ComputeStatus::Running).await;
    let log = b.process(&c.id).unwrap().unwrap().log;
    assert!(log.starts_with(dir.path().join(MOCK_MACHINES_DIR)));
    b.terminate(&c.id).await.unwrap();
    assert!(gone(pid));
}

#[tokio::test]
async fn an_in_memory_mock_kills_its_commands_when_dropped() {
    let m = fast();
    let c = m.spawn(&sh("sleep 300")).await.unwrap();
    let pid = m.process(&c.id).unwrap().unwrap().pid.unwrap();
    assert!(process::group_alive(pid));
    drop(m);
    assert!(gone(pid));
}

#[tokio::test]
async fn which_gpus_are_out_of_stock_is_an_option() {
    let m = Mock::in_memory_with(MockOptions {
        out_of_stock: vec![Gpu::H100],
        ..MockOptions::default()
    });
    let h100 = ComputeRequest::builder()
        .gpu(Gpu::H100)
        .image("i")
        .build()
        .unwrap();
    assert_eq!(
        m.spawn(&h100).await.unwrap_err().kind(),
        ErrorKind::Capacity
    );
    assert_eq!(m.live_count().unwrap(), 0);
    let mi = ComputeRequest::builder()
        .gpu(Gpu::MI300X)
        .image("i")
        .build()
        .unwrap();
    m.spawn(&mi).await.unwrap();
    let types = m.gpu_types().await.unwrap();
    let avail = |g: Gpu| types.iter().find(|t| t.gpu == Some(g)).unwrap().available;
    assert_eq!(avail(Gpu::H100), Some(false));
    assert_eq!(avail(Gpu::MI300X), Some(true));
}

#[test]
fn out_of_stock_comes_from_the_config_and_bad_names_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let load = |mock: &str| {
        let p = dir.path().join("atlas.toml");
        std::fs::write(&p, format!("[mock]\n{mock}\n")).unwrap();
        let mut c = Config::load(Some(&p))?;
        c.data_dir = dir.path().join("data");
        Mock::from_config(&c, &c.provider_settings("mock"))
    };
    let m = load("out_of_stock = [\"h100\", \"a100-80g\"]").unwrap();
    assert_eq!(m.inner.options.out_of_stock, [Gpu::H100, Gpu::A100_80G]);
    assert!(load("out_of_stock = []")
        .unwrap()
        .inner
        .options
        .out_of_stock
        .is_empty());
    // A string is a list in its comma-separated form (as from the environment).
    let m = load("out_of_stock = \"h100,l4\"").unwrap();
    assert_eq!(m.inner.options.out_of_stock, [Gpu::H100, Gpu::L4]);
    let e = load("out_of_stock = [\"warp-drive\"]").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().starts_with("mock.out_of_stock"), "{e}");
    assert!(e.message().contains("h100"), "the allowed names: {e}");
    let e = load("out_of_stock = 5").unwrap_err();
    assert_eq!(e.kind(), ErrorKind::Validation);
    assert!(e.message().contains("out_of_stock"), "{e}");
}

#[tokio::test]
async fn a_command_that_ignores_term_is_killed_after_the_grace() {
    let m = fast();
    let c = m.spawn(&sh("trap '' TERM; sleep 300")).await.unwrap();
    until(&m, &c.id, "running", |c| c.status == ComputeStatus::Running).await;
    // Let the trap be set before the stop.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let pid = m.process(&c.id).unwrap().unwrap().pid.unwrap();
    let started = std::time::Instant::now();
    m.terminate(&c.id).await.unwrap();
    assert!(gone(pid));
    assert!(started.elapsed() >= process::STOP_GRACE, "TERM was ignored");
}

#[tokio::test]
async fn a_start_that_cannot_run_the_command_leaves_the_machine_stopped() {
    let m = fast();
    let c = m.spawn(&sh("sleep 300")).await.unwrap();
    m.stop(&c.id).await.unwrap();
    // Its folder cannot be made again: a file stands where it was.
    let dir = m
        .process(&c.id)
        .unwrap()
        .unwrap()
        .log
        .parent()
        .unwrap()
        .to_path_buf();
    std::fs::remove_dir_all(&dir).unwrap();
    std::fs::write(&dir, "in the way").unwrap();
    assert!(m.start(&c.id).await.is_err());
    let got = m.get(&c.id).await.unwrap();
    assert_eq!(
        got.status,
        ComputeStatus::Stopped,
        "nothing runs, so not running"
    );
    std::fs::remove_file(&dir).unwrap();
    m.start(&c.id).await.unwrap();
    let pid = m.process(&c.id).unwrap().unwrap().pid.unwrap();
    assert!(process::group_alive(pid));
    m.terminate(&c.id).await.unwrap();
    assert!(gone(pid));
}
