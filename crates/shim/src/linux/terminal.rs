//! Terminals of Linux containers and execs: the console socket libcontainer sends a terminal's
//! master to (runc's console-socket protocol), and the masters of running sessions by id, which
//! resizes (`TIOCSWINSZ`) reach.

use std::collections::HashMap;
use std::os::fd::{AsRawFd, OwnedFd};
use std::os::unix::net::UnixListener;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use crate::exec::TerminalSize;

/// How long libcontainer may take to send the master once its helper reported success.
const RECEIVE_WAIT: Duration = Duration::from_secs(10);

/// The terminal masters of running sessions (execs with a terminal, attaches to a container with
/// one), by session id.
static TERMINALS: Mutex<Option<HashMap<String, Arc<OwnedFd>>>> = Mutex::new(None);

/// Makes `session`'s resizes reach `master` until [`unregister`].
pub(crate) fn register(session: &str, master: &Arc<OwnedFd>) {
    TERMINALS.lock().unwrap_or_else(|e| e.into_inner()).get_or_insert_with(HashMap::new).insert(session.to_string(), Arc::clone(master));
}

pub(crate) fn unregister(session: &str) {
    if let Some(t) = TERMINALS.lock().unwrap_or_else(|e| e.into_inner()).as_mut() {
        t.remove(session);
    }
}

/// Resizes the terminal of `session`; `false` if it has none here.
pub(crate) fn resize(session: &str, size: TerminalSize) -> bool {
    let terminals = TERMINALS.lock().unwrap_or_else(|e| e.into_inner());
    let Some(master) = terminals.as_ref().and_then(|t| t.get(session)) else { return false };
    set_size(master, size);
    true
}

pub(crate) fn set_size(master: &OwnedFd, size: TerminalSize) {
    let ws = libc::winsize { ws_row: size.height, ws_col: size.width, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads a winsize we own.
    unsafe {
        libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &ws);
    }
}

/// The socket libcontainer sends a terminal's master to.
pub(crate) struct Console {
    pub path: PathBuf,
    listener: UnixListener,
}

impl Console {
    /// Listens at `dir/name` (keep both short: a unix socket path must fit in 108 bytes).
    pub fn listen(dir: &Path, name: &str) -> std::io::Result<Console> {
        let path = dir.join(name);
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path)?;
        listener.set_nonblocking(true)?;
        Ok(Console { path, listener })
    }

    /// Takes the master libcontainer sent (call after its helper reported success).
    pub fn receive(self) -> std::io::Result<OwnedFd> {
        let _ = std::fs::remove_file(&self.path);
        let mut pfd = libc::pollfd { fd: self.listener.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        // SAFETY: poll reads and writes the one pollfd we own.
        let ready = unsafe { libc::poll(&mut pfd, 1, RECEIVE_WAIT.as_millis() as libc::c_int) };
        if ready < 0 {
            return Err(std::io::Error::last_os_error());
        }
        if ready == 0 {
            return Err(std::io::Error::other(format!("libcontainer sent no terminal within {RECEIVE_WAIT:?}")));
        }
        let (conn, _) = self.listener.accept()?;
        conn.set_nonblocking(false)?;
        conn.set_read_timeout(Some(RECEIVE_WAIT))?;
        let mut buf = [0u8; 256];
        let (_, fds) = crate::fd_passing::recv_with_fds(&conn, &mut buf)?;
        fds.into_iter().next().ok_or_else(|| std::io::Error::other("no terminal master came with the console message"))
    }
}
