//! Attach: validates the request (a running container, a sensible choice of streams) and
//! answers with a one-time URL of the streaming server.

use k8s_cri::v1::{AttachRequest, AttachResponse};

use crate::service::require;
use crate::{Error, Runtime};

impl Runtime {
    pub async fn attach(&self, req: AttachRequest) -> Result<AttachResponse, Error> {
        let c = self.running_container(require(&req.container_id, "container_id")?)?;
        let url = self
            .streaming_server()?
            .attach_url(wasmlet_streaming::AttachRequest {
                container_id: c.id.clone(),
                tty: req.tty,
                stdin: req.stdin,
                stdout: req.stdout,
                stderr: req.stderr,
            })?;
        Ok(AttachResponse { url })
    }
}
