//! The serverless runtime API (`https://api.runpod.ai/v2/{endpoint_id}/…`): queue jobs,
//! wait for them, stream their output, cancel, retry, purge, health.
//!
//! The runtime has no published OpenAPI document; calls follow RunPod's operation
//! reference (<https://docs.runpod.io/serverless/endpoints/operation-reference>). The
//! base URL is configurable (`ATLAS_RUNPOD_SERVERLESS_BASE_URL`, or
//! `serverless_base_url` under `[providers.runpod]`).
//!
//! - `run` and `run_sync` create jobs and are never replayed once sent (a duplicate job
//!   costs money); an ambiguous failure comes back marked [`Error::is_ambiguous`].
//! - `run_sync` sends RunPod's `wait` parameter (the timeout, clamped to 1-300 s) and
//!   never blocks the caller past its timeout: a job still queued or running when
//!   RunPod's wait ends is polled until the deadline, then `Timeout` naming the job id.
//! - `stream` polls `/stream/{job_id}` with jittered backoff until the job is terminal,
//!   yielding each chunk once (RunPod hands out each chunk on one poll only); a
//!   `FAILED`/`CANCELLED` job ends the stream with a `Provider` error, `TIMED_OUT` with a
//!   `Timeout` error, each carrying RunPod's message.
//! - Webhook, execution policy and other top-level fields (`s3Config`) pass through.

use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;
use rand::Rng;
use serde_json::{Map, Value};

use super::logs::enc;
use super::ratelimit::Rest;
use super::translate::{self, NAME};
use crate::error::{Error, ErrorKind, Result};
use crate::http::Idempotency;
use crate::provider::Serverless;
use crate::spec::{validate_endpoint, EndpointHealth, Job, JobRequest, JobStatus};

/// Default runtime base URL (`{base}/{endpoint_id}/run`).
pub const DEFAULT_SERVERLESS_BASE_URL: &str = "https://api.runpod.ai/v2";

/// How `stream` and `run_sync` poll.
#[derive(Debug, Clone, Copy)]
pub struct PollConfig {
    /// First pause between polls.
    pub initial: Duration,
    /// Longest pause between polls.
    pub max: Duration,
}

impl Default for PollConfig {
    fn default() -> PollConfig {
        PollConfig {
            initial: Duration::from_millis(250),
            max: Duration::from_secs(3),
        }
    }
}

impl PollConfig {
    fn next(&self, d: Duration) -> Duration {
        (d.mul_f64(1.5)).min(self.max).max(self.initial)
    }
    fn jittered(d: Duration) -> Duration {
        d.mul_f64(rand::rng().random_range(0.75..1.25))
    }
}

/// RunPod serverless jobs ([`Serverless`]).
#[derive(Debug, Clone)]
pub struct RunPodServerless {
    rest: Rest,
    poll: PollConfig,
}

fn check_job(endpoint_id: &str, job_id: &str) -> Result<()> {
    validate_endpoint(endpoint_id)?;
    if job_id.trim().is_empty() {
        return Err(Error::validation("job_id", "a job id is required"));
    }
    Ok(())
}

/// The `{"input", "webhook", "policy", …}` body of `run`/`runsync`.
pub fn job_body(req: &JobRequest) -> Value {
    let mut body = Map::new();
    for (k, v) in &req.provider_opts {
        body.insert(k.clone(), v.clone());
    }
    body.insert("input".into(), req.input.clone());
    if let Some(w) = &req.webhook {
        body.insert("webhook".into(), Value::String(w.clone()));
    }
    if let Some(p) = &req.policy {
        body.insert("policy".into(), p.clone());
    }
    Value::Object(body)
}

fn terminal_error(job_id: &str, status: &JobStatus, message: Option<String>) -> Error {
    let kind = if *status == JobStatus::TimedOut {
        ErrorKind::Timeout
    } else {
        ErrorKind::Provider
    };
    let msg = message.unwrap_or_else(|| "no message from RunPod".to_string());
    Error::new(kind, format!("job {job_id} {status}: {msg}"))
        .with_provider(NAME)
        .with_operation("stream")
}

impl RunPodServerless {
    pub(crate) fn new(rest: Rest, poll: PollConfig) -> RunPodServerless {
        RunPodServerless { rest, poll }
    }

