//! The runtime's records, kept in memory and on disk: a journal of JSON lines per kind, appended
//! before the RPC that changed a record answers, and replayed at start-up.

mod container;
mod journal;
mod records;
mod sandbox;

pub(crate) use container::{ContainerRecord, ContainerState};
pub(crate) use records::RecordStore;
pub(crate) use sandbox::{CniAttachment, SandboxRecord, SandboxState};
