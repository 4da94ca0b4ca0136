//! The resource arithmetic, written once: CRI `LinuxContainerResources` fields are validated into
//! unit-free [`Limits`], and each limit is rendered to a (controller, file, value) [`Write`]; v1 and
//! v2 differ only in the file names and units in [`render`].

use std::collections::BTreeMap;

use crate::cpu::{self, CpuWeightFormula};
use crate::{Controller, Error, Result};

/// CRI `HugepageLimit`: `page_size` as in `hugetlb.<page_size>.*` (`2MB`, `1GB`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HugepageLimit {
    pub page_size: String,
    pub limit: u64,
}

/// CRI `LinuxContainerResources` minus `oom_score_adj` (a process attribute, not a cgroup one).
/// Field names, types and "0 / empty = unset" are CRI's, so conversion is a field-by-field copy.
/// `-1` means "unlimited" for `cpu_quota`, `memory_limit_in_bytes` and
/// `memory_swap_limit_in_bytes` (OCI's convention). The swap limit includes memory, as in OCI.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Resources {
    pub cpu_period: i64,
    pub cpu_quota: i64,
    pub cpu_shares: i64,
    pub memory_limit_in_bytes: i64,
    pub memory_swap_limit_in_bytes: i64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub hugepage_limits: Vec<HugepageLimit>,
    /// v2 files written verbatim, last (so they override the fields above); an error on v1.
    pub unified: BTreeMap<String, String>,
}

/// How to spell limits: v1 files, or v2 files with a shares → weight formula.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Dialect {
    V1,
    V2(CpuWeightFormula),
}

/// One file write into a cgroup directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Write {
    /// The controller the file belongs to (selects the v1 hierarchy; names it in errors).
    pub controller: Controller,
    pub file: String,
    pub value: String,
    /// Skip silently if the file does not exist (runc's leniency for swap `max`/`0` when the host
    /// has no swap accounting).
    pub optional: bool,
}

/// A byte limit or "unlimited".
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Max {
    Unlimited,
    Value(u64),
}

/// Validated, unit-free limits. `None` = leave the kernel's value alone.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Limits {
    pub shares: Option<u64>,
    /// CFS bandwidth: quota in µs (`Unlimited` = no quota) and period in µs.
    pub cpu_max: Option<(Max, u64)>,
    pub memory: Option<Max>,
    /// Memory + swap (v1 `memsw` semantics), and whether it was derived rather than asked for.
    pub memory_swap: Option<(Max, bool)>,
    pub cpuset_cpus: Option<String>,
    pub cpuset_mems: Option<String>,
    pub hugepages: Vec<(String, u64)>,
    pub unified: Vec<(Controller, String, String)>,
}

impl Resources {
    /// The part of these limits that applies to a cgroup of threads (a Wasm container is a
    /// thread of its pod's shim): CPU and cpuset, and v2 `cpu.*`/`cpuset.*`/`pids.*` files.
    /// Memory and hugetlb are charged per process, to the cgroup the whole shim is in; a
    /// container's memory cap is enforced inside the shim instead.
    pub fn for_threads(&self) -> Resources {
        Resources {
            cpu_period: self.cpu_period,
            cpu_quota: self.cpu_quota,
            cpu_shares: self.cpu_shares,
            cpuset_cpus: self.cpuset_cpus.clone(),
            cpuset_mems: self.cpuset_mems.clone(),
            unified: self
                .unified
                .iter()
                .filter(|(k, _)| ["cpu.", "cpuset.", "pids."].iter().any(|p| k.starts_with(p)))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            ..Resources::default()
        }
    }

    /// Whether these limits need a thread cgroup of their own to be enforced on one thread (a
    /// Wasm container): a CPU quota, a cpuset, shares above kubelet's minimum of 2 (which weigh
    /// the container against its siblings), or a v2 cpu/cpuset/pids file. Memory is charged per
    /// process, so a memory limit alone does not.
    pub fn need_thread_cgroup(&self) -> bool {
        let t = self.for_threads();
        t.cpu_quota > 0 || t.cpu_shares > 2 || !t.cpuset_cpus.is_empty() || !t.cpuset_mems.is_empty() || !t.unified.is_empty()
    }

