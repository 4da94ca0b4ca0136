//! The shim's state: its containers, each created (linked, log file open), running on its own
//! thread, or exited with its [`ExitRecord`] on disk. Every request of [`crate::protocol`] lands
//! here; exits are pushed to subscribers after they are durable.

use std::collections::HashMap;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use crate::atomic;
use crate::cri_log::CriLog;
use crate::executor::{Executor, Prepared, StopHandle};
use crate::limiter::MemoryCap;
use crate::protocol::{ContainerState, ContainerUsage, Event, ExitRecord, RemoteError, Request, Response, WasmSpec, exit_file, now_nanos};

/// How long a forced stop may take before the shim reports failure.
const FORCED_STOP_WAIT: Duration = Duration::from_secs(10);

struct Container {
    spec: WasmSpec,
    prepared: Option<Prepared>,
    log: Option<Arc<CriLog>>,
    state: ContainerState,
    stop: StopHandle,
    /// The live memory cap and linear-memory size, shared with the running store's limiter.
    cap: Arc<MemoryCap>,
}

pub(crate) struct Supervisor {
    sandbox_id: String,
    dir: PathBuf,
    executor: Executor,
    containers: Mutex<HashMap<String, Container>>,
    /// Signalled whenever a container exits.
    exited: Condvar,
    subscribers: Mutex<Vec<UnixStream>>,
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
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Container>> {
        self.containers.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn handle(self: &Arc<Self>, request: Request) -> Reply {
        match request {
            Request::Ping => Ok(Response::Pong { pid: std::process::id() }),
            Request::Create { id, spec } => self.create(id, spec),
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
                match &c.log {
                    Some(log) => log.reopen().map(|()| Response::Ok).map_err(|e| RemoteError::Internal(e.to_string())),
                    None => Ok(Response::Ok),
                }
            }
            Request::UpdateResources { id, memory_limit } => {
                let mut containers = self.lock();
                let c = containers.get_mut(&id).ok_or_else(|| not_found(&id))?;
                c.cap.set_limit(memory_limit);
                c.spec.memory_limit = memory_limit;
                tracing::info!(sandbox.id = %self.sandbox_id, container.id = %id, ?memory_limit, "memory cap updated");
                Ok(Response::Ok)
            }
            Request::Stats { id } => {
                let containers = self.lock();
                let c = containers.get(&id).ok_or_else(|| not_found(&id))?;
                Ok(Response::Stats(ContainerUsage {
                    linear_memory_bytes: c.cap.current(),
                    memory_limit: c.cap.limit().unwrap_or(0),
                }))
            }
            // Handled by the server, which owns the connection.
            Request::Subscribe | Request::Shutdown | Request::Exec { .. } | Request::ExecResize { .. } => Ok(Response::Ok),
        }
    }

    fn create(&self, id: String, spec: WasmSpec) -> Reply {
        if self.lock().contains_key(&id) {
            return Err(RemoteError::AlreadyExists(format!("container {id} already exists in the shim")));
        }
        let prepared = self.executor.prepare(&spec).map_err(RemoteError::InvalidArgument)?;
        let log = match &spec.log_path {
            Some(path) => Some(Arc::new(CriLog::open(path).map_err(|e| RemoteError::Internal(e.to_string()))?)),
            None => None,
        };
        let cap = MemoryCap::new(spec.memory_limit);
        let container = Container { spec, prepared: Some(prepared), log, state: ContainerState::Created, stop: StopHandle::default(), cap };
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

    fn start(self: &Arc<Self>, id: String) -> Reply {
        let mut containers = self.lock();
        let c = containers.get_mut(&id).ok_or_else(|| not_found(&id))?;
        let Some(prepared) = c.prepared.take().filter(|_| c.state == ContainerState::Created) else {
            return Err(RemoteError::FailedPrecondition(format!("container {id} is not in the created state")));
        };
        let started_at = now_nanos();
        c.state = ContainerState::Running { started_at };
        let (spec, log, stop, cap) = (c.spec.clone(), c.log.clone(), c.stop.clone(), Arc::clone(&c.cap));
        drop(containers);
        let this = Arc::clone(self);
        let thread_id = id.clone();
        let spawned = std::thread::Builder::new().name(format!("ctr-{}", &id[..id.len().min(12)])).spawn(move || {
            let outcome = this.executor.run(prepared, &spec, log, stop, cap);
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
            let record = ExitRecord {
                started_at,
                finished_at: now_nanos(),
                exit_code: 1,
                reason: "Error".into(),
                message: format!("starting the container thread: {e}"),
            };
            self.record_exit(&id, record);
            return Err(RemoteError::Internal(format!("starting container {id}: {e}")));
        }
        Ok(Response::Started { started_at })
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

    fn stop(&self, id: &str, _grace: Duration) -> Reply {
        // WASI has no signals, so there is nothing a guest could do with a grace period: a Wasm
        // container is stopped at once (its exit reported as 137, like SIGKILL).
        let mut containers = self.lock();
        let c = containers.get(id).ok_or_else(|| not_found(id))?;
        if !matches!(c.state, ContainerState::Running { .. }) {
            return Ok(Response::Ok);
        }
        c.stop.stop(self.executor.engine());
        let deadline = Instant::now() + FORCED_STOP_WAIT;
        loop {
            match containers.get(id).map(|c| &c.state) {
                Some(ContainerState::Running { .. }) => {}
                _ => return Ok(Response::Ok),
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(RemoteError::Internal(format!("container {id} did not stop within {FORCED_STOP_WAIT:?}")));
            }
            containers = self.exited.wait_timeout(containers, left).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    fn remove(&self, id: &str) -> Reply {
        let running = matches!(self.lock().get(id).map(|c| &c.state), Some(ContainerState::Running { .. }));
        if running {
            self.stop(id, Duration::ZERO)?;
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
        Ok(crate::exec::ExecTarget::Wasm { engine: self.executor.engine().clone(), spec: c.spec.clone() })
    }

    pub fn subscribe(&self, stream: UnixStream) {
        self.subscribers.lock().unwrap_or_else(|e| e.into_inner()).push(stream);
    }

    /// Stops every running container (used before the shim exits).
    pub fn stop_all(&self) {
        let ids: Vec<String> = self.lock().keys().cloned().collect();
        for id in ids {
            let _ = self.stop(&id, Duration::ZERO);
        }
    }
}

fn not_found(id: &str) -> RemoteError {
    RemoteError::NotFound(format!("container {id} not found in the shim"))
}
