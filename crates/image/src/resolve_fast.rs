//! The start path's image lookup from memory. CreateContainer resolves its image on every
//! container start; reading every record from disk on a blocking thread for that cost ≈ 0.12 ms
//! of each start. [`ImageStore::list`] keeps a copy of the records it read, and
//! [`ImageStore::resolve_compiled_fast`] answers from it while the records directory is unchanged
//! — judged by its modification time, trusted only once that time is a second older than the
//! copy, so a change landing within the same coarse timestamp tick cannot go unseen. Anything
//! it cannot answer from memory (ids, unknown or Linux images, an artifact not yet compiled, a
//! changed directory) is left to [`ImageStore::resolve`] on a blocking thread.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use crate::record::ImageRecord;
use crate::reference::normalize;
use crate::resolve::{find_by_name, may_be_id};
use crate::store::{ImageStore, compiled_name};

/// How much older than the copy the directory's modification time must be to trust the copy.
const SETTLED: Duration = Duration::from_secs(1);

/// The records as [`ImageStore::list`] last read them.
#[derive(Default)]
pub(crate) struct RecordsCopy {
    taken: Mutex<Option<Taken>>,
}

struct Taken {
    dir_mtime: SystemTime,
    at: SystemTime,
    records: Arc<Vec<ImageRecord>>,
}

impl RecordsCopy {
    /// The directory's modification time and now, to pass to [`RecordsCopy::keep`] after reading.
    pub fn before_reading(dir: &Path) -> Option<(SystemTime, SystemTime)> {
        let mtime = std::fs::metadata(dir).ok()?.modified().ok()?;
        Some((mtime, SystemTime::now()))
    }

    pub fn keep(&self, (dir_mtime, at): (SystemTime, SystemTime), records: &[ImageRecord]) {
        *self.taken.lock().unwrap_or_else(|e| e.into_inner()) = Some(Taken { dir_mtime, at, records: Arc::new(records.to_vec()) });
    }

    /// The copy, if the directory has not changed since it was read and had settled by then.
    fn get(&self, dir: &Path) -> Option<Arc<Vec<ImageRecord>>> {
        let guard = self.taken.lock().unwrap_or_else(|e| e.into_inner());
        let taken = guard.as_ref()?;
        let settled = taken.at.duration_since(taken.dir_mtime).is_ok_and(|d| d >= SETTLED);
        let unchanged = std::fs::metadata(dir).ok()?.modified().ok()? == taken.dir_mtime;
        (settled && unchanged).then(|| Arc::clone(&taken.records))
    }
}

impl ImageStore {
    /// The Wasm image a tag or digest reference names and its compiled artifact, from memory
    /// and two `stat`s, or `None` when that is not enough to answer (see the module doc):
    /// never blocks for longer than that, so it may run on an async thread.
    pub fn resolve_compiled_fast(&self, reference: &str) -> Option<(ImageRecord, PathBuf)> {
        if may_be_id(reference) {
            return None;
        }
        let records = self.records_copy.get(self.records.dir())?;
        let (image, _) = find_by_name(&records, &normalize(reference).ok()?)?;
        if image.is_linux() {
            return None;
        }
        let (_, compat) = self.engine.get()?;
        let path = self.compiled_dir.join(compiled_name(image.wasm_hex(), compat));
        path.exists().then(|| (image.clone(), path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{module, write_file};

    #[test]
    fn answers_from_memory_only_once_the_records_have_settled_and_sees_a_change() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let wasm = write_file(dir.path(), "hello.wasm", &module("fast"));
        let image = store.import(&wasm, Some("hello")).unwrap().remove(0);
        let compiled = store.compiled_path(&image).unwrap();
        store.list().unwrap();
        assert!(store.resolve_compiled_fast("hello").is_none(), "the records directory changed a moment ago");

        // Age the directory as if the import were long past, then read the records again.
        let old = SystemTime::now() - Duration::from_secs(10);
        std::fs::File::open(store.records.dir()).unwrap().set_modified(old).unwrap();
        store.list().unwrap();
        let (found, path) = store.resolve_compiled_fast("hello:latest").expect("answered from memory");
        assert_eq!((found.id.as_str(), path.as_path()), (image.id.as_str(), compiled.as_path()));
        assert!(store.resolve_compiled_fast(&image.id).is_none(), "ids take the slow path");
        assert!(store.resolve_compiled_fast("nothere").is_none());

        // Any change to the records directory (here a removal) sends callers to the disk again.
        store.remove(&image.id).unwrap();
        assert!(store.resolve_compiled_fast("hello").is_none());
        assert!(store.resolve("hello").unwrap().is_none());
    }
}
