//! The daemon↔shim protocol: one JSON request line, one JSON response line, per connection
//! (except [`Request::Subscribe`], whose connection then carries one [`Event`] line per exit).
//!
//! The shim never sees the CRI or OCI: a container arrives as a [`WasmSpec`], the small context
//! a Wasm engine needs (argv, env, preopens, log file), built by the daemon.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

/// A container as the Wasm executor sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct WasmSpec {
    /// The precompiled artifact (`.cwasm`) to map.
    pub artifact: PathBuf,
    /// `true` for a component (WASI 0.2 `wasi:cli/run`), `false` for a core module (WASI p1 `_start`).
    pub component: bool,
    pub args: Vec<String>,
    pub env: Vec<(String, String)>,
    pub working_dir: String,
    pub preopens: Vec<Preopen>,
    /// The CRI log file (`log_directory/log_path`); `None` discards output.
    pub log_path: Option<PathBuf>,
    /// Cap on the guest's linear memory in bytes (from `memory_limit_in_bytes`).
    pub memory_limit: Option<u64>,
    /// Files the container's thread writes its own TID into before anything else, to sit in its
    /// container cgroup: v1 `<hierarchy>/<cgroup>/tasks` of cpu, cpuacct and cpuset (memory is
    /// charged per process on v1, so the pod cgroup the shim sits in holds it); v2 the threaded
    /// cgroup's `cgroup.threads`. Empty: the thread stays in the shim's cgroup.
    #[serde(default)]
    pub cgroup_tasks: Vec<PathBuf>,
    /// The port a component exporting `wasi:http/incoming-handler` is served on (in the pod's
    /// network namespace, on every address); `None`: 8080. Unused by other guests.
    #[serde(default)]
    pub http_port: Option<u16>,
    /// Give the guest a stdin that attach writes into (CRI `stdin`); without, its stdin is empty.
    #[serde(default)]
    pub stdin: bool,
    /// Close that stdin after the first attach that wrote into it ends (CRI `stdin_once`).
    #[serde(default)]
    pub stdin_once: bool,
    /// CRI `tty`. A WASI guest has no terminal: an attached client with one gets stderr on its
    /// one stream beside stdout, and resizes are ignored (see [`crate::attach`]).
    #[serde(default)]
    pub tty: bool,
}

/// A Linux container as the shim sees it: an OCI bundle the daemon wrote (its `config.json` and
/// its mounted rootfs), run through youki's libcontainer with its state under `state_root`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LinuxSpec {
    /// The OCI bundle directory (`config.json`; the spec's `root.path` is absolute).
    pub bundle: PathBuf,
    /// libcontainer's state root; the container's state is `<state_root>/<id>/`.
    pub state_root: PathBuf,
    /// The CRI log file; `None` discards output.
    pub log_path: Option<PathBuf>,
    /// Keep a pipe to the container's stdin open (`stdin`); close it after the first attach ends
    /// (`stdin_once`).
    #[serde(default)]
    pub stdin: bool,
    #[serde(default)]
    pub stdin_once: bool,
    /// Give the container a terminal (CRI `tty`, OCI `process.terminal`): libcontainer makes the
    /// pty and sends its master to the shim, which logs its output as stdout.
    #[serde(default)]
    pub tty: bool,
    /// The signal StopContainer sends first (the image's STOPSIGNAL; SIGTERM by default).
    pub stop_signal: i32,
    /// The container cgroup's file counting OOM kills (v1 `memory.oom_control`, v2
    /// `memory.events`), read when the container exits to tell OOMKilled from a plain kill.
    pub oom_events: Option<PathBuf>,
    /// The container cgroup's `cgroup.procs` in the daemon's hierarchy: every process to signal
    /// when all must go (libcontainer's own kill-all only knows `/sys/fs/cgroup`).
    #[serde(default)]
    pub cgroup_procs: Option<PathBuf>,
}

