//! One Linux layer's tar stream unpacked into a snapshot directory, safely: decompressed by media
//! type, its uncompressed bytes hashed against the config's diff id as they stream, every entry
//! created with `*at` syscalls under `O_NOFOLLOW` directory descriptors (no symlink is ever
//! followed, nothing lands outside the snapshot), whiteouts and opaque markers turned into
//! overlayfs's on-disk form. The snapshot store around it is `unpack.rs`.

use std::cell::Cell;
use std::collections::HashSet;
use std::ffi::{CStr, CString, OsStr};
use std::fs::File;
use std::io::{self, ErrorKind, Read};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::rc::Rc;

use sha2::{Digest, Sha256};

use crate::digest::sha256_hex_of;
use crate::error::{Error, io_err};
use crate::unpack::{Layer, LayerCompression};

const OPAQUE_XATTR: &CStr = c"trusted.overlay.opaque";
const WHITEOUT_PREFIX: &str = ".wh.";
const OPAQUE_MARKER: &str = ".wh..wh..opq";

/// Unpacks `layer` into the (empty, existing) directory `dest`, checking its diff id. `image` names the
/// image in errors. On error `dest` holds a partial tree the caller discards.
pub(crate) fn unpack_layer(layer: &Layer, dest: &Path, image: &str) -> Result<(), Error> {
    let what = || format!("layer {} of {image}", layer.digest);
    let Some(compression) = LayerCompression::of(&layer.media_type) else {
        return Err(Error::not_wasm(
            image,
            format!(
                "layer {} has media type {:?}, not a tar layer",
                layer.digest, layer.media_type
            ),
        ));
    };
    let Some(want) = sha256_hex_of(&layer.diff_id) else {
        return Err(Error::corrupt(
            what(),
            format!("diff id {:?} is not a sha256 digest", layer.diff_id),
        ));
    };
    let file = File::open(&layer.blob).map_err(io_err(&layer.blob))?;
    // Who failed: the blob file (I/O) or the decompressor (a corrupt stream).
    let file_failed: Rc<Cell<bool>> = Rc::default();
    let decode_failed: Rc<Cell<Option<String>>> = Rc::default();
    let file = Watch {
        inner: file,
        failed: Rc::clone(&file_failed),
    };
    let decoded: Box<dyn Read> = match compression {
        LayerCompression::None => Box::new(file),
        LayerCompression::Gzip => Box::new(Decoded {
            inner: flate2::read::MultiGzDecoder::new(file),
            file_failed: Rc::clone(&file_failed),
            failed: Rc::clone(&decode_failed),
        }),
        LayerCompression::Zstd => {
            let decoder = zstd::stream::read::Decoder::new(file)
                .map_err(|e| decompress_error(image, layer, compression, e.to_string()))?;
            Box::new(Decoded {
                inner: decoder,
                file_failed: Rc::clone(&file_failed),
                failed: Rc::clone(&decode_failed),
            })
        }
    };
    let hashing = HashingReader {
        inner: decoded,
        hasher: Sha256::new(),
    };
    let mut archive = tar::Archive::new(hashing);
    let classify = |e: io::Error, during: &str| -> Error {
        if let Some(detail) = decode_failed.take() {
            decompress_error(image, layer, compression, detail)
        } else if file_failed.get() {
            io_err(&layer.blob)(e)
        } else {
            Error::corrupt(what(), format!("{during}: {e}"))
        }
    };
    let mut unpacker = Unpacker::new(dest, image, layer)?;
    let entries = archive
        .entries()
        .map_err(|e| classify(e, "not a tar archive"))?;
    for entry in entries {
        let entry = entry.map_err(|e| classify(e, "reading the tar archive"))?;
        unpacker.entry(entry, &classify)?;
    }
    let mut hashing = archive.into_inner();
    io::copy(&mut hashing, &mut io::sink()).map_err(|e| classify(e, "reading past the tar end"))?;
    let got = hex::encode(hashing.hasher.finalize());
    if got != want {
        return Err(Error::corrupt(
            what(),
            format!(
                "its uncompressed content hashes to sha256:{got}, the config's diff id is {}",
                layer.diff_id
            ),
        ));
    }
    unpacker.finish()
}

