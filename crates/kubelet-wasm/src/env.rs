//! A container's environment as kubelet makes it (`makeEnvironmentVariables`): `envFrom`
//! ConfigMaps/Secrets, then `env` in order — values with `$(VAR)` expansion, `fieldRef`
//! (metadata.*, spec.nodeName, spec.serviceAccountName, status.podIP, status.hostIP…),
//! `resourceFieldRef` (limits default to the node's allocatable), ConfigMap and Secret keys.
//! Also expands `$(VAR)` in command and args.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Container, Pod};

use crate::objects::{Kind, Objects};
use crate::resources::requirements;
use crate::{Error, Result, quantity};

/// What `fieldRef` and `resourceFieldRef` read besides the pod.
#[derive(Debug, Clone)]
pub struct EnvContext<'a> {
    pub pod: &'a Pod,
    pub pod_ip: &'a str,
    pub host_ip: &'a str,
    pub node_name: &'a str,
    pub node_cpu_millis: i64,
    pub node_memory_bytes: i64,
    pub objects: &'a Objects,
}

/// The container's variables, in order (later ones win on duplicate names, as in kubelet).
pub fn environment(c: &Container, ctx: &EnvContext<'_>) -> Result<Vec<(String, String)>> {
    let ns = ctx.pod.metadata.namespace.as_deref().unwrap_or("default");
    let mut vars: Vec<(String, String)> = Vec::new();
    let set = |vars: &mut Vec<(String, String)>, k: String, v: String| {
        vars.retain(|(n, _)| *n != k);
        vars.push((k, v));
    };
    for from in c.env_from.iter().flatten() {
        let prefix = from.prefix.clone().unwrap_or_default();
        let (kind, name, optional) = match (&from.config_map_ref, &from.secret_ref) {
            (Some(r), _) => (Kind::ConfigMap, r.name.clone(), r.optional.unwrap_or(false)),
            (None, Some(r)) => (Kind::Secret, r.name.clone(), r.optional.unwrap_or(false)),
            (None, None) => continue,
        };
        if let Some(data) = ctx.objects.get(kind, ns, &name, optional)? {
            for (k, v) in data {
                set(
                    &mut vars,
                    format!("{prefix}{k}"),
                    String::from_utf8_lossy(&v).into_owned(),
                );
            }
        }
    }
    for e in c.env.iter().flatten() {
        let value = if let Some(v) = &e.value {
            expand(v, &vars)
        } else if let Some(from) = &e.value_from {
            if let Some(f) = &from.field_ref {
                field_ref(&f.field_path, ctx)?
            } else if let Some(r) = &from.resource_field_ref {
                let target = match r.container_name.as_deref() {
                    Some(n) if !n.is_empty() => find_container(ctx.pod, n)?,
                    _ => c,
                };
                resource_field_ref(
                    target,
                    &r.resource,
                    r.divisor.as_ref().map(|d| d.0.as_str()),
                    ctx,
                )?
            } else if let Some(k) = &from.config_map_key_ref {
                match ctx.objects.key(
                    Kind::ConfigMap,
                    ns,
                    &k.name,
                    &k.key,
                    k.optional.unwrap_or(false),
                )? {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None => continue,
                }
            } else if let Some(k) = &from.secret_key_ref {
                match ctx.objects.key(
                    Kind::Secret,
                    ns,
                    &k.name,
                    &k.key,
                    k.optional.unwrap_or(false),
                )? {
                    Some(v) => String::from_utf8_lossy(&v).into_owned(),
                    None => continue,
                }
            } else {
                String::new()
            }
        } else {
            String::new()
        };
        set(&mut vars, e.name.clone(), value);
    }
    Ok(vars)
}

