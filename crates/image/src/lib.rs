//! wasmlet's local image store, shared by the daemon (CRI ImageService) and the CLI
//! (`wasmlet image import`), possibly in two processes at once: `.wasm` files and OCI image layouts are
//! imported into a content-addressed store on disk, each Wasm binary is compiled once for the current
//! engine, and images are resolved, listed and removed like containerd's. See [`ImageStore`] for the
//! on-disk layout and its crash and concurrency guarantees, and [`normalize`] for references.
//! [`ImageStore::pull`] pulls images from OCI registries ([`Registry`]), [`push_wasm`] publishes a
//! `.wasm` file as a Wasm OCI artifact.

mod atomic;
mod auth;
mod digest;
mod error;
mod import;
mod import_layout;
mod import_wasm;
mod lock;
mod oci;
mod pull;
mod push;
mod record;
mod reference;
mod registry;
mod remove;
mod resolve;
mod resolve_fast;
mod staging;
mod store;
mod tar_find;
mod unpack;
mod unpack_layer;
mod usage;

#[cfg(test)]
mod testutil;

pub use auth::Auth;
pub use error::Error;
pub use pull::{ProgressFn, PullOptions};
pub use push::{PushOptions, Pushed, WASM_CONFIG, push_wasm};
pub use record::{ImageConfig, ImageRecord, LINUX_KIND};
pub use reference::{DEFAULT_REGISTRY, Reference, normalize};
pub use registry::{Registry, RegistryOptions};
pub use store::ImageStore;
pub use usage::FsUsage;
