//! Cluster mode's API exchanges, checked against kube-rs' test tooling: a `tower_test` mock
//! service stands in for the API server, and each test answers the requests it expects, in order,
//! checking their method, path, query and body.

use http::{Method, Request, Response};
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Node, Pod, PodStatus};
use kube::Client;
use kube::api::Api;
use kube::client::Body;
use serde_json::{Value, json};

use super::{lease, node_object, pods};
use crate::node::NodeInfo;

type Handle = tower_test::mock::Handle<Request<Body>, Response<Body>>;

fn mock() -> (Client, Handle) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    (Client::new(service, "default"), handle)
}

/// Answers the next request with `status` and `body`, after checking its method and URI; returns its body.
async fn expect(handle: &mut Handle, method: Method, uri: &str, status: u16, body: Value) -> Value {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(req.method(), method, "{}", req.uri());
    assert_eq!(req.uri().to_string(), uri);
    let sent = req.into_body().collect_bytes().await.unwrap();
    let sent = if sent.is_empty() {
        Value::Null
    } else {
        serde_json::from_slice(&sent).unwrap()
    };
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(serde_json::to_vec(&body).unwrap()))
            .unwrap(),
    );
    sent
}

fn not_found(kind: &str, name: &str) -> Value {
    json!({"kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404,
           "message": format!("{kind} \"{name}\" not found")})
}

fn info() -> NodeInfo {
    NodeInfo {
        name: "edge-1".into(),
        os: "linux",
        arch: "amd64",
        cpu_capacity_millis: 2000,
        memory_capacity_bytes: 4 << 30,
        cpu_allocatable_millis: 1750,
        memory_allocatable_bytes: (4 << 30) - (256 << 20),
        max_pods: 110,
        host_ip: "10.0.0.7".parse().unwrap(),
    }
}

#[tokio::test]
async fn registers_the_node_with_labels_taints_capacity_and_ready() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::GET,
            "/api/v1/nodes/edge-1",
            404,
            not_found("nodes", "edge-1"),
        )
        .await;
        let created = expect(
            &mut handle,
            Method::POST,
            "/api/v1/nodes?",
            201,
            json!({"metadata": {"name": "edge-1", "uid": "n1"}}),
        )
        .await;
        let status = expect(
            &mut handle,
            Method::PATCH,
            "/api/v1/nodes/edge-1/status?",
            200,
            json!({"metadata": {"name": "edge-1"}}),
        )
        .await;
        (created, status)
    });
    let nodes: Api<Node> = Api::all(client);
    let taint = node_object::parse_taint("wasm=only:NoSchedule").unwrap();
    let version = k8s_cri::v1::VersionResponse {
        runtime_name: "wasmlet".into(),
        runtime_version: "0.1.0".into(),
        ..Default::default()
    };
    let runtime = k8s_cri::v1::RuntimeStatus {
        conditions: vec![
            k8s_cri::v1::RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: true,
                ..Default::default()
            },
            k8s_cri::v1::RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: true,
                ..Default::default()
            },
        ],
    };
    let status = node_object::node_status(&info(), &version, Some(&runtime));
    node_object::register(&nodes, node_object::node_object(&info(), &[taint]), status)
        .await
        .unwrap();
    let (created, patched) = server.await.unwrap();
    assert_eq!(created["metadata"]["labels"]["kubernetes.io/os"], "linux");
    assert_eq!(created["metadata"]["labels"]["kubernetes.io/arch"], "amd64");
    assert_eq!(
        created["metadata"]["labels"]["kubernetes.io/hostname"],
        "edge-1"
    );
    assert_eq!(
        created["spec"]["taints"],
        json!([{"key": "wasm", "value": "only", "effect": "NoSchedule"}])
    );
    let st = &patched["status"];
    assert_eq!(
        st["capacity"],
        json!({"cpu": "2", "memory": "4194304Ki", "pods": "110"})
    );
    assert_eq!(
        st["allocatable"],
        json!({"cpu": "1750m", "memory": "3932160Ki", "pods": "110"})
    );
    let ready = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Ready")
        .unwrap();
    assert_eq!(
        (ready["status"].as_str(), ready["reason"].as_str()),
        (Some("True"), Some("KubeletReady"))
    );
    assert_eq!(st["nodeInfo"]["containerRuntimeVersion"], "wasmlet://0.1.0");
    assert_eq!(
        st["addresses"][0],
        json!({"type": "InternalIP", "address": "10.0.0.7"})
    );
}

