//! `atlas fly …` run as a user runs it: the built binary with a cleared environment,
//! fake `fly` shell scripts on a private `PATH` and a local server speaking Fly's
//! JSON:API logs shape.

#[path = "../../cloud-atlas/tests/support/mod.rs"]
mod support;

mod common;

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use common::Run;
use serde_json::Value;

/// Where the system tools the fake scripts use (`sh`, `sleep`, `cat`) live.
const SYSTEM_PATH: &str = "/usr/bin:/bin";

/// A private world for one test: data dir, home, a `bin` folder first on `PATH`.
struct Sandbox {
    dir: tempfile::TempDir,
    env: Vec<(String, String)>,
    path: String,
}

impl Sandbox {
    fn new() -> Sandbox {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("bin")).unwrap();
        std::fs::write(dir.path().join("atlas.toml"), "").unwrap();
        let path = format!("{}:{SYSTEM_PATH}", dir.path().join("bin").display());
        Sandbox {
            dir,
            env: Vec::new(),
            path,
        }
    }

    fn root(&self) -> &Path {
        self.dir.path()
    }

    fn token_dir(&self) -> PathBuf {
        self.root().join("data").join("fly-tokens")
    }

    /// Also set `k=v` for every run.
    fn with_env(mut self, k: &str, v: &str) -> Sandbox {
        self.env.push((k.to_string(), v.to_string()));
        self
    }

    /// `PATH` holds only the sandbox's (empty) `bin`: no `fly`, no system tools.
    fn with_bare_path(mut self) -> Sandbox {
        self.path = self.root().join("bin").display().to_string();
        self
    }

    /// Install `bin/fly` running `script` (with `$LOG` and `$RELEASE` set).
    fn fake_fly(&self, script: &str) {
        let bin = self.root().join("bin").join("fly");
        std::fs::write(
            &bin,
            format!(
                "#!/bin/sh\nLOG='{}'\nRELEASE='{}'\n{script}\n",
                self.log().display(),
                self.release().display()
            ),
        )
        .unwrap();
        std::fs::set_permissions(&bin, std::fs::Permissions::from_mode(0o755)).unwrap();
    }

    /// What the fake `fly` wrote to `$LOG`.
    fn log(&self) -> PathBuf {
        self.root().join("fly.log")
    }

    fn log_lines(&self) -> Vec<String> {
        std::fs::read_to_string(self.log())
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }

    /// A file the fake `fly` may wait for.
    fn release(&self) -> PathBuf {
        self.root().join("release")
    }

    /// A folder with a `fly.toml` for app `demo-app`.
    fn app_dir(&self) -> PathBuf {
        let d = self.root().join("app");
        std::fs::create_dir_all(&d).unwrap();
        std::fs::write(
            d.join("fly.toml"),
            "app = 'demo-app'\nprimary_region = 'ord'\n[http_service]\n  internal_port = 8080\n",
        )
        .unwrap();
        d
    }

    fn cmd(&self, args: &[&str]) -> Command {
        let mut c = common::atlas(self.root(), args);
        c.env("PATH", &self.path);
        for (k, v) in &self.env {
            c.env(k, v);
        }
        c
    }

    fn run(&self, args: &[&str]) -> Run {
        Run::from(self.cmd(args).stdin(Stdio::null()).output().unwrap())
    }

    fn run_with_stdin(&self, args: &[&str], input: &str) -> Run {
        common::run_with_stdin(&mut self.cmd(args), input)
    }

    fn spawn(&self, args: &[&str]) -> Child {
        self.cmd(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    }
}

fn mode(p: &Path) -> u32 {
    std::fs::metadata(p).unwrap().permissions().mode() & 0o777
}

// ---------------------------------------------------------------------------------------
// apps

fn write(root: &Path, rel: &str, text: &str) {
    let p = root.join(rel);
    std::fs::create_dir_all(p.parent().unwrap()).unwrap();
    std::fs::write(p, text).unwrap();
}

/// A monorepo with varied real-world fly.toml shapes.
fn app_tree(root: &Path) {
    write(
        root,
        "fly.toml",
        "# fly.toml app configuration file\napp = \"root-app\" # the main one\nprimary_region = \"ord\"\n\n[build]\n  dockerfile = \"Dockerfile\"\n",
    );
    write(
        root,
        "api/fly.toml",
        "app = 'api-svc'\nkill_signal = \"SIGINT\"\n\n[[services]]\n  internal_port = 8080\n  protocol = \"tcp\"\n  [[services.ports]]\n    port = 443\n    handlers = [\"tls\", \"http\"]\n",
    );
    write(
        root,
        "web/fly.toml",
        "app = \"web-1\"\n[http_service]\n  internal_port = 3000\n  force_https = true\n",
    );
    write(root, "web/fly.staging.toml", "app = \"web-1-staging\"\n");
    write(root, "empty/fly.toml", "app = \"\"\n");
    write(root, "template/fly.toml", "app = \"{{apps.0}}\"\n");
    write(root, "noapp/fly.toml", "[env]\n  PORT = \"8080\"\n");
    write(root, "number/fly.toml", "app = 42\n");
    write(root, "broken/fly.toml", "app = \"x\n");
    write(root, "node_modules/pkg/fly.toml", "app = \"vendored\"\n");
    write(root, ".github/fly.toml", "app = \"hidden\"\n");
    write(root, "services/deep/fly.toml", "app = \"deep-app\"\n");
}