fn find_container<'a>(pod: &'a Pod, name: &str) -> Result<&'a Container> {
    let spec = pod
        .spec
        .as_ref()
        .ok_or_else(|| Error::Config("pod has no spec".into()))?;
    spec.containers
        .iter()
        .chain(spec.init_containers.iter().flatten())
        .find(|c| c.name == name)
        .ok_or_else(|| Error::Config(format!("resourceFieldRef: no container named {name:?}")))
}

fn field_ref(path: &str, ctx: &EnvContext<'_>) -> Result<String> {
    let m = &ctx.pod.metadata;
    let spec = ctx.pod.spec.as_ref();
    let label = |map: Option<&BTreeMap<String, String>>, key: &str| {
        map.and_then(|l| l.get(key)).cloned().unwrap_or_default()
    };
    let quoted = |p: &str, prefix: &str| {
        p.strip_prefix(prefix)
            .and_then(|k| k.strip_suffix("']"))
            .map(str::to_string)
    };
    Ok(match path {
        "metadata.name" => m.name.clone().unwrap_or_default(),
        "metadata.namespace" => m.namespace.clone().unwrap_or_default(),
        "metadata.uid" => m.uid.clone().unwrap_or_default(),
        "spec.nodeName" => ctx.node_name.to_string(),
        "spec.serviceAccountName" => spec
            .and_then(|s| s.service_account_name.clone())
            .unwrap_or_default(),
        "status.podIP" | "status.podIPs" => ctx.pod_ip.to_string(),
        "status.hostIP" | "status.hostIPs" => ctx.host_ip.to_string(),
        p => {
            if let Some(k) = quoted(p, "metadata.labels['") {
                label(m.labels.as_ref(), &k)
            } else if let Some(k) = quoted(p, "metadata.annotations['") {
                label(m.annotations.as_ref(), &k)
            } else if p == "metadata.labels" || p == "metadata.annotations" {
                let map = if p == "metadata.labels" {
                    m.labels.as_ref()
                } else {
                    m.annotations.as_ref()
                };
                map.iter()
                    .flat_map(|m| m.iter())
                    .map(|(k, v)| format!("{k}=\"{v}\""))
                    .collect::<Vec<_>>()
                    .join("\n")
            } else {
                return Err(Error::Config(format!("unsupported fieldRef {p:?}")));
            }
        }
    })
}

fn resource_field_ref(
    c: &Container,
    resource: &str,
    divisor: Option<&str>,
    ctx: &EnvContext<'_>,
) -> Result<String> {
    let r = requirements(c)?;
    let ceil_div = |v: i64, d: i64| if d <= 0 { v } else { (v + d - 1) / d };
    match resource {
        "limits.cpu" | "requests.cpu" => {
            let millis = if resource == "limits.cpu" {
                r.limits.cpu_millis.unwrap_or(ctx.node_cpu_millis)
            } else {
                r.requests.cpu_millis.unwrap_or(0)
            };
            let d = divisor
                .map(quantity::cpu_millis)
                .transpose()?
                .unwrap_or(1000);
            Ok(ceil_div(millis, d).to_string())
        }
        "limits.memory" | "requests.memory" => {
            let b = if resource == "limits.memory" {
                r.limits.memory_bytes.unwrap_or(ctx.node_memory_bytes)
            } else {
                r.requests.memory_bytes.unwrap_or(0)
            };
            let d = divisor.map(quantity::bytes).transpose()?.unwrap_or(1);
            Ok(ceil_div(b, d).to_string())
        }
        other => Err(Error::Config(format!(
            "unsupported resourceFieldRef resource {other:?}"
        ))),
    }
}

