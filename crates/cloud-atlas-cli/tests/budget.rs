//! One time budget per provider call: `ATLAS_TIMEOUT`, `--call-timeout` and `timeout` in
//! atlas.toml bound a call against a provider that keeps failing, and `-v` shows each
//! retry as one line on stderr.

mod common;

use std::io::{Read, Write};
use std::net::TcpListener;
use std::time::{Duration, Instant};

use common::{atlas, Run};

/// A server that answers every request `503` (and counts nothing): a provider in trouble.
fn always_503() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", l.local_addr().unwrap());
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                let _ = s.read(&mut buf);
                let body = r#"{"error":"upstream busy"}"#;
                let _ = write!(
                    s,
                    "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                    body.len()
                );
            });
        }
    });
    base
}

fn ls(dir: &std::path::Path, base: &str, extra: &[&str]) -> std::process::Command {
    let mut args = vec!["--provider", "runpod", "--base-url", base];
    args.extend_from_slice(extra);
    args.push("ls");
    if !dir.join("atlas.toml").exists() {
        std::fs::write(dir.join("atlas.toml"), "").unwrap();
    }
    let mut c = atlas(dir, &args);
    c.env("RUNPOD_API_KEY", "rp_test_key");
    c
}

#[test]
fn atlas_timeout_bounds_a_listing_that_keeps_failing() {
    let dir = tempfile::tempdir().unwrap();
    let base = always_503();
    let t0 = Instant::now();
    let run = Run::of(ls(dir.path(), &base, &[]).env("ATLAS_TIMEOUT", "2s"));
    let took = t0.elapsed();
    let line = run.fails(6);
    assert!(line.contains("time budget ran out"), "{line}");
    assert!(took < Duration::from_secs(8), "took {took:?}");
}

#[test]
fn the_flag_beats_the_env_and_verbose_shows_each_retry() {
    let dir = tempfile::tempdir().unwrap();
    let base = always_503();
    let t0 = Instant::now();
    let run =
        Run::of(ls(dir.path(), &base, &["--call-timeout", "2s", "-v"]).env("ATLAS_TIMEOUT", "1h"));
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());
    assert_eq!(run.code, 6, "{run:#?}");
    let lines: Vec<&str> = run.stderr.lines().collect();
    let retries: Vec<&&str> = lines.iter().filter(|l| l.starts_with("retry: ")).collect();
    assert!(!retries.is_empty(), "{run:#?}");
    assert!(
        retries
            .iter()
            .all(|l| l.contains("runpod list: ") && l.contains("retrying in")),
        "{retries:#?}"
    );
    assert!(lines.last().unwrap().starts_with("error: "), "{run:#?}");
    assert_eq!(
        lines.len(),
        retries.len() + 1,
        "one line a retry, then the error"
    );
}

#[test]
fn the_config_file_sets_the_budget_and_bad_values_name_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let base = always_503();
    std::fs::write(dir.path().join("atlas.toml"), "timeout = \"2s\"\n").unwrap();
    let t0 = Instant::now();
    let run = Run::of(&mut ls(dir.path(), &base, &[]));
    run.fails(6);
    assert!(t0.elapsed() < Duration::from_secs(8), "{:?}", t0.elapsed());

    std::fs::write(dir.path().join("atlas.toml"), "timeout = \"soon\"\n").unwrap();
    let run = Run::of(&mut ls(dir.path(), &base, &[]));
    assert!(run.fails(2).contains("timeout"), "{run:#?}");
    let run = Run::of(ls(dir.path(), &base, &[]).env("ATLAS_TIMEOUT", "0s"));
    assert!(run.fails(2).contains("ATLAS_TIMEOUT"), "{run:#?}");
}
