//! A Wasm exec: a new instance of the container's own module, or of another `.wasm` in one of its
//! mounted directories named by argv[0], with the exec's argv, the container's env and preopens,
//! its stdio on the descriptors the daemon sent, in the container's cgroup and under its memory
//! cap; stopped by epoch interruption (see [`crate::exec`] for the request and its lifetime).

use std::os::fd::OwnedFd;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, OnceLock};

use tokio::net::unix::pipe;
use wasmtime::component::{Component, Linker as ComponentLinker, ResourceTable};
use wasmtime::{Engine, Linker, Module, Store, UpdateDeadline};
use wasmtime_wasi::cli::{AsyncStdinStream, AsyncStdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::exec::{ExecExit, ExecSpec, KILLED_EXIT_CODE, Stop, TIMED_OUT, TRAP_EXIT_CODE};
use crate::limiter::{MemoryCap, MemoryLimiter};
use crate::protocol::WasmSpec;
pub(crate) struct Stdio {
    pub(crate) stdin: Option<OwnedFd>,
    pub(crate) stdout: Option<OwnedFd>,
    pub(crate) stderr: Option<OwnedFd>,
}

struct P1Host {
    wasi: WasiP1Ctx,
    limiter: MemoryLimiter,
}

struct P2Host {
    ctx: WasiCtx,
    table: ResourceTable,
    limiter: MemoryLimiter,
}

impl WasiView for P2Host {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.ctx,
            table: &mut self.table,
        }
    }
}

/// The linkers, made at the first exec of this shim (one engine per shim).
struct Linkers {
    p1: Linker<P1Host>,
    p2: ComponentLinker<P2Host>,
}

fn linkers(engine: &Engine) -> Result<&'static Linkers, String> {
    static LINKERS: OnceLock<Linkers> = OnceLock::new();
    if let Some(l) = LINKERS.get() {
        return Ok(l);
    }
    let mut p1 = Linker::new(engine);
    wasmtime_wasi::p1::add_to_linker_async(&mut p1, |h: &mut P1Host| &mut h.wasi)
        .map_err(|e| format!("linking WASI p1: {e:#}"))?;
    let mut p2 = ComponentLinker::new(engine);
    wasmtime_wasi::p2::add_to_linker_async(&mut p2)
        .map_err(|e| format!("linking WASI p2: {e:#}"))?;
    Ok(LINKERS.get_or_init(|| Linkers { p1, p2 }))
}

enum Program {
    Module(Module),
    Component(Component),
}

/// The program argv[0] names: a `.wasm` other than the container's own, found through the
/// container's preopens (compiled here), else the container's precompiled module.
fn program(engine: &Engine, container: &WasmSpec, argv0: &str) -> Result<Program, String> {
    let base = |p: &str| Path::new(p).file_name().map(|n| n.to_owned());
    let own = container.args.first().and_then(|a| base(a));
    if argv0.ends_with(".wasm") && base(argv0) != own {
        let host = container.preopens.iter().find_map(|p| {
            let rest = Path::new(argv0).strip_prefix(&p.guest_path).ok()?;
            let path = p.host_path.join(rest);
            path.starts_with(&p.host_path).then_some(path)
        });
        let Some(host) = host.filter(|h| h.is_file()) else {
            return Err(format!(
                "no module {argv0:?} in the container: its own module is {:?}; another must be a .wasm in a mounted directory, named by its path",
                container.args.first().map(String::as_str).unwrap_or("")
            ));
        };
        let bytes = std::fs::read(&host).map_err(|e| format!("reading {}: {e}", host.display()))?;
        return match wasmlet_wasm::detect_kind(&bytes).map_err(|e| format!("{argv0}: {e}"))? {
            wasmlet_wasm::ArtifactKind::Module => Module::new(engine, &bytes).map(Program::Module),
            wasmlet_wasm::ArtifactKind::Component => {
                Component::new(engine, &bytes).map(Program::Component)
            }
        }
        .map_err(|e| format!("compiling {argv0}: {e:#}"));
    }
    if container.component {
        wasmlet_wasm::load_component(engine, &container.artifact)
            .map(Program::Component)
            .map_err(|e| e.to_string())
    } else {
        wasmlet_wasm::load_module(engine, &container.artifact)
            .map(Program::Module)
            .map_err(|e| e.to_string())
    }
}

fn exit(code: i32, reason: &str, message: String) -> ExecExit {
    ExecExit {
        exit_code: code,
        reason: reason.into(),
        message,
    }
}

