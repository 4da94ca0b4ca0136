//! Probe workers, one per probe of a running container (kubelet's `pkg/kubelet/prober/worker.go`):
//! wait `initialDelaySeconds`, probe every `periodSeconds` within `timeoutSeconds`, and flip the
//! result only after `successThreshold` / `failureThreshold` results in a row. Liveness and
//! readiness wait for the startup probe; a failed liveness or startup probe asks the pod worker to
//! restart the container and stops probing it. Workers end with their container (they are
//! aborted when its [`ProbeSet`] is dropped).

use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use k8s_openapi::api::core::v1::{Container, Probe};
use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::probe_handlers::{Target, probe_once};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Liveness,
    Readiness,
    Startup,
}

impl Kind {
    pub fn name(self) -> &'static str {
        match self {
            Kind::Liveness => "Liveness",
            Kind::Readiness => "Readiness",
            Kind::Startup => "Startup",
        }
    }
}

/// What the probes of one container instance found so far.
#[derive(Debug)]
pub struct Results {
    /// `status.containerStatuses[].started`: true without a startup probe.
    pub started: bool,
    /// Readiness: false until a readiness probe succeeds; true without one.
    pub ready: bool,
    /// Set when liveness or startup failed: the container must be restarted, with this message.
    pub restart: Option<String>,
    /// Events (reason, message) for the pod worker to record.
    pub events: Vec<(String, String)>,
}

/// The probe workers of one container instance and their shared results.
#[derive(Debug)]
pub struct ProbeSet {
    pub container_id: String,
    pub results: Arc<Mutex<Results>>,
    tasks: Vec<JoinHandle<()>>,
}

impl Drop for ProbeSet {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

impl ProbeSet {
    /// Starts the workers of `c`'s probes for the container `target.container_id`, started at
    /// `started_at`. `notify` wakes the pod worker when a result changes.
    pub fn start(
        c: &Container,
        target: Target,
        started_at: SystemTime,
        notify: Arc<Notify>,
    ) -> ProbeSet {
        let results = Arc::new(Mutex::new(Results {
            started: c.startup_probe.is_none(),
            ready: c.readiness_probe.is_none(),
            restart: None,
            events: Vec::new(),
        }));
        let mut tasks = Vec::new();
        for (kind, probe) in [
            (Kind::Startup, &c.startup_probe),
            (Kind::Liveness, &c.liveness_probe),
            (Kind::Readiness, &c.readiness_probe),
        ] {
            if let Some(p) = probe {
                let w = Worker {
                    kind,
                    probe: p.clone(),
                    container: c.clone(),
                    target: target.clone(),
                    results: results.clone(),
                    notify: notify.clone(),
                };
                tasks.push(tokio::spawn(w.run(started_at)));
            }
        }
        ProbeSet {
            container_id: target.container_id,
            results,
            tasks,
        }
    }

    pub fn lock(&self) -> std::sync::MutexGuard<'_, Results> {
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }
}

struct Worker {
    kind: Kind,
    probe: Probe,
    container: Container,
    target: Target,
    results: Arc<Mutex<Results>>,
    notify: Arc<Notify>,
}

impl Worker {
    fn lock(&self) -> std::sync::MutexGuard<'_, Results> {
        self.results.lock().unwrap_or_else(|e| e.into_inner())
    }

    async fn run(self, started_at: SystemTime) {
        let delay =
            Duration::from_secs(self.probe.initial_delay_seconds.unwrap_or(0).max(0) as u64);
        let period = Duration::from_secs(self.probe.period_seconds.unwrap_or(10).max(1) as u64);
        let success_threshold = self.probe.success_threshold.unwrap_or(1).max(1);
        let failure_threshold = self.probe.failure_threshold.unwrap_or(3).max(1);
        let waited = SystemTime::now()
            .duration_since(started_at)
            .unwrap_or_default();
        tokio::time::sleep(delay.saturating_sub(waited)).await;
        let mut last: Option<bool> = None;
        let mut run = 0;
        let mut interval = tokio::time::interval(period);
        interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            interval.tick().await;
            if self.kind != Kind::Startup && !self.lock().started {
                continue;
            }
            let outcome = probe_once(&self.probe, &self.container, &self.target).await;
            let ok = outcome.is_ok();
            run = if last == Some(ok) { run + 1 } else { 1 };
            last = Some(ok);
            let mut r = self.lock();
            if let Err(msg) = &outcome {
                tracing::debug!(container.id = %self.target.container_id, probe = self.kind.name(), "probe failed: {msg}");
                r.events.push((
                    "Unhealthy".into(),
                    format!("{} probe failed: {msg}", self.kind.name()),
                ));
            }
            let flip = if ok {
                run >= success_threshold
            } else {
                run >= failure_threshold
            };
            if !flip {
                drop(r);
                self.notify.notify_one();
                continue;
            }
            match (self.kind, ok) {
                (Kind::Readiness, ready) => r.ready = ready,
                (Kind::Startup, true) => {
                    r.started = true;
                    drop(r);
                    self.notify.notify_one();
                    return;
                }
                (Kind::Liveness, true) => {}
                (kind, false) => {
                    let reason = if kind == Kind::Startup {
                        "failed startup probe"
                    } else {
                        "failed liveness probe"
                    };
                    r.restart = Some(format!(
                        "Container {} {reason}, will be restarted",
                        self.container.name
                    ));
                    drop(r);
                    self.notify.notify_one();
                    return;
                }
            }
            drop(r);
            self.notify.notify_one();
        }
    }
}
