//! Staging areas under `<root>/tmp/`: an import or a recompile writes and verifies every file there
//! without holding the store lock, then renames them into `blobs/` and `compiled/` under it. A failure
//! anywhere drops the area and leaves the store untouched. Each area holds an `flock` on its `<name>.lock`
//! so that `ImageStore::open` can sweep the areas of crashed processes and only those.

use std::collections::BTreeMap;
use std::fs;
use std::io::{ErrorKind, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use crate::atomic;
use crate::digest::{HashingWriter, sha256_hex, sha256_hex_of};
use crate::error::{Error, io_err};
use crate::lock::FileLock;
use crate::oci::Descriptor;

pub(crate) struct Staging {
    dir: PathBuf,
    lock: FileLock,
    /// Verified blobs by hex.
    blobs: BTreeMap<String, PathBuf>,
    /// Compiled artifacts: staged path → final file name in `compiled/`.
    compiled: Vec<(PathBuf, String)>,
}

impl Staging {
    /// Creates a staging area in `tmp_root`. Takes the store lock (`store_lock`) briefly so a concurrent
    /// sweep never sees it half made.
    pub(crate) fn new(tmp_root: &Path, store_lock: &Path) -> Result<Self, Error> {
        let _guard = FileLock::acquire(store_lock)?;
        Self::new_unlocked(tmp_root)
    }

    /// Like [`new`](Self::new) for a caller that already holds the store lock.
    pub(crate) fn new_unlocked(tmp_root: &Path) -> Result<Self, Error> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        let name = format!(
            "{}-{nanos}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        );
        let lock = FileLock::acquire(&tmp_root.join(format!("{name}.lock")))?;
        let dir = tmp_root.join(name);
        fs::create_dir(&dir).map_err(io_err(&dir))?;
        Ok(Staging {
            dir,
            lock,
            blobs: BTreeMap::new(),
            compiled: Vec::new(),
        })
    }

    /// Removes the staging areas whose owner is gone. Caller holds the store lock.
    pub(crate) fn sweep(tmp_root: &Path) -> Result<(), Error> {
        for entry in fs::read_dir(tmp_root).map_err(io_err(tmp_root))? {
            let path = entry.map_err(io_err(tmp_root))?.path();
            if path.extension().is_some_and(|e| e == "lock") {
                if let Some(_stale) = FileLock::try_acquire(&path)? {
                    remove_dir_all(&path.with_extension(""))?;
                    remove_file(&path)?;
                }
            } else if !path.with_extension("lock").exists() {
                // A staging dir outlives its lock file only if its owner died mid-cleanup.
                remove_dir_all(&path)?;
            }
        }
        Ok(())
    }

    /// Stages bytes we made ourselves (a synthesised manifest or config, Wasm read from a tar layer).
    pub(crate) fn put_blob(&mut self, bytes: &[u8]) -> Result<String, Error> {
        let hex = sha256_hex(bytes);
        if !self.blobs.contains_key(&hex) {
            let path = self.dir.join(format!("blob-{hex}"));
            atomic::write_synced(&path, bytes)?;
            self.blobs.insert(hex.clone(), path);
        }
        Ok(hex)
    }

    /// Copies the blob `desc` from `src` into the staging area, checking its size (at most `max` bytes
    /// when given) and its sha256 against the descriptor. Returns the verified copy, which callers read
    /// instead of `src` (so a layout changed behind our back cannot slip content past the check).
    pub(crate) fn copy_blob(
        &mut self,
        src: &Path,
        desc: &Descriptor,
        max: Option<u64>,
        what: &str,
    ) -> Result<PathBuf, Error> {
        let what = || format!("{what} {}", desc.digest);
        let Some(hex) = sha256_hex_of(&desc.digest) else {
            return Err(Error::corrupt(
                what(),
                "not a sha256:<64 lowercase hex> digest",
            ));
        };
        if let Some(path) = self.blobs.get(hex) {
            return Ok(path.clone());
        }
        if let Some(max) = max
            && desc.size > max
        {
            return Err(Error::corrupt(
                what(),
                format!("{} bytes, over the {max}-byte limit", desc.size),
            ));
        }
        let mut input = fs::File::open(src).map_err(io_err(src))?;
        self.receive_blob(&mut input, desc, what, &mut |e| io_err(src)(e), &mut |_| {})
    }

    /// Streams the blob `desc` from `input` into the area, checking its size and sha256 as
    /// [`copy_blob`](Self::copy_blob) does (the caller checks any size limit first). `read_err` maps a
    /// read failure; `progress` gets the running byte count.
    pub(crate) fn receive_blob(
        &mut self,
        input: &mut dyn Read,
        desc: &Descriptor,
        what: impl Fn() -> String,
        read_err: &mut dyn FnMut(std::io::Error) -> Error,
        progress: &mut dyn FnMut(u64),
    ) -> Result<PathBuf, Error> {
        let Some(hex) = sha256_hex_of(&desc.digest) else {
            return Err(Error::corrupt(
                what(),
                "not a sha256:<64 lowercase hex> digest",
            ));
        };
        if let Some(path) = self.blobs.get(hex) {
            return Ok(path.clone());
        }
        let path = self.dir.join(format!("blob-{hex}"));
        let mut out = HashingWriter::new(atomic::create_new(&path)?);
        let mut input = input.take(desc.size.saturating_add(1));
        let mut buf = vec![0; 64 << 10];
        loop {
            let n = match input.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    let _ = fs::remove_file(&path);
                    return Err(read_err(e));
                }
            };
            out.write_all(&buf[..n]).map_err(io_err(&path))?;
            progress(out.written());
        }
        let (file, got, written) = out.finish();
        if written != desc.size {
            let _ = fs::remove_file(&path);
            let detail = if written > desc.size { "more" } else { "fewer" };
            return Err(Error::corrupt(
                what(),
                format!("{detail} bytes than the descriptor's {}", desc.size),
            ));
        }
        if got != hex {
            let _ = fs::remove_file(&path);
            return Err(Error::corrupt(
                what(),
                format!("content hashes to sha256:{got}"),
            ));
        }
        file.sync_all().map_err(io_err(&path))?;
        self.blobs.insert(hex.to_owned(), path.clone());
        Ok(path)
    }

    /// The area's directory (pulls keep a layout of hard links to the staged blobs in it).
    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    /// Stages a compiled artifact to be installed as `compiled/<file_name>`.
    pub(crate) fn put_compiled(&mut self, file_name: &str, bytes: &[u8]) -> Result<(), Error> {
        let path = self.dir.join(file_name);
        atomic::write_synced(&path, bytes)?;
        self.compiled.push((path, file_name.to_owned()));
        Ok(())
    }

    pub(crate) fn has_compiled(&self, file_name: &str) -> bool {
        self.compiled.iter().any(|(_, name)| name == file_name)
    }

    /// Moves every staged file into place (blobs already present are kept) and fsyncs the directories.
    /// Caller holds the store lock.
    pub(crate) fn install(&mut self, blobs_dir: &Path, compiled_dir: &Path) -> Result<(), Error> {
        for (hex, path) in std::mem::take(&mut self.blobs) {
            let target = blobs_dir.join(hex);
            if !target.exists() {
                fs::rename(&path, &target).map_err(io_err(&target))?;
            }
        }
        atomic::fsync_dir(blobs_dir)?;
        for (path, name) in std::mem::take(&mut self.compiled) {
            let target = compiled_dir.join(name);
            fs::rename(&path, &target).map_err(io_err(&target))?;
        }
        atomic::fsync_dir(compiled_dir)
    }
}

