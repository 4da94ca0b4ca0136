//! The runtime's side of cgroups: which pod cgroup a sandbox gets, the CRI → [`Resources`]
//! copy, the files a container thread writes its TID into, the drop guard that undoes a
//! half-made cgroup, `oom_score_adj` on the shim, and the CPU samples that turn cumulative usage
//! into `usage_nano_cores`. The kernel work itself is `wasmlet_cgroups`'.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_cri::v1::{LinuxContainerResources, PodSandboxConfig};
use wasmlet_cgroups::{
    CgroupDriver, CgroupManager, CgroupPath, CgroupVersion, Controller, CpuWeightFormula, HugepageLimit, Layout,
    PodCgroup, QosClass, Resources, detect,
};

use crate::Error;

/// The top of the QoS hierarchy (cgroupfs driver).
const KUBEPODS: &str = "kubepods";

/// The leaf a pod's shim sits in on cgroup v2 (see [`Cgroups::shim_cgroup`]). Container ids are
/// 64 hex digits, so it cannot collide with a container's cgroup.
pub(crate) const SHIM_CGROUP: &str = "wasmlet-shim";

/// How long removal waits for the tasks of a cgroup to exit.
const REMOVE_PATIENCE: std::time::Duration = std::time::Duration::from_secs(5);

/// Where the cgroup hierarchies are mounted unless `WASMLET_CGROUP_ROOT` says otherwise.
pub(crate) const DEFAULT_CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// The detected hierarchy, its manager, and the last CPU sample of each container and pod.
#[derive(Debug)]
pub(crate) struct Cgroups {
    pub manager: Box<dyn CgroupManager>,
    layout: Layout,
    /// key (container id, or `pod:<sandbox id>`) → (timestamp ns, cumulative CPU ns).
    samples: Mutex<HashMap<String, (i64, u64)>>,
    /// Whether the `kubepods` QoS tiers existed when this runtime started (a node's are kubelet's).
    kubepods_existed: bool,
}

impl Cgroups {
    /// Detects the setup under `root` once (at `Runtime::open`).
    pub fn open(root: &Path) -> Result<Cgroups, wasmlet_cgroups::Error> {
        let layout = detect(root)?;
        let manager = wasmlet_cgroups::open(root, CpuWeightFormula::Linear)?;
        tracing::info!(cgroup.root = %root.display(), mode = ?layout.mode, "cgroups detected");
        let mut cgroups = Cgroups { manager, layout, samples: Mutex::new(HashMap::new()), kubepods_existed: false };
        cgroups.kubepods_existed = CgroupPath::new(KUBEPODS).is_ok_and(|p| cgroups.exists(&p));
        Ok(cgroups)
    }

    /// The root from the environment (`WASMLET_CGROUP_ROOT`) or [`DEFAULT_CGROUP_ROOT`].
    pub fn root_from_env() -> PathBuf {
        std::env::var_os("WASMLET_CGROUP_ROOT").map(PathBuf::from).unwrap_or_else(|| PathBuf::from(DEFAULT_CGROUP_ROOT))
    }

    /// Whether the cgroup exists (looked up in the cpu hierarchy on v1, the root on v2).
    pub fn exists(&self, path: &CgroupPath) -> bool {
        self.dir(Controller::Cpu, path).is_some_and(|d| d.is_dir())
    }

    fn dir(&self, controller: Controller, path: &CgroupPath) -> Option<PathBuf> {
        match self.manager.version() {
            CgroupVersion::V1 => self.layout.v1.get(&controller).map(|m| path.under(m)),
            CgroupVersion::V2 => Some(path.under(&self.layout.root)),
        }
    }

