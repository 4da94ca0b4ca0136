//! A pod sandbox's record.

use k8s_cri::v1::PodSandboxConfig;
use serde::{Deserialize, Serialize};

use super::records::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum SandboxState {
    Ready,
    NotReady,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct SandboxRecord {
    pub id: String,
    /// `name_namespace_uid_attempt`, reserved while the record exists.
    pub name: String,
    pub config: PodSandboxConfig,
    pub runtime_handler: String,
    pub state: SandboxState,
    pub created_at: i64,
    pub shim_pid: u32,
}

impl Record for SandboxRecord {
    fn id(&self) -> &str {
        &self.id
    }
}
