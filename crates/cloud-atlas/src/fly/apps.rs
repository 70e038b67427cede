//! App discovery: find `fly.toml` files under a folder and read their `app` names.
//!
//! Each file is parsed with a real TOML parser ([`toml`]). A file whose `app` is
//! missing, empty, not a string or not a valid Fly app name (a template such as
//! `{{apps.0}}`) is reported in [`Discovery::skipped`] with the reason; it is never
//! returned as an app and never makes discovery fail.
//!
//! Alternate config names (`fly.staging.toml`, `fly.example.toml`, `example-fly.toml`)
//! are not apps: `fly deploy` in a folder uses `fly.toml` unless told `--config`. They
//! are listed as skipped so nothing is silently ignored.

use std::path::{Path, PathBuf};

use serde::Serialize;

use crate::error::{Error, ErrorKind, Result};

/// The file name `fly deploy` reads in a folder.
pub const FLY_TOML: &str = "fly.toml";

/// Default number of sub-folder levels searched below the root.
pub const DEFAULT_MAX_DEPTH: usize = 1;

/// Folders never searched (besides every hidden folder).
pub const SKIPPED_DIRS: &[&str] = &[".git", "node_modules", "target"];

/// Longest Fly app name accepted.
pub const MAX_APP_NAME_LEN: usize = 63;

/// One app found on disk.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DiscoveredApp {
    /// The app name from `fly.toml`.
    pub app: String,
    /// The folder holding `fly.toml` (where `fly deploy` runs).
    pub dir: PathBuf,
}

/// A config file that was looked at and not returned as an app.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SkippedFile {
    /// The file.
    pub file: PathBuf,
    /// Why it was skipped, in one line.
    pub reason: String,
}

/// The result of [`discover_apps`]: apps and skipped files, both in a stable order
/// (sorted by path).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Discovery {
    /// Apps found, sorted by folder.
    pub apps: Vec<DiscoveredApp>,
    /// Files not returned as apps, with reasons, sorted by path.
    pub skipped: Vec<SkippedFile>,
}

/// Find `fly.toml` files at `root` and down to `max_depth` levels of sub-folders
/// (`0` = the root only), skipping `.git`, `node_modules`, `target` and hidden folders.
/// Symbolic links to folders are not followed.
///
/// # Errors
/// `NotFound` when `root` does not exist, `Validation` when it is not a folder.
/// Problems with single files or sub-folders are reported in [`Discovery::skipped`].
pub fn discover_apps(root: impl AsRef<Path>, max_depth: usize) -> Result<Discovery> {
    let root = root.as_ref();
    let meta = std::fs::metadata(root).map_err(|e| {
        let kind = if e.kind() == std::io::ErrorKind::NotFound {
            ErrorKind::NotFound
        } else {
            ErrorKind::Unknown
        };
        Error::new(kind, format!("cannot read {}: {e}", root.display()))
    })?;
    if !meta.is_dir() {
        return Err(Error::validation(
            "path",
            format!("{} is not a folder", root.display()),
        ));
    }
    let mut out = Discovery::default();
    let walker = walkdir::WalkDir::new(root)
        .max_depth(max_depth.saturating_add(1))
        .follow_links(false)
        .sort_by_file_name()
        .into_iter()
        .filter_entry(|e| e.depth() == 0 || !e.file_type().is_dir() || !is_skipped_dir(e));
    for entry in walker {
        let entry = match entry {
            Ok(e) => e,
            Err(e) => {
                let file = e
                    .path()
                    .map(Path::to_path_buf)
                    .unwrap_or_else(|| root.to_path_buf());
                let reason = match e.io_error() {
                    Some(io) => format!("cannot read: {io}"),
                    None => format!("cannot read: {e}"),
                };
                out.skipped.push(SkippedFile { file, reason });
                continue;
            }
        };
        if !entry.file_type().is_file() {
            continue;
        }
        let name = entry.file_name().to_string_lossy();
        let path = entry.path();
        if name == FLY_TOML {
            match read_app(path) {
                Ok(app) => out.apps.push(DiscoveredApp {
                    app,
                    dir: path.parent().unwrap_or(root).to_path_buf(),
                }),
                Err(reason) => out.skipped.push(SkippedFile {
                    file: path.to_path_buf(),
                    reason,
                }),
            }
        } else if is_alternate_config(&name) {
            out.skipped.push(SkippedFile {
                file: path.to_path_buf(),
                reason: format!(
                    "alternate config name: `fly deploy` reads {FLY_TOML} unless given --config"
                ),
            });
        }
    }
    out.apps
        .sort_by(|a, b| a.dir.cmp(&b.dir).then(a.app.cmp(&b.app)));
    out.skipped.sort_by(|a, b| a.file.cmp(&b.file));
    Ok(out)
}