    /// Where a pod's shim process lives. v1: the pod cgroup itself. v2: its own leaf,
    /// `<pod>/wasmlet-shim`, because a v2 cgroup with processes cannot give domain controllers to
    /// children (the no-internal-process rule), and a Linux container's cgroup is a domain child
    /// of the pod: so the pod cgroup holds no process, the shim sits beside the Linux
    /// containers, and its Wasm threads sit in a threaded subtree below it.
    pub fn shim_cgroup(&self, pod: &PodCgroup) -> Result<CgroupPath, wasmlet_cgroups::Error> {
        match (self.manager.version(), pod.driver) {
            (CgroupVersion::V1, _) => Ok(pod.path.clone()),
            (CgroupVersion::V2, CgroupDriver::Cgroupfs) => pod.path.join(SHIM_CGROUP),
            (CgroupVersion::V2, CgroupDriver::Systemd) => pod.path.join(&format!("{SHIM_CGROUP}.scope")),
        }
    }

    /// The directory of a cgroup on v2 (where a process can be born with `CLONE_INTO_CGROUP`);
    /// `None` on v1, where a process is in one cgroup per hierarchy.
    pub fn v2_dir(&self, path: &CgroupPath) -> Option<PathBuf> {
        self.is_v2().then(|| path.under(&self.layout.root))
    }

    /// Where container `id` of the pod whose cgroup is `pod` gets its cgroup. A Wasm container is
    /// a thread of the shim: v1 `<pod>/<id>` (a thread may sit in its own cgroup), v2 a threaded
    /// cgroup under the shim's, `<pod>/wasmlet-shim/<id>`. A Linux container is a whole process
    /// tree: `<pod>/<id>`, a domain cgroup on v2.
    pub fn container_path(&self, pod: &PodCgroup, id: &str, wasm: bool) -> Result<CgroupPath, wasmlet_cgroups::Error> {
        let leaf = pod.container(id)?;
        if !(wasm && self.is_v2()) {
            return Ok(leaf);
        }
        let name = leaf.components().last().unwrap_or(id).to_owned();
        self.shim_cgroup(pod)?.join(&name)
    }

    /// Whether a Wasm container gets a thread cgroup of its own. Not in a BestEffort pod unless
    /// its own limits need one ([`Resources::need_thread_cgroup`]): every container there has
    /// kubelet's minimum weight and no limit, so a cgroup per thread would enforce nothing, and
    /// making and removing it (three v1 hierarchies, or a threaded v2 cgroup) was a third of the
    /// daemon's CPU time per pod lifecycle. The thread stays in the shim's cgroup, its CPU time
    /// comes from the thread itself, and UpdateContainerResources makes the cgroup when limits
    /// that need one arrive. Pods with requests or limits keep one per container, so siblings
    /// are weighed against each other as kubelet expects.
    pub fn wasm_thread_cgroup(pod: &PodCgroup, resources: Option<&Resources>) -> bool {
        pod.qos != QosClass::BestEffort || resources.is_some_and(Resources::need_thread_cgroup)
    }

    /// Makes the cgroup at [`container_path`](Self::container_path) and applies `resources`:
    /// the thread part ([`Resources::for_threads`]) for a Wasm container, all of them otherwise.
    pub fn create_container(&self, path: &CgroupPath, wasm: bool, resources: Option<&Resources>) -> Result<(), wasmlet_cgroups::Error> {
        if wasm {
            self.manager.create_threaded(path)?;
        } else {
            self.manager.create(path)?;
        }
        match (resources, wasm) {
            (Some(r), true) => self.manager.apply(path, &r.for_threads()),
            (Some(r), false) => self.manager.apply(path, r),
            (None, _) => Ok(()),
        }
    }

    /// Applies new limits to an existing container's cgroup (UpdateContainerResources): all of
    /// them to a Linux container's, the thread part ([`Resources::for_threads`]) to a Wasm
    /// container's thread cgroup (told apart by the cgroup itself, as the record does not say:
    /// v2 `cgroup.type` "threaded", v1 no memory cgroup), whose memory cap the shim enforces.
    pub fn apply_to_container(&self, path: &CgroupPath, resources: &Resources) -> Result<(), wasmlet_cgroups::Error> {
        let threads = match self.manager.version() {
            CgroupVersion::V2 => std::fs::read_to_string(path.under(&self.layout.root).join("cgroup.type")).is_ok_and(|t| t.trim() == "threaded"),
            CgroupVersion::V1 => self.dir(Controller::Memory, path).is_some_and(|d| !d.is_dir()),
        };
        if threads { self.manager.apply(path, &resources.for_threads()) } else { self.manager.apply(path, resources) }
    }

