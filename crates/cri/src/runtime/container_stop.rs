//! StopContainer: stop a running container within its timeout. Idempotent: a container that is
//! not running is left as it is.

use k8s_cri::v1::{StopContainerRequest, StopContainerResponse};
use wasmlet_shim::protocol::ContainerState as ShimState;

use crate::service::require;
use crate::store::ContainerState;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn stop_container(&self, req: StopContainerRequest) -> Result<StopContainerResponse, Error> {
        let c = self.containers.get(require(&req.container_id, "container_id")?)?;
        if c.state == ContainerState::Running {
            let timeout_ms = u64::try_from(req.timeout).unwrap_or(0).saturating_mul(1000);
            self.stop_in_shim(&c.id, &c.sandbox_id, timeout_ms).await?;
        }
        Ok(StopContainerResponse {})
    }

    /// Stops the container in its shim and records its exit before returning.
    pub(crate) async fn stop_in_shim(&self, id: &str, sandbox_id: &str, timeout_ms: u64) -> Result<(), Error> {
        self.settle_create(id).await?;
        let shim = self.shim(sandbox_id);
        match shim.stop(id, timeout_ms).await {
            Ok(()) => {}
            Err(wasmlet_shim::Error::Unreachable { .. }) => {
                self.settle_lost_containers(sandbox_id, "the pod's shim exited");
                return Ok(());
            }
            Err(e) => return Err(e.into()),
        }
        if let Ok(ShimState::Exited(exit)) = shim.state(id).await {
            self.containers.update(id, |rec| rec.exited(&exit))?;
        }
        tracing::info!(sandbox.id = %sandbox_id, container.id = %id, "container stopped");
        Ok(())
    }
}
