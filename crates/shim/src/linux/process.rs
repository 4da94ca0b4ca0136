//! One Linux container inside the shim: created by exec'ing the `linux-create` helper (which
//! calls libcontainer), started and signalled through libcontainer's state (no fork, so safe in
//! this multi-threaded process), its stdout/stderr pumped into its [`CriLog`] (which passes them on
//! to attached clients), its exit collected by the [`reaper`](super::reaper). With `tty`, the
//! container's stdio is a terminal libcontainer makes: its master comes back over a console
//! socket, its output is logged as stdout (as containerd does), and attach writes into it.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::ffi::OsStr;
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use libcontainer::container::Container;
use libcontainer::signal::Signal;
use nix::sys::wait::WaitStatus;

use super::reaper;
use super::terminal::Console;
use crate::container_stdin::ContainerStdin;
use crate::cri_log::{CriLog, LogStream};
use crate::protocol::{LinuxSpec, RemoteError};

/// How long the output pumps may still drain after the container's init exited (an orphan that
/// kept the pipe open must not hold the exit report back).
const DRAIN_WAIT: Duration = Duration::from_secs(2);

pub(crate) struct LinuxContainer {
    id: String,
    spec: LinuxSpec,
    pid: i32,
    exit: Mutex<Option<Receiver<WaitStatus>>>,
    /// One message per output pump that ended.
    pumps_done: Mutex<Option<Receiver<()>>>,
    pumps: usize,
    /// Its output: the log file (if any) and attached clients.
    log: Arc<CriLog>,
    /// Its stdin for attach: a pipe when `spec.stdin`, the terminal when `spec.tty` too.
    stdin: Option<Arc<ContainerStdin>>,
    /// The terminal's master, when `spec.tty`.
    terminal: Option<Arc<OwnedFd>>,
}

/// How a Linux container ended.
pub(crate) struct LinuxExit {
    pub exit_code: i32,
    pub oom_killed: bool,
}

impl LinuxContainer {
    /// Creates the container: its init process exists, fully set up, blocked until [`start`](Self::start).
    pub fn create(id: &str, spec: &LinuxSpec, log: Option<Arc<CriLog>>) -> Result<LinuxContainer, RemoteError> {
        let log = log.unwrap_or_else(|| Arc::new(CriLog::discard()));
        let io = |what: &str, e: std::io::Error| RemoteError::Internal(format!("creating container {id}: {what}: {e}"));
        let started = Instant::now();
        let mut args = vec![OsStr::new("linux-create"), OsStr::new(id), spec.state_root.as_os_str(), spec.bundle.as_os_str()];
        let (done_tx, done_rx) = channel();
        let (pid, stdin, terminal, pumps) = if spec.tty {
            // The terminal is the container's stdio: the helper's own is /dev/null.
            let console = Console::listen(&spec.bundle, "console.sock").map_err(|e| io("the console socket", e))?;
            args.push(console.path.as_os_str());
            let null = || super::exec::null().map_err(|e| io("/dev/null", e));
            let pid = helper(id, run_helper(&args, [null()?, null()?, null()?], false))?;
            let exit_on_error = |e: std::io::Error| {
                // SAFETY: plain syscall on our unreaped child (its init, waiting for start).
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                io("the terminal", e)
            };
            let master = Arc::new(console.receive().map_err(exit_on_error)?);
            let dup = |m: &OwnedFd| m.try_clone().map_err(|e| io("the terminal", e));
            pump(dup(&master)?, Arc::clone(&log), LogStream::Stdout, done_tx);
            let stdin = spec.stdin.then(|| dup(&master).map(|m| Arc::new(ContainerStdin::terminal(m)))).transpose()?;
            (pid, stdin, Some(master), 1)
        } else {
            let (stdin_r, stdin_w) = pipe()?;
            let (out_r, out_w) = pipe()?;
            let (err_r, err_w) = pipe()?;
            let pid = helper(id, run_helper(&args, [stdin_r, out_w, err_w], false))?;
            pump(out_r, Arc::clone(&log), LogStream::Stdout, done_tx.clone());
            pump(err_r, Arc::clone(&log), LogStream::Stderr, done_tx);
            let stdin = spec.stdin.then(|| Arc::new(ContainerStdin::from_writer(File::from(stdin_w), spec.stdin_once)));
            (pid, stdin, None, 2)
        };
        tracing::debug!(container.id = %id, tty = spec.tty, create_us = started.elapsed().as_micros() as u64, "linux-create helper done");
        let exit = reaper::watch(pid);
        Ok(LinuxContainer {
            id: id.to_string(),
            spec: spec.clone(),
            pid,
            exit: Mutex::new(Some(exit)),
            pumps_done: Mutex::new(Some(done_rx)),
            pumps,
            log,
            stdin,
            terminal,
        })
    }

