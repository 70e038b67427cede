//! The `atlas` binary against RunPod's published REST v2 spec served by Prism (every
//! request must validate) and against the local serverless runtime built from RunPod's
//! docs samples. Every run starts from a cleared environment: only the RunPod key,
//! `ATLAS_RUNPOD_BASE_URL` (and the serverless base URL where needed) are set.

#[path = "../../cloud-atlas/tests/support/mod.rs"]
mod support;

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::Run;
use serde_json::Value;
use support::prism::Prism;
use support::runpod_runtime::{self, KEY};

const SPEC: &str = "runpod/rest-v2.openapi.json";
/// The pod id in the spec's examples.
const POD: &str = "7h9k2m4n6p";

/// A private world for one test, pointed at one RunPod API.
struct Sandbox {
    dir: tempfile::TempDir,
    base_url: String,
    serverless_url: Option<String>,
}

impl Sandbox {
    fn new(base_url: &str) -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        // Prism's example headers always say the minute window is spent (r=0;t=12): the
        // gate honours them, briefly, so a command making a second request does not wait 12 s.
        std::fs::write(
            dir.path().join("atlas.toml"),
            "[providers.runpod]\nrate_limit_max_wait = \"50ms\"\n",
        )
        .unwrap();
        Sandbox {
            dir,
            base_url: base_url.to_string(),
            serverless_url: None,
        }
    }

    fn with_serverless(mut self, url: &str) -> Sandbox {
        self.serverless_url = Some(url.to_string());
        self
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = common::atlas(self.dir.path(), args);
        c.env("RUNPOD_API_KEY", KEY)
            .env("ATLAS_RUNPOD_BASE_URL", &self.base_url);
        if let Some(u) = &self.serverless_url {
            c.env("ATLAS_RUNPOD_SERVERLESS_BASE_URL", u);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).output().unwrap())
    }
}

const RP: &[&str] = &["--provider", "runpod"];

fn with<'a>(base: &[&'a str], more: &[&'a str]) -> Vec<&'a str> {
    base.iter().chain(more).copied().collect()
}

/// `atlas --provider runpod job …`.
fn job<'a>(more: &[&'a str]) -> Vec<&'a str> {
    with(&["--provider", "runpod", "job"], more)
}

/// RunPod echoes a pod's `env` (the spec's examples: `{"MODEL_NAME": "llama-3"}`) in
/// every create, get and list reply: `raw` keeps the names, never the values, in any
/// output form, and a secret passed with `--env` shows up nowhere.
#[test]
fn env_values_never_reach_output() {
    let prism = Prism::start(SPEC);
    let s = Sandbox::new(&prism.base_url());
    const ECHOED: &str = "llama-3";
    const MINE: &str = "canary-7f3a9b";
    let spawn_secret = format!("HF_TOKEN={MINE}");
    let runs = [
        vec![
            "spawn",
            "--gpu",
            "rtx_4090",
            "--image",
            "img",
            "--env",
            &spawn_secret,
            "-o",
            "json",
        ],
        vec!["get", POD, "-o", "json"],
        vec!["ls", "-o", "json"],
        vec!["ls", "-o", "jsonl"],
    ];
    for (i, args) in runs.iter().enumerate() {
        let mut cmd = s.cmd(&with(RP, args));
        if i == 1 {
            // Logs on stderr, as verbose as they get.
            cmd.env("ATLAS_LOG", "trace");
        }
        let r = Run::of(&mut cmd).ok();
        for out in [&r.stdout, &r.stderr] {
            assert!(
                !out.contains(ECHOED),
                "{args:?} printed an env value: {r:#?}"
            );
            assert!(!out.contains(MINE), "{args:?} printed an env value: {r:#?}");
        }
        assert!(
            r.stdout.contains("MODEL_NAME") && r.stdout.contains("[redacted]"),
            "{args:?}: env names stay visible in raw: {r:#?}"
        );
    }
}

