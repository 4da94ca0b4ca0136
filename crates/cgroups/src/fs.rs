//! The thin file layer: every read, write, mkdir and rmdir on cgroupfs goes through here, and
//! every error it returns carries the path it touched.

use std::fs;
use std::io::{self, Write as _};
use std::path::Path;
use std::thread;
use std::time::Duration;

use crate::{Error, Result};

/// Writes `value` to an existing cgroup file with one `write(2)`. Never creates the file: on
/// cgroupfs a missing file means a missing controller, and creating it would hide that.
pub(crate) fn write(path: &Path, value: &str) -> io::Result<()> {
    let mut f = fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(path)?;
    f.write_all(value.as_bytes())
}

/// Reads a whole cgroup file.
pub(crate) fn read(path: &Path) -> Result<String> {
    fs::read_to_string(path).map_err(|e| Error::io("read", path, e))
}

/// Parses a file holding one unsigned number.
pub(crate) fn read_u64(path: &Path) -> Result<u64> {
    let text = read(path)?;
    text.trim()
        .parse()
        .map_err(|_| Error::malformed(path, format!("expected a number, got {:?}", text.trim())))
}

/// Finds `key` in a flat-keyed file (`memory.stat`, `cpu.stat`, `memory.events`, `memory.oom_control`).
pub(crate) fn keyed(path: &Path, text: &str, key: &str) -> Result<u64> {
    for line in text.lines() {
        let mut it = line.split_whitespace();
        if it.next() == Some(key) {
            let v = it.next().unwrap_or_default();
            return v
                .parse()
                .map_err(|_| Error::malformed(path, format!("{key} has value {v:?}")));
        }
    }
    Err(Error::malformed(path, format!("no {key} line")))
}

/// Creates one directory; `Ok(false)` if it already existed.
pub(crate) fn mkdir(path: &Path) -> Result<bool> {
    match fs::create_dir(path) {
        Ok(()) => Ok(true),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(Error::io("mkdir", path, e)),
    }
}

/// How long `rmdir` keeps retrying `EBUSY` (a task that just exited may still be in the cgroup):
/// 1+2+4+8+16 ms, as runc's `RemovePath` does in spirit.
const RMDIR_RETRIES: u32 = 5;

/// Creates a directory and any missing parents, trying the leaf first (one `mkdir` in the
/// common case, where `create_dir_all` would `stat` first).
pub(crate) fn mkdir_all(path: &Path) -> Result<()> {
    match fs::create_dir(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => {
            if let Some(parent) = path.parent() {
                mkdir_all(parent)?;
            }
            mkdir(path).map(drop)
        }
        Err(e) => Err(Error::io("mkdir", path, e)),
    }
}

/// Removes a cgroup directory and every child cgroup, deepest first. cgroupfs only allows
/// `rmdir` (its files cannot be unlinked), so `remove_dir_all` is not usable. Missing is success.
/// The common leaf case is one `rmdir`; on `EBUSY` (child cgroups, or tasks still leaving) the
/// children are removed and `rmdir` is retried with backoff.
pub(crate) fn remove_tree(path: &Path) -> Result<()> {
    match fs::remove_dir(path) {
        Ok(()) => return Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        // EBUSY on cgroupfs, ENOTEMPTY on ordinary directories.
        Err(e)
            if matches!(
                e.kind(),
                io::ErrorKind::ResourceBusy | io::ErrorKind::DirectoryNotEmpty
            ) => {}
        Err(e) => return Err(Error::io("rmdir", path, e)),
    }
    let entries = match fs::read_dir(path) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(Error::io("read_dir", path, e)),
    };
    for entry in entries {
        let entry = entry.map_err(|e| Error::io("read_dir", path, e))?;
        if entry
            .file_type()
            .map_err(|e| Error::io("stat", entry.path(), e))?
            .is_dir()
        {
            remove_tree(&entry.path())?;
        }
    }
    let mut delay = Duration::from_millis(1);
    for attempt in 0..=RMDIR_RETRIES {
        match fs::remove_dir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::ResourceBusy && attempt < RMDIR_RETRIES => {
                thread::sleep(delay);
                delay *= 2;
            }
            Err(e) => return Err(Error::io("rmdir", path, e)),
        }
    }
    unreachable!("the last attempt returns")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keyed_finds_exact_key() {
        let text = "total_inactive_file 7\ninactive_file 3\nrss 9\n";
        let p = Path::new("/memory.stat");
        assert_eq!(keyed(p, text, "inactive_file").unwrap(), 3);
        assert_eq!(keyed(p, text, "total_inactive_file").unwrap(), 7);
        assert!(
            keyed(p, text, "anon")
                .unwrap_err()
                .to_string()
                .contains("no anon line")
        );
        assert!(keyed(p, "rss x\n", "rss").is_err());
    }

    #[test]
    fn write_never_creates_and_truncates() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("cpu.max");
        assert_eq!(write(&f, "1").unwrap_err().kind(), io::ErrorKind::NotFound);
        fs::write(&f, "max 100000\n").unwrap();
        write(&f, "5").unwrap();
        assert_eq!(fs::read_to_string(&f).unwrap(), "5");
    }

    #[test]
    fn remove_tree_is_bottom_up_and_missing_is_ok() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("a");
        fs::create_dir_all(root.join("b/c")).unwrap();
        fs::create_dir_all(root.join("d")).unwrap();
        remove_tree(&root).unwrap();
        assert!(!root.exists());
        remove_tree(&root).unwrap();
        mkdir_all(&root.join("x/y")).unwrap();
        mkdir_all(&root.join("x/y")).unwrap();
        assert!(root.join("x/y").is_dir());
        remove_tree(&root).unwrap();
        assert!(mkdir(&root).unwrap());
        assert!(!mkdir(&root).unwrap());
    }
}
