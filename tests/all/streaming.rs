//! Exec, port-forward and the streaming server, end to end: ExecSync runs a new instance of a
//! running Wasm container's module (and kills it at its timeout); Exec hands out a one-time URL
//! that a WebSocket client (written here, and Python's `websockets`) and a SPDY/3.1 client
//! (written here) stream the command at, with kubelet's exit status on the error channel;
//! PortForward reaches a server listening on the loopback of a pod's own network namespace over
//! both protocols; used, unknown and malformed requests get the right error and leave nothing
//! running.
//!
//! The clients are small and blocking, on threads of their own: they speak the wire formats
//! byte by byte, as kubectl's do, and share no code with the server except the SPDY dictionary.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

const EXEC_TIMEOUT: Duration = Duration::from_secs(20);

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
async fn python_websockets_drives_an_attach() {
    let d = Daemon::start("attach-python", &[UPCASE_P1]).await;
    let pod = d.run_pod("py-attach").await;
    let mut config = container_config("up", UPCASE_P1.image, &["py: "], &[], vec![]);
    (config.stdin, config.stdin_once) = (true, true);
    let c = d.create_config(&pod, config).await;
    d.start_container(&c).await;
    let url = attach_url(&d, &c, true, false, true).await.replacen("http://", "ws://", 1);
    // Types two lines, reads their echo, closes stdin (v5's close signal): stdin_once gives the
    // guest EOF, it exits, and the status arrives on the error channel.
    let script = r#"
import asyncio, json, sys
import websockets
async def main(url):
    out, err, status = b"", b"", None
    async with websockets.connect(url, subprotocols=["v5.channel.k8s.io"]) as ws:
        await ws.send(b"\x00hello\nworld\n")
        try:
            async for msg in ws:
                if isinstance(msg, str):
                    msg = msg.encode()
                if not msg:
                    continue
                ch, data = msg[0], msg[1:]
                if ch == 1:
                    out += data
                    if b"WORLD" in out:
                        await ws.send(bytes([255, 0]))
                elif ch == 2: err += data
                elif ch == 3 and data: status = json.loads(data)
        except websockets.ConnectionClosed:
            pass
        print(json.dumps({"stdout": out.decode(), "stderr": err.decode(), "status": status}))
asyncio.run(main(sys.argv[1]))
"#;
    let out = std::process::Command::new("/usr/bin/python3").arg("-c").arg(script).arg(&url).output().expect(
        "running /usr/bin/python3 (scripts/install-deps.sh installs it with python3-websockets)",
    );
    assert!(out.status.success(), "the python client failed: {}", String::from_utf8_lossy(&out.stderr));
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["stdout"], "py: HELLO\npy: WORLD\n", "{v}");
    assert!(v["stderr"].as_str().unwrap().contains("eof after 2 lines"), "{v}");
    assert_eq!(v["status"]["status"], "Success", "{v}");
    assert_eq!(d.wait_exited(&c, Duration::from_secs(10)).await.exit_code, 0);
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

// ------------------------------------------------------------------------------------------
// The clients.

/// What an exec streamed back.
#[derive(Debug, Default)]
struct ExecResult {
    protocol: String,
    stdout: String,
    stderr: String,
    status: serde_json::Value,
}

async fn attach_url(d: &Daemon, id: &str, stdin: bool, tty: bool, stderr: bool) -> String {
    let req = cri::AttachRequest { container_id: id.into(), stdin, tty, stdout: true, stderr };
    d.rt().attach(req).await.expect("Attach").into_inner().url
}

/// Reads WebSocket channels 1 and 2 until `needle` shows up on `channel`; returns what came on it.
fn ws_read_until(sock: &mut TcpStream, channel: u8, needle: &str) -> String {
    let mut out = String::new();
    while !out.contains(needle) {
        match ws_read(sock) {
            Some((2, msg)) if msg.first() == Some(&channel) => out += &String::from_utf8_lossy(&msg[1..]),
            Some((8, _)) | None => panic!("the session ended before {needle:?} on channel {channel}; got {out:?}"),
            _ => {}
        }
    }
    out
}

