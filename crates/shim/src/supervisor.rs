//! The shim's state: its containers — Wasm ones created (linked, log file open), running on their
//! own thread; Linux ones a waiting init process, then running — or exited with their
//! [`ExitRecord`] on disk. Every request of [`crate::protocol`] lands here; exits are pushed to
//! subscribers after they are durable.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::atomic;
use crate::container_thread::ContainerThread;
use crate::cri_log::CriLog;
use crate::executor::{Executor, StopHandle};
use crate::limiter::MemoryCap;
use crate::linux::process::LinuxContainer;
use crate::protocol::{
    ContainerState, ContainerUsage, Event, ExitRecord, LinuxSpec, RemoteError, Request, Response, WasmSpec, exit_file, now_nanos,
};

/// How long a forced stop may take before the shim reports failure.
const FORCED_STOP_WAIT: Duration = Duration::from_secs(10);

struct Container {
    workload: Workload,
    state: ContainerState,
}

enum Workload {
    Wasm {
        spec: WasmSpec,
        /// Starts the container's thread (which staged it at create) with its start time;
        /// dropped (by remove) before start, it ends the thread instead.
        go: Option<std::sync::mpsc::Sender<i64>>,
        log: Option<Arc<CriLog>>,
        stop: StopHandle,
        /// The live memory cap and linear-memory size, shared with the running store's limiter.
        cap: Arc<MemoryCap>,
        /// Its stdin for attach (CRI `stdin`).
        stdin: Option<Arc<crate::container_stdin::ContainerStdin>>,
        /// Its thread: TID and CPU time.
        thread: Arc<ContainerThread>,
    },
    Linux(Arc<LinuxContainer>),
}

pub(crate) struct Supervisor {
    sandbox_id: String,
    dir: PathBuf,
    executor: Executor,
    containers: Mutex<HashMap<String, Container>>,
    /// Signalled whenever a container exits.
    exited: Condvar,
    subscribers: Mutex<Vec<UnixStream>>,
    /// A thread started ahead for the first container.
    ready_thread: crate::ready_thread::ReadyThread,
}

type Reply = Result<Response, RemoteError>;

impl Supervisor {
    pub fn new(sandbox_id: String, dir: PathBuf, executor: Executor) -> Self {
        Supervisor {
            sandbox_id,
            dir,
            executor,
            containers: Mutex::new(HashMap::new()),
            exited: Condvar::new(),
            subscribers: Mutex::new(Vec::new()),
            ready_thread: Default::default(),
        }
    }

