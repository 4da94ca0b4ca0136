//! Filesystem usage of the store tree, as the CRI `ImageFsInfo` reports it.

use std::fs;
use std::io::ErrorKind;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};

use crate::error::{Error, io_err};

/// Space and inodes used by the image store.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsUsage {
    /// The store root (the CRI field is named mountpoint; containerd reports its snapshotter root).
    pub mountpoint: PathBuf,
    /// Bytes in allocated blocks (`du`), over every file and directory under the root.
    pub used_bytes: u64,
    /// Files and directories under the root, the root included.
    pub inodes_used: u64,
}

/// Walks `root` without following symlinks. Entries that vanish during the walk are skipped.
pub(crate) fn measure(root: &Path) -> Result<FsUsage, Error> {
    let mut usage = FsUsage {
        mountpoint: root.to_owned(),
        used_bytes: 0,
        inodes_used: 0,
    };
    let mut pending = vec![root.to_owned()];
    while let Some(path) = pending.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == ErrorKind::NotFound && path != root => continue,
            Err(e) => return Err(io_err(&path)(e)),
        };
        usage.used_bytes += meta.blocks() * 512;
        usage.inodes_used += 1;
        if meta.is_dir() {
            let entries = match fs::read_dir(&path) {
                Ok(entries) => entries,
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&path)(e)),
            };
            for entry in entries {
                pending.push(entry.map_err(io_err(&path))?.path());
            }
        }
    }
    Ok(usage)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_files_dirs_and_blocks() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("a")).unwrap();
        fs::write(dir.path().join("a/f"), vec![1u8; 10_000]).unwrap();
        std::os::unix::fs::symlink("/", dir.path().join("link")).unwrap();
        let usage = measure(dir.path()).unwrap();
        assert_eq!(usage.mountpoint, dir.path());
        assert_eq!(usage.inodes_used, 4);
        assert!(usage.used_bytes >= 10_000, "{usage:?}");
        assert!(matches!(
            measure(&dir.path().join("missing")),
            Err(Error::Io { .. })
        ));
    }
}
