//! Exec: validates the request (a running container, a command, a sensible choice of streams)
//! and answers with a one-time URL of the streaming server, where the client runs the command
//! (see [`crate::streaming`]). Also the check every exec-like call shares.

use k8s_cri::v1::{ExecRequest, ExecResponse};

use crate::service::require;
use crate::store::{ContainerRecord, ContainerState};
use crate::{Error, Runtime};

impl Runtime {
    pub async fn exec(&self, req: ExecRequest) -> Result<ExecResponse, Error> {
        let c = self.running_container(require(&req.container_id, "container_id")?)?;
        if req.cmd.is_empty() {
            return Err(Error::InvalidArgument("cmd is required".into()));
        }
        let url = self
            .streaming_server()?
            .exec_url(wasmlet_streaming::ExecRequest {
                container_id: c.id.clone(),
                cmd: req.cmd,
                tty: req.tty,
                stdin: req.stdin,
                stdout: req.stdout,
                stderr: req.stderr,
            })?;
        tracing::debug!(sandbox.id = %c.sandbox_id, container.id = %c.id, "exec URL handed out");
        Ok(ExecResponse { url })
    }

    /// The container `id`, which must be running.
    pub(crate) fn running_container(&self, id: &str) -> Result<ContainerRecord, Error> {
        let c = self.containers.get(id)?;
        if c.state != ContainerState::Running {
            return Err(Error::FailedPrecondition(format!(
                "container {} is not running (it is {:?})",
                c.id, c.state
            )));
        }
        Ok(c)
    }

    /// The daemon's streaming server; `wasmlet run` has none.
    pub(crate) fn streaming_server(&self) -> Result<&wasmlet_streaming::Server, Error> {
        self.opts.streaming.get().ok_or_else(|| {
            Error::FailedPrecondition(
                "this runtime has no streaming server (it is started by `wasmlet daemon`)".into(),
            )
        })
    }
}
