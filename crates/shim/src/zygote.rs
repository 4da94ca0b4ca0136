//! The zygote: a small single-threaded process, forked from the daemon once at start-up, that
//! holds a ready wasmtime engine and linkers and forks a pod's shim on request. A fork is a
//! fraction of a millisecond and shares nearly all memory; an exec of the wasmlet binary costs
//! milliseconds (a 160 MB executable's relocations) plus a new engine.
//!
//! It must stay single-threaded (fork copies only the calling thread): no async runtime and no
//! compile threads here. It dies with the daemon (PR_SET_PDEATHSIG); the shims it forked do not,
//! and a restarted daemon forks a new zygote.
//!
//! Protocol, over a socketpair: the daemon writes one JSON [`SpawnRequest`] line, the zygote
//! answers one JSON [`SpawnReply`] line once the shim's socket is bound and listening.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};

use crate::executor::Executor;
use crate::protocol::socket_path;
use crate::server::{ShimOptions, serve_with};
use crate::Error;

#[derive(Debug, Serialize, Deserialize)]
struct SpawnRequest {
    sandbox_id: String,
    dir: PathBuf,
    netns: Option<PathBuf>,
    /// A cgroup v2 directory to fork the shim straight into (`CLONE_INTO_CGROUP`).
    #[serde(default)]
    cgroup: Option<PathBuf>,
    /// Artifacts for the zygote to map and link once it has answered, so that the shims it
    /// forks from then on have them ready (see [`crate::preloaded`]).
    #[serde(default)]
    preload: Vec<Preload>,
}

/// An artifact to preload: its path and whether it is a component.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Preload {
    artifact: PathBuf,
    component: bool,
}

#[derive(Debug, Serialize, Deserialize)]
enum SpawnReply {
    /// `placed`: the shim was born in the requested cgroup (no migration needed).
    Spawned {
        pid: u32,
        #[serde(default)]
        placed: bool,
    },
    Failed {
        message: String,
    },
}

/// A shim the zygote forked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Spawned {
    pub pid: u32,
    /// Whether it was born in the cgroup asked for; if not, the caller moves it.
    pub placed: bool,
}

/// The daemon's handle on its zygote.
pub struct Zygote {
    pid: u32,
    conn: tokio::sync::Mutex<Option<(tokio::io::BufReader<tokio::net::unix::OwnedReadHalf>, tokio::net::unix::OwnedWriteHalf)>>,
    std_conn: std::sync::Mutex<Option<UnixStream>>,
    /// Artifacts asked for with [`Zygote::preload`], and those not yet sent with a request.
    preloads: std::sync::Mutex<(std::collections::HashSet<PathBuf>, Vec<Preload>)>,
}

