//! One SPDY connection: a reader task that parses frames and routes data to the streams the
//! client opened, a writer task that owns the socket's write half and the header compressor, and
//! the handler's view of both ([`Session`]). There is no flow control: kubelet's peers
//! (spdystream) neither send nor honour WINDOW_UPDATE.
//!
//! When the client goes away or breaks the protocol, the reader ends every stream (their
//! receivers yield `None`) and [`Session::closed`] resolves; the writer ends when the handler
//! drops its senders or asks for [`Out::Shutdown`]. Nothing outlives the connection.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, watch};

use super::frame::{self, Frame};
use super::zlib::{Compressor, Decompressor, Headers};

/// Chunks queued per stream before the reader waits for the handler.
const STREAM_QUEUE: usize = 64;

/// A stream the client opened, not yet answered: call [`Session::reply`] or [`Session::reset`].
#[derive(Debug)]
pub(crate) struct IncomingStream {
    pub id: u32,
    pub headers: Headers,
    /// The client's data on it; `None` once the client sent FIN or RST, or left.
    pub data: mpsc::Receiver<Bytes>,
}

/// What the handler asks the writer to send.
#[derive(Debug)]
pub(crate) enum Out {
    Reply(u32),
    Reset(u32, u32),
    Data(u32, Bytes),
    Fin(u32),
    Ping(u32),
    /// GOAWAY with this status, then close the socket.
    Shutdown(u32),
}

/// The handler's side of a connection.
pub(crate) struct Session {
    pub out: mpsc::Sender<Out>,
    incoming: mpsc::Receiver<IncomingStream>,
    done: watch::Receiver<Option<String>>,
}

impl Session {
    /// Starts the reader and writer tasks on `io`.
    pub fn start<T: AsyncRead + AsyncWrite + Send + 'static>(io: T) -> Session {
        let (read, write) = tokio::io::split(io);
        let (out_tx, out_rx) = mpsc::channel(64);
        let (incoming_tx, incoming) = mpsc::channel(16);
        let (done_tx, done) = watch::channel(None);
        tokio::spawn(write_loop(write, out_rx));
        tokio::spawn(read_loop(read, incoming_tx, out_tx.clone(), done_tx));
        Session {
            out: out_tx,
            incoming,
            done,
        }
    }

    /// The next stream the client opens; `None` once the connection is gone.
    pub async fn accept(&mut self) -> Option<IncomingStream> {
        self.incoming.recv().await
    }

    pub async fn reply(&self, id: u32) {
        let _ = self.out.send(Out::Reply(id)).await;
    }

    pub async fn reset(&self, id: u32) {
        let _ = self.out.send(Out::Reset(id, frame::RST_REFUSED)).await;
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

    /// Says goodbye (GOAWAY) and closes the connection once what is queued is written.
    pub async fn shutdown(self) {
        let _ = self.out.send(Out::Shutdown(frame::GOAWAY_OK)).await;
    }
}

async fn write_loop<W: AsyncWrite + Unpin>(mut write: W, mut out: mpsc::Receiver<Out>) {
    let mut compressor = Compressor::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut last_good = 0;
    while let Some(first) = out.recv().await {
        // Write what is queued in one go.
        let mut next = Some(first);
        let mut shutdown = None;
        while let Some(item) = next.take() {
            let f = match item {
                Out::Reply(id) => {
                    last_good = last_good.max(id);
                    Frame::SynReply {
                        stream_id: id,
                        fin: false,
                        headers: Headers::default(),
                    }
                }
                Out::Reset(id, status) => Frame::RstStream {
                    stream_id: id,
                    status,
                },
                Out::Data(id, data) => {
                    for chunk in data.chunks(frame::MAX_DATA) {
                        let f = Frame::Data {
                            stream_id: id,
                            fin: false,
                            data: data.slice_ref(chunk),
                        };
                        frame::encode(&f, &mut compressor, &mut buf);
                    }
                    next = out.try_recv().ok();
                    continue;
                }
                Out::Fin(id) => Frame::Data {
                    stream_id: id,
                    fin: true,
                    data: Bytes::new(),
                },
                Out::Ping(id) => Frame::Ping(id),
                Out::Shutdown(status) => {
                    shutdown = Some(status);
                    Frame::GoAway { last_good, status }
                }
            };
            frame::encode(&f, &mut compressor, &mut buf);
            if shutdown.is_none() {
                next = out.try_recv().ok();
            }
        }
        if write.write_all(&buf).await.is_err() {
            return;
        }
        buf.clear();
        if shutdown.is_some() {
            let _ = write.flush().await;
            let _ = write.shutdown().await;
            return;
        }
    }
    let _ = write.shutdown().await;
}

async fn read_loop<R: AsyncRead + Unpin>(
    mut read: R,
    incoming: mpsc::Sender<IncomingStream>,
    out: mpsc::Sender<Out>,
    done: watch::Sender<Option<String>>,
) {
    let mut decompressor = Decompressor::new();
    let mut buf = BytesMut::with_capacity(16 * 1024);
    let mut streams: HashMap<u32, mpsc::Sender<Bytes>> = HashMap::new();
    let mut last_id = 0;
    let why = 'conn: loop {
        loop {
            let f = match frame::parse(&mut buf, &mut decompressor) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::debug!(error = %e, "SPDY protocol error: closing the session");
                    let _ = out.send(Out::Shutdown(frame::GOAWAY_PROTOCOL_ERROR)).await;
                    break 'conn format!("SPDY protocol error: {e}");
                }
            };
            match f {
                Frame::SynStream {
                    stream_id,
                    fin,
                    headers,
                } => {
                    // Client streams are odd and increase (spdystream's validateStreamId).
                    if stream_id % 2 == 0 || stream_id <= last_id {
                        let _ = out
                            .send(Out::Reset(stream_id, frame::RST_PROTOCOL_ERROR))
                            .await;
                        continue;
                    }
                    last_id = stream_id;
                    let (tx, rx) = mpsc::channel(STREAM_QUEUE);
                    if !fin {
                        streams.insert(stream_id, tx);
                    }
                    if incoming
                        .send(IncomingStream {
                            id: stream_id,
                            headers,
                            data: rx,
                        })
                        .await
                        .is_err()
                    {
                        break 'conn "the handler is gone".into();
                    }
                }
                Frame::Data {
                    stream_id,
                    fin,
                    data,
                } => {
                    if let Some(tx) = streams.get(&stream_id)
                        && !data.is_empty()
                        && tx.send(data).await.is_err()
                    {
                        // Nobody reads this stream: drop what arrives on it.
                        streams.remove(&stream_id);
                    }
                    if fin {
                        streams.remove(&stream_id);
                    }
                }
                Frame::Headers {
                    stream_id,
                    fin: true,
                    ..
                }
                | Frame::RstStream { stream_id, .. } => {
                    streams.remove(&stream_id);
                }
                Frame::Ping(id) => {
                    let _ = out.send(Out::Ping(id)).await;
                }
                Frame::GoAway { .. } => break 'conn "the client sent GOAWAY".into(),
                Frame::SynReply { .. }
                | Frame::Headers { .. }
                | Frame::Settings
                | Frame::WindowUpdate { .. }
                | Frame::Unknown(_) => {}
            }
        }
        tokio::select! {
            r = read.read_buf(&mut buf) => match r {
                Ok(0) => break "the client closed the connection".into(),
                Ok(_) => {}
                Err(e) => break format!("reading from the client: {e}"),
            },
            // The writer ended (the handler shut the session down): stop reading too.
            () = out.closed() => break "the session was shut down".into(),
        }
    };
    drop(streams);
    let _ = done.send(Some(why));
}
