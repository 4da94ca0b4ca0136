//! Where one outgoing stream's bytes go, whatever the transport: a SPDY stream (ended with FIN)
//! or a WebSocket channel (ended by the end of the session), and the pump that copies a
//! runtime's chunks into it.

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::{spdy, ws};

#[derive(Debug, Clone)]
pub(crate) enum Writer {
    Spdy {
        out: mpsc::Sender<spdy::Out>,
        id: u32,
    },
    Ws {
        out: mpsc::Sender<ws::Out>,
        channel: u8,
    },
}

impl Writer {
    /// Queues `data`; false once the session is gone.
    pub async fn write(&self, data: Bytes) -> bool {
        match self {
            Writer::Spdy { out, id } => out.send(spdy::Out::Data(*id, data)).await.is_ok(),
            Writer::Ws { out, channel } => out.send(ws::Out::Channel(*channel, data)).await.is_ok(),
        }
    }

    /// Ends the stream (a WebSocket channel has no end of its own).
    pub async fn finish(&self) {
        if let Writer::Spdy { out, id } = self {
            let _ = out.send(spdy::Out::Fin(*id)).await;
        }
    }
}

/// A sender for the runtime and the task that copies what it sends to `writer`, then ends the
/// stream once the runtime drops the sender.
pub(crate) fn pump(writer: Writer) -> (mpsc::Sender<Bytes>, JoinHandle<()>) {
    let (tx, mut rx) = mpsc::channel::<Bytes>(16);
    let task = tokio::spawn(async move {
        while let Some(chunk) = rx.recv().await {
            if !writer.write(chunk).await {
                return;
            }
        }
        writer.finish().await;
    });
    (tx, task)
}
