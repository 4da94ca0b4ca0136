//! CNI, hand-written per the CNI 1.0 spec (no maintained crate does it well): network
//! configuration lists loaded from a directory as libcni does ([`config`]), plugins run with their
//! `CNI_*` variables in the child's environment only and the config on stdin ([`invoke`]), and
//! chains of plugins with `prevResult` for ADD, CHECK and DEL ([`network`]).

pub mod config;
mod error;
pub mod invoke;
pub mod network;

pub use config::{NetworkList, load_first};
pub use error::Error;
pub use network::{Attachment, CniResult, PortMapping, add, check, del};
