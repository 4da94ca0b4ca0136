//! The OCI runtime spec (`config.json`) of a Linux container, from its CRI config, as
//! containerd's CRI plugin builds it: argv (kubelet's entrypoint/cmd rules), env, working dir,
//! user, capabilities, no_new_privs, oom_score_adj, the standard mounts (/proc, /dev, /dev/pts,
//! /dev/shm from the pod, /dev/mqueue, /sys, /sys/fs/cgroup, /etc/hosts, /etc/hostname,
//! /etc/resolv.conf), the CRI mounts with their propagation, the pod's namespaces, the device
//! allowlist, masked and read-only paths, seccomp, the cgroup path and sysctls. Resource limits
//! are not in the spec: the daemon writes them to the container's cgroup itself.

use std::path::Path;

use k8s_cri::v1::{ContainerConfig, MountPropagation, NamespaceMode, PodSandboxConfig};
use serde_json::{Value, json};
use wasmlet_image::ImageRecord;

use super::pod_files::PodFiles;
use crate::runtime::process_args::{argv, env};
use super::user::User;
use crate::Error;

/// The PATH a container gets when its image sets none.
const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// containerd's default masked paths.
const MASKED: [&str; 11] = [
    "/proc/acpi",
    "/proc/asound",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];
/// containerd's default read-only paths.
const READONLY: [&str; 5] = ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"];

/// Everything the spec is made from.
pub(crate) struct SpecInput<'a> {
    pub config: &'a ContainerConfig,
    pub sandbox: &'a PodSandboxConfig,
    pub image: &'a ImageRecord,
    pub rootfs: &'a Path,
    pub netns: Option<&'a Path>,
    /// The pod's shared PID namespace (`/proc/<holder>/ns/pid`), for PID mode POD.
    pub pod_pid_ns: Option<&'a Path>,
    pub pod: &'a PodFiles,
    pub user: &'a User,
    pub capabilities: &'a [String],
    pub seccomp: Option<Value>,
    pub oom_score_adj: i64,
    /// The container's cgroup, absolute (`/kubepods/.../<id>`).
    pub cgroup_path: &'a str,
    /// Give the container its own cgroup namespace (cgroup v2, as containerd does).
    pub cgroupns: bool,
}

/// The container's PID namespace mode: its own `namespace_options`, else the pod's, else POD
/// (the protobuf default, which a client leaving the field unset, like crictl, gets). TARGET
/// (ephemeral debug containers) is refused.
pub(crate) fn pid_mode(config: &ContainerConfig, sandbox: &PodSandboxConfig) -> Result<NamespaceMode, Error> {
    let container = config.linux.as_ref().and_then(|l| l.security_context.as_ref()).and_then(|s| s.namespace_options.as_ref());
    let pod = sandbox.linux.as_ref().and_then(|l| l.security_context.as_ref()).and_then(|s| s.namespace_options.as_ref());
    let raw = container.or(pod).map(|n| n.pid).unwrap_or(NamespaceMode::Pod as i32);
    match NamespaceMode::try_from(raw) {
        Ok(mode) => Ok(mode),
        Err(_) => Err(Error::InvalidArgument(format!("namespace_options.pid: unknown mode {raw}"))),
    }
}

