//! RemovePodSandbox: stop it if needed, remove its containers (a Linux container's rootfs too),
//! their cgroups and the pod's (if this runtime made it), the pod's shared namespaces and files,
//! its shim directory and its record. Idempotent: an unknown id is success.

use k8s_cri::v1::{RemovePodSandboxRequest, RemovePodSandboxResponse};

use crate::service::require;
use crate::store::{ContainerRecord, SandboxRecord, SandboxState};
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
        // A stop whose CNI DEL failed left the pod attached: try again, then unpin its netns.
        let fresh = self.sandboxes.get(&sandbox.id)?;
        self.detach_network(&fresh).await?;
        self.remove_netns(&fresh)?;
        let containers: Vec<_> = self.containers.matching(|c| c.sandbox_id == sandbox.id);
        self.remove_pod_cgroups(&sandbox, &containers).await?;
        for c in containers {
            crate::runtime::linux::rootfs::remove(&crate::runtime::linux::rootfs::bundle_dir(&self.opts.state, &c.id));
            self.containers.remove(&c.id)?;
            self.names.release(&c.name);
            self.pending_creates.forget(&c.id);
        }
        crate::runtime::linux::pod_files::remove(&self.opts.state, &sandbox.id)?;
        let dir = self.opts.shim_dir(&sandbox.id);
        match std::fs::remove_dir_all(&dir) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(Error::Io { op: "removing", path: dir, source: e }),
        }
        self.sandboxes.remove(&sandbox.id)?;
        self.forget_shim(&sandbox.id);
        self.names.release(&sandbox.name);
        tracing::info!(sandbox.id = %sandbox.id, "pod sandbox removed");
        Ok(RemovePodSandboxResponse {})
    }
}

impl Runtime {
    /// Removes the container cgroups of the pod and, when this runtime made it, the pod cgroup
    /// (the shim has exited by now; the cgroup layer retries a cgroup still busy for a moment).
    async fn remove_pod_cgroups(&self, sandbox: &SandboxRecord, containers: &[ContainerRecord]) -> Result<(), Error> {
        let Some(cgroups) = &self.cgroups else { return Ok(()) };
        let start = std::time::Instant::now();
        for c in containers {
            cgroups.forget(&c.id);
            if !c.cgroup.is_empty() && !sandbox.cgroup_owned {
                cgroups.remove_when_empty(&wasmlet_cgroups::CgroupPath::new(&c.cgroup)?).await?;
            }
        }
        cgroups.forget(&format!("pod:{}", sandbox.id));
        if sandbox.cgroup_parent.is_empty() {
            return Ok(());
        }
        let pod = wasmlet_cgroups::PodCgroup::parse_parent(&sandbox.cgroup_parent)?;
        let shim_cgroup = cgroups.shim_cgroup(&pod)?;
        if !sandbox.cgroup_owned && shim_cgroup != pod.path {
            // kubelet's pod cgroup stays; the shim's leaf in it (v2) is ours.
            cgroups.remove_when_empty(&shim_cgroup).await?;
        }
        if sandbox.cgroup_owned {
            cgroups.remove_when_empty(&pod.path).await?;
            tracing::debug!(sandbox.id = %sandbox.id, cgroup.path = %pod.path, cgroup.remove_us = start.elapsed().as_micros() as u64, "pod cgroup removed");
        }
        Ok(())
    }
}
