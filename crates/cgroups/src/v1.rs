//! The cgroup v1 backend: one directory per hierarchy (cpu, cpuacct, cpuset, memory, pids,
//! hugetlb — whichever are mounted), v1 file names from [`Dialect::V1`].

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};

use crate::manager::{CgroupManager, CgroupVersion, Stats, Task};
use crate::resources::{Dialect, Write};
use crate::{CgroupPath, Controller, Error, Layout, Resources, Result, fs};

/// The hierarchies a container or pod cgroup is created in, when mounted. Others (devices,
/// freezer, blkio, net_cls, perf_event, name=systemd) are left alone.
pub const V1_MANAGED: [Controller; 6] = [
    Controller::Cpu,
    Controller::Cpuacct,
    Controller::Cpuset,
    Controller::Memory,
    Controller::Pids,
    Controller::Hugetlb,
];

/// Pairs of files whose kernel checks depend on each other; if the first write is refused with
/// `EINVAL`, the pair is written in the other order (runc does the same for both).
const ORDERED_PAIRS: [(&str, &str); 2] = [
    ("cpu.cfs_period_us", "cpu.cfs_quota_us"),
    ("memory.limit_in_bytes", "memory.memsw.limit_in_bytes"),
];

/// cgroup v1 manager.
#[derive(Debug, Clone)]
pub struct V1Manager {
    mounts: BTreeMap<Controller, PathBuf>,
}

impl V1Manager {
    /// Uses the managed controllers that `layout` found mounted.
    pub fn new(layout: &Layout) -> V1Manager {
        V1Manager::with_mounts(layout.v1.iter().map(|(c, p)| (*c, p.clone())))
    }

    /// Uses explicit hierarchy mount points (tests point these at a fixture directory).
    pub fn with_mounts(mounts: impl IntoIterator<Item = (Controller, PathBuf)>) -> V1Manager {
        V1Manager {
            mounts: mounts
                .into_iter()
                .filter(|(c, _)| V1_MANAGED.contains(c))
                .collect(),
        }
    }

    /// The managed controllers this host has.
    pub fn controllers(&self) -> impl Iterator<Item = Controller> + '_ {
        self.mounts.keys().copied()
    }

    /// Distinct hierarchy roots (co-mounted `cpu,cpuacct` counts once).
    fn roots(&self) -> Vec<&Path> {
        let mut roots: Vec<&Path> = self.mounts.values().map(PathBuf::as_path).collect();
        roots.sort();
        roots.dedup();
        roots
    }

    /// Makes `path` in each of `roots`, filling an empty cpuset from its parent.
    fn make_in(&self, roots: Vec<&Path>, path: &CgroupPath) -> Result<()> {
        let cpuset_root = self.mounts.get(&Controller::Cpuset);
        for root in roots {
            if cpuset_root.map(PathBuf::as_path) == Some(root) {
                self.ensure_cpuset(root, &path.under(root))?;
            } else {
                fs::mkdir_all(&path.under(root))?;
            }
        }
        Ok(())
    }

    /// The hierarchies whose controllers act per thread (cpu, cpuacct, cpuset, pids): where a
    /// cgroup for threads is made and a thread is moved.
    fn thread_roots(&self) -> Vec<&Path> {
        let mut roots: Vec<&Path> = self
            .mounts
            .iter()
            .filter(|(c, _)| c.is_threaded() || **c == Controller::Cpuacct)
            .map(|(_, p)| p.as_path())
            .collect();
        roots.sort();
        roots.dedup();
        roots
    }

    fn mount(&self, controller: Controller) -> Result<&Path> {
        self.mounts
            .get(&controller)
            .map(PathBuf::as_path)
            .ok_or_else(|| Error::MissingController {
                controller,
                detail: "no v1 hierarchy is mounted for it (see /proc/self/mountinfo)".into(),
            })
    }

    fn dir(&self, controller: Controller, path: &CgroupPath) -> Result<PathBuf> {
        Ok(path.under(self.mount(controller)?))
    }

    /// Writes one file. A missing file is a missing cgroup (`NotFound`) or, in an existing
    /// cgroup, a missing controller feature such as swap accounting (`MissingController`).
    fn write(&self, path: &CgroupPath, w: &Write) -> Result<()> {
        let dir = self.dir(w.controller, path)?;
        let file = dir.join(&w.file);
        fs::write(&file, &w.value).map_err(|e| match e.kind() {
            io::ErrorKind::NotFound if !dir.is_dir() => Error::NotFound { path: dir },
            io::ErrorKind::NotFound => Error::missing_file(w.controller, &file),
            _ => Error::io("write", &file, e),
        })
    }

    /// Makes sure the cpuset cgroup `dir` exists with non-empty `cpuset.cpus/mems`, copying them
    /// from the nearest ancestor that has them — a new v1 cpuset cgroup starts empty and then
    /// refuses tasks with `ENOSPC`. Returns the values. The common case (parent exists and is
    /// filled) costs one mkdir, two reads and two writes.
    fn ensure_cpuset(&self, root: &Path, dir: &Path) -> Result<(String, String)> {
        let read = |d: &Path, f: &str| fs::read(&d.join(f)).map(|s| s.trim().to_owned());
        if dir == root {
            return Ok((read(root, "cpuset.cpus")?, read(root, "cpuset.mems")?));
        }
        let parent = dir.parent().unwrap_or(root);
        let mut inherited = None;
        let created = match std::fs::create_dir(dir) {
            Ok(()) => true,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => false,
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                inherited = Some(self.ensure_cpuset(root, parent)?);
                fs::mkdir(dir)?
            }
            Err(e) => return Err(Error::io("mkdir", dir, e)),
        };
        let mut own = if created {
            Default::default()
        } else {
            (read(dir, "cpuset.cpus")?, read(dir, "cpuset.mems")?)
        };
        if own.0.is_empty() || own.1.is_empty() {
            let from_parent = match inherited {
                Some(v) => v,
                None => self.ensure_cpuset(root, parent)?,
            };
            for (file, mine, theirs) in [
                ("cpuset.cpus", &mut own.0, from_parent.0),
                ("cpuset.mems", &mut own.1, from_parent.1),
            ] {
                if mine.is_empty() {
                    let f = dir.join(file);
                    fs::write(&f, &theirs).map_err(|e| Error::io("write", f, e))?;
                    *mine = theirs;
                }
            }
        }
        Ok(own)
    }
}

