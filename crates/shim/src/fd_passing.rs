//! File descriptors over the shim's unix sockets (SCM_RIGHTS): an exec request line carries its
//! stdio with it (daemon → shim), and libcontainer's console socket carries a terminal master to
//! the shim. One receive primitive for both, and the daemon's sending side.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixStream;

/// Largest request line (a spec with a long argv).
const MAX_LINE: usize = 1 << 20;
/// At most this many descriptors come with one message.
const MAX_FDS: usize = 8;

/// One `recvmsg` into `buf`: the bytes read (0 at the end of the stream) and the descriptors that
/// came with them (close-on-exec). More than [`MAX_FDS`] descriptors is an error.
pub(crate) fn recv_with_fds(conn: &UnixStream, buf: &mut [u8]) -> std::io::Result<(usize, Vec<OwnedFd>)> {
    loop {
        // Room for MAX_FDS descriptors; u64 for cmsghdr's alignment.
        let mut control = [0u64; 8];
        let mut iov = libc::iovec { iov_base: buf.as_mut_ptr().cast(), iov_len: buf.len() };
        // SAFETY: msghdr is plain data; every pointer set below outlives the call.
        let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = std::mem::size_of_val(&control);
        // SAFETY: recvmsg writes only into the buffers msg points at.
        let n = unsafe { libc::recvmsg(conn.as_raw_fd(), &mut msg, libc::MSG_CMSG_CLOEXEC) };
        if n < 0 {
            let e = std::io::Error::last_os_error();
            if e.kind() == std::io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        let mut fds = Vec::new();
        // SAFETY: the kernel filled msg_control with well-formed cmsg headers up to
        // msg_controllen; SCM_RIGHTS data is an array of fresh descriptors we now own.
        unsafe {
            let mut c = libc::CMSG_FIRSTHDR(&msg);
            while !c.is_null() {
                if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_RIGHTS {
                    let data = libc::CMSG_DATA(c).cast::<libc::c_int>();
                    let count = ((*c).cmsg_len as usize - libc::CMSG_LEN(0) as usize) / std::mem::size_of::<libc::c_int>();
                    for i in 0..count {
                        fds.push(OwnedFd::from_raw_fd(std::ptr::read_unaligned(data.add(i))));
                    }
                }
                c = libc::CMSG_NXTHDR(&msg, c);
            }
        }
        if msg.msg_flags & libc::MSG_CTRUNC != 0 {
            return Err(std::io::Error::other(format!("more than {MAX_FDS} descriptors came with the message")));
        }
        return Ok((n as usize, fds));
    }
}

/// Reads a connection's request lines one at a time, keeping what one receive brought past the
/// end of a line: a client may pipeline requests (the daemon sends a container's start right
/// behind its create), and those bytes are the next request. Descriptors arrive with the
/// receive that read the first byte of their message, and go with the line completed first.
pub(crate) struct RequestReader<'a> {
    conn: &'a UnixStream,
    buffered: Vec<u8>,
}

impl<'a> RequestReader<'a> {
    pub fn new(conn: &'a UnixStream) -> Self {
        RequestReader { conn, buffered: Vec::new() }
    }

    /// The next line (without its newline) and any descriptors that came with it. At the end of
    /// the stream, what is left (empty once the client has closed).
    pub fn next(&mut self) -> std::io::Result<(String, Vec<OwnedFd>)> {
        let mut fds = Vec::new();
        let line = loop {
            if let Some(end) = self.buffered.iter().position(|b| *b == b'\n') {
                let rest = self.buffered.split_off(end + 1);
                let mut line = std::mem::replace(&mut self.buffered, rest);
                line.truncate(end);
                break line;
            }
            if self.buffered.len() > MAX_LINE {
                return Err(std::io::Error::other("request line too long"));
            }
            let mut buf = [0u8; 4096];
            let (n, more) = recv_with_fds(self.conn, &mut buf)?;
            fds.extend(more);
            if n == 0 {
                break std::mem::take(&mut self.buffered);
            }
            self.buffered.extend_from_slice(&buf[..n]);
        };
        String::from_utf8(line).map(|l| (l, fds)).map_err(std::io::Error::other)
    }
}

