//! Test helpers: tiny Wasm binaries and a builder for OCI image-layout directories.

use std::fs;
use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use crate::digest::{sha256_digest, sha256_hex};

/// The empty component (layer 1, version 0xd).
pub(crate) const COMPONENT: &[u8] = b"\0asm\x0d\0\x01\0";

/// An empty core module with a custom section named `name`, so each name gives distinct bytes.
pub(crate) fn module(name: &str) -> Vec<u8> {
    assert!(name.len() < 100);
    let mut bytes = b"\0asm\x01\0\0\0".to_vec();
    bytes.extend([0, name.len() as u8 + 1, name.len() as u8]);
    bytes.extend(name.as_bytes());
    bytes
}

pub(crate) fn write_file(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    fs::write(&path, bytes).unwrap();
    path
}

/// Writes blobs, manifests and indexes into an OCI image layout, then its index.json.
pub(crate) struct LayoutBuilder {
    pub dir: PathBuf,
}

impl LayoutBuilder {
    pub(crate) fn new(dir: PathBuf) -> Self {
        fs::create_dir_all(dir.join("blobs/sha256")).unwrap();
        fs::write(dir.join("oci-layout"), br#"{"imageLayoutVersion":"1.0.0"}"#).unwrap();
        LayoutBuilder { dir }
    }

    /// Stores `bytes`; returns its descriptor.
    pub(crate) fn blob(&self, media_type: &str, bytes: &[u8]) -> Value {
        fs::write(self.dir.join("blobs/sha256").join(sha256_hex(bytes)), bytes).unwrap();
        json!({"mediaType": media_type, "digest": sha256_digest(bytes), "size": bytes.len()})
    }

    pub(crate) fn blob_path(&self, desc: &Value) -> PathBuf {
        let digest = desc["digest"].as_str().unwrap();
        self.dir
            .join("blobs/sha256")
            .join(digest.strip_prefix("sha256:").unwrap())
    }

    /// An image manifest with `config` and `layers` (media type, bytes); returns its descriptor.
    pub(crate) fn image(&self, config: &Value, layers: &[(&str, &[u8])]) -> Value {
        let config = self.blob(
            "application/vnd.oci.image.config.v1+json",
            config.to_string().as_bytes(),
        );
        let layers: Vec<Value> = layers
            .iter()
            .map(|(mt, bytes)| self.blob(mt, bytes))
            .collect();
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": config,
            "layers": layers,
        });
        self.blob(
            "application/vnd.oci.image.manifest.v1+json",
            manifest.to_string().as_bytes(),
        )
    }

    /// A nested index of `entries`; returns its descriptor.
    pub(crate) fn index(&self, entries: &[Value]) -> Value {
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": entries});
        self.blob(
            "application/vnd.oci.image.index.v1+json",
            index.to_string().as_bytes(),
        )
    }

    /// Writes index.json listing `top`.
    pub(crate) fn finish(&self, top: &[Value]) -> &Path {
        let index = json!({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": top});
        fs::write(self.dir.join("index.json"), index.to_string()).unwrap();
        &self.dir
    }
}

pub(crate) fn annotated(mut desc: Value, key: &str, value: &str) -> Value {
    desc["annotations"] = json!({ key: value });
    desc
}

pub(crate) fn with_platform(mut desc: Value, os: &str, architecture: &str) -> Value {
    desc["platform"] = json!({"os": os, "architecture": architecture});
    desc
}

/// An image config for platform `os/architecture` running `entrypoint`.
pub(crate) fn config(os: &str, architecture: &str, entrypoint: &[&str]) -> Value {
    json!({"os": os, "architecture": architecture, "config": {"Entrypoint": entrypoint, "Env": ["A=1"], "WorkingDir": "/"}})
}
