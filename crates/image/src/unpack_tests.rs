//! Tests of `unpack.rs`: layers built here with the `tar` crate (raw header names for the hostile
//! ones, which the crate's safe setters refuse to write). They run as root (owners, device nodes and
//! `trusted.*` xattrs need it).

use std::ffi::CString;
use std::fs;
use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::{FileTypeExt, MetadataExt, PermissionsExt};
use std::path::Path;

use super::*;
use crate::digest::sha256_digest;
use crate::import::Prepared;
use crate::record::ImageConfig;

const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
const GZIP: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
const DOCKER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

enum E<'a> {
    Dir(&'a str, u32),
    File(&'a str, &'a [u8], u32),
    Symlink(&'a str, &'a str),
    Hard(&'a str, &'a str),
    Char(&'a str, u32, u32),
    Fifo(&'a str),
}

/// A header with `name` (and `link`) written raw, so hostile names survive.
fn header(kind: tar::EntryType, name: &str, link: &str, mode: u32, size: u64) -> tar::Header {
    let mut h = tar::Header::new_ustar();
    h.as_old_mut().name[..name.len()].copy_from_slice(name.as_bytes());
    h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_entry_type(kind);
    h.set_mode(mode);
    h.set_uid(1234);
    h.set_gid(5678);
    h.set_mtime(1_000_000);
    h.set_size(size);
    h.set_cksum();
    h
}

fn tar_of(entries: &[E]) -> Vec<u8> {
    use tar::EntryType as T;
    let mut b = tar::Builder::new(Vec::new());
    for e in entries {
        let (h, data): (tar::Header, &[u8]) = match *e {
            E::Dir(n, m) => (header(T::Directory, n, "", m, 0), b""),
            E::File(n, d, m) => (header(T::Regular, n, "", m, d.len() as u64), d),
            E::Symlink(n, t) => (header(T::Symlink, n, t, 0o777, 0), b""),
            E::Hard(n, t) => (header(T::Link, n, t, 0o644, 0), b""),
            E::Char(n, maj, min) => {
                let mut h = header(T::Char, n, "", 0o666, 0);
                h.set_device_major(maj).unwrap();
                h.set_device_minor(min).unwrap();
                h.set_cksum();
                (h, b"")
            }
            E::Fifo(n) => (header(T::Fifo, n, "", 0o600, 0), b""),
        };
        b.append(&h, data).unwrap();
    }
    b.into_inner().unwrap()
}

fn compress(tar: &[u8], media_type: &str) -> Vec<u8> {
    match LayerCompression::of(media_type).unwrap() {
        LayerCompression::None => tar.to_vec(),
        LayerCompression::Gzip => {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(tar).unwrap();
            e.finish().unwrap()
        }
        LayerCompression::Zstd => zstd::encode_all(tar, 3).unwrap(),
    }
}

/// Writes `tar`, compressed for `media_type`, as a blob in `dir`; its diff id is the tar's digest.
fn layer(dir: &Path, tar: &[u8], media_type: &str) -> Layer {
    let blob = compress(tar, media_type);
    let digest = sha256_digest(&blob);
    let path = dir.join(&digest[7..]);
    fs::write(&path, &blob).unwrap();
    Layer {
        blob: path,
        media_type: media_type.to_owned(),
        digest,
        diff_id: sha256_digest(tar),
    }
}

/// A temp dir with `blobs/`, `dest/` (the snapshot's fs) and `outside/` (must stay empty).
fn area() -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["blobs", "dest", "outside"] {
        fs::create_dir(dir.path().join(sub)).unwrap();
    }
    let (blobs, dest) = (dir.path().join("blobs"), dir.path().join("dest"));
    (dir, blobs, dest)
}

fn xattr(path: &Path, name: &str) -> Option<Vec<u8>> {
    let p = CString::new(path.as_os_str().as_bytes()).unwrap();
    let n = CString::new(name).unwrap();
    let mut buf = [0u8; 64];
    // SAFETY: valid C strings and buffer.
    let len =
        unsafe { libc::lgetxattr(p.as_ptr(), n.as_ptr(), buf.as_mut_ptr().cast(), buf.len()) };
    (len >= 0).then(|| buf[..len as usize].to_vec())
}

#[test]
fn chain_ids_follow_the_oci_spec() {
    let a = sha256_digest(b"a");
    let b = sha256_digest(b"b");
    let chain = chain_ids(&[a.clone(), b.clone()]);
    assert_eq!(chain[0], a);
    assert_eq!(chain[1], sha256_digest(format!("{a} {b}").as_bytes()));
    assert!(chain_ids(&[]).is_empty());
}

#[test]
fn knows_layer_media_types() {
    assert_eq!(LayerCompression::of(TAR), Some(LayerCompression::None));
    assert_eq!(LayerCompression::of(GZIP), Some(LayerCompression::Gzip));
    assert_eq!(
        LayerCompression::of(DOCKER_GZIP),
        Some(LayerCompression::Gzip)
    );
    assert_eq!(LayerCompression::of(ZSTD), Some(LayerCompression::Zstd));
    assert_eq!(
        LayerCompression::of("application/vnd.docker.image.rootfs.diff.tar"),
        Some(LayerCompression::None)
    );
    assert_eq!(LayerCompression::of("application/wasm"), None);
    let config = br#"{"rootfs":{"type":"layers","diff_ids":["sha256:x"]}}"#;
    assert!(matches!(
        diff_ids_of(config, "c"),
        Err(Error::Corrupt { .. })
    ));
    assert!(diff_ids_of(b"{}", "c").unwrap().is_empty());
}

#[test]
fn plain_gzip_and_zstd_layers_unpack_with_content_modes_links_and_nodes() {
    let tar = tar_of(&[
        E::Dir("./etc/", 0o750),
        E::File("./etc/hosts", b"127.0.0.1 localhost\n", 0o640),
        E::File("bin/sh", b"\x7fELF shell", 0o4755),
        E::Symlink("bin/ash", "sh"),
        E::Symlink("passwd-link", "/etc/passwd"),
        E::Hard("bin/sh2", "bin/sh"),
        E::Hard("ash2", "./bin/ash"),
        E::Char("dev/null", 1, 3),
        E::Fifo("run/fifo"),
    ]);
    for media_type in [TAR, GZIP, DOCKER_GZIP, ZSTD] {
        let (_dir, blobs, dest) = area();
        let l = layer(&blobs, &tar, media_type);
        unpack_layer(&l, &dest, "img").unwrap_or_else(|e| panic!("{media_type}: {e}"));

        let etc = fs::symlink_metadata(dest.join("etc")).unwrap();
        assert!(etc.is_dir());
        assert_eq!(etc.permissions().mode() & 0o7777, 0o750, "{media_type}");
        assert_eq!((etc.uid(), etc.gid(), etc.mtime()), (1234, 5678, 1_000_000));
        let hosts = dest.join("etc/hosts");
        assert_eq!(fs::read(&hosts).unwrap(), b"127.0.0.1 localhost\n");
        let m = fs::metadata(&hosts).unwrap();
        assert_eq!(
            (m.mode() & 0o7777, m.uid(), m.mtime()),
            (0o640, 1234, 1_000_000)
        );
        let sh = fs::metadata(dest.join("bin/sh")).unwrap();
        assert_eq!(sh.mode() & 0o7777, 0o4755, "setuid kept after chown");
        assert_eq!(
            fs::read_link(dest.join("bin/ash")).unwrap(),
            Path::new("sh")
        );
        assert_eq!(
            fs::read_link(dest.join("passwd-link")).unwrap(),
            Path::new("/etc/passwd"),
            "absolute symlink targets are stored as is"
        );
        assert_eq!(
            fs::symlink_metadata(dest.join("passwd-link"))
                .unwrap()
                .uid(),
            1234
        );
        let sh2 = fs::metadata(dest.join("bin/sh2")).unwrap();
        assert_eq!((sh2.ino(), sh2.nlink()), (sh.ino(), 2));
        let ash2 = fs::symlink_metadata(dest.join("ash2")).unwrap();
        assert!(
            ash2.file_type().is_symlink(),
            "a hard link to a symlink links the symlink"
        );
        let null = fs::symlink_metadata(dest.join("dev/null")).unwrap();
        assert!(null.file_type().is_char_device());
        assert_eq!(null.rdev(), libc::makedev(1, 3));
        assert!(
            fs::symlink_metadata(dest.join("run/fifo"))
                .unwrap()
                .file_type()
                .is_fifo()
        );
    }
}

#[test]
fn whiteouts_become_char_devices_and_opaque_dirs_get_the_xattr() {
    let tar = tar_of(&[
        E::File(".wh.gone", b"", 0o644),
        E::Dir("dir/", 0o755),
        E::File("dir/.wh..wh..opq", b"", 0o644),
        E::File("dir/new", b"n", 0o644),
        E::File("deep/er/.wh.old", b"", 0o644),
    ]);
    let (_dir, blobs, dest) = area();
    unpack_layer(&layer(&blobs, &tar, GZIP), &dest, "img").unwrap();
    for whiteout in ["gone", "deep/er/old"] {
        let m = fs::symlink_metadata(dest.join(whiteout)).unwrap();
        assert!(m.file_type().is_char_device(), "{whiteout}");
        assert_eq!(m.rdev(), libc::makedev(0, 0), "{whiteout}");
    }
    assert!(!dest.join(".wh.gone").exists());
    assert!(!dest.join("dir/.wh..wh..opq").exists());
    assert_eq!(
        xattr(&dest.join("dir"), "trusted.overlay.opaque"),
        Some(b"y".to_vec())
    );
    assert_eq!(xattr(&dest.join("deep"), "trusted.overlay.opaque"), None);
    assert_eq!(fs::read(dest.join("dir/new")).unwrap(), b"n");
}

#[test]
fn a_diff_id_mismatch_fails() {
    let (_dir, blobs, dest) = area();
    let mut l = layer(&blobs, &tar_of(&[E::File("f", b"x", 0o644)]), ZSTD);
    l.diff_id = sha256_digest(b"another tar");
    let err = unpack_layer(&l, &dest, "img").unwrap_err();
    assert!(
        matches!(&err, Error::Corrupt { detail, .. } if detail.contains(&l.diff_id)),
        "{err}"
    );
}

#[test]
fn hostile_entries_are_refused_by_name_and_nothing_lands_outside() {
    let tmp = tempfile::tempdir().unwrap();
    let outside = tmp.path().join("outside");
    fs::create_dir(&outside).unwrap();
    let escape = format!("{}", outside.display());
    let cases: Vec<(Vec<E>, &str)> = vec![
        (vec![E::File("../evil", b"x", 0o644)], "../evil"),
        (vec![E::File("a/../../evil", b"x", 0o644)], "a/../../evil"),
        (vec![E::File("/etc/evil", b"x", 0o644)], "/etc/evil"),
        (
            vec![E::Symlink("dir", "/etc"), E::File("dir/evil", b"x", 0o644)],
            "dir/evil",
        ),
        (
            vec![E::Symlink("dir", &escape), E::File("dir/evil", b"x", 0o644)],
            "dir/evil",
        ),
        (
            vec![E::Symlink("up", "../.."), E::Dir("up/x/", 0o755)],
            "up/x/",
        ),
        (vec![E::Hard("passwd", "/etc/passwd")], "passwd"),
        (vec![E::Hard("passwd", "../../etc/passwd")], "passwd"),
        (
            vec![E::Hard("early", "later"), E::File("later", b"x", 0o644)],
            "early",
        ),
        (vec![E::Symlink("dir", &escape), E::Hard("x", "dir/y")], "x"),
        (vec![E::File(".wh...", b"", 0o644)], ".wh..."),
    ];
    for (entries, bad) in cases {
        let tar = tar_of(&entries);
        for media_type in [TAR, GZIP] {
            let case = tempfile::tempdir_in(tmp.path()).unwrap();
            fs::create_dir(case.path().join("dest")).unwrap();
            let l = layer(case.path(), &tar, media_type);
            let err = unpack_layer(&l, &case.path().join("dest"), "img").unwrap_err();
            assert!(
                matches!(&err, Error::UnsafeLayer { entry, .. } if entry == bad),
                "{bad}: {err}"
            );
            assert!(err.to_string().contains(bad), "{err}");
        }
    }
    assert_eq!(fs::read_dir(&outside).unwrap().count(), 0);
    assert!(!Path::new("/etc/evil").exists());
    // Nothing beside the case dirs in the parent temp dir either.
    let names: Vec<_> = fs::read_dir(tmp.path())
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names, [std::ffi::OsString::from("outside")]);
}

