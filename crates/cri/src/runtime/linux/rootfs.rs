//! A Linux container's root filesystem and OCI bundle: an overlay mount whose lower layers are the
//! image's unpacked snapshots (read-only, shared by every container of the image) and whose
//! upper and work directories are the container's own, all under
//! `<state>/containers/<id prefix>/` beside the bundle's `config.json`. Unmounted and deleted
//! when the container is removed, or when its creation fails half-way.

use std::path::{Path, PathBuf};

use nix::mount::{MntFlags, MsFlags, mount, umount2};

use crate::Error;

/// The mount data of overlay must fit in one page.
const MAX_MOUNT_DATA: usize = 4000;

/// A container's bundle directory and its mounted rootfs; [`Bundle::remove`] undoes both.
#[derive(Debug)]
pub(crate) struct Bundle {
    pub dir: PathBuf,
    pub rootfs: PathBuf,
}

/// The bundle directory of container `id`.
pub(crate) fn bundle_dir(state: &Path, id: &str) -> PathBuf {
    state.join("containers").join(&id[..id.len().min(24)])
}

impl Bundle {
    /// Makes the directories and mounts the overlay of `layers` (bottom first).
    pub fn create(state: &Path, id: &str, layers: &[PathBuf]) -> Result<Bundle, Error> {
        if layers.is_empty() {
            return Err(Error::FailedPrecondition("the image has no unpacked layers: pull it again".into()));
        }
        let dir = bundle_dir(state, id);
        let bundle = Bundle { rootfs: dir.join("rootfs"), dir };
        for sub in ["rootfs", "upper", "work"] {
            let path = bundle.dir.join(sub);
            std::fs::create_dir_all(&path).map_err(Error::io("creating", &path))?;
        }
        let lower: Vec<String> = layers.iter().rev().map(|l| l.display().to_string()).collect();
        let data = format!(
            "lowerdir={},upperdir={},workdir={}",
            lower.join(":"),
            bundle.dir.join("upper").display(),
            bundle.dir.join("work").display()
        );
        if data.len() > MAX_MOUNT_DATA {
            bundle.remove();
            return Err(Error::FailedPrecondition(format!("the image has too many layers ({}) for one overlay mount", layers.len())));
        }
        if let Err(e) = mount(Some("overlay"), &bundle.rootfs, Some("overlay"), MsFlags::empty(), Some(data.as_str())) {
            bundle.remove();
            return Err(Error::io("mounting the overlay rootfs at", &bundle.rootfs)(e.into()));
        }
        Ok(bundle)
    }

    /// Unmounts the rootfs and deletes the bundle (the container's writable layer with it).
    pub fn remove(&self) {
        remove(&self.dir);
    }
}

/// Unmounts and deletes the bundle directory `dir`; a missing one is fine.
pub(crate) fn remove(dir: &Path) {
    let rootfs = dir.join("rootfs");
    match umount2(&rootfs, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => tracing::warn!(path = %rootfs.display(), error = %e, "unmounting a container rootfs"),
    }
    match std::fs::remove_dir_all(dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => tracing::warn!(path = %dir.display(), error = %e, "removing a container bundle"),
    }
}
