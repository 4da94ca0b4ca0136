//! cgroup v2 for real, through the CRI: the daemon pointed (`WASMLET_CGROUP_ROOT`) at the host's
//! cgroup2 mount — `/sys/fs/cgroup` on a v2 node, `/sys/fs/cgroup/unified` on this hybrid VM,
//! where hugetlb is the one domain controller the kernel left to v2. A domain controller is what
//! makes v2's no-internal-process rule bite, so a pod with a Wasm container (a thread of the shim)
//! and a Linux container (a process tree with a domain cgroup) shows the layout works: no process
//! in the pod cgroup, the shim in `<pod>/wasmlet-shim` (a threaded domain with the Wasm threads in
//! threaded children), the Linux container in `<pod>/<id>`, all gone with the pod — and a pod
//! cgroup kubelet made stays kubelet's.

use std::path::{Path, PathBuf};
use std::time::Duration;

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;
use crate::registry::server::RealRegistry;

/// The cgroup2 mount to test on, with a domain controller available; fails (never skips) naming
/// what is missing.
fn v2_root() -> PathBuf {
    let mountinfo = std::fs::read_to_string("/proc/self/mountinfo").unwrap();
    let v2: Vec<&str> = mountinfo
        .lines()
        .filter(|l| l.split(" - ").nth(1).is_some_and(|t| t.starts_with("cgroup2 ")))
        .filter_map(|l| l.split(' ').nth(4))
        .collect();
    let root = ["/sys/fs/cgroup", "/sys/fs/cgroup/unified"]
        .into_iter()
        .find(|m| v2.contains(m))
        .unwrap_or_else(|| panic!("no cgroup2 mounted at /sys/fs/cgroup or /sys/fs/cgroup/unified (cgroup2 mounts: {v2:?}); these tests need one"));
    let controllers = std::fs::read_to_string(Path::new(root).join("cgroup.controllers")).unwrap();
    assert!(
        controllers.split_whitespace().any(|c| ["hugetlb", "memory", "cpu", "pids", "io"].contains(&c)),
        "{root} offers no domain controller ({controllers:?}): the no-internal-process rule cannot be exercised"
    );
    PathBuf::from(root)
}

/// `text` without its ANSI colour sequences (`ESC [ ... m`).
fn without_ansi(text: &str) -> String {
    let mut out = String::new();
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            chars.by_ref().find(|&c| c == 'm');
        } else {
            out.push(c);
        }
    }
    out
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()))
}

fn pids_in(cgroup: &Path) -> Vec<u32> {
    read(&cgroup.join("cgroup.procs")).lines().map(|l| l.parse().unwrap()).collect()
}

/// Where the `sleep 600` processes on the host are (for failure messages).
fn sleepers_cgroups() -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter(|e| std::fs::read(e.path().join("cmdline")).is_ok_and(|c| c == b"sleep\0600\0"))
        .map(|e| std::fs::read_to_string(e.path().join("cgroup")).unwrap_or_default().lines().find(|l| l.starts_with("0::")).unwrap_or("").to_string())
        .collect()
}

async fn daemon_on_v2(test: &str, root: &Path) -> (Daemon, String, RealRegistry) {
    let registry = RealRegistry::start(None);
    let image = push_busybox(&registry.addr);
    let env = [("WASMLET_CGROUP_ROOT", root.to_str().unwrap()), ("WASMLET_LOG", "info,wasmlet_cri::runtime::sandbox_run=debug")];
    let d = Daemon::start_with_env(test, &[LOGGER_P1], &env).await;
    let req = cri::PullImageRequest { image: Some(cri::ImageSpec { image: image.clone(), ..Default::default() }), ..Default::default() };
    if let Err(e) = d.img().pull_image(req).await {
        panic!("PullImage {image}: {e:?}\ndaemon log:\n{}", d.daemon_log());
    }
    (d, image, registry)
}

/// A pod in kubelet's cgroupfs layout for a fresh uid; returns it with its cgroup path. Burstable,
/// so that its Wasm containers get thread cgroups (a BestEffort pod's stay in the shim's).
fn pod_in_kubepods(d: &Daemon, name: &str) -> (cri::PodSandboxConfig, String) {
    let mut config = d.pod_config(name);
    let uid = format!("{name}-{}-{}", std::process::id(), now_nanos());
    config.metadata.as_mut().unwrap().uid = uid.clone();
    let parent = format!("/kubepods/burstable/pod{uid}");
    config.linux.as_mut().unwrap().cgroup_parent = parent.clone();
    (config, parent.trim_start_matches('/').to_string())
}

