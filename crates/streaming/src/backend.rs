//! What the runtime implements for the streaming server ([`Backend`]), the requests a URL is
//! handed out for, and the transport-neutral streams of one exec or attach session ([`Stdio`]).

use bytes::Bytes;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// An exec the runtime validated and a client may now stream (CRI `ExecRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecRequest {
    pub container_id: String,
    pub cmd: Vec<String>,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// An attach (CRI `AttachRequest`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AttachRequest {
    pub container_id: String,
    pub tty: bool,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
}

/// A port-forward (CRI `PortForwardRequest`); `ports` lists what a WebSocket client may name,
/// empty for any.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PortForwardRequest {
    pub sandbox_id: String,
    pub ports: Vec<u16>,
}

/// A terminal size as remotecommand clients send it on the resize stream (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub struct TerminalSize {
    #[serde(rename = "Width", alias = "width")]
    pub width: u16,
    #[serde(rename = "Height", alias = "height")]
    pub height: u16,
}

/// The streams of one exec or attach, whatever the transport. Data arrives and leaves in chunks;
/// a receiver that yields `None` is the client's end of input, and the runtime drops a sender to
/// end that output stream. The exec's end is the backend's `exec` returning.
#[derive(Debug)]
pub struct Stdio {
    pub stdin: Option<mpsc::Receiver<Bytes>>,
    pub stdout: Option<mpsc::Sender<Bytes>>,
    pub stderr: Option<mpsc::Sender<Bytes>>,
    pub resize: Option<mpsc::Receiver<TerminalSize>>,
    pub tty: bool,
}

/// A connection to a port inside a pod.
pub trait PodConnection: AsyncRead + AsyncWrite + Send + Unpin + 'static {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin + 'static> PodConnection for T {}

/// An error the runtime reports to the client (on the error stream, or the port's error stream).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct BackendError(pub String);

/// What the runtime does for the streaming server. Each method's future is dropped when the client
/// goes away: dropping it must stop what it started (the exec'd process or instance).
#[async_trait::async_trait]
pub trait Backend: Send + Sync + 'static {
    /// Runs `cmd` in the container; returns its exit code.
    async fn exec(
        &self,
        container_id: &str,
        cmd: &[String],
        stdio: Stdio,
    ) -> Result<i32, BackendError>;
    /// Attaches to the container's own streams until it exits (its exit code) or the client leaves.
    async fn attach(&self, container_id: &str, stdio: Stdio) -> Result<i32, BackendError>;
    /// Connects to `port` on the pod's loopback, inside the pod's network namespace.
    async fn port_forward(
        &self,
        sandbox_id: &str,
        port: u16,
    ) -> Result<Box<dyn PodConnection>, BackendError>;
}
