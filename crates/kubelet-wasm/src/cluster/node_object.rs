//! The Node object of cluster mode: registered once with the node's labels
//! (`kubernetes.io/os`, `kubernetes.io/arch`, `kubernetes.io/hostname`), taints, capacity and
//! allocatable from the hardware; then its status (conditions with NodeReady from the runtime's
//! Status RPC, as kubelet's `setNodeReadyCondition`) patched every update period.

use std::collections::BTreeMap;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    Node, NodeAddress, NodeCondition, NodeSpec, NodeStatus, NodeSystemInfo, Taint,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use kube::api::{Api, Patch, PatchParams, PostParams};
use serde_json::json;

use crate::node::NodeInfo;
use crate::quantity::{bytes_quantity, cpu_quantity};
use crate::status::now;
use crate::{Error, Result};

/// The kubelet version the node reports (the API server's skew policy looks at it).
pub const KUBELET_VERSION: &str = "v1.33.0-wasmlet";

/// Parses `key=value:Effect` (or `key:Effect`) as kubelet's `--register-with-taints`.
pub fn parse_taint(s: &str) -> Result<Taint> {
    let bad = || Error::Config(format!("invalid taint {s:?}: want key=value:Effect"));
    let (kv, effect) = s.rsplit_once(':').ok_or_else(bad)?;
    if !["NoSchedule", "PreferNoSchedule", "NoExecute"].contains(&effect) {
        return Err(bad());
    }
    let (key, value) = kv
        .split_once('=')
        .map_or((kv, None), |(k, v)| (k, Some(v.to_string())));
    if key.is_empty() {
        return Err(bad());
    }
    Ok(Taint {
        key: key.into(),
        value,
        effect: effect.into(),
        time_added: None,
    })
}

fn resources(cpu: i64, memory: i64, pods: i64) -> BTreeMap<String, Quantity> {
    BTreeMap::from([
        ("cpu".to_string(), cpu_quantity(cpu)),
        ("memory".to_string(), bytes_quantity(memory)),
        ("pods".to_string(), Quantity(pods.to_string())),
    ])
}

/// NodeReady from the runtime's conditions (RuntimeReady and NetworkReady), as kubelet words it.
pub fn ready_condition(status: Option<&cri::RuntimeStatus>) -> NodeCondition {
    let problem = match status {
        None => Some("container runtime status check may not have completed yet".to_string()),
        Some(s) => s
            .conditions
            .iter()
            .find(|c| !c.status && (c.r#type == "RuntimeReady" || c.r#type == "NetworkReady"))
            .map(|c| {
                let what = if c.r#type == "RuntimeReady" {
                    "container runtime is down"
                } else {
                    "container runtime network not ready"
                };
                format!(
                    "{what}: {}=false reason:{} message:{}",
                    c.r#type, c.reason, c.message
                )
            }),
    };
    let t = Some(now());
    match problem {
        None => NodeCondition {
            type_: "Ready".into(),
            status: "True".into(),
            reason: Some("KubeletReady".into()),
            message: Some("kubelet is posting ready status".into()),
            last_heartbeat_time: t.clone(),
            last_transition_time: t,
        },
        Some(m) => NodeCondition {
            type_: "Ready".into(),
            status: "False".into(),
            reason: Some("KubeletNotReady".into()),
            message: Some(m),
            last_heartbeat_time: t.clone(),
            last_transition_time: t,
        },
    }
}

fn pressure(type_: &str, reason: &str, message: &str) -> NodeCondition {
    let t = Some(now());
    NodeCondition {
        type_: type_.into(),
        status: "False".into(),
        reason: Some(reason.into()),
        message: Some(message.into()),
        last_heartbeat_time: t.clone(),
        last_transition_time: t,
    }
}

/// The node's status: capacity, allocatable, conditions, addresses, system info.
pub fn node_status(
    info: &NodeInfo,
    runtime: &cri::VersionResponse,
    status: Option<&cri::RuntimeStatus>,
) -> NodeStatus {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_default()
        .trim()
        .to_string();
    let machine_id = std::fs::read_to_string("/etc/machine-id")
        .unwrap_or_default()
        .trim()
        .to_string();
    let boot_id = std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .unwrap_or_default()
        .trim()
        .to_string();
    NodeStatus {
        capacity: Some(resources(
            info.cpu_capacity_millis,
            info.memory_capacity_bytes,
            info.max_pods,
        )),
        allocatable: Some(resources(
            info.cpu_allocatable_millis,
            info.memory_allocatable_bytes,
            info.max_pods,
        )),
        conditions: Some(vec![
            pressure(
                "MemoryPressure",
                "KubeletHasSufficientMemory",
                "kubelet has sufficient memory available",
            ),
            pressure(
                "DiskPressure",
                "KubeletHasNoDiskPressure",
                "kubelet has no disk pressure",
            ),
            pressure(
                "PIDPressure",
                "KubeletHasSufficientPID",
                "kubelet has sufficient PID available",
            ),
            ready_condition(status),
        ]),
        addresses: Some(vec![
            NodeAddress {
                type_: "InternalIP".into(),
                address: info.host_ip.to_string(),
            },
            NodeAddress {
                type_: "Hostname".into(),
                address: info.name.clone(),
            },
        ]),
        node_info: Some(NodeSystemInfo {
            architecture: info.arch.into(),
            operating_system: info.os.into(),
            kernel_version: kernel,
            os_image: "wasmlet node".into(),
            machine_id: machine_id.clone(),
            system_uuid: machine_id,
            boot_id,
            kubelet_version: KUBELET_VERSION.into(),
            kube_proxy_version: String::new(),
            container_runtime_version: format!(
                "{}://{}",
                runtime.runtime_name, runtime.runtime_version
            ),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The Node object to register.
pub fn node_object(info: &NodeInfo, taints: &[Taint]) -> Node {
    let labels = BTreeMap::from([
        ("kubernetes.io/os".to_string(), info.os.to_string()),
        ("kubernetes.io/arch".to_string(), info.arch.to_string()),
        ("kubernetes.io/hostname".to_string(), info.name.clone()),
        ("node.wasmlet.io/runtime".to_string(), "wasmlet".to_string()),
    ]);
    Node {
        metadata: kube::api::ObjectMeta {
            name: Some(info.name.clone()),
            labels: Some(labels),
            ..Default::default()
        },
        spec: Some(NodeSpec {
            taints: (!taints.is_empty()).then(|| taints.to_vec()),
            ..Default::default()
        }),
        status: None,
    }
}

/// Creates the Node if it does not exist (kubelet's `registerWithAPIServer`; an existing Node is
/// kept, with our labels merged in), then writes its status.
pub async fn register(nodes: &Api<Node>, node: Node, status: NodeStatus) -> Result<()> {
    let name = node.metadata.name.clone().unwrap_or_default();
    match nodes.get_opt(&name).await? {
        None => {
            nodes.create(&PostParams::default(), &node).await?;
            tracing::info!(node = %name, "registered the Node");
        }
        Some(_) => {
            let patch = json!({ "metadata": { "labels": node.metadata.labels } });
            nodes
                .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(node = %name, "the Node exists already; labels updated");
        }
    }
    update_status(nodes, &name, status).await
}

/// Patches the Node's status.
pub async fn update_status(nodes: &Api<Node>, name: &str, status: NodeStatus) -> Result<()> {
    nodes
        .patch_status(
            name,
            &PatchParams::default(),
            &Patch::Merge(&json!({ "status": status })),
        )
        .await?;
    Ok(())
}
