//! UpdateRuntimeConfig (kubelet sends the node's pod CIDR) and RuntimeConfig (the cgroup driver).

use k8s_cri::v1::{
    CgroupDriver, LinuxRuntimeConfiguration, RuntimeConfigRequest, RuntimeConfigResponse, UpdateRuntimeConfigRequest,
    UpdateRuntimeConfigResponse,
};

use crate::{Error, Runtime};

impl Runtime {
    pub async fn update_runtime_config(&self, req: UpdateRuntimeConfigRequest) -> Result<UpdateRuntimeConfigResponse, Error> {
        let cidr = req.runtime_config.and_then(|c| c.network_config).map(|n| n.pod_cidr).unwrap_or_default();
        tracing::info!(pod_cidr = %cidr, "runtime config updated");
        *self.pod_cidr.lock().unwrap_or_else(|e| e.into_inner()) = cidr;
        Ok(UpdateRuntimeConfigResponse {})
    }

    pub async fn runtime_config(&self, _req: RuntimeConfigRequest) -> Result<RuntimeConfigResponse, Error> {
        Ok(RuntimeConfigResponse {
            linux: Some(LinuxRuntimeConfiguration { cgroup_driver: CgroupDriver::Cgroupfs as i32 }),
        })
    }
}
