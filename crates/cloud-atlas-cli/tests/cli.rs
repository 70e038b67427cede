//! The `atlas` binary, run as a user runs it: separate processes sharing the mock cloud's
//! SQLite state through `ATLAS_HOME`. The environment is cleared for every run so no
//! user config, API key or base URL leaks in.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::net::TcpListener;
use std::process::Command;

use common::Run;
use serde_json::Value;

/// A private world for one test: data dir, config file, home.
struct Sandbox {
    dir: tempfile::TempDir,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("atlas.toml"),
            "[mock]\nboot_delay = \"300ms\"\nqueue_delay = \"50ms\"\nexec_time = \"300ms\"\n",
        )
        .unwrap();
        Sandbox { dir }
    }

    fn cmd(&self, args: &[&str]) -> Command {
        common::atlas(self.dir.path(), args)
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().unwrap())
    }
}

#[test]
fn spawn_wait_list_terminate_then_get_is_not_found_across_processes() {
    let s = Sandbox::new();
    let spawned = s
        .run(&[
            "spawn",
            "--provider",
            "mock",
            "--gpu",
            "h100",
            "--image",
            "img",
            "--port",
            "8000/http",
            "--auth",
            "bearer",
            "--wait",
            "-o",
            "json",
        ])
        .ok();
    let c = spawned.json();
    assert_eq!(c["status"], "running", "{c}");
    assert_eq!(c["gpu"], "h100");
    let id = c["id"].as_str().unwrap().to_string();
    let url = c["ports"][0]["url"].as_str().unwrap();
    assert!(url.starts_with("https://"), "{url}");
    assert_eq!(c["ports"][0]["internal"], 8000);
    let token = c["auth"]["token"].as_str().unwrap();
    assert!(token.len() >= 32, "{token}");
    assert_eq!(c["auth"]["mode"], "bearer");

    let listed = s
        .run(&["ls", "--provider", "mock", "-o", "json"])
        .ok()
        .json();
    let items = listed.as_array().unwrap();
    assert!(items.iter().any(|i| i["id"] == id.as_str()), "{listed}");
    // Reads never carry the raw token again.
    assert!(!s
        .run(&["ls", "--provider", "mock", "-o", "json"])
        .stdout
        .contains(token));

    let t = s.run(&["terminate", &id, "--provider", "mock"]).ok();
    assert!(t.stdout.contains(&id), "{t:#?}");

    let gone = s.run(&["get", &id, "--provider", "mock"]);
    assert_eq!(gone.code, 4, "{gone:#?}");
    assert!(gone.error_line().contains(&id));
    let listed = s
        .run(&["ls", "--provider", "mock", "-o", "json"])
        .ok()
        .json();
    assert!(!listed
        .as_array()
        .unwrap()
        .iter()
        .any(|i| i["id"] == id.as_str()));
}

#[test]
fn spawn_table_shows_the_token_once_with_a_warning() {
    let s = Sandbox::new();
    let r = s
        .run(&[
            "spawn",
            "--gpu",
            "l4",
            "--image",
            "img",
            "--port",
            "8000/http",
            "--auth",
            "bearer",
            "--wait",
        ])
        .ok();
    assert!(r.stdout.contains("bearer token: "), "{r:#?}");
    assert!(r.stdout.contains("shown only once"), "{r:#?}");
    assert!(r.stdout.contains("running"), "{r:#?}");
    // Without a terminal, --wait reports progress as lines on stderr, never on stdout.
    assert!(r.stderr.contains("running"), "{r:#?}");
    assert!(!r.stdout.contains("waiting for"), "{r:#?}");
}

#[test]
fn bad_gpu_exits_2_naming_the_allowed_gpus() {
    let s = Sandbox::new();
    let r = s.run(&[
        "spawn",
        "--provider",
        "mock",
        "--gpu",
        "nonsense",
        "--image",
        "x",
    ]);
    assert_eq!(r.code, 2, "{r:#?}");
    let line = r.error_line();
    assert!(line.contains("gpu"), "{line}");
    assert!(
        line.contains("allowed: ") && line.contains("h100") && line.contains("a100_80g"),
        "{line}"
    );
}

