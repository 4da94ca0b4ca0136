//! PodSandboxStatus: state, metadata, namespaces, labels; with `verbose`, the config as JSON.

use std::collections::HashMap;

use k8s_cri::v1::{
    LinuxPodSandboxStatus, Namespace, NamespaceOption, PodIp, PodSandboxNetworkStatus, PodSandboxStatus, PodSandboxStatusRequest,
    PodSandboxStatusResponse,
};
use wasmlet_shim::protocol::now_nanos;

use crate::service::require;
use crate::{Error, Runtime, convert};

impl Runtime {
    pub async fn pod_sandbox_status(&self, req: PodSandboxStatusRequest) -> Result<PodSandboxStatusResponse, Error> {
        let s = self.sandboxes.get(require(&req.pod_sandbox_id, "pod_sandbox_id")?)?;
        let options = s
            .config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|sc| sc.namespace_options.clone())
            .unwrap_or(NamespaceOption::default());
        let status = PodSandboxStatus {
            id: s.id.clone(),
            metadata: s.config.metadata.clone(),
            state: s.state.to_cri(),
            created_at: s.created_at,
            network: Some(PodSandboxNetworkStatus {
                ip: s.ips.first().cloned().unwrap_or_default(),
                additional_ips: s.ips.iter().skip(1).map(|ip| PodIp { ip: ip.clone() }).collect(),
            }),
            linux: Some(LinuxPodSandboxStatus { namespaces: Some(Namespace { options: Some(options) }) }),
            labels: s.config.labels.clone(),
            annotations: s.config.annotations.clone(),
            runtime_handler: s.runtime_handler.clone(),
        };
        let mut info = HashMap::new();
        if req.verbose {
            let verbose = serde_json::json!({
                "config": s.config,
                "shimPid": s.shim_pid,
                "shimDir": self.opts.shim_dir(&s.id),
                "runtimeHandler": s.runtime_handler,
                "netns": s.netns,
                "cniResult": s.cni.as_ref().map(|c| &c.result),
            });
            info.insert("info".into(), verbose.to_string());
        }
        let containers_statuses = self
            .containers
            .matching(|c| c.sandbox_id == s.id)
            .iter()
            .map(convert::container_status)
            .collect();
        Ok(PodSandboxStatusResponse { status: Some(status), info, containers_statuses, timestamp: now_nanos() })
    }
}
