//! The mock's serverless endpoint: jobs that move `in_queue → in_progress → completed`
//! on a clock, stream partial output, and fail or time out on request.

use std::collections::BTreeMap;
#[cfg(feature = "sqlite")]
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::stream::BoxStream;

#[cfg(feature = "sqlite")]
use super::state::sqlite_err;
use super::state::{lock, Backend, MockJob, Outcome};
use super::{Inner, NAME};
use crate::error::{Error, ErrorKind, Result};
use crate::provider::Serverless;
use crate::spec::{EndpointHealth, Job, JobRequest, JobStatus};

/// The mock's serverless job API (`Mock::serverless()`).
///
/// Endpoint [`MOCK_ENDPOINT`](super::MOCK_ENDPOINT) (and any other id) runs an echo
/// handler. Input knobs: `{"fail": "message"}` fails the job, `{"timeout": true}` times
/// it out, `{"sleep_ms": n}` sets the execution time, `{"chunks": n}` the number of
/// streamed chunks (default 3). Output is `{"echo": input}`; each chunk is
/// `{"index": i, "text": "chunk i"}`.
#[derive(Debug, Clone)]
pub struct MockServerless {
    pub(super) inner: Arc<Inner>,
}

impl MockServerless {
    fn now(&self) -> DateTime<Utc> {
        self.inner.clock.now()
    }

