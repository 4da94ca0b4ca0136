//! Shared test helpers: the root check, unique cgroup names, drop guards that remove cgroups and
//! kill children even when a test fails, and a lock that keeps child spawning away from the one
//! test that moves the test process itself.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use wasmlet_cgroups::{CgroupManager, CgroupMode, CgroupPath, Controller, V1Manager, detect};

pub const CGROUP_ROOT: &str = "/sys/fs/cgroup";

/// Fails (never skips) when not root.
pub fn require_root() {
    let uid = nix::unistd::geteuid();
    assert!(
        uid.is_root(),
        "this test needs root to create real cgroups (running as uid {uid}); run it as root"
    );
}

/// `wasmlet-test-<pid>-<n>`, unique across parallel tests and concurrent test binaries.
pub fn unique_name() -> String {
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "wasmlet-test-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// The host's v1 manager; fails with the reason when the host has no usable v1 hierarchies.
pub fn v1_manager() -> Arc<V1Manager> {
    require_root();
    let layout = detect(Path::new(CGROUP_ROOT)).expect("detect cgroups at /sys/fs/cgroup");
    assert!(
        matches!(layout.mode, CgroupMode::V1 | CgroupMode::Hybrid),
        "the v1 tests need cgroup v1 hierarchies under {CGROUP_ROOT}; this host is {:?}",
        layout.mode
    );
    for c in [
        Controller::Cpu,
        Controller::Cpuacct,
        Controller::Cpuset,
        Controller::Memory,
        Controller::Pids,
    ] {
        assert!(
            layout.v1.contains_key(&c),
            "the v1 tests need the {c} hierarchy mounted under {CGROUP_ROOT}: {layout:?}"
        );
    }
    Arc::new(V1Manager::new(&layout))
}

/// Removes a test's base cgroup (and everything under it) when dropped, pass or fail.
pub struct CgroupGuard {
    pub manager: Arc<dyn CgroupManager>,
    pub base: CgroupPath,
}

impl CgroupGuard {
    pub fn new(manager: Arc<dyn CgroupManager>) -> CgroupGuard {
        CgroupGuard {
            manager,
            base: CgroupPath::new(&unique_name()).unwrap(),
        }
    }

    pub fn path(&self, rel: &str) -> CgroupPath {
        CgroupPath::new(&format!("{}/{rel}", self.base.as_str())).unwrap()
    }
}

impl Drop for CgroupGuard {
    fn drop(&mut self) {
        if let Err(e) = self.manager.remove(&self.base) {
            eprintln!(
                "cleanup of {} failed: {e} ({:?})",
                self.base,
                std::error::Error::source(&e)
            );
        }
    }
}

/// Held (shared) by every spawned child; taken exclusively by the test that moves the test
/// process between v2 cgroups, so no child is forked into a cgroup that is about to be removed.
pub static PROCESS_CGROUP_LOCK: RwLock<()> = RwLock::new(());

pub fn exclusive_process_cgroup() -> RwLockWriteGuard<'static, ()> {
    PROCESS_CGROUP_LOCK
        .write()
        .unwrap_or_else(|e| e.into_inner())
}

/// A child process killed and reaped on drop.
pub struct ChildGuard {
    pub child: Child,
    pub stdin: Option<ChildStdin>,
    _lock: RwLockReadGuard<'static, ()>,
}

impl ChildGuard {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a line to the child's stdin (the `read x` in the scripts lets a test attach first).
    pub fn release(&mut self) {
        let mut stdin = self.stdin.take().expect("released twice");
        stdin.write_all(b"go\n").unwrap();
    }

    /// Waits until `/proc/<pid>/comm` is `comm` (e.g. after `exec sleep`).
    pub fn wait_for_comm(&self, comm: &str) {
        let path = format!("/proc/{}/comm", self.pid());
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::fs::read_to_string(&path).unwrap_or_default().trim() != comm {
            assert!(
                Instant::now() < deadline,
                "child {} never became {comm}",
                self.pid()
            );
            std::thread::sleep(Duration::from_millis(2));
        }
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Spawns `sh -c script` with a piped stdin.
pub fn spawn_sh(script: &str) -> ChildGuard {
    let lock = PROCESS_CGROUP_LOCK
        .read()
        .unwrap_or_else(|e| e.into_inner());
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(script)
        .stdin(Stdio::piped())
        .spawn()
        .expect("spawn sh");
    let stdin = child.stdin.take();
    ChildGuard {
        child,
        stdin,
        _lock: lock,
    }
}

/// A plain long `sleep`.
pub fn spawn_sleep() -> ChildGuard {
    spawn_sh("exec sleep 600")
}

/// Reads a cgroup file, trimmed.
pub fn read(path: impl AsRef<Path>) -> String {
    let path = path.as_ref();
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_owned()
}

/// Lines of `/proc/<pid>/cgroup` (or `/proc/self/task/<tid>/cgroup`).
pub fn proc_cgroup(path: impl AsRef<Path>) -> Vec<String> {
    read(path).lines().map(str::to_owned).collect()
}

/// `<mount>/<cgroup>` for a v1 controller.
pub fn v1_dir(controller: &str, path: &CgroupPath) -> PathBuf {
    path.under(&Path::new(CGROUP_ROOT).join(controller))
}
