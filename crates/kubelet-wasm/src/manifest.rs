//! Manifests: YAML (or JSON) documents that become Pods, ConfigMaps and Secrets, with the API
//! server's defaulting and the part of its validation that kubelet applies to static pods
//! (`pkg/kubelet/config/common.go`: decode, default, `ValidatePodCreate`). Unknown fields are
//! dropped, as kubelet's non-strict decoder does, and reported as warnings.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{ConfigMap, Pod, Secret};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::{Error, Result};

/// One decoded document.
#[derive(Debug, Clone)]
pub enum Object {
    Pod(Box<Pod>),
    ConfigMap(ConfigMap),
    Secret(Secret),
}

/// A document that decoded, with the unknown fields it had.
#[derive(Debug, Clone)]
pub struct Decoded {
    pub object: Object,
    pub warnings: Vec<String>,
}

/// Decodes every document of `text` (`file` names it in errors).
pub fn decode_all(file: &str, text: &str) -> Result<Vec<Decoded>> {
    let mut out = Vec::new();
    for doc in serde_yaml::Deserializer::from_str(text) {
        let value: serde_yaml::Value = serde::Deserialize::deserialize(doc)
            .map_err(|e| Error::manifest(file, format!("invalid YAML: {e}")))?;
        if value.is_null() {
            continue;
        }
        let json: Value = serde_json::to_value(&value)
            .map_err(|e| Error::manifest(file, format!("invalid document: {e}")))?;
        out.push(decode_one(file, json)?);
    }
    Ok(out)
}

fn decode_one(file: &str, json: Value) -> Result<Decoded> {
    let kind = json
        .get("kind")
        .and_then(Value::as_str)
        .unwrap_or("Pod")
        .to_string();
    let bad = |e: serde_json::Error| Error::manifest(file, format!("invalid {kind}: {e}"));
    let (object, back) = match kind.as_str() {
        "Pod" => {
            let pod: Pod = serde_json::from_value(json.clone()).map_err(bad)?;
            let back = serde_json::to_value(&pod).map_err(bad)?;
            (Object::Pod(Box::new(pod)), back)
        }
        "ConfigMap" => {
            let cm: ConfigMap = serde_json::from_value(json.clone()).map_err(bad)?;
            let back = serde_json::to_value(&cm).map_err(bad)?;
            (Object::ConfigMap(cm), back)
        }
        "Secret" => {
            let s: Secret = serde_json::from_value(json.clone()).map_err(bad)?;
            let back = serde_json::to_value(&s).map_err(bad)?;
            (Object::Secret(s), back)
        }
        other => {
            return Err(Error::manifest(
                file,
                format!("unsupported kind {other:?} (Pod, ConfigMap or Secret)"),
            ));
        }
    };
    let mut warnings = Vec::new();
    unknown_fields(&json, &back, "", &mut warnings);
    Ok(Decoded { object, warnings })
}

/// Paths present in what was read but not in what the typed model kept.
fn unknown_fields(input: &Value, kept: &Value, path: &str, out: &mut Vec<String>) {
    match (input, kept) {
        (Value::Object(i), Value::Object(k)) => {
            for (key, v) in i {
                let p = if path.is_empty() {
                    key.clone()
                } else {
                    format!("{path}.{key}")
                };
                match k.get(key) {
                    Some(kv) => unknown_fields(v, kv, &p, out),
                    None if !v.is_null() => out.push(format!("unknown field \"{p}\"")),
                    None => {}
                }
            }
        }
        (Value::Array(i), Value::Array(k)) => {
            for (n, (iv, kv)) in i.iter().zip(k).enumerate() {
                unknown_fields(iv, kv, &format!("{path}[{n}]"), out);
            }
        }
        _ => {}
    }
}

/// The API server's defaults that the pod logic relies on.
pub fn set_defaults(pod: &mut Pod) {
    let ns = pod.metadata.namespace.get_or_insert_with(String::new);
    if ns.is_empty() {
        *ns = "default".into();
    }
    let spec = pod.spec.get_or_insert_with(Default::default);
    spec.restart_policy.get_or_insert_with(|| "Always".into());
    spec.termination_grace_period_seconds.get_or_insert(30);
    for c in spec
        .init_containers
        .iter_mut()
        .flatten()
        .chain(spec.containers.iter_mut())
    {
        let image = c.image.clone().unwrap_or_default();
        c.image_pull_policy
            .get_or_insert_with(|| default_pull_policy(&image).into());
        for probe in [
            &mut c.liveness_probe,
            &mut c.readiness_probe,
            &mut c.startup_probe,
        ]
        .into_iter()
        .flatten()
        {
            probe.timeout_seconds.get_or_insert(1);
            probe.period_seconds.get_or_insert(10);
            probe.success_threshold.get_or_insert(1);
            probe.failure_threshold.get_or_insert(3);
        }
    }
}

