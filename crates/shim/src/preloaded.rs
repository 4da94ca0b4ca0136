//! Artifacts mapped and linked ahead of time by the zygote, so that the shims it forks afterwards
//! inherit them: a container's create then costs a clone of an `InstancePre` instead of mapping
//! the `.cwasm`, deserializing its metadata and linking it in a fresh process, where every page
//! touched is a copy-on-write fault (≈ 0.3 ms of the create path here). The daemon names the
//! artifacts of the images it has started ([`crate::zygote::Zygote::preload`]); the zygote loads
//! them between requests, before it forks the next spare.
//!
//! An entry is used only while the file is the one that was loaded (same device, inode, size and
//! modification time), so a recompiled or replaced artifact is mapped afresh.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use wasmtime::InstancePre;
use wasmtime_wasi::p2::bindings::CommandPre;

use crate::executor::{P1Host, P2Host};

/// Entries kept (the oldest goes first): each holds a mapping of its artifact and its metadata.
const CAPACITY: usize = 16;

/// A linked artifact, cheap to clone.
#[derive(Clone)]
pub(crate) enum Linked {
    Module(InstancePre<P1Host>),
    Component(CommandPre<P2Host>),
}

/// Which file an artifact was loaded from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FileId {
    dev: u64,
    ino: u64,
    size: u64,
    mtime_ns: i64,
}

impl FileId {
    pub fn of(path: &Path) -> Option<FileId> {
        let m = std::fs::metadata(path).ok()?;
        Some(FileId { dev: m.dev(), ino: m.ino(), size: m.size(), mtime_ns: m.mtime() * 1_000_000_000 + m.mtime_nsec() })
    }
}

struct Entry {
    path: PathBuf,
    file: FileId,
    linked: Linked,
}

/// The cache; clones share it within a process (a fork copies it).
#[derive(Clone, Default)]
pub(crate) struct Preloaded {
    entries: Arc<Mutex<Vec<Entry>>>,
}

impl Preloaded {
    /// The linked artifact at `path`, if it was loaded from the file that is there now.
    pub fn get(&self, path: &Path) -> Option<Linked> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let entry = entries.iter().find(|e| e.path == path)?;
        (FileId::of(path) == Some(entry.file)).then(|| entry.linked.clone())
    }

    /// Whether `path` is loaded and current.
    pub fn has(&self, path: &Path) -> bool {
        self.get(path).is_some()
    }

    /// Keeps `linked`, loaded from `path` while it was `file` (taken before loading).
    pub fn insert(&self, path: &Path, file: FileId, linked: Linked) {
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        entries.retain(|e| e.path != path);
        if entries.len() >= CAPACITY {
            entries.remove(0);
        }
        entries.push(Entry { path: path.to_owned(), file, linked });
    }
}
