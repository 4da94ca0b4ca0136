//! The runtime's records, kept in memory and on disk: one JSON file per record, written
//! atomically before the RPC that changed it answers, and read back at start-up.

mod container;
mod records;
mod sandbox;

pub(crate) use container::{ContainerRecord, ContainerState};
pub(crate) use records::RecordStore;
pub(crate) use sandbox::{CniAttachment, SandboxRecord, SandboxState};
