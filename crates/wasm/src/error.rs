//! Errors of the Wasm engine wrapper.

use std::path::PathBuf;

/// What can go wrong creating an engine, compiling or loading a module.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("creating the wasmtime engine: {0}")]
    Engine(String),
    #[error("not a WebAssembly module or component (bad magic or version)")]
    NotWasm,
    #[error("compiling the {kind}: {message}")]
    Compile { kind: &'static str, message: String },
    #[error("loading the compiled artifact {path}: {message}")]
    Load { path: PathBuf, message: String },
}
