//! Removing images, and the garbage collection of blobs, compiled artifacts and snapshots (unpacked
//! Linux layers) that no image references.
//!
//! Like docker and containerd, removing by tag when the image carries other tags only removes that tag;
//! removing by id, by digest, or by an image's last tag deletes the image, its names and then (under
//! the store lock) every blob and compiled artifact no other image references.

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::path::Path;

use crate::atomic::{self, TMP_PREFIX};
use crate::digest::is_hex64;
use crate::error::{Error, io_err};
use crate::record::ImageRecord;
use crate::resolve::Matched;
use crate::store::ImageStore;

impl ImageStore {
    /// Removes what `reference` (anything [`resolve`](Self::resolve) accepts) names; see the module
    /// docs for untag-versus-delete. Returns the matched record as it was before the call, `None` if
    /// nothing matched. Compare `repo_tags` with a later `resolve` to tell an untag from a delete.
    pub fn remove(&self, reference: &str) -> Result<Option<ImageRecord>, Error> {
        let _lock = self.lock()?;
        let Some((record, matched)) = self.find(reference)? else {
            return Ok(None);
        };
        match matched {
            Matched::Tag(tag) if record.repo_tags.len() > 1 => {
                let mut untagged = record.clone();
                untagged.repo_tags.retain(|t| *t != tag);
                self.records.save(&untagged)?;
                tracing::info!(image.id = %record.id, tag = %tag, "untagged image");
            }
            _ => {
                self.records.delete(record.id_hex())?;
                tracing::info!(image.id = %record.id, tags = ?record.repo_tags, "removed image");
                // The image is gone once its record is; leftover files are retried at the next
                // removal or open, so a failed sweep does not fail the removal.
                if let Err(error) = self.collect_garbage() {
                    tracing::warn!(image.id = %record.id, error = %error, "collecting unreferenced blobs");
                }
            }
        }
        Ok(Some(record))
    }

    /// Deletes every blob and compiled artifact no record references, and stale temporary records.
    /// Does nothing if a record cannot be read (its files might be deleted wrongly). Caller holds the
    /// store lock.
    pub(crate) fn collect_garbage(&self) -> Result<(), Error> {
        let (records, errors) = self.records.load_all()?;
        if let Some(error) = errors.first() {
            tracing::warn!(error = %error, "an image record is unreadable; not collecting garbage");
            return Ok(());
        }
        let referenced: HashSet<&str> = records.iter().flat_map(ImageRecord::blob_hexes).collect();
        let keep_blob = |name: &str| is_hex64(name) && referenced.contains(name);
        let blobs = sweep(&self.blobs_dir, |name| !keep_blob(name))?;
        let keep_compiled = |name: &str| {
            name.split_once('-')
                .is_some_and(|(hex, _)| referenced.contains(hex))
        };
        let compiled = sweep(&self.compiled_dir, |name| !keep_compiled(name))?;
        sweep(self.records.dir(), |name| name.starts_with(TMP_PREFIX))?;
        self.collect_snapshots(&records)?;
        if blobs + compiled > 0 {
            tracing::debug!(blobs, compiled, "collected unreferenced files");
        }
        Ok(())
    }
}

/// Removes the files of `dir` whose name `doomed` accepts; returns how many, fsyncing `dir` if any.
fn sweep(dir: &Path, doomed: impl Fn(&str) -> bool) -> Result<usize, Error> {
    let mut removed = 0;
    for entry in fs::read_dir(dir).map_err(io_err(dir))? {
        let entry = entry.map_err(io_err(dir))?;
        let name = entry.file_name();
        if !doomed(&name.to_string_lossy()) {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => removed += 1,
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_err(&path)(e)),
        }
    }
    if removed > 0 {
        atomic::fsync_dir(dir)?;
    }
    Ok(removed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{module, write_file};

    fn count(dir: &Path) -> usize {
        fs::read_dir(dir).unwrap().count()
    }

    #[test]
    fn removing_one_of_two_tags_keeps_the_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let wasm = write_file(dir.path(), "app.wasm", &module("two-tags"));
        store.import(&wasm, Some("app:v1")).unwrap();
        let image = store.import(&wasm, Some("app:v2")).unwrap().remove(0);
        assert_eq!(
            image.repo_tags,
            ["docker.io/library/app:v1", "docker.io/library/app:v2"]
        );

        let before = store.remove("app:v1").unwrap().unwrap();
        assert_eq!(before.repo_tags.len(), 2);
        let after = store.resolve(&image.id).unwrap().unwrap();
        assert_eq!(after.repo_tags, ["docker.io/library/app:v2"]);
        assert_eq!(store.resolve("app:v1").unwrap(), None);
        assert!(store.compiled_path(&after).unwrap().exists());
        assert_eq!(count(&store.blobs_dir), 3);
    }

    #[test]
    fn removing_the_last_tag_deletes_blobs_and_compiled_artifacts() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let keep = write_file(dir.path(), "keep.wasm", &module("keep"));
        let kept = store.import(&keep, None).unwrap().remove(0);
        let gone = write_file(dir.path(), "gone.wasm", &module("gone"));
        let image = store.import(&gone, None).unwrap().remove(0);
        assert_eq!(
            (count(&store.blobs_dir), count(&store.compiled_dir)),
            (6, 2)
        );

        assert_eq!(
            store.remove("localhost/gone:latest").unwrap().unwrap().id,
            image.id
        );
        assert_eq!(store.resolve(&image.id).unwrap(), None);
        assert_eq!(
            (count(&store.blobs_dir), count(&store.compiled_dir)),
            (3, 1)
        );
        for blob in kept.blob_hexes() {
            assert!(store.blobs_dir.join(blob).exists());
        }
        assert!(store.compiled_path(&kept).unwrap().exists());
        assert_eq!(store.remove("localhost/gone:latest").unwrap(), None);
        assert_eq!(store.remove(&image.id).unwrap(), None);

        assert!(store.remove(&kept.id).unwrap().is_some());
        assert_eq!(
            (count(&store.blobs_dir), count(&store.compiled_dir)),
            (0, 0)
        );
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn removing_by_id_drops_every_tag_and_shared_blobs_survive() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let wasm = module("shared");
        // Same Wasm under two file names: two images (the entrypoint differs) sharing the Wasm blob.
        let a = store
            .import(&write_file(dir.path(), "a.wasm", &wasm), Some("a:1"))
            .unwrap()
            .remove(0);
        store
            .import(&write_file(dir.path(), "a.wasm", &wasm), Some("a:2"))
            .unwrap();
        let b = store
            .import(&write_file(dir.path(), "b.wasm", &wasm), None)
            .unwrap()
            .remove(0);
        assert_ne!(a.id, b.id);
        assert_eq!(a.wasm_digest, b.wasm_digest);
        assert_eq!(store.remove(&a.id_hex()[..12]).unwrap().unwrap().id, a.id);
        assert_eq!(store.resolve("a:2").unwrap(), None);
        assert!(store.blobs_dir.join(b.wasm_hex()).exists());
        assert!(store.compiled_path(&b).unwrap().exists());
    }

    #[test]
    fn garbage_collection_stops_at_an_unreadable_record() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let image = store
            .import(&write_file(dir.path(), "x.wasm", &module("x")), None)
            .unwrap()
            .remove(0);
        fs::write(store.records.path(image.id_hex()), b"{").unwrap();
        fs::write(store.blobs_dir.join("f".repeat(64)), b"orphan").unwrap();
        let _lock = store.lock().unwrap();
        store.collect_garbage().unwrap();
        assert_eq!(count(&store.blobs_dir), 4);
    }
}
