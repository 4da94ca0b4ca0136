//! What kubelet would send for a pod's resources, computed for `wasmlet run` (no kubelet): the
//! pod's QoS class and cgroup (`/kubepods[/burstable|/besteffort]/pod<uid>`), and per container the
//! CPU shares from its request, the CFS quota from its limit, its memory limit and kubelet's
//! oom_score_adj — all with kubelet's own arithmetic from `wasmlet-cgroups`.

use anyhow::Context;
use k8s_cri::v1 as cri;
use wasmlet_cgroups::{
    CgroupDriver, OomScoreInput, PodCgroup, QUOTA_PERIOD_US, ResourceList, ResourceRequirements, milli_cpu_to_quota,
    milli_cpu_to_shares, oom_score_adj, pod_qos,
};

use crate::pod::{Container, Pod, parse_cpu, parse_memory};

fn list(map: &std::collections::BTreeMap<String, String>) -> anyhow::Result<ResourceList> {
    Ok(ResourceList {
        cpu_millis: map.get("cpu").map(|q| parse_cpu(q)).transpose()?,
        memory_bytes: map.get("memory").map(|q| parse_memory(q)).transpose()?,
    })
}

fn requirements(c: &Container) -> anyhow::Result<ResourceRequirements> {
    Ok(ResourceRequirements { requests: list(&c.resources.requests)?, limits: list(&c.resources.limits)? }.with_api_defaults())
}

/// The pod's cgroup parent, in kubelet's cgroupfs form.
pub fn cgroup_parent(pod: &Pod, uid: &str) -> anyhow::Result<String> {
    let reqs: Vec<_> = pod.spec.containers.iter().map(requirements).collect::<anyhow::Result<_>>()?;
    let qos = pod_qos(reqs.iter(), None);
    let cgroup = PodCgroup::new(qos, uid, CgroupDriver::Cgroupfs).context("pod cgroup")?;
    let path = cgroup.path.to_string();
    Ok(if path.starts_with('/') { path } else { format!("/{path}") })
}

/// One container's `LinuxContainerResources`, as kubelet computes them.
pub fn container_resources(pod: &Pod, c: &Container) -> anyhow::Result<cri::LinuxContainerResources> {
    let reqs: Vec<_> = pod.spec.containers.iter().map(requirements).collect::<anyhow::Result<_>>()?;
    let qos = pod_qos(reqs.iter(), None);
    let own = requirements(c)?;
    let oom = oom_score_adj(&OomScoreInput {
        qos,
        node_critical: false,
        memory_request: own.requests.memory_bytes,
        sidecar_of: None,
        memory_capacity: memory_capacity()?,
    })?
    .min(1000);
    Ok(cri::LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(own.requests.cpu_millis.unwrap_or(0)) as i64,
        cpu_quota: own.limits.cpu_millis.map(|m| milli_cpu_to_quota(m, QUOTA_PERIOD_US as i64)).unwrap_or(0),
        cpu_period: if own.limits.cpu_millis.is_some() { QUOTA_PERIOD_US as i64 } else { 0 },
        memory_limit_in_bytes: own.limits.memory_bytes.unwrap_or(0),
        oom_score_adj: oom,
        ..Default::default()
    })
}

/// The node's memory (MemTotal), what kubelet calls its memory capacity.
fn memory_capacity() -> anyhow::Result<i64> {
    let meminfo = std::fs::read_to_string("/proc/meminfo").context("reading /proc/meminfo")?;
    let kib: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no MemTotal in /proc/meminfo")?;
    Ok(kib * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn qos_and_resources_like_kubelet() {
        let guaranteed = pod("spec:\n  containers:\n  - {name: a, image: x, resources: {limits: {cpu: 500m, memory: 64Mi}}}\n");
        assert_eq!(cgroup_parent(&guaranteed, "u1").unwrap(), "/kubepods/podu1");
        let r = container_resources(&guaranteed, &guaranteed.spec.containers[0]).unwrap();
        assert_eq!((r.cpu_shares, r.cpu_quota, r.cpu_period, r.memory_limit_in_bytes), (512, 50_000, 100_000, 64 << 20));
        assert_eq!(r.oom_score_adj, -997);

        let burstable = pod("spec:\n  containers:\n  - {name: a, image: x, resources: {requests: {cpu: 250m}}}\n");
        assert_eq!(cgroup_parent(&burstable, "u2").unwrap(), "/kubepods/burstable/podu2");
        let r = container_resources(&burstable, &burstable.spec.containers[0]).unwrap();
        assert_eq!((r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes), (256, 0, 0));
        assert_eq!(r.oom_score_adj, 999, "no memory request: 1000 - 0 → 999");

        let besteffort = pod("spec:\n  containers:\n  - {name: a, image: x}\n");
        assert_eq!(cgroup_parent(&besteffort, "u3").unwrap(), "/kubepods/besteffort/podu3");
        let r = container_resources(&besteffort, &besteffort.spec.containers[0]).unwrap();
        assert_eq!((r.cpu_shares, r.oom_score_adj), (2, 1000));
    }
}
