//! The OCI (and docker v2) JSON documents the store reads and writes: descriptors, indexes, manifests and
//! image configs, with the media types that matter to a Wasm runtime. Parsing is lenient about fields we
//! do not use; writing uses structs (never maps) so the bytes, and so the digests, are deterministic.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

pub(crate) const MANIFEST_V1: &str = "application/vnd.oci.image.manifest.v1+json";
pub(crate) const INDEX_V1: &str = "application/vnd.oci.image.index.v1+json";
pub(crate) const CONFIG_V1: &str = "application/vnd.oci.image.config.v1+json";
pub(crate) const DOCKER_MANIFEST_LIST: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// The layer media type of a `.wasm` file imported as an image.
pub(crate) const WASM_LAYER: &str = "application/wasm";
/// Layer media types whose blob is the Wasm binary itself.
pub(crate) const WASM_LAYERS: [&str; 3] = [
    WASM_LAYER,
    "application/vnd.wasm.content.layer.v1+wasm",
    "application/vnd.bytecodealliance.wasm.component.layer.v0+wasm",
];

/// Annotation naming a manifest in an image layout's index.json: a full reference or just a tag.
pub(crate) const REF_NAME: &str = "org.opencontainers.image.ref.name";
/// containerd's (and buildkit's) annotation carrying the full image name.
pub(crate) const CONTAINERD_IMAGE_NAME: &str = "io.containerd.image.name";

/// Manifests, configs and indexes larger than this are refused (containerd uses the same bound).
pub(crate) const MAX_JSON_BYTES: u64 = 4 << 20;

/// How a tar layer is compressed, by media type; `None` for a media type that is not a tar layer.
pub(crate) fn tar_layer_compression(media_type: &str) -> Option<Compression> {
    match media_type {
        "application/vnd.oci.image.layer.v1.tar"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar"
        | "application/vnd.docker.image.rootfs.diff.tar" => Some(Compression::None),
        "application/vnd.oci.image.layer.v1.tar+gzip"
        | "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip"
        | "application/vnd.docker.image.rootfs.diff.tar.gzip" => Some(Compression::Gzip),
        _ => None,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Compression {
    None,
    Gzip,
}

/// True for the platform a Wasm image declares (`wasi/wasm`; `wasip1`/`wasip2` as the Wasm OCI artifact
/// spec writes them).
pub(crate) fn is_wasm_platform(os: &str, architecture: &str) -> bool {
    architecture == "wasm" && matches!(os, "wasi" | "wasip1" | "wasip2")
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Descriptor {
    #[serde(default)]
    pub media_type: String,
    pub digest: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<Platform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub annotations: Option<BTreeMap<String, String>>,
}

impl Descriptor {
    pub(crate) fn new(media_type: &str, bytes: &[u8]) -> Self {
        Descriptor {
            media_type: media_type.to_owned(),
            digest: crate::digest::sha256_digest(bytes),
            size: bytes.len() as u64,
            platform: None,
            annotations: None,
        }
    }

    pub(crate) fn annotation(&self, key: &str) -> Option<&str> {
        self.annotations.as_ref()?.get(key).map(String::as_str)
    }

    pub(crate) fn is_index(&self) -> bool {
        self.media_type == INDEX_V1 || self.media_type == DOCKER_MANIFEST_LIST
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub(crate) struct Platform {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
}

/// An image index (index.json, a multi-platform index, a docker manifest list).
#[derive(Debug, Deserialize)]
pub(crate) struct Index {
    pub manifests: Vec<Descriptor>,
}

impl Index {
    /// The platforms its entries declare, `os/arch` comma-separated, for error messages.
    pub(crate) fn platforms(&self) -> String {
        self.manifests
            .iter()
            .filter_map(|d| d.platform.as_ref().map(|p| format!("{}/{}", p.os, p.architecture)))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// An image manifest (OCI or docker v2 schema 2).
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct Manifest {
    pub schema_version: u32,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub media_type: Option<String>,
    pub config: Descriptor,
    #[serde(default)]
    pub layers: Vec<Descriptor>,
}

/// The fields of an image config blob that the runtime needs.
#[derive(Debug, Default, Deserialize)]
pub(crate) struct ConfigBlob {
    #[serde(default)]
    pub architecture: String,
    #[serde(default)]
    pub os: String,
    #[serde(default)]
    pub config: Option<ContainerConfig>,
}

/// The `config` object of an image config. Every field may be `null` in the wild.
#[derive(Debug, Default, Serialize, Deserialize)]
pub(crate) struct ContainerConfig {
    #[serde(rename = "User", default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    #[serde(rename = "Env", default, skip_serializing_if = "Option::is_none")]
    pub env: Option<Vec<String>>,
    #[serde(
        rename = "Entrypoint",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub entrypoint: Option<Vec<String>>,
    #[serde(rename = "Cmd", default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    #[serde(
        rename = "WorkingDir",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub working_dir: Option<String>,
    #[serde(rename = "StopSignal", default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
}

/// The image config written for a `.wasm` file imported as an image. No `created` field: the same Wasm
/// under the same file name always gives the same config, so the same image id.
#[derive(Debug, Serialize)]
pub(crate) struct WasmConfigOut<'a> {
    pub architecture: &'a str,
    pub os: &'a str,
    pub config: ContainerConfig,
    pub rootfs: RootFs,
}

#[derive(Debug, Serialize)]
pub(crate) struct RootFs {
    #[serde(rename = "type")]
    pub kind: &'static str,
    pub diff_ids: Vec<String>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_docker_configs_with_nulls() {
        let c: ConfigBlob = serde_json::from_str(
            r#"{"architecture":"amd64","os":"linux","config":{"Env":null,"Cmd":["sh"],"Entrypoint":null}}"#,
        )
        .unwrap();
        let cc = c.config.unwrap();
        assert_eq!(
            (cc.cmd.unwrap(), cc.entrypoint, cc.env),
            (vec!["sh".to_owned()], None, None)
        );
        let empty: ConfigBlob = serde_json::from_str("{}").unwrap();
        assert!(!is_wasm_platform(&empty.os, &empty.architecture));
    }

    #[test]
    fn knows_the_media_types() {
        assert_eq!(
            tar_layer_compression("application/vnd.oci.image.layer.v1.tar"),
            Some(Compression::None)
        );
        assert_eq!(
            tar_layer_compression("application/vnd.docker.image.rootfs.diff.tar.gzip"),
            Some(Compression::Gzip)
        );
        assert_eq!(
            tar_layer_compression("application/vnd.oci.image.layer.v1.tar+zstd"),
            None
        );
        assert_eq!(tar_layer_compression(WASM_LAYER), None);
        assert!(is_wasm_platform("wasip2", "wasm") && !is_wasm_platform("linux", "wasm"));
    }

    #[test]
    fn descriptors_serialise_in_oci_order() {
        let d = Descriptor::new(WASM_LAYER, b"");
        let json = serde_json::to_string(&d).unwrap();
        assert!(
            json.starts_with(r#"{"mediaType":"application/wasm","digest":"sha256:e3b0"#),
            "{json}"
        );
        assert!(json.ends_with(r#""size":0}"#), "{json}");
    }
}
