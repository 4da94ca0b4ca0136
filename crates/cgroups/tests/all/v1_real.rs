//! REAL kernel, cgroup v1 (this host: hybrid, cpu/cpuacct/cpuset/memory/pids each mounted under
//! `/sys/fs/cgroup`): create, limits read back from the kernel, attach, stats, OOM count, remove.

use std::path::Path;
use std::sync::Arc;

use wasmlet_cgroups::{
    CgroupManager, CgroupMode, Controller, Error, HugepageLimit, PodCgroup, QosClass, Resources,
    Task, V1Manager, detect, milli_cpu_to_quota, milli_cpu_to_shares,
};

use crate::common::{CGROUP_ROOT, CgroupGuard, proc_cgroup, read, spawn_sh, v1_dir, v1_manager};

const POD_UID: &str = "0e3a7b8c-1d2e-4f5a-9b6c-7d8e9f0a1b2c";
const HIERARCHIES: [&str; 5] = ["cpu", "cpuacct", "cpuset", "memory", "pids"];

#[test]
fn detects_this_hosts_v1_layout() {
    let layout = detect(Path::new(CGROUP_ROOT)).unwrap();
    assert!(
        matches!(layout.mode, CgroupMode::V1 | CgroupMode::Hybrid),
        "{layout:?}"
    );
    for c in HIERARCHIES {
        let c = Controller::from_name(c).unwrap();
        assert!(layout.v1.contains_key(&c), "{c} not found in {layout:?}");
    }
    eprintln!("layout: {layout:?}");
}

/// The full lifecycle of a container cgroup with a 500m CPU limit and a 64 MiB memory limit.
#[test]
fn container_cgroup_lifecycle() {
    let m = v1_manager();
    let guard = CgroupGuard::new(m.clone());
    let pod = PodCgroup::new(
        QosClass::Burstable,
        POD_UID,
        wasmlet_cgroups::CgroupDriver::Cgroupfs,
    )
    .unwrap();
    let ctr = guard.path(&format!("{}/ctr1", pod.path.as_str()));
    m.create(&ctr).unwrap();
    m.create(&ctr).unwrap(); // idempotent

    let res = Resources {
        cpu_shares: milli_cpu_to_shares(500) as i64,
        cpu_quota: milli_cpu_to_quota(500, 100_000),
        cpu_period: 100_000,
        memory_limit_in_bytes: 64 << 20,
        ..Resources::default()
    };
    m.apply(&ctr, &res).unwrap();
    assert_eq!(read(v1_dir("cpu", &ctr).join("cpu.cfs_quota_us")), "50000");
    assert_eq!(
        read(v1_dir("cpu", &ctr).join("cpu.cfs_period_us")),
        "100000"
    );
    assert_eq!(read(v1_dir("cpu", &ctr).join("cpu.shares")), "512");
    assert_eq!(
        read(v1_dir("memory", &ctr).join("memory.limit_in_bytes")),
        (64u64 << 20).to_string()
    );

    // The classic v1 trap: every new cpuset level got cpus/mems from its parent.
    let root_cpus = read(Path::new(CGROUP_ROOT).join("cpuset/cpuset.cpus"));
    let mut level = Some(ctr.clone());
    while let Some(p) = level.filter(|p| !p.is_root()) {
        assert_eq!(
            read(v1_dir("cpuset", &p).join("cpuset.cpus")),
            root_cpus,
            "{p}"
        );
        assert!(
            !read(v1_dir("cpuset", &p).join("cpuset.mems")).is_empty(),
            "{p}"
        );
        level = p.parent();
    }

    // Attach a shell that, once attached, allocates a little and becomes `sleep`.
    let mut child = spawn_sh("read x; v=$(seq 1 20000); exec sleep 600");
    m.add_task(&ctr, Task::Process(child.pid())).unwrap();
    for h in HIERARCHIES {
        let procs = read(v1_dir(h, &ctr).join("cgroup.procs"));
        assert!(
            procs.lines().any(|l| l == child.pid().to_string()),
            "{h}: {procs}"
        );
    }
    let lines = proc_cgroup(format!("/proc/{}/cgroup", child.pid()));
    assert!(
        lines
            .iter()
            .any(|l| l.ends_with(&format!(":cpu:/{}", ctr.as_str()))),
        "{lines:?}"
    );
    child.release();
    child.wait_for_comm("sleep");

    let stats = m.stats(&ctr).unwrap();
    eprintln!("v1 stats of an attached sh→sleep: {stats:?}");
    assert!(stats.cpu_usage_ns > 0, "{stats:?}");
    assert!(
        stats.memory_usage_bytes > 0 && stats.working_set_bytes <= stats.memory_usage_bytes,
        "{stats:?}"
    );
    assert!(stats.rss_bytes > 0, "{stats:?}");
    assert_eq!(stats.oom_kill_count, 0);

    // A populated cgroup is busy; after the task exits it goes, in every hierarchy.
    let busy = m.remove(&ctr).unwrap_err();
    assert_eq!(
        busy.code(),
        wasmlet_cgroups::Code::FailedPrecondition,
        "{busy}"
    );
    drop(child);
    m.remove(&guard.base).unwrap();
    for h in HIERARCHIES {
        assert!(
            !v1_dir(h, &guard.base).exists(),
            "{h} still has {}",
            guard.base
        );
    }
    m.remove(&guard.base).unwrap(); // missing is fine
}

