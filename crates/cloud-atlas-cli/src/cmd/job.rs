//! `atlas job …`: serverless jobs. A job id means nothing without its endpoint, so every
//! command that takes an id requires `--endpoint` (a usage error otherwise, exit 2).

use std::time::Duration;

use clap::{Args, Subcommand};
use cloud_atlas::files;
use cloud_atlas::spec::EndpointHealth;
use cloud_atlas::{Error, ErrorKind, Job, JobRequest, JobStatus, Provider, Result};
use comfy_table::Cell;
use futures::StreamExt;
use serde::Serialize;

use crate::context::Context;
use crate::output::{or_dash, to_json, Format, Out};

/// `atlas job` subcommands.
#[derive(Debug, Subcommand)]
pub(crate) enum JobCommand {
    /// Queue a job (or run it and wait with --sync)
    Run(RunArgs),
    /// Show a job's state and output
    Status(JobIdArgs),
    /// Cancel a job
    Cancel(JobIdArgs),
    /// Print a job's partial outputs as they arrive, until it ends
    Stream(JobIdArgs),
    /// Retry a failed or timed-out job
    Retry(JobIdArgs),
    /// Drop every queued (not yet running) job of an endpoint
    Purge(EndpointArg),
    /// Worker and job counts of an endpoint
    Health(EndpointArg),
}

/// The endpoint jobs belong to.
#[derive(Debug, Args)]
pub(crate) struct EndpointArg {
    /// Serverless endpoint id (the mock's is mock-echo)
    #[arg(long, short = 'e', value_name = "ENDPOINT")]
    endpoint: String,
}

/// One job of one endpoint.
#[derive(Debug, Args)]
pub(crate) struct JobIdArgs {
    #[command(flatten)]
    endpoint: EndpointArg,
    /// Job id (as printed by `job run`)
    id: String,
}

/// Arguments of `atlas job run`.
#[derive(Debug, Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    endpoint: EndpointArg,
    /// The handler's input: JSON, or @FILE to read it from a file (@- for stdin)
    #[arg(long, value_name = "JSON|@FILE")]
    input: String,
    /// Wait for the result
    #[arg(long)]
    sync: bool,
    /// How long --sync waits, 1s to 7d, e.g. 60s (the job keeps running after that)
    #[arg(
        long,
        value_name = "DURATION",
        default_value = "60s",
        requires = "sync",
        value_parser = crate::flags::wait,
        allow_hyphen_values = true
    )]
    timeout: Duration,
    /// URL the provider calls when the job finishes
    #[arg(long, value_name = "URL")]
    webhook: Option<String>,
}

/// JSON shape of `job purge`.
#[derive(Debug, Serialize)]
struct Purged<'a> {
    endpoint_id: &'a str,
    purged: u64,
}

impl EndpointArg {
    /// The endpoint id, checked before any provider is built so bad input fails offline.
    fn checked(&self) -> Result<&str> {
        cloud_atlas::spec::validate_endpoint(&self.endpoint)?;
        Ok(&self.endpoint)
    }
}

/// Run a `job` subcommand.
pub(crate) async fn run(ctx: &Context, command: JobCommand) -> Result<()> {
    let out = &ctx.out;
    match command {
        JobCommand::Run(a) => {
            let req = request(&a)?;
            let timeout = a.timeout;
            let p = ctx.provider()?;
            let s = p.require_serverless()?;
            if a.sync {
                let job = s.run_sync(&req, timeout).await?;
                out.one(&job, job_table)?;
                unsuccessful(&job).map_err(|e| e.with_provider(p.name().to_string()))
            } else {
                out.one(&s.run(&req).await?, job_table)
            }
        }
        JobCommand::Status(a) => {
            let e = a.endpoint.checked()?;
            let p = ctx.provider()?;
            out.one(&p.require_serverless()?.status(e, &a.id).await?, job_table)
        }
        JobCommand::Cancel(a) => {
            let e = a.endpoint.checked()?;
            let p = ctx.provider()?;
            out.one(&p.require_serverless()?.cancel(e, &a.id).await?, job_table)
        }
        JobCommand::Retry(a) => {
            let e = a.endpoint.checked()?;
            let p = ctx.provider()?;
            out.one(&p.require_serverless()?.retry(e, &a.id).await?, job_table)
        }
        JobCommand::Stream(a) => {
            let e = a.endpoint.checked()?;
            let p = ctx.provider()?;
            stream(out, p.require_serverless()?, e, &a.id).await
        }
        JobCommand::Purge(a) => {
            let e = a.checked()?;
            let p = ctx.provider()?;
            let n = p.require_serverless()?.purge_queue(e).await?;
            let r = Purged {
                endpoint_id: e,
                purged: n,
            };
            out.one(&r, |_, r| {
                format!("purged {} queued job(s) from {}", r.purged, r.endpoint_id)
            })
        }
        JobCommand::Health(a) => {
            let e = a.checked()?;
            let p = ctx.provider()?;
            out.one(&p.require_serverless()?.health(e).await?, health_table)
        }
    }
}

