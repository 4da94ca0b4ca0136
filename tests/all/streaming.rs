//! Exec, port-forward and the streaming server, end to end: ExecSync runs a new instance of a
//! running Wasm container's module (and kills it at its timeout); Exec hands out a one-time URL
//! that a WebSocket client (written here, and Python's `websockets`) and a SPDY/3.1 client
//! (written here) stream the command at, with kubelet's exit status on the error channel;
//! PortForward reaches a server listening on the loopback of a pod's own network namespace over
//! both protocols; used, unknown and malformed requests get the right error and leave nothing
//! running.
//!
//! The clients (`harness/stream_clients.rs`) are small and blocking, on threads of their own:
//! they speak the wire formats byte by byte, as kubectl's do. Attach is in `attach.rs`.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;


/// A pod with a long-running, quiet Wasm container (`logger`, a tick a minute) with the
/// environment `GREETING=hi` and `/tools` mounted from `tools`; returns (sandbox, container).
async fn running_logger(d: &Daemon, name: &str, tools: &std::path::Path) -> (String, String) {
    let pod = d.run_pod(name).await;
    let c = d
        .create(
            &pod,
            "app",
            LOGGER_P1.image,
            &["60000"],
            &[("GREETING", "hi")],
            vec![mount("/tools", tools, true)],
        )
        .await;
    d.start_container(&c).await;
    (pod, c)
}

fn tools_dir(d: &Daemon) -> std::path::PathBuf {
    let tools = d.dir.join("tools");
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::copy(wasmlet_wasm_apps::HELLO_P1, tools.join("hello.wasm")).unwrap();
    std::fs::copy(
        wasmlet_wasm_apps::CPU_BURNER_P1,
        tools.join("cpu-burner.wasm"),
    )
    .unwrap();
    tools
}

