//! FIXTURE, not the kernel: cgroup v2 controller files this host cannot show for real (its cpu,
//! cpuset, memory and pids are bound to v1). Each fixture directory holds the files a kernel 6.x
//! cgroup has, named exactly as the kernel names them and holding the kernel's default contents.
//! Unlike the kernel, a fixture does not create files on mkdir or normalise what is written, so
//! child directories are prepared before `create` and written values are read back verbatim.

use std::fs;
use std::path::Path;

use wasmlet_cgroups::{
    CgroupManager, CgroupPath, Controller, CpuWeightFormula, Error, HugepageLimit, Resources, Task,
    V2Manager,
};

const ALL: &str = "cpuset cpu io memory hugetlb pids rdma misc";
const MANAGED: &str = "cpuset cpu memory hugetlb pids";

/// Kernel 6.x default contents of a non-root cgroup's files, per controller.
fn defaults(controllers: &str) -> Vec<(&'static str, &'static str)> {
    let mut files = vec![
        ("cgroup.subtree_control", ""),
        ("cgroup.procs", ""),
        ("cgroup.threads", ""),
        ("cgroup.type", "domain\n"),
        ("cgroup.events", "populated 0\nfrozen 0\n"),
        ("cgroup.freeze", "0\n"),
        ("cgroup.max.depth", "max\n"),
        ("cgroup.max.descendants", "max\n"),
        ("cgroup.stat", "nr_descendants 0\nnr_dying_descendants 0\n"),
        ("cpu.stat", "usage_usec 0\nuser_usec 0\nsystem_usec 0\n"),
    ];
    for c in controllers.split_whitespace() {
        files.extend_from_slice(match c {
            "cpu" => &[
                ("cpu.weight", "100\n"),
                ("cpu.weight.nice", "0\n"),
                ("cpu.max", "max 100000\n"),
                ("cpu.max.burst", "0\n"),
                ("cpu.idle", "0\n"),
                (
                    "cpu.stat",
                    "usage_usec 0\nuser_usec 0\nsystem_usec 0\nnr_periods 0\nnr_throttled 0\nthrottled_usec 0\nnr_bursts 0\nburst_usec 0\n",
                ),
            ][..],
            "memory" => &[
                ("memory.current", "0\n"),
                ("memory.min", "0\n"),
                ("memory.low", "0\n"),
                ("memory.high", "max\n"),
                ("memory.max", "max\n"),
                ("memory.swap.current", "0\n"),
                ("memory.swap.high", "max\n"),
                ("memory.swap.max", "max\n"),
                ("memory.oom.group", "0\n"),
                ("memory.events", "low 0\nhigh 0\nmax 0\noom 0\noom_kill 0\noom_group_kill 0\n"),
                ("memory.stat", MEMORY_STAT_ZERO),
            ][..],
            "cpuset" => &[
                ("cpuset.cpus", "\n"),
                ("cpuset.mems", "\n"),
                ("cpuset.cpus.effective", "0-1\n"),
                ("cpuset.mems.effective", "0\n"),
                ("cpuset.cpus.partition", "member\n"),
            ][..],
            "hugetlb" => &[
                ("hugetlb.2MB.max", "max\n"),
                ("hugetlb.2MB.current", "0\n"),
                ("hugetlb.2MB.rsvd.max", "max\n"),
                ("hugetlb.2MB.events", "max 0\n"),
                ("hugetlb.1GB.max", "max\n"),
                ("hugetlb.1GB.current", "0\n"),
                ("hugetlb.1GB.rsvd.max", "max\n"),
                ("hugetlb.1GB.events", "max 0\n"),
            ][..],
            "pids" => &[("pids.max", "max\n"), ("pids.current", "0\n"), ("pids.events", "max 0\n")][..],
            _ => &[][..],
        });
    }
    files
}

const MEMORY_STAT_ZERO: &str = "anon 0\nfile 0\nkernel 0\nkernel_stack 0\npagetables 0\nsock 0\nshmem 0\nfile_mapped 0\n\
file_dirty 0\nfile_writeback 0\nswapcached 0\ninactive_anon 0\nactive_anon 0\ninactive_file 0\nactive_file 0\n\
unevictable 0\nslab_reclaimable 0\nslab_unreclaimable 0\nslab 0\npgfault 0\npgmajfault 0\n";

