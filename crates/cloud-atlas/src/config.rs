//! Configuration: `atlas.toml`, environment variables, per-call overrides.
//!
//! Resolution order for every provider setting: **per-call override > file > env var**.
//!
//! The file is the first of: the path given explicitly (`--config`), `$ATLAS_CONFIG`,
//! the nearest `atlas.toml` walking up from the current directory; then the per-user
//! file (`<config dir>/cloud-atlas/atlas.toml`) fills what the project file leaves unset.
//!
//! ```toml
//! default_provider = "mock"
//!
//! [providers.runpod]
//! # api_key = "..."            # prefer the RUNPOD_API_KEY env var
//! base_url = "http://127.0.0.1:4010"
//!
//! [providers.fly]
//! app = "my-app"               # provider-specific options live beside the key
//! ```
//!
//! The data directory (mock cloud state, session store, token store) is `$ATLAS_HOME`,
//! else `.atlas/` beside the nearest `atlas.toml`, else the platform data directory.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::Secret;
use crate::error::{Error, ErrorKind, Result};

/// Env var naming the config file.
pub const ATLAS_CONFIG_ENV: &str = "ATLAS_CONFIG";
/// Env var naming the data directory.
pub const ATLAS_HOME_ENV: &str = "ATLAS_HOME";
/// Env var holding the time budget of one provider call (`30s`, `2m`); overrides
/// `timeout` in `atlas.toml`.
pub const ATLAS_TIMEOUT_ENV: &str = "ATLAS_TIMEOUT";
/// Name of the project config file.
pub const CONFIG_FILE_NAME: &str = "atlas.toml";
/// The `atlas.toml` format version this build writes and reads (`version = 1`).
///
/// A file without `version` is version 0 (written before the key existed) and still
/// loads; `atlas upgrade` rewrites it to this version. A file with a newer version is
/// refused: it may hold keys this build would misread.
pub const CONFIG_VERSION: u32 = 1;

/// Env vars holding each known provider's API key (first is canonical, the rest aliases).
pub fn api_key_env_vars(provider: &str) -> &'static [&'static str] {
    match provider {
        "runpod" => &["RUNPOD_API_KEY"],
        "lambda" => &["LAMBDA_API_KEY", "LAMBDA_LABS_API_KEY"],
        "vast" => &["VAST_API_KEY"],
        "fly" => &["FLY_API_TOKEN"],
        _ => &[],
    }
}

/// Env var overriding a provider's base URL: `ATLAS_<PROVIDER>_BASE_URL`.
pub fn base_url_env_var(provider: &str) -> String {
    format!(
        "ATLAS_{}_BASE_URL",
        provider.to_ascii_uppercase().replace('-', "_")
    )
}

/// Settings for one provider after resolution.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct ProviderSettings {
    /// Provider name.
    pub provider: String,
    /// API key, when found.
    pub api_key: Option<Secret>,
    /// Where the key came from (`--api-key`, `atlas.toml`, `RUNPOD_API_KEY`).
    pub api_key_source: Option<String>,
    /// Base URL override, when set.
    pub base_url: Option<String>,
    /// Other keys from the provider's table in `atlas.toml`.
    pub options: toml::Table,
}

impl ProviderSettings {
    /// Empty settings for `provider`.
    pub fn new(provider: impl Into<String>) -> ProviderSettings {
        ProviderSettings {
            provider: provider.into(),
            ..ProviderSettings::default()
        }
    }

    /// Settings for `provider` from environment variables only (no files): the key from
    /// its env var(s), the base URL from `ATLAS_<PROVIDER>_BASE_URL`.
    pub fn from_env(provider: &str) -> ProviderSettings {
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let mut c = Config::empty(".");
        c.env = env;
        c.provider_settings(provider)
    }

    /// The API key, or an `Unauthorized` error that names the env var and the options.
    ///
    /// An empty or blank key counts as missing.
    pub fn require_api_key(&self, display_name: &str) -> Result<Secret> {
        let key = self
            .api_key
            .clone()
            .filter(|k| !k.expose().trim().is_empty());
        key.ok_or_else(|| {
            let vars = api_key_env_vars(&self.provider);
            let var = vars.first().copied().unwrap_or("the provider's key variable");
            Error::new(
                ErrorKind::Unauthorized,
                format!(
                    "{display_name} API key missing: set {var}, or api_key under [providers.{}] in atlas.toml, or pass --api-key-file",
                    self.provider
                ),
            )
            .with_provider(self.provider.clone())
        })
    }

