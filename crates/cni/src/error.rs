//! CNI errors, each naming what failed.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("no CNI network config in {dir}")]
    NoConfig { dir: PathBuf },
    #[error("CNI config {path}: {detail}")]
    BadConfig { path: PathBuf, detail: String },
    #[error("CNI plugin {plugin:?} not found in {dirs}")]
    PluginNotFound { plugin: String, dirs: String },
    #[error("CNI plugin {plugin} failed ({command}): {msg}{details} (code {code})")]
    Plugin { plugin: String, command: &'static str, code: u32, msg: String, details: String },
    #[error("CNI plugin {plugin} ({command}) did not finish within {seconds} s")]
    Timeout { plugin: String, command: &'static str, seconds: u64 },
    #[error("CNI plugin {plugin} ({command}) returned a result that does not parse: {detail}")]
    BadResult { plugin: String, command: &'static str, detail: String },
    #[error("running CNI plugin {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}
