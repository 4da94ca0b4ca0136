//! The HTTP side: a listener (127.0.0.1 and a random port by default), the URLs handed out for
//! CRI Exec/Attach/PortForward (`http://addr/exec/<token>` and so on), and the upgrade of a
//! request for such a URL to SPDY/3.1 or WebSocket, after which [`crate::remotecommand`] or
//! [`crate::portforward`] take the connection.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONNECTION, HeaderValue, UPGRADE};
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::task::JoinHandle;

use crate::backend::{AttachRequest, Backend, ExecRequest, PortForwardRequest};
use crate::error::Error;
use crate::idle::IdleIo;
use crate::remotecommand::{self, Command};
use crate::tokens::{Pending, Tokens};
use crate::{portforward, ws};

const PROTOCOL_HEADER: &str = "x-stream-protocol-version";
const ACCEPTED_PROTOCOLS_HEADER: &str = "x-accepted-stream-protocol-versions";

/// How the server listens and how long what it hands out lasts.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where to listen; port 0 picks one.
    pub addr: SocketAddr,
    /// How long a URL may wait for its client (kubelet: 1 minute).
    pub token_ttl: Duration,
    /// How long a SPDY client may take to open its streams (kubelet: 30 seconds).
    pub stream_creation_timeout: Duration,
    /// A session with no traffic either way for this long is closed and what it started torn
    /// down (containerd's `stream_idle_timeout`, 4 hours); `None`: never.
    pub idle_timeout: Option<Duration>,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            token_ttl: Duration::from_secs(60),
            stream_creation_timeout: Duration::from_secs(30),
            idle_timeout: Some(crate::idle::DEFAULT_IDLE_TIMEOUT),
        }
    }
}

struct State {
    tokens: Tokens,
    backend: Arc<dyn Backend>,
    config: Config,
}

/// The running streaming server; dropping it stops accepting (sessions in progress go on).
pub struct Server {
    addr: SocketAddr,
    state: Arc<State>,
    accept: JoinHandle<()>,
}

impl Drop for Server {
    fn drop(&mut self) {
        self.accept.abort();
    }
}

