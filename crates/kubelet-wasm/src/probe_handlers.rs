//! One probe attempt of each kind, as kubelet's probers do it: exec through the runtime's
//! ExecSync, HTTP GET (a plain HTTP/1.1 request; 200–399 is success), TCP connect, and the gRPC
//! health protocol (`grpc.health.v1.Health/Check`, SERVING is success).

use std::time::Duration;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::cri::CriClient;

/// The result of one attempt: `Err` carries kubelet's kind of failure message.
pub type Outcome = Result<(), String>;

/// Where a probe goes.
#[derive(Debug, Clone)]
pub struct Target {
    pub cri: CriClient,
    pub container_id: String,
    pub pod_ip: String,
}

/// Runs `probe` once, within its timeout.
pub async fn probe_once(probe: &Probe, container: &Container, target: &Target) -> Outcome {
    let timeout = Duration::from_secs(probe.timeout_seconds.unwrap_or(1).max(1) as u64);
    let attempt = async {
        if let Some(exec) = &probe.exec {
            exec_probe(target, exec.command.clone().unwrap_or_default(), timeout).await
        } else if let Some(h) = &probe.http_get {
            let host = h
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| target.pod_ip.clone());
            let port = port(&h.port, container)?;
            let headers: Vec<(String, String)> = h
                .http_headers
                .iter()
                .flatten()
                .map(|hh| (hh.name.clone(), hh.value.clone()))
                .collect();
            if h.scheme
                .as_deref()
                .is_some_and(|s| s.eq_ignore_ascii_case("https"))
            {
                return Err("HTTPS probes are not supported by wasmlet node".into());
            }
            http_get(&host, port, h.path.as_deref().unwrap_or("/"), &headers).await
        } else if let Some(t) = &probe.tcp_socket {
            let host = t
                .host
                .clone()
                .filter(|h| !h.is_empty())
                .unwrap_or_else(|| target.pod_ip.clone());
            tcp(&host, port(&t.port, container)?).await
        } else if let Some(g) = &probe.grpc {
            grpc(
                &target.pod_ip,
                g.port as u16,
                g.service.clone().unwrap_or_default(),
            )
            .await
        } else {
            Err("probe has no handler".into())
        }
    };
    match tokio::time::timeout(timeout, attempt).await {
        Ok(r) => r,
        Err(_) => Err(format!("probe timed out after {}s", timeout.as_secs())),
    }
}

/// A port number, or a named port looked up in the container's ports.
fn port(p: &IntOrString, c: &Container) -> Result<u16, String> {
    match p {
        IntOrString::Int(n) => u16::try_from(*n).map_err(|_| format!("invalid port {n}")),
        IntOrString::String(name) => {
            if let Ok(n) = name.parse::<u16>() {
                return Ok(n);
            }
            c.ports
                .iter()
                .flatten()
                .find(|cp| cp.name.as_deref() == Some(name.as_str()))
                .map(|cp| cp.container_port as u16)
                .ok_or_else(|| format!("port {name:?} not found in the container's ports"))
        }
    }
}

async fn exec_probe(target: &Target, cmd: Vec<String>, timeout: Duration) -> Outcome {
    let req = cri::ExecSyncRequest {
        container_id: target.container_id.clone(),
        cmd,
        timeout: timeout.as_secs() as i64,
    };
    match target.cri.runtime.clone().exec_sync(req).await {
        Ok(r) => {
            let r = r.into_inner();
            if r.exit_code == 0 {
                Ok(())
            } else {
                let mut out = String::from_utf8_lossy(&r.stdout).into_owned();
                out.push_str(&String::from_utf8_lossy(&r.stderr));
                Err(format!(
                    "command exited with {}: {}",
                    r.exit_code,
                    out.trim_end()
                ))
            }
        }
        Err(s) => Err(format!("ExecSync: {}: {}", s.code(), s.message())),
    }
}

fn host_port(host: &str, port: u16) -> String {
    if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    }
}

async fn connect(host: &str, port: u16) -> Result<tokio::net::TcpStream, String> {
    let addr = host_port(host, port);
    tokio::net::TcpStream::connect(&addr)
        .await
        .map_err(|e| format!("dial tcp {addr}: {e}"))
}

