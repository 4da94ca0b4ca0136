//! wasmlet node: a lightweight kubelet. It is a CRI *client*: everything it does to pods goes
//! through the CRI socket of a runtime (wasmlet's, or containerd's, CRI-O's), never through a
//! runtime's internals. The same pod logic serves three front ends: static pods from a folder
//! ([`standalone`]), a Node in a cluster ([`cluster`]), and `wasmlet run` (one pod, in the
//! foreground).
//!
//! - [`manifest`]: YAML → `k8s-openapi` Pods (and ConfigMaps, Secrets), defaults, validation.
//! - [`manager`]: admission against the node's allocatable, one [`worker`] per pod, relisting.
//! - [`worker`]: kubelet's sync loop for one pod: sandbox, init containers, containers, restart
//!   policy with back-off, probes ([`probe`]), graceful termination, status ([`status`]).
//! - [`board`] / [`state_file`]: what `wasmlet node pods` and `wasmlet node logs` read.

pub mod backoff;
pub mod board;
pub mod cluster;
pub mod cri;
pub mod env;
mod error;
pub mod labels;
pub mod logs;
pub mod manager;
pub mod manifest;
pub mod node;
pub mod objects;
pub mod probe;
pub mod probe_handlers;
pub mod quantity;
pub mod resources;
pub mod settings;
pub mod standalone;
pub mod state_file;
pub mod status;
pub mod table;
pub mod volumes;
pub mod worker;

pub use error::{Error, Result};
