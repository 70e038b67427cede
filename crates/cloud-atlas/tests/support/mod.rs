//! Shared test support: spec-validating contract servers and scripted local servers.
#![allow(dead_code, unreachable_pub)]

pub mod garble;
pub mod prism;
pub mod queue_server;
pub mod runpod_runtime;
pub mod vast_server;
