//! Exec in a Linux container (ExecSync, kubelet's exec probes, `kubectl exec`): libcontainer's
//! tenant builder makes a process in the container's namespaces and cgroup, as the container's
//! user, with its environment plus the exec's. Like create, that runs in a single-threaded
//! helper (`wasmlet linux-exec`) the shim execs; the process is then the shim's child, waited for
//! by the reaper and killed (SIGKILL) when the daemon hangs up or the timeout passes.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use super::process::{HelperError, LinuxContainer, run_helper};
use super::reaper;
use crate::exec::{ExecExit, ExecSpec, KILLED, TIMED_OUT, respond, watch};
use crate::protocol::{RemoteError, Response};

/// The helper: creates the exec process and reports `ok <pid>` / `error <message>` on stdout.
/// `spec` is the [`ExecSpec`] as JSON; the process's stdio arrive as fds 3, 4 and 5.
pub fn exec_main(id: &str, state_root: &Path, spec: &str) -> i32 {
    let outcome = (|| {
        let spec: ExecSpec = serde_json::from_str(spec).map_err(|e| format!("exec spec: {e}"))?;
        // SAFETY: the spawner placed the process's stdio at 3, 4 and 5 and nothing else owns them.
        let (stdin, stdout, stderr) = unsafe { (OwnedFd::from_raw_fd(3), OwnedFd::from_raw_fd(4), OwnedFd::from_raw_fd(5)) };
        let env: HashMap<String, String> = spec.env.into_iter().collect();
        ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(state_root)
            .map_err(|e| crate::chain(&e))?
            .with_stdin(stdin)
            .with_stdout(stdout)
            .with_stderr(stderr)
            .as_tenant()
            .with_container_args(spec.argv)
            .with_env(env)
            .with_detach(true)
            .build()
            .map(|pid| pid.as_raw())
            .map_err(|e| crate::chain(&e))
    })();
    let line = match &outcome {
        Ok(pid) => format!("ok {pid}\n"),
        Err(e) => format!("error {}\n", e.replace('\n', " ")),
    };
    let _ = std::io::stdout().write_all(line.as_bytes());
    i32::from(outcome.is_err())
}

/// Serves one exec request on `conn` (after the request line): `Ok` once the process runs, then
/// `ExecExited`.
pub(crate) fn serve(
    conn: UnixStream,
    container: &Arc<LinuxContainer>,
    id: &str,
    exec_id: &str,
    spec: &ExecSpec,
    fds: Vec<OwnedFd>,
) -> std::io::Result<()> {
    if spec.tty {
        let msg = "exec with a terminal in a Linux container is not supported yet (run it without -t)".to_string();
        return respond(&conn, &Response::Error(RemoteError::InvalidArgument(msg)));
    }
    let mut fds = fds.into_iter();
    let null = || std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map(OwnedFd::from);
    let stdin = match spec.stdin.then(|| fds.next()).flatten() {
        Some(fd) => fd,
        None => null()?,
    };
    let stdout = match spec.stdout.then(|| fds.next()).flatten() {
        Some(fd) => fd,
        None => null()?,
    };
    let stderr = match spec.stderr.then(|| fds.next()).flatten() {
        Some(fd) => fd,
        None => null()?,
    };
    let json = serde_json::to_string(spec).map_err(std::io::Error::other)?;
    let start = Instant::now();
    let args = [OsStr::new("linux-exec"), OsStr::new(container.id()), container.state_root().as_os_str(), OsStr::new(&json)];
    let pid = match run_helper(&args, [stdin, stdout, stderr]) {
        Ok(pid) => pid,
        // The command could not be started (not found, not executable): kubelet's exec probes
        // expect that as an error of the call, as runc reports it.
        Err(HelperError::Refused(message)) => {
            return respond(&conn, &Response::Error(RemoteError::FailedPrecondition(format!("exec in container {id}: {message}"))));
        }
        Err(HelperError::Failed(message)) => {
            return respond(&conn, &Response::Error(RemoteError::Internal(format!("exec in container {id}: {message}"))));
        }
    };
    let exited = reaper::watch(pid);
    respond(&conn, &Response::Ok)?;
    let why = Arc::new(AtomicU8::new(0));
    let watcher = {
        let why = Arc::clone(&why);
        watch(conn.try_clone()?, spec.timeout_ms.map(Duration::from_millis), move |reason| {
            if why.compare_exchange(0, reason, Ordering::SeqCst, Ordering::SeqCst).is_ok() {
                // SAFETY: plain syscall; the pid is our unreaped child, so it cannot be reused.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
            }
        })
    };
    let code = exited.recv().map(reaper::exit_code).unwrap_or(255);
    // Whatever the watcher does from now on must not kill a reused pid.
    let killed = why.swap(u8::MAX, Ordering::SeqCst);
    let _ = conn.shutdown(std::net::Shutdown::Read);
    let _ = watcher.join();
    let reason = match killed {
        TIMED_OUT => "Timeout",
        KILLED => "Killed",
        _ if code == 0 => "Completed",
        _ => "Error",
    };
    tracing::info!(container.id = %id, exec.id = %exec_id, exit_code = code, reason, exec.us = start.elapsed().as_micros() as u64, "linux exec ended");
    respond(&conn, &Response::ExecExited(ExecExit { exit_code: code, reason: reason.into(), message: String::new() }))
}
