//! The daemon's side of the shim protocol (async, tokio).

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::net::UnixStream;
use tokio::net::unix::OwnedReadHalf;

use crate::protocol::{ContainerState, ContainerUsage, Event, Request, Response, WasmSpec, socket_path};
use crate::Error;

/// A handle on one shim. Plain calls reuse idle connections (the shim serves one connection
/// request after request on one thread), which saves a connect, an accept and a thread spawn in
/// the shim per call: the start path makes four or five calls. Clones share the idle ones.
#[derive(Debug, Clone)]
pub struct ShimClient {
    socket: PathBuf,
    idle: Arc<Mutex<Vec<Connection>>>,
}

/// How many idle connections a client keeps (each holds a thread in the shim).
const MAX_IDLE: usize = 2;

/// Read buffer of a connection. Requests and answers are short JSON lines (a longer one is read
/// in several fills), and the daemon keeps a connection or two and a subscription per pod for
/// the pod's life: at tokio's default of 8 KiB those buffers were 16 KiB of the daemon per pod.
const READ_BUFFER: usize = 512;

#[derive(Debug)]
struct Connection {
    lines: Lines<BufReader<OwnedReadHalf>>,
    write: tokio::net::unix::OwnedWriteHalf,
}

/// The exit events of one shim, in order.
pub struct Subscription {
    lines: Lines<BufReader<OwnedReadHalf>>,
    _write: tokio::net::unix::OwnedWriteHalf,
}

impl Subscription {
    /// The next exit; `None` once the shim has gone away.
    pub async fn next(&mut self) -> Option<Event> {
        loop {
            let line = self.lines.next_line().await.ok()??;
            if let Ok(event) = serde_json::from_str(&line) {
                return Some(event);
            }
        }
    }
}

impl ShimClient {
    pub fn new(shim_dir: &Path) -> Self {
        ShimClient { socket: socket_path(shim_dir), idle: Arc::new(Mutex::new(Vec::new())) }
    }

    pub(crate) fn socket_path(&self) -> &Path {
        &self.socket
    }

    async fn open(&self) -> Result<Connection, Error> {
        let stream = UnixStream::connect(&self.socket)
            .await
            .map_err(|source| Error::Unreachable { path: self.socket.clone(), source })?;
        let (read, write) = stream.into_split();
        Ok(Connection { lines: BufReader::with_capacity(READ_BUFFER, read).lines(), write })
    }

    async fn connect(&self, request: &Request) -> Result<(Lines<BufReader<OwnedReadHalf>>, tokio::net::unix::OwnedWriteHalf), Error> {
        let mut conn = self.open().await?;
        self.send(&mut conn, request).await?;
        Ok((conn.lines, conn.write))
    }

    async fn send(&self, conn: &mut Connection, request: &Request) -> Result<(), Error> {
        let mut bytes = serde_json::to_vec(request).map_err(|e| Error::Protocol(e.to_string()))?;
        bytes.push(b'\n');
        conn.write.write_all(&bytes).await.map_err(|source| Error::Unreachable { path: self.socket.clone(), source })
    }

    /// One request and its response line on `conn`.
    async fn exchange(&self, conn: &mut Connection, request: &Request) -> Result<String, Error> {
        self.send(conn, request).await?;
        self.answer(conn).await
    }

    /// The next response line on `conn`.
    async fn answer(&self, conn: &mut Connection) -> Result<String, Error> {
        conn.lines
            .next_line()
            .await
            .map_err(|source| Error::Unreachable { path: self.socket.clone(), source })?
            .ok_or_else(|| Error::Protocol("the shim closed the connection without answering".into()))
    }