impl Zygote {
    /// Forks the zygote. Call while the process is still single-threaded (before any runtime).
    pub fn start() -> Result<Zygote, Error> {
        let (daemon_end, zygote_end) = UnixStream::pair().map_err(Error::io("socketpair", "zygote"))?;
        // SAFETY: the caller guarantees the process is single-threaded, so the child may run
        // arbitrary code after fork.
        let daemon_pid = unsafe { libc::getpid() };
        match unsafe { libc::fork() } {
            -1 => Err(Error::Spawn(format!("forking the zygote: {}", std::io::Error::last_os_error()))),
            0 => {
                drop(daemon_end);
                // SAFETY: plain syscalls.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != daemon_pid {
                        libc::_exit(0);
                    }
                }
                zygote_main(zygote_end)
            }
            pid => {
                drop(zygote_end);
                Ok(Zygote {
                    pid: pid as u32,
                    conn: tokio::sync::Mutex::new(None),
                    std_conn: std::sync::Mutex::new(Some(daemon_end)),
                    preloads: std::sync::Mutex::new(Default::default()),
                })
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// Asks the zygote to map and link the artifact at `artifact` (once per path), so that the
    /// shims it forks later create containers of it without loading it: the request goes with
    /// the next spawn, and the zygote loads it after answering that one.
    pub fn preload(&self, artifact: &Path, component: bool) {
        let mut guard = self.preloads.lock().unwrap_or_else(|e| e.into_inner());
        let (asked, pending) = &mut *guard;
        if !asked.contains(artifact) {
            asked.insert(artifact.to_owned());
            pending.push(Preload { artifact: artifact.to_owned(), component });
        }
    }

    /// Has the zygote fork a shim for `sandbox_id` serving in `dir`; returns its pid once its
    /// socket is listening.
    pub async fn spawn(&self, sandbox_id: &str, dir: &Path) -> Result<u32, Error> {
        self.spawn_in(sandbox_id, dir, None, None).await.map(|s| s.pid)
    }

    /// [`Zygote::spawn`], with the shim in a new network namespace pinned at `netns`, and born in
    /// the cgroup v2 directory `cgroup` when given (and the kernel has `CLONE_INTO_CGROUP`):
    /// moving a process into a cgroup afterwards takes the kernel's global threadgroup lock for
    /// writing, which can wait for an RCU grace period; being born there does not.
    pub async fn spawn_in(&self, sandbox_id: &str, dir: &Path, netns: Option<&Path>, cgroup: Option<&Path>) -> Result<Spawned, Error> {
        let mut guard = self.conn.lock().await;
        if guard.is_none() {
            let std_conn = self.std_conn.lock().unwrap_or_else(|e| e.into_inner()).take();
            let std_conn = std_conn.ok_or_else(|| Error::Spawn("the zygote connection is gone".into()))?;
            std_conn.set_nonblocking(true).map_err(Error::io("zygote socket", "zygote"))?;
            let stream = tokio::net::UnixStream::from_std(std_conn).map_err(Error::io("zygote socket", "zygote"))?;
            let (read, write) = stream.into_split();
            *guard = Some((tokio::io::BufReader::new(read), write));
        }
        let Some((read, write)) = guard.as_mut() else { unreachable!("set above") };
        let preload = std::mem::take(&mut self.preloads.lock().unwrap_or_else(|e| e.into_inner()).1);
        let request = SpawnRequest {
            sandbox_id: sandbox_id.into(),
            dir: dir.to_owned(),
            netns: netns.map(Path::to_owned),
            cgroup: cgroup.map(Path::to_owned),
            preload,
        };
        let mut line = serde_json::to_vec(&request)
            .map_err(|e| Error::Protocol(e.to_string()))?;
        line.push(b'\n');
        let broken = |e: std::io::Error| Error::Spawn(format!("the zygote is gone: {e}"));
        write.write_all(&line).await.map_err(broken)?;
        let mut reply = String::new();
        if read.read_line(&mut reply).await.map_err(broken)? == 0 {
            return Err(Error::Spawn("the zygote is gone".into()));
        }
        match serde_json::from_str(&reply).map_err(|e| Error::Protocol(format!("zygote reply: {e}")))? {
            SpawnReply::Spawned { pid, placed } => Ok(Spawned { pid, placed }),
            SpawnReply::Failed { message } => Err(Error::Spawn(message)),
        }
    }
}

fn zygote_main(conn: UnixStream) -> ! {
    // Children are reaped by the kernel; each shim resets this for itself.
    // SAFETY: setting a signal disposition.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_IGN);
    }
    let _ = std::env::set_current_dir("/");
    crate::server::one_malloc_arena();
    crate::proc_title::set("wasmlet zygote");
    let executor = Executor::new();
    // Reads through a borrow, not a clone: a cloned descriptor would be inherited by every shim
    // (the child closes only `conn`'s).
    let mut reader = BufReader::new(&conn);
    let mut line = String::new();
    // One shim forked ahead once pods are being started without a cgroup to be born in (v1, or
    // no cgroups): made right after answering, while the daemon finishes that pod.
    let mut spare: Option<Spare> = None;
    loop {
        line.clear();
        match reader.read_line(&mut line) {
            Ok(0) | Err(_) => std::process::exit(0),
            Ok(_) => {}
        }
        let mut wants_spare = false;
        let mut preload = Vec::new();
        // The next spare makes a network namespace ahead if this pod wanted one.
        let mut wants_netns = false;
        let reply = match (serde_json::from_str::<SpawnRequest>(&line), &executor) {
            (Err(e), _) => SpawnReply::Failed { message: format!("bad spawn request: {e}") },
            (Ok(_), Err(e)) => SpawnReply::Failed { message: format!("the zygote has no engine: {e}") },
            (Ok(mut req), Ok(executor)) => {
                wants_spare = req.cgroup.is_none();
                wants_netns = req.netns.is_some();
                preload = std::mem::take(&mut req.preload);
                match fork_shim(req, executor, &conn, &mut spare) {
                    Ok(Spawned { pid, placed }) => SpawnReply::Spawned { pid, placed },
                    Err(e) => SpawnReply::Failed { message: e.to_string() },
                }
            }
        };
        let mut out = serde_json::to_vec(&reply).unwrap_or_default();
        out.push(b'\n');
        if (&conn).write_all(&out).is_err() {
            std::process::exit(0);
        }
        // Before the next spare: it inherits them.
        if let Ok(executor) = &executor {
            for p in preload {
                if let Err(e) = executor.preload(&p.artifact, p.component) {
                    tracing::debug!(artifact = %p.artifact.display(), error = %e, "preloading an artifact");
                }
            }
        }
        if wants_spare
            && spare.is_none()
            && let Ok(executor) = &executor
        {
            match Spare::fork(executor, &conn, wants_netns) {
                Ok(s) => spare = Some(s),
                Err(e) => tracing::debug!(error = %e, "forking a spare shim"),
            }
        }
    }
}

