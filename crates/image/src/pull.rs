//! Pulling an image from a registry: resolve the reference to a manifest (an index resolves to its
//! `wasi/wasm` entry, else the node's `linux/<arch>`), stream every blob it needs into a staging area,
//! verifying each digest and size as it arrives, and hand a Wasm image to the layout importer, which
//! compiles the Wasm and commits the image like `wasmlet image import` does. A Linux image (kind
//! `linux`) keeps its layers compressed as blobs and has them unpacked into snapshots (`unpack.rs`)
//! before it is committed. Blobs the store already holds are copied locally, not downloaded.
//!
//! Pulls of one reference in one process are serialised (the second finds the blobs the first stored);
//! two processes pulling at once may both download, and the store lock makes their commits safe.

use std::collections::HashMap;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use crate::auth::Auth;
use crate::digest::sha256_hex_of;
use crate::error::{Error, io_err};
use crate::import::Prepared;
use crate::import_layout::prepare_pulled;
use crate::oci::{
    ConfigBlob, Descriptor, Index, MAX_JSON_BYTES, Manifest, WASM_LAYERS, is_wasm_platform,
};
use crate::record::{ImageConfig, ImageRecord, LINUX_KIND};
use crate::reference::{Reference, normalize};
use crate::registry::{Registry, RegistryOptions, content_length};
use crate::staging::Staging;
use crate::store::ImageStore;

const MAX_INDEX_DEPTH: usize = 4;

/// Progress callback: blob digest, bytes so far, bytes in all.
pub type ProgressFn = dyn Fn(&str, u64, u64) + Send + Sync;

/// How to pull.
#[derive(Clone, Default)]
pub struct PullOptions {
    pub registry: RegistryOptions,
    /// Called as blobs arrive (not for blobs the store already has).
    pub progress: Option<Arc<ProgressFn>>,
}

impl std::fmt::Debug for PullOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PullOptions")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// Per-reference gates of the pulls in flight in this process.
#[derive(Default)]
pub(crate) struct InFlight(Mutex<HashMap<String, Arc<Mutex<()>>>>);

impl ImageStore {
    /// Pulls `reference` (normalised: `busybox` is `docker.io/library/busybox:latest`) from its
    /// registry with `auth`, stores it and compiles its Wasm once. Returns its record. Nothing is stored
    /// unless the whole image verifies and compiles.
    ///
    /// ```no_run
    /// use wasmlet_image::{Auth, ImageStore, PullOptions};
    /// let store = ImageStore::open("/var/lib/wasmlet/images")?;
    /// let auth = Auth::basic("me", "secret");
    /// let image = store.pull("127.0.0.1:5000/app:v1", Some(auth), &PullOptions::default())?;
    /// println!("{}", image.id);
    /// # Ok::<(), wasmlet_image::Error>(())
    /// ```
    pub fn pull(
        &self,
        reference: &str,
        auth: Option<Auth>,
        opts: &PullOptions,
    ) -> Result<ImageRecord, Error> {
        let reference = normalize(reference)?;
        let key = reference.to_string();
        let gate = {
            let mut map = self.pulls.0.lock().expect("not poisoned");
            Arc::clone(map.entry(key.clone()).or_default())
        };
        let result = {
            let _turn = gate.lock().unwrap_or_else(|p| p.into_inner());
            self.pull_gated(&reference, auth, opts)
        };
        let mut map = self.pulls.0.lock().expect("not poisoned");
        if Arc::strong_count(&gate) == 2 {
            map.remove(&key);
        }
        result
    }

