//! The life of pods and containers through the CRI: a whole pod from RunPodSandbox to
//! RemovePodSandbox, how guests end (exit codes, traps), and StopContainer/RemoveContainer.

use std::time::{Duration, Instant};

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

fn list_filter(sandbox: &str) -> cri::ListContainersRequest {
    cri::ListContainersRequest { filter: Some(cri::ContainerFilter { pod_sandbox_id: sandbox.into(), ..Default::default() }) }
}

/// A pod with a core-module and a component container, from RunPodSandbox to RemovePodSandbox,
/// checking every field kubelet reads on the way.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pod_with_two_wasm_containers_runs_its_whole_lifecycle() {
    let d = Daemon::start("lifecycle", &[HELLO_P1, HELLO_P2]).await;
    let t0 = now_nanos();
    let sandbox = d.run_pod("two").await;

    let ready = d
        .rt()
        .pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: sandbox.clone(), verbose: false })
        .await
        .unwrap()
        .into_inner();
    let st = ready.status.unwrap();
    assert_eq!(st.id, sandbox);
    assert_eq!(st.state, cri::PodSandboxState::SandboxReady as i32);
    assert_eq!(st.metadata, d.pod(&sandbox).metadata);
    assert_eq!(st.labels, d.pod(&sandbox).labels);
    assert_eq!(st.annotations, d.pod(&sandbox).annotations);
    let ns = st.linux.and_then(|l| l.namespaces).and_then(|n| n.options).expect("namespace options");
    assert_eq!(ns.network, cri::NamespaceMode::Node as i32, "hostNetwork must round-trip");
    assert!(
        st.created_at >= t0 && st.created_at <= now_nanos(),
        "sandbox created_at {} is not a nanosecond time of this test",
        st.created_at
    );

    let images = d.img().list_images(cri::ListImagesRequest::default()).await.unwrap().into_inner().images;
    let image_of =
        |tag: &str| images.iter().find(|i| i.repo_tags.iter().any(|t| t == tag)).cloned().unwrap_or_else(|| panic!("{tag} not listed"));
    let (img1, img2) = (image_of(HELLO_P1.image), image_of(HELLO_P2.image));

    let data = d.dir.join("data-lifecycle");
    std::fs::create_dir_all(&data).unwrap();
    let mounts = vec![mount("/data", &data, true)];
    // The component by its image id: its status must still name the tag.
    let c1 = d.create(&sandbox, "hello-p1", HELLO_P1.image, &["one"], &[("WHO", "p1")], mounts.clone()).await;
    let c2 = d.create(&sandbox, "hello-p2", &img2.id, &["two"], &[("WHO", "p2")], vec![]).await;

    let listed = d.rt().list_containers(list_filter(&sandbox)).await.unwrap().into_inner().containers;
    assert_eq!(listed.len(), 2, "{listed:?}");
    for c in &listed {
        assert_eq!(c.state, cri::ContainerState::ContainerCreated as i32, "{} is {}", c.id, state_name(c.state));
        assert_eq!(c.pod_sandbox_id, sandbox);
    }
    let created = d
        .rt()
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter {
                state: Some(cri::ContainerStateValue { state: cri::ContainerState::ContainerCreated as i32 }),
                label_selector: [("container".to_string(), "hello-p1".to_string())].into(),
                ..Default::default()
            }),
        })
        .await
        .unwrap()
        .into_inner()
        .containers;
    assert_eq!(created.iter().map(|c| c.id.as_str()).collect::<Vec<_>>(), [c1.as_str()], "state + label filter");

    d.start_container(&c1).await;
    d.start_container(&c2).await;

    for (id, name, image, mounts) in [(&c1, "hello-p1", &img1, mounts.clone()), (&c2, "hello-p2", &img2, vec![])] {
        let s = d.wait_exited(id, Duration::from_secs(10)).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "{name}: message {:?}", s.message);
        assert_eq!(s.id, *id);
        assert_eq!(s.metadata, Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }));
        assert!(t0 <= s.created_at, "{name}: created_at {} before the test began ({t0})", s.created_at);
        assert!(s.created_at <= s.started_at, "{name}: created_at {} > started_at {}", s.created_at, s.started_at);
        assert!(s.started_at <= s.finished_at, "{name}: started_at {} > finished_at {}", s.started_at, s.finished_at);
        assert!(s.finished_at <= now_nanos(), "{name}: finished_at {} is in the future (not nanoseconds?)", s.finished_at);
        assert_eq!(s.image.as_ref().map(|i| i.image.as_str()), Some(image.repo_tags[0].as_str()), "{name}: image must be the tag");
        assert_eq!(s.image_id, image.id, "{name}: image_id");
        assert!(
            !s.image_ref.is_empty() && (image.repo_digests.contains(&s.image_ref) || s.image_ref == image.id),
            "{name}: image_ref {:?} is neither a repo digest {:?} nor the id {}",
            s.image_ref,
            image.repo_digests,
            image.id
        );
        let sent = container_config(name, "", &[], &[], vec![]);
        assert_eq!(s.labels, sent.labels, "{name}: labels");
        assert_eq!(s.annotations, sent.annotations, "{name}: annotations");
        let log = d.log_of(&sandbox, name);
        assert_eq!(s.log_path, log.display().to_string(), "{name}: log_path is log_directory/log_path");
        assert_eq!(s.mounts, mounts, "{name}: mounts");
        assert!(stdout_lines(&log).contains(&"hello from wasm".to_string()), "{name}: log {:?}", read_log(&log));
    }

    let listed = d.rt().list_containers(list_filter(&sandbox)).await.unwrap().into_inner().containers;
    assert!(listed.iter().all(|c| c.state == cri::ContainerState::ContainerExited as i32), "{listed:?}");

    d.rt().stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() }).await.unwrap();
    let stopped = d
        .rt()
        .pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: sandbox.clone(), verbose: false })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(stopped.status.unwrap().state, cri::PodSandboxState::SandboxNotready as i32);
    d.wait_no_shims(Duration::from_secs(5)).await;
    // Stopping again is fine.
    d.rt().stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() }).await.unwrap();

    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox.clone() }).await.unwrap();
    let pods = d.rt().list_pod_sandbox(cri::ListPodSandboxRequest::default()).await.unwrap().into_inner().items;
    assert!(pods.is_empty(), "{pods:?}");
    let containers = d.rt().list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers;
    assert!(containers.is_empty(), "{containers:?}");
    let gone = d.rt().pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: sandbox.clone(), verbose: false }).await;
    expect_error("PodSandboxStatus of a removed pod", gone, tonic::Code::NotFound, &[&sandbox]);
}

