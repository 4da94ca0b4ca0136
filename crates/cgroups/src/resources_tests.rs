//! Table tests for the resource arithmetic in `resources.rs`: validation and the v1/v2 renderings.

use super::*;
use crate::cpu::{milli_cpu_to_quota, milli_cpu_to_shares};

const LINEAR: Dialect = Dialect::V2(CpuWeightFormula::Linear);
const QUADRATIC: Dialect = Dialect::V2(CpuWeightFormula::Quadratic);

/// `(file, value)` pairs of a plan, for compact expectations.
fn files(r: &Resources, d: Dialect) -> Vec<(String, String)> {
    r.plan(d)
        .unwrap()
        .into_iter()
        .map(|w| (w.file, w.value))
        .collect()
}

/// A table row: the resources, their v1 writes, their v2 writes.
type Row = (
    Resources,
    &'static [(&'static str, &'static str)],
    &'static [(&'static str, &'static str)],
);

fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
    v.iter()
        .map(|(a, b)| ((*a).to_owned(), (*b).to_owned()))
        .collect()
}

#[test]
fn empty_resources_write_nothing() {
    for d in [Dialect::V1, LINEAR] {
        assert!(Resources::default().plan(d).unwrap().is_empty());
    }
}

/// What kubelet sends for `requests: 250m/64Mi, limits: 500m/64Mi` (computed with its helpers).
#[test]
fn kubelet_container_both_versions() {
    let r = Resources {
        cpu_shares: milli_cpu_to_shares(250) as i64,
        cpu_quota: milli_cpu_to_quota(500, 100_000),
        cpu_period: 100_000,
        memory_limit_in_bytes: 64 << 20,
        ..Resources::default()
    };
    assert_eq!(
        files(&r, Dialect::V1),
        pairs(&[
            ("cpu.shares", "256"),
            ("cpu.cfs_period_us", "100000"),
            ("cpu.cfs_quota_us", "50000"),
            ("memory.limit_in_bytes", "67108864"),
        ])
    );
    assert_eq!(
        files(&r, LINEAR),
        pairs(&[
            ("cpu.weight", "10"),
            ("cpu.max", "50000 100000"),
            ("memory.max", "67108864")
        ])
    );
    assert_eq!(
        files(&r, QUADRATIC)[0],
        ("cpu.weight".to_owned(), "35".to_owned())
    );
}