/// kubelet's `$(VAR)` expansion: `$(NAME)` of a defined variable is replaced, `$$` escapes a `$`,
/// anything else is left as written.
pub fn expand(input: &str, vars: &[(String, String)]) -> String {
    let mut out = String::with_capacity(input.len());
    let mut rest = input;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(a) = after.strip_prefix('$') {
            out.push('$');
            rest = a;
        } else if let Some(body) = after.strip_prefix('(')
            && let Some(end) = body.find(')')
        {
            let name = &body[..end];
            match vars.iter().rev().find(|(k, _)| k == name) {
                Some((_, v)) => out.push_str(v),
                None => {
                    out.push_str("$(");
                    out.push_str(name);
                    out.push(')');
                }
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn env_like_kubelet() {
        let pod: Pod = serde_yaml::from_str(concat!(
            "metadata: {name: web, namespace: shop, uid: u1, labels: {app: a}}\n",
            "spec:\n  containers:\n  - name: c\n    image: x\n    resources: {limits: {memory: 64Mi}, requests: {cpu: 250m}}\n",
            "    envFrom: [{configMapRef: {name: cfg}, prefix: CFG_}]\n",
            "    env:\n",
            "    - {name: A, value: one}\n",
            "    - {name: B, value: '$(A)-two-$$(A)-$(NOPE)'}\n",
            "    - {name: NAME, valueFrom: {fieldRef: {fieldPath: metadata.name}}}\n",
            "    - {name: APP, valueFrom: {fieldRef: {fieldPath: \"metadata.labels['app']\"}}}\n",
            "    - {name: IP, valueFrom: {fieldRef: {fieldPath: status.podIP}}}\n",
            "    - {name: NODE, valueFrom: {fieldRef: {fieldPath: spec.nodeName}}}\n",
            "    - {name: MEM, valueFrom: {resourceFieldRef: {resource: limits.memory, divisor: 1Mi}}}\n",
            "    - {name: CPU, valueFrom: {resourceFieldRef: {resource: limits.cpu}}}\n",
            "    - {name: REQ, valueFrom: {resourceFieldRef: {resource: requests.cpu, divisor: 1m}}}\n",
            "    - {name: KEY, valueFrom: {configMapKeyRef: {name: cfg, key: k}}}\n",
            "    - {name: OPT, valueFrom: {secretKeyRef: {name: gone, key: k, optional: true}}}\n",
        ))
        .unwrap();
        let objects = Objects::default();
        objects.put(
            Kind::ConfigMap,
            "shop",
            "cfg",
            BTreeMap::from([("k".to_string(), b"v".to_vec())]),
        );
        let ctx = EnvContext {
            pod: &pod,
            pod_ip: "10.0.0.5",
            host_ip: "192.168.1.2",
            node_name: "edge-1",
            node_cpu_millis: 2000,
            node_memory_bytes: 1 << 30,
            objects: &objects,
        };
        let env = environment(&pod.spec.as_ref().unwrap().containers[0], &ctx).unwrap();
        let get = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str());
        assert_eq!(get("CFG_k"), Some("v"));
        assert_eq!(get("B"), Some("one-two-$(A)-$(NOPE)"));
        assert_eq!(get("NAME"), Some("web"));
        assert_eq!(get("APP"), Some("a"));
        assert_eq!(get("IP"), Some("10.0.0.5"));
        assert_eq!(get("NODE"), Some("edge-1"));
        assert_eq!(get("MEM"), Some("64"));
        assert_eq!(
            get("CPU"),
            Some("2"),
            "no CPU limit: the node's allocatable"
        );
        assert_eq!(get("REQ"), Some("250"));
        assert_eq!(get("KEY"), Some("v"));
        assert_eq!(get("OPT"), None);

        let mut missing = pod.clone();
        missing.spec.as_mut().unwrap().containers[0].env_from = None;
        missing.spec.as_mut().unwrap().containers[0]
            .env
            .as_mut()
            .unwrap()[9]
            .value_from
            .as_mut()
            .unwrap()
            .config_map_key_ref
            .as_mut()
            .unwrap()
            .name = "absent".into();
        let e = environment(&missing.spec.as_ref().unwrap().containers[0], &ctx).unwrap_err();
        assert_eq!(e.to_string(), "configmap \"absent\" not found");
    }
}
