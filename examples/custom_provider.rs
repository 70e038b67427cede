//! Plug your own cloud into cloud-atlas: implement `Provider`, hand a value to
//! `Atlas::builder().provider(…)` — no registration — and every cloud-atlas tool
//! (capability checks, `ProviderExt::wait_for`, the orchestrator, the conformance
//! suite via `cloud_atlas::conformance_tests!`) works with it. Reads no env vars.
//!
//! `cargo run -p cloud-atlas-examples --example custom_provider`

use std::collections::BTreeMap;
use std::sync::Mutex;

use cloud_atlas::{
    async_trait, Atlas, Capabilities, Capability, Compute, ComputeRequest, ComputeStatus, Error,
    ErrorKind, GpuType, ListFilter, Provider, Result,
};

/// A toy cloud that keeps machines in a map and boots them instantly.
#[derive(Debug, Default)]
struct MyCloud {
    machines: Mutex<BTreeMap<String, Compute>>,
}

#[async_trait]
impl Provider for MyCloud {
    fn name(&self) -> &str {
        "my-cloud"
    }
    fn capabilities(&self) -> Capabilities {
        Capabilities::new([Capability::SpawnCpu, Capability::Stop, Capability::Start])
    }
    async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        // Nothing here would end the machine at its max runtime: refuse the limit rather
        // than drop it (the conformance suite checks this).
        if req.max_runtime.is_some() {
            return Err(Error::unsupported(
                "my-cloud",
                "max_runtime",
                "my-cloud machines cannot end themselves; track the task as a session instead",
            ));
        }
        let mut c = Compute::new(
            format!("mc-{}", req.launch_id),
            "my-cloud",
            ComputeStatus::Running,
        );
        c.name = Some(req.launch_name());
        c.image = Some(req.image.clone());
        self.machines
            .lock()
            .unwrap()
            .insert(c.id.clone(), c.clone());
        Ok(c)
    }
    async fn get(&self, id: &str) -> Result<Compute> {
        self.machines
            .lock()
            .unwrap()
            .get(id)
            .cloned()
            .ok_or_else(|| Error::not_found(id))
    }
    async fn list(&self, filter: &ListFilter) -> Result<Vec<Compute>> {
        Ok(self
            .machines
            .lock()
            .unwrap()
            .values()
            .filter(|c| filter.matches(c))
            .cloned()
            .collect())
    }
    async fn stop(&self, id: &str) -> Result<()> {
        self.set(id, ComputeStatus::Stopped)
    }
    async fn start(&self, id: &str) -> Result<()> {
        self.set(id, ComputeStatus::Running)
    }
    async fn terminate(&self, id: &str) -> Result<()> {
        self.machines
            .lock()
            .unwrap()
            .remove(id)
            .map(|_| ())
            .ok_or_else(|| Error::not_found(id))
    }
    async fn gpu_types(&self) -> Result<Vec<GpuType>> {
        Err(Error::unsupported("my-cloud", "gpu_types", "no GPUs here"))
    }
}

impl MyCloud {
    fn set(&self, id: &str, s: ComputeStatus) -> Result<()> {
        let mut m = self.machines.lock().unwrap();
        let c = m.get_mut(id).ok_or_else(|| Error::not_found(id))?;
        c.status = s;
        Ok(())
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let atlas = Atlas::builder().provider(MyCloud::default()).build()?;
    let cloud = atlas.provider("my-cloud")?;
    let c = cloud
        .spawn(&ComputeRequest::builder().image("busybox").cpus(1).build()?)
        .await?;
    println!("spawned {} ({})", c.id, c.status);
    // Capabilities are checked before dispatch: my-cloud declares no GPU catalog.
    let err = cloud.gpu_types().await.unwrap_err();
    assert_eq!(err.kind(), ErrorKind::Unsupported);
    println!("gpu_types: {err}");
    cloud.terminate(&c.id).await?;
    Ok(())
}

// The public conformance suite, one test per case, against `MyCloud` (`cargo test`).
#[cfg(test)]
mod conformance {
    use super::MyCloud;

    cloud_atlas::conformance_tests!(MyCloud::default());
}