/// `GET path` over HTTP/1.1; 200–399 succeeds (kubelet treats redirects as success too).
pub async fn http_get(host: &str, port: u16, path: &str, headers: &[(String, String)]) -> Outcome {
    let url = format!("http://{}{path}", host_port(host, port));
    let mut s = connect(host, port)
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut req = format!(
        "GET {path} HTTP/1.1\r\nHost: {}\r\nUser-Agent: kube-probe/1.33\r\nAccept: */*\r\n",
        host_port(host, port)
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("Connection: close\r\n\r\n");
    s.write_all(req.as_bytes())
        .await
        .map_err(|e| format!("Get \"{url}\": {e}"))?;
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    // The status line is all we need; kubelet reads at most 10 KiB of body.
    while !buf.windows(2).any(|w| w == b"\r\n") && buf.len() < 10 << 10 {
        let n = s
            .read(&mut chunk)
            .await
            .map_err(|e| format!("Get \"{url}\": {e}"))?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let line = String::from_utf8_lossy(&buf);
    let code: u16 = line
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .ok_or_else(|| format!("Get \"{url}\": malformed HTTP response"))?;
    if (200..400).contains(&code) {
        Ok(())
    } else {
        Err(format!("HTTP probe failed with statuscode: {code}"))
    }
}

pub async fn tcp(host: &str, port: u16) -> Outcome {
    connect(host, port).await.map(drop)
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckRequest {
    #[prost(string, tag = "1")]
    service: String,
}

#[derive(Clone, PartialEq, prost::Message)]
struct HealthCheckResponse {
    #[prost(int32, tag = "1")]
    status: i32,
}

/// `grpc.health.v1.Health/Check` for `service`; SERVING (1) succeeds.
pub async fn grpc(host: &str, port: u16, service: String) -> Outcome {
    let addr = format!("http://{}", host_port(host, port));
    let fail = |e: String| {
        format!(
            "failed to connect service {:?} within 1s: {e}",
            host_port(host, port)
        )
    };
    let channel = tonic::transport::Endpoint::from_shared(addr)
        .map_err(|e| fail(e.to_string()))?
        .connect()
        .await
        .map_err(|e| fail(e.to_string()))?;
    let mut client = tonic::client::Grpc::new(channel);
    client.ready().await.map_err(|e| fail(e.to_string()))?;
    let path = tonic::codegen::http::uri::PathAndQuery::from_static("/grpc.health.v1.Health/Check");
    let codec = tonic_prost::ProstCodec::<HealthCheckRequest, HealthCheckResponse>::default();
    let resp = client
        .unary(
            tonic::Request::new(HealthCheckRequest { service }),
            path,
            codec,
        )
        .await
        .map_err(|s| format!("health rpc probe failed: {}: {}", s.code(), s.message()))?;
    match resp.into_inner().status {
        1 => Ok(()),
        s => Err(format!(
            "service unhealthy (responded with {})",
            ["UNKNOWN", "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN"]
                .get(s as usize)
                .unwrap_or(&"?")
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A real HTTP server on a real socket: answers `/ok` with 200 and anything else with 500.
    async fn server() -> u16 {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = l.local_addr().unwrap().port();
        tokio::spawn(async move {
            loop {
                let (mut s, _) = l.accept().await.unwrap();
                let mut buf = [0u8; 1024];
                let n = s.read(&mut buf).await.unwrap();
                let req = String::from_utf8_lossy(&buf[..n]).to_string();
                let code = if req.starts_with("GET /ok ") && req.contains("X-Probe: yes") {
                    "200 OK"
                } else {
                    "500 Oops"
                };
                let _ = s
                    .write_all(format!("HTTP/1.1 {code}\r\ncontent-length: 0\r\n\r\n").as_bytes())
                    .await;
            }
        });
        port
    }

    #[tokio::test]
    async fn http_and_tcp() {
        let port = server().await;
        let h = vec![("X-Probe".to_string(), "yes".to_string())];
        assert_eq!(http_get("127.0.0.1", port, "/ok", &h).await, Ok(()));
        assert_eq!(
            http_get("127.0.0.1", port, "/bad", &h).await,
            Err("HTTP probe failed with statuscode: 500".into())
        );
        assert_eq!(tcp("127.0.0.1", port).await, Ok(()));
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let e = tcp("127.0.0.1", closed).await.unwrap_err();
        assert!(e.contains("refused"), "{e}");
        let e = grpc("127.0.0.1", closed, String::new()).await.unwrap_err();
        assert!(e.starts_with("failed to connect service"), "{e}");
    }
}
