//! The default token store: two JSON files, 0600, in a 0700 folder.
//!
//! `<dir>/cache.json` holds [`TokenSlot::Cache`], `<dir>/manual.json` holds
//! [`TokenSlot::Manual`]; both are `{"version":1,"tokens":{"<app>":{…}}}`.
//!
//! Every change is a read-modify-write under an exclusive lock on a side file
//! (`<dir>/.cache.json.lock`, `<dir>/.manual.json.lock`) that every process using the
//! folder takes, so concurrent writers from any number of processes lose nothing. The
//! new version goes to a fresh 0600 temporary file in the same folder, is flushed to
//! disk and renamed over the old file ([`crate::files::replace`]), so readers — who
//! take no lock — and a crash mid-write see the old or the new content, never a torn
//! file. Temporary files left by a writer that died are removed by the next writer.
//!
//! A damaged `cache.json` is rebuilt (its tokens can be acquired again). A damaged
//! `manual.json` is left exactly as it is and every call touching the manual slot
//! fails with a `Validation` error naming the file, until the operator fixes it.
//! Files over [`MAX_STATE_BYTES`](crate::files::MAX_STATE_BYTES) count as damaged.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::storage::{StoredToken, TokenSlot, TokenStore};
use crate::config::{ensure_private_dir, Config};
use crate::error::{Error, ErrorKind, Result};
use crate::files::{self, FileLock};

/// Folder name under the data directory.
pub const TOKEN_DIR: &str = "fly-tokens";
/// File of the cache slot.
pub const CACHE_FILE: &str = "cache.json";
/// File of the manual slot.
pub const MANUAL_FILE: &str = "manual.json";

const FORMAT_VERSION: u32 = 1;

#[derive(Debug, Default, Serialize, Deserialize)]
struct FileDoc {
    version: u32,
    #[serde(default)]
    tokens: BTreeMap<String, StoredToken>,
}

/// Tokens in two private JSON files.
#[derive(Debug)]
pub struct FileTokenStore {
    dir: PathBuf,
    cache_lock: tokio::sync::Mutex<()>,
    manual_lock: tokio::sync::Mutex<()>,
}

impl FileTokenStore {
    /// A store in `dir` (created 0700 on first write).
    pub fn new(dir: impl Into<PathBuf>) -> FileTokenStore {
        FileTokenStore {
            dir: dir.into(),
            cache_lock: tokio::sync::Mutex::new(()),
            manual_lock: tokio::sync::Mutex::new(()),
        }
    }

    /// A store in `<data dir>/fly-tokens`.
    pub fn in_data_dir(config: &Config) -> FileTokenStore {
        FileTokenStore::new(config.data_dir.join(TOKEN_DIR))
    }

    /// The folder.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The file holding `slot`.
    pub fn file(&self, slot: TokenSlot) -> PathBuf {
        self.dir.join(match slot {
            TokenSlot::Cache => CACHE_FILE,
            TokenSlot::Manual => MANUAL_FILE,
        })
    }

    fn lock(&self, slot: TokenSlot) -> &tokio::sync::Mutex<()> {
        match slot {
            TokenSlot::Cache => &self.cache_lock,
            TokenSlot::Manual => &self.manual_lock,
        }
    }

    /// The slot's document as it is now (no lock: files are only ever replaced whole).
    async fn read(&self, slot: TokenSlot) -> Result<FileDoc> {
        let path = self.file(slot);
        let first = {
            let path = path.clone();
            blocking(move || read_doc(&path)).await?
        };
        match first {
            Ok(doc) => Ok(doc),
            // Rebuilding the cache is a write: it goes through the lock.
            Err(_) if slot == TokenSlot::Cache => Ok(FileDoc {
                version: FORMAT_VERSION,
                tokens: self.modify(slot, |_| false).await?,
            }),
            Err(why) => Err(damaged_manual(&path, &why)),
        }
    }

