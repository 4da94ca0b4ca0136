//! Surviving crashes: pods outlive a `kill -9` of the daemon (a restarted daemon re-attaches and
//! learns of exits it missed), and a `kill -9` of one pod's shim affects that pod only.

use std::path::Path;
use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

async fn wait_for_more_ticks(log: &Path, than: usize, what: &str) -> usize {
    eventually(Duration::from_secs(10), what, || async {
        let n = stdout_lines(log).len();
        if n > than { Ok(n) } else { Err(format!("{n} ticks, want more than {than}")) }
    })
    .await
}

/// `kill -9` of the shim PodSandboxStatus (verbose) names for `pod`.
async fn kill_shim_of(d: &Daemon, pod: &str) {
    let verbose =
        d.rt().pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: pod.into(), verbose: true }).await.unwrap().into_inner();
    let info: serde_json::Value = serde_json::from_str(verbose.info.get("info").expect("verbose PodSandboxStatus has info")).unwrap();
    let pid = info["shimPid"].as_u64().unwrap_or_else(|| panic!("no shimPid in {info}")) as u32;
    // Never signal a process that is not one of this test's shims.
    assert!(d.shim_pids().contains(&pid), "shimPid {pid} is not one of this test's shims {:?}", d.shim_pids());
    kill(Pid::from_raw(pid as i32), Signal::SIGKILL).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_daemon_reattaches_to_running_pods() {
    let mut d = Daemon::start("restart", &[LOGGER_P1]).await;
    let sandbox = d.run_pod("restart").await;
    let endless = d.create(&sandbox, "endless", LOGGER_P1.image, &["100"], &[], vec![]).await;
    // 15 ticks 100 ms apart: ends about 1.4 s after it starts, while the daemon is down.
    let finite = d.create(&sandbox, "finite", LOGGER_P1.image, &["100", "15"], &[], vec![]).await;
    d.start_container(&endless).await;
    d.start_container(&finite).await;
    d.kill9().await;

    let (endless_log, finite_log) = (d.log_of(&sandbox, "endless"), d.log_of(&sandbox, "finite"));
    eventually(Duration::from_secs(10), "the finite logger's last tick (daemon down)", || async {
        let lines = stdout_lines(&finite_log);
        if lines.last().map(String::as_str) == Some("tick 15") { Ok(()) } else { Err(format!("{lines:?}")) }
    })
    .await;
    assert_eq!(d.shim_pids().len(), 1, "the pod's shim must outlive the daemon");

    d.restart().await;
    let before = stdout_lines(&endless_log).len();
    let finite_status = d.wait_exited(&finite, Duration::from_secs(5)).await;
    assert_eq!((finite_status.exit_code, finite_status.reason.as_str()), (0, "Completed"), "{finite_status:?}");
    assert!(finite_status.finished_at > finite_status.started_at && finite_status.started_at > 0, "{finite_status:?}");
    let last_tick = read_log(&finite_log).last().unwrap().time;
    assert!(
        finite_status.finished_at >= last_tick,
        "finished_at {} before the last tick was logged at {last_tick}",
        finite_status.finished_at
    );

    let listed = d.rt().list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers;
    let state_of = |id: &str| listed.iter().find(|c| c.id == id).map(|c| state_name(c.state)).unwrap_or_else(|| "missing".into());
    assert_eq!(state_of(&endless), "CONTAINER_RUNNING", "{listed:?}");
    assert_eq!(state_of(&finite), "CONTAINER_EXITED", "{listed:?}");
    let pod = d
        .rt()
        .pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: sandbox.clone(), verbose: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(pod.status.unwrap().state, cri::PodSandboxState::SandboxReady as i32);
    wait_for_more_ticks(&endless_log, before, "the endless logger to keep logging after the restart").await;

    assert_eq!(d.shim_pids().len(), 1, "the restarted daemon re-attached to the shim instead of starting another");

    // The names are still taken after the restart.
    let again = d.rt().run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(d.pod(&sandbox)), runtime_handler: String::new() }).await;
    expect_error("RunPodSandbox of the same pod after a restart", again, tonic::Code::AlreadyExists, &["restart"]);
    let again = d
        .rt()
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(container_config("endless", LOGGER_P1.image, &["100"], &[], vec![])),
            sandbox_config: Some(d.pod(&sandbox)),
        })
        .await;
    expect_error("CreateContainer of the same name after a restart", again, tonic::Code::AlreadyExists, &["endless"]);

    d.rt()
        .stop_container(cri::StopContainerRequest { container_id: endless.clone(), timeout: 5 })
        .await
        .expect("StopContainer after a restart");
    let s = d.status(&endless).await;
    assert_eq!((state_name(s.state).as_str(), s.exit_code), ("CONTAINER_EXITED", 137), "{s:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_shim_fails_its_pod_only() {
    let d = Daemon::start("shimkill", &[LOGGER_P1]).await;
    let victim_pod = d.run_pod("victim").await;
    let other_pod = d.run_pod("bystander").await;
    let victim = d.create(&victim_pod, "logger", LOGGER_P1.image, &["50"], &[], vec![]).await;
    let other = d.create(&other_pod, "logger", LOGGER_P1.image, &["50"], &[], vec![]).await;
    d.start_container(&victim).await;
    d.start_container(&other).await;
    let other_log = d.log_of(&other_pod, "logger");
    wait_for_more_ticks(&d.log_of(&victim_pod, "logger"), 0, "the victim to log").await;

    kill_shim_of(&d, &victim_pod).await;

    let s = d.wait_exited(&victim, Duration::from_secs(10)).await;
    assert!(!s.reason.is_empty(), "a container whose shim died needs a reason: {s:?}");
    assert!(s.finished_at >= s.started_at, "{s:?}");
    assert_ne!(s.exit_code, 0, "a killed container did not complete: {s:?}");

    let o = d.status(&other).await;
    assert_eq!(state_name(o.state), "CONTAINER_RUNNING", "the other pod was touched: {o:?}");
    let n = stdout_lines(&other_log).len();
    wait_for_more_ticks(&other_log, n, "the other pod to keep logging").await;
    assert_eq!(d.shim_pids().len(), 1, "one shim left: {:?}", d.shim_pids());

    // The dead pod can still be stopped and removed.
    d.rt()
        .stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: victim_pod.clone() })
        .await
        .expect("StopPodSandbox of a pod whose shim died");
    d.rt()
        .remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: victim_pod.clone() })
        .await
        .expect("RemovePodSandbox of a pod whose shim died");
    assert_eq!(state_name(d.status(&other).await.state), "CONTAINER_RUNNING");
}

