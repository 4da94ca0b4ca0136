//! Components exporting `wasi:http/incoming-handler`, served by the shim on the container's
//! declared port with a new instance per request: requests answered (each by a fresh instance),
//! a trapping request answered 500 while the server keeps serving, StopContainer ending the server
//! and a request in flight promptly; and a `wrk` measurement of requests/s against the handler and
//! the http-server guest (WASI 0.2 sockets) side by side.
//!
//! The pods have their own network namespace (loopback only: no CNI config); the test reaches
//! them from a thread that `setns`'es into the namespace (or with `nsenter --net` for `wrk`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

/// A pod with its own network namespace declaring TCP `port` (as kubelet passes a pod's ports).
fn handler_pod(d: &Daemon, name: &str, port: u16) -> cri::PodSandboxConfig {
    let mut pod = d.pod_config(name);
    let ns = pod.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options.as_mut().unwrap();
    ns.network = cri::NamespaceMode::Pod as i32;
    pod.port_mappings = vec![cri::PortMapping { protocol: cri::Protocol::Tcp as i32, container_port: port.into(), ..Default::default() }];
    pod
}

/// The pin of the pod's network namespace, from the verbose PodSandboxStatus.
async fn netns_of(d: &Daemon, sandbox: &str) -> PathBuf {
    let req = cri::PodSandboxStatusRequest { pod_sandbox_id: sandbox.into(), verbose: true };
    let info = d.rt().pod_sandbox_status(req).await.unwrap().into_inner().info;
    let info: serde_json::Value = serde_json::from_str(&info["info"]).unwrap();
    PathBuf::from(info["netns"].as_str().unwrap_or_else(|| panic!("no netns pin for pod {sandbox}: {info}")))
}

/// Runs `f` on a thread inside the network namespace pinned at `netns`.
fn in_netns<T: Send + 'static>(netns: &Path, f: impl FnOnce() -> T + Send + 'static) -> std::thread::JoinHandle<std::io::Result<T>> {
    let netns = netns.to_owned();
    std::thread::spawn(move || {
        let pin = std::fs::File::open(&netns)?;
        nix::sched::setns(pin.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        Ok(f())
    })
}

/// `GET path` on a connection of its own; the status code and the body.
fn get(port: u16, path: &str) -> std::io::Result<(u16, String)> {
    get_within(port, path, Duration::from_secs(10))
}

/// [`get`], giving up (and hanging up) after `patience` without a full reply.
fn get_within(port: u16, path: &str, patience: Duration) -> std::io::Result<(u16, String)> {
    let addr: SocketAddr = ([127, 0, 0, 1], port).into();
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(patience))?;
    write!(s, "GET {path} HTTP/1.1\r\nhost: pod\r\nconnection: close\r\n\r\n")?;
    let mut reply = String::new();
    s.read_to_string(&mut reply)?;
    let status =
        reply.get(9..12).and_then(|c| c.parse().ok()).ok_or_else(|| std::io::Error::other(format!("not an HTTP reply: {reply:?}")))?;
    let body = reply.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    Ok((status, body))
}

/// [`get`] from inside the pod's namespace.
fn get_in(netns: &Path, port: u16, path: &str) -> std::io::Result<(u16, String)> {
    let path = path.to_string();
    in_netns(netns, move || get(port, &path)).join().unwrap()?
}