pub(crate) fn build(input: SpecInput<'_>) -> Result<Value, Error> {
    let SpecInput { config, sandbox, image, rootfs, netns, pod_pid_ns, pod, user, capabilities, seccomp, oom_score_adj, cgroup_path, cgroupns } =
        input;
    let sc = config.linux.as_ref().and_then(|l| l.security_context.as_ref());
    let privileged = sc.is_some_and(|s| s.privileged);

    let args = argv(config, image);
    if args.is_empty() {
        return Err(Error::InvalidArgument("no command: the image has no entrypoint or cmd and the config no command".into()));
    }
    let hostname = std::fs::read_to_string(&pod.hostname).unwrap_or_default().trim().to_string();
    let mut env_list = vec![DEFAULT_PATH.to_string()];
    env_list.retain(|_| !image.config.env.iter().any(|e| e.starts_with("PATH=")) && !config.envs.iter().any(|e| e.key == "PATH"));
    env_list.push(format!("HOSTNAME={hostname}"));
    for (k, v) in env(config, image)? {
        env_list.retain(|e| !e.starts_with(&format!("{k}=")));
        env_list.push(format!("{k}={v}"));
    }
    let cwd = [config.working_dir.as_str(), image.config.working_dir.as_str(), "/"].into_iter().find(|s| !s.is_empty()).unwrap_or("/");
    if !cwd.starts_with('/') {
        return Err(Error::InvalidArgument(format!("working_dir {cwd:?} must be absolute")));
    }

    let mut namespaces = vec![json!({"type": "mount"})];
    match pid_mode(config, sandbox)? {
        NamespaceMode::Container => namespaces.push(json!({"type": "pid"})),
        NamespaceMode::Node => {}
        // POD: the pod's holder; TARGET: the target container's init (resolved by the caller).
        NamespaceMode::Pod | NamespaceMode::Target => {
            let holder = pod_pid_ns.ok_or_else(|| Error::Internal("the PID namespace to join is missing".into()))?;
            namespaces.push(json!({"type": "pid", "path": holder}));
        }
    }
    if let Some(p) = netns {
        namespaces.push(json!({"type": "network", "path": p}));
    }
    if let Some(p) = &pod.ipc {
        namespaces.push(json!({"type": "ipc", "path": p}));
    }
    if let Some(p) = &pod.uts {
        namespaces.push(json!({"type": "uts", "path": p}));
    }
    if cgroupns {
        namespaces.push(json!({"type": "cgroup"}));
    }

    let mounts = mounts(config, pod, privileged)?;
    let propagation = rootfs_propagation(config);

    let mut linux = json!({
        "namespaces": namespaces,
        "cgroupsPath": cgroup_path,
        "resources": {"devices": devices(privileged)},
    });
    if !privileged {
        let pick = |given: &[String], default: &[&str]| -> Vec<String> {
            if given.is_empty() { default.iter().map(|s| s.to_string()).collect() } else { given.to_vec() }
        };
        linux["maskedPaths"] = json!(pick(sc.map(|s| s.masked_paths.as_slice()).unwrap_or_default(), &MASKED));
        linux["readonlyPaths"] = json!(pick(sc.map(|s| s.readonly_paths.as_slice()).unwrap_or_default(), &READONLY));
    }
    if let Some(s) = seccomp {
        linux["seccomp"] = s;
    }
    if let Some(p) = propagation {
        linux["rootfsPropagation"] = json!(p);
    }
    let sysctls = sandbox.linux.as_ref().map(|l| l.sysctls.clone()).unwrap_or_default();
    if !sysctls.is_empty() {
        linux["sysctl"] = json!(sysctls);
    }

    // With a terminal, libcontainer makes the pty and sends its master to the shim, as runc does
    // for containerd (the shim logs its output as stdout).
    let process = json!({
        "terminal": config.tty,
        "user": {"uid": user.uid, "gid": user.gid, "additionalGids": user.additional_gids},
        "args": args,
        "env": env_list,
        "cwd": cwd,
        "capabilities": {"bounding": capabilities, "effective": capabilities, "permitted": capabilities},
        "noNewPrivileges": sc.is_some_and(|s| s.no_new_privs),
        "oomScoreAdj": oom_score_adj,
    });
    Ok(json!({
        "ociVersion": "1.0.2",
        "process": process,
        "root": {"path": rootfs, "readonly": sc.is_some_and(|s| s.readonly_rootfs)},
        "mounts": mounts,
        "linux": linux,
        "annotations": {"io.kubernetes.cri.container-type": "container"},
    }))
}

