//! Exec and attach sessions (kubelet's `remotecommand` server): gather the streams the client
//! opens (SPDY) or the channels of the connection (WebSocket), run the command through the
//! [`Backend`], then report its exit on the error stream and close.
//!
//! SPDY subprotocols `v4.channel.k8s.io`, `v3`, `v2` and `channel.k8s.io` differ in the resize
//! stream (v3+) and the status format (JSON from v4). WebSocket channels are 0 stdin, 1 stdout,
//! 2 stderr, 3 error, 4 resize; `v5.channel.k8s.io` adds the client's close signal.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

use crate::backend::{Backend, Stdio, TerminalSize};
use crate::status::{self, StatusFormat};
use crate::writer::{Writer, pump};
use crate::{spdy, ws};

/// SPDY subprotocols, most preferred first.
pub(crate) const SPDY_PROTOCOLS: &[&str] = &[
    "v4.channel.k8s.io",
    "v3.channel.k8s.io",
    "v2.channel.k8s.io",
    "channel.k8s.io",
];
/// WebSocket subprotocols, most preferred first (`""`: a client that named none).
pub(crate) const WS_PROTOCOLS: &[&str] = &[
    "v5.channel.k8s.io",
    "v4.channel.k8s.io",
    "v4.base64.channel.k8s.io",
    "channel.k8s.io",
    "base64.channel.k8s.io",
    "",
];

/// What a session runs: an exec's command or an attach.
#[derive(Debug, Clone)]
pub(crate) struct Command {
    pub container_id: String,
    /// `None` for an attach.
    pub cmd: Option<Vec<String>>,
    pub stdin: bool,
    pub stdout: bool,
    pub stderr: bool,
    pub tty: bool,
}

/// The streams of a session, once gathered.
struct Streams {
    stdin: Option<mpsc::Receiver<Bytes>>,
    stdout: Option<Writer>,
    stderr: Option<Writer>,
    error: Writer,
    resize: Option<mpsc::Receiver<Bytes>>,
    format: StatusFormat,
}

pub(crate) async fn serve_spdy<T: AsyncRead + AsyncWrite + Send + 'static>(
    io: T,
    protocol: &str,
    command: Command,
    backend: Arc<dyn Backend>,
    creation_timeout: Duration,
) {
    let mut session = spdy::Session::start(io);
    let resize_supported = matches!(protocol, "v4.channel.k8s.io" | "v3.channel.k8s.io");
    let expected = 1 + [
        command.stdin,
        command.stdout,
        command.stderr,
        command.tty && resize_supported,
    ]
    .iter()
    .filter(|b| **b)
    .count();
    let (mut stdin, mut stdout, mut stderr, mut error, mut resize) = (None, None, None, None, None);
    let mut received = 0;
    let deadline = tokio::time::sleep(creation_timeout);
    tokio::pin!(deadline);
    while received < expected {
        tokio::select! {
            s = session.accept() => {
                let Some(s) = s else { return };
                let writer = Writer::Spdy { out: session.out.clone(), id: s.id };
                match s.headers.get("streamtype") {
                    Some("error") => error = Some(writer),
                    Some("stdin") => stdin = Some(s.data),
                    Some("stdout") => stdout = Some(writer),
                    Some("stderr") => stderr = Some(writer),
                    Some("resize") => resize = Some(s.data),
                    other => {
                        tracing::debug!(stream.type = ?other, "unexpected stream type: refused");
                        session.reset(s.id).await;
                        continue;
                    }
                }
                session.reply(s.id).await;
                received += 1;
            }
            () = &mut deadline => {
                tracing::debug!(received, expected, "timed out waiting for the client to create streams");
                session.shutdown().await;
                return;
            }
        }
    }
    let Some(error) = error else {
        tracing::debug!("the client opened no error stream");
        session.shutdown().await;
        return;
    };
    let format = if protocol == "v4.channel.k8s.io" {
        StatusFormat::Json
    } else {
        StatusFormat::Text
    };
    let streams = Streams {
        stdin: stdin.filter(|_| command.stdin),
        stdout: stdout.filter(|_| command.stdout),
        stderr: stderr.filter(|_| command.stderr),
        error,
        resize: resize.filter(|_| command.tty),
        format,
    };
    run(command, streams, backend, session.closed()).await;
    session.shutdown().await;
}

