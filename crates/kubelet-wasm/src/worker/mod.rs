//! A pod worker: one task per pod that brings the runtime in line with the pod's spec (kubelet's
//! `podWorkers` + `SyncPod`). It wakes on the agent's relist, on probe results, at the end of a
//! back-off, and on messages (a changed spec, deletion), and publishes the pod's status to the
//! board after every pass. The pass itself is in `sync`, what it reads from the runtime in
//! `observe`, starting things in `start`, stopping them in `stop`, the status in `report`.

mod observe;
mod report;
mod start;
mod stop;
mod sync;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Pod, PodCondition};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;

use crate::backoff::Backoff;
use crate::board::Board;
use crate::cri::CriClient;
use crate::probe::ProbeSet;
use crate::settings::Settings;

/// The runtime's view of every managed pod at one moment (one ListPodSandbox + one ListContainers).
#[derive(Debug, Clone)]
pub struct Relist {
    pub taken: Instant,
    pub sandboxes: Vec<cri::PodSandbox>,
    pub containers: Vec<cri::Container>,
}

/// What the agent tells a pod worker.
#[derive(Debug)]
pub enum Msg {
    Relist(Arc<Relist>),
    /// The pod's spec changed (same uid): containers whose spec changed are restarted.
    Update(Box<Pod>),
    /// Stop the pod and remove it, within this grace period (the pod's own when `None`).
    Delete(Option<i64>),
}

/// The agent's handle on a pod worker.
#[derive(Debug)]
pub struct Handle {
    pub tx: mpsc::UnboundedSender<Msg>,
    pub task: JoinHandle<()>,
}

/// What is known of one container of the pod (by name).
#[derive(Debug, Default)]
struct Tracked {
    /// The newest instance in the current sandbox, as listed.
    latest: Option<cri::Container>,
    /// Its full status (refreshed when the listed state changes).
    status: Option<cri::ContainerStatus>,
    /// The instance before it, once exited (`lastState`).
    previous: Option<cri::ContainerStatus>,
    /// Why it is waiting, when we decided it does (ErrImagePull, CrashLoopBackOff, …).
    waiting: Option<(String, String)>,
    restart_count: u32,
    probes: Option<ProbeSet>,
}

#[derive(Debug, Clone)]
struct Sandbox {
    id: String,
    /// Its `metadata.attempt` (kept for the logs and for debugging).
    #[allow(dead_code, reason = "shown by Debug")]
    attempt: u32,
    config: cri::PodSandboxConfig,
    ip: String,
}

pub struct PodWorker {
    settings: Arc<Settings>,
    cri: CriClient,
    board: Board,
    pod: Pod,
    uid: String,
    source: String,
    sandbox: Option<Sandbox>,
    /// One more than the highest sandbox attempt seen: the next sandbox's attempt.
    sandbox_attempts: u32,
    containers: BTreeMap<String, Tracked>,
    restart_backoff: Backoff,
    pull_backoff: Backoff,
    probe_notify: Arc<Notify>,
    /// When this worker last changed the runtime: relists taken before are stale.
    last_action: Instant,
    start_time: Option<Time>,
    conditions: Vec<PodCondition>,
    /// Set once the pod's containers will not run again (Succeeded / Failed): the sandbox is stopped.
    terminal: bool,
    /// Volumes made for the pod, by name.
    volumes: Option<BTreeMap<String, PathBuf>>,
}

impl PodWorker {
    /// Starts the worker of `pod` (defaulted, validated, admitted, with a uid).
    pub fn spawn(
        settings: Arc<Settings>,
        cri: CriClient,
        board: Board,
        pod: Pod,
        source: String,
    ) -> Handle {
        let (tx, rx) = mpsc::unbounded_channel();
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let worker = PodWorker {
            restart_backoff: Backoff::new(settings.restart_backoff),
            pull_backoff: Backoff::new(settings.pull_backoff),
            settings,
            cri,
            board,
            pod,
            uid,
            source,
            sandbox: None,
            sandbox_attempts: 0,
            containers: BTreeMap::new(),
            probe_notify: Arc::new(Notify::new()),
            last_action: Instant::now(),
            start_time: None,
            conditions: Vec::new(),
            terminal: false,
            volumes: None,
        };
        let span = tracing::info_span!("pod", pod = %worker.name(), pod.uid = %worker.uid);
        let task = tokio::spawn(tracing::Instrument::instrument(worker.run(rx), span));
        Handle { tx, task }
    }

    fn name(&self) -> String {
        crate::manifest::full_name(&self.pod)
    }

    /// Records an event about the pod, or with `container` about that container of it.
    fn event(&self, container: Option<&str>, type_: &str, reason: &str, message: String) {
        let field_path = container.and_then(|c| crate::board::field_path(&self.pod, c));
        self.board
            .event(&self.uid, field_path, type_, reason, message);
    }

    async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Msg>) {
        let mut relist: Option<Arc<Relist>> = None;
        loop {
            let wake = self.pass(relist.take()).await;
            let notified = self.probe_notify.clone();
            tokio::select! {
                msg = rx.recv() => match msg {
                    Some(Msg::Relist(r)) => relist = Some(r),
                    Some(Msg::Update(pod)) => self.update(*pod),
                    Some(Msg::Delete(grace)) => {
                        self.terminate(grace).await;
                        return;
                    }
                    None => return,
                },
                _ = notified.notified() => {}
                _ = tokio::time::sleep(wake) => {}
            }
        }
    }

    /// One or more sync passes until nothing more is to be done now; publishes the status.
    /// Returns how long to sleep at most before the next pass.
    async fn pass(&mut self, relist: Option<Arc<Relist>>) -> Duration {
        let mut relist = relist.filter(|r| r.taken > self.last_action);
        let mut wake = self.settings.resync * 10;
        for _ in 0..4 {
            if !self.terminal
                && let Err(e) = self.observe(relist.take()).await
            {
                tracing::warn!("reading the pod's state from the runtime: {e}");
                wake = self.settings.resync;
                break;
            }
            let outcome = self.sync().await;
            wake = outcome.wake.unwrap_or(self.settings.resync * 10);
            self.publish();
            if !outcome.acted {
                break;
            }
            self.last_action = Instant::now();
        }
        wake
    }

    /// A new spec for the same pod: containers whose spec hash changed are killed and started anew.
    fn update(&mut self, pod: Pod) {
        tracing::info!("pod spec updated");
        self.pod = pod;
    }
}
