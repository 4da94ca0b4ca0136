//! A whole network list on one pod: ADD runs the plugins in order, each given the previous one's
//! result as `prevResult`; DEL runs them in reverse with the cached ADD result; CHECK like ADD.
//! `runtimeConfig` carries port mappings to plugins that declare the `portMappings` capability.

use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::config::NetworkList;
use crate::invoke::Invocation;
use crate::Error;

/// A port the pod publishes on the node (`runtimeConfig.portMappings`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub host_ip: String,
}

/// Who and where: the pod being attached.
#[derive(Debug, Clone)]
pub struct Attachment {
    pub invocation: Invocation,
    pub port_mappings: Vec<PortMapping>,
}

/// The final result of an ADD (kept to give DEL its `prevResult`) and the pod's IPs.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct CniResult {
    pub raw: Value,
}

impl CniResult {
    /// The addresses (without prefix length), IPv4 first.
    pub fn ips(&self) -> Vec<String> {
        let mut ips: Vec<String> = self.raw["ips"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|ip| ip["address"].as_str())
            .map(|a| a.split('/').next().unwrap_or(a).to_string())
            .collect();
        ips.sort_by_key(|ip| ip.contains(':'));
        ips
    }
}

fn plugin_config(list: &NetworkList, plugin: &Value, prev: Option<&Value>, ports: &[PortMapping]) -> Value {
    let mut conf = plugin.clone();
    conf["name"] = json!(list.name);
    conf["cniVersion"] = json!(list.cni_version);
    if let Some(prev) = prev {
        conf["prevResult"] = prev.clone();
    }
    if !ports.is_empty() && plugin["capabilities"]["portMappings"].as_bool() == Some(true) {
        conf["runtimeConfig"] = json!({ "portMappings": ports });
    }
    conf
}

fn plugin_type(plugin: &Value) -> &str {
    plugin["type"].as_str().unwrap_or_default()
}

/// ADD: attaches the pod; on failure, already-added plugins are deleted again.
pub async fn add(list: &NetworkList, at: &Attachment) -> Result<CniResult, Error> {
    let inv = Invocation { command: "ADD", ..at.invocation.clone() };
    let mut prev: Option<Value> = None;
    for plugin in &list.plugins {
        let conf = plugin_config(list, plugin, prev.as_ref(), &at.port_mappings);
        match inv.run(plugin_type(plugin), &conf).await {
            Ok(Some(result)) => prev = Some(result),
            Ok(None) => {
                return Err(Error::BadResult { plugin: plugin_type(plugin).into(), command: "ADD", detail: "empty result".into() });
            }
            Err(e) => {
                let partial = CniResult { raw: prev.clone().unwrap_or_else(|| json!({})) };
                if let Err(cleanup) = del(list, at, Some(&partial)).await {
                    tracing::warn!(error = %cleanup, "cleaning up after a failed CNI ADD");
                }
                return Err(e);
            }
        }
    }
    Ok(CniResult { raw: prev.unwrap_or_else(|| json!({})) })
}

/// DEL: detaches the pod, plugins in reverse order. Idempotent per the spec.
pub async fn del(list: &NetworkList, at: &Attachment, prev: Option<&CniResult>) -> Result<(), Error> {
    let inv = Invocation { command: "DEL", ..at.invocation.clone() };
    let mut first_error = None;
    for plugin in list.plugins.iter().rev() {
        let conf = plugin_config(list, plugin, prev.map(|p| &p.raw), &at.port_mappings);
        if let Err(e) = inv.run(plugin_type(plugin), &conf).await {
            tracing::warn!(error = %e, "CNI DEL");
            first_error.get_or_insert(e);
        }
    }
    first_error.map_or(Ok(()), Err)
}

/// CHECK: asks every plugin whether the pod's attachment is still as ADD left it.
pub async fn check(list: &NetworkList, at: &Attachment, prev: &CniResult) -> Result<(), Error> {
    let inv = Invocation { command: "CHECK", ..at.invocation.clone() };
    for plugin in &list.plugins {
        let conf = plugin_config(list, plugin, Some(&prev.raw), &at.port_mappings);
        inv.run(plugin_type(plugin), &conf).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ips_ipv4_first_without_prefix() {
        let r = CniResult { raw: json!({"ips":[{"address":"fd00::5/64"},{"address":"10.1.0.5/24","gateway":"10.1.0.1"}]}) };
        assert_eq!(r.ips(), ["10.1.0.5", "fd00::5"]);
        assert!(CniResult { raw: json!({}) }.ips().is_empty());
    }

    #[test]
    fn port_mappings_only_for_capable_plugins() {
        let list = NetworkList { path: "/x".into(), name: "n".into(), cni_version: "1.0.0".into(), plugins: vec![] };
        let ports = [PortMapping { host_port: 8080, container_port: 80, protocol: "tcp".into(), host_ip: String::new() }];
        let capable = plugin_config(&list, &json!({"type":"portmap","capabilities":{"portMappings":true}}), None, &ports);
        assert_eq!(capable["runtimeConfig"]["portMappings"][0]["hostPort"], 8080);
        assert_eq!(capable["name"], "n");
        let plain = plugin_config(&list, &json!({"type":"bridge"}), Some(&json!({"ips":[]})), &ports);
        assert!(plain.get("runtimeConfig").is_none());
        assert_eq!(plain["prevResult"], json!({"ips":[]}));
    }
}
