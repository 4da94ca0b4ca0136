//! The shim's reaper for Linux containers. The shim is a child subreaper, so a container's init
//! (reparented when the short-lived create helper exits) and any orphan of a container that does
//! not have its own PID namespace end up as the shim's children. One thread waits for all of them
//! (`waitpid(-1, __WALL)`) and hands each status to whoever registered the pid; a status nobody
//! registered yet is kept briefly (a helper may exit before its spawner registers it).
//!
//! Started on the first Linux container only: a Wasm-only pod never pays for the thread.

use std::collections::HashMap;
use std::sync::mpsc::{Receiver, Sender, channel};
use std::sync::{Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use nix::sys::wait::{WaitPidFlag, WaitStatus, waitpid};
use nix::unistd::Pid;

/// How long an unclaimed exit status is kept for a late registration.
const UNCLAIMED_TTL: Duration = Duration::from_secs(60);

#[derive(Default)]
struct Table {
    waiting: HashMap<i32, Sender<WaitStatus>>,
    unclaimed: HashMap<i32, (WaitStatus, Instant)>,
}

static TABLE: OnceLock<Mutex<Table>> = OnceLock::new();
/// Wakes the reaper when it is idle (no children) and a child has just been made.
static CHILD_MADE: (Mutex<bool>, Condvar) = (Mutex::new(false), Condvar::new());

fn table() -> std::sync::MutexGuard<'static, Table> {
    TABLE.get_or_init(Default::default).lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes this process a child subreaper and starts the reaper thread (once).
pub(crate) fn ensure_started() -> std::io::Result<()> {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    STARTED
        .get_or_init(|| {
            // SAFETY: prctl with integer arguments only.
            if unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) } != 0 {
                return Err(format!("PR_SET_CHILD_SUBREAPER: {}", std::io::Error::last_os_error()));
            }
            std::thread::Builder::new().name("reaper".into()).spawn(reap_forever).map(|_| ()).map_err(|e| e.to_string())
        })
        .clone()
        .map_err(std::io::Error::other)
}

/// Registers interest in `pid`'s exit (a child just made); the receiver gets its status once.
pub(crate) fn watch(pid: i32) -> Receiver<WaitStatus> {
    let (tx, rx) = channel();
    {
        let mut t = table();
        match t.unclaimed.remove(&pid) {
            Some((status, _)) => {
                let _ = tx.send(status);
            }
            None => {
                t.waiting.insert(pid, tx);
            }
        }
    }
    let (made, cv) = &CHILD_MADE;
    *made.lock().unwrap_or_else(|e| e.into_inner()) = true;
    cv.notify_one();
    rx
}

fn reap_forever() {
    loop {
        match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::__WALL)) {
            Ok(status) => {
                let Some(pid) = status.pid() else { continue };
                if !matches!(status, WaitStatus::Exited(..) | WaitStatus::Signaled(..)) {
                    continue;
                }
                let mut t = table();
                match t.waiting.remove(&pid.as_raw()) {
                    Some(tx) => {
                        let _ = tx.send(status);
                    }
                    None => {
                        let now = Instant::now();
                        t.unclaimed.retain(|_, (_, at)| now.duration_since(*at) < UNCLAIMED_TTL);
                        t.unclaimed.insert(pid.as_raw(), (status, now));
                    }
                }
            }
            // No children right now: wait until one is made (a slow poll covers reparented ones).
            Err(nix::errno::Errno::ECHILD) => {
                let (made, cv) = &CHILD_MADE;
                let mut made = made.lock().unwrap_or_else(|e| e.into_inner());
                if !*made {
                    made = cv.wait_timeout(made, Duration::from_secs(1)).unwrap_or_else(|e| e.into_inner()).0;
                }
                *made = false;
            }
            Err(nix::errno::Errno::EINTR) => {}
            Err(e) => {
                tracing::error!(error = %e, "reaper: waitpid");
                std::thread::sleep(Duration::from_millis(50));
            }
        }
    }
}

/// The exit code a status stands for: the code, or 128 + the signal, as shells and kubelet report.
pub(crate) fn exit_code(status: WaitStatus) -> i32 {
    match status {
        WaitStatus::Exited(_, code) => code,
        WaitStatus::Signaled(_, signal, _) => 128 + signal as i32,
        _ => 255,
    }
}
