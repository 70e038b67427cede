//! Provider implementations, and building one by name from configuration.

use std::sync::Arc;

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

/// Names of the providers this build knows, in display order.
pub fn known() -> Vec<&'static str> {
    [
        ("mock", true),
        ("runpod", cfg!(feature = "runpod")),
        ("lambda", cfg!(feature = "lambda")),
        ("vast", cfg!(feature = "vast")),
        ("fly", cfg!(feature = "fly")),
    ]
    .into_iter()
    .filter_map(|(name, built)| built.then_some(name))
    .collect()
}

/// Build the provider `name` from resolved `settings` (see [`Config::provider_settings`]).
///
/// # Errors
/// `Validation` for an unknown name; whatever the provider's builder reports
/// (a missing API key is `Unauthorized` naming the env var).
pub fn build(name: &str, settings: ProviderSettings, config: &Config) -> Result<Arc<dyn Provider>> {
    match name {
        "mock" => Ok(Arc::new(mock::Mock::from_config(config, &settings)?)),
        #[cfg(feature = "runpod")]
        "runpod" => Ok(Arc::new(
            runpod::RunPodBuilder::from_config(settings, config).build()?,
        )),
        #[cfg(feature = "fly")]
        "fly" => {
            let settings_has_org = settings.option_str("org").is_some();
            let mut b = fly_machines::FlyMachinesBuilder::from_settings(settings);
            if let Some(app) = config
                .env(fly_machines::FLY_APP_NAME_ENV)
                .filter(|a| !a.is_empty())
            {
                if b.app().is_none() {
                    b = b.with_app(app);
                }
            }
            if !settings_has_org {
                if let Some(org) = config
                    .env(fly_machines::FLY_ORG_ENV)
                    .filter(|o| !o.is_empty())
                {
                    b = b.with_org(org);
                }
            }
            Ok(Arc::new(b.build()?))
        }
        #[cfg(feature = "lambda")]
        "lambda" => Ok(Arc::new(
            lambda::LambdaBuilder::from_settings(settings).build()?,
        )),
        #[cfg(feature = "vast")]
        "vast" => Ok(Arc::new(
            vast::VastBuilder::from_settings(settings).build()?,
        )),
        _ => Err(Error::validation(
            "provider",
            format!(
                "{name:?} is not a provider; allowed: {}",
                known().join(", ")
            ),
        )),
    }
}