#[test]
fn node_ready_follows_the_runtime_status() {
    let down = k8s_cri::v1::RuntimeStatus {
        conditions: vec![
            k8s_cri::v1::RuntimeCondition {
                r#type: "RuntimeReady".into(),
                status: true,
                ..Default::default()
            },
            k8s_cri::v1::RuntimeCondition {
                r#type: "NetworkReady".into(),
                status: false,
                reason: "NetworkPluginNotReady".into(),
                message: "no CNI config".into(),
            },
        ],
    };
    let c = node_object::ready_condition(Some(&down));
    assert_eq!(
        (c.status.as_str(), c.reason.as_deref()),
        ("False", Some("KubeletNotReady"))
    );
    assert_eq!(
        c.message.as_deref(),
        Some(
            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:no CNI config"
        )
    );
    assert_eq!(node_object::ready_condition(None).status, "False");
    assert!(node_object::parse_taint("novalue:NoExecute").is_ok());
    assert!(node_object::parse_taint("k=v:Sometimes").is_err());
}

#[tokio::test]
async fn creates_then_renews_the_lease() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        expect(
            &mut handle,
            Method::GET,
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1",
            404,
            not_found("leases", "edge-1"),
        )
        .await;
        let created = expect(
            &mut handle,
            Method::POST,
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases?",
            201,
            json!({}),
        )
        .await;
        let existing = json!({"metadata": {"name": "edge-1", "namespace": "kube-node-lease", "resourceVersion": "7"},
                              "spec": {"holderIdentity": "edge-1", "leaseDurationSeconds": 40, "renewTime": "2020-01-01T00:00:00.000000Z"}});
        expect(
            &mut handle,
            Method::GET,
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1",
            200,
            existing.clone(),
        )
        .await;
        let renewed = expect(
            &mut handle,
            Method::PUT,
            "/apis/coordination.k8s.io/v1/namespaces/kube-node-lease/leases/edge-1?",
            200,
            existing,
        )
        .await;
        (created, renewed)
    });
    let leases: Api<Lease> = Api::namespaced(client, lease::NAMESPACE);
    lease::renew(&leases, "edge-1", Some("n1")).await.unwrap();
    lease::renew(&leases, "edge-1", Some("n1")).await.unwrap();
    let (created, renewed) = server.await.unwrap();
    assert_eq!(created["spec"]["holderIdentity"], "edge-1");
    assert_eq!(created["spec"]["leaseDurationSeconds"], 40);
    assert_eq!(created["metadata"]["ownerReferences"][0]["uid"], "n1");
    assert_eq!(
        renewed["metadata"]["resourceVersion"], "7",
        "a replace, guarded by the resourceVersion read"
    );
    assert_ne!(renewed["spec"]["renewTime"], "2020-01-01T00:00:00.000000Z");
}

#[tokio::test]
async fn lists_and_watches_bound_pods_patches_status_and_deletes_stopped_pods() {
    let (client, mut handle) = mock();
    let server = tokio::spawn(async move {
        let list = json!({"kind": "PodList", "apiVersion": "v1", "metadata": {"resourceVersion": "42"},
                          "items": [{"metadata": {"name": "web", "namespace": "shop", "uid": "u1"}, "spec": {"nodeName": "edge-1", "containers": [{"name": "c", "image": "x"}]}}]});
        expect(
            &mut handle,
            Method::GET,
            "/api/v1/pods?&fieldSelector=spec.nodeName%3Dedge-1",
            200,
            list,
        )
        .await;
        let (req, send) = handle.next_request().await.unwrap();
        assert_eq!(
            req.uri().to_string(),
            "/api/v1/pods?&watch=true&timeoutSeconds=290&fieldSelector=spec.nodeName%3Dedge-1&allowWatchBookmarks=true&resourceVersion=42"
        );
        let event = json!({"type": "MODIFIED", "object": {"metadata": {"name": "web", "namespace": "shop", "uid": "u1", "resourceVersion": "43", "deletionTimestamp": "2024-01-01T00:00:00Z", "deletionGracePeriodSeconds": 5}}});
        send.send_response(
            Response::builder()
                .body(Body::from(format!("{event}\n").into_bytes()))
                .unwrap(),
        );
        let patch = expect(
            &mut handle,
            Method::PATCH,
            "/api/v1/namespaces/shop/pods/web/status?",
            200,
            json!({"metadata": {"name": "web"}}),
        )
        .await;
        let delete = expect(
            &mut handle,
            Method::DELETE,
            "/api/v1/namespaces/shop/pods/web?",
            200,
            json!({"metadata": {"name": "web"}}),
        )
        .await;
        (patch, delete)
    });
    let api: Api<Pod> = Api::all(client.clone());
    let (listed, rv) = pods::list_bound(&api, "edge-1").await.unwrap();
    assert_eq!((listed.len(), rv.as_str()), (1, "42"));
    let mut watch = pods::watch_bound(&api, "edge-1", &rv).await.unwrap();
    use futures_util::StreamExt;
    match watch.next().await {
        Some(Ok(kube::api::WatchEvent::Modified(p))) => {
            assert!(p.metadata.deletion_timestamp.is_some());
            assert_eq!(p.metadata.deletion_grace_period_seconds, Some(5));
        }
        other => panic!("expected MODIFIED, got {other:?}"),
    }
    let status = PodStatus {
        phase: Some("Running".into()),
        ..Default::default()
    };
    pods::patch_status(&client, &listed[0], &status)
        .await
        .unwrap();
    pods::delete_stopped(&client, "shop", "web", "u1")
        .await
        .unwrap();
    let (patch, delete) = server.await.unwrap();
    assert_eq!(patch, json!({"status": {"phase": "Running"}}));
    assert_eq!(delete["gracePeriodSeconds"], 0);
    assert_eq!(delete["preconditions"]["uid"], "u1");
}