    /// The base URL jobs are sent to.
    pub fn base_url(&self) -> &str {
        self.rest.api().base_url()
    }

    async fn job_call(&self, endpoint_id: &str, rq: crate::http::ApiRequest<'_>) -> Result<Job> {
        let v: Value = self.rest.json(rq).await?;
        Ok(translate::job(endpoint_id, &v))
    }

    async fn poll_until(
        &self,
        job: Job,
        deadline: tokio::time::Instant,
        timeout: Duration,
    ) -> Result<Job> {
        let mut job = job;
        let mut delay = self.poll.initial;
        loop {
            if job.status.is_terminal() {
                return Ok(job);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "job {} still {} after {}; check it later with `atlas job status --endpoint {} {}`",
                        job.id,
                        job.status,
                        humantime::format_duration(timeout),
                        job.endpoint_id,
                        job.id
                    ),
                )
                .with_provider(NAME)
                .with_operation("run_sync"));
            }
            tokio::time::sleep(PollConfig::jittered(delay).min(deadline - now)).await;
            delay = self.poll.next(delay);
            if tokio::time::Instant::now() >= deadline {
                continue;
            }
            let endpoint = job.endpoint_id.clone();
            let id = job.id.clone();
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match tokio::time::timeout(left, self.status(&endpoint, &id)).await {
                Ok(r) => job = r?,
                Err(_) => continue,
            }
        }
    }
}

#[async_trait]
impl Serverless for RunPodServerless {
    async fn run(&self, req: &JobRequest) -> Result<Job> {
        validate_endpoint(&req.endpoint_id)?;
        let rq = self
            .rest
            .api()
            .post(&format!("/{}/run", enc(&req.endpoint_id)))
            .body(job_body(req))
            .idempotency(Idempotency::Unsafe)
            .operation("run");
        self.job_call(&req.endpoint_id, rq).await
    }