/// A fixture cgroup directory whose `cgroup.controllers` is `controllers`.
fn cgroup_dir(dir: &Path, controllers: &str) {
    fs::create_dir_all(dir).unwrap();
    fs::write(dir.join("cgroup.controllers"), format!("{controllers}\n")).unwrap();
    for (name, content) in defaults(controllers) {
        fs::write(dir.join(name), content).unwrap();
    }
}

fn read(p: impl AsRef<Path>) -> String {
    fs::read_to_string(p).unwrap()
}

/// Root offering every controller, and `a`, `a/b` prepared with kubelet's set enabled.
fn tree() -> (tempfile::TempDir, V2Manager, CgroupPath) {
    let root = tempfile::tempdir().unwrap();
    cgroup_dir(root.path(), ALL);
    cgroup_dir(&root.path().join("a"), MANAGED);
    cgroup_dir(&root.path().join("a/b"), MANAGED);
    let m = V2Manager::new(root.path());
    (root, m, CgroupPath::new("a/b").unwrap())
}

#[test]
fn create_enables_controllers_top_down() {
    let (root, m, b) = tree();
    m.create(&b).unwrap();
    assert_eq!(
        read(root.path().join("cgroup.subtree_control")),
        "+cpu +cpuset +memory +hugetlb +pids"
    );
    assert_eq!(
        read(root.path().join("a/cgroup.subtree_control")),
        "+cpu +cpuset +memory +hugetlb +pids"
    );
    assert_eq!(
        read(root.path().join("a/b/cgroup.subtree_control")),
        "",
        "the leaf enables nothing"
    );
    // As the kernel shows it after the write; a second create rewrites nothing.
    fs::write(
        root.path().join("a/cgroup.subtree_control"),
        "cpuset cpu memory hugetlb pids\n",
    )
    .unwrap();
    m.create(&b).unwrap();
    assert_eq!(
        read(root.path().join("a/cgroup.subtree_control")),
        "cpuset cpu memory hugetlb pids\n"
    );
}

#[test]
fn apply_writes_kernel_files() {
    let (root, m, b) = tree();
    let m = m.with_weight_formula(CpuWeightFormula::Linear);
    m.create(&b).unwrap();
    let res = Resources {
        cpu_shares: 512,
        cpu_quota: 50_000,
        cpu_period: 100_000,
        memory_limit_in_bytes: 64 << 20,
        memory_swap_limit_in_bytes: 96 << 20,
        cpuset_cpus: "0-1".into(),
        cpuset_mems: "0".into(),
        hugepage_limits: vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 4 << 21,
        }],
        unified: [("memory.high".to_owned(), "50331648".to_owned())].into(),
    };
    m.apply(&b, &res).unwrap();
    let dir = root.path().join("a/b");
    for (file, want) in [
        ("cpu.weight", "20"),
        ("cpu.max", "50000 100000"),
        ("memory.max", "67108864"),
        ("memory.swap.max", "33554432"),
        ("cpuset.cpus", "0-1"),
        ("cpuset.mems", "0"),
        ("hugetlb.2MB.max", "8388608"),
        ("memory.high", "50331648"),
        // Untouched files keep the kernel defaults.
        ("hugetlb.1GB.max", "max\n"),
        ("pids.max", "max\n"),
        ("cpu.max.burst", "0\n"),
    ] {
        assert_eq!(read(dir.join(file)), want, "{file}");
    }
    let quadratic = m.clone().with_weight_formula(CpuWeightFormula::Quadratic);
    quadratic
        .apply(
            &b,
            &Resources {
                cpu_shares: 1024,
                ..Resources::default()
            },
        )
        .unwrap();
    assert_eq!(read(dir.join("cpu.weight")), "100");
}

