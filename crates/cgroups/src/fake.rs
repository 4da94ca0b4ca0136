//! An in-memory [`CgroupManager`] that records every call and the writes `apply` would make,
//! for unit tests of code that drives cgroups (like youki's `test_manager.rs`). It runs the real
//! validation and rendering, mirrors the real managers' semantics (idempotent create, `NotFound`
//! for missing cgroups, recursive remove), and can be told to fail one operation.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};

use crate::manager::{CgroupManager, CgroupVersion, Stats, Task};
use crate::resources::{Dialect, Write};
use crate::{CgroupPath, Error, Resources, Result};

/// One recorded call.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Call {
    Create(CgroupPath),
    CreateThreaded(CgroupPath),
    Apply(CgroupPath, Vec<Write>),
    AddTask(CgroupPath, Task),
    Stats(CgroupPath),
    Remove(CgroupPath),
}

/// An operation to make fail, for rollback tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Op {
    Create,
    Apply,
    AddTask,
    Stats,
    Remove,
}

#[derive(Debug, Default)]
struct State {
    calls: Vec<Call>,
    cgroups: BTreeSet<CgroupPath>,
    tasks: BTreeMap<CgroupPath, Vec<Task>>,
    fail: Option<Op>,
    stats: Stats,
}

/// The fake manager. `Dialect` decides which file names `apply` records.
#[derive(Debug)]
pub struct FakeManager {
    dialect: Dialect,
    state: Mutex<State>,
}

impl FakeManager {
    pub fn new(dialect: Dialect) -> FakeManager {
        FakeManager {
            dialect,
            state: Mutex::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Every call so far, in order.
    pub fn calls(&self) -> Vec<Call> {
        self.state().calls.clone()
    }

    /// Every write `apply` made, with its cgroup.
    pub fn writes(&self) -> Vec<(CgroupPath, Write)> {
        let calls = self.calls();
        calls
            .into_iter()
            .filter_map(|c| match c {
                Call::Apply(p, ws) => Some(ws.into_iter().map(move |w| (p.clone(), w))),
                _ => None,
            })
            .flatten()
            .collect()
    }

    /// Whether the cgroup currently exists.
    pub fn exists(&self, path: &CgroupPath) -> bool {
        self.state().cgroups.contains(path)
    }

    /// Tasks added to a cgroup that still exists.
    pub fn tasks(&self, path: &CgroupPath) -> Vec<Task> {
        self.state().tasks.get(path).cloned().unwrap_or_default()
    }

    /// Makes the next call of `op` fail with an injected `Io` error (once).
    pub fn fail_next(&self, op: Op) {
        self.state().fail = Some(op);
    }

    /// Simulates a task exiting: it leaves whatever cgroup it was in.
    pub fn exit_task(&self, task: Task) {
        for tasks in self.state().tasks.values_mut() {
            tasks.retain(|t| *t != task);
        }
    }

    /// What `stats` returns.
    pub fn set_stats(&self, stats: Stats) {
        self.state().stats = stats;
    }

    fn begin(&self, op: Op, call: Call) -> Result<MutexGuard<'_, State>> {
        let mut s = self.state();
        s.calls.push(call);
        if s.fail == Some(op) {
            s.fail = None;
            return Err(Error::io(
                "fake",
                format!("/fake/{op:?}"),
                std::io::Error::other("injected failure"),
            ));
        }
        Ok(s)
    }
}

fn insert_with_ancestors(s: &mut State, path: &CgroupPath) {
    let mut p = Some(path.clone());
    while let Some(cur) = p.filter(|c| !c.is_root()) {
        p = cur.parent();
        s.cgroups.insert(cur);
    }
}

fn not_found(path: &CgroupPath) -> Error {
    Error::NotFound {
        path: PathBuf::from(path.to_string()),
    }
}

impl CgroupManager for FakeManager {
    fn version(&self) -> CgroupVersion {
        match self.dialect {
            Dialect::V1 => CgroupVersion::V1,
            Dialect::V2(_) => CgroupVersion::V2,
        }
    }

    fn create(&self, path: &CgroupPath) -> Result<()> {
        let mut s = self.begin(Op::Create, Call::Create(path.clone()))?;
        insert_with_ancestors(&mut s, path);
        Ok(())
    }

    fn create_threaded(&self, path: &CgroupPath) -> Result<()> {
        let mut s = self.begin(Op::Create, Call::CreateThreaded(path.clone()))?;
        if path.is_root() {
            return Err(Error::invalid(
                "cgroup path",
                path,
                "the root cannot be threaded",
            ));
        }
        insert_with_ancestors(&mut s, path);
        Ok(())
    }

    fn apply(&self, path: &CgroupPath, resources: &Resources) -> Result<()> {
        let writes = resources.plan(self.dialect)?;
        let s = self.begin(Op::Apply, Call::Apply(path.clone(), writes))?;
        if !s.cgroups.contains(path) {
            return Err(not_found(path));
        }
        Ok(())
    }

    fn add_task(&self, path: &CgroupPath, task: Task) -> Result<()> {
        let mut s = self.begin(Op::AddTask, Call::AddTask(path.clone(), task))?;
        if !s.cgroups.contains(path) && !path.is_root() {
            return Err(not_found(path));
        }
        for tasks in s.tasks.values_mut() {
            tasks.retain(|t| *t != task);
        }
        s.tasks.entry(path.clone()).or_default().push(task);
        Ok(())
    }

    fn stats(&self, path: &CgroupPath) -> Result<Stats> {
        let s = self.begin(Op::Stats, Call::Stats(path.clone()))?;
        if !s.cgroups.contains(path) {
            return Err(not_found(path));
        }
        Ok(s.stats)
    }

    fn cpu_usage_ns(&self, path: &CgroupPath) -> Result<u64> {
        self.stats(path).map(|s| s.cpu_usage_ns)
    }

    fn remove(&self, path: &CgroupPath) -> Result<()> {
        let mut s = self.begin(Op::Remove, Call::Remove(path.clone()))?;
        let inside =
            |c: &CgroupPath| c == path || c.as_str().starts_with(&format!("{}/", path.as_str()));
        if s.tasks.iter().any(|(c, t)| inside(c) && !t.is_empty()) {
            return Err(Error::io(
                "rmdir",
                path.to_string(),
                std::io::Error::from(std::io::ErrorKind::ResourceBusy),
            ));
        }
        s.cgroups.retain(|c| !inside(c));
        s.tasks.retain(|c, _| !inside(c));
        Ok(())
    }
}

#[cfg(test)]
#[path = "fake_tests.rs"]
mod tests;
