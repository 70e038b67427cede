//! Serverless jobs: requests, jobs and their statuses.

use std::fmt;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::{Error, Result};

/// A job to run on a serverless endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct JobRequest {
    /// Endpoint id; job ids are scoped to it.
    pub endpoint_id: String,
    /// The handler's input (sent as `{"input": …}`).
    pub input: serde_json::Value,
    /// URL the provider calls when the job finishes.
    pub webhook: Option<String>,
    /// Provider execution policy, passed through (RunPod `policy`).
    pub policy: Option<serde_json::Value>,
    /// Other provider-specific top-level fields, passed through (RunPod `s3Config`, …).
    pub provider_opts: serde_json::Map<String, serde_json::Value>,
}

impl JobRequest {
    /// A job for `endpoint_id` with `input`.
    ///
    /// # Errors
    /// `Validation` when the endpoint id is empty.
    pub fn new(endpoint_id: impl Into<String>, input: serde_json::Value) -> Result<JobRequest> {
        let endpoint_id = endpoint_id.into();
        validate_endpoint(&endpoint_id)?;
        Ok(JobRequest {
            endpoint_id,
            input,
            webhook: None,
            policy: None,
            provider_opts: serde_json::Map::new(),
        })
    }
    /// Set the webhook.
    pub fn with_webhook(mut self, url: impl Into<String>) -> JobRequest {
        self.webhook = Some(url.into());
        self
    }
    /// Set the execution policy.
    pub fn with_policy(mut self, policy: serde_json::Value) -> JobRequest {
        self.policy = Some(policy);
        self
    }
}

/// Check an endpoint id: a job id means nothing without its endpoint.
pub fn validate_endpoint(endpoint_id: &str) -> Result<()> {
    if endpoint_id.trim().is_empty() {
        return Err(Error::validation(
            "endpoint",
            "is required: job ids are scoped to an endpoint (pass --endpoint E)",
        ));
    }
    if !endpoint_id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        return Err(Error::validation(
            "endpoint",
            format!("{endpoint_id:?} may contain only letters, digits, - and _"),
        ));
    }
    Ok(())
}

/// State of a serverless job.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum JobStatus {
    /// Waiting for a worker.
    InQueue,
    /// Running.
    InProgress,
    /// Finished with output.
    Completed,
    /// Handler failed.
    Failed,
    /// Cancelled.
    Cancelled,
    /// Exceeded its execution timeout.
    TimedOut,
    /// Unmapped native state.
    Other(String),
}

impl JobStatus {
    /// Lower-case name.
    pub fn as_str(&self) -> &str {
        match self {
            JobStatus::InQueue => "in_queue",
            JobStatus::InProgress => "in_progress",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
            JobStatus::TimedOut => "timed_out",
            JobStatus::Other(s) => s,
        }
    }
    /// Parse a status in either our form (`in_queue`) or RunPod's (`IN_QUEUE`).
    pub fn parse(s: &str) -> JobStatus {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "in_queue" | "queued" => JobStatus::InQueue,
            "in_progress" | "running" => JobStatus::InProgress,
            "completed" => JobStatus::Completed,
            "failed" => JobStatus::Failed,
            "cancelled" | "canceled" => JobStatus::Cancelled,
            "timed_out" => JobStatus::TimedOut,
            _ => JobStatus::Other(s.to_string()),
        }
    }
    /// Whether the job will not change any more.
    pub fn is_terminal(&self) -> bool {
        matches!(
            self,
            JobStatus::Completed | JobStatus::Failed | JobStatus::Cancelled | JobStatus::TimedOut
        )
    }
}

impl fmt::Display for JobStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Serialize for JobStatus {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for JobStatus {
    fn deserialize<D: Deserializer<'de>>(d: D) -> std::result::Result<JobStatus, D::Error> {
        Ok(JobStatus::parse(&String::deserialize(d)?))
    }
}

/// A serverless job as the provider reports it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct Job {
    /// Job id (scoped to the endpoint).
    pub id: String,
    /// Endpoint id.
    pub endpoint_id: String,
    /// Status.
    pub status: JobStatus,
    /// Output, once completed (or the aggregate of streamed output).
    pub output: Option<serde_json::Value>,
    /// Error message, for failed jobs.
    pub error: Option<String>,
    /// Queue delay in milliseconds.
    pub delay_time_ms: Option<u64>,
    /// Execution time in milliseconds.
    pub execution_time_ms: Option<u64>,
    /// Native JSON.
    #[serde(default)]
    pub raw: serde_json::Value,
}

impl Job {
    /// A job with id, endpoint and status; other fields empty.
    pub fn new(id: impl Into<String>, endpoint_id: impl Into<String>, status: JobStatus) -> Job {
        Job {
            id: id.into(),
            endpoint_id: endpoint_id.into(),
            status,
            output: None,
            error: None,
            delay_time_ms: None,
            execution_time_ms: None,
            raw: serde_json::Value::Null,
        }
    }
}

/// Health of a serverless endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub struct EndpointHealth {
    /// Job counts by state (`completed`, `failed`, `inProgress`, `inQueue`, `retried`).
    pub jobs: serde_json::Map<String, serde_json::Value>,
    /// Worker counts by state (`idle`, `running`, …).
    pub workers: serde_json::Map<String, serde_json::Value>,
    /// Native JSON.
    pub raw: serde_json::Value,
}
