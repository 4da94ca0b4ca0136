//! The PID namespace of a pod whose containers share one (`namespace_options.pid = POD`, which is
//! also what a CRI client gets by leaving the field unset, as crictl does). A PID namespace dies
//! with its first process, so something must be that process for the pod's lifetime: a tiny
//! holder, the one "pause" process wasmlet has, made only for pods that need it. The shim starts
//! it (`wasmlet pid-holder`, run like the libcontainer helpers with CLONE_NEWPID unshared for its children), keeps it as its child
//! (subreaper) and kills it when the pod goes; the holder's child is pid 1 of the namespace, reaps
//! orphans and otherwise sleeps.

use std::ffi::OsStr;
use std::io::Write;
use std::sync::Mutex;

use super::process::{HelperError, run_helper};
use crate::protocol::RemoteError;

/// The holder of this shim's pod, once made.
static HOLDER: Mutex<Option<i32>> = Mutex::new(None);

/// The pid (in the node's namespace) of the pod's PID namespace holder, made on first use.
pub(crate) fn ensure() -> Result<i32, RemoteError> {
    let mut holder = HOLDER.lock().unwrap_or_else(|e| e.into_inner());
    if let Some(pid) = *holder
        && std::path::Path::new(&format!("/proc/{pid}/ns/pid")).exists()
    {
        return Ok(pid);
    }
    let null = || super::exec::null().map_err(|e| RemoteError::Internal(format!("/dev/null: {e}")));
    let pid = run_helper(&[OsStr::new("pid-holder")], [null()?, null()?, null()?], true).map_err(|e| match e {
        HelperError::Refused(m) | HelperError::Failed(m) => RemoteError::Internal(format!("starting the pid holder: {m}")),
    })?;
    // Its exit (when killed with the pod) is collected by the reaper like any orphan's.
    *holder = Some(pid);
    tracing::info!(pid, "pod PID namespace holder started");
    Ok(pid)
}

/// Kills the holder (the pod is going away); its namespace dies with it.
pub(crate) fn kill() {
    if let Some(pid) = HOLDER.lock().unwrap_or_else(|e| e.into_inner()).take() {
        // SAFETY: plain syscall on our own child.
        unsafe {
            libc::kill(pid, libc::SIGKILL);
        }
    }
}

/// `wasmlet pid-holder`: forks the namespace's pid 1, reports its pid (`ok <pid>`) and exits.
/// Runs single-threaded (fork).
pub fn holder_main() -> i32 {
    // SAFETY: the helper is single-threaded; the child only loops on waitpid/pause.
    match unsafe { libc::fork() } {
        -1 => {
            let _ = writeln!(std::io::stdout(), "error fork: {}", std::io::Error::last_os_error());
            1
        }
        0 => {
            // pid 1 of the pod's namespace: reap whatever is orphaned to us, forever.
            let _ = std::io::stdout().flush();
            // SAFETY: closing our copy of the spawner's pipe so it sees EOF once the parent exits.
            unsafe {
                libc::close(1);
            }
            loop {
                let mut status = 0;
                // SAFETY: plain syscall.
                if unsafe { libc::waitpid(-1, &mut status, 0) } < 0 {
                    // No children: nothing to reap until a process of the pod is orphaned.
                    std::thread::sleep(std::time::Duration::from_secs(1));
                }
            }
        }
        child => {
            let _ = writeln!(std::io::stdout(), "ok {child}");
            0
        }
    }
}
