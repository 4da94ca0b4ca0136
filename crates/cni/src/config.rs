//! Network configuration lists from the conf dir, chosen as libcni and containerd choose them:
//! files ending `.conflist`, `.conf` or `.json`, in lexical order, the first valid one wins; a
//! single-plugin `.conf` is wrapped into a list.

use std::path::{Path, PathBuf};

use serde_json::Value;

use crate::Error;

/// A parsed network configuration list.
#[derive(Debug, Clone)]
pub struct NetworkList {
    pub path: PathBuf,
    pub name: String,
    pub cni_version: String,
    /// Each plugin's configuration object, as written (must have a `type`).
    pub plugins: Vec<Value>,
}

/// The first valid configuration in `dir`; files that do not parse are logged and skipped.
pub fn load_first(dir: &Path) -> Result<NetworkList, Error> {
    let mut files: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(entries) => entries.flatten().map(|e| e.path()).collect(),
        Err(_) => return Err(Error::NoConfig { dir: dir.to_owned() }),
    };
    files.retain(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("conflist" | "conf" | "json")));
    files.sort();
    for path in files {
        match parse(&path) {
            Ok(list) => return Ok(list),
            Err(e) => tracing::warn!(error = %e, "skipping CNI config"),
        }
    }
    Err(Error::NoConfig { dir: dir.to_owned() })
}

/// Parses one `.conflist` (or a single-plugin `.conf`).
pub fn parse(path: &Path) -> Result<NetworkList, Error> {
    let bad = |detail: String| Error::BadConfig { path: path.to_owned(), detail };
    let text = std::fs::read_to_string(path).map_err(|e| bad(e.to_string()))?;
    let value: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
    let obj = value.as_object().ok_or_else(|| bad("not a JSON object".into()))?;
    let cni_version = obj.get("cniVersion").and_then(Value::as_str).unwrap_or("0.4.0").to_string();
    let name = obj.get("name").and_then(Value::as_str).ok_or_else(|| bad("no \"name\"".into()))?.to_string();
    let plugins = match obj.get("plugins") {
        Some(Value::Array(list)) => list.clone(),
        Some(_) => return Err(bad("\"plugins\" is not a list".into())),
        None if obj.contains_key("type") => vec![value.clone()],
        None => return Err(bad("no \"plugins\" and no \"type\"".into())),
    };
    if plugins.is_empty() {
        return Err(bad("\"plugins\" is empty".into()));
    }
    for (i, p) in plugins.iter().enumerate() {
        if p.get("type").and_then(Value::as_str).is_none_or(str::is_empty) {
            return Err(bad(format!("plugins[{i}] has no \"type\"")));
        }
    }
    Ok(NetworkList { path: path.to_owned(), name, cni_version, plugins })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_valid_file_in_lexical_order_wins() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("05-broken.conflist"), "{not json").unwrap();
        std::fs::write(dir.path().join("10-a.conflist"), r#"{"cniVersion":"1.0.0","name":"a","plugins":[{"type":"bridge"},{"type":"portmap"}]}"#).unwrap();
        std::fs::write(dir.path().join("20-b.conf"), r#"{"cniVersion":"1.0.0","name":"b","type":"ptp"}"#).unwrap();
        std::fs::write(dir.path().join("00-ignored.txt"), "x").unwrap();
        let list = load_first(dir.path()).unwrap();
        assert_eq!((list.name.as_str(), list.plugins.len()), ("a", 2));
        let single = parse(&dir.path().join("20-b.conf")).unwrap();
        assert_eq!(single.plugins[0]["type"], "ptp");
    }

    #[test]
    fn refuses_bad_lists() {
        let dir = tempfile::tempdir().unwrap();
        for (name, text, want) in [
            ("a.conflist", r#"{"name":"x","plugins":[]}"#, "empty"),
            ("b.conflist", r#"{"name":"x","plugins":[{"foo":1}]}"#, "plugins[0]"),
            ("c.conflist", r#"{"plugins":[{"type":"bridge"}]}"#, "name"),
        ] {
            let p = dir.path().join(name);
            std::fs::write(&p, text).unwrap();
            let e = parse(&p).unwrap_err().to_string();
            assert!(e.contains(want), "{e}");
        }
        assert!(matches!(load_first(dir.path()), Err(Error::NoConfig { .. })));
        assert!(matches!(load_first(&dir.path().join("none")), Err(Error::NoConfig { .. })));
    }
}
