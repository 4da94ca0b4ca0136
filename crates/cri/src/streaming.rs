//! The runtime behind the streaming server ([`wasmlet_streaming::Backend`]): an exec runs in
//! the container's shim with pipes the daemon bridges to the client's streams; a port-forward
//! connects to 127.0.0.1:port inside the pod's network namespace, from a thread of its own that
//! enters the namespace and ends with the connection made.
//!
//! [`start`] runs the server for a runtime (the daemon calls it once); the runtime keeps it in its
//! options, where Exec, Attach and PortForward find it.

use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::sync::mpsc;
use wasmlet_shim::exec::{ExecSpec, TerminalSize};
use wasmlet_streaming::{BackendError, PodConnection, Stdio};

use crate::ids::new_id;
use crate::{Error, Runtime};

/// How long connecting to a pod's port may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

pub use wasmlet_streaming::DEFAULT_IDLE_TIMEOUT;

/// Starts the streaming server on `addr` for `runtime`; its URLs name the address it bound. A
/// session silent for `idle_timeout` is closed (`None`: never).
pub async fn start(
    runtime: &Arc<Runtime>,
    addr: SocketAddr,
    idle_timeout: Option<Duration>,
) -> Result<SocketAddr, Error> {
    let backend = Arc::new(Backend {
        runtime: Arc::downgrade(runtime),
    });
    let config = wasmlet_streaming::Config {
        addr,
        idle_timeout,
        ..Default::default()
    };
    let server = wasmlet_streaming::Server::start(config, backend).await?;
    let bound = server.addr();
    runtime
        .opts
        .streaming
        .set(server)
        .map_err(|_| Error::Internal("the streaming server was already started".into()))?;
    Ok(bound)
}

struct Backend {
    runtime: Weak<Runtime>,
}

impl Backend {
    /// Runs an exec (or, with `attach`, attaches to the container's process) and bridges its
    /// stdio to the client's streams; returns the exit code.
    async fn session(&self, container_id: &str, cmd: &[String], attach: bool, stdio: Stdio) -> Result<i32, BackendError> {
        let runtime = self.runtime()?;
        let c = runtime.running_container(container_id).map_err(failed)?;
        let exec_id = new_id();
        let spec = ExecSpec {
            argv: cmd.to_vec(),
            tty: stdio.tty,
            stdin: stdio.stdin.is_some(),
            stdout: stdio.stdout.is_some(),
            stderr: stdio.stderr.is_some(),
            attach,
            ..Default::default()
        };
        let why_to = stdio.stderr.clone().or_else(|| stdio.stdout.clone());
        let shim = runtime.shim(&c.sandbox_id);
        let (session, pipes) = shim.exec(&c.id, &exec_id, spec).await.map_err(failed)?;
        tracing::info!(sandbox.id = %c.sandbox_id, container.id = %c.id, exec.id = %exec_id, ?cmd, "streaming exec started");
        // The exec's end is its exit and the end of its output; the client's input and resizes
        // are forwarded meanwhile and dropped after.
        let main = async {
            let (_, _, exit) = tokio::join!(
                copy_out(pipes.stdout, stdio.stdout),
                copy_out(pipes.stderr, stdio.stderr),
                session.wait()
            );
            exit
        };
        let side = async {
            tokio::join!(
                copy_in(stdio.stdin, pipes.stdin),
                forward_resizes(stdio.resize, &shim, &exec_id)
            );
            std::future::pending::<()>().await
        };
        let exit = tokio::select! {
            exit = main => exit.map_err(failed)?,
            () = side => unreachable!("pending never ends"),
        };
        tracing::info!(container.id = %c.id, exec.id = %exec_id, exit_code = exit.exit_code, reason = %exit.reason, "streaming exec ended");
        // Why a guest trapped or could not start is nowhere else: the client's stderr (or its
        // terminal) gets it.
        if exit.exit_code != 0
            && !exit.message.is_empty()
            && let Some(to) = &why_to
        {
            let _ = to
                .send(Bytes::from(format!("{}: {}\n", exit.reason, exit.message)))
                .await;
        }
        Ok(exit.exit_code)
    }

    fn runtime(&self) -> Result<Arc<Runtime>, BackendError> {
        self.runtime
            .upgrade()
            .ok_or_else(|| BackendError("the runtime is shutting down".into()))
    }
}

fn failed(e: impl std::error::Error) -> BackendError {
    BackendError(crate::chain(&e))
}

#[async_trait::async_trait]
impl wasmlet_streaming::Backend for Backend {
    async fn exec(
        &self,
        container_id: &str,
        cmd: &[String],
        stdio: Stdio,
    ) -> Result<i32, BackendError> {
        self.session(container_id, cmd, false, stdio).await
    }

    /// Attach: the same session with the container's own process (Linux containers).
    async fn attach(&self, container_id: &str, stdio: Stdio) -> Result<i32, BackendError> {
        self.session(container_id, &[], true, stdio).await
    }

    async fn port_forward(
        &self,
        sandbox_id: &str,
        port: u16,
    ) -> Result<Box<dyn PodConnection>, BackendError> {
        let runtime = self.runtime()?;
        let sandbox = runtime.sandboxes.get(sandbox_id).map_err(failed)?;
        let conn = connect_in(sandbox.netns.clone(), port)
            .await
            .map_err(|e| BackendError(e.to_string()))?;
        tracing::debug!(sandbox.id = %sandbox.id, port, "port-forward connection made");
        Ok(Box::new(conn))
    }
}