fn request(a: &RunArgs) -> Result<JobRequest> {
    let input = parse_input(&a.input)?;
    let mut req = JobRequest::new(a.endpoint.endpoint.clone(), input)?;
    if let Some(w) = &a.webhook {
        if !(w.starts_with("https://") || w.starts_with("http://")) {
            return Err(Error::validation(
                "webhook",
                format!("{w:?} is not allowed; use an http:// or https:// URL"),
            ));
        }
        req = req.with_webhook(w.clone());
    }
    Ok(req)
}

/// `--input`: inline JSON, `@file` or `@-` (stdin).
fn parse_input(arg: &str) -> Result<serde_json::Value> {
    let (text, from) = match arg.strip_prefix('@') {
        Some("-") => {
            let b = files::read_limited(std::io::stdin().lock(), files::MAX_DOCUMENT_BYTES)
                .and_then(|b| {
                    String::from_utf8(b).map_err(|_| {
                        std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8")
                    })
                })
                .map_err(|e| Error::validation("input", format!("cannot read stdin: {e}")))?;
            (b, "stdin".to_string())
        }
        Some(path) => {
            let s = files::read_file_to_string(path.as_ref(), files::MAX_DOCUMENT_BYTES)
                .map_err(|e| Error::validation("input", format!("cannot read {path}: {e}")))?;
            (s, path.to_string())
        }
        None => (arg.to_string(), "the argument".to_string()),
    };
    serde_json::from_str(&text).map_err(|e| {
        Error::validation(
            "input",
            format!("{from} is not JSON ({e}); pass a JSON value like '{{\"prompt\":\"hi\"}}' or @file.json"),
        )
    })
}

/// A job that ran to an unsuccessful end is an error (after it was printed).
fn unsuccessful(job: &Job) -> Result<()> {
    let kind = match job.status {
        JobStatus::Failed => ErrorKind::Provider,
        JobStatus::TimedOut => ErrorKind::Timeout,
        JobStatus::Cancelled => ErrorKind::Unknown,
        _ => return Ok(()),
    };
    Err(Error::new(
        kind,
        format!(
            "job {} on {} {}: {}",
            job.id,
            job.endpoint_id,
            job.status,
            job.error.as_deref().unwrap_or("no message")
        ),
    ))
}

async fn stream(
    out: &Out,
    s: &dyn cloud_atlas::Serverless,
    endpoint: &str,
    id: &str,
) -> Result<()> {
    let mut chunks = s.stream(endpoint, id).await?;
    let mut collected = Vec::new();
    let mut failure = None;
    while let Some(item) = chunks.next().await {
        match item {
            Ok(chunk) => match out.format() {
                // json collects one array; the others print each chunk as it arrives.
                Format::Json => collected.push(chunk),
                Format::Jsonl | Format::Table => out.text(&to_json(&chunk, false)?)?,
            },
            Err(e) => {
                failure = Some(e);
                break;
            }
        }
    }
    if out.format() == Format::Json {
        out.text(&to_json(&collected, true)?)?;
    }
    failure.map_or(Ok(()), Err)
}

fn ms(v: Option<u64>) -> String {
    or_dash(v.map(|m| humantime::format_duration(Duration::from_millis(m))))
}

fn job_table(out: &Out, j: &Job) -> String {
    let output = j
        .output
        .as_ref()
        .map(|o| serde_json::to_string_pretty(o).unwrap_or_default());
    out.kv_table(vec![
        ("id", Cell::new(&j.id)),
        ("endpoint", Cell::new(&j.endpoint_id)),
        ("status", out.status_cell(j.status.as_str())),
        ("queued", Cell::new(ms(j.delay_time_ms))),
        ("ran", Cell::new(ms(j.execution_time_ms))),
        ("error", Cell::new(or_dash(j.error.as_deref()))),
        ("output", Cell::new(or_dash(output))),
    ])
    .to_string()
}

fn health_table(out: &Out, h: &EndpointHealth) -> String {
    let mut t = out.table(&["", "STATE", "COUNT"]);
    for (group, map) in [("jobs", &h.jobs), ("workers", &h.workers)] {
        for (k, v) in map {
            t.add_row(vec![
                Cell::new(group),
                Cell::new(k),
                Cell::new(v.to_string()),
            ]);
        }
    }
    t.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_is_json_or_a_file() {
        assert_eq!(parse_input("{\"a\":1}").unwrap()["a"], 1);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("in.json");
        std::fs::write(&p, "[1,2]").unwrap();
        assert_eq!(
            parse_input(&format!("@{}", p.display())).unwrap(),
            serde_json::json!([1, 2])
        );
        let e = parse_input("not json").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().starts_with("input"), "{e}");
        let e = parse_input("@/nonexistent/in.json").unwrap_err();
        assert!(e.message().contains("cannot read"), "{e}");
    }

    #[test]
    fn failed_jobs_are_errors_after_printing() {
        let mut j = Job::new("j", "e", JobStatus::Failed);
        j.error = Some("boom".into());
        let e = unsuccessful(&j).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Provider);
        assert!(e.message().contains("boom"));
        assert!(unsuccessful(&Job::new("j", "e", JobStatus::Completed)).is_ok());
    }
}
