//! Planned file edits shared by `atlas init` and `atlas upgrade`: what each would write,
//! the unified diff `--dry-run` prints, and the "changed / left" report.
//!
//! Nothing touches the disk until [`Plan::apply`]; a dry run prints [`Plan::diff`] instead.
//! Missing parent folders of written files are created with the usual mode; the folders
//! planned with [`Plan::private_dir`] are created `0700` after the files.
//! A file that exists is replaced atomically ([`cloud_atlas::files::replace`]) and keeps
//! its permission bits; a new file is created `0600` (an `atlas.toml` may hold keys), or
//! `0644` through [`Plan::write_plain`] (`.gitignore`, `Cargo.toml`, examples).

use std::path::{Path, PathBuf};

use cloud_atlas::{files, Error, ErrorKind, Result};
use serde::Serialize;

use crate::output::Out;

/// One file to write: its text before (`None` = new) and after.
#[derive(Debug)]
struct FileEdit {
    path: PathBuf,
    before: Option<String>,
    after: String,
    /// A new file is created `0600` (else `0644`).
    private: bool,
}

/// Folders to create `0700`, files to write, and what was changed or left, in order.
#[derive(Debug, Default, Serialize)]
pub(crate) struct Plan {
    /// Whether this was a dry run (nothing written).
    pub(crate) dry_run: bool,
    /// One line per change, e.g. `created atlas.toml`.
    pub(crate) changed: Vec<String>,
    /// One line per thing found already in place or deliberately not touched.
    pub(crate) left: Vec<String>,
    #[serde(skip)]
    dirs: Vec<PathBuf>,
    #[serde(skip)]
    edits: Vec<FileEdit>,
}

impl Plan {
    /// An empty plan.
    pub(crate) fn new(dry_run: bool) -> Plan {
        Plan {
            dry_run,
            ..Plan::default()
        }
    }

    /// Write `after` to `path` (whose text is `before`, `None` when it does not exist),
    /// reported as `what`. No-op (and nothing reported) when the text is unchanged.
    pub(crate) fn write(
        &mut self,
        path: &Path,
        before: Option<String>,
        after: String,
        what: String,
    ) {
        self.push(path, before, after, what, true);
    }

    /// As [`Plan::write`] for a file that holds no secrets: created `0644`.
    pub(crate) fn write_plain(
        &mut self,
        path: &Path,
        before: Option<String>,
        after: String,
        what: String,
    ) {
        self.push(path, before, after, what, false);
    }

    fn push(
        &mut self,
        path: &Path,
        before: Option<String>,
        after: String,
        what: String,
        private: bool,
    ) {
        if before.as_deref() == Some(after.as_str()) {
            return;
        }
        self.changed.push(what);
        self.edits.push(FileEdit {
            path: path.to_path_buf(),
            before,
            after,
            private,
        });
    }

    /// Create `dir` `0700` (reported as `what`) unless it exists (reported as left).
    pub(crate) fn private_dir(&mut self, dir: &Path, shown: &str) {
        if dir.is_dir() {
            self.left.push(format!("{shown}/ exists (mode unchanged)"));
        } else {
            self.changed.push(format!("created {shown}/ (mode 0700)"));
            self.dirs.push(dir.to_path_buf());
        }
    }

    /// Note something left as it was.
    pub(crate) fn leave(&mut self, what: impl Into<String>) {
        self.left.push(what.into());
    }

    /// Note a change that is not a file edit (already reported by the caller's step).
    pub(crate) fn note_change(&mut self, what: impl Into<String>) {
        self.changed.push(what.into());
    }

