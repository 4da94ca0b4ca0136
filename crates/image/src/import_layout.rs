//! Importing an OCI image-layout directory (`oci-layout`, `index.json`, `blobs/sha256/...`), as written
//! by `skopeo copy oci:`, `docker buildx --output type=oci`, `oras` or `ctr export` (unpacked).
//!
//! For each image in index.json (a nested index contributes its `wasi/wasm` entry): the Wasm binary is a
//! layer with a Wasm media type, or, for a `wasi/wasm` image with tar layers, the file its entrypoint
//! names, read from the layers without extracting anything. Every blob is copied into the staging area
//! and checked against its digest and size before it is parsed or used; manifests, configs and indexes
//! over 4 MiB are refused.

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde::de::DeserializeOwned;

use crate::error::{Error, io_err};
use crate::import::Prepared;
use crate::oci::{
    CONTAINERD_IMAGE_NAME, ConfigBlob, Descriptor, Index, MAX_JSON_BYTES, Manifest, REF_NAME,
    WASM_LAYERS, is_wasm_platform, tar_layer_compression,
};
use crate::record::{LINUX_KIND, ImageConfig, ImageRecord};
use crate::reference::{Reference, is_tag, normalize};
use crate::staging::Staging;
use crate::store::ImageStore;
use crate::tar_find::{Layer, Lookup, find_file};

const MAX_INDEX_DEPTH: usize = 4;
const NOT_RUNNABLE: &str = "neither a Wasm nor a Linux image";

pub(crate) fn prepare(
    store: &ImageStore,
    staging: &mut Staging,
    dir: &Path,
    name: Option<&Reference>,
) -> Result<Vec<Prepared>, Error> {
    let marker = dir.join("oci-layout");
    if !marker.is_file() {
        let detail = "a directory without an `oci-layout` file is not an OCI image layout";
        return Err(Error::not_wasm(dir.display().to_string(), detail));
    }
    let layout: serde_json::Value = read_json(&marker, "oci-layout file")?;
    let version = layout
        .get("imageLayoutVersion")
        .and_then(|v| v.as_str())
        .unwrap_or_default();
    if !version.starts_with("1.") {
        return Err(Error::corrupt(
            "oci-layout file",
            format!("unsupported imageLayoutVersion {version:?}"),
        ));
    }
    let index: Index = read_json(&dir.join("index.json"), "index.json")?;
    if index.manifests.is_empty() {
        return Err(Error::not_wasm(
            dir.display().to_string(),
            "index.json lists no images",
        ));
    }
    let default_repo = match name {
        Some(name) => name.clone(),
        None => default_repo(dir)?,
    };
    let layout = Layout { dir, store };
    index
        .manifests
        .iter()
        .map(|top| layout.prepare_image(staging, top, image_name(top, &default_repo)?))
        .collect()
}

/// Prepares the one image `top` of the layout a pull wrote into the staging area (see `pull.rs`),
/// named `reference`. A reference by digest gives the image no tag.
pub(crate) fn prepare_pulled(
    store: &ImageStore,
    staging: &mut Staging,
    dir: &Path,
    top: &Descriptor,
    reference: Reference,
) -> Result<Prepared, Error> {
    let by_digest = reference.digest.is_some();
    let mut prepared = Layout { dir, store }.prepare_image(staging, top, reference)?;
    if by_digest {
        prepared.record.repo_tags.clear();
    }
    Ok(prepared)
}

/// The record of an image of the layout: `blobs` deduplicated, in order.
#[allow(clippy::too_many_arguments)]
fn record(
    top: &Descriptor,
    reference: &Reference,
    label: String,
    manifest: &Manifest,
    config: ConfigBlob,
    kind: &str,
    wasm_digest: String,
    blobs: Vec<String>,
    snapshots: Vec<String>,
) -> Prepared {
    let mut unique = Vec::new();
    for blob in blobs {
        if !unique.contains(&blob) {
            unique.push(blob);
        }
    }
    Prepared {
        record: ImageRecord {
            id: manifest.config.digest.clone(),
            repo_tags: vec![label],
            repo_digests: vec![format!("{}@{}", reference.name(), top.digest)],
            size: manifest.config.size + manifest.layers.iter().map(|l| l.size).sum::<u64>(),
            kind: kind.to_owned(),
            wasm_digest,
            config: ImageConfig::from_oci(config.config),
            created_unix_nanos: 0,
            blobs: unique,
            snapshots,
        },
    }
}

