//! A container's stdin as the shim keeps it for attach (CRI `stdin`): a pipe whose read end is the
//! container's stdin (a Linux container's fd 0, a Wasm guest's WASI stdin) and whose write end
//! attached clients write into; or, for a Linux container with a terminal, the terminal's master.
//!
//! `stdin_once` follows containerd (`internal/cri/io/container_io.go`) and Docker: without a
//! terminal, the first attach's end closes the pipe for good (the container reads EOF); with a
//! terminal, stdin stays open and the attach only detaches, so the container runs on until it
//! exits by itself.

use std::fs::File;
use std::os::fd::OwnedFd;
use std::sync::Mutex;

pub(crate) struct ContainerStdin {
    writer: Mutex<Option<File>>,
    /// The pipe's read end until the container takes it (a Wasm guest, at start).
    reader: Mutex<Option<OwnedFd>>,
    once: bool,
    terminal: bool,
}

impl ContainerStdin {
    /// A new pipe; the container's end is [`take_reader`](Self::take_reader). `terminal`: the
    /// container was created with `tty` (a Wasm guest, which has no real one), so `once` does not
    /// close it.
    pub fn pipe(once: bool, terminal: bool) -> std::io::Result<ContainerStdin> {
        let (r, w) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC).map_err(std::io::Error::from)?;
        Ok(ContainerStdin { writer: Mutex::new(Some(File::from(w))), reader: Mutex::new(Some(r)), once, terminal })
    }

    /// The write end of a pipe whose read end the container already has.
    pub fn from_writer(writer: File, once: bool) -> ContainerStdin {
        ContainerStdin { writer: Mutex::new(Some(writer)), reader: Mutex::new(None), once, terminal: false }
    }

    /// A terminal's master: what attached clients type goes to the terminal.
    pub fn terminal(master: OwnedFd) -> ContainerStdin {
        ContainerStdin { writer: Mutex::new(Some(File::from(master))), reader: Mutex::new(None), once: false, terminal: true }
    }

    /// The container's end of the pipe (once).
    pub fn take_reader(&self) -> Option<OwnedFd> {
        self.reader.lock().unwrap_or_else(|e| e.into_inner()).take()
    }

    /// A writer for one attach, if stdin is still open.
    pub fn writer(&self) -> Option<File> {
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).as_ref().and_then(|f| f.try_clone().ok())
    }

    /// An attach that wrote into stdin ended: with `stdin_once` (and no terminal), the container's
    /// stdin is closed for good. Returns whether it was.
    pub fn attach_ended(&self) -> bool {
        if !self.once || self.terminal {
            return false;
        }
        self.writer.lock().unwrap_or_else(|e| e.into_inner()).take().is_some()
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn stdin_once_closes_the_pipe_after_the_first_attach() {
        let stdin = ContainerStdin::pipe(true, false).unwrap();
        let mut reader = File::from(stdin.take_reader().unwrap());
        assert!(stdin.take_reader().is_none(), "the container's end is taken once");
        let mut w = stdin.writer().unwrap();
        w.write_all(b"line\n").unwrap();
        drop(w);
        assert!(stdin.attach_ended());
        assert!(stdin.writer().is_none(), "no second attach writes into a closed stdin");
        let mut got = String::new();
        reader.read_to_string(&mut got).unwrap();
        assert_eq!(got, "line\n", "the container reads what was typed, then EOF");
    }

    #[test]
    fn without_stdin_once_or_with_a_terminal_stdin_stays_open() {
        for (once, terminal) in [(false, false), (true, true)] {
            let stdin = ContainerStdin::pipe(once, terminal).unwrap();
            assert!(!stdin.attach_ended());
            assert!(stdin.writer().is_some());
        }
        let (_r, w) = nix::unistd::pipe().unwrap();
        let tty = ContainerStdin::terminal(w);
        assert!(!tty.attach_ended());
        assert!(tty.writer().is_some());
    }
}
