//! The agent's state file (`<root>/status.json`): the board's snapshot, rewritten atomically
//! (temp file, fsync, rename) after changes, at most every 200 ms. `wasmlet node pods` and
//! `wasmlet node logs` read it; no socket or server is needed for that.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::board::{Board, Snapshot};
use crate::{Error, Result};

pub const FILE_NAME: &str = "status.json";

pub fn path(root: &Path) -> PathBuf {
    root.join(FILE_NAME)
}

/// Writes `snapshot` to `path` atomically.
pub fn write(path: &Path, snapshot: &Snapshot) -> Result<()> {
    use std::io::Write;
    let tmp = path.with_extension("json.tmp");
    let json = serde_json::to_vec_pretty(snapshot).map_err(|source| Error::Json {
        what: "encoding the status".into(),
        source,
    })?;
    let mut f = std::fs::File::create(&tmp).map_err(Error::io(&tmp))?;
    f.write_all(&json)
        .and_then(|_| f.sync_all())
        .map_err(Error::io(&tmp))?;
    std::fs::rename(&tmp, path).map_err(Error::io(path))
}

pub fn read(path: &Path) -> Result<Snapshot> {
    let bytes = std::fs::read(path).map_err(Error::io(path))?;
    serde_json::from_slice(&bytes).map_err(|source| Error::Json {
        what: path.display().to_string(),
        source,
    })
}

/// Keeps the file up to date with the board until the task is dropped.
pub async fn keep_written(board: Board, node: String, path: PathBuf) {
    let mut written = u64::MAX;
    loop {
        let changed = board.changed();
        let v = board.version();
        if v != written {
            if let Err(e) = write(&path, &board.snapshot(&node)) {
                tracing::warn!("writing the state file: {e}");
            }
            written = v;
        }
        changed.await;
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
