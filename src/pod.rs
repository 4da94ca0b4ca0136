//! The part of a Kubernetes Pod manifest that `wasmlet run` understands: containers (image,
//! command, args, env values, working dir, volume mounts, memory limit) and hostPath / emptyDir
//! volumes. Other fields are accepted and ignored, as a stock kubelet ignores what it does not use.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, bail};
use serde::Deserialize;

#[derive(Debug, Deserialize)]
pub struct Pod {
    #[serde(default)]
    pub metadata: Metadata,
    pub spec: PodSpec,
}

#[derive(Debug, Default, Deserialize)]
pub struct Metadata {
    #[serde(default)]
    pub name: String,
    #[serde(default)]
    pub namespace: String,
    #[serde(default)]
    pub uid: String,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct PodSpec {
    pub containers: Vec<Container>,
    /// The node's network instead of the pod's own namespace (kubelet's default: false).
    #[serde(default)]
    pub host_network: bool,
    #[serde(default)]
    pub volumes: Vec<Volume>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Container {
    pub name: String,
    pub image: String,
    #[serde(default)]
    pub command: Vec<String>,
    #[serde(default)]
    pub args: Vec<String>,
    #[serde(default)]
    pub env: Vec<EnvVar>,
    #[serde(default)]
    pub working_dir: String,
    #[serde(default)]
    pub volume_mounts: Vec<VolumeMount>,
    #[serde(default)]
    pub resources: Resources,
}

#[derive(Debug, Deserialize)]
pub struct EnvVar {
    pub name: String,
    #[serde(default)]
    pub value: String,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct VolumeMount {
    pub name: String,
    pub mount_path: String,
    #[serde(default)]
    pub read_only: bool,
}

#[derive(Debug, Default, Deserialize)]
pub struct Resources {
    #[serde(default)]
    pub requests: BTreeMap<String, String>,
    #[serde(default)]
    pub limits: BTreeMap<String, String>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Volume {
    pub name: String,
    pub host_path: Option<HostPath>,
    pub empty_dir: Option<serde_yaml::Value>,
}

#[derive(Debug, Deserialize)]
pub struct HostPath {
    pub path: String,
}

impl Pod {
    pub fn load(path: &Path) -> anyhow::Result<Pod> {
        let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
        let mut pod: Pod = serde_yaml::from_str(&text).with_context(|| format!("parsing {}", path.display()))?;
        if pod.metadata.name.is_empty() {
            pod.metadata.name = path.file_stem().and_then(|s| s.to_str()).unwrap_or("pod").to_string();
        }
        if pod.metadata.namespace.is_empty() {
            pod.metadata.namespace = "default".into();
        }
        if pod.spec.containers.is_empty() {
            bail!("{}: spec.containers is empty", path.display());
        }
        for (i, c) in pod.spec.containers.iter().enumerate() {
            if c.name.is_empty() || c.image.is_empty() {
                bail!("{}: spec.containers[{i}] needs a name and an image", path.display());
            }
            for m in &c.volume_mounts {
                if !pod.spec.volumes.iter().any(|v| v.name == m.name) {
                    bail!("{}: container {} mounts unknown volume {:?}", path.display(), c.name, m.name);
                }
            }
        }
        Ok(pod)
    }
}

/// Parses a Kubernetes CPU quantity (`500m`, `1`, `0.25`) into millicores.
pub fn parse_cpu(q: &str) -> anyhow::Result<i64> {
    let q = q.trim();
    if let Some(m) = q.strip_suffix('m') {
        return m.parse::<i64>().with_context(|| format!("bad CPU quantity {q:?}"));
    }
    let cores: f64 = q.parse().with_context(|| format!("bad CPU quantity {q:?}"))?;
    Ok((cores * 1000.0).ceil() as i64)
}

/// Parses a Kubernetes memory quantity (`64Mi`, `1G`, `500000`) into bytes.
pub fn parse_memory(q: &str) -> anyhow::Result<i64> {
    let q = q.trim();
    let split = q.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(q.len());
    let (num, unit) = q.split_at(split);
    let n: f64 = num.parse().with_context(|| format!("bad quantity {q:?}"))?;
    let mult: f64 = match unit {
        "" => 1.0,
        "k" => 1e3,
        "M" => 1e6,
        "G" => 1e9,
        "T" => 1e12,
        "Ki" => 1024.0,
        "Mi" => 1024.0 * 1024.0,
        "Gi" => 1024.0 * 1024.0 * 1024.0,
        "Ti" => 1024f64.powi(4),
        _ => bail!("bad quantity {q:?}: unknown unit {unit:?}"),
    };
    Ok((n * mult).ceil() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_quantities() {
        assert_eq!(parse_cpu("500m").unwrap(), 500);
        assert_eq!(parse_cpu("1").unwrap(), 1000);
        assert_eq!(parse_cpu("0.25").unwrap(), 250);
        assert!(parse_cpu("lots").is_err());
    }

    #[test]
    fn memory_quantities() {
        assert_eq!(parse_memory("64Mi").unwrap(), 64 << 20);
        assert_eq!(parse_memory("1G").unwrap(), 1_000_000_000);
        assert_eq!(parse_memory("1.5Ki").unwrap(), 1536);
        assert_eq!(parse_memory("123").unwrap(), 123);
        assert!(parse_memory("12Q").is_err());
        assert!(parse_memory("Mi").is_err());
    }

    #[test]
    fn loads_a_pod_and_checks_mounts() {
        let dir = tempfile::tempdir().unwrap();
        let good = dir.path().join("p.yaml");
        std::fs::write(&good, "spec:\n  containers:\n  - name: a\n    image: x\n    volumeMounts: [{name: v, mountPath: /v}]\n  volumes: [{name: v, emptyDir: {}}]\n").unwrap();
        let pod = Pod::load(&good).unwrap();
        assert_eq!(pod.metadata.name, "p");
        assert_eq!(pod.metadata.namespace, "default");
        let bad = dir.path().join("b.yaml");
        std::fs::write(&bad, "spec:\n  containers:\n  - name: a\n    image: x\n    volumeMounts: [{name: nope, mountPath: /v}]\n").unwrap();
        assert!(format!("{:#}", Pod::load(&bad).unwrap_err()).contains("nope"));
    }
}
