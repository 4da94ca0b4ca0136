//! What kubelet sends for a pod's resources, with kubelet's own arithmetic from `wasmlet-cgroups`:
//! the pod's QoS class and cgroup parent (`/kubepods[/burstable|/besteffort]/pod<uid>`), each
//! container's CPU shares (request), CFS quota (limit), memory limit and oom_score_adj, and the
//! pod's effective requests that admission adds up.

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Pod};
use wasmlet_cgroups::{
    CgroupDriver, OomScoreInput, PodCgroup, QUOTA_PERIOD_US, QosClass, ResourceList,
    ResourceRequirements, milli_cpu_to_quota, milli_cpu_to_shares, oom_score_adj, pod_qos,
};

use crate::quantity;
use crate::{Error, Result};

fn list(
    map: Option<
        &std::collections::BTreeMap<
            String,
            k8s_openapi::apimachinery::pkg::api::resource::Quantity,
        >,
    >,
) -> Result<ResourceList> {
    let get = |k: &str| map.and_then(|m| m.get(k)).map(|q| q.0.as_str());
    Ok(ResourceList {
        cpu_millis: get("cpu").map(quantity::cpu_millis).transpose()?,
        memory_bytes: get("memory").map(quantity::bytes).transpose()?,
    })
}

/// A container's requests and limits, after the API server's defaulting (request = limit if absent).
pub fn requirements(c: &Container) -> Result<ResourceRequirements> {
    let r = c.resources.as_ref();
    Ok(ResourceRequirements {
        requests: list(r.and_then(|r| r.requests.as_ref()))?,
        limits: list(r.and_then(|r| r.limits.as_ref()))?,
    }
    .with_api_defaults())
}

fn all_containers(pod: &Pod) -> impl Iterator<Item = &Container> {
    let spec = pod.spec.as_ref();
    spec.and_then(|s| s.init_containers.as_deref())
        .unwrap_or_default()
        .iter()
        .chain(spec.map(|s| s.containers.as_slice()).unwrap_or_default())
}

/// The pod's QoS class (`ComputePodQOS`, init containers included).
pub fn qos(pod: &Pod) -> Result<QosClass> {
    let reqs: Vec<_> = all_containers(pod)
        .map(requirements)
        .collect::<Result<_>>()?;
    Ok(pod_qos(reqs.iter(), None))
}

/// The name kubelet reports in `status.qosClass`.
pub fn qos_name(q: QosClass) -> &'static str {
    match q {
        QosClass::Guaranteed => "Guaranteed",
        QosClass::Burstable => "Burstable",
        QosClass::BestEffort => "BestEffort",
    }
}

/// The pod's cgroup parent, in kubelet's cgroupfs form.
pub fn cgroup_parent(pod: &Pod, uid: &str) -> Result<String> {
    let cgroup = PodCgroup::new(qos(pod)?, uid, CgroupDriver::Cgroupfs)?;
    let path = cgroup.path.to_string();
    Ok(if path.starts_with('/') {
        path
    } else {
        format!("/{path}")
    })
}

/// One container's `LinuxContainerResources`, as kubelet computes them. `memory_capacity` is the
/// node's memory in bytes.
pub fn container_resources(
    pod: &Pod,
    c: &Container,
    memory_capacity: i64,
) -> Result<cri::LinuxContainerResources> {
    let own = requirements(c)?;
    let oom = oom_score_adj(&OomScoreInput {
        qos: qos(pod)?,
        node_critical: false,
        memory_request: own.requests.memory_bytes,
        sidecar_of: None,
        memory_capacity,
    })?
    // kubelet can compute 1001 (see wasmlet_cgroups::oom_score_adj); the kernel refuses it.
    .min(1000);
    Ok(cri::LinuxContainerResources {
        cpu_shares: milli_cpu_to_shares(own.requests.cpu_millis.unwrap_or(0)) as i64,
        cpu_quota: own
            .limits
            .cpu_millis
            .map(|m| milli_cpu_to_quota(m, QUOTA_PERIOD_US as i64))
            .unwrap_or(0),
        cpu_period: if own.limits.cpu_millis.is_some() {
            QUOTA_PERIOD_US as i64
        } else {
            0
        },
        memory_limit_in_bytes: own.limits.memory_bytes.unwrap_or(0),
        oom_score_adj: oom,
        ..Default::default()
    })
}