/// A host directory made visible to the guest at `guest_path`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Preopen {
    pub host_path: PathBuf,
    pub guest_path: String,
    pub readonly: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Request {
    Ping,
    Create { id: String, spec: WasmSpec },
    /// Creates a Linux container: its init process exists, set up, waiting for `Start`.
    CreateLinux { id: String, spec: LinuxSpec },
    /// The pid of the process holding the pod's shared PID namespace (made on first use);
    /// answered with `Pong`.
    PodPidNamespace,
    /// The init pid of a running Linux container (for PID namespace TARGET); answered with
    /// `Pong`. A Wasm container has none: FailedPrecondition.
    ContainerPid { id: String },
    Start { id: String },
    /// Stops the container; answers once it has exited. A Linux container gets its stop signal,
    /// then SIGKILL after `timeout_ms`; a Wasm container is stopped at once.
    Stop { id: String, timeout_ms: u64 },
    State { id: String },
    List,
    /// Forgets an exited (or kills then forgets a running) container.
    Remove { id: String },
    ReopenLog { id: String },
    /// Changes a container's memory cap, running or not (`None` removes it).
    UpdateResources { id: String, memory_limit: Option<u64> },
    /// The container's current usage as the shim sees it.
    Stats { id: String },
    /// Moves a Wasm container's thread into a cgroup made after it started (`tasks` as in
    /// [`WasmSpec::cgroup_tasks`]); its exec instances join it from then on.
    JoinCgroup { id: String, tasks: Vec<PathBuf> },
    /// Keeps the connection open and streams an [`Event`] line per container exit.
    Subscribe,
    /// Kills every container, then the shim exits.
    Shutdown,
    /// Runs a process in container `id` (see [`crate::exec`]); its stdio descriptors come
    /// with the request line (SCM_RIGHTS). The shim answers `Ok` once it runs, then
    /// [`Response::ExecExited`]; hanging up kills it.
    Exec { id: String, exec_id: String, spec: crate::exec::ExecSpec },
    /// The new terminal size of a running exec.
    ExecResize { exec_id: String, size: crate::exec::TerminalSize },
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Response {
    Ok,
    Pong { pid: u32 },
    Started { started_at: i64 },
    State(ContainerState),
    List(Vec<(String, ContainerState)>),
    Stats(ContainerUsage),
    ExecExited(crate::exec::ExecExit),
    Error(RemoteError),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum Event {
    Exited { id: String, exit: ExitRecord },
}

/// What the shim measures of one container itself.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerUsage {
    /// The guest's linear memory in bytes (its last granted grow); 0 before it starts.
    pub linear_memory_bytes: u64,
    /// The cap in force (0 = none).
    pub memory_limit: u64,
    /// CPU time of the container's thread in ns (Wasm containers; `None` for Linux ones, whose
    /// CPU is their cgroup's).
    #[serde(default)]
    pub cpu_ns: Option<u64>,
}

/// A container's state as its shim knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum ContainerState {
    Created,
    Running { started_at: i64 },
    Exited(ExitRecord),
}

/// How a container ended; written to disk by the shim before anyone is told.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExitRecord {
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    /// `Completed`, `Error` or `OOMKilled`, as kubelet expects.
    pub reason: String,
    pub message: String,
}

/// An error the shim reports back, shaped so the daemon can map it to a gRPC code.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub enum RemoteError {
    NotFound(String),
    AlreadyExists(String),
    FailedPrecondition(String),
    InvalidArgument(String),
    Internal(String),
}

impl std::fmt::Display for RemoteError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RemoteError::NotFound(m)
            | RemoteError::AlreadyExists(m)
            | RemoteError::FailedPrecondition(m)
            | RemoteError::InvalidArgument(m)
            | RemoteError::Internal(m) => f.write_str(m),
        }
    }
}

/// Nanoseconds since the Unix epoch, the unit of every CRI timestamp.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0)
}

/// The file a shim records a container's exit in.
pub fn exit_file(shim_dir: &std::path::Path, id: &str) -> PathBuf {
    shim_dir.join(format!("{id}.exit.json"))
}

/// The socket a shim listens on.
pub fn socket_path(shim_dir: &std::path::Path) -> PathBuf {
    shim_dir.join("shim.sock")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_spec_from_an_older_daemon_has_no_cgroup() {
        let json = r#"{"artifact":"/a.cwasm","component":false,"args":[],"env":[],"working_dir":"","preopens":[],"log_path":null,"memory_limit":null}"#;
        let spec: WasmSpec = serde_json::from_str(json).unwrap();
        assert!(spec.cgroup_tasks.is_empty());
    }

    #[test]
    fn resource_requests_round_trip() {
        let line = serde_json::to_string(&Request::UpdateResources { id: "c".into(), memory_limit: Some(1 << 26) }).unwrap();
        assert!(matches!(serde_json::from_str(&line).unwrap(), Request::UpdateResources { memory_limit: Some(m), .. } if m == 1 << 26));
        let usage = ContainerUsage { linear_memory_bytes: 1 << 20, memory_limit: 0, cpu_ns: Some(5) };
        let line = serde_json::to_string(&Response::Stats(usage)).unwrap();
        assert!(matches!(serde_json::from_str(&line).unwrap(), Response::Stats(u) if u == usage));
    }
}