/// Read the `app` name from one `fly.toml`.
///
/// # Errors
/// A one-line reason when the file cannot be read, is not valid TOML, or its
/// `app` is missing, empty, not a string or not a valid app name.
pub fn read_app(path: &Path) -> std::result::Result<String, String> {
    let text = crate::files::read_file_to_string(path, crate::files::MAX_CONFIG_BYTES)
        .map_err(|e| format!("cannot read: {e}"))?;
    app_from_toml(&text)
}

/// The `app` name from the text of a `fly.toml`; see [`read_app`].
///
/// # Errors
/// A one-line reason, as for [`read_app`].
pub fn app_from_toml(text: &str) -> std::result::Result<String, String> {
    let table: toml::Table = toml::from_str(text).map_err(|e| {
        let msg = e.message().replace('\n', " ");
        match e.span() {
            Some(span) => {
                let line = text[..span.start.min(text.len())].matches('\n').count() + 1;
                format!("not valid TOML (line {line}): {msg}")
            }
            None => format!("not valid TOML: {msg}"),
        }
    })?;
    match table.get("app") {
        None => Err("no `app` key".to_string()),
        Some(toml::Value::String(s)) if s.trim().is_empty() => Err("`app` is empty".to_string()),
        Some(toml::Value::String(s)) => match validate_app_name(s) {
            Ok(()) => Ok(s.clone()),
            Err(why) => Err(format!("`app` {s:?} is not a valid Fly app name: {why}")),
        },
        Some(other) => Err(format!("`app` is a {}, not a string", other.type_str())),
    }
}

/// Check a Fly app name: 1 to 63 characters of lower-case letters, digits and `-`,
/// not starting or ending with `-`.
///
/// # Errors
/// What is wrong with the name, in a few words.
pub fn validate_app_name(name: &str) -> std::result::Result<(), String> {
    if name.is_empty() {
        return Err("it is empty".into());
    }
    if name.len() > MAX_APP_NAME_LEN {
        return Err(format!("longer than {MAX_APP_NAME_LEN} characters"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
    {
        return Err(format!(
            "{c:?} is not allowed (use lower-case letters, digits and -)"
        ));
    }
    if name.starts_with('-') || name.ends_with('-') {
        return Err("it starts or ends with -".into());
    }
    Ok(())
}

/// Like [`validate_app_name`], as a `Validation` error naming `field`.
///
/// # Errors
/// `Validation` naming `field` and the rule.
pub fn require_app_name(field: &str, name: &str) -> Result<()> {
    validate_app_name(name).map_err(|why| {
        Error::validation(
            field,
            format!(
                "{name:?} is not a Fly app name ({why}); use 1-{MAX_APP_NAME_LEN} lower-case letters, digits and -"
            ),
        )
    })
}

fn is_skipped_dir(e: &walkdir::DirEntry) -> bool {
    let name = e.file_name().to_string_lossy();
    name.starts_with('.') || SKIPPED_DIRS.contains(&name.as_ref())
}

fn is_alternate_config(name: &str) -> bool {
    name != FLY_TOML
        && name.ends_with(".toml")
        && (name.starts_with("fly.") || name.ends_with("-fly.toml") || name.ends_with("_fly.toml"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        assert!(validate_app_name("maccas-api").is_ok());
        assert!(validate_app_name("go-example1").is_ok());
        assert!(validate_app_name("{{apps.0}}").is_err());
        assert!(validate_app_name("My_App").is_err());
        assert!(validate_app_name("-x").is_err());
        assert!(validate_app_name(&"a".repeat(64)).is_err());
    }

    #[test]
    fn app_shapes() {
        assert_eq!(app_from_toml("app = 'x-1'\n").unwrap(), "x-1");
        assert_eq!(
            app_from_toml("# c\napp = \"y\" # trailing\n[build]\n").unwrap(),
            "y"
        );
        assert!(app_from_toml("app = ''\n").unwrap_err().contains("empty"));
        assert!(app_from_toml("[env]\napp = 'x'\n")
            .unwrap_err()
            .contains("no `app`"));
        assert!(app_from_toml("app = 3\n").unwrap_err().contains("integer"));
        assert!(app_from_toml("app = \"{{apps.0}}\"\n")
            .unwrap_err()
            .contains("not a valid"));
        assert!(app_from_toml("app = \n").unwrap_err().contains("line 1"));
    }

    #[test]
    fn alternate_names() {
        assert!(is_alternate_config("fly.staging.toml"));
        assert!(is_alternate_config("example-fly.toml"));
        assert!(!is_alternate_config("fly.toml"));
        assert!(!is_alternate_config("butterfly.toml"));
        assert!(!is_alternate_config("Cargo.toml"));
    }
}
