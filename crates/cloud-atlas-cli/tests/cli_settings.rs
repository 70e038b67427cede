//! The `[orchestrator]` table of `atlas.toml` (issue 12, defect 8): read by `atlas
//! session`, `atlas reap` and `atlas serve`, strictly (an unknown key or a bad value exits 2
//! naming it), and what it sets holds: a cap in the file refuses a spawn, defaults and the
//! reaper's grace come from it.

mod common;

use common::MockWorld;

const MOCK: &str = "[mock]\nboot_delay = \"100ms\"\n";

#[test]
fn an_unknown_or_bad_orchestrator_key_exits_2_naming_it() {
    let w = MockWorld::new(&format!("{MOCK}[orchestrator]\nmax_usd = 5.0\n"));
    for args in [
        &["session", "ls"][..],
        &["session", "spawn", "--user", "u", "--image", "app"],
        &["reap", "--dry-run"],
        &["serve", "--bind", "127.0.0.1:0"],
    ] {
        let r = w.run(args);
        let line = r.fails(2);
        assert!(
            line.contains("orchestrator.max_usd") && line.contains("allowed: idle_ttl"),
            "{args:?}: {line}"
        );
        assert!(line.contains("max_usd_per_user_per_month"), "{line}");
    }
    assert!(w.machines().is_empty(), "nothing spawned");
    let w = MockWorld::new(&format!("{MOCK}[orchestrator]\nidle_ttl = \"400d\"\n"));
    let r = w.run(&["session", "ls"]);
    let line = r.fails(2);
    assert!(
        line.contains("orchestrator.idle_ttl") && line.contains("1s to 365d"),
        "{line}"
    );
}

#[test]
fn a_cap_in_the_file_refuses_a_spawn_and_defaults_come_from_it() {
    let w = MockWorld::new(&format!(
        "{MOCK}[orchestrator]\nmax_sessions_per_user = 1\nidle_ttl = \"20m\"\n"
    ));
    let first = w
        .run(&[
            "session", "spawn", "--user", "ann", "--image", "app", "-o", "json",
        ])
        .ok()
        .json();
    assert_eq!(first["session"]["idle_ttl"], 1_200_000, "{first:#}");
    let r = w.run(&["session", "spawn", "--user", "ann", "--image", "app"]);
    let line = r.fails(3);
    assert!(line.contains("max_sessions_per_user = 1"), "{line}");
    assert_eq!(w.machines().len(), 1, "the refused spawn made nothing");
    // Another user is not capped by ann's sessions.
    let other = w
        .run(&[
            "session", "spawn", "--user", "bo", "--image", "app", "-o", "json",
        ])
        .ok()
        .json();
    for s in [&first, &other] {
        let id = s["session"]["id"].as_str().unwrap();
        w.run(&["session", "stop", id]).ok();
    }
    assert!(w.machines().is_empty());
}

#[test]
fn the_reaper_takes_its_grace_from_the_file_unless_a_flag_says_otherwise() {
    let w = MockWorld::new(&format!("{MOCK}[orchestrator]\nreaper_grace = \"0s\"\n"));
    w.run(&["mock", "seed", "atlas-session-lost-1", "--age", "1m"])
        .ok();
    let action = |args: &[&str]| {
        let r = w.run(args).ok().json();
        r["decisions"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["name"] == "atlas-session-lost-1")
            .unwrap()["action"]
            .as_str()
            .unwrap()
            .to_string()
    };
    assert_eq!(action(&["reap", "--dry-run", "-o", "json"]), "terminate");
    assert_eq!(
        action(&["reap", "--dry-run", "--grace", "10m", "-o", "json"]),
        "keep"
    );
    let w2 = MockWorld::new(&format!(
        "{MOCK}[orchestrator]\nreaper_prefix = \"team-\"\nreaper_grace = \"0s\"\n"
    ));
    w2.run(&["mock", "seed", "atlas-session-lost-1", "--age", "1h"])
        .ok();
    let r = w2.run(&["reap", "--dry-run", "-o", "json"]).ok().json();
    assert_eq!(r["decisions"][0]["action"], "keep", "{r:#}");
    w.run(&["reap"]).ok();
    assert!(w.machines().is_empty());
    let id = w2.machines()[0]["id"].as_str().unwrap().to_string();
    w2.run(&["terminate", &id]).ok();
    assert!(w2.machines().is_empty());
}
