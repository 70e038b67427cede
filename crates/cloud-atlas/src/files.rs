//! Local state files: private new files, whole-file replacement under a lock shared by
//! every process, and bounded reads of outside input.
//!
//! - [`create_private_file`]: a state file we create is `0600`; an existing one is left
//!   as its owner made it.
//! - [`FileLock`]: an exclusive advisory lock (`flock(2)` on Unix, `LockFileEx` on
//!   Windows) on a side file, held by one process (and one thread) at a time, released
//!   when dropped or when the process dies — a crash never leaves it held.
//! - [`replace`]: write a new version of a file to a fresh `0600` temporary file in the
//!   same folder, flush it to disk, rename it over the old one and flush the folder, so
//!   readers and a crash mid-write see the old or the new content, never a torn file.
//!   Read-modify-write cycles take the [`FileLock`] first so concurrent writers from any
//!   number of processes lose nothing.
//! - [`read_limited`], [`read_first_line`], [`read_file`]: reads of secrets and
//!   documents from stdin or files with a size cap, so an endless input is a clear
//!   error instead of running out of memory.
//!
//! The lock is the `fs4` crate rather than `std::fs::File::lock`: the standard one is
//! stable only since Rust 1.89 and the workspace promises 1.85.

use std::fs::{File, OpenOptions};
use std::io::{self, BufRead, Read, Write};
use std::path::{Path, PathBuf};

use crate::error::{Error, ErrorKind, Result};

/// Cap for a secret read from stdin or a file (API keys, tokens, signing secrets): 64 KiB.
pub const MAX_SECRET_BYTES: usize = 64 * 1024;
/// Cap for a configuration document (`atlas.toml`, `fly.toml`, flyctl's `config.yml`): 1 MiB.
pub const MAX_CONFIG_BYTES: usize = 1024 * 1024;
/// Cap for a document passed on to a provider (a serverless job's `--input`; RunPod
/// takes at most 20 MB): 20 MiB.
pub const MAX_DOCUMENT_BYTES: usize = 20 * 1024 * 1024;
/// Cap for a state file we keep ourselves (the token store's JSON files): 16 MiB.
pub const MAX_STATE_BYTES: usize = 16 * 1024 * 1024;

/// Create `path` as an empty `0600` file when it does not exist; an existing file is
/// left untouched (its mode too). The folder must exist.
///
/// # Errors
/// `Unknown` naming the file when it cannot be created.
pub fn create_private_file(path: &Path) -> Result<()> {
    match private_options().open(path) {
        Ok(_) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) => Err(Error::new(
            ErrorKind::Unknown,
            format!("cannot create {}: {e}", path.display()),
        )),
    }
}

/// `create_new`, write, mode `0600` on Unix.
fn private_options() -> OpenOptions {
    let mut o = OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    o
}

/// An exclusive lock on a side file, shared by every process that uses the same path.
///
/// Blocking: [`FileLock::acquire`] waits for the holder to let go, at most
/// [`LOCK_WAIT`] (a holder that hangs — a stopped process — is an error, not a hang).
/// Use it from a blocking context (`tokio::task::spawn_blocking`).
#[derive(Debug)]
pub struct FileLock {
    file: File,
    path: PathBuf,
}

/// How long [`FileLock::acquire`] waits for another holder.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(30);

impl FileLock {
    /// Wait for, then take, the lock on `path` (created `0600` when missing), waiting
    /// at most [`LOCK_WAIT`].
    ///
    /// # Errors
    /// `Unknown` naming the file when it cannot be opened or locked; `Timeout` when
    /// another holder kept it for [`LOCK_WAIT`].
    pub fn acquire(path: impl Into<PathBuf>) -> Result<FileLock> {
        FileLock::acquire_within(path, LOCK_WAIT)
    }

    /// [`acquire`](Self::acquire) with its own longest wait.
    ///
    /// # Errors
    /// As [`acquire`](Self::acquire).
    pub fn acquire_within(path: impl Into<PathBuf>, wait: std::time::Duration) -> Result<FileLock> {
        let path = path.into();
        let fail = |what: &str, e: io::Error| {
            Error::new(
                ErrorKind::Unknown,
                format!("cannot {what} lock file {}: {e}", path.display()),
            )
        };
        create_private_file(&path)?;
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(&path)
            .map_err(|e| fail("open", e))?;
        // The trait's methods by path: `File::try_lock` (std, Rust 1.89+) shares the name.
        let deadline = std::time::Instant::now() + wait;
        let mut pause = std::time::Duration::from_millis(1);
        loop {
            match fs4::FileExt::try_lock(&file) {
                Ok(()) => return Ok(FileLock { file, path }),
                Err(fs4::TryLockError::WouldBlock) if std::time::Instant::now() < deadline => {
                    std::thread::sleep(pause);
                    pause = (pause * 2).min(std::time::Duration::from_millis(50));
                }
                Err(fs4::TryLockError::WouldBlock) => {
                    return Err(Error::new(
                        ErrorKind::Timeout,
                        format!(
                        "{} stayed locked by another process for {}s; is an atlas process stuck?",
                        path.display(),
                        wait.as_secs()
                    ),
                    ))
                }
                Err(fs4::TryLockError::Error(e)) => return Err(fail("take", e)),
            }
        }
    }

