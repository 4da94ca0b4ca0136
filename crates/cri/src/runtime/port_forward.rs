//! PortForward: validates the request (a ready pod, ports in range) and answers with a one-time
//! URL of the streaming server, whose connections land on the pod's loopback inside its network
//! namespace (see [`crate::streaming`]).

use k8s_cri::v1::{PortForwardRequest, PortForwardResponse};

use crate::service::require;
use crate::store::SandboxState;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn port_forward(
        &self,
        req: PortForwardRequest,
    ) -> Result<PortForwardResponse, Error> {
        let sandbox = self
            .sandboxes
            .get(require(&req.pod_sandbox_id, "pod_sandbox_id")?)?;
        if sandbox.state != SandboxState::Ready {
            return Err(Error::FailedPrecondition(format!(
                "pod sandbox {} is not ready",
                sandbox.id
            )));
        }
        let mut ports = Vec::with_capacity(req.port.len());
        for p in &req.port {
            match u16::try_from(*p) {
                Ok(port) if port > 0 => ports.push(port),
                _ => {
                    return Err(Error::InvalidArgument(format!(
                        "port {p} is out of range (1-65535)"
                    )));
                }
            }
        }
        let url =
            self.streaming_server()?
                .port_forward_url(wasmlet_streaming::PortForwardRequest {
                    sandbox_id: sandbox.id,
                    ports,
                })?;
        Ok(PortForwardResponse { url })
    }
}
