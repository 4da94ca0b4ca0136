//! The cgroup root the Linux-container helpers see. youki's libcontainer always works on
//! `/sys/fs/cgroup` (it detects v1, hybrid or v2 there, and has no root setting), while the
//! daemon can be pointed at another hierarchy with `WASMLET_CGROUP_ROOT` — on a hybrid host, the
//! cgroup2 mount at `/sys/fs/cgroup/unified`. So that a container's processes land in the same
//! hierarchy as the cgroups the daemon made for them, a helper whose root differs first moves
//! into a mount namespace of its own (a slave of the host's, so nothing it mounts leaks out)
//! with the configured root bound over `/sys/fs/cgroup`. The container's own mount namespace is
//! built from the bundle as usual.

use std::path::Path;

use nix::mount::{MsFlags, mount};
use nix::sched::{CloneFlags, unshare};

const DEFAULT_ROOT: &str = "/sys/fs/cgroup";

/// Enters the configured cgroup root, if any differs from the default. Call before libcontainer,
/// in the single-threaded helper (unshare of the mount namespace needs one thread).
pub fn enter_configured() -> Result<(), String> {
    let Some(root) = std::env::var_os("WASMLET_CGROUP_ROOT") else { return Ok(()) };
    let root = Path::new(&root);
    let same = |a: &Path, b: &Path| a.canonicalize().ok().zip(b.canonicalize().ok()).is_some_and(|(a, b)| a == b);
    if same(root, Path::new(DEFAULT_ROOT)) {
        return Ok(());
    }
    unshare(CloneFlags::CLONE_NEWNS).map_err(|e| format!("unshare(CLONE_NEWNS) for cgroup root {}: {e}", root.display()))?;
    mount(None::<&str>, "/", None::<&str>, MsFlags::MS_REC | MsFlags::MS_SLAVE, None::<&str>)
        .map_err(|e| format!("making the helper's mounts slaves: {e}"))?;
    mount(Some(root), DEFAULT_ROOT, None::<&str>, MsFlags::MS_BIND | MsFlags::MS_REC, None::<&str>)
        .map_err(|e| format!("binding cgroup root {} over {DEFAULT_ROOT}: {e}", root.display()))?;
    tracing::debug!(cgroup.root = %root.display(), "libcontainer helper uses the configured cgroup root");
    Ok(())
}