/// Reads a WebSocket session to its end: (stdout, stderr, the status on the error channel).
fn ws_read_to_end(sock: &mut TcpStream) -> (String, String, serde_json::Value) {
    let (mut out, mut err, mut status) = (String::new(), String::new(), serde_json::Value::Null);
    while let Some((op, msg)) = ws_read(sock) {
        match (op, msg.first()) {
            (8, _) => break,
            (2, Some(1)) => out += &String::from_utf8_lossy(&msg[1..]),
            (2, Some(2)) => err += &String::from_utf8_lossy(&msg[1..]),
            (2, Some(3)) if msg.len() > 1 => status = serde_json::from_slice(&msg[1..]).expect("a Status JSON"),
            _ => {}
        }
    }
    (out, err, status)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_to_a_wasm_container_feeds_its_stdin_and_fans_out_its_output() {
    let d = Daemon::start("wasm-attach", &[UPCASE_P1]).await;
    let pod = d.run_pod("upcase").await;
    let mut config = container_config("up", UPCASE_P1.image, &["> "], &[], vec![]);
    (config.stdin, config.stdin_once) = (true, true);
    let c = d.create_config(&pod, config).await;
    d.start_container(&c).await;

    let (mut first, head) = http_upgrade(&attach_url(&d, &c, true, false, true).await, &ws_headers("v5.channel.k8s.io"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Round trips: a line typed into the guest's stdin, its upper-cased echo back.
    let mut rtts = Vec::new();
    for i in 0..20 {
        let started = Instant::now();
        ws_write(&mut first, format!("\x00line {i}\n").as_bytes());
        ws_read_until(&mut first, 1, &format!("> LINE {i}\n"));
        rtts.push(started.elapsed());
    }
    rtts.sort();
    eprintln!("Wasm attach: stdin line to stdout echo round trip, median {:?}, max {:?} (20 lines)", rtts[10], rtts[19]);

    // A second client attached meanwhile (output only) gets what comes from now on, both streams.
    let (mut second, head) = http_upgrade(&attach_url(&d, &c, false, false, true).await, &ws_headers("v5.channel.k8s.io"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    std::thread::sleep(Duration::from_millis(200));
    ws_write(&mut first, b"\x00both of you\n!to stderr\n");
    // stdout and stderr travel apart, so either may come first.
    let (mut out, mut err) = (String::new(), String::new());
    while !(out.contains("> BOTH OF YOU\n") && err.contains("> TO STDERR\n")) {
        match ws_read(&mut second) {
            Some((2, msg)) if msg.first() == Some(&1) => out += &String::from_utf8_lossy(&msg[1..]),
            Some((2, msg)) if msg.first() == Some(&2) => err += &String::from_utf8_lossy(&msg[1..]),
            Some((8, _)) | None => panic!("the second attach ended early; got {out:?} and {err:?}"),
            _ => {}
        }
    }
    ws_read_until(&mut first, 2, "> TO STDERR\n");

    // stdin_once: the first client closes its stdin (v5's close signal), the guest reads EOF,
    // exits 0, and both sessions end with its exit.
    ws_write(&mut first, &[255, 0]);
    let (_, err, status) = ws_read_to_end(&mut first);
    assert!(err.contains("upcase: eof after 22 lines"), "{err}");
    assert_eq!(status["status"], "Success", "{status}");
    let (_, _, status) = ws_read_to_end(&mut second);
    assert_eq!(status["status"], "Success", "{status}");
    let exited = d.wait_exited(&c, Duration::from_secs(10)).await;
    assert_eq!(exited.exit_code, 0);
    let log = std::fs::read_to_string(d.log_of(&pod, "up")).unwrap();
    for (stream, text) in [("stderr", "upcase ready"), ("stdout", "> LINE 0"), ("stdout", "> BOTH OF YOU"), ("stderr", "> TO STDERR")] {
        assert!(log.lines().any(|l| l.contains(&format!(" {stream} F {text}"))), "{text} as {stream} in the log:\n{log}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_with_a_terminal_to_a_wasm_container_over_spdy_merges_its_streams() {
    let d = Daemon::start("wasm-attach-tty", &[UPCASE_P1]).await;
    let pod = d.run_pod("upcase-tty").await;
    // `kubectl run -it`: a terminal, stdin, stdin_once. A WASI guest has no terminal: the client's
    // one stream carries stdout and stderr, resizes are ignored, and (as containerd does for any
    // container with a terminal) stdin stays open when the client leaves.
    let mut config = container_config("up", UPCASE_P1.image, &[], &[], vec![]);
    (config.stdin, config.stdin_once, config.tty) = (true, true, true);
    let c = d.create_config(&pod, config).await;
    d.start_container(&c).await;
    for round in ["one", "two"] {
        let mut s = spdy_connect(&attach_url(&d, &c, true, true, false).await, "v4.channel.k8s.io");
        s.syn(1, &[("streamtype", "error")], false);
        s.syn(3, &[("streamtype", "stdout")], false);
        s.syn(5, &[("streamtype", "stdin")], false);
        s.syn(7, &[("streamtype", "resize")], false);
        s.data(7, br#"{"Width":100,"Height":30}"#, false);
        std::thread::sleep(Duration::from_millis(200));
        s.data(5, format!("{round}\n!{round} on stderr\n").as_bytes(), false);
        let mut out = String::new();
        let want = format!("{}\n{} ON STDERR\n", round.to_uppercase(), round.to_uppercase());
        while !out.contains(&want) {
            match s.read_frame().expect("the session ended before the echo") {
                SpdyFrame::Data { id: 3, data, .. } => out += &String::from_utf8_lossy(&data),
                SpdyFrame::Control { kind: 3, .. } => panic!("a stream was reset"),
                _ => {}
            }
        }
        // The client ends its stdin: with a terminal the container's stays open and the client
        // is detached (containerd's rule); the session ends with a success.
        s.data(5, b"", true);
        let status = s.collect_until_fin(1);
        assert!(status.is_empty() || status.contains("Success"), "{status}");
        drop(s);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(d.status(&c).await.state, cri::ContainerState::ContainerRunning as i32, "round {round}");
    }
    let log = std::fs::read_to_string(d.log_of(&pod, "up")).unwrap();
    assert!(log.contains(" stdout F ONE") && log.contains(" stderr F TWO ON STDERR"), "the log keeps the guest's streams apart:\n{log}");
    d.rt().stop_container(cri::StopContainerRequest { container_id: c.clone(), timeout: 0 }).await.unwrap();
}

/// Open fds of the daemon's shims, but sockets: the daemon keeps idle connections to a shim
/// for reuse, so their number varies; what a session leaks would be its pipes or terminal.
pub(crate) fn shim_fds(d: &Daemon) -> usize {
    let mut n = 0;
    for p in d.shim_pids() {
        for e in std::fs::read_dir(format!("/proc/{p}/fd")).into_iter().flatten().flatten() {
            n += usize::from(!std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")));
        }
    }
    n
}

fn fd_targets(d: &Daemon) -> String {
    let mut out = Vec::new();
    for p in d.shim_pids() {
        for e in std::fs::read_dir(format!("/proc/{p}/fd")).into_iter().flatten().flatten() {
            out.push(std::fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default());
        }
    }
    out.sort();
    out.join(", ")
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

/// Sends the HTTP upgrade request for `url` with `headers`; returns the socket and the response head.
pub(crate) fn http_upgrade(url: &str, headers: &[(&str, String)]) -> (TcpStream, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut sock = TcpStream::connect(host).expect("connecting to the streaming server");
    sock.set_read_timeout(Some(EXEC_TIMEOUT)).unwrap();
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    sock.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if sock.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (sock, String::from_utf8_lossy(&head).into_owned())
}

pub(crate) fn header_of(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

pub(crate) fn ws_headers(protocol: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Connection", "Upgrade".into()),
        ("Upgrade", "websocket".into()),
        ("Sec-WebSocket-Version", "13".into()),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==".into()),
        ("Sec-WebSocket-Protocol", protocol.into()),
    ]
}

/// One server frame: (opcode, payload); `None` at the end of the connection.
pub(crate) fn ws_read(sock: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    sock.read_exact(&mut h).ok()?;
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            sock.read_exact(&mut l).ok()?;
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            sock.read_exact(&mut l).ok()?;
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload).ok()?;
    Some((h[0] & 0x0f, payload))
}

/// One masked binary frame, as a client must send.
pub(crate) fn ws_write(sock: &mut TcpStream, payload: &[u8]) {
    let mask = [7u8, 1, 8, 2];
    let mut f = vec![0x82];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    sock.write_all(&f).unwrap();
}

fn ws_exec(url: &str, protocol: &str) -> ExecResult {
    let (mut sock, head) = http_upgrade(url, &ws_headers(protocol));
    assert!(head.starts_with("HTTP/1.1 101"), "{url}: {head}");
    assert_eq!(
        header_of(&head, "sec-websocket-accept"),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    let mut r = ExecResult {
        protocol: header_of(&head, "sec-websocket-protocol"),
        ..Default::default()
    };
    while let Some((op, msg)) = ws_read(&mut sock) {
        match (op, msg.first()) {
            (8, _) => break,
            (2, Some(1)) => r.stdout += &String::from_utf8_lossy(&msg[1..]),
            (2, Some(2)) => r.stderr += &String::from_utf8_lossy(&msg[1..]),
            (2, Some(3)) if msg.len() > 1 => {
                r.status = serde_json::from_slice(&msg[1..]).expect("a Status JSON")
            }
            _ => {}
        }
    }
    r
}

#[derive(Debug)]
enum SpdyFrame {
    Control { kind: u16, payload: Vec<u8> },
    Data { id: u32, fin: bool, data: Vec<u8> },
}

/// A SPDY/3.1 client session over a blocking socket.
struct Spdy {
    sock: TcpStream,
    protocol: String,
    deflate: Compress,
    inflate: Decompress,
}

fn spdy_connect(url: &str, protocol: &str) -> Spdy {
    let headers = vec![
        ("Connection", "Upgrade".to_string()),
        ("Upgrade", "SPDY/3.1".to_string()),
        ("X-Stream-Protocol-Version", protocol.to_string()),
        ("X-Stream-Protocol-Version", "channel.k8s.io".to_string()),
    ];
    let (sock, head) = http_upgrade(url, &headers);
    assert!(head.starts_with("HTTP/1.1 101"), "{url}: {head}");
    let mut deflate = Compress::new(Compression::default(), true);
    deflate
        .set_dictionary(wasmlet_streaming::spdy_header_dictionary())
        .unwrap();
    Spdy {
        sock,
        protocol: header_of(&head, "x-stream-protocol-version"),
        deflate,
        inflate: Decompress::new(true),
    }
}

impl Spdy {
    fn syn(&mut self, id: u32, headers: &[(&str, &str)], fin: bool) {
        let mut block = (headers.len() as u32).to_be_bytes().to_vec();
        for (k, v) in headers {
            for s in [k, v] {
                block.extend_from_slice(&(s.len() as u32).to_be_bytes());
                block.extend_from_slice(s.as_bytes());
            }
        }
        let mut z = Vec::with_capacity(block.len() + 128);
        self.deflate
            .compress_vec(&block, &mut z, FlushCompress::Sync)
            .unwrap();
        let mut f = vec![0x80, 3, 0, 1, fin as u8];
        f.extend_from_slice(&((10 + z.len()) as u32).to_be_bytes()[1..]);
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&z);
        self.sock.write_all(&f).unwrap();
    }

    fn data(&mut self, id: u32, data: &[u8], fin: bool) {
        let mut f = id.to_be_bytes().to_vec();
        f.push(fin as u8);
        f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        f.extend_from_slice(data);
        self.sock.write_all(&f).unwrap();
    }

    /// The error, stdout and stderr streams of an exec without stdin, as client-go opens them.
    fn open_exec_streams(&mut self) {
        self.syn(1, &[("streamtype", "error")], false);
        self.syn(3, &[("streamtype", "stdout")], false);
        self.syn(5, &[("streamtype", "stderr")], false);
    }

    fn read_frame(&mut self) -> Option<SpdyFrame> {
        let mut h = [0u8; 8];
        self.sock.read_exact(&mut h).ok()?;
        let len = u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize;
        let mut payload = vec![0u8; len];
        self.sock.read_exact(&mut payload).ok()?;
        if h[0] & 0x80 != 0 {
            let kind = u16::from_be_bytes([h[2], h[3]]);
            if kind == 2 {
                // SYN_REPLY: inflate its header block to keep the shared zlib stream in step.
                let mut out = Vec::with_capacity(4096);
                if let Err(e) =
                    self.inflate
                        .decompress_vec(&payload[4..], &mut out, FlushDecompress::Sync)
                {
                    assert!(e.needs_dictionary().is_some(), "{e}");
                    self.inflate
                        .set_dictionary(wasmlet_streaming::spdy_header_dictionary())
                        .unwrap();
                    self.inflate
                        .decompress_vec(
                            &payload[4 + self.inflate.total_in() as usize..],
                            &mut out,
                            FlushDecompress::Sync,
                        )
                        .unwrap();
                }
                assert_eq!(&out[..4], &[0, 0, 0, 0], "SYN_REPLY with no headers");
            }
            Some(SpdyFrame::Control { kind, payload })
        } else {
            Some(SpdyFrame::Data {
                id: u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
                fin: h[4] & 1 != 0,
                data: payload,
            })
        }
    }

    fn read_until(&mut self, mut done: impl FnMut(&SpdyFrame) -> bool) {
        loop {
            let f = self.read_frame().expect("the session ended early");
            if done(&f) {
                return;
            }
        }
    }

    /// Everything stream `id` carries until its FIN (other streams' data is dropped).
    fn collect_until_fin(&mut self, id: u32) -> String {
        let mut out = Vec::new();
        loop {
            match self
                .read_frame()
                .expect("the session ended before the stream did")
            {
                SpdyFrame::Data { id: i, fin, data } if i == id => {
                    out.extend_from_slice(&data);
                    if fin {
                        return String::from_utf8_lossy(&out).into_owned();
                    }
                }
                SpdyFrame::Control {
                    kind: 3, payload, ..
                } if u32::from_be_bytes(payload[..4].try_into().unwrap()) == id => {
                    panic!("stream {id} was reset")
                }
                _ => {}
            }
        }
    }
}

fn spdy_exec(url: &str) -> ExecResult {
    let mut s = spdy_connect(url, "v4.channel.k8s.io");
    s.open_exec_streams();
    let mut r = ExecResult {
        protocol: s.protocol.clone(),
        ..Default::default()
    };
    let (mut error, mut fins) = (Vec::new(), 0);
    while fins < 3 {
        match s
            .read_frame()
            .expect("the session ended before every stream did")
        {
            SpdyFrame::Data { id, fin, data } => {
                match id {
                    1 => error.extend_from_slice(&data),
                    3 => r.stdout += &String::from_utf8_lossy(&data),
                    5 => r.stderr += &String::from_utf8_lossy(&data),
                    _ => panic!("data on stream {id}"),
                }
                fins += fin as usize;
            }
            SpdyFrame::Control { kind: 3, .. } => panic!("a stream was reset"),
            SpdyFrame::Control { .. } => {}
        }
    }
    r.status = serde_json::from_slice(&error).expect("a Status JSON on the error stream");
    // Then GOAWAY and the end of the connection.
    let mut rest = BufReader::new(&s.sock);
    let _ = rest.fill_buf();
    r
}
