//! StopPodSandbox: force every container of the pod to stop, shut its shim down and wait for it
//! to be gone, mark it NotReady. Idempotent: stopping a stopped sandbox is fine.

use k8s_cri::v1::{StopPodSandboxRequest, StopPodSandboxResponse};

use crate::runtime::process_exit::ProcessExit;
use crate::service::require;
use crate::store::{ContainerState, SandboxState};
use crate::{Error, Runtime};

/// How long StopPodSandbox waits for the shim to be gone once it has answered Shutdown (it has
/// stopped every container by then; what is left is the process's own exit).
const SHIM_EXIT_PATIENCE: std::time::Duration = std::time::Duration::from_secs(2);

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
        // Watched before it is told to go, while its pid is surely still its own.
        let pid = self.sandboxes.get(sandbox_id).map(|s| s.shim_pid).unwrap_or(0);
        let exit = (pid > 0).then(|| ProcessExit::watch(pid));
        match shim.shutdown().await {
            Ok(()) => {
                if let Some(exit) = exit
                    && !exit.wait(SHIM_EXIT_PATIENCE).await
                {
                    tracing::warn!(sandbox.id = %sandbox_id, shim.pid = pid, "the shim answered Shutdown but has not exited yet");
                }
            }
            Err(wasmlet_shim::Error::Unreachable { .. }) => {}
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
