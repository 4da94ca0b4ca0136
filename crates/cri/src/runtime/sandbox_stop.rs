//! StopPodSandbox: force every container of the pod to stop, shut its shim down, mark it NotReady.
//! Idempotent: stopping a stopped sandbox is fine.

use k8s_cri::v1::{StopPodSandboxRequest, StopPodSandboxResponse};

use crate::service::require;
use crate::store::{ContainerState, SandboxState};
use crate::{Error, Runtime};

impl Runtime {
    pub async fn stop_pod_sandbox(&self, req: StopPodSandboxRequest) -> Result<StopPodSandboxResponse, Error> {
        let sandbox = self.sandboxes.get(require(&req.pod_sandbox_id, "pod_sandbox_id")?)?;
        self.stop_sandbox(&sandbox.id).await?;
        Ok(StopPodSandboxResponse {})
    }

    pub(crate) async fn stop_sandbox(&self, sandbox_id: &str) -> Result<(), Error> {
        let shim = self.shim(sandbox_id);
        for c in self.containers.matching(|c| c.sandbox_id == sandbox_id) {
            if c.state == ContainerState::Running {
                self.stop_in_shim(&c.id, sandbox_id, 0).await?;
            }
        }
        match shim.shutdown().await {
            Ok(()) | Err(wasmlet_shim::Error::Unreachable { .. }) => {}
            Err(e) => return Err(e.into()),
        }
        self.forget_shim(sandbox_id);
        self.settle_lost_containers(sandbox_id, "the pod sandbox was stopped");
        // CNI DEL (idempotent: skipped once it has succeeded; a failure fails the stop so that
        // kubelet retries it).
        self.detach_network(&self.sandboxes.get(sandbox_id)?).await?;
        self.sandboxes.update(sandbox_id, |s| {
            let changed = s.state != SandboxState::NotReady;
            s.state = SandboxState::NotReady;
            changed
        })?;
        tracing::info!(sandbox.id = %sandbox_id, "pod sandbox stopped");
        Ok(())
    }
}
