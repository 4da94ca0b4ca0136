//! The runtime's errors, shaped like gRPC codes, and their one mapping to `tonic::Status`.

use std::path::PathBuf;

use tonic::{Code, Status};
use wasmlet_shim::protocol::RemoteError;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{0}")]
    NotFound(String),
    #[error("{0}")]
    AlreadyExists(String),
    #[error("{0}")]
    InvalidArgument(String),
    #[error("{0}")]
    FailedPrecondition(String),
    #[error("{0}")]
    Unimplemented(String),
    #[error("{0}")]
    DeadlineExceeded(String),
    #[error(transparent)]
    Shim(#[from] wasmlet_shim::Error),
    #[error(transparent)]
    Image(#[from] wasmlet_image::Error),
    #[error(transparent)]
    Cgroup(#[from] wasmlet_cgroups::Error),
    #[error(transparent)]
    Network(#[from] wasmlet_cni::Error),
    #[error(transparent)]
    Streaming(#[from] wasmlet_streaming::Error),
    #[error("{op} {path}")]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0}")]
    Internal(String),
}

impl Error {
    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>) -> impl FnOnce(std::io::Error) -> Error {
        let path = path.into();
        move |source| Error::Io { op, path, source }
    }

    /// The gRPC code this error is reported with.
    pub fn code(&self) -> Code {
        match self {
            Error::NotFound(_) => Code::NotFound,
            Error::AlreadyExists(_) => Code::AlreadyExists,
            Error::InvalidArgument(_) => Code::InvalidArgument,
            Error::FailedPrecondition(_) => Code::FailedPrecondition,
            Error::Unimplemented(_) => Code::Unimplemented,
            Error::DeadlineExceeded(_) => Code::DeadlineExceeded,
            Error::Io { .. } | Error::Internal(_) => Code::Internal,
            Error::Shim(e) => shim_code(e),
            Error::Image(e) => image_code(e),
            Error::Cgroup(e) => cgroup_code(e),
            Error::Network(e) => network_code(e),
            Error::Streaming(e) => streaming_code(e),
        }
    }
}

fn shim_code(e: &wasmlet_shim::Error) -> Code {
    use wasmlet_shim::Error as S;
    match e {
        S::Remote(RemoteError::NotFound(_)) => Code::NotFound,
        S::Remote(RemoteError::AlreadyExists(_)) => Code::AlreadyExists,
        S::Remote(RemoteError::FailedPrecondition(_)) => Code::FailedPrecondition,
        S::Remote(RemoteError::InvalidArgument(_)) => Code::InvalidArgument,
        S::Remote(RemoteError::Internal(_)) => Code::Internal,
        S::Unreachable { .. } => Code::Unavailable,
        S::Io { .. } | S::Protocol(_) | S::Spawn(_) | S::Wasm(_) => Code::Internal,
    }
}

fn streaming_code(e: &wasmlet_streaming::Error) -> Code {
    use wasmlet_streaming::Error as S;
    match e {
        S::InvalidArgument(_) => Code::InvalidArgument,
        S::TooManyPending(_) => Code::ResourceExhausted,
        S::Bind { .. } => Code::Unavailable,
    }
}

fn network_code(e: &wasmlet_cni::Error) -> Code {
    use wasmlet_cni::Error as N;
    match e {
        N::NoConfig { .. } | N::BadConfig { .. } | N::PluginNotFound { .. } => Code::FailedPrecondition,
        N::Timeout { .. } => Code::DeadlineExceeded,
        N::Plugin { .. } | N::BadResult { .. } | N::Io { .. } => Code::Internal,
    }
}

fn cgroup_code(e: &wasmlet_cgroups::Error) -> Code {
    use wasmlet_cgroups::Code as C;
    match e.code() {
        C::InvalidArgument => Code::InvalidArgument,
        C::FailedPrecondition => Code::FailedPrecondition,
        C::NotFound => Code::NotFound,
        C::PermissionDenied => Code::PermissionDenied,
        C::Internal => Code::Internal,
    }
}

fn image_code(e: &wasmlet_image::Error) -> Code {
    use wasmlet_image::Error as I;
    match e {
        I::InvalidReference { .. } => Code::InvalidArgument,
        I::NotFound { .. } => Code::NotFound,
        I::NotWasm { .. } => Code::FailedPrecondition,
        I::Conflict { .. } => Code::AlreadyExists,
        I::Corrupt { .. } => Code::DataLoss,
        I::Compile { .. } => Code::InvalidArgument,
        I::Io { .. } => Code::Internal,
        I::Unauthorized { status: 403, .. } => Code::PermissionDenied,
        I::Unauthorized { .. } => Code::Unauthenticated,
        I::Registry { status: 429 | 500..=599, .. } => Code::Unavailable,
        I::Registry { .. } => Code::Unknown,
        I::Network { .. } => Code::Unavailable,
        I::Timeout { .. } => Code::DeadlineExceeded,
        I::TooLarge { .. } => Code::ResourceExhausted,
        I::Decompress { .. } | I::UnsafeLayer { .. } => Code::InvalidArgument,
    }
}

impl From<Error> for Status {
    fn from(e: Error) -> Status {
        Status::new(e.code(), chain(&e))
    }
}

pub use wasmlet_shim::chain;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_maps_to_its_code() {
        use wasmlet_cgroups as cg;
        let io = || std::io::Error::other("disk");
        let table: Vec<(Error, Code)> = vec![
            (Error::NotFound("x".into()), Code::NotFound),
            (Error::AlreadyExists("x".into()), Code::AlreadyExists),
            (Error::InvalidArgument("x".into()), Code::InvalidArgument),
            (Error::FailedPrecondition("x".into()), Code::FailedPrecondition),
            (Error::Unimplemented("x".into()), Code::Unimplemented),
            (Error::DeadlineExceeded("x".into()), Code::DeadlineExceeded),
            (Error::Streaming(wasmlet_streaming::Error::InvalidArgument("tty and stderr".into())), Code::InvalidArgument),
            (Error::Streaming(wasmlet_streaming::Error::TooManyPending(1000)), Code::ResourceExhausted),
            (Error::Streaming(wasmlet_streaming::Error::Bind { addr: ([127, 0, 0, 1], 1).into(), source: io() }), Code::Unavailable),
            (Error::Internal("x".into()), Code::Internal),
            (Error::Io { op: "reading", path: "/x".into(), source: io() }, Code::Internal),
            (Error::Shim(wasmlet_shim::Error::Remote(RemoteError::NotFound("c".into()))), Code::NotFound),
            (Error::Shim(wasmlet_shim::Error::Remote(RemoteError::AlreadyExists("c".into()))), Code::AlreadyExists),
            (Error::Shim(wasmlet_shim::Error::Remote(RemoteError::FailedPrecondition("c".into()))), Code::FailedPrecondition),
            (Error::Shim(wasmlet_shim::Error::Remote(RemoteError::InvalidArgument("c".into()))), Code::InvalidArgument),
            (Error::Shim(wasmlet_shim::Error::Remote(RemoteError::Internal("c".into()))), Code::Internal),
            (Error::Shim(wasmlet_shim::Error::Unreachable { path: "/s".into(), source: io() }), Code::Unavailable),
            (Error::Shim(wasmlet_shim::Error::Protocol("p".into())), Code::Internal),
            (Error::Shim(wasmlet_shim::Error::Spawn("p".into())), Code::Internal),
            (Error::Cgroup(cg::Error::InvalidArgument { field: "cpu_quota", value: "5".into(), reason: "small".into() }), Code::InvalidArgument),
            (Error::Cgroup(cg::Error::Unsupported { what: "unified".into(), reason: "v1".into() }), Code::FailedPrecondition),
            (Error::Cgroup(cg::Error::NotFound { path: "/cg".into() }), Code::NotFound),
            (Error::Cgroup(cg::Error::Io { op: "write", path: "/cg".into(), source: std::io::Error::from_raw_os_error(13) }), Code::PermissionDenied),
            (Error::Cgroup(cg::Error::Malformed { path: "/cg".into(), detail: "x".into() }), Code::Internal),
            (Error::Network(wasmlet_cni::Error::NoConfig { dir: "/d".into() }), Code::FailedPrecondition),
            (Error::Network(wasmlet_cni::Error::BadConfig { path: "/d".into(), detail: "x".into() }), Code::FailedPrecondition),
            (Error::Network(wasmlet_cni::Error::PluginNotFound { plugin: "p".into(), dirs: "/d".into() }), Code::FailedPrecondition),
            (Error::Network(wasmlet_cni::Error::Timeout { plugin: "p".into(), command: "ADD", seconds: 1 }), Code::DeadlineExceeded),
            (
                Error::Network(wasmlet_cni::Error::Plugin { plugin: "p".into(), command: "ADD", code: 11, msg: "m".into(), details: String::new() }),
                Code::Internal,
            ),
            (Error::Network(wasmlet_cni::Error::BadResult { plugin: "p".into(), command: "ADD", detail: "d".into() }), Code::Internal),
            (Error::Network(wasmlet_cni::Error::Io { path: "/p".into(), source: io() }), Code::Internal),
        ];
        let img = |e: wasmlet_image::Error| Error::Image(e);
        use wasmlet_image::Error as I;
        let s = String::new;
        let images: Vec<(Error, Code)> = vec![
            (img(I::InvalidReference { reference: s(), reason: s() }), Code::InvalidArgument),
            (img(I::NotFound { reference: s() }), Code::NotFound),
            (img(I::NotWasm { image: s(), detail: s() }), Code::FailedPrecondition),
            (img(I::Corrupt { what: s(), detail: s() }), Code::DataLoss),
            (img(I::Conflict { image: s(), detail: s() }), Code::AlreadyExists),
            (img(I::Io { path: "/x".into(), source: io() }), Code::Internal),
            (img(I::Compile { image: s(), source: wasmlet_wasm::Error::NotWasm }), Code::InvalidArgument),
            (img(I::Unauthorized { image: s(), status: 401, detail: s() }), Code::Unauthenticated),
            (img(I::Unauthorized { image: s(), status: 403, detail: s() }), Code::PermissionDenied),
            (img(I::Registry { image: s(), status: 503, detail: s() }), Code::Unavailable),
            (img(I::Registry { image: s(), status: 400, detail: s() }), Code::Unknown),
            (img(I::Network { image: s(), detail: s() }), Code::Unavailable),
            (img(I::Timeout { image: s(), detail: s() }), Code::DeadlineExceeded),
            (img(I::TooLarge { what: s(), size: 5, limit: 4 }), Code::ResourceExhausted),
            (img(I::Decompress { image: s(), layer: s(), format: s(), detail: s() }), Code::InvalidArgument),
            (img(I::UnsafeLayer { image: s(), layer: s(), entry: s(), reason: s() }), Code::InvalidArgument),
        ];
        let table = table.into_iter().chain(images);
        let io_err = Error::Io { op: "reading", path: "/x".into(), source: io() };
        assert_eq!(chain(&io_err), "reading /x: disk");
        for (err, code) in table {
            let msg = chain(&err);
            let status = Status::from(err);
            assert_eq!(status.code(), code, "{msg}");
            assert_eq!(status.message(), msg);
        }
    }
}
