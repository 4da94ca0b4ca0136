//! Ahead-of-time compilation of a Wasm binary into a precompiled artifact, and loading it back.

use std::path::Path;

use wasmtime::component::Component;
use wasmtime::{Engine, Module};

use crate::Error;

/// Whether a Wasm binary is a core module (run through WASI preview 1) or a component (WASI 0.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ArtifactKind {
    Module,
    Component,
}

impl ArtifactKind {
    pub fn as_str(self) -> &'static str {
        match self {
            ArtifactKind::Module => "module",
            ArtifactKind::Component => "component",
        }
    }
}

/// Tells a core module from a component by the header (`\0asm` then the version/layer word).
pub fn detect_kind(bytes: &[u8]) -> Result<ArtifactKind, Error> {
    if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
        return Err(Error::NotWasm);
    }
    match bytes[4..8] {
        [1, 0, 0, 0] => Ok(ArtifactKind::Module),
        [_, _, 1, 0] => Ok(ArtifactKind::Component),
        _ => Err(Error::NotWasm),
    }
}

/// Compiles `bytes` for `engine`; the result is what [`load_module`] / [`load_component`] map.
pub fn compile(engine: &Engine, bytes: &[u8]) -> Result<(ArtifactKind, Vec<u8>), Error> {
    let kind = detect_kind(bytes)?;
    let out = match kind {
        ArtifactKind::Module => engine.precompile_module(bytes),
        ArtifactKind::Component => engine.precompile_component(bytes),
    };
    out.map(|artifact| (kind, artifact)).map_err(|e| Error::Compile {
        kind: kind.as_str(),
        message: format!("{e:#}"),
    })
}

/// Maps a precompiled core module from disk (no compilation; pages shared through the page cache).
pub fn load_module(engine: &Engine, path: &Path) -> Result<Module, Error> {
    // SAFETY: the artifact was written by `compile` with an engine of the same compat hash
    // (the cache key includes it) into wasmlet's own store, which only root can write.
    unsafe { Module::deserialize_file(engine, path) }.map_err(|e| Error::Load {
        path: path.to_owned(),
        message: format!("{e:#}"),
    })
}

/// Maps a precompiled component from disk.
pub fn load_component(engine: &Engine, path: &Path) -> Result<Component, Error> {
    // SAFETY: as for `load_module`.
    unsafe { Component::deserialize_file(engine, path) }.map_err(|e| Error::Load {
        path: path.to_owned(),
        message: format!("{e:#}"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY_MODULE: &[u8] = b"\0asm\x01\0\0\0";
    const EMPTY_COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

    #[test]
    fn detects_kinds() {
        assert_eq!(detect_kind(EMPTY_MODULE).unwrap(), ArtifactKind::Module);
        assert_eq!(detect_kind(EMPTY_COMPONENT).unwrap(), ArtifactKind::Component);
        assert!(matches!(detect_kind(b"\x7fELF\x02\x01\x01\0"), Err(Error::NotWasm)));
        assert!(matches!(detect_kind(b"\0as"), Err(Error::NotWasm)));
    }

    #[test]
    fn compiles_and_loads_a_module() {
        let engine = crate::new_engine().unwrap();
        let (kind, bytes) = compile(&engine, EMPTY_MODULE).unwrap();
        assert_eq!(kind, ArtifactKind::Module);
        let dir = std::env::temp_dir().join(format!("wasmlet-wasm-test-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("m.cwasm");
        std::fs::write(&path, bytes).unwrap();
        load_module(&engine, &path).unwrap();
        assert!(load_component(&engine, &path).is_err());
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn refuses_garbage() {
        let engine = crate::new_engine().unwrap();
        let err = compile(&engine, b"\0asm\x01\0\0\0\xff\xff").unwrap_err();
        assert!(matches!(err, Error::Compile { kind: "module", .. }), "{err}");
    }
}