impl Drop for Staging {
    fn drop(&mut self) {
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!(path = %self.dir.display(), error = %e, "removing a staging area");
        }
        let _ = fs::remove_file(self.lock.path());
    }
}

fn remove_dir_all(path: &Path) -> Result<(), Error> {
    match fs::remove_dir_all(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

fn remove_file(path: &Path) -> Result<(), Error> {
    match fs::remove_file(path) {
        Err(e) if e.kind() != ErrorKind::NotFound => Err(io_err(path)(e)),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_digest;

    fn area() -> (tempfile::TempDir, PathBuf, PathBuf) {
        let root = tempfile::tempdir().unwrap();
        let tmp = root.path().join("tmp");
        fs::create_dir(&tmp).unwrap();
        let lock = root.path().join("lock");
        (root, tmp, lock)
    }

    #[test]
    fn verifies_size_and_digest() {
        let (root, tmp, lock) = area();
        let mut staging = Staging::new(&tmp, &lock).unwrap();
        let src = root.path().join("src");
        fs::write(&src, b"hello").unwrap();
        let good = Descriptor::new("x", b"hello");
        let copy = staging.copy_blob(&src, &good, None, "layer").unwrap();
        assert_eq!(fs::read(copy).unwrap(), b"hello");

        let mut wrong = Descriptor::new("x", b"hellO");
        let err = staging.copy_blob(&src, &wrong, None, "layer").unwrap_err();
        assert!(err.to_string().contains(&wrong.digest), "{err}");
        wrong.digest = sha256_digest(b"hello!");
        wrong.size = 4;
        assert!(matches!(
            staging.copy_blob(&src, &wrong, None, "layer"),
            Err(Error::Corrupt { .. })
        ));
        wrong.size = 5 << 20;
        let err = staging
            .copy_blob(&src, &wrong, Some(4 << 20), "manifest")
            .unwrap_err();
        assert!(err.to_string().contains("limit"), "{err}");
        wrong.digest = "sha256:../../etc/passwd".into();
        assert!(matches!(
            staging.copy_blob(&src, &wrong, None, "layer"),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn drop_cleans_up_and_sweep_spares_live_areas() {
        let (_root, tmp, lock) = area();
        let live = Staging::new(&tmp, &lock).unwrap();
        let dropped = Staging::new(&tmp, &lock).unwrap();
        drop(dropped);
        assert_eq!(
            fs::read_dir(&tmp).unwrap().count(),
            2,
            "live dir + its lock file"
        );
        // A crashed owner: a dir and an unlocked lock file, and a dir alone.
        fs::create_dir(tmp.join("1-2-3")).unwrap();
        fs::write(tmp.join("1-2-3.lock"), b"").unwrap();
        fs::create_dir(tmp.join("4-5-6")).unwrap();
        Staging::sweep(&tmp).unwrap();
        assert_eq!(fs::read_dir(&tmp).unwrap().count(), 2);
        assert!(live.dir.exists());
    }
}
