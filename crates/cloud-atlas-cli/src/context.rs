//! What every command starts from: the loaded config, the chosen provider and the output.

use cloud_atlas::auth::Secret;
use cloud_atlas::config::{self, Config, ProviderSettings};
use cloud_atlas::http::budget::CallBudget;
use cloud_atlas::{files, providers, Checked, Error, Result};

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
    api_key: Option<(Secret, &'static str)>,
    base_url: Option<String>,
    /// The time budget of each provider call (`--call-timeout` > `ATLAS_TIMEOUT` >
    /// `timeout` in atlas.toml > the defaults).
    pub(crate) budget: CallBudget,
}

impl Context {
    /// Load `atlas.toml` (`--config`, `$ATLAS_CONFIG` or the nearest one) and pick the provider.
    ///
    /// # Errors
    /// `Validation` naming the config file when it cannot be read or parsed, or
    /// `--base-url` when it is not an http(s) URL.
    pub(crate) fn load(global: &GlobalArgs) -> Result<Context> {
        let config = Config::load(global.config.as_deref())?;
        if let Some(u) = &global.base_url {
            config::keys::parse_url("--base-url", u)?;
        }
        let provider = global
            .provider
            .clone()
            .or_else(|| config.default_provider.clone())
            .unwrap_or_else(|| FALLBACK_PROVIDER.to_string())
            .trim()
            .to_ascii_lowercase();
        Ok(Context {
            provider,
            provider_explicit: global.provider.is_some(),
            out: Out::new(global.output),
            api_key: api_key_override(global)?,
            base_url: global.base_url.clone(),
            budget: global
                .call_timeout
                .or(config.timeout)
                .map_or_else(CallBudget::default, CallBudget::every_call),
            config,
        })
    }

    /// Settings for `name`; the `--api-key`/`--base-url` overrides apply to the chosen provider only.
    pub(crate) fn settings(&self, name: &str) -> ProviderSettings {
        let s = self.config.provider_settings(name);
        if name == self.provider {
            let key = self.api_key.as_ref().map(|(k, _)| k.expose());
            let mut s = config::with_overrides(s, key, self.base_url.as_deref());
            if let Some((_, source)) = &self.api_key {
                s.api_key_source = Some((*source).to_string());
            }
            s
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
        if name == ALL_PROVIDERS {
            return Err(Error::validation(
                "provider",
                format!(
                    "`all` (every configured provider) works with `atlas ls` and `atlas gpus`; for this command name one of: {}",
                    providers::known().join(", ")
                ),
            ));
        }
        let entry = providers::entry(name)?;
        let settings = self.settings(name);
        if entry.needs_key() {
            settings.require_api_key(entry.display_name)?;
        }
        let p = (entry.build)(settings, &self.config)?;
        Ok(Checked::new(p).with_budget(self.budget))
    }
}

/// `--provider all`: every configured provider.
pub(crate) const ALL_PROVIDERS: &str = "all";

impl Context {
    /// Every configured provider, in display order, each built (or why it cannot be).
    /// Configured: it needs no API key (the mock), or its key is set (`atlas.toml`, the
    /// env var). Providers without a key are left out, not failures.
    ///
    /// # Errors
    /// `Validation` when `--api-key`, `--api-key-file` or `--base-url` is given: each names
    /// one provider's API, not all of them.
    pub(crate) fn configured(&self) -> Result<Vec<(&'static str, Result<Checked>)>> {
        if self.api_key.is_some() || self.base_url.is_some() {
            return Err(Error::validation(
                "provider",
                "--api-key, --api-key-file and --base-url name one provider's API; with --provider all set each provider's key and base URL in atlas.toml or its env vars",
            ));
        }
        Ok(providers::known()
            .into_iter()
            .filter(|name| {
                config::api_key_env_vars(name).is_empty()
                    || self.config.provider_settings(name).api_key.is_some()
            })
            .map(|name| (name, self.build(name)))
            .collect())
    }
}

/// How a provider is named in messages.
pub(crate) fn display_name(name: &str) -> &str {
    providers::display_name(name)
}

/// The key from `--api-key`, or read from `--api-key-file` (`-` = stdin), with its source.
///
/// # Errors
/// `Validation` naming `--api-key-file` when the file cannot be read, is empty, holds
/// more than one line or is over 64 KiB.
fn api_key_override(global: &GlobalArgs) -> Result<Option<(Secret, &'static str)>> {
    if let Some(k) = &global.api_key {
        return Ok(Some((Secret::new(k.as_str()), "--api-key")));
    }
    let Some(path) = &global.api_key_file else {
        return Ok(None);
    };
    let (read, shown) = if path.as_os_str() == "-" {
        (
            files::read_limited(std::io::stdin().lock(), files::MAX_SECRET_BYTES),
            "stdin".to_string(),
        )
    } else {
        (
            files::read_file(path, files::MAX_SECRET_BYTES),
            path.display().to_string(),
        )
    };
    let bad = |why: String| Error::validation("--api-key-file", why);
    let bytes = read.map_err(|e| bad(format!("cannot read {shown}: {e}")))?;
    let text = String::from_utf8(bytes).map_err(|_| bad(format!("{shown} is not UTF-8 text")))?;
    let key = text.trim();
    if key.is_empty() {
        return Err(bad(format!("{shown} holds no key")));
    }
    if key.contains(['\n', '\r']) {
        return Err(bad(format!(
            "{shown} holds several lines; put the key alone on one line"
        )));
    }
    Ok(Some((Secret::new(key), "--api-key-file")))
}
