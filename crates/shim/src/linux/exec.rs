//! Exec in a Linux container (ExecSync, kubelet's exec probes, `kubectl exec`): libcontainer's
//! tenant builder makes a process in the container's namespaces and cgroup, as the container's
//! user, with its environment plus the exec's. Like create, that runs in a single-threaded
//! helper (`wasmlet linux-exec`) the shim execs; the process is then the shim's child, waited for
//! by the reaper and killed (SIGKILL) when the daemon hangs up or the timeout passes. With a
//! terminal (`crictl exec -it`), libcontainer makes the pty inside the container and sends its
//! master to a console socket of the shim, which pumps it to and from the client's streams and
//! applies resizes.

use std::ffi::OsStr;
use std::fs::File;
use std::io::Write;
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::time::{Duration, Instant};

use libcontainer::container::Container;
use libcontainer::container::builder::ContainerBuilder;
use libcontainer::syscall::syscall::SyscallType;

use super::process::{HelperError, LinuxContainer, run_helper};
use super::reaper;
use super::terminal::{self, Console};
use crate::exec::{ExecExit, ExecSpec, KILLED, TIMED_OUT, TerminalSize, respond, watch};
use crate::protocol::{RemoteError, Response};

/// The helper: creates the exec process and reports `ok <pid>` / `error <message>` on stdout.
/// `spec` is the [`ExecSpec`] as JSON; the process's stdio arrive as fds 3, 4 and 5. The process
/// is the container's own (`config.json`'s): its user, capabilities, cwd, no_new_privs, with the
/// exec's argv, its env on top of the container's, and a terminal (created in the container, its
/// master sent to `console`) when the exec asks for one.
pub fn exec_main(id: &str, state_root: &Path, spec: &str, console: Option<&Path>) -> i32 {
    let outcome = (|| {
        let spec: ExecSpec = serde_json::from_str(spec).map_err(|e| format!("exec spec: {e}"))?;
        let process_file = process_json(id, state_root, &spec)?;
        // SAFETY: the spawner placed the process's stdio at 3, 4 and 5 and nothing else owns them.
        let (stdin, stdout, stderr) = unsafe { (OwnedFd::from_raw_fd(3), OwnedFd::from_raw_fd(4), OwnedFd::from_raw_fd(5)) };
        let built = ContainerBuilder::new(id.to_string(), SyscallType::default())
            .with_root_path(state_root)
            .map_err(|e| crate::chain(&e))?
            .with_stdin(stdin)
            .with_stdout(stdout)
            .with_stderr(stderr)
            .with_console_socket(console)
            .as_tenant()
            .with_process(Some(&process_file))
            .with_detach(true)
            .build()
            .map(|pid| pid.as_raw())
            .map_err(|e| crate::chain(&e));
        let _ = std::fs::remove_file(&process_file);
        built
    })();
    let line = match &outcome {
        Ok(pid) => format!("ok {pid}\n"),
        Err(e) => format!("error {}\n", e.replace('\n', " ")),
    };
    let _ = std::io::stdout().write_all(line.as_bytes());
    i32::from(outcome.is_err())
}

/// Writes the exec's OCI process (the container's, with the exec's argv, env and terminal) next
/// to libcontainer's state of the container; returns its path.
fn process_json(id: &str, state_root: &Path, spec: &ExecSpec) -> Result<std::path::PathBuf, String> {
    let container = Container::load(state_root.join(id)).map_err(|e| crate::chain(&e))?;
    let config_path = container.bundle().join("config.json");
    let config: serde_json::Value = std::fs::read(&config_path)
        .map_err(|e| format!("{}: {e}", config_path.display()))
        .and_then(|b| serde_json::from_slice(&b).map_err(|e| format!("{}: {e}", config_path.display())))?;
    let mut process = config.get("process").cloned().ok_or_else(|| "the container's spec has no process".to_string())?;
    let mut env: Vec<String> = serde_json::from_value(process["env"].clone()).unwrap_or_default();
    for (k, v) in &spec.env {
        env.retain(|e| !e.starts_with(&format!("{k}=")));
        env.push(format!("{k}={v}"));
    }
    process["args"] = serde_json::json!(spec.argv);
    process["env"] = serde_json::json!(env);
    process["terminal"] = serde_json::json!(spec.tty);
    if let (true, Some(size)) = (spec.tty, spec.terminal) {
        process["consoleSize"] = serde_json::json!({"height": size.height, "width": size.width});
    }
    let file = state_root.join(id).join(format!("exec-{}.json", std::process::id()));
    std::fs::write(&file, process.to_string()).map_err(|e| format!("{}: {e}", file.display()))?;
    Ok(file)
}

pub(crate) fn null() -> std::io::Result<OwnedFd> {
    std::fs::OpenOptions::new().read(true).write(true).open("/dev/null").map(OwnedFd::from)
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
    if spec.attach {
        return crate::attach::serve(conn, container.attach_target(), id, exec_id, spec, fds);
    }
    let mut fds = fds.into_iter();
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
    // A terminal: made inside the container by libcontainer, its master sent to this socket.
    let console = match spec.tty {
        true => Some(Console::listen(container.bundle_dir(), &format!("tty-{}.sock", &exec_id[..exec_id.len().min(8)]))?),
        false => None,
    };
    let mut args = vec![OsStr::new("linux-exec"), OsStr::new(container.id()), container.state_root().as_os_str(), OsStr::new(&json)];
    if let Some(c) = &console {
        args.push(c.path.as_os_str());
    }
    // With a terminal the process's stdio is the terminal: the helper gets /dev/null for its own.
    let helper_stdio = match &console {
        Some(_) => [null()?, null()?, null()?],
        None => [stdin.try_clone()?, stdout.try_clone()?, stderr.try_clone()?],
    };
    let pid = match run_helper(&args, helper_stdio, false) {
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
    match console {
        Some(c) => match pump_terminal(c, exec_id, spec.terminal, stdin, stdout) {
            Ok(()) => {}
            Err(e) => {
                // SAFETY: plain syscall on our unreaped child.
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                return respond(&conn, &Response::Error(RemoteError::Internal(format!("exec in container {id}: the terminal: {e}"))));
            }
        },
        None => drop((stdin, stdout, stderr)),
    }
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
    terminal::unregister(exec_id);
    tracing::info!(container.id = %id, exec.id = %exec_id, exit_code = code, reason, exec.us = start.elapsed().as_micros() as u64, "linux exec ended");
    respond(&conn, &Response::ExecExited(ExecExit { exit_code: code, reason: reason.into(), message: String::new() }))
}

/// Takes the exec's terminal master, applies the first size, and pumps it to/from the client's
/// streams.
fn pump_terminal(console: Console, exec_id: &str, size: Option<TerminalSize>, stdin: OwnedFd, stdout: OwnedFd) -> std::io::Result<()> {
    let master = Arc::new(console.receive()?);
    if let Some(size) = size {
        terminal::set_size(&master, size);
    }
    terminal::register(exec_id, &master);
    let mut to_client = File::from(stdout);
    let mut from_master = File::from(master.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_master, &mut to_client);
    });
    let mut from_client = File::from(stdin);
    let mut to_master = File::from(master.try_clone()?);
    std::thread::spawn(move || {
        let _ = std::io::copy(&mut from_client, &mut to_master);
    });
    Ok(())
}