    /// Starts the thread the first container will run on (see [`crate::ready_thread`]).
    pub fn prepare_thread(&self) {
        self.ready_thread.prepare();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn handle(self: &Arc<Self>, request: Request) -> Reply {
        match request {
            Request::Ping => Ok(Response::Pong { pid: std::process::id() }),
            Request::Create { id, spec } => self.create(id, spec),
            Request::CreateLinux { id, spec } => self.create_linux(id, spec),
            Request::PodPidNamespace => crate::linux::pid_holder::ensure().map(|pid| Response::Pong { pid: pid as u32 }),
            Request::ContainerPid { id } => {
                let containers = self.lock();
                let c = containers.get(&id).ok_or_else(|| not_found(&id))?;
                match (&c.workload, &c.state) {
                    (Workload::Linux(l), ContainerState::Running { .. }) => Ok(Response::Pong { pid: l.pid() as u32 }),
                    (Workload::Linux(_), _) => Err(RemoteError::FailedPrecondition(format!("container {id} is not running"))),
                    (Workload::Wasm { .. }, _) => Err(RemoteError::FailedPrecondition(format!(
                        "container {id} is a Wasm container: it is a thread of the pod's shim and has no PID namespace of its own to share"
                    ))),
                }
            }
            Request::Start { id } => self.start(id),
            Request::Stop { id, timeout_ms } => self.stop(&id, Duration::from_millis(timeout_ms)),
            Request::State { id } => {
                let containers = self.lock();
                let c = containers.get(&id).ok_or_else(|| not_found(&id))?;
                Ok(Response::State(c.state.clone()))
            }
            Request::List => Ok(Response::List(
                self.lock().iter().map(|(id, c)| (id.clone(), c.state.clone())).collect(),
            )),
            Request::Remove { id } => self.remove(&id),
            Request::ReopenLog { id } => {
                let containers = self.lock();
                let c = containers.get(&id).ok_or_else(|| not_found(&id))?;
                match c.workload.log() {
                    Some(log) => log.reopen().map(|()| Response::Ok).map_err(|e| RemoteError::Internal(e.to_string())),
                    None => Ok(Response::Ok),
                }
            }
            Request::UpdateResources { id, memory_limit } => {
                let mut containers = self.lock();
                let c = containers.get_mut(&id).ok_or_else(|| not_found(&id))?;
                // A Linux container's memory is its cgroup's, which the daemon updates.
                let Workload::Wasm { cap, spec, .. } = &mut c.workload else { return Ok(Response::Ok) };
                cap.set_limit(memory_limit);
                spec.memory_limit = memory_limit;
                tracing::info!(sandbox.id = %self.sandbox_id, container.id = %id, ?memory_limit, "memory cap updated");
                Ok(Response::Ok)
            }
            Request::Stats { id } => {
                let containers = self.lock();
                let c = containers.get(&id).ok_or_else(|| not_found(&id))?;
                Ok(Response::Stats(match &c.workload {
                    Workload::Wasm { cap, thread, .. } => ContainerUsage {
                        linear_memory_bytes: cap.current(),
                        memory_limit: cap.limit().unwrap_or(0),
                        cpu_ns: Some(thread.cpu_ns()),
                    },
                    Workload::Linux(_) => ContainerUsage::default(),
                }))
            }
            Request::JoinCgroup { id, tasks } => {
                let mut containers = self.lock();
                let c = containers.get_mut(&id).ok_or_else(|| not_found(&id))?;
                let Workload::Wasm { thread, spec, .. } = &mut c.workload else {
                    return Err(RemoteError::InvalidArgument(format!("container {id} is a Linux container: its processes are placed by libcontainer")));
                };
                let thread = Arc::clone(thread);
                // Exec instances started from now on join it too.
                spec.cgroup_tasks = tasks.clone();
                drop(containers);
                thread.join_cgroup(&tasks).map_err(RemoteError::FailedPrecondition)?;
                tracing::info!(sandbox.id = %self.sandbox_id, container.id = %id, "container thread moved into its cgroup");
                Ok(Response::Ok)
            }
            // Handled by the server, which owns the connection.
            Request::Subscribe | Request::Shutdown | Request::Exec { .. } | Request::ExecResize { .. } => Ok(Response::Ok),
        }
    }

    fn create(self: &Arc<Self>, id: String, spec: WasmSpec) -> Reply {
        if self.lock().contains_key(&id) {
            return Err(RemoteError::AlreadyExists(format!("container {id} already exists in the shim")));
        }
        let prepared = self.executor.prepare(&spec).map_err(RemoteError::InvalidArgument)?;
        // Without a log file, the output still reaches attached clients.
        let log = match &spec.log_path {
            Some(path) => Some(Arc::new(CriLog::open(path).map_err(|e| RemoteError::Internal(e.to_string()))?)),
            None => Some(Arc::new(CriLog::discard())),
        };
        let stdin = match spec.stdin {
            true => Some(Arc::new(
                crate::container_stdin::ContainerStdin::pipe(spec.stdin_once, spec.tty).map_err(|e| RemoteError::Internal(format!("stdin pipe: {e}")))?,
            )),
            false => None,
        };
        let cap = MemoryCap::new(spec.memory_limit);
        let stop = StopHandle::default();
        // The container's thread, made now: it stages the container while the daemon finishes
        // CreateContainer and the client sends StartContainer, then waits for the start.
        let (go, started) = std::sync::mpsc::channel::<i64>();
        let this = Arc::clone(self);
        let thread_id = id.clone();
        let thread = Arc::new(ContainerThread::default());
        let (spec2, log2, stdin2, stop2, cap2, thread2) = (spec.clone(), log.clone(), stdin.clone(), stop.clone(), Arc::clone(&cap), Arc::clone(&thread));
        let workload = Workload::Wasm { spec, go: Some(go), log, stop, cap, stdin, thread };
        self.insert(id.clone(), Container { workload, state: ContainerState::Created })?;
        let spawned = self.ready_thread.run(format!("ctr-{}", &id[..id.len().min(12)]), move || {
            let _span = tracing::info_span!("container", sandbox.id = %this.sandbox_id, container.id = %thread_id).entered();
            let entered = thread2.enter();
            let staged = this.executor.stage(prepared, &spec2, log2, stdin2, stop2, cap2);
            let Ok(started_at) = started.recv() else { return }; // removed before it started
            let outcome = staged.run();
            drop(entered); // its CPU time is final before its exit is reported
            let record = ExitRecord {
                started_at,
                finished_at: now_nanos(),
                exit_code: outcome.exit_code,
                reason: outcome.reason.to_string(),
                message: outcome.message,
            };
            this.record_exit(&thread_id, record);
        });
        if let Err(e) = spawned {
            self.lock().remove(&id);
            return Err(RemoteError::Internal(format!("starting the container thread: {e}")));
        }
        Ok(Response::Ok)
    }

    fn insert(&self, id: String, container: Container) -> Reply {
        match self.lock().entry(id) {
            std::collections::hash_map::Entry::Occupied(e) => {
                Err(RemoteError::AlreadyExists(format!("container {} already exists in the shim", e.key())))
            }
            std::collections::hash_map::Entry::Vacant(e) => {
                e.insert(container);
                Ok(Response::Ok)
            }
        }
    }

    /// Creates a Linux container (its init waits for `Start`) and the thread that reports its exit.
    fn create_linux(self: &Arc<Self>, id: String, spec: LinuxSpec) -> Reply {
        if self.lock().contains_key(&id) {
            return Err(RemoteError::AlreadyExists(format!("container {id} already exists in the shim")));
        }
        let log = match &spec.log_path {
            Some(path) => Some(Arc::new(CriLog::open(path).map_err(|e| RemoteError::Internal(e.to_string()))?)),
            None => None,
        };
        let container = Arc::new(LinuxContainer::create(&id, &spec, log)?);
        tracing::info!(sandbox.id = %self.sandbox_id, container.id = %id, pid = container.pid(), "linux container created");
        self.insert(id.clone(), Container { workload: Workload::Linux(Arc::clone(&container)), state: ContainerState::Created })?;
        let this = Arc::clone(self);
        let spawned = std::thread::Builder::new().name(format!("wait-{}", &id[..id.len().min(12)])).spawn(move || {
            let exit = container.wait();
            let started_at = match this.lock().get(&id).map(|c| c.state.clone()) {
                Some(ContainerState::Running { started_at }) => started_at,
                _ => 0,
            };
            let reason = if exit.oom_killed {
                "OOMKilled"
            } else if exit.exit_code == 0 {
                "Completed"
            } else {
                "Error"
            };
            let record =
                ExitRecord { started_at, finished_at: now_nanos(), exit_code: exit.exit_code, reason: reason.into(), message: String::new() };
            this.record_exit(&id, record);
        });
        spawned.map(|_| Response::Ok).map_err(|e| RemoteError::Internal(format!("starting the waiter thread: {e}")))
    }

    fn start(self: &Arc<Self>, id: String) -> Reply {
        let mut containers = self.lock();
        let c = containers.get_mut(&id).ok_or_else(|| not_found(&id))?;
        if c.state != ContainerState::Created {
            return Err(RemoteError::FailedPrecondition(format!("container {id} is not in the created state")));
        }
        match &mut c.workload {
            Workload::Linux(linux) => {
                let linux = Arc::clone(linux);
                let started_at = now_nanos();
                c.state = ContainerState::Running { started_at };
                drop(containers);
                if let Err(e) = linux.start() {
                    linux.signal(libc::SIGKILL, true);
                    return Err(e);
                }
                Ok(Response::Started { started_at })
            }
            Workload::Wasm { go, .. } => {
                let Some(go) = go.take() else {
                    return Err(RemoteError::FailedPrecondition(format!("container {id} is not in the created state")));
                };
                let started_at = now_nanos();
                c.state = ContainerState::Running { started_at };
                drop(containers);
                if go.send(started_at).is_err() {
                    let record = ExitRecord {
                        started_at,
                        finished_at: now_nanos(),
                        exit_code: 1,
                        reason: "Error".into(),
                        message: "the container's thread is gone".into(),
                    };
                    self.record_exit(&id, record);
                    return Err(RemoteError::Internal(format!("starting container {id}: its thread is gone")));
                }
                Ok(Response::Started { started_at })
            }
        }
    }

    fn record_exit(&self, id: &str, record: ExitRecord) {
        tracing::info!(sandbox.id = %self.sandbox_id, container.id = %id, exit_code = record.exit_code, reason = %record.reason, "container exited");
        if let Err(e) = atomic::write_json(&exit_file(&self.dir, id), &record, atomic::Durability::ProcessCrash) {
            tracing::error!(container.id = %id, error = %e, "recording exit");
        }
        if let Some(c) = self.lock().get_mut(id) {
            c.state = ContainerState::Exited(record.clone());
        }
        self.exited.notify_all();
        crate::exec::container_exited(id);
        let mut line = serde_json::to_vec(&Event::Exited { id: id.to_string(), exit: record }).unwrap_or_default();
        line.push(b'\n');
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).retain_mut(|s| s.write_all(&line).is_ok());
    }

