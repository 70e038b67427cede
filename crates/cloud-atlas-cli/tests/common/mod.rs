//! Shared by the CLI tests: the `atlas` binary in a cleared environment rooted in a
//! test's own folder, and what one run produced.
#![allow(dead_code, unreachable_pub)]

use std::io::Write;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

use serde_json::Value;

/// `atlas args…` with the environment cleared so no user config, API key or base URL
/// leaks in: `PATH` from this process, `HOME`/`XDG_CONFIG_HOME` under `dir/home`, state in
/// `dir/data` (`ATLAS_HOME`), config `dir/atlas.toml`, run in `dir`. Callers add the
/// provider's key and base URL with `.env(…)`.
pub fn atlas(dir: &Path, args: &[&str]) -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_atlas"));
    c.args(args)
        .current_dir(dir)
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", dir.join("home"))
        .env("XDG_CONFIG_HOME", dir.join("home").join(".config"))
        .env("ATLAS_HOME", dir.join("data"))
        .env("ATLAS_CONFIG", dir.join("atlas.toml"));
    c
}

/// Start `cmd` with `input` on its stdin (then closed) and stdout/stderr piped.
pub fn spawn_with_stdin(cmd: &mut Command, input: &str) -> Child {
    let mut child = cmd
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.as_bytes())
        .unwrap();
    child
}

/// Run `cmd` to the end with `input` on its stdin.
pub fn run_with_stdin(cmd: &mut Command, input: &str) -> Run {
    Run::from(spawn_with_stdin(cmd, input).wait_with_output().unwrap())
}

/// What one invocation produced.
#[derive(Debug)]
pub struct Run {
    /// Exit code (-1 when killed by a signal).
    pub code: i32,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(o: Output) -> Run {
        Run {
            code: o.status.code().unwrap_or(-1),
            stdout: String::from_utf8_lossy(&o.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&o.stderr).into_owned(),
        }
    }
}

impl Run {
    /// Run `cmd` to the end.
    pub fn of(cmd: &mut Command) -> Run {
        Run::from(cmd.output().unwrap())
    }
    /// Assert exit 0.
    pub fn ok(self) -> Run {
        assert_eq!(self.code, 0, "expected success: {self:#?}");
        self
    }
    /// Stdout as one JSON document.
    pub fn json(&self) -> Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not one JSON document ({e}): {self:#?}"))
    }
    /// The error line: exactly one line on stderr, starting `error: ` (or, with
    /// `-o json`/`-o jsonl`, one JSON error object whose `exit_code` is the exit code).
    pub fn error_line(&self) -> &str {
        let lines: Vec<&str> = self.stderr.lines().collect();
        assert_eq!(lines.len(), 1, "one error line expected: {self:#?}");
        let json = serde_json::from_str::<Value>(lines[0]).is_ok_and(|v| {
            v["kind"].is_string() && v["message"].is_string() && v["exit_code"] == self.code
        });
        assert!(lines[0].starts_with("error: ") || json, "{self:#?}");
        lines[0]
    }
    /// Exit `code` with exactly one `error: ` line on stderr; returns that line.
    pub fn fails(&self, code: i32) -> &str {
        assert_eq!(self.code, code, "{self:#?}");
        self.error_line()
    }
}

/// A private mock cloud for one test: `atlas.toml` holding `config`, state in the test's
/// own folder; what exists is read back through `atlas` itself.
pub struct MockWorld {
    /// The folder (config, data, home).
    pub dir: tempfile::TempDir,
}

impl MockWorld {
    /// A world whose `atlas.toml` is `config` (e.g. `[mock]` settings).
    pub fn new(config: &str) -> MockWorld {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("atlas.toml"), config).unwrap();
        MockWorld { dir }
    }
    /// `atlas args…` in this world.
    pub fn cmd(&self, args: &[&str]) -> Command {
        atlas(self.dir.path(), args)
    }
    /// Run `atlas args…` to the end.
    pub fn run(&self, args: &[&str]) -> Run {
        Run::of(&mut self.cmd(args))
    }
    /// Run `atlas` with a whitespace-separated command line (no quoting).
    pub fn line(&self, line: &str) -> Run {
        self.run(&line.split_whitespace().collect::<Vec<_>>())
    }
    /// Machines on the mock cloud.
    pub fn machines(&self) -> Vec<Value> {
        let r = self.run(&["--provider", "mock", "ls", "-o", "json"]).ok();
        r.json().as_array().unwrap().clone()
    }
    /// Sessions in the local store.
    pub fn sessions(&self) -> Vec<Value> {
        let r = self.run(&["session", "ls", "-o", "json"]).ok();
        r.json().as_array().unwrap().clone()
    }
}

/// `atlas args…` in `w` with Lambda configured against a closed port: with `--provider
/// all` it is asked too and fails (a refused connection, retried until `--timeout`).
pub fn with_broken_lambda(w: &MockWorld, args: &[&str]) -> Run {
    Run::of(
        w.cmd(args)
            .env("LAMBDA_API_KEY", "secret_lambda_key_for_tests")
            .env("ATLAS_LAMBDA_BASE_URL", "http://127.0.0.1:9"),
    )
}

/// `r` (a `--provider all` run with [`with_broken_lambda`]) ended incomplete (exit 12) with
/// one `error:` line on stderr naming Lambda and never showing its key.
pub fn assert_lambda_reported(r: &Run) {
    assert_eq!(r.code, 12, "{r:#?}");
    let errors: Vec<&str> = r.stderr.lines().collect();
    assert_eq!(errors.len(), 1, "{r:#?}");
    assert!(errors[0].starts_with("error: "), "{errors:?}");
    assert!(errors[0].contains("lambda"), "{errors:?}");
    assert!(
        !r.stderr.contains("secret_lambda_key"),
        "the key never shows"
    );
}