    /// The file counting OOM kills in a cgroup: v1 `memory.oom_control`, v2 `memory.events`.
    pub fn oom_events_file(&self, path: &CgroupPath) -> Option<PathBuf> {
        match self.manager.version() {
            CgroupVersion::V1 => self.dir(Controller::Memory, path).map(|d| d.join("memory.oom_control")),
            CgroupVersion::V2 => self.dir(Controller::Memory, path).map(|d| d.join("memory.events")),
        }
    }

    /// The `cgroup.procs` file listing a (process) cgroup's processes: the pids hierarchy's on v1
    /// (every process of a Linux container is there), the cgroup's own on v2.
    pub fn procs_file(&self, path: &CgroupPath) -> Option<PathBuf> {
        let controller = if self.is_v2() { Controller::Cpu } else { Controller::Pids };
        self.dir(controller, path).map(|d| d.join("cgroup.procs"))
    }

    pub fn is_v2(&self) -> bool {
        self.manager.version() == CgroupVersion::V2
    }

    /// The files a container thread writes its own TID into. v1: `tasks` of cpu, cpuacct and
    /// cpuset (memory is charged per process, i.e. to the pod cgroup the shim sits in; the other
    /// controllers are per process too or irrelevant to a thread). v2: `cgroup.threads`.
    pub fn thread_files(&self, path: &CgroupPath) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = match self.manager.version() {
            CgroupVersion::V1 => [Controller::Cpu, Controller::Cpuacct, Controller::Cpuset]
                .iter()
                .filter_map(|c| self.layout.v1.get(c))
                .map(|m| path.under(m).join("tasks"))
                .collect(),
            CgroupVersion::V2 => vec![path.under(&self.layout.root).join("cgroup.threads")],
        };
        files.sort();
        files.dedup(); // co-mounted cpu,cpuacct
        files
    }

    /// `usage_nano_cores` from this sample and the previous one under `key` (or, the first time,
    /// from `since`, when the container or pod started with zero usage). Records this sample.
    pub fn nano_cores(&self, key: &str, now: i64, usage_ns: u64, since: i64) -> u64 {
        let prev = self
            .samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key.to_string(), (now, usage_ns))
            .unwrap_or((since, 0));
        rate(prev, (now, usage_ns))
    }

    /// Removes a cgroup (and its descendants) once its tasks are gone. A shim answers Shutdown
    /// before its process has finished exiting (tearing down a pooling allocator's reservations
    /// can take tens of ms on a loaded host), so a busy cgroup is retried for up to
    /// [`REMOVE_PATIENCE`] before the error is returned (kubelet then retries the RPC).
    pub async fn remove_when_empty(&self, path: &CgroupPath) -> Result<(), wasmlet_cgroups::Error> {
        let deadline = std::time::Instant::now() + REMOVE_PATIENCE;
        loop {
            match self.manager.remove(path) {
                Err(e) if e.code() == wasmlet_cgroups::Code::FailedPrecondition && std::time::Instant::now() < deadline => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
                }
                Ok(()) => {
                    self.remove_from_other_hierarchies(path);
                    return Ok(());
                }
                other => return other,
            }
        }
    }

    /// On v1, libcontainer puts a Linux container in every mounted hierarchy (blkio, devices,
    /// freezer, ...), not just the ones we manage, making the pod's directories there too: remove
    /// `path` (empty by now) wherever it exists. Nothing to do on v2 or for Wasm-only pods.
    fn remove_from_other_hierarchies(&self, path: &CgroupPath) {
        if self.manager.version() != CgroupVersion::V1 {
            return;
        }
        let mut mounts: Vec<&PathBuf> = self.layout.v1.values().collect();
        mounts.sort();
        mounts.dedup();
        for mount in mounts {
            let dir = path.under(mount);
            if dir.is_dir()
                && let Err(e) = rmdir_tree(&dir)
            {
                tracing::warn!(cgroup.dir = %dir.display(), error = %e, "removing a cgroup");
            }
        }
    }

    /// Removes the empty `kubepods[/burstable|/besteffort]` tiers if this runtime made them (for
    /// the one-shot `wasmlet run`; on a node they stay, as kubelet's do). A tier still holding a
    /// pod is left alone.
    pub fn remove_qos_tiers_made(&self) {
        if self.kubepods_existed {
            return;
        }
        let mut mounts: Vec<&PathBuf> = match self.manager.version() {
            CgroupVersion::V1 => self.layout.v1.values().collect(),
            CgroupVersion::V2 => vec![&self.layout.root],
        };
        mounts.sort();
        mounts.dedup();
        for tier in ["kubepods/burstable", "kubepods/besteffort", KUBEPODS] {
            let Ok(path) = CgroupPath::new(tier) else { continue };
            for mount in &mounts {
                // rmdir only: a tier with a pod cgroup in it is not empty and stays.
                let _ = std::fs::remove_dir(path.under(mount));
            }
        }
    }

    pub fn forget(&self, key: &str) {
        self.samples.lock().unwrap_or_else(|e| e.into_inner()).remove(key);
    }
}