    fn pull_gated(
        &self,
        reference: &Reference,
        auth: Option<Auth>,
        opts: &PullOptions,
    ) -> Result<ImageRecord, Error> {
        if reference.digest.is_some()
            && let Some(image) = self.resolve(&reference.to_string())?
        {
            return Ok(image);
        }
        let started = std::time::Instant::now();
        let mut staging = self.new_staging()?;
        let layout = staging.dir().join("layout");
        let blobs = layout.join("blobs").join("sha256");
        fs::create_dir_all(&blobs).map_err(io_err(&blobs))?;
        let wanted = reference
            .digest
            .clone()
            .or_else(|| reference.tag.clone())
            .unwrap_or_else(|| "latest".into());
        // Mirrors first, then the registry itself: the first that serves the manifest serves
        // the whole pull (as containerd resolves through hosts.toml).
        let candidates = Registry::candidates(reference, auth, &opts.registry);
        let count = candidates.len();
        let mut found = None;
        for (i, registry) in candidates.into_iter().enumerate() {
            let mut puller = Puller {
                store: self,
                registry: &registry,
                staging: &mut staging,
                blobs_dir: blobs.clone(),
                progress: opts.progress.clone(),
            };
            match puller.manifest(&wanted) {
                Ok(top) => {
                    found = Some((registry, top));
                    break;
                }
                Err(e) if i + 1 < count => {
                    tracing::warn!(image = %reference, endpoint = registry.endpoint(), error = %e, "mirror failed; trying the next endpoint");
                }
                Err(e) => return Err(e),
            }
        }
        let Some((registry, top)) = found else {
            unreachable!("the last candidate either answers or returns its error")
        };
        let mut puller = Puller {
            store: self,
            registry: &registry,
            staging: &mut staging,
            blobs_dir: blobs,
            progress: opts.progress.clone(),
        };
        let mut chain = Vec::new();
        let prepared = match puller.fetch_tree(&top, 0, &mut chain)? {
            Selected::Import => {
                prepare_pulled(self, &mut staging, &layout, &top, reference.clone())?
            }
            Selected::Linux { manifest, config } => {
                let mut prepared = linux_image(reference, &top, &manifest, config, chain);
                let layout_blobs = layout.join("blobs").join("sha256");
                prepared.record.snapshots =
                    self.unpack_pulled(&staging, &layout_blobs, &manifest, &reference.to_string())?;
                prepared
            }
        };
        let image = self.commit(&mut staging, vec![prepared])?.remove(0);
        tracing::info!(image = %reference, image.id = %image.id, elapsed = ?started.elapsed(), "pulled image");
        Ok(image)
    }
}

/// What [`Puller::fetch_tree`] found.
enum Selected {
    /// A Wasm image (or one the importer refuses with a clear error): the importer takes it from here.
    Import,
    /// A Linux image, every blob staged and verified.
    Linux {
        manifest: Box<Manifest>,
        config: ConfigBlob,
    },
}

/// The record of a Linux image, its layers stored as pulled (compressed); the caller fills `snapshots`.
fn linux_image(
    reference: &Reference,
    top: &Descriptor,
    manifest: &Manifest,
    config: ConfigBlob,
    chain: Vec<String>,
) -> Prepared {
    let mut blobs = chain;
    blobs.push(manifest.config.digest.clone());
    for layer in &manifest.layers {
        if !blobs.contains(&layer.digest) {
            blobs.push(layer.digest.clone());
        }
    }
    Prepared {
        record: ImageRecord {
            id: manifest.config.digest.clone(),
            repo_tags: match reference.digest {
                Some(_) => vec![],
                None => vec![reference.to_string()],
            },
            repo_digests: vec![format!("{}@{}", reference.name(), top.digest)],
            size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
            kind: LINUX_KIND.to_owned(),
            wasm_digest: manifest.config.digest.clone(),
            config: ImageConfig::from_oci(config.config),
            created_unix_nanos: 0,
            blobs,
            snapshots: Vec::new(), // set once the layers are unpacked
        },
    }
}

/// Tar layers, uncompressed, gzip or zstd, OCI or docker media types.
pub(crate) fn is_linux_layer(media_type: &str) -> bool {
    matches!(
        media_type,
        "application/vnd.oci.image.layer.v1.tar"
            | "application/vnd.oci.image.layer.v1.tar+gzip"
            | "application/vnd.oci.image.layer.v1.tar+zstd"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
            | "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd"
            | "application/vnd.docker.image.rootfs.diff.tar"
            | "application/vnd.docker.image.rootfs.diff.tar.gzip"
            | "application/vnd.docker.image.rootfs.diff.tar.zstd"
            | "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip"
    )
}

/// The node's architecture as OCI platforms name it.
pub(crate) fn node_arch() -> &'static str {
    match std::env::consts::ARCH {
        "x86_64" => "amd64",
        "aarch64" => "arm64",
        "powerpc64" => "ppc64le",
        other => other,
    }
}

struct Puller<'a> {
    store: &'a ImageStore,
    registry: &'a Registry,
    staging: &'a mut Staging,
    /// `<staging>/layout/blobs/sha256`: hard links to the staged blobs, read by the importer.
    blobs_dir: PathBuf,
    progress: Option<Arc<ProgressFn>>,
}

