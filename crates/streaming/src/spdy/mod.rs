//! SPDY/3.1, the server side as kubelet's clients (moby/spdystream) speak it: frames, header
//! compression, and a session that hands the streams the client opens to a handler.

mod dictionary;
pub(crate) mod frame;
mod session;
pub(crate) mod zlib;

pub(crate) use dictionary::dictionary;
pub(crate) use session::{IncomingStream, Out, Session};
