//! The ConfigMaps and Secrets a node knows: in standalone mode the ones in the manifests folder,
//! in cluster mode the ones fetched for the pods bound to the node. Keys to bytes, by namespace
//! and name.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use crate::{Error, Result};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Kind {
    ConfigMap,
    Secret,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::ConfigMap => "configmap",
            Kind::Secret => "secret",
        }
    }
}

type Key = (Kind, String, String);

/// A shared, cheaply cloned store.
#[derive(Debug, Clone, Default)]
pub struct Objects {
    inner: Arc<RwLock<BTreeMap<Key, BTreeMap<String, Vec<u8>>>>>,
}

impl Objects {
    pub fn put(&self, kind: Kind, namespace: &str, name: &str, data: BTreeMap<String, Vec<u8>>) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert((kind, namespace.into(), name.into()), data);
    }

    pub fn remove(&self, kind: Kind, namespace: &str, name: &str) {
        self.inner
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&(kind, namespace.into(), name.into()));
    }

    /// All keys of an object; `Ok(None)` when it is absent and `optional`.
    pub fn get(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        optional: bool,
    ) -> Result<Option<BTreeMap<String, Vec<u8>>>> {
        let map = self.inner.read().unwrap_or_else(|e| e.into_inner());
        match map.get(&(kind, namespace.to_string(), name.to_string())) {
            Some(d) => Ok(Some(d.clone())),
            None if optional => Ok(None),
            None => Err(Error::Config(format!(
                "{} \"{name}\" not found",
                kind.name()
            ))),
        }
    }

    /// One key; `Ok(None)` when absent and `optional`.
    pub fn key(
        &self,
        kind: Kind,
        namespace: &str,
        name: &str,
        key: &str,
        optional: bool,
    ) -> Result<Option<Vec<u8>>> {
        let Some(data) = self.get(kind, namespace, name, optional)? else {
            return Ok(None);
        };
        match data.get(key) {
            Some(v) => Ok(Some(v.clone())),
            None if optional => Ok(None),
            None => Err(Error::Config(format!(
                "couldn't find key {key} in {} {namespace}/{name}",
                kind.name()
            ))),
        }
    }
}
