//! The streaming server's errors: what refusing a request, a token or a frame can say.

/// What can go wrong in the streaming server.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Binding or serving the listening socket.
    #[error("streaming server on {addr}")]
    Bind {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    /// The request cannot be served as asked (both tty and stderr, no stream at all, a bad port).
    #[error("{0}")]
    InvalidArgument(String),
    /// Too many URLs handed out and not used yet.
    #[error("too many pending streaming requests ({0}); retry after some expire")]
    TooManyPending(usize),
}

/// A SPDY/3.1 framing error: the session ends with GOAWAY(PROTOCOL_ERROR).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("SPDY version {0} is not supported (only 3)")]
    Version(u16),
    #[error("{kind} frame of {len} bytes exceeds the limit of {limit}")]
    TooLarge {
        kind: &'static str,
        len: usize,
        limit: usize,
    },
    #[error("malformed {0} frame")]
    Malformed(&'static str),
    #[error("stream id 0 is not allowed in a {0} frame")]
    ZeroStreamId(&'static str),
    #[error("header block: {0}")]
    HeaderBlock(String),
}

/// A WebSocket protocol error, with the close code it is reported with (RFC 6455, 7.4.1).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum WsError {
    #[error("protocol error: {0}")]
    Protocol(&'static str),
    #[error("message of {len} bytes exceeds the limit of {limit}")]
    TooLarge { len: u64, limit: usize },
    #[error("text message is not valid UTF-8")]
    InvalidUtf8,
    #[error("channel message is not valid base64")]
    InvalidBase64,
}

impl WsError {
    /// The close code sent to the client.
    pub fn close_code(&self) -> u16 {
        match self {
            WsError::Protocol(_) => 1002,
            WsError::TooLarge { .. } => 1009,
            WsError::InvalidUtf8 | WsError::InvalidBase64 => 1007,
        }
    }
}