struct Layout<'a> {
    dir: &'a Path,
    store: &'a ImageStore,
}

impl Layout<'_> {
    fn prepare_image(
        &self,
        staging: &mut Staging,
        top: &Descriptor,
        reference: Reference,
    ) -> Result<Prepared, Error> {
        let label = reference.to_string();
        let mut blobs = vec![top.digest.clone()];
        let manifest = self.select_manifest(staging, top, &label, &mut blobs, 0)?;
        let config_path = self.stage(staging, &manifest.config, Some(MAX_JSON_BYTES), "config")?;
        let config: ConfigBlob =
            read_json(&config_path, &format!("config {}", manifest.config.digest))?;
        blobs.push(manifest.config.digest.clone());

        let wasm_layers: Vec<&Descriptor> = manifest
            .layers
            .iter()
            .filter(|l| WASM_LAYERS.contains(&l.media_type.as_str()))
            .collect();
        let wasm = match wasm_layers.as_slice() {
            [layer] => {
                let path = self.stage(staging, layer, None, "layer")?;
                blobs.push(layer.digest.clone());
                fs::read(&path).map_err(io_err(&path))?
            }
            [] if is_wasm_platform(&config.os, &config.architecture) => {
                let wasm = self.wasm_from_tar_layers(staging, &manifest, &config, &label)?;
                blobs.extend(manifest.layers.iter().map(|l| l.digest.clone()));
                let hex = staging.put_blob(&wasm)?;
                blobs.push(format!("sha256:{hex}"));
                wasm
            }
            [] if config.os == "linux" => {
                return self.prepare_linux(staging, top, reference, label, manifest, config, &config_path, blobs);
            }
            [] => {
                let platform = format!("{}/{}", config.os, config.architecture);
                return Err(Error::not_wasm(
                    label,
                    format!("{NOT_RUNNABLE} (platform {platform}, no Wasm layer)"),
                ));
            }
            several => {
                let detail = format!(
                    "{} Wasm layers; only single-module images are supported",
                    several.len()
                );
                return Err(Error::not_wasm(label, detail));
            }
        };
        let wasm_hex = crate::digest::sha256_hex(&wasm);
        let kind = self
            .store
            .stage_compiled(staging, &label, &wasm, &wasm_hex)?;
        let wasm_digest = format!("sha256:{wasm_hex}");
        blobs.push(wasm_digest.clone());
        Ok(record(top, &reference, label, &manifest, config, kind.as_str(), wasm_digest, blobs, Vec::new()))
    }

    /// A Linux image: its layers staged (verified against their digests) and unpacked into
    /// snapshots (verified against the config's diff_ids), as a pull does.
    #[allow(clippy::too_many_arguments)]
    fn prepare_linux(
        &self,
        staging: &mut Staging,
        top: &Descriptor,
        reference: Reference,
        label: String,
        manifest: Manifest,
        config: ConfigBlob,
        config_path: &Path,
        mut blobs: Vec<String>,
    ) -> Result<Prepared, Error> {
        // The unpacker reads `<dir>/<hex>`: hard links to the verified staged copies.
        let by_hex = staging.dir().join(format!("linux-{}", crate::digest::sha256_hex_of(&manifest.config.digest).unwrap_or("config")));
        fs::create_dir_all(&by_hex).map_err(io_err(&by_hex))?;
        let link = |path: &Path, digest: &str| -> Result<(), Error> {
            let to = by_hex.join(crate::digest::sha256_hex_of(digest).unwrap_or(digest));
            match fs::hard_link(path, &to) {
                Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(io_err(&to)(e)),
                _ => Ok(()),
            }
        };
        link(config_path, &manifest.config.digest)?;
        for layer in &manifest.layers {
            if !crate::pull::is_linux_layer(&layer.media_type) {
                return Err(Error::not_wasm(label, format!("layer media type {:?} is not a tar layer", layer.media_type)));
            }
            let path = self.stage(staging, layer, None, "layer")?;
            link(&path, &layer.digest)?;
            blobs.push(layer.digest.clone());
        }
        let snapshots = self.store.unpack_pulled(staging, &by_hex, &manifest, &label)?;
        let config_digest = manifest.config.digest.clone();
        Ok(record(top, &reference, label, &manifest, config, LINUX_KIND, config_digest, blobs, snapshots))
    }

    /// The manifest `desc` leads to: itself, or the `wasi/wasm` entry of the index it is (else
    /// its `linux/<this machine's architecture>` entry).
    fn select_manifest(
        &self,
        staging: &mut Staging,
        desc: &Descriptor,
        label: &str,
        blobs: &mut Vec<String>,
        depth: usize,
    ) -> Result<Manifest, Error> {
        let what = if desc.is_index() { "index" } else { "manifest" };
        let path = self.stage(staging, desc, Some(MAX_JSON_BYTES), what)?;
        let json: serde_json::Value = read_json(&path, &format!("{what} {}", desc.digest))?;
        blobs.push(desc.digest.clone());
        let bad_json =
            |e: serde_json::Error| Error::corrupt(format!("{what} {}", desc.digest), e.to_string());
        if json.get("manifests").is_none() {
            return serde_json::from_value(json).map_err(bad_json);
        }
        if depth >= MAX_INDEX_DEPTH {
            return Err(Error::corrupt(
                format!("index {}", desc.digest),
                "indexes nested too deeply",
            ));
        }
        let index: Index = serde_json::from_value(json).map_err(bad_json)?;
        let is_wasm = |d: &&Descriptor| {
            d.platform
                .as_ref()
                .is_some_and(|p| is_wasm_platform(&p.os, &p.architecture))
        };
        let is_native_linux = |d: &&Descriptor| {
            d.platform
                .as_ref()
                .is_some_and(|p| p.os == "linux" && p.architecture == crate::pull::node_arch())
        };
        let chosen = match index.manifests.iter().find(is_wasm).or_else(|| index.manifests.iter().find(is_native_linux)) {
            Some(entry) => entry,
            // An index without platforms (e.g. from `oras`) has nothing to choose by: take its first entry.
            None if index.manifests.iter().all(|d| d.platform.is_none())
                && !index.manifests.is_empty() =>
            {
                &index.manifests[0]
            }
            None => {
                let platforms = index.platforms();
                let detail = format!(
                    "no wasi/wasm or linux/{} entry (platforms: {platforms})",
                    crate::pull::node_arch()
                );
                return Err(Error::not_wasm(label, detail));
            }
        };
        self.select_manifest(staging, chosen, label, blobs, depth + 1)
    }

    /// The file the entrypoint (or, without one, `Cmd[0]`) names, from the image's tar layers.
    fn wasm_from_tar_layers(
        &self,
        staging: &mut Staging,
        manifest: &Manifest,
        config: &ConfigBlob,
        label: &str,
    ) -> Result<Vec<u8>, Error> {
        let runtime = config.config.as_ref();
        let program = runtime
            .and_then(|c| {
                c.entrypoint
                    .as_ref()
                    .and_then(|e| e.first())
                    .or(c.cmd.as_ref().and_then(|c| c.first()))
            })
            .ok_or_else(|| {
                Error::not_wasm(
                    label,
                    "a wasi/wasm image with tar layers but no Entrypoint or Cmd",
                )
            })?;
        let wanted = if program.starts_with('/') {
            program.clone()
        } else {
            let working_dir = runtime
                .and_then(|c| c.working_dir.as_deref())
                .unwrap_or("/");
            format!("{working_dir}/{program}")
        };
        let mut layers = Vec::new();
        for desc in &manifest.layers {
            let Some(compression) = tar_layer_compression(&desc.media_type) else {
                let detail = format!("layer media type {:?} is not supported", desc.media_type);
                return Err(Error::not_wasm(label, detail));
            };
            let path = self.stage(staging, desc, None, "layer")?;
            layers.push(Layer {
                digest: desc.digest.clone(),
                path,
                compression,
            });
        }
        let wasm = match find_file(&layers, &wanted)? {
            Lookup::File(bytes) => bytes,
            Lookup::Missing(why) => {
                return Err(Error::not_wasm(
                    label,
                    format!("entrypoint {program}: {why}"),
                ));
            }
        };
        if !wasm.starts_with(b"\0asm") {
            return Err(Error::not_wasm(
                label,
                format!("entrypoint {program} is not a Wasm binary"),
            ));
        }
        Ok(wasm)
    }

    /// Copies blob `desc` of the layout into the staging area, verified; returns the copy.
    fn stage(
        &self,
        staging: &mut Staging,
        desc: &Descriptor,
        max: Option<u64>,
        what: &str,
    ) -> Result<PathBuf, Error> {
        let Some(hex) = crate::digest::sha256_hex_of(&desc.digest) else {
            return Err(Error::corrupt(
                format!("{what} {}", desc.digest),
                "not a sha256:<64 lowercase hex> digest",
            ));
        };
        let src = self.dir.join("blobs").join("sha256").join(hex);
        if !src.is_file() {
            return Err(Error::corrupt(
                format!("{what} {}", desc.digest),
                "missing from the layout",
            ));
        }
        staging.copy_blob(&src, desc, max, what)
    }
}

