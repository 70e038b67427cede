//! `atlas reap`, `atlas session` and `atlas mock seed`, run as separate processes sharing
//! the mock cloud and the session store (SQLite under `ATLAS_HOME`): the reaper explains
//! its decisions on a mock seeded with tracked, orphaned-with-prefix, young and foreign
//! machines, and only the orphan goes; a plain `atlas spawn` machine is never a session
//! machine, whatever its age.

mod common;

use std::path::PathBuf;

use serde_json::Value;

struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("atlas.toml"),
            "[mock]\nboot_delay = \"100ms\"\n",
        )
        .unwrap();
        Sandbox { dir }
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Run `atlas args…`; returns (exit code, stdout, stderr).
    fn run(&self, args: &[&str]) -> (i32, String, String) {
        let o = common::atlas(self.dir.path(), args).output().unwrap();
        (
            o.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&o.stdout).into_owned(),
            String::from_utf8_lossy(&o.stderr).into_owned(),
        )
    }

    fn json(&self, args: &[&str]) -> Value {
        let (code, out, err) = self.run(args);
        assert_eq!(code, 0, "atlas {args:?} failed: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
    }
}

fn decision<'a>(report: &'a Value, name: &str) -> &'a Value {
    report["decisions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["name"] == name)
        .unwrap_or_else(|| panic!("no decision about {name}: {report:#}"))
}

