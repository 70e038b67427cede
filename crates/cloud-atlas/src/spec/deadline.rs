//! Machine-side deadlines: how a request's `max_runtime` is held by the machine itself,
//! so it ends even when every process of ours is gone.
//!
//! A provider declares how (see [`Capability`]):
//!
//! | provider | capability | how the machine ends at max runtime |
//! |---|---|---|
//! | mock | `provider_deadline` | the mock removes it (with or without a command) |
//! | Fly Machines | `command_deadline` | the wrapped command exits; `restart: no` + `auto_destroy: true` destroy the machine |
//! | RunPod | `command_deadline` | the wrapped command runs `runpodctl remove pod $RUNPOD_POD_ID` (RunPod puts `runpodctl` and a pod-scoped key on every pod) |
//! | Vast.ai | `command_deadline` | the wrapped command destroys the instance with its own `CONTAINER_API_KEY` (`DELETE /api/v0/instances/$CONTAINER_ID/`, Vast's documented per-instance key) |
//! | Lambda | — | refused: a VM bills until it is terminated through the API, and the account key never goes onto a machine |
//!
//! Where the providers document these: Fly's `restart.policy` and `auto_destroy` in the
//! Machines API reference (`machines-resource`); RunPod: "All Pods come with runpodctl
//! installed with a Pod-scoped API key" (docs.runpod.io/runpodctl/reference/runpodctl)
//! and "Stop a Pod after a specific time: `sleep 2h; runpodctl stop pod $RUNPOD_POD_ID`"
//! (docs.runpod.io, Manage Pods); Vast: the predefined `CONTAINER_ID` and
//! `CONTAINER_API_KEY` ("per-instance API key for CLI commands from inside the
//! container") and "stop or destroy the instance from within: `vastai destroy instance
//! $CONTAINER_ID`" (docs.vast.ai/guides/instances/docker-environment).
//!
//! With `command_deadline`, the request's [`command`](ComputeRequest::command) is
//! wrapped by one POSIX `sh` script ([`WRAPPER_SOURCE`], `deadline.sh`): it runs the
//! command, sends it `TERM` at max runtime and `KILL` [`KILL_GRACE`] later, then ends the
//! machine the provider's way, retrying until that works (a container that merely
//! exited could be restarted by the provider and run the command again). So with a max
//! runtime **the machine lives as long as its command, at most max runtime** (counted
//! from when the command starts on the machine). The wrapper exits with the command's
//! status, or 124 when the deadline ended it. A stop from outside (`TERM`) is passed on
//! to the command and leaves the machine alone; a later start runs the command again,
//! with a fresh deadline. A host that restarts the container re-arms it the same way:
//! the count is kept by the machine, not by a clock of ours.
//!
//! The wrapper is the container's command, so an image `ENTRYPOINT` must run its
//! arguments (`exec "$@"`, as the CUDA, PyTorch and distribution images do), and the
//! image needs `/bin/sh`. A request with `max_runtime` but no command on such a
//! provider is refused with `Unsupported` saying to give one; a provider that can hold
//! no deadline refuses `max_runtime` outright. Either way before anything is created.

use std::sync::OnceLock;
use std::time::Duration;

use super::capability::{Capabilities, Capability};
use super::compute::ComputeRequest;
use crate::error::{Error, ErrorKind, Result};

/// The wrapper script, as written (commented, one command per line).
pub const WRAPPER_SOURCE: &str = include_str!("deadline.sh");

/// Time between `TERM` and `KILL` when the deadline ends a command.
pub const KILL_GRACE: Duration = Duration::from_secs(10);

/// `$0` of the wrapper (what `ps` on the machine shows).
pub const WRAPPER_NAME: &str = "atlas-deadline";

/// How a machine ends itself from inside once its command has ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum SelfEnd {
    /// Exiting the main process ends the machine for good (Fly with `restart: no` and
    /// `auto_destroy: true`).
    Exit,
    /// `runpodctl remove pod "$RUNPOD_POD_ID"` (then `stop pod` as a fallback) with the
    /// pod-scoped key RunPod installs on every pod.
    RunPod,
    /// `DELETE https://console.vast.ai/api/v0/instances/$CONTAINER_ID/` with the
    /// instance's own `CONTAINER_API_KEY` (curl, else python3, else the `vastai` CLI).
    Vast,
}

