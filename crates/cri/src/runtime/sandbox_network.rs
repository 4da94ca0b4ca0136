//! A pod's network: its own namespace (pinned by its shim, see `wasmlet_shim::netns`) wired by
//! the first CNI network list in the conf dir, or just loopback when there is none; hostNetwork
//! pods share the node's. ADD at RunPodSandbox, DEL at StopPodSandbox (idempotent, and possible
//! after a daemon restart: what it needs is kept in the sandbox record), the namespace removed at
//! RemovePodSandbox.

use std::path::Path;
use std::time::Duration;

use k8s_cri::v1::{NamespaceMode, PodSandboxConfig};
use wasmlet_cni::invoke::Invocation;
use wasmlet_cni::{Attachment, CniResult, NetworkList, PortMapping};

use crate::store::{CniAttachment, SandboxRecord};
use crate::{Error, Runtime};

/// How long one CNI plugin may run.
const PLUGIN_TIMEOUT: Duration = Duration::from_secs(30);

/// Whether the pod asked for the node's network (hostNetwork).
pub(crate) fn host_network(config: &PodSandboxConfig) -> bool {
    config
        .linux
        .as_ref()
        .and_then(|l| l.security_context.as_ref())
        .and_then(|sc| sc.namespace_options.as_ref())
        .is_some_and(|ns| ns.network == NamespaceMode::Node as i32)
}

fn attachment(runtime: &Runtime, sandbox_id: &str, config: &PodSandboxConfig, netns: &Path) -> Attachment {
    let md = config.metadata.clone().unwrap_or_default();
    let args = vec![
        ("IgnoreUnknown".to_string(), "1".to_string()),
        ("K8S_POD_NAMESPACE".to_string(), md.namespace),
        ("K8S_POD_NAME".to_string(), md.name),
        ("K8S_POD_INFRA_CONTAINER_ID".to_string(), sandbox_id.to_string()),
        ("K8S_POD_UID".to_string(), md.uid),
    ];
    let port_mappings = config
        .port_mappings
        .iter()
        .filter(|p| p.host_port > 0)
        .map(|p| PortMapping {
            host_port: p.host_port as u16,
            container_port: p.container_port as u16,
            protocol: match k8s_cri::v1::Protocol::try_from(p.protocol) {
                Ok(k8s_cri::v1::Protocol::Udp) => "udp",
                Ok(k8s_cri::v1::Protocol::Sctp) => "sctp",
                _ => "tcp",
            }
            .into(),
            host_ip: p.host_ip.clone(),
        })
        .collect();
    Attachment {
        invocation: Invocation {
            command: "ADD",
            container_id: sandbox_id.to_string(),
            netns: netns.to_owned(),
            ifname: "eth0".into(),
            args,
            bin_dirs: runtime.opts.cni_bin_dirs.clone(),
            timeout: PLUGIN_TIMEOUT,
        },
        port_mappings,
    }
}

impl Runtime {
    /// Whether a CNI network list is configured (the NetworkReady condition).
    pub(crate) fn cni_config(&self) -> Result<NetworkList, wasmlet_cni::Error> {
        wasmlet_cni::load_first(&self.opts.cni_conf_dir)
    }

    /// Attaches a pod whose namespace is pinned at `netns` to the CNI network, if one is
    /// configured. On failure the plugins already run are undone (DEL) before returning.
    pub(crate) async fn attach_network(
        &self,
        sandbox_id: &str,
        config: &PodSandboxConfig,
        netns: &Path,
    ) -> Result<Option<CniAttachment>, Error> {
        let list = match self.cni_config() {
            Ok(list) => list,
            Err(wasmlet_cni::Error::NoConfig { .. }) => {
                tracing::debug!(sandbox.id = %sandbox_id, "no CNI config: the pod gets loopback only");
                return Ok(None);
            }
            Err(e) => return Err(e.into()),
        };
        let at = attachment(self, sandbox_id, config, netns);
        let result = wasmlet_cni::add(&list, &at).await?;
        tracing::info!(sandbox.id = %sandbox_id, network = %list.name, ips = ?result.ips(), "pod attached to the network");
        Ok(Some(CniAttachment {
            list_path: list.path,
            name: list.name,
            cni_version: list.cni_version,
            plugins: list.plugins,
            result: result.raw,
            deleted: false,
        }))
    }

    /// CNI DEL for a pod, with the list and result it was attached with. Idempotent.
    pub(crate) async fn detach_network(&self, sandbox: &SandboxRecord) -> Result<(), Error> {
        let (Some(cni), Some(netns)) = (&sandbox.cni, &sandbox.netns) else { return Ok(()) };
        if cni.deleted {
            return Ok(());
        }
        let list = NetworkList {
            path: cni.list_path.clone(),
            name: cni.name.clone(),
            cni_version: cni.cni_version.clone(),
            plugins: cni.plugins.clone(),
        };
        let at = attachment(self, &sandbox.id, &sandbox.config, netns);
        wasmlet_cni::del(&list, &at, Some(&CniResult { raw: cni.result.clone() })).await?;
        self.sandboxes.update(&sandbox.id, |s| {
            if let Some(c) = &mut s.cni {
                c.deleted = true;
            }
            true
        })?;
        tracing::info!(sandbox.id = %sandbox.id, "pod detached from the network");
        Ok(())
    }

    /// Unpins the pod's network namespace (it goes away with its last user).
    pub(crate) fn remove_netns(&self, sandbox: &SandboxRecord) -> Result<(), Error> {
        match &sandbox.netns {
            Some(pin) => wasmlet_shim::netns::remove(pin).map_err(Error::from),
            None => Ok(()),
        }
    }
}

/// The pod IPs of an attachment, IPv4 first.
pub(crate) fn ips(cni: &Option<CniAttachment>) -> Vec<String> {
    cni.as_ref().map(|c| CniResult { raw: c.result.clone() }.ips()).unwrap_or_default()
}
