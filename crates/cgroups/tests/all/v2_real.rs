//! REAL kernel, cgroup v2, on a private `mount -t cgroup2 none <tempdir>`. On this hybrid host the
//! v2 hierarchy is the one systemd mounts at `/sys/fs/cgroup/unified`, and cpu/memory/cpuset/pids
//! are bound to v1, so only what v2 does without them is real here: create, subtree_control,
//! attach, threaded subtrees, remove, `cpu.stat`, hugetlb (the one controller this kernel left to
//! v2), and the errors naming missing controllers. Controller files are tested in `v2_fixture`.

use std::path::Path;
use std::sync::Arc;

use nix::mount::{MntFlags, MsFlags, mount, umount2};
use wasmlet_cgroups::{
    CgroupManager, CgroupMode, CgroupPath, Controller, Error, HugepageLimit, Resources, Task,
    V2Manager, detect,
};

use crate::common::{
    CgroupGuard, exclusive_process_cgroup, proc_cgroup, read, require_root, spawn_sleep,
};

/// A private cgroup2 mount, unmounted on drop.
pub struct Cgroup2Mount {
    pub dir: tempfile::TempDir,
}

impl Cgroup2Mount {
    pub fn new() -> Cgroup2Mount {
        require_root();
        let dir = tempfile::tempdir().unwrap();
        mount(
            Some("none"),
            dir.path(),
            Some("cgroup2"),
            MsFlags::empty(),
            None::<&str>,
        )
        .unwrap_or_else(|e| {
            panic!(
                "mount -t cgroup2 none {}: {e}; the v2 tests need a kernel with cgroup2",
                dir.path().display()
            )
        });
        Cgroup2Mount { dir }
    }

    pub fn manager(&self) -> Arc<V2Manager> {
        Arc::new(V2Manager::new(self.dir.path()))
    }
}

impl Drop for Cgroup2Mount {
    fn drop(&mut self) {
        if let Err(e) = umount2(self.dir.path(), MntFlags::MNT_DETACH) {
            eprintln!("umount {}: {e}", self.dir.path().display());
        }
    }
}

#[test]
fn private_mount_is_detected_as_v2() {
    let mnt = Cgroup2Mount::new();
    let layout = detect(mnt.dir.path()).unwrap();
    assert_eq!(layout.mode, CgroupMode::V2, "{layout:?}");
    assert!(layout.v1.is_empty());
    eprintln!(
        "controllers on this host's cgroup2: {:?}",
        layout.unified_controllers
    );
}

#[test]
fn create_attach_remove() {
    let mnt = Cgroup2Mount::new();
    let m = mnt.manager();
    let guard = CgroupGuard::new(m.clone());
    let ctr = guard.path("kubepods/burstable/podx/ctr");
    m.create(&ctr).unwrap();
    m.create(&ctr).unwrap();
    let available = m.available(&CgroupPath::root()).unwrap();
    // Every ancestor enabled what the root offers of kubelet's set.
    let parent = ctr.parent().unwrap();
    let enabled = read(parent.under(mnt.dir.path()).join("cgroup.subtree_control"));
    for c in available
        .iter()
        .filter(|c| wasmlet_cgroups::V2_MANAGED.contains(c))
    {
        assert!(
            enabled.split_whitespace().any(|w| w == c.as_str()),
            "{c} not enabled in {parent}: {enabled:?}"
        );
    }

    let child = spawn_sleep();
    m.add_task(&ctr, Task::Process(child.pid())).unwrap();
    assert_eq!(
        read(ctr.under(mnt.dir.path()).join("cgroup.procs")),
        child.pid().to_string()
    );
    let lines = proc_cgroup(format!("/proc/{}/cgroup", child.pid()));
    assert!(
        lines.contains(&format!("0::/{}", ctr.as_str())),
        "{lines:?}"
    );
    assert_eq!(
        read(ctr.under(mnt.dir.path()).join("cgroup.events"))
            .lines()
            .next(),
        Some("populated 1")
    );

    // cpu.stat is a core file; memory needs the memory controller.
    match m.stats(&ctr) {
        Ok(stats) => assert!(available.contains(&Controller::Memory), "{stats:?}"),
        Err(Error::MissingController { controller, detail }) => {
            assert_eq!(controller, Controller::Memory, "{detail}");
            assert!(!available.contains(&Controller::Memory));
        }
        Err(e) => panic!("stats: {e}"),
    }
    drop(child);
    m.remove(&guard.base).unwrap();
    assert!(!guard.base.under(mnt.dir.path()).exists());
}

