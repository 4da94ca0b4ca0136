//! RemovePodSandbox: stop it if needed, remove its containers, its shim directory and its
//! record. Idempotent: an unknown id is success.

use k8s_cri::v1::{RemovePodSandboxRequest, RemovePodSandboxResponse};

use crate::service::require;
use crate::store::SandboxState;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn remove_pod_sandbox(&self, req: RemovePodSandboxRequest) -> Result<RemovePodSandboxResponse, Error> {
        let sandbox = match self.sandboxes.get(require(&req.pod_sandbox_id, "pod_sandbox_id")?) {
            Ok(s) => s,
            Err(Error::NotFound(_)) => return Ok(RemovePodSandboxResponse {}),
            Err(e) => return Err(e),
        };
        if sandbox.state == SandboxState::Ready {
            self.stop_sandbox(&sandbox.id).await?;
        }
        for c in self.containers.list().into_iter().filter(|c| c.sandbox_id == sandbox.id) {
            self.containers.remove(&c.id)?;
            self.names.release(&c.name);
        }
        let dir = self.opts.shim_dir(&sandbox.id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Io { op: "removing", path: dir, source: e }),
        }
        self.sandboxes.remove(&sandbox.id)?;
        self.names.release(&sandbox.name);
        tracing::info!(sandbox.id = %sandbox.id, "pod sandbox removed");
        Ok(RemovePodSandboxResponse {})
    }
}