/// Removes an (empty) cgroup directory and its child cgroups, deepest first.
fn rmdir_tree(dir: &Path) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)?.flatten() {
        if entry.file_type().is_ok_and(|t| t.is_dir()) {
            rmdir_tree(&entry.path())?;
        }
    }
    match std::fs::remove_dir(dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// CPU ns per second of wall time between two (timestamp ns, cumulative ns) samples.
pub(crate) fn rate(prev: (i64, u64), now: (i64, u64)) -> u64 {
    let dt = now.0.saturating_sub(prev.0);
    if dt <= 0 || now.1 < prev.1 {
        return 0;
    }
    ((now.1 - prev.1) as u128 * 1_000_000_000 / dt as u128) as u64
}

/// The pod's cgroup: kubelet's `linux.cgroup_parent` when given, else one we lay out ourselves,
/// `kubepods[/burstable|/besteffort]/pod<uid>`, whose QoS tier comes from the pod-level
/// `linux.resources` (both a CPU and a memory limit → Guaranteed, any value → Burstable, none →
/// BestEffort: the CRI carries no requests, so this is the best guess).
pub(crate) fn pod_cgroup(config: &PodSandboxConfig) -> Result<PodCgroup, Error> {
    let linux = config.linux.as_ref();
    let parent = linux.map(|l| l.cgroup_parent.as_str()).unwrap_or("");
    if !parent.is_empty() {
        return PodCgroup::parse_parent(parent).map_err(|e| Error::InvalidArgument(format!("linux.cgroup_parent: {e}")));
    }
    let qos = match linux.and_then(|l| l.resources.as_ref()) {
        Some(r) if r.cpu_quota > 0 && r.memory_limit_in_bytes > 0 => QosClass::Guaranteed,
        Some(r) if *r != LinuxContainerResources::default() => QosClass::Burstable,
        _ => QosClass::BestEffort,
    };
    let uid = config.metadata.as_ref().map(|m| m.uid.as_str()).unwrap_or("");
    // kubelet's UIDs are UUIDs; anything else (crictl users type names) is made path-safe.
    let uid: String = uid.chars().map(|c| if c.is_ascii_alphanumeric() || c == '-' { c } else { '-' }).collect();
    PodCgroup::new(qos, &uid, CgroupDriver::Cgroupfs).map_err(|e| Error::InvalidArgument(format!("config.metadata.uid: {e}")))
}

/// The normalized `cgroup_parent` kept in the sandbox record, which [`PodCgroup::parse_parent`]
/// reads back: the original value for systemd slices, the cgroupfs path otherwise.
pub(crate) fn parent_value(config: &PodSandboxConfig, pod: &PodCgroup) -> String {
    match pod.driver {
        CgroupDriver::Systemd => config.linux.as_ref().map(|l| l.cgroup_parent.clone()).unwrap_or_default(),
        CgroupDriver::Cgroupfs => pod.path.as_str().to_owned(),
    }
}

/// CRI `LinuxContainerResources` → [`Resources`], a field-by-field copy (`oom_score_adj` is a
/// process attribute and is applied by [`raise_oom_score_adj`]).
pub(crate) fn resources(r: &LinuxContainerResources) -> Resources {
    Resources {
        cpu_period: r.cpu_period,
        cpu_quota: r.cpu_quota,
        cpu_shares: r.cpu_shares,
        memory_limit_in_bytes: r.memory_limit_in_bytes,
        memory_swap_limit_in_bytes: r.memory_swap_limit_in_bytes,
        cpuset_cpus: r.cpuset_cpus.clone(),
        cpuset_mems: r.cpuset_mems.clone(),
        hugepage_limits: r
            .hugepage_limits
            .iter()
            .map(|h| HugepageLimit { page_size: h.page_size.clone(), limit: h.limit })
            .collect(),
        unified: r.unified.iter().map(|(k, v)| (k.clone(), v.clone())).collect(),
    }
}

/// Checks the resources, naming the CRI field in the error (nothing is touched yet).
pub(crate) fn validated(field: &str, r: Option<&LinuxContainerResources>) -> Result<Option<Resources>, Error> {
    let Some(r) = r else { return Ok(None) };
    let res = resources(r);
    res.validate().map_err(|e| Error::InvalidArgument(format!("{field}: {e}")))?;
    if !(-1000..=1000).contains(&r.oom_score_adj) {
        return Err(Error::InvalidArgument(format!("{field}.oom_score_adj {} is outside [-1000, 1000]", r.oom_score_adj)));
    }
    Ok(Some(res))
}

/// Every container of a pod shares the shim process, so the shim's `oom_score_adj` is the pod's:
/// the highest any container asked for (the one the kernel should kill first wins). Lowering
/// needs CAP_SYS_RESOURCE, which this host's daemon lacks; like containerd's
/// `restrict_oom_score_adj`, a lower value is clamped to the current one and logged, never an
/// error. Returns the value in force.
pub(crate) fn raise_oom_score_adj(pid: u32, wanted: i64) -> Result<i64, Error> {
    let path = PathBuf::from(format!("/proc/{pid}/oom_score_adj"));
    let current: i64 = std::fs::read_to_string(&path)
        .map_err(Error::io("reading", &path))?
        .trim()
        .parse()
        .map_err(|e| Error::Internal(format!("{}: {e}", path.display())))?;
    let target = clamp_oom_score_adj(current, wanted);
    if target != wanted {
        tracing::info!(shim.pid = pid, wanted, current, "oom_score_adj not lowered: the shim is shared by the pod's containers and lowering needs CAP_SYS_RESOURCE");
    }
    if target != current {
        std::fs::write(&path, target.to_string()).map_err(Error::io("writing", &path))?;
    }
    Ok(target)
}

pub(crate) fn clamp_oom_score_adj(current: i64, wanted: i64) -> i64 {
    wanted.clamp(-1000, 1000).max(current)
}

/// Undoes a cgroup made by a create that did not finish, when dropped armed (also when the
/// request's future is dropped, e.g. a cancelled RPC).
pub(crate) struct CgroupGuard<'a> {
    cgroups: &'a Cgroups,
    path: Option<CgroupPath>,
}

