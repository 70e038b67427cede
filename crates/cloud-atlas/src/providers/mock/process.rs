//! The mock runs a machine's command **on this host**, as a local process (the image is
//! ignored).
//!
//! - The command's argv runs as `docker run IMAGE CMD ARGS…` would run it (no shell of
//!   ours around it; give `sh -c '…'` for shell syntax), under a small POSIX `sh`
//!   wrapper ([`WRAPPER`]) that waits out the simulated boot, runs it, writes its exit
//!   status to a file, and ends the machine's whole process group (as a container's
//!   end ends everything in it).
//! - The process outlives the call that spawned it: its own process group, stdin from
//!   `/dev/null`, stdout and stderr appended to `output.log` in the machine's folder
//!   (`<data dir>/mock-cloud/<id>/`, 0700; a temporary folder for an in-memory mock).
//!   Its process group id, log path and exit status are kept in the mock's state.
//! - Environment: `PATH`, `HOME`, `LANG`, `TMPDIR`, `USER` from this host, the request's
//!   `env` (and the auth token variables when the request asks for auth), and, for each
//!   declared port, a free port on `127.0.0.1`: `PORT_<container port>=<host port>`, with
//!   `PORT` set to the first HTTP port's (else the first port's). **The command must
//!   listen on `$PORT`** (or `$PORT_8000`); the port's URL is then
//!   `http://127.0.0.1:<host port>` (`tcp://…` for TCP ports).
//! - Max runtime: the wrapper kills its process group at the deadline even when no
//!   `atlas` process is left (the machine side of the deadline); the mock also ends the
//!   machine when it reads it after the deadline.
//! - Stop and terminate send `TERM` to the process group, then `KILL` after
//!   [`STOP_GRACE`]; start runs the command again (logs are appended).
//! - When the command ends the machine is `stopped` (billing its disks only) and
//!   `raw.exit_code` holds the status (`128 + n` for a death by signal `n`, as `sh`
//!   reports it; `null` when the process was killed before it could say).

use std::collections::BTreeMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::NAME;
use crate::error::{Error, ErrorKind, Result};
use crate::spec::{PortSpec, Protocol};

/// The wrapper: `sh -c WRAPPER atlas-mock EXIT_FILE BOOT_SECS LIMIT_SECS CMD ARGS…`.
///
/// `LIMIT_SECS` empty means no deadline. At the end the whole process group is killed,
/// so background children of the command do not outlive its machine.
pub const WRAPPER: &str = r#"exit_file=$1; boot=$2; limit=$3; shift 3
if [ -n "$limit" ]; then (sleep "$limit"; kill -KILL 0) & fi
[ "$boot" = 0 ] || sleep "$boot"
"$@"
code=$?
echo "$code" > "$exit_file.tmp" && mv -f "$exit_file.tmp" "$exit_file"
kill -KILL 0
"#;

/// `$0` of the wrapper (what `ps` shows).
pub const WRAPPER_NAME: &str = "atlas-mock";

/// Time between `TERM` and `KILL` when a machine with a running command is stopped or
/// terminated.
pub const STOP_GRACE: Duration = Duration::from_secs(2);

/// File name of a machine's output inside its folder.
pub const LOG_FILE: &str = "output.log";

/// File name of the exit status inside a machine's folder.
const EXIT_FILE: &str = "exit-code";

/// Host variables passed on to the command (everything else stays out, as in a container).
const HOST_VARS: &[&str] = &["PATH", "HOME", "LANG", "TMPDIR", "USER"];

/// A machine's command process, as stored.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(super) struct ProcessState {
    /// The machine's folder (log and exit files).
    pub(super) dir: PathBuf,
    /// Container port → host port on 127.0.0.1.
    pub(super) host_ports: BTreeMap<u16, u16>,
    /// Process group id (= the wrapper's pid) of the current run; `None` while stopped.
    pub(super) pid: Option<u32>,
    /// How the current (or last) run ended; `None` while it runs.
    pub(super) exit: Option<Exit>,
    /// Runs started so far (start after stop runs the command again).
    pub(super) runs: u32,
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(super) struct Exit {
    /// Exit status as `sh` reports it; `None` when killed before it could say.
    pub(super) code: Option<i32>,
    /// When it ended (or when the end was noticed).
    pub(super) at: DateTime<Utc>,
}

/// The command's environment values (they may be secrets: `Debug` shows keys only).
#[derive(Clone, Default, Serialize, Deserialize)]
#[serde(transparent)]
pub(super) struct ProcessEnv(pub(super) BTreeMap<String, String>);

impl ProcessEnv {
    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for ProcessEnv {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(self.0.keys()).finish()
    }
}