impl Server {
    /// Binds `config.addr` and serves on the current tokio runtime.
    ///
    /// ```no_run
    /// # async fn f(backend: std::sync::Arc<dyn wasmlet_streaming::Backend>) -> Result<(), wasmlet_streaming::Error> {
    /// let server = wasmlet_streaming::Server::start(Default::default(), backend).await?;
    /// let url = server.exec_url(wasmlet_streaming::ExecRequest {
    ///     container_id: "c1".into(),
    ///     cmd: vec!["app".into(), "--version".into()],
    ///     tty: false, stdin: false, stdout: true, stderr: true,
    /// })?;
    /// assert!(url.starts_with("http://127.0.0.1:"));
    /// # Ok(()) }
    /// ```
    pub async fn start(config: Config, backend: Arc<dyn Backend>) -> Result<Server, Error> {
        let listener = tokio::net::TcpListener::bind(config.addr)
            .await
            .map_err(|source| Error::Bind {
                addr: config.addr,
                source,
            })?;
        let addr = listener.local_addr().map_err(|source| Error::Bind {
            addr: config.addr,
            source,
        })?;
        let state = Arc::new(State {
            tokens: Tokens::new(config.token_ttl),
            backend,
            config,
        });
        let accept = tokio::spawn(accept_loop(listener, Arc::clone(&state)));
        tracing::info!(addr = %addr, "streaming server listening");
        Ok(Server {
            addr,
            state,
            accept,
        })
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    fn url(&self, kind: &str, pending: Pending) -> Result<String, Error> {
        let token = self.state.tokens.insert(pending)?;
        // A wildcard bind is reached on loopback.
        let mut addr = self.addr;
        if addr.ip().is_unspecified() {
            addr.set_ip(std::net::Ipv4Addr::LOCALHOST.into());
        }
        Ok(format!("http://{addr}/{kind}/{token}"))
    }

    /// The URL a client streams `req` at, valid once, until it expires.
    pub fn exec_url(&self, req: ExecRequest) -> Result<String, Error> {
        check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
        if req.cmd.is_empty() {
            return Err(Error::InvalidArgument("cmd is required".into()));
        }
        self.url("exec", Pending::Exec(req))
    }

    pub fn attach_url(&self, req: AttachRequest) -> Result<String, Error> {
        check_streams(req.tty, req.stdin, req.stdout, req.stderr)?;
        self.url("attach", Pending::Attach(req))
    }

    pub fn port_forward_url(&self, req: PortForwardRequest) -> Result<String, Error> {
        if let Some(p) = req.ports.iter().find(|p| **p == 0) {
            return Err(Error::InvalidArgument(format!("port {p} must be > 0")));
        }
        self.url("portforward", Pending::PortForward(req))
    }
}

/// kubelet's rules: some stream must be asked for, and a TTY carries no separate stderr.
fn check_streams(tty: bool, stdin: bool, stdout: bool, stderr: bool) -> Result<(), Error> {
    if tty && stderr {
        return Err(Error::InvalidArgument(
            "tty and stderr cannot both be true".into(),
        ));
    }
    if !stdin && !stdout && !stderr {
        return Err(Error::InvalidArgument(
            "one of stdin, stdout, or stderr must be set".into(),
        ));
    }
    Ok(())
}

async fn accept_loop(listener: tokio::net::TcpListener, state: Arc<State>) {
    loop {
        let (tcp, peer) = match listener.accept().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "streaming server accept");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let _ = tcp.set_nodelay(true);
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = Arc::clone(&state);
                async move { Ok::<_, Infallible>(route(req, state)) }
            });
            if let Err(e) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(tcp), service)
                .with_upgrades()
                .await
            {
                tracing::debug!(peer = %peer, error = %e, "streaming connection");
            }
        });
    }
}

fn reply(status: StatusCode, body: impl Into<String>) -> Response<Full<Bytes>> {
    let mut r = Response::new(Full::new(Bytes::from(body.into() + "\n")));
    *r.status_mut() = status;
    r.headers_mut().insert(
        "content-type",
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    r
}

/// Every value of a (possibly repeated, comma-separated) header, trimmed.
fn header_values(req: &Request<Incoming>, name: &str) -> Vec<String> {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect()
}

fn header_has(req: &Request<Incoming>, name: hyper::header::HeaderName, token: &str) -> bool {
    req.headers()
        .get_all(name)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .any(|v| v.to_ascii_lowercase().contains(token))
}

/// What a consumed token lets the client do.
enum Target {
    Command(Command),
    PortForward(PortForwardRequest),
}

fn route(req: Request<Incoming>, state: Arc<State>) -> Response<Full<Bytes>> {
    let path = req.uri().path().trim_start_matches('/').to_string();
    let Some((kind, token)) = path
        .split_once('/')
        .filter(|(k, t)| matches!(*k, "exec" | "attach" | "portforward") && !t.contains('/'))
    else {
        return reply(StatusCode::NOT_FOUND, "not found");
    };
    let Some(pending) = state.tokens.consume(token) else {
        return reply(
            StatusCode::NOT_FOUND,
            format!("{kind} token not found or expired"),
        );
    };
    let target = match (kind, pending) {
        ("exec", Pending::Exec(e)) => Target::Command(Command {
            container_id: e.container_id,
            cmd: Some(e.cmd),
            stdin: e.stdin,
            stdout: e.stdout,
            stderr: e.stderr,
            tty: e.tty,
        }),
        ("attach", Pending::Attach(a)) => Target::Command(Command {
            container_id: a.container_id,
            cmd: None,
            stdin: a.stdin,
            stdout: a.stdout,
            stderr: a.stderr,
            tty: a.tty,
        }),
        ("portforward", Pending::PortForward(p)) => Target::PortForward(p),
        _ => {
            return reply(
                StatusCode::BAD_REQUEST,
                format!("the token is not for {kind}"),
            );
        }
    };
    if header_has(&req, UPGRADE, "websocket") {
        upgrade_websocket(req, target, state)
    } else {
        upgrade_spdy(req, target, state)
    }
}

/// The first protocol the client offers that we support.
fn negotiate<'a>(offered: &[String], supported: &[&'a str]) -> Option<&'a str> {
    offered.iter().find_map(|o| {
        supported
            .iter()
            .find(|s| !s.is_empty() && **s == o.as_str())
            .copied()
    })
}

