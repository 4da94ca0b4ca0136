//! The daemon's connections to a shim: plain calls reuse idle connections, so a pod's shim keeps
//! a bounded number of connection threads however many RPCs reach it (one per call would grow
//! and shrink a thread per call), and a shim that went away is reported, not hung on.

use std::collections::BTreeSet;
use std::time::Duration;

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

/// The connections a shim has accepted on its socket and still holds (by inode): unix sockets
/// of the process that /proc/net/unix lists under the shim's socket path, listener excluded.
fn accepted(pid: u32) -> BTreeSet<String> {
    let on_shim_socket: BTreeSet<String> = std::fs::read_to_string("/proc/net/unix")
        .unwrap()
        .lines()
        .skip(1)
        .map(|l| l.split_whitespace().collect::<Vec<_>>())
        // Listening sockets carry __SO_ACCEPTCON (0x10000) in the Flags column.
        .filter(|f| f.len() > 7 && f[3] != "00010000" && f[7].ends_with("/shim.sock"))
        .map(|f| f[6].to_string())
        .collect();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .filter_map(|l| l.to_string_lossy().strip_prefix("socket:[").and_then(|r| r.strip_suffix(']')).map(str::to_string))
        .filter(|inode| on_shim_socket.contains(inode))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn calls_reuse_a_few_connections_to_the_shim() {
    let d = Daemon::start("shim-conns", &[LOGGER_P1]).await;
    let sandbox = d.run_pod("conns").await;
    let id = d.create(&sandbox, "logger", LOGGER_P1.image, &["1000"], &[], vec![]).await;
    d.start_container(&id).await;
    let shim = match d.shim_pids()[..] {
        [pid] => pid,
        ref pids => panic!("one shim expected: {pids:?}"),
    };
    // Warm up, then count: 200 calls that go to the shim (UpdateContainerResources and
    // ContainerStats ask it), two at a time.
    let stats = |id: String| {
        let mut rt = d.rt();
        async move { rt.container_stats(cri::ContainerStatsRequest { container_id: id }).await.map(drop) }
    };
    for _ in 0..4 {
        stats(id.clone()).await.unwrap();
    }
    let before = accepted(shim);
    for _ in 0..100 {
        let (a, b) = tokio::join!(stats(id.clone()), stats(id.clone()));
        a.unwrap();
        b.unwrap();
    }
    let after = accepted(shim);
    // The idle call connections stay open between calls and are the ones used: the same sockets
    // before and after (at most one more, when two calls overlapped for the first time).
    // Besides the daemon's one exit subscription, at least one idle call connection.
    assert!(before.len() >= 2, "idle call connections kept open besides the exit subscription: {before:?}");
    let new: Vec<_> = after.difference(&before).collect();
    assert!(new.len() <= 1, "200 calls opened new connections {new:?} (before {before:?})");

    // The shim killed behind the daemon's back: its idle connections are dead, and the next
    // call finds that out at once (the stats then leave the shim's numbers out).
    nix::sys::signal::kill(nix::unistd::Pid::from_raw(shim as i32), nix::sys::signal::Signal::SIGKILL).unwrap();
    d.wait_no_shims(Duration::from_secs(10)).await;
    tokio::time::timeout(Duration::from_secs(5), stats(id.clone()))
        .await
        .expect("a call to a dead shim returns promptly")
        .ok();
}