#[test]
fn cpu_table() {
    let cpu = |shares, quota, period| Resources {
        cpu_shares: shares,
        cpu_quota: quota,
        cpu_period: period,
        ..Resources::default()
    };
    let table: &[Row] = &[
        (cpu(2, 0, 0), &[("cpu.shares", "2")], &[("cpu.weight", "1")]),
        (
            cpu(1024, 0, 0),
            &[("cpu.shares", "1024")],
            &[("cpu.weight", "39")],
        ),
        (
            cpu(262_144, 0, 0),
            &[("cpu.shares", "262144")],
            &[("cpu.weight", "10000")],
        ),
        // Kubelet's "no CPU limit": quota 0 with the period → explicitly unlimited on both.
        (
            cpu(0, 0, 100_000),
            &[("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "-1")],
            &[("cpu.max", "max 100000")],
        ),
        // Quota without a period gets the default period.
        (
            cpu(0, 150_000, 0),
            &[
                ("cpu.cfs_period_us", "100000"),
                ("cpu.cfs_quota_us", "150000"),
            ],
            &[("cpu.max", "150000 100000")],
        ),
        (
            cpu(0, -1, 0),
            &[("cpu.cfs_period_us", "100000"), ("cpu.cfs_quota_us", "-1")],
            &[("cpu.max", "max 100000")],
        ),
        (
            cpu(0, 1_000, 1_000),
            &[("cpu.cfs_period_us", "1000"), ("cpu.cfs_quota_us", "1000")],
            &[("cpu.max", "1000 1000")],
        ),
        (
            cpu(0, 2_000_000, 1_000_000),
            &[
                ("cpu.cfs_period_us", "1000000"),
                ("cpu.cfs_quota_us", "2000000"),
            ],
            &[("cpu.max", "2000000 1000000")],
        ),
    ];
    for (r, v1, v2) in table {
        assert_eq!(files(r, Dialect::V1), pairs(v1), "{r:?}");
        assert_eq!(files(r, LINEAR), pairs(v2), "{r:?}");
    }
}

#[test]
fn memory_and_swap_table() {
    let mem = |m, s| Resources {
        memory_limit_in_bytes: m,
        memory_swap_limit_in_bytes: s,
        ..Resources::default()
    };
    let table: &[Row] = &[
        (
            mem(1 << 20, 0),
            &[("memory.limit_in_bytes", "1048576")],
            &[("memory.max", "1048576")],
        ),
        (
            mem(-1, 0),
            &[
                ("memory.limit_in_bytes", "-1"),
                ("memory.memsw.limit_in_bytes", "-1"),
            ],
            &[("memory.max", "max"), ("memory.swap.max", "max")],
        ),
        // The CRI/OCI swap limit includes memory; v2's memory.swap.max is swap only.
        (
            mem(100, 300),
            &[
                ("memory.limit_in_bytes", "100"),
                ("memory.memsw.limit_in_bytes", "300"),
            ],
            &[("memory.max", "100"), ("memory.swap.max", "200")],
        ),
        // Kubelet's NoSwap: swap limit == memory limit → no swap at all.
        (
            mem(100, 100),
            &[
                ("memory.limit_in_bytes", "100"),
                ("memory.memsw.limit_in_bytes", "100"),
            ],
            &[("memory.max", "100"), ("memory.swap.max", "0")],
        ),
        (
            mem(100, -1),
            &[
                ("memory.limit_in_bytes", "100"),
                ("memory.memsw.limit_in_bytes", "-1"),
            ],
            &[("memory.max", "100"), ("memory.swap.max", "max")],
        ),
    ];
    for (r, v1, v2) in table {
        assert_eq!(files(r, Dialect::V1), pairs(v1), "{r:?}");
        assert_eq!(files(r, LINEAR), pairs(v2), "{r:?}");
    }
    // Optional: runc ignores a missing swap file for "max"/"0" on v2, and for the derived -1 on v1.
    let optional = |r: &Resources, d| {
        r.plan(d)
            .unwrap()
            .iter()
            .filter(|w| w.optional)
            .map(|w| w.file.clone())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        optional(&mem(-1, 0), Dialect::V1),
        ["memory.memsw.limit_in_bytes"]
    );
    assert_eq!(optional(&mem(100, 100), LINEAR), ["memory.swap.max"]);
    assert!(optional(&mem(100, 300), LINEAR).is_empty());
    assert!(optional(&mem(100, 300), Dialect::V1).is_empty());
}

#[test]
fn cpuset_hugetlb_unified() {
    let r = Resources {
        cpuset_cpus: "0-1,3".into(),
        cpuset_mems: "0".into(),
        hugepage_limits: vec![
            HugepageLimit {
                page_size: "2MB".into(),
                limit: 4 << 21,
            },
            HugepageLimit {
                page_size: "1GB".into(),
                limit: 0,
            },
        ],
        ..Resources::default()
    };
    let common = [("cpuset.cpus", "0-1,3"), ("cpuset.mems", "0")];
    let mut v1 = common.to_vec();
    v1.extend([
        ("hugetlb.2MB.limit_in_bytes", "8388608"),
        ("hugetlb.1GB.limit_in_bytes", "0"),
    ]);
    let mut v2 = common.to_vec();
    v2.extend([("hugetlb.2MB.max", "8388608"), ("hugetlb.1GB.max", "0")]);
    assert_eq!(files(&r, Dialect::V1), pairs(&v1));
    assert_eq!(files(&r, LINEAR), pairs(&v2));

    // Unified entries come last and verbatim, overriding the fields; v1 refuses them.
    let r = Resources {
        memory_limit_in_bytes: 100,
        unified: [
            ("memory.high".to_owned(), "50".to_owned()),
            ("memory.max".to_owned(), "200".to_owned()),
        ]
        .into(),
        ..Resources::default()
    };
    assert_eq!(
        files(&r, LINEAR),
        pairs(&[
            ("memory.max", "100"),
            ("memory.high", "50"),
            ("memory.max", "200")
        ])
    );
    let err = r.plan(Dialect::V1).unwrap_err();
    assert!(
        matches!(err, Error::Unsupported { .. }) && err.to_string().contains("memory.high"),
        "{err}"
    );
}

#[test]
fn for_threads_keeps_cpu_and_drops_what_is_charged_per_process() {
    let r = Resources {
        cpu_period: 100_000,
        cpu_quota: 50_000,
        cpu_shares: 512,
        memory_limit_in_bytes: 64 << 20,
        memory_swap_limit_in_bytes: 128 << 20,
        cpuset_cpus: "0".into(),
        cpuset_mems: "0".into(),
        hugepage_limits: vec![HugepageLimit { page_size: "2MB".into(), limit: 1 << 21 }],
        unified: [
            ("cpu.idle".to_owned(), "1".to_owned()),
            ("memory.high".to_owned(), "50".to_owned()),
            ("pids.max".to_owned(), "10".to_owned()),
        ]
        .into(),
    };
    let t = r.for_threads();
    assert_eq!((t.cpu_period, t.cpu_quota, t.cpu_shares), (100_000, 50_000, 512));
    assert_eq!((t.cpuset_cpus.as_str(), t.cpuset_mems.as_str()), ("0", "0"));
    assert_eq!((t.memory_limit_in_bytes, t.memory_swap_limit_in_bytes), (0, 0));
    assert!(t.hugepage_limits.is_empty());
    assert_eq!(t.unified.keys().collect::<Vec<_>>(), ["cpu.idle", "pids.max"]);
    // Nothing memory-related is written for it (v2; v1 refuses unified entries as ever).
    let written = files(&t, LINEAR);
    assert!(written.iter().all(|(f, _)| !f.starts_with("memory.") && !f.starts_with("hugetlb.")), "{written:?}");
    let v1 = Resources { unified: Default::default(), ..t };
    assert!(files(&v1, Dialect::V1).iter().all(|(f, _)| !f.starts_with("memory.") && !f.starts_with("hugetlb.")));
}

#[test]
fn a_thread_needs_a_cgroup_only_for_what_a_cgroup_enforces_on_it() {
    let besteffort = Resources { cpu_shares: 2, cpu_period: 100_000, memory_limit_in_bytes: 64 << 20, ..Resources::default() };
    assert!(!besteffort.need_thread_cgroup(), "kubelet's minimum shares and a memory limit (the shim's limiter's job)");
    assert!(!Resources::default().need_thread_cgroup());
    for (what, r) in [
        ("a quota", Resources { cpu_quota: 50_000, cpu_period: 100_000, ..Resources::default() }),
        ("a request", Resources { cpu_shares: 256, ..Resources::default() }),
        ("a cpuset", Resources { cpuset_cpus: "0".into(), ..Resources::default() }),
        ("a v2 cpu file", Resources { unified: [("cpu.idle".to_owned(), "1".to_owned())].into(), ..Resources::default() }),
    ] {
        assert!(r.need_thread_cgroup(), "{what}");
    }
}
