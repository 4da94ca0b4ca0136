//! Finding one file (a Wasm image's entrypoint) in a stack of tar layers without extracting anything:
//! later layers win, whiteouts (`.wh.<name>`, `.wh..wh..opq`) hide lower layers, symlinks and hard links
//! to the file are followed (a few hops), and entries with absolute paths or `..` are ignored.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Component, Path, PathBuf};

use flate2::read::MultiGzDecoder;

use crate::error::{Error, io_err};
use crate::oci::Compression;

const MAX_LINK_HOPS: usize = 8;
const WHITEOUT: &str = ".wh.";
const OPAQUE: &str = ".wh..wh..opq";

/// A verified layer blob on disk.
pub(crate) struct Layer {
    pub digest: String,
    pub path: PathBuf,
    pub compression: Compression,
}

/// The outcome of a lookup: the file's bytes, or why there are none.
#[derive(Debug, PartialEq)]
pub(crate) enum Lookup {
    File(Vec<u8>),
    Missing(String),
}

/// What the top-most layer that mentions a path says about it.
enum Entry {
    File(Vec<u8>),
    Symlink(String),
    Hardlink(String),
    NotAFile,
}

/// Looks up the absolute path `wanted` (already resolved against the working directory) in `layers`.
pub(crate) fn find_file(layers: &[Layer], wanted: &str) -> Result<Lookup, Error> {
    let mut target = clean(wanted);
    for _ in 0..MAX_LINK_HOPS {
        target = match scan(layers, &target)? {
            Some(Entry::File(bytes)) => return Ok(Lookup::File(bytes)),
            Some(Entry::Symlink(link)) => {
                let base = if link.starts_with('/') {
                    String::new()
                } else {
                    parent(&target).to_owned()
                };
                clean(&format!("{base}/{link}"))
            }
            Some(Entry::Hardlink(link)) => clean(&link),
            Some(Entry::NotAFile) => {
                return Ok(Lookup::Missing(format!("/{target} is not a regular file")));
            }
            None => {
                return Ok(Lookup::Missing(format!(
                    "/{target} is not in the image's layers"
                )));
            }
        };
    }
    Ok(Lookup::Missing(format!(
        "{wanted}: more than {MAX_LINK_HOPS} links"
    )))
}

/// The top-most entry for `target` (relative, cleaned), after whiteouts.
fn scan(layers: &[Layer], target: &str) -> Result<Option<Entry>, Error> {
    let mut found = None;
    for layer in layers {
        let corrupt =
            |e: std::io::Error| Error::corrupt(format!("layer {}", layer.digest), e.to_string());
        let mut archive = tar::Archive::new(open(layer)?);
        let mut in_layer = None;
        let mut hides_lower = false;
        for entry in archive.entries().map_err(corrupt)? {
            let mut entry = entry.map_err(corrupt)?;
            let Some(path) = entry.path().ok().and_then(|p| relative(&p)) else {
                continue;
            };
            let (dir, base) = (parent(&path), path.rsplit('/').next().unwrap_or(&path));
            if base == OPAQUE {
                hides_lower |= dir.is_empty() || target.starts_with(&format!("{dir}/"));
            } else if let Some(name) = base.strip_prefix(WHITEOUT) {
                let hidden = if dir.is_empty() {
                    name.to_owned()
                } else {
                    format!("{dir}/{name}")
                };
                hides_lower |= target == hidden || target.starts_with(&format!("{hidden}/"));
            } else if path == target {
                let link = || {
                    entry
                        .link_name()
                        .ok()
                        .flatten()
                        .map(|l| l.to_string_lossy().into_owned())
                };
                in_layer = Some(match entry.header().entry_type() {
                    tar::EntryType::Regular | tar::EntryType::Continuous => {
                        let mut bytes = Vec::with_capacity(entry.size().min(16 << 20) as usize);
                        entry.read_to_end(&mut bytes).map_err(corrupt)?;
                        Entry::File(bytes)
                    }
                    tar::EntryType::Symlink => link().map_or(Entry::NotAFile, Entry::Symlink),
                    tar::EntryType::Link => link().map_or(Entry::NotAFile, Entry::Hardlink),
                    _ => Entry::NotAFile,
                });
            }
        }
        if hides_lower {
            found = None;
        }
        if in_layer.is_some() {
            found = in_layer;
        }
    }
    Ok(found)
}

fn open(layer: &Layer) -> Result<Box<dyn Read>, Error> {
    let file = File::open(&layer.path).map_err(io_err(&layer.path))?;
    let mut reader = BufReader::new(file);
    // Sniff the gzip magic too: some tools label compressed layers as plain tar.
    let head = reader.fill_buf().map_err(io_err(&layer.path))?;
    let gzip = layer.compression == Compression::Gzip || head.starts_with(&[0x1f, 0x8b]);
    Ok(if gzip {
        Box::new(MultiGzDecoder::new(reader))
    } else {
        Box::new(reader)
    })
}

/// An entry path as `a/b/c`, or `None` for paths that are absolute or climb with `..` (ignored, never
/// matched) and for the root itself.
fn relative(path: &Path) -> Option<String> {
    let mut parts = Vec::new();
    for component in path.components() {
        match component {
            Component::Normal(part) => parts.push(part.to_str()?),
            Component::CurDir => {}
            Component::RootDir | Component::ParentDir | Component::Prefix(_) => return None,
        }
    }
    (!parts.is_empty()).then(|| parts.join("/"))
}

/// Lexically cleans an absolute or relative path into `a/b/c` relative to the image root (`..` stops at
/// the root, like `filepath.Clean` on an absolute path).
fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            part => parts.push(part),
        }
    }
    parts.join("/")
}