fn mounts(config: &ContainerConfig, pod: &PodFiles, privileged: bool) -> Result<Vec<Value>, Error> {
    let taken = |dest: &str| config.mounts.iter().any(|m| m.container_path.trim_end_matches('/') == dest);
    let ro = if privileged { "rw" } else { "ro" };
    let mut out = vec![
        json!({"destination": "/proc", "type": "proc", "source": "proc", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "strictatime", "mode=755", "size=65536k"]}),
        json!({"destination": "/dev/pts", "type": "devpts", "source": "devpts",
               "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"]}),
        json!({"destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue", "options": ["nosuid", "noexec", "nodev"]}),
        json!({"destination": "/sys", "type": "sysfs", "source": "sysfs", "options": ["nosuid", "noexec", "nodev", ro]}),
        json!({"destination": "/sys/fs/cgroup", "type": "cgroup", "source": "cgroup", "options": ["nosuid", "noexec", "nodev", "relatime", ro]}),
    ];
    if !taken("/dev/shm") {
        out.push(json!({"destination": "/dev/shm", "type": "bind", "source": pod.shm, "options": ["rbind", "nosuid", "nodev", "noexec"]}));
    }
    for (dest, src) in [("/etc/hostname", &pod.hostname), ("/etc/hosts", &pod.hosts), ("/etc/resolv.conf", &pod.resolv_conf)] {
        if !taken(dest) {
            out.push(json!({"destination": dest, "type": "bind", "source": src, "options": ["rbind", "rprivate", "rw"]}));
        }
    }
    for (i, m) in config.mounts.iter().enumerate() {
        if !m.container_path.starts_with('/') {
            return Err(Error::InvalidArgument(format!("mounts[{i}].container_path {:?} must be absolute", m.container_path)));
        }
        if !m.host_path.starts_with('/') {
            return Err(Error::InvalidArgument(format!("mounts[{i}].host_path {:?} must be absolute", m.host_path)));
        }
        let host = Path::new(&m.host_path);
        match std::fs::metadata(host) {
            Ok(_) => {}
            // As containerd: a missing bind source is created as a directory.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(host).map_err(|e| Error::InvalidArgument(format!("mounts[{i}].host_path {}: {e}", m.host_path)))?;
            }
            Err(e) => return Err(Error::InvalidArgument(format!("mounts[{i}].host_path {}: {e}", m.host_path))),
        }
        let propagation = match MountPropagation::try_from(m.propagation) {
            Ok(MountPropagation::PropagationPrivate) => "rprivate",
            Ok(MountPropagation::PropagationHostToContainer) => "rslave",
            Ok(MountPropagation::PropagationBidirectional) => "rshared",
            Err(_) => return Err(Error::InvalidArgument(format!("mounts[{i}].propagation: unknown value {}", m.propagation))),
        };
        out.push(json!({
            "destination": m.container_path,
            "type": "bind",
            "source": m.host_path,
            "options": ["rbind", propagation, if m.readonly { "ro" } else { "rw" }],
        }));
    }
    Ok(out)
}

/// The rootfs propagation the CRI mounts need (containerd: rshared for a bidirectional mount,
/// rslave for host-to-container), or none.
fn rootfs_propagation(config: &ContainerConfig) -> Option<&'static str> {
    let has = |p: MountPropagation| config.mounts.iter().any(|m| m.propagation == p as i32);
    if has(MountPropagation::PropagationBidirectional) {
        Some("rshared")
    } else if has(MountPropagation::PropagationHostToContainer) {
        Some("rslave")
    } else {
        None
    }
}

/// The device cgroup: everything for a privileged container, else runc's default allowlist.
fn devices(privileged: bool) -> Value {
    if privileged {
        return json!([{"allow": true, "access": "rwm"}]);
    }
    let allow = |kind: &str, major: Option<i64>, minor: Option<i64>, access: &str| {
        json!({"allow": true, "type": kind, "major": major, "minor": minor, "access": access})
    };
    json!([
        {"allow": false, "access": "rwm"},
        allow("c", None, None, "m"),
        allow("b", None, None, "m"),
        allow("c", Some(1), Some(3), "rwm"),   // null
        allow("c", Some(1), Some(5), "rwm"),   // zero
        allow("c", Some(1), Some(7), "rwm"),   // full
        allow("c", Some(1), Some(8), "rwm"),   // random
        allow("c", Some(1), Some(9), "rwm"),   // urandom
        allow("c", Some(5), Some(0), "rwm"),   // tty
        allow("c", Some(5), Some(2), "rwm"),   // ptmx
        allow("c", Some(136), None, "rwm"),    // pts
        allow("c", Some(10), Some(200), "rwm") // tun
    ])
}
