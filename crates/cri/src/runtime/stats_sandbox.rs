//! PodSandboxStats and ListPodSandboxStats: CPU and memory of the pod's cgroup (the shim process
//! and every container thread), with each container's stats inside. Only ready pods are listed.

use k8s_cri::v1::{
    LinuxPodSandboxStats, ListPodSandboxStatsRequest, ListPodSandboxStatsResponse, MemoryUsage, PodSandboxAttributes,
    PodSandboxStats, PodSandboxStatsRequest, PodSandboxStatsResponse, UInt64Value,
};
use wasmlet_shim::protocol::now_nanos;

use crate::filter::{id_matches, labels_match};
use crate::runtime::stats_container::cpu_usage;
use crate::service::require;
use crate::store::{SandboxRecord, SandboxState};
use crate::{Error, Runtime};

impl Runtime {
    pub async fn pod_sandbox_stats(&self, req: PodSandboxStatsRequest) -> Result<PodSandboxStatsResponse, Error> {
        let s = self.sandboxes.get(require(&req.pod_sandbox_id, "pod_sandbox_id")?)?;
        Ok(PodSandboxStatsResponse { stats: Some(self.pod_stats_of(&s).await?) })
    }

    pub async fn list_pod_sandbox_stats(&self, req: ListPodSandboxStatsRequest) -> Result<ListPodSandboxStatsResponse, Error> {
        let filter = req.filter.unwrap_or_default();
        let mut stats = Vec::new();
        for s in self.sandboxes.list() {
            if s.state != SandboxState::Ready
                || !id_matches(&filter.id, &s.id)
                || !labels_match(&filter.label_selector, &s.config.labels)
            {
                continue;
            }
            match self.pod_stats_of(&s).await {
                Ok(st) => stats.push(st),
                Err(e) => tracing::debug!(sandbox.id = %s.id, error = %e, "no pod stats"),
            }
        }
        Ok(ListPodSandboxStatsResponse { stats })
    }

    async fn pod_stats_of(&self, s: &SandboxRecord) -> Result<PodSandboxStats, Error> {
        let attributes = Some(PodSandboxAttributes {
            id: s.id.clone(),
            metadata: s.config.metadata.clone(),
            labels: s.config.labels.clone(),
            annotations: s.config.annotations.clone(),
        });
        let (mut cpu, mut memory) = (None, None);
        if let Some(cgroups) = &self.cgroups
            && !s.cgroup_parent.is_empty()
        {
            let pod = wasmlet_cgroups::PodCgroup::parse_parent(&s.cgroup_parent)?;
            let st = cgroups.manager.stats(&pod.path)?;
            let now = now_nanos();
            let rate = cgroups.nano_cores(&format!("pod:{}", s.id), now, st.cpu_usage_ns, s.created_at);
            cpu = Some(cpu_usage(now, st.cpu_usage_ns, rate));
            memory = Some(MemoryUsage {
                timestamp: now,
                working_set_bytes: Some(UInt64Value { value: st.working_set_bytes }),
                usage_bytes: Some(UInt64Value { value: st.memory_usage_bytes }),
                rss_bytes: Some(UInt64Value { value: st.rss_bytes }),
                available_bytes: None,
                page_faults: None,
                major_page_faults: None,
            });
        }
        let mut containers = Vec::new();
        for c in self.containers.matching(|c| c.sandbox_id == s.id) {
            containers.push(self.stats_of(&c).await);
        }
        Ok(PodSandboxStats {
            attributes,
            linux: Some(LinuxPodSandboxStats { cpu, memory, network: None, process: None, containers }),
            windows: None,
        })
    }
}
