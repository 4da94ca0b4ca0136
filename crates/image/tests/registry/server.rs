//! The registries the tests talk to: Debian's real `docker-registry` (distribution 2.8) on a free
//! loopback port with its own storage, optionally behind htpasswd basic auth; and, for what a real
//! registry will not do (serve bytes that do not match their digest, a 5 MiB manifest, a bearer-token
//! realm without TLS), a tiny fake HTTP server with canned answers that counts requests.

use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const REGISTRY_BIN: &str = "/usr/bin/docker-registry";
const HTPASSWD_BIN: &str = "/usr/bin/htpasswd";

/// A running `docker-registry serve`, killed on drop.
pub struct RealRegistry {
    child: Child,
    /// `127.0.0.1:<port>`
    pub addr: String,
    dir: tempfile::TempDir,
}

impl RealRegistry {
    /// Starts a registry; with `user` it requires that user's basic auth.
    pub fn start(user: Option<(&str, &str)>) -> RealRegistry {
        assert!(
            Path::new(REGISTRY_BIN).exists(),
            "{REGISTRY_BIN} is missing: run scripts/install-deps.sh (Debian package docker-registry)"
        );
        let dir = tempfile::tempdir().unwrap();
        let port = free_port();
        let addr = format!("127.0.0.1:{port}");
        let mut config = format!(
            "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {}\n  delete:\n    enabled: true\nhttp:\n  addr: {addr}\n",
            dir.path().join("data").display()
        );
        if let Some((name, password)) = user {
            assert!(
                Path::new(HTPASSWD_BIN).exists(),
                "{HTPASSWD_BIN} is missing: run scripts/install-deps.sh (Debian package apache2-utils)"
            );
            let out = Command::new(HTPASSWD_BIN)
                .args(["-Bbn", name, password])
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "htpasswd: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let file = dir.path().join("htpasswd");
            std::fs::write(&file, &out.stdout).unwrap();
            config.push_str(&format!(
                "auth:\n  htpasswd:\n    realm: wasmlet-test\n    path: {}\n",
                file.display()
            ));
        }
        let config_path = dir.path().join("config.yml");
        std::fs::write(&config_path, config).unwrap();
        let log = std::fs::File::create(dir.path().join("registry.log")).unwrap();
        let child = Command::new(REGISTRY_BIN)
            .arg("serve")
            .arg(&config_path)
            .stdout(Stdio::from(log.try_clone().unwrap()))
            .stderr(Stdio::from(log))
            .spawn()
            .expect("starting docker-registry");
        let mut registry = RealRegistry { child, addr, dir };
        registry.wait_ready();
        registry
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if let Ok(mut s) = TcpStream::connect(&self.addr) {
                let _ = write!(s, "GET /v2/ HTTP/1.0\r\nHost: {}\r\n\r\n", self.addr);
                let mut line = String::new();
                if BufReader::new(s).read_line(&mut line).is_ok() && line.starts_with("HTTP/") {
                    return;
                }
            }
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("docker-registry exited ({status}):\n{}", self.log());
            }
            assert!(
                Instant::now() < deadline,
                "docker-registry did not listen on {}:\n{}",
                self.addr,
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("registry.log")).unwrap_or_default()
    }
}

impl Drop for RealRegistry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A canned answer.
#[derive(Clone)]
pub struct Answer {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// Send the headers and half the body, then stall for this long before closing.
    pub stall: Option<Duration>,
}

impl Answer {
    pub fn ok(content_type: &str, body: Vec<u8>) -> Answer {
        Answer {
            status: 200,
            headers: vec![("Content-Type".into(), content_type.into())],
            body,
            stall: None,
        }
    }
}

#[derive(Default)]
struct FakeState {
    routes: HashMap<String, Answer>,
    hits: HashMap<String, usize>,
    /// When set, `/v2/...` needs `Authorization: Bearer <token>`, which `/token` hands out for `basic`.
    bearer: Option<(String, String)>,
}

/// A fake registry on a free loopback port. Routes are request paths; everything else is 404.
pub struct FakeRegistry {
    pub addr: String,
    state: Arc<Mutex<FakeState>>,
}

impl FakeRegistry {
    pub fn start() -> FakeRegistry {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new(Mutex::new(FakeState::default()));
        let shared = Arc::clone(&state);
        let realm = format!("http://{addr}/token");
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let state = Arc::clone(&shared);
                let realm = realm.clone();
                std::thread::spawn(move || serve(stream, &state, &realm));
            }
        });
        FakeRegistry { addr, state }
    }

    pub fn route(&self, path: &str, answer: Answer) {
        self.state
            .lock()
            .unwrap()
            .routes
            .insert(path.to_owned(), answer);
    }

    /// Requires a bearer token, handed out by `/token` for basic auth `basic` (`base64(user:pass)`).
    pub fn require_bearer(&self, basic: &str, token: &str) {
        self.state.lock().unwrap().bearer = Some((basic.to_owned(), token.to_owned()));
    }

    pub fn hits(&self, path: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .hits
            .get(path)
            .copied()
            .unwrap_or(0)
    }
}

fn serve(stream: TcpStream, state: &Mutex<FakeState>, realm: &str) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    let mut headers = HashMap::new();
    loop {
        let mut line = String::new();
        if reader.read_line(&mut line).unwrap_or(0) == 0 || line == "\r\n" {
            break;
        }
        if let Some((k, v)) = line.split_once(':') {
            headers.insert(k.trim().to_lowercase(), v.trim().to_owned());
        }
    }
    let len: usize = headers
        .get("content-length")
        .and_then(|l| l.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len];
    let _ = reader.read_exact(&mut body);
    let mut parts = request_line.split_whitespace();
    let (method, target) = (parts.next().unwrap_or(""), parts.next().unwrap_or(""));
    let path = target.split('?').next().unwrap_or("").to_owned();
    let answer = {
        let mut state = state.lock().unwrap();
        *state.hits.entry(path.clone()).or_default() += 1;
        let authz = headers.get("authorization").cloned().unwrap_or_default();
        match &state.bearer {
            Some((basic, token)) if path == "/token" => {
                if authz == format!("Basic {basic}") {
                    Answer::ok("application/json", format!("{{\"token\":\"{token}\"}}").into_bytes())
                } else {
                    Answer { status: 401, headers: vec![], body: b"{}".to_vec(), stall: None }
                }
            }
            Some((_, token)) if path.starts_with("/v2/") && authz != format!("Bearer {token}") => Answer {
                status: 401,
                headers: vec![(
                    "WWW-Authenticate".into(),
                    format!("Bearer realm=\"{realm}\",service=\"fake\",scope=\"repository:app:pull\""),
                )],
                body: br#"{"errors":[{"code":"UNAUTHORIZED","message":"authentication required"}]}"#.to_vec(),
                stall: None,
            },
            _ => state.routes.get(&path).cloned().unwrap_or(Answer {
                status: 404,
                headers: vec![("Content-Type".into(), "application/json".into())],
                body: br#"{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}"#.to_vec(),
                stall: None,
            }),
        }
    };
    let mut out = stream;
    let mut head = format!(
        "HTTP/1.1 {} X\r\nContent-Length: {}\r\nConnection: close\r\n",
        answer.status,
        answer.body.len()
    );
    for (k, v) in &answer.headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    if method == "HEAD" {
        return;
    }
    match answer.stall {
        Some(stall) => {
            let _ = out.write_all(&answer.body[..answer.body.len() / 2]);
            let _ = out.flush();
            std::thread::sleep(stall);
        }
        None => {
            let _ = out.write_all(&answer.body);
        }
    }
}
