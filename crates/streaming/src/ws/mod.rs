//! WebSocket (RFC 6455), the server side: the handshake's accept key, frames, and the channel
//! multiplexing of Kubernetes' `channel.k8s.io` family on top.

pub(crate) mod frame;
mod session;

pub(crate) use session::{Codec, Out, Session};

use base64::Engine;
use sha1::{Digest, Sha1};

/// `Sec-WebSocket-Accept` for a client's `Sec-WebSocket-Key`.
pub(crate) fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.trim().as_bytes());
    sha.update(b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11");
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

#[cfg(test)]
mod tests {
    #[test]
    fn accept_key_of_the_rfc_example() {
        assert_eq!(
            super::accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }
}
