//! `fly deploy --remote-only`, blocking ([`deploy`]) or streamed line by line ([`stream_deploy`]).
//!
//! Both run the child in its own process group. [`stream_deploy`] has an activity
//! timer (default 5 min, reset by any output on stdout or stderr) and an absolute
//! cap (default 30 min); [`deploy`] has only the cap (default 15 min). When a timer
//! fires, the whole process group is stopped (`SIGTERM`, then `SIGKILL`) and the
//! outcome names the timer. Line contents never go into telemetry; only counts and
//! the result do.

use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures::Stream;
use serde::Serialize;
use tokio::io::AsyncReadExt;
use tokio::sync::{mpsc, oneshot};

use super::apps::{read_app, require_app_name, FLY_TOML};
use super::flyctl::{Flyctl, LineSplitter};
use crate::error::{Error, ErrorKind, Result};

/// Default absolute cap of the blocking [`deploy`].
pub const DEFAULT_DEPLOY_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// Default activity timer of [`stream_deploy`].
pub const DEFAULT_ACTIVITY_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// Default absolute cap of [`stream_deploy`].
pub const DEFAULT_STREAM_TIMEOUT: Duration = Duration::from_secs(30 * 60);
/// After the deploy process exits, how long to keep reading output that its
/// leftover children still write before stopping them.
pub const DRAIN_AFTER_EXIT: Duration = Duration::from_secs(2);

const LINE_BUFFER: usize = 1024;

/// Knobs for a deploy.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeployOptions {
    /// How to run `fly`.
    pub flyctl: Flyctl,
    /// Stop when no output came for this long ([`stream_deploy`] only).
    pub activity_timeout: Duration,
    /// Stop after this long whatever happens ([`stream_deploy`]).
    pub stream_timeout: Duration,
    /// Stop after this long whatever happens ([`deploy`]).
    pub deploy_timeout: Duration,
    /// Extra arguments after `fly deploy --remote-only --app <app>`.
    pub extra_args: Vec<String>,
}

impl Default for DeployOptions {
    fn default() -> DeployOptions {
        DeployOptions {
            flyctl: Flyctl::default(),
            activity_timeout: DEFAULT_ACTIVITY_TIMEOUT,
            stream_timeout: DEFAULT_STREAM_TIMEOUT,
            deploy_timeout: DEFAULT_DEPLOY_TIMEOUT,
            extra_args: Vec::new(),
        }
    }
}

impl DeployOptions {
    /// Use this `fly`.
    pub fn with_flyctl(mut self, flyctl: Flyctl) -> DeployOptions {
        self.flyctl = flyctl;
        self
    }
    /// Set the activity timer of [`stream_deploy`].
    pub fn with_activity_timeout(mut self, d: Duration) -> DeployOptions {
        self.activity_timeout = d;
        self
    }
    /// Set the absolute cap of [`stream_deploy`].
    pub fn with_stream_timeout(mut self, d: Duration) -> DeployOptions {
        self.stream_timeout = d;
        self
    }
    /// Set the absolute cap of [`deploy`].
    pub fn with_deploy_timeout(mut self, d: Duration) -> DeployOptions {
        self.deploy_timeout = d;
        self
    }
    /// Append extra `fly deploy` arguments.
    pub fn with_extra_args(mut self, args: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.extra_args.extend(args.into_iter().map(Into::into));
        self
    }
}

/// Which deploy timer fired.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DeployTimer {
    /// No output for the activity timeout.
    Activity,
    /// The absolute cap passed.
    Absolute,
}

/// How a deploy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "result")]
pub enum DeployStatus {
    /// `fly deploy` exited with status 0.
    Succeeded,
    /// `fly deploy` exited non-zero (`code` is `None` when a signal ended it).
    Failed {
        /// Exit code.
        code: Option<i32>,
    },
    /// A timer fired and the process group was killed.
    TimedOut {
        /// Which timer.
        timer: DeployTimer,
        /// The timer's length.
        #[serde(with = "humantime_serde_compat")]
        after: Duration,
    },
}

mod humantime_serde_compat {
    use std::time::Duration;
    pub(super) fn serialize<S: serde::Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&humantime::format_duration(*d).to_string())
    }
}

impl DeployStatus {
    /// Whether the deploy succeeded.
    pub fn is_success(&self) -> bool {
        matches!(self, DeployStatus::Succeeded)
    }

    /// A process exit code for this status: the deploy's own code, `124` for a
    /// timeout (as `timeout(1)`), `1` for a failure without a code.
    pub fn exit_code(&self) -> i32 {
        match self {
            DeployStatus::Succeeded => 0,
            DeployStatus::Failed { code } => code.filter(|c| *c != 0).unwrap_or(1),
            DeployStatus::TimedOut { .. } => 124,
        }
    }