    pub fn log(&self) -> Option<&Arc<CriLog>> {
        Some(&self.log)
    }

    /// What an attach to this container needs.
    pub fn attach_target(&self) -> crate::attach::Target {
        crate::attach::Target {
            log: Arc::clone(&self.log),
            stdin: self.stdin.clone(),
            tty: self.spec.tty,
            terminal: self.terminal.clone(),
        }
    }

    pub fn pid(&self) -> i32 {
        self.pid
    }

    fn load(&self) -> Result<Container, RemoteError> {
        Container::load(self.spec.state_root.join(&self.id)).map_err(|e| RemoteError::Internal(format!("container {}: {}", self.id, crate::chain(&e))))
    }

    /// Lets the waiting init exec the container's process.
    pub fn start(&self) -> Result<(), RemoteError> {
        self.load()?.start().map_err(|e| RemoteError::Internal(format!("starting container {}: {}", self.id, crate::chain(&e))))
    }

    /// Sends `signal` to the init process, or to every process of the container when `all`:
    /// those listed in its cgroup in the daemon's hierarchy (`spec.cgroup_procs`), read again
    /// until none is left or none is new, as libcontainer's kill-all would on `/sys/fs/cgroup`
    /// (which is not the daemon's hierarchy when `WASMLET_CGROUP_ROOT` points elsewhere).
    pub fn signal(&self, signal: i32, all: bool) {
        if all
            && let Some(procs) = &self.spec.cgroup_procs
            && std::fs::metadata(procs).is_ok()
        {
            let mut signalled = std::collections::HashSet::new();
            for _ in 0..10 {
                let pids: Vec<i32> = std::fs::read_to_string(procs).unwrap_or_default().lines().filter_map(|l| l.trim().parse().ok()).collect();
                let fresh: Vec<i32> = pids.into_iter().filter(|p| signalled.insert(*p)).collect();
                if fresh.is_empty() {
                    break;
                }
                for pid in fresh {
                    // SAFETY: plain syscall; a pid listed in the container's cgroup just now.
                    unsafe {
                        libc::kill(pid, signal);
                    }
                }
            }
            return;
        }
        let sig = match Signal::try_from(signal) {
            Ok(s) => s,
            Err(_) => Signal::try_from(libc::SIGKILL).expect("SIGKILL is a signal"),
        };
        match self.load().and_then(|mut c| c.kill(sig, all).map_err(|e| RemoteError::Internal(crate::chain(&e)))) {
            Ok(()) => {}
            // Gone already, or libcontainer's state says so: fall back to the pid we know.
            Err(e) => {
                tracing::debug!(container.id = %self.id, error = %e, "libcontainer kill; signalling the init pid");
                // SAFETY: plain syscall; the pid is our unreaped child, so it cannot be reused.
                unsafe {
                    libc::kill(self.pid, signal);
                }
            }
        }
    }

    /// Blocks until the init process has exited and the output is drained; returns how it ended.
    /// Called once, by the container's waiter thread.
    pub fn wait(&self) -> LinuxExit {
        let status = self.exit.lock().unwrap_or_else(|e| e.into_inner()).take().and_then(|rx| rx.recv().ok());
        let exit_code = status.map(reaper::exit_code).unwrap_or(255);
        if let Some(done) = self.pumps_done.lock().unwrap_or_else(|e| e.into_inner()).take() {
            let deadline = Instant::now() + DRAIN_WAIT;
            for _ in 0..self.pumps {
                match done.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                    Ok(()) => {}
                    Err(RecvTimeoutError::Timeout) => {
                        tracing::warn!(container.id = %self.id, "container output still open after its init exited");
                        break;
                    }
                    Err(RecvTimeoutError::Disconnected) => break,
                }
            }
        }
        self.log.close(exit_code);
        let oom_killed = self.spec.oom_events.as_deref().is_some_and(|f| oom_kills(f) > 0);
        LinuxExit { exit_code, oom_killed }
    }

    /// Removes libcontainer's state and cgroup of an exited container.
    pub fn delete(&self) {
        match self.load() {
            Ok(mut c) => {
                if let Err(e) = c.delete(true) {
                    tracing::warn!(container.id = %self.id, error = %crate::chain(&e), "deleting container state");
                }
            }
            Err(e) => tracing::debug!(container.id = %self.id, error = %e, "no container state to delete"),
        }
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    /// The container's bundle directory (the daemon's, short enough for socket paths).
    pub fn bundle_dir(&self) -> &Path {
        &self.spec.bundle
    }

    pub fn state_root(&self) -> &Path {
        &self.spec.state_root
    }

    pub fn stop_signal(&self) -> i32 {
        self.spec.stop_signal
    }
}

