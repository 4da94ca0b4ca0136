//! The Wasm engine wrapper: the one wasmtime configuration that both the ahead-of-time compiler
//! (at image import or pull) and the shim (at container start) use, so a compiled artifact made by one
//! is always loadable by the other, and the cache key that proves it.

mod artifact;
mod engine;
mod error;

pub use artifact::{ArtifactKind, compile, detect_kind, load_component, load_module};
pub use engine::{compat_hash, new_engine};
pub use error::Error;
pub use wasmtime;
