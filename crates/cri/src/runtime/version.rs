//! Version: the runtime's name and version, and the CRI API version it serves.

use k8s_cri::v1::{VersionRequest, VersionResponse};

use crate::{Error, Runtime};

/// The CRI API version this runtime implements.
pub const CRI_API_VERSION: &str = "v1";

impl Runtime {
    pub async fn version(&self, _req: VersionRequest) -> Result<VersionResponse, Error> {
        Ok(VersionResponse {
            // kubelet checks this against its own expectation of the gRPC API version.
            version: "0.1.0".into(),
            runtime_name: "wasmlet".into(),
            runtime_version: env!("CARGO_PKG_VERSION").into(),
            runtime_api_version: CRI_API_VERSION.into(),
        })
    }
}
