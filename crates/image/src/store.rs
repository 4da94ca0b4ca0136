//! The image store handle: its directories, its lock, the lazily created engine, listing and the
//! compiled-module cache. Importing, resolving and removing live in their own files as `impl` blocks.

use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

use wasmlet_wasm::wasmtime::Engine;
use wasmlet_wasm::{ArtifactKind, compat_hash, compile, detect_kind, new_engine};

use crate::digest::sha256_hex;
use crate::error::{Error, io_err};
use crate::lock::FileLock;
use crate::record::{ImageRecord, Records};
use crate::staging::Staging;
use crate::usage::{self, FsUsage};

/// The local image store. Cheap to share (`&self` everywhere); blocking, so async callers use
/// `spawn_blocking`. Several processes may open the same root at once.
///
/// Layout under the root:
/// ```text
/// lock                                   flock(2) held by every mutation, in any process
/// blobs/sha256/<hex>                     content-addressed blobs: manifests, configs, layers, Wasm
/// compiled/<wasm-hex>-<compat>.cwasm     wasmtime artifacts, one per Wasm binary and engine compat hash
/// records/<image-id-hex>.json            one ImageRecord per image, replaced atomically
/// snapshots/<chain-id-hex>/fs/           unpacked Linux layers, one per chain id (see ImageRecord::snapshots)
/// tmp/<pid>-<nanos>-<n>[.lock]           staging areas of in-flight imports, pulls and compiles
/// ```
/// Writers stage and verify everything in `tmp/`, then, under the lock, rename blobs and artifacts into
/// place before writing the record: a reader that sees a record always finds its files. Removal deletes
/// the record first, then the files nobody references.
///
/// ```no_run
/// use std::path::Path;
/// let store = wasmlet_image::ImageStore::open("/var/lib/wasmlet/images")?;
/// let images = store.import(Path::new("hello.wasm"), Some("hello:v1"))?;
/// let image = store.resolve("hello:v1")?.expect("just imported");
/// assert_eq!(image.id, images[0].id);
/// let cwasm = store.compiled_path(&image)?; // map it with wasmlet_wasm::load_module
/// # Ok::<(), wasmlet_image::Error>(())
/// ```
pub struct ImageStore {
    root: PathBuf,
    pub(crate) blobs_dir: PathBuf,
    pub(crate) compiled_dir: PathBuf,
    pub(crate) tmp_dir: PathBuf,
    /// `<root>/snapshots`: unpacked Linux layers (see `unpack.rs`).
    pub(crate) snapshots_dir: PathBuf,
    lock_path: PathBuf,
    pub(crate) records: Records,
    /// The engine and its compat hash, created on first compile unless given to `with_engine`.
    pub(crate) engine: OnceLock<(Engine, String)>,
    /// Pulls in flight in this process, one per reference at a time.
    pub(crate) pulls: crate::pull::InFlight,
    /// The records as `list` last read them, for [`ImageStore::resolve_compiled_fast`].
    pub(crate) records_copy: crate::resolve_fast::RecordsCopy,
}

impl std::fmt::Debug for ImageStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ImageStore")
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

impl ImageStore {
    /// Opens (creating its directories if needed) the store at `root`, and cleans up after processes
    /// that crashed mid-import: their staging areas and any unreferenced blob.
    pub fn open(root: impl Into<PathBuf>) -> Result<Self, Error> {
        let root = root.into();
        let store = ImageStore {
            blobs_dir: root.join("blobs").join("sha256"),
            compiled_dir: root.join("compiled"),
            tmp_dir: root.join("tmp"),
            snapshots_dir: root.join("snapshots"),
            lock_path: root.join("lock"),
            records: Records::new(root.join("records")),
            engine: OnceLock::new(),
            pulls: Default::default(),
            records_copy: Default::default(),
            root,
        };
        for dir in [
            &store.blobs_dir,
            &store.compiled_dir,
            &store.tmp_dir,
            &store.snapshots_dir,
            store.records.dir(),
        ] {
            fs::create_dir_all(dir).map_err(io_err(dir))?;
        }
        {
            let _lock = store.lock()?;
            Staging::sweep(&store.tmp_dir)?;
            store.collect_garbage()?;
        }
        Ok(store)
    }

