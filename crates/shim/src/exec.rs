//! Exec in a running container. The request ([`ExecSpec`]: argv, env, tty and terminal size,
//! which stdio streams, a timeout) travels as a [`crate::protocol::Request::Exec`] line with the
//! exec's stdio as file descriptors attached to it (SCM_RIGHTS, in the order stdin, stdout,
//! stderr), so the same request carries a Wasm exec and a Linux one. The shim answers `Ok` once
//! the exec runs, then `ExecExited` when it ends; the daemon closing the connection kills it, as
//! do its timeout and its container's exit.
//!
//! A Wasm exec ([`crate::exec_wasm`]) is a new instance of the container's own module (or of
//! another `.wasm` in one of its mounted directories, named by argv[0]) with the exec's argv, the
//! container's env and preopens, in the container's cgroup and under its memory cap, stopped by
//! epoch interruption.
//! The daemon's side ([`ShimClient::exec`]) makes the pipes and keeps their other ends.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::net::unix::pipe;
use tokio::sync::Notify;
use wasmtime::Engine;

use crate::Error;
use crate::client::ShimClient;
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
pub(crate) const TRAP_EXIT_CODE: i32 = 134;
pub(crate) const KILLED_EXIT_CODE: i32 = 137;

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
pub(crate) struct Stop {
    pub(crate) state: AtomicU8,
    pub(crate) wake: Notify,
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

    pub(crate) fn stopped(&self) -> bool {
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
    let exit = crate::exec_wasm::run_wasm(
        &engine,
        &container,
        &spec,
        crate::exec_wasm::Stdio {
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