fn decompress_error(
    image: &str,
    layer: &Layer,
    compression: LayerCompression,
    detail: String,
) -> Error {
    Error::Decompress {
        image: image.to_owned(),
        layer: layer.digest.clone(),
        format: compression.name().to_owned(),
        detail,
    }
}

/// Marks `failed` when reading the blob file fails.
struct Watch<R> {
    inner: R,
    failed: Rc<Cell<bool>>,
}

impl<R: Read> Read for Watch<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|_| self.failed.set(true))
    }
}

/// Records the first decompression error (one not caused by reading the file).
struct Decoded<R> {
    inner: R,
    file_failed: Rc<Cell<bool>>,
    failed: Rc<Cell<Option<String>>>,
}

impl<R: Read> Read for Decoded<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        self.inner.read(buf).inspect_err(|e| {
            if !self.file_failed.get() && e.kind() != ErrorKind::Interrupted {
                let old = self.failed.take();
                self.failed.set(Some(old.unwrap_or_else(|| e.to_string())));
            }
        })
    }
}

struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        Ok(n)
    }
}

/// A directory whose metadata is applied once the whole layer is written (creating entries in it
/// changes its mtime; its mode might not let us write).
struct DirMeta {
    components: Vec<CString>,
    mode: u32,
    uid: u32,
    gid: u32,
    mtime: i64,
}

struct Unpacker<'a> {
    root: OwnedFd,
    image: &'a str,
    layer: &'a Layer,
    /// Non-directories extracted so far (normalised paths): the only valid hard-link targets.
    extracted: HashSet<Vec<u8>>,
    dirs: Vec<DirMeta>,
}

impl<'a> Unpacker<'a> {
    fn new(dest: &Path, image: &'a str, layer: &'a Layer) -> Result<Self, Error> {
        let c = cstring(dest.as_os_str().as_bytes()).map_err(io_err(dest))?;
        // SAFETY: a NUL-terminated path; the descriptor is owned below.
        let fd = unsafe {
            libc::open(
                c.as_ptr(),
                libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
            )
        };
        if fd < 0 {
            return Err(io_err(dest)(io::Error::last_os_error()));
        }
        Ok(Unpacker {
            // SAFETY: fd is a fresh descriptor we own.
            root: unsafe { OwnedFd::from_raw_fd(fd) },
            image,
            layer,
            extracted: HashSet::new(),
            dirs: Vec::new(),
        })
    }

    fn refuse(&self, entry: &[u8], reason: impl Into<String>) -> Error {
        Error::UnsafeLayer {
            image: self.image.to_owned(),
            layer: self.layer.digest.clone(),
            entry: String::from_utf8_lossy(entry).into_owned(),
            reason: reason.into(),
        }
    }

    fn io(&self, entry: &[u8], op: &str, e: io::Error) -> Error {
        let path = PathBuf::from(OsStr::from_bytes(entry));
        Error::Io {
            path,
            source: io::Error::new(e.kind(), format!("{op} (layer {}): {e}", self.layer.digest)),
        }
    }

    /// Splits an entry path into components: a leading `./` is stripped, `.` and empty components are
    /// dropped; absolute paths and `..` are refused.
    fn components(&self, raw: &[u8]) -> Result<Vec<Vec<u8>>, Error> {
        if raw.first() == Some(&b'/') {
            return Err(self.refuse(raw, "absolute path"));
        }
        let mut out = Vec::new();
        for comp in raw.split(|&b| b == b'/') {
            match comp {
                b"" | b"." => {}
                b".." => return Err(self.refuse(raw, "path has a '..' component")),
                c => out.push(c.to_vec()),
            }
        }
        Ok(out)
    }