fn record(pod: Value, source: &str) -> crate::board::PodRecord {
    crate::board::PodRecord {
        pod: serde_json::from_value(pod).unwrap(),
        source: source.into(),
        log_dir: String::new(),
        events: Vec::new(),
    }
}

/// The request's body, answered with `status` and that same body (as the API server echoes a
/// created object).
async fn echo(handle: &mut Handle, method: Method, uri: &str, status: u16) -> Value {
    let (req, send) = handle.next_request().await.expect("a request");
    assert_eq!(req.method(), method, "{}", req.uri());
    assert_eq!(req.uri().to_string(), uri);
    let body = req.into_body().collect_bytes().await.unwrap();
    send.send_response(
        Response::builder()
            .status(status)
            .body(Body::from(body.to_vec()))
            .unwrap(),
    );
    serde_json::from_slice(&body).unwrap()
}

#[tokio::test]
async fn pod_events_are_posted_as_kubelet_and_repeats_become_a_series() {
    let (client, mut handle) = mock();
    let board = crate::board::Board::default();
    let pod = json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u1"},
                     "spec": {"containers": [{"name": "c", "image": "x"}]}});
    board.put("u1", record(pod, super::SOURCE));
    let (sink, task) = super::events::start(client, "edge-1");
    board.set_sink(Box::new(sink));
    let c = crate::board::field_path(&board.get("u1").unwrap().pod, "c");
    assert_eq!(c.as_deref(), Some("spec.containers{c}"));
    board.event("u1", None, "Warning", "OutOfcpu", "Pod was rejected".into());
    board.event(
        "u1",
        c.clone(),
        "Normal",
        "Started",
        "Started container c".into(),
    );
    let backoff = "Back-off restarting failed container";
    board.event("u1", c.clone(), "Warning", "BackOff", backoff.into());
    board.event("u1", c.clone(), "Warning", "BackOff", backoff.into());
    board.event(
        "nobody",
        None,
        "Normal",
        "Started",
        "not on the board".into(),
    );

    let events = "/apis/events.k8s.io/v1/namespaces/shop/events";
    // A post that fails is logged and the next ones still go.
    let (req, send) = handle.next_request().await.unwrap();
    assert_eq!(
        (req.method(), req.uri().to_string()),
        (&Method::POST, format!("{events}?"))
    );
    send.send_response(
        Response::builder()
            .status(500)
            .body(Body::from(b"{}".to_vec()))
            .unwrap(),
    );
    let started = echo(&mut handle, Method::POST, &format!("{events}?"), 201).await;
    let warning = echo(&mut handle, Method::POST, &format!("{events}?"), 201).await;
    let name = warning["metadata"]["name"].as_str().unwrap().to_string();
    let repeat = echo(
        &mut handle,
        Method::PATCH,
        &format!("{events}/{name}?"),
        200,
    )
    .await;

    assert_eq!(started["reason"], "Started");
    assert_eq!(started["type"], "Normal");
    assert_eq!(started["note"], "Started container c");
    assert_eq!(started["action"], "StartContainer");
    assert_eq!(started["reportingController"], "kubelet");
    assert_eq!(started["reportingInstance"], "edge-1");
    assert_eq!(
        started["regarding"],
        json!({"apiVersion": "v1", "kind": "Pod", "name": "web", "namespace": "shop", "uid": "u1",
               "fieldPath": "spec.containers{c}"})
    );
    assert!(
        started["metadata"]["name"]
            .as_str()
            .unwrap()
            .starts_with("web.")
    );
    assert!(started["eventTime"].is_string());
    assert_eq!(
        (
            &warning["reason"],
            &warning["type"],
            &warning["regarding"]["uid"]
        ),
        (&json!("BackOff"), &json!("Warning"), &json!("u1"))
    );
    assert_eq!(warning["note"], backoff);
    assert_eq!(repeat["series"]["count"], 2, "a repeat patches the count");
    assert_eq!(repeat["note"], backoff);
    // The board keeps its own copy, folded the same way.
    let kept = board.get("u1").unwrap().events;
    assert_eq!(
        kept.iter().find(|e| e.reason == "BackOff").unwrap().count,
        2
    );
    task.abort();
}

