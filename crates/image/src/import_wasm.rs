//! Importing a bare `.wasm` file: it becomes a one-layer OCI image (layer `application/wasm`, an OCI
//! config for platform `wasi/wasm` whose entrypoint is `/<file name>`, and a manifest), so it is listed,
//! named and removed like any pulled image. The config carries no timestamp: importing the same file
//! again gives the same image id and only adds names.

use std::fs;
use std::path::Path;

use crate::digest::{sha256_digest, sha256_hex};
use crate::error::{Error, io_err};
use crate::import::Prepared;
use crate::oci::{
    CONFIG_V1, ContainerConfig, Descriptor, MANIFEST_V1, Manifest, RootFs, WASM_LAYER,
    WasmConfigOut,
};
use crate::record::{ImageConfig, ImageRecord};
use crate::reference::{Reference, normalize};
use crate::staging::Staging;
use crate::store::ImageStore;

pub(crate) fn prepare(
    store: &ImageStore,
    staging: &mut Staging,
    path: &Path,
    name: Option<&Reference>,
) -> Result<Prepared, Error> {
    let file_name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let reference = match name {
        Some(name) => name.clone(),
        None => default_name(path)?,
    };
    let label = reference.to_string();
    let wasm = fs::read(path).map_err(io_err(path))?;
    let wasm_hex = sha256_hex(&wasm);
    let kind = store.stage_compiled(staging, &label, &wasm, &wasm_hex)?;
    let wasm_digest = format!("sha256:{wasm_hex}");

    let config = WasmConfigOut {
        architecture: "wasm",
        os: "wasi",
        config: ContainerConfig {
            entrypoint: Some(vec![format!("/{file_name}")]),
            ..Default::default()
        },
        rootfs: RootFs {
            kind: "layers",
            diff_ids: vec![wasm_digest.clone()],
        },
    };
    let config_bytes = serde_json::to_vec(&config).expect("configs always serialise");
    let manifest = Manifest {
        schema_version: 2,
        media_type: Some(MANIFEST_V1.to_owned()),
        config: Descriptor::new(CONFIG_V1, &config_bytes),
        layers: vec![Descriptor::new(WASM_LAYER, &wasm)],
    };
    let manifest_bytes = serde_json::to_vec(&manifest).expect("manifests always serialise");
    let manifest_digest = sha256_digest(&manifest_bytes);
    for blob in [&wasm, &config_bytes, &manifest_bytes] {
        staging.put_blob(blob)?;
    }

    Ok(Prepared {
        record: ImageRecord {
            id: manifest.config.digest.clone(),
            repo_tags: vec![label],
            repo_digests: vec![format!("{}@{manifest_digest}", reference.name())],
            size: (wasm.len() + config_bytes.len()) as u64,
            kind: kind.as_str().to_owned(),
            wasm_digest: wasm_digest.clone(),
            config: ImageConfig::from_oci(Some(config.config)),
            created_unix_nanos: 0,
            blobs: vec![manifest_digest, manifest.config.digest, wasm_digest],
            snapshots: Vec::new(),
        },
    })
}

