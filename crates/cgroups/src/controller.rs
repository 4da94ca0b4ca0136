//! Cgroup controller names, spelled as the kernel spells them in `/proc/cgroups`, in the super
//! options of a v1 mount and in a v2 `cgroup.controllers` file.

use std::fmt;

/// A cgroup controller (called a "subsystem" on v1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Controller {
    Cpu,
    /// v1 only: CPU accounting (`cpuacct.usage`). On v2 `cpu.stat` is a core file.
    Cpuacct,
    Cpuset,
    Memory,
    Pids,
    Hugetlb,
    /// v2 block IO.
    Io,
    /// v1 block IO.
    Blkio,
    Devices,
    Freezer,
    NetCls,
    NetPrio,
    PerfEvent,
    Rdma,
    Misc,
}

impl Controller {
    /// Every controller this crate knows by name.
    pub const ALL: [Controller; 15] = [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Cpuset,
        Controller::Memory,
        Controller::Pids,
        Controller::Hugetlb,
        Controller::Io,
        Controller::Blkio,
        Controller::Devices,
        Controller::Freezer,
        Controller::NetCls,
        Controller::NetPrio,
        Controller::PerfEvent,
        Controller::Rdma,
        Controller::Misc,
    ];

    /// The kernel's name for the controller.
    pub fn as_str(self) -> &'static str {
        match self {
            Controller::Cpu => "cpu",
            Controller::Cpuacct => "cpuacct",
            Controller::Cpuset => "cpuset",
            Controller::Memory => "memory",
            Controller::Pids => "pids",
            Controller::Hugetlb => "hugetlb",
            Controller::Io => "io",
            Controller::Blkio => "blkio",
            Controller::Devices => "devices",
            Controller::Freezer => "freezer",
            Controller::NetCls => "net_cls",
            Controller::NetPrio => "net_prio",
            Controller::PerfEvent => "perf_event",
            Controller::Rdma => "rdma",
            Controller::Misc => "misc",
        }
    }

    /// Parses a kernel controller name; `None` for anything else (mount options, named hierarchies).
    pub fn from_name(name: &str) -> Option<Controller> {
        Controller::ALL.into_iter().find(|c| c.as_str() == name)
    }

    /// Whether v2 allows the controller inside a threaded subtree (kernel `cgrp_dfl_threaded_ss_mask`).
    pub fn is_threaded(self) -> bool {
        matches!(
            self,
            Controller::Cpu | Controller::Cpuset | Controller::Pids | Controller::PerfEvent
        )
    }
}

impl fmt::Display for Controller {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for c in Controller::ALL {
            assert_eq!(Controller::from_name(c.as_str()), Some(c));
        }
        assert_eq!(Controller::from_name("name=systemd"), None);
        assert_eq!(Controller::from_name("rw"), None);
    }
}
