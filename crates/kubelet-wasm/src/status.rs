//! A pod's status as kubelet computes it from its containers' statuses: the phase (`getPhase` in
//! `pkg/kubelet/kubelet_pods.go`), the conditions (`pkg/kubelet/status/generate.go`), and CRI
//! timestamps as API times. Pure functions over the API types.

use k8s_openapi::api::core::v1::{ContainerStatus, PodCondition, PodSpec, PodStatus};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

pub const PENDING: &str = "Pending";
pub const RUNNING: &str = "Running";
pub const SUCCEEDED: &str = "Succeeded";
pub const FAILED: &str = "Failed";

/// A CRI timestamp (nanoseconds since the epoch) as an API time; `None` for 0.
pub fn time_from_nanos(nanos: i64) -> Option<Time> {
    (nanos > 0)
        .then(|| Time(Timestamp::from_nanosecond(nanos as i128).unwrap_or(Timestamp::UNIX_EPOCH)))
}

pub fn now() -> Time {
    Time(Timestamp::now())
}

fn find<'a>(statuses: &'a [ContainerStatus], name: &str) -> Option<&'a ContainerStatus> {
    statuses.iter().find(|s| s.name == name)
}

fn last_terminated_exit(s: &ContainerStatus) -> Option<i32> {
    s.last_state
        .as_ref()?
        .terminated
        .as_ref()
        .map(|t| t.exit_code)
}

/// kubelet's `getPhase`. `terminal` is set once the pod's containers will never run again.
pub fn phase(
    spec: &PodSpec,
    init: &[ContainerStatus],
    regular: &[ContainerStatus],
) -> &'static str {
    let mut pending_init = 0;
    let mut failed_init = 0;
    for c in spec.init_containers.iter().flatten() {
        let Some(s) = find(init, &c.name) else {
            pending_init += 1;
            continue;
        };
        let state = s.state.as_ref();
        if state.is_some_and(|st| st.running.is_some()) {
            pending_init += 1;
        } else if let Some(t) = state.and_then(|st| st.terminated.as_ref()) {
            if t.exit_code != 0 {
                failed_init += 1;
            }
        } else if state.is_some_and(|st| st.waiting.is_some()) {
            match last_terminated_exit(s) {
                Some(code) if code != 0 => failed_init += 1,
                Some(_) => {}
                None => pending_init += 1,
            }
        } else {
            pending_init += 1;
        }
    }
    let (mut unknown, mut running, mut waiting, mut stopped, mut succeeded) = (0, 0, 0, 0, 0);
    for c in &spec.containers {
        let Some(s) = find(regular, &c.name) else {
            unknown += 1;
            continue;
        };
        let state = s.state.as_ref();
        if state.is_some_and(|st| st.running.is_some()) {
            running += 1;
        } else if let Some(t) = state.and_then(|st| st.terminated.as_ref()) {
            stopped += 1;
            if t.exit_code == 0 {
                succeeded += 1;
            }
        } else if state.is_some_and(|st| st.waiting.is_some()) {
            if last_terminated_exit(s).is_some() {
                stopped += 1;
            } else {
                waiting += 1;
            }
        } else {
            unknown += 1;
        }
    }
    let policy = spec.restart_policy.as_deref().unwrap_or("Always");
    if failed_init > 0 && policy == "Never" {
        return FAILED;
    }
    if pending_init > 0 || failed_init > 0 || waiting > 0 {
        return PENDING;
    }
    if running > 0 && unknown == 0 {
        return RUNNING;
    }
    if running == 0 && stopped > 0 && unknown == 0 {
        if policy == "Always" {
            return RUNNING;
        }
        if stopped == succeeded {
            return SUCCEEDED;
        }
        if policy == "Never" {
            return FAILED;
        }
        return RUNNING;
    }
    PENDING
}

/// Whether a container should be started again after it exited with `exit_code`.
pub fn should_restart(policy: &str, exit_code: i32) -> bool {
    match policy {
        "Always" => true,
        "OnFailure" => exit_code != 0,
        _ => false,
    }
}

fn condition(type_: &str, ok: bool, reason: Option<&str>, message: Option<String>) -> PodCondition {
    PodCondition {
        type_: type_.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: if ok { None } else { reason.map(Into::into) },
        message: if ok { None } else { message },
        ..Default::default()
    }
}