    /// Like [`open`](Self::open), compiling with `engine` (which must come from
    /// `wasmlet_wasm::new_engine`, or artifacts will not load in the shim) instead of a new one.
    pub fn with_engine(root: impl Into<PathBuf>, engine: Engine) -> Result<Self, Error> {
        let store = Self::open(root)?;
        let compat = compat_hash(&engine);
        let _ = store.engine.set((engine, compat));
        Ok(store)
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every image, oldest first. Unreadable records are logged and skipped.
    pub fn list(&self) -> Result<Vec<ImageRecord>, Error> {
        let before = crate::resolve_fast::RecordsCopy::before_reading(self.records.dir());
        let (records, errors) = self.records.load_all()?;
        if let Some(before) = before
            && errors.is_empty()
        {
            self.records_copy.keep(before, &records);
        }
        for error in errors {
            tracing::warn!(error = %error, "skipping an unreadable image record");
        }
        Ok(records)
    }

    /// Disk usage of the store's tree (bytes in allocated blocks, like `du`; inodes counted one per
    /// file or directory), for the CRI `ImageFsInfo`.
    pub fn fs_usage(&self) -> Result<FsUsage, Error> {
        usage::measure(&self.root)
    }

    /// The compiled artifact of `image` for the current engine: `compiled/<wasm-hex>-<compat>.cwasm`.
    /// Compiles and stores it if missing (a new wasmtime, a changed engine config, a deleted file).
    /// `NotFound` if the image was removed meanwhile.
    /// `NotWasm` for a Linux image (pulled and stored, but not unpacked or runnable yet).
    pub fn compiled_path(&self, image: &ImageRecord) -> Result<PathBuf, Error> {
        if image.is_linux() {
            let name = image.repo_tags.first().unwrap_or(&image.id);
            return Err(Error::not_wasm(
                name.clone(),
                "a Linux image: pulled and verified, but running Linux images is not supported yet",
            ));
        }
        let (_, compat) = self.engine(&image.id)?;
        let name = compiled_name(image.wasm_hex(), compat);
        let path = self.compiled_dir.join(&name);
        if path.exists() {
            return Ok(path);
        }
        let wasm = self.read_wasm(image)?;
        let mut staging = self.new_staging()?;
        self.stage_compiled(&mut staging, &image.id, &wasm, image.wasm_hex())?;
        let _lock = self.lock()?;
        if !self.records.path(image.id_hex()).exists() {
            return Err(Error::NotFound {
                reference: image.id.clone(),
            });
        }
        staging.install(&self.blobs_dir, &self.compiled_dir)?;
        tracing::info!(image.id = %image.id, compat = %compat, "compiled image for the current engine");
        Ok(path)
    }

    /// The engine (created on first use) and its compat hash; `image` names the image for errors.
    pub(crate) fn engine(&self, image: &str) -> Result<&(Engine, String), Error> {
        if let Some(engine) = self.engine.get() {
            return Ok(engine);
        }
        let engine = new_engine().map_err(|source| Error::Compile {
            image: image.to_owned(),
            source,
        })?;
        let compat = compat_hash(&engine);
        Ok(self.engine.get_or_init(|| (engine, compat)))
    }

    /// Compiles `wasm` into `staging` unless its artifact for the current engine exists already.
    /// Returns its kind. Import calls this before committing, so a module that does not compile is
    /// never recorded.
    pub(crate) fn stage_compiled(
        &self,
        staging: &mut Staging,
        image: &str,
        wasm: &[u8],
        wasm_hex: &str,
    ) -> Result<ArtifactKind, Error> {
        let kind = detect_kind(wasm).map_err(|_| {
            Error::not_wasm(image, "the Wasm binary has a bad magic number or version")
        })?;
        let (engine, compat) = self.engine(image)?;
        let name = compiled_name(wasm_hex, compat);
        if !self.compiled_dir.join(&name).exists() && !staging.has_compiled(&name) {
            let started = Instant::now();
            let (_, artifact) = compile(engine, wasm).map_err(|source| Error::Compile {
                image: image.to_owned(),
                source,
            })?;
            staging.put_compiled(&name, &artifact)?;
            tracing::debug!(image = image, wasm_bytes = wasm.len(), elapsed = ?started.elapsed(), "compiled");
        }
        Ok(kind)
    }

    /// The Wasm binary of `image`, checked against its digest.
    fn read_wasm(&self, image: &ImageRecord) -> Result<Vec<u8>, Error> {
        let path = self.blobs_dir.join(image.wasm_hex());
        let wasm = match fs::read(&path) {
            Ok(wasm) => wasm,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::NotFound {
                    reference: image.id.clone(),
                });
            }
            Err(e) => return Err(io_err(&path)(e)),
        };
        let got = sha256_hex(&wasm);
        if got != image.wasm_hex() {
            return Err(Error::corrupt(
                format!("blob {}", image.wasm_digest),
                format!("content hashes to sha256:{got}"),
            ));
        }
        Ok(wasm)
    }

    /// The store-wide lock; every mutation holds it.
    pub(crate) fn lock(&self) -> Result<FileLock, Error> {
        FileLock::acquire(&self.lock_path)
    }

    pub(crate) fn new_staging(&self) -> Result<Staging, Error> {
        Staging::new(&self.tmp_dir, &self.lock_path)
    }
}

