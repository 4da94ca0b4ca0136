//! Unpacking Linux image layers into a content-addressed snapshot store, ready for an overlay rootfs.
//!
//! Layout under the store root:
//! ```text
//! snapshots/<chain-id-hex>/fs/    one layer's own content (an overlay lowerdir), shared between images
//! ```
//! The chain id is the OCI image spec's: `chainID(L0) = diffID(L0)`,
//! `chainID(Ln) = sha256(chainID(Ln-1) + " " + diffID(Ln))`, so one snapshot is one layer on top of one
//! exact stack below it. An image record lists its chain ids bottom to top
//! ([`ImageRecord::snapshots`](crate::ImageRecord::snapshots)); the executor stacks their `fs/`
//! directories as overlay lowerdirs (top first in `lowerdir=`).
//!
//! Each snapshot holds only its layer's entries, in overlayfs's own on-disk format, as containerd's
//! overlay snapshotter makes them:
//! - a whiteout `.wh.<name>` becomes a character device 0/0 named `<name>` (overlay hides `<name>` of the
//!   layers below);
//! - an opaque marker `.wh..wh..opq` sets the `trusted.overlay.opaque=y` xattr on its directory (overlay
//!   hides everything below that directory in lower layers).
//!
//! Each layer is decompressed by media type (tar, tar+gzip, tar+zstd), its uncompressed stream hashed
//! and checked against the config's `rootfs.diff_ids` as it is unpacked. Entries are created with `*at`
//! syscalls relative to directory descriptors opened with `O_NOFOLLOW`: no symlink is ever followed, so
//! nothing is written outside the snapshot. Entries with absolute paths or `..`, paths through a symlink
//! (or any non-directory), and hard links to anything not extracted earlier in the same layer are
//! refused ([`Error::UnsafeLayer`], naming the entry). Mode, owner, mtime, symlinks, hard links, device
//! nodes and fifos are kept. (That per-layer work is `unpack_layer.rs`; this file is the snapshot
//! store around it.)
//!
//! A layer is unpacked into the pull's staging area under `tmp/` and renamed into `snapshots/` under the
//! store lock, so a crash never leaves a half snapshot visible; when two pulls unpack the same chain id,
//! the first rename wins and the other drops its copy. While a pull runs, its staging area holds a
//! `snapshot-pins` file naming the chain ids it needs; garbage collection keeps those and every snapshot
//! a record lists, and deletes the rest (renamed into `tmp/` first, then removed).

use std::collections::HashSet;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use sha2::{Digest, Sha256};

use crate::atomic;
use crate::digest::{is_hex64, sha256_hex_of};
use crate::error::{Error, io_err};
use crate::oci::Manifest;
use crate::record::ImageRecord;
use crate::staging::Staging;
use crate::store::ImageStore;
pub(crate) use crate::unpack_layer::unpack_layer;

/// Name of the file in a live staging area listing the chain ids its pull needs.
pub(crate) const PIN_FILE: &str = "snapshot-pins";

/// How a tar layer is compressed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LayerCompression {
    None,
    Gzip,
    Zstd,
}

impl LayerCompression {
    /// The compression of a tar layer media type (OCI or docker), `None` if it is not a tar layer.
    pub(crate) fn of(media_type: &str) -> Option<Self> {
        let base = media_type
            .strip_prefix("application/vnd.oci.image.layer.v1.")
            .or_else(|| {
                media_type.strip_prefix("application/vnd.oci.image.layer.nondistributable.v1.")
            })
            .or_else(|| media_type.strip_prefix("application/vnd.docker.image.rootfs.diff."))
            .or_else(|| {
                media_type.strip_prefix("application/vnd.docker.image.rootfs.foreign.diff.")
            })?;
        match base {
            "tar" => Some(LayerCompression::None),
            "tar+gzip" | "tar.gzip" => Some(LayerCompression::Gzip),
            "tar+zstd" | "tar.zstd" => Some(LayerCompression::Zstd),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            LayerCompression::None => "tar",
            LayerCompression::Gzip => "gzip",
            LayerCompression::Zstd => "zstd",
        }
    }
}

/// One layer to unpack: its blob on disk, media type, digest and diff id (`sha256:<hex>` each).
#[derive(Debug, Clone)]
pub(crate) struct Layer {
    pub blob: PathBuf,
    pub media_type: String,
    pub digest: String,
    pub diff_id: String,
}

