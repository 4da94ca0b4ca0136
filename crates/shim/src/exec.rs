//! Exec in a running container. The request ([`ExecSpec`]: argv, env, tty and terminal size,
//! which stdio streams, a timeout) travels as a [`crate::protocol::Request::Exec`] line with the
//! exec's stdio as file descriptors attached to it (SCM_RIGHTS, in the order stdin, stdout,
//! stderr), so the same request carries a Wasm exec and a Linux one. The shim answers `Ok` once
//! the exec runs, then `ExecExited` when it ends; the daemon closing the connection kills it, as
//! do its timeout and its container's exit.
//!
//! A Wasm exec is a new instance of the container's own module (or of another `.wasm` in one of
//! its mounted directories, named by argv[0]) with the exec's argv, the container's env and
//! preopens, in the container's cgroup and under its memory cap, stopped by epoch interruption.
//! The daemon's side ([`ShimClient::exec`]) makes the pipes and keeps their other ends.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::unix::pipe;
use tokio::sync::Notify;
use wasmtime::component::{Component, Linker as ComponentLinker, ResourceTable};
use wasmtime::{Engine, Linker, Module, Store, UpdateDeadline};
use wasmtime_wasi::cli::{AsyncStdinStream, AsyncStdoutStream};
use wasmtime_wasi::p1::WasiP1Ctx;
use wasmtime_wasi::p2::bindings::Command;
use wasmtime_wasi::{FsPerms, I32Exit, WasiCtx, WasiCtxBuilder, WasiCtxView, WasiView};

use crate::Error;
use crate::client::ShimClient;
use crate::limiter::{MemoryCap, MemoryLimiter};
use crate::protocol::{RemoteError, Request, Response, WasmSpec};

/// A process to run in a container.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecSpec {
    /// argv; argv[0] names the program (for Wasm: a `.wasm` in a mounted directory, else the
    /// container's own module).
    pub argv: Vec<String>,
    /// Set on top of the container's environment.
    pub env: Vec<(String, String)>,
    /// Whether the client has a terminal (Linux: a pty; Wasm: stderr joins stdout).
    pub tty: bool,
    /// The terminal's first size, when `tty`.
    pub terminal: Option<TerminalSize>,
    /// Which stdio descriptors come with the request, in this order.
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    /// Killed after this long (ExecSync's timeout); `None` runs until it ends or the daemon hangs up.
    pub timeout_ms: Option<u64>,
    /// Attach to the container's own process instead of running `argv` (CRI Attach).
    #[serde(default)]
    pub attach: bool,
}

#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct TerminalSize {
    pub width: u16,
    pub height: u16,
}

/// How an exec ended.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ExecExit {
    pub exit_code: i32,
    /// `Completed`, `Error`, `OOMKilled`, `Timeout` (killed at its deadline) or `Killed`.
    pub reason: String,
    pub message: String,
}

/// Exit code of a trapped guest (128 + SIGABRT) and of a killed one (128 + SIGKILL), as the
/// executor reports containers.
const TRAP_EXIT_CODE: i32 = 134;
const KILLED_EXIT_CODE: i32 = 137;

/// What an exec in a container runs against, from the supervisor.
pub(crate) enum ExecTarget {
    Wasm {
        engine: Engine,
        spec: WasmSpec,
        /// The container's output and stdin, for an attach.
        log: Option<Arc<crate::cri_log::CriLog>>,
        stdin: Option<Arc<crate::container_stdin::ContainerStdin>>,
    },
    /// A Linux container: its exec is a process made by libcontainer in the container's
    /// namespaces and cgroup (see [`crate::linux::exec`]).
    Linux(Arc<crate::linux::process::LinuxContainer>),
}

fn pipe() -> std::io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0; 2];
    // SAFETY: pipe2 writes two descriptors into fds.
    if unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) } < 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both are fresh descriptors we own.
    Ok(unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) })
}

// ---------------------------------------------------------------------------------------------
// The daemon's side.

/// The daemon's ends of an exec's stdio.
#[derive(Debug, Default)]
pub struct ExecPipes {
    pub stdin: Option<pipe::Sender>,
    pub stdout: Option<pipe::Receiver>,
    pub stderr: Option<pipe::Receiver>,
}

/// A running exec; dropping it hangs up, which kills the exec.
#[derive(Debug)]
pub struct ExecSession {
    lines: tokio::io::Lines<tokio::io::BufReader<tokio::net::UnixStream>>,
}

impl ExecSession {
    /// Waits for the exec to end.
    pub async fn wait(mut self) -> Result<ExecExit, Error> {
        match next_response(&mut self.lines).await? {
            Response::ExecExited(exit) => Ok(exit),
            Response::Error(e) => Err(Error::Remote(e)),
            other => Err(Error::Protocol(format!("unexpected response {other:?}"))),
        }
    }
}