/// Starts a shim for `req`: hands it to the spare if there is one and no cgroup v2 directory
/// was asked for (a spare was forked before the cgroup existed), else forks (into that cgroup
/// when it can). Either way the shim's socket is listening before this returns.
fn fork_shim(req: SpawnRequest, executor: &Executor, conn: &UnixStream, spare: &mut Option<Spare>) -> Result<Spawned, Error> {
    if req.cgroup.is_none()
        && let Some(s) = spare.take()
    {
        match s.assign(&req) {
            Ok(pid) => return Ok(Spawned { pid, placed: false }),
            Err(e) => tracing::warn!(error = %e, "the spare shim failed; forking one"),
        }
    }
    let (report_read, report_write) = std::io::pipe().map_err(Error::io("pipe", "zygote"))?;
    let (forked, placed) = fork_into(req.cgroup.as_deref());
    match forked {
        -1 => Err(Error::Spawn(format!("fork: {}", std::io::Error::last_os_error()))),
        0 => {
            // SAFETY: closing this process's copy of the zygote's socket.
            unsafe {
                libc::close(conn.as_raw_fd());
            }
            drop(report_read);
            become_shim(req, executor, report_write, None)
        }
        pid => {
            drop(report_write);
            read_report(report_read).map(|()| Spawned { pid: pid as u32, placed })
        }
    }
}

/// Reads a starting shim's report: empty (the pipe closed without a word) means listening.
fn read_report(report: std::io::PipeReader) -> Result<(), Error> {
    let mut text = String::new();
    let _ = std::io::Read::read_to_string(&mut &report, &mut text);
    if text.is_empty() { Ok(()) } else { Err(Error::Spawn(text)) }
}