pub(crate) async fn serve_ws<T: AsyncRead + AsyncWrite + Send + 'static>(
    io: T,
    protocol: &str,
    command: Command,
    backend: Arc<dyn Backend>,
) {
    let codec = if protocol.contains("base64") {
        ws::Codec::Base64
    } else {
        ws::Codec::Binary
    };
    let v5 = protocol == "v5.channel.k8s.io";
    let mut session =
        ws::Session::start(io, codec, v5, &[command.stdin, false, false, false, true]);
    let channel = |channel: u8| Writer::Ws {
        out: session.out.clone(),
        channel,
    };
    // An empty message on the lowest writable channel tells the client the session is ready.
    let first = if command.stdout {
        1
    } else if command.stderr {
        2
    } else {
        3
    };
    let _ = session
        .out
        .send(ws::Out::Channel(first, Bytes::new()))
        .await;
    let format = if protocol.starts_with("v4.") || v5 {
        StatusFormat::Json
    } else {
        StatusFormat::Text
    };
    let streams = Streams {
        stdin: session.inputs[0].take(),
        stdout: command.stdout.then(|| channel(1)),
        stderr: command.stderr.then(|| channel(2)),
        error: channel(3),
        resize: session.inputs[4].take().filter(|_| command.tty),
        format,
    };
    run(command, streams, backend, session.closed()).await;
    session.shutdown().await;
}

/// Runs the command with the gathered streams; the backend's future is dropped (and with it
/// whatever it started) if the client goes away first.
async fn run(
    command: Command,
    streams: Streams,
    backend: Arc<dyn Backend>,
    closed: impl Future<Output = String>,
) {
    let (stdout, stdout_pump) = streams.stdout.map(pump).unzip();
    let (stderr, stderr_pump) = streams.stderr.map(pump).unzip();
    let stdio = Stdio {
        stdin: streams.stdin,
        stdout,
        stderr,
        resize: streams.resize.map(decode_resizes),
        tty: command.tty,
    };
    let id = command.container_id.as_str();
    let outcome = tokio::select! {
        r = async {
            match &command.cmd {
                Some(cmd) => backend.exec(id, cmd, stdio).await,
                None => backend.attach(id, stdio).await,
            }
        } => r,
        why = closed => {
            tracing::info!(container.id = %id, why = %why, "streaming client went away: session ended");
            return;
        }
    };
    for task in [stdout_pump, stderr_pump].into_iter().flatten() {
        let _ = task.await;
    }
    tracing::debug!(container.id = %id, outcome = ?outcome, "streaming session finished");
    let status = status::encode(streams.format, &outcome);
    if !status.is_empty() {
        streams.error.write(Bytes::from(status)).await;
    }
    streams.error.finish().await;
}

/// Turns the resize stream's JSON objects (`{"Width":80,"Height":24}`, back to back, split
/// anywhere) into sizes; a malformed one ends the stream.
fn decode_resizes(mut raw: mpsc::Receiver<Bytes>) -> mpsc::Receiver<TerminalSize> {
    let (tx, rx) = mpsc::channel(8);
    tokio::spawn(async move {
        let mut buf = Vec::new();
        while let Some(chunk) = raw.recv().await {
            buf.extend_from_slice(&chunk);
            let mut it = serde_json::Deserializer::from_slice(&buf).into_iter::<TerminalSize>();
            let mut used = 0;
            loop {
                match it.next() {
                    Some(Ok(size)) => {
                        used = it.byte_offset();
                        if tx.send(size).await.is_err() {
                            return;
                        }
                    }
                    Some(Err(e)) if e.is_eof() => break,
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "malformed terminal size: resize stream ignored from here");
                        return;
                    }
                    None => {
                        used = buf.len();
                        break;
                    }
                }
            }
            buf.drain(..used);
            if buf.len() > 4096 {
                return;
            }
        }
    });
    rx
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn resizes_split_anywhere_are_decoded() {
        let (tx, raw) = mpsc::channel(8);
        let mut sizes = decode_resizes(raw);
        tx.send(Bytes::from_static(b"{\"Width\":80,\"Hei"))
            .await
            .unwrap();
        tx.send(Bytes::from_static(
            b"ght\":24}{\"width\":100,\"height\":30}",
        ))
        .await
        .unwrap();
        assert_eq!(
            sizes.recv().await,
            Some(TerminalSize {
                width: 80,
                height: 24
            })
        );
        assert_eq!(
            sizes.recv().await,
            Some(TerminalSize {
                width: 100,
                height: 30
            })
        );
        tx.send(Bytes::from_static(b"nonsense")).await.unwrap();
        assert_eq!(sizes.recv().await, None);
    }
}
