//! Waiting for a process the daemon did not fork (a pod's shim) to be gone, through a pidfd:
//! StopPodSandbox returns once the shim has exited, so nothing of the pod runs after it (as
//! containerd waits for the sandbox task), and RemovePodSandbox finds the pod cgroup empty
//! instead of retrying its rmdir until the exit lands.

use std::os::fd::{FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::unix::AsyncFd;

/// A process being watched; made while it is known to be alive (a pidfd names that process,
/// not a pid a later process may reuse).
pub(crate) struct ProcessExit {
    pid: u32,
    fd: Option<AsyncFd<OwnedFd>>,
}

impl ProcessExit {
    /// Starts watching `pid`. A process already gone, or a kernel without pidfds (< 5.3), gives
    /// a watch whose [`wait`](Self::wait) returns at once.
    pub fn watch(pid: u32) -> ProcessExit {
        // SAFETY: pidfd_open takes a pid and flags; on success it returns a new descriptor.
        let raw = unsafe { libc::syscall(libc::SYS_pidfd_open, pid as libc::pid_t, 0) };
        let fd = (raw >= 0)
            // SAFETY: a descriptor pidfd_open just returned, owned by nobody else.
            .then(|| unsafe { OwnedFd::from_raw_fd(raw as i32) })
            // SAFETY: the AsyncFd owns the OwnedFd, so the descriptor stays open and the same
            // for the AsyncFd's whole life.
            .and_then(|fd| unsafe { AsyncFd::register_with_interest(fd, tokio::io::Interest::READABLE) }.ok());
        ProcessExit { pid, fd }
    }

    /// Waits until the process has exited (its pidfd turns readable), for at most `patience`;
    /// returns whether it is known to be gone.
    pub async fn wait(self, patience: Duration) -> bool {
        let Some(fd) = self.fd else { return true };
        match tokio::time::timeout(patience, fd.readable()).await {
            Ok(Ok(_)) => true,
            Ok(Err(e)) => {
                tracing::debug!(pid = self.pid, error = %e, "waiting on a pidfd");
                false
            }
            Err(_) => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_watch_ends_when_the_process_exits_and_not_before() {
        let mut child = std::process::Command::new("sleep").arg("0.3").spawn().unwrap();
        let start = std::time::Instant::now();
        let watch = ProcessExit::watch(child.id());
        assert!(!ProcessExit::watch(child.id()).wait(Duration::from_millis(50)).await, "sleep 0.3 is still running");
        // The exit is seen before the child is reaped (a zombie has exited).
        assert!(watch.wait(Duration::from_secs(5)).await);
        assert!(start.elapsed() >= Duration::from_millis(250), "{:?}", start.elapsed());
        child.wait().unwrap();
    }
}
