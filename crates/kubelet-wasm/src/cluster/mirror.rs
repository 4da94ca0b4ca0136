//! Mirror pods: how the API server sees the static pods of `--manifests` in cluster mode, as
//! kubelet's `MirrorClient` makes them. For each static pod a Pod of the same namespace and name
//! is created with the annotation `kubernetes.io/config.mirror` = the static pod's hash (its uid),
//! `spec.nodeName` = this node and the Node as its controlling owner; its status is patched with the
//! static pod's; it is deleted (grace 0, uid precondition) when the static pod goes, and replaced
//! when the static pod changes (another hash) or someone deletes it. Mirror pods are only a view:
//! the pod watch hands them here ([`Mirrors::observe`]), never to the manager.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference;
use kube::api::{Api, ObjectMeta, PostParams};

use super::{SOURCE, pods};
use crate::board::Board;
use crate::{Result, manifest};

/// The annotation that makes a Pod a mirror pod; its value is the static pod's hash.
pub const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";
/// The static pod's hash (kubelet's `kubernetes.io/config.hash`, our static uid).
pub const HASH_ANNOTATION: &str = "kubernetes.io/config.hash";

/// After a failed create, the mirror pod is tried again this much later.
const RETRY: Duration = Duration::from_secs(10);

fn annotation<'a>(pod: &'a Pod, key: &str) -> Option<&'a str> {
    pod.metadata
        .annotations
        .as_ref()?
        .get(key)
        .map(String::as_str)
}

/// Whether an API pod is a mirror pod (kubelet's `IsMirrorPod`).
pub fn is_mirror(pod: &Pod) -> bool {
    annotation(pod, MIRROR_ANNOTATION).is_some()
}

/// The mirror Pod of `static_pod` on `node` (whose Node object has uid `node_uid`).
pub fn mirror_of(static_pod: &Pod, node: &str, node_uid: Option<&str>) -> Pod {
    let hash = annotation(static_pod, HASH_ANNOTATION)
        .map(str::to_string)
        .or_else(|| static_pod.metadata.uid.clone())
        .unwrap_or_default();
    let mut annotations = static_pod.metadata.annotations.clone().unwrap_or_default();
    annotations.insert(MIRROR_ANNOTATION.into(), hash);
    let mut spec = static_pod.spec.clone().unwrap_or_default();
    spec.node_name = Some(node.into());
    Pod {
        metadata: ObjectMeta {
            name: static_pod.metadata.name.clone(),
            namespace: static_pod.metadata.namespace.clone(),
            labels: static_pod.metadata.labels.clone(),
            annotations: Some(annotations),
            owner_references: node_uid.map(|uid| {
                vec![OwnerReference {
                    api_version: "v1".into(),
                    kind: "Node".into(),
                    name: node.into(),
                    uid: uid.into(),
                    controller: Some(true),
                    block_owner_deletion: None,
                }]
            }),
            ..Default::default()
        },
        spec: Some(spec),
        status: None,
    }
}

/// A mirror pod the API server has.
#[derive(Debug, Clone, PartialEq)]
struct Seen {
    uid: String,
    hash: String,
    deleting: bool,
}

/// The mirror pods of this node's static pods, kept in line with the board.
pub struct Mirrors {
    client: kube::Client,
    node: String,
    node_uid: Option<String>,
    /// Mirror pods in the API server, by `namespace/name`.
    seen: HashMap<String, Seen>,
    /// API uid → the status last patched.
    sent: HashMap<String, serde_json::Value>,
    /// `namespace/name` → when to try a failed create again.
    retry: HashMap<String, Instant>,
}

impl Mirrors {
    pub fn new(client: kube::Client, node: &str, node_uid: Option<String>) -> Mirrors {
        Mirrors {
            client,
            node: node.into(),
            node_uid,
            seen: HashMap::new(),
            sent: HashMap::new(),
            retry: HashMap::new(),
        }
    }

