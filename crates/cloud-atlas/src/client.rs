//! `Atlas`: the provider registry with a default provider and capability checks.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;

use crate::error::{Error, ErrorKind, Result};
use crate::http::budget::{self, CallBudget};
use crate::provider::{Provider, Serverless};
use crate::spec::{Capabilities, Capability, Compute, ComputeRequest, GpuType, ListFilter};

/// Holds providers by name, a default provider, and checks capabilities before dispatch.
///
/// ```
/// # async fn demo() -> cloud_atlas::Result<()> {
/// use cloud_atlas::{Atlas, ComputeRequest, Gpu, Provider, providers::mock::Mock};
/// let atlas = Atlas::builder().provider(Mock::in_memory()).build()?;
/// let req = ComputeRequest::builder().gpu(Gpu::H100).image("img").build()?;
/// let compute = atlas.default_provider()?.spawn(&req).await?;
/// atlas.default_provider()?.terminate(&compute.id).await?;
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct Atlas {
    providers: BTreeMap<String, Arc<dyn Provider>>,
    default: Option<String>,
}

/// Builder for [`Atlas`].
#[derive(Debug, Default)]
pub struct AtlasBuilder {
    providers: BTreeMap<String, Arc<dyn Provider>>,
    default: Option<String>,
}

impl AtlasBuilder {
    /// Add a provider (any value implementing [`Provider`]; no registration needed).
    /// The first provider added is the default unless [`default_provider`](Self::default_provider) says otherwise.
    pub fn provider(self, p: impl Provider) -> AtlasBuilder {
        self.provider_arc(Arc::new(p))
    }
    /// Add a provider already behind an `Arc`.
    pub fn provider_arc(mut self, p: Arc<dyn Provider>) -> AtlasBuilder {
        let name = p.name().to_string();
        if self.default.is_none() {
            self.default = Some(name.clone());
        }
        self.providers.insert(name, p);
        self
    }
    /// Name the default provider.
    pub fn default_provider(mut self, name: impl Into<String>) -> AtlasBuilder {
        self.default = Some(name.into());
        self
    }
    /// Build.
    ///
    /// # Errors
    /// `Validation` when the default names a provider that was not added.
    pub fn build(self) -> Result<Atlas> {
        if let Some(d) = &self.default {
            if !self.providers.contains_key(d) {
                return Err(Error::validation(
                    "provider",
                    format!(
                        "default provider {d:?} was not added; added: {}",
                        names(&self.providers)
                    ),
                ));
            }
        }
        Ok(Atlas {
            providers: self.providers,
            default: self.default,
        })
    }
}

fn names(p: &BTreeMap<String, Arc<dyn Provider>>) -> String {
    p.keys().cloned().collect::<Vec<_>>().join(", ")
}

impl Atlas {
    /// Start building.
    pub fn builder() -> AtlasBuilder {
        AtlasBuilder::default()
    }

    /// The provider named `name`, wrapped with capability checks and error context.
    ///
    /// # Errors
    /// `Validation` naming the configured providers when `name` is unknown.
    pub fn provider(&self, name: &str) -> Result<Checked> {
        self.providers
            .get(name)
            .map(|p| Checked::new(Arc::clone(p)))
            .ok_or_else(|| {
                Error::validation(
                    "provider",
                    format!(
                        "{name:?} is not configured; configured: {}",
                        names(&self.providers)
                    ),
                )
            })
    }

    /// The default provider.
    ///
    /// # Errors
    /// `Validation` when no provider was added.
    pub fn default_provider(&self) -> Result<Checked> {
        match &self.default {
            Some(d) => self.provider(d),
            None => Err(Error::validation("provider", "no provider configured")),
        }
    }

    /// Names of all providers.
    pub fn provider_names(&self) -> Vec<&str> {
        self.providers.keys().map(String::as_str).collect()
    }
}

/// A provider behind capability checks: undeclared operations fail with
/// `Unsupported` before the provider is called, and every error names provider
/// and operation. With [`Checked::with_budget`], each call also runs within one total
/// time budget ([`budget::within`]).
#[derive(Debug, Clone)]
pub struct Checked(Arc<dyn Provider>, Option<CallBudget>);

impl Checked {
    /// Wrap any provider.
    pub fn new(p: Arc<dyn Provider>) -> Checked {
        Checked(p, None)
    }
    /// Run every call within `budget` (reads within `read`, the rest within `write`).
    pub fn with_budget(mut self, budget: CallBudget) -> Checked {
        self.1 = Some(budget);
        self
    }
    /// Run `fut` within the read or write budget, if one is set.
    async fn budgeted<T>(&self, write: bool, fut: impl std::future::Future<Output = T>) -> T {
        match self.1 {
            Some(b) => budget::within(if write { b.write } else { b.read }, fut).await,
            None => fut.await,
        }
    }
    /// The inner provider.
    pub fn inner(&self) -> &Arc<dyn Provider> {
        &self.0
    }

