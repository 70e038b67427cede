//! `Fixture`: names what a case spawns and terminates all of it afterwards.
//!
//! Cleanup runs in three layers, each best-effort and none of them panicking:
//! 1. the runner ([`run_case`](super::run_case)) catches a case's panic and awaits
//!    [`Fixture::cleanup`] on the test's own runtime (the normal path);
//! 2. [`Fixture::cleanup`] terminates every recorded id, then lists by the fixture's
//!    unique name prefix and terminates anything a lost spawn response left behind;
//! 3. `Drop` runs the same cleanup when a fixture is dropped with work left (a panic
//!    outside the runner, a cancelled future). `Drop` cannot `.await`, so it blocks:
//!    - on a **multi-thread** tokio runtime it uses `tokio::task::block_in_place` and
//!      drives the cleanup on the same runtime, so pooled HTTP connections keep working;
//!    - on a **current-thread** runtime (where `block_in_place` panics) or outside any
//!      runtime it runs the cleanup on a scoped helper thread with its own runtime.
//!      Connections pooled on the blocked test runtime cannot make progress there, so an
//!      HTTP provider's first request may wait for its own timeout before a fresh
//!      connection is opened; the whole drop cleanup is bounded by
//!      [`SuiteOptions::cleanup_timeout`].
//!
//! Prefer multi-thread test runtimes (`#[tokio::test(flavor = "multi_thread")]`); the
//! [`conformance_tests!`](crate::conformance_tests) macro uses one.

use std::fmt;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::sync::{Mutex, MutexGuard};

use crate::error::{Error, ErrorKind, Result};
use crate::provider::Provider;
use crate::spec::{
    Capability, Compute, ComputeRequest, ComputeRequestBuilder, ComputeStatus, Gpu, ListFilter,
};

use super::SuiteOptions;

/// Prefix of every name the suite gives to what it spawns.
pub const NAME_PREFIX: &str = "atlas-conf";

/// GPUs the suite picks when [`SuiteOptions::gpu`] is unset, cheapest-looking first.
const CHEAP_GPUS: &[Gpu] = &[
    Gpu::A4000,
    Gpu::RTX_3090,
    Gpu::A5000,
    Gpu::L4,
    Gpu::A10,
    Gpu::RTX_4090,
    Gpu::A6000,
    Gpu::L40,
    Gpu::L40S,
    Gpu::A100_40G,
    Gpu::A100_80G,
];

/// What [`Fixture::cleanup`] did.
#[derive(Debug, Default)]
pub struct Cleanup {
    /// Ids terminated now.
    pub terminated: Vec<String>,
    /// Ids that were already gone (`NotFound`).
    pub already_gone: Vec<String>,
    /// Ids (or `list <prefix>` for the sweep) whose cleanup failed, with the error.
    pub failed: Vec<(String, Error)>,
}

impl Cleanup {
    /// Whether every recorded machine is gone.
    pub fn is_clean(&self) -> bool {
        self.failed.is_empty()
    }
}

impl fmt::Display for Cleanup {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "terminated {}, already gone {}",
            self.terminated.len(),
            self.already_gone.len()
        )?;
        for (id, e) in &self.failed {
            write!(f, "; LEFT RUNNING {id}: {e}")?;
        }
        Ok(())
    }
}

#[derive(Debug, Default)]
struct Records {
    /// Ids returned by spawns (in order).
    ids: Vec<String>,
    /// Whether a spawn was attempted since the last cleanup (then the sweep runs).
    attempted: bool,
}

/// Records everything a conformance case spawns and terminates it at the end.
///
/// Every name it hands out starts with `atlas-conf-<8 hex>-`, unique per fixture.
pub struct Fixture<'a> {
    provider: &'a dyn Provider,
    options: &'a SuiteOptions,
    prefix: String,
    records: Mutex<Records>,
}

impl fmt::Debug for Fixture<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Fixture")
            .field("provider", &self.provider.name())
            .field("prefix", &self.prefix)
            .field("spawned", &self.spawned())
            .finish()
    }
}

