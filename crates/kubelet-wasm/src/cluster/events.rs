//! Pod events to the API server: cluster mode's [`EventSink`]. The pod workers record events on
//! the board as in every mode; this sink queues each one (never blocking a worker) and one task
//! posts them through kube's [`Recorder`] as `events.k8s.io/v1` Events, from `kubelet` on this
//! node, regarding the Pod (with kubelet's `fieldPath` for a container). The Recorder folds a
//! repeat of the same event within 6 minutes into the first one's `series` (a PATCH with the
//! count) instead of posting it again, and [`SpamFilter`] keeps client-go's limit on repeats
//! (25 at once, then one per 5 minutes), as a pod in back-off repeats its events every sync.
//! A failed post is logged and dropped.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::board::{EventSink, PodEvent};

/// kubelet's `reportingController` (`source.component` of its core/v1 events).
pub const REPORTING_CONTROLLER: &str = "kubelet";

/// Events waiting to be posted; beyond this, new ones are dropped (and logged) until the API
/// server catches up.
const QUEUE: usize = 1024;

/// The sink the board writes to: a bounded queue, drained by [`start`]'s task.
#[derive(Debug)]
pub struct ApiEvents {
    tx: mpsc::Sender<PodEvent>,
}

impl EventSink for ApiEvents {
    fn emit(&self, event: PodEvent) {
        if let Err(e) = self.tx.try_send(event) {
            let event = match &e {
                mpsc::error::TrySendError::Full(ev) | mpsc::error::TrySendError::Closed(ev) => ev,
            };
            tracing::warn!(
                pod.uid = event.regarding.uid.as_deref().unwrap_or_default(),
                reason = %event.reason,
                "event not posted: {e}"
            );
        }
    }
}

/// The sink, and the task that posts what it queues as `kubelet` on `node` until the sink is dropped.
pub fn start(client: kube::Client, node: &str) -> (ApiEvents, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<PodEvent>(QUEUE);
    let recorder = recorder(client, node);
    let task = tokio::spawn(async move {
        let mut spam = SpamFilter::default();
        while let Some(event) = rx.recv().await {
            if !spam.allow(&event, Instant::now()) {
                continue;
            }
            if let Err(e) = post(&recorder, &event).await {
                tracing::warn!(
                    pod.uid = event.regarding.uid.as_deref().unwrap_or_default(),
                    reason = %event.reason,
                    "posting the event: {e}"
                );
            }
        }
    });
    (ApiEvents { tx }, task)
}

/// A Recorder reporting as kubelet on `node` (kubelet's `reportingInstance` is the node name).
pub fn recorder(client: kube::Client, node: &str) -> Recorder {
    Recorder::new(
        client,
        Reporter {
            controller: REPORTING_CONTROLLER.into(),
            instance: Some(node.into()),
        },
    )
}

/// Posts one event (or, for a repeat, patches the count of the first one).
pub async fn post(recorder: &Recorder, event: &PodEvent) -> kube::Result<()> {
    let ev = Event {
        type_: if event.type_ == "Warning" {
            EventType::Warning
        } else {
            EventType::Normal
        },
        reason: event.reason.clone(),
        note: Some(truncate(&event.message, NOTE_MAX).to_string()),
        action: action(&event.reason, &event.message).into(),
        secondary: None,
    };
    recorder.publish(&ev, &event.regarding).await
}

/// The API server refuses a `note` over 1 kB.
const NOTE_MAX: usize = 1024;

fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// events.k8s.io requires an `action` (kubelet's core/v1 events have none): what kubelet was
/// doing. The Recorder folds events with the same regarding object, type, reason and action, so
/// events that kubelet words differently under one reason get different actions here (a
/// liveness failure is not a repeat of a readiness failure).
pub fn action(reason: &str, message: &str) -> &'static str {
    match reason {
        "Pulling" | "Pulled" | "ErrImageNeverPull" => "PullImage",
        "BackOff" if message.starts_with("Back-off pulling") => "PullImage",
        "BackOff" => "RestartContainer",
        "Failed" if message.starts_with("Failed to pull") || message.contains("ImagePull") => {
            "PullImage"
        }
        "Failed" | "Created" => "CreateContainer",
        "Started" => "StartContainer",
        "Killing" if message.starts_with("Stopping") => "StopContainer",
        "Killing" => "KillContainer",
        "Unhealthy" if message.starts_with("Liveness") => "ProbeLiveness",
        "Unhealthy" if message.starts_with("Readiness") => "ProbeReadiness",
        "Unhealthy" if message.starts_with("Startup") => "ProbeStartup",
        "Unhealthy" => "Probe",
        "FailedPreStopHook" => "RunPreStopHook",
        "FailedCreatePodSandBox" => "CreatePodSandbox",
        "FailedMount" => "MountVolume",
        r if r.starts_with("OutOf") => "Admit",
        _ => "SyncPod",
    }
}