/// The name of one image of the layout (see [`ImageStore::import`]).
fn image_name(desc: &Descriptor, default_repo: &Reference) -> Result<Reference, Error> {
    if let Some(full) = desc.annotation(CONTAINERD_IMAGE_NAME) {
        return normalize(full);
    }
    match desc.annotation(REF_NAME) {
        Some(tag) if is_tag(tag) => Ok(default_repo.with_tag(tag)),
        Some(full) => normalize(full),
        None => Ok(default_repo.clone()),
    }
}

/// `localhost/<directory name, lowercased>:latest`.
fn default_repo(dir: &Path) -> Result<Reference, Error> {
    let dir = fs::canonicalize(dir).map_err(io_err(dir))?;
    let base = dir
        .file_name()
        .map(|n| n.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    normalize(&format!("localhost/{base}")).map_err(|e| match e {
        Error::InvalidReference { reference, reason } => Error::InvalidReference {
            reference,
            reason: format!(
                "{reason} (derived from the directory name; pass a name to import under)"
            ),
        },
        other => other,
    })
}

/// Reads and parses a JSON document of at most 4 MiB.
fn read_json<T: DeserializeOwned>(path: &Path, what: &str) -> Result<T, Error> {
    let file = fs::File::open(path).map_err(io_err(path))?;
    let mut bytes = Vec::new();
    file.take(MAX_JSON_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_err(path))?;
    if bytes.len() as u64 > MAX_JSON_BYTES {
        return Err(Error::corrupt(what, "larger than 4 MiB"));
    }
    serde_json::from_slice(&bytes).map_err(|e| Error::corrupt(what, e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::digest::sha256_digest;
    use crate::tar_find::tests::{Item, tar_bytes};
    use crate::testutil::{COMPONENT, LayoutBuilder, annotated, config, module, with_platform};
    use serde_json::json;

    const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
    const TAR_GZ: &str = "application/vnd.oci.image.layer.v1.tar+gzip";
    const DOCKER_TAR_GZ: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

    fn setup() -> (tempfile::TempDir, ImageStore, LayoutBuilder) {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("store")).unwrap();
        let layout = LayoutBuilder::new(dir.path().join("My-App"));
        (dir, store, layout)
    }

    fn assert_store_empty(store: &ImageStore) {
        assert!(store.list().unwrap().is_empty());
        for dir in [
            &store.blobs_dir,
            &store.compiled_dir,
            &store.tmp_dir,
            &store.records.dir().to_owned(),
        ] {
            assert_eq!(fs::read_dir(dir).unwrap().count(), 0, "{}", dir.display());
        }
    }

    #[test]
    fn imports_each_wasm_layer_media_type() {
        let (_dir, store, layout) = setup();
        let mut top = Vec::new();
        let wasm = [module("one"), module("two"), COMPONENT.to_vec()];
        for (i, media_type) in WASM_LAYERS.iter().enumerate() {
            let config = json!({"architecture": "wasm", "os": "wasip1", "layerDigests": [sha256_digest(&wasm[i])]});
            let desc = layout.image(&config, &[(media_type, &wasm[i])]);
            top.push(annotated(desc, REF_NAME, &format!("v{i}")));
        }
        let images = store.import(layout.finish(&top), None).unwrap();
        assert_eq!(images.len(), 3);
        for (i, image) in images.iter().enumerate() {
            assert_eq!(image.repo_tags, [format!("localhost/my-app:v{i}")]);
            assert_eq!(image.wasm_digest, sha256_digest(&wasm[i]));
            assert_eq!(
                image.repo_digests,
                [format!(
                    "localhost/my-app@{}",
                    top[i]["digest"].as_str().unwrap()
                )]
            );
            assert_eq!(image.blobs.len(), 3, "manifest, config, layer");
            assert!(store.compiled_path(image).unwrap().exists());
        }
        assert_eq!(images[2].kind, "component");
        assert_eq!(
            store.resolve("localhost/my-app:v1").unwrap().unwrap().id,
            images[1].id
        );
    }

    #[test]
    fn imports_a_wasi_wasm_image_from_tar_layers_in_a_nested_index() {
        let (_dir, store, layout) = setup();
        let wasm = module("from-tar");
        let lower = tar_bytes(
            &[
                Item::File("bin/app.wasm", b"old"),
                Item::File("etc/x", b"x"),
            ],
            true,
        );
        let upper = tar_bytes(&[Item::File("./bin/app.wasm", &wasm)], false);
        let mut cfg = config("wasip1", "wasm", &["app.wasm"]);
        cfg["config"]["WorkingDir"] = json!("/bin");
        let wasi = layout.image(&cfg, &[(DOCKER_TAR_GZ, &lower), (TAR, &upper)]);
        let linux = layout.image(&config("linux", "amd64", &["/bin/sh"]), &[(TAR_GZ, &lower)]);
        let index = layout.index(&[
            with_platform(linux, "linux", "amd64"),
            with_platform(wasi.clone(), "wasi", "wasm"),
        ]);
        let index = annotated(index, CONTAINERD_IMAGE_NAME, "ghcr.io/me/app:1.0");
        let image = store
            .import(layout.finish(std::slice::from_ref(&index)), Some("ignored"))
            .unwrap()
            .remove(0);

        assert_eq!(image.repo_tags, ["ghcr.io/me/app:1.0"]);
        assert_eq!(
            image.repo_digests,
            [format!(
                "ghcr.io/me/app@{}",
                index["digest"].as_str().unwrap()
            )]
        );
        assert_eq!(image.wasm_digest, sha256_digest(&wasm));
        assert_eq!(image.config.entrypoint, ["app.wasm"]);
        assert_eq!(
            (image.config.env.clone(), image.config.working_dir.as_str()),
            (vec!["A=1".to_owned()], "/bin")
        );
        // index, manifest, config, two layers and the Wasm binary read out of them.
        assert_eq!(image.blobs.len(), 6);
        for hex in image.blob_hexes() {
            assert!(store.blobs_dir.join(hex).exists());
        }
        let config_size = fs::metadata(layout.blob_path(&json!({"digest": image.id})))
            .unwrap()
            .len();
        assert_eq!(image.size, config_size + (lower.len() + upper.len()) as u64);
        assert!(store.compiled_path(&image).unwrap().exists());
    }

    #[test]
    fn a_whited_out_entrypoint_is_not_wasm() {
        let (_dir, store, layout) = setup();
        let lower = tar_bytes(&[Item::File("app.wasm", &module("x"))], false);
        let upper = tar_bytes(&[Item::File(".wh.app.wasm", b"")], false);
        let desc = layout.image(
            &config("wasi", "wasm", &["/app.wasm"]),
            &[(TAR, &lower), (TAR, &upper)],
        );
        let err = store.import(layout.finish(&[desc]), None).unwrap_err();
        assert!(
            matches!(&err, Error::NotWasm { detail, .. } if detail.contains("not in the image's layers")),
            "{err}"
        );
        assert_store_empty(&store);
    }

    #[test]
    fn a_digest_mismatch_stores_nothing() {
        let (_dir, store, layout) = setup();
        let good = layout.image(
            &config("wasi", "wasm", &[]),
            &[("application/wasm", &module("good"))],
        );
        let config_blob = json!({"architecture": "wasm", "os": "wasi", "n": 2});
        let bad = layout.image(&config_blob, &[("application/wasm", &module("bad"))]);
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(layout.blob_path(&bad)).unwrap()).unwrap();
        let layer = &manifest["layers"][0];
        fs::write(layout.blob_path(layer), module("baD")).unwrap(); // same size, other bytes
        let err = store.import(layout.finish(&[good, bad]), None).unwrap_err();
        match &err {
            Error::Corrupt { what, detail } => {
                assert!(what.contains(layer["digest"].as_str().unwrap()), "{err}");
                assert!(detail.contains("hashes to"), "{err}");
            }
            other => panic!("{other}"),
        }
        assert_store_empty(&store);
    }

    #[test]
    fn oversize_and_malformed_documents_are_refused() {
        let (_dir, store, layout) = setup();
        let wasm = module("big");
        let mut desc = layout.image(&config("wasi", "wasm", &[]), &[("application/wasm", &wasm)]);
        let manifest = fs::read(layout.blob_path(&desc)).unwrap();
        let mut big: serde_json::Value = serde_json::from_slice(&manifest).unwrap();
        big["annotations"] = json!({"padding": "x".repeat(5 << 20)});
        let big = layout.blob(
            "application/vnd.oci.image.manifest.v1+json",
            big.to_string().as_bytes(),
        );
        let err = store.import(layout.finish(&[big]), None).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { detail, .. } if detail.contains("limit")),
            "{err}"
        );

        desc["digest"] = json!("sha256:../../../../etc/passwd");
        let err = store
            .import(layout.finish(&[desc.clone()]), None)
            .unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { detail, .. } if detail.contains("not a sha256")),
            "{err}"
        );

        let not_json = layout.blob(
            "application/vnd.oci.image.manifest.v1+json",
            b"{\"schemaVersion\":",
        );
        assert!(matches!(
            store.import(layout.finish(&[not_json]), None),
            Err(Error::Corrupt { .. })
        ));

        fs::write(layout.dir.join("index.json"), vec![b' '; (4 << 20) + 1]).unwrap();
        let err = store.import(&layout.dir, None).unwrap_err();
        assert!(
            matches!(&err, Error::Corrupt { what, .. } if what == "index.json"),
            "{err}"
        );
        assert_store_empty(&store);
    }

    #[test]
    fn linux_images_are_imported_with_their_layers_unpacked() {
        let (_dir, store, layout) = setup();
        let items = [Item::File("bin/sh", b"\x7fELF")];
        let layer = tar_bytes(&items, true);
        let mut linux_config = config("linux", "amd64", &["/bin/sh"]);
        let diff_id = format!("sha256:{}", crate::digest::sha256_hex(&tar_bytes(&items, false)));
        linux_config["rootfs"] = serde_json::json!({"type": "layers", "diff_ids": [diff_id]});
        let linux = layout.image(&linux_config, &[(TAR_GZ, &layer)]);
        let linux = annotated(linux, REF_NAME, "docker.io/library/alpine:3");
        let images = store.import(layout.finish(std::slice::from_ref(&linux)), None).unwrap();
        assert!(images[0].is_linux(), "{:?}", images[0]);
        assert_eq!(images[0].repo_tags, vec!["docker.io/library/alpine:3".to_string()]);
        let dirs = store.snapshot_dirs(&images[0]);
        assert_eq!(dirs.len(), 1);
        assert_eq!(fs::read(dirs[0].join("bin/sh")).unwrap(), b"\x7fELF");

        // From an index: the entry of this machine's architecture; none there is an error.
        let index = layout.index(&[with_platform(linux.clone(), "linux", crate::pull::node_arch())]);
        assert!(store.import(layout.finish(&[index]), Some("alpine")).unwrap()[0].is_linux());
        let index = layout.index(&[with_platform(linux, "linux", "s390x")]);
        let err = store.import(layout.finish(&[index]), Some("alpine")).unwrap_err();
        assert!(err.to_string().contains("linux/s390x"), "{err}");
    }

    #[test]
    fn names_come_from_annotations_the_name_argument_or_the_directory() {
        let (_dir, store, layout) = setup();
        let image = |n: &str| {
            layout.image(
                &config("wasi", "wasm", &[n]),
                &[("application/wasm", &module(n))],
            )
        };
        let top = [
            annotated(image("a"), REF_NAME, "v1"),
            annotated(image("b"), REF_NAME, "quay.io/x/y:v2"),
            image("c"),
        ];
        let tags: Vec<Vec<String>> = store
            .import(layout.finish(&top), Some("me/app"))
            .unwrap()
            .into_iter()
            .map(|i| i.repo_tags)
            .collect();
        assert_eq!(
            tags,
            [
                ["docker.io/me/app:v1"],
                ["quay.io/x/y:v2"],
                ["docker.io/me/app:latest"]
            ]
        );
        let tags: Vec<Vec<String>> = store
            .import(&layout.dir, None)
            .unwrap()
            .into_iter()
            .map(|i| i.repo_tags)
            .collect();
        // The same images again: the new names are merged into the existing records.
        assert_eq!(tags[0], ["docker.io/me/app:v1", "localhost/my-app:v1"]);
        assert_eq!(tags[1], ["quay.io/x/y:v2"]);
        assert_eq!(
            tags[2],
            ["docker.io/me/app:latest", "localhost/my-app:latest"]
        );
        assert_eq!(store.list().unwrap().len(), 3);
        assert_eq!(
            store.resolve("me/app:v1").unwrap().unwrap().repo_tags.len(),
            2
        );
    }

    #[test]
    fn the_same_config_with_different_wasm_conflicts() {
        let (_dir, store, layout) = setup();
        let cfg = json!({"architecture": "wasm", "os": "wasi"});
        let a = annotated(
            layout.image(&cfg, &[("application/wasm", &module("a"))]),
            REF_NAME,
            "a",
        );
        let b = annotated(
            layout.image(&cfg, &[("application/wasm", &module("b"))]),
            REF_NAME,
            "b",
        );
        assert!(matches!(
            store.import(layout.finish(&[a.clone(), b.clone()]), None),
            Err(Error::Conflict { .. })
        ));
        assert_store_empty(&store);
        store.import(layout.finish(&[a]), None).unwrap();
        assert!(matches!(
            store.import(layout.finish(&[b]), None),
            Err(Error::Conflict { .. })
        ));
    }

    #[test]
    fn a_directory_that_is_not_a_layout_is_refused() {
        let (dir, store, _layout) = setup();
        let err = store.import(dir.path(), None).unwrap_err();
        assert!(
            matches!(&err, Error::NotWasm { detail, .. } if detail.contains("oci-layout")),
            "{err}"
        );
    }
}
