//! Runs one Wasm container to completion on the calling thread: WASI preview 1 for core modules
//! (`_start`), WASI 0.2 for components (`wasi:cli/run`). Linking happens once, at create
//! ([`Executor::prepare`] returns an `InstancePre`); then the container's own thread stages it
//! ([`Executor::stage`]: runtime, WASI context, instance, cgroup) and waits, so that start only
//! calls in ([`Staged::run`]).
//!
//! Stopping: the guest runs as a future on a current-thread runtime. [`StopHandle::stop`] sets a
//! flag, bumps the engine epoch (a guest in a loop traps at its next loop header) and wakes the
//! runner (a guest blocked in a host call, e.g. a sleep, is dropped at once).
//!
//! A component exporting `wasi:http/incoming-handler` is not run but served, see
//! [`crate::http_handler`].
//!
//! The guest's stdout and stderr go to its [`CriLog`] (and so to attached clients); its stdin is
//! the container's [`ContainerStdin`] pipe when it was created with `stdin`, else empty.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;
use wasmtime::component::{Linker as ComponentLinker, ResourceTable};
use wasmtime::{Engine, InstancePre, Linker, Store, UpdateDeadline};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::CommandPre;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::container_stdin::ContainerStdin;
use crate::cri_log::{CriLog, LogStream};
use crate::limiter::{MemoryCap, MemoryLimiter};
use crate::preloaded::{FileId, Linked, Preloaded};
use crate::protocol::WasmSpec;
use crate::wasi_stdio::GuestOutput;
use crate::Error;

/// Exit code reported for a guest that trapped, as the wasmtime CLI does (128 + SIGABRT).
pub(crate) const TRAP_EXIT_CODE: i32 = 134;
/// Exit code reported for a guest stopped by force or for exceeding its memory (128 + SIGKILL).
pub(crate) const KILLED_EXIT_CODE: i32 = 137;

pub(crate) struct P1Host {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

pub(crate) struct P2Host {
    ctx: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for P2Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView { ctx: &mut self.ctx, table: &mut self.table }
    }
}

/// The engine and the two linkers, made once per shim (or once per zygote, shared by fork), and
/// the artifacts the zygote linked ahead of time. A clone shares the linkers: a deep copy of
/// their WASI definitions cost every forked shim ~35 copy-on-write faults and their copying.
#[derive(Clone)]
pub(crate) struct Executor {
    engine: Engine,
    p1: Arc<Linker<P1Host>>,
    p2: Arc<ComponentLinker<P2Host>>,
    preloaded: Preloaded,
}

/// A container linked and ready to instantiate.
pub(crate) enum Prepared {
    Module(InstancePre<P1Host>),
    Component(CommandPre<P2Host>),
    /// A `wasi:http/incoming-handler` component, served on a port.
    Http(crate::http_handler::HttpPrepared),
}

/// How a run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Outcome {
    pub exit_code: i32,
    pub reason: &'static str,
    pub message: String,
}

/// Asks a running container to stop; cheap to clone.
#[derive(Clone, Default)]
pub(crate) struct StopHandle {
    flag: Arc<AtomicBool>,
    wake: Arc<Notify>,
    /// Engines besides the executor's whose guests a stop interrupts (an HTTP handler's pool).
    engines: Arc<std::sync::Mutex<Vec<Engine>>>,
}

impl StopHandle {
    pub fn stop(&self, engine: &Engine) {
        self.flag.store(true, Ordering::SeqCst);
        self.wake.notify_one();
        engine.increment_epoch();
        for other in self.engines.lock().unwrap_or_else(|e| e.into_inner()).iter() {
            other.increment_epoch();
        }
    }

    pub(crate) fn stopped(&self) -> bool {
        self.flag.load(Ordering::SeqCst)
    }

    /// Returns once the container is asked to stop.
    pub(crate) async fn wait(&self) {
        if !self.stopped() {
            self.wake.notified().await;
        }
    }

    /// Makes a stop interrupt the guests of `engine` too.
    pub(crate) fn also_interrupt(&self, engine: Engine) {
        self.engines.lock().unwrap_or_else(|e| e.into_inner()).push(engine);
    }
}