async fn wait_serving(netns: &Path, port: u16) {
    eventually(Duration::from_secs(10), &format!("the handler answering on port {port}"), || async {
        get_in(netns, port, "/ready").map_err(|e| e.to_string())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_get_fresh_instances_a_trap_is_a_500_and_stop_ends_the_server() {
    const PORT: u16 = 9090;
    let d = Daemon::start("http-handler", &[HTTP_HANDLER_P2]).await;
    let pod = handler_pod(&d, "handler", PORT);
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    let netns = netns_of(&d, &sandbox).await;
    let config = container_config("web", HTTP_HANDLER_P2.image, &[], &[("MESSAGE", "hi from the handler")], vec![]);
    let id = create_with(&d.cri, &sandbox, &pod, config).await;
    let req = cri::StartContainerRequest { container_id: id.clone() };
    d.rt().start_container(req).await.unwrap_or_else(|e| panic!("StartContainer: {e:?}\n{}", d.daemon_log()));
    wait_serving(&netns, PORT).await;

    // Each request is answered by a new instance: the guest's global counter is 1 every time,
    // and its environment (MESSAGE) is the container's.
    for i in 0..5 {
        let path = format!("/hello/{i}?q={i}");
        let (status, body) = get_in(&netns, PORT, &path).unwrap();
        assert_eq!((status, body.as_str()), (200, format!("hi from the handler path={path} count=1\n").as_str()));
    }
    // Concurrent requests, each in its own instance too.
    let clients: Vec<_> = (0..8).map(|i| in_netns(&netns, move || get(PORT, &format!("/concurrent/{i}")))).collect();
    for (i, client) in clients.into_iter().enumerate() {
        let (status, body) = client.join().unwrap().unwrap().unwrap();
        assert_eq!((status, body), (200, format!("hi from the handler path=/concurrent/{i} count=1\n")));
    }

    // A trap is that request's 500; the server keeps serving.
    let (status, body) = get_in(&netns, PORT, "/trap").unwrap();
    assert_eq!(status, 500, "{body:?}");
    let (status, body) = get_in(&netns, PORT, "/after-the-trap").unwrap();
    assert_eq!((status, body.as_str()), (200, "hi from the handler path=/after-the-trap count=1\n"));
    let status = d.status(&id).await;
    assert_eq!(state_name(status.state), "CONTAINER_RUNNING", "{status:?}");

    // The guest's stdout is the container's log, with why the trapped request failed.
    let log = Path::new(&pod.log_directory).join("web/0.log");
    let text = eventually(Duration::from_secs(5), "the requests in the container's log", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("GET /after-the-trap") && text.contains("request GET /trap failed") { Ok(text) } else { Err(text) }
    })
    .await;
    assert!(text.contains(" stdout F request 1: GET /hello/0?q=0"), "{text}");
    assert!(!text.contains("request 2:"), "an instance served two requests: {text}");
    assert!(text.contains(" stderr F wasmlet: request GET /trap failed:"), "{text}");

    // Guests computing forever, more than there are worker threads, yield at every epoch tick:
    // the server still answers beside them.
    let impatient: Vec<_> = (0..3).map(|_| in_netns(&netns, || get_within(PORT, "/spin", Duration::from_millis(300)))).collect();
    for client in impatient {
        let reply = client.join().unwrap().unwrap();
        assert!(reply.is_err(), "/spin never answers: {reply:?}");
    }
    let beside = Instant::now();
    let (status, body) = get_in(&netns, PORT, "/beside-the-spinners").unwrap();
    assert_eq!((status, body.as_str()), (200, "hi from the handler path=/beside-the-spinners count=1\n"));
    assert!(beside.elapsed() < Duration::from_secs(2), "answered beside spinning guests in {:?}", beside.elapsed());

    // A request in flight (a guest spinning forever) does not hold up StopContainer.
    let spinning = in_netns(&netns, || get(PORT, "/spin"));
    eventually(Duration::from_secs(5), "the /spin request to reach the guest", || async {
        let text = std::fs::read_to_string(&log).unwrap_or_default();
        if text.contains("GET /spin") { Ok(()) } else { Err(text) }
    })
    .await;
    let stopping = Instant::now();
    d.rt().stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 30 }).await.unwrap();
    let took = stopping.elapsed();
    assert!(took < Duration::from_secs(3), "StopContainer took {took:?}");
    let status = d.status(&id).await;
    assert_eq!((state_name(status.state).as_str(), status.exit_code), ("CONTAINER_EXITED", 137), "{status:?}");
    let spun = spinning.join().unwrap().unwrap();
    assert!(matches!(spun, Err(_) | Ok((503, _))), "the in-flight request was cut or answered 503: {spun:?}");
    let refused = get_in(&netns, PORT, "/").unwrap_err();
    assert_eq!(refused.kind(), std::io::ErrorKind::ConnectionRefused, "{refused}");
}

/// `wrk` for 5 s against `127.0.0.1:port` inside `netns`; requests/s, and the summary.
fn wrk(netns: &Path, port: u16, close: bool) -> (f64, String) {
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", netns.display())).args(["wrk", "-t1", "-c8", "-d5s"]);
    if close {
        cmd.args(["-H", "Connection: close"]);
    }
    cmd.arg(format!("http://127.0.0.1:{port}/"));
    let out = cmd.output().unwrap_or_else(|e| panic!("running nsenter wrk (scripts/install-deps.sh installs wrk): {e}"));
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(out.status.success(), "wrk failed ({}): {text}{}", out.status, String::from_utf8_lossy(&out.stderr));
    assert!(!text.contains("Non-2xx"), "wrk saw errors: {text}");
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no Requests/sec in wrk's output: {text}"));
    (rps, text)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_per_second_handler_vs_http_server_guest() {
    const HANDLER: u16 = 9091;
    const SERVER: u16 = 9092;
    let d = Daemon::start("http-rps", &[HTTP_HANDLER_P2, HTTP_SERVER_P2]).await;
    let pod = handler_pod(&d, "rps", HANDLER);
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    let netns = netns_of(&d, &sandbox).await;
    let handler =
        create_with(&d.cri, &sandbox, &pod, container_config("handler", HTTP_HANDLER_P2.image, &[], &[("MESSAGE", "hi")], vec![])).await;
    let server = create_with(&d.cri, &sandbox, &pod, container_config("server", HTTP_SERVER_P2.image, &["9092", "hi"], &[], vec![])).await;
    d.start_container(&handler).await;
    d.start_container(&server).await;
    wait_serving(&netns, HANDLER).await;
    wait_serving(&netns, SERVER).await;

    let (handler_keepalive, handler_text) = wrk(&netns, HANDLER, false);
    let (handler_close, _) = wrk(&netns, HANDLER, true);
    let (server_rps, server_text) = wrk(&netns, SERVER, false);
    eprintln!(
        "requests/s, wrk -t1 -c8 -d5s on loopback in the pod's namespace:\n  \
         wasi:http handler (instance per request), keep-alive:   {handler_keepalive:>10.0}\n  \
         wasi:http handler (instance per request), conn. close: {handler_close:>10.0}\n  \
         http-server guest (WASI sockets, closes each conn.):    {server_rps:>10.0}\n\
         --- handler, keep-alive ---\n{handler_text}--- http-server ---\n{server_text}"
    );
    assert!(handler_keepalive > 0.0 && handler_close > 0.0 && server_rps > 0.0);
    for id in [&handler, &server] {
        let status = d.status(id).await;
        assert_eq!(state_name(status.state), "CONTAINER_RUNNING", "after the load: {status:?}");
    }
}
