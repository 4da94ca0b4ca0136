//! One WebSocket connection carrying Kubernetes channels: every message starts with a channel
//! number (`channel.k8s.io`, binary) or its ASCII digit and base64 data (`base64.channel.k8s.io`);
//! in `v5.channel.k8s.io` the client may close one channel with the message `[255, channel]`.
//!
//! A reader task parses the client's messages and routes them to the channels' receivers; a
//! writer task owns the write half. A protocol error closes the connection with the RFC's code;
//! when the client goes away every receiver ends and [`Session::closed`] resolves.

use base64::Engine;
use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::frame::{self, Message, Parser};
use crate::error::WsError;

/// Largest message accepted (x/net/websocket's default is 32 MiB; ours need far less).
const MAX_MESSAGE: usize = 4 << 20;
/// `v5.channel.k8s.io`'s close signal.
const STREAM_CLOSE: u8 = 255;

/// How channel data is carried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Codec {
    Binary,
    Base64,
}

/// What the handler asks the writer to send.
#[derive(Debug)]
pub(crate) enum Out {
    Channel(u8, Bytes),
    Pong(Bytes),
    /// A close frame with this code and reason, then close the socket.
    Close(u16, String),
}

pub(crate) struct Session {
    pub out: mpsc::Sender<Out>,
    /// Per channel, what the client sends on it (`None` for channels it may not write).
    pub inputs: Vec<Option<mpsc::Receiver<Bytes>>>,
    done: watch::Receiver<Option<String>>,
}

impl Session {
    /// Starts the tasks; `readable[i]` says whether the client may send on channel `i`.
    pub fn start<T: AsyncRead + AsyncWrite + Send + 'static>(
        io: T,
        codec: Codec,
        close_signal: bool,
        readable: &[bool],
    ) -> Session {
        let (read, write) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(64);
        let (done_tx, done) = watch::channel(None);
        let mut senders = Vec::new();
        let mut inputs = Vec::new();
        for &r in readable {
            if r {
                let (tx, rx) = mpsc::channel(64);
                senders.push(Some(tx));
                inputs.push(Some(rx));
            } else {
                senders.push(None);
                inputs.push(None);
            }
        }
        tokio::spawn(write_loop(write, out_rx, codec));
        tokio::spawn(read_loop(
            read,
            senders,
            codec,
            close_signal,
            out_tx.clone(),
            done_tx,
        ));
        Session {
            out: out_tx,
            inputs,
            done,
        }
    }

    /// Resolves when the client has gone (or broke the protocol), with why.
    pub fn closed(&self) -> impl std::future::Future<Output = String> + Send + 'static {
        let mut done = self.done.clone();
        async move {
            loop {
                if let Some(why) = done.borrow_and_update().clone() {
                    return why;
                }
                if done.changed().await.is_err() {
                    return "connection closed".into();
                }
            }
        }
    }

    /// A normal close once what is queued is written.
    pub async fn shutdown(self) {
        let _ = self.out.send(Out::Close(1000, String::new())).await;
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(
    mut write: W,
    mut out: mpsc::Receiver<Out>,
    codec: Codec,
) {
    let mut buf = BytesMut::with_capacity(16 * 1024);
    while let Some(first) = out.recv().await {
        let mut next = Some(first);
        let mut closing = false;
        while let Some(item) = next.take() {
            match item {
                Out::Channel(ch, data) => match codec {
                    Codec::Binary => {
                        let mut msg = Vec::with_capacity(1 + data.len());
                        msg.push(ch);
                        msg.extend_from_slice(&data);
                        frame::encode(frame::OP_BINARY, &msg, &mut buf);
                    }
                    Codec::Base64 => {
                        let mut msg = String::with_capacity(1 + data.len() * 4 / 3 + 4);
                        msg.push((b'0' + ch) as char);
                        base64::engine::general_purpose::STANDARD.encode_string(&data, &mut msg);
                        frame::encode(frame::OP_TEXT, msg.as_bytes(), &mut buf);
                    }
                },
                Out::Pong(payload) => frame::encode(frame::OP_PONG, &payload, &mut buf),
                Out::Close(code, reason) => {
                    let mut payload = code.to_be_bytes().to_vec();
                    payload.extend_from_slice(&reason.as_bytes()[..reason.len().min(123)]);
                    frame::encode(frame::OP_CLOSE, &payload, &mut buf);
                    closing = true;
                }
            }
            if !closing {
                next = out.try_recv().ok();
            }
        }
        if write.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
        if closing {
            let _ = write.flush().await;
            let _ = write.shutdown().await;
            return;
        }
    }
    let _ = write.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut read: R,
    mut senders: Vec<Option<mpsc::Sender<Bytes>>>,
    codec: Codec,
    close_signal: bool,
    out: mpsc::Sender<Out>,
    done: watch::Sender<Option<String>>,
) {
    let mut parser = Parser::new(MAX_MESSAGE);
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let why = 'conn: loop {
        loop {
            let msg = match parser.parse(&mut buf) {
                Ok(Some(m)) => m,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "WebSocket protocol error: closing the session");
                    let _ = out.send(Out::Close(e.close_code(), e.to_string())).await;
                    break 'conn format!("WebSocket protocol error: {e}");
                }
            };
            let data = match msg {
                Message::Close(code) => {
                    let _ = out
                        .send(Out::Close(code.unwrap_or(1000), String::new()))
                        .await;
                    break 'conn "the client closed the WebSocket".into();
                }
                Message::Ping(p) => {
                    let _ = out.send(Out::Pong(p)).await;
                    continue;
                }
                Message::Pong => continue,
                Message::Binary(d) | Message::Text(d) => d,
            };
            if data.is_empty() {
                continue;
            }
            if close_signal && data[0] == STREAM_CLOSE {
                if data.len() != 2 {
                    let e = WsError::Protocol("a close signal names exactly one channel");
                    let _ = out.send(Out::Close(e.close_code(), e.to_string())).await;
                    break 'conn e.to_string();
                }
                if let Some(s) = senders.get_mut(data[1] as usize) {
                    *s = None;
                }
                continue;
            }
            let (channel, payload) = match codec {
                Codec::Binary => (data[0] as usize, data.slice(1..)),
                Codec::Base64 => {
                    let decoded = base64::engine::general_purpose::STANDARD.decode(&data[1..]);
                    match decoded {
                        Ok(d) => (data[0].wrapping_sub(b'0') as usize, Bytes::from(d)),
                        Err(_) => {
                            let e = WsError::InvalidBase64;
                            let _ = out.send(Out::Close(e.close_code(), e.to_string())).await;
                            break 'conn e.to_string();
                        }
                    }
                }
            };
            // Data for a channel that does not exist or that the client may not write is
            // dropped, as kubelet's wsstream does.
            if let Some(slot) = senders.get_mut(channel)
                && let Some(tx) = slot
                && !payload.is_empty()
                && tx.send(payload).await.is_err()
            {
                *slot = None;
            }
        }
        tokio::select! {
            r = read.read_buf(&mut buf) => match r {
                Ok(0) => break "the client closed the connection".into(),
                Ok(_) => {}
                Err(e) => break format!("reading from the client: {e}"),
            },
            () = out.closed() => break "the session was shut down".into(),
        }
    };
    drop(senders);
    let _ = done.send(Some(why));
}