impl CgroupManager for V1Manager {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V1
    }

    fn create(&self, path: &CgroupPath) -> Result<()> {
        if path.is_root() {
            return Ok(());
        }
        self.make_in(self.roots(), path)?;
        tracing::debug!(cgroup.path = %path, "created v1 cgroup");
        Ok(())
    }

    fn create_threaded(&self, path: &CgroupPath) -> Result<()> {
        if path.is_root() {
            return Ok(());
        }
        self.make_in(self.thread_roots(), path)?;
        tracing::debug!(cgroup.path = %path, "created v1 cgroup for threads");
        Ok(())
    }

    fn apply(&self, path: &CgroupPath, resources: &Resources) -> Result<()> {
        let writes = resources.plan(Dialect::V1)?;
        let mut i = 0;
        while i < writes.len() {
            let w = &writes[i];
            match self.write(path, w) {
                Ok(()) => i += 1,
                Err(Error::MissingController { .. }) if w.optional => i += 1,
                Err(Error::Io { source, .. })
                    if source.kind() == io::ErrorKind::InvalidInput
                        && writes.get(i + 1).is_some_and(|n| {
                            ORDERED_PAIRS.contains(&(w.file.as_str(), n.file.as_str()))
                        }) =>
                {
                    self.write(path, &writes[i + 1])?;
                    self.write(path, w)?;
                    i += 2;
                }
                Err(e) => return Err(e),
            }
        }
        tracing::debug!(cgroup.path = %path, writes = writes.len(), "applied v1 limits");
        Ok(())
    }

    fn add_task(&self, path: &CgroupPath, task: Task) -> Result<()> {
        let (file, id, roots) = match task {
            Task::Process(pid) => ("cgroup.procs", pid, self.roots()),
            Task::Thread(tid) => ("tasks", tid, self.thread_roots()),
        };
        for root in roots {
            let dir = path.under(root);
            let f = dir.join(file);
            fs::write(&f, &id.to_string()).map_err(|e| match e.kind() {
                io::ErrorKind::NotFound => Error::NotFound { path: dir },
                _ => Error::io("write", f, e),
            })?;
        }
        Ok(())
    }

    fn stats(&self, path: &CgroupPath) -> Result<Stats> {
        let cpu_dir = self.dir(Controller::Cpuacct, path)?;
        let mem_dir = self.dir(Controller::Memory, path)?;
        for dir in [&cpu_dir, &mem_dir] {
            if !dir.is_dir() {
                return Err(Error::NotFound { path: dir.clone() });
            }
        }
        let stat_path = mem_dir.join("memory.stat");
        let stat = fs::read(&stat_path)?;
        let usage = fs::read_u64(&mem_dir.join("memory.usage_in_bytes"))?;
        let oom_path = mem_dir.join("memory.oom_control");
        Ok(Stats {
            cpu_usage_ns: fs::read_u64(&cpu_dir.join("cpuacct.usage"))?,
            memory_usage_bytes: usage,
            working_set_bytes: usage.saturating_sub(fs::keyed(
                &stat_path,
                &stat,
                "total_inactive_file",
            )?),
            rss_bytes: fs::keyed(&stat_path, &stat, "total_rss")?,
            oom_kill_count: fs::keyed(&oom_path, &fs::read(&oom_path)?, "oom_kill")?,
        })
    }

    fn cpu_usage_ns(&self, path: &CgroupPath) -> Result<u64> {
        let dir = self.dir(Controller::Cpuacct, path)?;
        if !dir.is_dir() {
            return Err(Error::NotFound { path: dir });
        }
        fs::read_u64(&dir.join("cpuacct.usage"))
    }

    fn remove(&self, path: &CgroupPath) -> Result<()> {
        if path.is_root() {
            return Err(Error::invalid(
                "cgroup path",
                path,
                "the root cgroup cannot be removed",
            ));
        }
        let mut first_err = None;
        for root in self.roots() {
            if let Err(e) = fs::remove_tree(&path.under(root)) {
                first_err.get_or_insert(e);
            }
        }
        tracing::debug!(cgroup.path = %path, ok = first_err.is_none(), "removed v1 cgroup");
        first_err.map_or(Ok(()), Err)
    }
}
