//! Linux containers beside Wasm ones, through the CRI socket: a busybox image built from Debian's
//! busybox-static, pushed to a real `docker-registry` and pulled by the daemon, run with youki's
//! libcontainer in the pod's shim — logs, hostname, its own PID namespace, env, stop signal and
//! grace period, user, read-only rootfs and mounts, capabilities, exit codes, an OOM kill, a
//! mixed Linux + Wasm pod sharing a volume and localhost, and the CreateContainer errors that must
//! leave nothing behind.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use tonic::Code;
use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;
use crate::registry::server::RealRegistry;

const EXITED: i32 = cri::ContainerState::ContainerExited as i32;
const RUNNING: i32 = cri::ContainerState::ContainerRunning as i32;

/// A daemon with the busybox image pulled from a fresh loopback registry.
async fn daemon_with_busybox(test: &str, guests: &[Guest]) -> (Daemon, String, RealRegistry) {
    let registry = RealRegistry::start(None);
    let image = push_busybox(&registry.addr);
    let d = Daemon::start(test, guests).await;
    let req = cri::PullImageRequest { image: Some(cri::ImageSpec { image: image.clone(), ..Default::default() }), ..Default::default() };
    if let Err(e) = d.img().pull_image(req).await {
        panic!("PullImage {image}: {e:?}\ndaemon log:\n{}", d.daemon_log());
    }
    (d, image, registry)
}

/// A pod with its own network namespace (no CNI config: loopback only).
fn own_netns_pod(d: &Daemon, name: &str) -> cri::PodSandboxConfig {
    let mut pod = d.pod_config(name);
    let ns = pod.linux.as_mut().unwrap().security_context.as_mut().unwrap().namespace_options.as_mut().unwrap();
    ns.network = cri::NamespaceMode::Pod as i32;
    pod
}

fn sh(name: &str, image: &str, script: &str) -> cri::ContainerConfig {
    container_config(name, image, &["sh", "-c", script], &[], vec![])
}

fn log_path(pod: &cri::PodSandboxConfig, name: &str) -> PathBuf {
    Path::new(&pod.log_directory).join(format!("{name}/0.log"))
}

async fn wait_log(pod: &cri::PodSandboxConfig, name: &str, needle: &str) -> String {
    let path = log_path(pod, name);
    eventually(Duration::from_secs(15), &format!("{needle:?} in {}", path.display()), || {
        let path = path.clone();
        async move {
            let text = read_log_text(&path);
            if text.contains(needle) { Ok(text) } else { Err(text) }
        }
    })
    .await
}

fn read_log_text(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.splitn(4, ' ').nth(3).map(str::to_string))
        .collect::<Vec<_>>()
        .join("\n")
}

async fn start(d: &Daemon, id: &str) {
    d.start_container(id).await;
}

