//! Error answers kubelet relies on: NotFound for unknown ids, idempotent removes, InvalidArgument
//! naming the missing field, AlreadyExists for a reused name, Unimplemented for what is not built.

use std::time::Duration;

use tonic::Code;
use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn errors_have_the_right_codes_and_name_what_is_wrong() {
    let d = Daemon::start("errors", &[HELLO_P1]).await;
    let mut rt = d.rt();
    let unknown = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

    // Unknown ids.
    expect_error(
        "ContainerStatus unknown",
        rt.container_status(cri::ContainerStatusRequest { container_id: unknown.into(), verbose: false }).await,
        Code::NotFound,
        &[unknown],
    );
    expect_error(
        "StartContainer unknown",
        rt.start_container(cri::StartContainerRequest { container_id: unknown.into() }).await,
        Code::NotFound,
        &[unknown],
    );
    expect_error(
        "StopContainer unknown",
        rt.stop_container(cri::StopContainerRequest { container_id: unknown.into(), timeout: 1 }).await,
        Code::NotFound,
        &[unknown],
    );
    expect_error(
        "PodSandboxStatus unknown",
        rt.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: unknown.into(), verbose: false }).await,
        Code::NotFound,
        &[unknown],
    );
    expect_error(
        "StopPodSandbox unknown",
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: unknown.into() }).await,
        Code::NotFound,
        &[unknown],
    );
    rt.remove_container(cri::RemoveContainerRequest { container_id: unknown.into() })
        .await
        .expect("RemoveContainer of an unknown id is OK");
    rt.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: unknown.into() })
        .await
        .expect("RemovePodSandbox of an unknown id is OK");

    // Empty ids name their field.
    expect_error(
        "ContainerStatus empty",
        rt.container_status(cri::ContainerStatusRequest::default()).await,
        Code::InvalidArgument,
        &["container_id"],
    );
    expect_error(
        "StartContainer empty",
        rt.start_container(cri::StartContainerRequest::default()).await,
        Code::InvalidArgument,
        &["container_id"],
    );
    expect_error(
        "StopContainer empty",
        rt.stop_container(cri::StopContainerRequest::default()).await,
        Code::InvalidArgument,
        &["container_id"],
    );
    expect_error(
        "RemoveContainer empty",
        rt.remove_container(cri::RemoveContainerRequest::default()).await,
        Code::InvalidArgument,
        &["container_id"],
    );
    expect_error(
        "PodSandboxStatus empty",
        rt.pod_sandbox_status(cri::PodSandboxStatusRequest::default()).await,
        Code::InvalidArgument,
        &["pod_sandbox_id"],
    );
    expect_error(
        "StopPodSandbox empty",
        rt.stop_pod_sandbox(cri::StopPodSandboxRequest::default()).await,
        Code::InvalidArgument,
        &["pod_sandbox_id"],
    );
    expect_error(
        "RemovePodSandbox empty",
        rt.remove_pod_sandbox(cri::RemovePodSandboxRequest::default()).await,
        Code::InvalidArgument,
        &["pod_sandbox_id"],
    );
    let no_sandbox =
        cri::CreateContainerRequest { config: Some(container_config("c", HELLO_P1.image, &[], &[], vec![])), ..Default::default() };
    expect_error("CreateContainer without a sandbox id", rt.create_container(no_sandbox).await, Code::InvalidArgument, &["pod_sandbox_id"]);
    let mut no_uid = d.pod_config("no-uid");
    no_uid.metadata.as_mut().unwrap().uid.clear();
    expect_error(
        "RunPodSandbox without a uid",
        rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(no_uid), runtime_handler: String::new() }).await,
        Code::InvalidArgument,
        &["uid"],
    );

    // An unknown runtime handler is named.
    let req = cri::RunPodSandboxRequest { config: Some(d.pod_config("handler")), runtime_handler: "runc-please".into() };
    expect_error("RunPodSandbox with an unknown handler", rt.run_pod_sandbox(req).await, Code::InvalidArgument, &["runc-please"]);
    // A known one works.
    let req = cri::RunPodSandboxRequest { config: Some(d.pod_config("handler")), runtime_handler: "wasmtime".into() };
    let handled = rt.run_pod_sandbox(req).await.expect("RunPodSandbox with the wasmtime handler").into_inner().pod_sandbox_id;
    let st = rt.pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: handled, verbose: false }).await.unwrap().into_inner();
    assert_eq!(st.status.unwrap().runtime_handler, "wasmtime");

    // Same name, namespace, uid and attempt: AlreadyExists, naming the pod; a new attempt is fine.
    let config = d.pod_config("dup");
    let first = run_pod_with(&d.cri, config.clone()).await;
    let again = rt.run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: String::new() }).await;
    expect_error("RunPodSandbox twice", again, Code::AlreadyExists, &["dup"]);
    let mut next = config.clone();
    next.metadata.as_mut().unwrap().attempt = 1;
    let second = run_pod_with(&d.cri, next).await;
    assert_ne!(first, second);

    // Containers: an unknown image is NotFound and named; a reused name is AlreadyExists.
    let create = |name: &str, image: &str| cri::CreateContainerRequest {
        pod_sandbox_id: first.clone(),
        config: Some(container_config(name, image, &[], &[], vec![])),
        sandbox_config: Some(config.clone()),
    };
    expect_error(
        "CreateContainer of an unknown image",
        rt.create_container(create("c", "localhost/no-such-image:v9")).await,
        Code::NotFound,
        &["localhost/no-such-image:v9"],
    );
    expect_error(
        "CreateContainer in an unknown pod",
        rt.create_container(cri::CreateContainerRequest { pod_sandbox_id: unknown.into(), ..create("c", HELLO_P1.image) }).await,
        Code::NotFound,
        &[unknown],
    );
    rt.create_container(create("c", HELLO_P1.image)).await.expect("the first container named c");
    expect_error(
        "CreateContainer of a reused name",
        rt.create_container(create("c", HELLO_P1.image)).await,
        Code::AlreadyExists,
        &["c_dup"],
    );

    // The streaming RPCs on what does not exist.
    let c = unknown.to_string();
    let streaming: Vec<(&str, Result<(), tonic::Status>)> = vec![
        ("ExecSync", rt.exec_sync(cri::ExecSyncRequest { container_id: c.clone(), cmd: vec!["ls".into()], timeout: 1 }).await.map(drop)),
        (
            "Exec",
            rt.exec(cri::ExecRequest { container_id: c.clone(), cmd: vec!["ls".into()], stdout: true, ..Default::default() })
                .await
                .map(drop),
        ),
        ("Attach", rt.attach(cri::AttachRequest { container_id: c.clone(), stdout: true, ..Default::default() }).await.map(drop)),
        ("PortForward", rt.port_forward(cri::PortForwardRequest { pod_sandbox_id: c.clone(), port: vec![80] }).await.map(drop)),
    ];
    for (rpc, result) in streaming {
        expect_error(rpc, result, Code::NotFound, &[&c]);
    }

    // Stats and resize of what does not exist.
    let not_found: Vec<(&str, Result<(), tonic::Status>)> = vec![
        ("ContainerStats", rt.container_stats(cri::ContainerStatsRequest { container_id: c.clone() }).await.map(drop)),
        ("PodSandboxStats", rt.pod_sandbox_stats(cri::PodSandboxStatsRequest { pod_sandbox_id: c.clone() }).await.map(drop)),
        (
            "UpdateContainerResources",
            rt.update_container_resources(cri::UpdateContainerResourcesRequest { container_id: c.clone(), ..Default::default() })
                .await
                .map(drop),
        ),
    ];
    for (rpc, result) in not_found {
        expect_error(rpc, result, Code::NotFound, &[&c]);
    }
    assert!(rt.list_container_stats(cri::ListContainerStatsRequest::default()).await.is_ok());
    assert!(rt.list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest::default()).await.is_ok());
}