impl SelfEnd {
    /// The word the wrapper knows this by.
    pub fn as_str(self) -> &'static str {
        match self {
            SelfEnd::Exit => "exit",
            SelfEnd::RunPod => "runpod",
            SelfEnd::Vast => "vast",
        }
    }
}

/// The wrapper as it is sent: comments dropped, joined into one line.
pub fn wrapper() -> &'static str {
    static ONE_LINE: OnceLock<String> = OnceLock::new();
    ONE_LINE.get_or_init(|| one_line(WRAPPER_SOURCE))
}

/// Join a script's lines into one: each line is a complete command (joined with `; `)
/// or ends with a word that continues it (joined with a space).
fn one_line(script: &str) -> String {
    const CONTINUES: &[&str] = &[
        " do", " then", " else", "{", "(", " in", ";;", "&", "|", "&&", "||",
    ];
    let mut out = String::new();
    for line in script.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if !out.is_empty() {
            let prev = out.trim_end();
            let cont = CONTINUES.iter().any(|w| prev.ends_with(w)) || prev == "(";
            out.push_str(if cont { " " } else { "; " });
        }
        out.push_str(line);
    }
    out
}

/// `argv` wrapped so it ends at `max_runtime` (rounded up to whole seconds) and the
/// machine then ends itself by `end`: `["/bin/sh", "-c", WRAPPER, "atlas-deadline",
/// SECS, GRACE, END, "--", argv…]`.
pub fn wrap(argv: &[String], max_runtime: Duration, end: SelfEnd) -> Vec<String> {
    let secs = max_runtime.as_secs() + u64::from(max_runtime.subsec_nanos() > 0);
    let mut out = vec![
        "/bin/sh".to_string(),
        "-c".to_string(),
        wrapper().to_string(),
        WRAPPER_NAME.to_string(),
        secs.max(1).to_string(),
        KILL_GRACE.as_secs().to_string(),
        end.as_str().to_string(),
        "--".to_string(),
    ];
    out.extend(argv.iter().cloned());
    out
}

/// Whether a provider declaring `caps` holds `req.max_runtime` on the machine itself
/// (true for `provider_deadline`; for `command_deadline` only when `req` has a command).
pub fn held_by_machine(caps: &Capabilities, req: &ComputeRequest) -> bool {
    caps.contains(Capability::ProviderDeadline)
        || (caps.contains(Capability::CommandDeadline) && !req.command.is_empty())
}

/// Refuse a `max_runtime` that `provider` (declaring `caps`) cannot hold on the machine,
/// naming what would: a command, or an orchestrator that tracks the machine.
///
/// # Errors
/// `Unsupported` naming the provider and what to do.
pub fn check(provider: &str, caps: &Capabilities, req: &ComputeRequest) -> Result<()> {
    if req.max_runtime.is_none() || held_by_machine(caps, req) {
        return Ok(());
    }
    Err(refusal(provider, caps))
}

fn refusal(provider: &str, caps: &Capabilities) -> Error {
    const TRACK: &str = "track the machine as a session while an orchestrator runs (`atlas session spawn` with `atlas serve` running, or the library's Orchestrator), which ends it at max runtime";
    let msg = if caps.contains(Capability::CommandDeadline) {
        format!("max_runtime needs a command on {provider}: {provider} holds it by wrapping the command the machine runs, so the machine ends itself; give the command (`atlas spawn … -- CMD ARGS…`, or ComputeRequestBuilder::command), or {TRACK}")
    } else {
        format!("max_runtime cannot be held on {provider}: a {provider} machine cannot end itself, so nothing would stop it at max runtime; {TRACK}")
    };
    Error::new(ErrorKind::Unsupported, msg)
        .with_provider(provider.to_string())
        .with_operation("spawn")
}

/// The argv `provider` puts on the machine for `req`: its command as is without a max
/// runtime (empty: the image's own command); with one, the command [`wrap`]ped to end
/// the machine by `end`. `end: None` says the provider has no way to end a machine
/// from inside.
///
/// # Errors
/// `Unsupported` for a max runtime that cannot be held: no way to end the machine, or
/// no command to wrap.
pub fn machine_command(
    provider: &str,
    req: &ComputeRequest,
    end: Option<SelfEnd>,
) -> Result<Vec<String>> {
    match (req.max_runtime, end) {
        (None, _) => Ok(req.command.clone()),
        (Some(_), None) => Err(refusal(provider, &Capabilities::default())),
        (Some(_), Some(_)) if req.command.is_empty() => Err(refusal(
            provider,
            &Capabilities::new([Capability::CommandDeadline]),
        )),
        (Some(d), Some(end)) => Ok(wrap(&req.command, d, end)),
    }
}

