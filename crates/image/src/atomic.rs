//! Durable file writes: a file is written and fsynced under a temporary name in its final directory,
//! renamed over its final name, and the directory fsynced, so a reader (or a crash) sees the old file or
//! the new one, never half of one.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Error, io_err};

/// Prefix of temporary files; whoever lists a directory skips names starting with it.
pub(crate) const TMP_PREFIX: &str = ".tmp.";

/// Writes `bytes` to `path` atomically and durably.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let dir = parent(path);
    let tmp = dir.join(temp_name(path));
    let result = write_synced(&tmp, bytes).and_then(|()| rename_synced(&tmp, path));
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

/// Creates `path` (which must not exist), writes `bytes` and fsyncs it. For files that are renamed into
/// place later.
pub(crate) fn write_synced(path: &Path, bytes: &[u8]) -> Result<(), Error> {
    let mut file = create_new(path)?;
    file.write_all(bytes).map_err(io_err(path))?;
    file.sync_all().map_err(io_err(path))
}

/// Creates `path` exclusively (mode 0644, close-on-exec).
pub(crate) fn create_new(path: &Path) -> Result<File, Error> {
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o644)
        .custom_flags(libc::O_CLOEXEC)
        .open(path)
        .map_err(io_err(path))
}

/// Renames `from` over `to` and fsyncs the directory of `to`.
pub(crate) fn rename_synced(from: &Path, to: &Path) -> Result<(), Error> {
    fs::rename(from, to).map_err(io_err(to))?;
    fsync_dir(parent(to))
}

/// Removes `path` (absent is fine) and fsyncs its directory.
pub(crate) fn remove_synced(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Ok(()) => fsync_dir(parent(path)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_err(path)(e)),
    }
}

/// fsyncs a directory, making renames and unlinks in it durable.
pub(crate) fn fsync_dir(dir: &Path) -> Result<(), Error> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err(dir))
}

fn parent(path: &Path) -> &Path {
    path.parent().unwrap_or(Path::new("."))
}

fn temp_name(path: &Path) -> PathBuf {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    PathBuf::from(format!("{TMP_PREFIX}{name}.{}.{n}", std::process::id()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_atomically_and_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("r.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"two");
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, vec![std::ffi::OsString::from("r.json")]);
    }

    #[test]
    fn errors_carry_the_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("missing-dir/r.json");
        match write_atomic(&path, b"x").unwrap_err() {
            Error::Io { path: p, .. } => {
                assert!(p.starts_with(dir.path().join("missing-dir")), "{p:?}")
            }
            other => panic!("{other}"),
        }
        remove_synced(&dir.path().join("absent")).unwrap();
    }
}
