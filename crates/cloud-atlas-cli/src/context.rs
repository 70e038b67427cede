//! What every command starts from: the loaded config, the chosen provider and the output.

use cloud_atlas::config::{self, Config, ProviderSettings};
use cloud_atlas::{providers, Checked, Result};

use crate::output::Out;
use crate::GlobalArgs;

/// The provider used when neither `--provider` nor `default_provider` names one.
pub(crate) const FALLBACK_PROVIDER: &str = "mock";

/// Loaded configuration plus the global flags.
#[derive(Debug)]
pub(crate) struct Context {
    /// Resolved `atlas.toml` + environment.
    pub(crate) config: Config,
    /// The provider commands run against.
    pub(crate) provider: String,
    /// Whether `--provider` was given explicitly.
    pub(crate) provider_explicit: bool,
    /// Where results go.
    pub(crate) out: Out,
    api_key: Option<String>,
    base_url: Option<String>,
}

impl Context {
    /// Load `atlas.toml` (`--config`, `$ATLAS_CONFIG` or the nearest one) and pick the provider.
    ///
    /// # Errors
    /// `Validation` naming the config file when it cannot be read or parsed.
    pub(crate) fn load(global: &GlobalArgs) -> Result<Context> {
        let config = Config::load(global.config.as_deref())?;
        let provider = global
            .provider
            .clone()
            .or_else(|| config.default_provider.clone())
            .unwrap_or_else(|| FALLBACK_PROVIDER.to_string())
            .trim()
            .to_ascii_lowercase();
        Ok(Context {
            config,
            provider,
            provider_explicit: global.provider.is_some(),
            out: Out::new(global.output),
            api_key: global.api_key.clone(),
            base_url: global.base_url.clone(),
        })
    }

    /// Settings for `name`; the `--api-key`/`--base-url` overrides apply to the chosen provider only.
    pub(crate) fn settings(&self, name: &str) -> ProviderSettings {
        let s = self.config.provider_settings(name);
        if name == self.provider {
            config::with_overrides(s, self.api_key.as_deref(), self.base_url.as_deref())
        } else {
            s
        }
    }

    /// The chosen provider, behind capability checks.
    ///
    /// # Errors
    /// `Unauthorized` naming the env var when the provider needs a key and none is set
    /// (checked before anything is built); `Validation` for an unknown provider.
    pub(crate) fn provider(&self) -> Result<Checked> {
        self.build(&self.provider)
    }

    /// Provider `name`, behind capability checks (see [`Context::provider`]).
    pub(crate) fn build(&self, name: &str) -> Result<Checked> {
        let settings = self.settings(name);
        if !config::api_key_env_vars(name).is_empty() {
            settings.require_api_key(display_name(name))?;
        }
        let p = providers::build(name, settings, &self.config)?;
        Ok(Checked::new(p))
    }
}

/// How a provider is named in messages.
pub(crate) fn display_name(name: &str) -> &str {
    match name {
        "runpod" => "RunPod",
        "lambda" => "Lambda",
        "vast" => "Vast.ai",
        "fly" => "Fly.io",
        "mock" => "Mock cloud",
        other => other,
    }
}
