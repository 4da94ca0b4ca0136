//! The pod manager: the set of pods the node should run (by uid), whatever their source. It
//! admits a new pod against the node's allocatable CPU and memory as kubelet does (a pod that does
//! not fit is Failed with reason `OutOfcpu` / `OutOfmemory` / `OutOfpods`), starts a worker for
//! each admitted pod, forwards spec changes and deletions, relists the runtime for all workers at
//! once (kubelet's PLEG), and removes sandboxes of ours that no pod claims any more.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Instant;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Pod, PodStatus};
use tokio::task::JoinHandle;

use crate::board::{Board, PodRecord};
use crate::cri::CriClient;
use crate::resources::{PodRequests, pod_requests};
use crate::settings::Settings;
use crate::worker::{Handle, Msg, PodWorker, Relist};
use crate::{Error, Result, labels, manifest, status};

#[derive(Debug)]
struct Entry {
    pod: Pod,
    /// Where the pod came from: a manifest file's path, or `api`.
    source: String,
    requests: PodRequests,
    /// `None` when admission refused the pod.
    worker: Option<Handle>,
}

pub struct Manager {
    settings: Arc<Settings>,
    cri: CriClient,
    board: Board,
    pods: BTreeMap<String, Entry>,
    /// Workers stopping their pods after a deletion.
    stopping: Vec<JoinHandle<()>>,
}

/// Why admission refused a pod: kubelet's reason and message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rejection {
    pub reason: String,
    pub message: String,
}

impl Manager {
    pub fn new(settings: Arc<Settings>, cri: CriClient, board: Board) -> Manager {
        Manager {
            settings,
            cri,
            board,
            pods: BTreeMap::new(),
            stopping: Vec::new(),
        }
    }

    pub fn board(&self) -> &Board {
        &self.board
    }

    pub fn settings(&self) -> &Arc<Settings> {
        &self.settings
    }

    pub fn contains(&self, uid: &str) -> bool {
        self.pods.contains_key(uid)
    }

    /// The uids of the pods that came from `source` (a file path, or `api`), or all with `None`.
    pub fn uids(&self, source: Option<&dyn Fn(&str) -> bool>) -> Vec<String> {
        self.pods
            .iter()
            .filter(|(_, e)| source.is_none_or(|f| f(&e.source)))
            .map(|(uid, _)| uid.clone())
            .collect()
    }

    fn is_finished(&self, uid: &str) -> bool {
        self.board
            .get(uid)
            .and_then(|r| r.pod.status?.phase)
            .is_some_and(|p| p == status::SUCCEEDED || p == status::FAILED)
    }

    /// kubelet's resource admission (`pkg/kubelet/lifecycle/predicate.go`): the pods that are not
    /// finished plus this one must fit the node's allocatable.
    pub fn admit(&self, pod: &Pod, requests: PodRequests) -> Result<(), Rejection> {
        let node = &self.settings.node;
        let active: Vec<&Entry> = self
            .pods
            .iter()
            .filter(|(uid, e)| e.worker.is_some() && !self.is_finished(uid))
            .map(|(_, e)| e)
            .collect();
        let used_cpu: i64 = active.iter().map(|e| e.requests.cpu_millis).sum();
        let used_mem: i64 = active.iter().map(|e| e.requests.memory_bytes).sum();
        let reject = |resource: &str, requested: i64, used: i64, capacity: i64| Rejection {
            reason: format!("OutOf{resource}"),
            message: format!(
                "Pod was rejected: Node didn't have enough resource: {resource}, requested: {requested}, used: {used}, capacity: {capacity}"
            ),
        };
        if active.len() as i64 + 1 > node.max_pods {
            return Err(Rejection {
                reason: "OutOfpods".into(),
                message: format!(
                    "Pod was rejected: Node didn't have enough resource: pods, requested: 1, used: {}, capacity: {}",
                    active.len(),
                    node.max_pods
                ),
            });
        }
        if requests.cpu_millis > 0 && used_cpu + requests.cpu_millis > node.cpu_allocatable_millis {
            return Err(reject(
                "cpu",
                requests.cpu_millis,
                used_cpu,
                node.cpu_allocatable_millis,
            ));
        }
        if requests.memory_bytes > 0
            && used_mem + requests.memory_bytes > node.memory_allocatable_bytes
        {
            return Err(reject(
                "memory",
                requests.memory_bytes,
                used_mem,
                node.memory_allocatable_bytes,
            ));
        }
        let _ = pod;
        Ok(())
    }