impl Executor {
    pub fn new() -> Result<Self, Error> {
        let engine = wasmlet_wasm::new_engine()?;
        let mut p1 = Linker::new(&engine);
        wasmtime_wasi::p1::add_to_linker_async(&mut p1, |h: &mut P1Host| &mut h.wasi)
            .map_err(|e| Error::Protocol(format!("linking WASI p1: {e:#}")))?;
        let mut p2 = ComponentLinker::new(&engine);
        wasmtime_wasi::p2::add_to_linker_async(&mut p2)
            .map_err(|e| Error::Protocol(format!("linking WASI p2: {e:#}")))?;
        Ok(Executor { engine, p1: Arc::new(p1), p2: Arc::new(p2), preloaded: Preloaded::default() })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Maps the precompiled artifact and links it (never compiles), or clones what the zygote
    /// linked ahead of time ([`Preloaded`]).
    pub fn prepare(&self, spec: &WasmSpec) -> Result<Prepared, String> {
        match self.preloaded.get(&spec.artifact) {
            Some(Linked::Module(pre)) if !spec.component => return Ok(Prepared::Module(pre)),
            Some(Linked::Component(pre)) if spec.component => return Ok(Prepared::Component(pre)),
            _ => {}
        }
        if spec.component {
            let component = wasmlet_wasm::load_component(&self.engine, &spec.artifact).map_err(|e| e.to_string())?;
            if crate::http_handler::exports_handler(&self.engine, &component) {
                return crate::http_handler::prepare(&self.engine, spec, &component).map(Prepared::Http);
            }
            Ok(Prepared::Component(self.link_component(&component)?))
        } else {
            let module = wasmlet_wasm::load_module(&self.engine, &spec.artifact).map_err(|e| e.to_string())?;
            Ok(Prepared::Module(self.link_module(&module)?))
        }
    }

    fn link_module(&self, module: &wasmtime::Module) -> Result<InstancePre<P1Host>, String> {
        if module.get_export("_start").is_none() {
            return Err("the module exports no _start function (not a WASI command)".into());
        }
        self.p1.instantiate_pre(module).map_err(|e| format!("linking module: {e:#}"))
    }

    fn link_component(&self, component: &wasmtime::component::Component) -> Result<CommandPre<P2Host>, String> {
        let pre = self.p2.instantiate_pre(component).map_err(|e| format!("linking component: {e:#}"))?;
        CommandPre::new(pre).map_err(|e| format!("the component does not export wasi:cli/run: {e:#}"))
    }

    /// Maps and links the artifact at `path` into [`Preloaded`] unless it is there already (the
    /// zygote, between requests). Components served as HTTP handlers are not kept.
    pub fn preload(&self, path: &std::path::Path, component: bool) -> Result<(), String> {
        if self.preloaded.has(path) {
            return Ok(());
        }
        let Some(file) = FileId::of(path) else { return Err(format!("{}: not found", path.display())) };
        let linked = if component {
            let c = wasmlet_wasm::load_component(&self.engine, path).map_err(|e| e.to_string())?;
            if crate::http_handler::exports_handler(&self.engine, &c) {
                return Ok(());
            }
            Linked::Component(self.link_component(&c)?)
        } else {
            Linked::Module(self.link_module(&wasmlet_wasm::load_module(&self.engine, path).map_err(|e| e.to_string())?)?)
        };
        self.preloaded.insert(path, file, linked);
        Ok(())
    }

    /// Makes a container ready to run, on the thread that will run it (at create, so that start
    /// only joins the cgroup and calls in): its runtime, WASI context, store and instance. Also
    /// joins the container's cgroup if it exists by now (the daemon makes it meanwhile); else
    /// [`Staged::run`] does. A failure is kept and reported when the container starts.
    pub fn stage(
        &self,
        prepared: Prepared,
        spec: &WasmSpec,
        log: Option<Arc<CriLog>>,
        stdin: Option<Arc<ContainerStdin>>,
        stop: StopHandle,
        cap: Arc<MemoryCap>,
    ) -> Staged {
        let kind = match prepared {
            Prepared::Http(prepared) => StagedKind::Http { prepared, spec: spec.clone(), cap },
            Prepared::Module(pre) => match self.guest_runtime(spec, &log, stdin.as_deref()) {
                Err(outcome) => StagedKind::Failed(outcome),
                Ok((runtime, mut builder)) => {
                    let host = P1Host { wasi: builder.build_p1(), limiter: MemoryLimiter::new(cap) };
                    let mut store = Store::new(&self.engine, host);
                    store.limiter(|h| &mut h.limiter);
                    arm_epoch(&mut store, &stop);
                    match runtime.block_on(pre.instantiate_async(&mut store)) {
                        Ok(instance) => StagedKind::Module { runtime, store, instance },
                        Err(e) => StagedKind::Failed(classify(Some(Err(e)), store.data().limiter.exceeded, &stop)),
                    }
                }
            },
            Prepared::Component(pre) => match self.guest_runtime(spec, &log, stdin.as_deref()) {
                Err(outcome) => StagedKind::Failed(outcome),
                Ok((runtime, mut builder)) => {
                    let host = P2Host { ctx: builder.build(), table: ResourceTable::new(), limiter: MemoryLimiter::new(cap) };
                    let mut store = Store::new(&self.engine, host);
                    store.limiter(|h| &mut h.limiter);
                    arm_epoch(&mut store, &stop);
                    match runtime.block_on(pre.instantiate_async(&mut store)) {
                        Ok(command) => StagedKind::Component { runtime, store, command },
                        Err(e) => StagedKind::Failed(classify(Some(Err(e)), store.data().limiter.exceeded, &stop)),
                    }
                }
            },
        };
        // Joined now if the cgroup is complete already; a partial join is redone at run.
        let cgroup_tasks = match join_cgroup(&spec.cgroup_tasks) {
            Ok(()) => Vec::new(),
            Err(_) => spec.cgroup_tasks.clone(),
        };
        Staged { log, stop, cgroup_tasks, kind }
    }

    /// The guest's current-thread runtime and its WASI context builder (stdin registers with
    /// that runtime's reactor).
    fn guest_runtime(&self, spec: &WasmSpec, log: &Option<Arc<CriLog>>, stdin: Option<&ContainerStdin>) -> Result<(tokio::runtime::Runtime, WasiCtxBuilder), Outcome> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| Outcome::error(1, format!("creating the guest's runtime: {e}")))?;
        let builder = {
            let _rt = runtime.enter();
            wasi_builder(spec, log).and_then(|b| with_stdin(b, stdin)).map_err(|e| Outcome::error(1, e))?
        };
        Ok((runtime, builder))
    }
}