fn upgrade_spdy(
    mut req: Request<Incoming>,
    target: Target,
    state: Arc<State>,
) -> Response<Full<Bytes>> {
    if !header_has(&req, CONNECTION, "upgrade") || !header_has(&req, UPGRADE, "spdy/3.1") {
        return reply(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: missing upgrade headers in request (Connection: Upgrade, Upgrade: SPDY/3.1 or websocket)",
        );
    }
    let offered = header_values(&req, PROTOCOL_HEADER);
    let supported: &[&str] = match &target {
        Target::Command(_) => remotecommand::SPDY_PROTOCOLS,
        Target::PortForward(_) => &[portforward::SPDY_PROTOCOL],
    };
    if offered.is_empty() {
        return reply(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: X-Stream-Protocol-Version is required",
        );
    }
    let Some(protocol) = negotiate(&offered, supported) else {
        let mut r = reply(
            StatusCode::FORBIDDEN,
            format!(
                "unable to upgrade: unable to negotiate protocol: client supports {offered:?}, server accepts {supported:?}"
            ),
        );
        for p in supported {
            r.headers_mut()
                .append(ACCEPTED_PROTOCOLS_HEADER, HeaderValue::from_static(p));
        }
        return r;
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let backend = Arc::clone(&state.backend);
    let timeout = state.config.stream_creation_timeout;
    let idle = state.config.idle_timeout;
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(up) => IdleIo::new(TokioIo::new(up), idle),
            Err(e) => return tracing::debug!(error = %e, "SPDY upgrade failed"),
        };
        match target {
            Target::Command(c) => {
                remotecommand::serve_spdy(io, protocol, c, backend, timeout).await
            }
            Target::PortForward(p) => portforward::serve_spdy(io, p.sandbox_id, backend).await,
        }
    });
    let mut r = reply(StatusCode::SWITCHING_PROTOCOLS, "");
    *r.body_mut() = Full::new(Bytes::new());
    let h = r.headers_mut();
    h.remove("content-type");
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("SPDY/3.1"));
    h.insert(PROTOCOL_HEADER, HeaderValue::from_static(protocol));
    r
}

