//! ContainerStatus: state, timestamps, exit code and reason, image, log path, mounts; with
//! `verbose`, the config and the Wasm artifact kind as JSON.

use std::collections::HashMap;

use k8s_cri::v1::{ContainerStatusRequest, ContainerStatusResponse};

use crate::service::require;
use crate::{Error, Runtime, convert};

impl Runtime {
    pub async fn container_status(&self, req: ContainerStatusRequest) -> Result<ContainerStatusResponse, Error> {
        let c = self.containers.get(require(&req.container_id, "container_id")?)?;
        let mut info = HashMap::new();
        if req.verbose {
            let verbose = serde_json::json!({
                "sandboxID": c.sandbox_id,
                "config": c.config,
                "imageID": c.image_id,
                "runtimeType": "wasmlet.wasm",
            });
            info.insert("info".into(), verbose.to_string());
        }
        Ok(ContainerStatusResponse { status: Some(convert::container_status(&c)), info })
    }
}
