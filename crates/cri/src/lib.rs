//! wasmlet's Kubernetes CRI: the runtime.v1 RuntimeService and ImageService served over a unix
//! socket, so a stock kubelet or `crictl` drives wasmlet unchanged.
//!
//! [`Runtime`] holds the state (sandbox and container records, durable on disk; the image store;
//! one shim per pod) and has one inner method per RPC, one file each under `runtime/` and
//! `image/`. [`transport`] is the thin layer that implements the tonic traits over them and maps
//! [`Error`] to `tonic::Status` exactly once.

pub mod client;
mod convert;
mod error;
mod filter;
pub mod handlers;
mod ids;
mod image;
mod names;
mod options;
mod recover;
mod runtime;
mod service;
mod store;
pub mod streaming;
pub mod transport;

pub use error::{Error, chain};
pub use k8s_cri;
pub use options::RuntimeOptions;
pub use service::Runtime;
pub use transport::serve;