/// The chain ids (`sha256:<hex>`) of a stack of layers given by their diff ids, bottom to top.
pub(crate) fn chain_ids(diff_ids: &[String]) -> Vec<String> {
    let mut chain: Vec<String> = Vec::with_capacity(diff_ids.len());
    for diff_id in diff_ids {
        let next = match chain.last() {
            None => diff_id.clone(),
            Some(below) => format!(
                "sha256:{}",
                hex::encode(Sha256::digest(format!("{below} {diff_id}").as_bytes()))
            ),
        };
        chain.push(next);
    }
    chain
}

/// The `rootfs.diff_ids` of an image config.
pub(crate) fn diff_ids_of(config: &[u8], what: &str) -> Result<Vec<String>, Error> {
    #[derive(serde::Deserialize)]
    struct Config {
        rootfs: Option<RootFs>,
    }
    #[derive(serde::Deserialize)]
    struct RootFs {
        #[serde(default)]
        diff_ids: Vec<String>,
    }
    let config: Config =
        serde_json::from_slice(config).map_err(|e| Error::corrupt(what, e.to_string()))?;
    let ids = config.rootfs.map(|r| r.diff_ids).unwrap_or_default();
    if let Some(bad) = ids.iter().find(|d| sha256_hex_of(d).is_none()) {
        return Err(Error::corrupt(
            what,
            format!("rootfs.diff_ids holds {bad:?}, not a sha256 digest"),
        ));
    }
    Ok(ids)
}

impl ImageStore {
    /// `<root>/snapshots`: one `<chain-id-hex>/fs/` per unpacked layer.
    pub fn snapshots_dir(&self) -> &Path {
        &self.snapshots_dir
    }

    /// The `fs/` directories of a Linux image's snapshots, bottom layer first (reverse them for
    /// overlay's `lowerdir=`, which lists the top layer first). Empty for Wasm images.
    pub fn snapshot_dirs(&self, image: &ImageRecord) -> Vec<PathBuf> {
        image
            .snapshots
            .iter()
            .map(|c| {
                self.snapshots_dir
                    .join(c.strip_prefix("sha256:").unwrap_or(c))
                    .join("fs")
            })
            .collect()
    }

    /// Unpacks the `layers` of Linux image `image` (bottom first) into snapshots, staged in `staging`
    /// and installed under the store lock. Returns the chain ids, bottom first. Layers whose snapshot
    /// exists already are not unpacked again. The snapshots stay pinned (safe from garbage collection)
    /// until `staging` is dropped, by which time the image's record lists them.
    pub(crate) fn unpack_layers(
        &self,
        staging: &Staging,
        image: &str,
        layers: &[Layer],
    ) -> Result<Vec<String>, Error> {
        let diff_ids: Vec<String> = layers.iter().map(|l| l.diff_id.clone()).collect();
        let chain = chain_ids(&diff_ids);
        let hexes: Vec<&str> = chain
            .iter()
            .map(|c| c.strip_prefix("sha256:").unwrap_or(c))
            .collect();
        let pins = staging.dir().join(PIN_FILE);
        let mut missing = Vec::new();
        {
            let _lock = self.lock()?;
            atomic::write_synced(&pins, hexes.join("\n").as_bytes())?;
            for (i, hex) in hexes.iter().enumerate() {
                if !self.snapshots_dir.join(hex).join("fs").is_dir() {
                    missing.push(i);
                }
            }
        }
        let mut staged = Vec::new();
        for &i in &missing {
            let dir = staging.dir().join(format!("snap-{}", hexes[i]));
            let fs_dir = dir.join("fs");
            fs::create_dir_all(&fs_dir).map_err(io_err(&fs_dir))?;
            let started = std::time::Instant::now();
            unpack_layer(&layers[i], &fs_dir, image)?;
            tracing::debug!(image, layer = %layers[i].digest, chain_id = %chain[i], elapsed = ?started.elapsed(), "unpacked layer");
            staged.push((i, dir));
        }
        let _lock = self.lock()?;
        for (i, dir) in staged {
            let target = self.snapshots_dir.join(hexes[i]);
            if target.join("fs").is_dir() {
                continue; // another pull won; ours is dropped with the staging area
            }
            if target.exists() {
                // A leftover without fs/ (should not happen: snapshots appear by rename only).
                fs::remove_dir_all(&target).map_err(io_err(&target))?;
            }
            match fs::rename(&dir, &target) {
                Ok(()) => {}
                Err(e) if target.join("fs").is_dir() => {
                    tracing::debug!(error = %e, chain_id = %chain[i], "snapshot appeared meanwhile");
                }
                Err(e) => return Err(io_err(&target)(e)),
            }
        }
        atomic::fsync_dir(&self.snapshots_dir)?;
        Ok(chain)
    }

