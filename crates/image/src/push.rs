//! Pushing: a `.wasm` file as a Wasm OCI artifact (the CNCF TAG-Runtime layout that runwasi and
//! containerd pull: config `application/vnd.wasm.config.v0+json`, one `application/wasm` layer), and
//! the raw blob and manifest uploads it is made of, public for tools and tests that build other images.

use std::path::Path;
use std::sync::Arc;

use wasmlet_wasm::{ArtifactKind, detect_kind};

use crate::auth::Auth;
use crate::digest::{HashingWriter, sha256_digest};
use crate::error::{Error, io_err};
use crate::oci::{MANIFEST_V1, WASM_LAYER};
use crate::pull::ProgressFn;
use crate::reference::normalize;
use crate::registry::{Registry, RegistryOptions, Upload};

/// The config media type of a Wasm OCI artifact.
pub const WASM_CONFIG: &str = "application/vnd.wasm.config.v0+json";

/// How to push.
#[derive(Clone, Default)]
pub struct PushOptions {
    pub registry: RegistryOptions,
    /// Called as the Wasm layer uploads: digest, bytes so far, bytes in all.
    pub progress: Option<Arc<ProgressFn>>,
}

impl std::fmt::Debug for PushOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PushOptions")
            .field("registry", &self.registry)
            .finish_non_exhaustive()
    }
}

/// What a push published.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pushed {
    /// The normalised reference pushed to.
    pub reference: String,
    /// `sha256:` digest of the manifest.
    pub manifest_digest: String,
    /// `sha256:` digest of the Wasm layer.
    pub wasm_digest: String,
}

/// Pushes `wasm` to `reference` (a tag) as a Wasm OCI artifact.
///
/// ```no_run
/// use std::path::Path;
/// let pushed = wasmlet_image::push_wasm(Path::new("app.wasm"), "127.0.0.1:5000/app:v1", None, &Default::default())?;
/// println!("{}", pushed.manifest_digest);
/// # Ok::<(), wasmlet_image::Error>(())
/// ```
pub fn push_wasm(
    wasm: &Path,
    reference: &str,
    auth: Option<Auth>,
    opts: &PushOptions,
) -> Result<Pushed, Error> {
    let reference = normalize(reference)?;
    let Some(tag) = reference.tag.clone().filter(|_| reference.digest.is_none()) else {
        return Err(Error::invalid(
            &reference.to_string(),
            "push to a tag, not a digest",
        ));
    };
    let (digest, size, kind) = describe(wasm)?;
    let os = match kind {
        ArtifactKind::Module => "wasip1",
        ArtifactKind::Component => "wasip2",
    };
    let config = serde_json::to_vec(&serde_json::json!({
        "architecture": "wasm",
        "os": os,
        "layerDigests": [digest],
    }))
    .expect("serialises");
    let manifest = serde_json::to_vec(&serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_V1,
        "artifactType": WASM_CONFIG,
        "config": {"mediaType": WASM_CONFIG, "digest": sha256_digest(&config), "size": config.len()},
        "layers": [{"mediaType": WASM_LAYER, "digest": digest, "size": size}],
    }))
    .expect("serialises");
    let registry = Registry::new(&reference, auth, &opts.registry);
    registry.put_blob(&config)?;
    let progress = opts.progress.clone();
    let mut report = |done: u64| {
        if let Some(p) = &progress {
            p(&digest, done, size);
        }
    };
    registry.push_blob(&digest, Upload::File(wasm, &mut report))?;
    let manifest_digest = registry.put_manifest(&tag, MANIFEST_V1, &manifest)?;
    tracing::info!(image = %reference, digest = %manifest_digest, "pushed Wasm artifact");
    Ok(Pushed {
        reference: reference.to_string(),
        manifest_digest,
        wasm_digest: digest.clone(),
    })
}

impl Registry {
    /// Uploads `bytes` as a blob unless the repository has it; returns its digest.
    pub fn put_blob(&self, bytes: &[u8]) -> Result<String, Error> {
        let digest = sha256_digest(bytes);
        self.push_blob(&digest, Upload::Bytes(bytes))?;
        Ok(digest)
    }

    /// PUTs a manifest or index (`media_type`) under `tag`; returns its digest.
    pub fn put_manifest(&self, tag: &str, media_type: &str, bytes: &[u8]) -> Result<String, Error> {
        self.push_manifest(tag, media_type, bytes)?;
        Ok(sha256_digest(bytes))
    }
}

/// Digest, size and kind of the Wasm file at `path`, hashed streaming.
fn describe(path: &Path) -> Result<(String, u64, ArtifactKind), Error> {
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut head = [0u8; 8];
    use std::io::Read as _;
    file.read_exact(&mut head).map_err(io_err(path))?;
    let kind = detect_kind(&head)
        .map_err(|_| Error::not_wasm(path.display().to_string(), "bad magic number or version"))?;
    let mut file = std::fs::File::open(path).map_err(io_err(path))?;
    let mut hasher = HashingWriter::new(std::io::sink());
    std::io::copy(&mut file, &mut hasher).map_err(io_err(path))?;
    let (_, hex, size) = hasher.finish();
    Ok((format!("sha256:{hex}"), size, kind))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn describes_modules_and_components_and_refuses_the_rest() {
        let dir = tempfile::tempdir().unwrap();
        let module = dir.path().join("m.wasm");
        std::fs::write(&module, b"\0asm\x01\0\0\0").unwrap();
        let (digest, size, kind) = describe(&module).unwrap();
        assert_eq!(
            (digest, size, kind),
            (sha256_digest(b"\0asm\x01\0\0\0"), 8, ArtifactKind::Module)
        );
        let component = dir.path().join("c.wasm");
        std::fs::write(&component, b"\0asm\x0d\0\x01\0").unwrap();
        assert_eq!(describe(&component).unwrap().2, ArtifactKind::Component);
        let elf = dir.path().join("sh");
        std::fs::write(&elf, b"\x7fELF\x02\x01\x01\0").unwrap();
        assert!(matches!(describe(&elf), Err(Error::NotWasm { .. })));
    }

    #[test]
    fn pushing_to_a_digest_is_refused() {
        let err = push_wasm(
            Path::new("/nonexistent.wasm"),
            &format!("127.0.0.1:1/a@sha256:{}", "0".repeat(64)),
            None,
            &PushOptions::default(),
        )
        .unwrap_err();
        assert!(matches!(err, Error::InvalidReference { .. }), "{err}");
    }
}