    /// Checks every field; the error names the field and the value.
    pub fn validate(&self) -> Result<Limits> {
        let mut l = Limits::default();
        match self.cpu_shares {
            0 => {}
            s if (cpu::MIN_SHARES as i64..=cpu::MAX_SHARES as i64).contains(&s) => {
                l.shares = Some(s as u64)
            }
            s => {
                return Err(Error::invalid(
                    "cpu_shares",
                    s,
                    "must be 0 (unset) or within [2, 262144]",
                ));
            }
        }
        let quota = match self.cpu_quota {
            -1 | 0 => Max::Unlimited,
            q if q >= cpu::MIN_QUOTA_PERIOD_US => Max::Value(q as u64),
            q if q < -1 => {
                return Err(Error::invalid(
                    "cpu_quota",
                    q,
                    "negative (only -1, unlimited, is allowed)",
                ));
            }
            q => {
                return Err(Error::invalid(
                    "cpu_quota",
                    q,
                    "below the kernel minimum of 1000 µs",
                ));
            }
        };
        let period = match self.cpu_period {
            0 => cpu::QUOTA_PERIOD_US as u64,
            p if (cpu::MIN_QUOTA_PERIOD_US..=cpu::MAX_PERIOD_US).contains(&p) => p as u64,
            p => {
                return Err(Error::invalid(
                    "cpu_period",
                    p,
                    "must be 0 (default 100000) or within [1000, 1000000] µs",
                ));
            }
        };
        if self.cpu_quota != 0 || self.cpu_period != 0 {
            l.cpu_max = Some((quota, period));
        }
        l.memory = limit("memory_limit_in_bytes", self.memory_limit_in_bytes)?;
        l.memory_swap = swap(self.memory_limit_in_bytes, self.memory_swap_limit_in_bytes)?;
        l.cpuset_cpus = cpuset("cpuset_cpus", &self.cpuset_cpus)?;
        l.cpuset_mems = cpuset("cpuset_mems", &self.cpuset_mems)?;
        for h in &self.hugepage_limits {
            let (digits, unit) = h.page_size.split_at(h.page_size.len().saturating_sub(2));
            let ok = ["KB", "MB", "GB", "TB", "PB"].contains(&unit)
                && !digits.is_empty()
                && !digits.starts_with('0')
                && digits.bytes().all(|b| b.is_ascii_digit());
            if !ok {
                return Err(Error::invalid(
                    "hugepage page_size",
                    &h.page_size,
                    "want <number><KB|MB|GB|TB|PB>, e.g. 2MB",
                ));
            }
            if h.limit > i64::MAX as u64 {
                return Err(Error::invalid(
                    "hugepage limit",
                    h.limit,
                    "larger than the kernel's i64 maximum",
                ));
            }
            if l.hugepages.iter().any(|(s, _)| *s == h.page_size) {
                return Err(Error::invalid(
                    "hugepage page_size",
                    &h.page_size,
                    "given twice",
                ));
            }
            l.hugepages.push((h.page_size.clone(), h.limit));
        }
        for (key, value) in &self.unified {
            l.unified
                .push((unified_controller(key)?, key.clone(), value.clone()));
            if value.contains('\0') {
                return Err(Error::invalid("unified value", key, "contains NUL"));
            }
        }
        Ok(l)
    }

    /// Validates and renders the writes for one dialect, in the order they must happen.
    pub fn plan(&self, dialect: Dialect) -> Result<Vec<Write>> {
        render(&self.validate()?, dialect)
    }
}

fn limit(field: &'static str, v: i64) -> Result<Option<Max>> {
    match v {
        0 => Ok(None),
        -1 => Ok(Some(Max::Unlimited)),
        v if v > 0 => Ok(Some(Max::Value(v as u64))),
        v => Err(Error::invalid(
            field,
            v,
            "negative (only -1, unlimited, is allowed)",
        )),
    }
}

/// runc's `ConvertMemorySwapToCgroupV2Value` rules, applied to both versions.
fn swap(memory: i64, swap: i64) -> Result<Option<(Max, bool)>> {
    let field = "memory_swap_limit_in_bytes";
    if memory == -1 && swap == 0 {
        return Ok(Some((Max::Unlimited, true)));
    }
    match limit(field, swap)? {
        None => Ok(None),
        Some(Max::Unlimited) => Ok(Some((Max::Unlimited, false))),
        Some(Max::Value(_)) if memory <= 0 => Err(Error::invalid(
            field,
            swap,
            "a swap limit needs a memory limit",
        )),
        Some(Max::Value(_)) if swap < memory => Err(Error::invalid(
            field,
            swap,
            format!("must be >= memory_limit_in_bytes {memory} (it includes memory)"),
        )),
        Some(m) => Ok(Some((m, false))),
    }
}

