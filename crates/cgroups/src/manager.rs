//! The [`CgroupManager`] trait that the runtime programs against, its small value types, and
//! [`open`], which picks the v1 or v2 backend from what is mounted.

use std::fmt;
use std::path::Path;

use crate::{
    CgroupMode, CgroupPath, CpuWeightFormula, Resources, Result, V1Manager, V2Manager, detect,
};

/// Which cgroup version a manager drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CgroupVersion {
    V1,
    V2,
}

/// A task to move into a cgroup.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Task {
    /// A whole process (every thread): `cgroup.procs` on both versions.
    Process(u32),
    /// One thread: v1 `tasks`; v2 `cgroup.threads`, which needs a threaded cgroup
    /// ([`CgroupManager::create_threaded`]) whose process sits in the threaded domain above it.
    Thread(u32),
}

/// Usage of one cgroup, as kubelet/cadvisor report it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Total CPU time, ns (v1 `cpuacct.usage`; v2 `cpu.stat` `usage_usec` × 1000).
    pub cpu_usage_ns: u64,
    /// v1 `memory.usage_in_bytes`; v2 `memory.current`.
    pub memory_usage_bytes: u64,
    /// usage − inactive file pages, floored at 0 (cadvisor's working set).
    pub working_set_bytes: u64,
    /// Anonymous memory: v1 `total_rss`; v2 `anon`.
    pub rss_bytes: u64,
    /// OOM kills inside the cgroup: v2 `memory.events` `oom_kill`; v1 `memory.oom_control` `oom_kill`.
    pub oom_kill_count: u64,
}

/// Creates, limits, populates, measures and removes cgroups. All paths are relative to the
/// hierarchy root the manager was built with. No method panics on a host that lacks a
/// controller; the error names it ([`crate::Error::MissingController`]).
pub trait CgroupManager: Send + Sync + fmt::Debug {
    fn version(&self) -> CgroupVersion;

    /// Creates the cgroup and any missing ancestors; existing is fine. v1: in every mounted
    /// hierarchy this crate manages, filling empty `cpuset.cpus/mems` from the parent. v2: enables
    /// the managed controllers (those available) in each ancestor's `cgroup.subtree_control`.
    fn create(&self, path: &CgroupPath) -> Result<()>;

    /// Creates a cgroup for single threads. v1: in the hierarchies whose controllers act per
    /// thread (cpu, cpuacct, cpuset, pids; not memory or hugetlb, which charge the process). v2:
    /// a threaded cgroup (`cgroup.type` = `threaded`); its parent becomes the threaded domain and
    /// may only have threaded controllers (cpu, cpuset, pids) in its `cgroup.subtree_control`.
    /// Limits for it: [`Resources::for_threads`].
    fn create_threaded(&self, path: &CgroupPath) -> Result<()>;

    /// Validates and writes the limits.
    fn apply(&self, path: &CgroupPath, resources: &Resources) -> Result<()>;

    /// Moves a process or thread into the cgroup (in every hierarchy on v1).
    fn add_task(&self, path: &CgroupPath, task: Task) -> Result<()>;

    /// Reads CPU and memory usage. Needs cpuacct and memory on v1, memory on v2.
    fn stats(&self, path: &CgroupPath) -> Result<Stats>;

    /// Total CPU time of the cgroup's tasks, ns: v1 `cpuacct.usage`, v2 `cpu.stat` `usage_usec`
    /// (a core file, there without the cpu controller). Works for thread cgroups too.
    fn cpu_usage_ns(&self, path: &CgroupPath) -> Result<u64>;

    /// Removes the cgroup and its descendants, deepest first, in every hierarchy; retries `EBUSY`
    /// briefly; a missing cgroup is success. Tasks must have left or exited.
    fn remove(&self, path: &CgroupPath) -> Result<()>;
}

/// Detects the setup under `root` (normally `/sys/fs/cgroup`) and returns the matching backend:
/// v2 for a cgroup2 root, v1 for v1 and hybrid hosts (whose `unified` mount rarely has controllers).
pub fn open(root: &Path, weight_formula: CpuWeightFormula) -> Result<Box<dyn CgroupManager>> {
    let layout = detect(root)?;
    Ok(match layout.mode {
        CgroupMode::V2 => Box::new(V2Manager::new(root).with_weight_formula(weight_formula)),
        CgroupMode::V1 | CgroupMode::Hybrid => Box::new(V1Manager::new(&layout)),
    })
}