    /// A string option from the provider's table.
    pub fn option_str(&self, key: &str) -> Option<&str> {
        self.options.get(key).and_then(|v| v.as_str())
    }
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    version: Option<u32>,
    default_provider: Option<String>,
    data_dir: Option<PathBuf>,
    /// Time budget of one provider call (`"30s"`, `"2m"`).
    timeout: Option<String>,
    #[serde(default)]
    providers: BTreeMap<String, toml::Table>,
    #[serde(default)]
    orchestrator: Option<toml::Table>,
    #[serde(default)]
    mock: Option<toml::Table>,
    #[serde(default)]
    server: Option<toml::Table>,
}

/// Parse a call time budget named `field` (1 s to 7 d).
fn call_timeout(field: &str, raw: &str) -> Result<std::time::Duration> {
    crate::spec::duration_in(raw, crate::spec::DurationRange::WAIT)
        .map_err(|m| Error::validation(field, m))
}

/// Resolved configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The project file that was read, if any.
    pub file: Option<PathBuf>,
    /// Data directory.
    pub data_dir: PathBuf,
    /// Default provider name.
    pub default_provider: Option<String>,
    /// Time budget of one provider call, from `ATLAS_TIMEOUT` or `timeout` in the file
    /// (1 s to 7 d); `None`: the defaults of [`CallBudget`](crate::http::budget::CallBudget).
    pub timeout: Option<std::time::Duration>,
    /// `[orchestrator]` table.
    pub orchestrator: toml::Table,
    /// `[mock]` table.
    pub mock: toml::Table,
    /// `[server]` table (`atlas serve`; parsed strictly by `cloud-atlas-web`).
    pub server: toml::Table,
    providers: BTreeMap<String, toml::Table>,
    env: BTreeMap<String, String>,
}