    /// Opens the directory `comps` below the root without following any symlink, creating missing
    /// directories (mode 0755) when `create`.
    fn walk(&self, entry: &[u8], comps: &[Vec<u8>], create: bool) -> Result<OwnedFd, Error> {
        let mut dir = dup(&self.root).map_err(|e| self.io(entry, "dup", e))?;
        for comp in comps {
            let c = cstring(comp).map_err(|e| self.io(entry, "path", e))?;
            let next = match open_dir_at(dir.as_raw_fd(), &c) {
                Ok(fd) => fd,
                Err(e) if e.raw_os_error() == Some(libc::ENOENT) && create => {
                    // SAFETY: dirfd valid, c NUL-terminated.
                    if unsafe { libc::mkdirat(dir.as_raw_fd(), c.as_ptr(), 0o755) } != 0 {
                        return Err(self.io(entry, "mkdirat", io::Error::last_os_error()));
                    }
                    open_dir_at(dir.as_raw_fd(), &c).map_err(|e| self.io(entry, "openat", e))?
                }
                Err(e) if matches!(e.raw_os_error(), Some(libc::ELOOP) | Some(libc::ENOTDIR)) => {
                    return Err(self.refuse(
                        entry,
                        format!(
                            "its parent {:?} is a symlink or not a directory (never followed)",
                            String::from_utf8_lossy(comp)
                        ),
                    ));
                }
                Err(e) => return Err(self.io(entry, "openat", e)),
            };
            dir = next;
        }
        Ok(dir)
    }

