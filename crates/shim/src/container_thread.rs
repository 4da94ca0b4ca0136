//! The thread a Wasm container runs on, as the rest of the shim sees it: its kernel TID while it
//! lives, the CPU time it has used (the container's own, whether or not it has a cgroup of its
//! own), and moving it into a cgroup made after it started (UpdateContainerResources).

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// How long [`ContainerThread::join_cgroup`] waits for a thread that was spawned but has not
/// yet run its first instruction.
const TID_WAIT: Duration = Duration::from_secs(2);

/// Shared between the container's thread and the shim's request handlers.
#[derive(Debug, Default)]
pub(crate) struct ContainerThread {
    /// The TID while the thread runs; 0 before it starts and after it ends.
    tid: AtomicI32,
    /// The thread's CPU time when it ended (0 while it runs).
    final_ns: AtomicU64,
}

impl ContainerThread {
    /// Called first thing on the container's thread; the guard, dropped last thing on it, keeps
    /// the thread's final CPU time.
    pub fn enter(&self) -> Entered<'_> {
        // SAFETY: gettid has no arguments and cannot fail.
        self.tid.store(unsafe { libc::gettid() }, Ordering::Release);
        Entered(self)
    }

    fn leave(&self) {
        self.final_ns.store(cpu_ns_of(libc::CLOCK_THREAD_CPUTIME_ID).unwrap_or(0), Ordering::Release);
        self.tid.store(0, Ordering::Release);
    }

    /// CPU time the container's thread has used, in ns (its staging at create included).
    pub fn cpu_ns(&self) -> u64 {
        match self.tid.load(Ordering::Acquire) {
            0 => self.final_ns.load(Ordering::Acquire),
            // Another thread's CPU clock, as glibc's pthread_getcpuclockid makes it:
            // MAKE_THREAD_CPUCLOCK(tid, CPUCLOCK_SCHED).
            tid => cpu_ns_of((!tid << 3) | 6).unwrap_or_else(|| self.final_ns.load(Ordering::Acquire)),
        }
    }

    /// Moves the running thread into a cgroup: writes its TID into each `tasks` /
    /// `cgroup.threads` file. Fails if the thread has ended (or never started within [`TID_WAIT`]).
    pub fn join_cgroup(&self, files: &[PathBuf]) -> Result<(), String> {
        let deadline = Instant::now() + TID_WAIT;
        let tid = loop {
            match self.tid.load(Ordering::Acquire) {
                0 if self.final_ns.load(Ordering::Acquire) == 0 && Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(1))
                }
                0 => return Err("the container's thread is not running".into()),
                tid => break tid,
            }
        };
        write_tid(tid, files)
    }
}

/// Writes `tid` into each `tasks` / `cgroup.threads` file, moving that thread into the cgroup.
pub(crate) fn write_tid(tid: libc::pid_t, files: &[PathBuf]) -> Result<(), String> {
    for file in files {
        std::fs::write(file, tid.to_string())
            .map_err(|e| format!("moving the container thread {tid} into its cgroup: writing {}: {e}", file.display()))?;
    }
    Ok(())
}

/// The container's thread is running; see [`ContainerThread::enter`].
pub(crate) struct Entered<'a>(&'a ContainerThread);

impl Drop for Entered<'_> {
    fn drop(&mut self) {
        self.0.leave();
    }
}

fn cpu_ns_of(clock: libc::clockid_t) -> Option<u64> {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: ts is a valid timespec to write into.
    let rc = unsafe { libc::clock_gettime(clock, &mut ts) };
    (rc == 0).then(|| ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn a_threads_cpu_time_is_read_while_it_runs_and_kept_when_it_ends() {
        let t = Arc::new(ContainerThread::default());
        assert_eq!(t.cpu_ns(), 0, "before the thread starts");
        let (t2, (ready_tx, ready_rx), (done_tx, done_rx)) = (Arc::clone(&t), std::sync::mpsc::channel(), std::sync::mpsc::channel::<()>());
        let worker = std::thread::spawn(move || {
            let entered = t2.enter();
            let until = Instant::now() + Duration::from_millis(30);
            let mut x = 0u64;
            while Instant::now() < until {
                x = std::hint::black_box(x.wrapping_mul(31).wrapping_add(7));
            }
            ready_tx.send(()).unwrap();
            done_rx.recv().unwrap();
            drop(entered);
        });
        ready_rx.recv().unwrap();
        let running = t.cpu_ns();
        assert!(running >= 10_000_000, "30 ms of spinning read as {running} ns");
        done_tx.send(()).unwrap();
        worker.join().unwrap();
        let ended = t.cpu_ns();
        assert!(ended >= running, "final {ended} < running {running}");
        assert!(t.join_cgroup(&[]).is_err(), "an ended thread cannot be moved");
    }
}