    fn stop(&self, id: &str, grace: Duration) -> Reply {
        let mut containers = self.lock();
        let c = containers.get(id).ok_or_else(|| not_found(id))?;
        match &c.workload {
            // A Linux container gets its stop signal, and SIGKILL (every process) after the grace
            // period. A created one that never started is killed at once.
            Workload::Linux(linux) => {
                let linux = Arc::clone(linux);
                match c.state {
                    ContainerState::Exited(_) => return Ok(Response::Ok),
                    ContainerState::Created => linux.signal(libc::SIGKILL, true),
                    ContainerState::Running { .. } => {
                        linux.signal(linux.stop_signal(), false);
                        containers = self.wait_exited(containers, id, grace);
                        if matches!(containers.get(id).map(|c| &c.state), Some(ContainerState::Running { .. })) {
                            tracing::info!(sandbox.id = %self.sandbox_id, container.id = %id, ?grace, "grace period over: SIGKILL");
                            linux.signal(libc::SIGKILL, true);
                        }
                    }
                }
            }
            // WASI has no signals, so there is nothing a guest could do with a grace period: a
            // Wasm container is stopped at once (its exit reported as 137, like SIGKILL).
            Workload::Wasm { stop, .. } => {
                if !matches!(c.state, ContainerState::Running { .. }) {
                    return Ok(Response::Ok);
                }
                stop.stop(self.executor.engine());
            }
        }
        let deadline = Instant::now() + FORCED_STOP_WAIT;
        loop {
            match containers.get(id).map(|c| &c.state) {
                Some(ContainerState::Running { .. } | ContainerState::Created) => {}
                _ => return Ok(Response::Ok),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RemoteError::Internal(format!("container {id} did not stop within {FORCED_STOP_WAIT:?}")));
            }
            containers = self.exited.wait_timeout(containers, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// Waits up to `wait` for container `id` to leave the running state.
    fn wait_exited<'a>(
        &self,
        mut containers: std::sync::MutexGuard<'a, HashMap<String, Container>>,
        id: &str,
        wait: Duration,
    ) -> std::sync::MutexGuard<'a, HashMap<String, Container>> {
        let deadline = Instant::now() + wait;
        while matches!(containers.get(id).map(|c| &c.state), Some(ContainerState::Running { .. })) {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            containers = self.exited.wait_timeout(containers, left).unwrap_or_else(|e| e.into_inner()).0;
        }
        containers
    }