/// A container made ready by [`Executor::stage`], waiting to start on its own thread.
pub(crate) struct Staged {
    log: Option<Arc<CriLog>>,
    stop: StopHandle,
    /// The cgroup files still to join (empty once joined at staging).
    cgroup_tasks: Vec<std::path::PathBuf>,
    kind: StagedKind,
}

enum StagedKind {
    Module { runtime: tokio::runtime::Runtime, store: Store<P1Host>, instance: wasmtime::Instance },
    Component { runtime: tokio::runtime::Runtime, store: Store<P2Host>, command: wasmtime_wasi::p2::bindings::Command },
    /// A `wasi:http/incoming-handler` component: served from start.
    Http { prepared: crate::http_handler::HttpPrepared, spec: WasmSpec, cap: Arc<MemoryCap> },
    /// What went wrong while staging, reported as the container's exit when it starts.
    Failed(Outcome),
}

impl Staged {
    /// Runs the container to its end on the calling (staging) thread, which joins the
    /// container's cgroup first if it has not yet, so threads it starts inherit it.
    pub fn run(self) -> Outcome {
        let Staged { log, stop, cgroup_tasks, kind } = self;
        let outcome = match join_cgroup(&cgroup_tasks) {
            Err(e) => Outcome::error(1, e),
            Ok(()) => match kind {
                StagedKind::Failed(outcome) => outcome,
                StagedKind::Http { prepared, spec, cap } => crate::http_handler::serve(prepared, &spec, log.clone(), stop, cap),
                StagedKind::Module { runtime, mut store, instance } => {
                    let result = runtime.block_on(async {
                        let run = async {
                            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                            start.call_async(&mut store, ()).await
                        };
                        race(run, &stop).await
                    });
                    classify(result.map(|r| r.map(|()| 0)), store.data().limiter.exceeded, &stop)
                }
                StagedKind::Component { runtime, mut store, command } => {
                    let result = runtime.block_on(async {
                        let run = async {
                            let ok = command.wasi_cli_run().call_run(&mut store).await?;
                            Ok(if ok.is_ok() { 0 } else { 1 })
                        };
                        race(run, &stop).await
                    });
                    classify(result, store.data().limiter.exceeded, &stop)
                }
            },
        };
        if let Some(log) = &log {
            log.close(outcome.exit_code);
        }
        outcome
    }
}

