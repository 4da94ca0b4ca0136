//! The shim process: binds its socket, detaches from the daemon (double fork, new session) so it
//! survives the daemon, then serves the protocol, one thread per connection (a connection carries
//! requests one after another; the daemon keeps a couple open).

use std::io::Write;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::Arc;

use crate::executor::Executor;
use crate::protocol::{Request, Response, socket_path};
use crate::supervisor::Supervisor;
use crate::Error;

/// What `wasmlet shim` is started with.
#[derive(Debug, Clone)]
pub struct ShimOptions {
    pub sandbox_id: String,
    /// The shim's own directory: socket, exit records, its log.
    pub dir: PathBuf,
    /// Where to pin a new network namespace for the pod; `None` shares the node's.
    pub netns: Option<PathBuf>,
}

/// Binds the socket and detaches. Must be called while the process is single-threaded: it forks.
/// Returns in the detached child only, after printing `ready <pid>` on stdout for the spawner.
pub fn bind_and_detach(opts: &ShimOptions) -> Result<UnixListener, Error> {
    std::fs::create_dir_all(&opts.dir).map_err(Error::io("creating shim directory", &opts.dir))?;
    let sock = socket_path(&opts.dir);
    let _ = std::fs::remove_file(&sock);
    let listener = UnixListener::bind(&sock).map_err(Error::io("binding", &sock))?;
    // SAFETY: the process is single-threaded here (documented precondition), so the child may
    // continue running arbitrary code after fork.
    match unsafe { libc::fork() } {
        -1 => return Err(Error::Spawn(format!("fork: {}", std::io::Error::last_os_error()))),
        0 => {}
        _ => std::process::exit(0),
    }
    // SAFETY: plain syscall with no memory arguments.
    unsafe {
        libc::setsid();
    }
    // Hold no directory of the daemon's busy (it may be on a filesystem that goes away).
    let _ = std::env::set_current_dir("/");
    let mut out = std::io::stdout();
    if let Some(pin) = &opts.netns
        && let Err(e) = crate::netns::enter_new(pin)
    {
        let _ = writeln!(out, "error {}", crate::error::chain(&e));
        std::process::exit(1);
    }
    let _ = writeln!(out, "ready {}", std::process::id());
    let _ = out.flush();
    // stdout was the spawner's pipe: point it (and stdin) at /dev/null.
    if let Ok(null) = std::fs::OpenOptions::new().read(true).write(true).open("/dev/null") {
        use std::os::fd::AsRawFd;
        // SAFETY: dup2 onto the standard descriptors of this process.
        unsafe {
            libc::dup2(null.as_raw_fd(), 0);
            libc::dup2(null.as_raw_fd(), 1);
        }
    }
    Ok(listener)
}

/// Serves requests until a `Shutdown` arrives, then exits the process.
pub fn serve(opts: ShimOptions, listener: UnixListener) -> Result<(), Error> {
    one_malloc_arena();
    serve_with(Executor::new()?, opts, listener)
}

/// [`serve`] with an engine made beforehand (a zygote's child inherits its parent's).
pub(crate) fn serve_with(executor: Executor, opts: ShimOptions, listener: UnixListener) -> Result<(), Error> {
    let supervisor = Arc::new(Supervisor::new(opts.sandbox_id.clone(), opts.dir.clone(), executor));
    supervisor.prepare_thread();
    tracing::info!(sandbox.id = %opts.sandbox_id, pid = std::process::id(), "shim serving");
    for conn in listener.incoming() {
        let Ok(conn) = conn else { continue };
        let supervisor = Arc::clone(&supervisor);
        let opts = opts.clone();
        std::thread::spawn(move || {
            if let Err(e) = handle(conn, &supervisor, &opts) {
                tracing::debug!(error = %e, "shim connection");
            }
        });
    }
    Ok(())
}

/// Keeps glibc malloc to one arena in this process (and, called in the zygote, in every shim it
/// forks). A shim has a few threads that each allocate a little; by default each gets an arena
/// of its own, whose heap header and first chunks are fresh pages: about two page faults and
/// 8 KiB or more per thread, per pod, for no contention worth avoiding.
pub(crate) fn one_malloc_arena() {
    // SAFETY: mallopt only sets an allocator parameter.
    unsafe {
        libc::mallopt(libc::M_ARENA_MAX, 1);
    }
}

/// Serves one connection: plain requests one after another until the client closes it; a
/// subscription or an exec takes the connection over.
fn handle(conn: UnixStream, supervisor: &Arc<Supervisor>, opts: &ShimOptions) -> std::io::Result<()> {
    let mut requests = crate::fd_passing::RequestReader::new(&conn);
    loop {
        // An exec's stdio descriptors come with its request line.
        let (line, fds) = requests.next()?;
        if line.is_empty() && fds.is_empty() {
            return Ok(()); // closed by the client
        }
        let request: Request = match serde_json::from_str(&line) {
            Ok(r) => r,
            Err(e) => {
                reply(&conn, &Response::Error(crate::protocol::RemoteError::InvalidArgument(format!("bad request: {e}"))))?;
                continue;
            }
        };
        match request {
            Request::Subscribe => {
                reply(&conn, &Response::Ok)?;
                supervisor.subscribe(conn);
                return Ok(());
            }
            Request::Shutdown => {
                supervisor.stop_all();
                let _ = std::fs::remove_file(socket_path(&opts.dir));
                reply(&conn, &Response::Ok)?;
                tracing::info!(sandbox.id = %opts.sandbox_id, "shim exiting");
                std::process::exit(0);
            }
            Request::Exec { id, exec_id, spec } => return crate::exec::serve(conn, supervisor.exec_target(&id), id, exec_id, spec, fds),
            Request::ExecResize { exec_id, size } => reply(&conn, &crate::exec::resize(&exec_id, size))?,
            other => {
                let response = supervisor.handle(other).unwrap_or_else(Response::Error);
                reply(&conn, &response)?;
            }
        }
    }
}

fn reply(mut conn: &UnixStream, response: &Response) -> std::io::Result<()> {
    let mut bytes = serde_json::to_vec(response).map_err(std::io::Error::other)?;
    bytes.push(b'\n');
    conn.write_all(&bytes)
}
