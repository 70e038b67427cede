//! One file per command (or family of commands): its arguments and what it does.

pub(crate) mod auth;
pub(crate) mod completions;
pub(crate) mod compute;
pub(crate) mod demo;
pub(crate) mod edits;
pub(crate) mod fly;
pub(crate) mod gpus;
pub(crate) mod init;
pub(crate) mod job;
pub(crate) mod lambda;
pub(crate) mod logs;
pub(crate) mod mock;
pub(crate) mod providers;
pub(crate) mod reap;
pub(crate) mod remote;
pub(crate) mod runpod;
pub(crate) mod serve;
pub(crate) mod session;
pub(crate) mod upgrade;
pub(crate) mod vast;
