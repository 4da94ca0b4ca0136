//! ExecSync: runs a command in a running container and answers with its exit code and output
//! (kubelet's exec probes). The shim runs it (for Wasm: a new instance of the container's module)
//! with the request's timeout; at the timeout it is killed and the call fails with
//! DeadlineExceeded, as kubelet expects.

use std::time::Duration;

use k8s_cri::v1::{ExecSyncRequest, ExecSyncResponse};
use tokio::io::AsyncReadExt;
use wasmlet_shim::exec::ExecSpec;

use crate::ids::new_id;
use crate::service::require;
use crate::{Error, Runtime};

/// Output kept per stream (kubelet's CRI message limit is 16 MiB); the rest is read and dropped.
const MAX_OUTPUT: usize = 16 * 1024 * 1024;
/// How long past its timeout the daemon waits for the shim to report the kill.
const KILL_GRACE: Duration = Duration::from_secs(5);

impl Runtime {
    pub async fn exec_sync(&self, req: ExecSyncRequest) -> Result<ExecSyncResponse, Error> {
        let c = self.running_container(require(&req.container_id, "container_id")?)?;
        if req.cmd.is_empty() {
            return Err(Error::InvalidArgument("cmd is required".into()));
        }
        let timeout = u64::try_from(req.timeout)
            .ok()
            .filter(|&t| t > 0)
            .map(Duration::from_secs);
        let spec = ExecSpec {
            argv: req.cmd.clone(),
            stdout: true,
            stderr: true,
            timeout_ms: timeout.map(|t| t.as_millis() as u64),
            ..Default::default()
        };
        let exec_id = new_id();
        let start = std::time::Instant::now();
        let (session, pipes) = self.shim(&c.sandbox_id).exec(&c.id, &exec_id, spec).await?;
        let run = async {
            let (stdout, stderr, exit) = tokio::join!(
                read_capped(pipes.stdout),
                read_capped(pipes.stderr),
                session.wait()
            );
            exit.map(|exit| (stdout, stderr, exit))
        };
        // The shim enforces the timeout; this one only covers a shim that stopped answering.
        let (stdout, stderr, exit) = match timeout {
            Some(t) => tokio::time::timeout(t + KILL_GRACE, run)
                .await
                .map_err(|_| timed_out(&req.cmd, t))??,
            None => run.await?,
        };
        tracing::debug!(
            sandbox.id = %c.sandbox_id, container.id = %c.id, exec.id = %exec_id, exit_code = exit.exit_code,
            reason = %exit.reason, exec.us = start.elapsed().as_micros() as u64, "exec sync ended"
        );
        if exit.reason == "Timeout" {
            return Err(timed_out(&req.cmd, timeout.unwrap_or_default()));
        }
        if !exit.message.is_empty() && exit.exit_code != 0 && stderr.is_empty() {
            // A trap or a refused module has no stderr of its own: say why.
            return Ok(ExecSyncResponse {
                stdout,
                stderr: exit.message.into_bytes(),
                exit_code: exit.exit_code,
            });
        }
        Ok(ExecSyncResponse {
            stdout,
            stderr,
            exit_code: exit.exit_code,
        })
    }
}

fn timed_out(cmd: &[String], timeout: Duration) -> Error {
    Error::DeadlineExceeded(format!(
        "command {cmd:?} timed out after {}s and was killed",
        timeout.as_secs()
    ))
}

/// Reads a stream to its end, keeping the first [`MAX_OUTPUT`] bytes.
async fn read_capped(pipe: Option<tokio::net::unix::pipe::Receiver>) -> Vec<u8> {
    let Some(mut pipe) = pipe else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return out,
            Ok(n) => {
                let keep = n.min(MAX_OUTPUT - out.len());
                out.extend_from_slice(&buf[..keep]);
            }
        }
    }
}
