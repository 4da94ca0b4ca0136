//! One sync pass (kubelet's `computePodActions` + `SyncPod`, one step at a time): a sandbox if
//! there is none; init containers one after the other, each to success; then every regular
//! container, restarted per `restartPolicy` with the crash-loop back-off, or killed when its
//! liveness/startup probe failed or its spec changed; and, once the pod can never run again,
//! its sandbox stopped.

use std::time::{Duration, SystemTime};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Container;

use super::start::container_hash;
use super::{PodWorker, Tracked};
use crate::labels;
use crate::probe::ProbeSet;
use crate::probe_handlers::Target;
use crate::status::{self, should_restart};

/// What a pass did, and when the next one is due at the latest.
pub(super) struct Outcome {
    pub acted: bool,
    pub wake: Option<Duration>,
}

/// Where a container is, as far as deciding goes.
enum Phase {
    Missing,
    Created(String),
    Running(String),
    Exited { code: i32, finished: SystemTime },
}

fn phase_of(t: Option<&Tracked>) -> Phase {
    let Some(s) = t.and_then(|t| t.status.as_ref()) else {
        return Phase::Missing;
    };
    match cri::ContainerState::try_from(s.state) {
        Ok(cri::ContainerState::ContainerCreated) => Phase::Created(s.id.clone()),
        Ok(cri::ContainerState::ContainerRunning) => Phase::Running(s.id.clone()),
        Ok(cri::ContainerState::ContainerExited) => Phase::Exited {
            code: s.exit_code,
            finished: SystemTime::UNIX_EPOCH + Duration::from_nanos(s.finished_at.max(0) as u64),
        },
        _ => Phase::Missing,
    }
}

fn min_wake(a: Option<Duration>, b: Duration) -> Option<Duration> {
    Some(a.map_or(b, |a| a.min(b)))
}

impl PodWorker {
    pub(super) async fn sync(&mut self) -> Outcome {
        let mut out = Outcome {
            acted: false,
            wake: Some(self.settings.resync * 10),
        };
        if self.terminal {
            out.wake = None;
            return out;
        }
        if self.start_time.is_none() {
            self.start_time = Some(status::now());
        }
        if self.sandbox.is_none() {
            match self.create_sandbox().await {
                Ok(()) => out.acted = true,
                Err(e) => {
                    self.event(
                        None,
                        "Warning",
                        "FailedCreatePodSandBox",
                        format!("Failed to create pod sandbox: {e}"),
                    );
                    out.wake = Some(self.settings.resync.max(Duration::from_secs(1)));
                }
            }
            return out;
        }
        let Some(spec) = self.pod.spec.clone() else {
            return out;
        };
        let policy = spec
            .restart_policy
            .clone()
            .unwrap_or_else(|| "Always".into());
        // Init containers, in order, each to success before the next.
        for c in spec.init_containers.iter().flatten() {
            match phase_of(self.containers.get(&c.name)) {
                Phase::Exited { code: 0, .. } => continue,
                Phase::Exited { code, finished } => {
                    if policy != "Never" {
                        self.restart_with_backoff(c, true, code, finished, &mut out)
                            .await;
                    }
                    return self.finish(out).await;
                }
                Phase::Missing => self.start(c, true, &mut out).await,
                Phase::Created(id) => self.start_created(&id, &mut out).await,
                Phase::Running(_) => {}
            }
            return out;
        }
        for c in &spec.containers {
            match phase_of(self.containers.get(&c.name)) {
                Phase::Missing => self.start(c, false, &mut out).await,
                Phase::Created(id) => self.start_created(&id, &mut out).await,
                Phase::Running(id) => self.check_running(c, &id, &mut out).await,
                Phase::Exited { code, finished } => {
                    if should_restart(&policy, code) {
                        self.restart_with_backoff(c, false, code, finished, &mut out)
                            .await;
                    }
                }
            }
        }
        self.finish(out).await
    }

    /// When no container will ever run again, the pod is finished: its sandbox is stopped.
    async fn finish(&mut self, out: Outcome) -> Outcome {
        let status = self.pod_status();
        let phase = status.phase.as_deref().unwrap_or_default();
        if phase == status::SUCCEEDED || phase == status::FAILED {
            tracing::info!(phase, "pod finished");
            self.stop_finished_pod().await;
            return Outcome {
                acted: true,
                wake: None,
            };
        }
        out
    }