    fn load_job(&self, endpoint: &str, id: &str) -> Result<MockJob> {
        let job = match &self.inner.backend {
            Backend::Memory(s) => lock(s).jobs.get(id).cloned(),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let c = lock(c);
                let body: Option<String> = c
                    .query_row("SELECT body FROM jobs WHERE id = ?1", [id], |r| r.get(0))
                    .map(Some)
                    .or_else(|e| {
                        if matches!(e, rusqlite::Error::QueryReturnedNoRows) {
                            Ok(None)
                        } else {
                            Err(e)
                        }
                    })
                    .map_err(|e| {
                        sqlite_err(self.inner.path.as_deref().unwrap_or(Path::new("?")), e)
                    })?;
                body.map(|b| serde_json::from_str::<MockJob>(&b))
                    .transpose()?
            }
        };
        job.filter(|j| j.endpoint_id == endpoint).ok_or_else(|| {
            Error::new(
                ErrorKind::NotFound,
                format!("job {id} not found on endpoint {endpoint}"),
            )
            .with_provider(NAME)
            .with_status(404)
        })
    }

    fn save_job(&self, j: &MockJob) -> Result<()> {
        match &self.inner.backend {
            Backend::Memory(s) => {
                lock(s).jobs.insert(j.id.clone(), j.clone());
                Ok(())
            }
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                lock(c)
                    .execute(
                        "INSERT INTO jobs (id, endpoint, body) VALUES (?1, ?2, ?3)
                         ON CONFLICT(id) DO UPDATE SET body = excluded.body",
                        rusqlite::params![j.id, j.endpoint_id, serde_json::to_string(j)?],
                    )
                    .map_err(|e| {
                        sqlite_err(self.inner.path.as_deref().unwrap_or(Path::new("?")), e)
                    })?;
                Ok(())
            }
        }
    }

    fn endpoint_jobs(&self, endpoint: &str) -> Result<Vec<MockJob>> {
        match &self.inner.backend {
            Backend::Memory(s) => Ok(lock(s)
                .jobs
                .values()
                .filter(|j| j.endpoint_id == endpoint)
                .cloned()
                .collect()),
            #[cfg(feature = "sqlite")]
            Backend::Sqlite(c) => {
                let c = lock(c);
                let err = |e| sqlite_err(self.inner.path.as_deref().unwrap_or(Path::new("?")), e);
                let mut st = c
                    .prepare("SELECT body FROM jobs WHERE endpoint = ?1")
                    .map_err(err)?;
                let rows = st
                    .query_map([endpoint], |r| r.get::<_, String>(0))
                    .map_err(err)?;
                let mut out = Vec::new();
                for r in rows {
                    out.push(serde_json::from_str(&r.map_err(err)?)?);
                }
                Ok(out)
            }
        }
    }

    fn elapsed_ms(&self, j: &MockJob) -> u64 {
        let end = j.cancelled_at.unwrap_or_else(|| self.now());
        (end - j.created_at).num_milliseconds().max(0) as u64
    }

    fn status_of(&self, j: &MockJob) -> JobStatus {
        let t = self.elapsed_ms(j);
        if j.cancelled_at.is_some() {
            return JobStatus::Cancelled;
        }
        if t < j.queue_ms {
            JobStatus::InQueue
        } else if t < j.queue_ms + j.exec_ms {
            JobStatus::InProgress
        } else {
            match &j.outcome {
                Outcome::Complete => JobStatus::Completed,
                Outcome::Fail(_) => JobStatus::Failed,
                Outcome::TimeOut => JobStatus::TimedOut,
            }
        }
    }

    /// Chunks produced so far.
    fn chunks_ready(&self, j: &MockJob) -> u32 {
        let t = self.elapsed_ms(j);
        if t < j.queue_ms || j.chunks == 0 {
            return 0;
        }
        if j.outcome != Outcome::Complete {
            return 0;
        }
        let per = (j.exec_ms / u64::from(j.chunks)).max(1);
        (((t - j.queue_ms) / per) as u32).min(j.chunks)
    }

    fn to_job(&self, j: &MockJob) -> Job {
        let status = self.status_of(j);
        let mut job = Job::new(j.id.clone(), j.endpoint_id.clone(), status.clone());
        let t = self.elapsed_ms(j);
        job.delay_time_ms = Some(t.min(j.queue_ms));
        if t > j.queue_ms {
            job.execution_time_ms = Some((t - j.queue_ms).min(j.exec_ms));
        }
        match (&status, &j.outcome) {
            (JobStatus::Completed, _) => job.output = Some(serde_json::json!({"echo": j.input})),
            (JobStatus::Failed, Outcome::Fail(m)) => job.error = Some(m.clone()),
            (JobStatus::TimedOut, _) => {
                job.error = Some(format!(
                    "job exceeded its execution timeout of {} ms",
                    j.exec_ms
                ))
            }
            _ => {}
        }
        job.raw = serde_json::json!({"id": j.id, "status": status.as_str().to_ascii_uppercase(), "retries": j.retries});
        job
    }

    fn new_job(&self, req: &JobRequest) -> MockJob {
        let input = &req.input;
        let exec_ms = input
            .get("sleep_ms")
            .and_then(|v| v.as_u64())
            .unwrap_or(self.inner.options.exec_time.as_millis() as u64);
        let outcome = if let Some(msg) = input.get("fail").and_then(|v| v.as_str()) {
            Outcome::Fail(msg.to_string())
        } else if input.get("timeout").and_then(|v| v.as_bool()) == Some(true) {
            Outcome::TimeOut
        } else {
            Outcome::Complete
        };
        MockJob {
            id: format!("job-{}", uuid::Uuid::new_v4()),
            endpoint_id: req.endpoint_id.clone(),
            input: input.clone(),
            created_at: self.now(),
            queue_ms: self.inner.options.queue_delay.as_millis() as u64,
            exec_ms,
            chunks: input
                .get("chunks")
                .and_then(|v| v.as_u64())
                .unwrap_or(3)
                .min(1000) as u32,
            outcome,
            cancelled_at: None,
            retries: 0,
        }
    }
}

#[async_trait]
impl Serverless for MockServerless {
    async fn run(&self, req: &JobRequest) -> Result<Job> {
        crate::spec::validate_endpoint(&req.endpoint_id)?;
        let j = self.new_job(req);
        self.save_job(&j)?;
        Ok(self.to_job(&j))
    }

    async fn run_sync(&self, req: &JobRequest, timeout: Duration) -> Result<Job> {
        let job = self.run(req).await?;
        let deadline = crate::spec::deadline_in(timeout);
        loop {
            let j = self.status(&req.endpoint_id, &job.id).await?;
            if j.status.is_terminal() {
                return Ok(j);
            }
            let now = tokio::time::Instant::now();
            if now >= deadline {
                return Err(Error::new(
                    ErrorKind::Timeout,
                    format!("job {} still {} after {}; check it later with `atlas job status --endpoint {} {}`", j.id, j.status, humantime::format_duration(timeout), req.endpoint_id, j.id),
                )
                .with_provider(NAME));
            }
            tokio::time::sleep(Duration::from_millis(50).min(deadline - now)).await;
        }
    }

    async fn status(&self, endpoint_id: &str, job_id: &str) -> Result<Job> {
        crate::spec::validate_endpoint(endpoint_id)?;
        Ok(self.to_job(&self.load_job(endpoint_id, job_id)?))
    }