#[test]
fn an_ambiguous_gpu_exits_2_listing_the_choices_and_a_native_id_is_taken() {
    let s = Sandbox::new();
    let r = s.run(&[
        "spawn",
        "--provider",
        "mock",
        "--gpu",
        "a100",
        "--image",
        "x",
    ]);
    assert_eq!(r.code, 2, "{r:#?}");
    let line = r.error_line();
    assert!(line.contains("gpu") && line.contains("ambiguous"), "{line}");
    for choice in ["a100_sxm4_80g", "a100_pcie_80g", "a100_40g"] {
        assert!(line.contains(choice), "{line}");
    }
    // The mock's native ids are the canonical names.
    let c = s
        .run(&[
            "spawn",
            "--provider",
            "mock",
            "--gpu",
            "native:a100_pcie_80g",
            "--image",
            "x",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(c["gpu"], "a100_pcie_80g", "{c}");
    let r = s.run(&[
        "spawn",
        "--provider",
        "mock",
        "--gpu",
        "native:",
        "--image",
        "x",
    ]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.error_line().contains("gpu"), "{r:#?}");
}

#[test]
fn bad_flag_values_are_one_line_naming_field_and_allowed_values() {
    let s = Sandbox::new();
    for (args, field, allowed) in [
        (
            &["spawn", "--image", "x", "--auth", "magic"][..],
            "auth",
            "bearer",
        ),
        (
            &["spawn", "--image", "x", "--port", "80/sctp"][..],
            "ports",
            "tcp",
        ),
        (
            &["spawn", "--image", "x", "--idle-ttl", "soon"][..],
            "--idle-ttl",
            "15m",
        ),
        (&["spawn", "--gpu", "h100"][..], "image", "required"),
        (&["ls", "--status", "up"][..], "status", "running"),
        (
            &["job", "run", "-e", "mock-echo", "--input", "{oops"][..],
            "input",
            "JSON",
        ),
    ] {
        let r = s.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:#?}");
        let line = r.error_line();
        assert!(
            line.contains(field) && line.contains(allowed),
            "{args:?}: {line}"
        );
    }
    // clap's own usage errors are one line with code 2 as well.
    for args in [
        &["-o", "xml", "ls"][..],
        &["spawn", "--volume-gb", "lots"][..],
        &["frobnicate"][..],
    ] {
        let r = s.run(args);
        assert_eq!(r.code, 2, "{args:?}: {r:#?}");
        r.error_line();
    }
    let r = s.run(&["-o", "xml", "ls"]);
    assert!(r.stderr.contains("table, json, jsonl"), "{r:#?}");
}

#[test]
fn runpod_without_a_key_exits_3_naming_the_env_var() {
    let s = Sandbox::new();
    let r = s.run(&["ls", "--provider", "runpod"]);
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(r.error_line().contains("RUNPOD_API_KEY"));
}

#[test]
fn jobs_on_the_mock_across_processes() {
    let s = Sandbox::new();
    let sync = s
        .run(&[
            "job",
            "run",
            "--endpoint",
            "mock-echo",
            "--input",
            r#"{"prompt":"hi"}"#,
            "--sync",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(sync["status"], "completed", "{sync}");
    assert_eq!(sync["output"]["echo"]["prompt"], "hi");

    let queued = s
        .run(&[
            "job",
            "run",
            "-e",
            "mock-echo",
            "--input",
            r#"{"chunks":3}"#,
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(queued["status"], "in_queue", "{queued}");
    let id = queued["id"].as_str().unwrap();

    let streamed = s
        .run(&["job", "stream", "-e", "mock-echo", id, "-o", "jsonl"])
        .ok();
    let chunks: Vec<Value> = streamed
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(chunks.len(), 3, "{streamed:#?}");
    assert_eq!(chunks[2]["index"], 2);

    let status = s
        .run(&["job", "status", "--endpoint", "mock-echo", id, "-o", "json"])
        .ok()
        .json();
    assert_eq!(status["status"], "completed", "{status}");
    assert_eq!(status["output"]["echo"]["chunks"], 3);

    // A job id is meaningless without its endpoint: a usage error.
    let r = s.run(&["job", "status", id]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.error_line().contains("--endpoint"));
    // Another endpoint does not know this job.
    assert_eq!(s.run(&["job", "status", "-e", "other", id]).code, 4);

    // A failed job prints the job, then fails with the provider code.
    let failed = s.run(&[
        "job",
        "run",
        "-e",
        "mock-echo",
        "--input",
        r#"{"fail":"boom"}"#,
        "--sync",
        "-o",
        "json",
    ]);
    assert_eq!(failed.code, 9, "{failed:#?}");
    assert_eq!(failed.json()["status"], "failed");
    // With -o json the error on stderr is one JSON object.
    let err: Value = serde_json::from_str(failed.stderr.trim()).unwrap();
    assert_eq!(err["kind"], "provider", "{err}");
    assert_eq!(err["exit_code"], 9, "{err}");
    assert!(err["message"].as_str().unwrap().contains("boom"), "{err}");
}

#[test]
fn jsonl_is_one_object_per_line_and_json_one_array() {
    let s = Sandbox::new();
    for name in ["a", "b"] {
        s.run(&[
            "spawn", "--cpus", "2", "--image", "img", "--name", name, "-o", "json",
        ])
        .ok();
    }
    let r = s.run(&["ls", "-o", "jsonl"]).ok();
    let lines: Vec<&str> = r.stdout.lines().collect();
    assert_eq!(lines.len(), 2, "{r:#?}");
    for l in lines {
        let v: Value = serde_json::from_str(l).unwrap();
        assert!(v["id"].as_str().unwrap().starts_with("mock-"));
    }
    let arr = s.run(&["ls", "-o", "json"]).ok().json();
    assert_eq!(arr.as_array().unwrap().len(), 2);
    let prefixed = s
        .run(&["ls", "--name-prefix", "b-", "-o", "json"])
        .ok()
        .json();
    assert_eq!(prefixed.as_array().unwrap().len(), 1, "{prefixed}");
    // A single result in jsonl is one line too.
    let id = arr[0]["id"].as_str().unwrap();
    let one = s.run(&["get", id, "-o", "jsonl"]).ok();
    assert_eq!(one.stdout.lines().count(), 1);
    // The default table names the machines.
    let table = s.run(&["ls"]).ok();
    assert!(
        table.stdout.contains(id) && table.stdout.contains("STATUS"),
        "{table:#?}"
    );
}

#[test]
fn stop_start_and_gpus() {
    let s = Sandbox::new();
    let c = s
        .run(&["spawn", "--gpu", "a100-80g", "--image", "img", "-o", "json"])
        .ok()
        .json();
    let id = c["id"].as_str().unwrap();
    let stopped = s.run(&["stop", id, "-o", "json"]).ok().json();
    assert_eq!(stopped["action"], "stopped");
    assert_eq!(
        s.run(&["get", id, "-o", "json"]).ok().json()["status"],
        "stopped"
    );
    s.run(&["start", id]).ok();
    assert_ne!(
        s.run(&["get", id, "-o", "json"]).ok().json()["status"],
        "stopped"
    );

    let gpus = s
        .run(&["gpus", "--sort", "price", "-o", "json"])
        .ok()
        .json();
    let prices: Vec<f64> = gpus
        .as_array()
        .unwrap()
        .iter()
        .map(|g| {
            ["price_on_demand", "price_spot", "price_community"]
                .iter()
                .filter_map(|k| g[k].as_f64())
                .fold(f64::INFINITY, f64::min)
        })
        .collect();
    assert!(prices.len() > 5);
    assert!(prices.windows(2).all(|w| w[0] <= w[1]), "{prices:?}");
    let h100 = s.run(&["gpus", "--gpu", "H100", "-o", "json"]).ok().json();
    // The GPUs that serve an h100 request: h100 and its form factors.
    let kinds: Vec<&str> = h100
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["gpu"].as_str().unwrap())
        .collect();
    assert!(kinds.contains(&"h100"), "{kinds:?}");
    assert!(
        kinds
            .iter()
            .all(|k| ["h100", "h100_sxm", "h100_pcie"].contains(k)),
        "{kinds:?}"
    );
    let a100 = s
        .run(&["gpus", "--gpu", "a100_80g", "-o", "json"])
        .ok()
        .json();
    let kinds: Vec<&str> = a100
        .as_array()
        .unwrap()
        .iter()
        .map(|g| g["gpu"].as_str().unwrap())
        .collect();
    assert!(
        kinds.contains(&"a100_sxm4_80g") && kinds.contains(&"a100_pcie_80g"),
        "{kinds:?}"
    );
    assert!(!kinds.iter().any(|k| k.contains("40g")), "{kinds:?}");
}

#[test]
fn completions_and_help() {
    let s = Sandbox::new();
    let r = s.run(&["completions", "bash"]).ok();
    assert!(
        r.stdout.contains("_atlas") && r.stdout.contains("spawn"),
        "{r:#?}"
    );
    let r = s.run(&["--help"]).ok();
    assert!(r.stdout.contains("spawn") && r.stdout.contains("--provider"));
    assert_eq!(s.run(&[]).code, 2);
}

#[test]
fn providers_show_key_sources_never_values() {
    let s = Sandbox::new();
    let r = Run::from(
        s.cmd(&["providers", "-o", "json"])
            .env("RUNPOD_API_KEY", "canary-provider-key")
            .output()
            .unwrap(),
    )
    .ok();
    assert!(!r.stdout.contains("canary-provider-key") && !r.stderr.contains("canary-provider-key"));
    let v = r.json();
    let find = |n: &str| {
        v.as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == n)
            .cloned()
            .unwrap()
    };
    let mock = find("mock");
    assert_eq!(mock["default"], true);
    assert_eq!(mock["available"], true);
    assert!(mock["capabilities"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "serverless"));
    let runpod = find("runpod");
    assert_eq!(runpod["api_key"]["configured"], true);
    assert_eq!(runpod["api_key"]["source"], "RUNPOD_API_KEY");
    let vast = find("vast");
    assert_eq!(vast["api_key"]["configured"], false);
    assert!(vast["note"].as_str().unwrap().contains("VAST_API_KEY"));
}

/// A server that answers every request with 401 and echoes the credential it received in
/// the body, as careless APIs do. Returns its URL and whether it saw `needle`.
fn echoing_401_server(needle: &'static str) -> (String, std::thread::JoinHandle<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let handle = std::thread::spawn(move || {
        let (stream, _) = listener.accept().unwrap();
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
        let body = format!(r#"{{"error":"invalid token: {auth}"}}"#);
        let mut w = stream;
        let _ = write!(
            w,
            "HTTP/1.1 401 Unauthorized\r\ncontent-type: application/json\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        auth.contains(needle)
    });
    (url, handle)
}

#[test]
fn api_key_never_appears_on_stderr() {
    const CANARY: &str = "canary-XYZ";
    let s = Sandbox::new();
    // A provider that rejects the key and echoes it back; logs at debug level on.
    let (url, server) = echoing_401_server(CANARY);
    let r = Run::from(
        s.cmd(&[
            "ls",
            "--provider",
            "fly",
            "--api-key",
            CANARY,
            "--base-url",
            &url,
        ])
        .env("FLY_APP_NAME", "canary-app")
        .env("ATLAS_LOG", "debug")
        .output()
        .unwrap(),
    );
    assert!(
        server.join().unwrap(),
        "the server must have received the key"
    );
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(r.stderr.contains("error: Unauthorized"), "{r:#?}");
    assert!(
        !r.stderr.contains(CANARY),
        "key leaked to stderr: {}",
        r.stderr
    );
    assert!(
        !r.stdout.contains(CANARY),
        "key leaked to stdout: {}",
        r.stdout
    );

    // Local failures with the key given: validation, not found, unknown provider.
    for args in [
        &[
            "spawn",
            "--gpu",
            "nonsense",
            "--image",
            "x",
            "--api-key",
            CANARY,
        ][..],
        &["get", "mock-nope", "--api-key", CANARY][..],
        &["ls", "--provider", "nope", "--api-key", CANARY][..],
    ] {
        let r = s.run(args);
        assert_ne!(r.code, 0, "{args:?}");
        r.error_line();
        assert!(!r.stderr.contains(CANARY), "{args:?}: {}", r.stderr);
    }
}

#[test]
fn demo_runs_the_main_job_and_exits_0() {
    let s = Sandbox::new();
    let r = s.run(&["demo"]).ok();
    for step in [
        "1. spawn",
        "2. wait",
        "· running",
        "3. get",
        "4. list",
        "5. terminate",
        "6. get",
        "NotFound",
    ] {
        assert!(r.stdout.contains(step), "missing {step:?}: {r:#?}");
    }
    // It leaves nothing behind.
    let left = s.run(&["ls", "-o", "json"]).ok().json();
    assert_eq!(left.as_array().unwrap().len(), 0, "{left}");
    // The demo is mock-only.
    assert_eq!(s.run(&["demo", "--provider", "lambda"]).code, 2);
}