/// `Always` for `:latest` or an untagged reference, else `IfNotPresent` (the API server's rule).
pub fn default_pull_policy(image: &str) -> &'static str {
    let name = image.rsplit('/').next().unwrap_or(image);
    if image.contains('@') {
        return "IfNotPresent";
    }
    match name.rsplit_once(':') {
        Some((_, "latest")) | None => "Always",
        Some(_) => "IfNotPresent",
    }
}

/// The subset of `ValidatePodCreate` that matters to a node: names, containers, images, volumes,
/// restart policy, one handler per probe. Returns every problem, as the API server does.
pub fn validate(pod: &Pod) -> Vec<String> {
    let mut errs = Vec::new();
    let name = pod.metadata.name.clone().unwrap_or_default();
    if name.is_empty() {
        errs.push("metadata.name: Required value".into());
    } else if !is_dns_subdomain(&name) {
        errs.push(format!(
            "metadata.name: Invalid value: {name:?}: must be a lowercase RFC 1123 subdomain"
        ));
    }
    let Some(spec) = pod.spec.as_ref() else {
        errs.push("spec: Required value".into());
        return errs;
    };
    if spec.containers.is_empty() {
        errs.push("spec.containers: Required value".into());
    }
    let volumes: BTreeSet<&str> = spec
        .volumes
        .iter()
        .flatten()
        .map(|v| v.name.as_str())
        .collect();
    if volumes.len() != spec.volumes.as_ref().map_or(0, Vec::len) {
        errs.push("spec.volumes: Duplicate value: volume names must be unique".into());
    }
    let mut names = BTreeSet::new();
    let groups = [
        (
            "initContainers",
            spec.init_containers.as_deref().unwrap_or_default(),
        ),
        ("containers", spec.containers.as_slice()),
    ];
    for (field, list) in groups {
        for (i, c) in list.iter().enumerate() {
            let at = format!("spec.{field}[{i}]");
            if c.name.is_empty() {
                errs.push(format!("{at}.name: Required value"));
            } else if !is_dns_label(&c.name) {
                errs.push(format!(
                    "{at}.name: Invalid value: {:?}: must be a lowercase RFC 1123 label",
                    c.name
                ));
            } else if !names.insert(c.name.as_str()) {
                errs.push(format!("{at}.name: Duplicate value: {:?}", c.name));
            }
            if c.image.as_deref().unwrap_or("").trim().is_empty() {
                errs.push(format!("{at}.image: Required value"));
            }
            if let Some(p) = c.image_pull_policy.as_deref()
                && !["Always", "IfNotPresent", "Never"].contains(&p)
            {
                errs.push(format!("{at}.imagePullPolicy: Unsupported value: {p:?}"));
            }
            for (j, m) in c.volume_mounts.iter().flatten().enumerate() {
                if !volumes.contains(m.name.as_str()) {
                    errs.push(format!(
                        "{at}.volumeMounts[{j}].name: Not found: {:?}",
                        m.name
                    ));
                }
            }
            let probes = [
                ("livenessProbe", &c.liveness_probe),
                ("readinessProbe", &c.readiness_probe),
                ("startupProbe", &c.startup_probe),
            ];
            for (pname, probe) in probes {
                if let Some(p) = probe {
                    let handlers = [
                        p.exec.is_some(),
                        p.http_get.is_some(),
                        p.tcp_socket.is_some(),
                        p.grpc.is_some(),
                    ];
                    if handlers.iter().filter(|h| **h).count() != 1 {
                        errs.push(format!(
                            "{at}.{pname}: Required value: must specify exactly one handler type"
                        ));
                    }
                    if field == "initContainers" {
                        errs.push(format!(
                            "{at}.{pname}: Forbidden: may not be set for init containers"
                        ));
                    }
                }
            }
        }
    }
    if let Some(p) = spec.restart_policy.as_deref()
        && !["Always", "OnFailure", "Never"].contains(&p)
    {
        errs.push(format!("spec.restartPolicy: Unsupported value: {p:?}"));
    }
    errs
}

fn is_dns_label(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 63
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !s.starts_with('-')
        && !s.ends_with('-')
}

fn is_dns_subdomain(s: &str) -> bool {
    s.len() <= 253 && s.split('.').all(is_dns_label)
}

/// A static pod's uid, as kubelet makes one: a hash of where it came from and what it says, so the
/// same file gives the same uid after a restart (and adoption finds the pod), and a changed file a
/// new pod.
pub fn static_uid(source: &str, node_name: &str, text: &str) -> String {
    let mut h = Sha256::new();
    h.update(source.as_bytes());
    h.update([0]);
    h.update(node_name.as_bytes());
    h.update([0]);
    h.update(text.as_bytes());
    hex::encode(&h.finalize()[..16])
}

