//! Cluster mode: a thin adapter between the API server and the same pod logic as standalone mode.
//! It registers the Node ([`node_object`]), renews its Lease ([`lease`]) and reports NodeReady
//! from the runtime's Status every 10 s, feeds the pods bound to the node ([`pods`]) to the
//! [`Manager`] (deletion: the pod's grace period, then the final delete), and patches back the
//! statuses the pod workers put on the board. Static pods from `--manifests` run beside them,
//! shown in the API server as mirror pods ([`mirror`]). The pod events the workers record go to
//! the API server too ([`events`]).

pub mod events;
pub mod lease;
pub mod mirror;
pub mod node_object;
pub mod pods;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::path::PathBuf;
use std::time::Duration;

use futures_util::stream::StreamExt;
use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, WatchEvent};

use crate::cri::CriClient;
use crate::manager::Manager;
use crate::standalone::Folder;
use crate::{Error, Result, manifest, status};

/// The `source` of pods that came from the API server.
pub const SOURCE: &str = "api";

/// kubelet's `nodeStatusUpdateFrequency` and lease renew interval.
const HEARTBEAT: Duration = Duration::from_secs(10);

/// What cluster mode needs besides the manager.
#[derive(Debug, Clone)]
pub struct Options {
    pub kubeconfig: PathBuf,
    /// Static pods, also run in cluster mode (with mirror pods).
    pub manifests: Option<PathBuf>,
    /// `key=value:Effect` taints to register the Node with.
    pub taints: Vec<String>,
    pub poll: Duration,
}

/// A client from a kubeconfig file (its current context).
pub async fn client(kubeconfig: &std::path::Path) -> Result<kube::Client> {
    let kc = kube::config::Kubeconfig::read_from(kubeconfig)
        .map_err(|e| Error::Kubeconfig(format!("{}: {e}", kubeconfig.display())))?;
    let config =
        kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
            .await
            .map_err(|e| Error::Kubeconfig(e.to_string()))?;
    Ok(kube::Client::try_from(config)?)
}

async fn runtime_status(cri: &CriClient) -> Option<cri::RuntimeStatus> {
    cri.runtime
        .clone()
        .status(cri::StatusRequest { verbose: false })
        .await
        .ok()?
        .into_inner()
        .status
}

/// The pods of the API server and what was last patched for each.
struct ApiPods {
    client: kube::Client,
    /// uid → last status sent.
    sent: HashMap<String, serde_json::Value>,
    /// Pods being stopped after a deletion: uid → (namespace, name).
    deleting: HashMap<String, (String, String)>,
    /// The mirror pods of the static pods: the API pods that are not ours to run.
    mirrors: mirror::Mirrors,
}

impl ApiPods {
    async fn upsert(&mut self, manager: &mut Manager, mut pod: Pod) {
        if mirror::is_mirror(&pod) {
            self.mirrors.observe(&pod, false);
            return;
        }
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        let ns = pod.metadata.namespace.clone().unwrap_or_default();
        let name = pod.metadata.name.clone().unwrap_or_default();
        if pod.metadata.deletion_timestamp.is_some() {
            if manager.contains(&uid) {
                manager.remove(&uid, pod.metadata.deletion_grace_period_seconds);
                self.deleting.insert(uid, (ns, name));
            } else if !self.deleting.contains_key(&uid) {
                self.deleting.insert(uid, (ns, name));
            }
            return;
        }
        let phase = pod
            .status
            .as_ref()
            .and_then(|s| s.phase.clone())
            .unwrap_or_default();
        if !manager.contains(&uid) && (phase == status::SUCCEEDED || phase == status::FAILED) {
            return;
        }
        pods::fetch_objects(&self.client, &pod, &manager.settings().objects).await;
        manifest::set_defaults(&mut pod);
        manager.apply(pod, SOURCE);
    }

    /// After a relist: final deletes of stopped pods, status patches of changed ones.
    async fn report(&mut self, manager: &Manager) {
        let mut done = Vec::new();
        for (uid, (ns, name)) in &self.deleting {
            if !manager.contains(uid) && manager.board().get(uid).is_none() {
                match pods::delete_stopped(&self.client, ns, name, uid).await {
                    Ok(()) => done.push(uid.clone()),
                    Err(e) => tracing::warn!(pod = %format!("{ns}/{name}"), "final delete: {e}"),
                }
            }
        }
        for uid in done {
            self.deleting.remove(&uid);
            self.sent.remove(&uid);
        }
        for record in manager
            .board()
            .snapshot("")
            .pods
            .into_iter()
            .filter(|r| r.source == SOURCE)
        {
            let uid = record.pod.metadata.uid.clone().unwrap_or_default();
            let Some(st) = record.pod.status.as_ref() else {
                continue;
            };
            let value = serde_json::to_value(st).unwrap_or_default();
            if self.sent.get(&uid) == Some(&value) {
                continue;
            }
            match pods::patch_status(&self.client, &record.pod, st).await {
                Ok(()) => {
                    self.sent.insert(uid, value);
                }
                Err(e) => {
                    tracing::warn!(pod = %manifest::full_name(&record.pod), "patching the status: {e}")
                }
            }
        }
        self.mirrors.sync(manager.board()).await;
    }

    fn deleted(&mut self, manager: &mut Manager, pod: &Pod) {
        if mirror::is_mirror(pod) {
            self.mirrors.observe(pod, true);
        } else {
            manager.remove(pod.metadata.uid.as_deref().unwrap_or_default(), Some(0));
        }
    }
}

