//! A generic durable map from id to record: the in-memory view, and its [`Journal`] on disk,
//! appended before the change is published (and so before the RPC that made it answers).
//!
//! Stores written by earlier versions hold a file per record version, `<id>.<generation>.json`
//! (the highest generation wins); `open` reads those, moves them into the journal and deletes
//! them.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmlet_shim::atomic;

use crate::Error;
use crate::store::journal::{Change, Journal};

pub(crate) trait Record: Clone + Serialize + DeserializeOwned {
    fn id(&self) -> &str;
}

pub(crate) struct RecordStore<T> {
    dir: PathBuf,
    kind: &'static str,
    inner: Mutex<Inner<T>>,
}

struct Inner<T> {
    records: HashMap<String, T>,
    journal: Journal,
}

/// `<id>.<generation>.json` → (id, generation).
fn parse_name(path: &Path) -> Option<(String, u64)> {
    let name = path.file_name()?.to_str()?.strip_suffix(".json")?;
    let (id, generation) = name.rsplit_once('.')?;
    Some((id.to_string(), generation.parse().ok()?))
}

impl<T: Record> RecordStore<T> {
    /// Loads the store in `dir` (creating it): the per-record files of an older version, then
    /// the journal, which is then rewritten with just the live records. A record file that does
    /// not parse is reported and set aside as `<name>.corrupt`, never silently dropped.
    pub fn open(dir: &Path, kind: &'static str) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        let (mut records, legacy) = Self::load_files(dir, kind)?;
        Journal::replay(dir, kind, &mut records, |r: &T| r.id())?;
        let journal = Journal::rewrite(dir, records.values())?;
        for path in legacy {
            let _ = std::fs::remove_file(path);
        }
        Ok(RecordStore { dir: dir.to_owned(), kind, inner: Mutex::new(Inner { records, journal }) })
    }

