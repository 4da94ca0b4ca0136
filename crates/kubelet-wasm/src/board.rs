//! The status board: the latest status of every pod the agent runs, its recent events, and the
//! manifests it could not use. Pod workers write it; the state file (for `wasmlet node pods`),
//! `wasmlet run` and cluster mode's status patches read it. Events also go to an optional
//! [`EventSink`]: cluster mode's posts them to the API server, so the pod logic stays mode-agnostic.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use k8s_openapi::api::core::v1::{ObjectReference, Pod};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

/// Events kept per pod.
const EVENTS_KEPT: usize = 30;

/// An event, as kubelet would post it (same reasons), kept locally.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub struct Event {
    pub last_timestamp: Time,
    #[serde(rename = "type")]
    pub type_: String,
    pub reason: String,
    pub message: String,
    pub count: u32,
    /// The part of the pod it is about, as kubelet's `involvedObject.fieldPath`
    /// (`spec.containers{name}`, `spec.initContainers{name}`); none for the whole pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub field_path: Option<String>,
}

/// kubelet's `fieldPath` for container `name` of `pod` (`ref.GetPartialReference`).
pub fn field_path(pod: &Pod, name: &str) -> Option<String> {
    let spec = pod.spec.as_ref()?;
    if spec.containers.iter().any(|c| c.name == name) {
        return Some(format!("spec.containers{{{name}}}"));
    }
    spec.init_containers
        .iter()
        .flatten()
        .any(|c| c.name == name)
        .then(|| format!("spec.initContainers{{{name}}}"))
}

/// One occurrence of a pod event, for an [`EventSink`]: the event as the board keeps it (its
/// `count` is the board's) and the object it regards, a Pod reference with kubelet's fieldPath.
#[derive(Debug, Clone, PartialEq)]
pub struct PodEvent {
    pub regarding: ObjectReference,
    pub type_: String,
    pub reason: String,
    pub message: String,
}

/// Where pod events go besides the board. `emit` is called with the board's lock released but on
/// the pod worker's task: it must not block (queue the event and return).
pub trait EventSink: Send + Sync + std::fmt::Debug {
    fn emit(&self, event: PodEvent);
}

/// One pod: its manifest with the status kubelet would report, where it came from, its logs.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodRecord {
    pub pod: Pod,
    pub source: String,
    pub log_dir: String,
    pub events: Vec<Event>,
}

/// A manifest that did not become a pod.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct SourceError {
    pub source: String,
    pub message: String,
}

/// Everything on the board at one moment (also the state file's content).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct Snapshot {
    pub node: String,
    pub pods: Vec<PodRecord>,
    pub errors: Vec<SourceError>,
}

#[derive(Debug, Default)]
struct Inner {
    pods: BTreeMap<String, PodRecord>,
    errors: BTreeMap<String, String>,
}

/// Shared and cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Board {
    inner: Arc<Mutex<Inner>>,
    changed: Arc<Notify>,
    version: Arc<AtomicU64>,
    sink: Arc<std::sync::OnceLock<Box<dyn EventSink>>>,
}

impl Board {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn bump(&self) {
        self.version.fetch_add(1, Ordering::Relaxed);
        self.changed.notify_waiters();
    }

    /// Counts every change; readers compare it to skip work.
    pub fn version(&self) -> u64 {
        self.version.load(Ordering::Relaxed)
    }

    /// Resolves at the next change after this call (not after its first poll).
    pub fn changed(&self) -> tokio::sync::futures::Notified<'_> {
        self.changed.notified()
    }

    /// Sets a pod's record (by uid), keeping its events unless `record.events` has some.
    pub fn put(&self, uid: &str, mut record: PodRecord) {
        let mut inner = self.lock();
        if let Some(old) = inner.pods.get(uid) {
            if record.events.is_empty() {
                record.events = old.events.clone();
            }
            if serde_json::to_value(&old.pod).ok() == serde_json::to_value(&record.pod).ok()
                && old.events == record.events
            {
                return;
            }
        }
        inner.pods.insert(uid.to_string(), record);
        drop(inner);
        self.bump();
    }

    /// Sends every event from now on to `sink` as well (once; later calls are ignored).
    pub fn set_sink(&self, sink: Box<dyn EventSink>) {
        if self.sink.set(sink).is_err() {
            tracing::warn!("an event sink is set already");
        }
    }

    /// Records an event for the pod `uid` (about its part `field_path`, see [`field_path`]),
    /// folding repeats into a count as the API server does, and passes it to the sink.
    pub fn event(
        &self,
        uid: &str,
        field_path: Option<String>,
        type_: &str,
        reason: &str,
        message: String,
    ) {
        tracing::info!(pod.uid = %uid, field_path, reason, "{message}");
        let mut inner = self.lock();
        let Some(rec) = inner.pods.get_mut(uid) else {
            return;
        };
        let regarding = self.sink.get().map(|_| ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: rec.pod.metadata.name.clone(),
            namespace: rec.pod.metadata.namespace.clone(),
            uid: Some(uid.to_string()),
            field_path: field_path.clone(),
            ..Default::default()
        });
        let now = crate::status::now();
        if let Some(e) = rec
            .events
            .iter_mut()
            .find(|e| e.reason == reason && e.message == message && e.field_path == field_path)
        {
            e.count += 1;
            e.last_timestamp = now;
        } else {
            rec.events.push(Event {
                last_timestamp: now,
                type_: type_.into(),
                reason: reason.into(),
                message: message.clone(),
                count: 1,
                field_path,
            });
            if rec.events.len() > EVENTS_KEPT {
                rec.events.remove(0);
            }
        }
        drop(inner);
        self.bump();
        if let (Some(sink), Some(regarding)) = (self.sink.get(), regarding) {
            sink.emit(PodEvent {
                regarding,
                type_: type_.into(),
                reason: reason.into(),
                message,
            });
        }
    }

    pub fn remove(&self, uid: &str) {
        if self.lock().pods.remove(uid).is_some() {
            self.bump();
        }
    }

    pub fn get(&self, uid: &str) -> Option<PodRecord> {
        self.lock().pods.get(uid).cloned()
    }

    /// Records (or with `None` clears) the error of a manifest source.
    pub fn set_error(&self, source: &str, message: Option<String>) {
        let mut inner = self.lock();
        let changed = match message {
            Some(m) => inner.errors.insert(source.to_string(), m.clone()).as_ref() != Some(&m),
            None => inner.errors.remove(source).is_some(),
        };
        drop(inner);
        if changed {
            self.bump();
        }
    }

    pub fn snapshot(&self, node: &str) -> Snapshot {
        let inner = self.lock();
        let mut pods: Vec<PodRecord> = inner.pods.values().cloned().collect();
        pods.sort_by_key(|r| crate::manifest::full_name(&r.pod));
        Snapshot {
            node: node.to_string(),
            pods,
            errors: inner
                .errors
                .iter()
                .map(|(s, m)| SourceError {
                    source: s.clone(),
                    message: m.clone(),
                })
                .collect(),
        }
    }
}