    /// The side file.
    pub fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // Closing the file releases the lock too; unlocking first makes it immediate.
        let _ = fs4::FileExt::unlock(&self.file);
    }
}

/// Replace `path` with `body`: a fresh `0600` temporary file in the same folder,
/// flushed, renamed over `path`, then the folder flushed. A failure removes the
/// temporary file and leaves `path` as it was.
///
/// Hold a [`FileLock`] around the read-modify-write that calls this when several
/// writers share the file.
///
/// # Errors
/// `Unknown` naming the file and the step that failed.
pub fn replace(path: &Path, body: &[u8]) -> Result<()> {
    let fail = |what: &str, e: io::Error| {
        Error::new(
            ErrorKind::Unknown,
            format!("cannot {what} {}: {e}", path.display()),
        )
    };
    let dir = parent_of(path);
    let tmp = dir.join(format!(
        "{}{}{TEMP_SUFFIX}",
        temp_prefix(path),
        uuid::Uuid::new_v4().simple()
    ));
    let result = (|| {
        let mut f = private_options()
            .open(&tmp)
            .map_err(|e| fail("create a temporary file for", e))?;
        f.write_all(body).map_err(|e| fail("write", e))?;
        f.sync_all().map_err(|e| fail("flush", e))?;
        drop(f);
        std::fs::rename(&tmp, path).map_err(|e| fail("replace", e))?;
        #[cfg(unix)]
        if let Ok(d) = File::open(dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Remove temporary files that [`replace`] left for `path` when its process died
/// mid-write. Call it only while holding the [`FileLock`] every writer of `path` takes:
/// then no live writer owns one. Returns how many were removed.
pub fn remove_stale_temporaries(path: &Path) -> usize {
    let prefix = temp_prefix(path);
    let Ok(entries) = std::fs::read_dir(parent_of(path)) else {
        return 0;
    };
    let mut removed = 0;
    for e in entries.flatten() {
        let name = e.file_name();
        let name = name.to_string_lossy();
        if name.starts_with(&prefix)
            && name.ends_with(TEMP_SUFFIX)
            && std::fs::remove_file(e.path()).is_ok()
        {
            removed += 1;
        }
    }
    removed
}

const TEMP_SUFFIX: &str = ".tmp";

fn temp_prefix(path: &Path) -> String {
    format!(
        ".{}.",
        path.file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    )
}

fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    }
}

/// The error of a read that went past its cap (kind `FileTooLarge`).
fn too_large(limit: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::FileTooLarge,
        format!("larger than the limit of {}", human_bytes(limit)),
    )
}

/// `64 KiB`, `1 MiB`, `100 bytes`.
fn human_bytes(n: usize) -> String {
    const KIB: usize = 1024;
    const MIB: usize = 1024 * 1024;
    if n >= MIB && n % MIB == 0 {
        format!("{} MiB", n / MIB)
    } else if n >= KIB && n % KIB == 0 {
        format!("{} KiB", n / KIB)
    } else {
        format!("{n} bytes")
    }
}

/// All of `reader`, at most `limit` bytes.
///
/// # Errors
/// The reader's error, or one of kind `FileTooLarge` (saying the limit) when there is more.
pub fn read_limited(reader: impl Read, limit: usize) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    reader.take(cap).read_to_end(&mut out)?;
    if out.len() > limit {
        return Err(too_large(limit));
    }
    Ok(out)
}

/// The first line of `reader` without its line ending (`\n` or `\r\n`), at most `limit`
/// bytes; the rest of the input is not read.
///
/// # Errors
/// The reader's error; `FileTooLarge` when no line ends within `limit` bytes;
/// `InvalidData` when the line is not UTF-8.
pub fn read_first_line(reader: &mut dyn BufRead, limit: usize) -> io::Result<String> {
    let mut line = Vec::new();
    // Room for the line ending after `limit` bytes of content.
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(2);
    reader.take(cap).read_until(b'\n', &mut line)?;
    if line.last() == Some(&b'\n') {
        line.pop();
        if line.last() == Some(&b'\r') {
            line.pop();
        }
    }
    if line.len() > limit {
        return Err(too_large(limit));
    }
    String::from_utf8(line)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not valid UTF-8"))
}