    /// Unpacks the layers of a pulled Linux image whose blobs (manifest's config and layers) are in
    /// `blobs_dir`; returns its chain ids, bottom first.
    pub(crate) fn unpack_pulled(
        &self,
        staging: &Staging,
        blobs_dir: &Path,
        manifest: &Manifest,
        image: &str,
    ) -> Result<Vec<String>, Error> {
        let hex = |digest: &str| {
            sha256_hex_of(digest).map(str::to_owned).ok_or_else(|| {
                Error::corrupt(format!("descriptor {digest}"), "not a sha256 digest")
            })
        };
        let config_path = blobs_dir.join(hex(&manifest.config.digest)?);
        let config = fs::read(&config_path).map_err(io_err(&config_path))?;
        let what = format!("config {} of {image}", manifest.config.digest);
        let diff_ids = diff_ids_of(&config, &what)?;
        if diff_ids.len() != manifest.layers.len() {
            return Err(Error::corrupt(
                what,
                format!(
                    "rootfs.diff_ids has {} entries for the manifest's {} layers",
                    diff_ids.len(),
                    manifest.layers.len()
                ),
            ));
        }
        let layers = manifest
            .layers
            .iter()
            .zip(diff_ids)
            .map(|(desc, diff_id)| {
                Ok(Layer {
                    blob: blobs_dir.join(hex(&desc.digest)?),
                    media_type: desc.media_type.clone(),
                    digest: desc.digest.clone(),
                    diff_id,
                })
            })
            .collect::<Result<Vec<_>, Error>>()?;
        self.unpack_layers(staging, image, &layers)
    }

    /// Deletes every snapshot that neither a record in `records` nor a live pull's pin file names.
    /// Caller holds the store lock. Returns how many were deleted.
    pub(crate) fn collect_snapshots(&self, records: &[ImageRecord]) -> Result<usize, Error> {
        let mut keep: HashSet<String> = records
            .iter()
            .flat_map(|r| r.snapshots.iter())
            .map(|c| c.strip_prefix("sha256:").unwrap_or(c).to_owned())
            .collect();
        for entry in fs::read_dir(&self.tmp_dir).map_err(io_err(&self.tmp_dir))? {
            let pins = entry.map_err(io_err(&self.tmp_dir))?.path().join(PIN_FILE);
            match fs::read_to_string(&pins) {
                Ok(text) => keep.extend(text.lines().map(str::to_owned)),
                Err(e) if matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory) => {}
                Err(e) => return Err(io_err(&pins)(e)),
            }
        }
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let mut removed = 0;
        let entries = match fs::read_dir(&self.snapshots_dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(0),
            Err(e) => return Err(io_err(&self.snapshots_dir)(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(&self.snapshots_dir))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            if is_hex64(&name) && keep.contains(&name) {
                continue;
            }
            // Out of sight first (a crash mid-delete leaves no half snapshot in snapshots/), then gone.
            // The tmp entry has no .lock file, so the next open's sweep finishes the job if we crash.
            let doomed = self.tmp_dir.join(format!(
                "gc-snapshot-{}-{}",
                std::process::id(),
                COUNTER.fetch_add(1, Ordering::Relaxed)
            ));
            let path = entry.path();
            match fs::rename(&path, &doomed) {
                Ok(()) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => continue,
                Err(e) => return Err(io_err(&path)(e)),
            }
            match fs::remove_dir_all(&doomed) {
                Err(e) if e.kind() == ErrorKind::NotADirectory => {
                    fs::remove_file(&doomed).map_err(io_err(&doomed))?
                }
                other => other.map_err(io_err(&doomed))?,
            }
            removed += 1;
        }
        if removed > 0 {
            atomic::fsync_dir(&self.snapshots_dir)?;
            tracing::debug!(snapshots = removed, "collected unreferenced snapshots");
        }
        Ok(removed)
    }
}

#[cfg(test)]
#[path = "unpack_tests.rs"]
mod tests;