    fn remove(&self, id: &str) -> Reply {
        let (live, linux) = match self.lock().get(id) {
            Some(c) => (!matches!(c.state, ContainerState::Exited(_)), c.workload.linux()),
            None => (false, None),
        };
        if live {
            self.stop(id, Duration::ZERO)?;
        }
        if let Some(linux) = linux {
            linux.delete();
        }
        self.lock().remove(id);
        let _ = std::fs::remove_file(exit_file(&self.dir, id));
        Ok(Response::Ok)
    }

    /// What an exec in container `id` runs against (see [`crate::exec`]); it must be running.
    pub(crate) fn exec_target(&self, id: &str) -> Result<crate::exec::ExecTarget, RemoteError> {
        let containers = self.lock();
        let c = containers.get(id).ok_or_else(|| not_found(id))?;
        if !matches!(c.state, ContainerState::Running { .. }) {
            return Err(RemoteError::FailedPrecondition(format!("container {id} is not running")));
        }
        let target = match &c.workload {
            Workload::Wasm { spec, log, stdin, .. } => crate::exec::ExecTarget::Wasm {
                engine: self.executor.engine().clone(),
                spec: spec.clone(),
                log: log.clone(),
                stdin: stdin.clone(),
            },
            Workload::Linux(l) => crate::exec::ExecTarget::Linux(Arc::clone(l)),
        };
        Ok(target)
    }