async fn next_response(
    lines: &mut tokio::io::Lines<tokio::io::BufReader<tokio::net::UnixStream>>,
) -> Result<Response, Error> {
    let line = lines
        .next_line()
        .await
        .map_err(|e| Error::Protocol(format!("reading from the shim: {e}")))?
        .ok_or_else(|| {
            Error::Protocol("the shim closed the exec connection without answering".into())
        })?;
    serde_json::from_str(&line).map_err(|e| Error::Protocol(format!("bad response: {e}")))
}

impl ShimClient {
    /// Starts `spec` in container `id` with new pipes for the streams it asks for; returns once
    /// the shim runs it (a refusal, e.g. an unknown container, is the error).
    pub async fn exec(
        &self,
        id: &str,
        exec_id: &str,
        spec: ExecSpec,
    ) -> Result<(ExecSession, ExecPipes), Error> {
        use tokio::io::AsyncBufReadExt;
        let io = |op| {
            move |e: std::io::Error| Error::Io {
                op,
                path: PathBuf::from("pipe"),
                source: e,
            }
        };
        let mut pipes = ExecPipes::default();
        let mut theirs = Vec::new();
        if spec.stdin {
            let (r, w) = pipe().map_err(io("creating the stdin pipe"))?;
            pipes.stdin =
                Some(pipe::Sender::from_owned_fd(w).map_err(io("registering the stdin pipe"))?);
            theirs.push(r);
        }
        for (wanted, slot) in [
            (spec.stdout, &mut pipes.stdout),
            (spec.stderr, &mut pipes.stderr),
        ] {
            if wanted {
                let (r, w) = pipe().map_err(io("creating an output pipe"))?;
                *slot = Some(
                    pipe::Receiver::from_owned_fd(r).map_err(io("registering an output pipe"))?,
                );
                theirs.push(w);
            }
        }
        let socket = self.socket_path();
        let mut stream = tokio::net::UnixStream::connect(&socket)
            .await
            .map_err(|source| Error::Unreachable {
                path: socket.to_owned(),
                source,
            })?;
        let request = Request::Exec {
            id: id.into(),
            exec_id: exec_id.into(),
            spec,
        };
        let mut line = serde_json::to_vec(&request).map_err(|e| Error::Protocol(e.to_string()))?;
        line.push(b'\n');
        let raw: Vec<RawFd> = theirs.iter().map(|f| f.as_raw_fd()).collect();
        crate::fd_passing::send_with_fds(&mut stream, &line, &raw)
            .await
            .map_err(|source| Error::Unreachable {
                path: socket.to_owned(),
                source,
            })?;
        // The shim has its copies now.
        drop(theirs);
        let mut lines = tokio::io::BufReader::new(stream).lines();
        match next_response(&mut lines).await? {
            Response::Ok => Ok((ExecSession { lines }, pipes)),
            Response::Error(e) => Err(Error::Remote(e)),
            other => Err(Error::Protocol(format!("unexpected response {other:?}"))),
        }
    }

    /// Tells exec `exec_id` its terminal's new size.
    pub async fn exec_resize(&self, exec_id: &str, size: TerminalSize) -> Result<(), Error> {
        self.call(&Request::ExecResize {
            exec_id: exec_id.into(),
            size,
        })
        .await
        .map(drop)
    }
}

// ---------------------------------------------------------------------------------------------
// The shim's side.

/// Why an exec is being stopped.
const RUNNING: u8 = 0;
const FINISHED: u8 = 1;
pub(crate) const TIMED_OUT: u8 = 2;
pub(crate) const KILLED: u8 = 3;

/// Stops one exec: a flag its epoch callback reads, the engine's epoch bumped so a guest in a
/// loop notices, and a wake-up for a guest waiting in a host call.
struct Stop {
    state: AtomicU8,
    wake: Notify,
    engine: Engine,
}

impl Stop {
    fn kill(&self, why: u8) {
        if self
            .state
            .compare_exchange(RUNNING, why, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
        {
            self.wake.notify_one();
            self.engine.increment_epoch();
        }
    }

    fn stopped(&self) -> bool {
        matches!(self.state.load(Ordering::SeqCst), TIMED_OUT | KILLED)
    }
}

/// Execs running in this shim, by exec id, with their container.
fn running() -> &'static Mutex<HashMap<String, (String, Arc<Stop>)>> {
    static RUNNING_EXECS: OnceLock<Mutex<HashMap<String, (String, Arc<Stop>)>>> = OnceLock::new();
    RUNNING_EXECS.get_or_init(Default::default)
}

/// Kills every exec of a container that exited (a hook of the supervisor).
pub(crate) fn container_exited(container_id: &str) {
    let execs = running().lock().unwrap_or_else(|e| e.into_inner());
    for (exec_id, (id, stop)) in execs.iter() {
        if id == container_id {
            tracing::info!(container.id = %id, exec.id = %exec_id, "container exited: killing its exec");
            stop.kill(KILLED);
        }
    }
}

/// `ExecResize` of an exec or attach: a Wasm guest has no terminal, so there is nothing to tell it.
pub(crate) fn resize(exec_id: &str, size: TerminalSize) -> Response {
    if crate::linux::terminal::resize(exec_id, size) {
        return Response::Ok;
    }
    if running()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .contains_key(exec_id)
    {
        Response::Ok
    } else {
        Response::Error(RemoteError::NotFound(format!(
            "exec {exec_id} is not running in this shim"
        )))
    }
}