    /// Adds a pod (defaulted and validated, `metadata.uid` set), or passes a new spec to its worker.
    pub fn apply(&mut self, pod: Pod, source: &str) {
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if let Some(e) = self.pods.get_mut(&uid) {
            if serde_json::to_value(&e.pod.spec).ok() != serde_json::to_value(&pod.spec).ok() {
                if let Some(w) = &e.worker {
                    let _ = w.tx.send(Msg::Update(Box::new(pod.clone())));
                }
                e.pod = pod;
            }
            return;
        }
        let requests = pod_requests(&pod).unwrap_or_default();
        let record = PodRecord {
            pod: pod.clone(),
            source: source.to_string(),
            log_dir: String::new(),
            events: Vec::new(),
        };
        self.board.put(&uid, record);
        match self.admit(&pod, requests) {
            Ok(()) => {
                tracing::info!(pod = %manifest::full_name(&pod), pod.uid = %uid, "pod admitted");
                let worker = PodWorker::spawn(
                    self.settings.clone(),
                    self.cri.clone(),
                    self.board.clone(),
                    pod.clone(),
                    source.to_string(),
                );
                self.pods.insert(
                    uid,
                    Entry {
                        pod,
                        source: source.to_string(),
                        requests,
                        worker: Some(worker),
                    },
                );
            }
            Err(r) => {
                tracing::warn!(pod = %manifest::full_name(&pod), reason = %r.reason, "{}", r.message);
                let mut rejected = pod.clone();
                rejected.status = Some(PodStatus {
                    phase: Some(status::FAILED.into()),
                    reason: Some(r.reason.clone()),
                    message: Some(r.message.clone()),
                    start_time: Some(status::now()),
                    ..Default::default()
                });
                self.board.put(
                    &uid,
                    PodRecord {
                        pod: rejected,
                        source: source.to_string(),
                        log_dir: String::new(),
                        events: Vec::new(),
                    },
                );
                self.board
                    .event(&uid, None, "Warning", &r.reason, r.message);
                self.pods.insert(
                    uid,
                    Entry {
                        pod,
                        source: source.to_string(),
                        requests,
                        worker: None,
                    },
                );
            }
        }
    }

    /// Deletes a pod: its worker stops it within `grace` (the pod's own period when `None`).
    pub fn remove(&mut self, uid: &str, grace: Option<i64>) {
        let Some(e) = self.pods.remove(uid) else {
            return;
        };
        tracing::info!(pod = %manifest::full_name(&e.pod), pod.uid = %uid, "pod deleted");
        match e.worker {
            Some(w) => {
                let _ = w.tx.send(Msg::Delete(grace));
                self.stopping.push(w.task);
            }
            None => self.board.remove(uid),
        }
    }

    /// Waits until every deleted pod is stopped.
    pub async fn wait_stopped(&mut self) {
        for t in self.stopping.drain(..) {
            let _ = t.await;
        }
    }

    /// Lists the runtime once and hands the result to every worker.
    pub async fn relist(&mut self) -> Result<()> {
        self.stopping.retain(|t| !t.is_finished());
        let taken = Instant::now();
        let (sandboxes, containers) = list_managed(&self.cri, &self.settings.node.name).await?;
        let relist = Arc::new(Relist {
            taken,
            sandboxes,
            containers,
        });
        for e in self.pods.values() {
            if let Some(w) = &e.worker {
                let _ = w.tx.send(Msg::Relist(relist.clone()));
            }
        }
        Ok(())
    }

    /// Stops and removes our sandboxes whose pod is not (or no longer) wanted: after a restart, the
    /// pods whose manifests disappeared meanwhile. Returns how many.
    pub async fn remove_orphans(&self) -> Result<usize> {
        let (sandboxes, _) = list_managed(&self.cri, &self.settings.node.name).await?;
        let mut removed = 0;
        let mut orphans: HashMap<String, Vec<String>> = HashMap::new();
        for s in sandboxes {
            let uid = s.labels.get(labels::POD_UID).cloned().unwrap_or_default();
            if !self.pods.contains_key(&uid) {
                orphans.entry(uid).or_default().push(s.id);
            }
        }
        for (uid, ids) in orphans {
            tracing::info!(pod.uid = %uid, "removing the sandboxes of a pod that is no longer wanted");
            for id in ids {
                let mut rt = self.cri.runtime.clone();
                rt.stop_pod_sandbox(cri::StopPodSandboxRequest {
                    pod_sandbox_id: id.clone(),
                })
                .await
                .map_err(Error::cri("StopPodSandbox"))?;
                rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id })
                    .await
                    .map_err(Error::cri("RemovePodSandbox"))?;
                removed += 1;
            }
        }
        Ok(removed)
    }
}

/// Our sandboxes (by the managed-by label) and every container of the runtime.
async fn list_managed(
    cri: &CriClient,
    node: &str,
) -> Result<(Vec<cri::PodSandbox>, Vec<cri::Container>)> {
    let filter = cri::PodSandboxFilter {
        label_selector: HashMap::from([(labels::MANAGED_BY.to_string(), node.to_string())]),
        ..Default::default()
    };
    let mut rt = cri.runtime.clone();
    let sandboxes = rt
        .list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await
        .map_err(Error::cri("ListPodSandbox"))?
        .into_inner()
        .items;
    let containers = rt
        .list_containers(cri::ListContainersRequest { filter: None })
        .await
        .map_err(Error::cri("ListContainers"))?
        .into_inner()
        .containers;
    Ok((sandboxes, containers))
}
