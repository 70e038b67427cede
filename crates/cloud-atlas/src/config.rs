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
//! Every provider table is strict: its keys are the provider's config-key enum
//! ([`keys`]; e.g. [`RunPodConfigKey`](crate::providers::runpod::RunPodConfigKey)), with
//! aliases (`key` for `api_key`, `url` for `base_url`). An unknown key, a value of the
//! wrong type or an unparsable URL or duration is a `Validation` error naming the key
//! and what is allowed, when the file is loaded: a typo such as `baseurl` never sends
//! the real key to the production URL. The same enum names the env vars
//! (`RUNPOD_API_KEY`, `ATLAS_RUNPOD_BASE_URL`, …), read here and nowhere else.
//!
//! The data directory (mock cloud state, session store, token store) is `$ATLAS_HOME`,
//! else `.atlas/` beside the nearest `atlas.toml`, else the platform data directory.

pub mod keys;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use crate::auth::Secret;
use crate::error::{Error, ErrorKind, Result};
use keys::{ConfigKey, ValueKind};

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
    crate::providers::find(provider).map_or(&[], |p| p.key_env_vars())
}

/// The process environment, read once per load (the one place the crate reads it).
fn process_env() -> BTreeMap<String, String> {
    std::env::vars().collect()
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
    /// Other keys (canonical names of the provider's config-key enum) in string form,
    /// from `atlas.toml`, the environment or `with_config`.
    pub options: BTreeMap<String, String>,
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
        let mut c = Config::empty(".");
        c.env = process_env();
        c.provider_settings(provider)
    }

    /// Set `key` from its string form (the API key and base URL go to their fields).
    pub fn set<K: ConfigKey>(&mut self, key: K, value: impl Into<String>) {
        let value = value.into();
        let spec = key.spec();
        if spec.kind == ValueKind::Secret {
            self.api_key = Some(Secret::new(value));
            self.api_key_source = Some("code".to_string());
        } else if spec.name == BASE_URL {
            self.base_url = Some(value);
        } else {
            self.options.insert(spec.name.to_string(), value);
        }
    }

    /// The string value of `key` (not the API key), when set.
    pub fn get<K: ConfigKey>(&self, key: K) -> Option<&str> {
        let name = key.as_str();
        if name == BASE_URL {
            return self.base_url.as_deref();
        }
        self.options.get(name).map(String::as_str)
    }

    /// `key` as a duration, when set.
    ///
    /// # Errors
    /// `Validation` naming the key when it is not a duration.
    pub fn duration<K: ConfigKey>(&self, key: K) -> Result<Option<std::time::Duration>> {
        self.get(key)
            .map(|v| keys::parse_duration(key.as_str(), v))
            .transpose()
    }

    /// `key` as `true`/`false`, when set.
    ///
    /// # Errors
    /// `Validation` naming the key when it is not a boolean.
    pub fn bool<K: ConfigKey>(&self, key: K) -> Result<Option<bool>> {
        self.get(key)
            .map(|v| keys::parse_bool(key.as_str(), v))
            .transpose()
    }

    /// `key` as a number above 0, when set.
    ///
    /// # Errors
    /// `Validation` naming the key when it is not such a number.
    pub fn number<K: ConfigKey>(&self, key: K) -> Result<Option<f64>> {
        self.get(key)
            .map(|v| keys::parse_number(key.as_str(), v))
            .transpose()
    }

    /// `key` as a list of names, when set.
    pub fn list<K: ConfigKey>(&self, key: K) -> Option<Vec<String>> {
        self.get(key).map(keys::parse_list)
    }

    /// Check every value against `K`: the base URL parses as an http(s) URL, each
    /// option is one of `K`'s keys and of its kind. Builders call this first.
    ///
    /// # Errors
    /// `Validation` naming the key and what is allowed.
    pub fn check<K: ConfigKey>(&self) -> Result<()> {
        if let Some(u) = &self.base_url {
            keys::parse_url(BASE_URL, u)?;
        }
        for (name, value) in &self.options {
            let i = keys::find(K::SPECS, K::PROVIDER, name)?;
            let spec = &K::SPECS[i];
            keys::check_value(spec.name, spec.kind, value)?;
        }
        Ok(())
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

    /// A string option by its canonical name.
    pub fn option_str(&self, key: &str) -> Option<&str> {
        self.options.get(key).map(String::as_str)
    }
}

/// The canonical name of every provider's base-URL key.
const BASE_URL: &str = "base_url";

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
    /// `[mock]` table (checked against [`MockConfigKey`](crate::providers::mock::MockConfigKey)).
    pub mock: toml::Table,
    /// `[server]` table (`atlas serve`; parsed strictly by `cloud-atlas-web`).
    pub server: toml::Table,
    /// `[providers.<name>]` tables, checked, in string form by canonical key.
    providers: BTreeMap<String, BTreeMap<&'static str, String>>,
    /// `[mock]`, checked, in string form by canonical key.
    mock_keys: BTreeMap<&'static str, String>,
    env: BTreeMap<String, String>,
}

