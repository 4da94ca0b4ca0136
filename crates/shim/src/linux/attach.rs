//! Attach to a Linux container (`crictl attach`, `kubectl attach`): the client's stdout/stderr
//! get the container's output from now on (beside its log), its stdin is copied into the
//! container's stdin if the container was created with `stdin` (closed after this attach when
//! `stdin_once`). The session ends with the container (answered with its exit code) or when the
//! daemon hangs up (the container keeps running).

use std::fs::File;
use std::os::fd::OwnedFd;
use std::os::unix::net::UnixStream;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use super::process::LinuxContainer;
use crate::exec::{ExecExit, ExecSpec, respond, watch};
use crate::protocol::{RemoteError, Response};

pub(crate) fn serve(conn: UnixStream, container: &Arc<LinuxContainer>, id: &str, spec: &ExecSpec, fds: Vec<OwnedFd>) -> std::io::Result<()> {
    let mut fds = fds.into_iter();
    let stdin = spec.stdin.then(|| fds.next()).flatten();
    let stdout = spec.stdout.then(|| fds.next()).flatten();
    let stderr = spec.stderr.then(|| fds.next()).flatten();
    let target = match &stdin {
        Some(_) => match container.stdin_writer() {
            Some(w) => Some(w),
            None => {
                let msg = format!("container {id} has no stdin to attach to (created without stdin, or stdin_once already used)");
                return respond(&conn, &Response::Error(RemoteError::FailedPrecondition(msg)));
            }
        },
        None => None,
    };
    let token = container.attach(stdout, stderr);
    respond(&conn, &Response::Ok)?;
    if let (Some(from), Some(mut to)) = (stdin, target) {
        let container = Arc::clone(container);
        std::thread::spawn(move || {
            let _ = std::io::copy(&mut File::from(from), &mut to);
            drop(to);
            if container.stdin_once() {
                container.close_stdin();
            }
        });
    }
    let hung_up = Arc::new(AtomicBool::new(false));
    let watcher = {
        let hung_up = Arc::clone(&hung_up);
        watch(conn.try_clone()?, None, move |_| hung_up.store(true, Ordering::SeqCst))
    };
    let code = container.wait_exited(&hung_up);
    container.detach(token);
    let _ = conn.shutdown(std::net::Shutdown::Read);
    let _ = watcher.join();
    tracing::info!(container.id = %id, exit_code = ?code, "attach ended");
    let exit = match code {
        Some(c) => ExecExit { exit_code: c, reason: if c == 0 { "Completed" } else { "Error" }.into(), message: String::new() },
        None => ExecExit { exit_code: 0, reason: "Detached".into(), message: String::new() },
    };
    respond(&conn, &Response::ExecExited(exit))
}