/// Starts a long-running Wasm logger and a busybox `sleep` in `sandbox`; returns their ids.
async fn start_mixed(d: &Daemon, sandbox: &str, pod: &cri::PodSandboxConfig, image: &str) -> (String, String) {
    // A memory limit, as kubelet sends for any container with one: the thread cgroup has no
    // memory files on v2 (the shim's limiter caps the guest), and that must not fail the create.
    let mut logger = container_config("logger", LOGGER_P1.image, &["100"], &[], vec![]);
    logger.linux = Some(cri::LinuxContainerConfig {
        resources: Some(cri::LinuxContainerResources { memory_limit_in_bytes: 64 << 20, ..Default::default() }),
        ..Default::default()
    });
    let wasm = create_with(&d.cri, sandbox, pod, logger).await;
    d.start_container(&wasm).await;
    let linux = create_with(&d.cri, sandbox, pod, container_config("sleeper", image, &["sh", "-c", "echo up; exec sleep 600"], &[], vec![])).await;
    d.start_container(&linux).await;
    (wasm, linux)
}

async fn remove_pod(d: &Daemon, id: &str) {
    d.rt().stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id.into() }).await.unwrap();
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id.into() }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mixed_pod_keeps_every_process_out_of_the_pod_cgroup() {
    require_root();
    let root = v2_root();
    let (d, image, _registry) = daemon_on_v2("v2-mixed", &root).await;
    let (config, cgroup) = pod_in_kubepods(&d, "mixed");
    let sandbox = run_pod_with(&d.cri, config.clone()).await;
    let (wasm, linux) = start_mixed(&d, &sandbox, &config, &image).await;
    let pod_dir = root.join(&cgroup);

    // The pod cgroup hands its domain controllers to its children and holds no process itself.
    assert_eq!(pids_in(&pod_dir), Vec::<u32>::new(), "no process in the pod cgroup itself");
    let available = read(&root.join("cgroup.controllers"));
    let enabled = read(&pod_dir.join("cgroup.subtree_control"));
    for c in available.split_whitespace().filter(|c| ["hugetlb", "memory", "io"].contains(c)) {
        assert!(enabled.split_whitespace().any(|e| e == c), "domain controller {c} enabled for the pod's children: {enabled:?}");
    }

    // The shim: in its own leaf, which is the threaded domain of the Wasm container's thread.
    let shim_dir = pod_dir.join("wasmlet-shim");
    let shims = d.shim_pids();
    let in_leaf = pids_in(&shim_dir);
    assert!(shims.iter().any(|p| in_leaf.contains(p)), "a shim of this test {shims:?} in {}: {in_leaf:?}", shim_dir.display());
    assert_eq!(read(&shim_dir.join("cgroup.type")).trim(), "domain threaded");
    // Born there (clone3 with CLONE_INTO_CGROUP from the zygote), not moved in afterwards.
    let log = d.daemon_log();
    let ready = log.lines().find(|l| l.contains("pod cgroup ready")).unwrap_or_else(|| panic!("no \"pod cgroup ready\" line:\n{log}"));
    assert!(without_ansi(ready).contains("born_in=true"), "{ready}");
    let wasm_dir = shim_dir.join(&wasm);
    assert_eq!(read(&wasm_dir.join("cgroup.type")).trim(), "threaded");
    let threads = read(&wasm_dir.join("cgroup.threads"));
    assert_eq!(threads.lines().count(), 1, "the Wasm container's one thread: {threads:?}");
    let tid = threads.trim();
    let thread_cgroup = read(Path::new(&format!("/proc/{}/task/{tid}/cgroup", in_leaf[0])));
    assert!(thread_cgroup.contains(&format!("0::/{cgroup}/wasmlet-shim/{wasm}")), "{thread_cgroup}");

    // The Linux container: a domain cgroup of its own, beside the shim's, with the pod's domain controllers.
    let linux_dir = pod_dir.join(&linux);
    assert_eq!(read(&linux_dir.join("cgroup.type")).trim(), "domain");
    // `sh -c 'echo up; exec sleep 600'`: the process becomes sleep once sh has exec'd.
    eventually(Duration::from_secs(10), "busybox's sleep in its cgroup", || {
        let p = pids_in(&linux_dir);
        let cmdlines: Vec<String> = p.iter().map(|pid| std::fs::read_to_string(format!("/proc/{pid}/cmdline")).unwrap_or_default()).collect();
        async move {
            if cmdlines.iter().any(|c| c.starts_with("sleep")) { Ok(()) } else { Err(format!("{p:?} {cmdlines:?}; sleep 600 processes are in: {:?}", sleepers_cgroups())) }
        }
    })
    .await;
    if available.split_whitespace().any(|c| c == "hugetlb") {
        assert!(std::fs::read_dir(&linux_dir).unwrap().flatten().any(|e| e.file_name().to_string_lossy().starts_with("hugetlb.")), "hugetlb files in the Linux container's cgroup");
    }
    let log_path = Path::new(&config.log_directory).join("sleeper/0.log");
    eventually(Duration::from_secs(10), "busybox's `up` in its log", || {
        let log = read_log(&log_path);
        async move { if log.iter().any(|r| r.text == "up") { Ok(()) } else { Err(format!("{} records", log.len())) } }
    })
    .await;

    // The stats RPCs answer on v2 for both kinds.
    let stats = d.rt().list_container_stats(cri::ListContainerStatsRequest::default()).await.unwrap().into_inner().stats;
    let ids: Vec<&str> = stats.iter().filter_map(|s| s.attributes.as_ref()).map(|a| a.id.as_str()).collect();
    assert!(ids.contains(&wasm.as_str()) && ids.contains(&linux.as_str()), "{ids:?}");
    let wasm_stats = stats.iter().find(|s| s.attributes.as_ref().is_some_and(|a| a.id == wasm)).unwrap();
    let cpu = wasm_stats.cpu.as_ref().and_then(|c| c.usage_core_nano_seconds.as_ref()).map(|v| v.value);
    assert!(cpu.is_some_and(|ns| ns > 0), "the Wasm container's CPU time, from its thread cgroup's cpu.stat: {wasm_stats:?}");
    let memory = wasm_stats.memory.as_ref().and_then(|m| m.available_bytes.as_ref()).map(|v| v.value);
    assert!(memory.is_some_and(|b| b <= 64 << 20), "the 64Mi cap, from the shim: {wasm_stats:?}");
    d.rt().list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest::default()).await.unwrap();

    remove_pod(&d, &sandbox).await;
    assert!(!pod_dir.exists(), "{} removed with the pod", pod_dir.display());
    // Nothing of the pod in another hierarchy (on a hybrid host, libcontainer's own cgroup
    // handling would use the v1 ones).
    let elsewhere: Vec<PathBuf> = std::fs::read_dir("/sys/fs/cgroup")
        .unwrap()
        .flatten()
        .map(|h| h.path().join(&cgroup))
        .filter(|p| p.exists())
        .collect();
    assert!(elsewhere.is_empty(), "left in other hierarchies: {elsewhere:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pod_cgroup_kubelet_made_stays_and_only_ours_go() {
    require_root();
    let root = v2_root();
    let (d, image, _registry) = daemon_on_v2("v2-kubelet", &root).await;
    let (config, cgroup) = pod_in_kubepods(&d, "kubelets");
    // What kubelet's cgroupfs driver does before RunPodSandbox: the pod cgroup, with every
    // available controller enabled on the way down.
    let pod_dir = root.join(&cgroup);
    let mut dir = root.clone();
    let available = read(&root.join("cgroup.controllers"));
    let enable: String = available.split_whitespace().map(|c| format!("+{c} ")).collect();
    for part in cgroup.split('/') {
        if !enable.is_empty() {
            std::fs::write(dir.join("cgroup.subtree_control"), enable.trim()).unwrap();
        }
        dir = dir.join(part);
        let _ = std::fs::create_dir(&dir);
    }
    let sandbox = run_pod_with(&d.cri, config.clone()).await;
    let (wasm, linux) = start_mixed(&d, &sandbox, &config, &image).await;
    assert!(pod_dir.join("wasmlet-shim").join(&wasm).is_dir());
    assert!(pod_dir.join(&linux).is_dir());

    remove_pod(&d, &sandbox).await;
    let left: Vec<_> = std::fs::read_dir(&pod_dir).unwrap().flatten().filter(|e| e.path().is_dir()).map(|e| e.file_name()).collect();
    assert!(left.is_empty(), "our cgroups under kubelet's pod cgroup are gone: {left:?}");
    assert!(pod_dir.is_dir(), "kubelet's pod cgroup stays kubelet's");
    std::fs::remove_dir(&pod_dir).unwrap();
}
