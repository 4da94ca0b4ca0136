//! The one error type of the image store, shaped for the CRI boundary (each variant maps to one gRPC code).

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the image store.
///
/// Variants carry their cause as a `#[source]` and do not repeat it in their message: print the whole
/// chain (e.g. `anyhow`'s `{:#}`) to see it.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The reference (or the name to import under) is not a valid image reference. gRPC: InvalidArgument.
    #[error("invalid image reference {reference:?}: {reason}")]
    InvalidReference { reference: String, reason: String },
    /// No image matches. gRPC: NotFound.
    #[error("image {reference:?} not found")]
    NotFound { reference: String },
    /// The input is not a Wasm image (a Linux image, no Wasm layer, bad magic). gRPC: InvalidArgument.
    #[error("{image} is not a Wasm image: {detail}")]
    NotWasm { image: String, detail: String },
    /// A blob, manifest, config, index or record is damaged: digest or size mismatch, bad JSON, oversize.
    /// gRPC: DataLoss for the store's own files, InvalidArgument for an imported layout.
    #[error("{what} is corrupt: {detail}")]
    Corrupt { what: String, detail: String },
    /// The image id (the config digest) is already taken by an image with different Wasm content. gRPC:
    /// AlreadyExists.
    #[error("image {image} conflicts with a stored image: {detail}")]
    Conflict { image: String, detail: String },
    /// The Wasm module or component did not compile (or the engine could not be created). gRPC:
    /// InvalidArgument (FailedPrecondition for an engine error).
    #[error("compiling {image}")]
    Compile {
        image: String,
        #[source]
        source: wasmlet_wasm::Error,
    },
    /// The registry refused us: 401 without (or with wrong) credentials, or 403. gRPC: Unauthenticated
    /// (PermissionDenied for 403).
    #[error("pulling {image}: registry refused access ({status}): {detail}")]
    Unauthorized {
        image: String,
        status: u16,
        detail: String,
    },
    /// The registry answered with an unexpected HTTP status. gRPC: Unavailable for 429 and 5xx,
    /// Unknown otherwise.
    #[error("{image}: registry answered {status}: {detail}")]
    Registry {
        image: String,
        status: u16,
        detail: String,
    },
    /// The registry could not be reached or the connection broke (DNS, refused, TLS, reset). gRPC:
    /// Unavailable.
    #[error("{image}: cannot reach the registry: {detail}")]
    Network { image: String, detail: String },
    /// The registry did not answer in time. gRPC: DeadlineExceeded.
    #[error("{image}: the registry timed out: {detail}")]
    Timeout { image: String, detail: String },
    /// A manifest, index or config is larger than we accept (4 MiB). gRPC: ResourceExhausted.
    #[error("{what} is {size} bytes, over the {limit}-byte limit")]
    TooLarge { what: String, size: u64, limit: u64 },
    /// A layer's gzip or zstd stream is corrupt (its blob matched its digest: the image as published is
    /// broken). gRPC: InvalidArgument.
    #[error("{image}: layer {layer} is not a valid {format} stream: {detail}")]
    Decompress {
        image: String,
        layer: String,
        format: String,
        detail: String,
    },
    /// A Linux layer holds an entry that would write outside its snapshot (an absolute path, `..`, a
    /// path through a symlink, a hard link out of the layer). Nothing is stored. gRPC: InvalidArgument.
    #[error("{image}: layer {layer} has an unsafe entry {entry:?}: {reason}")]
    UnsafeLayer {
        image: String,
        layer: String,
        entry: String,
        reason: String,
    },
    /// A filesystem operation failed. gRPC: Internal (NotFound is never reported this way).
    #[error("I/O error on {}", path.display())]
    Io {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

impl Error {
    pub(crate) fn corrupt(what: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::Corrupt {
            what: what.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn not_wasm(image: impl Into<String>, detail: impl Into<String>) -> Self {
        Error::NotWasm {
            image: image.into(),
            detail: detail.into(),
        }
    }

    pub(crate) fn invalid(reference: &str, reason: impl Into<String>) -> Self {
        Error::InvalidReference {
            reference: reference.to_owned(),
            reason: reason.into(),
        }
    }
}

/// `map_err` helper: `fs::read(&p).map_err(io_err(&p))`.
pub(crate) fn io_err(path: impl Into<PathBuf>) -> impl FnOnce(io::Error) -> Error {
    let path = path.into();
    move |source| Error::Io { path, source }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::error::Error as _;

    #[test]
    fn io_errors_name_the_path_and_keep_the_cause_as_source() {
        let err = io_err("/var/lib/x")(io::Error::from(io::ErrorKind::NotFound));
        assert_eq!(err.to_string(), "I/O error on /var/lib/x");
        assert!(err.source().is_some());
    }

    #[test]
    fn messages_name_their_subject() {
        let err = Error::invalid("Hello", "repository name must be lowercase");
        assert!(err.to_string().contains("\"Hello\""), "{err}");
        let err = Error::not_wasm(
            "docker.io/library/nginx:latest",
            "linux images are not supported yet",
        );
        assert!(err.to_string().contains("nginx"), "{err}");
    }
}
