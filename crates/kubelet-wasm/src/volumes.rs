//! A pod's volumes on the node: emptyDir and ConfigMap/Secret volumes as directories under the
//! pod's own directory (`<root>/pods/<uid>/volumes/<kind>/<name>`), hostPath with its `type`
//! checks, and a container's `volumeMounts` turned into CRI mounts.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::{Container, KeyToPath, Pod};

use crate::objects::{Kind, Objects};
use crate::{Error, Result};

/// Makes every volume of the pod under `pod_dir` and returns each one's host path by name.
pub fn prepare(pod: &Pod, pod_dir: &Path, objects: &Objects) -> Result<BTreeMap<String, PathBuf>> {
    let ns = pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut out = BTreeMap::new();
    for v in pod
        .spec
        .as_ref()
        .and_then(|s| s.volumes.as_ref())
        .into_iter()
        .flatten()
    {
        let path = if let Some(h) = &v.host_path {
            host_path(&h.path, h.type_.as_deref().unwrap_or(""))?
        } else if v.empty_dir.is_some() {
            let dir = pod_dir.join("volumes/empty-dir").join(&v.name);
            mkdir(&dir)?;
            dir
        } else if let Some(cm) = &v.config_map {
            let data = objects
                .get(Kind::ConfigMap, ns, &cm.name, cm.optional.unwrap_or(false))?
                .unwrap_or_default();
            let dir = pod_dir.join("volumes/configmap").join(&v.name);
            project(&dir, &data, cm.items.as_deref(), cm.default_mode)?;
            dir
        } else if let Some(s) = &v.secret {
            let name = s.secret_name.clone().unwrap_or_default();
            let data = objects
                .get(Kind::Secret, ns, &name, s.optional.unwrap_or(false))?
                .unwrap_or_default();
            let dir = pod_dir.join("volumes/secret").join(&v.name);
            project(
                &dir,
                &data,
                s.items.as_deref(),
                s.default_mode.or(Some(0o644)),
            )?;
            dir
        } else {
            return Err(Error::Config(format!(
                "volume {:?}: only emptyDir, hostPath, configMap and secret are supported",
                v.name
            )));
        };
        out.insert(v.name.clone(), path);
    }
    Ok(out)
}

fn mkdir(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).map_err(Error::io(dir))
}

fn host_path(path: &str, type_: &str) -> Result<PathBuf> {
    let p = PathBuf::from(path);
    let fail = |what: &str| {
        Err(Error::Config(format!(
            "hostPath type check failed: {path} is not a {what}"
        )))
    };
    match type_ {
        "DirectoryOrCreate" => mkdir(&p)?,
        "FileOrCreate" => {
            if !p.exists() {
                if let Some(parent) = p.parent() {
                    mkdir(parent)?;
                }
                std::fs::File::create(&p).map_err(Error::io(&p))?;
            }
        }
        "Directory" if !p.is_dir() => return fail("directory"),
        "File" if !p.is_file() => return fail("file"),
        "Socket" | "CharDevice" | "BlockDevice" if !p.exists() => return fail(type_),
        _ => {}
    }
    Ok(p)
}

/// Writes the keys (or the listed items) as files, replacing what was there.
fn project(
    dir: &Path,
    data: &BTreeMap<String, Vec<u8>>,
    items: Option<&[KeyToPath]>,
    mode: Option<i32>,
) -> Result<()> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(Error::io(dir))?;
    }
    mkdir(dir)?;
    let files: Vec<(String, &Vec<u8>, Option<i32>)> = match items {
        Some(items) => items
            .iter()
            .map(|i| {
                data.get(&i.key)
                    .map(|v| (i.path.clone(), v, i.mode.or(mode)))
                    .ok_or_else(|| {
                        Error::Config(format!("configmap/secret has no key {:?}", i.key))
                    })
            })
            .collect::<Result<_>>()?,
        None => data.iter().map(|(k, v)| (k.clone(), v, mode)).collect(),
    };
    for (rel, bytes, mode) in files {
        if rel.split('/').any(|c| c == ".." || c.is_empty()) {
            return Err(Error::Config(format!("invalid projected path {rel:?}")));
        }
        let path = dir.join(&rel);
        if let Some(parent) = path.parent() {
            mkdir(parent)?;
        }
        std::fs::write(&path, bytes).map_err(Error::io(&path))?;
        if let Some(m) = mode {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(m as u32 & 0o777))
                .map_err(Error::io(&path))?;
        }
    }
    Ok(())
}