    /// Adds a subscriber to exit events, first sending it the exits it may have missed (every
    /// container already exited): a daemon that subscribes after a container ran, or re-subscribes
    /// after a dropped connection, learns every exit. Under the containers lock, so an exit is
    /// either in that replay or sent to the new subscriber (or both: the daemon's update is
    /// idempotent).
    pub fn subscribe(&self, mut stream: UnixStream) {
        let containers = self.lock();
        let mut replay = Vec::new();
        for (id, c) in containers.iter() {
            if let ContainerState::Exited(record) = &c.state {
                replay.extend(serde_json::to_vec(&Event::Exited { id: id.clone(), exit: record.clone() }).unwrap_or_default());
                replay.push(b'\n');
            }
        }
        if !replay.is_empty() && stream.write_all(&replay).is_err() {
            return;
        }
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).push(stream);
        drop(containers);
    }

    /// Stops every running container (used before the shim exits) and deletes Linux containers'
    /// state and cgroups.
    pub fn stop_all(&self) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            let _ = self.stop(&id, Duration::ZERO);
            let linux = self.lock().get(&id).and_then(|c| c.workload.linux());
            if let Some(l) = linux {
                l.delete();
            }
        }
        crate::linux::pid_holder::kill();
    }
}

impl Workload {
    fn linux(&self) -> Option<Arc<LinuxContainer>> {
        match self {
            Workload::Linux(l) => Some(Arc::clone(l)),
            Workload::Wasm { .. } => None,
        }
    }

    fn log(&self) -> Option<&Arc<CriLog>> {
        match self {
            Workload::Wasm { log, .. } => log.as_ref(),
            Workload::Linux(l) => l.log(),
        }
    }
}

fn not_found(id: &str) -> RemoteError {
    RemoteError::NotFound(format!("container {id} not found in the shim"))
}
