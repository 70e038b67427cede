//! `Guarded`: a provider that keeps something else alive while it is tested.

use std::fmt;

use async_trait::async_trait;

use crate::error::Result;
use crate::provider::{Provider, Serverless};
use crate::spec::{Capabilities, Compute, ComputeRequest, GpuType, ListFilter};

/// A provider together with a guard that must outlive it (a contract server process,
/// a local fake, a temp dir). Forwards every call to the provider; drops the guard
/// after the provider.
///
/// ```
/// use cloud_atlas::providers::mock::Mock;
/// use cloud_atlas::testing::Guarded;
/// let dir = tempfile::tempdir().unwrap();
/// let p = Guarded::new(dir, Mock::in_memory());
/// assert_eq!(cloud_atlas::Provider::name(&p), "mock");
/// ```
pub struct Guarded<G, P> {
    provider: P,
    guard: G,
}

impl<G, P> Guarded<G, P> {
    /// Keep `guard` alive as long as `provider`.
    pub fn new(guard: G, provider: P) -> Guarded<G, P> {
        Guarded { provider, guard }
    }
    /// The guard.
    pub fn guard(&self) -> &G {
        &self.guard
    }
    /// The provider.
    pub fn provider(&self) -> &P {
        &self.provider
    }
}

impl<G, P: fmt::Debug> fmt::Debug for Guarded<G, P> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Guarded")
            .field("provider", &self.provider)
            .finish_non_exhaustive()
    }
}

#[async_trait]
impl<G: Send + Sync + 'static, P: Provider> Provider for Guarded<G, P> {
    fn name(&self) -> &str {
        self.provider.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.provider.capabilities()
    }
    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        self.provider.spawn(req).await
    }
    async fn get(&self, id: &str) -> Result<Compute> {
        self.provider.get(id).await
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
        self.provider.list(filter).await
    }
    async fn stop(&self, id: &str) -> Result<()> {
        self.provider.stop(id).await
    }
    async fn start(&self, id: &str) -> Result<()> {
        self.provider.start(id).await
    }
    async fn terminate(&self, id: &str) -> Result<()> {
        self.provider.terminate(id).await
    }
    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        self.provider.gpu_types().await
    }
    fn serverless(&self) -> Option<&dyn Serverless> {
        self.provider.serverless()
    }
}