impl Config {
    /// Load from the current directory and the process environment.
    ///
    /// # Errors
    /// `Validation` naming the file when it cannot be read or parsed.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let env: BTreeMap<String, String> = std::env::vars().collect();
        let user = dirs::config_dir().map(|d| d.join("cloud-atlas").join(CONFIG_FILE_NAME));
        Config::load_with(&cwd, explicit, &env, user.as_deref())
    }

    /// Load with an explicit directory, environment and per-user file (for tests).
    ///
    /// # Errors
    /// `Validation` naming the file when it cannot be read or parsed.
    pub fn load_with(
        cwd: &Path,
        explicit: Option<&Path>,
        env: &BTreeMap<String, String>,
        user_file: Option<&Path>,
    ) -> Result<Config> {
        let project = match explicit {
            Some(p) => Some(p.to_path_buf()),
            None => match env.get(ATLAS_CONFIG_ENV).filter(|s| !s.is_empty()) {
                Some(p) => Some(PathBuf::from(p)),
                None => find_upwards(cwd),
            },
        };
        let mut fc = match &project {
            Some(p) => read_file(p)?,
            None => FileConfig::default(),
        };
        if let Some(u) = user_file.filter(|u| u.is_file() && Some(*u) != project.as_deref()) {
            let uc = read_file(u)?;
            fc.default_provider = fc.default_provider.or(uc.default_provider);
            fc.timeout = fc.timeout.or(uc.timeout);
            for (name, table) in uc.providers {
                let entry = fc.providers.entry(name).or_default();
                for (k, v) in table {
                    entry.entry(k).or_insert(v);
                }
            }
        }
        let project_dir = project
            .as_ref()
            .and_then(|p| p.parent().map(Path::to_path_buf))
            .map(|d| {
                if d.as_os_str().is_empty() {
                    cwd.to_path_buf()
                } else {
                    d
                }
            });
        let data_dir = match env.get(ATLAS_HOME_ENV).filter(|s| !s.is_empty()) {
            Some(h) => PathBuf::from(h),
            None => match (&fc.data_dir, &project_dir) {
                (Some(d), Some(pd)) if d.is_relative() => pd.join(d),
                (Some(d), _) => d.clone(),
                (None, Some(pd)) => pd.join(".atlas"),
                (None, None) => dirs::data_dir()
                    .unwrap_or_else(|| cwd.to_path_buf())
                    .join("cloud-atlas"),
            },
        };
        let timeout = match env.get(ATLAS_TIMEOUT_ENV).filter(|s| !s.trim().is_empty()) {
            Some(raw) => Some(call_timeout(ATLAS_TIMEOUT_ENV, raw)?),
            None => fc
                .timeout
                .as_deref()
                .map(|raw| call_timeout("timeout", raw))
                .transpose()?,
        };
        Ok(Config {
            file: project,
            data_dir,
            default_provider: fc.default_provider,
            timeout,
            orchestrator: fc.orchestrator.unwrap_or_default(),
            mock: fc.mock.unwrap_or_default(),
            server: fc.server.unwrap_or_default(),
            providers: fc.providers,
            env: env.clone(),
        })
    }

    /// An empty config with `data_dir` (tests, embedding).
    pub fn empty(data_dir: impl Into<PathBuf>) -> Config {
        Config {
            file: None,
            data_dir: data_dir.into(),
            default_provider: None,
            timeout: None,
            orchestrator: toml::Table::new(),
            mock: toml::Table::new(),
            server: toml::Table::new(),
            providers: BTreeMap::new(),
            env: BTreeMap::new(),
        }
    }

    /// Settings for `provider`: file values first, then env vars.
    pub fn provider_settings(&self, provider: &str) -> ProviderSettings {
        let mut s = ProviderSettings::new(provider);
        let mut table = self.providers.get(provider).cloned().unwrap_or_default();
        if let Some(toml::Value::String(k)) = table.remove("api_key") {
            s.api_key = Some(Secret::new(k));
            s.api_key_source = Some(format!("atlas.toml [providers.{provider}]"));
        }
        if let Some(toml::Value::String(u)) = table.remove("base_url") {
            s.base_url = Some(u);
        }
        if s.api_key.is_none() {
            for var in api_key_env_vars(provider) {
                if let Some(v) = self.env.get(*var).filter(|v| !v.trim().is_empty()) {
                    s.api_key = Some(Secret::new(v.trim()));
                    s.api_key_source = Some((*var).to_string());
                    break;
                }
            }
        }
        if s.base_url.is_none() {
            s.base_url = self
                .env
                .get(&base_url_env_var(provider))
                .filter(|v| !v.is_empty())
                .cloned();
        }
        s.options = table;
        s
    }

    /// An environment variable as seen when the config was loaded.
    pub fn env(&self, name: &str) -> Option<&str> {
        self.env.get(name).map(String::as_str)
    }
}

/// Apply per-call overrides on top of resolved settings.
pub fn with_overrides(
    mut s: ProviderSettings,
    api_key: Option<&str>,
    base_url: Option<&str>,
) -> ProviderSettings {
    if let Some(k) = api_key {
        s.api_key = Some(Secret::new(k));
        s.api_key_source = Some("--api-key".into());
    }
    if let Some(u) = base_url {
        s.base_url = Some(u.to_string());
    }
    s
}

/// The nearest `atlas.toml` in `start` or a parent folder (what [`Config::load`] reads
/// when neither `--config` nor `$ATLAS_CONFIG` names a file).
pub fn find_project_file(start: &Path) -> Option<PathBuf> {
    find_upwards(start)
}

fn find_upwards(start: &Path) -> Option<PathBuf> {
    let mut dir = Some(start);
    while let Some(d) = dir {
        let c = d.join(CONFIG_FILE_NAME);
        if c.is_file() {
            return Some(c);
        }
        dir = d.parent();
    }
    None
}

