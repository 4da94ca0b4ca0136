//! Validation tests for `resources.rs`: every field's bad values are refused, naming the field.

use super::*;

#[test]
fn validation_table() {
    let base = Resources::default;
    let table: Vec<(Resources, &str)> = vec![
        (
            Resources {
                cpu_shares: -2,
                ..base()
            },
            "cpu_shares",
        ),
        (
            Resources {
                cpu_shares: 1,
                ..base()
            },
            "cpu_shares",
        ),
        (
            Resources {
                cpu_shares: 262_145,
                ..base()
            },
            "cpu_shares",
        ),
        (
            Resources {
                cpu_quota: -2,
                ..base()
            },
            "cpu_quota",
        ),
        (
            Resources {
                cpu_quota: 1,
                ..base()
            },
            "cpu_quota",
        ),
        (
            Resources {
                cpu_quota: 999,
                ..base()
            },
            "cpu_quota",
        ),
        (
            Resources {
                cpu_period: -1,
                ..base()
            },
            "cpu_period",
        ),
        (
            Resources {
                cpu_period: 999,
                ..base()
            },
            "cpu_period",
        ),
        (
            Resources {
                cpu_period: 1_000_001,
                ..base()
            },
            "cpu_period",
        ),
        (
            Resources {
                memory_limit_in_bytes: -2,
                ..base()
            },
            "memory_limit_in_bytes",
        ),
        (
            Resources {
                memory_swap_limit_in_bytes: -5,
                ..base()
            },
            "memory_swap_limit_in_bytes",
        ),
        (
            Resources {
                memory_swap_limit_in_bytes: 100,
                ..base()
            },
            "memory_swap_limit_in_bytes",
        ),
        (
            Resources {
                memory_limit_in_bytes: 200,
                memory_swap_limit_in_bytes: 100,
                ..base()
            },
            "memory_swap_limit_in_bytes",
        ),
        (
            Resources {
                memory_limit_in_bytes: -1,
                memory_swap_limit_in_bytes: 100,
                ..base()
            },
            "memory_swap_limit_in_bytes",
        ),
        (
            Resources {
                cpuset_cpus: "0-".into(),
                ..base()
            },
            "cpuset_cpus",
        ),
        (
            Resources {
                cpuset_cpus: "3-1".into(),
                ..base()
            },
            "cpuset_cpus",
        ),
        (
            Resources {
                cpuset_cpus: "0,,1".into(),
                ..base()
            },
            "cpuset_cpus",
        ),
        (
            Resources {
                cpuset_mems: "0 1".into(),
                ..base()
            },
            "cpuset_mems",
        ),
        (
            Resources {
                cpuset_mems: "../x".into(),
                ..base()
            },
            "cpuset_mems",
        ),
        (hp("2M", 1), "hugepage page_size"),
        (hp("02MB", 1), "hugepage page_size"),
        (hp("../2MB", 1), "hugepage page_size"),
        (hp("MB", 1), "hugepage page_size"),
        (hp("2MB", u64::MAX), "hugepage limit"),
        (uni("memory"), "unified key"),
        (uni("memory."), "unified key"),
        (uni("../memory.max"), "unified key"),
        (uni("memory.max/x"), "unified key"),
        (uni("cgroup.procs"), "unified key"),
        (uni("cpuacct.usage"), "unified key"),
        (uni("bogus.max"), "unified key"),
    ];
    for (r, field) in table {
        let err = r.validate().expect_err(field);
        assert!(
            matches!(&err, Error::InvalidArgument { field: f, .. } if *f == field),
            "{r:?}: {err}"
        );
    }
    let dup = Resources {
        hugepage_limits: vec![
            HugepageLimit {
                page_size: "2MB".into(),
                limit: 1
            };
            2
        ],
        ..Resources::default()
    };
    assert!(dup.validate().is_err());
}

fn hp(size: &str, limit: u64) -> Resources {
    Resources {
        hugepage_limits: vec![HugepageLimit {
            page_size: size.into(),
            limit,
        }],
        ..Resources::default()
    }
}

fn uni(key: &str) -> Resources {
    Resources {
        unified: [(key.to_owned(), "1".to_owned())].into(),
        ..Resources::default()
    }
}

#[test]
fn valid_edges_pass() {
    for r in [
        Resources {
            cpu_shares: 2,
            cpu_quota: 1000,
            cpu_period: 1000,
            ..Resources::default()
        },
        Resources {
            cpu_period: 1_000_000,
            cpuset_cpus: "0".into(),
            cpuset_mems: "0-0".into(),
            ..Resources::default()
        },
        hp("1GB", 0),
        uni("io.max"),
        uni("cpu.uclamp.min"),
    ] {
        r.validate().unwrap_or_else(|e| panic!("{r:?}: {e}"));
    }
}
