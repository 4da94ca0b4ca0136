//! The crate's one error type. IO errors carry the path they touched; CRI errors carry the call.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A manifest that cannot become a pod: bad YAML, failed validation.
    #[error("{file}: {reason}")]
    Manifest { file: String, reason: String },
    #[error("invalid quantity {0:?}")]
    Quantity(String),
    #[error("connecting to the CRI at {endpoint}")]
    Connect {
        endpoint: String,
        #[source]
        source: tonic::transport::Error,
    },
    #[error("CRI {call}: {}: {}", .status.code(), .status.message())]
    Cri {
        call: &'static str,
        status: tonic::Status,
    },
    #[error("cgroups: {0}")]
    Cgroups(#[from] wasmlet_cgroups::Error),
    #[error("kubernetes API: {0}")]
    Kube(#[from] kube::Error),
    #[error("kubeconfig: {0}")]
    Kubeconfig(String),
    #[error("{what}: {source}")]
    Json {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// A value the pod spec refers to and the node does not have (a ConfigMap key, a volume).
    #[error("{0}")]
    Config(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    pub fn io(path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { path, source }
    }

    pub fn cri(call: &'static str) -> impl FnOnce(tonic::Status) -> Error {
        move |status| Error::Cri { call, status }
    }

    pub fn manifest(file: impl Into<String>, reason: impl Into<String>) -> Error {
        Error::Manifest {
            file: file.into(),
            reason: reason.into(),
        }
    }
}
