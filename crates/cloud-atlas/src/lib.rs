//! # cloud-atlas
//!
//! One contract for GPU/CPU compute across clouds (RunPod, Lambda Cloud, Vast.ai,
//! Fly.io Machines, an embedded mock cloud, and any provider you write), plus
//! Fly.io platform operations, browser-to-pod auth and per-user session orchestration.
//!
//! ## Quick start (runs on the mock cloud, no keys)
//!
//! ```
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> cloud_atlas::Result<()> {
//! use std::time::Duration;
//! use cloud_atlas::{AuthMode, ComputeRequest, ComputeStatus, Gpu, Provider, ProviderExt};
//! use cloud_atlas::providers::mock::Mock;
//!
//! let cloud = Mock::in_memory();
//! let req = ComputeRequest::builder()
//!     .gpu(Gpu::H100)
//!     .image("ghcr.io/acme/infer:latest")
//!     .port("8000/http")
//!     .auth(AuthMode::Bearer)
//!     .build()?;
//! let pod = cloud.spawn(&req).await?;
//! let pod = cloud.wait_for(&pod.id, ComputeStatus::Running, Duration::from_secs(10)).await?;
//! assert!(pod.http_url().is_some());
//! cloud.terminate(&pod.id).await?;
//! # Ok(()) }
//! ```
//!
//! Swap `Mock::in_memory()` for `RunPod::from_env()?` (or Lambda, Vast, FlyMachines)
//! and nothing else changes.
//!
//! ## Cargo features
//! - `runpod`, `lambda`, `vast`, `fly` (default): the providers; `fly` also brings Fly platform ops.
//! - `sqlite` (default): persistence for the mock cloud, session store and token store.
//! - `postgres`: PostgreSQL session store and reaper leader lease, for several app nodes
//!   sharing one cloud account (`orchestrator::store::PgSessionStore`).
//! - `testing`: the public provider conformance suite (module `testing`).
//! - `tower`: pod-side auth layers (module `auth::layer`).
//!
//! ## Dependencies and why
//! `reqwest` (rustls) is the one pooled HTTP client; `backon` computes jittered
//! backoff; `tokio`/`tokio-util` run timers (`DelayQueue` for session expiry) and track
//! the orchestrator's tasks (`TaskTracker`, `CancellationToken`);
//! `serde`/`serde_json`/`serde_path_to_error` decode provider JSON and name the failing
//! field; `toml` reads `atlas.toml`; `httpdate` parses `Retry-After` dates; `humantime`
//! parses `15m`-style durations; `tracing`/`metrics` are the telemetry facades;
//! `sha2`/`hmac`/`subtle`/`base64`/`rand` make and check tokens and signatures in constant
//! time; `rusqlite` (bundled SQLite) persists state; `uuid` makes launch ids; `chrono`
//! carries timestamps; `dirs` finds the platform data directory; `serde_norway` reads
//! flyctl's `~/.fly/config.yml` (the maintained fork of the deprecated `serde_yaml`, same
//! API; `serde_yml` is itself deprecated and now a shim over another crate); `walkdir`
//! walks folders for `fly.toml` discovery (depth limit, pruning, sorted, no symlink loops);
//! `eventsource-stream` parses server-sent events (RunPod pod logs) so no SSE framing is
//! hand-written; `percent-encoding` decodes signed-URL query bytes exactly (no lossy
//! UTF-8), which ExAtlas byte-compatibility needs; `http`/`tower-layer`/`tower-service`
//! (feature `tower`) type the pod-side auth layers without pulling in all of `tower`;
//! `tokio-postgres` (feature `postgres`, runtime only, no TLS) is the shared session store
//! and reaper lease for several nodes; no pool (`deadpool-postgres`): every store call is
//! one statement, pipelined on one connection that is re-opened when it drops; `fs4`
//! takes the cross-process file lock around read-modify-write of state files (module
//! `files`; `std::fs::File::lock` needs Rust 1.89, newer than the 1.85 we support).

#![cfg_attr(docsrs, feature(doc_cfg))]
#![deny(missing_docs)]

pub mod auth;
mod client;
pub mod config;
pub mod error;
pub mod files;
#[cfg(feature = "fly")]
pub mod fly;
pub mod http;
pub mod orchestrator;
pub mod placement;
mod provider;
pub mod providers;
pub mod spec;
pub mod wait;

#[cfg(feature = "testing")]
pub mod testing;

/// The guides under `docs/`, included so `cargo test --doc` compiles and runs every Rust
/// snippet in them (see `docs/README.md`).
#[cfg(doctest)]
pub mod guides {
    #[doc = include_str!("../../../docs/getting-started.md")]
    pub struct GettingStarted;
    #[doc = include_str!("../../../docs/sessions.md")]
    pub struct Sessions;
    #[doc = include_str!("../../../docs/telemetry.md")]
    pub struct Telemetry;
    #[doc = include_str!("../../../docs/testing.md")]
    pub struct Testing;
    #[doc = include_str!("../../../docs/security.md")]
    pub struct Security;
    #[doc = include_str!("../../../docs/fly-platform-ops.md")]
    pub struct FlyPlatformOps;
    #[doc = include_str!("../../../docs/several-nodes-postgres.md")]
    pub struct SeveralNodesPostgres;
    #[doc = include_str!("../../../docs/providers/README.md")]
    pub struct Providers;
    #[doc = include_str!("../../../docs/providers/mock.md")]
    pub struct ProviderMock;
    #[doc = include_str!("../../../docs/providers/runpod.md")]
    pub struct ProviderRunpod;
    #[doc = include_str!("../../../docs/providers/lambda.md")]
    pub struct ProviderLambda;
    #[doc = include_str!("../../../docs/providers/vast.md")]
    pub struct ProviderVast;
    #[doc = include_str!("../../../docs/providers/fly-machines.md")]
    pub struct ProviderFlyMachines;
    #[cfg(feature = "testing")]
    #[doc = include_str!("../../../docs/writing-a-provider.md")]
    pub struct WritingAProvider;
}

pub use async_trait::async_trait;
pub use client::{is_not_found, Atlas, AtlasBuilder, Checked};
pub use error::{Error, ErrorKind, Result};
pub use provider::{Provider, ProviderExt, Serverless};
pub use spec::{
    AuthMode, Capabilities, Capability, CloudType, Compute, ComputeRequest, ComputeStatus, Gpu,
    GpuChoice, GpuType, Job, JobRequest, JobStatus, ListFilter, PortBinding, PortSpec, Protocol,
};