/// The forked child's side: enters the pod's new network namespace if asked (pinning the one a
/// spare made ahead, `fresh`, or making it; a pod on the node's network leaves `fresh`), makes
/// the shim's directory, log and socket, leaves the zygote's session, reports through `report`
/// (closing it empty means ready) and serves until shut down.
fn become_shim(req: SpawnRequest, executor: &Executor, report: std::io::PipeWriter, fresh: Option<crate::netns::Fresh>) -> ! {
    let fail = |e: Error| -> ! {
        let _ = (&report).write_all(crate::error::chain(&e).as_bytes());
        std::process::exit(1)
    };
    // First: the socket below belongs to the namespace it is made in, and would keep a fresh
    // one alive for a pod on the node's network.
    let entered = match (&req.netns, fresh) {
        (Some(pin), Some(fresh)) => fresh.pin(pin),
        (Some(pin), None) => crate::netns::enter_new(pin),
        (None, Some(fresh)) => fresh.leave().map_err(Error::io("returning to the node's network namespace", &req.dir)),
        (None, None) => Ok(()),
    };
    if let Err(e) = entered {
        fail(e);
    }
    if let Err(e) = std::fs::create_dir_all(&req.dir) {
        fail(Error::io("creating shim directory", &req.dir)(e));
    }
    let log_path = req.dir.join("shim.log");
    let log = match std::fs::OpenOptions::new().create(true).append(true).open(&log_path) {
        Ok(f) => f,
        Err(e) => fail(Error::io("opening shim log", &log_path)(e)),
    };
    let sock = socket_path(&req.dir);
    let _ = std::fs::remove_file(&sock);
    let listener = match UnixListener::bind(&sock) {
        Ok(l) => l,
        Err(e) => fail(Error::io("binding", &sock)(e)),
    };
    // SAFETY: syscalls on this process's own descriptors and signal dispositions.
    unsafe {
        libc::signal(libc::SIGCHLD, libc::SIG_DFL);
        libc::setsid();
        libc::dup2(log.as_raw_fd(), 2);
        if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
    drop(log);
    drop(report);
    crate::proc_title::set(&format!("wasmlet shim --sandbox-id {} --dir {}", req.sandbox_id, req.dir.display()));
    let opts = ShimOptions { sandbox_id: req.sandbox_id, dir: req.dir, netns: req.netns };
    let code = match serve_with(executor.clone(), opts, listener) {
        Ok(()) => 0,
        Err(e) => {
            tracing::error!(error = %e, "shim failed");
            1
        }
    };
    std::process::exit(code)
}

/// A shim forked ahead of time, waiting for its pod: the fork (copying the zygote's page tables)
/// leaves the start path, which then costs a pipe write and the set-up of [`become_shim`].
/// Unassigned, it dies with the zygote (PR_SET_PDEATHSIG).
struct Spare {
    pid: u32,
    /// Where its [`SpawnRequest`] goes (one JSON line).
    assign: std::io::PipeWriter,
    report: std::io::PipeReader,
}

impl Spare {
    /// Forks a spare; with `netns`, it makes a network namespace while it waits (see
    /// [`crate::netns::Fresh`]). Call from the zygote's loop only (single-threaded).
    fn fork(executor: &Executor, conn: &UnixStream, netns: bool) -> Result<Spare, Error> {
        let (assign_read, assign) = std::io::pipe().map_err(Error::io("pipe", "zygote"))?;
        let (report, report_write) = std::io::pipe().map_err(Error::io("pipe", "zygote"))?;
        // SAFETY: plain syscall.
        let zygote = unsafe { libc::getpid() };
        // SAFETY: the zygote is single-threaded.
        match unsafe { libc::fork() } {
            -1 => Err(Error::Spawn(format!("fork: {}", std::io::Error::last_os_error()))),
            0 => {
                // SAFETY: this process's own descriptors and parent-death signal.
                unsafe {
                    libc::close(conn.as_raw_fd());
                    libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                    if libc::getppid() != zygote {
                        libc::_exit(0);
                    }
                }
                drop((assign, report));
                crate::proc_title::set("wasmlet shim (spare)");
                let fresh = match netns {
                    true => idle_priority(|| crate::netns::Fresh::make())
                        .inspect_err(|e| tracing::debug!(error = %e, "making a network namespace ahead"))
                        .ok(),
                    false => None,
                };
                let mut line = String::new();
                match BufReader::new(assign_read).read_line(&mut line) {
                    Ok(n) if n > 0 => {}
                    _ => std::process::exit(0), // the zygote went away, or retired it
                }
                let req: SpawnRequest = match serde_json::from_str(&line) {
                    Ok(r) => r,
                    Err(e) => {
                        let _ = (&report_write).write_all(format!("bad spawn request: {e}").as_bytes());
                        std::process::exit(1)
                    }
                };
                // Assigned: from now on it outlives the zygote and the daemon, like any shim.
                // SAFETY: plain syscall.
                unsafe {
                    libc::prctl(libc::PR_SET_PDEATHSIG, 0);
                }
                become_shim(req, executor, report_write, fresh)
            }
            pid => Ok(Spare { pid: pid as u32, assign, report }),
        }
    }

    /// Hands the spare its pod; returns its pid once its socket is listening.
    fn assign(self, req: &SpawnRequest) -> Result<u32, Error> {
        let mut line = serde_json::to_vec(req).map_err(|e| Error::Protocol(e.to_string()))?;
        line.push(b'\n');
        (&self.assign).write_all(&line).map_err(|e| Error::Spawn(format!("the spare shim {} is gone: {e}", self.pid)))?;
        drop(self.assign);
        read_report(self.report).map(|()| self.pid)
    }
}

/// Runs `f` under `SCHED_IDLE`, then back under `SCHED_OTHER`: work a spare does ahead (its
/// network namespace, ≈ 0.3 ms of kernel time) waits for a core nothing else wants, instead of
/// slowing the pod being started meanwhile.
fn idle_priority<T>(f: impl FnOnce() -> T) -> T {
    let param = libc::sched_param { sched_priority: 0 };
    // SAFETY: sched_setscheduler on this process with a valid parameter.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_IDLE, &param);
    }
    let out = f();
    // SAFETY: as above.
    unsafe {
        libc::sched_setscheduler(0, libc::SCHED_OTHER, &param);
    }
    out
}

