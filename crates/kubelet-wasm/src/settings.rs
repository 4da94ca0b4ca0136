//! What every pod worker of one agent shares: the node, where pod files and logs go, the
//! back-off schedule, how often the runtime is relisted, and the runtime's name.

use std::path::PathBuf;
use std::time::Duration;

use crate::backoff::BackoffConfig;
use crate::node::NodeInfo;
use crate::objects::Objects;

#[derive(Debug, Clone)]
pub struct Settings {
    pub node: NodeInfo,
    /// Pod directories (volumes) go to `<root>/pods/<uid>`.
    pub root: PathBuf,
    /// Container logs go to `<log_root>/<namespace>_<name>_<uid>/<container>/<restart>.log`.
    pub log_root: PathBuf,
    /// Container restart back-off (kubelet: 10 s to 5 min).
    pub restart_backoff: BackoffConfig,
    /// Image pull back-off (kubelet: 10 s to 5 min).
    pub pull_backoff: BackoffConfig,
    /// How often the runtime's sandboxes and containers are listed (kubelet's PLEG: 1 s).
    pub resync: Duration,
    /// ConfigMaps and Secrets for env and volumes.
    pub objects: Objects,
    /// The runtime's name from Version (`<name>://<id>` container ids, as kubelet reports them).
    pub runtime_name: String,
}

impl Settings {
    pub fn pod_dir(&self, uid: &str) -> PathBuf {
        self.root.join("pods").join(uid)
    }
}
