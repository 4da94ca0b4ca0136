//! A container's record.

use k8s_cri::v1::ContainerConfig;
use serde::{Deserialize, Serialize};
use wasmlet_shim::protocol::ExitRecord;

use super::records::Record;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) enum ContainerState {
    Created,
    Running,
    Exited,
    Unknown,
}

impl ContainerState {
    pub fn to_cri(self) -> i32 {
        use k8s_cri::v1::ContainerState as C;
        match self {
            ContainerState::Created => C::ContainerCreated as i32,
            ContainerState::Running => C::ContainerRunning as i32,
            ContainerState::Exited => C::ContainerExited as i32,
            ContainerState::Unknown => C::ContainerUnknown as i32,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct ContainerRecord {
    pub id: String,
    pub sandbox_id: String,
    /// `name_sandboxname_namespace_uid_attempt`, reserved while the record exists.
    pub name: String,
    pub config: ContainerConfig,
    /// The image's id (`sha256:…`), its first tag and its digest reference.
    pub image_id: String,
    pub image_tag: String,
    pub image_ref: String,
    /// `log_directory/log_path`, empty when kubelet asked for no log.
    pub log_path: String,
    pub state: ContainerState,
    pub created_at: i64,
    pub started_at: i64,
    pub finished_at: i64,
    pub exit_code: i32,
    pub reason: String,
    pub message: String,
    /// The container's cgroup path relative to the hierarchy roots; empty when it has none.
    #[serde(default)]
    pub cgroup: String,
}

impl ContainerRecord {
    /// Takes in an exit the shim reported (or recorded on disk).
    pub fn exited(&mut self, exit: &ExitRecord) -> bool {
        if self.state == ContainerState::Exited {
            return false;
        }
        self.state = ContainerState::Exited;
        if self.started_at == 0 {
            self.started_at = exit.started_at;
        }
        self.finished_at = exit.finished_at;
        self.exit_code = exit.exit_code;
        self.reason = exit.reason.clone();
        self.message = exit.message.clone();
        true
    }

    /// Marks a container whose shim vanished without recording its exit.
    pub fn lost(&mut self, why: &str) -> bool {
        if matches!(self.state, ContainerState::Exited) {
            return false;
        }
        let was_created = self.state == ContainerState::Created;
        self.state = ContainerState::Exited;
        self.finished_at = wasmlet_shim::protocol::now_nanos();
        if was_created {
            self.started_at = 0;
        }
        self.exit_code = 255;
        self.reason = "Unknown".into();
        self.message = why.to_string();
        true
    }
}

impl Record for ContainerRecord {
    fn id(&self) -> &str {
        &self.id
    }
}
