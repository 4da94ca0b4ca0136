//! Keeping container records true to their shims: a watcher per shim turns its exit events into
//! record updates, and at start-up every sandbox is re-attached (exits that happened while the
//! daemon was down are read from the shim, or from the exit records it left on disk).

use std::sync::Arc;

use wasmlet_shim::protocol::{ContainerState as ShimState, Event, exit_file};

use crate::service::Runtime;
use crate::store::{ContainerState, SandboxState};

impl Runtime {
    /// Re-attaches to every ready sandbox's shim; a sandbox whose shim is gone becomes NotReady.
    pub(crate) async fn recover(self: &Arc<Self>) {
        for sandbox in self.sandboxes.list() {
            if sandbox.state != SandboxState::Ready {
                self.settle_lost_containers(&sandbox.id, "the pod sandbox was stopped");
                continue;
            }
            if self.watch_shim(&sandbox.id).await {
                self.reconcile_with_shim(&sandbox.id).await;
            } else {
                tracing::warn!(sandbox.id = %sandbox.id, "shim is gone");
                self.shim_gone(&sandbox.id);
            }
        }
    }

    /// Subscribes to the shim's exit events and applies them until the shim goes away.
    /// Returns false if the shim cannot be reached.
    pub(crate) async fn watch_shim(self: &Arc<Self>, sandbox_id: &str) -> bool {
        let mut sub = match self.shim(sandbox_id).subscribe().await {
            Ok(s) => s,
            Err(e) => {
                tracing::debug!(sandbox.id = %sandbox_id, error = %e, "cannot subscribe to shim");
                return false;
            }
        };
        let runtime = Arc::clone(self);
        let sandbox_id = sandbox_id.to_string();
        tokio::spawn(async move {
            loop {
                while let Some(Event::Exited { id, exit }) = sub.next().await {
                    tracing::debug!(sandbox.id = %sandbox_id, container.id = %id, exit_code = exit.exit_code, "exit event");
                    if let Err(e) = runtime.containers.update(&id, |c| c.exited(&exit)) {
                        tracing::error!(container.id = %id, error = %e, "recording exit");
                    }
                }
                // The stream ended: a dropped connection to a live shim is re-made; otherwise
                // the shim is gone.
                match runtime.shim(&sandbox_id).subscribe().await {
                    Ok(again) => sub = again,
                    Err(_) => break,
                }
            }
            runtime.shim_gone(&sandbox_id);
        });
        true
    }

    /// A shim that went away: settle what it did not report from its exit files and mark the pod
    /// NotReady, so kubelet recreates it (as containerd does when a sandbox's task dies).
    fn shim_gone(&self, sandbox_id: &str) {
        self.settle_lost_containers(sandbox_id, "the pod's shim exited");
        let marked = self.sandboxes.update(sandbox_id, |s| {
            let changed = s.state == SandboxState::Ready;
            s.state = SandboxState::NotReady;
            changed
        });
        match marked {
            Ok(Some(_)) => tracing::info!(sandbox.id = %sandbox_id, "the pod's shim is gone; sandbox not ready"),
            Ok(None) => {}
            Err(e) => tracing::error!(sandbox.id = %sandbox_id, error = %e, "marking sandbox not ready"),
        }
    }

    async fn reconcile_with_shim(&self, sandbox_id: &str) {
        let known = match self.shim(sandbox_id).list().await {
            Ok(list) => list,
            Err(e) => {
                tracing::warn!(sandbox.id = %sandbox_id, error = %e, "listing shim containers");
                return;
            }
        };
        for c in self.containers.matching(|c| c.sandbox_id == sandbox_id) {
            let shim_state = known.iter().find(|(id, _)| *id == c.id).map(|(_, s)| s.clone());
            let _ = self.containers.update(&c.id, |rec| match &shim_state {
                Some(ShimState::Exited(exit)) => rec.exited(exit),
                Some(ShimState::Running { started_at }) if rec.state != ContainerState::Running => {
                    rec.state = ContainerState::Running;
                    rec.started_at = *started_at;
                    true
                }
                Some(_) => false,
                None if rec.state == ContainerState::Exited => false,
                None => self.exit_from_disk(sandbox_id, rec, "the shim has no record of the container"),
            });
        }
    }

    /// Settles every not-yet-exited container of a sandbox from the exit files its shim wrote.
    pub(crate) fn settle_lost_containers(&self, sandbox_id: &str, why: &str) {
        for c in self.containers.matching(|c| c.sandbox_id == sandbox_id) {
            if matches!(c.state, ContainerState::Running | ContainerState::Unknown | ContainerState::Created) {
                let _ = self.containers.update(&c.id, |rec| self.exit_from_disk(sandbox_id, rec, why));
            }
        }
    }

    fn exit_from_disk(&self, sandbox_id: &str, rec: &mut crate::store::ContainerRecord, why: &str) -> bool {
        let path = exit_file(&self.opts.shim_dir(sandbox_id), &rec.id);
        match wasmlet_shim::atomic::read_json(&path) {
            Ok(Some(exit)) => rec.exited(&exit),
            _ => rec.lost(why),
        }
    }
}