/// `<wasm-hex>-<compat>.cwasm`
pub(crate) fn compiled_name(wasm_hex: &str, compat: &str) -> String {
    format!("{wasm_hex}-{compat}.cwasm")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{module, write_file};

    #[test]
    fn open_creates_the_layout_and_is_repeatable() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("images");
        let store = ImageStore::open(&root).unwrap();
        for sub in ["blobs/sha256", "compiled", "records", "tmp"] {
            assert!(root.join(sub).is_dir(), "{sub}");
        }
        assert!(root.join("lock").is_file());
        assert_eq!(store.root(), root);
        assert!(store.list().unwrap().is_empty());
        ImageStore::open(&root).unwrap();
    }

    #[test]
    fn open_cleans_up_after_a_crashed_import() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        let store = ImageStore::open(&root).unwrap();
        let image = store
            .import(&write_file(dir.path(), "k.wasm", &module("kept")), None)
            .unwrap()
            .remove(0);
        // A crash after blobs were installed but before the record was written, and mid-staging.
        fs::write(store.blobs_dir.join("e".repeat(64)), b"orphan").unwrap();
        fs::write(
            store
                .compiled_dir
                .join(format!("{}-x.cwasm", "e".repeat(64))),
            b"",
        )
        .unwrap();
        fs::write(store.records.dir().join(".tmp.r.json.1.0"), b"{").unwrap();
        fs::create_dir(store.tmp_dir.join("1-2-3")).unwrap();
        fs::write(store.tmp_dir.join("1-2-3.lock"), b"").unwrap();
        drop(store);
        let store = ImageStore::open(&root).unwrap();
        assert_eq!(fs::read_dir(&store.blobs_dir).unwrap().count(), 3);
        assert_eq!(fs::read_dir(&store.compiled_dir).unwrap().count(), 1);
        assert_eq!(fs::read_dir(store.records.dir()).unwrap().count(), 1);
        assert_eq!(fs::read_dir(&store.tmp_dir).unwrap().count(), 0);
        assert_eq!(store.list().unwrap(), vec![image]);
    }

    #[test]
    fn compiled_path_recompiles_a_deleted_artifact() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let wasm = write_file(dir.path(), "app.wasm", &module("recompile"));
        let image = store.import(&wasm, None).unwrap().remove(0);
        let path = store.compiled_path(&image).unwrap();
        let compat = &store.engine("x").unwrap().1;
        assert_eq!(
            path,
            store
                .compiled_dir
                .join(format!("{}-{compat}.cwasm", image.wasm_hex()))
        );
        let before = fs::read(&path).unwrap();
        fs::remove_file(&path).unwrap();
        assert_eq!(store.compiled_path(&image).unwrap(), path);
        assert_eq!(fs::read(&path).unwrap(), before);
        let engine = &store.engine("x").unwrap().0;
        wasmlet_wasm::load_module(engine, &path).unwrap();
    }

    #[test]
    fn compiled_path_of_a_removed_image_is_not_found() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let wasm = write_file(dir.path(), "app.wasm", &module("gone"));
        let image = store.import(&wasm, None).unwrap().remove(0);
        store.remove(&image.id).unwrap().unwrap();
        assert!(matches!(
            store.compiled_path(&image),
            Err(Error::NotFound { .. })
        ));
    }

    #[test]
    fn a_tampered_wasm_blob_is_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let wasm = write_file(dir.path(), "app.wasm", &module("tamper"));
        let image = store.import(&wasm, None).unwrap().remove(0);
        fs::remove_file(store.compiled_path(&image).unwrap()).unwrap();
        fs::write(store.blobs_dir.join(image.wasm_hex()), module("other")).unwrap();
        assert!(matches!(
            store.compiled_path(&image),
            Err(Error::Corrupt { .. })
        ));
    }

    #[test]
    fn a_given_engine_is_used() {
        let dir = tempfile::tempdir().unwrap();
        let engine = new_engine().unwrap();
        let compat = compat_hash(&engine);
        let store = ImageStore::with_engine(dir.path(), engine).unwrap();
        assert_eq!(store.engine("x").unwrap().1, compat);
        assert!(format!("{store:?}").contains("ImageStore"));
    }
}
