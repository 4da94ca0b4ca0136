//! The Pod of `wasmlet run`: read with `wasmlet node`'s manifest rules (crates/kubelet-wasm:
//! the same model, defaults and validation), plus what only `run` does: a pod that sets no
//! `restartPolicy` runs once (`Never`), images default to `IfNotPresent` (a local tool uses the
//! local store), `.wasm` paths are imported, and ConfigMaps/Secrets in the same file feed the pod.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use k8s_openapi::api::core::v1::Pod;
use wasmlet_image::ImageStore;
use wasmlet_kubelet::manifest::{self, Object};
use wasmlet_kubelet::objects::Kind;

/// A pod ready for the pod logic, and the objects it may refer to.
pub struct RunPod {
    pub pod: Pod,
    pub source: String,
    pub objects: Vec<(Kind, String, String, BTreeMap<String, Vec<u8>>)>,
}

impl RunPod {
    pub fn load(path: &Path) -> anyhow::Result<RunPod> {
        let source = path.display().to_string();
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {source}"))?;
        let mut pod = None;
        let mut objects = Vec::new();
        for d in manifest::decode_all(&source, &text)? {
            for w in &d.warnings {
                eprintln!("warning: {source}: {w}");
            }
            match d.object {
                Object::Pod(p) if pod.is_none() => pod = Some(*p),
                Object::Pod(_) => bail!("{source}: more than one Pod; `wasmlet run` runs one"),
                Object::ConfigMap(cm) => {
                    let data = manifest::data_of(&Object::ConfigMap(cm.clone()));
                    let ns = cm
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into());
                    objects.push((
                        Kind::ConfigMap,
                        ns,
                        cm.metadata.name.clone().unwrap_or_default(),
                        data,
                    ));
                }
                Object::Secret(s) => {
                    let data = manifest::data_of(&Object::Secret(s.clone()));
                    let ns = s
                        .metadata
                        .namespace
                        .clone()
                        .unwrap_or_else(|| "default".into());
                    objects.push((
                        Kind::Secret,
                        ns,
                        s.metadata.name.clone().unwrap_or_default(),
                        data,
                    ));
                }
            }
        }
        let mut pod = pod.with_context(|| format!("{source}: no Pod in the file"))?;
        if pod.metadata.name.as_deref().unwrap_or("").is_empty() {
            pod.metadata.name = Some(
                path.file_stem()
                    .and_then(|s| s.to_str())
                    .unwrap_or("pod")
                    .to_string(),
            );
        }
        let spec = pod.spec.get_or_insert_with(Default::default);
        spec.restart_policy.get_or_insert_with(|| "Never".into());
        for c in spec
            .init_containers
            .iter_mut()
            .flatten()
            .chain(spec.containers.iter_mut())
        {
            c.image_pull_policy
                .get_or_insert_with(|| "IfNotPresent".into());
        }
        manifest::set_defaults(&mut pod);
        let errs = manifest::validate(&pod);
        if !errs.is_empty() {
            bail!("{source}: invalid pod: {}", errs.join("; "));
        }
        if pod.metadata.uid.as_deref().unwrap_or("").is_empty() {
            pod.metadata.uid = Some(format!("{:032x}", rand::random::<u128>()));
        }
        Ok(RunPod {
            pod,
            source,
            objects,
        })
    }
}

/// Replaces `image:` values that name a `.wasm` file (absolute, or relative to the manifest) with
/// the imported image's id.
pub fn import_wasm_paths(pod: &mut Pod, images_dir: &Path, base: &Path) -> anyhow::Result<()> {
    let mut store: Option<ImageStore> = None;
    let spec = pod.spec.as_mut().context("pod has no spec")?;
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        let image = c.image.clone().unwrap_or_default();
        let candidate = base.join(&image);
        let path = if Path::new(&image).is_file() {
            PathBuf::from(&image)
        } else {
            candidate
        };
        if image.ends_with(".wasm") && path.is_file() {
            let store = match &mut store {
                Some(s) => s,
                None => store.insert(
                    ImageStore::open(images_dir)
                        .map_err(|e| anyhow::anyhow!(wasmlet_cri::chain(&e)))?,
                ),
            };
            let images = store
                .import(&path, None)
                .map_err(|e| anyhow::anyhow!(wasmlet_cri::chain(&e)))?;
            let imported = images.first().context("import produced no image")?;
            tracing::info!(path = %path.display(), image = %imported.id, "imported");
            c.image = Some(imported.id.clone());
            c.image_pull_policy = Some("Never".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn run_defaults_and_validation() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("p.yaml");
        std::fs::write(&good, "spec:\n  containers:\n  - name: a\n    image: x:latest\n    volumeMounts: [{name: v, mountPath: /v}]\n  volumes: [{name: v, emptyDir: {}}]\n").unwrap();
        let run = RunPod::load(&good).unwrap();
        let spec = run.pod.spec.as_ref().unwrap();
        assert_eq!(run.pod.metadata.name.as_deref(), Some("p"));
        assert_eq!(run.pod.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("IfNotPresent")
        );
        let bad = dir.path().join("b.yaml");
        std::fs::write(&bad, "spec:\n  containers:\n  - name: a\n    image: x\n    volumeMounts: [{name: nope, mountPath: /v}]\n").unwrap();
        let e = format!("{:#}", RunPod::load(&bad).err().unwrap());
        assert!(e.contains("nope"), "{e}");
    }
}
