//! What the runtime says about the pod: its ready sandbox (adopting one that already runs, after
//! an agent restart), and per container name the newest instance and the one before it, with
//! their full statuses fetched only when their listed state changed. Older instances are removed
//! (kubelet's container GC keeps one dead instance per container).

use std::collections::BTreeMap;
use std::collections::HashMap;
use std::sync::Arc;

use k8s_cri::v1 as cri;

use super::{PodWorker, Relist, Sandbox};
use crate::labels;
use crate::{Error, Result};

impl PodWorker {
    pub(super) fn sandbox_filter(&self) -> cri::PodSandboxFilter {
        cri::PodSandboxFilter {
            label_selector: HashMap::from([
                (labels::POD_UID.to_string(), self.uid.clone()),
                (
                    labels::MANAGED_BY.to_string(),
                    self.settings.node.name.clone(),
                ),
            ]),
            ..Default::default()
        }
    }

    /// Every sandbox of this pod, as the runtime lists it now.
    pub(super) async fn list_sandboxes(&self) -> Result<Vec<cri::PodSandbox>> {
        let req = cri::ListPodSandboxRequest {
            filter: Some(self.sandbox_filter()),
        };
        Ok(self
            .cri
            .runtime
            .clone()
            .list_pod_sandbox(req)
            .await
            .map_err(Error::cri("ListPodSandbox"))?
            .into_inner()
            .items)
    }

    pub(super) async fn observe(&mut self, relist: Option<Arc<Relist>>) -> Result<()> {
        let (sandboxes, containers) = match relist {
            Some(r) => {
                let mine: Vec<cri::PodSandbox> = r
                    .sandboxes
                    .iter()
                    .filter(|s| s.labels.get(labels::POD_UID) == Some(&self.uid))
                    .cloned()
                    .collect();
                (mine, Some(r))
            }
            None => (self.list_sandboxes().await?, None),
        };
        let ready = sandboxes
            .iter()
            .filter(|s| s.state == cri::PodSandboxState::SandboxReady as i32)
            .max_by_key(|s| attempt_of(s));
        self.sandbox_attempts = self.sandbox_attempts.max(
            sandboxes
                .iter()
                .map(|s| attempt_of(s) + 1)
                .max()
                .unwrap_or(0),
        );
        match (ready, &self.sandbox) {
            (Some(s), Some(cur)) if s.id == cur.id => {}
            (Some(s), _) => {
                let attempt = attempt_of(s);
                let config = self.sandbox_config(attempt)?;
                let ip = self.sandbox_ip(&s.id).await?;
                if self.sandbox.is_none() {
                    tracing::info!(sandbox.id = %s.id, "adopted the running sandbox");
                }
                self.sandbox = Some(Sandbox {
                    id: s.id.clone(),
                    attempt,
                    config,
                    ip,
                });
                self.forget_instances();
            }
            (None, Some(cur)) => {
                tracing::warn!(sandbox.id = %cur.id, "the pod's sandbox is gone or not ready");
                self.sandbox = None;
                self.forget_instances();
            }
            (None, None) => {}
        }
        let Some(sandbox_id) = self.sandbox.as_ref().map(|s| s.id.clone()) else {
            return Ok(());
        };
        let listed: Vec<cri::Container> = match containers {
            Some(r) => r
                .containers
                .iter()
                .filter(|c| c.pod_sandbox_id == sandbox_id)
                .cloned()
                .collect(),
            None => {
                let filter = cri::ContainerFilter {
                    pod_sandbox_id: sandbox_id.clone(),
                    ..Default::default()
                };
                let req = cri::ListContainersRequest {
                    filter: Some(filter),
                };
                self.cri
                    .runtime
                    .clone()
                    .list_containers(req)
                    .await
                    .map_err(Error::cri("ListContainers"))?
                    .into_inner()
                    .containers
            }
        };
        let mut by_name: BTreeMap<String, Vec<cri::Container>> = BTreeMap::new();
        for c in listed {
            let name = c
                .metadata
                .as_ref()
                .map(|m| m.name.clone())
                .unwrap_or_default();
            by_name.entry(name).or_default().push(c);
        }
        for (name, t) in self.containers.iter_mut() {
            if !by_name.contains_key(name) {
                t.latest = None;
                t.status = None;
            }
        }
        for (name, mut list) in by_name {
            list.sort_by_key(|c| {
                std::cmp::Reverse((c.metadata.as_ref().map_or(0, |m| m.attempt), c.created_at))
            });
            let mut rest = list.into_iter();
            let latest = rest.next();
            let previous = rest.next();
            for old in rest {
                let req = cri::RemoveContainerRequest {
                    container_id: old.id.clone(),
                };
                if let Err(e) = self.cri.runtime.clone().remove_container(req).await {
                    tracing::warn!(container.id = %old.id, "removing an old instance of {name}: {}", e.message());
                }
            }
            let cri = self.cri.clone();
            let t = self.containers.entry(name).or_default();
            if let Some(l) = latest {
                let changed = t
                    .status
                    .as_ref()
                    .is_none_or(|s| s.id != l.id || s.state != l.state);
                if changed {
                    t.status = Some(container_status(&cri, &l.id).await?);
                }
                t.restart_count = t
                    .restart_count
                    .max(l.metadata.as_ref().map_or(0, |m| m.attempt));
                t.latest = Some(l);
            }
            if let Some(p) = previous
                && t.previous.as_ref().is_none_or(|s| s.id != p.id)
                && p.state == cri::ContainerState::ContainerExited as i32
            {
                t.previous = Some(container_status(&cri, &p.id).await?);
            }
        }
        Ok(())
    }

    /// A new or lost sandbox: what ran before becomes the containers' last state.
    fn forget_instances(&mut self) {
        for t in self.containers.values_mut() {
            if let Some(s) = t.status.take()
                && s.state == cri::ContainerState::ContainerExited as i32
            {
                t.previous = Some(s);
            }
            t.latest = None;
            t.probes = None;
        }
    }

    async fn sandbox_ip(&self, id: &str) -> Result<String> {
        let host_network = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if host_network {
            return Ok(self.settings.node.host_ip.to_string());
        }
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: false,
        };
        let status = self
            .cri
            .runtime
            .clone()
            .pod_sandbox_status(req)
            .await
            .map_err(Error::cri("PodSandboxStatus"))?
            .into_inner();
        Ok(status
            .status
            .and_then(|s| s.network)
            .map(|n| n.ip)
            .unwrap_or_default())
    }
}

fn attempt_of(s: &cri::PodSandbox) -> u32 {
    s.metadata.as_ref().map_or(0, |m| m.attempt)
}

pub(super) async fn container_status(
    cri: &crate::cri::CriClient,
    id: &str,
) -> Result<cri::ContainerStatus> {
    let req = cri::ContainerStatusRequest {
        container_id: id.to_string(),
        verbose: false,
    };
    cri.runtime
        .clone()
        .container_status(req)
        .await
        .map_err(Error::cri("ContainerStatus"))?
        .into_inner()
        .status
        .ok_or_else(|| Error::Config(format!("ContainerStatus of {id} answered without a status")))
}
