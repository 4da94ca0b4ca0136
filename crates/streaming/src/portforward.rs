//! Port-forward sessions (kubelet's `portforward` server). SPDY (`portforward.k8s.io`): the
//! client opens a data and an error stream per forwarded connection, paired by their `requestID`
//! header and naming the port in `port`. WebSocket (`v4.channel.k8s.io`): channels 2i (data) and
//! 2i+1 (error) for the i-th port of the request, each starting with the port as two
//! little-endian bytes. Either way each pair is one TCP connection to the pod's loopback, made by
//! the [`Backend`]; a failure is written as text on the pair's error stream.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;
use tokio::task::JoinSet;

use crate::backend::{Backend, PodConnection};
use crate::spdy::{self, IncomingStream};
use crate::writer::Writer;
use crate::ws;

pub(crate) const SPDY_PROTOCOL: &str = "portforward.k8s.io";
pub(crate) const WS_PROTOCOLS: &[&str] = &["v4.channel.k8s.io", "v4.base64.channel.k8s.io", ""];

/// Half-made pairs one connection may hold.
const MAX_PENDING_PAIRS: usize = 256;

/// One forwarded connection's streams.
struct Pair {
    port: u16,
    data_in: mpsc::Receiver<Bytes>,
    data_out: Writer,
    error: Writer,
}

#[derive(Default)]
struct HalfPair {
    data: Option<IncomingStream>,
    error: Option<IncomingStream>,
}

/// Checks a stream's `port` and `streamType` headers as kubelet does.
fn stream_port(s: &IncomingStream) -> Result<(u16, bool), String> {
    let port = s.headers.get("port").ok_or("\"port\" header is required")?;
    let port: u16 = port
        .parse()
        .map_err(|e| format!("unable to parse {port:?} as a port: {e}"))?;
    if port == 0 {
        return Err("port \"0\" must be > 0".into());
    }
    match s.headers.get("streamtype") {
        Some("data") => Ok((port, true)),
        Some("error") => Ok((port, false)),
        Some(other) => Err(format!("invalid stream type {other:?}")),
        None => Err("\"streamType\" header is required".into()),
    }
}

pub(crate) async fn serve_spdy<T: AsyncRead + AsyncWrite + Send + 'static>(
    io: T,
    sandbox_id: String,
    backend: Arc<dyn Backend>,
) {
    let mut session = spdy::Session::start(io);
    let closed = session.closed();
    tokio::pin!(closed);
    let mut pending: HashMap<String, HalfPair> = HashMap::new();
    let mut forwards = JoinSet::new();
    loop {
        tokio::select! {
            s = session.accept() => {
                let Some(s) = s else { break };
                let (port, is_data) = match stream_port(&s) {
                    Ok(p) => p,
                    Err(why) => {
                        tracing::debug!(sandbox.id = %sandbox_id, why = %why, "port-forward stream refused");
                        session.reset(s.id).await;
                        continue;
                    }
                };
                // Old clients send no request id: their data stream is the error stream's id + 2.
                let request_id = match s.headers.get("requestid") {
                    Some(id) => id.to_string(),
                    None if is_data => s.id.saturating_sub(2).to_string(),
                    None => s.id.to_string(),
                };
                if pending.len() >= MAX_PENDING_PAIRS && !pending.contains_key(&request_id) {
                    session.reset(s.id).await;
                    continue;
                }
                session.reply(s.id).await;
                let half = pending.entry(request_id.clone()).or_default();
                let slot = if is_data { &mut half.data } else { &mut half.error };
                if slot.replace(s).is_some() {
                    tracing::debug!(request.id = %request_id, "duplicate port-forward stream replaced");
                }
                let complete = matches!(pending.get(&request_id), Some(HalfPair { data: Some(_), error: Some(_) }));
                if complete && let Some(HalfPair { data: Some(data), error: Some(error) }) = pending.remove(&request_id) {
                    let pair = Pair {
                        port,
                        data_out: Writer::Spdy { out: session.out.clone(), id: data.id },
                        error: Writer::Spdy { out: session.out.clone(), id: error.id },
                        data_in: data.data,
                    };
                    forwards.spawn(forward(pair, sandbox_id.clone(), Arc::clone(&backend)));
                }
            }
            Some(_) = forwards.join_next(), if !forwards.is_empty() => {}
            why = &mut closed => {
                tracing::debug!(sandbox.id = %sandbox_id, why = %why, "port-forward session ended");
                break;
            }
        }
    }
    // Dropping the set aborts every forward still running, closing its pod connection.
    drop(forwards);
    session.shutdown().await;
}

