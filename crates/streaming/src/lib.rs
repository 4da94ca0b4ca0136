//! The server side of the Kubernetes streaming protocols, as kubelet's streaming server speaks
//! them, for `kubectl exec/attach/port-forward`, `crictl exec -it` and kubelet's exec probes.
//!
//! A CRI Exec, Attach or PortForward call validates its request and asks [`Server`] for a URL
//! (`http://addr/exec/<one-time token>`); the client then upgrades an HTTP request for that URL
//! to SPDY/3.1 (subprotocols `v4.channel.k8s.io` and older, `portforward.k8s.io`) or WebSocket
//! (`v5.channel.k8s.io`, `v4.channel.k8s.io` and the base64 variants), and the session runs the
//! command or forwards the ports through the runtime's [`Backend`].
//!
//! No crate serves these protocols, so the framing is here, small and tested: [`spdy`] (frames,
//! zlib header blocks with the SPDY dictionary, the session), [`ws`] (RFC 6455 frames, the
//! channel multiplexing), [`remotecommand`] and [`portforward`] (the sessions), [`server`] (HTTP,
//! tokens, upgrades), [`idle`] (the idle timeout that ends a silent session).

mod backend;
mod error;
mod idle;
mod portforward;
mod remotecommand;
mod server;
mod spdy;
mod status;
mod tokens;
mod writer;
mod ws;

pub use backend::{
    AttachRequest, Backend, BackendError, ExecRequest, PodConnection, PortForwardRequest, Stdio,
    TerminalSize,
};
pub use error::{Error, FrameError, WsError};
pub use idle::DEFAULT_IDLE_TIMEOUT;
pub use server::{Config, Server};

/// The SPDY/3 header-compression dictionary, for a client of this server to prime its zlib
/// streams with (the end-to-end tests have such a client).
pub fn spdy_header_dictionary() -> &'static [u8] {
    spdy::dictionary()
}
