//! Clients of the streaming server for the end-to-end tests, written here byte by byte as
//! kubectl's speak the wire formats: an HTTP upgrade, a WebSocket client for
//! `v5`/`v4.channel.k8s.io`, and a SPDY/3.1 client (sharing only the zlib dictionary with the
//! server). Small and blocking, meant for threads of their own. Also the shim fd counts the
//! leak checks use.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress};
use wasmlet_cri::k8s_cri::v1 as cri;

use super::Daemon;

/// How long a client waits for a frame before failing the test.
pub(crate) const EXEC_TIMEOUT: Duration = Duration::from_secs(20);

/// What an exec streamed back.
#[derive(Debug, Default)]
pub(crate) struct ExecResult {
    pub(crate) protocol: String,
    pub(crate) stdout: String,
    pub(crate) stderr: String,
    pub(crate) status: serde_json::Value,
}

pub(crate) async fn attach_url(d: &Daemon, id: &str, stdin: bool, tty: bool, stderr: bool) -> String {
    let req = cri::AttachRequest { container_id: id.into(), stdin, tty, stdout: true, stderr };
    d.rt().attach(req).await.expect("Attach").into_inner().url
}

/// Reads WebSocket channels 1 and 2 until `needle` shows up on `channel`; returns what came on it.
pub(crate) fn ws_read_until(sock: &mut TcpStream, channel: u8, needle: &str) -> String {
    let mut out = String::new();
    while !out.contains(needle) {
        match ws_read(sock) {
            Some((2, msg)) if msg.first() == Some(&channel) => out += &String::from_utf8_lossy(&msg[1..]),
            Some((8, _)) | None => panic!("the session ended before {needle:?} on channel {channel}; got {out:?}"),
            _ => {}
        }
    }
    out
}

/// Reads a WebSocket session to its end: (stdout, stderr, the status on the error channel).
pub(crate) fn ws_read_to_end(sock: &mut TcpStream) -> (String, String, serde_json::Value) {
    let (mut out, mut err, mut status) = (String::new(), String::new(), serde_json::Value::Null);
    while let Some((op, msg)) = ws_read(sock) {
        match (op, msg.first()) {
            (8, _) => break,
            (2, Some(1)) => out += &String::from_utf8_lossy(&msg[1..]),
            (2, Some(2)) => err += &String::from_utf8_lossy(&msg[1..]),
            (2, Some(3)) if msg.len() > 1 => status = serde_json::from_slice(&msg[1..]).expect("a Status JSON"),
            _ => {}
        }
    }
    (out, err, status)
}


/// Open fds of the daemon's shims, but sockets: the daemon keeps idle connections to a shim
/// for reuse, so their number varies; what a session leaks would be its pipes or terminal.
pub(crate) fn shim_fds(d: &Daemon) -> usize {
    let mut n = 0;
    for p in d.shim_pids() {
        for e in std::fs::read_dir(format!("/proc/{p}/fd")).into_iter().flatten().flatten() {
            n += usize::from(!std::fs::read_link(e.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:")));
        }
    }
    n
}

pub(crate) fn fd_targets(d: &Daemon) -> String {
    let mut out = Vec::new();
    for p in d.shim_pids() {
        for e in std::fs::read_dir(format!("/proc/{p}/fd")).into_iter().flatten().flatten() {
            out.push(std::fs::read_link(e.path()).map(|t| t.display().to_string()).unwrap_or_default());
        }
    }
    out.sort();
    out.join(", ")
}

/// Sends the HTTP upgrade request for `url` with `headers`; returns the socket and the response head.
pub(crate) fn http_upgrade(url: &str, headers: &[(&str, String)]) -> (TcpStream, String) {
    let rest = url.strip_prefix("http://").expect("an http URL");
    let (host, path) = rest.split_at(rest.find('/').unwrap());
    let mut sock = TcpStream::connect(host).expect("connecting to the streaming server");
    sock.set_read_timeout(Some(EXEC_TIMEOUT)).unwrap();
    let mut req = format!("POST {path} HTTP/1.1\r\nHost: {host}\r\n");
    for (k, v) in headers {
        req += &format!("{k}: {v}\r\n");
    }
    req += "\r\n";
    sock.write_all(req.as_bytes()).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8];
    while !head.ends_with(b"\r\n\r\n") {
        if sock.read(&mut byte).unwrap_or(0) == 0 {
            break;
        }
        head.push(byte[0]);
    }
    (sock, String::from_utf8_lossy(&head).into_owned())
}

pub(crate) fn header_of(head: &str, name: &str) -> String {
    head.lines()
        .find_map(|l| {
            l.split_once(':')
                .filter(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| v.trim().to_string())
        })
        .unwrap_or_default()
}

pub(crate) fn ws_headers(protocol: &str) -> Vec<(&'static str, String)> {
    vec![
        ("Connection", "Upgrade".into()),
        ("Upgrade", "websocket".into()),
        ("Sec-WebSocket-Version", "13".into()),
        ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ==".into()),
        ("Sec-WebSocket-Protocol", protocol.into()),
    ]
}

/// One server frame: (opcode, payload); `None` at the end of the connection.
pub(crate) fn ws_read(sock: &mut TcpStream) -> Option<(u8, Vec<u8>)> {
    let mut h = [0u8; 2];
    sock.read_exact(&mut h).ok()?;
    assert_eq!(h[1] & 0x80, 0, "server frames are not masked");
    let len = match h[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            sock.read_exact(&mut l).ok()?;
            u16::from_be_bytes(l) as usize
        }
        127 => {
            let mut l = [0u8; 8];
            sock.read_exact(&mut l).ok()?;
            u64::from_be_bytes(l) as usize
        }
        n => n as usize,
    };
    let mut payload = vec![0u8; len];
    sock.read_exact(&mut payload).ok()?;
    Some((h[0] & 0x0f, payload))
}

