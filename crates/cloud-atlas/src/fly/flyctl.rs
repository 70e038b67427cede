//! The `fly` command-line tool: where it is, how it is started and how it is stopped.
//!
//! Every child runs in its own process group, so a timeout kills the whole tree
//! (`fly deploy` starts helpers) with `kill -TERM -<pgid>`, then `-KILL` after a
//! grace period. The library forbids `unsafe`, so the signal goes through the
//! system `kill` utility rather than `libc`.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use crate::auth::Secret;
use crate::error::{Error, ErrorKind, Result};

/// Env var naming the `fly` binary (a path, or a name looked up on `PATH`).
pub const FLY_BIN_ENV: &str = "ATLAS_FLY_BIN";

/// The default binary name, looked up on `PATH`.
pub const DEFAULT_FLY_BIN: &str = "fly";

/// Time between `SIGTERM` and `SIGKILL` when a child is stopped.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(5);

/// How to run `fly`: the binary plus environment passed to every child.
#[derive(Debug, Clone)]
pub struct Flyctl {
    bin: PathBuf,
    env: Vec<(String, Secret)>,
    kill_grace: Duration,
}

impl Default for Flyctl {
    fn default() -> Flyctl {
        Flyctl::new(DEFAULT_FLY_BIN)
    }
}

impl Flyctl {
    /// Use `bin`: a path, or a bare name looked up on `PATH`.
    pub fn new(bin: impl Into<PathBuf>) -> Flyctl {
        Flyctl {
            bin: bin.into(),
            env: Vec::new(),
            kill_grace: DEFAULT_KILL_GRACE,
        }
    }

    /// `fly`, or the binary named by [`FLY_BIN_ENV`] in `config`'s environment.
    pub fn from_config(config: &crate::config::Config) -> Flyctl {
        match config.env(FLY_BIN_ENV).filter(|s| !s.trim().is_empty()) {
            Some(b) => Flyctl::new(b.trim()),
            None => Flyctl::default(),
        }
    }

    /// Pass `name=value` to every child (e.g. `FLY_API_TOKEN`). The value stays secret.
    pub fn with_env(mut self, name: impl Into<String>, value: Secret) -> Flyctl {
        self.env.push((name.into(), value));
        self
    }

    /// Time between `SIGTERM` and `SIGKILL` when a child must be stopped.
    pub fn with_kill_grace(mut self, grace: Duration) -> Flyctl {
        self.kill_grace = grace;
        self
    }

    /// The binary.
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// A command for `fly <args>` in its own process group, stdin closed,
    /// stdout/stderr piped, killed if dropped.
    pub(crate) fn command<I, S>(&self, args: I) -> tokio::process::Command
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let mut cmd = tokio::process::Command::new(&self.bin);
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true);
        for (k, v) in &self.env {
            cmd.env(k, v.expose());
        }
        #[cfg(unix)]
        cmd.process_group(0);
        cmd
    }

    /// Start `cmd`, turning a missing binary into a `NotFound` error naming it.
    ///
    /// "Text file busy" (`ETXTBSY`: the binary was just written, and a process forked
    /// elsewhere in this program still holds it open for an instant) is retried a few
    /// times before it counts as a failure.
    pub(crate) fn spawn(&self, cmd: &mut tokio::process::Command) -> Result<tokio::process::Child> {
        const ETXTBSY: i32 = 26;
        let mut tries = 0;
        loop {
            match cmd.spawn() {
                Err(e) if e.raw_os_error() == Some(ETXTBSY) && tries < 5 => {
                    tries += 1;
                    std::thread::sleep(std::time::Duration::from_millis(10 * tries));
                }
                r => return r.map_err(|e| self.spawn_error(e)),
            }
        }
    }

    fn spawn_error(&self, e: io::Error) -> Error {
        let shown = self.bin.display();
        match e.kind() {
            io::ErrorKind::NotFound => Error::new(
                ErrorKind::NotFound,
                format!(
                    "the fly binary `{shown}` was not found: install flyctl (https://fly.io/docs/flyctl/install/) or set {FLY_BIN_ENV} to its path"
                ),
            ),
            io::ErrorKind::PermissionDenied => Error::new(
                ErrorKind::Forbidden,
                format!("the fly binary `{shown}` is not executable"),
            ),
            _ => Error::new(ErrorKind::Unknown, format!("could not start `{shown}`")).with_source(e),
        }
        .with_provider("fly")
    }

    /// Stop `child` and everything in its process group `pgid` (the child's pid,
    /// recorded at spawn; the group outlives a reaped leader): `SIGTERM`, wait up to
    /// the grace period, then `SIGKILL`; the child is reaped before this returns.
    pub(crate) async fn kill_tree(&self, child: &mut tokio::process::Child, pgid: Option<u32>) {
        let Some(pgid) = pgid.or_else(|| child.id()) else {
            let _ = child.start_kill();
            let _ = child.wait().await;
            return;
        };
        signal_group(pgid, "TERM").await;
        if tokio::time::timeout(self.kill_grace, child.wait())
            .await
            .is_err()
        {
            let _ = child.start_kill();
        }
        // Whatever of the group is left (helpers that ignored SIGTERM) goes now.
        signal_group(pgid, "KILL").await;
        let _ = child.wait().await;
    }
}

/// Send `sig` to process group `pgid` through the system `kill` utility.
async fn signal_group(pgid: u32, sig: &str) {
    #[cfg(unix)]
    {
        let status = tokio::process::Command::new("kill")
            .arg("-s")
            .arg(sig)
            .arg("--")
            .arg(format!("-{pgid}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .await;
        if let Err(e) = status {
            tracing::warn!(error = %e, "could not run `kill` to stop a fly process group");
        }
    }
    #[cfg(not(unix))]
    {
        let _ = (pgid, sig);
    }
}

/// Splits a byte stream into lines on `\n`, `\r\n` or a lone `\r` (progress output),
/// decoding lossily as UTF-8.
#[derive(Debug, Default)]
pub(crate) struct LineSplitter {
    buf: Vec<u8>,
    last_cr: bool,
}

impl LineSplitter {
    /// Feed bytes; complete lines are appended to `out`.
    pub(crate) fn push(&mut self, bytes: &[u8], out: &mut Vec<String>) {
        for &b in bytes {
            match b {
                b'\n' if self.last_cr => {
                    self.last_cr = false;
                }
                b'\n' | b'\r' => {
                    out.push(String::from_utf8_lossy(&self.buf).into_owned());
                    self.buf.clear();
                    self.last_cr = b == b'\r';
                }
                _ => {
                    self.last_cr = false;
                    self.buf.push(b);
                }
            }
        }
    }

    /// The unterminated rest, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        if self.buf.is_empty() {
            None
        } else {
            let s = String::from_utf8_lossy(&self.buf).into_owned();
            self.buf.clear();
            Some(s)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_all_line_endings() {
        let mut s = LineSplitter::default();
        let mut out = Vec::new();
        s.push(b"a\r\nb\rc\nd", &mut out);
        s.push(b"e\r", &mut out);
        s.push(b"\nf", &mut out);
        assert_eq!(out, ["a", "b", "c", "de"]);
        assert_eq!(s.finish().as_deref(), Some("f"));
        assert_eq!(s.finish(), None);
    }
}