/// Writes `bytes` with `fds` attached to the first byte (the daemon's side).
pub(crate) async fn send_with_fds(stream: &mut tokio::net::UnixStream, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<()> {
    use tokio::io::AsyncWriteExt;
    if fds.len() > MAX_FDS {
        return Err(std::io::Error::other(format!("at most {MAX_FDS} descriptors go with one message")));
    }
    let sent = loop {
        stream.writable().await?;
        match stream.try_io(tokio::io::Interest::WRITABLE, || sendmsg(stream.as_raw_fd(), bytes, fds)) {
            Ok(n) => break n,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    };
    stream.write_all(&bytes[sent..]).await
}

fn sendmsg(sock: RawFd, bytes: &[u8], fds: &[RawFd]) -> std::io::Result<usize> {
    let mut control = [0u64; 8];
    let mut iov = libc::iovec { iov_base: bytes.as_ptr() as *mut _, iov_len: bytes.len() };
    // SAFETY: msghdr is plain data; the pointers set below outlive the call.
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &mut iov;
    msg.msg_iovlen = 1;
    if !fds.is_empty() {
        let len = std::mem::size_of_val(fds);
        // SAFETY: control has room for CMSG_SPACE(len) (at most MAX_FDS descriptors, checked
        // by the caller); CMSG_FIRSTHDR of a msghdr with that control buffer is non-null.
        unsafe {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = libc::CMSG_SPACE(len as u32) as usize;
            let c = libc::CMSG_FIRSTHDR(&msg);
            (*c).cmsg_level = libc::SOL_SOCKET;
            (*c).cmsg_type = libc::SCM_RIGHTS;
            (*c).cmsg_len = libc::CMSG_LEN(len as u32) as usize;
            std::ptr::copy_nonoverlapping(fds.as_ptr().cast::<u8>(), libc::CMSG_DATA(c), len);
        }
    }
    // SAFETY: sendmsg reads only the buffers msg points at.
    let n = unsafe { libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL) };
    if n < 0 { Err(std::io::Error::last_os_error()) } else { Ok(n as usize) }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use super::*;

    #[test]
    fn descriptors_travel_with_the_request_line() {
        let (a, b) = UnixStream::pair().unwrap();
        let (mut r, w) = std::io::pipe().unwrap();
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async {
            a.set_nonblocking(true).unwrap();
            let mut a = tokio::net::UnixStream::from_std(a).unwrap();
            send_with_fds(&mut a, b"{\"x\":1}\n", &[w.as_raw_fd()]).await.unwrap();
        });
        drop(w);
        let (line, fds) = RequestReader::new(&b).next().unwrap();
        assert_eq!(line, "{\"x\":1}");
        assert_eq!(fds.len(), 1);
        // The received descriptor is the pipe's write end: what goes in comes out of `r`.
        std::fs::File::from(fds.into_iter().next().unwrap()).write_all(b"hi").unwrap();
        let mut got = [0u8; 2];
        r.read_exact(&mut got).unwrap();
        assert_eq!(&got, b"hi");
    }

    #[test]
    fn a_request_without_descriptors_reads_as_before() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"\"Ping\"\n").unwrap();
        let (line, fds) = RequestReader::new(&b).next().unwrap();
        assert_eq!((line.as_str(), fds.len()), ("\"Ping\"", 0));
    }

    #[test]
    fn requests_sent_back_to_back_are_all_read() {
        let (mut a, b) = UnixStream::pair().unwrap();
        a.write_all(b"\"Ping\"\n{\"Start\":{\"id\":\"c\"}}\n\"Li").unwrap();
        let mut reader = RequestReader::new(&b);
        assert_eq!(reader.next().unwrap().0, "\"Ping\"");
        assert_eq!(reader.next().unwrap().0, "{\"Start\":{\"id\":\"c\"}}");
        a.write_all(b"st\"\n").unwrap();
        assert_eq!(reader.next().unwrap().0, "\"List\"");
        drop(a);
        assert_eq!(reader.next().unwrap().0, "", "closed");
    }
}