impl<'a> Fixture<'a> {
    /// A fixture for `provider` with a fresh unique name prefix.
    pub fn new(provider: &'a dyn Provider, options: &'a SuiteOptions) -> Fixture<'a> {
        let run = uuid::Uuid::new_v4().simple().to_string();
        Fixture {
            provider,
            options,
            prefix: format!("{NAME_PREFIX}-{}", &run[..8]),
            records: Mutex::new(Records::default()),
        }
    }

    /// The provider under test.
    pub fn provider(&self) -> &'a dyn Provider {
        self.provider
    }

    /// The suite options.
    pub fn options(&self) -> &'a SuiteOptions {
        self.options
    }

    /// This fixture's unique name prefix (`atlas-conf-1a2b3c4d`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// A compute name for `tag` under this fixture's prefix (`atlas-conf-1a2b3c4d-ports`),
    /// valid as [`ComputeRequest`] `name` (at most 40 lowercase letters, digits and `-`).
    pub fn name(&self, tag: &str) -> String {
        let tag: String = tag
            .chars()
            .map(|c| c.to_ascii_lowercase())
            .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
            .take(40 - self.prefix.len() - 1)
            .collect();
        let tag = tag.trim_matches('-');
        if tag.is_empty() {
            self.prefix.clone()
        } else {
            format!("{}-{tag}", self.prefix)
        }
    }

    /// The GPU the suite spawns: [`SuiteOptions::gpu`], else the first of a short
    /// cheapest-first list that the provider offers, else any GPU it offers.
    pub fn gpu(&self) -> Option<Gpu> {
        if let Some(g) = self.options.gpu {
            return Some(g);
        }
        let name = self.provider.name();
        CHEAP_GPUS
            .iter()
            .copied()
            .find(|g| g.provider_id(name).is_some())
            .or_else(|| Gpu::for_provider(name).into_iter().next())
    }

    /// A request builder named for `tag`, with the suite's image, region, provider
    /// options and machine shape (a GPU when the provider spawns GPUs and
    /// [`SuiteOptions::cpu_only`] is off, else CPU-only).
    ///
    /// # Errors
    /// `Validation` when the provider declares neither `SpawnGpu` nor `SpawnCpu`, or
    /// spawns only GPUs and no GPU is known for it (set [`SuiteOptions::gpu`]).
    pub fn request(&self, tag: &str) -> Result<ComputeRequestBuilder> {
        let caps = self.provider.capabilities();
        let o = self.options;
        let mut b = ComputeRequest::builder()
            .name(self.name(tag))
            .image(o.image.clone())
            .label("atlas_conformance", self.prefix.clone());
        let gpu_ok = caps.contains(Capability::SpawnGpu);
        let cpu_ok = caps.contains(Capability::SpawnCpu);
        if gpu_ok && !(o.cpu_only && cpu_ok) {
            let gpu = self.gpu().ok_or_else(|| {
                Error::validation(
                    "SuiteOptions.gpu",
                    format!(
                        "no GPU is known for {}; set the GPU the suite should spawn",
                        self.provider.name()
                    ),
                )
            })?;
            b = b.gpu(gpu).gpu_count(o.gpu_count.max(1));
        } else if cpu_ok {
            b = b.cpus(o.cpus.max(1)).memory_gb(o.memory_gb.max(1));
        } else {
            return Err(Error::validation(
                "capabilities",
                format!(
                    "{} declares neither spawn_gpu nor spawn_cpu, so the suite cannot spawn",
                    self.provider.name()
                ),
            ));
        }
        if let Some(r) = &o.region {
            b = b.region(r.clone());
        }
        for (k, v) in &o.provider_opts {
            b = b.provider_opt(k.clone(), v.clone());
        }
        Ok(b)
    }

    /// Spawn through the provider and record the id for cleanup. A failed spawn
    /// (for example an ambiguous timeout) is still swept by name at cleanup.
    ///
    /// # Errors
    /// Whatever the provider's `spawn` fails with.
    pub async fn spawn(&self, req: &ComputeRequest) -> Result<Compute> {
        self.records().attempted = true;
        let c = self.provider.spawn(req).await?;
        self.track(&c.id);
        Ok(c)
    }

    /// Record an id spawned some other way so it is terminated at cleanup.
    pub fn track(&self, id: &str) {
        let mut r = self.records();
        if !r.ids.iter().any(|x| x == id) {
            r.ids.push(id.to_string());
        }
    }

    /// Ids recorded and not yet cleaned up.
    pub fn spawned(&self) -> Vec<String> {
        self.records().ids.clone()
    }

    fn records(&self) -> MutexGuard<'_, Records> {
        // A panic while holding this lock cannot leave `Records` inconsistent.
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn has_work(&self) -> bool {
        let r = self.records();
        r.attempted || !r.ids.is_empty()
    }

    /// Terminate everything recorded, then list by this fixture's name prefix and
    /// terminate anything left (a spawn whose response was lost). Never panics; the
    /// recorded ids are cleared, so calling it again only sweeps new work.
    pub async fn cleanup(&self) -> Cleanup {
        let (ids, sweep) = {
            let mut r = self.records();
            let ids = std::mem::take(&mut r.ids);
            let sweep = std::mem::replace(&mut r.attempted, false);
            (ids, sweep)
        };
        let mut out = Cleanup::default();
        for id in ids {
            self.terminate_one(id, &mut out).await;
        }
        if sweep {
            let filter = ListFilter::all().with_name_prefix(format!("{}-", self.prefix));
            let listed =
                futures::FutureExt::catch_unwind(AssertUnwindSafe(self.provider.list(&filter)))
                    .await
                    .unwrap_or_else(|p| {
                        Err(Error::new(
                            ErrorKind::Unknown,
                            format!("list panicked: {}", super::panic_message(&*p)),
                        ))
                    });
            match listed {
                Ok(found) => {
                    for c in found {
                        let name_ok = c
                            .name
                            .as_deref()
                            .is_some_and(|n| n.starts_with(&self.prefix));
                        let done = out.terminated.contains(&c.id)
                            || out.already_gone.contains(&c.id)
                            || c.status == ComputeStatus::Terminated;
                        if name_ok && !done {
                            self.terminate_one(c.id, &mut out).await;
                        }
                    }
                }
                Err(e) => out.failed.push((format!("list {}-*", self.prefix), e)),
            }
        }
        if !out.is_clean() {
            tracing::warn!(prefix = %self.prefix, report = %out, "conformance cleanup left machines");
        }
        out
    }

    async fn terminate_one(&self, id: String, out: &mut Cleanup) {
        // Catch a panicking provider so cleanup of the other ids still happens.
        let r = futures::FutureExt::catch_unwind(AssertUnwindSafe(self.provider.terminate(&id)))
            .await
            .unwrap_or_else(|p| {
                Err(Error::new(
                    ErrorKind::Unknown,
                    format!("terminate panicked: {}", super::panic_message(&*p)),
                ))
            });
        match r {
            Ok(()) => out.terminated.push(id),
            Err(e) if e.kind() == ErrorKind::NotFound => out.already_gone.push(id),
            Err(e) => out.failed.push((id, e)),
        }
    }

    /// Run [`cleanup`](Self::cleanup) to completion from synchronous code (see the
    /// module docs for how it picks a runtime), bounded by
    /// [`SuiteOptions::cleanup_timeout`]. Never panics.
    pub fn cleanup_blocking(&self) -> Cleanup {
        let timeout = self.options.cleanup_timeout;
        let fut = async move {
            match tokio::time::timeout(timeout, self.cleanup()).await {
                Ok(c) => c,
                Err(_) => {
                    let mut c = Cleanup::default();
                    c.failed.push((
                        self.prefix.clone(),
                        Error::new(
                            ErrorKind::Timeout,
                            format!(
                                "cleanup did not finish within {}",
                                humantime::format_duration(timeout)
                            ),
                        ),
                    ));
                    c
                }
            }
        };
        let failed = |why: String| {
            let mut c = Cleanup::default();
            c.failed
                .push((self.prefix.clone(), Error::new(ErrorKind::Unknown, why)));
            c
        };
        match std::panic::catch_unwind(AssertUnwindSafe(|| block_on_anywhere(fut))) {
            Ok(Some(c)) => c,
            Ok(None) => failed("cleanup could not run: no runtime could be started".into()),
            Err(p) => failed(format!("cleanup panicked: {}", super::panic_message(&*p))),
        }
    }
}

