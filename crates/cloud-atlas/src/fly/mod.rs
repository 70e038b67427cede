//! Fly.io platform operations: app discovery, deploys, logs and the API-token lifecycle.
//!
//! Usable without any compute provider:
//! - [`discover_apps`] finds `fly.toml` files and their app names;
//! - [`deploy()`] / [`stream_deploy`] run `fly deploy --remote-only` with timers;
//! - [`logs::LogsClient`] fetches an app's logs, [`logs::LogStreamer`] tails them for
//!   many subscribers with one poller per app;
//! - [`tokens::TokenResolver`] finds, caches and refreshes a token per app.
//!
//! The `fly` binary is [`Flyctl`] (default `fly` on `PATH`, or `$ATLAS_FLY_BIN`).
//! Telemetry names are listed below.
//!
//! # Telemetry
//! Spans `atlas.fly.token`, `atlas.fly.logs.fetch`, `atlas.fly.deploy`; metrics
//! `atlas_fly_token_resolutions_total{source,fast_path}`,
//! `atlas_fly_log_fetches_total{app,status}`, `atlas_fly_log_entries_total{app}`,
//! `atlas_fly_deploy_lines_total`, `atlas_fly_deploys_total{result}`,
//! `atlas_fly_deploy_duration_seconds{result}`. Log lines, deploy output and tokens
//! never go into telemetry.

pub mod apps;
pub mod deploy;
mod flyctl;
pub mod logs;
mod telemetry;
pub mod token_kind;
pub mod tokens;

pub use apps::{discover_apps, DiscoveredApp, Discovery, SkippedFile, DEFAULT_MAX_DEPTH};
pub use deploy::{
    deploy, stream_deploy, DeployLine, DeployOptions, DeployOutcome, DeployReport, DeployStatus,
    DeployStream, DeployTimer, OutputStream,
};
pub use flyctl::{Flyctl, DEFAULT_FLY_BIN, DEFAULT_KILL_GRACE, FLY_BIN_ENV};
pub use token_kind::FlyAuth;
pub use tokens::{FileTokenStore, TokenResolver};
