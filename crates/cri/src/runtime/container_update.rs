//! UpdateContainerResources: resize a container in place — its cgroup's values (made now for a
//! Wasm container that had none and gets limits a cgroup enforces), the shim's
//! `oom_score_adj`, and the Wasm memory cap the running guest's limiter checks — then record the
//! new resources so ContainerStatus reports them.

use k8s_cri::v1::{UpdateContainerResourcesRequest, UpdateContainerResourcesResponse};
use wasmlet_shim::protocol::RemoteError;

use crate::runtime::cgroup;
use crate::service::require;
use crate::store::ContainerState;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn update_container_resources(
        &self,
        req: UpdateContainerResourcesRequest,
    ) -> Result<UpdateContainerResourcesResponse, Error> {
        let c = self.containers.get(require(&req.container_id, "container_id")?)?;
        let Some(new) = req.linux else {
            return Err(Error::InvalidArgument("linux is required: only Linux resources apply to wasmlet containers".into()));
        };
        let resources = cgroup::validated("linux", Some(&new))?.unwrap_or_default();
        if c.state == ContainerState::Exited {
            return Err(Error::FailedPrecondition(format!("container {} has exited", c.id)));
        }
        // A created container's create must have reached the shim before the shim is asked
        // about its thread or its memory cap.
        self.settle_create(&c.id).await?;
        if let Some(cgroups) = &self.cgroups
            && !c.cgroup.is_empty()
        {
            cgroups.apply_to_container(&wasmlet_cgroups::CgroupPath::new(&c.cgroup)?, &resources)?;
        } else if let Some(cgroups) = &self.cgroups
            && resources.need_thread_cgroup()
            && let Ok(sandbox) = self.sandboxes.get(&c.sandbox_id)
            && !sandbox.cgroup_parent.is_empty()
        {
            // A Wasm container of a BestEffort pod, whose thread has no cgroup of its own yet
            // (a Linux container always has one when the pod has): make it and move the thread.
            let pod = wasmlet_cgroups::PodCgroup::parse_parent(&sandbox.cgroup_parent)?;
            let path = cgroups.container_path(&pod, &c.id, true)?;
            let guard = cgroup::CgroupGuard::new(cgroups, Some(path.clone()));
            cgroups.create_container(&path, true, Some(&resources))?;
            self.shim(&c.sandbox_id).join_cgroup(&c.id, cgroups.thread_files(&path)).await?;
            self.containers.update(&c.id, |rec| {
                rec.cgroup = path.as_str().to_owned();
                true
            })?;
            guard.disarm();
            tracing::info!(sandbox.id = %c.sandbox_id, container.id = %c.id, cgroup = %path.as_str(), "container thread cgroup made for its new limits");
        }
        if new.oom_score_adj != 0
            && let Ok(sandbox) = self.sandboxes.get(&c.sandbox_id)
            && let Err(e) = cgroup::raise_oom_score_adj(sandbox.shim_pid, new.oom_score_adj)
        {
            tracing::warn!(container.id = %c.id, error = %e, "setting oom_score_adj");
        }
        // 0 leaves the cap as it is (CRI's "unset"); -1 lifts it.
        let cap = match new.memory_limit_in_bytes {
            0 => None,
            -1 => Some(None),
            b => Some(Some(b as u64)),
        };
        if let Some(cap) = cap {
            match self.shim(&c.sandbox_id).update_resources(&c.id, cap).await {
                Ok(()) => {}
                // Exited meanwhile: nothing left to resize.
                Err(wasmlet_shim::Error::Remote(RemoteError::NotFound(_))) | Err(wasmlet_shim::Error::Unreachable { .. }) => {}
                Err(e) => return Err(e.into()),
            }
        }
        self.containers.update(&c.id, |rec| {
            let linux = rec.config.linux.get_or_insert_with(Default::default);
            let old = linux.resources.take().unwrap_or_default();
            linux.resources = Some(merge(old, new));
            true
        })?;
        tracing::info!(sandbox.id = %c.sandbox_id, container.id = %c.id, "container resources updated");
        Ok(UpdateContainerResourcesResponse {})
    }
}

/// The resources in force after an update: set fields replace, unset (0 / empty) ones stay, as
/// the cgroup writes do.
fn merge(
    mut old: k8s_cri::v1::LinuxContainerResources,
    new: k8s_cri::v1::LinuxContainerResources,
) -> k8s_cri::v1::LinuxContainerResources {
    macro_rules! take {
        ($($f:ident),*) => { $( set(&mut old.$f, new.$f); )* };
    }
    fn set<T: Default + PartialEq>(old: &mut T, new: T) {
        if new != T::default() {
            *old = new;
        }
    }
    take!(cpu_period, cpu_quota, cpu_shares, memory_limit_in_bytes, memory_swap_limit_in_bytes, oom_score_adj, cpuset_cpus, cpuset_mems, hugepage_limits, unified);
    old
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::LinuxContainerResources as R;

    use super::merge;

    #[test]
    fn merge_keeps_unset_fields() {
        let old = R { cpu_quota: 20_000, cpu_period: 100_000, memory_limit_in_bytes: 64 << 20, ..Default::default() };
        let new = R { cpu_quota: 80_000, ..Default::default() };
        let m = merge(old, new);
        assert_eq!((m.cpu_quota, m.cpu_period, m.memory_limit_in_bytes), (80_000, 100_000, 64 << 20));
    }
}
