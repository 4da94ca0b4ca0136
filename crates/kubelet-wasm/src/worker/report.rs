//! The pod's status as kubelet reports it (`generateAPIPodStatus` / `convertToAPIContainerStatuses`):
//! each container's state with kubelet's reasons, its last termination, restart count, started
//! and ready from the probes; then phase, conditions, IPs, start time and QoS class.

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
    ContainerStateWaiting, ContainerStatus, HostIP, Pod, PodIP, PodStatus,
};

use super::{PodWorker, Tracked};
use crate::board::PodRecord;
use crate::resources;
use crate::status::{self, time_from_nanos};

fn terminated(s: &cri::ContainerStatus, runtime: &str) -> ContainerState {
    let reason = if !s.reason.is_empty() {
        s.reason.clone()
    } else if s.exit_code == 0 {
        "Completed".into()
    } else {
        "Error".into()
    };
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            container_id: Some(format!("{runtime}://{}", s.id)),
            exit_code: s.exit_code,
            reason: Some(reason),
            message: Some(s.message.clone()).filter(|m| !m.is_empty()),
            started_at: time_from_nanos(s.started_at),
            finished_at: time_from_nanos(s.finished_at),
            signal: None,
        }),
        ..Default::default()
    }
}

fn waiting(reason: &str, message: Option<String>) -> ContainerState {
    ContainerState {
        waiting: Some(ContainerStateWaiting {
            reason: Some(reason.into()),
            message: message.filter(|m| !m.is_empty()),
        }),
        ..Default::default()
    }
}

fn container_status(
    c: &Container,
    t: Option<&Tracked>,
    runtime: &str,
    default_waiting: &str,
) -> ContainerStatus {
    let latest = t.and_then(|t| t.status.as_ref());
    let exited = latest.filter(|s| s.state == cri::ContainerState::ContainerExited as i32);
    let mut out = ContainerStatus {
        name: c.name.clone(),
        image: c.image.clone().unwrap_or_default(),
        image_id: latest.map(|s| s.image_ref.clone()).unwrap_or_default(),
        container_id: latest.map(|s| format!("{runtime}://{}", s.id)),
        restart_count: t.map_or(0, |t| t.restart_count as i32),
        started: Some(false),
        ..Default::default()
    };
    let (probe_started, probe_ready) = t.and_then(|t| t.probes.as_ref()).map_or(
        (c.startup_probe.is_none(), c.readiness_probe.is_none()),
        |p| {
            let r = p.lock();
            (r.started, r.ready)
        },
    );
    if let Some((reason, message)) = t.and_then(|t| t.waiting.clone()) {
        out.state = Some(waiting(&reason, Some(message)));
        let last = exited.or_else(|| t.and_then(|t| t.previous.as_ref()));
        out.last_state = last.map(|s| terminated(s, runtime));
        return out;
    }
    out.last_state = t
        .and_then(|t| t.previous.as_ref())
        .map(|s| terminated(s, runtime));
    out.state = Some(match latest {
        None => waiting(default_waiting, None),
        Some(s) if s.state == cri::ContainerState::ContainerRunning as i32 => {
            out.started = Some(probe_started);
            out.ready = probe_started && probe_ready;
            ContainerState {
                running: Some(ContainerStateRunning {
                    started_at: time_from_nanos(s.started_at),
                }),
                ..Default::default()
            }
        }
        Some(s) if s.state == cri::ContainerState::ContainerExited as i32 => terminated(s, runtime),
        Some(_) => waiting("ContainerCreating", None),
    });
    out
}

impl PodWorker {
    /// The pod's status now.
    pub(super) fn pod_status(&self) -> PodStatus {
        let Some(spec) = self.pod.spec.as_ref() else {
            return PodStatus::default();
        };
        let runtime = &self.settings.runtime_name;
        let init: Vec<ContainerStatus> = spec
            .init_containers
            .iter()
            .flatten()
            .map(|c| container_status(c, self.containers.get(&c.name), runtime, "PodInitializing"))
            .collect();
        let init_done = spec.init_containers.as_ref().is_none_or(|v| v.is_empty())
            || init.iter().all(|s| {
                s.state
                    .as_ref()
                    .and_then(|st| st.terminated.as_ref())
                    .is_some_and(|t| t.exit_code == 0)
            });
        let regular: Vec<ContainerStatus> = spec
            .containers
            .iter()
            .map(|c| {
                let default = if init_done {
                    "ContainerCreating"
                } else {
                    "PodInitializing"
                };
                container_status(c, self.containers.get(&c.name), runtime, default)
            })
            .collect();
        let phase = status::phase(spec, &init, &regular);
        let pod_ip = self
            .sandbox
            .as_ref()
            .map(|s| s.ip.clone())
            .filter(|ip| !ip.is_empty());
        let host_ip = self.settings.node.host_ip.to_string();
        let mut st = PodStatus {
            phase: Some(phase.into()),
            host_ip: Some(host_ip.clone()),
            host_ips: Some(vec![HostIP { ip: host_ip }]),
            pod_ip: pod_ip.clone(),
            pod_ips: pod_ip.map(|ip| vec![PodIP { ip }]),
            start_time: self.start_time.clone(),
            qos_class: resources::qos(&self.pod)
                .ok()
                .map(|q| resources::qos_name(q).into()),
            init_container_statuses: (!init.is_empty()).then_some(init),
            container_statuses: Some(regular),
            ..Default::default()
        };
        st.conditions = Some(status::conditions(
            &st,
            spec,
            self.sandbox.is_some() && !self.terminal,
            &self.conditions,
        ));
        st
    }

    /// Puts the current status on the board.
    pub(super) fn publish(&mut self) {
        let status = self.pod_status();
        self.conditions = status.conditions.clone().unwrap_or_default();
        let pod = Pod {
            metadata: self.pod.metadata.clone(),
            spec: self.pod.spec.clone(),
            status: Some(status),
        };
        self.board.put(
            &self.uid,
            PodRecord {
                pod,
                source: self.source.clone(),
                log_dir: self.log_dir().display().to_string(),
                events: Vec::new(),
            },
        );
    }
}