/// Copies the exec's output to the client until the exec closes it.
async fn copy_out(pipe: Option<tokio::net::unix::pipe::Receiver>, to: Option<mpsc::Sender<Bytes>>) {
    let (Some(mut pipe), Some(to)) = (pipe, to) else {
        return;
    };
    let mut buf = vec![0u8; 32 * 1024];
    loop {
        match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => {
                if to.send(Bytes::copy_from_slice(&buf[..n])).await.is_err() {
                    return;
                }
            }
        }
    }
}

/// Copies the client's input to the exec; its end closes the exec's stdin.
async fn copy_in(
    from: Option<mpsc::Receiver<Bytes>>,
    pipe: Option<tokio::net::unix::pipe::Sender>,
) {
    let (Some(mut from), Some(mut pipe)) = (from, pipe) else {
        return;
    };
    while let Some(chunk) = from.recv().await {
        if pipe.write_all(&chunk).await.is_err() {
            return;
        }
    }
}

async fn forward_resizes(
    sizes: Option<mpsc::Receiver<wasmlet_streaming::TerminalSize>>,
    shim: &wasmlet_shim::client::ShimClient,
    exec_id: &str,
) {
    let Some(mut sizes) = sizes else { return };
    while let Some(s) = sizes.recv().await {
        if let Err(e) = shim
            .exec_resize(
                exec_id,
                TerminalSize {
                    width: s.width,
                    height: s.height,
                },
            )
            .await
        {
            tracing::debug!(exec.id = %exec_id, error = %e, "terminal resize");
        }
    }
}

/// What went wrong connecting to a pod's port.
#[derive(Debug, thiserror::Error)]
enum ConnectError {
    #[error("entering the pod's network namespace {}", path.display())]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "failed to connect to localhost:{port} inside the pod's network namespace: IPv4: {v4}; IPv6: {v6}"
    )]
    Refused {
        port: u16,
        v4: std::io::Error,
        v6: std::io::Error,
    },
    #[error("the connecting thread: {0}")]
    Thread(String),
}

/// Connects to `port` on loopback inside the namespace pinned at `netns` (the node's for a
/// hostNetwork pod), IPv4 then IPv6 as containerd does. The connecting thread is made for this
/// one connection: a thread that entered a namespace is never handed back to a pool.
async fn connect_in(
    netns: Option<PathBuf>,
    port: u16,
) -> Result<tokio::net::TcpStream, ConnectError> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name("portforward".into())
        .spawn(move || {
            let _ = tx.send(connect_blocking(netns.as_deref(), port));
        })
        .map_err(|e| ConnectError::Thread(e.to_string()))?;
    let stream = rx
        .await
        .map_err(|_| ConnectError::Thread("it ended without an answer".into()))??;
    stream
        .set_nonblocking(true)
        .map_err(|e| ConnectError::Thread(e.to_string()))?;
    let _ = stream.set_nodelay(true);
    tokio::net::TcpStream::from_std(stream).map_err(|e| ConnectError::Thread(e.to_string()))
}

fn connect_blocking(netns: Option<&Path>, port: u16) -> Result<std::net::TcpStream, ConnectError> {
    if let Some(path) = netns {
        let ns = std::fs::File::open(path).map_err(|source| ConnectError::Netns {
            path: path.to_owned(),
            source,
        })?;
        nix::sched::setns(ns.as_fd(), nix::sched::CloneFlags::CLONE_NEWNET).map_err(|e| {
            ConnectError::Netns {
                path: path.to_owned(),
                source: e.into(),
            }
        })?;
    }
    let v4 = match std::net::TcpStream::connect_timeout(
        &SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
        CONNECT_TIMEOUT,
    ) {
        Ok(s) => return Ok(s),
        Err(e) => e,
    };
    match std::net::TcpStream::connect_timeout(
        &SocketAddr::from((Ipv6Addr::LOCALHOST, port)),
        CONNECT_TIMEOUT,
    ) {
        Ok(s) => Ok(s),
        Err(v6) => Err(ConnectError::Refused { port, v4, v6 }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn connects_on_the_nodes_loopback_without_a_namespace() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        let mut conn = connect_in(None, port).await.unwrap();
        let (mut accepted, _) = listener.accept().unwrap();
        conn.write_all(b"ping").await.unwrap();
        let mut got = [0u8; 4];
        std::io::Read::read_exact(&mut accepted, &mut got).unwrap();
        assert_eq!(&got, b"ping");
    }

    #[tokio::test]
    async fn a_port_nothing_listens_on_is_refused_with_both_errors() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let err = connect_in(None, port).await.unwrap_err().to_string();
        assert!(
            err.contains(&format!("localhost:{port}"))
                && err.contains("IPv4")
                && err.contains("IPv6"),
            "{err}"
        );
        let err = connect_in(Some("/nonexistent/netns".into()), port)
            .await
            .unwrap_err();
        assert!(matches!(err, ConnectError::Netns { .. }), "{err}");
    }
}
