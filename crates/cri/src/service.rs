//! The runtime's shared state and its start-up: records loaded from disk, names taken back,
//! shims re-attached (see [`crate::recover`]).

use std::sync::{Arc, Mutex};

use wasmlet_image::ImageStore;
use wasmlet_shim::client::ShimClient;

use crate::names::Names;
use crate::store::{ContainerRecord, RecordStore, SandboxRecord};
use crate::{Error, RuntimeOptions};

/// The CRI runtime: one per daemon. Its inner methods (one per RPC, in `runtime/` and `image/`)
/// know nothing of gRPC; [`crate::transport`] exposes them.
pub struct Runtime {
    pub(crate) opts: RuntimeOptions,
    pub(crate) sandboxes: RecordStore<SandboxRecord>,
    pub(crate) containers: RecordStore<ContainerRecord>,
    pub(crate) images: Arc<ImageStore>,
    pub(crate) names: Names,
    pub(crate) pod_cidr: Mutex<String>,
    /// The cgroup hierarchy, detected once; `None` when there is none to use (the daemon then
    /// runs pods without cgroups and says so at start-up).
    pub(crate) cgroups: Option<crate::runtime::Cgroups>,
    /// One client per pod's shim, so its idle connections are reused across RPCs.
    shims: Mutex<std::collections::HashMap<String, ShimClient>>,
}

impl Runtime {
    /// Removes the empty node-level QoS cgroups this runtime made, if it made them (the one-shot
    /// `wasmlet run` calls this when its pod is gone; a daemon leaves them, as kubelet does).
    pub fn remove_qos_tiers_made(&self) {
        if let Some(cgroups) = &self.cgroups {
            cgroups.remove_qos_tiers_made();
        }
    }

    /// Opens the state under `opts.root`, then re-attaches to the shims still running.
    pub async fn open(opts: RuntimeOptions) -> Result<Arc<Runtime>, Error> {
        std::fs::create_dir_all(&opts.state).map_err(Error::io("creating", &opts.state))?;
        let sandboxes: RecordStore<SandboxRecord> = RecordStore::open(&opts.sandboxes_dir(), "pod sandbox")?;
        let containers: RecordStore<ContainerRecord> = RecordStore::open(&opts.containers_dir(), "container")?;
        let images_dir = opts.images.clone();
        let images = tokio::task::spawn_blocking(move || ImageStore::open(images_dir))
            .await
            .map_err(|e| Error::Internal(format!("opening the image store: {e}")))??;
        let names = Names::default();
        for s in sandboxes.list() {
            names.restore(&s.name, &s.id);
        }
        for c in containers.list() {
            names.restore(&c.name, &c.id);
        }
        let cgroup_root = crate::runtime::Cgroups::root_from_env();
        let cgroups = match crate::runtime::Cgroups::open(&cgroup_root) {
            Ok(c) => Some(c),
            Err(e) => {
                tracing::warn!(cgroup.root = %cgroup_root.display(), error = %e, "no usable cgroups: pods run without resource limits or stats");
                None
            }
        };
        let runtime = Arc::new(Runtime {
            opts,
            sandboxes,
            containers,
            images: Arc::new(images),
            names,
            pod_cidr: Mutex::new(String::new()),
            cgroups,
            shims: Mutex::new(std::collections::HashMap::new()),
        });
        runtime.recover().await;
        Ok(runtime)
    }

    pub(crate) fn shim(&self, sandbox_id: &str) -> ShimClient {
        let mut shims = self.shims.lock().unwrap_or_else(|e| e.into_inner());
        shims.entry(sandbox_id.to_owned()).or_insert_with(|| ShimClient::new(&self.opts.shim_dir(sandbox_id))).clone()
    }

    /// Drops the client (and its idle connections) of a pod whose shim is gone.
    pub(crate) fn forget_shim(&self, sandbox_id: &str) {
        self.shims.lock().unwrap_or_else(|e| e.into_inner()).remove(sandbox_id);
    }

    /// Runs blocking image-store work off the async threads.
    pub(crate) async fn with_images<T: Send + 'static>(
        &self,
        f: impl FnOnce(&ImageStore) -> Result<T, wasmlet_image::Error> + Send + 'static,
    ) -> Result<T, Error> {
        let images = Arc::clone(&self.images);
        tokio::task::spawn_blocking(move || f(&images))
            .await
            .map_err(|e| Error::Internal(format!("image store task: {e}")))?
            .map_err(Error::from)
    }
}

/// Requires a non-empty id field, naming it in the error.
pub(crate) fn require<'a>(value: &'a str, field: &str) -> Result<&'a str, Error> {
    if value.is_empty() {
        Err(Error::InvalidArgument(format!("{field} is required")))
    } else {
        Ok(value)
    }
}
