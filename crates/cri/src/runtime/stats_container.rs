//! ContainerStats and ListContainerStats. CPU comes from the container's cgroup (the container
//! thread sits in it): `usage_core_nano_seconds` is its cumulative `cpuacct.usage` (v2
//! `cpu.stat`), `usage_nano_cores` the rate since the previous sample kept in memory, as
//! containerd does (the first sample is measured from the container's start). A Wasm container
//! without a cgroup of its own (BestEffort pods) reports its thread's CPU time, from the shim. Memory is the
//! guest's linear memory as the shim's limiter last granted it: on v1 memory is charged per
//! process, so a container's own cgroup has none (the pod's is in PodSandboxStats). Wasm
//! containers have no writable layer.

use k8s_cri::v1::{
    ContainerAttributes, ContainerStats, ContainerStatsRequest, ContainerStatsResponse, CpuUsage,
    ListContainerStatsRequest, ListContainerStatsResponse, MemoryUsage, UInt64Value,
};
use wasmlet_shim::protocol::now_nanos;

use crate::filter::{id_matches, labels_match};
use crate::service::require;
use crate::store::{ContainerRecord, ContainerState};
use crate::{Error, Runtime};

impl Runtime {
    pub async fn container_stats(&self, req: ContainerStatsRequest) -> Result<ContainerStatsResponse, Error> {
        let c = self.containers.get(require(&req.container_id, "container_id")?)?;
        Ok(ContainerStatsResponse { stats: Some(self.stats_of(&c).await) })
    }

    pub async fn list_container_stats(&self, req: ListContainerStatsRequest) -> Result<ListContainerStatsResponse, Error> {
        let filter = req.filter.unwrap_or_default();
        let mut stats = Vec::new();
        let selected = self.containers.matching(|c| {
            id_matches(&filter.id, &c.id) && id_matches(&filter.pod_sandbox_id, &c.sandbox_id) && labels_match(&filter.label_selector, &c.config.labels)
        });
        for c in selected {
            stats.push(self.stats_of(&c).await);
        }
        Ok(ListContainerStatsResponse { stats })
    }

    /// One container's stats; what cannot be measured (no cgroup, shim gone) is left out.
    pub(crate) async fn stats_of(&self, c: &ContainerRecord) -> ContainerStats {
        let attributes = Some(ContainerAttributes {
            id: c.id.clone(),
            metadata: c.config.metadata.clone(),
            labels: c.config.labels.clone(),
            annotations: c.config.annotations.clone(),
        });
        // The shim's view: linear memory, and the thread's CPU time for a Wasm container without
        // a cgroup of its own (kept by the shim after the container exits).
        let usage = if c.state != ContainerState::Exited || c.cgroup.is_empty() {
            let _ = self.settle_create(&c.id).await;
            match self.shim(&c.sandbox_id).stats(&c.id).await {
                Ok(u) => Some(u),
                Err(e) => {
                    tracing::debug!(container.id = %c.id, error = %e, "no stats from the shim");
                    None
                }
            }
        } else {
            None
        };
        let cpu = match usage.and_then(|u| u.cpu_ns).filter(|_| c.cgroup.is_empty()) {
            Some(ns) => Some(self.cpu_sample(c, ns)),
            None => self.container_cpu(c),
        };
        let memory = usage.filter(|_| c.state != ContainerState::Exited).map(|u| {
            let bytes = Some(UInt64Value { value: u.linear_memory_bytes });
            MemoryUsage {
                timestamp: now_nanos(),
                working_set_bytes: bytes,
                usage_bytes: bytes,
                rss_bytes: bytes,
                available_bytes: (u.memory_limit > 0).then(|| UInt64Value { value: u.memory_limit.saturating_sub(u.linear_memory_bytes) }),
                page_faults: None,
                major_page_faults: None,
            }
        });
        ContainerStats { attributes, cpu, memory, writable_layer: None, swap: None }
    }

    fn container_cpu(&self, c: &ContainerRecord) -> Option<CpuUsage> {
        let cgroups = self.cgroups.as_ref()?;
        if c.cgroup.is_empty() {
            return None;
        }
        let path = wasmlet_cgroups::CgroupPath::new(&c.cgroup).ok()?;
        let usage = match cgroups.manager.cpu_usage_ns(&path) {
            Ok(ns) => ns,
            Err(e) => {
                tracing::debug!(container.id = %c.id, error = %e, "no cgroup stats");
                return None;
            }
        };
        Some(self.cpu_sample(c, usage))
    }

    /// A CPU sample of `usage_ns` cumulative ns, with the rate since the previous one.
    fn cpu_sample(&self, c: &ContainerRecord, usage_ns: u64) -> CpuUsage {
        let now = now_nanos();
        let since = if c.started_at > 0 { c.started_at } else { c.created_at };
        let rate = self.cgroups.as_ref().map(|cg| cg.nano_cores(&c.id, now, usage_ns, since)).unwrap_or(0);
        cpu_usage(now, usage_ns, rate)
    }
}

pub(crate) fn cpu_usage(timestamp: i64, usage_ns: u64, nano_cores: u64) -> CpuUsage {
    CpuUsage {
        timestamp,
        usage_core_nano_seconds: Some(UInt64Value { value: usage_ns }),
        usage_nano_cores: Some(UInt64Value { value: nano_cores }),
    }
}