fn upgrade_websocket(
    mut req: Request<Incoming>,
    target: Target,
    state: Arc<State>,
) -> Response<Full<Bytes>> {
    let Some(key) = req
        .headers()
        .get("sec-websocket-key")
        .and_then(|k| k.to_str().ok())
        .map(str::to_string)
    else {
        return reply(StatusCode::BAD_REQUEST, "Sec-WebSocket-Key is required");
    };
    if !header_has(&req, CONNECTION, "upgrade") {
        return reply(
            StatusCode::BAD_REQUEST,
            "unable to upgrade: Connection: Upgrade is required",
        );
    }
    if req
        .headers()
        .get("sec-websocket-version")
        .and_then(|v| v.to_str().ok())
        != Some("13")
    {
        let mut r = reply(
            StatusCode::BAD_REQUEST,
            "unsupported WebSocket version (13 is)",
        );
        r.headers_mut()
            .insert("sec-websocket-version", HeaderValue::from_static("13"));
        return r;
    }
    let offered = header_values(&req, "sec-websocket-protocol");
    let supported = match &target {
        Target::Command(_) => remotecommand::WS_PROTOCOLS,
        Target::PortForward(_) => portforward::WS_PROTOCOLS,
    };
    let protocol = if offered.is_empty() {
        ""
    } else {
        match negotiate(&offered, supported) {
            Some(p) => p,
            None => {
                return reply(
                    StatusCode::FORBIDDEN,
                    format!(
                        "requested protocol(s) are not supported: {offered:?}; supports {supported:?}"
                    ),
                );
            }
        }
    };
    let target = match target {
        Target::PortForward(mut p) if p.ports.is_empty() => {
            match query_ports(req.uri().query().unwrap_or("")) {
                Ok(ports) if !ports.is_empty() => {
                    p.ports = ports;
                    Target::PortForward(p)
                }
                Ok(_) => {
                    return reply(
                        StatusCode::BAD_REQUEST,
                        "query parameter \"port\" is required",
                    );
                }
                Err(e) => return reply(StatusCode::BAD_REQUEST, e),
            }
        }
        other => other,
    };
    let upgrade = hyper::upgrade::on(&mut req);
    let backend = Arc::clone(&state.backend);
    let idle = state.config.idle_timeout;
    tokio::spawn(async move {
        let io = match upgrade.await {
            Ok(up) => IdleIo::new(TokioIo::new(up), idle),
            Err(e) => return tracing::debug!(error = %e, "WebSocket upgrade failed"),
        };
        match target {
            Target::Command(c) => remotecommand::serve_ws(io, protocol, c, backend).await,
            Target::PortForward(p) => {
                portforward::serve_ws(io, protocol, p.sandbox_id, p.ports, backend).await
            }
        }
    });
    let mut r = Response::new(Full::new(Bytes::new()));
    *r.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
    let h = r.headers_mut();
    h.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
    h.insert(UPGRADE, HeaderValue::from_static("websocket"));
    h.insert(
        "sec-websocket-accept",
        HeaderValue::from_str(&ws::accept_key(&key)).expect("base64 is a valid header value"),
    );
    if !protocol.is_empty() {
        h.insert("sec-websocket-protocol", HeaderValue::from_static(protocol));
    }
    r
}

/// The `port` query parameters (repeated or comma-separated), as kubelet's WebSocket
/// port-forward reads them.
fn query_ports(query: &str) -> Result<Vec<u16>, String> {
    let mut ports = Vec::new();
    for (k, v) in query.split('&').filter_map(|kv| kv.split_once('=')) {
        if k != "port" {
            continue;
        }
        for p in v.split("%2C").flat_map(|p| p.split(',')) {
            match p.parse::<u16>() {
                Ok(0) => return Err(format!("port {p:?} must be > 0")),
                Ok(port) => ports.push(port),
                Err(e) => return Err(format!("unable to parse {p:?} as a port: {e}")),
            }
        }
    }
    Ok(ports)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocols_are_negotiated_in_the_clients_order() {
        let offered = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        assert_eq!(
            negotiate(
                &offered(&["v2.channel.k8s.io", "v4.channel.k8s.io"]),
                remotecommand::SPDY_PROTOCOLS
            ),
            Some("v2.channel.k8s.io")
        );
        assert_eq!(
            negotiate(&offered(&["v9"]), remotecommand::SPDY_PROTOCOLS),
            None
        );
        assert_eq!(
            negotiate(&offered(&[""]), remotecommand::WS_PROTOCOLS),
            None
        );
    }

    #[test]
    fn query_ports_as_kubelet_reads_them() {
        assert_eq!(
            query_ports("port=80&port=8080%2C9090&x=1"),
            Ok(vec![80, 8080, 9090])
        );
        assert!(query_ports("port=0").is_err());
        assert!(query_ports("port=http").is_err());
        assert_eq!(query_ports(""), Ok(vec![]));
    }

    #[test]
    fn stream_rules() {
        assert!(check_streams(true, true, true, true).is_err());
        assert!(check_streams(false, false, false, false).is_err());
        assert!(check_streams(true, true, true, false).is_ok());
    }
}