#[test]
fn reap_explains_then_reaps_only_the_orphan() {
    let s = Sandbox::new();
    let spawned = s.json(&[
        "session",
        "spawn",
        "--user",
        "alice",
        "--gpu",
        "l4",
        "--image",
        "app",
        "--port",
        "8000/http",
        "--auth",
        "bearer",
        "-o",
        "json",
    ]);
    let tracked = spawned["session"]["name"].as_str().unwrap().to_string();
    let session_id = spawned["session"]["id"].as_str().unwrap().to_string();
    assert!(
        spawned["compute"]["auth"]["token"].is_string(),
        "raw token shown once"
    );
    assert!(spawned["session"].get("token").is_none());
    assert_eq!(
        spawned["session"]["token_hash"],
        spawned["compute"]["auth"]["token_hash"]
    );
    s.json(&[
        "mock",
        "seed",
        "atlas-session-crashed-1a2b",
        "--gpu",
        "h100",
        "--age",
        "30m",
        "-o",
        "json",
    ]);
    s.json(&[
        "mock",
        "seed",
        "atlas-session-inflight-9z",
        "--age",
        "2m",
        "-o",
        "json",
    ]);
    s.json(&[
        "mock",
        "seed",
        "research-llm-finetune",
        "--gpu",
        "a100-80g",
        "--age",
        "5h",
        "-o",
        "json",
    ]);

    // The Done-when demo, in table form: one line per machine, each with its reason.
    let (code, table, err) = s.run(&["reap", "--dry-run", "--provider", "mock"]);
    assert_eq!(code, 0, "{err}");
    for needle in [
        "would terminate",
        "orphan: untracked",
        "younger than the grace window",
        "not a session machine",
        "tracked by session",
        "dry run: nothing was changed",
    ] {
        assert!(table.contains(needle), "{needle:?} missing from:\n{table}");
    }

    let dry = s.json(&["reap", "--dry-run", "--provider", "mock", "-o", "json"]);
    assert_eq!(dry["dry_run"], true);
    assert_eq!(
        decision(&dry, "atlas-session-crashed-1a2b")["action"],
        "terminate"
    );
    assert_eq!(
        decision(&dry, "atlas-session-inflight-9z")["action"],
        "keep"
    );
    assert_eq!(decision(&dry, "research-llm-finetune")["action"], "keep");
    assert_eq!(decision(&dry, &tracked)["action"], "keep");
    assert_eq!(
        s.json(&["ls", "-o", "json"]).as_array().unwrap().len(),
        4,
        "dry run changed nothing"
    );

    let real = s.json(&["reap", "--provider", "mock", "-o", "json"]);
    assert_eq!(decision(&real, "atlas-session-crashed-1a2b")["done"], true);
    let names: Vec<String> = s
        .json(&["ls", "-o", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(names.len(), 3);
    assert!(!names.contains(&"atlas-session-crashed-1a2b".to_string()));

    // The tracked session is listed, then stopped (terminated and forgotten).
    let sessions = s.json(&["session", "ls", "-o", "json"]);
    assert_eq!(sessions[0]["id"], session_id.as_str());
    s.json(&["session", "stop", &session_id, "-o", "json"]);
    assert_eq!(
        s.json(&["session", "ls", "-o", "json"])
            .as_array()
            .unwrap()
            .len(),
        0
    );
    let left = s.json(&["ls", "-o", "json"]);
    assert_eq!(
        left.as_array().unwrap().len(),
        2,
        "young and foreign machines survive: {left:#}"
    );

    // An empty prefix is refused unless forced (exit 2, one line naming the setting).
    let (code, _, err) = s.run(&["reap", "--prefix", ""]);
    assert_eq!(code, 2);
    assert!(
        err.starts_with("error: ") && err.contains("prefix"),
        "{err}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(s.data().join("sessions.sqlite"))
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(mode, 0o600);
    }
    // Clean up what is left on the mock cloud (the survivors are someone else's by design).
    for c in left.as_array().unwrap() {
        s.json(&["terminate", c["id"].as_str().unwrap(), "-o", "json"]);
    }
    assert_eq!(s.json(&["ls", "-o", "json"]).as_array().unwrap().len(), 0);
}

/// Defect 2 of issue 12: plain `atlas spawn` machines (named `atlas-…`) were orphans to
/// the reaper once past the grace window. They are kept as "not a session machine"; a
/// session machine that lost its session (named `atlas-session-…`) is still reaped, and
/// an explicit wider `--prefix atlas-` still reaches plain spawns.
#[test]
fn reap_never_terminates_plain_spawn_machines() {
    let s = Sandbox::new();
    let plain = s.json(&["spawn", "--image", "app", "-o", "json"]);
    let plain_id = plain["id"].as_str().unwrap().to_string();
    let plain_name = plain["name"].as_str().unwrap().to_string();
    assert!(
        plain_name.starts_with("atlas-") && !plain_name.starts_with("atlas-session-"),
        "{plain_name}"
    );
    let session = s.json(&[
        "session", "spawn", "--user", "bob", "--image", "app", "-o", "json",
    ]);
    let session_name = session["session"]["name"].as_str().unwrap().to_string();
    assert!(
        session_name.starts_with("atlas-session-"),
        "session machines live in their own namespace: {session_name}"
    );
    assert_eq!(
        session["compute"]["labels"]["atlas_session"], "1",
        "{session:#}"
    );
    // A session machine whose session is gone (a crash before it was recorded).
    s.json(&[
        "mock",
        "seed",
        "atlas-session-lost-77",
        "--age",
        "1h",
        "-o",
        "json",
    ]);

    let (code, table, err) = s.run(&["reap", "--grace", "0s", "--dry-run"]);
    assert_eq!(code, 0, "{err}");
    let line = table
        .lines()
        .find(|l| l.contains(&plain_id))
        .unwrap_or_else(|| panic!("no line for {plain_id}:\n{table}"));
    assert!(
        line.contains("keep") && line.contains("not a session machine"),
        "{line}"
    );

    let dry = s.json(&["reap", "--grace", "0s", "--dry-run", "-o", "json"]);
    assert_eq!(decision(&dry, &plain_name)["action"], "keep");
    assert_eq!(decision(&dry, &session_name)["action"], "keep");
    assert_eq!(
        decision(&dry, "atlas-session-lost-77")["action"],
        "terminate"
    );

    let real = s.json(&["reap", "--grace", "0s", "-o", "json"]);
    assert_eq!(decision(&real, &plain_name)["action"], "keep");
    assert_eq!(decision(&real, "atlas-session-lost-77")["done"], true);
    let got = s.json(&["get", &plain_id, "-o", "json"]);
    assert_ne!(got["status"], "terminated", "{got:#}");
    let live: Vec<String> = s
        .json(&["ls", "-o", "json"])
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap().to_string())
        .collect();
    assert!(
        live.contains(&plain_name) && live.contains(&session_name),
        "{live:?}"
    );
    assert!(
        !live.contains(&"atlas-session-lost-77".to_string()),
        "{live:?}"
    );

    // An explicit wider scope is the operator's choice, and it does reach plain spawns.
    let wide = s.json(&[
        "reap",
        "--grace",
        "0s",
        "--prefix",
        "atlas-",
        "--dry-run",
        "-o",
        "json",
    ]);
    assert_eq!(decision(&wide, &plain_name)["action"], "terminate");
    assert_eq!(decision(&wide, &session_name)["action"], "keep");

    // A plain spawn cannot take a name in the session namespace (exit 2, names the field).
    let (code, _, err) = s.run(&["spawn", "--image", "app", "--name", "atlas-session-x"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("name") && err.contains("reserved"), "{err}");

    let sid = session["session"]["id"].as_str().unwrap();
    s.json(&["session", "stop", sid, "-o", "json"]);
    s.json(&["terminate", &plain_id, "-o", "json"]);
    assert_eq!(s.json(&["ls", "-o", "json"]).as_array().unwrap().len(), 0);
}
