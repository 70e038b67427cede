//! `atlas ls --provider all`: every configured provider at once, one table or one JSON
//! array, a failing provider reported (stderr, JSON entry) and exit 12 for an incomplete
//! listing.

mod common;

use std::time::{Duration, Instant};

use common::{assert_lambda_reported, with_broken_lambda, MockWorld};

#[test]
fn every_configured_provider_is_listed_and_a_failing_one_makes_it_incomplete() {
    let w = MockWorld::new("[mock]\nboot_delay = \"100ms\"\n");
    w.run(&["mock", "seed", "atlas-seeded", "--gpu", "h100"])
        .ok();
    let c = w.run(&["spawn", "--image", "x", "-o", "json"]).ok().json();
    let spawned = c["id"].as_str().unwrap();

    // Only the mock is configured (no other key set): complete, exit 0.
    let r = w.run(&["--provider", "all", "ls"]).ok();
    assert!(r.stdout.contains("PROVIDER"), "{r:#?}");
    assert!(r.stdout.contains(spawned), "{r:#?}");
    assert!(r.stderr.is_empty(), "{r:#?}");

    // Lambda configured but unreachable: the mock's machines are still listed, the
    // failure is one error line, and the exit code says the listing is incomplete.
    // Lambda retries a refused connection for a while: --timeout bounds the wait.
    let started = Instant::now();
    let r = with_broken_lambda(&w, &["--provider", "all", "ls", "--timeout", "2s"]);
    assert_lambda_reported(&r);
    assert!(started.elapsed() < Duration::from_secs(15), "{r:#?}");
    let rows: Vec<&str> = r.stdout.lines().filter(|l| l.contains("mock-")).collect();
    assert_eq!(rows.len(), 2, "{r:#?}");
    assert!(rows.iter().all(|l| l.contains("mock")), "{rows:?}");

    let r = with_broken_lambda(
        &w,
        &["--provider", "all", "ls", "--timeout", "1s", "-o", "json"],
    );
    assert_lambda_reported(&r);
    let entries = r.json();
    let entries = entries.as_array().unwrap();
    let names: Vec<&str> = entries
        .iter()
        .map(|e| e["provider"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["mock", "lambda"], "{entries:#?}");
    assert_eq!(entries[0]["ok"], true);
    assert_eq!(entries[0]["machines"].as_array().unwrap().len(), 2);
    assert_eq!(entries[1]["ok"], false);
    assert_eq!(entries[1]["error"]["kind"], "timeout", "{entries:#?}");
    assert_eq!(entries[1]["error"]["exit_code"], 6);
    assert!(
        entries[1]["error"]["message"]
            .as_str()
            .unwrap()
            .contains("lambda"),
        "{entries:#?}"
    );
    assert!(entries[1].get("machines").is_none());

    // Filters apply to every provider.
    let r = w
        .run(&[
            "--provider",
            "all",
            "ls",
            "--name-prefix",
            "atlas-seeded",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(r.json()[0]["machines"].as_array().unwrap().len(), 1);

    w.run(&["terminate", spawned]).ok();
}

#[test]
fn all_is_refused_where_one_provider_is_needed_and_with_one_providers_flags() {
    let w = MockWorld::new("");
    let r = w.run(&["--provider", "all", "spawn", "--image", "x"]);
    let line = r.fails(2);
    assert!(line.contains("atlas ls"), "{line}");
    assert!(w.machines().is_empty(), "nothing spawned");
    let r = w.run(&[
        "--provider",
        "all",
        "ls",
        "--base-url",
        "http://127.0.0.1:9",
    ]);
    let line = r.fails(2);
    assert!(line.contains("--base-url"), "{line}");
    let r = w.run(&["ls", "--help"]).ok();
    assert!(r.stdout.contains("--provider all"), "{r:#?}");
    assert!(
        r.stdout.contains("12 when at least one failed"),
        "the exit code is in the help: {r:#?}"
    );
}
