//! `atlas logs ID [--follow] [--tail N] [--source container|system]`: a compute's logs.
//!
//! Without `--follow` it is a bounded read of the last lines (it returns after `--tail`
//! lines, or when the provider sends nothing for a moment). With `--follow` new lines are
//! printed as they come until Ctrl-C (exit 0) or until stdout's reader goes away.
//! RunPod reads the pod-logs API; the mock cloud reads its machine's output file (what
//! the command it runs on this host wrote; `--follow` ends when that command ends).
//! Providers without logs (Lambda, Vast.ai, Fly.io: see `atlas fly logs`) answer
//! `Unsupported`, exit 7.

use std::io::Write;

use clap::{Args, ValueEnum};
use cloud_atlas::providers::mock::{self, Mock};
use cloud_atlas::providers::runpod::{LogFollow, LogLine, LogQuery, LogSource};
use cloud_atlas::{providers, Error, ErrorKind, Result};
use futures::StreamExt;

use crate::cmd::runpod;
use crate::context::{display_name, Context};
use crate::output::{to_json, Format};

/// Most lines of history a provider sends.
const MAX_TAIL: u32 = 5000;

/// Arguments of `atlas logs`.
#[derive(Debug, Args)]
pub(crate) struct LogsArgs {
    /// Compute id (as printed by spawn and ls)
    id: String,
    /// Keep printing new lines until Ctrl-C
    #[arg(long, short = 'f')]
    follow: bool,
    /// Lines of history to print first (0-5000) [default: 100]
    #[arg(long, value_name = "N")]
    tail: Option<u32>,
    /// Only the container's output or the host's lifecycle lines [default: both]
    #[arg(long, value_enum)]
    source: Option<Source>,
}

/// `--source`.
#[derive(Debug, Clone, Copy, ValueEnum)]
enum Source {
    /// The container's stdout and stderr
    Container,
    /// The host's lifecycle lines
    System,
}

impl LogsArgs {
    /// The query, checked before anything is sent.
    fn query(&self, format: Format) -> Result<LogQuery> {
        if self.follow && format == Format::Json {
            return Err(Error::validation(
                "output",
                "json prints one document, and --follow never ends; use -o jsonl (one line per log line) or -o table",
            ));
        }
        let tail = self.tail.unwrap_or(100);
        if tail > MAX_TAIL {
            return Err(Error::validation(
                "tail",
                format!("{tail} is out of range; allowed: 0-{MAX_TAIL}"),
            ));
        }
        let mut q = LogQuery::tail(tail);
        if let Some(s) = self.source {
            q = q.with_source(match s {
                Source::Container => LogSource::Container,
                Source::System => LogSource::System,
            });
        }
        Ok(q)
    }
}

/// `atlas logs`.
pub(crate) async fn run(ctx: &Context, args: LogsArgs) -> Result<()> {
    let query = args.query(ctx.out.format())?;
    if ctx.provider == "mock" {
        return mock_logs(ctx, &args, &query).await;
    }
    if ctx.provider != runpod::NAME {
        if !providers::known().contains(&ctx.provider.as_str()) {
            // An unknown name: the registry's Validation error lists the known ones.
            ctx.provider()?;
        }
        return Err(Error::unsupported(
            &ctx.provider,
            "logs",
            format!(
                "cloud-atlas reads no log API of {}; `atlas logs` works with --provider runpod and --provider mock",
                display_name(&ctx.provider)
            ),
        ));
    }
    let logs = runpod::client(ctx)?.logs();
    if args.follow {
        follow(logs.follow(&args.id, query).await?, ctx.out.format()).await
    } else {
        let lines = logs
            .recent_with(&args.id, &query, Default::default())
            .await?;
        ctx.out.many(&lines, |_, lines| {
            lines.iter().map(text).collect::<Vec<_>>().join("\n")
        })
    }
}