impl Puller<'_> {
    /// Fetches manifest `tag_or_digest`, stages it and returns its descriptor.
    fn manifest(&mut self, tag_or_digest: &str) -> Result<Descriptor, Error> {
        let (bytes, media_type) = self.registry.manifest(tag_or_digest)?;
        let desc = Descriptor::new(&media_type, &bytes);
        let hex = self.staging.put_blob(&bytes)?;
        self.link(&hex)?;
        Ok(desc)
    }

    /// Stages what the image below `desc` needs: an index's chosen entry (`wasi/wasm`, else an index
    /// without platforms' first entry, as the importer chooses; else the node's `linux/<arch>`), a
    /// manifest's config and its layers. `chain` collects the digests of indexes and manifests.
    fn fetch_tree(
        &mut self,
        desc: &Descriptor,
        depth: usize,
        chain: &mut Vec<String>,
    ) -> Result<Selected, Error> {
        chain.push(desc.digest.clone());
        let path = self.blobs_dir.join(hex_of(desc)?);
        let json: serde_json::Value = read_small(&path, &desc.digest)?;
        if json.get("manifests").is_some() {
            if depth >= MAX_INDEX_DEPTH {
                return Ok(Selected::Import); // the importer reports it
            }
            let index: Index = serde_json::from_value(json)
                .map_err(|e| Error::corrupt(format!("index {}", desc.digest), e.to_string()))?;
            let platform_is = |d: &&Descriptor, f: &dyn Fn(&str, &str) -> bool| {
                d.platform
                    .as_ref()
                    .is_some_and(|p| f(&p.os, &p.architecture))
            };
            let all_bare = index.manifests.iter().all(|d| d.platform.is_none());
            let arch = node_arch();
            let chosen = index
                .manifests
                .iter()
                .find(|d| platform_is(d, &is_wasm_platform))
                .or_else(|| index.manifests.first().filter(|_| all_bare))
                .or_else(|| {
                    let linux = |os: &str, a: &str| os == "linux" && a == arch;
                    index.manifests.iter().find(|d| platform_is(d, &linux))
                });
            let Some(chosen) = chosen.cloned() else {
                let platforms = index.platforms();
                return Err(Error::NotFound {
                    reference: format!(
                        "{} for platform wasi/wasm or linux/{arch} (the index has {})",
                        self.registry.image(),
                        platforms
                    ),
                });
            };
            if chosen.size > MAX_JSON_BYTES {
                return Err(too_large(&chosen, "manifest"));
            }
            let got = self.manifest(&chosen.digest)?;
            let chosen = Descriptor {
                media_type: got.media_type,
                ..chosen
            };
            return self.fetch_tree(&chosen, depth + 1, chain);
        }
        let manifest: Manifest = serde_json::from_value(json)
            .map_err(|e| Error::corrupt(format!("manifest {}", desc.digest), e.to_string()))?;
        if manifest.config.size > MAX_JSON_BYTES {
            return Err(too_large(&manifest.config, "config"));
        }
        let config_path = self.blob(&manifest.config, "config")?;
        let config: ConfigBlob =
            serde_json::from_slice(&fs::read(&config_path).map_err(io_err(&config_path))?)
                .map_err(|e| {
                    Error::corrupt(format!("config {}", manifest.config.digest), e.to_string())
                })?;
        let is_wasm = manifest
            .layers
            .iter()
            .any(|l| WASM_LAYERS.contains(&l.media_type.as_str()))
            || is_wasm_platform(&config.os, &config.architecture);
        if !is_wasm
            && let Some(layer) = manifest
                .layers
                .iter()
                .find(|l| !is_linux_layer(&l.media_type))
        {
            return Err(Error::not_wasm(
                self.registry.image(),
                format!(
                    "layer {} has media type {:?}, neither Wasm nor a tar layer ({}/{})",
                    layer.digest, layer.media_type, config.os, config.architecture
                ),
            ));
        }
        for layer in &manifest.layers {
            self.blob(layer, "layer")?;
        }
        Ok(if is_wasm {
            Selected::Import
        } else {
            Selected::Linux {
                manifest: Box::new(manifest),
                config,
            }
        })
    }

    /// Stages blob `desc`, from the store if it has it, else from the registry; verified either way.
    fn blob(&mut self, desc: &Descriptor, what: &str) -> Result<PathBuf, Error> {
        let hex = hex_of(desc)?.to_owned();
        let local = self.store.blobs_dir.join(&hex);
        let staged = if local.is_file() {
            self.staging.copy_blob(&local, desc, None, what)?
        } else {
            let resp = self.registry.blob(&desc.digest)?;
            if let Some(len) = content_length(&resp)
                && len != desc.size
            {
                return Err(Error::corrupt(
                    format!("{what} {}", desc.digest),
                    format!(
                        "the registry sends {len} bytes, the descriptor says {}",
                        desc.size
                    ),
                ));
            }
            let mut body = resp.into_body().into_reader();
            let registry = self.registry;
            let progress = self.progress.clone();
            let (digest, total) = (desc.digest.clone(), desc.size);
            let mut last = 0u64;
            let mut report = |done: u64| {
                if let Some(p) = &progress
                    && (done == total || done - last >= 256 << 10)
                {
                    last = done;
                    p(&digest, done, total);
                }
            };
            self.staging.receive_blob(
                &mut body,
                desc,
                || format!("{what} {} of {}", desc.digest, registry.image()),
                &mut |e| registry.io_transport(e),
                &mut report,
            )?
        };
        self.link(&hex)?;
        Ok(staged)
    }

    /// Hard-links staged blob `hex` into the layout.
    fn link(&self, hex: &str) -> Result<(), Error> {
        let target = self.blobs_dir.join(hex);
        if !target.exists() {
            let staged = self.staging.dir().join(format!("blob-{hex}"));
            fs::hard_link(&staged, &target).map_err(io_err(&target))?;
        }
        Ok(())
    }
}

