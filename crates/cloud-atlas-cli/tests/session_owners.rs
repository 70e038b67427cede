//! Issue 12, defects 1 and 4 across real processes: a session held by a live `atlas`
//! process is not stopped by another (exit 11, naming the holder) until the holder is
//! gone; one damaged record in the store breaks nothing else and can still be stopped.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::MockWorld;
use serde_json::Value;

fn store(w: &MockWorld) -> rusqlite::Connection {
    rusqlite::Connection::open(w.dir.path().join("data").join("sessions.sqlite")).unwrap()
}

fn spawn(w: &MockWorld, user: &str) -> Value {
    w.run(&[
        "session", "spawn", "--user", user, "--image", "x", "-o", "json",
    ])
    .ok()
    .json()
}

fn machine_alive(w: &MockWorld, id: &str) -> bool {
    w.machines()
        .iter()
        .any(|m| m["id"] == id && m["status"] != "terminated")
}

#[test]
fn a_damaged_record_is_listed_and_stoppable_and_the_others_keep_working() {
    let w = MockWorld::new("");
    let bad = spawn(&w, "ann");
    let good = spawn(&w, "ben");
    let (bad_id, bad_machine) = (
        bad["session"]["id"].as_str().unwrap().to_string(),
        bad["compute"]["id"].as_str().unwrap().to_string(),
    );
    // What `--idle-ttl 300000000y` once stored: a limit no deadline can hold.
    let c = store(&w);
    let body: String = c
        .query_row("SELECT body FROM sessions WHERE id = ?1", [&bad_id], |r| {
            r.get(0)
        })
        .unwrap();
    let mut v: Value = serde_json::from_str(&body).unwrap();
    v["idle_ttl"] = Value::from(9_460_800_000_000_000_000u64);
    c.execute(
        "UPDATE sessions SET body = ?1 WHERE id = ?2",
        [v.to_string(), bad_id.clone()],
    )
    .unwrap();
    // And a record that is not a session at all.
    c.execute(
        "INSERT INTO sessions (id, user_id, last_touch_ms, body) VALUES ('junk', 'zed', 0, '{not json')",
        [],
    )
    .unwrap();
    drop(c);

    let listed = w.sessions();
    assert_eq!(listed.len(), 3, "{listed:#?}");
    let find = |id: &str| listed.iter().find(|s| s["id"] == id).unwrap().clone();
    let why = find(&bad_id)["damaged"].as_str().unwrap().to_string();
    assert!(
        why.contains("idle_ttl") && why.contains("out of range"),
        "{why}"
    );
    assert!(find("junk")["damaged"]
        .as_str()
        .unwrap()
        .contains("does not decode"));
    assert_eq!(
        find(good["session"]["id"].as_str().unwrap())["damaged"],
        Value::Null
    );
    let table = w.run(&["session", "get", &bad_id]).ok();
    assert!(table.stdout.contains("damaged"), "{}", table.stdout);

    // The store keeps working: a new spawn, and stopping the good session.
    spawn(&w, "cat");
    let good_id = good["session"]["id"].as_str().unwrap();
    w.run(&["session", "stop", good_id]).ok();
    // The damaged one is stopped: its machine terminated, its record forgotten.
    assert!(machine_alive(&w, &bad_machine));
    w.run(&["session", "stop", &bad_id]).ok();
    assert!(
        !machine_alive(&w, &bad_machine),
        "the damaged session's machine billed on"
    );
    w.run(&["session", "stop", "junk"]).ok();
    let left: Vec<String> = w
        .sessions()
        .iter()
        .map(|s| s["user_id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(left, ["cat"]);
}

fn wait_for_session(w: &MockWorld, child: &mut Child) -> Value {
    let t0 = Instant::now();
    loop {
        if let Some(s) = w.sessions().into_iter().next() {
            return s;
        }
        assert!(child.try_wait().unwrap().is_none(), "the spawn ended early");
        assert!(
            t0.elapsed() < Duration::from_secs(30),
            "no session recorded"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_session_held_by_a_live_process_is_not_stopped_by_another_until_it_is_gone() {
    // The mock boots slowly, so `session spawn --wait` keeps its process (and its
    // ownership lease) alive while the test acts from other processes.
    let w = MockWorld::new("[mock]\nboot_delay = \"1h\"\n");
    let mut holder = w
        .cmd(&[
            "session",
            "spawn",
            "--user",
            "u",
            "--image",
            "x",
            "--wait",
            "--timeout",
            "5m",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let s = wait_for_session(&w, &mut holder);
    let id = s["id"].as_str().unwrap().to_string();
    let owner = s["owner"]
        .as_str()
        .expect("sessions name their owner")
        .to_string();
    assert!(owner.contains(&holder.id().to_string()), "{owner}");

    // Another process: refused, naming the holder (exit 11), and nothing changed.
    let refused = w.run(&["session", "stop", &id]);
    let line = refused.fails(11).to_string();
    assert!(
        line.contains("held by node") && line.contains(&owner),
        "{line}"
    );
    // Another spawn in the same store neither adopts nor drops it.
    spawn(&w, "v");
    let again = w.sessions();
    let held = again.iter().find(|x| x["id"] == id.as_str()).unwrap();
    assert_eq!(
        held["owner"],
        owner.as_str(),
        "taken over from a live process"
    );

    // The holder is interrupted: it reports and releases what it held.
    let ok = Command::new("kill")
        .args(["-INT", &holder.id().to_string()])
        .status()
        .unwrap();
    assert!(ok.success());
    let out = holder.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(130));
    // Released: the next process may act on it.
    w.run(&["session", "stop", &id]).ok();
    assert!(w.sessions().iter().all(|x| x["id"] != id.as_str()));
}