/// The whole of the file at `path`, at most `limit` bytes. Pipes and devices work
/// too (`--config <(…)`), with the same cap: `/dev/zero` ends in an error, not a hang.
///
/// # Errors
/// The open or read error (`NotFound` when missing); `FileTooLarge` past `limit`.
pub fn read_file(path: &Path, limit: usize) -> io::Result<Vec<u8>> {
    let f = File::open(path)?;
    let meta = f.metadata()?;
    if meta.is_file() && meta.len() > u64::try_from(limit).unwrap_or(u64::MAX) {
        return Err(too_large(limit));
    }
    read_limited(f, limit)
}

/// [`read_file`] as UTF-8 text.
///
/// # Errors
/// As [`read_file`]; `InvalidData` when it is not UTF-8.
pub fn read_file_to_string(path: &Path, limit: usize) -> io::Result<String> {
    String::from_utf8(read_file(path, limit)?)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "not valid UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[cfg(unix)]
    fn mode(p: &Path) -> u32 {
        use std::os::unix::fs::PermissionsExt;
        std::fs::metadata(p).unwrap().permissions().mode() & 0o777
    }

    #[test]
    #[cfg(unix)]
    fn new_files_are_private_and_existing_ones_are_left_alone() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        let new = dir.path().join("state.db");
        create_private_file(&new).unwrap();
        assert_eq!(mode(&new), 0o600);
        let old = dir.path().join("theirs.db");
        std::fs::write(&old, "keep").unwrap();
        std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o640)).unwrap();
        create_private_file(&old).unwrap();
        assert_eq!(mode(&old), 0o640);
        assert_eq!(std::fs::read_to_string(&old).unwrap(), "keep");
    }

    #[test]
    fn replace_swaps_the_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("doc.json");
        replace(&p, b"one").unwrap();
        replace(&p, b"two").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"two");
        #[cfg(unix)]
        assert_eq!(mode(&p), 0o600);
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["doc.json"]);
    }

    #[test]
    fn stale_temporaries_of_one_file_are_removed_and_others_kept() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("doc.json");
        std::fs::write(dir.path().join(".doc.json.0123.tmp"), "torn").unwrap();
        std::fs::write(dir.path().join(".other.json.0123.tmp"), "x").unwrap();
        assert_eq!(remove_stale_temporaries(&p), 1);
        assert!(dir.path().join(".other.json.0123.tmp").exists());
    }

    #[test]
    fn the_lock_excludes_other_holders_until_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join(".doc.lock");
        let held = FileLock::acquire(&p).unwrap();
        // A second open file description of the same path (as another process has).
        let other = File::open(&p).unwrap();
        assert!(fs4::FileExt::try_lock(&other).is_err());
        // A second holder waits, then gives up with a clear error.
        let e = FileLock::acquire_within(&p, std::time::Duration::from_millis(30)).unwrap_err();
        assert_eq!(e.kind(), ErrorKind::Timeout);
        assert!(e.to_string().contains(".doc.lock"), "{e}");
        drop(held);
        fs4::FileExt::try_lock(&other).unwrap();
    }

    #[test]
    fn reads_stop_at_the_limit() {
        assert_eq!(read_limited(&b"abc"[..], 3).unwrap(), b"abc");
        let e = read_limited(std::io::repeat(b'x'), 1024).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("1 KiB"), "{e}");

        let mut input = &b"tok\r\nrest"[..];
        assert_eq!(read_first_line(&mut input, 3).unwrap(), "tok");
        let mut endless = std::io::BufReader::new(std::io::repeat(b'x'));
        let e = read_first_line(&mut endless, 100).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
        assert!(e.to_string().contains("100 bytes"), "{e}");

        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("big.toml");
        std::fs::write(&p, vec![b'#'; 2048]).unwrap();
        assert_eq!(
            read_file(&p, 1024).unwrap_err().kind(),
            io::ErrorKind::FileTooLarge
        );
        assert_eq!(read_file(&p, 2048).unwrap().len(), 2048);
        assert!(read_file(dir.path(), 2048).is_err());
    }

    #[test]
    #[cfg(target_os = "linux")]
    fn a_device_is_not_read_forever() {
        let e = read_file(Path::new("/dev/zero"), 1024).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::FileTooLarge);
    }
}