#[test]
fn corrupt_gzip_and_zstd_are_decompression_errors() {
    let tar = tar_of(&[E::File("f", &[7u8; 100_000], 0o644)]);
    for (media_type, format) in [(GZIP, "gzip"), (ZSTD, "zstd")] {
        let (_dir, blobs, dest) = area();
        let l = layer(&blobs, &tar, media_type);
        let mut bytes = fs::read(&l.blob).unwrap();
        let mid = bytes.len() / 2;
        for b in &mut bytes[mid - 8..mid + 8] {
            *b ^= 0x5a;
        }
        bytes.truncate(bytes.len() - 4);
        fs::write(&l.blob, &bytes).unwrap();
        let err = unpack_layer(&l, &dest, "img").unwrap_err();
        assert!(
            matches!(&err, Error::Decompress { format: f, .. } if f == format),
            "{format}: {err:?}"
        );
        // Not a compressed stream at all.
        fs::write(&l.blob, b"definitely not compressed data").unwrap();
        let err = unpack_layer(&l, &dest, "img").unwrap_err();
        assert!(
            matches!(&err, Error::Decompress { .. }),
            "{format}: {err:?}"
        );
    }
}

fn linux_record(name: &str, layers: &[Layer], snapshots: Vec<String>) -> Prepared {
    let id = sha256_digest(name.as_bytes());
    Prepared {
        record: ImageRecord {
            id: id.clone(),
            repo_tags: vec![format!("docker.io/library/{name}:latest")],
            repo_digests: vec![],
            size: 1,
            kind: crate::LINUX_KIND.to_owned(),
            wasm_digest: id,
            config: ImageConfig::default(),
            created_unix_nanos: 0,
            blobs: layers.iter().map(|l| l.digest.clone()).collect(),
            snapshots,
        },
    }
}

