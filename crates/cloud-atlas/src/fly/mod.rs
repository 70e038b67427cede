//! Fly.io platform operations: app discovery, deploys, logs and the API-token lifecycle.

pub mod token_kind;