impl<'a> CgroupGuard<'a> {
    /// Arms a guard for `path`; `None` makes a guard that does nothing (a cgroup we did not make).
    pub fn new(cgroups: &'a Cgroups, path: Option<CgroupPath>) -> Self {
        CgroupGuard { cgroups, path }
    }

    pub fn disarm(mut self) {
        self.path = None;
    }
}

impl Drop for CgroupGuard<'_> {
    fn drop(&mut self) {
        if let Some(path) = self.path.take() {
            match self.cgroups.manager.remove(&path) {
                Ok(()) => tracing::debug!(cgroup.path = %path, "rolled back cgroup"),
                Err(e) => tracing::warn!(cgroup.path = %path, error = %e, "rolling back cgroup"),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::{LinuxPodSandboxConfig, PodSandboxMetadata};

    use super::*;

    fn pod(parent: &str, resources: Option<LinuxContainerResources>) -> PodSandboxConfig {
        PodSandboxConfig {
            metadata: Some(PodSandboxMetadata { uid: "u1_x".into(), ..Default::default() }),
            linux: Some(LinuxPodSandboxConfig { cgroup_parent: parent.into(), resources, ..Default::default() }),
            ..Default::default()
        }
    }

    #[test]
    fn pod_cgroup_from_parent_or_qos() {
        let p = pod_cgroup(&pod("/kubepods/burstable/pod0e3a7b8c-1d2e", None)).unwrap();
        assert_eq!(p.path.as_str(), "kubepods/burstable/pod0e3a7b8c-1d2e");
        let c = pod("kubepods-besteffort-podab_cd.slice", None);
        let p = pod_cgroup(&c).unwrap();
        assert_eq!(PodCgroup::parse_parent(&parent_value(&c, &p)).unwrap(), p);
        let c = pod("", None);
        let p = pod_cgroup(&c).unwrap();
        assert_eq!(p.path.as_str(), "kubepods/besteffort/podu1-x");
        assert_eq!(PodCgroup::parse_parent(&parent_value(&c, &p)).unwrap(), p);
        let lim = LinuxContainerResources { cpu_quota: 50_000, memory_limit_in_bytes: 1 << 26, ..Default::default() };
        assert_eq!(pod_cgroup(&pod("", Some(lim))).unwrap().path.as_str(), "kubepods/podu1-x");
        let shares = LinuxContainerResources { cpu_shares: 256, ..Default::default() };
        assert_eq!(pod_cgroup(&pod("", Some(shares))).unwrap().path.as_str(), "kubepods/burstable/podu1-x");
        for bad in ["/kubepods/../etc", "/etc/pod1", "/kubepods/burstable/pod1/x"] {
            match pod_cgroup(&pod(bad, None)) {
                Err(Error::InvalidArgument(m)) => assert!(m.contains("linux.cgroup_parent"), "{m}"),
                other => panic!("{bad}: {other:?}"),
            }
        }
    }

    #[test]
    fn resources_validate_naming_the_field() {
        let r = LinuxContainerResources { cpu_quota: 500, ..Default::default() };
        match validated("config.linux.resources", Some(&r)) {
            Err(Error::InvalidArgument(m)) => assert!(m.contains("config.linux.resources") && m.contains("cpu_quota"), "{m}"),
            other => panic!("{other:?}"),
        }
        let r = LinuxContainerResources { oom_score_adj: 1001, ..Default::default() };
        assert!(validated("x", Some(&r)).is_err());
        let r = LinuxContainerResources { cpu_quota: 50_000, cpu_period: 100_000, cpu_shares: 512, ..Default::default() };
        assert_eq!(validated("x", Some(&r)).unwrap().unwrap().cpu_quota, 50_000);
        assert!(validated("x", None).unwrap().is_none());
    }

    #[test]
    fn oom_score_adj_only_rises() {
        assert_eq!(clamp_oom_score_adj(0, 1000), 1000);
        assert_eq!(clamp_oom_score_adj(500, -997), 500);
        assert_eq!(clamp_oom_score_adj(-1000, 1001), 1000);
    }

    #[test]
    fn cpu_rate() {
        assert_eq!(rate((0, 0), (1_000_000_000, 500_000_000)), 500_000_000);
        assert_eq!(rate((10, 100), (10, 200)), 0, "no time passed");
        assert_eq!(rate((0, 200), (10, 100)), 0, "usage went backwards (cgroup recreated)");
        assert_eq!(rate((0, 0), (2_000_000_000, 3_000_000_000)), 1_500_000_000);
    }
}