fn parent(path: &str) -> &str {
    path.rsplit_once('/').map_or("", |(dir, _)| dir)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;

    /// What a test layer holds: a file, a symlink, or a hard link.
    pub(crate) enum Item<'a> {
        File(&'a str, &'a [u8]),
        Symlink(&'a str, &'a str),
        Hardlink(&'a str, &'a str),
    }

    /// A tar layer with `items` (paths written raw, so tests can use `..` and absolute paths).
    pub(crate) fn tar_bytes(items: &[Item<'_>], gzip: bool) -> Vec<u8> {
        let mut builder = tar::Builder::new(Vec::new());
        for item in items {
            let mut header = tar::Header::new_gnu();
            let (path, data, kind, link): (&str, &[u8], _, _) = match *item {
                Item::File(path, data) => (path, data, tar::EntryType::Regular, None),
                Item::Symlink(path, to) => (path, b"", tar::EntryType::Symlink, Some(to)),
                Item::Hardlink(path, to) => (path, b"", tar::EntryType::Link, Some(to)),
            };
            header.set_entry_type(kind);
            header.set_size(data.len() as u64);
            header.set_mode(0o755);
            if let Some(link) = link {
                header.set_link_name(link).unwrap();
            }
            // Bypass the builder's path sanitising: write the name bytes directly.
            let name = &mut header.as_old_mut().name;
            name[..path.len()].copy_from_slice(path.as_bytes());
            header.set_cksum();
            builder.append(&header, data).unwrap();
        }
        let tar = builder.into_inner().unwrap();
        if !gzip {
            return tar;
        }
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(&tar).unwrap();
        gz.finish().unwrap()
    }

    fn layers(dir: &Path, specs: &[(&[Item<'_>], bool)]) -> Vec<Layer> {
        specs
            .iter()
            .enumerate()
            .map(|(i, (items, gzip))| {
                let path = dir.join(format!("layer{i}"));
                std::fs::write(&path, tar_bytes(items, *gzip)).unwrap();
                let compression = if *gzip {
                    Compression::Gzip
                } else {
                    Compression::None
                };
                Layer {
                    digest: format!("layer{i}"),
                    path,
                    compression,
                }
            })
            .collect()
    }

    fn file(bytes: &[u8]) -> Lookup {
        Lookup::File(bytes.to_vec())
    }

    #[test]
    fn last_layer_wins_and_whiteouts_hide() {
        let dir = tempfile::tempdir().unwrap();
        let ls = layers(
            dir.path(),
            &[
                (
                    &[
                        Item::File("app.wasm", b"one"),
                        Item::File("bin/x.wasm", b"x"),
                    ],
                    true,
                ),
                (&[Item::File("./app.wasm", b"two")], false),
            ],
        );
        assert_eq!(find_file(&ls, "/app.wasm").unwrap(), file(b"two"));
        assert_eq!(find_file(&ls, "/bin/../bin/./x.wasm").unwrap(), file(b"x"));

        let ls = layers(
            dir.path(),
            &[
                (
                    &[
                        Item::File("app.wasm", b"one"),
                        Item::File("bin/x.wasm", b"x"),
                    ],
                    false,
                ),
                (
                    &[
                        Item::File(".wh.app.wasm", b""),
                        Item::File("bin/.wh..wh..opq", b""),
                    ],
                    false,
                ),
            ],
        );
        assert!(matches!(
            find_file(&ls, "/app.wasm").unwrap(),
            Lookup::Missing(_)
        ));
        assert!(matches!(
            find_file(&ls, "/bin/x.wasm").unwrap(),
            Lookup::Missing(_)
        ));

        let ls = layers(
            dir.path(),
            &[
                (&[Item::File("bin/x.wasm", b"x")], false),
                (&[Item::File(".wh.bin", b"")], false),
                (&[Item::File("bin/x.wasm", b"back")], false),
            ],
        );
        assert_eq!(find_file(&ls, "/bin/x.wasm").unwrap(), file(b"back"));
    }

    #[test]
    fn follows_links_and_ignores_escaping_paths() {
        let dir = tempfile::tempdir().unwrap();
        let ls = layers(
            dir.path(),
            &[(
                &[
                    Item::File("opt/app.wasm", b"real"),
                    Item::Symlink("app.wasm", "opt/app.wasm"),
                    Item::Symlink("opt/rel.wasm", "../opt/app.wasm"),
                    Item::Hardlink("hard.wasm", "opt/app.wasm"),
                    Item::Symlink("loop.wasm", "/loop.wasm"),
                    Item::File("../evil.wasm", b"evil"),
                    Item::File("/abs.wasm", b"abs"),
                ],
                false,
            )],
        );
        for path in ["/app.wasm", "/opt/rel.wasm", "/hard.wasm"] {
            assert_eq!(find_file(&ls, path).unwrap(), file(b"real"), "{path}");
        }
        for path in ["/loop.wasm", "/evil.wasm", "/abs.wasm", "/opt"] {
            assert!(
                matches!(find_file(&ls, path).unwrap(), Lookup::Missing(_)),
                "{path}"
            );
        }
    }

    #[test]
    fn garbage_layers_are_corrupt() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("l");
        std::fs::write(&path, [0x1f, 0x8b, 1, 2, 3]).unwrap();
        let ls = [Layer {
            digest: "sha256:l".into(),
            path,
            compression: Compression::None,
        }];
        let err = find_file(&ls, "/a").err().unwrap();
        assert!(err.to_string().contains("sha256:l"), "{err}");
    }
}