/// Stages `layers` like a pull does (blobs and snapshots), commits a record named `name`.
fn pull_like(store: &ImageStore, name: &str, layers: &[Layer]) -> ImageRecord {
    let mut staging = store.new_staging().unwrap();
    let chain = store.unpack_layers(&staging, name, layers).unwrap();
    for l in layers {
        let src = l.blob.clone();
        let desc = crate::oci::Descriptor {
            media_type: l.media_type.clone(),
            digest: l.digest.clone(),
            size: fs::metadata(&src).unwrap().len(),
            platform: None,
            annotations: None,
        };
        staging.copy_blob(&src, &desc, None, "layer").unwrap();
    }
    let prepared = linux_record(name, layers, chain);
    store
        .commit(&mut staging, vec![prepared])
        .unwrap()
        .remove(0)
}

fn snapshot_names(store: &ImageStore) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(store.snapshots_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

#[test]
fn shared_layers_are_unpacked_once_and_removed_with_their_last_image() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("s")).unwrap();
    let blobs = dir.path().join("blobs");
    fs::create_dir(&blobs).unwrap();
    let base = layer(&blobs, &tar_of(&[E::File("bin/sh", b"sh", 0o755)]), GZIP);
    let a_top = layer(&blobs, &tar_of(&[E::File("a", b"a", 0o644)]), ZSTD);
    let b_top = layer(&blobs, &tar_of(&[E::File("b", b"b", 0o644)]), TAR);

    let a = pull_like(&store, "a", &[base.clone(), a_top.clone()]);
    assert_eq!(
        a.snapshots,
        chain_ids(&[base.diff_id.clone(), a_top.diff_id.clone()])
    );
    let dirs = store.snapshot_dirs(&a);
    assert_eq!(fs::read(dirs[0].join("bin/sh")).unwrap(), b"sh");
    assert_eq!(fs::read(dirs[1].join("a")).unwrap(), b"a");
    assert!(
        !dirs[1].join("bin").exists(),
        "each snapshot holds its own layer only"
    );
    // A marker in the shared snapshot: it survives the second pull, which reuses the snapshot.
    fs::write(dirs[0].join("marker"), b"").unwrap();

    let b = pull_like(&store, "b", &[base.clone(), b_top.clone()]);
    let b_dirs = store.snapshot_dirs(&b);
    assert_eq!(b_dirs[0], dirs[0]);
    assert!(
        b_dirs[0].join("marker").exists(),
        "the shared layer was not unpacked again"
    );
    assert_eq!(fs::read(b_dirs[1].join("b")).unwrap(), b"b");
    assert_eq!(snapshot_names(&store).len(), 3);
    assert_eq!(fs::read_dir(&store.tmp_dir).unwrap().count(), 0);

    store.remove(&a.id).unwrap().unwrap();
    let left = snapshot_names(&store);
    assert_eq!(left.len(), 2);
    assert!(b_dirs.iter().all(|d| d.join(".").is_dir()));
    assert!(!dirs[1].exists());

    // Reopening keeps what records reference.
    drop(store);
    let store = ImageStore::open(dir.path().join("s")).unwrap();
    assert_eq!(snapshot_names(&store), left);
    store.remove(&b.id).unwrap().unwrap();
    assert!(snapshot_names(&store).is_empty());
    assert_eq!(fs::read_dir(&store.tmp_dir).unwrap().count(), 0);
}

