//! The zygote's spare shim. Where a shim cannot be born in its pod's cgroup (cgroup v1, or no
//! cgroups), the zygote forks one shim ahead once pods are being started: the next pod's shim is
//! that spare (the fork left the start path), and an unassigned spare dies with the daemon.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::harness::*;

/// Spare shims whose stderr is this daemon's log (the zygote's, inherited).
fn spares(daemon_log: &Path) -> Vec<u32> {
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cmdline.starts_with(b"wasmlet shim (spare)") && std::fs::read_link(entry.path().join("fd/2")).is_ok_and(|l| l == daemon_log) {
            pids.push(pid);
        }
    }
    pids
}

fn host_is_v2() -> bool {
    std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap()
        .lines()
        .any(|l| l.split(' ').nth(4) == Some("/sys/fs/cgroup") && l.contains(" - cgroup2 "))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_next_pod_gets_the_spare_and_an_idle_spare_dies_with_the_daemon() {
    let d = Daemon::start("zygote-spare", &[HELLO_P1]).await;
    let log: PathBuf = d.dir.join("daemon.log");
    assert!(spares(&log).is_empty(), "no spare before the first pod");
    let first = d.run_pod("first").await;
    if host_is_v2() {
        // On v2 a shim is born in its cgroup (CLONE_INTO_CGROUP) instead: no spare is made.
        assert!(spares(&log).is_empty());
        return;
    }
    let spare = eventually(Duration::from_secs(5), "a spare shim after the first pod", || {
        let s = spares(&log);
        async move { if s.len() == 1 { Ok(s[0]) } else { Err(format!("{s:?}")) } }
    })
    .await;

    let second = d.run_pod("second").await;
    assert!(d.shim_pids().contains(&spare), "the second pod's shim is the spare {spare}: {:?}", d.shim_pids());
    // It is a working shim: a container runs in it and logs.
    let c = d.create(&second, "hello", HELLO_P1.image, &["spare"], &[], vec![]).await;
    d.start_container(&c).await;
    let status = d.wait_exited(&c, Duration::from_secs(10)).await;
    assert_eq!(status.exit_code, 0, "{status:?}");
    let text: Vec<String> = read_log(&d.log_of(&second, "hello")).into_iter().map(|r| r.text).collect();
    assert!(text.iter().any(|t| t.contains("spare")), "{text:?}");
    let next = eventually(Duration::from_secs(5), "a new spare", || {
        let s = spares(&log);
        async move { if s.len() == 1 && s[0] != spare { Ok(s[0]) } else { Err(format!("{s:?}")) } }
    })
    .await;
    let _ = first;

    drop(d);
    eventually(Duration::from_secs(5), "the idle spare to die with the daemon", || {
        let alive = Path::new(&format!("/proc/{next}")).exists() && spares(&log).contains(&next);
        async move { if alive { Err(format!("spare {next} alive")) } else { Ok(()) } }
    })
    .await;
}

/// The `.cwasm` files a process has mapped.
fn mapped_artifacts(pid: u32) -> Vec<String> {
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    let mut files: Vec<String> = maps.lines().filter_map(|l| l.split_whitespace().nth(5)).filter(|p| p.ends_with(".cwasm")).map(str::to_owned).collect();
    files.dedup();
    files
}

/// This daemon's zygote (its stderr is the daemon's log).
fn zygote_of(daemon_log: &Path) -> u32 {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok().map(|pid| (pid, e.path())))
        .find(|(_, p)| {
            std::fs::read(p.join("cmdline")).unwrap_or_default().starts_with(b"wasmlet zygote")
                && std::fs::read_link(p.join("fd/2")).is_ok_and(|l| l == daemon_log)
        })
        .map(|(pid, _)| pid)
        .expect("the daemon's zygote")
}

/// Once a pod of an image has been started, the zygote maps and links its module (with the next
/// spawn request), so the shims it forks from then on have it ready: their create clones what
/// was linked instead of loading it. The module still runs right in such a shim.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_zygote_links_a_started_image_ahead_for_the_next_shims() {
    let d = Daemon::start("zygote-preload", &[HELLO_P1]).await;
    let log: PathBuf = d.dir.join("daemon.log");
    let zygote = zygote_of(&log);
    assert!(mapped_artifacts(zygote).is_empty(), "nothing preloaded before any pod: {:?}", mapped_artifacts(zygote));

    let first = d.run_pod("first").await;
    let c = d.create(&first, "hello", HELLO_P1.image, &["one"], &[], vec![]).await;
    d.start_container(&c).await;
    assert_eq!(d.wait_exited(&c, Duration::from_secs(10)).await.exit_code, 0);
    // The preload goes with the next spawn; the zygote loads it once it has answered.
    let second = d.run_pod("second").await;
    let artifact = eventually(Duration::from_secs(5), "the zygote to map hello's artifact", || {
        let a = mapped_artifacts(zygote);
        async move { if a.len() == 1 { Ok(a[0].clone()) } else { Err(format!("{a:?}")) } }
    })
    .await;
    assert!(artifact.contains("/compiled/"), "{artifact}");
    if !host_is_v2() {
        // The spare forked after that has it mapped before it has a pod.
        let spare = eventually(Duration::from_secs(5), "a spare with the artifact", || {
            let s: Vec<u32> = spares(&log).into_iter().filter(|p| mapped_artifacts(*p).contains(&artifact)).collect();
            async move { if s.len() == 1 { Ok(s[0]) } else { Err(format!("{s:?}")) } }
        })
        .await;
        let third = d.run_pod("third").await;
        assert!(d.shim_pids().contains(&spare), "the third pod's shim is that spare");
        let c = d.create(&third, "hello", HELLO_P1.image, &["preloaded"], &[], vec![]).await;
        d.start_container(&c).await;
        assert_eq!(d.wait_exited(&c, Duration::from_secs(10)).await.exit_code, 0);
        let text: Vec<String> = read_log(&d.log_of(&third, "hello")).into_iter().map(|r| r.text).collect();
        assert!(text.iter().any(|t| t.contains("preloaded")), "{text:?}");
    }
    let _ = second;
}