pub(crate) async fn serve_ws<T: AsyncRead + AsyncWrite + Send + 'static>(
    io: T,
    protocol: &str,
    sandbox_id: String,
    ports: Vec<u16>,
    backend: Arc<dyn Backend>,
) {
    let codec = if protocol.contains("base64") {
        ws::Codec::Base64
    } else {
        ws::Codec::Binary
    };
    let readable: Vec<bool> = ports.iter().flat_map(|_| [true, false]).collect();
    let mut session = ws::Session::start(io, codec, false, &readable);
    let mut forwards = JoinSet::new();
    for (i, port) in ports.iter().enumerate() {
        let (data, error) = ((2 * i) as u8, (2 * i + 1) as u8);
        let prefix = Bytes::copy_from_slice(&port.to_le_bytes());
        let _ = session
            .out
            .send(ws::Out::Channel(data, prefix.clone()))
            .await;
        let _ = session.out.send(ws::Out::Channel(error, prefix)).await;
        let Some(data_in) = session.inputs[2 * i].take() else {
            continue;
        };
        let pair = Pair {
            port: *port,
            data_in,
            data_out: Writer::Ws {
                out: session.out.clone(),
                channel: data,
            },
            error: Writer::Ws {
                out: session.out.clone(),
                channel: error,
            },
        };
        forwards.spawn(forward(pair, sandbox_id.clone(), Arc::clone(&backend)));
    }
    let closed = session.closed();
    tokio::select! {
        () = async { while forwards.join_next().await.is_some() {} } => {}
        why = closed => tracing::debug!(sandbox.id = %sandbox_id, why = %why, "port-forward session ended"),
    }
    drop(forwards);
    session.shutdown().await;
}

/// One forwarded connection: connect, copy both ways, end the streams.
async fn forward(pair: Pair, sandbox_id: String, backend: Arc<dyn Backend>) {
    let Pair {
        port,
        data_in,
        data_out,
        error,
    } = pair;
    match backend.port_forward(&sandbox_id, port).await {
        Ok(conn) => {
            tracing::debug!(sandbox.id = %sandbox_id, port, "port-forward connected");
            copy(conn, data_in, &data_out).await;
        }
        Err(e) => {
            let msg = format!("error forwarding port {port} to pod {sandbox_id}: {e}");
            tracing::info!(sandbox.id = %sandbox_id, port, error = %e, "port-forward failed");
            error.write(Bytes::from(msg)).await;
        }
    }
    data_out.finish().await;
    error.finish().await;
}

/// Copies until the pod closes its side (then allows the client one second more, as containerd
/// does) or the client ends its side and the pod then closes.
async fn copy(
    conn: Box<dyn PodConnection>,
    mut from_client: mpsc::Receiver<Bytes>,
    to_client: &Writer,
) {
    let (mut read, mut write) = tokio::io::split(conn);
    let upstream = async move {
        while let Some(chunk) = from_client.recv().await {
            if write.write_all(&chunk).await.is_err() {
                return;
            }
        }
        let _ = write.shutdown().await;
    };
    let downstream = async move {
        let mut buf = BytesMut::with_capacity(32 * 1024);
        loop {
            buf.reserve(32 * 1024);
            match read.read_buf(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {
                    if !to_client.write(buf.split().freeze()).await {
                        return;
                    }
                }
            }
        }
    };
    tokio::pin!(upstream, downstream);
    tokio::select! {
        () = &mut downstream => {
            let _ = tokio::time::timeout(Duration::from_secs(1), upstream).await;
        }
        () = &mut upstream => downstream.await,
    }
}
