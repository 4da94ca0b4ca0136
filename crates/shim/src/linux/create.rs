//! `wasmlet linux-create`: the short-lived helper that creates one Linux container with youki's
//! libcontainer. libcontainer clones and must be called from a single-threaded process; the shim
//! is multi-threaded, so it execs this helper (as containerd's shim execs runc). The container's
//! stdin, stdout and stderr arrive as fds 3, 4 and 5 (with a terminal, `process.terminal` in its
//! spec, libcontainer makes a pty instead and sends its master to the console socket, as runc
//! does); the outcome goes to stdout as one line,
//! `ok <pid>` or `error <message>`. The container's init then waits for `start`, and outlives
//! this process (it is reparented to the shim, a child subreaper).

use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;

use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

/// Runs the helper; returns the process exit code.
pub fn create_main(id: &str, state_root: &Path, bundle: &Path, console: Option<&Path>) -> i32 {
    let outcome = create(id, state_root, bundle, console);
    let line = match &outcome {
        Ok(pid) => format!("ok {pid}\n"),
        Err(e) => format!("error {}\n", e.replace('\n', " ")),
    };
    let _ = std::io::stdout().write_all(line.as_bytes());
    i32::from(outcome.is_err())
}

fn create(id: &str, state_root: &Path, bundle: &Path, console: Option<&Path>) -> Result<i32, String> {
    // SAFETY: the spawner placed the container's stdio at 3, 4 and 5 and nothing else owns them.
    let (stdin, stdout, stderr) = unsafe { (OwnedFd::from_raw_fd(3), OwnedFd::from_raw_fd(4), OwnedFd::from_raw_fd(5)) };
    let container = ContainerBuilder::new(id.to_string(), SyscallType::default())
        .with_root_path(state_root)
        .map_err(|e| crate::chain(&e))?
        .with_stdin(stdin)
        .with_stdout(stdout)
        .with_stderr(stderr)
        .with_console_socket(console)
        .as_init(bundle)
        .with_systemd(false)
        .with_detach(true)
        .build()
        .map_err(|e| crate::chain(&e))?;
    container.pid().map(|p| p.as_raw()).ok_or_else(|| "libcontainer reported no init pid".to_string())
}