/// Runs the exec on the calling thread, which first joins the container's cgroup.
pub(crate) fn run_wasm(
    engine: &Engine,
    container: &WasmSpec,
    spec: &ExecSpec,
    stdio: Stdio,
    stop: &Arc<Stop>,
) -> ExecExit {
    for file in &container.cgroup_tasks {
        // SAFETY: gettid has no arguments and cannot fail.
        let tid = unsafe { libc::gettid() };
        if let Err(e) = std::fs::write(file, tid.to_string()) {
            return exit(
                1,
                "Error",
                format!(
                    "moving the exec thread into the container's cgroup ({}): {e}",
                    file.display()
                ),
            );
        }
    }
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return exit(1, "Error", format!("creating the exec's runtime: {e}")),
    };
    let program = match program(engine, container, &spec.argv[0]) {
        Ok(p) => p,
        Err(e) => return exit(127, "Error", e),
    };
    let linkers = match linkers(engine) {
        Ok(l) => l,
        Err(e) => return exit(1, "Error", e),
    };
    let limiter = MemoryLimiter::new(MemoryCap::new(container.memory_limit));
    let outcome = runtime.block_on(async {
        let mut b = match wasi_builder(container, spec, stdio) {
            Ok(b) => b,
            Err(e) => return exit(1, "Error", e),
        };
        let result = match program {
            Program::Module(module) => {
                let mut store = Store::new(
                    engine,
                    P1Host {
                        wasi: b.build_p1(),
                        limiter,
                    },
                );
                store.limiter(|h| &mut h.limiter);
                arm_epoch(&mut store, stop);
                let run = async {
                    let instance = linkers.p1.instantiate_async(&mut store, &module).await?;
                    let start = instance.get_typed_func::<(), ()>(&mut store, "_start")?;
                    start.call_async(&mut store, ()).await.map(|()| 0)
                };
                let r = race(run, stop).await;
                (r, store.data().limiter.exceeded)
            }
            Program::Component(component) => {
                let mut store = Store::new(
                    engine,
                    P2Host {
                        ctx: b.build(),
                        table: ResourceTable::new(),
                        limiter,
                    },
                );
                store.limiter(|h| &mut h.limiter);
                arm_epoch(&mut store, stop);
                let run = async {
                    let command =
                        Command::instantiate_async(&mut store, &component, &linkers.p2).await?;
                    let ok = command.wasi_cli_run().call_run(&mut store).await?;
                    Ok(if ok.is_ok() { 0 } else { 1 })
                };
                let r = race(run, stop).await;
                (r, store.data().limiter.exceeded)
            }
        };
        classify(result.0, result.1, stop)
    });
    drop(runtime);
    outcome
}

fn wasi_builder(
    container: &WasmSpec,
    spec: &ExecSpec,
    stdio: Stdio,
) -> Result<WasiCtxBuilder, String> {
    let mut b = WasiCtxBuilder::new();
    b.args(&spec.argv);
    b.envs(&container.env);
    b.envs(&spec.env);
    let io = |what: &str, e: std::io::Error| format!("the exec's {what}: {e}");
    if let Some(fd) = stdio.stdin {
        b.stdin(AsyncStdinStream::new(
            pipe::Receiver::from_owned_fd(fd).map_err(|e| io("stdin", e))?,
        ));
    }
    // With a terminal, stderr shares stdout (the client has one stream to show).
    let stderr = match (stdio.stderr, &stdio.stdout) {
        (Some(fd), _) => Some(fd),
        (None, Some(out)) if spec.tty => Some(out.try_clone().map_err(|e| io("stdout", e))?),
        (None, _) => None,
    };
    if let Some(fd) = stdio.stdout {
        b.stdout(AsyncStdoutStream::new(
            64 * 1024,
            pipe::Sender::from_owned_fd(fd).map_err(|e| io("stdout", e))?,
        ));
    }
    if let Some(fd) = stderr {
        b.stderr(AsyncStdoutStream::new(
            64 * 1024,
            pipe::Sender::from_owned_fd(fd).map_err(|e| io("stderr", e))?,
        ));
    }
    b.inherit_network();
    b.allow_tcp(true);
    b.allow_udp(true);
    b.allow_ip_name_lookup(true);
    for p in &container.preopens {
        let perms = if p.readonly {
            FsPerms::ReadOnly
        } else {
            FsPerms::ReadWrite
        };
        b.preopened_dir(&p.host_path, &p.guest_path, perms)
            .map_err(|e| {
                format!(
                    "preopening {} at {}: {e:#}",
                    p.host_path.display(),
                    p.guest_path
                )
            })?;
    }
    Ok(b)
}

fn arm_epoch<T: 'static>(store: &mut Store<T>, stop: &Arc<Stop>) {
    let stop = Arc::clone(stop);
    store.set_epoch_deadline(1);
    store.epoch_deadline_callback(move |_| {
        Ok(if stop.stopped() {
            UpdateDeadline::Interrupt
        } else {
            UpdateDeadline::Continue(1)
        })
    });
}

/// Runs `fut` until it ends or the exec is stopped (`None`).
async fn race<F: std::future::Future>(fut: F, stop: &Stop) -> Option<F::Output> {
    if stop.stopped() {
        return None;
    }
    tokio::select! {
        out = fut => Some(out),
        () = stop.wake.notified() => None,
    }
}

fn classify(result: Option<wasmtime::Result<i32>>, oom: bool, stop: &Stop) -> ExecExit {
    let stopped = || match stop.state.load(Ordering::SeqCst) {
        TIMED_OUT => exit(KILLED_EXIT_CODE, "Timeout", "killed at its timeout".into()),
        _ => exit(KILLED_EXIT_CODE, "Killed", "killed".into()),
    };
    match result {
        None => stopped(),
        Some(Ok(0)) => exit(0, "Completed", String::new()),
        Some(Ok(code)) => exit(code, "Error", String::new()),
        Some(Err(e)) => {
            if let Some(code) = e.downcast_ref::<I32Exit>() {
                let reason = if code.0 == 0 { "Completed" } else { "Error" };
                exit(code.0, reason, String::new())
            } else if oom {
                exit(KILLED_EXIT_CODE, "OOMKilled", format!("{e:#}"))
            } else if stop.stopped() {
                stopped()
            } else {
                exit(TRAP_EXIT_CODE, "Error", format!("{e:#}"))
            }
        }
    }
}