    /// A mirror pod from the list or the watch (`deleted`: a DELETED watch event).
    pub fn observe(&mut self, pod: &Pod, deleted: bool) {
        let key = manifest::full_name(pod);
        let uid = pod.metadata.uid.clone().unwrap_or_default();
        if deleted {
            if self.seen.get(&key).is_some_and(|s| s.uid == uid) {
                self.seen.remove(&key);
            }
            self.sent.remove(&uid);
            return;
        }
        let seen = Seen {
            uid,
            hash: annotation(pod, MIRROR_ANNOTATION)
                .unwrap_or_default()
                .into(),
            deleting: pod.metadata.deletion_timestamp.is_some(),
        };
        self.seen.insert(key, seen);
    }

    /// A full list: exactly these mirror pods exist.
    pub fn relisted(&mut self, mirrors: &[Pod]) {
        self.seen.clear();
        for p in mirrors {
            self.observe(p, false);
        }
    }

    /// Brings the mirror pods in line with the static pods on the board: deletes the outdated and
    /// orphaned ones, creates the missing ones, patches the statuses that changed.
    pub async fn sync(&mut self, board: &Board) {
        let now = Instant::now();
        let statics: HashMap<String, Pod> = board
            .snapshot("")
            .pods
            .into_iter()
            .filter(|r| r.source != SOURCE)
            .map(|r| (manifest::full_name(&r.pod), r.pod))
            .collect();
        let stale: Vec<(String, Seen)> = self
            .seen
            .iter()
            .filter(|(key, seen)| {
                seen.deleting
                    || statics
                        .get(*key)
                        .is_none_or(|p| annotation(p, HASH_ANNOTATION) != Some(seen.hash.as_str()))
            })
            .map(|(k, s)| (k.clone(), s.clone()))
            .collect();
        for (key, seen) in stale {
            let (ns, name) = key.split_once('/').unwrap_or(("default", &key));
            match pods::delete_stopped(&self.client, ns, name, &seen.uid).await {
                Ok(()) => {
                    tracing::info!(pod = %key, pod.uid = %seen.uid, "deleted the mirror pod");
                    self.seen.remove(&key);
                    self.sent.remove(&seen.uid);
                }
                Err(e) => tracing::warn!(pod = %key, "deleting the mirror pod: {e}"),
            }
        }
        for (key, pod) in &statics {
            let uid = match self.seen.get(key) {
                Some(seen) => seen.uid.clone(),
                None => {
                    if self.retry.get(key).is_some_and(|at| *at > now) {
                        continue;
                    }
                    match self.create(pod).await {
                        Ok(seen) => {
                            tracing::info!(pod = %key, pod.uid = %seen.uid, "created the mirror pod");
                            self.retry.remove(key);
                            let uid = seen.uid.clone();
                            self.seen.insert(key.clone(), seen);
                            uid
                        }
                        Err(e) => {
                            tracing::warn!(pod = %key, "creating the mirror pod: {e}");
                            self.retry.insert(key.clone(), now + RETRY);
                            continue;
                        }
                    }
                }
            };
            let Some(st) = pod.status.as_ref() else {
                continue;
            };
            let value = serde_json::to_value(st).unwrap_or_default();
            if self.sent.get(&uid) == Some(&value) {
                continue;
            }
            match pods::patch_status(&self.client, pod, st).await {
                Ok(()) => {
                    self.sent.insert(uid, value);
                }
                Err(e) => tracing::warn!(pod = %key, "patching the mirror pod's status: {e}"),
            }
        }
        self.retry.retain(|key, _| statics.contains_key(key));
    }

    async fn create(&self, static_pod: &Pod) -> Result<Seen> {
        let mirror = mirror_of(static_pod, &self.node, self.node_uid.as_deref());
        let api: Api<Pod> = Api::namespaced(
            self.client.clone(),
            mirror.metadata.namespace.as_deref().unwrap_or("default"),
        );
        let created = api.create(&PostParams::default(), &mirror).await?;
        Ok(Seen {
            uid: created.metadata.uid.clone().unwrap_or_default(),
            hash: annotation(&mirror, MIRROR_ANNOTATION)
                .unwrap_or_default()
                .into(),
            deleting: false,
        })
    }
}
