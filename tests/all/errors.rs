//! Error answers kubelet relies on: NotFound for unknown ids, idempotent removes, InvalidArgument
//! naming the missing field, AlreadyExists for a reused name, Unimplemented for what is not built.

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