/// The container's `volumeMounts` as CRI mounts (ConfigMap and Secret volumes read-only, as kubelet).
pub fn mounts(
    pod: &Pod,
    c: &Container,
    volumes: &BTreeMap<String, PathBuf>,
) -> Result<Vec<cri::Mount>> {
    let specs = pod.spec.as_ref().and_then(|s| s.volumes.as_ref());
    let mut out = Vec::new();
    for m in c.volume_mounts.iter().flatten() {
        let base = volumes
            .get(&m.name)
            .ok_or_else(|| Error::Config(format!("volume {:?} not found", m.name)))?;
        let spec = specs.and_then(|v| v.iter().find(|v| v.name == m.name));
        let projected = spec.is_some_and(|v| v.config_map.is_some() || v.secret.is_some());
        let host = match m.sub_path.as_deref() {
            Some(s) if !s.is_empty() => {
                if s.split('/').any(|c| c == "..") || s.starts_with('/') {
                    return Err(Error::Config(format!("invalid subPath {s:?}")));
                }
                let p = base.join(s);
                if !projected && !p.exists() {
                    mkdir(&p)?;
                }
                p
            }
            _ => base.clone(),
        };
        out.push(cri::Mount {
            container_path: m.mount_path.clone(),
            host_path: host.display().to_string(),
            readonly: m.read_only.unwrap_or(false) || projected,
            ..Default::default()
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn volumes_become_directories_and_mounts() {
        let tmp = tempfile::tempdir().unwrap();
        let pod: Pod = serde_yaml::from_str(&format!(
            concat!(
                "metadata: {{name: p, namespace: ns}}\n",
                "spec:\n  containers:\n  - name: c\n    image: x\n    volumeMounts:\n",
                "    - {{name: scratch, mountPath: /tmp}}\n    - {{name: cfg, mountPath: /etc/app}}\n    - {{name: host, mountPath: /h, readOnly: true}}\n",
                "  volumes:\n  - {{name: scratch, emptyDir: {{}}}}\n",
                "  - {{name: cfg, configMap: {{name: app, items: [{{key: a, path: sub/a.txt}}]}}}}\n",
                "  - {{name: host, hostPath: {{path: {}, type: DirectoryOrCreate}}}}\n"
            ),
            tmp.path().join("made").display()
        ))
        .unwrap();
        let objects = Objects::default();
        let err = prepare(&pod, tmp.path(), &objects).unwrap_err();
        assert_eq!(err.to_string(), "configmap \"app\" not found");
        objects.put(
            Kind::ConfigMap,
            "ns",
            "app",
            BTreeMap::from([
                ("a".to_string(), b"A".to_vec()),
                ("b".to_string(), b"B".to_vec()),
            ]),
        );
        let vols = prepare(&pod, tmp.path(), &objects).unwrap();
        assert_eq!(std::fs::read(vols["cfg"].join("sub/a.txt")).unwrap(), b"A");
        assert!(!vols["cfg"].join("b").exists(), "only the listed items");
        assert!(tmp.path().join("made").is_dir());
        let m = mounts(&pod, &pod.spec.as_ref().unwrap().containers[0], &vols).unwrap();
        assert_eq!(
            m.iter()
                .map(|m| (m.container_path.as_str(), m.readonly))
                .collect::<Vec<_>>(),
            [("/tmp", false), ("/etc/app", true), ("/h", true)]
        );
    }
}