#[test]
fn stats_from_kernel_format_files() {
    let (root, m, b) = tree();
    let dir = root.path().join("a/b");
    fs::write(
        dir.join("cpu.stat"),
        "usage_usec 1234567\nuser_usec 1000000\nsystem_usec 234567\nnr_periods 0\n",
    )
    .unwrap();
    fs::write(dir.join("memory.current"), "10485760\n").unwrap();
    fs::write(
        dir.join("memory.stat"),
        MEMORY_STAT_ZERO
            .replace("anon 0\n", "anon 3145728\n")
            .replace("inactive_file 0", "inactive_file 4194304"),
    )
    .unwrap();
    fs::write(
        dir.join("memory.events"),
        "low 0\nhigh 0\nmax 7\noom 2\noom_kill 2\noom_group_kill 0\n",
    )
    .unwrap();
    let s = m.stats(&b).unwrap();
    assert_eq!(s.cpu_usage_ns, 1_234_567_000);
    assert_eq!(s.memory_usage_bytes, 10_485_760);
    assert_eq!(s.working_set_bytes, 10_485_760 - 4_194_304);
    assert_eq!(s.rss_bytes, 3_145_728);
    assert_eq!(s.oom_kill_count, 2);
    // Inactive file above usage (the counters are read at different moments) floors at 0.
    fs::write(dir.join("memory.current"), "100\n").unwrap();
    assert_eq!(m.stats(&b).unwrap().working_set_bytes, 0);
}

#[test]
fn missing_controller_files_are_named() {
    let root = tempfile::tempdir().unwrap();
    cgroup_dir(root.path(), "cpu memory");
    cgroup_dir(&root.path().join("c"), "cpu memory");
    fs::remove_file(root.path().join("c/memory.swap.max")).unwrap(); // no swap accounting
    let m = V2Manager::new(root.path());
    let c = CgroupPath::new("c").unwrap();
    m.create(&c).unwrap();
    let hugetlb = Resources {
        hugepage_limits: vec![HugepageLimit {
            page_size: "2MB".into(),
            limit: 0,
        }],
        ..Resources::default()
    };
    let err = m.apply(&c, &hugetlb).unwrap_err();
    assert!(
        matches!(
            err,
            Error::MissingController {
                controller: Controller::Hugetlb,
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("hugetlb.2MB.max"), "{err}");
    // runc's leniency: swap "0" or "max" without the swap file is skipped; a real limit is not.
    m.apply(
        &c,
        &Resources {
            memory_limit_in_bytes: 100,
            memory_swap_limit_in_bytes: 100,
            ..Resources::default()
        },
    )
    .unwrap();
    let err = m.apply(
        &c,
        &Resources {
            memory_limit_in_bytes: 100,
            memory_swap_limit_in_bytes: 200,
            ..Resources::default()
        },
    );
    assert!(
        matches!(
            err,
            Err(Error::MissingController {
                controller: Controller::Memory,
                ..
            })
        ),
        "{err:?}"
    );
    assert!(matches!(
        m.stats(&CgroupPath::new("nope").unwrap()),
        Err(Error::NotFound { .. })
    ));
}

#[test]
fn threaded_cgroups() {
    let (root, m, b) = tree();
    let t = b.join("t").unwrap();
    cgroup_dir(&t.under(root.path()), "cpu cpuset pids");
    m.create_threaded(&t).unwrap();
    assert_eq!(read(t.under(root.path()).join("cgroup.type")), "threaded");
    assert_eq!(
        read(b.under(root.path()).join("cgroup.subtree_control")),
        "+cpu +cpuset +pids",
        "threaded controllers only"
    );
    m.add_task(&t, Task::Thread(4242)).unwrap();
    assert_eq!(read(t.under(root.path()).join("cgroup.threads")), "4242");
    m.add_task(&b, Task::Process(77)).unwrap();
    assert_eq!(read(b.under(root.path()).join("cgroup.procs")), "77");

    // A parent with a domain controller enabled cannot host threaded children.
    // (All threaded ones already enabled, so the fixture file is not overwritten by a new write.)
    fs::write(
        b.under(root.path()).join("cgroup.subtree_control"),
        "cpuset cpu memory pids\n",
    )
    .unwrap();
    let err = m.create_threaded(&t).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { .. }) && err.to_string().contains("(memory)"),
        "{err}"
    );
}