/// Exit 0 is Completed, a non-zero exit is Error with its code (exact on WASI p1, 1 on p2), a
/// trap is Error 134 with the trap in the message.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_and_reasons() {
    let d = Daemon::start("exits", &[EXIT_CODE_P1, EXIT_CODE_P2]).await;
    let sandbox = d.run_pod("exits").await;
    let cases: [(&str, Guest, &[&str], i32, &str); 4] = [
        ("zero", EXIT_CODE_P1, &["0"], 0, "Completed"),
        ("three", EXIT_CODE_P1, &["3", "bye"], 3, "Error"),
        ("trap", EXIT_CODE_P1, &["trap"], 134, "Error"),
        ("p2-three", EXIT_CODE_P2, &["3"], 1, "Error"),
    ];
    let mut ids = Vec::new();
    for (name, guest, args, ..) in &cases {
        ids.push(d.create(&sandbox, name, guest.image, args, &[], vec![]).await);
    }
    for id in &ids {
        d.start_container(id).await;
    }
    for ((name, _, _, code, reason), id) in cases.iter().zip(&ids) {
        let s = d.wait_exited(id, Duration::from_secs(10)).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (*code, *reason), "{name}: message {:?}", s.message);
        assert!(s.finished_at >= s.started_at && s.started_at > 0, "{name}: {s:?}");
    }
    let trap = d.status(&ids[2]).await;
    assert!(trap.message.contains("unreachable"), "a trap's message must hold the trap text, got {:?}", trap.message);
    assert_eq!(stdout_lines(&d.log_of(&sandbox, "trap")), ["about to trap"]);
    let three = read_log(&d.log_of(&sandbox, "three"));
    let texts: Vec<(&str, &str)> = three.iter().map(|r| (r.stream.as_str(), r.text.as_str())).collect();
    assert_eq!(texts, [("stdout", "exiting with 3"), ("stderr", "bye")]);
}

