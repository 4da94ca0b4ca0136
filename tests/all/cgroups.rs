//! cgroups through the CRI, on the host's real hierarchy (/sys/fs/cgroup; v1 on the dev VM): pods
//! sit in kubelet's `cgroup_parent`, containers in `<pod>/<id>`, CPU limits hold (measured from the
//! kernel's own `cpuacct.usage`, not from our stats code), in-place resize takes effect, the stats
//! RPCs report, and everything is removed with its pod. Each test uses pod uids of its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmlet_cri::k8s_cri::v1 as cri;

use crate::harness::*;

const CGROUP_ROOT: &str = "/sys/fs/cgroup";
const MIB: i64 = 1024 * 1024;

/// A uid no other test (or earlier run) uses: `<tag>-<pid>-<nanos>`.
fn unique_uid(tag: &str) -> String {
    format!("{tag}-{}-{}", std::process::id(), now_nanos())
}

/// The v1 hierarchy (or the v2 root) a controller's files are under.
fn hierarchy(controller: &str) -> PathBuf {
    let v1 = Path::new(CGROUP_ROOT).join(controller);
    if v1.is_dir() { v1 } else { PathBuf::from(CGROUP_ROOT) }
}

/// Cumulative CPU ns of a cgroup, from the kernel (v1 `cpuacct.usage`, v2 `cpu.stat`).
fn cpu_usage_ns(cgroup: &str) -> u64 {
    let v1 = hierarchy("cpuacct").join(cgroup).join("cpuacct.usage");
    if let Ok(s) = std::fs::read_to_string(&v1) {
        return s.trim().parse().unwrap();
    }
    let stat = std::fs::read_to_string(Path::new(CGROUP_ROOT).join(cgroup).join("cpu.stat"))
        .unwrap_or_else(|e| panic!("no cpu usage for cgroup {cgroup}: {}: {e}", v1.display()));
    let usec: u64 = stat.lines().find_map(|l| l.strip_prefix("usage_usec ")).unwrap().trim().parse().unwrap();
    usec * 1000
}

/// CPU cores used by a cgroup over `window`.
async fn cores_over(cgroup: &str, window: Duration) -> f64 {
    let (u0, t0) = (cpu_usage_ns(cgroup), Instant::now());
    tokio::time::sleep(window).await;
    let (u1, t1) = (cpu_usage_ns(cgroup), Instant::now());
    (u1 - u0) as f64 / (t1 - t0).as_nanos() as f64
}

/// A pod config with kubelet's cgroupfs `cgroup_parent` for a fresh uid.
fn pod_in(d: &Daemon, name: &str, tier: &str, uid: &str) -> (cri::PodSandboxConfig, String) {
    let mut config = d.pod_config(name);
    config.metadata.as_mut().unwrap().uid = uid.to_string();
    let parent = format!("/kubepods/{tier}/pod{uid}");
    config.linux.as_mut().unwrap().cgroup_parent = parent.clone();
    (config, parent.trim_start_matches('/').to_string())
}

fn with_resources(mut config: cri::ContainerConfig, r: cri::LinuxContainerResources) -> cri::ContainerConfig {
    config.linux = Some(cri::LinuxContainerConfig { resources: Some(r), ..Default::default() });
    config
}

fn cpu_limit(milli: i64) -> cri::LinuxContainerResources {
    cri::LinuxContainerResources { cpu_quota: milli * 100, cpu_period: 100_000, ..Default::default() }
}

fn exists_anywhere(cgroup: &str) -> Vec<PathBuf> {
    ["cpu", "cpuacct", "cpuset", "memory", "pids", ""]
        .iter()
        .map(|c| Path::new(CGROUP_ROOT).join(c).join(cgroup))
        .filter(|p| p.join("cgroup.procs").exists())
        .collect()
}

