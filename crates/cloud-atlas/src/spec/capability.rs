//! Capabilities as data: what a provider can do, checked before dispatch.

use std::collections::BTreeSet;
use std::fmt;

use serde::{Deserialize, Serialize};

/// One thing a provider may be able to do beyond spawn/get/list/terminate.
///
/// Declaring a capability means the conformance suite exercises it; an undeclared
/// one must answer [`ErrorKind::Unsupported`](crate::ErrorKind::Unsupported).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Capability {
    /// `stop` pauses compute.
    Stop,
    /// `start` resumes stopped compute.
    Start,
    /// `gpu_types` lists a catalog with prices.
    GpuTypes,
    /// `serverless()` returns a job API.
    Serverless,
    /// Spawning with `spot: true`.
    SpawnSpot,
    /// Spawning GPU machines.
    SpawnGpu,
    /// Spawning CPU-only machines.
    SpawnCpu,
    /// Spawning with a persistent volume.
    SpawnWithVolume,
    /// Spawning with exposed ports.
    SpawnWithPorts,
    /// Spawning with `max_runtime` enforced by the provider itself, with or without a
    /// command (the mock).
    ProviderDeadline,
    /// Spawning with `max_runtime` and a `command`: the command is wrapped so the machine
    /// ends itself, the provider's way, when the command ends or at max runtime, with no
    /// restart (see [`deadline`](crate::spec::deadline)). Without a command such a
    /// provider refuses `max_runtime` with `Unsupported`.
    CommandDeadline,
    /// Container logs can be read.
    Logs,
}

impl Capability {
    /// Every capability.
    pub const ALL: &'static [Capability] = &[
        Capability::Stop,
        Capability::Start,
        Capability::GpuTypes,
        Capability::Serverless,
        Capability::SpawnSpot,
        Capability::SpawnGpu,
        Capability::SpawnCpu,
        Capability::SpawnWithVolume,
        Capability::SpawnWithPorts,
        Capability::ProviderDeadline,
        Capability::CommandDeadline,
        Capability::Logs,
    ];

    /// snake_case name.
    pub fn as_str(self) -> &'static str {
        match self {
            Capability::Stop => "stop",
            Capability::Start => "start",
            Capability::GpuTypes => "gpu_types",
            Capability::Serverless => "serverless",
            Capability::SpawnSpot => "spawn_spot",
            Capability::SpawnGpu => "spawn_gpu",
            Capability::SpawnCpu => "spawn_cpu",
            Capability::SpawnWithVolume => "spawn_with_volume",
            Capability::SpawnWithPorts => "spawn_with_ports",
            Capability::ProviderDeadline => "provider_deadline",
            Capability::CommandDeadline => "command_deadline",
            Capability::Logs => "logs",
        }
    }
}

impl fmt::Display for Capability {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The set of capabilities a provider declares, plus limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    set: BTreeSet<Capability>,
    max_gpus_per_instance: Option<u32>,
}

impl Capabilities {
    /// A set of capabilities.
    pub fn new(caps: impl IntoIterator<Item = Capability>) -> Capabilities {
        Capabilities {
            set: caps.into_iter().collect(),
            max_gpus_per_instance: None,
        }
    }
    /// Set the most GPUs one instance can have.
    pub fn with_max_gpus_per_instance(mut self, n: u32) -> Capabilities {
        self.max_gpus_per_instance = Some(n);
        self
    }
    /// The most GPUs one instance can have, when limited.
    pub fn max_gpus_per_instance(&self) -> Option<u32> {
        self.max_gpus_per_instance
    }
    /// Whether `cap` is declared.
    pub fn contains(&self, cap: Capability) -> bool {
        self.set.contains(&cap)
    }
    /// Iterate in a stable order.
    pub fn iter(&self) -> impl Iterator<Item = Capability> + '_ {
        self.set.iter().copied()
    }
}