fn read_file(path: &Path) -> Result<FileConfig> {
    let text = crate::files::read_file_to_string(path, crate::files::MAX_CONFIG_BYTES)
        .map_err(|e| Error::validation("config", format!("cannot read {}: {e}", path.display())))?;
    let fc: FileConfig = toml::from_str(&text).map_err(|e| {
        Error::validation(
            "config",
            format!("{} is not valid: {}", path.display(), e.message()),
        )
    })?;
    match fc.version {
        Some(v) if v > CONFIG_VERSION => Err(Error::validation(
            "version",
            format!(
                "{} has version = {v}, newer than this atlas understands ({CONFIG_VERSION}): upgrade atlas",
                path.display()
            ),
        )),
        _ => Ok(fc),
    }
}

/// Create `dir` (and any missing parents) `0700` on Unix: it may hold secrets.
///
/// Only folders this call creates get that mode; an existing folder keeps the mode its
/// owner gave it (`ATLAS_HOME=/tmp` must not lock down `/tmp`).
///
/// # Errors
/// `Unknown` naming the folder when it cannot be created.
pub fn ensure_private_dir(dir: &Path) -> Result<()> {
    if dir.as_os_str().is_empty() || dir.is_dir() {
        return Ok(());
    }
    let mut b = std::fs::DirBuilder::new();
    b.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        b.mode(0o700);
    }
    b.create(dir).map_err(|e| {
        Error::new(
            ErrorKind::Unknown,
            format!("cannot create {}: {e}", dir.display()),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn file_beats_env_and_override_beats_file() {
        let dir = tempfile::tempdir().unwrap();
        let sub = dir.path().join("a/b");
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(
            dir.path().join("atlas.toml"),
            "[providers.runpod]\napi_key = \"file-key\"\n",
        )
        .unwrap();
        let e = env(&[("RUNPOD_API_KEY", "env-key"), ("LAMBDA_LABS_API_KEY", "lk")]);
        let c = Config::load_with(&sub, None, &e, None).unwrap();
        assert_eq!(c.data_dir, dir.path().join(".atlas"));
        let s = c.provider_settings("runpod");
        assert_eq!(s.api_key.as_ref().unwrap().expose(), "file-key");
        let s = with_overrides(s, Some("cli-key"), Some("http://x"));
        assert_eq!(s.api_key.unwrap().expose(), "cli-key");
        assert_eq!(
            c.provider_settings("lambda").api_key.unwrap().expose(),
            "lk"
        );
    }

    #[test]
    fn blank_key_is_missing() {
        let s = with_overrides(ProviderSettings::new("vast"), Some("  "), None);
        let e = s.require_api_key("Vast.ai").unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(e.message().contains("VAST_API_KEY"));
    }

    #[test]
    fn missing_key_names_env_var() {
        let c = Config::load_with(Path::new("/nonexistent"), None, &env(&[]), None).unwrap();
        let e = c
            .provider_settings("runpod")
            .require_api_key("RunPod")
            .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Unauthorized);
        assert!(e.message().contains("RUNPOD_API_KEY"));
    }

    #[test]
    fn base_url_env_and_home() {
        let e = env(&[
            ("ATLAS_VAST_BASE_URL", "http://127.0.0.1:9"),
            ("ATLAS_HOME", "/tmp/h"),
        ]);
        let c = Config::load_with(Path::new("/nonexistent"), None, &e, None).unwrap();
        assert_eq!(c.data_dir, PathBuf::from("/tmp/h"));
        assert_eq!(
            c.provider_settings("vast").base_url.as_deref(),
            Some("http://127.0.0.1:9")
        );
    }

    #[test]
    fn version_key_is_accepted_and_newer_refused() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("atlas.toml");
        std::fs::write(&p, format!("version = {CONFIG_VERSION}\n")).unwrap();
        Config::load_with(dir.path(), Some(&p), &env(&[]), None).unwrap();
        std::fs::write(&p, format!("version = {}\n", CONFIG_VERSION + 1)).unwrap();
        let e = Config::load_with(dir.path(), Some(&p), &env(&[]), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().contains("newer"), "{}", e.message());
        assert!(e.message().contains("upgrade atlas"), "{}", e.message());
    }

    #[test]
    fn bad_file_is_one_line_error() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("atlas.toml");
        std::fs::write(&p, "default_provider = 3\n").unwrap();
        let e = Config::load_with(dir.path(), Some(&p), &env(&[]), None).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
    }
}
