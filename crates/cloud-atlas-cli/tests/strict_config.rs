//! `atlas.toml` provider tables are strict: an unknown key, a value of the wrong type or
//! an unparsable URL is refused (exit 2) naming the key and what is allowed, before
//! anything is sent; so a typo like `baseurl` can never send the real key to the
//! provider's production URL.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use common::{MockWorld, Run};
use serde_json::Value;

const KEY: &str = "canary-strict-key";

/// A server answering 401 to everything; counts the requests it got.
fn counting_server() -> (String, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let seen = Arc::new(AtomicUsize::new(0));
    let counter = Arc::clone(&seen);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            counter.fetch_add(1, Ordering::SeqCst);
            let mut reader = BufReader::new(stream.try_clone().unwrap());
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
                    break;
                }
            }
            let body = r#"{"error":"bad key"}"#;
            let mut w = stream;
            let _ = write!(
                w,
                "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
        }
    });
    (url, seen)
}

fn runpod(w: &MockWorld, args: &[&str]) -> Run {
    Run::of(w.cmd(args).env("RUNPOD_API_KEY", KEY))
}

#[test]
fn a_misspelt_base_url_is_refused_naming_the_key_and_the_allowed_ones() {
    let (url, seen) = counting_server();
    let w = MockWorld::new(&format!("[providers.runpod]\nbaseurl = \"{url}\"\n"));
    let r = runpod(&w, &["--provider", "runpod", "ls"]);
    let line = r.fails(2);
    assert!(line.contains("providers.runpod.baseurl"), "{line}");
    assert!(line.contains("unknown key"), "{line}");
    assert!(
        line.contains("allowed: api_key (or key), base_url (or url)"),
        "{line}"
    );
    assert!(line.contains("atlas.toml"), "{line}");
    assert!(!r.stderr.contains(KEY), "{line}");
    assert_eq!(seen.load(Ordering::SeqCst), 0, "nothing may be sent");

    // Every command reads the file, so every command refuses it (the mock too).
    let r = w.run(&["ls"]);
    assert!(r.fails(2).contains("baseurl"), "{r:#?}");

    // With -o json the refusal is one JSON object of kind validation.
    let r = runpod(&w, &["--provider", "runpod", "ls", "-o", "json"]);
    assert_eq!(r.code, 2, "{r:#?}");
    let v: Value = serde_json::from_str(r.stderr.trim()).unwrap();
    assert_eq!(v["kind"], "validation", "{v}");
    assert!(v["message"].as_str().unwrap().contains("baseurl"), "{v}");
}

#[test]
fn a_base_url_of_the_wrong_type_or_unparsable_is_refused() {
    let w = MockWorld::new("[providers.runpod]\nbase_url = 5\n");
    let line = runpod(&w, &["--provider", "runpod", "ls"])
        .fails(2)
        .to_string();
    assert!(line.contains("providers.runpod.base_url"), "{line}");
    assert!(line.contains("got an integer"), "{line}");
    assert!(line.contains("must be a URL string"), "{line}");

    let w = MockWorld::new("[providers.runpod]\nbase_url = \"localhost:4010\"\n");
    let line = runpod(&w, &["--provider", "runpod", "ls"])
        .fails(2)
        .to_string();
    assert!(line.contains("providers.runpod.base_url"), "{line}");

    let w = MockWorld::new("[providers.lambda]\nopen_ports = \"no\"\n");
    let line = w.run(&["ls"]).fails(2).to_string();
    assert!(line.contains("providers.lambda.open_ports"), "{line}");
    assert!(line.contains("true or false"), "{line}");

    let w = MockWorld::new("[mock]\nboot_delay = \"soon\"\n");
    let line = w.run(&["ls"]).fails(2).to_string();
    assert!(line.contains("mock.boot_delay"), "{line}");
}

#[test]
fn aliases_in_the_file_are_used() {
    let (url, seen) = counting_server();
    let w = MockWorld::new(&format!("[providers.runpod]\nurl = \"{url}\"\n"));
    let r = runpod(&w, &["--provider", "runpod", "ls"]);
    assert_eq!(r.code, 3, "the local server's 401: {r:#?}");
    assert!(seen.load(Ordering::SeqCst) >= 1, "the alias must be used");
}

#[test]
fn a_bad_base_url_from_the_environment_or_the_flag_is_refused_before_sending() {
    let w = MockWorld::new("");
    let r = Run::of(
        w.cmd(&["--provider", "vast", "ls"])
            .env("VAST_API_KEY", KEY)
            .env("ATLAS_VAST_BASE_URL", "vast.example"),
    );
    let line = r.fails(2);
    assert!(line.contains("base_url"), "{line}");
    let r = runpod(&w, &["--provider", "runpod", "--base-url", "ftp://x", "ls"]);
    assert!(r.fails(2).contains("--base-url"), "{r:#?}");
}