fn hex_of(desc: &Descriptor) -> Result<&str, Error> {
    sha256_hex_of(&desc.digest).ok_or_else(|| {
        Error::corrupt(
            format!("descriptor {}", desc.digest),
            "not a sha256:<64 lowercase hex> digest",
        )
    })
}

fn too_large(desc: &Descriptor, what: &str) -> Error {
    Error::TooLarge {
        what: format!("{what} {}", desc.digest),
        size: desc.size,
        limit: MAX_JSON_BYTES,
    }
}

fn read_small(path: &Path, digest: &str) -> Result<serde_json::Value, Error> {
    let bytes = fs::read(path).map_err(io_err(path))?;
    serde_json::from_slice(&bytes)
        .map_err(|e| Error::corrupt(format!("blob {digest}"), e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn knows_linux_layer_media_types_and_the_node_arch() {
        assert!(is_linux_layer(
            "application/vnd.oci.image.layer.v1.tar+zstd"
        ));
        assert!(is_linux_layer(
            "application/vnd.docker.image.rootfs.diff.tar.gzip"
        ));
        assert!(!is_linux_layer("application/wasm"));
        assert!(!is_linux_layer("application/vnd.oci.image.config.v1+json"));
        assert!(!node_arch().is_empty() && node_arch() != "x86_64");
    }

    #[test]
    fn a_linux_record_lists_every_blob_once_and_is_untagged_by_digest() {
        let config = Descriptor::new("application/vnd.oci.image.config.v1+json", b"{}");
        let layer = Descriptor::new("application/vnd.oci.image.layer.v1.tar", b"l");
        let manifest = Manifest {
            schema_version: 2,
            media_type: None,
            config: config.clone(),
            layers: vec![layer.clone(), layer.clone()],
        };
        let top = Descriptor::new(crate::oci::MANIFEST_V1, b"m");
        let by_digest = normalize(&format!("r.io/a@{}", top.digest)).unwrap();
        let p = linux_image(
            &by_digest,
            &top,
            &manifest,
            ConfigBlob::default(),
            vec![top.digest.clone()],
        );
        assert!(p.record.repo_tags.is_empty());
        assert_eq!(
            p.record.blobs,
            [
                top.digest.clone(),
                config.digest.clone(),
                layer.digest.clone()
            ]
        );
        assert_eq!((p.record.kind.as_str(), p.record.size), ("linux", 4));
        assert_eq!(p.record.wasm_digest, config.digest);
        let by_tag = normalize("r.io/a:1").unwrap();
        let p = linux_image(&by_tag, &top, &manifest, ConfigBlob::default(), vec![]);
        assert_eq!(p.record.repo_tags, ["r.io/a:1"]);
        assert!(p.record.is_linux());
    }
}