/// How a helper run failed: it refused the request (its message says why), or it did not run.
pub(crate) enum HelperError {
    Refused(String),
    Failed(String),
}

/// Runs `/proc/self/exe ARGS...` (a single-threaded helper calling libcontainer) with `stdio` as
/// its fds 3, 4 and 5, and returns the pid it reports (`ok <pid>` on its stdout). The process of
/// that pid outlives the helper and becomes this shim's child (it is a subreaper). With
/// `new_pid_ns`, the helper's children start a new PID namespace.
pub(crate) fn run_helper(args: &[&OsStr], stdio: [OwnedFd; 3], new_pid_ns: bool) -> Result<i32, HelperError> {
    let failed = |what: &str, e: &dyn std::fmt::Display| HelperError::Failed(format!("{what}: {e}"));
    reaper::ensure_started().map_err(|e| failed("starting the reaper", &e))?;
    // Above the standard descriptors, so placing them at 3, 4, 5 in the child clobbers none.
    let mut high = Vec::with_capacity(3);
    for fd in &stdio {
        high.push(high_dup(fd).map_err(|e| HelperError::Failed(e.to_string()))?);
    }
    let mut cmd = Command::new("/proc/self/exe");
    cmd.args(args);
    cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::inherit());
    let raw: [RawFd; 3] = [high[0].as_raw_fd(), high[1].as_raw_fd(), high[2].as_raw_fd()];
    // SAFETY: only unshare and dup2 (async-signal-safe) between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            if new_pid_ns {
                nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWPID)?;
            }
            for (i, fd) in raw.iter().enumerate() {
                if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    let mut child = cmd.spawn().map_err(|e| failed("starting the helper", &e))?;
    let helper_exit = reaper::watch(child.id() as i32);
    drop(high);
    drop(stdio);
    let mut line = String::new();
    if let Some(out) = child.stdout.take() {
        let _ = BufReader::new(out).read_line(&mut line);
    }
    let _ = helper_exit.recv();
    match line.trim_end().split_once(' ') {
        Some(("ok", pid)) => pid.parse::<i32>().map_err(|e| failed("the helper's pid", &e)),
        Some(("error", message)) => Err(HelperError::Refused(message.to_string())),
        _ => Err(HelperError::Failed(format!("the helper said {line:?}"))),
    }
}

/// The pid a create helper reported, or why it failed.
fn helper(id: &str, outcome: Result<i32, HelperError>) -> Result<i32, RemoteError> {
    outcome.map_err(|e| match e {
        HelperError::Refused(message) => RemoteError::InvalidArgument(format!("creating container {id}: {message}")),
        HelperError::Failed(message) => RemoteError::Internal(format!("creating container {id}: {message}")),
    })
}

/// Copies one output of the container (a pipe, or its terminal's master, which reads EIO once
/// the container's side is closed) into its log until it ends.
fn pump(from: OwnedFd, log: Arc<CriLog>, stream: LogStream, done: Sender<()>) {
    let spawned = std::thread::Builder::new().name("ctr-out".into()).spawn(move || {
        let mut file = File::from(from);
        let mut buf = vec![0u8; 32 * 1024];
        loop {
            match file.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => log.write(stream, &buf[..n]),
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => break,
            }
        }
        let _ = done.send(());
    });
    if let Err(e) = spawned {
        tracing::error!(error = %e, "starting a container output pump");
    }
}

/// `oom_kill` from a v1 `memory.oom_control` or v2 `memory.events` file (0 if unreadable).
fn oom_kills(file: &Path) -> u64 {
    std::fs::read_to_string(file)
        .ok()
        .and_then(|text| {
            text.lines().find_map(|l| l.strip_prefix("oom_kill ").and_then(|v| v.trim().parse().ok()))
        })
        .unwrap_or(0)
}

pub(crate) fn pipe() -> Result<(OwnedFd, OwnedFd), RemoteError> {
    nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(|e| internal("pipe", e))
}

fn high_dup(fd: &OwnedFd) -> Result<OwnedFd, RemoteError> {
    let raw = nix::fcntl::fcntl(fd, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(10)).map_err(|e| internal("dup", e))?;
    // SAFETY: fcntl just returned this new descriptor, owned by no one else.
    Ok(unsafe { <OwnedFd as std::os::fd::FromRawFd>::from_raw_fd(raw) })
}

fn internal(what: &str, e: impl std::fmt::Display) -> RemoteError {
    RemoteError::Internal(format!("{what}: {e}"))
}