/// Forks this (single-threaded) process, the child born in the cgroup v2 directory `cgroup` if
/// given and the kernel allows (`clone3` with `CLONE_INTO_CGROUP`, Linux 5.7); otherwise a plain
/// fork. Returns fork's result and whether the child was placed.
fn fork_into(cgroup: Option<&Path>) -> (libc::pid_t, bool) {
    if let Some(dir) = cgroup {
        match std::fs::File::open(dir) {
            Ok(dir_fd) => {
                let mut args = CloneArgs { flags: CLONE_INTO_CGROUP, exit_signal: libc::SIGCHLD as u64, cgroup: dir_fd.as_raw_fd() as u64, ..CloneArgs::default() };
                // SAFETY: clone3 without CLONE_VM and without a new stack is fork with more
                // arguments; the zygote is single-threaded, so the child may run anything. (glibc
                // keeps the parent's tid in the child's thread descriptor, which only matters for
                // pthread_kill of the main thread by tid; raise() asks the kernel for its tid.)
                let pid = unsafe { libc::syscall(libc::SYS_clone3, &mut args as *mut CloneArgs, std::mem::size_of::<CloneArgs>()) };
                if pid >= 0 {
                    return (pid as libc::pid_t, true);
                }
                tracing::debug!(cgroup = %dir.display(), error = %std::io::Error::last_os_error(), "clone3 into the cgroup; forking instead");
            }
            Err(e) => tracing::debug!(cgroup = %dir.display(), error = %e, "opening the cgroup to fork into; forking instead"),
        }
    }
    // SAFETY: the zygote is single-threaded.
    (unsafe { libc::fork() }, false)
}

/// `CLONE_INTO_CGROUP` (include/uapi/linux/sched.h).
const CLONE_INTO_CGROUP: u64 = 0x200000000;

/// `struct clone_args` up to `cgroup` (CLONE_ARGS_SIZE_VER2, 88 bytes).
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}
