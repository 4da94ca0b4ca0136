//! A thread started before it is needed, so that the first container a shim creates does not
//! pay for a thread spawn (a stack mapping, a clone and the new thread's first page faults, in
//! a process that was just forked) on CreateContainer's path.
//!
//! The shim starts it once it serves (after it entered the pod's network namespace: a thread
//! keeps the namespaces it was born with), while the daemon answers RunPodSandbox. Only the first
//! job uses it; later ones get a thread of their own, named as the caller asks.

use std::sync::Mutex;
use std::sync::mpsc::{Sender, channel};

type Job = Box<dyn FnOnce() + Send + 'static>;

/// At most one idle thread, waiting for its job.
#[derive(Default)]
pub(crate) struct ReadyThread {
    waiting: Mutex<Option<Sender<Job>>>,
}

impl ReadyThread {
    /// Starts the idle thread (once). A failure to spawn only means the first job spawns its own.
    pub fn prepare(&self) {
        let mut waiting = self.waiting.lock().unwrap_or_else(|e| e.into_inner());
        if waiting.is_some() {
            return;
        }
        let (tx, rx) = channel::<Job>();
        let spawned = std::thread::Builder::new().name("ctr-ready".into()).spawn(move || {
            // Dropped unused when the shim exits, which ends the thread.
            if let Ok(job) = rx.recv() {
                job();
            }
        });
        if spawned.is_ok() {
            *waiting = Some(tx);
        }
    }

    /// Runs `job` on the idle thread if there is one (renamed `name` for the kernel, as `ps` and
    /// `/proc/PID/task/*/comm` show it), else on a new thread called `name`.
    pub fn run(&self, name: String, job: impl FnOnce() + Send + 'static) -> std::io::Result<()> {
        let ready = self.waiting.lock().unwrap_or_else(|e| e.into_inner()).take();
        let comm = name.clone();
        let job: Job = Box::new(move || {
            crate::proc_title::set_thread_name(&comm);
            job()
        });
        // A send fails only if the idle thread is gone; the job then gets a thread of its own.
        let job = match ready {
            Some(tx) => match tx.send(job) {
                Ok(()) => return Ok(()),
                Err(returned) => returned.0,
            },
            None => job,
        };
        std::thread::Builder::new().name(name).spawn(job).map(|_| ())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::mpsc::channel;

    #[test]
    fn the_first_job_runs_on_the_prepared_thread_and_later_ones_on_their_own() {
        let ready = ReadyThread::default();
        ready.prepare();
        let (tx, rx) = channel();
        for i in 0..3 {
            let tx = tx.clone();
            ready
                .run(format!("job-{i}"), move || {
                    let name = std::thread::current().name().map(str::to_owned);
                    tx.send((i, name)).unwrap();
                })
                .unwrap();
        }
        let mut seen: Vec<_> = (0..3).map(|_| rx.recv().unwrap()).collect();
        seen.sort();
        assert_eq!(seen[0], (0, Some("ctr-ready".to_string())));
        assert_eq!(seen[1], (1, Some("job-1".to_string())));
        assert_eq!(seen[2], (2, Some("job-2".to_string())));
    }

    #[test]
    fn without_a_prepared_thread_a_job_gets_its_own() {
        let ready = ReadyThread::default();
        let (tx, rx) = channel();
        ready.run("solo".into(), move || tx.send(std::thread::current().name().map(str::to_owned)).unwrap()).unwrap();
        assert_eq!(rx.recv().unwrap().as_deref(), Some("solo"));
    }
}