    async fn start(&mut self, c: &Container, init: bool, out: &mut Outcome) {
        match self.start_container(c, init).await {
            Ok(()) => out.acted = true,
            Err(e) => {
                tracing::warn!(container = %c.name, reason = e.reason, "{}", e.message);
                let t = self.containers.entry(c.name.clone()).or_default();
                t.waiting = Some((e.reason.to_string(), e.message));
                let retry = if e.reason == "ImagePullBackOff" || e.reason == "ErrImagePull" {
                    self.pull_backoff
                        .current(c.image.as_deref().unwrap_or_default())
                } else {
                    self.settings.resync.max(Duration::from_secs(1))
                };
                out.wake = min_wake(out.wake, retry.min(self.settings.resync * 10));
            }
        }
    }

    async fn start_created(&mut self, id: &str, out: &mut Outcome) {
        match self
            .cri
            .runtime
            .clone()
            .start_container(cri::StartContainerRequest {
                container_id: id.to_string(),
            })
            .await
        {
            Ok(_) => out.acted = true,
            Err(e) => {
                tracing::warn!(container.id = %id, "StartContainer: {}", e.message());
                out.wake = min_wake(out.wake, self.settings.resync);
            }
        }
    }

    /// An exited container that the policy restarts: at once, or after its back-off.
    async fn restart_with_backoff(
        &mut self,
        c: &Container,
        init: bool,
        code: i32,
        finished: SystemTime,
        out: &mut Outcome,
    ) {
        let key = c.name.clone();
        let now = SystemTime::now();
        if let Some(left) = self.restart_backoff.remaining(&key, finished, now) {
            let backoff = self.restart_backoff.current(&key);
            let m = &self.pod.metadata;
            let message = format!(
                "back-off {} restarting failed container={} pod={}_{}({})",
                humantime(backoff),
                c.name,
                m.name.as_deref().unwrap_or(""),
                m.namespace.as_deref().unwrap_or(""),
                self.uid
            );
            let t = self.containers.entry(key).or_default();
            if t.waiting
                .as_ref()
                .is_none_or(|(r, _)| r != "CrashLoopBackOff")
            {
                self.event(
                    Some(&c.name),
                    "Warning",
                    "BackOff",
                    "Back-off restarting failed container".into(),
                );
            }
            let t = self.containers.entry(c.name.clone()).or_default();
            t.waiting = Some(("CrashLoopBackOff".into(), message));
            out.wake = min_wake(out.wake, left + Duration::from_millis(5));
            return;
        }
        tracing::info!(container = %c.name, exit_code = code, "restarting the container");
        self.restart_backoff.next(&key, finished);
        self.start(c, init, out).await;
    }

    /// A running container: start its probes once, act on a failed liveness/startup probe or a
    /// changed spec, and collect probe events.
    async fn check_running(&mut self, c: &Container, id: &str, out: &mut Outcome) {
        let pod_ip = self
            .sandbox
            .as_ref()
            .map(|s| s.ip.clone())
            .unwrap_or_default();
        let has_probes =
            c.liveness_probe.is_some() || c.readiness_probe.is_some() || c.startup_probe.is_some();
        let notify = self.probe_notify.clone();
        let cri = self.cri.clone();
        let t = self.containers.entry(c.name.clone()).or_default();
        t.waiting = None;
        if has_probes && t.probes.as_ref().is_none_or(|p| p.container_id != id) {
            let started = t.status.as_ref().map_or(0, |s| s.started_at);
            let started = SystemTime::UNIX_EPOCH + Duration::from_nanos(started.max(0) as u64);
            t.probes = Some(ProbeSet::start(
                c,
                Target {
                    cri,
                    container_id: id.to_string(),
                    pod_ip,
                },
                started,
                notify,
            ));
        }
        let (events, restart) = match &t.probes {
            Some(p) => {
                let mut r = p.lock();
                (std::mem::take(&mut r.events), r.restart.take())
            }
            None => (Vec::new(), None),
        };
        let spec_hash = t
            .latest
            .as_ref()
            .and_then(|l| l.annotations.get(labels::CONTAINER_HASH).cloned());
        for (reason, message) in events {
            self.event(Some(&c.name), "Warning", &reason, message);
        }
        if let Some(message) = restart {
            let grace = c
                .liveness_probe
                .as_ref()
                .and_then(|p| p.termination_grace_period_seconds);
            self.kill_container(&c.name, message, grace).await;
            out.acted = true;
        } else if spec_hash.is_some_and(|h| h != container_hash(c)) {
            self.kill_container(
                &c.name,
                format!("Container {} definition changed, will be restarted", c.name),
                None,
            )
            .await;
            out.acted = true;
        }
    }
}

/// Go's duration format for whole seconds and minutes (`10s`, `1m20s`, `5m0s`), as in kubelet's messages.
fn humantime(d: Duration) -> String {
    let s = d.as_secs();
    if s >= 60 {
        format!("{}m{}s", s / 60, s % 60)
    } else if d.subsec_millis() != 0 && s == 0 {
        format!("{}ms", d.as_millis())
    } else {
        format!("{s}s")
    }
}
