//! The daemon's configuration: built-in defaults, overridden by a TOML file, overridden by flags.
//!
//! ```toml
//! socket = "/run/wasmlet/wasmlet.sock"
//! root = "/var/lib/wasmlet"
//! state = "/run/wasmlet"
//! cni_conf_dir = "/etc/cni/net.d"
//! cni_bin_dirs = ["/opt/cni/bin", "/usr/lib/cni"]
//! stream_address = "127.0.0.1:0"          # exec/attach/port-forward URLs (port 0: any free)
//! stream_idle_timeout = "4h"               # a silent exec/attach/port-forward session is closed ("0": never)
//! default_runtime_handler = "wasmlet"      # the handler of pods with no RuntimeClass
//!
//! [runtime_handlers]    # RuntimeClass handlers (replace the built-in set when given)
//! wasmlet = "auto"      # Wasm images as Wasm, Linux images as Linux containers
//! wasmtime = "wasm"     # Wasm only: a Linux image is refused
//! runc = "linux"        # same as auto (a Wasm image always runs as Wasm)
//!
//! [registries]
//! insecure = ["registry.local:5000"]   # plain HTTP (loopback registries always are)
//! timeout_secs = 30
//! [registries.mirrors]
//! "docker.io" = ["http://127.0.0.1:5000"]   # tried in order before the registry itself
//! ```

use std::path::{Path, PathBuf};

use anyhow::Context;
use serde::Deserialize;

pub const DEFAULT_CONFIG: &str = "/etc/wasmlet/config.toml";
pub const DEFAULT_SOCKET: &str = "/run/wasmlet/wasmlet.sock";
pub const DEFAULT_ROOT: &str = "/var/lib/wasmlet";
pub const DEFAULT_STATE: &str = "/run/wasmlet";
pub const DEFAULT_CNI_CONF_DIR: &str = "/etc/cni/net.d";
pub const DEFAULT_CNI_BIN_DIRS: &[&str] = &["/opt/cni/bin", "/usr/lib/cni"];

/// What the config file may set; every field optional.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FileConfig {
    pub socket: Option<PathBuf>,
    pub root: Option<PathBuf>,
    pub state: Option<PathBuf>,
    pub cni_conf_dir: Option<PathBuf>,
    pub cni_bin_dirs: Option<Vec<PathBuf>>,
    /// Where the streaming server (exec, attach, port-forward) listens.
    pub stream_address: Option<std::net::SocketAddr>,
    /// How long a streaming session may go without traffic (`4h`, `30m`, `90s`, `0` for never).
    pub stream_idle_timeout: Option<String>,
    /// The handler of pods whose RuntimeClass names none.
    pub default_runtime_handler: Option<String>,
    /// Handler name → `wasm`, `linux` or `auto`.
    pub runtime_handlers: Option<std::collections::BTreeMap<String, String>>,
    #[serde(default)]
    pub registries: RegistriesConfig,
}

/// `[registries]`: how pulls reach registries.
#[derive(Debug, Default, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegistriesConfig {
    #[serde(default)]
    pub insecure: Vec<String>,
    pub timeout_secs: Option<u64>,
    /// Per registry host, endpoints tried before it (containerd hosts.toml's `[host]` entries).
    #[serde(default)]
    pub mirrors: std::collections::HashMap<String, Vec<String>>,
}

/// The paths a runtime runs with, after defaults, file and flags.
#[derive(Debug, Clone)]
pub struct Paths {
    pub socket: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub cni_conf_dir: PathBuf,
    pub cni_bin_dirs: Vec<PathBuf>,
    pub registries: wasmlet_image::RegistryOptions,
    /// The config file's `stream_address`, if it has one.
    pub stream_address: Option<std::net::SocketAddr>,
    /// The config file's `stream_idle_timeout`, if it has one (`Some(None)`: never).
    pub stream_idle_timeout: Option<Option<std::time::Duration>>,
    pub handlers: wasmlet_cri::handlers::Handlers,
}

/// The flags that can override the file (shared by `daemon` and `image`).
#[derive(Debug, Clone, clap::Args)]
pub struct PathFlags {
    /// TOML config file [default: /etc/wasmlet/config.toml, if it exists].
    #[arg(long, env = "WASMLET_CONFIG")]
    pub config: Option<PathBuf>,
    /// CRI socket [default: /run/wasmlet/wasmlet.sock].
    #[arg(long)]
    pub socket: Option<PathBuf>,
    /// Durable state: records and images [default: /var/lib/wasmlet].
    #[arg(long)]
    pub root: Option<PathBuf>,
    /// Volatile state: shim directories, network namespaces [default: /run/wasmlet].
    #[arg(long)]
    pub state: Option<PathBuf>,
    /// CNI network configuration lists [default: /etc/cni/net.d].
    #[arg(long)]
    pub cni_conf_dir: Option<PathBuf>,
    /// CNI plugin directory; repeat for several [default: /opt/cni/bin and /usr/lib/cni].
    #[arg(long = "cni-bin-dir")]
    pub cni_bin_dirs: Vec<PathBuf>,
}