/// Drive `fut` to completion from synchronous code, inside or outside a runtime;
/// `None` when no runtime could be started.
fn block_on_anywhere<F>(fut: F) -> Option<F::Output>
where
    F: Future + Send,
    F::Output: Send,
{
    use tokio::runtime::{Builder, Handle, RuntimeFlavor};
    if let Ok(h) = Handle::try_current() {
        if h.runtime_flavor() == RuntimeFlavor::MultiThread {
            return Some(tokio::task::block_in_place(|| h.block_on(fut)));
        }
    }
    std::thread::scope(|s| {
        std::thread::Builder::new()
            .name("atlas-conf-cleanup".into())
            .spawn_scoped(s, || {
                let rt = Builder::new_current_thread().enable_all().build();
                match rt {
                    Ok(rt) => Some(rt.block_on(fut)),
                    Err(e) => {
                        tracing::error!(error = %e, "conformance cleanup could not start a runtime");
                        None
                    }
                }
            })
            .ok()
            .and_then(|h| h.join().ok().flatten())
    })
}

impl Drop for Fixture<'_> {
    fn drop(&mut self) {
        if !self.has_work() {
            return;
        }
        let report = self.cleanup_blocking();
        if report.is_clean() {
            tracing::info!(prefix = %self.prefix, report = %report, "conformance fixture cleaned up on drop");
        } else {
            eprintln!(
                "conformance fixture {} could not clean up on drop: {report}",
                self.prefix
            );
        }
    }
}
