//! Starting a shim from the daemon: exec `<wasmlet> shim`, wait for its `ready <pid>` line.
//! The shim detaches itself (double fork, new session), so it is never the daemon's child and a
//! daemon restart leaves it running.

use std::path::Path;
use std::process::Stdio;

use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

use crate::Error;

/// Starts the shim for `sandbox_id` in `shim_dir` and returns its pid once it is serving.
pub async fn spawn_shim(exe: &Path, sandbox_id: &str, shim_dir: &Path, log_filter: &str) -> Result<u32, Error> {
    spawn_shim_in(exe, sandbox_id, shim_dir, None, log_filter).await
}

/// [`spawn_shim`], with the shim in a new network namespace pinned at `netns`.
pub async fn spawn_shim_in(exe: &Path, sandbox_id: &str, shim_dir: &Path, netns: Option<&Path>, log_filter: &str) -> Result<u32, Error> {
    std::fs::create_dir_all(shim_dir).map_err(Error::io("creating shim directory", shim_dir))?;
    let log_path = shim_dir.join("shim.log");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log_path)
        .map_err(Error::io("opening shim log", &log_path))?;
    let mut command = Command::new(exe);
    command.arg("shim").arg("--sandbox-id").arg(sandbox_id).arg("--dir").arg(shim_dir);
    if let Some(pin) = netns {
        command.arg("--netns").arg(pin);
    }
    let mut child = command
        .env("WASMLET_LOG", log_filter)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::from(log))
        .kill_on_drop(false)
        .spawn()
        .map_err(|e| Error::Spawn(format!("exec {}: {e}", exe.display())))?;
    let stdout = child.stdout.take().ok_or_else(|| Error::Spawn("no stdout pipe".into()))?;
    let mut line = String::new();
    BufReader::new(stdout)
        .read_line(&mut line)
        .await
        .map_err(|e| Error::Spawn(format!("reading the shim's ready line: {e}")))?;
    // The process we exec'd exits right after forking the real shim; reap it.
    let _ = child.wait().await;
    if let Some(message) = line.trim().strip_prefix("error ") {
        return Err(Error::Spawn(message.to_string()));
    }
    line.trim()
        .strip_prefix("ready ")
        .and_then(|pid| pid.parse().ok())
        .ok_or_else(|| {
            let log = std::fs::read_to_string(&log_path).unwrap_or_default();
            Error::Spawn(format!("the shim did not start (said {line:?}); its log: {}", log.trim()))
        })
}
