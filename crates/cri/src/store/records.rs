//! A generic durable map from id to record: the in-memory view and its directory of JSON files,
//! each written atomically (see [`wasmlet_shim::atomic`] for why without fsync).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Serialize;
use serde::de::DeserializeOwned;
use wasmlet_shim::atomic::{self, Durability};

use crate::Error;

pub(crate) trait Record: Clone + Serialize + DeserializeOwned {
    fn id(&self) -> &str;
}

pub(crate) struct RecordStore<T> {
    dir: PathBuf,
    kind: &'static str,
    records: Mutex<HashMap<String, T>>,
}

impl<T: Record> RecordStore<T> {
    /// Loads every record in `dir` (creating it). A file that does not parse is reported and
    /// set aside as `<name>.corrupt`, never silently dropped.
    pub fn open(dir: &Path, kind: &'static str) -> Result<Self, Error> {
        std::fs::create_dir_all(dir).map_err(Error::io("creating", dir))?;
        let mut records = HashMap::new();
        for entry in std::fs::read_dir(dir).map_err(Error::io("reading", dir))? {
            let path = entry.map_err(Error::io("reading", dir))?.path();
            if path.extension().and_then(|e| e.to_str()) != Some("json") {
                continue;
            }
            match atomic::read_json::<T>(&path) {
                Ok(Some(r)) => {
                    records.insert(r.id().to_string(), r);
                }
                Ok(None) => {}
                Err(e) => {
                    tracing::error!(path = %path.display(), error = %e, "unreadable {kind} record set aside");
                    let _ = std::fs::rename(&path, path.with_extension("corrupt"));
                }
            }
        }
        Ok(RecordStore { dir: dir.to_owned(), kind, records: Mutex::new(records) })
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, T>> {
        self.records.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The record with this id, or with this unique id prefix (as crictl accepts truncated ids).
    pub fn get(&self, id: &str) -> Result<T, Error> {
        let records = self.lock();
        if let Some(r) = records.get(id) {
            return Ok(r.clone());
        }
        let mut matches = records.iter().filter(|(k, _)| !id.is_empty() && k.starts_with(id));
        match (matches.next(), matches.next()) {
            (Some((_, r)), None) => Ok(r.clone()),
            (Some(_), Some(_)) => Err(Error::InvalidArgument(format!("{} id prefix {id:?} is ambiguous", self.kind))),
            _ => Err(Error::NotFound(format!("{} {id:?} not found", self.kind))),
        }
    }

    pub fn list(&self) -> Vec<T> {
        self.lock().values().cloned().collect()
    }

    /// Persists then publishes a new record.
    pub fn insert(&self, record: T) -> Result<(), Error> {
        atomic::write_json(&self.path(record.id()), &record, Durability::ProcessCrash)?;
        self.lock().insert(record.id().to_string(), record);
        Ok(())
    }

    /// Applies `change` to the record and persists it; `change` returns false to leave it as is.
    pub fn update(&self, id: &str, change: impl FnOnce(&mut T) -> bool) -> Result<Option<T>, Error> {
        let mut records = self.lock();
        let Some(current) = records.get(id) else { return Ok(None) };
        let mut next = current.clone();
        if change(&mut next) {
            atomic::write_json(&self.path(id), &next, Durability::ProcessCrash)?;
            records.insert(id.to_string(), next.clone());
        }
        Ok(Some(next))
    }

    pub fn remove(&self, id: &str) -> Result<Option<T>, Error> {
        let path = self.path(id);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Io { op: "removing", path, source: e }),
        }
        Ok(self.lock().remove(id))
    }
}