    /// A stable lower-case name (`succeeded`, `failed`, `timed_out_activity`, `timed_out_absolute`).
    pub fn as_str(&self) -> &'static str {
        match self {
            DeployStatus::Succeeded => "succeeded",
            DeployStatus::Failed { .. } => "failed",
            DeployStatus::TimedOut {
                timer: DeployTimer::Activity,
                ..
            } => "timed_out_activity",
            DeployStatus::TimedOut {
                timer: DeployTimer::Absolute,
                ..
            } => "timed_out_absolute",
        }
    }
}

impl std::fmt::Display for DeployStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeployStatus::Succeeded => f.write_str("deploy succeeded"),
            DeployStatus::Failed { code: Some(c) } => write!(f, "deploy failed (exit code {c})"),
            DeployStatus::Failed { code: None } => {
                f.write_str("deploy failed (killed by a signal)")
            }
            DeployStatus::TimedOut {
                timer: DeployTimer::Activity,
                after,
            } => write!(
                f,
                "deploy stopped: no output for {}",
                humantime::format_duration(*after)
            ),
            DeployStatus::TimedOut {
                timer: DeployTimer::Absolute,
                after,
            } => write!(
                f,
                "deploy stopped: still running after {}",
                humantime::format_duration(*after)
            ),
        }
    }
}

/// The end of a deploy: its status and how many lines it wrote.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployOutcome {
    /// The app deployed.
    pub app: String,
    /// How it ended.
    pub status: DeployStatus,
    /// Output lines (stdout and stderr).
    pub lines: u64,
}

/// The result of the blocking [`deploy`]: outcome plus the whole output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeployReport {
    /// How it ended.
    pub outcome: DeployOutcome,
    /// stdout and stderr interleaved in the order they were read, one line each
    /// (exact within each stream; see [`DeployLine`]).
    pub output: String,
}

/// Which stream a line came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputStream {
    /// Standard output.
    Stdout,
    /// Standard error.
    Stderr,
}

/// One line of deploy output.
///
/// Lines of one stream arrive in the order `fly` wrote them. Between stdout and
/// stderr the order is the order they were read: two pipes carry no order between
/// them, so lines written to both within one scheduling tick may come either way round.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DeployLine {
    /// Where it came from.
    pub stream: OutputStream,
    /// The text, without the line ending.
    pub text: String,
}

/// Lines of a running deploy, then its outcome.
///
/// A [`Stream`] of [`DeployLine`]s; after the last line, [`DeployStream::outcome`]
/// gives the result. Dropping it stops the deploy (its process group is killed).
#[derive(Debug)]
pub struct DeployStream {
    app: String,
    lines: mpsc::Receiver<DeployLine>,
    outcome: Option<oneshot::Receiver<Result<DeployOutcome>>>,
}

impl DeployStream {
    /// The app being deployed.
    pub fn app(&self) -> &str {
        &self.app
    }

    /// The next line, or `None` once the deploy has ended and all lines were read.
    pub async fn next_line(&mut self) -> Option<DeployLine> {
        self.lines.recv().await
    }

    /// Wait for the end (unread lines are discarded) and return the outcome.
    ///
    /// # Errors
    /// `Unknown` when the deploy task failed to wait for its process.
    pub async fn outcome(mut self) -> Result<DeployOutcome> {
        while self.lines.recv().await.is_some() {}
        match self.outcome.take() {
            Some(rx) => rx.await.unwrap_or_else(|_| {
                Err(Error::new(
                    ErrorKind::Unknown,
                    "the deploy task ended without a result",
                ))
            }),
            None => Err(Error::new(ErrorKind::Unknown, "outcome already taken")),
        }
    }
}

impl DeployStream {
    /// Stop the deploy now (e.g. on Ctrl-C): its process group is stopped (`SIGTERM`,
    /// then `SIGKILL` after the grace period) and this waits until that is done.
    /// Unread lines are discarded. The outcome is a failure without an exit code,
    /// unless the deploy had already ended on its own.
    ///
    /// # Errors
    /// As [`outcome`](Self::outcome).
    pub async fn cancel(mut self) -> Result<DeployOutcome> {
        self.lines.close();
        self.outcome().await
    }
}

impl Stream for DeployStream {
    type Item = DeployLine;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<DeployLine>> {
        self.lines.poll_recv(cx)
    }
}

