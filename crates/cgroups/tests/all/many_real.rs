//! REAL kernel: 100 pod cgroups (each with a container child and limits) created and removed
//! leave nothing behind, on v1 (every hierarchy) and on a private cgroup2 mount.

use std::path::Path;
use std::sync::Arc;

use wasmlet_cgroups::{CgroupManager, CgroupPath, Resources};

use crate::common::{CGROUP_ROOT, CgroupGuard, v1_manager};
use crate::v2_real::Cgroup2Mount;

const PODS: usize = 100;

fn churn(m: Arc<dyn CgroupManager>, hierarchy_roots: &[&Path], limits: &Resources) {
    let guard = CgroupGuard::new(m.clone());
    let pods: Vec<CgroupPath> = (0..PODS)
        .map(|i| guard.path(&format!("kubepods/burstable/pod{i:04}")))
        .collect();
    for pod in &pods {
        let ctr = pod.join("ctr").unwrap();
        m.create(&ctr).unwrap();
        m.apply(pod, limits).unwrap();
        m.apply(&ctr, limits).unwrap();
    }
    for root in hierarchy_roots {
        let qos = guard.path("kubepods/burstable").under(root);
        assert_eq!(
            std::fs::read_dir(&qos)
                .unwrap()
                .filter(|e| e.as_ref().unwrap().path().is_dir())
                .count(),
            PODS
        );
    }
    for pod in &pods {
        m.remove(pod).unwrap();
    }
    for root in hierarchy_roots {
        let qos = guard.path("kubepods/burstable").under(root);
        let left: Vec<_> = std::fs::read_dir(&qos)
            .unwrap()
            .filter_map(|e| e.ok())
            .filter(|e| e.path().is_dir())
            .collect();
        assert!(left.is_empty(), "{} left {left:?}", qos.display());
    }
    m.remove(&guard.base).unwrap();
    for root in hierarchy_roots {
        assert!(
            !guard.base.under(root).exists(),
            "{} left in {}",
            guard.base,
            root.display()
        );
    }
}

#[test]
fn hundred_pods_v1_leave_nothing() {
    let m = v1_manager();
    let roots: Vec<_> = ["cpu", "cpuacct", "cpuset", "memory", "pids"]
        .map(|c| Path::new(CGROUP_ROOT).join(c))
        .into();
    let roots: Vec<&Path> = roots.iter().map(|p| p.as_path()).collect();
    let limits = Resources {
        cpu_shares: 512,
        cpu_quota: 50_000,
        cpu_period: 100_000,
        memory_limit_in_bytes: 64 << 20,
        ..Resources::default()
    };
    churn(m, &roots, &limits);
}

#[test]
fn hundred_pods_v2_leave_nothing() {
    let mnt = Cgroup2Mount::new();
    churn(mnt.manager(), &[mnt.dir.path()], &Resources::default());
}