#[tokio::test]
async fn mirror_pods_are_created_patched_replaced_and_deleted() {
    use super::mirror::{Mirrors, is_mirror};
    let (client, mut handle) = mock();
    let board = crate::board::Board::default();
    let static_pod = json!({
        "metadata": {"name": "web", "namespace": "default", "uid": "h1", "labels": {"app": "web"},
                     "annotations": {"kubernetes.io/config.hash": "h1", "kubernetes.io/config.source": "file"}},
        "spec": {"nodeName": "edge-1", "containers": [{"name": "c", "image": "x"}]},
        "status": {"phase": "Running"}});
    board.put("h1", record(static_pod, "/etc/wasmlet/web.yaml"));
    let pods = "/api/v1/namespaces/default/pods";
    let server = tokio::spawn(async move {
        let outdated = expect(
            &mut handle,
            Method::DELETE,
            &format!("{pods}/web?"),
            200,
            json!({}),
        )
        .await;
        let created = expect(
            &mut handle,
            Method::POST,
            &format!("{pods}?"),
            201,
            json!({"metadata": {"name": "web", "namespace": "default", "uid": "m1",
                                "annotations": {"kubernetes.io/config.mirror": "h1"}}}),
        )
        .await;
        let status = expect(
            &mut handle,
            Method::PATCH,
            &format!("{pods}/web/status?"),
            200,
            json!({}),
        )
        .await;
        // Nothing changed in the second sync: the next request is the delete of the third.
        let gone = expect(
            &mut handle,
            Method::DELETE,
            &format!("{pods}/web?"),
            200,
            json!({}),
        )
        .await;
        (outdated, created, status, gone)
    });
    let mut mirrors = Mirrors::new(client, "edge-1", Some("n1".into()));
    // A mirror pod of an older version of the file, from the pod list.
    let old: Pod = serde_json::from_value(
        json!({"metadata": {"name": "web", "namespace": "default", "uid": "m0",
        "annotations": {"kubernetes.io/config.mirror": "h0"}}}),
    )
    .unwrap();
    assert!(is_mirror(&old));
    mirrors.relisted(&[old]);
    mirrors.sync(&board).await;
    mirrors.sync(&board).await;
    board.remove("h1");
    mirrors.sync(&board).await;
    let (outdated, created, status, gone) = server.await.unwrap();
    assert_eq!(outdated["preconditions"]["uid"], "m0");
    assert_eq!(outdated["gracePeriodSeconds"], 0);
    let meta = &created["metadata"];
    assert_eq!(meta["annotations"]["kubernetes.io/config.mirror"], "h1");
    assert_eq!(meta["annotations"]["kubernetes.io/config.source"], "file");
    assert_eq!(meta["labels"]["app"], "web");
    assert_eq!(
        meta["ownerReferences"],
        json!([{"apiVersion": "v1", "kind": "Node", "name": "edge-1", "uid": "n1", "controller": true}])
    );
    assert!(
        meta.get("uid").is_none(),
        "the API server gives the mirror its own uid"
    );
    assert_eq!(created["spec"]["nodeName"], "edge-1");
    assert!(created.get("status").is_none());
    assert_eq!(status, json!({"status": {"phase": "Running"}}));
    assert_eq!(gone["preconditions"]["uid"], "m1");
}