    fn entry<R: Read>(
        &mut self,
        mut entry: tar::Entry<'_, R>,
        classify: &dyn Fn(io::Error, &str) -> Error,
    ) -> Result<(), Error> {
        let raw = entry.path_bytes().into_owned();
        let comps = self.components(&raw)?;
        let header = entry.header();
        let kind = header.entry_type();
        let mode = header.mode().unwrap_or(0o644) & 0o7777;
        let uid = header.uid().unwrap_or(0) as u32;
        let gid = header.gid().unwrap_or(0) as u32;
        let mtime = header.mtime().unwrap_or(0) as i64;
        let Some((name, parents)) = comps.split_last() else {
            return Ok(()); // the layer root ("./"): its attributes are the snapshot's own
        };
        let name = name.clone();
        let parent = self.walk(&raw, parents, true)?;
        let pfd = parent.as_raw_fd();

        if name == OPAQUE_MARKER.as_bytes() {
            // SAFETY: pfd is an open directory; name and value are valid for their lengths.
            let rc =
                unsafe { libc::fsetxattr(pfd, OPAQUE_XATTR.as_ptr(), b"y".as_ptr().cast(), 1, 0) };
            if rc != 0 {
                return Err(self.io(
                    &raw,
                    "setting trusted.overlay.opaque",
                    io::Error::last_os_error(),
                ));
            }
            return Ok(());
        }
        if let Some(hidden) = name.strip_prefix(WHITEOUT_PREFIX.as_bytes()) {
            if hidden.is_empty() || hidden == b"." || hidden == b".." {
                return Err(self.refuse(&raw, "a whiteout of nothing"));
            }
            let c = cstring(hidden).map_err(|e| self.io(&raw, "path", e))?;
            self.clear(&raw, pfd, &c, false)?;
            // SAFETY: as above.
            if unsafe { libc::mknodat(pfd, c.as_ptr(), libc::S_IFCHR, libc::makedev(0, 0)) } != 0 {
                return Err(self.io(&raw, "mknod (whiteout)", io::Error::last_os_error()));
            }
            self.owner_times(&raw, pfd, &c, uid, gid, mtime, None)?;
            return Ok(());
        }

        let c = cstring(&name).map_err(|e| self.io(&raw, "path", e))?;
        let norm = comps.join(&b'/');
        use tar::EntryType as T;
        match kind {
            T::Directory => {
                if !self.clear(&raw, pfd, &c, true)? {
                    // SAFETY: as above.
                    if unsafe { libc::mkdirat(pfd, c.as_ptr(), 0o700) } != 0 {
                        return Err(self.io(&raw, "mkdirat", io::Error::last_os_error()));
                    }
                }
                let components = comps
                    .iter()
                    .map(|c| cstring(c))
                    .collect::<io::Result<Vec<_>>>()
                    .map_err(|e| self.io(&raw, "path", e))?;
                self.dirs.push(DirMeta {
                    components,
                    mode,
                    uid,
                    gid,
                    mtime,
                });
                return Ok(());
            }
            T::Regular | T::Continuous => {
                self.clear(&raw, pfd, &c, false)?;
                // SAFETY: as above; the descriptor is owned below.
                let fd = unsafe {
                    libc::openat(
                        pfd,
                        c.as_ptr(),
                        libc::O_WRONLY
                            | libc::O_CREAT
                            | libc::O_EXCL
                            | libc::O_NOFOLLOW
                            | libc::O_CLOEXEC,
                        0o600 as libc::c_uint,
                    )
                };
                if fd < 0 {
                    return Err(self.io(&raw, "creating", io::Error::last_os_error()));
                }
                // SAFETY: fresh descriptor we own.
                let mut file = unsafe { File::from_raw_fd(fd) };
                io::copy(&mut entry, &mut file).map_err(|e| {
                    if e.kind() == ErrorKind::StorageFull || e.raw_os_error() == Some(libc::EDQUOT)
                    {
                        self.io(&raw, "writing", e)
                    } else {
                        classify(e, "reading an entry's content")
                    }
                })?;
                self.owner_times(&raw, pfd, &c, uid, gid, mtime, Some(mode))?;
            }
            T::Symlink => {
                let Some(target) = entry.link_name_bytes() else {
                    return Err(self.refuse(&raw, "a symlink without a target"));
                };
                let target = cstring(&target).map_err(|e| self.io(&raw, "path", e))?;
                self.clear(&raw, pfd, &c, false)?;
                // The target is stored as is: a symlink is never followed while unpacking, and the
                // executor resolves it inside the container's root.
                // SAFETY: as above.
                if unsafe { libc::symlinkat(target.as_ptr(), pfd, c.as_ptr()) } != 0 {
                    return Err(self.io(&raw, "symlinkat", io::Error::last_os_error()));
                }
                self.owner_times(&raw, pfd, &c, uid, gid, mtime, None)?;
            }
            T::Link => {
                let Some(target) = entry.link_name_bytes() else {
                    return Err(self.refuse(&raw, "a hard link without a target"));
                };
                let target = target.into_owned();
                let tcomps = self.components(&target).map_err(|_| {
                    self.refuse(
                        &raw,
                        format!(
                            "hard link to {:?}, outside the layer",
                            String::from_utf8_lossy(&target)
                        ),
                    )
                })?;
                let tnorm = tcomps.join(&b'/');
                let Some((tname, tparents)) = tcomps.split_last() else {
                    return Err(self.refuse(&raw, "hard link to the layer root"));
                };
                if !self.extracted.contains(&tnorm) {
                    return Err(self.refuse(
                        &raw,
                        format!(
                            "hard link to {:?}, which this layer has not extracted before it",
                            String::from_utf8_lossy(&target)
                        ),
                    ));
                }
                let tparent = self.walk(&raw, tparents, false)?;
                let tc = cstring(tname).map_err(|e| self.io(&raw, "path", e))?;
                if tnorm != norm {
                    self.clear(&raw, pfd, &c, false)?;
                    // flags 0: a symlink target is linked itself, not followed.
                    // SAFETY: both descriptors are open directories, both names NUL-terminated.
                    let rc = unsafe {
                        libc::linkat(tparent.as_raw_fd(), tc.as_ptr(), pfd, c.as_ptr(), 0)
                    };
                    if rc != 0 {
                        return Err(self.io(&raw, "linkat", io::Error::last_os_error()));
                    }
                }
            }
            T::Char | T::Block | T::Fifo => {
                let (fmt, dev) = match kind {
                    T::Char | T::Block => {
                        let major = header.device_major().ok().flatten().unwrap_or(0);
                        let minor = header.device_minor().ok().flatten().unwrap_or(0);
                        let fmt = if kind == T::Char {
                            libc::S_IFCHR
                        } else {
                            libc::S_IFBLK
                        };
                        (fmt, libc::makedev(major, minor))
                    }
                    _ => (libc::S_IFIFO, 0),
                };
                self.clear(&raw, pfd, &c, false)?;
                // SAFETY: as above.
                if unsafe { libc::mknodat(pfd, c.as_ptr(), fmt | (mode & 0o777), dev) } != 0 {
                    return Err(self.io(&raw, "mknodat", io::Error::last_os_error()));
                }
                self.owner_times(&raw, pfd, &c, uid, gid, mtime, Some(mode))?;
            }
            T::GNUSparse => {
                return Err(Error::corrupt(
                    format!("layer {} of {}", self.layer.digest, self.image),
                    format!(
                        "entry {:?} is a GNU sparse file, which is not supported",
                        String::from_utf8_lossy(&raw)
                    ),
                ));
            }
            other => {
                tracing::debug!(entry = %String::from_utf8_lossy(&raw), kind = ?other, "skipping a tar entry of an unknown kind");
                return Ok(());
            }
        }
        self.extracted.insert(norm);
        Ok(())
    }