/// One masked binary frame, as a client must send.
pub(crate) fn ws_write(sock: &mut TcpStream, payload: &[u8]) {
    let mask = [7u8, 1, 8, 2];
    let mut f = vec![0x82];
    if payload.len() < 126 {
        f.push(0x80 | payload.len() as u8);
    } else {
        f.push(0x80 | 126);
        f.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    }
    f.extend_from_slice(&mask);
    f.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    sock.write_all(&f).unwrap();
}

pub(crate) fn ws_exec(url: &str, protocol: &str) -> ExecResult {
    let (mut sock, head) = http_upgrade(url, &ws_headers(protocol));
    assert!(head.starts_with("HTTP/1.1 101"), "{url}: {head}");
    assert_eq!(
        header_of(&head, "sec-websocket-accept"),
        "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    );
    let mut r = ExecResult {
        protocol: header_of(&head, "sec-websocket-protocol"),
        ..Default::default()
    };
    while let Some((op, msg)) = ws_read(&mut sock) {
        match (op, msg.first()) {
            (8, _) => break,
            (2, Some(1)) => r.stdout += &String::from_utf8_lossy(&msg[1..]),
            (2, Some(2)) => r.stderr += &String::from_utf8_lossy(&msg[1..]),
            (2, Some(3)) if msg.len() > 1 => {
                r.status = serde_json::from_slice(&msg[1..]).expect("a Status JSON")
            }
            _ => {}
        }
    }
    r
}

#[derive(Debug)]
pub(crate) enum SpdyFrame {
    Control { kind: u16, payload: Vec<u8> },
    Data { id: u32, fin: bool, data: Vec<u8> },
}

/// A SPDY/3.1 client session over a blocking socket.
pub(crate) struct Spdy {
    pub(crate) sock: TcpStream,
    pub(crate) protocol: String,
    pub(crate) deflate: Compress,
    pub(crate) inflate: Decompress,
}

pub(crate) fn spdy_connect(url: &str, protocol: &str) -> Spdy {
    let headers = vec![
        ("Connection", "Upgrade".to_string()),
        ("Upgrade", "SPDY/3.1".to_string()),
        ("X-Stream-Protocol-Version", protocol.to_string()),
        ("X-Stream-Protocol-Version", "channel.k8s.io".to_string()),
    ];
    let (sock, head) = http_upgrade(url, &headers);
    assert!(head.starts_with("HTTP/1.1 101"), "{url}: {head}");
    let mut deflate = Compress::new(Compression::default(), true);
    deflate
        .set_dictionary(wasmlet_streaming::spdy_header_dictionary())
        .unwrap();
    Spdy {
        sock,
        protocol: header_of(&head, "x-stream-protocol-version"),
        deflate,
        inflate: Decompress::new(true),
    }
}

impl Spdy {
    pub(crate) fn syn(&mut self, id: u32, headers: &[(&str, &str)], fin: bool) {
        let mut block = (headers.len() as u32).to_be_bytes().to_vec();
        for (k, v) in headers {
            for s in [k, v] {
                block.extend_from_slice(&(s.len() as u32).to_be_bytes());
                block.extend_from_slice(s.as_bytes());
            }
        }
        let mut z = Vec::with_capacity(block.len() + 128);
        self.deflate
            .compress_vec(&block, &mut z, FlushCompress::Sync)
            .unwrap();
        let mut f = vec![0x80, 3, 0, 1, fin as u8];
        f.extend_from_slice(&((10 + z.len()) as u32).to_be_bytes()[1..]);
        f.extend_from_slice(&id.to_be_bytes());
        f.extend_from_slice(&[0; 6]);
        f.extend_from_slice(&z);
        self.sock.write_all(&f).unwrap();
    }

    pub(crate) fn data(&mut self, id: u32, data: &[u8], fin: bool) {
        let mut f = id.to_be_bytes().to_vec();
        f.push(fin as u8);
        f.extend_from_slice(&(data.len() as u32).to_be_bytes()[1..]);
        f.extend_from_slice(data);
        self.sock.write_all(&f).unwrap();
    }

    /// The error, stdout and stderr streams of an exec without stdin, as client-go opens them.
    pub(crate) fn open_exec_streams(&mut self) {
        self.syn(1, &[("streamtype", "error")], false);
        self.syn(3, &[("streamtype", "stdout")], false);
        self.syn(5, &[("streamtype", "stderr")], false);
    }

    pub(crate) fn read_frame(&mut self) -> Option<SpdyFrame> {
        let mut h = [0u8; 8];
        self.sock.read_exact(&mut h).ok()?;
        let len = u32::from_be_bytes([0, h[5], h[6], h[7]]) as usize;
        let mut payload = vec![0u8; len];
        self.sock.read_exact(&mut payload).ok()?;
        if h[0] & 0x80 != 0 {
            let kind = u16::from_be_bytes([h[2], h[3]]);
            if kind == 2 {
                // SYN_REPLY: inflate its header block to keep the shared zlib stream in step.
                let mut out = Vec::with_capacity(4096);
                if let Err(e) =
                    self.inflate
                        .decompress_vec(&payload[4..], &mut out, FlushDecompress::Sync)
                {
                    assert!(e.needs_dictionary().is_some(), "{e}");
                    self.inflate
                        .set_dictionary(wasmlet_streaming::spdy_header_dictionary())
                        .unwrap();
                    self.inflate
                        .decompress_vec(
                            &payload[4 + self.inflate.total_in() as usize..],
                            &mut out,
                            FlushDecompress::Sync,
                        )
                        .unwrap();
                }
                assert_eq!(&out[..4], &[0, 0, 0, 0], "SYN_REPLY with no headers");
            }
            Some(SpdyFrame::Control { kind, payload })
        } else {
            Some(SpdyFrame::Data {
                id: u32::from_be_bytes([h[0], h[1], h[2], h[3]]),
                fin: h[4] & 1 != 0,
                data: payload,
            })
        }
    }

    pub(crate) fn read_until(&mut self, mut done: impl FnMut(&SpdyFrame) -> bool) {
        loop {
            let f = self.read_frame().expect("the session ended early");
            if done(&f) {
                return;
            }
        }
    }

    /// Everything stream `id` carries until its FIN (other streams' data is dropped).
    pub(crate) fn collect_until_fin(&mut self, id: u32) -> String {
        let mut out = Vec::new();
        loop {
            match self
                .read_frame()
                .expect("the session ended before the stream did")
            {
                SpdyFrame::Data { id: i, fin, data } if i == id => {
                    out.extend_from_slice(&data);
                    if fin {
                        return String::from_utf8_lossy(&out).into_owned();
                    }
                }
                SpdyFrame::Control {
                    kind: 3, payload, ..
                } if u32::from_be_bytes(payload[..4].try_into().unwrap()) == id => {
                    panic!("stream {id} was reset")
                }
                _ => {}
            }
        }
    }
}

pub(crate) fn spdy_exec(url: &str) -> ExecResult {
    let mut s = spdy_connect(url, "v4.channel.k8s.io");
    s.open_exec_streams();
    let mut r = ExecResult {
        protocol: s.protocol.clone(),
        ..Default::default()
    };
    let (mut error, mut fins) = (Vec::new(), 0);
    while fins < 3 {
        match s
            .read_frame()
            .expect("the session ended before every stream did")
        {
            SpdyFrame::Data { id, fin, data } => {
                match id {
                    1 => error.extend_from_slice(&data),
                    3 => r.stdout += &String::from_utf8_lossy(&data),
                    5 => r.stderr += &String::from_utf8_lossy(&data),
                    _ => panic!("data on stream {id}"),
                }
                fins += fin as usize;
            }
            SpdyFrame::Control { kind: 3, .. } => panic!("a stream was reset"),
            SpdyFrame::Control { .. } => {}
        }
    }
    r.status = serde_json::from_slice(&error).expect("a Status JSON on the error stream");
    // Then GOAWAY and the end of the connection.
    let mut rest = BufReader::new(&s.sock);
    let _ = rest.fill_buf();
    r
}
