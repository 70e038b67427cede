//! SIGINT and SIGTERM never lose what the user paid for (issue 12, defect 7): real
//! `atlas` processes get real signals (the `kill` command) while they wait for a
//! machine, while the create call itself is in flight, and during the demo.

mod common;

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::MockWorld;

/// A private mock cloud whose machines take an hour to boot (so `--wait` waits) and
/// whose create call answers `create_delay` after the machine exists.
fn world(create_delay: &str) -> MockWorld {
    MockWorld::new(&format!(
        "[mock]\nboot_delay = \"1h\"\ncreate_delay = \"{create_delay}\"\n"
    ))
}

/// `atlas` started with its output piped, from a whitespace-separated command line.
fn start(s: &MockWorld, line: &str) -> Child {
    s.cmd(&line.split_whitespace().collect::<Vec<_>>())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

fn kill(child: &Child, sig: &str) {
    let ok = Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
}

/// Lines of a pipe, read on a thread.
fn lines(r: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for l in BufReader::new(r).lines() {
            let Ok(l) = l else { break };
            if tx.send(l).is_err() {
                break;
            }
        }
    });
    rx
}

/// Read lines until one contains `needle` (at most 30 s); everything read is returned.
fn until(rx: &mpsc::Receiver<String>, needle: &str) -> Vec<String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(l) = rx.recv_timeout(Duration::from_millis(100)) {
            let hit = l.contains(needle);
            seen.push(l);
            if hit {
                return seen;
            }
        }
    }
    panic!("no line with {needle:?} in 30s; saw {seen:?}");
}

/// Poll until `f` holds (at most 30 s).
fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if f() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what} did not happen in 30s");
}

/// Wait for the child (at most 60 s); exit code and all remaining stderr.
fn finish(mut child: Child, stderr: mpsc::Receiver<String>) -> (Option<i32>, String) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        assert!(
            Instant::now() < deadline,
            "atlas did not exit after the signal"
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let mut err = Vec::new();
    while let Ok(l) = stderr.recv_timeout(Duration::from_millis(500)) {
        err.push(l);
    }
    (status.code(), err.join("\n"))
}

fn spawn_wait_then(sig: &str, code: i32) {
    let s = world("0s");
    let mut child = start(&s, "spawn --gpu h100 --image x --auth bearer --wait");
    let stderr = lines(child.stderr.take().unwrap());
    // Without a terminal, --wait reports progress on stderr: the machine exists.
    let before = until(&stderr, "waiting for");
    kill(&child, sig);
    let (got, err) = finish(child, stderr);
    let err = format!("{}\n{err}", before.join("\n"));
    assert_eq!(got, Some(code), "{err}");
    let m = &s.machines()[0];
    let id = m["id"].as_str().unwrap();
    assert!(
        err.contains(&format!("machine {id} on mock exists and bills")),
        "{err}"
    );
    assert!(err.contains("status provisioning"), "{err}");
    let token = err
        .lines()
        .find_map(|l| l.strip_prefix("bearer token: "))
        .unwrap_or_else(|| panic!("the one-time token is missing: {err}"));
    assert!(token.len() >= 40, "{token}");
    assert!(
        err.contains(&format!("atlas --provider mock terminate {id}")),
        "{err}"
    );
}

#[test]
fn sigterm_during_spawn_wait_prints_machine_state_and_token_then_exits_143() {
    spawn_wait_then("-TERM", 143);
}

#[test]
fn sigint_during_spawn_wait_prints_machine_state_and_token_then_exits_130() {
    spawn_wait_then("-INT", 130);
}

#[test]
fn a_signal_during_the_create_call_waits_for_its_outcome_then_reports_it() {
    let s = world("3s");
    let started = Instant::now();
    let mut child = start(&s, "spawn --image x --auth bearer");
    let stderr = lines(child.stderr.take().unwrap());
    // The machine exists (the mock lists it) while the create call has not answered.
    eventually("the machine being listed", || !s.machines().is_empty());
    let signalled = Instant::now();
    kill(&child, "-TERM");
    let (got, err) = finish(child, stderr);
    assert_eq!(got, Some(143), "{err}");
    assert!(
        started.elapsed() >= Duration::from_secs(3),
        "atlas exited before the create call answered"
    );
    assert!(signalled.elapsed() < Duration::from_secs(30));
    assert!(
        err.contains("SIGTERM: waiting for the provider to answer the create call"),
        "{err}"
    );
    let id = s.machines()[0]["id"].as_str().unwrap().to_string();
    assert!(
        err.contains(&format!("machine {id} on mock exists and bills")),
        "{err}"
    );
    assert!(
        err.contains("bearer token: "),
        "the one-time token is missing: {err}"
    );
}

#[test]
fn sigint_during_session_spawn_wait_reports_the_session_and_keeps_it_tracked() {
    let s = world("0s");
    let mut child = start(
        &s,
        "session spawn --user u --image x --port 8000/http --auth bearer --wait",
    );
    let stderr = lines(child.stderr.take().unwrap());
    // The session is recorded once spawned; then --wait waits for the machine to run.
    eventually("the session being recorded with its machine", || {
        s.sessions()
            .first()
            .is_some_and(|x| x["compute_id"].is_string())
    });
    kill(&child, "-INT");
    let (got, err) = finish(child, stderr);
    assert_eq!(got, Some(130), "{err}");
    let sessions = s.sessions();
    assert_eq!(sessions.len(), 1, "the session stays tracked: {sessions:?}");
    let sid = sessions[0]["id"].as_str().unwrap();
    let cid = sessions[0]["compute_id"].as_str().unwrap();
    assert!(err.contains(&format!("session {sid} is recorded")), "{err}");
    assert!(err.contains(&format!("machine {cid} on mock")), "{err}");
    assert!(
        err.contains("bearer token: "),
        "the one-time token is missing: {err}"
    );
    assert!(err.contains(&format!("atlas session stop {sid}")), "{err}");
    assert_eq!(s.machines().len(), 1, "the machine keeps running, tracked");
}

#[test]
fn ctrl_c_during_the_demo_terminates_the_demo_machine() {
    let s = world("0s");
    let mut child = start(&s, "demo");
    let stdout = lines(child.stdout.take().unwrap());
    let stderr = lines(child.stderr.take().unwrap());
    until(&stdout, "2. wait until it runs");
    assert_eq!(
        s.machines().len(),
        1,
        "the demo machine exists while it waits"
    );
    kill(&child, "-INT");
    let (got, err) = finish(child, stderr);
    assert_eq!(got, Some(130), "{err}");
    assert!(err.contains("terminating the demo machine"), "{err}");
    assert!(
        s.machines().is_empty(),
        "the demo machine must be gone: {err}"
    );
}