/// The network namespace a process is in (the inode `/proc/PID/ns/net` names).
fn netns_of(pid: &str) -> String {
    std::fs::read_link(format!("/proc/{pid}/ns/net")).unwrap().display().to_string()
}

/// After a pod with a network of its own, the spare makes the next pod's network namespace while
/// it waits (off RunPodSandbox's path): the next such pod gets that namespace pinned, loopback
/// up, and a pod on the node's network after it gets the node's namespace back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spare_makes_the_next_pods_network_namespace_ahead() {
    let d = Daemon::start("zygote-netns", &[HELLO_P1]).await;
    let log: PathBuf = d.dir.join("daemon.log");
    let own_network = |name: &str| {
        let mut config = d.pod_config(name);
        let ns = config.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options.as_mut().unwrap();
        ns.network = wasmlet_cri::k8s_cri::v1::NamespaceMode::Pod as i32;
        config
    };
    let host = netns_of("self");
    let first = run_pod_with(&d.cri, own_network("first")).await;
    if host_is_v2() {
        // On v2 a shim is born in its cgroup instead, and no spare is made.
        assert!(spares(&log).is_empty());
        return;
    }
    let spare = eventually(Duration::from_secs(5), "a spare in a network namespace of its own", || {
        let s = spares(&log);
        let host = host.clone();
        async move {
            match s.as_slice() {
                [one] if netns_of(&one.to_string()) != host => Ok(*one),
                other => Err(format!("spares {other:?}")),
            }
        }
    })
    .await;
    let made_ahead = netns_of(&spare.to_string());

    let second = run_pod_with(&d.cri, own_network("second")).await;
    let info = sandbox_info(&d, &second).await;
    assert_eq!(info["shimPid"].as_u64(), Some(u64::from(spare)), "the second pod's shim is the spare: {info}");
    let pin = PathBuf::from(info["netns"].as_str().expect("a netns pin"));
    let pinned = std::fs::metadata(&pin).unwrap();
    let ns = std::fs::metadata(format!("/proc/{spare}/ns/net")).unwrap();
    use std::os::unix::fs::MetadataExt;
    assert_eq!((pinned.dev(), pinned.ino()), (ns.dev(), ns.ino()), "the pin is the namespace the spare made");
    assert_eq!(netns_of(&spare.to_string()), made_ahead);
    // Its loopback is up: the hello guest runs, and `lo` is UP seen from inside.
    let lo = std::process::Command::new("nsenter").arg(format!("--net={}", pin.display())).args(["ip", "-o", "link", "show", "lo"]).output().unwrap();
    assert!(String::from_utf8_lossy(&lo.stdout).contains("UP"), "lo: {}", String::from_utf8_lossy(&lo.stdout));

    // The spare after it made a namespace too; a pod on the node's network leaves it.
    let next = eventually(Duration::from_secs(5), "the next spare", || {
        let s = spares(&log);
        async move { if s.len() == 1 && s[0] != spare { Ok(s[0]) } else { Err(format!("{s:?}")) } }
    })
    .await;
    let third = d.run_pod("third").await;
    let info = sandbox_info(&d, &third).await;
    assert_eq!(info["shimPid"].as_u64(), Some(u64::from(next)), "{info}");
    assert_eq!(netns_of(&next.to_string()), host, "a hostNetwork pod's shim is in the node's namespace");
    assert!(info["netns"].is_null(), "{info}");
    let c = d.create(&third, "hello", HELLO_P1.image, &["node"], &[], vec![]).await;
    d.start_container(&c).await;
    assert_eq!(d.wait_exited(&c, Duration::from_secs(10)).await.exit_code, 0);
    let _ = first;
}

/// PodSandboxStatus's verbose info of a pod.
async fn sandbox_info(d: &Daemon, id: &str) -> serde_json::Value {
    let r = d
        .rt()
        .pod_sandbox_status(wasmlet_cri::k8s_cri::v1::PodSandboxStatusRequest { pod_sandbox_id: id.into(), verbose: true })
        .await
        .unwrap()
        .into_inner();
    serde_json::from_str(&r.info["info"]).unwrap()
}