/// A module whose import no host provides (`env.nope`), hand-encoded: the image imports (it
/// compiles), but the shim cannot link it. As with containerd, whose CreateContainer does not
/// reach the runtime, that is StartContainer's error: the container is then EXITED with reason
/// StartError and exit code 128, can be removed, and its pod and its siblings carry on.
const UNLINKABLE: &[u8] = &[
    0x00, 0x61, 0x73, 0x6d, 0x01, 0x00, 0x00, 0x00, // magic, version
    0x01, 0x04, 0x01, 0x60, 0x00, 0x00, // type: () -> ()
    0x02, 0x0c, 0x01, 0x03, b'e', b'n', b'v', 0x04, b'n', b'o', b'p', b'e', 0x00, 0x00, // import env.nope
    0x03, 0x02, 0x01, 0x00, // one function of type 0
    0x07, 0x0a, 0x01, 0x06, b'_', b's', b't', b'a', b'r', b't', 0x00, 0x01, // export _start = func 1
    0x0a, 0x04, 0x01, 0x02, 0x00, 0x0b, // its body: end
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_module_the_shim_cannot_link_fails_its_start_and_leaves_the_pod_usable() {
    let d = Daemon::start("errors-unlinkable", &[HELLO_P1]).await;
    let wasm = d.state.join("unlinkable.wasm");
    std::fs::write(&wasm, UNLINKABLE).unwrap();
    import(wasm.to_str().unwrap(), "localhost/unlinkable:v1", &d.root);
    let sandbox = d.run_pod("unlinkable").await;
    let bad = d.create(&sandbox, "bad", "localhost/unlinkable:v1", &[], &[], vec![]).await;
    assert_eq!(d.status(&bad).await.state, cri::ContainerState::ContainerCreated as i32);

    let refused = d.rt().start_container(cri::StartContainerRequest { container_id: bad.clone() }).await;
    expect_error("StartContainer of a module that cannot be linked", refused, Code::InvalidArgument, &["env", "nope"]);
    let s = d.status(&bad).await;
    assert_eq!((s.state, s.exit_code, s.reason.as_str()), (cri::ContainerState::ContainerExited as i32, 128, "StartError"), "{s:?}");
    assert!(s.message.contains("nope"), "the reason is kept: {s:?}");
    assert!(s.finished_at > 0 && s.started_at == 0, "{s:?}");
    let again = d.rt().start_container(cri::StartContainerRequest { container_id: bad.clone() }).await;
    expect_error("StartContainer of an exited container", again, Code::FailedPrecondition, &[&bad]);

    // The pod is untouched: a sibling runs, and the failed one is removed like any other.
    let good = d.create(&sandbox, "good", HELLO_P1.image, &[], &[], vec![]).await;
    d.start_container(&good).await;
    assert_eq!(d.wait_exited(&good, Duration::from_secs(10)).await.exit_code, 0);
    d.rt().remove_container(cri::RemoveContainerRequest { container_id: bad.clone() }).await.expect("RemoveContainer of the failed one");
    let gone = d.rt().container_status(cri::ContainerStatusRequest { container_id: bad.clone(), verbose: false }).await;
    expect_error("ContainerStatus of the removed one", gone, Code::NotFound, &[&bad]);
}