    async fn run_sync(&self, req: &JobRequest, timeout: Duration) -> Result<Job> {
        validate_endpoint(&req.endpoint_id)?;
        if timeout.is_zero() {
            return Err(Error::validation("timeout", "must be greater than zero"));
        }
        let deadline = crate::spec::deadline_in(timeout);
        let wait_ms = timeout.as_millis().clamp(1_000, 300_000) as u64;
        let rq = self
            .rest
            .api()
            .post(&format!("/{}/runsync", enc(&req.endpoint_id)))
            .query("wait", wait_ms)
            .body(job_body(req))
            .idempotency(Idempotency::Unsafe)
            .timeout(timeout)
            .operation("run_sync");
        let first = match tokio::time::timeout(timeout, self.job_call(&req.endpoint_id, rq)).await {
            Ok(r) => r.map_err(|e| {
                if e.kind() == ErrorKind::Timeout {
                    let m = format!(
                        "no answer from runsync within {}; the job may still run on endpoint {} (RunPod did not return its id)",
                        humantime::format_duration(timeout),
                        req.endpoint_id
                    );
                    e.with_message(m)
                } else {
                    e
                }
            })?,
            Err(_) => {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "no answer from runsync within {}; the job may still run on endpoint {} (RunPod did not return its id)",
                        humantime::format_duration(timeout),
                        req.endpoint_id
                    ),
                )
                .with_provider(NAME)
                .with_operation("run_sync")
                .with_ambiguous())
            }
        };
        self.poll_until(first, deadline, timeout).await
    }

    async fn status(&self, endpoint_id: &str, job_id: &str) -> Result<Job> {
        check_job(endpoint_id, job_id)?;
        let rq = self
            .rest
            .api()
            .get(&format!("/{}/status/{}", enc(endpoint_id), enc(job_id)))
            .operation("status");
        self.job_call(endpoint_id, rq).await
    }

    async fn stream<'a>(
        &'a self,
        endpoint_id: &'a str,
        job_id: &'a str,
    ) -> Result<BoxStream<'a, Result<Value>>> {
        check_job(endpoint_id, job_id)?;
        struct St {
            pending: std::collections::VecDeque<Value>,
            delay: Duration,
            first: bool,
            done: bool,
        }
        let st = St {
            pending: Default::default(),
            delay: self.poll.initial,
            first: true,
            done: false,
        };
        let s = futures::stream::unfold(st, move |mut st| async move {
            loop {
                if let Some(chunk) = st.pending.pop_front() {
                    return Some((Ok(chunk), st));
                }
                if st.done {
                    return None;
                }
                if !st.first {
                    tokio::time::sleep(PollConfig::jittered(st.delay)).await;
                }
                st.first = false;
                let rq = self
                    .rest
                    .api()
                    .get(&format!("/{}/stream/{}", enc(endpoint_id), enc(job_id)))
                    .operation("stream");
                let v: Value = match self.rest.json(rq).await {
                    Ok(v) => v,
                    Err(e) => {
                        st.done = true;
                        return Some((Err(e), st));
                    }
                };
                let (mut status, chunks, mut error) = translate::stream_poll(&v);
                let got = !chunks.is_empty();
                st.pending.extend(chunks);
                if status.is_none() && !got {
                    // The bare-array form carries no status: ask for it.
                    match self.status(endpoint_id, job_id).await {
                        Ok(j) => {
                            error = error.or(j.error);
                            status = Some(j.status);
                        }
                        Err(e) => {
                            st.done = true;
                            return Some((Err(e), st));
                        }
                    }
                }
                match status {
                    Some(s) if s.is_terminal() && !got => {
                        st.done = true;
                        if s != JobStatus::Completed {
                            if error.is_none() {
                                error = self
                                    .status(endpoint_id, job_id)
                                    .await
                                    .ok()
                                    .and_then(|j| j.error);
                            }
                            return Some((Err(terminal_error(job_id, &s, error)), st));
                        }
                    }
                    _ => {}
                }
                st.delay = if got {
                    self.poll.initial
                } else {
                    self.poll.next(st.delay)
                };
            }
        });
        Ok(Box::pin(s))
    }

    async fn cancel(&self, endpoint_id: &str, job_id: &str) -> Result<Job> {
        check_job(endpoint_id, job_id)?;
        let rq = self
            .rest
            .api()
            .post(&format!("/{}/cancel/{}", enc(endpoint_id), enc(job_id)))
            .idempotency(Idempotency::Idempotent)
            .operation("cancel");
        self.job_call(endpoint_id, rq).await
    }

    async fn retry(&self, endpoint_id: &str, job_id: &str) -> Result<Job> {
        check_job(endpoint_id, job_id)?;
        let rq = self
            .rest
            .api()
            .post(&format!("/{}/retry/{}", enc(endpoint_id), enc(job_id)))
            .idempotency(Idempotency::Idempotent)
            .operation("retry");
        self.job_call(endpoint_id, rq).await
    }

    async fn purge_queue(&self, endpoint_id: &str) -> Result<u64> {
        validate_endpoint(endpoint_id)?;
        let rq = self
            .rest
            .api()
            .post(&format!("/{}/purge-queue", enc(endpoint_id)))
            .idempotency(Idempotency::Idempotent)
            .operation("purge_queue");
        let v: Value = self.rest.json(rq).await?;
        Ok(v["removed"].as_u64().unwrap_or(0))
    }

    async fn health(&self, endpoint_id: &str) -> Result<EndpointHealth> {
        validate_endpoint(endpoint_id)?;
        let rq = self
            .rest
            .api()
            .get(&format!("/{}/health", enc(endpoint_id)))
            .operation("health");
        let v: Value = self.rest.json(rq).await?;
        Ok(translate::health(&v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn body_passes_webhook_policy_and_options_through() {
        let mut req = JobRequest::new("ep1", serde_json::json!({"prompt": "hi"}))
            .unwrap()
            .with_webhook("https://example.invalid/hook")
            .with_policy(serde_json::json!({"executionTimeout": 900000, "ttl": 3600000}));
        req.provider_opts
            .insert("s3Config".into(), serde_json::json!({"bucketName": "b"}));
        assert_eq!(
            job_body(&req),
            serde_json::json!({
                "input": {"prompt": "hi"},
                "webhook": "https://example.invalid/hook",
                "policy": {"executionTimeout": 900000, "ttl": 3600000},
                "s3Config": {"bucketName": "b"},
            })
        );
    }

    #[test]
    fn job_without_endpoint_is_validation() {
        let e = check_job("", "job-1").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("scoped to an endpoint"), "{e}");
        assert_eq!(
            check_job("ep", " ").unwrap_err().kind(),
            ErrorKind::Validation
        );
    }
}