impl Config {
    /// Load from the current directory and the process environment.
    ///
    /// # Errors
    /// `Validation` naming the file when it cannot be read or parsed.
    pub fn load(explicit: Option<&Path>) -> Result<Config> {
        let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
        let env = process_env();
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
        let (mut fc, mut providers, mock_keys) = match &project {
            Some(p) => read_file(p)?,
            None => (FileConfig::default(), BTreeMap::new(), BTreeMap::new()),
        };
        if let Some(u) = user_file.filter(|u| u.is_file() && Some(*u) != project.as_deref()) {
            let (uc, user_providers, _) = read_file(u)?;
            fc.default_provider = fc.default_provider.or(uc.default_provider);
            fc.timeout = fc.timeout.or(uc.timeout);
            for (name, table) in user_providers {
                let entry = providers.entry(name).or_default();
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
            providers,
            mock_keys,
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
            mock_keys: BTreeMap::new(),
            env: BTreeMap::new(),
        }
    }

    /// Settings for `provider`: for each of its keys, the file's value first
    /// (`[providers.<provider>]`, then for the mock `[mock]`), then its env vars.
    pub fn provider_settings(&self, provider: &str) -> ProviderSettings {
        let mut s = ProviderSettings::new(provider);
        let Some(entry) = crate::providers::find(provider) else {
            return s;
        };
        let table = self.providers.get(provider);
        let mock = (provider == crate::providers::mock::NAME).then_some(&self.mock_keys);
        for spec in entry.keys {
            let from_file = table
                .and_then(|t| t.get(spec.name))
                .or_else(|| mock.and_then(|t| t.get(spec.name)));
            let (value, source) = match from_file {
                Some(v) => (v.clone(), format!("atlas.toml [providers.{provider}]")),
                None => {
                    let found = spec.env.iter().find_map(|var| {
                        self.env
                            .get(*var)
                            .filter(|v| !v.trim().is_empty())
                            .map(|v| (v.clone(), (*var).to_string()))
                    });
                    match found {
                        Some(f) => f,
                        None => continue,
                    }
                }
            };
            if spec.kind == ValueKind::Secret {
                s.api_key = Some(Secret::new(value.trim()));
                s.api_key_source = Some(source);
            } else if spec.name == BASE_URL {
                s.base_url = Some(value);
            } else {
                s.options.insert(spec.name.to_string(), value);
            }
        }
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

/// Checked provider tables: name → canonical key → value in string form.
type ProviderTables = BTreeMap<String, BTreeMap<&'static str, String>>;

fn read_file(path: &Path) -> Result<(FileConfig, ProviderTables, BTreeMap<&'static str, String>)> {
    let text = crate::files::read_file_to_string(path, crate::files::MAX_CONFIG_BYTES)
        .map_err(|e| Error::validation("config", format!("cannot read {}: {e}", path.display())))?;
    let fc: FileConfig = toml::from_str(&text).map_err(|e| {
        Error::validation(
            "config",
            format!("{} is not valid: {}", path.display(), e.message()),
        )
    })?;
    if let Some(v) = fc.version.filter(|v| *v > CONFIG_VERSION) {
        return Err(Error::validation(
            "version",
            format!(
                "{} has version = {v}, newer than this atlas understands ({CONFIG_VERSION}): upgrade atlas",
                path.display()
            ),
        ));
    }
    let in_file = |e: Error| {
        let msg = format!("{} (in {})", e.message(), path.display());
        e.with_message(msg)
    };
    let mut providers = ProviderTables::new();
    for (name, table) in &fc.providers {
        let entry = crate::providers::find(name).ok_or_else(|| {
            in_file(Error::validation(
                &format!("providers.{name}"),
                format!(
                    "not a provider; allowed: {}",
                    crate::providers::known().join(", ")
                ),
            ))
        })?;
        let checked =
            keys::check_table(&format!("providers.{name}"), entry.keys, table).map_err(in_file)?;
        providers.insert(name.clone(), checked.into_iter().collect());
    }
    let mock = match &fc.mock {
        Some(t) => keys::check_table(
            "mock",
            <crate::providers::mock::MockConfigKey as ConfigKey>::SPECS,
            t,
        )
        .map_err(in_file)?
        .into_iter()
        .collect(),
        None => BTreeMap::new(),
    };
    Ok((fc, providers, mock))
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

    fn load(text: &str, e: &BTreeMap<String, String>) -> Result<Config> {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("atlas.toml");
        std::fs::write(&p, text).unwrap();
        Config::load_with(dir.path(), Some(&p), e, None)
    }

    #[test]
    fn unknown_provider_keys_are_refused_naming_the_key_and_the_allowed_ones() {
        let e = load(
            "[providers.runpod]\nbaseurl = \"http://127.0.0.1:4010\"\n",
            &env(&[]),
        )
        .unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        let m = e.message();
        assert!(
            m.starts_with("providers.runpod.baseurl: unknown key"),
            "{m}"
        );
        assert!(m.contains("base_url (or url)"), "{m}");
        assert!(m.contains("api_key (or key)"), "{m}");
        assert!(m.contains("atlas.toml"), "{m}");
    }

    #[test]
    fn wrong_types_and_bad_urls_are_refused() {
        for (text, want) in [
            ("[providers.runpod]\nbase_url = 5\n", "must be a URL string"),
            ("[providers.runpod]\nbase_url = 5\n", "got an integer"),
            ("[providers.vast]\nurl = \"not a url\"\n", "is not a URL"),
            ("[providers.lambda]\nopen_ports = \"no\"\n", "got a string"),
            ("[providers.fly]\napp = [\"a\"]\n", "got an array"),
            ("[providers.vast]\nburst = \"many\"\n", "got a string"),
            (
                "[providers.runpod]\ncatalog_ttl = \"soon\"\n",
                "catalog_ttl",
            ),
            ("[mock]\nboot_delay = 3\n", "mock.boot_delay"),
            (
                "[mock]\nbootdelay = \"3s\"\n",
                "mock.bootdelay: unknown key",
            ),
            (
                "[providers.nope]\nx = 1\n",
                "providers.nope: not a provider",
            ),
        ] {
            let e = load(text, &env(&[])).unwrap_err();
            assert_eq!(e.kind(), ErrorKind::Validation, "{text}");
            assert!(e.message().contains(want), "{text}: {e}");
        }
    }

    #[test]
    fn a_wrongly_typed_key_never_shows_its_value() {
        let e = load("[providers.runpod]\napi_key = 123456789\n", &env(&[])).unwrap_err();
        assert!(e.message().contains("providers.runpod.api_key"), "{e}");
        assert!(!e.message().contains("123456789"), "{e}");
    }

    #[test]
    fn aliases_in_the_file_and_env_vars_resolve_to_the_same_keys() {
        let c = load(
            "[providers.runpod]\nkey = \"file-key\"\nurl = \"http://127.0.0.1:4010\"\nserverless_url = \"http://127.0.0.1:4011\"\n\n[providers.lambda]\nssh_keys = [\"a\", \"b\"]\nopen_ports = false\n",
            &env(&[("FLY_APP_NAME", "env-app"), ("ATLAS_RUNPOD_BASE_URL", "http://ignored")]),
        )
        .unwrap();
        let rp = c.provider_settings("runpod");
        assert_eq!(rp.api_key.clone().unwrap().expose(), "file-key");
        assert_eq!(rp.base_url.as_deref(), Some("http://127.0.0.1:4010"));
        assert_eq!(
            rp.option_str("serverless_base_url"),
            Some("http://127.0.0.1:4011")
        );
        let l = c.provider_settings("lambda");
        assert_eq!(
            l.list(crate::providers::lambda::LambdaConfigKey::SshKeyNames),
            Some(vec!["a".to_string(), "b".to_string()])
        );
        assert_eq!(
            l.bool(crate::providers::lambda::LambdaConfigKey::OpenPorts)
                .unwrap(),
            Some(false)
        );
        let fly = c.provider_settings("fly");
        assert_eq!(
            fly.get(crate::providers::fly_machines::FlyConfigKey::App),
            Some("env-app")
        );
    }

    #[test]
    fn the_user_file_is_checked_too() {
        let dir = tempfile::tempdir().unwrap();
        let user = dir.path().join("user.toml");
        std::fs::write(&user, "[providers.vast]\nrequests_per_sec = 3\n").unwrap();
        let e = Config::load_with(dir.path(), None, &env(&[]), Some(&user)).unwrap_err();
        assert!(
            e.message().contains("providers.vast.requests_per_sec"),
            "{e}"
        );
        assert!(e.message().contains("user.toml"), "{e}");
    }

    #[test]
    fn settings_refuse_bad_values_from_the_environment_at_build() {
        let c = Config::load_with(
            Path::new("/nonexistent"),
            None,
            &env(&[
                ("ATLAS_VAST_BASE_URL", "vast.example"),
                ("VAST_API_KEY", "k"),
            ]),
            None,
        )
        .unwrap();
        let e = crate::providers::build("vast", c.provider_settings("vast"), &c).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Validation);
        assert!(e.message().starts_with("base_url"), "{e}");
    }
}
