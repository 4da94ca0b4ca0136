//! A pod sandbox's record.

use k8s_cri::v1::PodSandboxConfig;
use serde::{Deserialize, Serialize};

use super::records::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SandboxState {
    Ready,
    NotReady,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    pub id: String,
    /// `name_namespace_uid_attempt`, reserved while the record exists.
    pub name: String,
    pub config: PodSandboxConfig,
    pub runtime_handler: String,
    pub state: SandboxState,
    pub created_at: i64,
    pub shim_pid: u32,
    /// The pod cgroup as a `cgroup_parent` value (re-parsed with `PodCgroup::parse_parent`);
    /// empty when the pod has none (no cgroups on the host, or a record from before cgroups).
    #[serde(default)]
    pub cgroup_parent: String,
    /// Whether this runtime made the pod cgroup (and so removes it with the pod) or found it
    /// made by kubelet (then only the container cgroups under it are ours).
    #[serde(default)]
    pub cgroup_owned: bool,
    /// The pod's own network: where its namespace is pinned (none for hostNetwork pods)…
    #[serde(default)]
    pub netns: Option<std::path::PathBuf>,
    /// …the CNI network list it was attached with and the ADD result (DEL needs both, also
    /// after a daemon restart), and its IPs.
    #[serde(default)]
    pub cni: Option<CniAttachment>,
    #[serde(default)]
    pub ips: Vec<String>,
}

/// What CNI DEL needs to detach a pod, kept with its record.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct CniAttachment {
    pub list_path: std::path::PathBuf,
    pub name: String,
    pub cni_version: String,
    pub plugins: Vec<serde_json::Value>,
    pub result: serde_json::Value,
    /// Set once DEL succeeded, so a second StopPodSandbox does not run it again.
    #[serde(default)]
    pub deleted: bool,
}

impl Record for SandboxRecord {
    fn id(&self) -> &str {
        &self.id
    }
}