/// A thread can sit in its own cgroup on v1 (`tasks`), while its process stays where it was.
#[test]
fn one_thread_in_its_own_cgroup() {
    let m = v1_manager();
    let guard = CgroupGuard::new(m.clone());
    let cg = guard.path("thread");
    m.create_threaded(&cg).unwrap();
    // Only where controllers act per thread: memory charges the process, not a thread.
    for h in ["cpu", "cpuacct", "cpuset", "pids"] {
        assert!(v1_dir(h, &cg).is_dir(), "{h} has {cg}");
    }
    assert!(!v1_dir("memory", &cg).exists(), "no memory cgroup for threads");
    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        tid_tx.send(nix::unistd::gettid().as_raw() as u32).unwrap();
        let _ = go_rx.recv();
    });
    let tid = tid_rx.recv().unwrap();
    m.add_task(&cg, Task::Thread(tid)).unwrap();
    let mine = proc_cgroup(format!("/proc/self/task/{tid}/cgroup"));
    assert!(
        mine.iter()
            .any(|l| l.ends_with(&format!(":cpu:/{}", cg.as_str()))),
        "{mine:?}"
    );
    let main = proc_cgroup("/proc/self/cgroup");
    assert!(
        !main.iter().any(|l| l.contains(guard.base.as_str())),
        "the process moved too: {main:?}"
    );
    drop(go_tx);
    t.join().unwrap();
    // The exited thread left the cgroup; remove works (EBUSY retried while the kernel catches up).
    m.remove(&guard.base).unwrap();
}

/// The kernel's OOM killer inside a 16 MiB cgroup is counted by `stats`.
#[test]
fn oom_kill_is_counted() {
    let m = v1_manager();
    let guard = CgroupGuard::new(m.clone());
    let cg = guard.path("oom");
    m.create(&cg).unwrap();
    m.apply(
        &cg,
        &Resources {
            memory_limit_in_bytes: 16 << 20,
            ..Resources::default()
        },
    )
    .unwrap();
    let mut child = spawn_sh("read x; x=$(head -c 67108864 /dev/zero | tr '\\0' a); echo survived");
    m.add_task(&cg, Task::Process(child.pid())).unwrap();
    child.release();
    let status = child.child.wait().unwrap();
    let stats = m.stats(&cg).unwrap();
    assert!(
        stats.oom_kill_count >= 1,
        "no OOM kill recorded: {stats:?}, child {status:?}"
    );
}

/// Raising memory above the current memsw limit is refused by the kernel unless memsw goes first;
/// apply retries the pair in the other order, as runc does.
#[test]
fn memory_and_memsw_are_ordered() {
    let m = v1_manager();
    let guard = CgroupGuard::new(m.clone());
    let cg = guard.path("swap");
    m.create(&cg).unwrap();
    let mem = |bytes: i64| Resources {
        memory_limit_in_bytes: bytes,
        memory_swap_limit_in_bytes: bytes,
        ..Resources::default()
    };
    m.apply(&cg, &mem(64 << 20)).unwrap();
    m.apply(&cg, &mem(128 << 20)).unwrap();
    assert_eq!(
        read(v1_dir("memory", &cg).join("memory.memsw.limit_in_bytes")),
        (128u64 << 20).to_string()
    );
    m.apply(&cg, &mem(32 << 20)).unwrap();
    assert_eq!(
        read(v1_dir("memory", &cg).join("memory.limit_in_bytes")),
        (32u64 << 20).to_string()
    );
}

#[test]
fn errors_name_what_is_missing() {
    let m = v1_manager();
    let guard = CgroupGuard::new(m.clone());
    let cg = guard.path("errors");
    // Not created yet.
    assert!(matches!(
        m.apply(
            &cg,
            &Resources {
                cpu_shares: 2,
                ..Resources::default()
            }
        ),
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(m.stats(&cg), Err(Error::NotFound { .. })));
    assert!(matches!(
        m.add_task(&cg, Task::Process(1)),
        Err(Error::NotFound { .. })
    ));
    m.create(&cg).unwrap();
    // A controller this manager does not have: on this host hugetlb is not a v1 hierarchy at all.
    let hugetlb = Resources {
        hugepage_limits: vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 0,
        }],
        ..Resources::default()
    };
    let without_memory = V1Manager::with_mounts(
        [("cpu", Controller::Cpu), ("cpuacct", Controller::Cpuacct)]
            .map(|(d, c)| (c, Path::new(CGROUP_ROOT).join(d))),
    );
    for (manager, res, controller) in [
        (&*m, &hugetlb, Controller::Hugetlb),
        (
            &without_memory,
            &Resources {
                memory_limit_in_bytes: 1 << 20,
                ..Resources::default()
            },
            Controller::Memory,
        ),
    ] {
        if manager.controllers().any(|c| c == controller) {
            manager.apply(&cg, res).unwrap();
            continue;
        }
        let err = manager.apply(&cg, res).unwrap_err();
        assert!(
            matches!(&err, Error::MissingController { controller: c, .. } if *c == controller),
            "{controller}: {err}"
        );
        assert!(err.to_string().contains(controller.as_str()), "{err}");
    }
    // The kernel's own refusal keeps the path: a cpuset outside the parent's.
    let err = m
        .apply(
            &cg,
            &Resources {
                cpuset_cpus: "0-4095".into(),
                ..Resources::default()
            },
        )
        .unwrap_err();
    assert!(err.to_string().contains("cpuset.cpus"), "{err}");
    assert_eq!(err.code(), wasmlet_cgroups::Code::InvalidArgument, "{err}");
    let _: Arc<dyn CgroupManager> = m;
}
