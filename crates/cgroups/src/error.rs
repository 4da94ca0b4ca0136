//! The crate's one error type. Variants are shaped like gRPC status codes so the CRI layer maps
//! them with one exhaustive match; [`Error::code`] gives that mapping here, covered by a table test.

use std::io;
use std::path::PathBuf;

use crate::Controller;

/// Result alias for this crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the cgroup layer.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A caller-supplied value is malformed or out of range (gRPC `InvalidArgument`).
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidArgument {
        field: &'static str,
        value: String,
        reason: String,
    },
    /// A controller the operation needs is not mounted (v1) or not enabled (v2) for this cgroup
    /// (gRPC `FailedPrecondition`). `detail` says what is missing: the file, or the hierarchy.
    #[error("cgroup controller {controller} is not available: {detail}")]
    MissingController {
        controller: Controller,
        detail: String,
    },
    /// The host's cgroup setup cannot do what was asked, e.g. `unified` limits on a v1 host
    /// (gRPC `FailedPrecondition`).
    #[error("{what} is not supported: {reason}")]
    Unsupported { what: String, reason: String },
    /// The cgroup does not exist (gRPC `NotFound`).
    #[error("cgroup {} does not exist", path.display())]
    NotFound { path: PathBuf },
    /// A system call on `path` failed; [`Error::code`] maps the errno.
    #[error("{op} {}", path.display())]
    Io {
        op: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A kernel file did not have the expected format (gRPC `Internal`).
    #[error("cannot parse {}: {detail}", path.display())]
    Malformed { path: PathBuf, detail: String },
}

/// The gRPC status code an [`Error`] stands for (kept here so this crate needs no tonic).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Code {
    InvalidArgument,
    FailedPrecondition,
    NotFound,
    PermissionDenied,
    Internal,
}

impl Error {
    /// The gRPC code for this error. `Io` is mapped by errno: the kernel's `EINVAL`/`ERANGE` for
    /// a value (a cpuset naming absent CPUs) is the caller's, `EBUSY` (a populated cgroup) a state.
    pub fn code(&self) -> Code {
        match self {
            Error::InvalidArgument { .. } => Code::InvalidArgument,
            Error::MissingController { .. } | Error::Unsupported { .. } => Code::FailedPrecondition,
            Error::NotFound { .. } => Code::NotFound,
            Error::Io { source, .. } => match (source.kind(), source.raw_os_error()) {
                // ERANGE: e.g. a cpuset naming a CPU the host does not have.
                (io::ErrorKind::InvalidInput, _) | (_, Some(libc::ERANGE)) => Code::InvalidArgument,
                (io::ErrorKind::NotFound, _) => Code::NotFound,
                (io::ErrorKind::ResourceBusy, _) => Code::FailedPrecondition,
                (io::ErrorKind::PermissionDenied, _) => Code::PermissionDenied,
                _ => Code::Internal,
            },
            Error::Malformed { .. } => Code::Internal,
        }
    }

    pub(crate) fn invalid(
        field: &'static str,
        value: impl ToString,
        reason: impl Into<String>,
    ) -> Error {
        Error::InvalidArgument {
            field,
            value: value.to_string(),
            reason: reason.into(),
        }
    }

    /// A controller file that does not exist in an existing cgroup.
    pub(crate) fn missing_file(controller: Controller, file: &std::path::Path) -> Error {
        Error::MissingController {
            controller,
            detail: format!("{} does not exist", file.display()),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Error {
        Error::Io {
            op,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn malformed(path: impl Into<PathBuf>, detail: impl Into<String>) -> Error {
        Error::Malformed {
            path: path.into(),
            detail: detail.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_table() {
        let io = |e: i32| Error::io("write", "/x", io::Error::from_raw_os_error(e));
        let table: Vec<(Error, Code)> = vec![
            (
                Error::invalid("cpu_shares", 1, "too small"),
                Code::InvalidArgument,
            ),
            (
                Error::missing_file(Controller::Cpu, "/x/cpu.max".as_ref()),
                Code::FailedPrecondition,
            ),
            (
                Error::Unsupported {
                    what: "unified".into(),
                    reason: "v1".into(),
                },
                Code::FailedPrecondition,
            ),
            (Error::NotFound { path: "/x".into() }, Code::NotFound),
            (io(22), Code::InvalidArgument),    // EINVAL
            (io(34), Code::InvalidArgument),    // ERANGE
            (io(2), Code::NotFound),            // ENOENT
            (io(16), Code::FailedPrecondition), // EBUSY
            (io(13), Code::PermissionDenied),   // EACCES
            (io(28), Code::Internal),           // ENOSPC
            (Error::malformed("/x", "bad"), Code::Internal),
        ];
        for (err, code) in table {
            assert_eq!(err.code(), code, "{err}");
        }
    }

    #[test]
    fn messages_name_the_value_and_controller() {
        let e = Error::invalid("cgroup_parent", "/kubepods/../etc", "`..` is not allowed");
        assert_eq!(
            e.to_string(),
            r#"invalid cgroup_parent "/kubepods/../etc": `..` is not allowed"#
        );
        let e = Error::missing_file(Controller::Hugetlb, "/cg/x/hugetlb.2MB.max".as_ref());
        assert_eq!(
            e.to_string(),
            "cgroup controller hugetlb is not available: /cg/x/hugetlb.2MB.max does not exist"
        );
    }
}