/// Limits on what this kernel offers on v2, and a clear error for what it does not.
#[test]
fn limits_or_named_missing_controllers() {
    let mnt = Cgroup2Mount::new();
    let m = mnt.manager();
    let guard = CgroupGuard::new(m.clone());
    let cg = guard.path("limits");
    m.create(&cg).unwrap();
    let available = m.available(&cg).unwrap();
    let cases = [
        (
            Controller::Cpu,
            Resources {
                cpu_quota: 50_000,
                cpu_period: 100_000,
                ..Resources::default()
            },
            "cpu.max",
            "50000 100000",
        ),
        (
            Controller::Memory,
            Resources {
                memory_limit_in_bytes: 64 << 20,
                ..Resources::default()
            },
            "memory.max",
            "67108864",
        ),
        (
            Controller::Hugetlb,
            Resources {
                hugepage_limits: vec![HugepageLimit {
                    page_size: "2MB".into(),
                    limit: 4 << 21,
                }],
                ..Resources::default()
            },
            "hugetlb.2MB.max",
            "8388608",
        ),
    ];
    for (controller, res, file, want) in cases {
        if available.contains(&controller) {
            m.apply(&cg, &res).unwrap();
            assert_eq!(read(cg.under(mnt.dir.path()).join(file)), want);
            eprintln!("{controller}: REAL kernel write of {file} verified");
        } else {
            let err = m.apply(&cg, &res).unwrap_err();
            assert!(
                matches!(&err, Error::MissingController { controller: c, .. } if *c == controller),
                "{err}"
            );
            assert_eq!(err.code(), wasmlet_cgroups::Code::FailedPrecondition);
            eprintln!("{controller}: not on this host's v2, error is: {err}");
        }
    }
}

/// One thread of the test process in its own threaded cgroup, its process in the threaded domain.
/// Moves the test process itself, so it holds the lock that keeps other tests from forking.
#[test]
fn threaded_subtree_holds_one_thread() {
    let mnt = Cgroup2Mount::new();
    let m = mnt.manager();
    let guard = CgroupGuard::new(m.clone());
    let _exclusive = exclusive_process_cgroup();
    let pod = guard.path("pod");
    let thread_cg = guard.path("pod/thread");
    m.create(&pod).unwrap();
    m.create_threaded(&thread_cg).unwrap();
    assert_eq!(
        read(thread_cg.under(mnt.dir.path()).join("cgroup.type")),
        "threaded"
    );
    assert_eq!(
        read(pod.under(mnt.dir.path()).join("cgroup.type")),
        "domain threaded"
    );

    let original = proc_cgroup("/proc/self/cgroup")
        .into_iter()
        .find_map(|l| l.strip_prefix("0::/").map(str::to_owned));
    let original =
        CgroupPath::new(&original.expect("the test process is in the v2 hierarchy")).unwrap();
    struct Restore<'a>(&'a V2Manager, CgroupPath);
    impl Drop for Restore<'_> {
        fn drop(&mut self) {
            self.0
                .add_task(&self.1, Task::Process(std::process::id()))
                .expect("move the test process back");
        }
    }
    m.add_task(&pod, Task::Process(std::process::id())).unwrap();
    let restore = Restore(&m, original);

    let (tid_tx, tid_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    let t = std::thread::spawn(move || {
        tid_tx.send(nix::unistd::gettid().as_raw() as u32).unwrap();
        let _ = go_rx.recv();
    });
    let tid = tid_rx.recv().unwrap();
    m.add_task(&thread_cg, Task::Thread(tid)).unwrap();
    assert!(
        proc_cgroup(format!("/proc/self/task/{tid}/cgroup"))
            .contains(&format!("0::/{}", thread_cg.as_str()))
    );
    assert!(proc_cgroup("/proc/self/cgroup").contains(&format!("0::/{}", pod.as_str())));
    assert_eq!(
        read(thread_cg.under(mnt.dir.path()).join("cgroup.threads")),
        tid.to_string()
    );
    drop(go_tx);
    t.join().unwrap();
    drop(restore);
    m.remove(&guard.base).unwrap();
    assert!(!guard.base.under(mnt.dir.path()).exists());
}

/// Whatever this test creates also appears in the host's own cgroup2 mount: it is one hierarchy.
#[test]
fn private_mount_is_the_hosts_hierarchy() {
    let mnt = Cgroup2Mount::new();
    let m = mnt.manager();
    let guard = CgroupGuard::new(m.clone());
    m.create(&guard.base).unwrap();
    let host = detect(Path::new(crate::common::CGROUP_ROOT))
        .unwrap()
        .unified;
    if let Some(host) = host.filter(|h| h != mnt.dir.path()) {
        assert!(
            guard.base.under(&host).is_dir(),
            "{} not visible under {}",
            guard.base,
            host.display()
        );
    }
    m.remove(&guard.base).unwrap();
}

/// v2's "no internal processes" rule, for real: a populated cgroup cannot enable domain
/// controllers for new children, and the error names the controller. (Where this kernel offers
/// no domain controller on v2, there is nothing to enable and the child is simply created.)
#[test]
fn populated_parent_refuses_domain_controllers_by_name() {
    let mnt = Cgroup2Mount::new();
    let m = mnt.manager();
    let guard = CgroupGuard::new(m.clone());
    let pod = guard.path("pod");
    m.create(&pod).unwrap();
    let child = spawn_sleep();
    m.add_task(&pod, Task::Process(child.pid())).unwrap();
    let domain: Vec<Controller> = m
        .available(&pod)
        .unwrap()
        .into_iter()
        .filter(|c| wasmlet_cgroups::V2_MANAGED.contains(c) && !c.is_threaded())
        .collect();
    let result = m.create(&pod.join("ctr").unwrap());
    if domain.is_empty() {
        result.unwrap();
    } else {
        let err = result.unwrap_err();
        assert!(matches!(err, Error::Unsupported { .. }), "{err}");
        assert!(
            domain
                .iter()
                .any(|c| err.to_string().contains(&format!("controller {c} "))),
            "{err}"
        );
        eprintln!("refused as expected: {err}");
    }
    drop(child);
}
