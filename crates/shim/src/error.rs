//! Errors of the shim and of talking to it.

use std::path::PathBuf;

/// What can go wrong in the shim or between the daemon and a shim.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("shim protocol: {0}")]
    Protocol(String),
    #[error("shim at {path} is not reachable")]
    Unreachable {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("starting the shim: {0}")]
    Spawn(String),
    /// The shim answered with an error of its own.
    #[error("{0}")]
    Remote(crate::protocol::RemoteError),
    #[error(transparent)]
    Wasm(#[from] wasmlet_wasm::Error),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }
}

/// The error and its sources, `: `-separated: the whole story in one line (a gRPC message, a log).
/// A source whose text the message already ends with is not repeated.
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        let text = inner.to_string();
        if !s.ends_with(&text) {
            s.push_str(": ");
            s.push_str(&text);
        }
        source = inner.source();
    }
    s
}
