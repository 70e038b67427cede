//! `atlas upgrade [--dry-run]`: move `atlas.toml` forward to this build's format version.
//!
//! The file's `version` (absent = 0, files written before the key existed) selects the
//! registered [`STEPS`] to run, one version at a time, up to
//! [`CONFIG_VERSION`](cloud_atlas::config::CONFIG_VERSION). Each step edits a
//! [`toml_edit::DocumentMut`], so comments, blank lines, ordering and odd spacing the user
//! wrote survive; a step only touches the keys it is about. Running it again changes
//! nothing. A file from a newer atlas is refused (exit 2) rather than misread.
//!
//! The file is `--config`, else `$ATLAS_CONFIG`, else the nearest `atlas.toml` walking up.

use std::path::{Path, PathBuf};

use clap::Args;
use cloud_atlas::config::{self, CONFIG_VERSION};
use cloud_atlas::{Error, Result};
use toml_edit::DocumentMut;

use crate::cmd::edits::{self, Plan};
use crate::output::Out;

/// Arguments of `atlas upgrade`.
#[derive(Debug, Args)]
pub(crate) struct UpgradeArgs {
    /// Print the diff and what would change; write nothing
    #[arg(long)]
    pub(crate) dry_run: bool,
}

/// One version-over-version step: turns a version-`from` document into version `from + 1`.
#[derive(Debug)]
pub(crate) struct Step {
    /// The version this step starts from.
    pub(crate) from: u32,
    /// Edits the document; returns one line per change it made.
    pub(crate) apply: fn(&mut DocumentMut) -> Vec<String>,
}

/// Every registered step, in version order (`STEPS[i].from == i`).
pub(crate) const STEPS: &[Step] = &[Step {
    from: 0,
    apply: v0_to_v1,
}];

/// v0 → v1: the `version` key is introduced. v0 files (before `atlas init` existed) carry
/// the same keys v1 reads, so only the key is added.
fn v0_to_v1(doc: &mut DocumentMut) -> Vec<String> {
    let _ = doc; // the version key itself is written by `upgrade_doc` after the last step
    Vec::new()
}

/// The `version` of a document: absent = 0.
///
/// # Errors
/// `Validation` when `version` is not a non-negative integer, or is newer than this build.
pub(crate) fn doc_version(path: &Path, doc: &DocumentMut) -> Result<u32> {
    let v = match doc.get("version") {
        None => return Ok(0),
        Some(item) => item.as_integer(),
    };
    let v = v.and_then(|v| u32::try_from(v).ok()).ok_or_else(|| {
        Error::validation(
            "version",
            format!(
                "{}: version must be a whole number from 0 to {CONFIG_VERSION}",
                path.display()
            ),
        )
    })?;
    if v > CONFIG_VERSION {
        return Err(Error::validation(
            "version",
            format!(
                "{} has version = {v}, newer than this atlas understands ({CONFIG_VERSION}): upgrade atlas",
                path.display()
            ),
        ));
    }
    Ok(v)
}

/// Run every step from the document's version up to [`CONFIG_VERSION`] and set `version`.
/// Returns one line per change (empty when the document is current).
///
/// # Errors
/// As [`doc_version`].
pub(crate) fn upgrade_doc(path: &Path, doc: &mut DocumentMut) -> Result<Vec<String>> {
    let from = doc_version(path, doc)?;
    let mut changes = Vec::new();
    for step in STEPS.iter().filter(|s| s.from >= from) {
        changes.extend((step.apply)(doc));
        changes.push(format!(
            "version {} -> {} in {}",
            step.from,
            step.from + 1,
            path.display()
        ));
    }
    if from < CONFIG_VERSION {
        set_version(doc);
    }
    Ok(changes)
}

/// Set `version = CONFIG_VERSION`, keeping the key's place and comments when it exists;
/// a new key goes after the other top-level keys.
fn set_version(doc: &mut DocumentMut) {
    match doc.get_mut("version").and_then(|i| i.as_value_mut()) {
        Some(v) => {
            let decor = v.decor().clone();
            *v = toml_edit::Value::from(i64::from(CONFIG_VERSION));
            *v.decor_mut() = decor;
        }
        None => {
            doc.insert("version", toml_edit::value(i64::from(CONFIG_VERSION)));
        }
    }
}

/// The project file `upgrade` works on.
fn project_file(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(p) = explicit {
        return Ok(p.to_path_buf());
    }
    if let Some(p) = std::env::var_os(config::ATLAS_CONFIG_ENV).filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(p));
    }
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    config::find_project_file(&cwd).ok_or_else(|| {
        Error::new(
            cloud_atlas::ErrorKind::NotFound,
            format!(
                "no {} here or in a parent folder: run `atlas init` to write one",
                config::CONFIG_FILE_NAME
            ),
        )
    })
}

/// `atlas upgrade`.
///
/// # Errors
/// `NotFound` without a project file; `Validation` for a file that is not TOML or is
/// from a newer atlas; `Unknown` when it cannot be written.
pub(crate) fn run(args: &UpgradeArgs, explicit: Option<&Path>, out: &Out) -> Result<()> {
    let path = project_file(explicit)?;
    let text = edits::read_optional(&path)?.ok_or_else(|| {
        Error::new(
            cloud_atlas::ErrorKind::NotFound,
            format!("{} does not exist", path.display()),
        )
    })?;
    let mut doc = edits::parse_doc(&path, &text)?;
    let mut plan = Plan::new(args.dry_run);
    let changes = upgrade_doc(&path, &mut doc)?;
    if changes.is_empty() {
        plan.leave(format!(
            "{} is at version {CONFIG_VERSION} (current)",
            path.display()
        ));
    }
    let after = doc.to_string();
    let what = changes.join("; ");
    plan.write(&path, Some(text), after, what);
    let base = path.parent().unwrap_or(Path::new(".")).to_path_buf();
    plan.finish(out, &base)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_contiguous_and_reach_the_current_version() {
        for (i, s) in STEPS.iter().enumerate() {
            assert_eq!(s.from as usize, i);
        }
        assert_eq!(STEPS.len() as u32, CONFIG_VERSION);
    }
}