    /// The unified diff of every file edit, paths shown relative to `base`.
    pub(crate) fn diff(&self, base: &Path) -> String {
        let mut out = String::new();
        for e in &self.edits {
            let shown = e.path.strip_prefix(base).unwrap_or(&e.path).display();
            let before = e.before.as_deref().unwrap_or("");
            let old = if e.before.is_some() {
                format!("a/{shown}")
            } else {
                "/dev/null".to_string()
            };
            let diff = similar::TextDiff::from_lines(before, e.after.as_str());
            out.push_str(
                &diff
                    .unified_diff()
                    .context_radius(3)
                    .header(&old, &format!("b/{shown}"))
                    .to_string(),
            );
        }
        for d in &self.dirs {
            let shown = d.strip_prefix(base).unwrap_or(d).display();
            out.push_str(&format!("mkdir -m 0700 {shown}\n"));
        }
        out
    }

    /// Create the folders and write the files (nothing when this is a dry run).
    ///
    /// # Errors
    /// `Unknown` naming the file or folder that could not be written.
    pub(crate) fn apply(&self) -> Result<()> {
        if self.dry_run {
            return Ok(());
        }
        for e in &self.edits {
            if let Some(parent) = e.path.parent().filter(|p| !p.as_os_str().is_empty()) {
                // Source folders (the project, `examples/`) get the usual mode.
                std::fs::create_dir_all(parent).map_err(|err| {
                    Error::new(
                        ErrorKind::Unknown,
                        format!("cannot create {}: {err}", parent.display()),
                    )
                })?;
            }
            let mut mode = std::fs::metadata(&e.path).ok().map(|m| m.permissions());
            #[cfg(unix)]
            if mode.is_none() && !e.private {
                use std::os::unix::fs::PermissionsExt;
                mode = Some(std::fs::Permissions::from_mode(0o644));
            }
            files::replace(&e.path, e.after.as_bytes())?;
            if let Some(mode) = mode {
                std::fs::set_permissions(&e.path, mode).map_err(|err| {
                    Error::new(
                        ErrorKind::Unknown,
                        format!("cannot restore the mode of {}: {err}", e.path.display()),
                    )
                })?;
            }
        }
        // After the files, so only the private folders themselves get 0700.
        for d in &self.dirs {
            cloud_atlas::config::ensure_private_dir(d)?;
        }
        Ok(())
    }

    /// Apply (or, on a dry run, print the diff), then print the report.
    ///
    /// # Errors
    /// As [`Plan::apply`], or when stdout cannot be written.
    pub(crate) fn finish(self, out: &Out, base: &Path) -> Result<()> {
        self.apply()?;
        let diff = if self.dry_run {
            self.diff(base)
        } else {
            String::new()
        };
        out.one(&self, |_, p| {
            let mut s = diff.clone();
            let verb = if p.dry_run { "would change" } else { "changed" };
            if p.changed.is_empty() {
                s.push_str("nothing to change\n");
            }
            for c in &p.changed {
                s.push_str(&format!("{verb}: {c}\n"));
            }
            for l in &p.left {
                s.push_str(&format!("left: {l}\n"));
            }
            s
        })
    }
}

/// Read `path` as UTF-8 text, `None` when it does not exist.
///
/// # Errors
/// `Unknown` naming the file when it exists and cannot be read.
pub(crate) fn read_optional(path: &Path) -> Result<Option<String>> {
    if !path.exists() {
        return Ok(None);
    }
    files::read_file_to_string(path, files::MAX_CONFIG_BYTES)
        .map(Some)
        .map_err(|e| {
            Error::new(
                ErrorKind::Unknown,
                format!("cannot read {}: {e}", path.display()),
            )
        })
}

/// Parse `text` (the contents of `path`) as an editable TOML document.
///
/// # Errors
/// `Validation` naming the file and the parse error.
pub(crate) fn parse_doc(path: &Path, text: &str) -> Result<toml_edit::DocumentMut> {
    text.parse::<toml_edit::DocumentMut>().map_err(|e| {
        let msg = e.to_string();
        let first = msg.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
        Error::validation(
            "config",
            format!("{} is not valid TOML: {}", path.display(), first.trim()),
        )
    })
}
