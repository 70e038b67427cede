//! The spec types every provider speaks: requests, compute, jobs, GPUs, capabilities.

mod capability;
mod catalog;
mod compute;
pub mod deadline;
mod duration;
mod gpu;
mod job;

pub use capability::{Capabilities, Capability};
pub use catalog::GpuType;
pub use compute::{
    in_session_namespace, AuthMode, CloudType, Compute, ComputeRequest, ComputeRequestBuilder,
    ComputeStatus, ListFilter, PortBinding, PortSpec, Protocol, LAUNCH_ID_LABEL, SESSION_LABEL,
    SESSION_NAME_PREFIX,
};
pub use duration::{
    deadline_in, duration_in, instant_after, opt_duration, parse_duration, parse_duration_in,
    utc_after, utc_before, DurationRange,
};
pub use gpu::{Gpu, GpuChoice, NATIVE_PREFIX};
pub use job::{validate_endpoint, EndpointHealth, Job, JobRequest, JobStatus};