    /// Makes room for `name` in `dir`: an existing non-directory is removed, an existing directory is
    /// kept if `keep_dir` (returns true) and removed otherwise.
    fn clear(
        &mut self,
        entry: &[u8],
        dir: RawFd,
        name: &CStr,
        keep_dir: bool,
    ) -> Result<bool, Error> {
        // SAFETY: st is plain data filled by the kernel.
        let mut st: libc::stat = unsafe { std::mem::zeroed() };
        // SAFETY: as above.
        if unsafe { libc::fstatat(dir, name.as_ptr(), &mut st, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::ENOENT) {
                return Ok(false);
            }
            return Err(self.io(entry, "fstatat", e));
        }
        let is_dir = st.st_mode & libc::S_IFMT == libc::S_IFDIR;
        if is_dir && keep_dir {
            return Ok(true);
        }
        if is_dir {
            remove_tree_at(dir, name).map_err(|e| self.io(entry, "removing a directory", e))?;
        } else {
            // SAFETY: as above.
            if unsafe { libc::unlinkat(dir, name.as_ptr(), 0) } != 0 {
                return Err(self.io(entry, "unlinkat", io::Error::last_os_error()));
            }
        }
        Ok(false)
    }

    /// Sets owner, mode (when given; never for symlinks) and mtime of `name` in `dir`, not following
    /// a symlink.
    #[allow(clippy::too_many_arguments)]
    fn owner_times(
        &self,
        entry: &[u8],
        dir: RawFd,
        name: &CStr,
        uid: u32,
        gid: u32,
        mtime: i64,
        mode: Option<u32>,
    ) -> Result<(), Error> {
        // SAFETY: as above.
        if unsafe { libc::fchownat(dir, name.as_ptr(), uid, gid, libc::AT_SYMLINK_NOFOLLOW) } != 0 {
            let e = io::Error::last_os_error();
            // Not root (a rootless test run): keep our own uid.
            if e.raw_os_error() != Some(libc::EPERM) {
                return Err(self.io(entry, "fchownat", e));
            }
        }
        if let Some(mode) = mode {
            // After chown, which clears setuid/setgid. `name` is not a symlink here.
            // SAFETY: as above.
            if unsafe { libc::fchmodat(dir, name.as_ptr(), mode as libc::mode_t, 0) } != 0 {
                return Err(self.io(entry, "fchmodat", io::Error::last_os_error()));
            }
        }
        let times = [timespec(mtime), timespec(mtime)];
        // SAFETY: as above; times has two elements.
        if unsafe {
            libc::utimensat(
                dir,
                name.as_ptr(),
                times.as_ptr(),
                libc::AT_SYMLINK_NOFOLLOW,
            )
        } != 0
        {
            return Err(self.io(entry, "utimensat", io::Error::last_os_error()));
        }
        Ok(())
    }