/// CPU millicores and memory bytes a pod requests, as the scheduler and kubelet's admission count
/// them: the larger of the regular containers' sum and the largest init container.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PodRequests {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

pub fn pod_requests(pod: &Pod) -> Result<PodRequests> {
    let Some(spec) = pod.spec.as_ref() else {
        return Err(Error::Config("pod has no spec".into()));
    };
    let mut sum = PodRequests::default();
    for c in &spec.containers {
        let r = requirements(c)?;
        sum.cpu_millis += r.requests.cpu_millis.unwrap_or(0);
        sum.memory_bytes += r.requests.memory_bytes.unwrap_or(0);
    }
    for c in spec.init_containers.as_deref().unwrap_or_default() {
        let r = requirements(c)?;
        sum.cpu_millis = sum.cpu_millis.max(r.requests.cpu_millis.unwrap_or(0));
        sum.memory_bytes = sum.memory_bytes.max(r.requests.memory_bytes.unwrap_or(0));
    }
    Ok(sum)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(yaml: &str) -> Pod {
        serde_yaml::from_str(yaml).unwrap()
    }

    const GIB: i64 = 1 << 30;

    #[test]
    fn qos_and_resources_like_kubelet() {
        let guaranteed = pod(
            "spec:\n  containers:\n  - {name: a, image: x, resources: {limits: {cpu: 500m, memory: 64Mi}}}\n",
        );
        assert_eq!(cgroup_parent(&guaranteed, "u1").unwrap(), "/kubepods/podu1");
        let c = &guaranteed.spec.as_ref().unwrap().containers[0];
        let r = container_resources(&guaranteed, c, 4 * GIB).unwrap();
        assert_eq!(
            (
                r.cpu_shares,
                r.cpu_quota,
                r.cpu_period,
                r.memory_limit_in_bytes
            ),
            (512, 50_000, 100_000, 64 << 20)
        );
        assert_eq!(r.oom_score_adj, -997);

        let burstable = pod(
            "spec:\n  containers:\n  - {name: a, image: x, resources: {requests: {cpu: 250m}}}\n",
        );
        assert_eq!(
            cgroup_parent(&burstable, "u2").unwrap(),
            "/kubepods/burstable/podu2"
        );
        let r = container_resources(
            &burstable,
            &burstable.spec.as_ref().unwrap().containers[0],
            4 * GIB,
        )
        .unwrap();
        assert_eq!(
            (r.cpu_shares, r.cpu_quota, r.memory_limit_in_bytes),
            (256, 0, 0)
        );
        assert_eq!(r.oom_score_adj, 999, "no memory request: 1000 - 0 → 999");

        let besteffort = pod("spec:\n  containers:\n  - {name: a, image: x}\n");
        assert_eq!(
            cgroup_parent(&besteffort, "u3").unwrap(),
            "/kubepods/besteffort/podu3"
        );
        let r = container_resources(
            &besteffort,
            &besteffort.spec.as_ref().unwrap().containers[0],
            4 * GIB,
        )
        .unwrap();
        assert_eq!((r.cpu_shares, r.oom_score_adj), (2, 1000));
    }

    #[test]
    fn init_containers_count_as_their_maximum() {
        let p = pod(concat!(
            "spec:\n  initContainers:\n  - {name: i, image: x, resources: {requests: {cpu: '2', memory: 1Gi}}}\n",
            "  containers:\n  - {name: a, image: x, resources: {requests: {cpu: 500m, memory: 64Mi}}}\n",
            "  - {name: b, image: x, resources: {limits: {cpu: 700m, memory: 2Gi}}}\n"
        ));
        assert_eq!(
            pod_requests(&p).unwrap(),
            PodRequests {
                cpu_millis: 2000,
                memory_bytes: (64 << 20) + 2 * GIB
            }
        );
    }
}