impl PathFlags {
    pub fn resolve(&self) -> anyhow::Result<Paths> {
        let file = match &self.config {
            Some(path) => load(path)?,
            None if Path::new(DEFAULT_CONFIG).exists() => load(Path::new(DEFAULT_CONFIG))?,
            None => FileConfig::default(),
        };
        // Absolute, because shims change their working directory to `/`.
        let abs = |p: PathBuf| std::path::absolute(&p).with_context(|| format!("resolving {}", p.display()));
        Ok(Paths {
            socket: abs(self.socket.clone().or(file.socket).unwrap_or_else(|| DEFAULT_SOCKET.into()))?,
            root: abs(self.root.clone().or(file.root).unwrap_or_else(|| DEFAULT_ROOT.into()))?,
            state: abs(self.state.clone().or(file.state).unwrap_or_else(|| DEFAULT_STATE.into()))?,
            cni_conf_dir: self.cni_conf_dir.clone().or(file.cni_conf_dir).unwrap_or_else(|| DEFAULT_CNI_CONF_DIR.into()),
            cni_bin_dirs: Some(self.cni_bin_dirs.clone())
                .filter(|d| !d.is_empty())
                .or(file.cni_bin_dirs)
                .unwrap_or_else(|| DEFAULT_CNI_BIN_DIRS.iter().map(PathBuf::from).collect()),
            stream_address: file.stream_address,
            stream_idle_timeout: file
                .stream_idle_timeout
                .as_deref()
                .map(parse_idle_timeout)
                .transpose()
                .map_err(|e| anyhow::anyhow!("stream_idle_timeout: {e}"))?,
            handlers: handlers(file.runtime_handlers.as_ref(), file.default_runtime_handler.as_deref())?,
            registries: {
                let mut r = wasmlet_image::RegistryOptions::default();
                r.insecure = file.registries.insecure.clone();
                r.mirrors = file.registries.mirrors.clone();
                if let Some(secs) = file.registries.timeout_secs {
                    r.timeout = std::time::Duration::from_secs(secs);
                }
                r
            },
        })
    }
}

impl Paths {
    /// The runtime's options for records under `root` and shims under `state` (the daemon's own
    /// paths, or a private pair for `wasmlet run`), with the image store, CNI and registry
    /// settings from these paths and shims forked by `zygote`.
    pub fn runtime_options(
        &self,
        root: PathBuf,
        state: PathBuf,
        zygote: wasmlet_shim::zygote::Zygote,
        log_filter: &str,
    ) -> anyhow::Result<wasmlet_cri::RuntimeOptions> {
        let mut opts = wasmlet_cri::RuntimeOptions::new(root, state, std::env::current_exe()?);
        opts.images = self.root.join("images");
        opts.shim_log_filter = log_filter.to_string();
        opts.zygote = Some(std::sync::Arc::new(zygote));
        opts.cni_conf_dir = self.cni_conf_dir.clone();
        opts.cni_bin_dirs = self.cni_bin_dirs.clone();
        opts.registries = self.registries.clone();
        opts.handlers = self.handlers.clone();
        Ok(opts)
    }
}

/// The handler set from the file (the built-in one when it names none).
fn handlers(
    table: Option<&std::collections::BTreeMap<String, String>>,
    default: Option<&str>,
) -> anyhow::Result<wasmlet_cri::handlers::Handlers> {
    let mut handlers = wasmlet_cri::handlers::Handlers::default();
    if let Some(table) = table {
        handlers.handlers = table
            .iter()
            .map(|(name, kind)| Ok((name.clone(), kind.parse().map_err(|e| anyhow::anyhow!("runtime_handlers.{name}: {e}"))?)))
            .collect::<anyhow::Result<_>>()?;
    }
    if let Some(d) = default {
        handlers.default = d.to_string();
    }
    if handlers.kind(&handlers.default).is_none() {
        anyhow::bail!("default_runtime_handler {:?} is not one of the runtime_handlers ({})", handlers.default, handlers.names().join(", "));
    }
    Ok(handlers)
}

