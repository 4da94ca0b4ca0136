//! A pod's network namespace, owned by its shim: the shim (still single-threaded, right after
//! it is forked) unshares a new network namespace, brings its loopback up, and pins it with a bind
//! mount at a path the daemon hands to CNI plugins (`CNI_NETNS`). No pause process is needed: the
//! namespace lives as long as the shim or the pin, and RemovePodSandbox unmounts the pin. A
//! spare shim may make the namespace before it has a pod ([`Fresh`]), and pin it once it has.

use std::ffi::CString;
use std::os::fd::AsRawFd;
use std::path::Path;

use crate::Error;

/// Moves the calling process into a new network namespace with `lo` up and pins it at `pin`.
/// Must run while the process is single-threaded (unshare applies to the calling thread, and
/// every thread made later inherits it).
pub fn enter_new(pin: &Path) -> Result<(), Error> {
    let fresh = Fresh::make().map_err(|e| Error::io("making the network namespace for", pin)(e))?;
    fresh.pin(pin)
}

/// The calling process in a network namespace of its own, with `lo` up, not pinned yet; made
/// ahead by a spare shim while it waits for its pod (unsharing a network namespace is most of a
/// pod network's start: ≈ 0.3 ms of kernel work). Keeps the namespace it left, to go back to
/// if its pod uses the node's network. Same single-thread rule as [`enter_new`].
pub struct Fresh {
    left: std::fs::File,
}

impl Fresh {
    pub fn make() -> std::io::Result<Fresh> {
        let left = std::fs::File::open("/proc/self/ns/net")?;
        nix::sched::unshare(nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)?;
        let fresh = Fresh { left };
        if let Err(e) = loopback_up() {
            let _ = fresh.leave();
            return Err(e);
        }
        Ok(fresh)
    }

    /// Pins the namespace at `pin` (the pod's), and forgets the one it left.
    pub fn pin(self, pin: &Path) -> Result<(), Error> {
        if let Some(dir) = pin.parent() {
            std::fs::create_dir_all(dir).map_err(Error::io("creating netns directory", dir))?;
        }
        std::fs::File::create(pin).map_err(Error::io("creating netns pin", pin))?;
        nix::mount::mount(Some("/proc/self/ns/net"), pin, None::<&str>, nix::mount::MsFlags::MS_BIND, None::<&str>)
            .map_err(|e| Error::io("bind-mounting the network namespace at", pin)(e.into()))
    }

    /// Goes back to the namespace it left (the kernel frees the fresh one).
    pub fn leave(self) -> std::io::Result<()> {
        nix::sched::setns(&self.left, nix::sched::CloneFlags::CLONE_NEWNET).map_err(std::io::Error::from)
    }
}

/// Unmounts and deletes a pin; a missing one is fine.
pub fn remove(pin: &Path) -> Result<(), Error> {
    match nix::mount::umount2(pin, nix::mount::MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::EINVAL) | Err(nix::errno::Errno::ENOENT) => {}
        Err(e) => return Err(Error::io("unmounting netns pin", pin)(e.into())),
    }
    match std::fs::remove_file(pin) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(Error::io("removing netns pin", pin)(e)),
    }
}

fn loopback_up() -> std::io::Result<()> {
    let sock = std::net::UdpSocket::bind("127.0.0.1:0").or_else(|_| {
        // 127.0.0.1 is not assigned until lo is up: any datagram socket will do for the ioctl.
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(std::io::Error::last_os_error());
        }
        // SAFETY: fd is a fresh, owned descriptor.
        Ok(unsafe { <std::net::UdpSocket as std::os::fd::FromRawFd>::from_raw_fd(fd) })
    })?;
    // SAFETY: ifreq is plain data; the ioctls read and write only it.
    unsafe {
        let mut req: libc::ifreq = std::mem::zeroed();
        let name = CString::new("lo").expect("no NUL");
        for (dst, src) in req.ifr_name.iter_mut().zip(name.as_bytes_with_nul()) {
            *dst = *src as libc::c_char;
        }
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
        req.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &req) < 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}