/// The app to deploy: `app` if given (validated), else the `app` of `dir/fly.toml`.
///
/// # Errors
/// `Validation` naming `app` when it is invalid or cannot be found.
pub fn resolve_app(dir: &Path, app: Option<&str>) -> Result<String> {
    if let Some(a) = app {
        require_app_name("app", a)?;
        return Ok(a.to_string());
    }
    let file = dir.join(FLY_TOML);
    read_app(&file).map_err(|why| {
        Error::validation(
            "app",
            format!(
                "none given and {} gives none ({why}); pass --app",
                file.display()
            ),
        )
    })
}

/// Run `fly deploy --remote-only --app <app>` in `dir` and wait for it (cap:
/// [`DeployOptions::deploy_timeout`], 15 min by default).
///
/// A failed or timed-out deploy is an `Ok` report whose [`DeployStatus`] says so;
/// the output is complete either way.
///
/// # Errors
/// `Validation` for a bad folder or app, `NotFound` naming the binary when `fly` is missing.
///
/// # Cost
/// Deploys the app on Fly.io: may start billed Machines.
pub async fn deploy(dir: &Path, app: Option<&str>, opts: &DeployOptions) -> Result<DeployReport> {
    let mut o = opts.clone();
    o.stream_timeout = opts.deploy_timeout;
    // The blocking form has no activity timer: only the cap.
    o.activity_timeout = opts.deploy_timeout.saturating_add(Duration::from_secs(1));
    let mut stream = stream_deploy(dir, app, &o).await?;
    let mut output = String::new();
    while let Some(line) = stream.next_line().await {
        output.push_str(&line.text);
        output.push('\n');
    }
    let outcome = stream.outcome().await?;
    Ok(DeployReport { outcome, output })
}

/// Start `fly deploy --remote-only --app <app>` in `dir` and stream its output.
///
/// # Errors
/// `Validation` for a bad folder or app, `NotFound` naming the binary when `fly` is missing.
///
/// # Cost
/// Deploys the app on Fly.io: may start billed Machines.
pub async fn stream_deploy(
    dir: &Path,
    app: Option<&str>,
    opts: &DeployOptions,
) -> Result<DeployStream> {
    if !dir.is_dir() {
        return Err(Error::validation(
            "path",
            format!("{} is not a folder", dir.display()),
        ));
    }
    let app = resolve_app(dir, app)?;
    let mut args: Vec<String> = vec![
        "deploy".into(),
        "--remote-only".into(),
        "--app".into(),
        app.clone(),
    ];
    args.extend(opts.extra_args.iter().cloned());
    let mut cmd = opts.flyctl.command(&args);
    cmd.current_dir(dir);
    let child = opts.flyctl.spawn(&mut cmd)?;
    let (line_tx, line_rx) = mpsc::channel(LINE_BUFFER);
    let (out_tx, out_rx) = oneshot::channel();
    let runner = Runner {
        app: app.clone(),
        dir: dir.to_path_buf(),
        flyctl: opts.flyctl.clone(),
        activity: opts.activity_timeout,
        absolute: opts.stream_timeout,
    };
    tokio::spawn(async move {
        let res = runner.run(child, line_tx).await;
        let _ = out_tx.send(res);
    });
    Ok(DeployStream {
        app,
        lines: line_rx,
        outcome: Some(out_rx),
    })
}

struct Runner {
    app: String,
    dir: PathBuf,
    flyctl: Flyctl,
    activity: Duration,
    absolute: Duration,
}

enum Ended {
    Exited(std::process::ExitStatus),
    Timer(DeployTimer),
    Abandoned,
}