    fn require(&self, cap: Capability, op: &'static str, what: &str) -> Result<()> {
        if self.0.capabilities().contains(cap) {
            Ok(())
        } else {
            Err(Error::unsupported(
                self.0.name(),
                op,
                format!("{what} (capability {cap} is not declared)"),
            ))
        }
    }

    fn ctx<T>(&self, op: &'static str, r: Result<T>) -> Result<T> {
        r.map_err(|e| {
            e.with_provider(self.0.name().to_string())
                .with_operation(op)
        })
    }

    /// Check a request against capabilities without spawning.
    ///
    /// # Errors
    /// `Unsupported` naming the capability the request needs.
    ///
    /// A native GPU id ([`ComputeRequest::native_gpu`]) is the provider's own word and
    /// is judged by the provider (Fly, which lists no GPUs since it retired GPU Machines,
    /// still passes `gpu_kind` on for orgs that have them).
    pub fn check_request(&self, req: &ComputeRequest) -> Result<()> {
        if req.gpu.is_some() {
            self.require(
                Capability::SpawnGpu,
                "spawn",
                "it cannot spawn GPU machines",
            )?;
        } else if req.native_gpu.is_none() {
            self.require(
                Capability::SpawnCpu,
                "spawn",
                "it cannot spawn CPU-only machines; name a GPU with --gpu",
            )?;
        }
        if req.spot {
            self.require(
                Capability::SpawnSpot,
                "spawn",
                "it has no spot/interruptible machines",
            )?;
        }
        if !req.ports.is_empty() {
            self.require(
                Capability::SpawnWithPorts,
                "spawn",
                "it cannot expose ports",
            )?;
        }
        if req.volume_gb.is_some() {
            self.require(
                Capability::SpawnWithVolume,
                "spawn",
                "it cannot attach volumes",
            )?;
        }
        // A max runtime nothing on the machine can hold is refused, never dropped.
        crate::spec::deadline::check(self.0.name(), &self.0.capabilities(), req)?;
        if let (Some(max), true) = (
            self.0.capabilities().max_gpus_per_instance(),
            req.wants_gpu(),
        ) {
            if req.gpu_count > max {
                return Err(Error::validation(
                    "gpu_count",
                    format!("{} allows at most {max} GPUs per instance", self.0.name()),
                ));
            }
        }
        Ok(())
    }
}

#[async_trait]
impl Provider for Checked {
    fn name(&self) -> &str {
        self.0.name()
    }
    fn capabilities(&self) -> Capabilities {
        self.0.capabilities()
    }
    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        self.ctx("spawn", self.check_request(req))?;
        let r = self.budgeted(true, self.0.spawn(req)).await;
        self.ctx("spawn", r)
    }
    async fn get(&self, id: &str) -> Result<Compute> {
        let r = self.budgeted(false, self.0.get(id)).await;
        self.ctx("get", r)
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
        let r = self.budgeted(false, self.0.list(filter)).await;
        self.ctx("list", r)
    }
    async fn stop(&self, id: &str) -> Result<()> {
        self.require(
            Capability::Stop,
            "stop",
            "it cannot pause compute; terminate it instead",
        )?;
        let r = self.budgeted(true, self.0.stop(id)).await;
        self.ctx("stop", r)
    }
    async fn start(&self, id: &str) -> Result<()> {
        self.require(
            Capability::Start,
            "start",
            "it cannot resume stopped compute",
        )?;
        let r = self.budgeted(true, self.0.start(id)).await;
        self.ctx("start", r)
    }
    async fn terminate(&self, id: &str) -> Result<()> {
        let r = self.budgeted(true, self.0.terminate(id)).await;
        self.ctx("terminate", r)
    }
    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        self.require(
            Capability::GpuTypes,
            "gpu_types",
            "it publishes no GPU catalog",
        )?;
        let r = self.budgeted(false, self.0.gpu_types()).await;
        self.ctx("gpu_types", r)
    }
    fn serverless(&self) -> Option<&dyn Serverless> {
        if self.0.capabilities().contains(Capability::Serverless) {
            self.0.serverless()
        } else {
            None
        }
    }
}

impl Checked {
    /// The serverless API, or `Unsupported` naming the provider.
    ///
    /// # Errors
    /// `Unsupported` when the provider has no serverless API.
    pub fn require_serverless(&self) -> Result<&dyn Serverless> {
        self.serverless().ok_or_else(|| {
            Error::unsupported(self.0.name(), "serverless", "it has no serverless job API")
        })
    }
}

/// Whether an error means "no such thing".
pub fn is_not_found(e: &Error) -> bool {
    e.kind() == ErrorKind::NotFound
}
