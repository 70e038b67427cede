//! The spec types every provider speaks: requests, compute, jobs, GPUs, capabilities.

mod capability;
mod catalog;
mod compute;
mod gpu;
mod job;

pub use capability::{Capabilities, Capability};
pub use catalog::GpuType;
pub use compute::{
    opt_duration, parse_duration, AuthMode, CloudType, Compute, ComputeRequest,
    ComputeRequestBuilder, ComputeStatus, ListFilter, PortBinding, PortSpec, Protocol,
    LAUNCH_ID_LABEL,
};
pub use gpu::Gpu;
pub use job::{validate_endpoint, EndpointHealth, Job, JobRequest, JobStatus};