/// A Go-style duration as containerd's `stream_idle_timeout` takes it (`4h`, `1h30m`, `90s`,
/// `500ms`); `0` means no timeout.
pub fn parse_idle_timeout(text: &str) -> Result<Option<std::time::Duration>, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(None);
    }
    let mut total = std::time::Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        let value: u64 = rest[..digits].parse().map_err(|_| format!("{text:?} is not a duration like 4h, 30m, 90s or 500ms"))?;
        rest = &rest[digits..];
        let unit = rest.find(|c: char| c.is_ascii_digit()).unwrap_or(rest.len());
        let one = match &rest[..unit] {
            "h" => std::time::Duration::from_secs(3600),
            "m" => std::time::Duration::from_secs(60),
            "s" => std::time::Duration::from_secs(1),
            "ms" => std::time::Duration::from_millis(1),
            _ => return Err(format!("{text:?} is not a duration like 4h, 30m, 90s or 500ms")),
        };
        rest = &rest[unit..];
        total += one * u32::try_from(value).map_err(|_| format!("{text:?} is too long"))?;
    }
    Ok(Some(total).filter(|d| !d.is_zero()))
}

fn load(path: &Path) -> anyhow::Result<FileConfig> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading config {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("parsing config {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_override_file_override_defaults() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "root = \"/r\"\nstate = \"/s\"\n").unwrap();
        let flags = PathFlags { config: Some(file), socket: None, root: None, state: Some("/flag".into()), cni_conf_dir: None, cni_bin_dirs: vec![] };
        let p = flags.resolve().unwrap();
        assert_eq!(p.root, PathBuf::from("/r"));
        assert_eq!(p.state, PathBuf::from("/flag"));
        assert_eq!(p.socket, PathBuf::from(DEFAULT_SOCKET));
    }

    #[test]
    fn registries_table() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "[registries]\ninsecure = [\"r:5000\"]\ntimeout_secs = 7\n[registries.mirrors]\n\"docker.io\" = [\"http://127.0.0.1:5000\"]\n").unwrap();
        let flags = PathFlags { config: Some(file), socket: None, root: None, state: None, cni_conf_dir: None, cni_bin_dirs: vec![] };
        let r = flags.resolve().unwrap().registries;
        assert_eq!(r.insecure, ["r:5000"]);
        assert_eq!(r.timeout, std::time::Duration::from_secs(7));
        assert_eq!(r.mirrors["docker.io"], ["http://127.0.0.1:5000"]);
    }

    #[test]
    fn idle_timeouts_as_containerd_writes_them() {
        let secs = |s| std::time::Duration::from_secs(s);
        assert_eq!(parse_idle_timeout("4h"), Ok(Some(secs(4 * 3600))));
        assert_eq!(parse_idle_timeout("1h30m"), Ok(Some(secs(5400))));
        assert_eq!(parse_idle_timeout("2s"), Ok(Some(secs(2))));
        assert_eq!(parse_idle_timeout("500ms"), Ok(Some(std::time::Duration::from_millis(500))));
        assert_eq!(parse_idle_timeout("0"), Ok(None));
        assert!(parse_idle_timeout("4 hours").is_err() && parse_idle_timeout("h").is_err() && parse_idle_timeout("").is_ok());
    }

    #[test]
    fn stream_address_from_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "stream_address = \"127.0.0.1:10010\"\n").unwrap();
        let flags = PathFlags { config: Some(file), socket: None, root: None, state: None, cni_conf_dir: None, cni_bin_dirs: vec![] };
        assert_eq!(flags.resolve().unwrap().stream_address, Some("127.0.0.1:10010".parse().unwrap()));
    }

    #[test]
    fn runtime_handlers_table() {
        use wasmlet_cri::handlers::HandlerKind;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "default_runtime_handler = \"runc\"\n[runtime_handlers]\nwasmtime = \"wasm\"\nrunc = \"linux\"\n").unwrap();
        let flags = PathFlags { config: Some(file.clone()), socket: None, root: None, state: None, cni_conf_dir: None, cni_bin_dirs: vec![] };
        let h = flags.resolve().unwrap().handlers;
        assert_eq!((h.kind(""), h.kind("wasmtime"), h.kind("wasmlet")), (Some(HandlerKind::Auto), Some(HandlerKind::WasmOnly), None));
        std::fs::write(&file, "default_runtime_handler = \"kata\"\n").unwrap();
        let err = format!("{:#}", flags.resolve().unwrap_err());
        assert!(err.contains("kata"), "{err}");
        std::fs::write(&file, "[runtime_handlers]\nwasmlet = \"vm\"\n").unwrap();
        assert!(format!("{:#}", flags.resolve().unwrap_err()).contains("vm"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(&file, "sockt = \"/x\"\n").unwrap();
        let flags = PathFlags { config: Some(file), socket: None, root: None, state: None, cni_conf_dir: None, cni_bin_dirs: vec![] };
        let err = format!("{:#}", flags.resolve().unwrap_err());
        assert!(err.contains("sockt"), "{err}");
    }
}
