//! Attach (`crictl attach`, `kubectl attach`) to a container's own process, Wasm or Linux: the
//! client's stdout/stderr get the container's output from now on (beside its log, through
//! [`CriLog::attach`]), and what it types goes to the container's stdin if the container was
//! created with one. The session ends with the container (answered with its exit code), when the
//! daemon hangs up, or when the client's stdin ends without closing the container's (containerd's
//! rule: that client is detached); the container keeps running in the last two cases.
//!
//! As containerd (`criService.attachContainer`, `ContainerIO.Attach`): the container's `tty`
//! decides, not the request's — with a terminal the client gets one stream (a Linux container's
//! pty output; a Wasm guest's stdout and stderr together, since WASI has no terminal) and its
//! resizes reach the pty (ignored for Wasm); stdin asked of a container created without one is
//! ignored; `stdin_once` is in [`ContainerStdin`].

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use crate::container_stdin::ContainerStdin;
use crate::cri_log::CriLog;
use crate::exec::{ExecExit, ExecSpec, respond, watch};
use crate::protocol::{RemoteError, Response};

/// What an attach needs of a container.
pub(crate) struct Target {
    pub log: Arc<CriLog>,
    pub stdin: Option<Arc<ContainerStdin>>,
    /// The container has a terminal (CRI `tty`).
    pub tty: bool,
    /// Its terminal's master, for resizes (a Linux container with `tty`).
    pub terminal: Option<Arc<OwnedFd>>,
}

pub(crate) fn serve(conn: UnixStream, target: Target, id: &str, session: &str, spec: &ExecSpec, fds: Vec<OwnedFd>) -> std::io::Result<()> {
    let mut fds = fds.into_iter();
    let stdin = spec.stdin.then(|| fds.next()).flatten();
    let stdout = spec.stdout.then(|| fds.next()).flatten();
    // A container with a terminal has no stderr of its own (containerd attaches none).
    let stderr = spec.stderr.then(|| fds.next()).flatten().filter(|_| !target.tty);
    let writer = match (&stdin, &target.stdin) {
        (Some(_), Some(s)) => s.writer(),
        _ => None,
    };
    if stdin.is_some() && writer.is_none() {
        tracing::debug!(container.id = %id, "attach: the container has no open stdin; the client's input is ignored");
    }
    let token = match target.log.attach(stdout, stderr, target.tty) {
        Ok(t) => t,
        Err(e) => return respond(&conn, &Response::Error(RemoteError::Internal(format!("attach to container {id}: {e}")))),
    };
    if let Some(master) = &target.terminal {
        crate::linux::terminal::register(session, master);
    }
    respond(&conn, &Response::Ok)?;
    let done = Arc::new(AtomicBool::new(false));
    if let (Some(from), Some(mut to), Some(container_stdin)) = (stdin, writer, target.stdin.clone()) {
        let done = Arc::clone(&done);
        let id = id.to_string();
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut File::from(from), &mut to);
            drop(to);
            if container_stdin.attach_ended() {
                tracing::info!(container.id = %id, "stdin_once: the container's stdin is closed");
            } else {
                done.store(true, Ordering::SeqCst);
            }
        });
    }
    let watcher = {
        let done = Arc::clone(&done);
        watch(conn.try_clone()?, None, move |_| done.store(true, Ordering::SeqCst))
    };
    let code = target.log.wait_closed(&done);
    target.log.detach(token);
    if target.terminal.is_some() {
        crate::linux::terminal::unregister(session);
    }
    let _ = conn.shutdown(std::net::Shutdown::Read);
    let _ = watcher.join();
    tracing::info!(container.id = %id, exit_code = ?code, "attach ended");
    let exit = match code {
        Some(c) => ExecExit { exit_code: c, reason: if c == 0 { "Completed" } else { "Error" }.into(), message: String::new() },
        None => ExecExit { exit_code: 0, reason: "Detached".into(), message: String::new() },
    };
    respond(&conn, &Response::ExecExited(exit))
}
