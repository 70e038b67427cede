//! The default token store: two JSON files, 0600, in a 0700 folder.
//!
//! `<dir>/cache.json` holds [`TokenSlot::Cache`], `<dir>/manual.json` holds
//! [`TokenSlot::Manual`]; both are `{"version":1,"tokens":{"<app>":{…}}}`. Every write
//! goes to a fresh 0600 temporary file in the same folder, is flushed to disk and
//! renamed over the old file, so a crash leaves either the old or the new content.
//! Writes within one process are serialised per file; several processes sharing one
//! folder may lose each other's concurrent writes (last rename wins).
//!
//! A damaged `cache.json` is rebuilt (its tokens can be acquired again). A damaged
//! `manual.json` is left exactly as it is and every call touching the manual slot
//! fails with a `Validation` error naming the file, until the operator fixes it.

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::storage::{StoredToken, TokenSlot, TokenStore};
use crate::config::{ensure_private_dir, Config};
use crate::error::{Error, ErrorKind, Result};

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

    async fn read(&self, slot: TokenSlot) -> Result<FileDoc> {
        let path = self.file(slot);
        let dir = self.dir.clone();
        blocking(move || read_doc(&dir, &path, slot)).await
    }

    async fn write(&self, slot: TokenSlot, doc: FileDoc) -> Result<()> {
        let path = self.file(slot);
        let dir = self.dir.clone();
        blocking(move || write_doc(&dir, &path, &doc)).await
    }

    async fn modify(
        &self,
        slot: TokenSlot,
        f: impl FnOnce(&mut BTreeMap<String, StoredToken>) -> bool,
    ) -> Result<()> {
        let _g = self.lock(slot).lock().await;
        let mut doc = self.read(slot).await?;
        if f(&mut doc.tokens) {
            doc.version = FORMAT_VERSION;
            self.write(slot, doc).await?;
        }
        Ok(())
    }
}

async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::new(ErrorKind::Unknown, format!("token store task failed: {e}")))?
}

fn read_doc(dir: &Path, path: &Path, slot: TokenSlot) -> Result<FileDoc> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileDoc::default()),
        Err(e) => {
            return Err(Error::new(
                ErrorKind::Unknown,
                format!("cannot read token store {}: {e}", path.display()),
            ))
        }
    };
    let parsed = serde_json::from_slice::<FileDoc>(&bytes)
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
        });
    match (parsed, slot) {
        (Ok(doc), _) => Ok(doc),
        (Err(why), TokenSlot::Cache) => {
            tracing::warn!(
                file = %path.display(),
                reason = %why,
                "the Fly token cache is damaged; rebuilding it (its tokens will be acquired again)"
            );
            let doc = FileDoc {
                version: FORMAT_VERSION,
                tokens: BTreeMap::new(),
            };
            write_doc(dir, path, &doc)?;
            Ok(doc)
        }
        (Err(why), TokenSlot::Manual) => {
            tracing::error!(
                file = %path.display(),
                "the manual Fly token store is damaged; it was left untouched"
            );
            Err(Error::validation(
                "manual token store",
                format!(
                    "{} is damaged ({why}); it was kept as is: fix it or move it away, then set the manual tokens again",
                    path.display()
                ),
            ))
        }
    }
}

fn write_doc(dir: &Path, path: &Path, doc: &FileDoc) -> Result<()> {
    ensure_private_dir(dir)?;
    let fail = |what: &str, e: std::io::Error| {
        Error::new(
            ErrorKind::Unknown,
            format!("cannot {what} token store {}: {e}", path.display()),
        )
    };
    let tmp = dir.join(format!(
        ".{}.{}.tmp",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default(),
        uuid::Uuid::new_v4().simple()
    ));
    let body = serde_json::to_vec_pretty(doc)
        .map_err(|e| Error::new(ErrorKind::Unknown, format!("cannot encode tokens: {e}")))?;
    let result = (|| {
        let mut opts = std::fs::OpenOptions::new();
        opts.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            opts.mode(0o600);
        }
        let mut f = opts.open(&tmp).map_err(|e| fail("create", e))?;
        f.write_all(&body).map_err(|e| fail("write", e))?;
        f.sync_all().map_err(|e| fail("flush", e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| fail("replace", e))?;
        #[cfg(unix)]
        if let Ok(d) = std::fs::File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

#[crate::async_trait]
impl TokenStore for FileTokenStore {
    async fn load(&self, slot: TokenSlot, app: &str) -> Result<Option<StoredToken>> {
        let _g = self.lock(slot).lock().await;
        Ok(self.read(slot).await?.tokens.remove(app))
    }

    async fn save(&self, slot: TokenSlot, app: &str, token: &StoredToken) -> Result<()> {
        let token = token.clone();
        self.modify(slot, |m| {
            m.insert(app.to_string(), token);
            true
        })
        .await
    }

    async fn remove(&self, slot: TokenSlot, app: &str) -> Result<()> {
        self.modify(slot, |m| m.remove(app).is_some()).await
    }

    async fn apps(&self, slot: TokenSlot) -> Result<Vec<String>> {
        let _g = self.lock(slot).lock().await;
        Ok(self.read(slot).await?.tokens.into_keys().collect())
    }
}
