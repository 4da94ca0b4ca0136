//! Runs one Wasm container to completion on the calling thread: WASI preview 1 for core modules
//! (`_start`), WASI 0.2 for components (`wasi:cli/run`). Linking happens once, at create
//! ([`Executor::prepare`] returns an `InstancePre`); start only instantiates and calls.
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

/// The engine and the two linkers, made once per shim (or once per zygote, shared by fork).
#[derive(Clone)]
pub(crate) struct Executor {
    engine: Engine,
    p1: Linker<P1Host>,
    p2: ComponentLinker<P2Host>,
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
        Ok(Executor { engine, p1, p2 })
    }

    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Maps the precompiled artifact and links it (never compiles).
    pub fn prepare(&self, spec: &WasmSpec) -> Result<Prepared, String> {
        if spec.component {
            let component = wasmlet_wasm::load_component(&self.engine, &spec.artifact).map_err(|e| e.to_string())?;
            if crate::http_handler::exports_handler(&self.engine, &component) {
                return crate::http_handler::prepare(&self.engine, spec, &component).map(Prepared::Http);
            }
            let pre = self.p2.instantiate_pre(&component).map_err(|e| format!("linking component: {e:#}"))?;
            let pre = CommandPre::new(pre)
                .map_err(|e| format!("the component does not export wasi:cli/run: {e:#}"))?;
            Ok(Prepared::Component(pre))
        } else {
            let module = wasmlet_wasm::load_module(&self.engine, &spec.artifact).map_err(|e| e.to_string())?;
            if module.get_export("_start").is_none() {
                return Err("the module exports no _start function (not a WASI command)".into());
            }
            let pre = self.p1.instantiate_pre(&module).map_err(|e| format!("linking module: {e:#}"))?;
            Ok(Prepared::Module(pre))
        }
    }

    /// Runs the container to its end. Blocks the calling thread, which first moves itself into
    /// the container's cgroup (`spec.cgroup_tasks`), so threads it starts inherit it.
    pub fn run(
        &self,
        prepared: Prepared,
        spec: &WasmSpec,
        log: Option<Arc<CriLog>>,
        stdin: Option<Arc<ContainerStdin>>,
        stop: StopHandle,
        cap: Arc<MemoryCap>,
    ) -> Outcome {
        if let Err(e) = join_cgroup(&spec.cgroup_tasks) {
            return Outcome::error(1, e);
        }
        let prepared = match prepared {
            Prepared::Http(http) => {
                let outcome = crate::http_handler::serve(http, spec, log.clone(), stop, cap);
                if let Some(log) = &log {
                    log.close(outcome.exit_code);
                }
                return outcome;
            }
            other => other,
        };
        let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
            Ok(rt) => rt,
            Err(e) => return Outcome::error(1, format!("creating the guest's runtime: {e}")),
        };
        let limiter = MemoryLimiter::new(cap);
        let builder = {
            // The stdin pipe registers with this runtime's reactor.
            let _rt = runtime.enter();
            match wasi_builder(spec, &log).and_then(|b| with_stdin(b, stdin.as_deref())) {
                Ok(b) => b,
                Err(e) => return Outcome::error(1, e),
            }
        };
        let outcome = runtime.block_on(async {
            match prepared {
                Prepared::Module(pre) => {
                    let mut builder = builder;
                    let host = P1Host { wasi: builder.build_p1(), limiter };
                    let mut store = Store::new(&self.engine, host);
                    store.limiter(|h| &mut h.limiter);
                    arm_epoch(&mut store, &stop);
                    let result = {
                        let run = async {
                            let instance = pre.instantiate_async(&mut store).await?;
                            let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                            start.call_async(&mut store, ()).await
                        };
                        race(run, &stop).await
                    };
                    classify(result.map(|r| r.map(|()| 0)), store.data().limiter.exceeded, &stop)
                }
                Prepared::Component(pre) => {
                    let mut builder = builder;
                    let host = P2Host { ctx: builder.build(), table: ResourceTable::new(), limiter };
                    let mut store = Store::new(&self.engine, host);
                    store.limiter(|h| &mut h.limiter);
                    arm_epoch(&mut store, &stop);
                    let result = {
                        let run = async {
                            let command = pre.instantiate_async(&mut store).await?;
                            let ok = command.wasi_cli_run().call_run(&mut store).await?;
                            Ok(if ok.is_ok() { 0 } else { 1 })
                        };
                        race(run, &stop).await
                    };
                    classify(result, store.data().limiter.exceeded, &stop)
                }
                Prepared::Http(_) => unreachable!("served above"),
            }
        });
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
    for file in files {
        std::fs::write(file, tid.to_string())
            .map_err(|e| format!("moving the container thread {tid} into its cgroup: writing {}: {e}", file.display()))?;
    }
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