/// kubelet recreates a pod whose sandbox is NOTREADY; a READY sandbox whose shim is dead would get
/// its containers restarted into a shim that is gone, forever. As containerd does when a sandbox's
/// task dies, the pod must turn NOTREADY, and creating a container in it must be refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_whose_shim_died_is_not_ready() {
    let d = Daemon::start("shimdead", &[LOGGER_P1]).await;
    let pod = d.run_pod("dead").await;
    let c = d.create(&pod, "logger", LOGGER_P1.image, &["50"], &[], vec![]).await;
    d.start_container(&c).await;
    kill_shim_of(&d, &pod).await;
    d.wait_exited(&c, Duration::from_secs(10)).await;

    // Both faults are reported together.
    let mut faults = Vec::new();
    let mut rt = d.rt();
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    loop {
        let st =
            rt.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: pod.clone(), verbose: false }).await.unwrap().into_inner();
        if st.status.unwrap().state == cri::PodSandboxState::SandboxNotready as i32 {
            break;
        }
        if std::time::Instant::now() > deadline {
            faults.push("PodSandboxStatus still says SANDBOX_READY 5 s after the pod's shim died".to_string());
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: pod.clone(),
        config: Some(container_config("again", LOGGER_P1.image, &["50"], &[], vec![])),
        sandbox_config: Some(d.pod(&pod)),
    };
    match rt.create_container(req).await {
        Err(e) if e.code() == tonic::Code::FailedPrecondition && e.message().contains(&pod) => {}
        other => faults.push(format!("CreateContainer in it: want FailedPrecondition naming the pod, got {other:?}")),
    }
    assert!(faults.is_empty(), "a pod whose shim died:\n{}", faults.join("\n"));
}