/// StopContainer of an endless guest ends it at once (137), is idempotent, and RemoveContainer
/// forgets it (also idempotent).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stop_and_remove_a_running_container() {
    let d = Daemon::start("stop", &[LOGGER_P1]).await;
    let sandbox = d.run_pod("stop").await;
    let id = d.create(&sandbox, "logger", LOGGER_P1.image, &["50"], &[], vec![]).await;
    d.start_container(&id).await;
    let log = d.log_of(&sandbox, "logger");
    eventually(Duration::from_secs(10), "the logger's first ticks", || async {
        let n = stdout_lines(&log).len();
        if n >= 2 { Ok(()) } else { Err(format!("{n} ticks")) }
    })
    .await;
    assert_eq!(d.status(&id).await.state, cri::ContainerState::ContainerRunning as i32);

    let begun = Instant::now();
    d.rt().stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 10 }).await.unwrap();
    let took = begun.elapsed();
    assert!(took < Duration::from_secs(3), "StopContainer took {took:?}: a Wasm guest has no signals to wait for");
    // The record is updated before StopContainer answers.
    let s = d.status(&id).await;
    assert_eq!(s.state, cri::ContainerState::ContainerExited as i32, "after StopContainer: {}", state_name(s.state));
    assert_eq!(s.exit_code, 137, "{s:?}");
    assert!(s.finished_at >= s.started_at, "{s:?}");

    // The guest really stopped: no tick after the stop.
    let ticks = stdout_lines(&log);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(stdout_lines(&log), ticks, "the logger kept ticking after StopContainer");
    for (i, t) in ticks.iter().enumerate() {
        assert_eq!(t, &format!("tick {}", i + 1));
    }

    d.rt()
        .stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 10 })
        .await
        .expect("StopContainer of a stopped container");
    d.rt().remove_container(cri::RemoveContainerRequest { container_id: id.clone() }).await.unwrap();
    let gone = d.rt().container_status(cri::ContainerStatusRequest { container_id: id.clone(), verbose: false }).await;
    expect_error("ContainerStatus of a removed container", gone, tonic::Code::NotFound, &[&id]);
    let listed = d.rt().list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers;
    assert!(listed.is_empty(), "{listed:?}");
    d.rt()
        .remove_container(cri::RemoveContainerRequest { container_id: id.clone() })
        .await
        .expect("RemoveContainer of a removed container");
    // The name is free again.
    let again = d.create(&sandbox, "logger", LOGGER_P1.image, &["50", "1"], &[], vec![]).await;
    d.start_container(&again).await;
    assert_eq!(d.wait_exited(&again, Duration::from_secs(10)).await.exit_code, 0);
}

/// A Wasm container gets its thread at create (it stages the instance there, just after
/// CreateContainer answers); one removed without ever starting ends its thread, and one started
/// after a wait runs normally.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn created_containers_that_never_start_leave_no_thread() {
    let d = Daemon::start("lifecycle-staged", &[LOGGER_P1, HELLO_P1]).await;
    let sandbox = d.run_pod("staged").await;
    let shim = d.shim_pids()[0];
    let threads = || std::fs::read_dir(format!("/proc/{shim}/task")).unwrap().count();
    let before = threads();
    let mut ids = Vec::new();
    for i in 0..20 {
        ids.push(d.create(&sandbox, &format!("never-{i}"), LOGGER_P1.image, &["10"], &[], vec![]).await);
    }
    // The first container runs on the thread the shim started ahead (counted in `before`).
    // CreateContainer answers once the create is on its way to the shim, so the threads appear
    // just after.
    eventually(Duration::from_secs(10), "a thread per created container", || {
        let now = threads();
        async move { if now >= before + 19 { Ok(()) } else { Err(format!("{before} → {now}")) } }
    })
    .await;
    for id in ids {
        d.rt().remove_container(cri::RemoveContainerRequest { container_id: id }).await.unwrap();
    }
    eventually(Duration::from_secs(10), "the created containers' threads to end", || {
        let now = threads();
        // Up to two idle call connections may hold a thread each (the daemon keeps them).
        async move { if now <= before + 2 { Ok(()) } else { Err(format!("{before} → {now}")) } }
    })
    .await;
    // Staged long before its start: still runs from the beginning.
    let c = d.create(&sandbox, "late", HELLO_P1.image, &["late"], &[], vec![]).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    d.start_container(&c).await;
    assert_eq!(d.wait_exited(&c, Duration::from_secs(10)).await.exit_code, 0);
    let text: Vec<String> = read_log(&d.log_of(&sandbox, "late")).into_iter().map(|r| r.text).collect();
    assert!(text.iter().any(|t| t.contains("argv[1]=late")), "{text:?}");
}