/// A machine's command process, as the mock sees it now ([`super::Mock::process`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[non_exhaustive]
pub struct MockProcess {
    /// Process group id of the current run (`None` while stopped).
    pub pid: Option<u32>,
    /// Whether the command still runs.
    pub running: bool,
    /// Exit status of the last run once it ended (`128 + n` for signal `n`).
    pub exit_code: Option<i32>,
    /// The file its stdout and stderr go to.
    pub log: PathBuf,
    /// Container port → port on 127.0.0.1.
    pub host_ports: BTreeMap<u16, u16>,
    /// Runs started so far.
    pub runs: u32,
}

impl ProcessState {
    /// A fresh process record in `dir` with a free host port per declared port.
    pub(super) fn new(dir: PathBuf, ports: &[PortSpec]) -> Result<ProcessState> {
        let mut host_ports = BTreeMap::new();
        for p in ports {
            host_ports.insert(p.port, free_port()?);
        }
        Ok(ProcessState {
            dir,
            host_ports,
            pid: None,
            exit: None,
            runs: 0,
        })
    }

    /// The log file.
    pub(super) fn log(&self) -> PathBuf {
        self.dir.join(LOG_FILE)
    }

    /// Whether the current run still runs (as last observed).
    pub(super) fn running(&self) -> bool {
        self.pid.is_some() && self.exit.is_none()
    }

    /// The public view.
    pub(super) fn view(&self) -> MockProcess {
        MockProcess {
            pid: self.pid,
            running: self.running(),
            exit_code: self.exit.as_ref().and_then(|e| e.code),
            log: self.log(),
            host_ports: self.host_ports.clone(),
            runs: self.runs,
        }
    }

    /// `PORT` and `PORT_<n>` for the command.
    fn port_env(&self, ports: &[PortSpec]) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .host_ports
            .iter()
            .map(|(c, h)| (format!("PORT_{c}"), h.to_string()))
            .collect();
        let main = ports
            .iter()
            .find(|p| p.protocol == Protocol::Http)
            .or_else(|| ports.first());
        if let Some(h) = main.and_then(|p| self.host_ports.get(&p.port)) {
            out.push(("PORT".to_string(), h.to_string()));
        }
        out
    }

    /// Start a run of `argv`: boot for `boot`, killed after `limit` (from now) if given.
    pub(super) fn launch(
        &mut self,
        argv: &[String],
        env: &ProcessEnv,
        ports: &[PortSpec],
        boot: Duration,
        limit: Option<Duration>,
    ) -> Result<()> {
        crate::config::ensure_private_dir(&self.dir)?;
        let exit_file = self.dir.join(EXIT_FILE);
        match fs::remove_file(&exit_file) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&exit_file, e)),
        }
        let log = self.log();
        let out = open_log(&log)?;
        let err = out.try_clone().map_err(|e| io_err(&log, e))?;
        let mut cmd = std::process::Command::new("sh");
        cmd.arg("-c")
            .arg(WRAPPER)
            .arg(WRAPPER_NAME)
            .arg(&exit_file)
            .arg(format!("{:.3}", boot.as_secs_f64()))
            // Whole seconds, rounded up: never before the deadline.
            .arg(limit.map_or(String::new(), |d| {
                (d.as_secs() + u64::from(d.subsec_nanos() > 0)).to_string()
            }))
            .args(argv)
            .env_clear()
            .stdin(std::process::Stdio::null())
            .stdout(out)
            .stderr(err);
        for k in HOST_VARS {
            if let Some(v) = std::env::var_os(k) {
                cmd.env(k, v);
            }
        }
        cmd.envs(env.0.iter());
        cmd.envs(self.port_env(ports));
        set_own_group(&mut cmd);
        let mut child = cmd.spawn().map_err(|e| {
            Error::new(
                ErrorKind::Unknown,
                format!("mock cloud: cannot run the command with sh: {e}"),
            )
            .with_provider(NAME)
        })?;
        self.pid = Some(child.id());
        self.exit = None;
        self.runs += 1;
        // Reap it when it ends while this process lives (a zombie would look alive);
        // once this process exits, init does.
        let _ = std::thread::Builder::new()
            .name("mock-reap".into())
            .spawn(move || {
                let _ = child.wait();
            });
        Ok(())
    }

    /// Notice a run that ended; `true` when the record changed.
    pub(super) fn observe(&mut self, now: DateTime<Utc>) -> bool {
        let Some(pid) = self.pid else { return false };
        if self.exit.is_some() {
            return false;
        }
        let exit_file = self.dir.join(EXIT_FILE);
        let read = || -> Option<Exit> {
            let text = fs::read_to_string(&exit_file).ok()?;
            let at = fs::metadata(&exit_file)
                .and_then(|m| m.modified())
                .map(DateTime::<Utc>::from)
                .unwrap_or(now);
            Some(Exit {
                code: text.trim().parse().ok(),
                at: at.min(now),
            })
        };
        if let Some(e) = read() {
            self.exit = Some(e);
            return true;
        }
        if group_alive(pid) {
            return false;
        }
        // Gone: it may have written its status just before the check.
        self.exit = Some(read().unwrap_or(Exit {
            code: None,
            at: now,
        }));
        true
    }

    /// End the current run: `TERM` to its group, `KILL` after [`STOP_GRACE`].
    pub(super) fn kill(&mut self) {
        if let Some(pid) = self.pid.take() {
            kill_group(pid);
        }
    }

    /// Kill the run and remove the machine's folder (terminate).
    pub(super) fn discard(&mut self) {
        self.kill();
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            if e.kind() != std::io::ErrorKind::NotFound {
                tracing::warn!(provider = NAME, dir = %self.dir.display(), error = %e, "cannot remove a mock machine's folder");
            }
        }
    }
}