/// Gives the guest the container's stdin pipe (attach writes into it; its end is EOF).
fn with_stdin(mut b: WasiCtxBuilder, stdin: Option<&ContainerStdin>) -> Result<WasiCtxBuilder, String> {
    if let Some(fd) = stdin.and_then(ContainerStdin::take_reader) {
        let pipe = tokio::net::unix::pipe::Receiver::from_owned_fd(fd).map_err(|e| format!("the container's stdin: {e}"))?;
        b.stdin(wasmtime_wasi::cli::AsyncStdinStream::new(pipe));
    }
    Ok(b)
}

impl Outcome {
    fn exited(code: i32) -> Outcome {
        let reason = if code == 0 { "Completed" } else { "Error" };
        Outcome { exit_code: code, reason, message: String::new() }
    }

    pub(crate) fn error(code: i32, message: String) -> Outcome {
        Outcome { exit_code: code, reason: "Error", message }
    }
}

pub(crate) fn wasi_builder(spec: &WasmSpec, log: &Option<Arc<CriLog>>) -> Result<WasiCtxBuilder, String> {
    let mut b = WasiCtxBuilder::new();
    b.args(&spec.args);
    b.envs(&spec.env);
    b.stdout(GuestOutput { log: log.clone(), stream: LogStream::Stdout });
    b.stderr(GuestOutput { log: log.clone(), stream: LogStream::Stderr });
    // WASI 0.2 sockets (TCP, UDP, name lookup): the shim sits in the pod's network namespace,
    // so the kernel bounds what a guest can reach exactly as for a Linux container of the pod.
    b.inherit_network();
    b.allow_tcp(true);
    b.allow_udp(true);
    b.allow_ip_name_lookup(true);
    for p in &spec.preopens {
        let perms = if p.readonly { FsPerms::ReadOnly } else { FsPerms::ReadWrite };
        b.preopened_dir(&p.host_path, &p.guest_path, perms)
            .map_err(|e| format!("preopening {} at {}: {e:#}", p.host_path.display(), p.guest_path))?;
    }
    Ok(b)
}

/// Writes the calling thread's TID into each `tasks` / `cgroup.threads` file.
fn join_cgroup(files: &[std::path::PathBuf]) -> Result<(), String> {
    if files.is_empty() {
        return Ok(());
    }
    let start = std::time::Instant::now();
    // SAFETY: gettid has no arguments and cannot fail.
    let tid = unsafe { libc::gettid() };
    crate::container_thread::write_tid(tid, files)?;
    tracing::debug!(tid, files = files.len(), cgroup.join_us = start.elapsed().as_micros() as u64, "container thread joined its cgroup");
    Ok(())
}

fn arm_epoch<T: 'static>(store: &mut Store<T>, stop: &StopHandle) {
    let stop = stop.clone();
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if stop.stopped() { UpdateDeadline::Interrupt } else { UpdateDeadline::Continue(1) })
    });
}

/// Runs `fut` until it finishes or the container is stopped; `None` means stopped while the
/// guest was waiting in a host call.
async fn race<F: std::future::Future>(fut: F, stop: &StopHandle) -> Option<F::Output> {
    if stop.stopped() {
        return None;
    }
    tokio::select! {
        out = fut => Some(out),
        () = stop.wake.notified() => None,
    }
}

fn classify(result: Option<wasmtime::Result<i32>>, oom: bool, stop: &StopHandle) -> Outcome {
    match result {
        None => Outcome::error(KILLED_EXIT_CODE, "stopped".into()),
        Some(Ok(code)) => Outcome::exited(code),
        Some(Err(e)) => {
            if let Some(exit) = e.downcast_ref::<I32Exit>() {
                Outcome::exited(exit.0)
            } else if oom {
                Outcome { exit_code: KILLED_EXIT_CODE, reason: "OOMKilled", message: truncate(format!("{e:#}")) }
            } else if stop.stopped() {
                Outcome::error(KILLED_EXIT_CODE, "stopped".into())
            } else {
                Outcome::error(TRAP_EXIT_CODE, truncate(format!("{e:#}")))
            }
        }
    }
}

fn truncate(mut s: String) -> String {
    const MAX: usize = 4096;
    if s.len() > MAX {
        let mut end = MAX;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
        s.push('…');
    }
    s
}