    /// The records of the file-per-version layout, and every such file (to delete once they are
    /// in the journal).
    fn load_files(dir: &Path, kind: &str) -> Result<(HashMap<String, T>, Vec<PathBuf>), Error> {
        // id → (generation, path) of the newest version.
        let mut newest: HashMap<String, (u64, PathBuf)> = HashMap::new();
        let mut all = Vec::new();
        for entry in std::fs::read_dir(dir).map_err(Error::io("reading", dir))? {
            let path = entry.map_err(Error::io("reading", dir))?.path();
            let Some((id, generation)) = parse_name(&path) else { continue };
            all.push(path.clone());
            if newest.get(&id).is_none_or(|(g, _)| *g < generation) {
                newest.insert(id, (generation, path));
            }
        }
        let mut records = HashMap::new();
        for (id, (_, path)) in newest {
            match atomic::read_json::<T>(&path) {
                Ok(Some(r)) => {
                    records.insert(id, r);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "unreadable {kind} record set aside");
                    let _ = std::fs::rename(&path, path.with_extension("corrupt"));
                    all.retain(|p| p != &path);
                }
            }
        }
        Ok((records, all))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner<T>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record with this id, or with this unique id prefix (as crictl accepts truncated ids).
    pub fn get(&self, id: &str) -> Result<T, Error> {
        let inner = self.lock();
        if let Some(r) = inner.records.get(id) {
            return Ok(r.clone());
        }
        let mut matches = inner.records.iter().filter(|(k, _)| !id.is_empty() && k.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some((_, r)), None) => Ok(r.clone()),
            (Some(_), Some(_)) => Err(Error::InvalidArgument(format!("{} id prefix {id:?} is ambiguous", self.kind))),
            _ => Err(Error::NotFound(format!("{} {id:?} not found", self.kind))),
        }
    }

    pub fn list(&self) -> Vec<T> {
        self.lock().records.values().cloned().collect()
    }

    /// The records `keep` selects, cloning only those: per-pod lookups on a node of thousands
    /// of pods must not copy every record (at 10 000 pods that made teardown take minutes).
    pub fn matching(&self, keep: impl Fn(&T) -> bool) -> Vec<T> {
        self.lock().records.values().filter(|r| keep(r)).cloned().collect()
    }

    /// Persists then publishes a new record.
    pub fn insert(&self, record: T) -> Result<(), Error> {
        let mut inner = self.lock();
        inner.journal.append(&Change::Put(&record))?;
        inner.records.insert(record.id().to_string(), record);
        self.maybe_rewrite(&mut inner);
        Ok(())
    }

    /// Applies `change` to the record and persists the result; `change` returns false to leave
    /// it as is.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut T) -> bool) -> Result<Option<T>, Error> {
        let mut inner = self.lock();
        let Some(current) = inner.records.get(id) else { return Ok(None) };
        let mut next = current.clone();
        if change(&mut next) {
            inner.journal.append(&Change::Put(&next))?;
            inner.records.insert(id.to_string(), next.clone());
            self.maybe_rewrite(&mut inner);
        }
        Ok(Some(next))
    }

    pub fn remove(&self, id: &str) -> Result<Option<T>, Error> {
        let mut inner = self.lock();
        if !inner.records.contains_key(id) {
            return Ok(None);
        }
        inner.journal.append(&Change::<&T>::Remove(id.to_owned()))?;
        let removed = inner.records.remove(id);
        self.maybe_rewrite(&mut inner);
        Ok(removed)
    }

    /// Rewrites the journal with just the live records once it has grown enough; a failure is
    /// logged and the journal kept as it is (still complete).
    fn maybe_rewrite(&self, inner: &mut Inner<T>) {
        if !inner.journal.wants_rewrite(inner.records.len()) {
            return;
        }
        match Journal::rewrite(&self.dir, inner.records.values()) {
            Ok(j) => inner.journal = j,
            Err(e) => tracing::warn!(error = %e, "rewriting the {} journal", self.kind),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    use super::*;

    #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
    struct R {
        id: String,
        n: u32,
    }

    impl Record for R {
        fn id(&self) -> &str {
            &self.id
        }
    }

    fn files(dir: &Path) -> Vec<String> {
        let mut f: Vec<String> = std::fs::read_dir(dir).unwrap().flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
        f.sort();
        f
    }

    #[test]
    fn changes_survive_reopen_in_one_journal() {
        let dir = tempfile::tempdir().unwrap();
        let store: RecordStore<R> = RecordStore::open(dir.path(), "r").unwrap();
        store.insert(R { id: "abc".into(), n: 0 }).unwrap();
        for _ in 0..3 {
            store.update("abc", |r| {
                r.n += 1;
                true
            })
            .unwrap();
        }
        store.insert(R { id: "def".into(), n: 9 }).unwrap();
        store.insert(R { id: "gone".into(), n: 1 }).unwrap();
        store.remove("gone").unwrap();
        assert_eq!(files(dir.path()), vec!["journal.jsonl"]);
        // Dropped without any shutdown, as a killed daemon's would be.
        drop(store);
        let reopened: RecordStore<R> = RecordStore::open(dir.path(), "r").unwrap();
        assert_eq!(reopened.get("abc").unwrap(), R { id: "abc".into(), n: 3 });
        assert_eq!(reopened.get("de").unwrap().n, 9, "unique prefix");
        assert!(matches!(reopened.get("gone"), Err(Error::NotFound(_))));
        reopened.remove("abc").unwrap();
        assert_eq!(RecordStore::<R>::open(dir.path(), "r").unwrap().list(), vec![R { id: "def".into(), n: 9 }]);
    }

    #[test]
    fn a_line_cut_short_by_a_crash_is_dropped_and_a_bad_line_skipped() {
        let dir = tempfile::tempdir().unwrap();
        let store: RecordStore<R> = RecordStore::open(dir.path(), "r").unwrap();
        store.insert(R { id: "a".into(), n: 1 }).unwrap();
        drop(store);
        let journal = dir.path().join("journal.jsonl");
        let mut bytes = std::fs::read(&journal).unwrap();
        bytes.extend(b"garbage\n{\"Put\":{\"id\":\"b\",\"n\":2}}\n{\"Put\":{\"id\":\"a\",\"n");
        std::fs::write(&journal, bytes).unwrap();
        let reopened: RecordStore<R> = RecordStore::open(dir.path(), "r").unwrap();
        assert_eq!(reopened.get("a").unwrap().n, 1, "the torn update of a is not applied");
        assert_eq!(reopened.get("b").unwrap().n, 2, "lines after a bad one still apply");
        let text = std::fs::read_to_string(&journal).unwrap();
        assert_eq!(text.lines().count(), 2, "rewritten with the live records only: {text}");
    }

    #[test]
    fn the_per_record_files_of_an_older_version_move_into_the_journal() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("abc.0.json"), r#"{"id":"abc","n":0}"#).unwrap();
        std::fs::write(dir.path().join("abc.2.json"), r#"{"id":"abc","n":2}"#).unwrap();
        std::fs::write(dir.path().join("bad.0.json"), "{").unwrap();
        let store: RecordStore<R> = RecordStore::open(dir.path(), "r").unwrap();
        assert_eq!(store.get("abc").unwrap().n, 2, "the highest generation wins");
        assert_eq!(files(dir.path()), vec!["bad.0.corrupt", "journal.jsonl"]);
        drop(store);
        assert_eq!(RecordStore::<R>::open(dir.path(), "r").unwrap().get("abc").unwrap().n, 2);
    }

    #[test]
    fn the_journal_is_rewritten_once_it_outgrows_the_records() {
        let dir = tempfile::tempdir().unwrap();
        let store: RecordStore<R> = RecordStore::open(dir.path(), "r").unwrap();
        store.insert(R { id: "x".into(), n: 0 }).unwrap();
        for _ in 0..2 * super::super::journal::tests_support::REWRITE_MIN_LINES {
            store.update("x", |r| {
                r.n += 1;
                true
            })
            .unwrap();
        }
        let lines = std::fs::read_to_string(dir.path().join("journal.jsonl")).unwrap().lines().count();
        assert!(lines < super::super::journal::tests_support::REWRITE_MIN_LINES, "{lines} lines for one record");
        drop(store);
        assert_eq!(RecordStore::<R>::open(dir.path(), "r").unwrap().get("x").unwrap().n, 2 * 4096);
    }
}
