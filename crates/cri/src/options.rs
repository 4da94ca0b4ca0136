//! Where the runtime keeps its state and how it starts shims.

use std::path::PathBuf;
use std::sync::Arc;

use wasmlet_shim::zygote::Zygote;

/// Paths and settings of one runtime instance (the binary fills them from flags and config).
#[derive(Clone)]
pub struct RuntimeOptions {
    /// Durable state: sandbox and container records, images (default `/var/lib/wasmlet`).
    pub root: PathBuf,
    /// Volatile state: one directory per shim with its socket and exit records (default `/run/wasmlet`).
    pub state: PathBuf,
    /// The image store (default `<root>/images`).
    pub images: PathBuf,
    /// The `wasmlet` binary started as `wasmlet shim` for each pod.
    pub shim_exe: PathBuf,
    /// `tracing` filter passed to shims.
    pub shim_log_filter: String,
    /// The zygote that forks shims (the fast path); without one, or if it fails, shims are
    /// started by exec of `shim_exe`.
    pub zygote: Option<Arc<Zygote>>,
    /// CNI network configuration lists (default `/etc/cni/net.d`), watched: read at each use.
    pub cni_conf_dir: PathBuf,
    /// CNI plugin directories (default `/opt/cni/bin`, `/usr/lib/cni`).
    pub cni_bin_dirs: Vec<PathBuf>,
    /// Registry settings for pulls: plain-HTTP hosts, timeout.
    pub registries: wasmlet_image::RegistryOptions,
    /// The streaming server of Exec, Attach and PortForward, once the daemon started it
    /// ([`crate::streaming::start`]); `wasmlet run` has none.
    pub streaming: Arc<std::sync::OnceLock<wasmlet_streaming::Server>>,
    /// The RuntimeClass handlers served and the default one.
    pub handlers: crate::handlers::Handlers,
}

impl RuntimeOptions {
    /// Options with the defaults for everything but the three paths: images under
    /// `<root>/images`, no zygote (shims by exec), the standard CNI directories.
    pub fn new(root: PathBuf, state: PathBuf, shim_exe: PathBuf) -> RuntimeOptions {
        RuntimeOptions {
            images: root.join("images"),
            root,
            state,
            shim_exe,
            shim_log_filter: "info".into(),
            zygote: None,
            cni_conf_dir: "/etc/cni/net.d".into(),
            cni_bin_dirs: vec!["/opt/cni/bin".into(), "/usr/lib/cni".into()],
            registries: Default::default(),
            streaming: Default::default(),
            handlers: Default::default(),
        }
    }

    pub fn sandboxes_dir(&self) -> PathBuf {
        self.root.join("sandboxes")
    }
    pub fn containers_dir(&self) -> PathBuf {
        self.root.join("containers")
    }
    /// The shim's directory. Named by the first 24 hex digits of the sandbox id (96 bits) so
    /// that its socket path stays within the 108 bytes a unix socket address allows.
    /// Where a pod's network namespace is pinned.
    pub fn netns_pin(&self, sandbox_id: &str) -> PathBuf {
        self.state.join("netns").join(&sandbox_id[..sandbox_id.len().min(24)])
    }

    pub fn shim_dir(&self, sandbox_id: &str) -> PathBuf {
        self.state.join("shims").join(&sandbox_id[..sandbox_id.len().min(24)])
    }
}
