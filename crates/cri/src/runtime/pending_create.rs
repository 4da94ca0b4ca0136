//! Creates of Wasm containers whose shim answer has not been read yet. CreateContainer writes
//! the create to the pod's shim and answers once its own part is done (the image, the cgroup,
//! the record); the shim links and stages the container meanwhile. The next call about that
//! container reads the answer first: StartContainer sends its start right behind the create on
//! the same connection, so both answers come back in one round trip.
//!
//! As with containerd, whose CreateContainer does not reach the runtime at all, an error the
//! shim finds at create (a module whose imports cannot be linked, a log file that cannot be
//! opened) is reported by StartContainer, and the container is then recorded as exited with
//! reason `StartError` (exit code 128), which kubelet handles like any failed start.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use wasmlet_shim::client::PendingCreate;

use crate::store::ContainerState;
use crate::{Error, Runtime};

/// Exit code and reason of a container whose start failed (containerd's values).
const START_ERROR_CODE: i32 = 128;
const START_ERROR_REASON: &str = "StartError";

/// Container id → its create, still to be read. The inner lock makes a second caller wait until
/// the first has read the answer, so nothing reaches the shim about a container before its create.
#[derive(Default)]
pub(crate) struct PendingCreates {
    by_id: Mutex<HashMap<String, Arc<tokio::sync::Mutex<Option<PendingCreate>>>>>,
}

impl PendingCreates {
    pub fn hold(&self, id: &str, pending: PendingCreate) {
        let entry = Arc::new(tokio::sync::Mutex::new(Some(pending)));
        self.lock().insert(id.to_owned(), entry);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Arc<tokio::sync::Mutex<Option<PendingCreate>>>>> {
        self.by_id.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The unread create of `id`, with its lock held until the caller has read the answer and
    /// called [`PendingCreates::forget`]: meanwhile other calls about it wait.
    async fn take(&self, id: &str) -> Option<(tokio::sync::OwnedMutexGuard<Option<PendingCreate>>, PendingCreate)> {
        let entry = self.lock().get(id).cloned()?;
        let mut held = entry.lock_owned().await;
        let pending = held.take()?;
        Some((held, pending))
    }

    /// Drops what is held for `id` (its pod is gone).
    pub fn forget(&self, id: &str) {
        self.lock().remove(id);
    }
}

impl Runtime {
    /// Reads the shim's answer to the container's create if it has not been read: `Ok` if there
    /// was none to read or it made the container. A refusal is recorded (exited, `StartError`)
    /// and returned.
    pub(crate) async fn settle_create(&self, id: &str) -> Result<(), Error> {
        let Some((_held, pending)) = self.pending_creates.take(id).await else { return Ok(()) };
        let settled = pending.settle().await;
        self.pending_creates.forget(id);
        settled.map_err(|e| self.create_failed(id, e))
    }

    /// Starts a container: behind its create on one connection if that is still unread, else
    /// on its own. Returns the start time the shim reports.
    pub(crate) async fn start_in_shim(&self, id: &str, sandbox_id: &str) -> Result<i64, Error> {
        let Some((_held, pending)) = self.pending_creates.take(id).await else {
            return Ok(self.shim(sandbox_id).start(id).await?);
        };
        let started = pending.start().await;
        self.pending_creates.forget(id);
        match started {
            Ok(started) => Ok(started?),
            // The create (answered first) was refused: the container never existed in the shim.
            // A shim that is gone is reported as such, like any call to it.
            Err(e @ (wasmlet_shim::Error::Remote(_) | wasmlet_shim::Error::Protocol(_))) => Err(self.create_failed(id, e)),
            Err(e) => Err(e.into()),
        }
    }

    /// Records a container the shim did not make as exited with `StartError`, and returns the
    /// shim's reason as the call's error.
    fn create_failed(&self, id: &str, e: wasmlet_shim::Error) -> Error {
        let message = e.to_string();
        let now = wasmlet_shim::protocol::now_nanos();
        let recorded = self.containers.update(id, |rec| {
            if rec.state != ContainerState::Created {
                return false;
            }
            rec.state = ContainerState::Exited;
            rec.finished_at = now;
            rec.exit_code = START_ERROR_CODE;
            rec.reason = START_ERROR_REASON.into();
            rec.message = message.clone();
            true
        });
        if let Err(update) = recorded {
            tracing::warn!(container.id = %id, error = %update, "recording a failed create");
        }
        tracing::warn!(container.id = %id, error = %message, "the shim could not create the container");
        e.into()
    }
}
