//! Attach, end to end: a Wasm container created with stdin gets what the clients type (its WASI
//! stdin), its output fans out to every attached client beside the log, `stdin_once` gives it EOF
//! after the first attach, and with `tty` its streams merge; over WebSocket (the client in the
//! harness, and Python's `websockets` as an independent one) and SPDY. Attach to Linux containers
//! is in `linux.rs`.

use std::time::{Duration, Instant};

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

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
