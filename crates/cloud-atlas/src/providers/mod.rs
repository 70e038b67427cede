//! Provider implementations, and the one table of them: name, display name, key env
//! vars, configuration keys and constructor ([`PROVIDERS`]).

use std::sync::Arc;

use crate::config::keys::{ConfigKey, KeySpec, ValueKind};
use crate::config::{Config, ProviderSettings};
use crate::error::{Error, Result};
use crate::provider::Provider;

#[cfg(feature = "fly")]
pub mod fly_machines;
#[cfg(feature = "lambda")]
pub mod lambda;
pub mod mock;
mod reconcile;
#[cfg(feature = "runpod")]
pub mod runpod;
#[cfg(feature = "vast")]
pub mod vast;

/// One provider this build knows.
#[derive(Debug)]
#[non_exhaustive]
pub struct ProviderEntry {
    /// The name used by `--provider`, `[providers.<name>]` and `Compute::provider`.
    pub name: &'static str,
    /// How the provider is named in messages (`RunPod`, `Vast.ai`).
    pub display_name: &'static str,
    /// Its configuration keys (the provider's config-key enum, as data).
    pub keys: &'static [KeySpec],
    /// Build it from resolved settings (see [`Config::provider_settings`]).
    pub build: fn(ProviderSettings, &Config) -> Result<Arc<dyn Provider>>,
}

impl ProviderEntry {
    /// Env vars holding its API key, canonical first (empty when it needs none).
    pub fn key_env_vars(&self) -> &'static [&'static str] {
        self.keys
            .iter()
            .find(|k| k.kind == ValueKind::Secret)
            .map_or(&[], |k| k.env)
    }

    /// Whether it needs an API key.
    pub fn needs_key(&self) -> bool {
        self.keys.iter().any(|k| k.kind == ValueKind::Secret)
    }
}

/// Every provider this build knows, in display order.
pub static PROVIDERS: &[ProviderEntry] = &[
    ProviderEntry {
        name: mock::NAME,
        display_name: "Mock cloud",
        keys: <mock::MockConfigKey as ConfigKey>::SPECS,
        build: |s, c| Ok(Arc::new(mock::Mock::from_config(c, &s)?)),
    },
    #[cfg(feature = "runpod")]
    ProviderEntry {
        name: runpod::translate::NAME,
        display_name: "RunPod",
        keys: <runpod::RunPodConfigKey as ConfigKey>::SPECS,
        build: |s, _| Ok(Arc::new(runpod::RunPodBuilder::from_settings(s).build()?)),
    },
    #[cfg(feature = "lambda")]
    ProviderEntry {
        name: lambda::translate::NAME,
        display_name: "Lambda",
        keys: <lambda::LambdaConfigKey as ConfigKey>::SPECS,
        build: |s, _| Ok(Arc::new(lambda::LambdaBuilder::from_settings(s).build()?)),
    },
    #[cfg(feature = "vast")]
    ProviderEntry {
        name: vast::translate::NAME,
        display_name: "Vast.ai",
        keys: <vast::VastConfigKey as ConfigKey>::SPECS,
        build: |s, _| Ok(Arc::new(vast::VastBuilder::from_settings(s).build()?)),
    },
    #[cfg(feature = "fly")]
    ProviderEntry {
        name: fly_machines::translate::NAME,
        display_name: "Fly.io",
        keys: <fly_machines::FlyConfigKey as ConfigKey>::SPECS,
        build: |s, _| {
            Ok(Arc::new(
                fly_machines::FlyMachinesBuilder::from_settings(s).build()?,
            ))
        },
    },
];

/// The entry for `name`, if this build knows it.
pub fn find(name: &str) -> Option<&'static ProviderEntry> {
    PROVIDERS.iter().find(|p| p.name == name)
}

/// The entry for `name`.
///
/// # Errors
/// `Validation` naming `provider` and the allowed names.
pub fn entry(name: &str) -> Result<&'static ProviderEntry> {
    find(name).ok_or_else(|| {
        Error::validation(
            "provider",
            format!(
                "{name:?} is not a provider; allowed: {}",
                known().join(", ")
            ),
        )
    })
}

/// Names of the providers this build knows, in display order.
pub fn known() -> Vec<&'static str> {
    PROVIDERS.iter().map(|p| p.name).collect()
}

/// How `name` is shown in messages (`RunPod`); an unknown name as it is.
pub fn display_name(name: &str) -> &str {
    find(name).map_or(name, |p| p.display_name)
}

/// Build the provider `name` from resolved `settings` (see [`Config::provider_settings`]).
///
/// # Errors
/// `Validation` for an unknown name; whatever the provider's builder reports
/// (a missing API key is `Unauthorized` naming the env var).
pub fn build(name: &str, settings: ProviderSettings, config: &Config) -> Result<Arc<dyn Provider>> {
    (entry(name)?.build)(settings, config)
}