fn mounts_under(dir: &Path) -> Vec<String> {
    let dir = dir.display().to_string();
    std::fs::read_to_string("/proc/self/mountinfo").unwrap().lines().filter(|l| l.contains(&dir)).map(String::from).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn busybox_runs_logs_sees_its_hostname_and_only_its_processes() {
    require_root();
    let (d, image, _registry) = daemon_with_busybox("linux-basic", &[]).await;
    let pod = own_netns_pod(&d, "bb-host");
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    let mut config = sh(
        "main",
        &image,
        "echo hi; echo host=$(hostname) file=$(cat /etc/hostname); echo procs=$(ls -d /proc/[0-9]* | wc -l) pid1=$(cat /proc/1/comm); \
         echo env=$FROM_IMAGE,$GREETING,$HOSTNAME; echo cwd=$(pwd); sleep 3600",
    );
    config.envs.push(cri::KeyValue { key: "GREETING".into(), value: "hello".into() });
    let id = create_with(&d.cri, &sandbox, &pod, config).await;
    assert!(log_path(&pod, "main").exists(), "the log file exists from CreateContainer on");
    let started = Instant::now();
    start(&d, &id).await;
    let log = wait_log(&pod, "main", "cwd=").await;
    eprintln!("busybox: StartContainer → log line in {:?}", started.elapsed());
    assert!(log.contains("hi\nhost=bb-host file=bb-host"), "{log}");
    assert!(log.contains("pid1=sh"), "the container's own PID namespace: sh is pid 1:\n{log}");
    let procs: usize = log.split("procs=").nth(1).unwrap().split_whitespace().next().unwrap().parse().unwrap();
    assert!(procs <= 5, "only the container's own processes are visible, saw {procs}:\n{log}");
    assert!(log.contains("env=yes,hello,bb-host"), "{log}");
    assert!(log.contains("cwd=/"), "{log}");
    let status = d.status(&id).await;
    assert_eq!(status.state, RUNNING, "{status:?}");
    assert_eq!(status.image.as_ref().unwrap().image, image);

    // ExecSync runs in the container: its UTS namespace, its environment, its exit code.
    let exec = |cmd: &[&str], timeout: i64| {
        let req = cri::ExecSyncRequest { container_id: id.clone(), cmd: cmd.iter().map(|s| s.to_string()).collect(), timeout };
        let mut rt = d.rt();
        async move { rt.exec_sync(req).await }
    };
    let out = exec(&["cat", "/etc/hostname"], 10).await.unwrap().into_inner();
    assert_eq!((out.exit_code, String::from_utf8_lossy(&out.stdout).as_ref()), (0, "bb-host\n"), "{out:?}");
    let out = exec(&["sh", "-c", "echo $GREETING; echo oops >&2; exit 5"], 10).await.unwrap().into_inner();
    assert_eq!((out.exit_code, out.stdout.as_slice(), out.stderr.as_slice()), (5, &b"hello\n"[..], &b"oops\n"[..]), "{out:?}");
    let t = Instant::now();
    let slow = exec(&["sleep", "30"], 1).await;
    expect_error("an exec past its timeout", slow, Code::DeadlineExceeded, &[]);
    assert!(t.elapsed() < Duration::from_secs(10), "the timeout is honoured: {:?}", t.elapsed());
    let missing = exec(&["/bin/not-there"], 10).await;
    assert!(missing.is_err() || missing.as_ref().unwrap().get_ref().exit_code != 0, "{missing:?}");

    // sh as pid 1 ignores SIGTERM: the grace period runs out and SIGKILL ends it (137).
    let t = Instant::now();
    d.rt().stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 1 }).await.unwrap();
    let took = t.elapsed();
    let status = d.status(&id).await;
    assert_eq!((status.state, status.exit_code), (EXITED, 137), "{status:?}");
    assert!(took >= Duration::from_millis(900) && took < Duration::from_secs(8), "stop took {took:?}");

    d.rt().remove_container(cri::RemoveContainerRequest { container_id: id.clone() }).await.unwrap();
    assert!(mounts_under(&d.state.join("containers")).is_empty(), "the rootfs is unmounted");
    assert!(!d.state.join("containers").join(&id[..24]).exists(), "the bundle is deleted");
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox.clone() }).await.unwrap();
    assert!(mounts_under(&d.state.join("pods")).is_empty(), "the pod's namespaces and shm are unmounted");
    assert!(!d.state.join("pods").join(&sandbox[..24]).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn user_readonly_rootfs_mounts_and_capabilities_hold() {
    require_root();
    let (d, image, _registry) = daemon_with_busybox("linux-security", &[]).await;
    let pod = own_netns_pod(&d, "secure");
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    let rw = d.dir.join("rw");
    let ro = d.dir.join("ro");
    for dir in [&rw, &ro] {
        std::fs::create_dir_all(dir).unwrap();
        std::os::unix::fs::PermissionsExt::set_mode(&mut std::fs::metadata(dir).unwrap().permissions(), 0o777);
        std::fs::set_permissions(dir, std::os::unix::fs::PermissionsExt::from_mode(0o777)).unwrap();
    }
    std::fs::write(ro.join("seed"), "seeded\n").unwrap();
    let mut config = container_config(
        "app",
        &image,
        &[
            "sh",
            "-c",
            "id; touch /rootfile 2>/dev/null && echo root-writable || echo root-ro; echo data > /rw/file && echo rw-ok; \
             cat /ro/seed; touch /ro/new 2>/dev/null && echo ro-writable || echo ro-ok; grep CapBnd /proc/self/status",
        ],
        &[],
        vec![mount("/rw", &rw, false), mount("/ro", &ro, true)],
    );
    config.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext {
            run_as_user: Some(cri::Int64Value { value: 1000 }),
            readonly_rootfs: true,
            no_new_privs: true,
            capabilities: Some(cri::Capability {
                drop_capabilities: vec!["ALL".into()],
                add_capabilities: vec!["NET_BIND_SERVICE".into()],
                ..Default::default()
            }),
            seccomp: Some(cri::SecurityProfile { profile_type: cri::security_profile::ProfileType::RuntimeDefault as i32, ..Default::default() }),
            ..Default::default()
        }),
        ..Default::default()
    });
    let id = create_with(&d.cri, &sandbox, &pod, config).await;
    start(&d, &id).await;
    let status = d.wait_exited(&id, Duration::from_secs(15)).await;
    let log = read_log_text(&log_path(&pod, "app"));
    assert_eq!((status.exit_code, status.reason.as_str()), (0, "Completed"), "{status:?}\n{log}");
    assert!(log.contains("uid=1000(app)") && log.contains("10(wheel)"), "user and its image groups:\n{log}");
    assert!(log.contains("root-ro") && log.contains("rw-ok") && log.contains("seeded") && log.contains("ro-ok"), "{log}");
    // Only CAP_NET_BIND_SERVICE (bit 10) is left in the bounding set.
    assert!(log.contains("CapBnd:\t0000000000000400"), "{log}");
    assert_eq!(std::fs::read_to_string(rw.join("file")).unwrap(), "data\n");
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exit_codes_stop_signal_and_oom_kill() {
    require_root();
    let (d, image, _registry) = daemon_with_busybox("linux-exits", &[]).await;
    let pod = d.pod_config("exits");
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;

    let failing = create_with(&d.cri, &sandbox, &pod, sh("failing", &image, "echo bye; exit 7")).await;
    start(&d, &failing).await;
    let status = d.wait_exited(&failing, Duration::from_secs(15)).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (7, "Error"), "{status:?}");
    assert!(status.finished_at >= status.started_at && status.started_at > 0, "{status:?}");

    // The stop signal reaches a process that handles it; its own exit code is reported.
    let trapping = create_with(
        &d.cri,
        &sandbox,
        &pod,
        sh("trapping", &image, "trap 'echo got-term; exit 3' TERM; echo ready; while true; do sleep 0.2; done"),
    )
    .await;
    start(&d, &trapping).await;
    wait_log(&pod, "trapping", "ready").await;
    let t = Instant::now();
    d.rt().stop_container(cri::StopContainerRequest { container_id: trapping.clone(), timeout: 30 }).await.unwrap();
    assert!(t.elapsed() < Duration::from_secs(10), "a handled SIGTERM ends the stop early: {:?}", t.elapsed());
    let status = d.status(&trapping).await;
    assert_eq!((status.state, status.exit_code), (EXITED, 3), "{status:?}");
    assert!(read_log_text(&log_path(&pod, "trapping")).contains("got-term"));

    // Over its memory limit: the kernel kills it, reported as OOMKilled.
    let mut hog = sh("hog", &image, "a=$(head -c 200000000 /dev/zero | tr '\\0' x); echo survived");
    hog.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources { memory_limit_in_bytes: 32 << 20, ..Default::default() }),
        ..Default::default()
    });
    let hog = create_with(&d.cri, &sandbox, &pod, hog).await;
    start(&d, &hog).await;
    let status = d.wait_exited(&hog, Duration::from_secs(30)).await;
    assert_eq!((status.exit_code, status.reason.as_str()), (137, "OOMKilled"), "{status:?}\n{}", d.daemon_log());
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_pod_shares_a_volume_and_localhost() {
    require_root();
    let (d, image, _registry) = daemon_with_busybox("linux-mixed", &[READER_P1, HTTP_SERVER_P2]).await;
    let pod = own_netns_pod(&d, "mixed");
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    let shared = d.dir.join("shared");
    std::fs::create_dir_all(&shared).unwrap();

    let writer = container_config("writer", READER_P1.image, &["/data", "--write", "note.txt", "from-wasm"], &[], vec![mount("/data", &shared, false)]);
    let writer = create_with(&d.cri, &sandbox, &pod, writer).await;
    start(&d, &writer).await;
    let status = d.wait_exited(&writer, Duration::from_secs(15)).await;
    assert_eq!(status.exit_code, 0, "{status:?}");

    let server = container_config("server", HTTP_SERVER_P2.image, &["8089", "hello from the wasm side"], &[], vec![]);
    let server = create_with(&d.cri, &sandbox, &pod, server).await;
    start(&d, &server).await;
    wait_log(&pod, "server", "listening on 8089").await;

    let reader = container_config(
        "reader",
        &image,
        &["sh", "-c", "cat /data/note.txt; echo; wget -qO- http://127.0.0.1:8089/"],
        &[],
        vec![mount("/data", &shared, false)],
    );
    let reader = create_with(&d.cri, &sandbox, &pod, reader).await;
    start(&d, &reader).await;
    let status = d.wait_exited(&reader, Duration::from_secs(15)).await;
    let log = read_log_text(&log_path(&pod, "reader"));
    assert_eq!(status.exit_code, 0, "{status:?}\n{log}");
    assert!(log.contains("from-wasm"), "the Linux container reads what the Wasm one wrote:\n{log}");
    assert!(log.contains("hello from the wasm side"), "the Linux container reaches the Wasm server on localhost:\n{log}");
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_linux_containers_are_refused_and_leave_nothing() {
    require_root();
    let (d, image, registry) = daemon_with_busybox("linux-bad", &[]).await;
    let pod = d.pod_config("bad");
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    let create = |config: cri::ContainerConfig| {
        let req = cri::CreateContainerRequest { pod_sandbox_id: sandbox.clone(), config: Some(config), sandbox_config: Some(pod.clone()) };
        let mut rt = d.rt();
        async move { rt.create_container(req).await }
    };
    let with_sc = |sc: cri::LinuxContainerSecurityContext| {
        let mut c = sh("c", &image, "true");
        c.linux = Some(cri::LinuxContainerConfig { security_context: Some(sc), ..Default::default() });
        c
    };

    let missing = format!("{}/e2e/nope:1", registry.addr);
    expect_error("a missing image", create(sh("c", &missing, "true")).await, Code::NotFound, &["nope"]);
    let unknown_user = with_sc(cri::LinuxContainerSecurityContext { run_as_username: "nosuchuser".into(), ..Default::default() });
    expect_error("an unknown user", create(unknown_user).await, Code::InvalidArgument, &["nosuchuser"]);
    let profile = cri::SecurityProfile {
        profile_type: cri::security_profile::ProfileType::Localhost as i32,
        localhost_ref: "/nonexistent/seccomp.json".into(),
    };
    let bad_seccomp = with_sc(cri::LinuxContainerSecurityContext { seccomp: Some(profile), ..Default::default() });
    expect_error("an unknown seccomp profile", create(bad_seccomp).await, Code::InvalidArgument, &["/nonexistent/seccomp.json"]);
    let pod_pid = with_sc(cri::LinuxContainerSecurityContext {
        namespace_options: Some(cri::NamespaceOption { pid: cri::NamespaceMode::Target as i32, ..Default::default() }),
        ..Default::default()
    });
    expect_error("PID namespace TARGET without a target_id", create(pod_pid).await, Code::InvalidArgument, &["TARGET", "target_id"]);
    let mut relative = sh("c", &image, "true");
    relative.mounts.push(cri::Mount { container_path: "/x".into(), host_path: "relative/dir".into(), ..Default::default() });
    expect_error("a relative mount source", create(relative).await, Code::InvalidArgument, &["relative/dir"]);
    let no_command = container_config("c", &image, &["/bin/not-there"], &[], vec![]);
    expect_error("a command the image does not have", create(no_command).await, Code::InvalidArgument, &["not-there"]);

    // Nothing half-made: no bundle, no rootfs mount, no container cgroup, no container record.
    let bundles: Vec<_> = std::fs::read_dir(d.state.join("containers")).map(|r| r.flatten().collect()).unwrap_or_default();
    assert!(bundles.is_empty(), "bundles left: {bundles:?}");
    assert!(mounts_under(&d.state.join("containers")).is_empty());
    let listed = d.rt().list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers;
    assert!(listed.is_empty(), "{listed:?}");
    let uid = &pod.metadata.as_ref().unwrap().uid;
    for hierarchy in ["memory", "cpu", "pids", "devices", "freezer"] {
        let pod_dir = find_dir(&Path::new("/sys/fs/cgroup").join(hierarchy).join("kubepods"), &format!("pod{uid}"))
            .unwrap_or_else(|| panic!("the pod's {hierarchy} cgroup exists"));
        let children: Vec<_> = std::fs::read_dir(&pod_dir).unwrap().flatten().filter(|e| e.path().is_dir()).map(|e| e.path()).collect();
        assert!(children.is_empty(), "container cgroups left under {}: {children:?}", pod_dir.display());
    }
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();
}

/// The directory named `name` somewhere under `root`.
fn find_dir(root: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(root).ok()?.flatten() {
        let path = entry.path();
        if !path.is_dir() {
            continue;
        }
        if entry.file_name() == name {
            return Some(path);
        }
        if let Some(found) = find_dir(&path, name) {
            return Some(found);
        }
    }
    None
}

/// Pids of `wasmlet pid-holder` processes whose parent is one of `parents`.
fn pid_holders(parents: &[u32]) -> Vec<u32> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !String::from_utf8_lossy(&cmdline).contains("pid-holder") {
            continue;
        }
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
        let ppid: u32 = status.lines().find_map(|l| l.strip_prefix("PPid:")).and_then(|v| v.trim().parse().ok()).unwrap_or(0);
        if parents.contains(&ppid) {
            found.push(pid);
        }
    }
    found
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn containers_share_the_pods_pid_namespace_when_nothing_says_otherwise() {
    require_root();
    let (d, image, _registry) = daemon_with_busybox("linux-pidns", &[]).await;
    // As crictl sends it: no namespace options at all, so PID (and network) mode POD.
    let mut pod = d.pod_config("shared-pid");
    pod.linux = None;
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    let sleeper = create_with(&d.cri, &sandbox, &pod, sh("sleeper", &image, "exec sleep 3600")).await;
    start(&d, &sleeper).await;
    let looker = create_with(&d.cri, &sandbox, &pod, sh("looker", &image, "echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' '); cat /proc/[0-9]*/comm | grep -c sleep")).await;
    start(&d, &looker).await;
    let status = d.wait_exited(&looker, Duration::from_secs(15)).await;
    let log = read_log_text(&log_path(&pod, "looker"));
    assert_eq!(status.exit_code, 0, "{status:?}\n{log}");
    assert!(log.contains("pid-holder"), "pid 1 of the pod's namespace is its holder:\n{log}");
    assert!(log.lines().any(|l| l.trim() == "1"), "the other container's sleep is visible:\n{log}");
    let holders = pid_holders(&d.shim_pids());
    assert_eq!(holders.len(), 1, "one holder per pod: {holders:?}");

    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();
    eventually(Duration::from_secs(10), "the holder to exit", || async {
        if std::path::Path::new(&format!("/proc/{}", holders[0])).exists() { Err(format!("{} still runs", holders[0])) } else { Ok(()) }
    })
    .await;
}