/// `argv` as one POSIX shell command line: words made only of safe characters as they
/// are, others in single quotes (a `'` inside written `'\''`).
pub fn shell_join(argv: &[String]) -> String {
    argv.iter()
        .map(|a| {
            let safe = !a.is_empty()
                && a.chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=@%+,".contains(c));
            if safe {
                a.clone()
            } else {
                format!("'{}'", a.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::time::Instant;

    fn req(cmd: &[&str], max: Option<u64>) -> ComputeRequest {
        let mut b = ComputeRequest::builder()
            .image("i")
            .command(cmd.iter().copied());
        if let Some(s) = max {
            b = b.max_runtime(Duration::from_secs(s));
        }
        b.build().unwrap()
    }

    #[test]
    fn the_wrapper_has_no_bashisms_or_single_quotes() {
        let w = wrapper();
        assert!(!w.contains('\n') && !w.contains('\''), "{w}");
        for bashism in [
            "[[",
            "function ",
            "$(( ",
            "local ",
            "pipefail",
            "<<<",
            "${!",
            "==",
            "source ",
        ] {
            assert!(!w.contains(bashism), "bashism {bashism:?} in {w}");
        }
        // POSIX sh parses the one-line form (dash is /bin/sh here and on Debian CI).
        let ok = Command::new("/bin/sh")
            .args(["-n", "-c", w])
            .status()
            .unwrap();
        assert!(ok.success());
        assert!(
            w.len() < 3000,
            "the wrapper is sent in request bodies: {} bytes",
            w.len()
        );
    }

    #[test]
    fn commands_pass_through_without_a_max_runtime() {
        let r = req(&["python", "train.py"], None);
        assert_eq!(
            machine_command("runpod", &r, Some(SelfEnd::RunPod)).unwrap(),
            ["python", "train.py"]
        );
        assert_eq!(
            machine_command("lambda", &r, None).unwrap(),
            ["python", "train.py"]
        );
        assert!(machine_command("x", &req(&[], None), None)
            .unwrap()
            .is_empty());
    }

    #[test]
    fn a_max_runtime_wraps_the_command() {
        let r = ComputeRequest::builder()
            .image("i")
            .command(["python", "train.py"])
            .max_runtime(Duration::from_millis(90_500))
            .build()
            .unwrap();
        let argv = machine_command("fly", &r, Some(SelfEnd::Exit)).unwrap();
        assert_eq!(&argv[..2], ["/bin/sh", "-c"]);
        assert_eq!(argv[2], wrapper());
        assert_eq!(
            &argv[3..],
            [
                "atlas-deadline",
                "91",
                "10",
                "exit",
                "--",
                "python",
                "train.py"
            ]
        );
    }

    #[test]
    fn a_max_runtime_that_cannot_be_held_is_refused_naming_what_would() {
        let no_cmd =
            machine_command("runpod", &req(&[], Some(60)), Some(SelfEnd::RunPod)).unwrap_err();
        assert_eq!(no_cmd.kind(), ErrorKind::Unsupported);
        assert!(no_cmd.to_string().contains("-- CMD ARGS"), "{no_cmd}");
        assert!(no_cmd.to_string().contains("atlas serve"), "{no_cmd}");
        let never = machine_command("lambda", &req(&["x"], Some(60)), None).unwrap_err();
        assert_eq!(never.kind(), ErrorKind::Unsupported);
        assert!(never.to_string().contains("lambda"), "{never}");
        assert!(never.to_string().contains("orchestrator"), "{never}");

        let cmd_caps = Capabilities::new([Capability::CommandDeadline]);
        let mock_caps = Capabilities::new([Capability::ProviderDeadline]);
        assert!(check("fly", &cmd_caps, &req(&["x"], Some(60))).is_ok());
        assert!(check("fly", &cmd_caps, &req(&[], Some(60))).is_err());
        assert!(check("fly", &cmd_caps, &req(&[], None)).is_ok());
        assert!(check("mock", &mock_caps, &req(&[], Some(60))).is_ok());
        let e = check("lambda", &Capabilities::default(), &req(&["x"], Some(60))).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unsupported);
        assert!(held_by_machine(&mock_caps, &req(&[], None)));
        assert!(!held_by_machine(&cmd_caps, &req(&[], None)));
        assert!(held_by_machine(&cmd_caps, &req(&["x"], None)));
    }

    #[test]
    fn shell_join_quotes_what_needs_it() {
        let argv: Vec<String> = ["python", "-c", "print('hi')", "a b", "", "x=1"]
            .map(String::from)
            .into();
        let line = shell_join(&argv);
        assert_eq!(line, r#"python -c 'print('\''hi'\'')' 'a b' '' x=1"#);
        // sh reads it back to the same words.
        let out = Command::new("/bin/sh")
            .args([
                "-c",
                &format!("for a in {line}; do printf '[%s]' \"$a\"; done"),
            ])
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&out.stdout),
            "[python][-c][print('hi')][a b][][x=1]"
        );
    }

    // ---- the wrapper itself, run by real shells ----

    /// Shells to run the wrapper under: /bin/sh always; dash and bash in POSIX mode
    /// when installed.
    fn shells() -> Vec<Vec<String>> {
        let mut v = vec![vec!["/bin/sh".to_string()]];
        for (path, args) in [("/usr/bin/dash", vec![]), ("/bin/bash", vec!["--posix"])] {
            if Path::new(path).exists() {
                let mut s = vec![path.to_string()];
                s.extend(args.into_iter().map(String::from));
                v.push(s);
            }
        }
        v
    }

    struct Run {
        code: Option<i32>,
        stderr: String,
        calls: String,
        took: Duration,
    }

    /// A folder with fake `runpodctl`/`curl`/`vastai` on PATH that log their argv
    /// (and stdin) to `calls`; `fail_first` makes the first N calls fail.
    fn shims(fail_first: u32) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("calls");
        let count = dir.path().join("count");
        for tool in ["runpodctl", "curl", "vastai"] {
            let p = dir.path().join(tool);
            std::fs::write(
                &p,
                format!(
                    "#!/bin/sh\nn=$(cat {count} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {count}\n\
                     echo \"{tool} $*\" >> {log}\n\
                     [ {tool} = curl ] && cat >> {log}\n\
                     [ $n -le {fail_first} ] && exit 1\nexit 0\n",
                    count = count.display(),
                    log = log.display()
                ),
            )
            .unwrap();
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        (dir, log)
    }

    fn run_wrapped(
        shell: &[String],
        argv: &[&str],
        secs: u64,
        grace: u64,
        end: SelfEnd,
        fail_first: u32,
        env: &[(&str, &str)],
    ) -> Run {
        let (dir, log) = shims(fail_first);
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let started = Instant::now();
        let out = Command::new(&shell[0])
            .args(&shell[1..])
            .args(["-c", wrapper(), WRAPPER_NAME])
            .args([
                secs.to_string(),
                grace.to_string(),
                end.as_str().to_string(),
            ])
            .arg("--")
            .args(argv)
            .env("PATH", path)
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .output()
            .unwrap();
        Run {
            code: out.status.code(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
            calls: std::fs::read_to_string(log).unwrap_or_default(),
            took: started.elapsed(),
        }
    }

    #[test]
    fn the_commands_exit_code_is_kept_and_the_machine_ended_after_it() {
        for sh in shells() {
            let r = run_wrapped(
                &sh,
                &["sh", "-c", "echo out; echo err >&2; exit 3"],
                60,
                1,
                SelfEnd::RunPod,
                0,
                &[("RUNPOD_POD_ID", "pod123")],
            );
            assert_eq!(r.code, Some(3), "{sh:?}: {}", r.stderr);
            assert_eq!(r.calls, "runpodctl remove pod pod123\n", "{sh:?}");
            assert!(r.took < Duration::from_secs(5), "{sh:?}: took {:?}", r.took);
            let ok = run_wrapped(&sh, &["true"], 60, 1, SelfEnd::Exit, 0, &[]);
            assert_eq!(ok.code, Some(0), "{sh:?}: {}", ok.stderr);
            assert_eq!(ok.calls, "", "{sh:?}: exit mode runs nothing");
        }
    }

    #[test]
    fn the_deadline_kills_the_command_then_ends_the_machine() {
        for sh in shells() {
            let r = run_wrapped(
                &sh,
                &["sleep", "30"],
                1,
                5,
                SelfEnd::Vast,
                0,
                &[("CONTAINER_ID", "42"), ("CONTAINER_API_KEY", "k-secret")],
            );
            assert_eq!(r.code, Some(124), "{sh:?}: {}", r.stderr);
            assert!(
                r.took >= Duration::from_secs(1) && r.took < Duration::from_secs(5),
                "{sh:?}: {:?}",
                r.took
            );
            assert!(
                r.stderr.contains("max runtime 1s reached"),
                "{sh:?}: {}",
                r.stderr
            );
            // curl is tried first; the key goes through stdin, never argv.
            assert!(
                r.calls.starts_with(
                    "curl -fsS -X DELETE -K - https://console.vast.ai/api/v0/instances/42/\n"
                ),
                "{sh:?}: {}",
                r.calls
            );
            assert!(
                r.calls
                    .contains("header = \"Authorization: Bearer k-secret\""),
                "{}",
                r.calls
            );
            assert!(
                !r.stderr.contains("k-secret"),
                "{sh:?}: the key leaked: {}",
                r.stderr
            );
        }
    }

    #[test]
    fn a_command_that_ignores_term_is_killed_after_the_grace() {
        for sh in shells() {
            let r = run_wrapped(
                &sh,
                &["sh", "-c", "trap '' TERM; while :; do sleep 0.1; done"],
                1,
                1,
                SelfEnd::Exit,
                0,
                &[],
            );
            assert_eq!(r.code, Some(124), "{sh:?}: {}", r.stderr);
            assert!(r.took < Duration::from_secs(6), "{sh:?}: took {:?}", r.took);
        }
    }

    #[test]
    fn the_one_line_form_a_provider_splits_runs_the_same() {
        // RunPod's `args` and Vast's `onstart` carry the wrapped command as one shell line.
        let argv: Vec<String> = ["sh", "-c", "echo \"it's $0\"; exit 5", "me"]
            .map(String::from)
            .into();
        let line = shell_join(&wrap(&argv, Duration::from_secs(60), SelfEnd::Exit));
        let out = Command::new("/bin/sh")
            .args(["-c", &format!("exec {line}")])
            .output()
            .unwrap();
        assert_eq!(
            out.status.code(),
            Some(5),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(String::from_utf8_lossy(&out.stdout), "it's me\n");
    }

    #[test]
    fn ending_the_machine_is_retried_until_it_works() {
        let sh = &shells()[0];
        let r = run_wrapped(
            sh,
            &["true"],
            60,
            1,
            SelfEnd::RunPod,
            2,
            &[("RUNPOD_POD_ID", "p")],
        );
        assert_eq!(r.code, Some(0), "{}", r.stderr);
        // remove fails, stop fails (attempt 1); remove succeeds (attempt 2).
        assert_eq!(
            r.calls,
            "runpodctl remove pod p\nrunpodctl stop pod p\nrunpodctl remove pod p\n"
        );
        assert!(
            r.stderr.contains("could not end the machine (attempt 1)"),
            "{}",
            r.stderr
        );
    }

    #[test]
    fn a_stop_from_outside_reaches_the_command_and_leaves_the_machine() {
        let (dir, log) = shims(0);
        let path = format!(
            "{}:{}",
            dir.path().display(),
            std::env::var("PATH").unwrap()
        );
        let child = Command::new("/bin/sh")
            .args(["-c", wrapper(), WRAPPER_NAME, "60", "1", "runpod", "--"])
            .args([
                "sh",
                "-c",
                "trap 'echo got-term >&2; exit 7' TERM; while :; do sleep 0.1; done",
            ])
            .env("PATH", path)
            .env("RUNPOD_POD_ID", "p")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(500));
        let pid = child.id().to_string();
        assert!(Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap()
            .success());
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(7), "{err}");
        assert!(err.contains("got-term"), "{err}");
        assert_eq!(std::fs::read_to_string(log).unwrap_or_default(), "");
    }

    #[test]
    fn missing_machine_identity_is_said_and_retried() {
        // Without RUNPOD_POD_ID nothing can be ended: the wrapper says so and keeps
        // trying instead of exiting (which would restart the command).
        let mut child = Command::new("/bin/sh")
            .args([
                "-c",
                wrapper(),
                WRAPPER_NAME,
                "60",
                "1",
                "runpod",
                "--",
                "true",
            ])
            .env_remove("RUNPOD_POD_ID")
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        std::thread::sleep(Duration::from_millis(1500));
        assert!(child.try_wait().unwrap().is_none(), "the wrapper exited");
        child.kill().unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("RUNPOD_POD_ID is not set"), "{err}");
    }
}
