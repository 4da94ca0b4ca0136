//! Pod networking through CNI with Debian's real plugins (bridge + host-local + portmap + loopback): a
//! bridge and a private subnet made for the test, pods with their own network namespaces and IPs,
//! the Wasm HTTP server (WASI 0.2 sockets) answering at podIP:port from the node and from another
//! pod, a hostPort through portmap, NetworkReady following the conf dir, a broken conflist refused with nothing left, and a
//! teardown that leaves no veth, IP allocation or namespace behind.
//! Traffic goes only to addresses inside namespaces this test made.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

/// A bridge network of its own: unique bridge name and /24 per test process.
struct TestNetwork {
    bridge: String,
    subnet_prefix: String,
    ipam_dir: PathBuf,
}

impl TestNetwork {
    fn new(d: &Daemon) -> TestNetwork {
        let n = std::process::id() % 200 + 20;
        TestNetwork { bridge: format!("wlt{n}"), subnet_prefix: format!("10.231.{n}"), ipam_dir: d.dir.join("ipam") }
    }

    fn conflist(&self) -> String {
        serde_json::json!({
            "cniVersion": "1.0.0",
            "name": "wasmlet-test",
            "plugins": [
                {
                    "type": "bridge", "bridge": self.bridge, "isGateway": true, "ipMasq": false,
                    "ipam": {
                        "type": "host-local", "dataDir": self.ipam_dir,
                        "ranges": [[{ "subnet": format!("{}.0/24", self.subnet_prefix) }]],
                    }
                },
                { "type": "portmap", "capabilities": { "portMappings": true } },
                { "type": "loopback" }
            ]
        })
        .to_string()
    }

    /// IPs host-local still holds (its files named after the address).
    fn allocations(&self) -> Vec<String> {
        std::fs::read_dir(self.ipam_dir.join("wasmlet-test"))
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with(&self.subnet_prefix)).collect())
            .unwrap_or_default()
    }

    fn veths(&self) -> usize {
        let out = std::process::Command::new("ip").args(["-o", "link", "show", "master", &self.bridge]).output().unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    }
}

impl Drop for TestNetwork {
    fn drop(&mut self) {
        let _ = std::process::Command::new("ip").args(["link", "del", &self.bridge]).status();
    }
}

fn pod_network_config(d: &Daemon, name: &str) -> cri::PodSandboxConfig {
    let mut config = d.pod_config(name);
    let ns = config.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options.as_mut().unwrap();
    ns.network = cri::NamespaceMode::Pod as i32;
    config
}

async fn status(d: &Daemon, id: &str) -> (cri::PodSandboxStatus, serde_json::Value) {
    let r = d.rt().pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: true }).await.unwrap().into_inner();
    (r.status.unwrap(), serde_json::from_str(&r.info["info"]).unwrap())
}

