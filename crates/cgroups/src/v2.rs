//! The cgroup v2 backend: one unified tree, controllers enabled top-down through
//! `cgroup.subtree_control`, v2 file names from [`Dialect::V2`], threaded subtrees for threads.

use std::collections::BTreeSet;
use std::io;
use std::path::{Path, PathBuf};

use crate::manager::{CgroupManager, CgroupVersion, Stats, Task};
use crate::resources::Dialect;
use crate::{CgroupPath, Controller, CpuWeightFormula, Error, Resources, Result, fs};

/// Controllers enabled for children when available: kubelet's `getSupportedUnifiedControllers`.
pub const V2_MANAGED: [Controller; 5] = [
    Controller::Cpu,
    Controller::Cpuset,
    Controller::Memory,
    Controller::Hugetlb,
    Controller::Pids,
];

/// cgroup v2 manager rooted at a cgroup2 mount.
#[derive(Debug, Clone)]
pub struct V2Manager {
    root: PathBuf,
    weight: CpuWeightFormula,
}

impl V2Manager {
    /// A manager for the cgroup2 file system mounted at `root`.
    pub fn new(root: &Path) -> V2Manager {
        V2Manager {
            root: root.to_path_buf(),
            weight: CpuWeightFormula::default(),
        }
    }

    /// Chooses the shares → weight mapping (see [`CpuWeightFormula`]).
    pub fn with_weight_formula(mut self, weight: CpuWeightFormula) -> V2Manager {
        self.weight = weight;
        self
    }

    /// The controllers listed in the cgroup's `cgroup.controllers`.
    pub fn available(&self, path: &CgroupPath) -> Result<BTreeSet<Controller>> {
        let dir = self.existing(path)?;
        Ok(words(&fs::read(&dir.join("cgroup.controllers"))?))
    }

    /// Enables `wanted ∩ available` for the children of `path` by writing `+cpu +memory …` to its
    /// `cgroup.subtree_control`; already-enabled ones are not rewritten. Returns what is enabled.
    pub fn enable_controllers(
        &self,
        path: &CgroupPath,
        wanted: &[Controller],
    ) -> Result<BTreeSet<Controller>> {
        let dir = self.existing(path)?;
        let file = dir.join("cgroup.subtree_control");
        let enabled = words(&fs::read(&file)?);
        let available = words(&fs::read(&dir.join("cgroup.controllers"))?);
        let todo: Vec<Controller> = wanted
            .iter()
            .copied()
            .filter(|c| available.contains(c) && !enabled.contains(c))
            .collect();
        if todo.is_empty() {
            return Ok(enabled);
        }
        let line: Vec<String> = todo.iter().map(|c| format!("+{c}")).collect();
        if let Err(e) = fs::write(&file, &line.join(" ")) {
            // One at a time, so the error names the controller the kernel refused.
            for c in &todo {
                fs::write(&file, &format!("+{c}")).map_err(|e| Error::Unsupported {
                    what: format!("enabling controller {c} in {}", file.display()),
                    reason: match e.kind() {
                        io::ErrorKind::ResourceBusy => format!(
                            "{e}: a non-root cgroup with processes cannot enable domain controllers for children"
                        ),
                        _ => e.to_string(),
                    },
                })?;
            }
            tracing::debug!(error = %e, "batched subtree_control write failed; per-controller writes succeeded");
        }
        Ok(enabled.into_iter().chain(todo).collect())
    }

    fn existing(&self, path: &CgroupPath) -> Result<PathBuf> {
        let dir = path.under(&self.root);
        if dir.is_dir() {
            Ok(dir)
        } else {
            Err(Error::NotFound { path: dir })
        }
    }

    /// Creates every missing level of `path`, enabling controllers in each ancestor first.
    /// `leaf_parent_wants` is what the direct parent enables (only threaded ones for a threaded leaf).
    fn create_levels(&self, path: &CgroupPath, leaf_parent_wants: &[Controller]) -> Result<()> {
        let components: Vec<&str> = path.components().collect();
        let mut current = CgroupPath::root();
        for (i, c) in components.iter().enumerate() {
            let wanted = if i + 1 == components.len() {
                leaf_parent_wants
            } else {
                &V2_MANAGED[..]
            };
            self.enable_controllers(&current, wanted)?;
            current = current.join(c)?;
            fs::mkdir(&current.under(&self.root))?;
        }
        Ok(())
    }

    fn file(&self, path: &CgroupPath, name: &str) -> Result<PathBuf> {
        Ok(self.existing(path)?.join(name))
    }
}

