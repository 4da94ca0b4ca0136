//! The node as kubelet sees it: name, OS and architecture, capacity read from the hardware
//! (CPUs this process may use, MemTotal), allocatable = capacity minus configured reservations,
//! and a host IP for `status.hostIP`.

use std::net::IpAddr;

use crate::{Error, Result};

/// What the node has and what pods may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeInfo {
    pub name: String,
    pub os: &'static str,
    pub arch: &'static str,
    pub cpu_capacity_millis: i64,
    pub memory_capacity_bytes: i64,
    pub cpu_allocatable_millis: i64,
    pub memory_allocatable_bytes: i64,
    pub max_pods: i64,
    pub host_ip: IpAddr,
}

/// Reservations taken off capacity (kubelet's `--system-reserved` + `--kube-reserved` + eviction threshold).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Reserved {
    pub cpu_millis: i64,
    pub memory_bytes: i64,
}

impl NodeInfo {
    /// Reads the hardware. `name` defaults to the hostname (lowercased, as kubelet does).
    pub fn detect(name: Option<String>, reserved: Reserved, max_pods: i64) -> Result<NodeInfo> {
        let cpus = std::thread::available_parallelism()
            .map(|n| n.get() as i64)
            .unwrap_or(1);
        let memory = memory_total()?;
        Ok(NodeInfo {
            name: name.unwrap_or_else(hostname).to_lowercase(),
            os: std::env::consts::OS,
            arch: go_arch(),
            cpu_capacity_millis: cpus * 1000,
            memory_capacity_bytes: memory,
            cpu_allocatable_millis: (cpus * 1000 - reserved.cpu_millis).max(0),
            memory_allocatable_bytes: (memory - reserved.memory_bytes).max(0),
            max_pods,
            host_ip: host_ip(),
        })
    }
}

/// Architecture names as Go (and so `kubernetes.io/arch`) spells them.
fn go_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "arm" => "arm",
        "riscv64" => "riscv64",
        "s390x" => "s390x",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

/// MemTotal of /proc/meminfo, in bytes.
pub fn memory_total() -> Result<i64> {
    let path = "/proc/meminfo";
    let meminfo = std::fs::read_to_string(path).map_err(Error::io(path))?;
    let kib: i64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .ok_or_else(|| Error::Config("no MemTotal in /proc/meminfo".into()))?;
    Ok(kib * 1024)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| "localhost".into())
}

/// The address of the interface with the default route (no packet is sent: a UDP `connect` only
/// picks a source address); loopback when there is none.
fn host_ip() -> IpAddr {
    std::net::UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.connect("192.0.2.1:9").map(|_| s))
        .and_then(|s| s.local_addr())
        .map(|a| a.ip())
        .unwrap_or(IpAddr::from([127, 0, 0, 1]))
}
