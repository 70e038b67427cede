//! Issue 12, defect 1: many `atlas session spawn` processes sharing one `ATLAS_HOME`
//! (one SQLite session store, one mock cloud) must not drop each other's spawn intents
//! (which terminated the machines of the others) nor fail with "database is locked".

mod common;

use std::process::Stdio;

use common::MockWorld;

const N: usize = 30;

#[test]
fn thirty_parallel_session_spawns_all_survive() {
    let w = MockWorld::new("");
    // No prior run: the 30 processes also create the stores' schemas concurrently.
    let children: Vec<_> = (0..N)
        .map(|_| {
            w.cmd(&[
                "session", "spawn", "--user", "u", "--image", "x", "-o", "json",
            ])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
        })
        .collect();
    let mut failures = Vec::new();
    for c in children {
        let out = c.wait_with_output().unwrap();
        if !out.status.success() {
            failures.push(format!(
                "exit {:?}: {}",
                out.status.code(),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {N} failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
    let sessions = w.sessions();
    assert_eq!(sessions.len(), N, "{sessions:#?}");
    assert!(
        sessions.iter().all(|s| s["state"] == "active"),
        "{sessions:#?}"
    );
    let machines = w.machines();
    let alive = machines
        .iter()
        .filter(|m| m["status"] != "terminated")
        .count();
    assert_eq!(alive, N, "no machine terminated: {machines:#?}");
}