    async fn stream<'a>(
        &'a self,
        endpoint_id: &'a str,
        job_id: &'a str,
    ) -> Result<BoxStream<'a, Result<serde_json::Value>>> {
        crate::spec::validate_endpoint(endpoint_id)?;
        self.load_job(endpoint_id, job_id)?;
        let s = futures::stream::unfold((0u32, false), move |(sent, done)| async move {
            if done {
                return None;
            }
            loop {
                let j = match self.load_job(endpoint_id, job_id) {
                    Ok(j) => j,
                    Err(e) => return Some((Err(e), (sent, true))),
                };
                let ready = self.chunks_ready(&j);
                if ready > sent {
                    return Some((
                        Ok(serde_json::json!({"index": sent, "text": format!("chunk {sent}")})),
                        (sent + 1, false),
                    ));
                }
                let st = self.status_of(&j);
                if st.is_terminal() {
                    return match st {
                        JobStatus::Completed => None,
                        other => {
                            let job = self.to_job(&j);
                            let msg = job.error.unwrap_or_else(|| format!("job {}", other));
                            let kind = if other == JobStatus::TimedOut {
                                ErrorKind::Timeout
                            } else {
                                ErrorKind::Provider
                            };
                            Some((
                                Err(Error::new(kind, format!("job {job_id} {other}: {msg}"))
                                    .with_provider(NAME)),
                                (sent, true),
                            ))
                        }
                    };
                }
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
        });
        Ok(Box::pin(s))
    }

    async fn cancel(&self, endpoint_id: &str, job_id: &str) -> Result<Job> {
        let mut j = self.load_job(endpoint_id, job_id)?;
        if !self.status_of(&j).is_terminal() {
            j.cancelled_at = Some(self.now());
            self.save_job(&j)?;
        }
        Ok(self.to_job(&j))
    }

    async fn retry(&self, endpoint_id: &str, job_id: &str) -> Result<Job> {
        let mut j = self.load_job(endpoint_id, job_id)?;
        let st = self.status_of(&j);
        if !matches!(st, JobStatus::Failed | JobStatus::TimedOut) {
            return Err(Error::validation(
                "job",
                format!("job {job_id} is {st}; only failed or timed_out jobs can be retried"),
            ));
        }
        j.created_at = self.now();
        j.cancelled_at = None;
        j.retries += 1;
        j.outcome = Outcome::Complete;
        self.save_job(&j)?;
        Ok(self.to_job(&j))
    }

    async fn purge_queue(&self, endpoint_id: &str) -> Result<u64> {
        crate::spec::validate_endpoint(endpoint_id)?;
        let mut n = 0;
        for mut j in self.endpoint_jobs(endpoint_id)? {
            if self.status_of(&j) == JobStatus::InQueue {
                j.cancelled_at = Some(self.now());
                self.save_job(&j)?;
                n += 1;
            }
        }
        Ok(n)
    }

    async fn health(&self, endpoint_id: &str) -> Result<EndpointHealth> {
        crate::spec::validate_endpoint(endpoint_id)?;
        let mut counts: BTreeMap<&str, u64> = BTreeMap::new();
        let mut retried = 0;
        for j in self.endpoint_jobs(endpoint_id)? {
            let key = match self.status_of(&j) {
                JobStatus::InQueue => "inQueue",
                JobStatus::InProgress => "inProgress",
                JobStatus::Completed => "completed",
                JobStatus::Failed | JobStatus::TimedOut => "failed",
                _ => "cancelled",
            };
            *counts.entry(key).or_default() += 1;
            retried += u64::from(j.retries);
        }
        let mut jobs = serde_json::Map::new();
        for k in ["completed", "failed", "inProgress", "inQueue"] {
            jobs.insert(k.into(), counts.get(k).copied().unwrap_or(0).into());
        }
        jobs.insert("retried".into(), retried.into());
        let running = counts.get("inProgress").copied().unwrap_or(0);
        let mut workers = serde_json::Map::new();
        workers.insert("idle".into(), (if running == 0 { 1 } else { 0 }).into());
        workers.insert("running".into(), running.into());
        let raw = serde_json::json!({"jobs": jobs, "workers": workers});
        Ok(EndpointHealth { jobs, workers, raw })
    }
}