/// Runs cluster mode until `shutdown` resolves.
pub async fn run(
    mut manager: Manager,
    cri: CriClient,
    options: Options,
    shutdown: impl Future<Output = ()>,
) -> Result<()> {
    let client = client(&options.kubeconfig).await?;
    let info = manager.settings().node.clone();
    let taints = options
        .taints
        .iter()
        .map(|t| node_object::parse_taint(t))
        .collect::<Result<Vec<_>>>()?;
    let version = cri
        .runtime
        .clone()
        .version(cri::VersionRequest::default())
        .await
        .map_err(Error::cri("Version"))?
        .into_inner();
    let nodes: Api<Node> = Api::all(client.clone());
    let status = runtime_status(&cri).await;
    node_object::register(
        &nodes,
        node_object::node_object(&info, &taints),
        node_object::node_status(&info, &version, status.as_ref()),
    )
    .await?;
    let node_uid = nodes.get(&info.name).await?.metadata.uid;
    let leases = Api::namespaced(client.clone(), lease::NAMESPACE);
    lease::renew(&leases, &info.name, node_uid.as_deref()).await?;
    let (sink, events_task) = events::start(client.clone(), &info.name);
    manager.board().set_sink(Box::new(sink));

    let mut folder = options.manifests.map(Folder::new);
    if let Some(f) = &mut folder {
        f.sync(&mut manager)?;
    }
    let api: Api<Pod> = Api::all(client.clone());
    let mut state = ApiPods {
        client: client.clone(),
        sent: HashMap::new(),
        deleting: HashMap::new(),
        mirrors: mirror::Mirrors::new(client.clone(), &info.name, node_uid.clone()),
    };
    let (listed, mut rv) = pods::list_bound(&api, &info.name).await?;
    reconcile(&mut state, &mut manager, listed).await;
    let removed = manager.remove_orphans().await?;
    if removed > 0 {
        tracing::info!(
            removed,
            "removed the sandboxes of pods no longer bound to this node"
        );
    }
    let mut watch = pods::watch_bound(&api, &info.name, &rv).await?;
    let mut relist = tokio::time::interval(manager.settings().resync);
    let mut heartbeat = tokio::time::interval(HEARTBEAT);
    let mut scan = tokio::time::interval(options.poll);
    for t in [&mut relist, &mut heartbeat, &mut scan] {
        t.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    }
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        tokio::select! {
            event = watch.next() => match event {
                Some(Ok(WatchEvent::Added(p) | WatchEvent::Modified(p))) => {
                    rv = p.metadata.resource_version.clone().unwrap_or(rv);
                    state.upsert(&mut manager, p).await;
                }
                Some(Ok(WatchEvent::Deleted(p))) => {
                    rv = p.metadata.resource_version.clone().unwrap_or(rv);
                    state.deleted(&mut manager, &p);
                }
                Some(Ok(WatchEvent::Bookmark(b))) => rv = b.metadata.resource_version,
                Some(Ok(WatchEvent::Error(e))) => {
                    tracing::warn!(code = e.code, "pod watch: {}", e.message);
                    if e.code == 410 {
                        let (listed, new_rv) = pods::list_bound(&api, &info.name).await?;
                        rv = new_rv;
                        reconcile(&mut state, &mut manager, listed).await;
                    }
                    watch = pods::watch_bound(&api, &info.name, &rv).await?;
                }
                Some(Err(e)) => {
                    tracing::warn!("pod watch: {e}");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    watch = pods::watch_bound(&api, &info.name, &rv).await?;
                }
                None => watch = pods::watch_bound(&api, &info.name, &rv).await?,
            },
            _ = relist.tick() => {
                if let Err(e) = manager.relist().await {
                    tracing::warn!("relisting the runtime: {e}");
                }
                state.report(&manager).await;
            }
            _ = heartbeat.tick() => {
                if let Err(e) = lease::renew(&leases, &info.name, node_uid.as_deref()).await {
                    tracing::warn!("renewing the node lease: {e}");
                }
                let status = runtime_status(&cri).await;
                if let Err(e) = node_object::update_status(&nodes, &info.name, node_object::node_status(&info, &version, status.as_ref())).await {
                    tracing::warn!("updating the node status: {e}");
                }
            }
            _ = scan.tick(), if folder.is_some() => {
                if let Some(f) = &mut folder && let Err(e) = f.sync(&mut manager) {
                    tracing::warn!("reading the manifests: {e}");
                }
            }
            _ = &mut shutdown => break,
        }
    }
    manager.wait_stopped().await;
    events_task.abort();
    Ok(())
}

/// A full list: every listed pod applied, and our API pods that are no longer bound removed.
async fn reconcile(state: &mut ApiPods, manager: &mut Manager, listed: Vec<Pod>) {
    let (mirrors, listed): (Vec<Pod>, Vec<Pod>) = listed.into_iter().partition(mirror::is_mirror);
    state.mirrors.relisted(&mirrors);
    let present: HashSet<String> = listed
        .iter()
        .filter_map(|p| p.metadata.uid.clone())
        .collect();
    let from_api = |s: &str| s == SOURCE;
    for uid in manager.uids(Some(&from_api)) {
        if !present.contains(&uid) {
            manager.remove(&uid, Some(0));
        }
    }
    for p in listed {
        state.upsert(manager, p).await;
    }
}