async fn exec_sync(
    d: &Daemon,
    id: &str,
    cmd: &[&str],
    timeout: i64,
) -> Result<cri::ExecSyncResponse, tonic::Status> {
    let req = cri::ExecSyncRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        timeout,
    };
    d.rt().exec_sync(req).await.map(|r| r.into_inner())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_sync_runs_a_new_instance_of_the_containers_module() {
    let d = Daemon::start("exec-sync", &[LOGGER_P1]).await;
    let tools = tools_dir(&d);
    let (_pod, c) = running_logger(&d, "execsync", &tools).await;

    // The container's own module with the exec's argv: output, exit code, stderr.
    let r = exec_sync(&d, &c, &["logger", "1", "3"], 10)
        .await
        .expect("ExecSync logger 1 3");
    assert_eq!(
        (r.exit_code, String::from_utf8_lossy(&r.stdout).as_ref()),
        (0, "tick 1\ntick 2\ntick 3\n")
    );
    let r = exec_sync(&d, &c, &["logger", "soon"], 10)
        .await
        .expect("ExecSync logger soon");
    assert_eq!(r.exit_code, 2);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("invalid INTERVAL_MS"),
        "{r:?}"
    );

    // Another module in a mounted directory, with the container's environment.
    let r = exec_sync(&d, &c, &["/tools/hello.wasm", "x"], 10)
        .await
        .expect("ExecSync /tools/hello.wasm");
    let out = String::from_utf8_lossy(&r.stdout);
    assert!(
        r.exit_code == 0 && out.contains("argv[1]=x") && out.contains("env GREETING=hi"),
        "{out}"
    );
    let r = exec_sync(&d, &c, &["/tools/missing.wasm"], 10)
        .await
        .expect("ExecSync of a missing module answers");
    assert_ne!(r.exit_code, 0);
    assert!(
        String::from_utf8_lossy(&r.stderr).contains("no module"),
        "{r:?}"
    );

    // The timeout kills a guest spinning in a loop (epoch interruption), within its second.
    let start = Instant::now();
    let err = exec_sync(&d, &c, &["/tools/cpu-burner.wasm"], 1)
        .await
        .expect_err("a cpu-burner exec past its timeout");
    assert_eq!(err.code(), tonic::Code::DeadlineExceeded, "{err:?}");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "killed {:?} after the call",
        start.elapsed()
    );
    // The container itself runs on, and answers the next exec.
    assert_eq!(
        d.status(&c).await.state,
        cri::ContainerState::ContainerRunning as i32
    );
    assert_eq!(
        exec_sync(&d, &c, &["logger", "1", "1"], 10)
            .await
            .unwrap()
            .exit_code,
        0
    );

    // Round trip of a Wasm exec, measured.
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..100 {
        let t = Instant::now();
        let r = exec_sync(&d, &c, &["logger", "1", "1"], 10).await.unwrap();
        times.push(t.elapsed());
        assert_eq!(r.stdout, b"tick 1\n");
    }
    times.sort();
    eprintln!(
        "ExecSync of a Wasm exec (logger 1 1), 100 runs: p50 {:?}, p90 {:?}, max {:?}",
        times[50], times[90], times[99]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_refuses_what_it_cannot_run() {
    let d = Daemon::start("exec-refusals", &[LOGGER_P1, HELLO_P1]).await;
    let tools = tools_dir(&d);
    let (pod, c) = running_logger(&d, "refusals", &tools).await;
    expect_error(
        "ExecSync of an unknown container",
        exec_sync(&d, "f00d", &["x"], 1).await,
        tonic::Code::NotFound,
        &["f00d"],
    );
    expect_error(
        "ExecSync without a command",
        exec_sync(&d, &c, &[], 1).await,
        tonic::Code::InvalidArgument,
        &["cmd"],
    );
    let done = d
        .create(&pod, "done", HELLO_P1.image, &[], &[], vec![])
        .await;
    d.start_container(&done).await;
    d.wait_exited(&done, EXEC_TIMEOUT).await;
    expect_error(
        "ExecSync in an exited container",
        exec_sync(&d, &done, &["hello"], 1).await,
        tonic::Code::FailedPrecondition,
        &["not running"],
    );
    let exec = |id: &str, tty, stderr| cri::ExecRequest {
        container_id: id.into(),
        cmd: vec!["logger".into()],
        tty,
        stdin: false,
        stdout: true,
        stderr,
    };
    expect_error(
        "Exec in an exited container",
        d.rt().exec(exec(&done, false, true)).await,
        tonic::Code::FailedPrecondition,
        &["not running"],
    );
    expect_error(
        "Exec with tty and stderr",
        d.rt().exec(exec(&c, true, true)).await,
        tonic::Code::InvalidArgument,
        &["tty and stderr"],
    );
    let pf = cri::PortForwardRequest {
        pod_sandbox_id: "nope".into(),
        port: vec![80],
    };
    expect_error(
        "PortForward of an unknown pod",
        d.rt().port_forward(pf).await,
        tonic::Code::NotFound,
        &["nope"],
    );
    let pf = cri::PortForwardRequest {
        pod_sandbox_id: pod.clone(),
        port: vec![70000],
    };
    expect_error(
        "PortForward of port 70000",
        d.rt().port_forward(pf).await,
        tonic::Code::InvalidArgument,
        &["70000"],
    );

    // A URL is good once, and an unknown or garbled one never.
    let url = exec_url(&d, &c, &["logger", "1", "1"]).await;
    let first = ws_exec(&url, "v5.channel.k8s.io");
    assert_eq!(first.stdout, "tick 1\n");
    for bad in [
        url.clone(),
        url.replace("/exec/", "/exec/x"),
        url.replace("/exec/", "/portforward/"),
    ] {
        let head = http_upgrade(&bad, &ws_headers("v5.channel.k8s.io")).1;
        assert!(head.starts_with("HTTP/1.1 404"), "{bad}: {head}");
    }
    let shims = d.shim_pids();
    assert_eq!(shims.len(), 1, "one shim for the one pod: {shims:?}");
}

async fn exec_url(d: &Daemon, id: &str, cmd: &[&str]) -> String {
    let req = cri::ExecRequest {
        container_id: id.into(),
        cmd: cmd.iter().map(|s| s.to_string()).collect(),
        tty: false,
        stdin: false,
        stdout: true,
        stderr: true,
    };
    let url = d.rt().exec(req).await.expect("Exec").into_inner().url;
    assert!(
        url.starts_with("http://127.0.0.1:") && url.contains("/exec/"),
        "{url}"
    );
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_streams_over_websocket_and_spdy() {
    let d = Daemon::start("exec-stream", &[LOGGER_P1]).await;
    let tools = tools_dir(&d);
    let (_pod, c) = running_logger(&d, "stream", &tools).await;

    for protocol in ["v5.channel.k8s.io", "v4.channel.k8s.io"] {
        let ok = ws_exec(&exec_url(&d, &c, &["logger", "1", "2"]).await, protocol);
        assert_eq!(ok.protocol, protocol);
        assert_eq!(ok.stdout, "tick 1\ntick 2\n");
        assert_eq!(ok.status["status"], "Success", "{ok:?}");
        let failed = ws_exec(&exec_url(&d, &c, &["logger", "nope"]).await, protocol);
        assert!(failed.stderr.contains("invalid INTERVAL_MS"), "{failed:?}");
        assert_eq!(failed.status["reason"], "NonZeroExitCode", "{failed:?}");
        assert_eq!(failed.status["details"]["causes"][0]["reason"], "ExitCode");
        assert_eq!(failed.status["details"]["causes"][0]["message"], "2");
    }

    let mut times = Vec::new();
    for _ in 0..20 {
        let url = exec_url(&d, &c, &["logger", "1", "1"]).await;
        let t = Instant::now();
        let ok = spdy_exec(&url);
        times.push(t.elapsed());
        assert_eq!(
            (ok.protocol.as_str(), ok.stdout.as_str()),
            ("v4.channel.k8s.io", "tick 1\n"),
            "{ok:?}"
        );
        assert_eq!(ok.status["status"], "Success", "{ok:?}");
    }
    times.sort();
    eprintln!(
        "SPDY exec (logger 1 1), upgrade to exit status, 20 runs: p50 {:?}",
        times[10]
    );
    let failed = spdy_exec(&exec_url(&d, &c, &["logger", "nope"]).await);
    assert_eq!(
        failed.status["details"]["causes"][0]["message"], "2",
        "{failed:?}"
    );
    assert!(failed.stderr.contains("invalid INTERVAL_MS"), "{failed:?}");

    // A client that goes away mid-exec kills it: a cpu-burner exec over SPDY, then a hang-up.
    let url = exec_url(&d, &c, &["/tools/cpu-burner.wasm"]).await;
    let mut s = spdy_connect(&url, "v4.channel.k8s.io");
    s.open_exec_streams();
    s.read_until(|f| matches!(f, SpdyFrame::Data { data, .. } if String::from_utf8_lossy(data).contains("burning")));
    drop(s);
    let log = || d.dir.join("s").join("shims");
    eventually(EXEC_TIMEOUT, "the shim to log the killed exec", || async {
        let logs = shim_logs(&log());
        if logs.contains("exec ended") && logs.contains("Killed") {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;

    // A malformed frame ends the session with GOAWAY, before anything runs.
    let url = exec_url(&d, &c, &["/tools/cpu-burner.wasm"]).await;
    let mut s = spdy_connect(&url, "v4.channel.k8s.io");
    s.sock
        .write_all(&[
            0x80, 3, 0, 1, 0, 0, 0, 14, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, b'j', b'u', b'n', b'k',
        ])
        .unwrap();
    match s.read_frame() {
        Some(SpdyFrame::Control {
            kind: 7, payload, ..
        }) => assert_eq!(&payload[4..8], &[0, 0, 0, 1], "GOAWAY(PROTOCOL_ERROR)"),
        other => panic!("expected GOAWAY, got {other:?}"),
    }
    assert!(
        s.read_frame().is_none(),
        "the connection is closed after GOAWAY"
    );
    // And a WebSocket client that does not mask its frames is closed with 1002.
    let url = exec_url(&d, &c, &["logger", "1", "1"]).await;
    let (mut ws, head) = http_upgrade(&url, &ws_headers("v5.channel.k8s.io"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    ws.write_all(&[0x82, 0x02, 0x00, b'x']).unwrap();
    let code = loop {
        match ws_read(&mut ws) {
            Some((8, payload)) => break u16::from_be_bytes([payload[0], payload[1]]),
            Some(_) => continue,
            None => panic!("closed without a close frame"),
        }
    };
    assert_eq!(code, 1002);
}

fn shim_logs(shims: &std::path::Path) -> String {
    let mut all = String::new();
    for dir in std::fs::read_dir(shims).into_iter().flatten().flatten() {
        all += &std::fs::read_to_string(dir.path().join("shim.log")).unwrap_or_default();
    }
    all
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_websockets_drives_an_exec() {
    let d = Daemon::start("exec-python", &[LOGGER_P1]).await;
    let tools = tools_dir(&d);
    let (_pod, c) = running_logger(&d, "python", &tools).await;
    let url = exec_url(&d, &c, &["logger", "1", "2"])
        .await
        .replacen("http://", "ws://", 1);
    let script = r#"
import asyncio, json, sys
import websockets
async def main(url):
    out, err, status = b"", b"", None
    async with websockets.connect(url, subprotocols=["v5.channel.k8s.io"]) as ws:
        try:
            async for msg in ws:
                if isinstance(msg, str):
                    msg = msg.encode()
                if not msg:
                    continue
                ch, data = msg[0], msg[1:]
                if ch == 1: out += data
                elif ch == 2: err += data
                elif ch == 3 and data: status = json.loads(data)
        except websockets.ConnectionClosed:
            pass
        print(json.dumps({"protocol": ws.subprotocol, "stdout": out.decode(), "stderr": err.decode(), "status": status}))
asyncio.run(main(sys.argv[1]))
"#;
    // Debian's Python, where scripts/install-deps.sh installs python3-websockets (a pyenv
    // python3 first on PATH would not see it).
    let out = std::process::Command::new("/usr/bin/python3").arg("-c").arg(script).arg(&url).output().expect(
        "running /usr/bin/python3 (scripts/install-deps.sh installs it with python3-websockets)",
    );
    assert!(
        out.status.success(),
        "the python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["protocol"], "v5.channel.k8s.io");
    assert_eq!(v["stdout"], "tick 1\ntick 2\n");
    assert_eq!(v["status"]["status"], "Success", "{v}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn port_forward_reaches_the_pods_own_loopback() {
    let d = Daemon::start("port-forward", &[HTTP_SERVER_P2]).await;
    // A pod with its own network namespace (no CNI network: loopback only, unreachable from
    // the node but through the port-forward).
    let mut config = d.pod_config("web");
    let ns = config
        .linux
        .as_mut()
        .unwrap()
        .security_context
        .as_mut()
        .unwrap()
        .namespace_options
        .as_mut()
        .unwrap();
    ns.network = cri::NamespaceMode::Pod as i32;
    let pod = run_pod_with(&d.cri, config.clone()).await;
    let port = 18080 + (std::process::id() % 1000) as u16;
    let c = create_with(
        &d.cri,
        &pod,
        &config,
        container_config(
            "web",
            HTTP_SERVER_P2.image,
            &[&port.to_string(), "hello from the pod"],
            &[],
            vec![],
        ),
    )
    .await;
    d.start_container(&c).await;
    let log = std::path::Path::new(&config.log_directory).join("web/0.log");
    eventually(EXEC_TIMEOUT, "the server to listen", || async {
        let l = std::fs::read_to_string(&log).unwrap_or_default();
        if l.contains("listening on") {
            Ok(())
        } else {
            Err(l)
        }
    })
    .await;
    assert!(
        TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the pod's port is not on the node's loopback"
    );

    let url = || async {
        d.rt()
            .port_forward(cri::PortForwardRequest {
                pod_sandbox_id: pod.clone(),
                port: vec![port as i32],
            })
            .await
            .unwrap()
            .into_inner()
            .url
    };

    // SPDY: a pair of streams per connection; one to a dead port gets its error, the session
    // goes on, and the next pair reaches the server.
    let u = url().await;
    let mut s = spdy_connect(&u, "portforward.k8s.io");
    let dead = port + 1;
    s.syn(
        1,
        &[
            ("streamtype", "error"),
            ("port", &dead.to_string()),
            ("requestid", "0"),
        ],
        false,
    );
    s.syn(
        3,
        &[
            ("streamtype", "data"),
            ("port", &dead.to_string()),
            ("requestid", "0"),
        ],
        false,
    );
    let err = s.collect_until_fin(1);
    assert!(
        err.contains(&format!("localhost:{dead}")),
        "the dead port's error stream says why: {err:?}"
    );
    s.syn(
        5,
        &[
            ("streamtype", "error"),
            ("port", &port.to_string()),
            ("requestid", "1"),
        ],
        false,
    );
    s.syn(
        7,
        &[
            ("streamtype", "data"),
            ("port", &port.to_string()),
            ("requestid", "1"),
        ],
        false,
    );
    s.data(7, b"GET / HTTP/1.1\r\nhost: pod\r\n\r\n", false);
    let body = s.collect_until_fin(7);
    assert!(
        body.starts_with("HTTP/1.1 200") && body.ends_with("hello from the pod\n"),
        "{body:?}"
    );
    drop(s);

    // WebSocket: channel 0 data, 1 error, each opened with the port in two little-endian bytes.
    let u = url().await;
    let (mut ws, head) = http_upgrade(&u, &ws_headers("v4.channel.k8s.io"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    let mut prefixes = 0;
    while prefixes < 2 {
        let (op, msg) = ws_read(&mut ws).expect("port prefixes");
        assert_eq!((op, &msg[1..]), (2, &port.to_le_bytes()[..]));
        prefixes += 1;
    }
    ws_write(
        &mut ws,
        &[&[0u8][..], b"GET / HTTP/1.1\r\nhost: pod\r\n\r\n"].concat(),
    );
    let mut body = Vec::new();
    while let Some((op, msg)) = ws_read(&mut ws) {
        match (op, msg.first()) {
            (2, Some(0)) => body.extend_from_slice(&msg[1..]),
            (2, Some(1)) if msg.len() > 1 => {
                panic!("error channel: {}", String::from_utf8_lossy(&msg[1..]))
            }
            (8, _) => break,
            _ => {}
        }
    }
    let body = String::from_utf8_lossy(&body);
    assert!(
        body.starts_with("HTTP/1.1 200") && body.ends_with("hello from the pod\n"),
        "{body:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silent_sessions_are_closed_at_the_idle_timeout_and_torn_down() {
    let d = Daemon::start_with_env("stream-idle", &[LOGGER_P1, UPCASE_P1], &[("WASMLET_STREAM_IDLE_TIMEOUT", "2s")]).await;
    let tools = tools_dir(&d);
    let (_pod, c) = running_logger(&d, "idle", &tools).await;
    let ends_in = |sock: &mut TcpStream| {
        let started = Instant::now();
        let _ = ws_read_to_end(sock);
        started.elapsed()
    };

    // A quiet exec (one tick a minute after the first): closed after 2 s, and killed.
    let url = exec_url(&d, &c, &["logger", "60000"]).await;
    let (mut sock, head) = http_upgrade(&url, &ws_headers("v5.channel.k8s.io"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    ws_read_until(&mut sock, 1, "tick 1");
    let took = ends_in(&mut sock);
    assert!(took >= Duration::from_millis(1500) && took < Duration::from_secs(10), "the idle exec session ended after {took:?}");
    let shims = d.dir.join("s").join("shims");
    eventually(EXEC_TIMEOUT, "the shim to log the exec killed at the idle timeout", || async {
        let logs = shim_logs(&shims);
        if logs.contains("exec ended") && logs.contains("Killed") { Ok(()) } else { Err("not yet".to_string()) }
    })
    .await;

    // An attach that types every 0.5 s lives past the timeout; once silent, it is closed and
    // detached, and the container runs on.
    let pod = d.run_pod("idle-attach").await;
    let mut config = container_config("up", UPCASE_P1.image, &[], &[], vec![]);
    config.stdin = true;
    let up = d.create_config(&pod, config).await;
    d.start_container(&up).await;
    let baseline = shim_fds(&d);
    let (mut sock, head) = http_upgrade(&attach_url(&d, &up, true, false, true).await, &ws_headers("v5.channel.k8s.io"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    for i in 0..8 {
        ws_write(&mut sock, format!("\x00keep {i}\n").as_bytes());
        ws_read_until(&mut sock, 1, &format!("KEEP {i}\n"));
        std::thread::sleep(Duration::from_millis(500));
    }
    let took = ends_in(&mut sock);
    assert!(took >= Duration::from_millis(1000) && took < Duration::from_secs(10), "the idle attach ended after {took:?}");
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.status(&up).await.state, cri::ContainerState::ContainerRunning as i32);
    eventually(Duration::from_secs(10), "the shim to close the attach's descriptors", || async {
        let now = shim_fds(&d);
        if now <= baseline { Ok(()) } else { Err(format!("{now} fds, {baseline} before: {}", fd_targets(&d))) }
    })
    .await;
}
