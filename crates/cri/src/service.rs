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
    shims: Mutex<ShimClients>,
    /// Wasm creates whose shim answer is still to be read.
    pub(crate) pending_creates: crate::runtime::PendingCreates,
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
            shims: Mutex::new(ShimClients::default()),
            pending_creates: Default::default(),
        });
        runtime.recover().await;
        Ok(runtime)
    }

    pub(crate) fn shim(&self, sandbox_id: &str) -> ShimClient {
        self.shims.lock().unwrap_or_else(|e| e.into_inner()).get(sandbox_id, || ShimClient::new(&self.opts.shim_dir(sandbox_id)))
    }

    /// Drops the client (and its idle connections) of a pod whose shim is gone.
    pub(crate) fn forget_shim(&self, sandbox_id: &str) {
        self.shims.lock().unwrap_or_else(|e| e.into_inner()).clients.remove(sandbox_id);
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

/// The shim clients of the most recently used pods, whose idle connections the next calls reuse
/// (a connection is a descriptor here and a thread in the shim). Bounded, so that a node of
/// thousands of idle pods does not hold a connection and a shim thread per pod: at 10 000 pods
/// that was 20 000 descriptors (this host's limit) and 10 000 threads. A pod's exit subscription
/// is separate and always kept.
#[derive(Default)]
pub(crate) struct ShimClients {
    clients: std::collections::HashMap<String, (u64, ShimClient)>,
    uses: u64,
}

/// Pods whose clients (and idle connections) are kept.
const CACHED_SHIM_CLIENTS: usize = 256;

impl ShimClients {
    fn get(&mut self, sandbox_id: &str, new: impl FnOnce() -> ShimClient) -> ShimClient {
        self.uses += 1;
        let uses = self.uses;
        if let Some((used, client)) = self.clients.get_mut(sandbox_id) {
            *used = uses;
            return client.clone();
        }
        if self.clients.len() >= CACHED_SHIM_CLIENTS
            && let Some(oldest) = self.clients.iter().min_by_key(|(_, (used, _))| *used).map(|(id, _)| id.clone())
        {
            self.clients.remove(&oldest);
        }
        let client = new();
        self.clients.insert(sandbox_id.to_owned(), (uses, client.clone()));
        client
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_least_recently_used_shim_client_goes_first() {
        let mut clients = ShimClients::default();
        let new = || ShimClient::new(std::path::Path::new("/nonexistent"));
        for i in 0..CACHED_SHIM_CLIENTS {
            clients.get(&format!("pod{i}"), new);
        }
        clients.get("pod0", new); // used again: pod1 is now the oldest
        clients.get("one-more", new);
        assert_eq!(clients.clients.len(), CACHED_SHIM_CLIENTS);
        assert!(clients.clients.contains_key("pod0") && clients.clients.contains_key("one-more"));
        assert!(!clients.clients.contains_key("pod1"));
    }
}
