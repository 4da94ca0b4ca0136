//! Many pods at once: 50 RunPodSandbox + CreateContainer + StartContainer sequences in parallel.

use std::sync::Arc;
use std::time::Duration;

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

const PODS: usize = 50;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_pods_at_once() {
    let d = Arc::new(Daemon::start("many", &[HELLO_P1]).await);

    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..PODS {
        let d = Arc::clone(&d);
        tasks.spawn(async move {
            let name = format!("pod-{i}");
            let config = d.pod_config(&name);
            let sandbox = run_pod_with(&d.cri, config.clone()).await;
            let arg = format!("from-{i}");
            let container =
                create_with(&d.cri, &sandbox, &config, container_config("hello", HELLO_P1.image, &[&arg], &[("POD", &name)], vec![])).await;
            let req = cri::StartContainerRequest { container_id: container.clone() };
            d.cri.runtime.clone().start_container(req).await.unwrap_or_else(|e| panic!("StartContainer in {name}: {e:?}"));
            (i, sandbox, container, config)
        });
    }
    let mut pods = Vec::new();
    while let Some(done) = tasks.join_next().await {
        pods.push(done.expect("a pod task failed"));
    }
    assert_eq!(pods.len(), PODS);

    for (i, _, container, config) in &pods {
        let s = wait_exited(&d.cri, container, Duration::from_secs(30)).await;
        assert_eq!((s.exit_code, s.reason.as_str()), (0, "Completed"), "pod-{i}: {s:?}");
        let log = std::path::Path::new(&config.log_directory).join("hello/0.log");
        let lines = stdout_lines(&log);
        assert_eq!(
            lines,
            ["hello from wasm".to_string(), "argv[0]=/hello.wasm".into(), format!("argv[1]=from-{i}"), format!("env POD=pod-{i}")],
            "pod-{i}: its log holds its own output"
        );
    }
    let listed = d.rt().list_pod_sandbox(cri::ListPodSandboxRequest::default()).await.unwrap().into_inner().items;
    assert_eq!(listed.len(), PODS);

    let mut tasks = tokio::task::JoinSet::new();
    for (_, sandbox, _, _) in pods {
        let mut rt = d.rt();
        tasks.spawn(async move {
            rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() })
                .await
                .unwrap_or_else(|e| panic!("StopPodSandbox {sandbox}: {e:?}"));
            rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox.clone() })
                .await
                .unwrap_or_else(|e| panic!("RemovePodSandbox {sandbox}: {e:?}"));
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("a teardown task failed");
    }
    let pods = d.rt().list_pod_sandbox(cri::ListPodSandboxRequest::default()).await.unwrap().into_inner().items;
    assert!(pods.is_empty(), "{} pods left", pods.len());
    let containers = d.rt().list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers;
    assert!(containers.is_empty(), "{} containers left", containers.len());
    d.wait_no_shims(Duration::from_secs(10)).await;
    let shims_dir = d.state.join("shims");
    let left: Vec<_> = std::fs::read_dir(&shims_dir).map(|r| r.flatten().map(|e| e.file_name()).collect()).unwrap_or_default();
    assert!(left.is_empty(), "shim directories left in {}: {left:?}", shims_dir.display());
}
