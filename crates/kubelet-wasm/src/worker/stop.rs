//! Stopping things, as kubelet's `killContainer` / `killPodWithSyncResult` do: a container's
//! `preStop` hook (exec through ExecSync, or HTTP GET) within the grace period, then StopContainer
//! with what is left of it (at least 2 s, kubelet's minimum); a whole pod by stopping its
//! containers concurrently, then its sandbox, then removing it and its files.

use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, LifecycleHandler};

use super::PodWorker;
use crate::cri::CriClient;
use crate::probe_handlers;

/// kubelet's `minimumGracePeriodInSeconds`.
const MIN_GRACE: i64 = 2;

/// Runs `c`'s preStop hook (if any), then stops `id` within `grace` seconds. Returns the hook's
/// failure message, if it failed.
async fn kill(
    cri: &CriClient,
    c: &Container,
    id: &str,
    pod_ip: &str,
    grace: i64,
) -> Option<String> {
    let started = Instant::now();
    let mut hook_error = None;
    if let Some(hook) = c.lifecycle.as_ref().and_then(|l| l.pre_stop.as_ref())
        && grace > 0
    {
        let budget = Duration::from_secs(grace as u64);
        match tokio::time::timeout(budget, pre_stop(cri, c, hook, id, pod_ip, grace)).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => hook_error = Some(e),
            Err(_) => {
                hook_error = Some(format!(
                    "PreStop hook did not finish within the grace period of {grace}s"
                ))
            }
        }
    }
    let left =
        (grace - started.elapsed().as_secs() as i64).max(if grace > 0 { MIN_GRACE } else { 0 });
    let req = cri::StopContainerRequest {
        container_id: id.to_string(),
        timeout: left,
    };
    if let Err(e) = cri.runtime.clone().stop_container(req).await {
        tracing::warn!(container.id = %id, "StopContainer: {}", e.message());
    }
    hook_error
}

async fn pre_stop(
    cri: &CriClient,
    c: &Container,
    hook: &LifecycleHandler,
    id: &str,
    pod_ip: &str,
    grace: i64,
) -> Result<(), String> {
    if let Some(exec) = &hook.exec {
        let req = cri::ExecSyncRequest {
            container_id: id.to_string(),
            cmd: exec.command.clone().unwrap_or_default(),
            timeout: grace,
        };
        let r = cri
            .runtime
            .clone()
            .exec_sync(req)
            .await
            .map_err(|e| format!("ExecSync: {}", e.message()))?
            .into_inner();
        if r.exit_code != 0 {
            return Err(format!(
                "command exited with {}: {}",
                r.exit_code,
                String::from_utf8_lossy(&r.stderr).trim_end()
            ));
        }
        Ok(())
    } else if let Some(h) = &hook.http_get {
        let host = h
            .host
            .clone()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| pod_ip.to_string());
        let port = match &h.port {
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::Int(p) => *p as u16,
            k8s_openapi::apimachinery::pkg::util::intstr::IntOrString::String(name) => c
                .ports
                .iter()
                .flatten()
                .find(|p| p.name.as_deref() == Some(name.as_str()))
                .map(|p| p.container_port as u16)
                .ok_or_else(|| format!("port {name:?} not found"))?,
        };
        let headers: Vec<(String, String)> = h
            .http_headers
            .iter()
            .flatten()
            .map(|x| (x.name.clone(), x.value.clone()))
            .collect();
        probe_handlers::http_get(&host, port, h.path.as_deref().unwrap_or("/"), &headers).await
    } else if let Some(s) = &hook.sleep {
        tokio::time::sleep(Duration::from_secs(s.seconds.max(0) as u64)).await;
        Ok(())
    } else {
        Ok(())
    }
}

impl PodWorker {
    fn grace(&self) -> i64 {
        self.pod
            .spec
            .as_ref()
            .and_then(|s| s.termination_grace_period_seconds)
            .unwrap_or(30)
    }

    fn spec_container(&self, name: &str) -> Option<Container> {
        let spec = self.pod.spec.as_ref()?;
        spec.containers
            .iter()
            .chain(spec.init_containers.iter().flatten())
            .find(|c| c.name == name)
            .cloned()
    }

