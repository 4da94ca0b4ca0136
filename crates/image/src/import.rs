//! Importing: telling a `.wasm` file from an OCI image-layout directory, and committing what the
//! importers prepared (verified blobs and compiled artifacts in a staging area, plus records) into the
//! store under its lock.

use std::collections::BTreeMap;
use std::fs;
use std::io::Read;
use std::path::Path;

use crate::error::{Error, io_err};
use crate::record::ImageRecord;
use crate::reference::{Reference, normalize};
use crate::staging::Staging;
use crate::store::{ImageStore, compiled_name};
use crate::{import_layout, import_wasm};

/// One image an importer has fully staged; its record's `created_unix_nanos` is set at commit.
pub(crate) struct Prepared {
    pub record: ImageRecord,
}

impl ImageStore {
    /// Imports a `.wasm` file (detected by its `\0asm` magic) or an OCI image-layout directory (an
    /// `oci-layout` file and `index.json`), compiling each Wasm binary once for the current engine.
    /// Returns the records of the imported images, after merging with images already stored.
    ///
    /// `name` (e.g. `hello:v1`, normalised like any reference) names a `.wasm` file's image, default
    /// `localhost/<file stem, lowercased>:latest`. For a layout, each image is named by its index.json
    /// annotations: `io.containerd.image.name` (a full name), else `org.opencontainers.image.ref.name`
    /// (a full name, or a bare tag that is put on `name`'s repository or `localhost/<dir name>`), else
    /// `name` or `localhost/<dir name>:latest`.
    ///
    /// A tag already on another image moves to the imported one (that image keeps its other names, as
    /// docker's dangling images do). Nothing is stored unless every image imports: a digest mismatch, a
    /// Linux image or a module that does not compile leaves the store as it was.
    pub fn import(&self, path: &Path, name: Option<&str>) -> Result<Vec<ImageRecord>, Error> {
        let name = name.map(import_name).transpose()?;
        let meta = fs::metadata(path).map_err(io_err(path))?;
        let mut staging = self.new_staging()?;
        let prepared = if meta.is_dir() {
            import_layout::prepare(self, &mut staging, path, name.as_ref())?
        } else if has_wasm_magic(path)? {
            vec![import_wasm::prepare(
                self,
                &mut staging,
                path,
                name.as_ref(),
            )?]
        } else {
            return Err(Error::not_wasm(
                path.display().to_string(),
                "neither a .wasm file nor an OCI image-layout directory (image tarballs are not supported yet)",
            ));
        };
        self.commit(&mut staging, prepared)
    }

    pub(crate) fn commit(
        &self,
        staging: &mut Staging,
        prepared: Vec<Prepared>,
    ) -> Result<Vec<ImageRecord>, Error> {
        let _lock = self.lock()?;
        let (stored, _unreadable) = self.records.load_all()?;
        let mut images: BTreeMap<String, ImageRecord> =
            stored.into_iter().map(|r| (r.id.clone(), r)).collect();
        for p in &prepared {
            let id = &p.record.id;
            let mut same_id = images
                .get(id)
                .into_iter()
                .chain(prepared.iter().map(|q| &q.record));
            if let Some(other) =
                same_id.find(|q| q.id == *id && q.wasm_digest != p.record.wasm_digest)
            {
                return Err(Error::Conflict {
                    image: p
                        .record
                        .repo_tags
                        .first()
                        .cloned()
                        .unwrap_or_else(|| id.clone()),
                    detail: format!(
                        "image id {id} (its config digest) already names an image with Wasm {}, not {}",
                        other.wasm_digest, p.record.wasm_digest
                    ),
                });
            }
        }

        staging.install(&self.blobs_dir, &self.compiled_dir)?;
        let now = unix_nanos();
        let mut changed = Vec::new();
        let mut untagged = Vec::new();
        for p in &prepared {
            if !p.record.is_linux() {
                self.ensure_compiled_locked(&p.record)?;
            }
            let record = images.entry(p.record.id.clone()).or_insert_with(|| {
                let mut new = p.record.clone();
                new.created_unix_nanos = now;
                new
            });
            record.merge(&p.record);
            if !changed.contains(&p.record.id) {
                changed.push(p.record.id.clone());
            }
            for tag in &p.record.repo_tags {
                for other in images.values_mut().filter(|o| o.id != p.record.id) {
                    if other.repo_tags.contains(tag) {
                        other.repo_tags.retain(|t| t != tag);
                        tracing::info!(image.id = %other.id, tag = %tag, "tag moved to another image");
                        untagged.push(other.id.clone());
                    }
                }
            }
        }
        // The new holder of a tag is written before the old one loses it, so the tag always resolves.
        for id in changed
            .iter()
            .chain(untagged.iter().filter(|id| !changed.contains(id)))
        {
            self.records.save(&images[id])?;
        }
        let result: Vec<ImageRecord> = changed.iter().map(|id| images[id].clone()).collect();
        for record in &result {
            tracing::info!(image.id = %record.id, tags = ?record.repo_tags, kind = %record.kind, "imported image");
        }
        Ok(result)
    }