pub(crate) fn respond(mut conn: &UnixStream, response: &Response) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    conn.write_all(&bytes)
}

/// Serves one `Exec` request on its connection, until the exec ends.
pub(crate) fn serve(
    conn: UnixStream,
    target: Result<ExecTarget, RemoteError>,
    id: String,
    exec_id: String,
    spec: ExecSpec,
    fds: Vec<OwnedFd>,
) -> std::io::Result<()> {
    let wanted = [spec.stdin, spec.stdout, spec.stderr]
        .iter()
        .filter(|w| **w)
        .count();
    if fds.len() != wanted || (spec.argv.is_empty() && !spec.attach) {
        let msg = format!(
            "exec wants {wanted} stdio descriptors and an argv; {} came, argv {:?}",
            fds.len(),
            spec.argv
        );
        return respond(&conn, &Response::Error(RemoteError::InvalidArgument(msg)));
    }
    let (engine, container) = match target {
        Ok(ExecTarget::Wasm { spec: container, log, stdin, .. }) if spec.attach => {
            let Some(log) = log else {
                let msg = format!("container {id} keeps no output to attach to");
                return respond(&conn, &Response::Error(RemoteError::Internal(msg)));
            };
            let target = crate::attach::Target { log, stdin, tty: container.tty, terminal: None };
            return crate::attach::serve(conn, target, &id, &exec_id, &spec, fds);
        }
        Ok(ExecTarget::Wasm { engine, spec, .. }) => (engine, spec),
        Ok(ExecTarget::Linux(container)) => {
            return crate::linux::exec::serve(conn, &container, &id, &exec_id, &spec, fds);
        }
        Err(e) => return respond(&conn, &Response::Error(e)),
    };
    let mut fds = fds.into_iter();
    let stdin = spec.stdin.then(|| fds.next()).flatten();
    let stdout = spec.stdout.then(|| fds.next()).flatten();
    let stderr = spec.stderr.then(|| fds.next()).flatten();
    let stop = Arc::new(Stop {
        state: AtomicU8::new(RUNNING),
        wake: Notify::new(),
        engine: engine.clone(),
    });
    let start = Instant::now();
    // A daemon that already hung up gets nothing run.
    respond(&conn, &Response::Ok)?;
    running()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .insert(exec_id.clone(), (id.clone(), Arc::clone(&stop)));
    let killer = Arc::clone(&stop);
    let watcher = watch(
        conn.try_clone()?,
        spec.timeout_ms.map(Duration::from_millis),
        move |why| killer.kill(why),
    );
    let exit = run_wasm(
        &engine,
        &container,
        &spec,
        Stdio {
            stdin,
            stdout,
            stderr,
        },
        &stop,
    );
    running()
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .remove(&exec_id);
    let _ = stop
        .state
        .compare_exchange(RUNNING, FINISHED, Ordering::SeqCst, Ordering::SeqCst);
    let _ = conn.shutdown(std::net::Shutdown::Read);
    let _ = watcher.join();
    tracing::info!(container.id = %id, exec.id = %exec_id, exit_code = exit.exit_code, reason = %exit.reason, exec.us = start.elapsed().as_micros() as u64, "exec ended");
    respond(&conn, &Response::ExecExited(exit))
}

/// Watches the daemon's end: a hang-up kills the exec (`kill(KILLED)`), and so does the timeout
/// (`kill(TIMED_OUT)`). Returns once either happened or the connection's read side is shut down.
pub(crate) fn watch(
    conn: UnixStream,
    timeout: Option<Duration>,
    kill: impl Fn(u8) + Send + 'static,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        let deadline = timeout.map(|t| Instant::now() + t);
        let mut buf = [0u8; 64];
        loop {
            let left = deadline.map(|d| {
                d.saturating_duration_since(Instant::now())
                    .max(Duration::from_millis(1))
            });
            let _ = conn.set_read_timeout(left);
            match (&conn).read(&mut buf) {
                Ok(0) => return kill(KILLED),
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    if deadline.is_some_and(|d| Instant::now() >= d) {
                        return kill(TIMED_OUT);
                    }
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => return kill(KILLED),
            }
        }
    })
}

struct Stdio {
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
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
fn run_wasm(
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_exec_request_round_trips() {
        let spec = ExecSpec {
            argv: vec!["app".into(), "--version".into()],
            tty: true,
            terminal: Some(TerminalSize {
                width: 80,
                height: 24,
            }),
            stdout: true,
            timeout_ms: Some(5000),
            ..Default::default()
        };
        let line = serde_json::to_string(&Request::Exec {
            id: "c".into(),
            exec_id: "e".into(),
            spec: spec.clone(),
        })
        .unwrap();
        assert!(
            matches!(serde_json::from_str(&line).unwrap(), Request::Exec { spec: s, .. } if s == spec)
        );
    }
}
