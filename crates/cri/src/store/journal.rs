//! The on-disk form of a [`super::RecordStore`]: one append-only file of JSON lines,
//! `journal.jsonl`, each line a [`Change`] (a record put whole, or an id removed). A change is
//! one `write` to an open file before the RPC answers: that survives the daemon being killed at
//! any moment (the page cache keeps it), which is the durability records have always had here
//! (no fsync: a power loss ends every pod anyway).
//!
//! Why not a file per record: every create, start, exit and removal made and unlinked an inode.
//! On ext4 under that churn, inode allocation (`__ext4_new_inode` scanning for inodes not
//! recently deleted) and the creates themselves were about an eighth of the daemon's CPU per pod
//! lifecycle, and 50–60 µs on each of the start path's three RPCs.
//!
//! Replaying the lines in order rebuilds the map. A line cut short by a crash mid-write can only
//! be the last one and is dropped; any other unreadable line is reported and skipped. The file is
//! rewritten with just the live records (temp file, rename) at open and whenever it has grown to
//! several times their number, so its size stays proportional to the records.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::Error;

const FILE: &str = "journal.jsonl";

/// Lines appended since the last rewrite before the next one: at least this many, and at least
/// [`REWRITE_FACTOR`] times the live records.
const REWRITE_MIN_LINES: usize = 4096;
const REWRITE_FACTOR: usize = 4;

/// One line of the journal.
#[derive(Serialize, Deserialize)]
pub(crate) enum Change<T> {
    Put(T),
    Remove(String),
}

pub(crate) struct Journal {
    path: PathBuf,
    file: File,
    /// Lines appended since the file was last rewritten.
    appended: usize,
}

impl Journal {
    /// Replays `dir`'s journal, if any, into `records` (keyed by `id_of`); reports lines it
    /// could not read.
    pub fn replay<T: DeserializeOwned>(dir: &Path, kind: &str, records: &mut HashMap<String, T>, id_of: impl Fn(&T) -> &str) -> Result<(), Error> {
        let path = dir.join(FILE);
        let bytes = match std::fs::read(&path) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(Error::Io { op: "reading", path, source: e }),
        };
        let complete = bytes.ends_with(b"\n");
        let lines: Vec<&[u8]> = bytes.split(|&b| b == b'\n').filter(|l| !l.is_empty()).collect();
        let last = lines.len().saturating_sub(1);
        for (i, line) in lines.iter().enumerate() {
            match serde_json::from_slice::<Change<T>>(line) {
                Ok(Change::Put(r)) => {
                    records.insert(id_of(&r).to_owned(), r);
                }
                Ok(Change::Remove(id)) => {
                    records.remove(&id);
                }
                Err(_) if i == last && !complete => {
                    tracing::warn!(path = %path.display(), "dropping the {kind} journal's last line, cut short by a crash");
                }
                Err(e) => tracing::error!(path = %path.display(), line = i + 1, error = %e, "skipping an unreadable {kind} journal line"),
            }
        }
        Ok(())
    }

    /// Writes `live` (the records, one `Put` line each) as the whole journal, atomically, and
    /// opens it for appending.
    pub fn rewrite<T: Serialize>(dir: &Path, live: impl Iterator<Item = T>) -> Result<Journal, Error> {
        let path = dir.join(FILE);
        let tmp = dir.join(format!(".{FILE}.tmp"));
        let mut bytes = Vec::new();
        for record in live {
            bytes.extend(line(&Change::Put(record))?);
        }
        std::fs::write(&tmp, &bytes).map_err(Error::io("writing", &tmp))?;
        std::fs::rename(&tmp, &path).map_err(Error::io("renaming", &path))?;
        let file = OpenOptions::new().append(true).open(&path).map_err(Error::io("opening", &path))?;
        Ok(Journal { path, file, appended: 0 })
    }

    /// Appends one change (one `write` of one line).
    pub fn append<T: Serialize>(&mut self, change: &Change<T>) -> Result<(), Error> {
        let bytes = line(change)?;
        self.file.write_all(&bytes).map_err(Error::io("appending to", &self.path))?;
        self.appended += 1;
        Ok(())
    }

    /// Whether the file has grown enough, against `live` records, to be rewritten.
    pub fn wants_rewrite(&self, live: usize) -> bool {
        self.appended >= REWRITE_MIN_LINES && self.appended >= REWRITE_FACTOR * live
    }
}

fn line<T: Serialize>(change: &Change<T>) -> Result<Vec<u8>, Error> {
    let mut bytes = serde_json::to_vec(change).map_err(|e| Error::Internal(format!("serialising a record: {e}")))?;
    bytes.push(b'\n');
    Ok(bytes)
}

#[cfg(test)]
pub(crate) mod tests_support {
    pub(crate) const REWRITE_MIN_LINES: usize = super::REWRITE_MIN_LINES;
}
