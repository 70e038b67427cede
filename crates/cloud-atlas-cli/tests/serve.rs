//! `atlas serve` as real processes: starts with no keys on the mock, spawns through the
//! API, enforces idle TTLs after every client is gone, applies its shutdown policy on
//! SIGTERM, prints the admin token only on first start, refuses unknown `[server]` keys.
#![cfg(unix)]

mod common;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use common::{atlas, Run};
use serde_json::{json, Value};

struct Serve {
    child: Child,
    base: String,
    banner: String,
    token: Option<String>,
}

impl Serve {
    fn start(dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Serve {
        let mut all = vec!["serve", "--bind", "127.0.0.1:0"];
        all.extend_from_slice(args);
        let mut cmd = atlas(dir, &all);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut banner = String::new();
        let started = Instant::now();
        loop {
            let mut line = String::new();
            let n = out.read_line(&mut line).unwrap();
            assert!(n > 0, "atlas serve exited early: {banner}");
            banner.push_str(&line);
            if line.contains("admin token") && !line.contains("shown once") {
                break;
            }
            if line.contains("shown once") {
                let mut tok = String::new();
                out.read_line(&mut tok).unwrap();
                banner.push_str(&tok);
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "{banner}");
        }
        std::thread::spawn(move || {
            let mut sink = Vec::new();
            let _ = out.read_to_end(&mut sink);
        });
        let base = banner
            .lines()
            .next()
            .unwrap()
            .rsplit(' ')
            .next()
            .unwrap()
            .trim_end_matches('/')
            .to_string();
        let token = banner
            .lines()
            .find(|l| l.trim_start().starts_with("atlas_admin_"))
            .map(|l| l.trim().to_string());
        Serve {
            child,
            base,
            banner,
            token,
        }
    }

    /// SIGTERM, then the exit code and stderr.
    fn terminate(mut self) -> (i32, String) {
        let pid = self.child.id().to_string();
        assert!(std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let mut err = String::new();
        self.child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        let code = self.child.wait().unwrap().code().unwrap_or(-1);
        (code, err)
    }
}

impl Drop for Serve {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn sandbox() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("atlas.toml"),
        "default_provider = \"mock\"\n[mock]\nboot_delay = \"100ms\"\n",
    )
    .unwrap();
    dir
}

/// Machines the mock has, as `atlas ls` (another process) sees them.
fn machines(dir: &Path) -> Vec<Value> {
    let r = Run::of(&mut atlas(dir, &["ls", "-o", "json"])).ok();
    r.json().as_array().unwrap().clone()
}

fn live(dir: &Path) -> usize {
    machines(dir)
        .iter()
        .filter(|c| c["status"] != "terminated")
        .count()
}

fn http() -> reqwest::blocking::Client {
    reqwest::blocking::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

#[test]
fn serve_starts_with_no_keys_and_enforces_idle_ttl_after_the_client_is_gone() {
    let dir = sandbox();
    let s = Serve::start(dir.path(), &[], &[]);
    assert!(
        s.banner.contains("providers  mock (default mock)"),
        "{}",
        s.banner
    );
    assert!(s.banner.contains("reaper     on"), "{}", s.banner);
    let token = s.token.clone().expect("first start prints the token");
    let c = http();
    assert_eq!(
        c.get(format!("{}/healthz", s.base))
            .send()
            .unwrap()
            .status(),
        200
    );
    let r = c
        .post(format!("{}/v1/sessions", s.base))
        .bearer_auth(&token)
        .json(
            &json!({"user": "alice", "gpu": "l4", "image": "ghcr.io/acme/app:1", "idle_ttl": "2s"}),
        )
        .send()
        .unwrap();
    assert_eq!(r.status(), 201);
    let id = r.json::<Value>().unwrap()["session"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let list: Value = c
        .get(format!("{}/v1/sessions", s.base))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(list["sessions"][0]["id"], id.as_str());
    assert_eq!(live(dir.path()), 1);
    drop(c); // every client is gone; the server alone must end the session
    let started = Instant::now();
    while live(dir.path()) > 0 {
        assert!(
            started.elapsed() < Duration::from_secs(15),
            "the idle session still bills"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("stopped: 0 session(s) terminated, 0 left tracked"),
        "{err}"
    );
}

#[test]
fn sigterm_applies_the_shutdown_policy() {
    let dir = sandbox();
    // terminate (the default): the machine is gone after SIGTERM.
    let s = Serve::start(dir.path(), &[], &[]);
    let token = s.token.clone().unwrap();
    let spawn = |base: &str| {
        let r = http()
            .post(format!("{base}/v1/sessions"))
            .bearer_auth(&token)
            .json(&json!({"user": "bob", "image": "x"}))
            .send()
            .unwrap();
        assert_eq!(r.status(), 201);
    };
    spawn(&s.base);
    assert_eq!(live(dir.path()), 1);
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("SIGTERM") && err.contains("1 session(s) terminated"),
        "{err}"
    );
    assert_eq!(live(dir.path()), 0);
    // release: left running and tracked; the next start adopts it (and prints no token).
    let s = Serve::start(dir.path(), &["--shutdown", "release"], &[]);
    assert!(
        s.token.is_none(),
        "the token is printed only on first start: {}",
        s.banner
    );
    assert!(s.banner.contains("admin token in "), "{}", s.banner);
    spawn(&s.base);
    let (code, err) = s.terminate();
    assert_eq!(code, 0, "{err}");
    assert!(
        err.contains("1 left tracked") && err.contains("tracked: session"),
        "{err}"
    );
    assert_eq!(live(dir.path()), 1, "released, still running");
    let s = Serve::start(dir.path(), &[], &[]);
    let list: Value = http()
        .get(format!("{}/v1/sessions", s.base))
        .bearer_auth(&token)
        .send()
        .unwrap()
        .json()
        .unwrap();
    assert_eq!(
        list["sessions"].as_array().unwrap().len(),
        1,
        "adopted after restart"
    );
    let (code, _) = s.terminate();
    assert_eq!(code, 0);
    assert_eq!(live(dir.path()), 0);
}

#[test]
fn admin_token_file_is_private_and_the_env_wins() {
    use std::os::unix::fs::PermissionsExt;
    let dir = sandbox();
    let s = Serve::start(
        dir.path(),
        &[],
        &[("ATLAS_ADMIN_TOKEN", "env-admin-token-0123456789")],
    );
    assert!(s.token.is_none());
    assert!(
        s.banner.contains("admin token from ATLAS_ADMIN_TOKEN"),
        "{}",
        s.banner
    );
    let c = http();
    let ok = c
        .get(format!("{}/v1/sessions", s.base))
        .bearer_auth("env-admin-token-0123456789")
        .send()
        .unwrap();
    assert_eq!(ok.status(), 200);
    drop(s);
    let s = Serve::start(dir.path(), &[], &[]);
    let token = s.token.clone().unwrap();
    let file = dir.path().join("data/server/admin-token");
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    assert_eq!(
        std::fs::metadata(file.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert_eq!(std::fs::read_to_string(&file).unwrap().trim(), token);
    let r = c
        .get(format!("{}/v1/sessions", s.base))
        .bearer_auth("env-admin-token-0123456789")
        .send()
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[test]
fn bad_server_settings_are_one_line_errors_before_anything_starts() {
    let dir = sandbox();
    std::fs::write(
        dir.path().join("atlas.toml"),
        "[server]\nbnid = \"127.0.0.1:1\"\n",
    )
    .unwrap();
    let r = Run::of(&mut atlas(dir.path(), &["serve"]));
    let line = r.fails(2).to_string();
    assert!(
        line.contains("server.bnid") && line.contains("allowed: bind"),
        "{line}"
    );
    std::fs::write(dir.path().join("atlas.toml"), "").unwrap();
    let r = Run::of(&mut atlas(dir.path(), &["serve", "--shutdown", "later"]));
    assert!(r.fails(2).contains("shutdown"), "{r:?}");
    let r = Run::of(&mut atlas(dir.path(), &["serve", "--bind", "nowhere"]));
    assert!(r.fails(2).contains("bind"), "{r:?}");
    assert!(
        !dir.path().join("data/server/admin-token").exists(),
        "nothing created for a bad start"
    );
}

#[test]
fn session_commands_talk_to_a_running_server_with_the_same_outputs() {
    let dir = sandbox();
    let s = Serve::start(dir.path(), &[], &[]);
    let token = s.token.clone().unwrap();
    let remote = |args: &[&str]| {
        let mut c = atlas(dir.path(), args);
        c.env("ATLAS_ADMIN_TOKEN", &token)
            .env("ATLAS_SERVER", &s.base);
        Run::of(&mut c)
    };
    let spawned = remote(&[
        "session",
        "spawn",
        "--user",
        "erin",
        "--gpu",
        "l4",
        "--image",
        "x",
        "--auth",
        "bearer",
        "--idle-ttl",
        "10m",
        "-o",
        "json",
    ])
    .ok()
    .json();
    let id = spawned["session"]["id"].as_str().unwrap().to_string();
    assert!(
        spawned["compute"]["auth"]["token"].as_str().is_some(),
        "the one-time token is printed"
    );
    assert_eq!(spawned["session"]["idle_ttl"], 600_000);
    // --server on the command line works as well as ATLAS_SERVER.
    let mut c = atlas(
        dir.path(),
        &["session", "ls", "--server", &s.base, "-o", "json"],
    );
    c.env("ATLAS_ADMIN_TOKEN", &token);
    let listed = Run::of(&mut c).ok().json();
    assert_eq!(listed.as_array().unwrap().len(), 1);
    // Same shape as the local store's listing (the server shares this data dir's store).
    let local = Run::of(&mut atlas(dir.path(), &["session", "ls", "-o", "json"]))
        .ok()
        .json();
    let keys = |v: &Value| {
        v[0].as_object()
            .unwrap()
            .keys()
            .cloned()
            .collect::<Vec<_>>()
    };
    assert_eq!(keys(&listed), keys(&local));
    assert_eq!(listed[0]["id"], local[0]["id"]);
    let got = remote(&["session", "get", &id, "-o", "json"]).ok().json();
    assert_eq!(got["user_id"], "erin");
    assert!(
        got.get("accrued_usd").is_none(),
        "the same Session shape as local output"
    );
    let table = remote(&["session", "get", &id]).ok().stdout;
    assert!(table.contains("erin") && table.contains(&id));
    assert_eq!(
        remote(&["session", "touch", &id, "-o", "json"]).ok().json(),
        json!({"id": id, "action": "touched"})
    );
    // Bad flags fail before anything is sent; errors keep their exit codes.
    assert!(remote(&[
        "session",
        "spawn",
        "--user",
        "erin",
        "--image",
        "x",
        "--idle-ttl",
        "soon"
    ])
    .fails(2)
    .contains("--idle-ttl"));
    assert!(remote(&[
        "session",
        "spawn",
        "--user",
        "erin",
        "--image",
        "x",
        "--wait",
        "--timeout",
        "nope"
    ])
    .fails(2)
    .contains("--timeout"));
    assert!(
        remote(&["session", "get", "0123456789abcdef0123456789abcdef"])
            .fails(4)
            .contains("server:")
    );
    let mut c = atlas(dir.path(), &["session", "ls", "--server", &s.base]);
    assert!(Run::of(&mut c).fails(3).contains("ATLAS_ADMIN_TOKEN"));
    let mut c = atlas(dir.path(), &["session", "ls", "--server", &s.base]);
    c.env("ATLAS_ADMIN_TOKEN", "wrong-token-0123456789");
    Run::of(&mut c).fails(3);
    let mut c = atlas(
        dir.path(),
        &["session", "ls", "--server", "http://127.0.0.1:9"],
    );
    c.env("ATLAS_ADMIN_TOKEN", &token);
    assert!(Run::of(&mut c).fails(10).contains("is it running"));
    assert_eq!(
        remote(&["session", "ls", "-o", "json"])
            .ok()
            .json()
            .as_array()
            .unwrap()
            .len(),
        1,
        "nothing more was spawned"
    );
    assert_eq!(
        remote(&["session", "stop", &id, "-o", "json"]).ok().json(),
        json!({"id": id, "action": "terminated"})
    );
    assert_eq!(
        remote(&["session", "ls", "-o", "json"]).ok().json(),
        json!([])
    );
    assert_eq!(live(dir.path()), 0);
    // --wait: the server answers once the machine is ready.
    let w = remote(&[
        "session",
        "spawn",
        "--user",
        "erin",
        "--image",
        "x",
        "--wait",
        "--timeout",
        "30s",
        "-o",
        "json",
    ])
    .ok()
    .json();
    assert_eq!(w["session"]["state"], "active");
    let (code, _) = s.terminate();
    assert_eq!(code, 0);
}