impl Runner {
    async fn run(
        self,
        mut child: tokio::process::Child,
        tx: mpsc::Sender<DeployLine>,
    ) -> Result<DeployOutcome> {
        let span = tracing::info_span!(
            "atlas.fly.deploy",
            fly.app = %self.app,
            fly.deploy.lines = tracing::field::Empty,
            fly.deploy.result = tracing::field::Empty,
        );
        let started = Instant::now();
        let pgid = child.id();
        let mut stdout = child.stdout.take();
        let mut stderr = child.stderr.take();
        let mut split_out = LineSplitter::default();
        let mut split_err = LineSplitter::default();
        let mut buf_out = vec![0u8; 8192];
        let mut buf_err = vec![0u8; 8192];
        let mut lines: u64 = 0;
        let absolute_at = crate::spec::deadline_in(self.absolute);
        let mut activity_at = crate::spec::deadline_in(self.activity);
        let mut exited: Option<std::process::ExitStatus> = None;
        let mut pending: Vec<String> = Vec::new();
        let ended = loop {
            if stdout.is_none() && stderr.is_none() {
                if let Some(st) = exited {
                    break Ended::Exited(st);
                }
            }
            let drain_deadline =
                exited.map(|_| activity_at.min(tokio::time::Instant::now() + DRAIN_AFTER_EXIT));
            tokio::select! {
                n = read_opt(&mut stdout, &mut buf_out) => {
                    match n {
                        Some(n) if n > 0 => {
                            activity_at = crate::spec::deadline_in(self.activity);
                            split_out.push(&buf_out[..n], &mut pending);
                            if !send_lines(&tx, OutputStream::Stdout, &mut pending, &mut lines).await {
                                break Ended::Abandoned;
                            }
                        }
                        _ => {
                            stdout = None;
                            if let Some(l) = split_out.finish() {
                                pending.push(l);
                                if !send_lines(&tx, OutputStream::Stdout, &mut pending, &mut lines).await {
                                    break Ended::Abandoned;
                                }
                            }
                        }
                    }
                }
                n = read_opt(&mut stderr, &mut buf_err) => {
                    match n {
                        Some(n) if n > 0 => {
                            activity_at = crate::spec::deadline_in(self.activity);
                            split_err.push(&buf_err[..n], &mut pending);
                            if !send_lines(&tx, OutputStream::Stderr, &mut pending, &mut lines).await {
                                break Ended::Abandoned;
                            }
                        }
                        _ => {
                            stderr = None;
                            if let Some(l) = split_err.finish() {
                                pending.push(l);
                                if !send_lines(&tx, OutputStream::Stderr, &mut pending, &mut lines).await {
                                    break Ended::Abandoned;
                                }
                            }
                        }
                    }
                }
                st = child.wait(), if exited.is_none() => {
                    match st {
                        Ok(st) => exited = Some(st),
                        Err(e) => {
                            self.flyctl.kill_tree(&mut child, pgid).await;
                            return Err(Error::new(ErrorKind::Unknown, "could not wait for `fly deploy`").with_source(e));
                        }
                    }
                }
                _ = tokio::time::sleep_until(activity_at), if exited.is_none() => break Ended::Timer(DeployTimer::Activity),
                _ = tokio::time::sleep_until(absolute_at), if exited.is_none() => break Ended::Timer(DeployTimer::Absolute),
                _ = sleep_opt(drain_deadline) => {
                    // The deploy exited but something it started still holds the pipes.
                    if let Some(st) = exited { break Ended::Exited(st); }
                }
                _ = tx.closed() => break Ended::Abandoned,
            }
        };
        // Nothing of the group may outlive the deploy.
        let status = match ended {
            Ended::Exited(st) => {
                if stdout.is_some() || stderr.is_some() {
                    // Leftover children still hold the output open.
                    self.flyctl.kill_tree(&mut child, pgid).await;
                }
                if st.success() {
                    DeployStatus::Succeeded
                } else {
                    DeployStatus::Failed { code: st.code() }
                }
            }
            Ended::Timer(timer) => {
                self.flyctl.kill_tree(&mut child, pgid).await;
                let after = match timer {
                    DeployTimer::Activity => self.activity,
                    DeployTimer::Absolute => self.absolute,
                };
                let status = DeployStatus::TimedOut { timer, after };
                let note = format!("atlas: {status}; the fly process group was killed");
                let _ = tx
                    .send(DeployLine {
                        stream: OutputStream::Stderr,
                        text: note,
                    })
                    .await;
                lines += 1;
                status
            }
            Ended::Abandoned => {
                self.flyctl.kill_tree(&mut child, pgid).await;
                DeployStatus::Failed { code: None }
            }
        };
        span.record("fly.deploy.lines", lines);
        span.record("fly.deploy.result", status.as_str());
        super::telemetry::deploy_finished(&status, lines, started.elapsed());
        tracing::info!(parent: &span, dir = %self.dir.display(), result = status.as_str(), lines, "fly deploy ended");
        Ok(DeployOutcome {
            app: self.app,
            status,
            lines,
        })
    }
}

async fn send_lines(
    tx: &mpsc::Sender<DeployLine>,
    stream: OutputStream,
    pending: &mut Vec<String>,
    count: &mut u64,
) -> bool {
    let n = pending.len() as u64;
    for text in pending.drain(..) {
        if tx.send(DeployLine { stream, text }).await.is_err() {
            return false;
        }
        *count += 1;
    }
    super::telemetry::deploy_lines(n);
    true
}

async fn read_opt<R: tokio::io::AsyncRead + Unpin>(
    r: &mut Option<R>,
    buf: &mut [u8],
) -> Option<usize> {
    match r {
        Some(r) => r.read(buf).await.ok(),
        None => std::future::pending().await,
    }
}

async fn sleep_opt(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}
