//! ReopenContainerLog: after kubelet rotates a running container's log, write to a fresh file.

use k8s_cri::v1::{ReopenContainerLogRequest, ReopenContainerLogResponse};

use crate::service::require;
use crate::store::ContainerState;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn reopen_container_log(&self, req: ReopenContainerLogRequest) -> Result<ReopenContainerLogResponse, Error> {
        let c = self.containers.get(require(&req.container_id, "container_id")?)?;
        if c.state != ContainerState::Running {
            return Err(Error::FailedPrecondition(format!("container {} is not running", c.id)));
        }
        self.shim(&c.sandbox_id).reopen_log(&c.id).await?;
        Ok(ReopenContainerLogResponse {})
    }
}
