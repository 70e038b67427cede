//! Every limit flag is enforced or refused before anything bills, every flag is checked
//! before the first call that can bill, and extreme values are one-line errors naming
//! the flag and the allowed range (issue 12, defects 3, 5 and 6). Real `atlas`
//! processes; the mock cloud's state (SQLite under `ATLAS_HOME`) shows what was created.

#[path = "../../cloud-atlas/tests/support/mod.rs"]
mod support;

mod common;

use std::time::Duration;

use common::{MockWorld, Run};
use support::prism::Prism;

fn world() -> MockWorld {
    MockWorld::new("[mock]\nboot_delay = \"100ms\"\n")
}

// ---- defect 3: limits enforced or refused ----

#[test]
fn idle_ttl_on_an_untracked_spawn_is_refused_pointing_at_session_spawn() {
    let s = world();
    let r = s.line("spawn --image x --idle-ttl 10m");
    let line = r.fails(7);
    assert!(line.contains("--idle-ttl"), "{line}");
    assert!(line.contains("atlas session spawn"), "{line}");
    assert!(s.machines().is_empty(), "nothing may be created");
}

#[test]
fn max_runtime_on_the_mock_is_held_by_the_machine() {
    let s = world();
    let r = s.line("spawn --image x --max-runtime 1s -o json").ok();
    let id = r.json()["id"].as_str().unwrap().to_string();
    assert!(r.json()["raw"]["deadline"].is_string(), "{r:#?}");
    std::thread::sleep(Duration::from_millis(1500));
    let gone = s.run(&["--provider", "mock", "get", &id]);
    assert_eq!(
        gone.code, 4,
        "the machine must be gone after its max runtime: {gone:#?}"
    );
}

#[test]
fn max_runtime_on_lambda_is_refused_naming_what_would_enforce_it() {
    let s = world();
    for extra in [&[][..], &["--", "python", "train.py"][..]] {
        let mut args = vec![
            "--provider",
            "lambda",
            "spawn",
            "--gpu",
            "a10",
            "--image",
            "x",
            "--max-runtime",
            "1h",
        ];
        args.extend_from_slice(extra);
        // Nothing is sent: the base URL is a closed port, so any request would fail
        // differently (exit 10).
        let r = Run::of(
            s.cmd(&args)
                .env("LAMBDA_API_KEY", "secret_lambda_key_for_tests")
                .env("ATLAS_LAMBDA_BASE_URL", "http://127.0.0.1:9"),
        );
        let line = r.fails(7);
        assert!(line.contains("lambda"), "{line}");
        assert!(
            line.contains("orchestrator") && line.contains("atlas serve"),
            "{line}"
        );
    }
}

/// RunPod against its published spec: no command means no deadline can live on the pod,
/// so `--max-runtime` is refused before any request; with a command the create body
/// carries the wrapped command, and Prism accepts it.
#[test]
fn runpod_max_runtime_needs_a_command_and_then_rides_on_the_pod() {
    let prism = Prism::start("runpod/rest-v2.openapi.json");
    let s = MockWorld::new("[providers.runpod]\nrate_limit_max_wait = \"50ms\"\n");
    let run = |args: &[&str]| {
        Run::of(
            s.cmd(args)
                .env("RUNPOD_API_KEY", support::runpod_runtime::KEY)
                .env("ATLAS_RUNPOD_BASE_URL", prism.base_url()),
        )
    };
    let base = [
        "--provider",
        "runpod",
        "spawn",
        "--gpu",
        "rtx-4090",
        "--image",
        "runpod/pytorch:1.0.2-cu1281-torch280-ubuntu2404",
        "--max-runtime",
        "1h",
        "--idle-ttl",
        "10m",
    ];
    // The command line: refused (exit 7), nothing sent.
    let r = run(&base);
    assert_eq!(r.code, 7, "{r:#?}");
    let r = run(&base[..base.len() - 2]);
    let line = r.fails(7);
    assert!(line.contains("-- CMD ARGS"), "{line}");
    assert!(line.contains("atlas serve"), "{line}");
    assert_eq!(prism.request_count(), 0, "refused before any request");

    let mut with_cmd = base[..base.len() - 2].to_vec();
    with_cmd.extend(["-o", "json", "--", "python", "train.py"]);
    let r = run(&with_cmd).ok();
    assert!(r.json()["id"].is_string(), "{r:#?}");
    assert_eq!(prism.request_count(), 1);

    // A tracked session says which limits hold only while an orchestrator runs: on
    // RunPod without a command, max runtime is one of them.
    let session = [
        "--provider",
        "runpod",
        "session",
        "spawn",
        "--user",
        "u",
        "--gpu",
        "rtx-4090",
        "--image",
        "img",
    ];
    let r = run(&session).ok();
    let notes: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("note: "))
        .collect();
    assert!(
        notes[0].contains("idle TTL 15m and max runtime 8h hold only while an orchestrator runs"),
        "{notes:?}"
    );
    assert!(
        notes[1].contains("only when it runs a command (`-- CMD ARGS…`)"),
        "{notes:?}"
    );
    let mut with_cmd = session.to_vec();
    with_cmd.extend(["--", "python", "serve.py"]);
    let r = run(&with_cmd).ok();
    let notes: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("note: "))
        .collect();
    assert!(!notes[0].contains("max runtime"), "{notes:?}");
    assert!(
        notes[1].contains("max runtime 8h is held by the machine itself"),
        "{notes:?}"
    );
    prism.assert_no_violations();
}

