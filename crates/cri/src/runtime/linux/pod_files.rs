//! What a pod's Linux containers share, made when the pod's first Linux container is created (a
//! Wasm-only pod never pays for it) and removed with the sandbox: the pod's UTS namespace (its
//! hostname) and IPC namespace, each pinned by a bind mount (no pause process), a tmpfs for
//! `/dev/shm`, and the `hostname`, `hosts` and `resolv.conf` files bind-mounted into each
//! container. A hostNetwork pod keeps the node's UTS namespace; hostIPC the node's IPC and shm.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use k8s_cri::v1::{DnsConfig, NamespaceMode, PodSandboxConfig};
use nix::mount::{MntFlags, MsFlags, mount, umount2};
use nix::sched::CloneFlags;

use crate::Error;

/// Serialises the one-time setup of a pod's files (two CreateContainer calls may race).
static SETUP: Mutex<()> = Mutex::new(());

/// Paths of a pod's shared Linux state; `None` means the node's.
#[derive(Debug, Clone)]
pub(crate) struct PodFiles {
    pub uts: Option<PathBuf>,
    pub ipc: Option<PathBuf>,
    pub shm: PathBuf,
    pub hostname: PathBuf,
    pub hosts: PathBuf,
    pub resolv_conf: PathBuf,
}

/// The directory of sandbox `id`'s files under the state directory.
pub(crate) fn dir(state: &Path, id: &str) -> PathBuf {
    state.join("pods").join(&id[..id.len().min(24)])
}

/// Makes (once) and returns the pod's shared state.
pub(crate) fn ensure(state: &Path, id: &str, config: &PodSandboxConfig) -> Result<PodFiles, Error> {
    let dir = dir(state, id);
    let ns = config.linux.as_ref().and_then(|l| l.security_context.as_ref()).and_then(|s| s.namespace_options.as_ref());
    let host_network = ns.is_some_and(|n| n.network == NamespaceMode::Node as i32);
    let host_ipc = ns.is_some_and(|n| n.ipc == NamespaceMode::Node as i32);
    let files = PodFiles {
        uts: (!host_network).then(|| dir.join("uts")),
        ipc: (!host_ipc).then(|| dir.join("ipc")),
        shm: if host_ipc { PathBuf::from("/dev/shm") } else { dir.join("shm") },
        hostname: dir.join("hostname"),
        hosts: dir.join("hosts"),
        resolv_conf: dir.join("resolv.conf"),
    };
    let _once = SETUP.lock().unwrap_or_else(|e| e.into_inner());
    let ready = dir.join("ready");
    if ready.exists() {
        return Ok(files);
    }
    std::fs::create_dir_all(&dir).map_err(Error::io("creating", &dir))?;
    let hostname = hostname(config, host_network);
    if let Err(e) = make(&files, &hostname, host_network, config.dns_config.as_ref()) {
        let _ = remove(state, id);
        return Err(e);
    }
    std::fs::write(&ready, b"").map_err(Error::io("writing", &ready))?;
    tracing::debug!(sandbox.id = %id, %hostname, "pod namespaces and files for Linux containers ready");
    Ok(files)
}

fn make(files: &PodFiles, hostname: &str, host_network: bool, dns: Option<&DnsConfig>) -> Result<(), Error> {
    pin_namespaces(files.uts.as_deref(), files.ipc.as_deref(), hostname)?;
    if files.shm != Path::new("/dev/shm") {
        std::fs::create_dir_all(&files.shm).map_err(Error::io("creating", &files.shm))?;
        let flags = MsFlags::MS_NOSUID | MsFlags::MS_NODEV | MsFlags::MS_NOEXEC;
        mount(Some("shm"), &files.shm, Some("tmpfs"), flags, Some("mode=1777,size=65536k"))
            .map_err(|e| Error::io("mounting the pod's shm tmpfs at", &files.shm)(e.into()))?;
    }
    write(&files.hostname, &format!("{hostname}\n"))?;
    let hosts = if host_network {
        std::fs::read_to_string("/etc/hosts").unwrap_or_default()
    } else {
        "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\nfe00::0\tip6-localnet\nfe00::0\tip6-mcastprefix\nfe00::1\tip6-allnodes\nfe00::2\tip6-allrouters\n".to_string()
    };
    write(&files.hosts, &hosts)?;
    write(&files.resolv_conf, &resolv_conf(dns))
}