/// A cpuset list: `0-3,5,7-8`; empty = unset.
fn cpuset(field: &'static str, v: &str) -> Result<Option<String>> {
    if v.is_empty() {
        return Ok(None);
    }
    let num = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u32>().ok())
            .flatten()
    };
    for item in v.split(',') {
        let ok = match item.split_once('-') {
            None => num(item).is_some(),
            Some((a, b)) => matches!((num(a), num(b)), (Some(a), Some(b)) if a <= b),
        };
        if !ok {
            return Err(Error::invalid(field, v, "want a list like 0-3,5"));
        }
    }
    Ok(Some(v.to_owned()))
}

fn unified_controller(key: &str) -> Result<Controller> {
    let bad = |reason: &str| Error::invalid("unified key", key, reason);
    let (prefix, rest) = key
        .split_once('.')
        .ok_or_else(|| bad("want <controller>.<file>"))?;
    if rest.is_empty()
        || !key
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'.')
    {
        return Err(bad("want <controller>.<file> in [a-z0-9_.]"));
    }
    match Controller::from_name(prefix) {
        Some(c)
            if !matches!(
                c,
                Controller::Cpuacct | Controller::Blkio | Controller::NetCls | Controller::NetPrio
            ) =>
        {
            Ok(c)
        }
        _ if prefix == "cgroup" => Err(bad("core cgroup.* files are managed by wasmlet")),
        _ => Err(bad("unknown v2 controller")),
    }
}

/// Renders validated limits. This is the only place that knows file names and units.
pub fn render(l: &Limits, dialect: Dialect) -> Result<Vec<Write>> {
    let v2 = matches!(dialect, Dialect::V2(_));
    let mut out = Vec::new();
    let mut push = |controller, file: &str, value: String, optional| {
        out.push(Write {
            controller,
            file: file.to_owned(),
            value,
            optional,
        });
    };
    let v1_num = |m: Max| match m {
        Max::Unlimited => "-1".to_owned(),
        Max::Value(v) => v.to_string(),
    };
    let v2_num = |m: Max| match m {
        Max::Unlimited => "max".to_owned(),
        Max::Value(v) => v.to_string(),
    };
    if let Some(shares) = l.shares {
        match dialect {
            Dialect::V1 => push(Controller::Cpu, "cpu.shares", shares.to_string(), false),
            Dialect::V2(f) => push(
                Controller::Cpu,
                "cpu.weight",
                cpu::shares_to_weight(shares, f).to_string(),
                false,
            ),
        }
    }
    if let Some((quota, period)) = l.cpu_max {
        if v2 {
            push(
                Controller::Cpu,
                "cpu.max",
                format!("{} {period}", v2_num(quota)),
                false,
            );
        } else {
            push(
                Controller::Cpu,
                "cpu.cfs_period_us",
                period.to_string(),
                false,
            );
            push(Controller::Cpu, "cpu.cfs_quota_us", v1_num(quota), false);
        }
    }
    if let Some(m) = l.memory {
        push(
            Controller::Memory,
            if v2 {
                "memory.max"
            } else {
                "memory.limit_in_bytes"
            },
            if v2 { v2_num(m) } else { v1_num(m) },
            false,
        );
    }
    if let Some((total, derived)) = l.memory_swap {
        if v2 {
            let value = match (total, l.memory) {
                (Max::Value(t), Some(Max::Value(m))) => (t - m).to_string(),
                _ => "max".to_owned(),
            };
            let optional = value == "max" || value == "0";
            push(Controller::Memory, "memory.swap.max", value, optional);
        } else {
            push(
                Controller::Memory,
                "memory.memsw.limit_in_bytes",
                v1_num(total),
                derived,
            );
        }
    }
    if let Some(cpus) = &l.cpuset_cpus {
        push(Controller::Cpuset, "cpuset.cpus", cpus.clone(), false);
    }
    if let Some(mems) = &l.cpuset_mems {
        push(Controller::Cpuset, "cpuset.mems", mems.clone(), false);
    }
    for (size, limit) in &l.hugepages {
        let file = if v2 {
            format!("hugetlb.{size}.max")
        } else {
            format!("hugetlb.{size}.limit_in_bytes")
        };
        push(Controller::Hugetlb, &file, limit.to_string(), false);
    }
    if !l.unified.is_empty() && !v2 {
        let keys: Vec<&str> = l.unified.iter().map(|(_, k, _)| k.as_str()).collect();
        return Err(Error::Unsupported {
            what: format!("unified resources {keys:?}"),
            reason: "they are cgroup v2 files and this host uses cgroup v1".into(),
        });
    }
    for (controller, key, value) in &l.unified {
        push(*controller, key, value.clone(), false);
    }
    Ok(out)
}

#[cfg(test)]
#[path = "resources_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "resources_validation_tests.rs"]
mod validation_tests;
