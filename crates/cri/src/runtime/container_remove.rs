//! RemoveContainer: force-stop if running, forget it in the shim, unmount and delete a Linux
//! container's rootfs and bundle, remove its cgroup, delete its record. Idempotent:
//! an unknown id is success. The log file stays: kubelet owns and removes container logs.

use k8s_cri::v1::{RemoveContainerRequest, RemoveContainerResponse};

use crate::service::require;
use crate::store::ContainerState;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn remove_container(&self, req: RemoveContainerRequest) -> Result<RemoveContainerResponse, Error> {
        let c = match self.containers.get(require(&req.container_id, "container_id")?) {
            Ok(c) => c,
            Err(Error::NotFound(_)) => return Ok(RemoveContainerResponse {}),
            Err(e) => return Err(e),
        };
        // A create the shim refused leaves nothing there to remove.
        let _ = self.settle_create(&c.id).await;
        if c.state == ContainerState::Running {
            self.stop_in_shim(&c.id, &c.sandbox_id, 0).await?;
        }
        match self.shim(&c.sandbox_id).remove(&c.id).await {
            Ok(()) | Err(wasmlet_shim::Error::Unreachable { .. }) => {}
            Err(wasmlet_shim::Error::Remote(wasmlet_shim::protocol::RemoteError::NotFound(_))) => {}
            Err(e) => return Err(e.into()),
        }
        // A Linux container's rootfs and bundle (nothing for a Wasm one).
        crate::runtime::linux::rootfs::remove(&crate::runtime::linux::rootfs::bundle_dir(&self.opts.state, &c.id));
        if let Some(cgroups) = &self.cgroups {
            cgroups.forget(&c.id);
            if !c.cgroup.is_empty() {
                cgroups.remove_when_empty(&wasmlet_cgroups::CgroupPath::new(&c.cgroup)?).await?;
            }
        }
        self.containers.remove(&c.id)?;
        self.names.release(&c.name);
        tracing::info!(sandbox.id = %c.sandbox_id, container.id = %c.id, "container removed");
        Ok(RemoveContainerResponse {})
    }
}