/// PID namespace TARGET, as `kubectl debug --target` asks for it: a debug container joins the
/// PID namespace of a running container of the pod (and sees its init as pid 1); a Wasm target,
/// an unknown one or one in another pod is refused and leaves nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_debug_container_joins_its_targets_pid_namespace() {
    require_root();
    let (d, image, _registry) = daemon_with_busybox("linux-target", &[LOGGER_P1]).await;
    let pod = d.pod_config("target"); // PID mode CONTAINER: the app has a namespace of its own
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    let app = create_with(&d.cri, &sandbox, &pod, sh("app", &image, "exec sleep 3600")).await;
    start(&d, &app).await;
    let targeting = |name: &str, target: &str, script: &str| {
        let mut c = sh(name, &image, script);
        c.linux = Some(cri::LinuxContainerConfig {
            security_context: Some(cri::LinuxContainerSecurityContext {
                namespace_options: Some(cri::NamespaceOption { pid: cri::NamespaceMode::Target as i32, target_id: target.into(), ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        });
        c
    };
    let debug = create_with(&d.cri, &sandbox, &pod, targeting("debug", &app, "echo pid1=$(cat /proc/1/cmdline | tr '\\0' ' ')")).await;
    start(&d, &debug).await;
    let status = d.wait_exited(&debug, Duration::from_secs(15)).await;
    let log = read_log_text(&log_path(&pod, "debug"));
    assert_eq!(status.exit_code, 0, "{status:?}\n{log}");
    assert!(log.contains("pid1=sleep 3600"), "the target's init is pid 1 of the debug container:\n{log}");

    let create = |config: cri::ContainerConfig| {
        let req = cri::CreateContainerRequest { pod_sandbox_id: sandbox.clone(), config: Some(config), sandbox_config: Some(pod.clone()) };
        let mut rt = d.rt();
        async move { rt.create_container(req).await }
    };
    let wasm = create_with(&d.cri, &sandbox, &pod, container_config("wasm", LOGGER_P1.image, &["1000"], &[], vec![])).await;
    start(&d, &wasm).await;
    expect_error("a Wasm target", create(targeting("d2", &wasm, "true")).await, Code::FailedPrecondition, &["Wasm"]);
    expect_error("an unknown target", create(targeting("d3", "nope", "true")).await, Code::NotFound, &["nope"]);
    let other_pod = d.pod_config("other");
    let other = run_pod_with(&d.cri, other_pod.clone()).await;
    let req = cri::CreateContainerRequest { pod_sandbox_id: other.clone(), config: Some(targeting("d4", &app, "true")), sandbox_config: Some(other_pod) };
    expect_error("a target in another pod", d.rt().create_container(req).await, Code::InvalidArgument, &["another pod"]);
    let listed = d.rt().list_containers(cri::ListContainersRequest::default()).await.unwrap().into_inner().containers;
    let names: Vec<_> = listed.iter().filter_map(|c| c.metadata.as_ref()).map(|m| m.name.clone()).collect();
    assert!(!names.iter().any(|n| ["d2", "d3", "d4"].contains(&n.as_str())), "{names:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn interactive_exec_with_a_terminal_over_websocket() {
    use crate::harness::{http_upgrade, ws_headers, ws_read, ws_write};
    require_root();
    let (d, image, _registry) = daemon_with_busybox("linux-tty", &[]).await;
    let pod = own_netns_pod(&d, "tty");
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    let mut config = sh("app", &image, "sleep 3600");
    config.linux = Some(cri::LinuxContainerConfig {
        security_context: Some(cri::LinuxContainerSecurityContext { run_as_user: Some(cri::Int64Value { value: 1000 }), ..Default::default() }),
        ..Default::default()
    });
    let id = create_with(&d.cri, &sandbox, &pod, config).await;
    start(&d, &id).await;
    let req = cri::ExecRequest { container_id: id.clone(), cmd: vec!["sh".into()], tty: true, stdin: true, stdout: true, stderr: false };
    let url = d.rt().exec(req).await.expect("Exec").into_inner().url;

    let (mut sock, head) = http_upgrade(&url, &ws_headers("v5.channel.k8s.io"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    // Channel 4 resizes the terminal; channel 0 is what the user types.
    ws_write(&mut sock, &[&[4u8][..], br#"{"Width":100,"Height":30}"#].concat());
    std::thread::sleep(Duration::from_millis(200));
    ws_write(&mut sock, b"\x00echo tty-$((40+2)); tty; stty size; id -u; exit 3\n");
    let mut out = String::new();
    let mut status = serde_json::Value::Null;
    while let Some((op, msg)) = ws_read(&mut sock) {
        match (op, msg.first()) {
            (8, _) => break,
            (2, Some(1)) => out += &String::from_utf8_lossy(&msg[1..]),
            (2, Some(3)) if msg.len() > 1 => status = serde_json::from_slice(&msg[1..]).unwrap(),
            _ => {}
        }
    }
    assert!(out.contains("tty-42"), "{out}");
    assert!(out.contains("/dev/pts/"), "the exec has a terminal:\n{out}");
    assert!(out.contains("30 100"), "the resize reached the terminal:\n{out}");
    assert!(out.contains("\n1000") || out.contains("\r\n1000"), "the exec runs as the container's user:\n{out}");
    assert_eq!(status["reason"], "NonZeroExitCode", "{status}");
    assert_eq!(status["details"]["causes"][0]["message"], "3", "{status}");

    // A client that disappears mid-session: its shell is killed, and the shim keeps no terminal
    // or descriptor of it.
    let shim_fds = || crate::harness::shim_fds(&d);
    let baseline = shim_fds();
    let req = cri::ExecRequest { container_id: id.clone(), cmd: vec!["sh".into()], tty: true, stdin: true, stdout: true, stderr: false };
    let url = d.rt().exec(req).await.expect("Exec").into_inner().url;
    let (mut sock, head) = http_upgrade(&url, &ws_headers("v5.channel.k8s.io"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    ws_write(&mut sock, b"\x00echo marker-$((6*7)); exec sleep 3333\n");
    ws_read_until(&mut sock, "marker-42");
    drop(sock);
    let ps = || {
        let mut rt = d.rt();
        let id = id.clone();
        async move {
            let req = cri::ExecSyncRequest { container_id: id, cmd: vec!["ps".into(), "-o".into(), "args".into()], timeout: 10 };
            String::from_utf8_lossy(&rt.exec_sync(req).await.unwrap().into_inner().stdout).into_owned()
        }
    };
    eventually(Duration::from_secs(10), "the abandoned exec to be killed", || async {
        let out = ps().await;
        if out.contains("sleep 3333") { Err(out) } else { Ok(()) }
    })
    .await;
    eventually(Duration::from_secs(10), "the shim to close the exec's descriptors", || async {
        let now = shim_fds();
        if now <= baseline { Ok(()) } else { Err(format!("{now} fds, {baseline} before")) }
    })
    .await;
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn attach_feeds_stdin_and_streams_output_until_the_client_leaves() {
    use crate::harness::{http_upgrade, ws_headers, ws_read, ws_write};
    require_root();
    let (d, image, _registry) = daemon_with_busybox("linux-attach", &[]).await;
    let pod = own_netns_pod(&d, "attach");
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    let mut config = sh("echoer", &image, "while read line; do echo got-$line; done; echo stdin-closed");
    config.stdin = true;
    let id = create_with(&d.cri, &sandbox, &pod, config).await;
    start(&d, &id).await;

    let attach = |id: String| {
        let mut rt = d.rt();
        async move {
            let req = cri::AttachRequest { container_id: id, stdin: true, tty: false, stdout: true, stderr: true };
            rt.attach(req).await.expect("Attach").into_inner().url
        }
    };
    for round in ["one", "two"] {
        let url = attach(id.clone()).await;
        let (mut sock, head) = http_upgrade(&url, &ws_headers("v5.channel.k8s.io"));
        assert!(head.starts_with("HTTP/1.1 101"), "{head}");
        std::thread::sleep(Duration::from_millis(100));
        ws_write(&mut sock, format!("\x00{round}\n").as_bytes());
        let mut out = String::new();
        while !out.contains(&format!("got-{round}")) {
            match ws_read(&mut sock) {
                Some((2, msg)) if msg.first() == Some(&1) => out += &String::from_utf8_lossy(&msg[1..]),
                Some((8, _)) | None => panic!("attach {round} ended before the echo; got {out:?}"),
                _ => {}
            }
        }
        // The client leaves; the container keeps running and can be attached to again.
        drop(sock);
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(d.status(&id).await.state, RUNNING);
    }
    let log = read_log_text(&log_path(&pod, "echoer"));
    assert!(log.contains("got-one") && log.contains("got-two"), "the log has the output too:\n{log}");
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();
}

/// Reads WebSocket channel 1 of an attach until `needle` shows up; panics if the session ends first.
fn ws_read_until(sock: &mut std::net::TcpStream, needle: &str) -> String {
    let mut out = String::new();
    while !out.contains(needle) {
        match crate::harness::ws_read(sock) {
            Some((2, msg)) if msg.first() == Some(&1) => out += &String::from_utf8_lossy(&msg[1..]),
            Some((8, _)) | None => panic!("the session ended before {needle:?}; got {out:?}"),
            _ => {}
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_with_a_terminal_is_attached_to_resized_and_logged_as_stdout() {
    use crate::harness::{http_upgrade, ws_headers, ws_read, ws_write};
    require_root();
    let (d, image, _registry) = daemon_with_busybox("linux-tty-ctr", &[]).await;
    let pod = own_netns_pod(&d, "ttyctr");
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    // As `kubectl run -it`: a shell with a terminal and stdin, closed after the first attach —
    // which, with a terminal, containerd (and Docker) do not do: stdin stays open.
    let mut config = container_config("shell", &image, &["sh"], &[], vec![]);
    (config.tty, config.stdin, config.stdin_once) = (true, true, true);
    let id = create_with(&d.cri, &sandbox, &pod, config).await;
    start(&d, &id).await;
    let attach = |id: String| {
        let mut rt = d.rt();
        async move {
            let req = cri::AttachRequest { container_id: id, stdin: true, tty: true, stdout: true, stderr: false };
            rt.attach(req).await.expect("Attach").into_inner().url
        }
    };

    let (mut sock, head) = http_upgrade(&attach(id.clone()).await, &ws_headers("v5.channel.k8s.io"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    ws_write(&mut sock, b"\x00echo first-$((20+1)); echo to-stderr >&2\n");
    let out = ws_read_until(&mut sock, "to-stderr\r\n");
    assert!(out.contains("first-21"), "{out}");
    drop(sock);
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(d.status(&id).await.state, RUNNING, "a detached client leaves the shell running (stdin open)");

    let started = Instant::now();
    let (mut sock, head) = http_upgrade(&attach(id.clone()).await, &ws_headers("v5.channel.k8s.io"));
    assert!(head.starts_with("HTTP/1.1 101"), "{head}");
    ws_write(&mut sock, b"\x00echo again-$((40+2))\n");
    ws_read_until(&mut sock, "again-42\r\n");
    let round_trip = started.elapsed();
    ws_write(&mut sock, &[&[4u8][..], br#"{"Width":120,"Height":40}"#].concat());
    std::thread::sleep(Duration::from_millis(200));
    ws_write(&mut sock, b"\x00tty; stty size; exit 3\n");
    let mut out = String::new();
    let mut status = serde_json::Value::Null;
    while let Some((op, msg)) = ws_read(&mut sock) {
        match (op, msg.first()) {
            (8, _) => break,
            (2, Some(1)) => out += &String::from_utf8_lossy(&msg[1..]),
            (2, Some(3)) if msg.len() > 1 => status = serde_json::from_slice(&msg[1..]).unwrap(),
            _ => {}
        }
    }
    assert!(out.contains("/dev/pts/"), "the container's stdio is a terminal:\n{out}");
    assert!(out.contains("40 120"), "the resize reached the terminal:\n{out}");
    assert_eq!(status["details"]["causes"][0]["message"], "3", "the attach ends with the container's exit code: {status}");
    eventually(Duration::from_secs(10), "the shell's exit", || {
        let d = &d;
        let id = id.clone();
        async move {
            let s = d.status(&id).await;
            if s.state == EXITED { Ok(s) } else { Err(format!("{:?}", s.state)) }
        }
    })
    .await;
    assert_eq!(d.status(&id).await.exit_code, 3);
    let raw = std::fs::read_to_string(log_path(&pod, "shell")).unwrap();
    assert!(raw.contains("first-21") && raw.contains("to-stderr") && raw.contains("/dev/pts/"), "the log has the terminal's output:\n{raw}");
    assert!(raw.lines().all(|l| l.split(' ').nth(1) == Some("stdout")), "a terminal's output is logged as stdout:\n{raw}");
    eprintln!("attach to a terminal, connect + echo round trip: {round_trip:?}");
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_linux_container_outlives_a_daemon_kill_and_is_managed_after_the_restart() {
    require_root();
    let (mut d, image, _registry) = daemon_with_busybox("linux-restart", &[]).await;
    let pod = own_netns_pod(&d, "survivor");
    let sandbox = run_pod_with(&d.cri, pod.clone()).await;
    let id = create_with(&d.cri, &sandbox, &pod, sh("main", &image, "echo up; sleep 3600")).await;
    start(&d, &id).await;
    wait_log(&pod, "main", "up").await;
    d.kill9().await;
    d.restart().await;
    assert_eq!(d.status(&id).await.state, RUNNING, "still running after the daemon's restart");
    let req = cri::ExecSyncRequest { container_id: id.clone(), cmd: vec!["hostname".into()], timeout: 10 };
    let out = d.rt().exec_sync(req).await.unwrap().into_inner();
    assert_eq!(String::from_utf8_lossy(&out.stdout), "survivor\n");
    d.rt().stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 0 }).await.unwrap();
    assert_eq!(d.status(&id).await.state, EXITED);
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await.unwrap();
    assert!(mounts_under(&d.state).is_empty(), "nothing left mounted: {:?}", mounts_under(&d.state));
}
