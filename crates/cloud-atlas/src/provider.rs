//! The `Provider` contract every cloud implements, and conveniences over it.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::stream::BoxStream;

use crate::error::{Error, ErrorKind, Result};
use crate::spec::{
    Capabilities, Compute, ComputeRequest, ComputeStatus, EndpointHealth, GpuType, Job, JobRequest,
    ListFilter,
};

/// A compute cloud: spawns, inspects and terminates GPU/CPU machines.
///
/// # Contract
/// - Undeclared capabilities return [`ErrorKind::Unsupported`].
/// - `get` and `terminate` return [`ErrorKind::NotFound`] when the machine is gone.
/// - `list` is complete or `Err`: never a partial page presented as the whole.
/// - `spawn` never leaves two machines for one request: providers reconcile an
///   ambiguous create by listing for [`ComputeRequest::launch_name`] before any retry.
/// - Wrappers MUST implement every method (a default would bypass the inner provider).
///
/// # Cost
/// `spawn` and `start` start billing; `terminate` stops it. `stop` may keep billing storage.
#[async_trait]
pub trait Provider: Send + Sync + std::fmt::Debug + 'static {
    /// Stable lower-case name: `runpod`, `mock`, `my-cloud`.
    fn name(&self) -> &str;
    /// What this provider can do beyond spawn/get/list/terminate.
    fn capabilities(&self) -> Capabilities;
    /// Create compute. Starts billing.
    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute>;
    /// Read one compute; `NotFound` when gone.
    async fn get(&self, id: &str) -> Result<Compute>;
    /// List compute matching `filter`, all pages.
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>>;
    /// Pause compute. Requires [`Capability::Stop`](crate::Capability::Stop).
    async fn stop(&self, id: &str) -> Result<()>;
    /// Resume compute. Requires [`Capability::Start`](crate::Capability::Start).
    async fn start(&self, id: &str) -> Result<()>;
    /// Destroy compute; `NotFound` when already gone.
    async fn terminate(&self, id: &str) -> Result<()>;
    /// GPU catalog with prices. Requires [`Capability::GpuTypes`](crate::Capability::GpuTypes).
    async fn gpu_types(&self) -> Result<Vec<GpuType>>;
    /// The serverless job API, when the provider has one.
    fn serverless(&self) -> Option<&dyn Serverless> {
        None
    }
}

/// A serverless job API (RunPod endpoints, the mock's endpoints).
///
/// Job ids are scoped to an endpoint: every call names both.
#[async_trait]
pub trait Serverless: Send + Sync + std::fmt::Debug {
    /// Queue a job; returns at once with the job id.
    async fn run(&self, req: &JobRequest) -> Result<Job>;
    /// Run and wait for the result, never blocking the caller past `timeout`
    /// ([`ErrorKind::Timeout`] then, naming the job id when one is known).
    async fn run_sync(&self, req: &JobRequest, timeout: Duration) -> Result<Job>;
    /// Current state of a job.
    async fn status(&self, endpoint_id: &str, job_id: &str) -> Result<Job>;
    /// Partial outputs until a terminal state; each chunk once. A failed, cancelled or
    /// timed-out job ends the stream with an error carrying the provider's message.
    async fn stream<'a>(
        &'a self,
        endpoint_id: &'a str,
        job_id: &'a str,
    ) -> Result<BoxStream<'a, Result<serde_json::Value>>>;
    /// Cancel a job.
    async fn cancel(&self, endpoint_id: &str, job_id: &str) -> Result<Job>;
    /// Retry a failed or timed-out job.
    async fn retry(&self, endpoint_id: &str, job_id: &str) -> Result<Job>;
    /// Drop every queued (not running) job of an endpoint; returns how many were removed.
    async fn purge_queue(&self, endpoint_id: &str) -> Result<u64>;
    /// Worker and job counts of an endpoint.
    async fn health(&self, endpoint_id: &str) -> Result<EndpointHealth>;
}

macro_rules! forward_provider {
    ($ty:ty) => {
        #[async_trait]
        impl<T: Provider + ?Sized> Provider for $ty {
            fn name(&self) -> &str {
                (**self).name()
            }
            fn capabilities(&self) -> Capabilities {
                (**self).capabilities()
            }
            async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
                (**self).spawn(req).await
            }
            async fn get(&self, id: &str) -> Result<Compute> {
                (**self).get(id).await
            }
            async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
                (**self).list(filter).await
            }
            async fn stop(&self, id: &str) -> Result<()> {
                (**self).stop(id).await
            }
            async fn start(&self, id: &str) -> Result<()> {
                (**self).start(id).await
            }
            async fn terminate(&self, id: &str) -> Result<()> {
                (**self).terminate(id).await
            }
            async fn gpu_types(&self) -> Result<Vec<GpuType>> {
                (**self).gpu_types().await
            }
            fn serverless(&self) -> Option<&dyn Serverless> {
                (**self).serverless()
            }
        }
    };
}

forward_provider!(Arc<T>);
forward_provider!(Box<T>);

/// Conveniences over [`Provider`]. You MUST NOT implement this trait yourself:
/// every provider gets it through a blanket impl.
pub trait ProviderExt: Provider {
    /// `get`, with `NotFound` as `Ok(None)`.
    fn get_opt(&self, id: &str) -> impl Future<Output = Result<Option<Compute>>> + Send;
    /// `terminate`, with `NotFound` as `Ok(false)`; `Ok(true)` when something was terminated.
    fn terminate_if_exists(&self, id: &str) -> impl Future<Output = Result<bool>> + Send;
    /// Poll `get` with backoff (250 ms doubling to 5 s) until `status` or `timeout`.
    ///
    /// # Errors
    /// `Timeout` naming the last status seen; `Provider` when the compute reaches a
    /// terminal state other than the one awaited; whatever `get` fails with.
    fn wait_for(
        &self,
        id: &str,
        status: ComputeStatus,
        timeout: Duration,
    ) -> impl Future<Output = Result<Compute>> + Send;
}

impl<T: Provider + ?Sized> ProviderExt for T {
    async fn get_opt(&self, id: &str) -> Result<Option<Compute>> {
        match self.get(id).await {
            Ok(c) => Ok(Some(c)),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    async fn terminate_if_exists(&self, id: &str) -> Result<bool> {
        match self.terminate(id).await {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn wait_for(
        &self,
        id: &str,
        status: ComputeStatus,
        timeout: Duration,
    ) -> Result<Compute> {
        let status = &status;
        crate::wait::until(
            timeout,
            crate::wait::Backoff::DEFAULT,
            move |_| async move {
                let c = self.get(id).await?;
                if c.status == *status {
                    return Ok(crate::wait::Poll::Ready(c));
                }
                if c.status.is_terminal() {
                    return Err(Error::new(
                        ErrorKind::Provider,
                        format!("{id} became {} while waiting for {status}", c.status),
                    )
                    .with_provider(self.name().to_string())
                    .with_operation("wait_for"));
                }
                Ok(crate::wait::Poll::Pending(c.status.to_string()))
            },
            |last| {
                Error::new(
                    ErrorKind::Timeout,
                    format!(
                        "{id} still {last} after {}; wait longer with a bigger timeout",
                        humantime::format_duration(timeout)
                    ),
                )
                .with_provider(self.name().to_string())
                .with_operation("wait_for")
            },
        )
        .await
    }
}
