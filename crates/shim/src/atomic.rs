//! Small files written atomically: a temp file in the same directory, then a rename over the
//! target. A reader sees the old content or the new, never a torn file, and a kill -9 of the writer
//! at any moment loses nothing (the page cache outlives the process).
//!
//! [`Durability::PowerLoss`] adds fsync of the file and its directory (≈ 4 ms each on this VM's
//! disk) for what must survive a power cut. Pod and container records do not: their processes do
//! not survive one either, and after a reboot kubelet recreates every pod (CRI-O keeps the same
//! state on tmpfs for the same reason).

use std::fs::{self, File};
use std::io::Write;
use std::path::Path;

use crate::Error;

/// How far a write must get before it returns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Survives a crash or kill of any process (rename in the page cache).
    ProcessCrash,
    /// Also survives a power cut (fsync of file and directory).
    PowerLoss,
}

/// Writes `bytes` to `path` atomically.
pub fn write_atomic(path: &Path, bytes: &[u8], durability: Durability) -> Result<(), Error> {
    let dir = path.parent().unwrap_or(Path::new("."));
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = File::create(&tmp)?;
        f.write_all(bytes)?;
        if durability == Durability::PowerLoss {
            f.sync_all()?;
        }
        fs::rename(&tmp, path)?;
        if durability == Durability::PowerLoss {
            File::open(dir)?.sync_all()?;
        }
        Ok(())
    };
    write().map_err(|e| {
        let _ = fs::remove_file(&tmp);
        Error::Io { op: "writing", path: path.to_owned(), source: e }
    })
}

/// Serialises `value` as JSON and writes it with [`write_atomic`].
pub fn write_json<T: serde::Serialize>(path: &Path, value: &T, durability: Durability) -> Result<(), Error> {
    let bytes = serde_json::to_vec(value).map_err(|e| Error::Protocol(e.to_string()))?;
    write_atomic(path, &bytes, durability)
}

/// Reads a JSON file written by [`write_json`]; `Ok(None)` when it does not exist.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path) -> Result<Option<T>, Error> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| Error::Protocol(format!("{}: {e}", path.display()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(Error::Io { op: "reading", path: path.to_owned(), source: e }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replaces_whole_file_and_leaves_no_temp() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("rec.json");
        write_json(&p, &vec![1, 2, 3], Durability::PowerLoss).unwrap();
        write_json(&p, &vec![4], Durability::ProcessCrash).unwrap();
        assert_eq!(read_json::<Vec<i32>>(&p).unwrap(), Some(vec![4]));
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
        assert_eq!(read_json::<Vec<i32>>(&dir.path().join("none")).unwrap(), None);
    }
}
