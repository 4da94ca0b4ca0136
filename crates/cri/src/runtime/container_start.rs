//! StartContainer: a created container starts running in its pod's shim.

use k8s_cri::v1::{StartContainerRequest, StartContainerResponse};

use crate::service::require;
use crate::store::ContainerState;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn start_container(&self, req: StartContainerRequest) -> Result<StartContainerResponse, Error> {
        let c = self.containers.get(require(&req.container_id, "container_id")?)?;
        if c.state != ContainerState::Created {
            return Err(Error::FailedPrecondition(format!("container {} is {:?}, not created", c.id, c.state)));
        }
        let started_at = self.start_in_shim(&c.id, &c.sandbox_id).await?;
        // The exit event may already have landed (a short guest): never overwrite it.
        self.containers.update(&c.id, |rec| {
            if rec.state != ContainerState::Created {
                return false;
            }
            rec.state = ContainerState::Running;
            rec.started_at = started_at;
            true
        })?;
        tracing::info!(sandbox.id = %c.sandbox_id, container.id = %c.id, "container started");
        Ok(StartContainerResponse {})
    }
}