/// kubelet's pod conditions, keeping each one's previous transition time while it holds.
pub fn conditions(
    status: &PodStatus,
    spec: &PodSpec,
    sandbox_ready: bool,
    previous: &[PodCondition],
) -> Vec<PodCondition> {
    let phase = status.phase.as_deref().unwrap_or(PENDING);
    let init = status
        .init_container_statuses
        .as_deref()
        .unwrap_or_default();
    let regular = status.container_statuses.as_deref().unwrap_or_default();
    let incomplete: Vec<&str> = spec
        .init_containers
        .iter()
        .flatten()
        .filter(|c| {
            !find(init, &c.name)
                .and_then(|s| s.state.as_ref()?.terminated.as_ref())
                .is_some_and(|t| t.exit_code == 0)
        })
        .map(|c| c.name.as_str())
        .collect();
    let initialized = incomplete.is_empty() || phase == SUCCEEDED;
    let unready: Vec<&str> = spec
        .containers
        .iter()
        .filter(|c| !find(regular, &c.name).is_some_and(|s| s.ready))
        .map(|c| c.name.as_str())
        .collect();
    let (not_ready_reason, not_ready_message) = if phase == SUCCEEDED || phase == FAILED {
        ("PodCompleted", None)
    } else {
        (
            "ContainersNotReady",
            Some(format!(
                "containers with unready status: [{}]",
                unready.join(" ")
            )),
        )
    };
    let ready = unready.is_empty() && phase == RUNNING;
    let mut out = vec![
        condition("PodReadyToStartContainers", sandbox_ready, None, None),
        condition(
            "Initialized",
            initialized,
            Some("ContainersNotInitialized"),
            Some(format!(
                "containers with incomplete status: [{}]",
                incomplete.join(" ")
            )),
        ),
        condition(
            "Ready",
            ready,
            Some(not_ready_reason),
            not_ready_message.clone(),
        ),
        condition(
            "ContainersReady",
            ready,
            Some(not_ready_reason),
            not_ready_message,
        ),
        condition("PodScheduled", true, None, None),
    ];
    for c in &mut out {
        let prev = previous
            .iter()
            .find(|p| p.type_ == c.type_ && p.status == c.status);
        c.last_transition_time = prev
            .and_then(|p| p.last_transition_time.clone())
            .or_else(|| Some(now()));
    }
    out
}

#[cfg(test)]
mod tests {
    use k8s_openapi::api::core::v1::{
        Container, ContainerState, ContainerStateRunning, ContainerStateTerminated,
        ContainerStateWaiting,
    };

    use super::*;

    fn spec(policy: &str, init: &[&str], regular: &[&str]) -> PodSpec {
        let c = |n: &&str| Container {
            name: n.to_string(),
            ..Default::default()
        };
        PodSpec {
            restart_policy: Some(policy.into()),
            init_containers: Some(init.iter().map(c).collect()),
            containers: regular.iter().map(c).collect(),
            ..Default::default()
        }
    }

    fn running(name: &str) -> ContainerStatus {
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                running: Some(ContainerStateRunning::default()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn exited(name: &str, code: i32) -> ContainerStatus {
        let t = ContainerStateTerminated {
            exit_code: code,
            ..Default::default()
        };
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                terminated: Some(t),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    fn backing_off(name: &str, last_code: i32) -> ContainerStatus {
        let w = ContainerStateWaiting {
            reason: Some("CrashLoopBackOff".into()),
            ..Default::default()
        };
        let t = ContainerStateTerminated {
            exit_code: last_code,
            ..Default::default()
        };
        ContainerStatus {
            name: name.into(),
            state: Some(ContainerState {
                waiting: Some(w),
                ..Default::default()
            }),
            last_state: Some(ContainerState {
                terminated: Some(t),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn phases_like_kubelet() {
        let s = spec("Always", &[], &["a", "b"]);
        assert_eq!(phase(&s, &[], &[]), PENDING);
        assert_eq!(phase(&s, &[], &[running("a")]), PENDING, "b unknown");
        assert_eq!(phase(&s, &[], &[running("a"), running("b")]), RUNNING);
        assert_eq!(
            phase(&s, &[], &[running("a"), backing_off("b", 1)]),
            RUNNING
        );
        assert_eq!(
            phase(&s, &[], &[exited("a", 0), exited("b", 0)]),
            RUNNING,
            "Always restarts them"
        );
        let never = spec("Never", &[], &["a", "b"]);
        assert_eq!(
            phase(&never, &[], &[exited("a", 0), exited("b", 0)]),
            SUCCEEDED
        );
        assert_eq!(
            phase(&never, &[], &[exited("a", 0), exited("b", 3)]),
            FAILED
        );
        let on_failure = spec("OnFailure", &[], &["a"]);
        assert_eq!(phase(&on_failure, &[], &[exited("a", 0)]), SUCCEEDED);
        assert_eq!(phase(&on_failure, &[], &[backing_off("a", 1)]), RUNNING);
        let init = spec("Never", &["i"], &["a"]);
        assert_eq!(phase(&init, &[running("i")], &[]), PENDING);
        assert_eq!(phase(&init, &[exited("i", 2)], &[]), FAILED);
        assert_eq!(
            phase(&spec("Always", &["i"], &["a"]), &[backing_off("i", 2)], &[]),
            PENDING
        );
    }

    #[test]
    fn conditions_name_what_is_missing() {
        let s = spec("Always", &["i"], &["a", "b"]);
        let mut a = running("a");
        a.ready = true;
        let status = PodStatus {
            phase: Some(RUNNING.into()),
            init_container_statuses: Some(vec![exited("i", 0)]),
            container_statuses: Some(vec![a, running("b")]),
            ..Default::default()
        };
        let cs = conditions(&status, &s, true, &[]);
        let get = |t: &str| cs.iter().find(|c| c.type_ == t).unwrap().clone();
        assert_eq!(get("Initialized").status, "True");
        assert_eq!(get("Ready").status, "False");
        assert_eq!(
            get("Ready").message.as_deref(),
            Some("containers with unready status: [b]")
        );
        let again = conditions(&status, &s, true, &cs);
        assert_eq!(again[2].last_transition_time, cs[2].last_transition_time);
    }
}
