//! With `-o json`/`-o jsonl` every error reaches stderr as one JSON object
//! (`kind`, `message`, `provider`, `status`, `exit_code`) and the exit code is the one
//! the table gives; `-o table` keeps the one `error: …` line.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;

use common::{MockWorld, Run};
use serde_json::Value;

/// The one JSON object on stderr, checked for its shape and against the exit code.
fn error_json(r: &Run) -> Value {
    let lines: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line on stderr expected: {r:#?}");
    let v: Value = serde_json::from_str(lines[0])
        .unwrap_or_else(|e| panic!("stderr is not one JSON object ({e}): {r:#?}"));
    let obj = v
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {v}"));
    let mut keys: Vec<&str> = obj.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(
        keys,
        ["exit_code", "kind", "message", "provider", "status"],
        "{v}"
    );
    assert_eq!(
        v["exit_code"], r.code,
        "exit_code matches the exit code: {r:#?}"
    );
    assert!(!v["message"].as_str().unwrap().is_empty(), "{v}");
    assert!(r.stdout.is_empty(), "nothing on stdout: {r:#?}");
    v
}

/// A server answering every request with `status` and a body that echoes the
/// `Authorization` header it got (as careless APIs do), `count` times.
fn answering_server(status: &'static str, count: usize) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    std::thread::spawn(move || {
        for _ in 0..count {
            let Ok((stream, _)) = listener.accept() else {
                return;
            };
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            let mut auth = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
                if line.to_ascii_lowercase().starts_with("authorization:") {
                    auth = line.trim_end().to_string();
                }
            }
            let body = format!(r#"{{"error":"no such thing for {auth}"}}"#);
            let mut w = stream;
            let _ = write!(
                w,
                "HTTP/1.1 {status}\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    url
}

#[test]
fn not_found_is_one_json_object_with_exit_4() {
    let w = MockWorld::new("");
    for format in ["json", "jsonl"] {
        let r = w.run(&["--provider", "mock", "get", "mock-nope", "-o", format]);
        assert_eq!(r.code, 4, "{r:#?}");
        let v = error_json(&r);
        assert_eq!(v["kind"], "not_found", "{v}");
        assert!(v["message"].as_str().unwrap().contains("mock-nope"), "{v}");
        assert_eq!(v["provider"], "mock", "{v}");
        // The mock cloud answers as an HTTP API would.
        assert!(v["status"].is_null() || v["status"] == 404, "{v}");
    }
}

#[test]
fn validation_is_one_json_object_with_exit_2() {
    let w = MockWorld::new("");
    let r = w.run(&["spawn", "--gpu", "nonsense", "--image", "x", "-o", "json"]);
    assert_eq!(r.code, 2, "{r:#?}");
    let v = error_json(&r);
    assert_eq!(v["kind"], "validation", "{v}");
    assert!(v["message"].as_str().unwrap().contains("nonsense"), "{v}");
    assert!(v["provider"].is_null() || v["provider"] == "mock", "{v}");
    assert!(v["status"].is_null(), "{v}");
}

#[test]
fn usage_errors_from_bad_flags_are_json_too() {
    let w = MockWorld::new("");
    for args in [
        &["ls", "--no-such-flag", "-o", "json"][..],
        &["-o", "jsonl", "spawn", "--image", "x", "--max-cost", "NaN"][..],
        &["--output=json", "frobnicate"][..],
    ] {
        let r = w.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:#?}");
        let v = error_json(&r);
        assert_eq!(v["kind"], "validation", "{args:?}: {v}");
        assert!(v["message"].as_str().unwrap().contains("--help"), "{v}");
    }
}

#[test]
fn provider_http_errors_carry_the_status_and_never_the_key() {
    const CANARY: &str = "canary-JSON-key";
    let w = MockWorld::new("");
    let url = answering_server("404 Not Found", 1);
    let r = Run::of(
        w.cmd(&["--provider", "runpod", "get", "pod-nope", "-o", "json"])
            .env("RUNPOD_API_KEY", CANARY)
            .env("ATLAS_RUNPOD_BASE_URL", &url),
    );
    assert_eq!(r.code, 4, "{r:#?}");
    let v = error_json(&r);
    assert_eq!(v["kind"], "not_found", "{v}");
    assert_eq!(v["provider"], "runpod", "{v}");
    assert_eq!(v["status"], 404, "{v}");
    assert!(!r.stderr.contains(CANARY), "key leaked: {}", r.stderr);

    let url = answering_server("401 Unauthorized", 1);
    let r = Run::of(
        w.cmd(&["--provider", "runpod", "ls", "-o", "jsonl"])
            .env("RUNPOD_API_KEY", CANARY)
            .env("ATLAS_RUNPOD_BASE_URL", &url),
    );
    assert_eq!(r.code, 3, "{r:#?}");
    let v = error_json(&r);
    assert_eq!(v["kind"], "unauthorized", "{v}");
    assert_eq!(v["provider"], "runpod", "{v}");
    assert_eq!(v["status"], 401, "{v}");
    assert!(!r.stderr.contains(CANARY), "key leaked: {}", r.stderr);
}

#[test]
fn table_output_keeps_the_plain_error_line() {
    let w = MockWorld::new("");
    let r = w.run(&["--provider", "mock", "get", "mock-nope"]);
    let line = r.fails(4);
    assert!(serde_json::from_str::<Value>(line).is_err(), "{line}");
    assert!(line.contains("mock-nope"), "{line}");
    let r = w.run(&["ls", "--no-such-flag"]);
    let line = r.fails(2);
    assert!(line.contains("--no-such-flag"), "{line}");
    let r = w.run(&["spawn", "--gpu", "nonsense", "--image", "x", "-o", "table"]);
    r.fails(2);
}