async fn remove_pod(d: &Daemon, id: &str) {
    d.rt().stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: id.into() }).await.unwrap();
    d.rt().remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: id.into() }).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cpu_limit_holds_and_stats_report() {
    let d = Daemon::start("cg-cpu", &[CPU_BURNER_P1]).await;
    let uid = unique_uid("cgcpu");
    let (pod_config, pod_cg) = pod_in(&d, "burner", "burstable", &uid);
    let pod = run_pod_with(&d.cri, pod_config.clone()).await;
    let mut limits = cpu_limit(500);
    limits.oom_score_adj = 1000;
    let config = with_resources(container_config("burner", CPU_BURNER_P1.image, &["30000"], &[], vec![]), limits);
    let ctr = create_with(&d.cri, &pod, &pod_config, config).await;
    let ctr_cg = format!("{pod_cg}/{ctr}");
    d.start_container(&ctr).await;

    // The shim process is in the pod cgroup, the container thread in the container's.
    let procs = std::fs::read_to_string(hierarchy("cpu").join(&pod_cg).join("cgroup.procs")).unwrap();
    let shim: u32 = procs.lines().next().unwrap_or_else(|| panic!("no process in {pod_cg}")).parse().unwrap();
    assert_eq!(std::fs::read_to_string(format!("/proc/{shim}/oom_score_adj")).unwrap().trim(), "1000");
    eventually(Duration::from_secs(5), "the container thread in its cgroup", || async {
        let tasks = std::fs::read_to_string(hierarchy("cpu").join(&ctr_cg).join("tasks")).unwrap_or_default();
        if tasks.lines().count() >= 1 { Ok(()) } else { Err("no tasks".to_string()) }
    })
    .await;

    tokio::time::sleep(Duration::from_millis(300)).await;
    let cores = cores_over(&ctr_cg, Duration::from_secs(5)).await;
    println!("cpu burner limited to 500m used {cores:.3} cores over 5 s");
    assert!(cores <= 0.55, "a burner limited to 500m used {cores:.3} cores");
    assert!(cores >= 0.2, "the burner barely ran: {cores:.3} cores");

    // Stats through the CRI.
    let s = d.rt().container_stats(cri::ContainerStatsRequest { container_id: ctr.clone() }).await.unwrap().into_inner();
    let s = s.stats.unwrap();
    let cpu = s.cpu.unwrap();
    let used = cpu.usage_core_nano_seconds.unwrap().value;
    let rate = cpu.usage_nano_cores.unwrap().value;
    assert!(used > 1_000_000_000, "usage_core_nano_seconds {used}");
    assert!(rate > 100_000_000 && rate < 700_000_000, "usage_nano_cores {rate}");
    let mem = s.memory.unwrap();
    assert!(mem.working_set_bytes.unwrap().value > 0 && mem.usage_bytes.unwrap().value > 0, "{mem:?}");
    let list = d
        .rt()
        .list_container_stats(cri::ListContainerStatsRequest {
            filter: Some(cri::ContainerStatsFilter { pod_sandbox_id: pod.clone(), ..Default::default() }),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(list.stats.len(), 1);
    let label = cri::ContainerStatsFilter { label_selector: [("container".into(), "nope".into())].into(), ..Default::default() };
    let none = d.rt().list_container_stats(cri::ListContainerStatsRequest { filter: Some(label) }).await.unwrap();
    assert!(none.into_inner().stats.is_empty());
    let ps = d.rt().pod_sandbox_stats(cri::PodSandboxStatsRequest { pod_sandbox_id: pod.clone() }).await.unwrap();
    let linux = ps.into_inner().stats.unwrap().linux.unwrap();
    assert!(linux.cpu.unwrap().usage_core_nano_seconds.unwrap().value >= used);
    assert!(linux.memory.unwrap().usage_bytes.unwrap().value > 0, "the pod cgroup holds the shim's memory");
    assert_eq!(linux.containers.len(), 1);
    let all = d.rt().list_pod_sandbox_stats(cri::ListPodSandboxStatsRequest { filter: None }).await.unwrap();
    assert_eq!(all.into_inner().stats.len(), 1);

    remove_pod(&d, &pod).await;
    assert!(exists_anywhere(&pod_cg).is_empty(), "left behind: {:?}", exists_anywhere(&pod_cg));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resize_in_place_speeds_a_burner_up() {
    let d = Daemon::start("cg-resize", &[CPU_BURNER_P1]).await;
    let (mut pod_config, pod_cg) = pod_in(&d, "resize", "burstable", &unique_uid("cgresize"));
    // Pod-level shares well above its siblings' (other tests' burners), so the measurement is of
    // the quota, not of the neighbours; a host busy outside kubepods can still slow it down,
    // hence the generous bound below.
    pod_config.linux.as_mut().unwrap().resources = Some(cri::LinuxContainerResources { cpu_shares: 262_144, ..Default::default() });
    let pod = run_pod_with(&d.cri, pod_config.clone()).await;
    let config = with_resources(container_config("burner", CPU_BURNER_P1.image, &["20000"], &[], vec![]), cpu_limit(200));
    let ctr = create_with(&d.cri, &pod, &pod_config, config).await;
    let ctr_cg = format!("{pod_cg}/{ctr}");
    d.start_container(&ctr).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = cores_over(&ctr_cg, Duration::from_secs(2)).await;

    let mut raised = cpu_limit(800);
    raised.memory_limit_in_bytes = 256 * MIB;
    d.rt()
        .update_container_resources(cri::UpdateContainerResourcesRequest { container_id: ctr.clone(), linux: Some(raised), ..Default::default() })
        .await
        .unwrap();
    let quota = std::fs::read_to_string(hierarchy("cpu").join(&ctr_cg).join("cpu.cfs_quota_us")).unwrap_or_default();
    assert_eq!(quota.trim(), "80000");
    tokio::time::sleep(Duration::from_millis(200)).await;
    let after = cores_over(&ctr_cg, Duration::from_secs(2)).await;
    println!("resize 200m -> 800m: {before:.3} -> {after:.3} cores");
    assert!(before <= 0.25, "at 200m the burner used {before:.3} cores");
    assert!(after > before * 1.5, "raising 200m to 800m did not speed it up: {before:.3} -> {after:.3} cores");
    let s = d.status(&ctr).await;
    let r = s.resources.and_then(|r| r.linux).unwrap();
    assert_eq!((r.cpu_quota, r.memory_limit_in_bytes), (80_000, 256 * MIB), "ContainerStatus reports the new values");
    let st = d.rt().container_stats(cri::ContainerStatsRequest { container_id: ctr.clone() }).await.unwrap().into_inner();
    let mem = st.stats.unwrap().memory.unwrap();
    let (used, available) = (mem.usage_bytes.unwrap().value, mem.available_bytes.unwrap().value);
    assert_eq!(used + available, 256 * MIB as u64, "the shim's cap is the new memory limit");

    expect_error(
        "a quota below the kernel minimum",
        d.rt()
            .update_container_resources(cri::UpdateContainerResourcesRequest {
                container_id: ctr.clone(),
                linux: Some(cri::LinuxContainerResources { cpu_quota: 10, ..Default::default() }),
                ..Default::default()
            })
            .await,
        tonic::Code::InvalidArgument,
        &["cpu_quota"],
    );
    remove_pod(&d, &pod).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_grower_64mi_is_oomkilled_neighbour_logs() {
    let d = Daemon::start("cg-oom", &[MEM_GROWER_P1, LOGGER_P1]).await;
    let (n_config, _) = pod_in(&d, "neighbour", "besteffort", &unique_uid("cgnb"));
    let neighbour_pod = run_pod_with(&d.cri, n_config.clone()).await;
    let logger = create_with(&d.cri, &neighbour_pod, &n_config, container_config("logger", LOGGER_P1.image, &["50"], &[], vec![])).await;
    d.start_container(&logger).await;

    let (g_config, _) = pod_in(&d, "grower", "burstable", &unique_uid("cgoom"));
    let pod = run_pod_with(&d.cri, g_config.clone()).await;
    let limits = cri::LinuxContainerResources { memory_limit_in_bytes: 64 * MIB, ..Default::default() };
    let config = with_resources(container_config("grower", MEM_GROWER_P1.image, &["8", "10"], &[], vec![]), limits);
    let grower = create_with(&d.cri, &pod, &g_config, config).await;
    d.start_container(&grower).await;
    let s = d.wait_exited(&grower, Duration::from_secs(15)).await;
    assert_eq!((s.exit_code, s.reason.as_str()), (137, "OOMKilled"), "{:?}", s.message);

    let log = Path::new(&n_config.log_directory).join("logger/0.log");
    let n = stdout_lines(&log).len();
    eventually(Duration::from_secs(5), "the neighbour pod to keep logging", || async {
        let now = stdout_lines(&log).len();
        if now > n { Ok(()) } else { Err(format!("{now} lines")) }
    })
    .await;
    assert_eq!(state_name(d.status(&logger).await.state), "CONTAINER_RUNNING");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundred_pods_leave_no_cgroup() {
    let d = Daemon::start("cg-many", &[LOGGER_P1]).await;
    let prefix = unique_uid("cgmany");
    let started = Instant::now();
    for batch in 0..25 {
        let mut tasks = Vec::new();
        for i in 0..4 {
            let (config, _) = pod_in(&d, "many", "besteffort", &format!("{prefix}-{batch}-{i}"));
            let cri = d.cri.clone();
            tasks.push(tokio::spawn(async move {
                let pod = run_pod_with(&cri, config.clone()).await;
                // A container cgroup too (created, never started).
                let c = container_config("c", LOGGER_P1.image, &["1000"], &[], vec![]);
                let c = with_resources(c, cpu_limit(100));
                create_with(&cri, &pod, &config, c).await;
                pod
            }));
        }
        for t in tasks {
            let pod = t.await.unwrap();
            remove_pod(&d, &pod).await;
        }
    }
    println!("100 pods with a container each created and removed in {:?}", started.elapsed());
    let mut left = Vec::new();
    for c in ["cpu", "cpuacct", "cpuset", "memory", "pids"] {
        let dir = hierarchy(c).join("kubepods/besteffort");
        for e in std::fs::read_dir(&dir).into_iter().flatten().flatten() {
            if e.file_name().to_string_lossy().starts_with(&format!("pod{prefix}")) {
                left.push(e.path());
            }
        }
    }
    assert!(left.is_empty(), "cgroups left behind: {left:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_cgroup_input_is_refused_leaving_nothing() {
    let d = Daemon::start("cg-bad", &[LOGGER_P1]).await;
    let mut config = d.pod_config("bad");
    config.linux.as_mut().unwrap().cgroup_parent = "/kubepods/../etc".into();
    expect_error(
        "a cgroup_parent with ..",
        d.rt().run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(config), ..Default::default() }).await,
        tonic::Code::InvalidArgument,
        &["linux.cgroup_parent", ".."],
    );
    let pods = d.rt().list_pod_sandbox(cri::ListPodSandboxRequest::default()).await.unwrap().into_inner();
    assert!(pods.items.is_empty(), "{pods:?}");
    assert!(d.shim_pids().is_empty(), "a shim was left: {:?}", d.shim_pids());

    // Invalid container resources: refused at CreateContainer, no container cgroup made.
    let (pod_config, pod_cg) = pod_in(&d, "good", "burstable", &unique_uid("cgbad"));
    let pod = run_pod_with(&d.cri, pod_config.clone()).await;
    for (r, field) in [
        (cri::LinuxContainerResources { cpu_quota: 500, ..Default::default() }, "cpu_quota"),
        (cri::LinuxContainerResources { memory_limit_in_bytes: -5, ..Default::default() }, "memory_limit_in_bytes"),
        (cri::LinuxContainerResources { cpu_shares: 1 << 40, ..Default::default() }, "cpu_shares"),
        (cri::LinuxContainerResources { cpuset_cpus: "0-".into(), ..Default::default() }, "cpuset_cpus"),
    ] {
        let config = with_resources(container_config("c", LOGGER_P1.image, &[], &[], vec![]), r);
        let req = cri::CreateContainerRequest { pod_sandbox_id: pod.clone(), config: Some(config), sandbox_config: Some(pod_config.clone()) };
        expect_error(field, d.rt().create_container(req).await, tonic::Code::InvalidArgument, &[field]);
    }
    let subdirs: Vec<_> = std::fs::read_dir(hierarchy("cpu").join(&pod_cg)).unwrap().flatten().filter(|e| e.path().is_dir()).map(|e| e.path()).collect();
    assert!(subdirs.is_empty(), "container cgroups left behind: {subdirs:?}");
    remove_pod(&d, &pod).await;
    assert!(exists_anywhere(&pod_cg).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_250m_and_750m_share_one_cpu_1_to_3() {
    let d = Daemon::start("cg-shares", &[CPU_BURNER_P1]).await;
    let (pod_config, pod_cg) = pod_in(&d, "shares", "burstable", &unique_uid("cgshares"));
    let pod = run_pod_with(&d.cri, pod_config.clone()).await;
    // Requests only (kubelet: shares = milli * 1024 / 1000), both pinned to CPU 0 so they compete;
    // siblings in one pod, so their shares are weighed against each other.
    let mut ids = Vec::new();
    for (name, shares) in [("small", 256), ("large", 768)] {
        let r = cri::LinuxContainerResources { cpu_shares: shares, cpuset_cpus: "0".into(), ..Default::default() };
        let config = with_resources(container_config(name, CPU_BURNER_P1.image, &["20000"], &[], vec![]), r);
        let id = create_with(&d.cri, &pod, &pod_config, config).await;
        d.start_container(&id).await;
        ids.push(id);
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (small, large) = (format!("{pod_cg}/{}", ids[0]), format!("{pod_cg}/{}", ids[1]));
    let (s0, l0) = (cpu_usage_ns(&small), cpu_usage_ns(&large));
    tokio::time::sleep(Duration::from_secs(3)).await;
    let (s1, l1) = (cpu_usage_ns(&small), cpu_usage_ns(&large));
    let ratio = (l1 - l0) as f64 / (s1 - s0).max(1) as f64;
    println!("250m:750m on one CPU: {:.3} s vs {:.3} s of CPU, ratio 1:{ratio:.2}", (s1 - s0) as f64 / 1e9, (l1 - l0) as f64 / 1e9);
    assert!((2.4..=3.6).contains(&ratio), "expected about 1:3 (±20%), got 1:{ratio:.2}");
    remove_pod(&d, &pod).await;
}

/// Guaranteed, Burstable and BestEffort pods (kubelet's cgroupfs parents) land in their cgroups,
/// each container's thread in `<pod>/<id>` (but a BestEffort one's in the pod's), and the shim gets kubelet's oom_score_adj — a value
/// below the current one clamped to it (no CAP_SYS_RESOURCE here), as containerd's
/// restrict_oom_score_adj does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn qos_classes_land_in_place_with_their_oom_score_adj() {
    let d = Daemon::start("cg-qos", &[LOGGER_P1]).await;
    let inherited: i64 = std::fs::read_to_string("/proc/self/oom_score_adj").unwrap().trim().parse().unwrap();
    for (tier, oom, limits) in [("", -997, true), ("burstable", 500, false), ("besteffort", 1000, false)] {
        let uid = unique_uid("cgqos");
        let mut config = d.pod_config(&format!("qos{}", if tier.is_empty() { "guaranteed" } else { tier }));
        config.metadata.as_mut().unwrap().uid = uid.clone();
        let parent = if tier.is_empty() { format!("/kubepods/pod{uid}") } else { format!("/kubepods/{tier}/pod{uid}") };
        config.linux.as_mut().unwrap().cgroup_parent = parent.clone();
        let pod = run_pod_with(&d.cri, config.clone()).await;
        let resources = cri::LinuxContainerResources {
            oom_score_adj: oom,
            cpu_shares: if limits { 256 } else { 2 },
            cpu_quota: if limits { 25_000 } else { 0 },
            cpu_period: if limits { 100_000 } else { 0 },
            memory_limit_in_bytes: if limits { 64 * MIB } else { 0 },
            ..Default::default()
        };
        let c = create_with(&d.cri, &pod, &config, with_resources(container_config("c", LOGGER_P1.image, &["100"], &[], vec![]), resources)).await;
        d.start_container(&c).await;

        let info = d.rt().pod_sandbox_status(cri::PodSandboxStatusRequest { pod_sandbox_id: pod.clone(), verbose: true }).await.unwrap().into_inner();
        let info: serde_json::Value = serde_json::from_str(&info.info["info"]).unwrap();
        let shim = info["shimPid"].as_u64().unwrap();
        let membership = std::fs::read_to_string(format!("/proc/{shim}/cgroup")).unwrap();
        let memory_line = membership.lines().find(|l| l.contains(":memory:") || l.starts_with("0::")).unwrap_or_default();
        assert!(memory_line.ends_with(&parent), "{tier:?}: the shim is in {memory_line:?}, not {parent}");
        let container_cg = format!("{}/{c}", parent.trim_start_matches('/'));
        if tier == "besteffort" {
            // Nothing for a cgroup of its own to enforce: the thread stays in the pod's.
            assert!(exists_anywhere(&container_cg).is_empty(), "a BestEffort Wasm container got a cgroup: {:?}", exists_anywhere(&container_cg));
        } else {
            let tasks = eventually(Duration::from_secs(5), "the container thread in its cgroup", || {
                let path = hierarchy("cpu").join(&container_cg).join(if Path::new(CGROUP_ROOT).join("cpu").is_dir() { "tasks" } else { "cgroup.threads" });
                async move {
                    let t = std::fs::read_to_string(&path).map_err(|e| e.to_string())?;
                    if t.trim().is_empty() { Err(format!("{} is empty", path.display())) } else { Ok(t) }
                }
            })
            .await;
            assert_eq!(tasks.lines().count(), 1, "exactly the container's thread: {tasks:?}");
        }
        let adj: i64 = std::fs::read_to_string(format!("/proc/{shim}/oom_score_adj")).unwrap().trim().parse().unwrap();
        assert_eq!(adj, oom.max(inherited), "{tier:?}: oom_score_adj asked {oom}, current was {inherited}");
        remove_pod(&d, &pod).await;
        assert!(exists_anywhere(parent.trim_start_matches('/')).is_empty(), "{parent} left behind");
    }
}

/// A Wasm container of a BestEffort pod has no cgroup of its own (its limits would enforce
/// nothing); its CPU time comes from its thread. Limits that need a cgroup arriving by
/// UpdateContainerResources make one and move the running thread into it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_besteffort_wasm_container_gets_a_cgroup_when_limits_arrive() {
    let d = Daemon::start("cg-late", &[CPU_BURNER_P1]).await;
    let (pod_config, pod_cg) = pod_in(&d, "late", "besteffort", &unique_uid("cglate"));
    let pod = run_pod_with(&d.cri, pod_config.clone()).await;
    let kubelets = cri::LinuxContainerResources { cpu_shares: 2, cpu_period: 100_000, oom_score_adj: 1000, ..Default::default() };
    let config = with_resources(container_config("burner", CPU_BURNER_P1.image, &["30000"], &[], vec![]), kubelets);
    let ctr = create_with(&d.cri, &pod, &pod_config, config).await;
    d.start_container(&ctr).await;
    let ctr_cg = format!("{pod_cg}/{ctr}");
    assert!(exists_anywhere(&ctr_cg).is_empty(), "no cgroup of its own: {:?}", exists_anywhere(&ctr_cg));

    // CPU from the thread: it grows while the burner burns, and stays within the pod's.
    let cpu_of = |d: &Daemon, id: String| {
        let mut rt = d.rt();
        async move {
            let s = rt.container_stats(cri::ContainerStatsRequest { container_id: id }).await.unwrap().into_inner().stats.unwrap();
            s.cpu.and_then(|c| c.usage_core_nano_seconds).map(|v| v.value).unwrap_or_else(|| panic!("no CPU stats: {s:?}"))
        }
    };
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (t0, p0) = (cpu_of(&d, ctr.clone()).await, cpu_usage_ns(&pod_cg));
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (t1, p1) = (cpu_of(&d, ctr.clone()).await, cpu_usage_ns(&pod_cg));
    assert!(t1 > t0 + 50_000_000, "the burner's thread used {} ns in 0.5 s", t1 - t0);
    assert!(t1 <= p1, "the thread's {t1} ns exceed the pod cgroup's {p1} ns");
    println!("thread CPU {t0} → {t1} ns; pod cgroup {p0} → {p1} ns");

    // A CPU limit arrives: the cgroup is made, the running thread moves in, the limit holds.
    d.rt()
        .update_container_resources(cri::UpdateContainerResourcesRequest { container_id: ctr.clone(), linux: Some(cpu_limit(200)), ..Default::default() })
        .await
        .unwrap();
    let tasks = std::fs::read_to_string(hierarchy("cpu").join(&ctr_cg).join("tasks")).unwrap();
    assert_eq!(tasks.lines().count(), 1, "the container's thread moved in: {tasks:?}");
    assert_eq!(std::fs::read_to_string(hierarchy("cpu").join(&ctr_cg).join("cpu.cfs_quota_us")).unwrap().trim(), "20000");
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cores = cores_over(&ctr_cg, Duration::from_secs(2)).await;
    assert!(cores <= 0.25, "limited to 200m, the burner used {cores:.3} cores");
    // Stats now come from the cgroup, which counts from the move on.
    let after = cpu_of(&d, ctr.clone()).await;
    assert!(after > 0, "{after}");

    remove_pod(&d, &pod).await;
    assert!(exists_anywhere(&pod_cg).is_empty(), "left behind: {:?}", exists_anywhere(&pod_cg));
}
