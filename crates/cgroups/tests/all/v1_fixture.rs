//! FIXTURE, not the kernel: v1 cases this host cannot show for real — co-mounted `cpu,cpuacct`,
//! cpuset levels that already exist but are empty, and exact stats arithmetic (real counters move).
//! Files are named as the kernel names them and hold its default contents.

use std::fs;
use std::path::Path;

use wasmlet_cgroups::{CgroupManager, CgroupPath, Controller, Resources, V1Manager};

fn files(dir: &Path, files: &[(&str, &str)]) {
    fs::create_dir_all(dir).unwrap();
    for (name, content) in files {
        fs::write(dir.join(name), content).unwrap();
    }
}

#[test]
fn comounted_cpu_cpuacct_and_empty_cpuset_levels() {
    let root = tempfile::tempdir().unwrap();
    let comount = root.path().join("cpu,cpuacct");
    let cpuset = root.path().join("cpuset");
    for dir in [comount.clone(), comount.join("a"), comount.join("a/b")] {
        files(
            &dir,
            &[
                ("cpu.shares", "1024\n"),
                ("cpu.cfs_quota_us", "-1\n"),
                ("cpu.cfs_period_us", "100000\n"),
                ("tasks", ""),
            ],
        );
    }
    files(&cpuset, &[("cpuset.cpus", "0-1\n"), ("cpuset.mems", "0\n")]);
    // `a` and `a/b` exist with the kernel's empty defaults (as after a plain mkdir; a fixture
    // cannot create files on mkdir, so the freshly-created path is covered by the real v1 test).
    for level in ["a", "a/b"] {
        files(
            &cpuset.join(level),
            &[("cpuset.cpus", "\n"), ("cpuset.mems", "\n")],
        );
    }
    let m = V1Manager::with_mounts([
        (Controller::Cpu, comount.clone()),
        (Controller::Cpuacct, comount.clone()),
        (Controller::Cpuset, cpuset.clone()),
    ]);
    let b = CgroupPath::new("a/b").unwrap();
    m.create(&b).unwrap();
    for level in ["a", "a/b"] {
        assert_eq!(
            fs::read_to_string(cpuset.join(level).join("cpuset.cpus")).unwrap(),
            "0-1",
            "{level}"
        );
        assert_eq!(
            fs::read_to_string(cpuset.join(level).join("cpuset.mems")).unwrap(),
            "0",
            "{level}"
        );
    }
    m.apply(
        &b,
        &Resources {
            cpu_shares: 256,
            cpu_quota: 25_000,
            ..Resources::default()
        },
    )
    .unwrap();
    assert_eq!(
        fs::read_to_string(comount.join("a/b/cpu.shares")).unwrap(),
        "256"
    );
    assert_eq!(
        fs::read_to_string(comount.join("a/b/cpu.cfs_quota_us")).unwrap(),
        "25000"
    );
    assert_eq!(m.controllers().count(), 3);
}

#[test]
fn stats_from_kernel_format_files() {
    let root = tempfile::tempdir().unwrap();
    let (cpuacct, memory) = (root.path().join("cpuacct"), root.path().join("memory"));
    files(&cpuacct.join("c"), &[("cpuacct.usage", "123456789\n")]);
    files(
        &memory.join("c"),
        &[
            ("memory.usage_in_bytes", "20971520\n"),
            (
                "memory.stat",
                "cache 8388608\nrss 4194304\ninactive_file 1\ntotal_cache 8388608\ntotal_rss 6291456\n\
                 total_inactive_file 5242880\ntotal_active_file 3145728\n",
            ),
            (
                "memory.oom_control",
                "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n",
            ),
        ],
    );
    let m = V1Manager::with_mounts([(Controller::Cpuacct, cpuacct), (Controller::Memory, memory)]);
    let s = m.stats(&CgroupPath::new("c").unwrap()).unwrap();
    assert_eq!(s.cpu_usage_ns, 123_456_789);
    assert_eq!(s.memory_usage_bytes, 20_971_520);
    assert_eq!(
        s.working_set_bytes,
        20_971_520 - 5_242_880,
        "total_inactive_file, not inactive_file"
    );
    assert_eq!(s.rss_bytes, 6_291_456, "total_rss, hierarchical");
    assert_eq!(s.oom_kill_count, 3);
    // Without cpuacct the error names it.
    let only_memory = V1Manager::with_mounts([(Controller::Memory, root.path().join("memory"))]);
    let err = only_memory
        .stats(&CgroupPath::new("c").unwrap())
        .unwrap_err();
    assert!(err.to_string().contains("cpuacct"), "{err}");
}