    /// Puts a connection that answered back in the idle pool (if it has room).
    fn keep(&self, conn: Connection) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        if idle.len() < MAX_IDLE {
            idle.push(conn);
        }
    }

    /// Sends one request and returns its response; a shim-side error becomes [`Error::Remote`].
    pub async fn call(&self, request: &Request) -> Result<Response, Error> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        // An idle connection the shim has closed (it restarted its listener, or exited: then the
        // fresh one fails too) gets no answer. The shim answers every request it reads before it
        // closes a connection, so no answer means it did not act on this one: retry on a new one.
        let reused = match pooled {
            Some(mut conn) => self.exchange(&mut conn, request).await.ok().map(|line| (conn, line)),
            None => None,
        };
        let (mut conn, line) = match reused {
            Some(answered) => answered,
            None => {
                let mut conn = self.open().await?;
                let line = self.exchange(&mut conn, request).await?;
                (conn, line)
            }
        };
        let response = parse(&line);
        if response.is_ok() && !matches!(request, Request::Shutdown) {
            self.keep(conn);
        } else {
            let _ = conn.write.shutdown().await;
        }
        remote(response?)
    }

    /// Opens a connection ahead of the first call, so the shim's accept and the thread that will
    /// serve it happen off that call's path. Does nothing if an idle connection is already kept.
    pub async fn warm(&self) -> Result<(), Error> {
        if !self.idle.lock().unwrap_or_else(|e| e.into_inner()).is_empty() {
            return Ok(());
        }
        let conn = self.open().await?;
        self.keep(conn);
        Ok(())
    }

    pub async fn subscribe(&self) -> Result<Subscription, Error> {
        let (mut lines, write) = self.connect(&Request::Subscribe).await?;
        lines
            .next_line()
            .await
            .map_err(|source| Error::Unreachable { path: self.socket.clone(), source })?
            .ok_or_else(|| Error::Protocol("the shim refused the subscription".into()))?;
        Ok(Subscription { lines, _write: write })
    }

    pub async fn ping(&self) -> Result<u32, Error> {
        match self.call(&Request::Ping).await? {
            Response::Pong { pid } => Ok(pid),
            other => Err(unexpected(other)),
        }
    }

    /// Writes a Wasm container's Create without waiting for the answer, which
    /// [`PendingCreate`] reads later: the shim links the module and stages the container while
    /// CreateContainer answers and the client sends StartContainer.
    pub async fn send_create(&self, id: &str, spec: WasmSpec) -> Result<PendingCreate, Error> {
        let pooled = self.idle.lock().unwrap_or_else(|e| e.into_inner()).pop();
        let mut conn = match pooled {
            Some(conn) => conn,
            None => self.open().await?,
        };
        self.send(&mut conn, &Request::Create { id: id.into(), spec }).await?;
        Ok(PendingCreate { client: self.clone(), conn, id: id.into() })
    }

    pub async fn create_linux(&self, id: &str, spec: crate::protocol::LinuxSpec) -> Result<(), Error> {
        self.call(&Request::CreateLinux { id: id.into(), spec }).await.map(drop)
    }

    /// The pid of the holder of the pod's shared PID namespace (the shim makes it once).
    pub async fn pod_pid_namespace(&self) -> Result<u32, Error> {
        match self.call(&Request::PodPidNamespace).await? {
            Response::Pong { pid } => Ok(pid),
            other => Err(unexpected(other)),
        }
    }

    /// The init pid of running Linux container `id`.
    pub async fn container_pid(&self, id: &str) -> Result<u32, Error> {
        match self.call(&Request::ContainerPid { id: id.into() }).await? {
            Response::Pong { pid } => Ok(pid),
            other => Err(unexpected(other)),
        }
    }

    pub async fn start(&self, id: &str) -> Result<i64, Error> {
        match self.call(&Request::Start { id: id.into() }).await? {
            Response::Started { started_at } => Ok(started_at),
            other => Err(unexpected(other)),
        }
    }

    pub async fn stop(&self, id: &str, timeout_ms: u64) -> Result<(), Error> {
        self.call(&Request::Stop { id: id.into(), timeout_ms }).await.map(drop)
    }

    pub async fn state(&self, id: &str) -> Result<ContainerState, Error> {
        match self.call(&Request::State { id: id.into() }).await? {
            Response::State(s) => Ok(s),
            other => Err(unexpected(other)),
        }
    }

    pub async fn list(&self) -> Result<Vec<(String, ContainerState)>, Error> {
        match self.call(&Request::List).await? {
            Response::List(l) => Ok(l),
            other => Err(unexpected(other)),
        }
    }

    pub async fn remove(&self, id: &str) -> Result<(), Error> {
        self.call(&Request::Remove { id: id.into() }).await.map(drop)
    }

    pub async fn reopen_log(&self, id: &str) -> Result<(), Error> {
        self.call(&Request::ReopenLog { id: id.into() }).await.map(drop)
    }

    pub async fn update_resources(&self, id: &str, memory_limit: Option<u64>) -> Result<(), Error> {
        self.call(&Request::UpdateResources { id: id.into(), memory_limit }).await.map(drop)
    }

    pub async fn stats(&self, id: &str) -> Result<ContainerUsage, Error> {
        match self.call(&Request::Stats { id: id.into() }).await? {
            Response::Stats(u) => Ok(u),
            other => Err(unexpected(other)),
        }
    }

    /// Moves a Wasm container's thread into the cgroup whose thread files are `tasks`.
    pub async fn join_cgroup(&self, id: &str, tasks: Vec<PathBuf>) -> Result<(), Error> {
        self.call(&Request::JoinCgroup { id: id.into(), tasks }).await.map(drop)
    }

    pub async fn shutdown(&self) -> Result<(), Error> {
        self.call(&Request::Shutdown).await.map(drop)
    }
}

/// A Create written to the shim whose answer is still on its connection
/// ([`ShimClient::send_create`]). The shim answers the requests of a connection in order, so
/// whatever is sent on it next is handled after the create.
pub struct PendingCreate {
    client: ShimClient,
    conn: Connection,
    id: String,
}

impl std::fmt::Debug for PendingCreate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PendingCreate").field("id", &self.id).field("socket", &self.client.socket).finish()
    }
}

impl PendingCreate {
    /// Reads the create's answer: `Ok` once the shim made the container.
    pub async fn settle(mut self) -> Result<(), Error> {
        let answer = self.read().await;
        if answer.is_ok() {
            self.client.keep(self.conn);
        }
        answer.map(drop)
    }

    /// Starts the container right behind its create, on the same connection: one round trip
    /// for both answers. The outer result is the create's, the inner one the start's.
    pub async fn start(mut self) -> Result<Result<i64, Error>, Error> {
        let start = Request::Start { id: self.id.clone() };
        self.client.send(&mut self.conn, &start).await?;
        self.read().await?;
        let started = self.read().await.and_then(|r| match r {
            Response::Started { started_at } => Ok(started_at),
            other => Err(unexpected(other)),
        });
        if started.is_ok() {
            self.client.keep(self.conn);
        }
        Ok(started)
    }

    async fn read(&mut self) -> Result<Response, Error> {
        let line = self.client.answer(&mut self.conn).await?;
        remote(parse(&line)?)
    }
}

/// A response line.
fn parse(line: &str) -> Result<Response, Error> {
    serde_json::from_str(line).map_err(|e| Error::Protocol(format!("bad response: {e}")))
}

/// A shim-side error as [`Error::Remote`].
fn remote(response: Response) -> Result<Response, Error> {
    match response {
        Response::Error(e) => Err(Error::Remote(e)),
        other => Ok(other),
    }
}

fn unexpected(response: Response) -> Error {
    Error::Protocol(format!("unexpected response {response:?}"))
}