async fn network_ready(d: &Daemon) -> cri::RuntimeCondition {
    let s = d.rt().status(cri::StatusRequest { verbose: false }).await.unwrap().into_inner().status.unwrap();
    s.conditions.into_iter().find(|c| c.r#type == "NetworkReady").expect("NetworkReady condition")
}

fn http_get(addr: SocketAddr) -> std::io::Result<String> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(b"GET / HTTP/1.1\r\nhost: pod\r\n\r\n")?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

/// `http_get` from inside another network namespace (a thread that setns'es into it).
fn http_get_from(netns: &Path, addr: SocketAddr) -> std::io::Result<String> {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        let f = std::fs::File::open(&netns)?;
        nix::sched::setns(f.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        http_get(addr)
    })
    .join()
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pods_get_ips_and_the_wasm_http_server_answers() {
    let mut d = Daemon::start("network", &[HTTP_SERVER_P2]).await;
    let net = TestNetwork::new(&d);

    let before = network_ready(&d).await;
    assert!(!before.status && before.reason == "NetworkPluginNotReady", "no conflist yet: {before:?}");
    std::fs::create_dir_all(d.cni_conf_dir()).unwrap();
    std::fs::write(d.cni_conf_dir().join("10-test.conflist"), net.conflist()).unwrap();
    let after = network_ready(&d).await;
    assert!(after.status, "a conflist appeared, no restart: {after:?}");

    let mut config_a = pod_network_config(&d, "web");
    let host_port = 20000 + (std::process::id() % 20000) as i32;
    config_a.port_mappings =
        vec![cri::PortMapping { protocol: cri::Protocol::Tcp as i32, container_port: 8080, host_port, host_ip: String::new() }];
    let a = run_pod_with(&d.cri, config_a.clone()).await;
    let config_b = pod_network_config(&d, "client");
    let b = run_pod_with(&d.cri, config_b.clone()).await;
    let (sa, info_a) = status(&d, &a).await;
    let (sb, info_b) = status(&d, &b).await;
    let ip_a = sa.network.unwrap().ip;
    let ip_b = sb.network.unwrap().ip;
    assert!(ip_a.starts_with(&net.subnet_prefix) && ip_b.starts_with(&net.subnet_prefix), "{ip_a} {ip_b}");
    assert_ne!(ip_a, ip_b);
    assert_eq!(net.allocations().len(), 2, "{:?}", net.allocations());
    assert_eq!(net.veths(), 2);

    let server = create_with(&d.cri, &a, &config_a, container_config("web", HTTP_SERVER_P2.image, &["8080", "hi from pod"], &[], vec![])).await;
    d.start_container(&server).await;
    let addr: SocketAddr = format!("{ip_a}:8080").parse().unwrap();
    let reply = eventually(Duration::from_secs(10), "the Wasm server answering at podIP:8080 from the node", || async move {
        http_get(addr).map_err(|e| e.to_string())
    })
    .await;
    assert!(reply.starts_with("HTTP/1.1 200 OK") && reply.ends_with("hi from pod\n"), "{reply:?}");

    // Pod to pod, from inside pod B's namespace; and at localhost inside pod A's.
    let netns_b = PathBuf::from(info_b["netns"].as_str().expect("netns pin"));
    let from_b = http_get_from(&netns_b, addr).unwrap();
    assert!(from_b.ends_with("hi from pod\n"), "{from_b:?}");
    let netns_a = PathBuf::from(info_a["netns"].as_str().unwrap());
    let local = http_get_from(&netns_a, "127.0.0.1:8080".parse().unwrap()).unwrap();
    assert!(local.ends_with("hi from pod\n"), "localhost inside the pod: {local:?}");

    // The hostPort, through the portmap plugin's DNAT, at the node's address on the bridge.
    let gateway: SocketAddr = format!("{}.1:{host_port}", net.subnet_prefix).parse().unwrap();
    let via_port = http_get(gateway).unwrap_or_else(|e| panic!("hostPort {gateway}: {e}"));
    assert!(via_port.ends_with("hi from pod\n"), "{via_port:?}");

    // A daemon killed and restarted still knows how to detach the pods (DEL needs the list and
    // the ADD result, kept in the sandbox records).
    d.kill9().await;
    d.restart().await;

    // Stop: CNI DEL (twice: idempotent); remove: the namespace pin goes.
    for id in [&a, &b] {
        for _ in 0..2 {
            d.rt().stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id.to_string() }).await.unwrap();
        }
    }
    assert!(net.allocations().is_empty(), "IPs still allocated after stop: {:?}", net.allocations());
    assert_eq!(net.veths(), 0, "veths left after stop");
    for id in [&a, &b] {
        d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id.to_string() }).await.unwrap();
    }
    assert!(!netns_a.exists() && !netns_b.exists(), "netns pins left after remove");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_network_fails_the_pod_and_leaves_nothing() {
    let d = Daemon::start("netbad", &[]).await;
    std::fs::create_dir_all(d.cni_conf_dir()).unwrap();
    // Valid list, but its plugin does not exist: RunPodSandbox must fail naming it.
    std::fs::write(
        d.cni_conf_dir().join("10-bad.conflist"),
        r#"{"cniVersion":"1.0.0","name":"bad","plugins":[{"type":"no-such-plugin"}]}"#,
    )
    .unwrap();
    let result = d.rt().run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(pod_network_config(&d, "bad")), runtime_handler: String::new() }).await;
    expect_error("RunPodSandbox with a missing plugin", result, tonic::Code::FailedPrecondition, &["no-such-plugin"]);
    let pods = d.rt().list_pod_sandbox(cri::ListPodSandboxRequest::default()).await.unwrap().into_inner().items;
    assert!(pods.is_empty(), "{pods:?}");
    d.wait_no_shims(Duration::from_secs(5)).await;
    let pins: Vec<_> = std::fs::read_dir(d.state.join("netns")).map(|r| r.flatten().collect()).unwrap_or_default();
    assert!(pins.is_empty(), "netns pins left: {pins:?}");
}
