//! The mock cloud really runs a machine's command on this host, across separate `atlas`
//! processes: `spawn -- CMD` starts it, `logs` shows its output, `get` its exit code,
//! `terminate` kills it; a session with a port is ready once the command answers.

mod common;

use std::time::{Duration, Instant};

use common::{MockWorld, Run};
use serde_json::Value;

const FAST: &str = "[mock]\nboot_delay = \"100ms\"\n";

/// `atlas get ID -o json` until `done`, or panic after 15 s.
fn until(w: &MockWorld, id: &str, what: &str, done: impl Fn(&Value) -> bool) -> Value {
    let end = Instant::now() + Duration::from_secs(15);
    loop {
        let c = w
            .run(&["--provider", "mock", "get", id, "-o", "json"])
            .ok()
            .json();
        if done(&c) {
            return c;
        }
        assert!(Instant::now() < end, "{what}: still {c:#}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Kills a command's process group when dropped, so a failed assertion leaves nothing
/// running on this host.
struct Reap(u64);

impl Drop for Reap {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0)])
            .stderr(std::process::Stdio::null())
            .status();
    }
}

fn alive(pid: u64) -> bool {
    // `kill -0 -PGID`: whether any process of the group exists.
    std::process::Command::new("kill")
        .args(["-0", "--", &format!("-{pid}")])
        .stderr(std::process::Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn spawn_with_a_command_then_logs_exit_code_and_terminate_across_processes() {
    let w = MockWorld::new(FAST);
    let c = w
        .run(&[
            "--provider",
            "mock",
            "spawn",
            "--image",
            "ignored:latest",
            "-o",
            "json",
            "--",
            "sh",
            "-c",
            "echo hi; echo to-stderr >&2; exit 3",
        ])
        .ok()
        .json();
    let id = c["id"].as_str().unwrap().to_string();
    // The spawning process is gone; the command ran anyway.
    let done = until(&w, &id, "exit", |c| c["status"] == "stopped");
    assert_eq!(done["raw"]["exit_code"], 3, "{done:#}");
    let r = w.run(&["--provider", "mock", "logs", &id]).ok();
    assert_eq!(r.stdout, "hi\nto-stderr\n", "{r:#?}");
    let j = w
        .run(&["--provider", "mock", "logs", &id, "-o", "json"])
        .ok()
        .json();
    assert_eq!(j[0]["line"], "hi");
    assert_eq!(j[0]["source"], "container");
    // --follow ends by itself once the command has ended.
    let r = w.run(&["--provider", "mock", "logs", &id, "--follow"]).ok();
    assert_eq!(r.stdout, "hi\nto-stderr\n");
    w.run(&["--provider", "mock", "terminate", &id]).ok();

    // A command that keeps running: terminate (another process) kills its group.
    let c = w
        .run(&[
            "--provider",
            "mock",
            "spawn",
            "--image",
            "x",
            "-o",
            "json",
            "--",
            "sh",
            "-c",
            "echo up; sleep 300",
        ])
        .ok()
        .json();
    let id = c["id"].as_str().unwrap().to_string();
    let running = until(&w, &id, "running", |c| c["status"] == "running");
    let pid = running["raw"]["pid"].as_u64().unwrap();
    let _reap = Reap(pid);
    assert!(alive(pid));
    let r = Run::of(&mut w.cmd(&["--provider", "mock", "logs", &id, "--tail", "5"]));
    assert_eq!(r.code, 0, "{r:#?}");
    w.run(&["--provider", "mock", "terminate", &id]).ok();
    // Killed processes count until reaped (orphans by init, which may take a moment).
    let end = Instant::now() + Duration::from_secs(5);
    while alive(pid) {
        assert!(Instant::now() < end, "terminate kills the command");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(w.machines().is_empty());
    let r = w.run(&["--provider", "mock", "logs", &id]);
    assert_eq!(r.code, 4, "gone: not found {r:#?}");
}

#[test]
fn session_spawn_wait_with_a_port_is_ready_when_the_command_answers() {
    let py = ["python3", "python"]
        .into_iter()
        .find(|p| {
            std::process::Command::new(p)
                .arg("--version")
                .output()
                .is_ok_and(|o| o.status.success())
        })
        .expect("python3 is needed for this test (CI has it)");
    let w = MockWorld::new(FAST);
    let script = format!("exec {py} -m http.server --bind 127.0.0.1 \"$PORT\"");
    let r = w
        .run(&[
            "session",
            "spawn",
            "--user",
            "ann",
            "--image",
            "ignored",
            "--port",
            "8000/http",
            "--wait",
            "--timeout",
            "30s",
            "-o",
            "json",
            "--",
            "sh",
            "-c",
            &script,
        ])
        .ok();
    let s = r.json();
    let _reap = Reap(s["compute"]["raw"]["pid"].as_u64().unwrap());
    let url = s["compute"]["ports"][0]["url"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(url.starts_with("http://127.0.0.1:"), "{s:#}");
    // --wait returned: the machine ran and its URL answered (a mock URL without a
    // command does not resolve, so this used to time out).
    assert_eq!(s["session"]["http_url"], url.as_str(), "{s:#}");
    assert_eq!(s["session"]["state"], "active", "{s:#}");
    // It answers from this process too.
    let host = url.trim_start_matches("http://");
    let mut stream = std::net::TcpStream::connect(host).unwrap();
    use std::io::{Read, Write};
    write!(stream, "GET / HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut got = String::new();
    stream.read_to_string(&mut got).unwrap();
    assert!(got.starts_with("HTTP/1.0 200"), "{got}");
    let id = s["session"]["id"].as_str().unwrap();
    w.run(&["session", "stop", id]).ok();
    assert!(w.machines().is_empty());
    assert!(
        std::net::TcpStream::connect(host).is_err(),
        "stopped with its session"
    );
}