/// The issue's "Done when", command by command.
#[test]
fn done_when_pod_commands_conform_to_the_spec() {
    let prism = Prism::start(SPEC);
    let s = Sandbox::new(&prism.base_url());

    let spawned = s
        .run(&with(
            RP,
            &[
                "spawn",
                "--gpu",
                "rtx_4090",
                "--image",
                "img",
                "--port",
                "8000/http",
                "--env",
                "A=1",
                "--auth",
                "bearer",
                "-o",
                "json",
            ],
        ))
        .ok();
    let c = spawned.json();
    assert_eq!(c["provider"], "runpod", "{c}");
    assert_eq!(c["id"], POD);
    assert_eq!(c["gpu"], "rtx_4090");
    assert_eq!(c["auth"]["mode"], "bearer");
    let token = c["auth"]["token"].as_str().expect("token shown once");
    assert!(token.len() >= 32);

    let listed = s.run(&with(RP, &["ls", "-o", "json"])).ok().json();
    let items = listed.as_array().unwrap();
    assert_eq!(items.len(), 1, "{listed}");
    assert_eq!(items[0]["id"], POD);
    assert!(
        !listed.to_string().contains(token),
        "reads never carry the token"
    );
    let table = s.run(&with(RP, &["ls"])).ok();
    assert!(table.stdout.contains(POD) && table.stdout.contains("running"));

    let got = s.run(&with(RP, &["get", POD, "-o", "json"])).ok().json();
    assert_eq!(got["status"], "running");
    assert_eq!(
        got["ports"][0]["url"],
        format!("https://{POD}-8888.proxy.runpod.net")
    );

    for (cmd, action) in [
        ("stop", "stopped"),
        ("start", "started"),
        ("terminate", "terminated"),
    ] {
        let r = s.run(&with(RP, &[cmd, POD, "-o", "json"])).ok().json();
        assert_eq!(r["action"], action, "{r}");
        assert_eq!(r["provider"], "runpod");
    }

    let gpus = s.run(&with(RP, &["gpus", "-o", "json"])).ok().json();
    let first = &gpus.as_array().unwrap()[0];
    assert_eq!(first["gpu"], "rtx_4090", "{gpus}");
    assert_eq!(first["price_on_demand"], 0.44);
    let table = s.run(&["gpus", "--provider", "runpod"]).ok();
    assert!(table.stdout.contains("$0.44/h"), "{table:#?}");

    prism.assert_no_violations();
    assert!(prism.request_count() >= 9, "{}", prism.log());
}