    /// Stops one running container (liveness failure, changed spec), with the pod's grace period
    /// or the probe's own `terminationGracePeriodSeconds`.
    pub(super) async fn kill_container(&mut self, name: &str, message: String, grace: Option<i64>) {
        let Some(c) = self.spec_container(name) else {
            return;
        };
        let Some(id) = self
            .containers
            .get(name)
            .and_then(|t| t.latest.as_ref())
            .map(|l| l.id.clone())
        else {
            return;
        };
        self.event(Some(name), "Normal", "Killing", message);
        if let Some(t) = self.containers.get_mut(name) {
            t.probes = None;
        }
        let ip = self
            .sandbox
            .as_ref()
            .map(|s| s.ip.clone())
            .unwrap_or_default();
        if let Some(e) = kill(
            &self.cri,
            &c,
            &id,
            &ip,
            grace.unwrap_or_else(|| self.grace()),
        )
        .await
        {
            self.event(
                Some(name),
                "Warning",
                "FailedPreStopHook",
                format!("PreStop hook for container {name} failed: {e}"),
            );
        }
    }

    /// The pod finished (Succeeded / Failed): stop its sandbox and probes, keep its status.
    pub(super) async fn stop_finished_pod(&mut self) {
        for t in self.containers.values_mut() {
            t.probes = None;
        }
        if let Some(sb) = &self.sandbox {
            let req = cri::StopPodSandboxRequest {
                pod_sandbox_id: sb.id.clone(),
            };
            if let Err(e) = self.cri.runtime.clone().stop_pod_sandbox(req).await {
                tracing::warn!(sandbox.id = %sb.id, "StopPodSandbox: {}", e.message());
            }
        }
        self.terminal = true;
    }

    /// Deletion: every running container stopped concurrently within the grace period, then the
    /// sandboxes stopped and removed, the pod's files removed and its status taken off the board.
    pub(super) async fn terminate(&mut self, grace: Option<i64>) {
        let grace = grace.unwrap_or_else(|| self.grace()).max(0);
        tracing::info!(grace, "stopping the pod");
        let ip = self
            .sandbox
            .as_ref()
            .map(|s| s.ip.clone())
            .unwrap_or_default();
        let mut kills = Vec::new();
        for (name, t) in &mut self.containers {
            t.probes = None;
            let running = t
                .latest
                .as_ref()
                .filter(|l| l.state == cri::ContainerState::ContainerRunning as i32);
            if let (Some(l), Some(c)) = (
                running,
                self.pod.spec.as_ref().and_then(|s| {
                    s.containers
                        .iter()
                        .chain(s.init_containers.iter().flatten())
                        .find(|c| &c.name == name)
                        .cloned()
                }),
            ) {
                self.board.event(
                    &self.uid,
                    crate::board::field_path(&self.pod, name),
                    "Normal",
                    "Killing",
                    format!("Stopping container {name}"),
                );
                let (cri, id, ip) = (self.cri.clone(), l.id.clone(), ip.clone());
                kills.push(async move { (c.name.clone(), kill(&cri, &c, &id, &ip, grace).await) });
            }
        }
        for (name, hook_error) in futures_util::future::join_all(kills).await {
            if let Some(e) = hook_error {
                self.event(
                    Some(&name),
                    "Warning",
                    "FailedPreStopHook",
                    format!("PreStop hook for container {name} failed: {e}"),
                );
            }
        }
        let sandboxes = match self.list_sandboxes().await {
            Ok(list) => list.into_iter().map(|s| s.id).collect(),
            Err(e) => {
                tracing::warn!("listing the pod's sandboxes: {e}");
                self.sandbox
                    .iter()
                    .map(|s| s.id.clone())
                    .collect::<Vec<_>>()
            }
        };
        for id in sandboxes {
            let rt = &mut self.cri.runtime.clone();
            if let Err(e) = rt
                .stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await
            {
                tracing::warn!(sandbox.id = %id, "StopPodSandbox: {}", e.message());
            }
            if let Err(e) = rt
                .remove_pod_sandbox(cri::RemovePodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await
            {
                tracing::warn!(sandbox.id = %id, "RemovePodSandbox: {}", e.message());
            }
        }
        for dir in [self.settings.pod_dir(&self.uid), self.log_dir()] {
            if dir.exists()
                && let Err(e) = std::fs::remove_dir_all(&dir)
            {
                tracing::warn!("removing {}: {e}", dir.display());
            }
        }
        self.board.remove(&self.uid);
        tracing::info!("pod removed");
    }
}