    /// Applies the directories' metadata, deepest last-written first.
    fn finish(mut self) -> Result<(), Error> {
        let dirs = std::mem::take(&mut self.dirs);
        for d in dirs.iter().rev() {
            let raw = d
                .components
                .iter()
                .map(|c| c.to_bytes())
                .collect::<Vec<_>>()
                .join(&b'/');
            let comps: Vec<Vec<u8>> = d.components.iter().map(|c| c.to_bytes().to_vec()).collect();
            let Some((name, parents)) = comps.split_last() else {
                continue;
            };
            let parent = match self.walk(&raw, parents, false) {
                Ok(fd) => fd,
                Err(_) => continue, // replaced by a later entry
            };
            let c = cstring(name).map_err(|e| self.io(&raw, "path", e))?;
            let Ok(fd) = open_dir_at(parent.as_raw_fd(), &c) else {
                continue; // replaced by a later non-directory
            };
            let fd = fd.as_raw_fd();
            // SAFETY: fd is an open directory.
            if unsafe { libc::fchown(fd, d.uid, d.gid) } != 0 {
                let e = io::Error::last_os_error();
                if e.raw_os_error() != Some(libc::EPERM) {
                    return Err(self.io(&raw, "fchown", e));
                }
            }
            // SAFETY: as above.
            if unsafe { libc::fchmod(fd, d.mode as libc::mode_t) } != 0 {
                return Err(self.io(&raw, "fchmod", io::Error::last_os_error()));
            }
            let times = [timespec(d.mtime), timespec(d.mtime)];
            // SAFETY: as above.
            if unsafe { libc::futimens(fd, times.as_ptr()) } != 0 {
                return Err(self.io(&raw, "futimens", io::Error::last_os_error()));
            }
        }
        Ok(())
    }
}

fn timespec(secs: i64) -> libc::timespec {
    libc::timespec {
        tv_sec: secs as libc::time_t,
        tv_nsec: 0,
    }
}

fn cstring(bytes: &[u8]) -> io::Result<CString> {
    CString::new(bytes).map_err(|_| io::Error::new(ErrorKind::InvalidInput, "NUL in a path"))
}

fn dup(fd: &OwnedFd) -> io::Result<OwnedFd> {
    fd.try_clone()
}

fn open_dir_at(dir: RawFd, name: &CStr) -> io::Result<OwnedFd> {
    // SAFETY: dir is an open directory, name NUL-terminated; the descriptor is owned below.
    let fd = unsafe {
        libc::openat(
            dir,
            name.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: fresh descriptor we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}

/// Removes directory `name` in `dir` and everything below it, never following a symlink.
fn remove_tree_at(dir: RawFd, name: &CStr) -> io::Result<()> {
    let sub = open_dir_at(dir, name)?;
    // Read the names through /proc-free means: fdopendir on a dup.
    let dup = sub.try_clone()?;
    // SAFETY: dup is an open directory descriptor; fdopendir takes ownership of it.
    let dirp = unsafe { libc::fdopendir(dup.as_raw_fd()) };
    if dirp.is_null() {
        return Err(io::Error::last_os_error());
    }
    std::mem::forget(dup); // owned by dirp now
    let mut names = Vec::new();
    loop {
        // SAFETY: dirp is a valid DIR*.
        let ent = unsafe { libc::readdir(dirp) };
        if ent.is_null() {
            break;
        }
        // SAFETY: d_name is NUL-terminated.
        let n = unsafe { CStr::from_ptr((*ent).d_name.as_ptr()) };
        if n.to_bytes() != b"." && n.to_bytes() != b".." {
            names.push(n.to_owned());
        }
    }
    // SAFETY: dirp is valid and closed once.
    unsafe { libc::closedir(dirp) };
    for n in names {
        // SAFETY: sub is open; n NUL-terminated.
        if unsafe { libc::unlinkat(sub.as_raw_fd(), n.as_ptr(), 0) } != 0 {
            let e = io::Error::last_os_error();
            if e.raw_os_error() == Some(libc::EISDIR) {
                remove_tree_at(sub.as_raw_fd(), &n)?;
            } else {
                return Err(e);
            }
        }
    }
    // SAFETY: as above.
    if unsafe { libc::unlinkat(dir, name.as_ptr(), libc::AT_REMOVEDIR) } != 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}