#[test]
fn apps_json_lists_apps_in_order_and_skipped_files_with_reasons() {
    let s = Sandbox::new();
    let root = s.root().join("repo");
    app_tree(&root);
    let root_s = root.display().to_string();
    let v = s.run(&["fly", "apps", &root_s, "-o", "json"]).ok().json();

    let apps: Vec<(String, String)> = v["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            (
                a["app"].as_str().unwrap().to_string(),
                a["dir"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let want = [
        ("root-app", root.clone()),
        ("api-svc", root.join("api")),
        ("web-1", root.join("web")),
    ];
    let want: Vec<(String, String)> = want
        .iter()
        .map(|(a, d)| (a.to_string(), d.display().to_string()))
        .collect();
    assert_eq!(apps, want, "{v:#}");

    let skipped: HashMap<String, String> = v["skipped"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| {
            let file = f["file"].as_str().unwrap();
            let rel = Path::new(file).strip_prefix(&root).unwrap();
            (
                rel.display().to_string(),
                f["reason"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    assert_eq!(skipped.len(), 6, "{v:#}");
    assert!(skipped["empty/fly.toml"].contains("empty"), "{skipped:?}");
    assert!(
        skipped["template/fly.toml"].contains("not a valid Fly app name"),
        "{skipped:?}"
    );
    assert!(
        skipped["noapp/fly.toml"].contains("no `app` key"),
        "{skipped:?}"
    );
    assert!(
        skipped["number/fly.toml"].contains("not a string"),
        "{skipped:?}"
    );
    assert!(
        skipped["broken/fly.toml"].contains("not valid TOML"),
        "{skipped:?}"
    );
    assert!(
        skipped["web/fly.staging.toml"].contains("alternate config"),
        "{skipped:?}"
    );
    // Vendored and hidden folders are never searched.
    assert!(!s.run(&["fly", "apps", &root_s]).stdout.contains("vendored"));
}

#[test]
fn apps_depth_table_and_errors() {
    let s = Sandbox::new();
    let root = s.root().join("repo");
    app_tree(&root);
    let root_s = root.display().to_string();

    let deeper = s
        .run(&["fly", "apps", &root_s, "--max-depth", "2", "-o", "json"])
        .ok()
        .json();
    let names: Vec<&str> = deeper["apps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["app"].as_str().unwrap())
        .collect();
    assert!(names.contains(&"deep-app"), "{names:?}");
    let root_only = s
        .run(&["fly", "apps", &root_s, "--max-depth", "0", "-o", "json"])
        .ok()
        .json();
    assert_eq!(root_only["apps"].as_array().unwrap().len(), 1);
    assert_eq!(root_only["apps"][0]["app"], "root-app");

    // PATH defaults to the current folder; the table names apps and skipped files.
    let table = s
        .cmd(&["fly", "apps"])
        .current_dir(&root)
        .output()
        .map(Run::from)
        .unwrap()
        .ok();
    assert!(table.stdout.contains("api-svc"), "{table:#?}");
    assert!(table.stdout.contains("SKIPPED FILE"), "{table:#?}");
    assert!(table.stdout.contains("template"), "{table:#?}");

    let missing = s.run(&["fly", "apps", "/no/such/folder"]);
    assert_eq!(missing.code, 4, "{missing:#?}");
    missing.error_line();
    let bad = s.run(&["fly", "apps", &root_s, "--max-depth", "-1"]);
    assert_eq!(bad.code, 2, "{bad:#?}");
    bad.error_line();
}

// ---------------------------------------------------------------------------------------
// deploy

#[test]
fn deploy_streams_lines_as_they_come_and_succeeds() {
    let s = Sandbox::new();
    let dir = s.app_dir();
    s.fake_fly(
        r#"echo "$*" > "$LOG"; pwd >> "$LOG"
echo "==> Building image"
echo "remote builder ready" >&2
i=0; while [ ! -f "$RELEASE" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
echo "==> Release done""#,
    );
    let mut child = s.spawn(&["fly", "deploy", &dir.display().to_string()]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    // The first line arrived while fly is still waiting: it was streamed, not buffered.
    assert_eq!(first, "==> Building image\n");
    std::fs::write(s.release(), "").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let (status, err) = wait_with_stderr(&mut child);
    assert_eq!(status.code(), Some(0), "stderr: {err}");
    assert_eq!(rest, "==> Release done\n");
    assert_eq!(err, "remote builder ready\n");

    let log = s.log_lines();
    assert_eq!(log[0], "deploy --remote-only --app demo-app");
    assert_eq!(
        std::fs::canonicalize(&log[1]).unwrap(),
        std::fs::canonicalize(&dir).unwrap()
    );
}

#[test]
fn deploy_propagates_a_non_zero_exit_code_and_app_flag_wins() {
    let s = Sandbox::new();
    let dir = s.app_dir();
    // The error line comes only once the first line was read: two pipes carry no
    // order between them, so the test makes the order observable instead of
    // hoping the scheduler keeps it.
    s.fake_fly(
        r#"echo "$*" > "$LOG"
echo "==> Building image"
i=0; while [ ! -f "$RELEASE" ] && [ $i -lt 600 ]; do sleep 0.05; i=$((i+1)); done
echo "Error: failed to fetch an image or build from source" >&2
exit 3"#,
    );

    // -o jsonl: one object per line in the order they came, then the outcome.
    let mut child = s.spawn(&["fly", "deploy", &dir.display().to_string(), "-o", "jsonl"]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    std::fs::write(s.release(), "").unwrap();
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.code(), Some(3), "{first}{rest}");
    let lines: Vec<Value> = format!("{first}{rest}")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(lines[0]["text"], "==> Building image");
    assert_eq!(lines[0]["stream"], "stdout");
    assert_eq!(
        lines[1]["text"],
        "Error: failed to fetch an image or build from source"
    );
    assert_eq!(lines[1]["stream"], "stderr");
    assert_eq!(lines[2]["app"], "demo-app");
    assert_eq!(lines[2]["status"]["result"], "failed");
    assert_eq!(lines[2]["status"]["code"], 3);
    assert_eq!(lines[2]["lines"], 2);

    // Table output: each stream to its own descriptor; --app wins over fly.toml.
    let r = s.run(&[
        "fly",
        "deploy",
        &dir.display().to_string(),
        "--app",
        "other-app",
    ]);
    assert_eq!(r.code, 3, "{r:#?}");
    assert_eq!(r.stdout, "==> Building image\n");
    let err: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(
        err,
        [
            "Error: failed to fetch an image or build from source",
            "error: deploy of other-app failed (exit code 3)"
        ]
    );
    assert_eq!(s.log_lines(), ["deploy --remote-only --app other-app"]);
}

#[test]
fn deploy_without_fly_is_not_found_in_one_line() {
    let s = Sandbox::new().with_bare_path();
    let dir = s.app_dir();
    let r = s.run(&["fly", "deploy", &dir.display().to_string()]);
    assert_eq!(r.code, 4, "{r:#?}");
    let line = r.error_line();
    assert!(
        line.contains("`fly`") && line.contains("not found"),
        "{line}"
    );
    assert!(line.contains("ATLAS_FLY_BIN"), "{line}");

    let s = Sandbox::new().with_env("ATLAS_FLY_BIN", "/opt/nowhere/flyctl");
    let r = s.run(&["fly", "deploy", &s.app_dir().display().to_string()]);
    assert_eq!(r.code, 4, "{r:#?}");
    assert!(r.error_line().contains("/opt/nowhere/flyctl"), "{r:#?}");
}

#[test]
fn deploy_bad_input_is_a_usage_error() {
    let s = Sandbox::new();
    s.fake_fly("exit 0");
    let dir = s.app_dir().display().to_string();
    for args in [
        vec!["fly", "deploy", &dir, "--app", "Bad_Name"],
        vec!["fly", "deploy", &dir, "--activity-timeout", "soon"],
        vec!["fly", "deploy", "/no/such/folder"],
    ] {
        let r = s.run(&args);
        assert_eq!(r.code, 2, "{args:?}: {r:#?}");
        r.error_line();
    }
    // A folder without fly.toml and no --app names the flag to use.
    let empty = s.root().join("empty");
    std::fs::create_dir_all(&empty).unwrap();
    let r = s.run(&["fly", "deploy", &empty.display().to_string()]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.error_line().contains("--app"), "{r:#?}");
    assert!(s.log_lines().is_empty(), "fly must not run");
}

#[test]
fn deploy_silent_past_the_activity_timer_is_killed_with_exit_124() {
    let s = Sandbox::new();
    let dir = s.app_dir();
    s.fake_fly(r#"echo $$ > "$LOG"; echo "==> Waiting for depot builder"; sleep 30"#);
    let r = s.run(&[
        "fly",
        "deploy",
        &dir.display().to_string(),
        "--activity-timeout",
        "1s",
    ]);
    assert_eq!(r.code, 124, "{r:#?}");
    assert_eq!(r.stdout, "==> Waiting for depot builder\n");
    let err: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(err.len(), 2, "{r:#?}");
    assert!(err[0].contains("no output for 1s"), "{r:#?}");
    assert!(err[0].contains("process group was killed"), "{r:#?}");
    assert_eq!(
        err[1], "error: deploy of demo-app stopped: no output for 1s",
        "{r:#?}"
    );
    // The fake fly (and its sleep) are gone.
    let pid = s.log_lines()[0].clone();
    let alive = Path::new("/proc").join(&pid).join("stat");
    let state = std::fs::read_to_string(alive).unwrap_or_default();
    assert!(
        state.is_empty() || state.split_whitespace().nth(2) == Some("Z"),
        "{state}"
    );
}

#[test]
fn ctrl_c_stops_a_deploy_and_its_process_group() {
    let s = Sandbox::new();
    let dir = s.app_dir();
    s.fake_fly(r#"echo $$ > "$LOG"; echo "==> Building image"; sleep 30 & wait"#);
    let mut child = s.spawn(&["fly", "deploy", &dir.display().to_string()]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut first = String::new();
    out.read_line(&mut first).unwrap();
    assert_eq!(first, "==> Building image\n");
    interrupt(&child);
    let (status, err) = wait_with_stderr(&mut child);
    assert_eq!(status.code(), Some(130), "{err}");
    assert_eq!(
        err,
        "error: deploy of demo-app interrupted; the fly process group was stopped\n"
    );
    let pid = s.log_lines()[0].clone();
    let state =
        std::fs::read_to_string(Path::new("/proc").join(&pid).join("stat")).unwrap_or_default();
    assert!(
        state.is_empty() || state.split_whitespace().nth(2) == Some("Z"),
        "{state}"
    );
}

/// Wait for `child` and read all of its stderr.
fn wait_with_stderr(child: &mut Child) -> (std::process::ExitStatus, String) {
    let status = child.wait().unwrap();
    let mut err = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    (status, err)
}

/// Send SIGINT (what Ctrl-C sends) to `child`.
fn interrupt(child: &Child) {
    let st = Command::new("kill")
        .args(["-s", "INT", &child.id().to_string()])
        .env("PATH", SYSTEM_PATH)
        .status()
        .unwrap();
    assert!(st.success());
}

// ---------------------------------------------------------------------------------------
// logs

/// One request the logs server saw.
#[derive(Debug, Clone)]
struct Seen {
    app: String,
    query: HashMap<String, String>,
    auth: String,
}

type Handler = fn(&Seen, usize) -> (u16, String);

struct Srv {
    seen: Mutex<Vec<Seen>>,
    handler: Handler,
}

async fn logs_route(
    State(s): State<Arc<Srv>>,
    UrlPath(app): UrlPath<String>,
    Query(query): Query<HashMap<String, String>>,
    headers: HeaderMap,
) -> Response {
    let seen = Seen {
        app,
        query,
        auth: headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string(),
    };
    let n = {
        let mut v = s.seen.lock().unwrap();
        v.push(seen.clone());
        v.len()
    };
    let (status, body) = (s.handler)(&seen, n);
    (
        StatusCode::from_u16(status).unwrap(),
        [("content-type", "application/json")],
        body,
    )
        .into_response()
}

/// A logs server on its own thread and runtime, alive until the test process ends.
struct LogsServer {
    url: String,
    srv: Arc<Srv>,
}

impl LogsServer {
    fn start(handler: Handler) -> LogsServer {
        let srv = Arc::new(Srv {
            seen: Mutex::new(Vec::new()),
            handler,
        });
        let app = Router::new()
            .route("/api/v1/apps/{app}/logs", get(logs_route))
            .with_state(Arc::clone(&srv));
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            rt.block_on(async move {
                let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
                tx.send(format!("http://{}", listener.local_addr().unwrap()))
                    .unwrap();
                axum::serve(listener, app).await.unwrap();
            });
        });
        LogsServer {
            url: rx.recv().unwrap(),
            srv,
        }
    }

    fn seen(&self) -> Vec<Seen> {
        self.srv.seen.lock().unwrap().clone()
    }
}

/// A JSON:API page with one entry per number in `ns` (`line N`), cursor `next`.
fn page(ns: &[u64], next: u64) -> String {
    let data: Vec<Value> = ns
        .iter()
        .map(|n| {
            serde_json::json!({
                "id": n.to_string(),
                "type": "log",
                "attributes": {
                    "timestamp": format!("2026-05-20T00:00:{:02}.{:09}Z", n / 1000 % 60, n % 1000),
                    "message": format!("line {n}"),
                    "level": "info",
                    "instance": "3d8d9014b32d89",
                    "region": if n % 2 == 0 { "ams" } else { "ord" },
                    "meta": {"event": {"provider": "app"}}
                }
            })
        })
        .collect();
    serde_json::json!({"data": data, "meta": {"next_token": next.to_string()}}).to_string()
}

/// The recent page holds lines 1-3 plus one malformed entry; later pages are empty.
fn recent_then_quiet(s: &Seen, _n: usize) -> (u16, String) {
    match s.query.get("next_token").map(String::as_str) {
        None | Some("") => {
            let mut v: Value = serde_json::from_str(&page(&[1, 2, 3], 4)).unwrap();
            v["data"]
                .as_array_mut()
                .unwrap()
                .push(serde_json::json!({"id": "bad", "attributes": {"message": "no time"}}));
            (200, v.to_string())
        }
        Some(_) => (200, r#"{"data":[],"meta":{"next_token":"4"}}"#.to_string()),
    }
}

/// Every request gets the next line after its cursor: a never-ending log.
fn endless(s: &Seen, _n: usize) -> (u16, String) {
    let at: u64 = s
        .query
        .get("next_token")
        .and_then(|t| t.parse().ok())
        .unwrap_or(0);
    (200, page(&[at + 1], at + 1))
}

/// The first request is refused with 401, then pages are served.
fn unauthorized_once(s: &Seen, n: usize) -> (u16, String) {
    if n == 1 {
        (
            401,
            r#"{"errors":[{"detail":"token expired"}]}"#.to_string(),
        )
    } else {
        recent_then_quiet(s, n)
    }
}

fn logs_sandbox(server: &LogsServer) -> Sandbox {
    Sandbox::new()
        .with_env("ATLAS_FLY_LOGS_URL", &server.url)
        .with_env("FLY_API_TOKEN", "user-token-1234567890")
        .with_env("ATLAS_FLY_BIN", "/opt/nowhere/fly")
}

#[test]
fn logs_jsonl_prints_one_entry_per_line_and_sends_filters() {
    let server = LogsServer::start(recent_then_quiet);
    let s = logs_sandbox(&server);
    let r = s.run(&["fly", "logs", "my-app", "-o", "jsonl"]).ok();
    let entries: Vec<Value> = r
        .stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let messages: Vec<&str> = entries
        .iter()
        .map(|e| e["message"].as_str().unwrap())
        .collect();
    assert_eq!(messages, ["line 1", "line 2", "line 3"], "{r:#?}");
    assert_eq!(entries[0]["app"], "my-app");
    assert_eq!(entries[0]["region"], "ord");
    assert_eq!(entries[0]["instance"], "3d8d9014b32d89");
    assert_eq!(entries[0]["provider"], "app");
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0].app, "my-app");
    assert_eq!(seen[0].auth, "Bearer user-token-1234567890");

    let r = s
        .run(&[
            "fly",
            "logs",
            "my-app",
            "--region",
            "ord",
            "--instance",
            "3d8d9014b32d89",
            "-o",
            "json",
        ])
        .ok();
    assert_eq!(r.json().as_array().unwrap().len(), 3);
    let q = &server.seen()[1].query;
    assert_eq!(q.get("region").map(String::as_str), Some("ord"));
    assert_eq!(
        q.get("instance").map(String::as_str),
        Some("3d8d9014b32d89")
    );

    let table = s.run(&["fly", "logs", "my-app"]).ok();
    assert_eq!(table.stdout.lines().count(), 3, "{table:#?}");
    assert!(
        table
            .stdout
            .starts_with("2026-05-20T00:00:00.000Z app[3d8d9014b32d89] ord [info] line 1\n"),
        "{table:#?}"
    );
}

#[test]
fn logs_retry_once_after_a_401() {
    let server = LogsServer::start(unauthorized_once);
    let s = logs_sandbox(&server);
    let r = s.run(&["fly", "logs", "my-app", "-o", "jsonl"]).ok();
    assert_eq!(r.stdout.lines().count(), 3, "{r:#?}");
    assert_eq!(server.seen().len(), 2);
}

#[test]
fn logs_errors_are_one_line() {
    let server = LogsServer::start(|_, _| (404, r#"{"error":"app not found"}"#.to_string()));
    let s = logs_sandbox(&server);
    let r = s.run(&["fly", "logs", "ghost-app"]);
    assert_eq!(r.code, 4, "{r:#?}");
    r.error_line();

    let r = s.run(&["fly", "logs", "Not_An_App"]);
    assert_eq!(r.code, 2, "{r:#?}");
    r.error_line();
    let r = s.run(&["fly", "logs", "my-app", "--follow", "-o", "json"]);
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.error_line().contains("jsonl"), "{r:#?}");
    assert_eq!(server.seen().len(), 1, "bad input never reaches the server");

    // No token anywhere: unauthorized, naming what to set.
    let s = Sandbox::new()
        .with_env("ATLAS_FLY_LOGS_URL", &server.url)
        .with_env("ATLAS_FLY_BIN", "/opt/nowhere/fly");
    let r = s.run(&["fly", "logs", "my-app"]);
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(r.error_line().contains("FLY_API_TOKEN"), "{r:#?}");
}

#[test]
fn logs_follow_streams_lines_until_ctrl_c() {
    let server = LogsServer::start(endless);
    let s = logs_sandbox(&server);
    let mut child = s.spawn(&["fly", "logs", "my-app", "--follow", "-o", "jsonl"]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for want in 1..=3 {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["message"], format!("line {want}"), "{line}");
    }
    interrupt(&child);
    let (status, err) = wait_with_stderr(&mut child);
    assert_eq!(status.code(), Some(0), "{err}");
    assert_eq!(err, "");
    // Whatever came after the third line is whole lines of JSON.
    let mut rest = String::new();
    out.read_to_string(&mut rest).unwrap();
    for l in rest.lines() {
        serde_json::from_str::<Value>(l).unwrap();
    }
    let seen = server.seen();
    assert!(seen.len() >= 3);
    assert_eq!(seen[1].query["next_token"], "1", "the cursor advances");
}

#[test]
fn logs_follow_filters_by_region() {
    let server = LogsServer::start(endless);
    let s = logs_sandbox(&server);
    let mut child = s.spawn(&["fly", "logs", "my-app", "-f", "--region", "ams"]);
    let mut out = BufReader::new(child.stdout.take().unwrap());
    for want in [2, 4] {
        let mut line = String::new();
        out.read_line(&mut line).unwrap();
        assert!(
            line.ends_with(&format!(" ams [info] line {want}\n")),
            "{line}"
        );
    }
    interrupt(&child);
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

// ---------------------------------------------------------------------------------------
// tokens

const ENV_TOKEN: &str = "user-token-from-env-0123456789";
const CLI_TOKEN: &str = "FlyV1 fm2_lJPECAAAAAAAAFakeMacaroonForTests0123456789";

#[test]
fn token_get_from_env_shows_source_and_fingerprint_only_reveal_shows_it() {
    let s = Sandbox::new()
        .with_env("FLY_API_TOKEN", ENV_TOKEN)
        .with_env("ATLAS_FLY_BIN", "/opt/nowhere/fly");
    let table = s.run(&["fly", "token", "get", "my-app"]).ok();
    assert!(!table.stdout.contains(ENV_TOKEN), "{table:#?}");
    assert!(!table.stderr.contains(ENV_TOKEN), "{table:#?}");
    assert!(table.stdout.contains("env"), "{table:#?}");

    let v = s
        .run(&["fly", "token", "get", "my-app", "-o", "json"])
        .ok()
        .json();
    assert_eq!(v["app"], "my-app");
    assert_eq!(v["source"], "env");
    assert_eq!(v["origin"], "env");
    let fp = v["fingerprint"].as_str().unwrap();
    assert!(!fp.is_empty() && !ENV_TOKEN.contains(fp), "{fp}");
    assert!(v.get("token").is_none(), "{v}");
    assert!(table.stdout.contains(fp), "{table:#?}");

    let v = s
        .run(&["fly", "token", "get", "my-app", "--reveal", "-o", "json"])
        .ok()
        .json();
    assert_eq!(v["token"], ENV_TOKEN);
    assert_eq!(v["fingerprint"], fp);
    let shown = s.run(&["fly", "token", "get", "my-app", "--reveal"]).ok();
    assert!(shown.stdout.contains(ENV_TOKEN), "{shown:#?}");

    // Env tokens are not written to disk.
    assert!(!s.token_dir().join("cache.json").exists());
}

#[test]
fn token_get_mints_with_fly_once_then_reads_storage() {
    let s = Sandbox::new();
    s.fake_fly(&format!("echo \"$*\" >> \"$LOG\"\necho '{CLI_TOKEN}'"));
    let v = s
        .run(&["fly", "token", "get", "my-app", "-o", "json"])
        .ok()
        .json();
    assert_eq!(v["source"], "cli", "{v}");
    assert!(v.get("token").is_none());
    assert!(!v.to_string().contains("fm2_"), "{v}");
    let log = s.log_lines();
    assert_eq!(log.len(), 1, "{log:?}");
    assert!(log[0].starts_with("tokens create readonly"), "{log:?}");

    // Kept privately in the data dir.
    let dir = s.token_dir();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("cache.json")), 0o600);

    // A new process finds it in storage; fly does not run again.
    let v = s
        .run(&["fly", "token", "get", "my-app", "--reveal", "-o", "json"])
        .ok()
        .json();
    assert_eq!(v["source"], "storage");
    assert_eq!(v["origin"], "cli");
    assert_eq!(v["token"], CLI_TOKEN);
    assert!(v["expires_at"].is_string(), "{v}");
    assert_eq!(s.log_lines().len(), 1);

    // Invalidate forgets it; the next get mints again. Refresh always mints.
    let r = s
        .run(&["fly", "token", "invalidate", "my-app", "-o", "json"])
        .ok();
    assert_eq!(r.json()["invalidated"], true);
    let v = s
        .run(&["fly", "token", "get", "my-app", "-o", "json"])
        .ok()
        .json();
    assert_eq!(v["source"], "cli");
    assert_eq!(s.log_lines().len(), 2);
    let refreshed = s.run(&["fly", "token", "refresh", "my-app"]).ok();
    assert!(!refreshed.stdout.contains("fm2_"), "{refreshed:#?}");
    assert!(refreshed.stdout.contains("cli"), "{refreshed:#?}");
    assert_eq!(s.log_lines().len(), 3);
}

#[test]
fn token_set_reads_stdin_and_is_used_last() {
    let s = Sandbox::new().with_env("ATLAS_FLY_BIN", "/opt/nowhere/fly");
    let r = s.run_with_stdin(
        &["fly", "token", "set", "my-app", "-o", "json"],
        "manual-token-abcdef0123456789\n",
    );
    let r = r.ok();
    let v = r.json();
    assert_eq!(v["source"], "manual");
    assert!(v.get("token").is_none());
    assert!(!r.stdout.contains("manual-token-abcdef"), "{r:#?}");

    let dir = s.token_dir();
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("manual.json")), 0o600);

    let v = s
        .run(&["fly", "token", "get", "my-app", "--reveal", "-o", "json"])
        .ok()
        .json();
    assert_eq!(v["token"], "manual-token-abcdef0123456789");
    assert_eq!(v["origin"], "manual");
    // Invalidate drops the cached copy; the manual override still answers, last in the chain.
    s.run(&["fly", "token", "invalidate", "my-app"]).ok();
    let v = s
        .run(&["fly", "token", "get", "my-app", "-o", "json"])
        .ok()
        .json();
    assert_eq!(v["source"], "manual");
    // The environment comes before the manual override.
    let mut c = s.cmd(&["fly", "token", "get", "my-app", "-o", "json"]);
    c.env("FLY_API_TOKEN", ENV_TOKEN);
    let v = Run::from(c.output().unwrap()).ok().json();
    assert_eq!(v["source"], "env");
}

#[test]
fn token_set_never_takes_the_token_from_argv_and_rejects_empty_input() {
    let s = Sandbox::new().with_env("ATLAS_FLY_BIN", "/opt/nowhere/fly");
    let r = s.run(&["fly", "token", "set", "my-app", "a-token-on-argv"]);
    assert_eq!(r.code, 2, "{r:#?}");
    r.error_line();
    let r = s.run_with_stdin(&["fly", "token", "set", "my-app"], "  \n");
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(r.error_line().contains("stdin"), "{r:#?}");
    let r = s.run_with_stdin(
        &["fly", "token", "set", "my-app"],
        "tok-part-aaa\ntok-part-bbb\n",
    );
    assert_eq!(r.code, 2, "{r:#?}");
    assert!(!r.stderr.contains("tok-part"), "{r:#?}");
    assert!(!s.token_dir().join("manual.json").exists());

    // Nothing anywhere: unauthorized, in one line.
    let r = s.run(&["fly", "token", "get", "my-app"]);
    assert_eq!(r.code, 3, "{r:#?}");
    assert!(
        r.error_line().contains("atlas fly token set my-app"),
        "{r:#?}"
    );
}

// ---------------------------------------------------------------------------------------
// the token store shared by several processes

/// The apps in the manual store file, read as any other program would.
fn manual_apps(s: &Sandbox) -> Vec<String> {
    let text = std::fs::read_to_string(s.token_dir().join("manual.json")).unwrap();
    let v: Value = serde_json::from_str(&text)
        .unwrap_or_else(|e| panic!("manual.json is not whole JSON ({e}): {text}"));
    let mut apps: Vec<String> = v["tokens"].as_object().unwrap().keys().cloned().collect();
    apps.sort();
    apps
}

/// Start `atlas fly token set APP` with `input` on stdin (stdin then closed).
fn spawn_token_set(s: &Sandbox, app: &str, input: &str) -> Child {
    let mut c = s
        .cmd(&["fly", "token", "set", app])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    c.stdin.take().unwrap().write_all(input.as_bytes()).unwrap();
    c
}

#[test]
fn parallel_token_sets_from_twenty_processes_all_persist() {
    let s = Sandbox::new().with_env("ATLAS_FLY_BIN", "/opt/nowhere/fly");
    let children: Vec<(String, Child)> = (0..20)
        .map(|i| {
            let app = format!("app{i}");
            let c = spawn_token_set(&s, &app, &format!("t{i}\n"));
            (app, c)
        })
        .collect();
    let mut want = Vec::new();
    for (app, c) in children {
        let r = Run::from(c.wait_with_output().unwrap());
        assert_eq!(r.code, 0, "{app}: {r:#?}");
        want.push(app);
    }
    want.sort();
    assert_eq!(manual_apps(&s), want);
    // Each app kept its own token.
    for i in [0, 7, 19] {
        let v = s
            .run(&[
                "fly",
                "token",
                "get",
                &format!("app{i}"),
                "--reveal",
                "-o",
                "json",
            ])
            .ok()
            .json();
        assert_eq!(v["token"], format!("t{i}"));
    }
    // Nothing half-written is left beside the store.
    let mut names: Vec<String> = std::fs::read_dir(s.token_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    names.sort();
    assert!(names.is_empty(), "{names:?}");
}

#[test]
fn a_writer_killed_mid_write_never_leaves_a_torn_store() {
    let s = Sandbox::new().with_env("ATLAS_FLY_BIN", "/opt/nowhere/fly");
    // A big store, so a write takes long enough to be cut in the middle.
    let long_token = format!("tok-{}", "x".repeat(20_000));
    s.run_with_stdin(&["fly", "token", "set", "base"], &long_token)
        .ok();
    for i in 0..40 {
        s.run_with_stdin(&["fly", "token", "set", &format!("seed{i}")], &long_token)
            .ok();
    }
    let before = manual_apps(&s);
    let mut kept = before.clone();
    for round in 0..12u64 {
        let app = format!("victim{round}");
        let mut c = spawn_token_set(&s, &app, &long_token);
        // Kill it somewhere between start-up and the end of its write.
        std::thread::sleep(std::time::Duration::from_millis(2 + round * 3));
        let _ = c.kill();
        let st = c.wait().unwrap();
        let apps = manual_apps(&s);
        if st.success() {
            kept.push(app.clone());
            kept.sort();
        }
        // Either the old or the new document, never a torn one, never a lost entry.
        for a in &kept {
            assert!(apps.contains(a), "round {round}: {a} lost: {apps:?}");
        }
    }
    // The next writer clears what the killed ones left half-written.
    s.run_with_stdin(&["fly", "token", "set", "after"], "t-after")
        .ok();
    let leftovers: Vec<String> = std::fs::read_dir(s.token_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    assert!(manual_apps(&s).contains(&"after".to_string()));
}

#[test]
fn token_set_from_an_endless_stdin_is_a_clear_error() {
    let s = Sandbox::new().with_env("ATLAS_FLY_BIN", "/opt/nowhere/fly");
    let r = Run::from(
        s.cmd(&["fly", "token", "set", "my-app"])
            .stdin(std::fs::File::open("/dev/zero").unwrap())
            .output()
            .unwrap(),
    );
    assert_eq!(r.code, 2, "{r:#?}");
    let line = r.error_line();
    assert!(line.contains("stdin") && line.contains("64 KiB"), "{line}");
    assert!(!s.token_dir().join("manual.json").exists());
}

/// Whether process `pid` is gone (or a zombie waiting for its parent).
fn gone(pid: &str) -> bool {
    let state =
        std::fs::read_to_string(Path::new("/proc").join(pid).join("stat")).unwrap_or_default();
    state.is_empty() || state.split_whitespace().nth(2) == Some("Z")
}

/// Send `sig` (`TERM`, `HUP`) to `pid`.
fn send_signal(pid: u32, sig: &str) {
    let st = Command::new("kill")
        .args(["-s", sig, &pid.to_string()])
        .env("PATH", SYSTEM_PATH)
        .status()
        .unwrap();
    assert!(st.success());
}

#[test]
fn sigterm_or_sighup_stops_a_deploy_and_the_whole_fly_process_group() {
    for (sig, code) in [("TERM", 143), ("HUP", 129)] {
        let s = Sandbox::new();
        let dir = s.app_dir();
        // fly, and a helper it started (as `fly deploy` starts builders and proxies).
        s.fake_fly(
            r#"echo $$ > "$LOG"; sleep 30 & echo $! >> "$LOG"; echo "==> Building image"; wait"#,
        );
        let mut child = s.spawn(&["fly", "deploy", &dir.display().to_string()]);
        let mut out = BufReader::new(child.stdout.take().unwrap());
        let mut first = String::new();
        out.read_line(&mut first).unwrap();
        assert_eq!(first, "==> Building image\n");
        let pids = s.log_lines();
        assert_eq!(pids.len(), 2, "{pids:?}");
        send_signal(child.id(), sig);
        let (status, err) = wait_with_stderr(&mut child);
        let left: Vec<&String> = pids.iter().filter(|p| !gone(p)).collect();
        for p in &left {
            let _ = Command::new("kill")
                .args(["-s", "KILL", p.as_str()])
                .env("PATH", SYSTEM_PATH)
                .status();
        }
        assert!(left.is_empty(), "SIG{sig}: still running: {left:?}");
        assert_eq!(status.code(), Some(code), "SIG{sig}: {err}");
        assert_eq!(
            err,
            format!(
                "error: deploy of demo-app stopped by SIG{sig}; the fly process group was stopped\n"
            )
        );
    }
}

/// `atlas --provider fly ls` with no app configured lists every app of the organisation
/// against Fly's published Machines spec (every request must validate), and the
/// `APP/MACHINE_ID` ids it prints work for `get`, `stop` and `terminate`.
#[test]
fn ls_without_an_app_covers_the_org_and_its_ids_work_against_the_spec() {
    let prism = support::prism::Prism::start("fly/machines-openapi3.json");
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("atlas.toml"), "").unwrap();
    let run = |args: &[&str]| {
        Run::from(
            common::atlas(dir.path(), args)
                .env("FLY_API_TOKEN", "fm2_placeholder-macaroon")
                .env("ATLAS_FLY_BASE_URL", prism.base_url())
                .output()
                .unwrap(),
        )
    };
    let listed = run(&["ls", "--provider", "fly", "-o", "json"]).ok().json();
    let items = listed.as_array().unwrap();
    assert!(!items.is_empty(), "{listed}");
    for c in items {
        let id = c["id"].as_str().unwrap();
        assert!(
            id.split_once('/')
                .is_some_and(|(a, m)| !a.is_empty() && !m.is_empty()),
            "{id}"
        );
    }
    let id = items[0]["id"].as_str().unwrap().to_string();
    run(&["get", &id, "--provider", "fly", "-o", "json"]).ok();
    run(&["stop", &id, "--provider", "fly"]).ok();
    run(&["terminate", &id, "--provider", "fly"]).ok();
    prism.assert_no_violations();
}