#[test]
fn a_pulls_pinned_snapshots_survive_garbage_collection_until_committed() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("s")).unwrap();
    let blobs = dir.path().join("blobs");
    fs::create_dir(&blobs).unwrap();
    let l = layer(&blobs, &tar_of(&[E::File("f", b"f", 0o644)]), GZIP);
    let staging = store.new_staging().unwrap();
    let chain = store
        .unpack_layers(&staging, "p", std::slice::from_ref(&l))
        .unwrap();
    {
        let _lock = store.lock().unwrap();
        store.collect_garbage().unwrap();
    }
    assert_eq!(snapshot_names(&store), [chain[0][7..].to_owned()]);
    drop(staging); // the pull failed before its commit: nothing references the snapshot now
    let _lock = store.lock().unwrap();
    store.collect_garbage().unwrap();
    assert!(snapshot_names(&store).is_empty());
    // A stray non-snapshot entry is collected too.
    fs::create_dir(store.snapshots_dir().join("junk")).unwrap();
    store.collect_garbage().unwrap();
    assert!(snapshot_names(&store).is_empty());
}

#[test]
fn a_failing_layer_leaves_no_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("s")).unwrap();
    let blobs = dir.path().join("blobs");
    fs::create_dir(&blobs).unwrap();
    let good = layer(&blobs, &tar_of(&[E::File("f", b"f", 0o644)]), GZIP);
    let mut bad = layer(&blobs, &tar_of(&[E::File("g", b"g", 0o644)]), GZIP);
    bad.diff_id = sha256_digest(b"nope");
    let staging = store.new_staging().unwrap();
    let err = store
        .unpack_layers(&staging, "x", &[good, bad])
        .unwrap_err();
    assert!(matches!(err, Error::Corrupt { .. }), "{err}");
    drop(staging);
    assert!(snapshot_names(&store).is_empty());
    assert_eq!(fs::read_dir(&store.tmp_dir).unwrap().count(), 0);
}

#[test]
fn concurrent_unpacks_of_one_chain_id_install_one_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let store = ImageStore::open(dir.path().join("s")).unwrap();
    let blobs = dir.path().join("blobs");
    fs::create_dir(&blobs).unwrap();
    let big: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let l = layer(&blobs, &tar_of(&[E::File("big", &big, 0o644)]), ZSTD);
    let chains: Vec<Vec<String>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..4)
            .map(|_| {
                s.spawn(|| {
                    let staging = store.new_staging().unwrap();
                    store
                        .unpack_layers(&staging, "c", std::slice::from_ref(&l))
                        .unwrap()
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert!(chains.windows(2).all(|w| w[0] == w[1]));
    assert_eq!(snapshot_names(&store), [l.diff_id[7..].to_owned()]);
    let fs_dir = store.snapshots_dir().join(&l.diff_id[7..]).join("fs");
    assert_eq!(fs::read(fs_dir.join("big")).unwrap(), big);
    assert_eq!(fs::read_dir(&store.tmp_dir).unwrap().count(), 0);
}