/// `resolv.conf` from the CRI's DNSConfig, or the node's when kubelet sent none (as containerd).
fn resolv_conf(dns: Option<&DnsConfig>) -> String {
    match dns {
        Some(d) if !(d.servers.is_empty() && d.searches.is_empty() && d.options.is_empty()) => {
            let mut s = String::new();
            if !d.searches.is_empty() {
                s.push_str(&format!("search {}\n", d.searches.join(" ")));
            }
            for server in &d.servers {
                s.push_str(&format!("nameserver {server}\n"));
            }
            if !d.options.is_empty() {
                s.push_str(&format!("options {}\n", d.options.join(" ")));
            }
            s
        }
        _ => std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default(),
    }
}

fn hostname(config: &PodSandboxConfig, host_network: bool) -> String {
    if host_network {
        return nix::unistd::gethostname().ok().and_then(|h| h.into_string().ok()).unwrap_or_default();
    }
    if !config.hostname.is_empty() {
        return config.hostname.clone();
    }
    config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default()
}

/// New UTS (with `hostname` set) and IPC namespaces, pinned at the given files, made on a thread
/// of their own that ends right after (unsharing changes the calling thread for good).
fn pin_namespaces(uts: Option<&Path>, ipc: Option<&Path>, hostname: &str) -> Result<(), Error> {
    let mut flags = CloneFlags::empty();
    for (pin, flag) in [(uts, CloneFlags::CLONE_NEWUTS), (ipc, CloneFlags::CLONE_NEWIPC)] {
        if let Some(pin) = pin {
            std::fs::File::create(pin).map_err(Error::io("creating namespace pin", pin))?;
            flags |= flag;
        }
    }
    if flags.is_empty() {
        return Ok(());
    }
    let (uts, ipc, hostname) = (uts.map(Path::to_owned), ipc.map(Path::to_owned), hostname.to_owned());
    std::thread::spawn(move || -> Result<(), Error> {
        nix::sched::unshare(flags).map_err(|e| Error::Internal(format!("unsharing the pod's UTS/IPC namespaces: {e}")))?;
        if let Some(pin) = &uts {
            nix::unistd::sethostname(&hostname).map_err(|e| Error::InvalidArgument(format!("hostname {hostname:?}: {e}")))?;
            bind("/proc/thread-self/ns/uts", pin)?;
        }
        if let Some(pin) = &ipc {
            bind("/proc/thread-self/ns/ipc", pin)?;
        }
        Ok(())
    })
    .join()
    .map_err(|_| Error::Internal("the namespace thread panicked".into()))?
}

fn bind(from: &str, to: &Path) -> Result<(), Error> {
    mount(Some(from), to, None::<&str>, MsFlags::MS_BIND, None::<&str>).map_err(|e| Error::io("pinning a namespace at", to)(e.into()))
}

fn write(path: &Path, text: &str) -> Result<(), Error> {
    std::fs::write(path, text).map_err(Error::io("writing", path))
}

/// Unmounts and deletes sandbox `id`'s files; nothing there is fine.
pub(crate) fn remove(state: &Path, id: &str) -> Result<(), Error> {
    let dir = dir(state, id);
    if !dir.exists() {
        return Ok(());
    }
    for name in ["uts", "ipc", "shm"] {
        let path = dir.join(name);
        match umount2(&path, MntFlags::MNT_DETACH) {
            Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
            Err(e) => return Err(Error::io("unmounting", &path)(e.into())),
        }
    }
    std::fs::remove_dir_all(&dir).map_err(Error::io("removing", &dir))
}