/// `localhost/<file stem, lowercased>:latest`.
fn default_name(path: &Path) -> Result<Reference, Error> {
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().to_lowercase())
        .unwrap_or_default();
    let name = format!("localhost/{stem}");
    normalize(&name).map_err(|e| match e {
        Error::InvalidReference { reference, reason } => Error::InvalidReference {
            reference,
            reason: format!("{reason} (derived from the file name; pass a name to import under)"),
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{COMPONENT, module, write_file};

    #[test]
    fn imports_a_module_as_a_one_layer_image() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let bytes = module("hello");
        let path = write_file(dir.path(), "Hello.wasm", &bytes);
        let images = store.import(&path, None).unwrap();
        assert_eq!(images.len(), 1);
        let image = &images[0];
        assert_eq!(image.repo_tags, ["localhost/hello:latest"]);
        assert!(
            image.repo_digests[0].starts_with("localhost/hello@sha256:"),
            "{:?}",
            image.repo_digests
        );
        assert_eq!(
            (image.kind.as_str(), image.wasm_digest.clone()),
            ("module", sha256_digest(&bytes))
        );
        assert_eq!(image.config.entrypoint, ["/Hello.wasm"]);
        assert!(image.size > bytes.len() as u64);
        assert!(image.created_unix_nanos > 0);

        let config = fs::read(store.blobs_dir.join(image.id_hex())).unwrap();
        let config: serde_json::Value = serde_json::from_slice(&config).unwrap();
        assert_eq!(
            (config["os"].as_str(), config["architecture"].as_str()),
            (Some("wasi"), Some("wasm"))
        );
        let manifest_hex = image.repo_digests[0].rsplit_once(':').unwrap().1;
        let manifest: serde_json::Value =
            serde_json::from_slice(&fs::read(store.blobs_dir.join(manifest_hex)).unwrap()).unwrap();
        assert_eq!(manifest["mediaType"], MANIFEST_V1);
        assert_eq!(manifest["config"]["mediaType"], CONFIG_V1);
        assert_eq!(manifest["layers"][0]["mediaType"], "application/wasm");
        assert!(store.compiled_path(image).unwrap().exists());
    }

    #[test]
    fn reimport_is_idempotent_and_merges_tags() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let path = write_file(dir.path(), "app.wasm", &module("again"));
        let first = store.import(&path, None).unwrap().remove(0);
        let compiled = store.compiled_path(&first).unwrap();
        let mtime = fs::metadata(&compiled).unwrap().modified().unwrap();
        let second = store.import(&path, None).unwrap().remove(0);
        assert_eq!(second, first);
        let third = store
            .import(&path, Some("ghcr.io/me/app:v1"))
            .unwrap()
            .remove(0);
        assert_eq!(third.id, first.id);
        assert_eq!(third.created_unix_nanos, first.created_unix_nanos);
        assert_eq!(
            third.repo_tags,
            ["localhost/app:latest", "ghcr.io/me/app:v1"]
        );
        assert_eq!(third.repo_digests.len(), 2);
        assert_eq!(store.list().unwrap(), vec![third]);
        assert_eq!(
            fs::metadata(&compiled).unwrap().modified().unwrap(),
            mtime,
            "compiled once"
        );
    }

    #[test]
    fn imports_a_component() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let path = write_file(dir.path(), "comp.wasm", COMPONENT);
        let image = store.import(&path, Some("comp")).unwrap().remove(0);
        assert_eq!(image.kind, "component");
        let engine = &store.engine("x").unwrap().0;
        wasmlet_wasm::load_component(engine, &store.compiled_path(&image).unwrap()).unwrap();
    }

    #[test]
    fn a_module_that_does_not_compile_is_not_recorded() {
        let dir = tempfile::tempdir().unwrap();
        let store = ImageStore::open(dir.path().join("s")).unwrap();
        let path = write_file(dir.path(), "bad.wasm", b"\0asm\x01\0\0\0\xff\xff");
        let err = store.import(&path, None).unwrap_err();
        assert!(
            matches!(&err, Error::Compile { image, .. } if image == "localhost/bad:latest"),
            "{err}"
        );
        assert!(store.list().unwrap().is_empty());
        for dir in [&store.blobs_dir, &store.compiled_dir, &store.tmp_dir] {
            assert_eq!(fs::read_dir(dir).unwrap().count(), 0, "{}", dir.display());
        }
        let bad_version = write_file(dir.path(), "v2.wasm", b"\0asm\x02\0\0\0");
        assert!(matches!(
            store.import(&bad_version, None),
            Err(Error::NotWasm { .. })
        ));
        let odd = write_file(dir.path(), "my app.wasm", &module("odd"));
        let err = store.import(&odd, None).unwrap_err();
        assert!(err.to_string().contains("localhost/my app"), "{err}");
        store.import(&odd, Some("my-app")).unwrap();
    }
}
