//! Linux containers beside Wasm ones: everything the daemon prepares before handing a container
//! to the pod's shim, which runs it with youki's libcontainer. [`prepare`] mounts the rootfs
//! ([`rootfs`]), makes the pod's shared namespaces and files once ([`pod_files`]), resolves the
//! user ([`user`]), capabilities ([`capabilities`]) and seccomp profile ([`seccomp`]), and
//! writes the OCI spec ([`spec`]) into the bundle.

mod capabilities;
pub(crate) mod pod_files;
pub(crate) mod rootfs;
mod seccomp;
pub(crate) mod spec;
mod user;

use std::path::{Path, PathBuf};

use k8s_cri::v1::{ContainerConfig, PodSandboxConfig};
use wasmlet_image::ImageRecord;
use wasmlet_shim::protocol::LinuxSpec;

use crate::Error;
use rootfs::Bundle;

/// What `prepare` needs besides the configs.
pub(crate) struct Prepare<'a> {
    pub state: &'a Path,
    pub sandbox_id: &'a str,
    pub sandbox: &'a PodSandboxConfig,
    pub netns: Option<&'a Path>,
    /// The pod's shared PID namespace, when the container's PID mode is POD.
    pub pod_pid_ns: Option<PathBuf>,
    pub shim_pid: u32,
    pub id: &'a str,
    pub config: &'a ContainerConfig,
    pub image: &'a ImageRecord,
    pub layers: &'a [PathBuf],
    pub log_path: Option<PathBuf>,
    pub cgroup_path: String,
    pub oom_events: Option<PathBuf>,
    pub cgroup_procs: Option<PathBuf>,
    pub cgroupns: bool,
}

/// Makes the container's bundle (rootfs mounted, `config.json` written) and the shim's spec.
/// Blocking. On error nothing of the container is left (the pod's shared files may stay: they
/// belong to the pod and go with it).
pub(crate) fn prepare(p: Prepare<'_>) -> Result<(LinuxSpec, Bundle), Error> {
    let sc = p.config.linux.as_ref().and_then(|l| l.security_context.as_ref());
    // Everything that can be refused without touching the system first.
    let caps = capabilities::capabilities(sc)?;
    let seccomp = seccomp::profile(sc, &caps)?;
    let stop_signal = stop_signal(&p.image.config.stop_signal)?;
    let pod = pod_files::ensure(p.state, p.sandbox_id, p.sandbox)?;
    let bundle = Bundle::create(p.state, p.id, p.layers)?;
    let made = (|| {
        let user = user::resolve(&bundle.rootfs, sc, &p.image.config.user)?;
        let wanted = p.config.linux.as_ref().and_then(|l| l.resources.as_ref()).map(|r| r.oom_score_adj).unwrap_or(0);
        let oom_score_adj = clamp_oom_score_adj(p.shim_pid, wanted);
        let spec = spec::build(spec::SpecInput {
            config: p.config,
            sandbox: p.sandbox,
            image: p.image,
            rootfs: &bundle.rootfs,
            netns: p.netns,
            pod_pid_ns: p.pod_pid_ns.as_deref(),
            pod: &pod,
            user: &user,
            capabilities: &caps,
            seccomp,
            oom_score_adj,
            cgroup_path: &p.cgroup_path,
            cgroupns: p.cgroupns,
        })?;
        let file = bundle.dir.join("config.json");
        let text = serde_json::to_vec_pretty(&spec).map_err(|e| Error::Internal(format!("encoding the OCI spec: {e}")))?;
        std::fs::write(&file, text).map_err(Error::io("writing", &file))?;
        Ok(LinuxSpec {
            bundle: bundle.dir.clone(),
            state_root: state_root(p.state),
            log_path: p.log_path.clone(),
            stdin: p.config.stdin,
            stdin_once: p.config.stdin_once,
            tty: p.config.tty,
            stop_signal,
            oom_events: p.oom_events.clone(),
            cgroup_procs: p.cgroup_procs.clone(),
        })
    })();
    match made {
        Ok(spec) => Ok((spec, bundle)),
        Err(e) => {
            bundle.remove();
            Err(e)
        }
    }
}

/// libcontainer's state root (short: its notify socket path must fit in 108 bytes).
pub(crate) fn state_root(state: &Path) -> PathBuf {
    state.join("lc")
}

/// The container's process may not get a lower `oom_score_adj` than its shim has: lowering
/// needs CAP_SYS_RESOURCE, which this node may not grant (containerd's restrict_oom_score_adj).
fn clamp_oom_score_adj(shim_pid: u32, wanted: i64) -> i64 {
    let current = std::fs::read_to_string(format!("/proc/{shim_pid}/oom_score_adj"))
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .unwrap_or(wanted);
    let target = crate::runtime::cgroup::clamp_oom_score_adj(current, wanted);
    if target != wanted {
        tracing::info!(wanted, current, target, "oom_score_adj raised to the shim's: lowering it needs CAP_SYS_RESOURCE");
    }
    target
}

/// An image's STOPSIGNAL (`SIGQUIT`, `QUIT`, `3`) as a number; SIGTERM when unset.
fn stop_signal(name: &str) -> Result<i32, Error> {
    if name.is_empty() {
        return Ok(libc::SIGTERM);
    }
    if let Ok(n) = name.parse::<i32>() {
        return Ok(n);
    }
    let upper = name.to_ascii_uppercase();
    let full = if upper.starts_with("SIG") { upper } else { format!("SIG{upper}") };
    full.parse::<nix::sys::signal::Signal>()
        .map(|s| s as i32)
        .map_err(|_| Error::InvalidArgument(format!("the image's STOPSIGNAL {name:?} is not a signal")))
}

#[cfg(test)]
mod tests {
    #[test]
    fn stop_signals() {
        assert_eq!(super::stop_signal("").unwrap(), libc::SIGTERM);
        assert_eq!(super::stop_signal("SIGQUIT").unwrap(), libc::SIGQUIT);
        assert_eq!(super::stop_signal("usr1").unwrap(), libc::SIGUSR1);
        assert_eq!(super::stop_signal("9").unwrap(), 9);
        assert!(super::stop_signal("SIGBOGUS").is_err());
    }
}