#[test]
fn session_spawn_says_which_limits_hold_only_while_an_orchestrator_runs() {
    let s = world();
    let r = s
        .line("session spawn --user u --image x --idle-ttl 10m --max-runtime 2h --max-cost 5")
        .ok();
    let notes: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.starts_with("note: "))
        .collect();
    assert_eq!(notes.len(), 2, "{r:#?}");
    assert!(notes[0].contains("idle TTL 10m"), "{}", notes[0]);
    assert!(notes[0].contains("$5 cost cap"), "{}", notes[0]);
    assert!(
        notes[0].contains("only while an orchestrator runs"),
        "{}",
        notes[0]
    );
    // The mock holds max runtime itself, so it is not among them.
    assert!(!notes[0].contains("max runtime"), "{}", notes[0]);
    assert!(
        notes[1].contains("max runtime 2h is held by the machine"),
        "{}",
        notes[1]
    );
    // And the machine carries the deadline (max runtime + the orchestrator's slack).
    let m = &s.machines()[0];
    assert!(m["raw"]["deadline"].is_string(), "{m:#}");
}

// ---- defect 5: extreme values ----

#[test]
fn extreme_durations_are_one_line_errors_naming_the_flag_and_range() {
    let s = world();
    for (line, flag, range) in [
        (
            "spawn --image x --max-runtime 300000000000y",
            "--max-runtime",
            "1s to 365d",
        ),
        (
            "spawn --image x --max-runtime 300000000y",
            "--max-runtime",
            "1s to 365d",
        ),
        (
            "spawn --image x --idle-ttl 300000000000y",
            "--idle-ttl",
            "1s to 365d",
        ),
        (
            "spawn --image x --wait --timeout 300000000000y",
            "--timeout",
            "1s to 7d",
        ),
        (
            "session spawn --user u --image x --idle-ttl 300000000y",
            "--idle-ttl",
            "1s to 365d",
        ),
        (
            "job run -e mock-echo --input {} --sync --timeout 300000000000y",
            "--timeout",
            "1s to 7d",
        ),
        (
            "mock seed atlas-x --age 300000000000y",
            "--age",
            "0s to 3650d",
        ),
        (
            "reap --dry-run --grace 300000000000y",
            "--grace",
            "0s to 365d",
        ),
        (
            "url sign /a --expires-in 300000000000y",
            "--expires-in",
            "1s to 365d",
        ),
        (
            "fly deploy --app a --activity-timeout 300000000000y",
            "--activity-timeout",
            "1s to 7d",
        ),
        ("spawn --image x --idle-ttl soon", "--idle-ttl", "15m"),
    ] {
        let r = s.line(line);
        let err = r.fails(2);
        assert!(err.contains(flag) && err.contains(range), "{line}: {err}");
    }
    assert!(s.machines().is_empty());
    assert!(s.sessions().is_empty());
}

#[test]
fn amounts_must_be_positive_finite_dollars() {
    let s = world();
    for v in ["NaN", "inf", "-1", "0", "1e308"] {
        let r = s.line(&format!("session spawn --user u --image x --max-cost {v}"));
        let line = r.fails(2);
        assert!(
            line.contains("--max-cost") && line.contains("above 0"),
            "{v}: {line}"
        );
    }
    assert!(s.machines().is_empty());
}

// ---- defect 6: validation before billing ----

#[test]
fn a_bad_flag_on_session_spawn_fails_before_anything_is_spawned() {
    let s = world();
    let r = s.line("session spawn --user u --image x --auth bearer --wait --timeout nope");
    let line = r.fails(2);
    assert!(line.contains("--timeout"), "{line}");
    assert!(s.machines().is_empty(), "no machine may be created");
    assert!(s.sessions().is_empty(), "no session may be recorded");
    // Same for a bad prefix, caught by the orchestrator before the provider is called.
    let r = s.line("session spawn --user u --image x --prefix Bad_Prefix");
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(s.machines().is_empty());
}

#[test]
fn every_billable_command_checks_its_flags_first() {
    let s = world();
    for line in [
        "spawn --image x --wait --timeout nope",
        "spawn --image x --port 80/sctp --wait",
        "session spawn --user u --image x --max-runtime 0s",
        "job run -e mock-echo --input {} --sync --timeout -1s",
    ] {
        let r = s.line(line);
        assert_eq!(r.code, 2, "{line}: {r:#?}");
        r.error_line();
    }
    // An empty program is refused too.
    let r = s.run(&["spawn", "--image", "x", "--", ""]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(s.machines().is_empty());
    assert!(s.sessions().is_empty());
}
