//! RunPodSandbox: validate the config, reserve the pod's name, start its shim, record it.

use std::sync::Arc;

use k8s_cri::v1::{PodSandboxMetadata, RunPodSandboxRequest, RunPodSandboxResponse};
use wasmlet_shim::protocol::now_nanos;

use crate::ids::new_id;
use crate::service::require;
use crate::store::{SandboxRecord, SandboxState};
use crate::{Error, Runtime};

/// RuntimeClass handlers this runtime serves (`""` is the default handler).
pub(crate) const HANDLERS: &[&str] = &["wasmlet", "wasmtime", "wasm"];

pub(crate) fn sandbox_name(md: &PodSandboxMetadata) -> String {
    format!("{}_{}_{}_{}", md.name, md.namespace, md.uid, md.attempt)
}

impl Runtime {
    pub async fn run_pod_sandbox(self: &Arc<Self>, req: RunPodSandboxRequest) -> Result<RunPodSandboxResponse, Error> {
        let config = req.config.ok_or_else(|| Error::InvalidArgument("config is required".into()))?;
        let md = config.metadata.as_ref().ok_or_else(|| Error::InvalidArgument("config.metadata is required".into()))?;
        require(&md.name, "config.metadata.name")?;
        require(&md.namespace, "config.metadata.namespace")?;
        require(&md.uid, "config.metadata.uid")?;
        if !req.runtime_handler.is_empty() && !HANDLERS.contains(&req.runtime_handler.as_str()) {
            return Err(Error::InvalidArgument(format!(
                "runtime_handler {:?} is not configured (known: {})",
                req.runtime_handler,
                HANDLERS.join(", ")
            )));
        }
        let id = new_id();
        let name = sandbox_name(md);
        let reservation = self.names.reserve(&name, &id)?;
        let shim_dir = self.opts.shim_dir(&id);
        let span = tracing::info_span!("run_pod_sandbox", sandbox.id = %id, pod.name = %md.name, pod.namespace = %md.namespace, pod.uid = %md.uid);
        let _enter = span.enter();
        let shim_pid = match self.spawn_shim(&id, &shim_dir).await {
            Ok(pid) => pid,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&shim_dir);
                return Err(e.into());
            }
        };
        let record = SandboxRecord {
            id: id.clone(),
            name,
            runtime_handler: req.runtime_handler,
            config,
            state: SandboxState::Ready,
            created_at: now_nanos(),
            shim_pid,
        };
        if let Err(e) = self.sandboxes.insert(record) {
            let _ = self.shim(&id).shutdown().await;
            let _ = std::fs::remove_dir_all(&shim_dir);
            return Err(e);
        }
        reservation.commit();
        if !self.watch_shim(&id).await {
            tracing::warn!("shim stopped answering right after start");
        }
        tracing::info!(shim.pid = shim_pid, "pod sandbox ready");
        Ok(RunPodSandboxResponse { pod_sandbox_id: id })
    }

    /// Forks the shim from the zygote, or execs it when there is no zygote or it failed.
    async fn spawn_shim(&self, id: &str, shim_dir: &std::path::Path) -> Result<u32, wasmlet_shim::Error> {
        if let Some(zygote) = &self.opts.zygote {
            match zygote.spawn(id, shim_dir).await {
                Ok(pid) => return Ok(pid),
                Err(e) => tracing::warn!(error = %e, "zygote could not fork the shim; starting it by exec"),
            }
        }
        wasmlet_shim::spawn::spawn_shim(&self.opts.shim_exe, id, shim_dir, &self.opts.shim_log_filter).await
    }
}