#[test]
fn management_commands_and_logs_conform_to_the_spec() {
    let prism = Prism::start(SPEC);
    let s = Sandbox::new(&prism.base_url());

    let t = s.run(&["runpod", "templates", "list"]).ok();
    assert!(t.stdout.contains("PyTorch GPU Template"), "{t:#?}");
    let t = s
        .run(&["runpod", "templates", "list", "-o", "json"])
        .ok()
        .json();
    assert_eq!(t[0]["id"], "9x4m2p7v");
    let t = s
        .run(&["runpod", "templates", "get", "9x4m2p7v", "-o", "json"])
        .ok()
        .json();
    assert_eq!(t["name"], "PyTorch GPU Template");
    let d = s
        .run(&["runpod", "templates", "delete", "9x4m2p7v", "-o", "json"])
        .ok()
        .json();
    assert_eq!(d["action"], "deleted");
    assert_eq!(d["kind"], "template");

    let v = s
        .run(&["runpod", "volumes", "list", "-o", "json"])
        .ok()
        .json();
    assert_eq!(v[0]["dataCenter"], "US-KS-2");
    assert_eq!(v[0]["size"], 100);
    s.run(&["runpod", "volumes", "get", "2q9m7x4c"]).ok();
    let created = s
        .run(&[
            "runpod",
            "volumes",
            "create",
            "training-dataset",
            "--size-gb",
            "100",
            "--dc",
            "US-KS-2",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(created["id"], "2q9m7x4c");
    s.run(&[
        "runpod",
        "volumes",
        "update",
        "2q9m7x4c",
        "--size-gb",
        "200",
    ])
    .ok();
    let d = s.run(&["runpod", "volumes", "delete", "2q9m7x4c"]).ok();
    assert!(
        d.stdout.contains("deleted network volume 2q9m7x4c"),
        "{d:#?}"
    );

    let b = s.run(&["runpod", "billing"]).ok();
    assert!(b.stdout.contains("total $42.34"), "{b:#?}");
    let b = s
        .run(&[
            "runpod", "billing", "--last", "7", "--bucket", "day", "-o", "json",
        ])
        .ok()
        .json();
    assert_eq!(b["total"], 42.34);
    let b = s
        .run(&[
            "runpod",
            "billing",
            "--family",
            "pods",
            "--resource",
            POD,
            "--start",
            "2026-06-01T00:00:00Z",
            "--end",
            "2026-06-02T00:00:00Z",
            "-o",
            "json",
        ])
        .ok()
        .json();
    assert_eq!(b["records"][0]["resource_id"], POD);
    for family in ["serverless", "endpoints", "volumes"] {
        s.run(&["runpod", "billing", "--family", family]).ok();
    }

    // Recent logs: a bounded read that returns.
    let l = s.run(&with(RP, &["logs", POD])).ok();
    assert!(l.stdout.contains("container | Model loaded."), "{l:#?}");
    let l = s
        .run(&with(RP, &["logs", POD, "--tail", "10", "-o", "json"]))
        .ok()
        .json();
    assert_eq!(l[0]["line"], "Model loaded.");
    assert_eq!(l[0]["source"], "container");
    s.run(&with(RP, &["logs", POD, "--source", "system"])).ok();

    prism.assert_no_violations();
}

/// `logs --follow` keeps going (reconnecting when the server closes) until Ctrl-C,
/// which ends it cleanly with exit 0.
#[test]
fn logs_follow_stops_cleanly_on_ctrl_c() {
    let prism = Prism::start(SPEC);
    let s = Sandbox::new(&prism.base_url());
    let mut child = s
        .cmd(&with(RP, &["logs", POD, "--follow", "-o", "jsonl"]))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    let line: Value = serde_json::from_str(&first).unwrap();
    assert_eq!(line["line"], "Model loaded.");

    // Prism closes the stream after its example; the follow reconnects (with `since`).
    let started = Instant::now();
    while prism.request_count() < 2 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "no reconnect: {}",
            prism.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(child.try_wait().unwrap().is_none(), "still following");

    let killed = Command::new("kill")
        .args(["-INT", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let started = Instant::now();
    let status = loop {
        if let Some(st) = child.try_wait().unwrap() {
            break st;
        }
        if started.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            panic!("atlas logs --follow did not stop on SIGINT");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(0), "Ctrl-C is a clean stop: {status:?}");
    let mut rest = String::new();
    std::io::Read::read_to_string(&mut stdout, &mut rest).unwrap();
    assert!(
        !rest.contains("Model loaded."),
        "lines already seen are not repeated after a reconnect: {rest}"
    );
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(err.is_empty(), "{err}");
    prism.assert_no_violations();
}

/// The spec's own endpoint examples break its schema, so Prism cannot serve them;
/// endpoint commands are checked against schema-generated answers.
#[test]
fn endpoint_commands_conform_to_the_spec() {
    let prism = Prism::start_with(SPEC, &["--dynamic"]);
    let s = Sandbox::new(&prism.base_url());
    let list = s
        .run(&["runpod", "endpoints", "list", "-o", "json"])
        .ok()
        .json();
    for e in list.as_array().unwrap() {
        assert!(e["id"].is_string(), "{e}");
    }
    s.run(&["runpod", "endpoints", "list"]).ok();
    let e = s
        .run(&["runpod", "endpoints", "get", "4m7x2k9q", "-o", "json"])
        .ok()
        .json();
    assert!(e["raw"].is_object(), "{e}");
    s.run(&["runpod", "endpoints", "delete", "4m7x2k9q"]).ok();
    prism.assert_no_violations();
}

/// The generic `atlas job …` commands with `--provider runpod`, against the runtime
/// fake (`ATLAS_RUNPOD_SERVERLESS_BASE_URL`).
#[test]
fn job_commands_work_against_the_serverless_runtime() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let (url, state) = rt.block_on(runpod_runtime::serve());
    // REST is never called by job commands: a closed port proves it.
    let s = Sandbox::new("http://127.0.0.1:9").with_serverless(&url);

    let done = s
        .run(&job(&[
            "run",
            "-e",
            "ep1",
            "--input",
            r#"{"prompt":"Hello, world!"}"#,
            "--sync",
            "-o",
            "json",
        ]))
        .ok()
        .json();
    assert_eq!(done["status"], "completed", "{done}");
    assert_eq!(done["output"][0]["seed"], 46578);
    let polled = s
        .run(&job(&[
            "run",
            "-e",
            "ep1",
            "--input",
            r#"{"mode":"queued"}"#,
            "--sync",
            "-o",
            "json",
        ]))
        .ok()
        .json();
    assert_eq!(polled["status"], "completed", "{polled}");

    // The client-side timeout holds even though the server would keep the call 10 s.
    let slow = s.run(&job(&[
        "run",
        "-e",
        "ep1",
        "--input",
        r#"{"mode":"slow"}"#,
        "--sync",
        "--timeout",
        "1s",
    ]));
    slow.fails(6);

    let queued = s
        .run(&job(&[
            "run",
            "-e",
            "ep1",
            "--input",
            r#"{"mode":"fail"}"#,
            "-o",
            "json",
        ]))
        .ok()
        .json();
    assert_eq!(queued["status"], "in_queue", "{queued}");
    let id = queued["id"].as_str().unwrap();
    let st = s
        .run(&job(&["status", "-e", "ep1", id, "-o", "json"]))
        .ok()
        .json();
    assert_eq!(st["status"], "failed");
    assert_eq!(st["error"], "handler raised ValueError: bad prompt");
    let streamed = s.run(&job(&["stream", "-e", "ep1", id]));
    assert!(streamed.fails(9).contains("bad prompt"), "{streamed:#?}");

    let queued = s
        .run(&job(&[
            "run",
            "-e",
            "ep1",
            "--input",
            r#"{"mode":"stream"}"#,
            "-o",
            "json",
        ]))
        .ok()
        .json();
    let id = queued["id"].as_str().unwrap();
    let chunks = s
        .run(&job(&["stream", "-e", "ep1", id, "-o", "jsonl"]))
        .ok();
    let texts: Vec<String> = chunks
        .stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap()["text"][0].to_string())
        .collect();
    assert_eq!(
        texts,
        [r#"" tok0""#, r#"" tok1""#, r#"" tok2""#, r#"" tok3""#]
    );

    let c = s
        .run(&job(&["cancel", "-e", "ep1", id, "-o", "json"]))
        .ok()
        .json();
    assert_eq!(c["status"], "cancelled");
    let r = s
        .run(&job(&["retry", "-e", "ep1", id, "-o", "json"]))
        .ok()
        .json();
    assert_eq!(r["status"], "in_queue");
    let p = s
        .run(&job(&["purge", "-e", "ep1", "-o", "json"]))
        .ok()
        .json();
    assert_eq!(p["purged"], 2);
    let h = s.run(&job(&["health", "-e", "ep1"])).ok();
    assert!(h.stdout.contains("inQueue"), "{h:#?}");

    // A rejected key is exit 3, and the key is never echoed.
    let denied = s.run(&with(
        &["--api-key", "rp_wrong_canary"],
        &job(&["health", "-e", "ep1"]),
    ));
    let line = denied.fails(3);
    assert!(!line.contains("rp_wrong_canary"), "{line}");

    let seen = state.lock().unwrap().seen.clone();
    assert!(
        seen[0].starts_with("runsync ep1 wait=Some(\"60000\")"),
        "RunPod's wait is the --timeout: {seen:?}"
    );
}

#[test]
fn refusals_are_one_line_with_their_exit_codes() {
    // Nothing listens here: every refusal below happens before a request is sent.
    let s = Sandbox::new("http://127.0.0.1:9");

    // The mock has logs (its commands' output): an unknown machine is not found.
    s.run(&["logs", "m-1"]).fails(4);
    let line = s
        .run(&["logs", "m-1", "--provider", "lambda"])
        .fails(7)
        .to_string();
    assert!(
        line.contains("logs") && line.contains("--provider runpod"),
        "{line}"
    );
    s.run(&["logs", "m-1", "--provider", "nimbus"]).fails(2);
    let line = s
        .run(&with(RP, &["logs", POD, "--tail", "6000"]))
        .fails(2)
        .to_string();
    assert!(line.contains("tail") && line.contains("0-5000"), "{line}");
    let line = s
        .run(&with(RP, &["logs", POD, "-f", "-o", "json"]))
        .fails(2)
        .to_string();
    assert!(line.contains("jsonl"), "{line}");

    let line = s
        .run(&["runpod", "templates", "list", "--provider", "mock"])
        .fails(2)
        .to_string();
    assert!(line.contains("--provider mock"), "{line}");
    let line = s
        .run(&["runpod", "billing", "--start", "yesterday"])
        .fails(2)
        .to_string();
    assert!(
        line.contains("start") && line.contains("RFC 3339"),
        "{line}"
    );
    let line = s
        .run(&["runpod", "billing", "--bucket", "fortnight"])
        .fails(2)
        .to_string();
    assert!(line.contains("hour, day, week, month, year"), "{line}");
    s.run(&["runpod", "billing", "--family", "clusterz"])
        .fails(2);
    s.run(&[
        "runpod",
        "billing",
        "--last",
        "3",
        "--start",
        "2026-06-01T00:00:00Z",
    ])
    .fails(2);
    let line = s
        .run(&[
            "runpod",
            "volumes",
            "create",
            "v",
            "--size-gb",
            "5",
            "--dc",
            "EU-RO-1",
        ])
        .fails(2)
        .to_string();
    assert!(
        line.contains("size_gb") && line.contains("10-4096"),
        "{line}"
    );

    // Without a key: exit 3 naming the env var, before anything is sent.
    let r = Run::from(
        s.cmd(&["runpod", "volumes", "list"])
            .env_remove("RUNPOD_API_KEY")
            .output()
            .unwrap(),
    );
    assert!(r.fails(3).contains("RUNPOD_API_KEY"), "{r:#?}");
}
