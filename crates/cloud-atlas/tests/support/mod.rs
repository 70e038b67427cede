//! Shared test support: spec-validating contract servers and scripted local servers.
#![allow(dead_code, unreachable_pub)]

pub mod prism;
pub mod queue_server;
pub mod vast_server;