/// `atlas logs` on the mock cloud: its machine's output file.
async fn mock_logs(ctx: &Context, args: &LogsArgs, query: &LogQuery) -> Result<()> {
    let cloud = Mock::from_config(&ctx.config, &ctx.settings("mock"))?;
    // The mock has container output only: no system lines.
    let system_only = query.source == Some(LogSource::System);
    let format = ctx.out.format();
    if args.follow {
        if system_only {
            return Ok(());
        }
        let mut lines = cloud.follow_logs(&args.id)?;
        let ctrl_c = tokio::signal::ctrl_c();
        tokio::pin!(ctrl_c);
        loop {
            tokio::select! {
                biased;
                _ = &mut ctrl_c => return Ok(()),
                item = lines.next() => match item {
                    Some(Ok(l)) => {
                        let s = match format {
                            Format::Table => mock_text(&l),
                            Format::Json | Format::Jsonl => to_json(&l, false)?,
                        };
                        if !print_line(&s)? {
                            return Ok(());
                        }
                    }
                    Some(Err(e)) => return Err(e),
                    None => return Ok(()),
                }
            }
        }
    }
    let tail = query.tail.unwrap_or(100) as usize;
    let lines = if system_only {
        // Still says NotFound for a machine that is gone.
        cloud.process(&args.id)?;
        Vec::new()
    } else {
        cloud.logs(&args.id, tail)?
    };
    ctx.out.many(&lines, |_, lines| {
        lines.iter().map(mock_text).collect::<Vec<_>>().join("\n")
    })
}

/// A mock line for people: the text as the command wrote it.
fn mock_text(l: &mock::LogLine) -> String {
    l.line.clone()
}

/// Print lines as they come until Ctrl-C, the end of the stream, or a closed stdout.
async fn follow(mut lines: LogFollow, format: Format) -> Result<()> {
    let stopper = lines.stopper();
    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let mut watching = true;
    loop {
        tokio::select! {
            // Polled first, so the handler is in place before the first line is printed.
            biased;
            r = &mut ctrl_c, if watching => match r {
                // Stop at once, even while a reconnect is waiting: dropping the stream
                // cancels whatever it was doing.
                Ok(()) => {
                    stopper.stop();
                    return Ok(());
                }
                Err(e) => {
                    watching = false;
                    tracing::debug!(error = %e, "no Ctrl-C handler; Ctrl-C ends the process");
                }
            },
            item = lines.next() => match item {
                Some(Ok(line)) => {
                    let s = match format {
                        Format::Table => text(&line),
                        Format::Json | Format::Jsonl => to_json(&line, false)?,
                    };
                    if !print_line(&s)? {
                        return Ok(());
                    }
                }
                Some(Err(e)) => return Err(e),
                None => return Ok(()),
            }
        }
    }
}

/// Write one line; `Ok(false)` when stdout's reader has gone (`atlas logs -f | head`).
fn print_line(s: &str) -> Result<bool> {
    let mut out = std::io::stdout().lock();
    match writeln!(out, "{s}").and_then(|()| out.flush()) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(false),
        Err(e) => Err(Error::new(ErrorKind::Unknown, "cannot write to stdout").with_source(e)),
    }
}

/// `2026-06-01T12:00:00Z container | Model loaded.`
fn text(l: &LogLine) -> String {
    match (&l.ts, &l.source) {
        (Some(ts), Some(src)) => format!("{ts} {src:<9} | {}", l.line),
        (Some(ts), None) => format!("{ts} | {}", l.line),
        (None, Some(src)) => format!("{src:<9} | {}", l.line),
        (None, None) => l.line.clone(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(follow: bool, tail: Option<u32>) -> LogsArgs {
        LogsArgs {
            id: "p".into(),
            follow,
            tail,
            source: Some(Source::System),
        }
    }

    #[test]
    fn bad_flags_are_refused_before_anything_is_sent() {
        let e = args(false, Some(5001)).query(Format::Table).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().starts_with("tail") && e.message().contains("0-5000"));
        let e = args(true, None).query(Format::Json).unwrap_err();
        assert!(e.message().starts_with("output") && e.message().contains("jsonl"));
        let q = args(true, Some(0)).query(Format::Jsonl).unwrap();
        assert_eq!(q.tail, Some(0));
        assert_eq!(q.source, Some(LogSource::System));
        assert_eq!(
            args(false, None).query(Format::Json).unwrap().tail,
            Some(100)
        );
    }

    #[test]
    fn a_line_reads_time_source_text() {
        let l: LogLine = serde_json::from_value(serde_json::json!({
            "id": "1/1", "ts": "2026-06-01T12:00:00Z", "source": "container", "line": "Model loaded."
        }))
        .unwrap();
        assert_eq!(text(&l), "2026-06-01T12:00:00Z container | Model loaded.");
        let bare: LogLine = serde_json::from_value(
            serde_json::json!({"id": "", "ts": null, "source": null, "line": "x"}),
        )
        .unwrap();
        assert_eq!(text(&bare), "x");
    }
}