/// client-go's `EventSourceObjectSpamFilter`: a token bucket per identical event (object, type,
/// reason, message), 25 tokens, refilled at one per 5 minutes.
#[derive(Debug, Default)]
pub struct SpamFilter {
    buckets: HashMap<SpamKey, (f64, Instant)>,
}

/// An event's identity for the spam filter: pod uid, fieldPath, type, reason, message.
type SpamKey = (String, Option<String>, String, String, String);

const SPAM_BURST: f64 = 25.0;
const SPAM_REFILL: Duration = Duration::from_secs(300);
/// Buckets kept before the full ones are forgotten.
const SPAM_KEYS: usize = 4096;

impl SpamFilter {
    /// Whether `event`, seen at `now`, may be posted; takes a token if so.
    pub fn allow(&mut self, event: &PodEvent, now: Instant) -> bool {
        let refill = |(tokens, last): (f64, Instant)| {
            let gained =
                now.saturating_duration_since(last).as_secs_f64() / SPAM_REFILL.as_secs_f64();
            (tokens + gained).min(SPAM_BURST)
        };
        if self.buckets.len() >= SPAM_KEYS {
            self.buckets.retain(|_, b| refill(*b) < SPAM_BURST);
        }
        let key = (
            event.regarding.uid.clone().unwrap_or_default(),
            event.regarding.field_path.clone(),
            event.type_.clone(),
            event.reason.clone(),
            event.message.clone(),
        );
        let bucket = self.buckets.entry(key).or_insert((SPAM_BURST, now));
        let tokens = refill(*bucket);
        if tokens < 1.0 {
            *bucket = (tokens, now);
            return false;
        }
        *bucket = (tokens - 1.0, now);
        true
    }
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::ObjectReference;

    use super::*;

    fn event(reason: &str, message: &str) -> PodEvent {
        PodEvent {
            regarding: ObjectReference {
                uid: Some("u1".into()),
                ..Default::default()
            },
            type_: "Normal".into(),
            reason: reason.into(),
            message: message.into(),
        }
    }

    #[test]
    fn repeats_are_limited_like_client_go() {
        let mut spam = SpamFilter::default();
        let t0 = Instant::now();
        let backoff = event("BackOff", "Back-off pulling image \"x\"");
        assert_eq!((0..30).filter(|_| spam.allow(&backoff, t0)).count(), 25);
        assert!(
            spam.allow(&event("Pulling", "Pulling image \"x\""), t0),
            "another event"
        );
        assert!(!spam.allow(&backoff, t0 + Duration::from_secs(200)));
        assert!(spam.allow(&backoff, t0 + Duration::from_secs(301)));
        assert!(!spam.allow(&backoff, t0 + Duration::from_secs(302)));
    }

    #[test]
    fn actions_tell_apart_what_one_reason_covers() {
        assert_eq!(
            action("Unhealthy", "Liveness probe failed: x"),
            "ProbeLiveness"
        );
        assert_eq!(
            action("Unhealthy", "Readiness probe failed: x"),
            "ProbeReadiness"
        );
        assert_eq!(action("Failed", "Error: ImagePullBackOff"), "PullImage");
        assert_eq!(action("Failed", "Error: no such file"), "CreateContainer");
        assert_eq!(
            action("BackOff", "Back-off restarting failed container"),
            "RestartContainer"
        );
        assert_eq!(action("OutOfcpu", "Pod was rejected"), "Admit");
        assert_eq!(truncate("né", 2), "n");
    }
}