/// Controller names in a `cgroup.controllers` / `cgroup.subtree_control` file.
fn words(text: &str) -> BTreeSet<Controller> {
    text.split_whitespace()
        .filter_map(|w| Controller::from_name(w.trim_start_matches('+')))
        .collect()
}

impl CgroupManager for V2Manager {
    fn version(&self) -> CgroupVersion {
        CgroupVersion::V2
    }

    fn create(&self, path: &CgroupPath) -> Result<()> {
        self.create_levels(path, &V2_MANAGED)?;
        tracing::debug!(cgroup.path = %path, "created v2 cgroup");
        Ok(())
    }

    fn create_threaded(&self, path: &CgroupPath) -> Result<()> {
        let Some(parent) = path.parent().filter(|_| !path.is_root()) else {
            return Err(Error::invalid(
                "cgroup path",
                path,
                "the root cannot be threaded",
            ));
        };
        let threaded: Vec<Controller> =
            V2_MANAGED.into_iter().filter(|c| c.is_threaded()).collect();
        self.create_levels(path, &threaded)?;
        let enabled = words(&fs::read(&self.file(&parent, "cgroup.subtree_control")?)?);
        let domain: Vec<&str> = enabled
            .iter()
            .filter(|c| !c.is_threaded())
            .map(|c| c.as_str())
            .collect();
        if !domain.is_empty() {
            return Err(Error::Unsupported {
                what: format!("threaded cgroup {path}"),
                reason: format!(
                    "its parent {parent} has domain controllers ({}) in cgroup.subtree_control",
                    domain.join(" ")
                ),
            });
        }
        let file = self.file(path, "cgroup.type")?;
        fs::write(&file, "threaded").map_err(|e| Error::io("write", file, e))?;
        tracing::debug!(cgroup.path = %path, "created v2 threaded cgroup");
        Ok(())
    }

    fn apply(&self, path: &CgroupPath, resources: &Resources) -> Result<()> {
        let writes = resources.plan(Dialect::V2(self.weight))?;
        let dir = self.existing(path)?;
        for w in &writes {
            let file = dir.join(&w.file);
            match fs::write(&file, &w.value) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound && w.optional => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {
                    return Err(Error::missing_file(w.controller, &file));
                }
                Err(e) => return Err(Error::io("write", file, e)),
            }
        }
        tracing::debug!(cgroup.path = %path, writes = writes.len(), "applied v2 limits");
        Ok(())
    }

    fn add_task(&self, path: &CgroupPath, task: Task) -> Result<()> {
        let (name, id) = match task {
            Task::Process(pid) => ("cgroup.procs", pid),
            Task::Thread(tid) => ("cgroup.threads", tid),
        };
        let file = self.file(path, name)?;
        fs::write(&file, &id.to_string()).map_err(|e| Error::io("write", file, e))
    }

    fn stats(&self, path: &CgroupPath) -> Result<Stats> {
        let dir = self.existing(path)?;
        let need = |name: &str, controller| {
            let f = dir.join(name);
            if f.exists() {
                Ok(f)
            } else {
                Err(Error::missing_file(controller, &f))
            }
        };
        let cpu_stat = need("cpu.stat", Controller::Cpu)?;
        let (current, stat, events) = (
            need("memory.current", Controller::Memory)?,
            need("memory.stat", Controller::Memory)?,
            need("memory.events", Controller::Memory)?,
        );
        let stat_text = fs::read(&stat)?;
        let usage = fs::read_u64(&current)?;
        Ok(Stats {
            cpu_usage_ns: fs::keyed(&cpu_stat, &fs::read(&cpu_stat)?, "usage_usec")?
                .saturating_mul(1000),
            memory_usage_bytes: usage,
            working_set_bytes: usage.saturating_sub(fs::keyed(&stat, &stat_text, "inactive_file")?),
            rss_bytes: fs::keyed(&stat, &stat_text, "anon")?,
            oom_kill_count: fs::keyed(&events, &fs::read(&events)?, "oom_kill")?,
        })
    }

    fn cpu_usage_ns(&self, path: &CgroupPath) -> Result<u64> {
        let file = self.file(path, "cpu.stat")?;
        Ok(fs::keyed(&file, &fs::read(&file)?, "usage_usec")?.saturating_mul(1000))
    }

    fn remove(&self, path: &CgroupPath) -> Result<()> {
        if path.is_root() {
            return Err(Error::invalid(
                "cgroup path",
                path,
                "the root cgroup cannot be removed",
            ));
        }
        fs::remove_tree(&path.under(&self.root))?;
        tracing::debug!(cgroup.path = %path, "removed v2 cgroup");
        Ok(())
    }
}