/// End the run with process group `pgid` (`TERM`, `KILL` after [`STOP_GRACE`]) on the
/// blocking pool, so an async caller's thread is not held meanwhile.
pub(super) async fn end_group(pgid: u32) {
    let _ = tokio::task::spawn_blocking(move || kill_group(pgid)).await;
}

/// A port on 127.0.0.1 nothing listens on right now.
fn free_port() -> Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| {
            Error::new(
                ErrorKind::Unknown,
                format!("mock cloud: no free port on 127.0.0.1: {e}"),
            )
            .with_provider(NAME)
        })
}

fn open_log(path: &Path) -> Result<fs::File> {
    let mut o = fs::OpenOptions::new();
    o.create(true).append(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o.open(path).map_err(|e| io_err(path, e))
}

fn io_err(path: &Path, e: std::io::Error) -> Error {
    Error::new(
        ErrorKind::Unknown,
        format!("mock cloud: {}: {e}", path.display()),
    )
    .with_provider(NAME)
}

#[cfg(unix)]
fn set_own_group(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt;
    cmd.process_group(0);
}

#[cfg(not(unix))]
fn set_own_group(_cmd: &mut std::process::Command) {}

/// Whether any process of group `pgid` still runs. A killed process stays in its group
/// as a zombie until it is reaped (an orphan by init, which in a container may take
/// seconds), so on Linux zombies are told apart through `/proc`.
#[cfg(unix)]
pub(super) fn group_alive(pgid: u32) -> bool {
    let Some(p) = pid(pgid) else { return false };
    if rustix::process::test_kill_process_group(p).is_err() {
        return false;
    }
    #[cfg(target_os = "linux")]
    if let Some(live) = linux_group_has_live_member(pgid) {
        return live;
    }
    true
}

/// `Some(whether a non-zombie process of group pgid exists)`, `None` when `/proc` cannot
/// be read.
#[cfg(target_os = "linux")]
fn linux_group_has_live_member(pgid: u32) -> Option<bool> {
    let dir = fs::read_dir("/proc").ok()?;
    for e in dir.flatten() {
        let name = e.file_name();
        let Some(name) = name.to_str() else { continue };
        if !name.bytes().all(|b| b.is_ascii_digit()) {
            continue;
        }
        let Ok(stat) = fs::read_to_string(format!("/proc/{name}/stat")) else {
            continue;
        };
        // `pid (comm) state ppid pgrp …`; comm may hold spaces and parentheses.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
            continue;
        };
        let mut f = rest.split_whitespace();
        let (Some(state), _, Some(pgrp)) = (f.next(), f.next(), f.next()) else {
            continue;
        };
        if pgrp.parse::<u32>().ok() == Some(pgid) && state != "Z" && state != "X" {
            return Some(true);
        }
    }
    Some(false)
}

#[cfg(unix)]
fn pid(pgid: u32) -> Option<rustix::process::Pid> {
    // Never 0 or negative: that would name our own group or every process.
    i32::try_from(pgid)
        .ok()
        .filter(|p| *p > 1)
        .and_then(rustix::process::Pid::from_raw)
}

#[cfg(unix)]
fn kill_group(pgid: u32) {
    use rustix::process::{kill_process_group, Signal};
    let Some(p) = pid(pgid) else { return };
    if kill_process_group(p, Signal::TERM).is_err() {
        return;
    }
    let until = std::time::Instant::now() + STOP_GRACE;
    while std::time::Instant::now() < until {
        if !group_alive(pgid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    let _ = kill_process_group(p, Signal::KILL);
    let until = std::time::Instant::now() + Duration::from_secs(1);
    while group_alive(pgid) && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(10));
    }
}

#[cfg(not(unix))]
pub(super) fn group_alive(_pgid: u32) -> bool {
    false
}

#[cfg(not(unix))]
fn kill_group(_pgid: u32) {}