    /// The artifact was found at preparation and so not staged, but a removal may have collected it
    /// since: compile it again, now under the lock. Rare.
    fn ensure_compiled_locked(&self, record: &ImageRecord) -> Result<(), Error> {
        let (_, compat) = self.engine(&record.id)?;
        if self
            .compiled_dir
            .join(compiled_name(record.wasm_hex(), compat))
            .exists()
        {
            return Ok(());
        }
        let path = self.blobs_dir.join(record.wasm_hex());
        let wasm = fs::read(&path).map_err(io_err(&path))?;
        let mut staging = Staging::new_unlocked(&self.tmp_dir)?;
        self.stage_compiled(&mut staging, &record.id, &wasm, record.wasm_hex())?;
        staging.install(&self.blobs_dir, &self.compiled_dir)
    }
}

/// The name to import under: any reference without a digest.
fn import_name(name: &str) -> Result<Reference, Error> {
    let reference = normalize(name)?;
    if reference.digest.is_some() {
        return Err(Error::invalid(
            name,
            "a name to import under cannot carry a digest",
        ));
    }
    Ok(reference)
}

fn has_wasm_magic(path: &Path) -> Result<bool, Error> {
    let mut magic = [0u8; 4];
    let file = fs::File::open(path).map_err(io_err(path))?;
    let n = file.take(4).read(&mut magic).map_err(io_err(path))?;
    Ok(n == 4 && magic == *b"\0asm")
}

fn unix_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{module, write_file};

    #[test]
    fn rejects_bad_names_and_non_wasm_files() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let wasm = write_file(dir.path(), "a.wasm", &module("names"));
        let digest = format!("a@sha256:{}", "0".repeat(64));
        assert!(matches!(
            store.import(&wasm, Some(&digest)),
            Err(Error::InvalidReference { .. })
        ));
        assert!(matches!(
            store.import(&wasm, Some("A")),
            Err(Error::InvalidReference { .. })
        ));
        let elf = write_file(dir.path(), "sh", b"\x7fELF\x02\x01\x01\0");
        assert!(matches!(
            store.import(&elf, None),
            Err(Error::NotWasm { .. })
        ));
        let missing = dir.path().join("missing.wasm");
        assert!(
            matches!(store.import(&missing, None), Err(Error::Io { path, .. }) if path == missing)
        );
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn a_moved_tag_leaves_the_old_image_dangling() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let old = store
            .import(&write_file(dir.path(), "app.wasm", &module("v1")), None)
            .unwrap()
            .remove(0);
        let new = store
            .import(&write_file(dir.path(), "app.wasm", &module("v2")), None)
            .unwrap()
            .remove(0);
        assert_ne!(old.id, new.id);
        assert_eq!(store.resolve("localhost/app").unwrap().unwrap().id, new.id);
        let old = store.resolve(&old.id).unwrap().unwrap();
        assert!(old.repo_tags.is_empty());
        assert_eq!(old.repo_digests.len(), 1);
        assert_eq!(store.list().unwrap().len(), 2);
    }

    #[test]
    fn two_processes_worth_of_concurrent_imports_all_land() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("s");
        ImageStore::open(&root).unwrap();
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let (root, src) = (root.clone(), dir.path().to_owned());
                std::thread::spawn(move || {
                    // A store per thread: separate lock descriptors, as in separate processes.
                    let store = ImageStore::open(&root).unwrap();
                    let wasm = write_file(&src, &format!("c{i}.wasm"), &module(&format!("c{i}")));
                    store.import(&wasm, Some("shared:latest")).unwrap();
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        let store = ImageStore::open(&root).unwrap();
        let images = store.list().unwrap();
        assert_eq!(images.len(), 4);
        let holders = images.iter().filter(|i| !i.repo_tags.is_empty()).count();
        assert_eq!(holders, 1, "exactly one image holds the tag");
        assert_eq!(fs::read_dir(&store.tmp_dir).unwrap().count(), 0);
    }
}