    /// Read-modify-write of one slot under the in-process mutex and the cross-process
    /// file lock; `f` says whether it changed anything. Returns the tokens afterwards.
    async fn modify(
        &self,
        slot: TokenSlot,
        f: impl FnOnce(&mut BTreeMap<String, StoredToken>) -> bool + Send + 'static,
    ) -> Result<BTreeMap<String, StoredToken>> {
        let _g = self.lock(slot).lock().await;
        let path = self.file(slot);
        let dir = self.dir.clone();
        blocking(move || {
            ensure_private_dir(&dir)?;
            let _lock = FileLock::acquire(lock_path(&path))?;
            files::remove_stale_temporaries(&path);
            let mut doc = match read_doc(&path)? {
                Ok(doc) => doc,
                Err(why) => match slot {
                    TokenSlot::Cache => {
                        tracing::warn!(
                            file = %path.display(),
                            reason = %why,
                            "the Fly token cache is damaged; rebuilding it (its tokens will be acquired again)"
                        );
                        let doc = FileDoc {
                            version: FORMAT_VERSION,
                            tokens: BTreeMap::new(),
                        };
                        write_doc(&path, &doc)?;
                        doc
                    }
                    TokenSlot::Manual => return Err(damaged_manual(&path, &why)),
                },
            };
            if f(&mut doc.tokens) {
                doc.version = FORMAT_VERSION;
                write_doc(&path, &doc)?;
            }
            Ok(doc.tokens)
        })
        .await
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Unknown, format!("token store task failed: {e}")))?
}

fn lock_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.lock"))
}

/// The document, or why it is damaged (`Err` outside for I/O failures).
fn read_doc(path: &Path) -> Result<std::result::Result<FileDoc, String>> {
    let bytes = match files::read_file(path, files::MAX_STATE_BYTES) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Ok(FileDoc::default())),
        Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => return Ok(Err(e.to_string())),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Unknown,
                format!("cannot read token store {}: {e}", path.display()),
            ))
        }
    };
    Ok(serde_json::from_slice::<FileDoc>(&bytes)
        .map_err(|e| e.to_string())
        .and_then(|d| {
            if d.version == FORMAT_VERSION {
                Ok(d)
            } else {
                Err(format!(
                    "format version {} (this build reads {FORMAT_VERSION})",
                    d.version
                ))
            }
        }))
}

fn damaged_manual(path: &Path, why: &str) -> Error {
    tracing::error!(
        file = %path.display(),
        "the manual Fly token store is damaged; it was left untouched"
    );
    Error::validation(
        "manual token store",
        format!(
            "{} is damaged ({why}); it was kept as is: fix it or move it away, then set the manual tokens again",
            path.display()
        ),
    )
}

fn write_doc(path: &Path, doc: &FileDoc) -> Result<()> {
    let body = serde_json::to_vec_pretty(doc)
        .map_err(|e| Error::new(ErrorKind::Unknown, format!("cannot encode tokens: {e}")))?;
    files::replace(path, &body)
        .map_err(|e| Error::new(ErrorKind::Unknown, format!("token store: {}", e.message())))
}

#[crate::async_trait]
impl TokenStore for FileTokenStore {
    async fn load(&self, slot: TokenSlot, app: &str) -> Result<Option<StoredToken>> {
        Ok(self.read(slot).await?.tokens.remove(app))
    }

    async fn save(&self, slot: TokenSlot, app: &str, token: &StoredToken) -> Result<()> {
        let (app, token) = (app.to_string(), token.clone());
        self.modify(slot, move |m| {
            m.insert(app, token);
            true
        })
        .await
        .map(drop)
    }

    async fn remove(&self, slot: TokenSlot, app: &str) -> Result<()> {
        let app = app.to_string();
        self.modify(slot, move |m| m.remove(&app).is_some())
            .await
            .map(drop)
    }

    async fn apps(&self, slot: TokenSlot) -> Result<Vec<String>> {
        Ok(self.read(slot).await?.tokens.into_keys().collect())
    }
}