/// `namespace/name` of a pod.
pub fn full_name(pod: &Pod) -> String {
    format!(
        "{}/{}",
        pod.metadata.namespace.as_deref().unwrap_or("default"),
        pod.metadata.name.as_deref().unwrap_or("")
    )
}

/// Keys and values of a ConfigMap or Secret (Secret `data` decoded, `stringData` merged over it).
pub fn data_of(object: &Object) -> BTreeMap<String, Vec<u8>> {
    let mut out = BTreeMap::new();
    match object {
        Object::ConfigMap(cm) => {
            for (k, v) in cm.data.iter().flatten() {
                out.insert(k.clone(), v.clone().into_bytes());
            }
            for (k, v) in cm.binary_data.iter().flatten() {
                out.insert(k.clone(), v.0.clone());
            }
        }
        Object::Secret(s) => {
            for (k, v) in s.data.iter().flatten() {
                out.insert(k.clone(), v.0.clone());
            }
            for (k, v) in s.string_data.iter().flatten() {
                out.insert(k.clone(), v.clone().into_bytes());
            }
        }
        Object::Pod(_) => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(text: &str) -> Pod {
        match decode_all("t.yaml", text).unwrap().remove(0).object {
            Object::Pod(p) => *p,
            o => panic!("not a pod: {o:?}"),
        }
    }

    #[test]
    fn defaults_like_the_api_server() {
        let mut p = pod(
            "metadata: {name: a}\nspec:\n  containers:\n  - {name: c, image: 'x:v1', livenessProbe: {tcpSocket: {port: 80}}}\n  - {name: d, image: x}\n",
        );
        set_defaults(&mut p);
        let spec = p.spec.as_ref().unwrap();
        assert_eq!(p.metadata.namespace.as_deref(), Some("default"));
        assert_eq!(spec.restart_policy.as_deref(), Some("Always"));
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(
            spec.containers[0].image_pull_policy.as_deref(),
            Some("IfNotPresent")
        );
        assert_eq!(
            spec.containers[1].image_pull_policy.as_deref(),
            Some("Always")
        );
        let probe = spec.containers[0].liveness_probe.as_ref().unwrap();
        assert_eq!(
            (
                probe.period_seconds,
                probe.failure_threshold,
                probe.timeout_seconds
            ),
            (Some(10), Some(3), Some(1))
        );
        assert_eq!(default_pull_policy("localhost:5000/app"), "Always");
        assert_eq!(
            default_pull_policy("localhost:5000/app:1.0"),
            "IfNotPresent"
        );
    }

    #[test]
    fn validation_reports_every_problem() {
        let p = pod(
            "metadata: {name: Bad_Name}\nspec:\n  containers:\n  - {name: c, image: x, volumeMounts: [{name: v, mountPath: /v}]}\n  - {name: c, image: ''}\n",
        );
        let errs = validate(&p);
        assert!(
            errs.iter().any(|e| e.starts_with("metadata.name: Invalid")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("volumeMounts[0].name: Not found")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("containers[1].name: Duplicate")),
            "{errs:?}"
        );
        assert!(
            errs.iter()
                .any(|e| e.contains("containers[1].image: Required")),
            "{errs:?}"
        );
        assert_eq!(
            validate(&pod("metadata: {name: ok}\nspec: {containers: []}\n")),
            vec!["spec.containers: Required value"]
        );
    }

    #[test]
    fn unknown_fields_are_warnings_and_bad_yaml_an_error() {
        let d = decode_all("t.yaml", "metadata: {name: a, colour: red}\nspec:\n  containers: [{name: c, image: x, sparkle: true}]\n").unwrap();
        assert_eq!(
            d[0].warnings,
            vec![
                "unknown field \"metadata.colour\"",
                "unknown field \"spec.containers[0].sparkle\""
            ]
        );
        let e = decode_all("t.yaml", "spec: [unclosed").unwrap_err();
        assert!(e.to_string().contains("invalid YAML"), "{e}");
        let two = decode_all("t.yaml", "kind: ConfigMap\nmetadata: {name: cm}\ndata: {k: v}\n---\nkind: Pod\nmetadata: {name: p}\nspec: {containers: [{name: c, image: x}]}\n").unwrap();
        assert_eq!(
            data_of(&two[0].object).get("k").map(Vec::as_slice),
            Some(&b"v"[..])
        );
        assert!(matches!(two[1].object, Object::Pod(_)));
    }

    #[test]
    fn static_uids_follow_the_content() {
        assert_eq!(static_uid("f", "n", "a"), static_uid("f", "n", "a"));
        assert_ne!(static_uid("f", "n", "a"), static_uid("f", "n", "b"));
        assert_eq!(static_uid("f", "n", "a").len(), 32);
    }
}
