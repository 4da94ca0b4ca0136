//! Running one CNI plugin: its `CNI_*` variables in the child's environment only (never in
//! ours), the network config on stdin, a result or an error object on stdout, a time limit.

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::Error;

/// What every plugin of one operation is run with.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// `ADD`, `CHECK` or `DEL`.
    pub command: &'static str,
    pub container_id: String,
    pub netns: PathBuf,
    pub ifname: String,
    /// `CNI_ARGS` pairs (e.g. K8S_POD_NAMESPACE).
    pub args: Vec<(String, String)>,
    pub bin_dirs: Vec<PathBuf>,
    pub timeout: Duration,
}

impl Invocation {
    fn find(&self, plugin: &str) -> Result<PathBuf, Error> {
        if plugin.contains('/') {
            return Err(Error::PluginNotFound { plugin: plugin.into(), dirs: "(a plugin type may not be a path)".into() });
        }
        self.bin_dirs.iter().map(|d| d.join(plugin)).find(|p| p.is_file()).ok_or_else(|| Error::PluginNotFound {
            plugin: plugin.into(),
            dirs: self.bin_dirs.iter().map(|d| d.display().to_string()).collect::<Vec<_>>().join(":"),
        })
    }

    /// Runs `plugin` with `config` on stdin; the parsed stdout (None when empty, as DEL may be).
    pub async fn run(&self, plugin: &str, config: &Value) -> Result<Option<Value>, Error> {
        let path = self.find(plugin)?;
        let io = |source| Error::Io { path: path.clone(), source };
        let cni_args = self.args.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(";");
        let cni_path = std::env::join_paths(&self.bin_dirs).unwrap_or_default();
        let mut child = tokio::process::Command::new(&path)
            .env_clear()
            .env("PATH", std::env::var_os("PATH").unwrap_or_else(|| "/usr/sbin:/usr/bin:/sbin:/bin".into()))
            .env("CNI_COMMAND", self.command)
            .env("CNI_CONTAINERID", &self.container_id)
            .env("CNI_NETNS", &self.netns)
            .env("CNI_IFNAME", &self.ifname)
            .env("CNI_ARGS", cni_args)
            .env("CNI_PATH", cni_path)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .map_err(io)?;
        let input = serde_json::to_vec(config).unwrap_or_default();
        let mut stdin = child.stdin.take().expect("piped stdin");
        let mut stdout = child.stdout.take().expect("piped stdout");
        let mut stderr = child.stderr.take().expect("piped stderr");
        let work = async {
            stdin.write_all(&input).await?;
            drop(stdin);
            let (mut out, mut err) = (Vec::new(), Vec::new());
            let (r1, r2) = tokio::join!(stdout.read_to_end(&mut out), stderr.read_to_end(&mut err));
            r1?;
            r2?;
            let status = child.wait().await?;
            Ok::<_, std::io::Error>((status, out, err))
        };
        let (status, out, err) = match tokio::time::timeout(self.timeout, work).await {
            Ok(r) => r.map_err(io)?,
            Err(_) => {
                return Err(Error::Timeout { plugin: plugin.into(), command: self.command, seconds: self.timeout.as_secs() });
            }
        };
        let parsed: Option<Value> = if out.iter().all(u8::is_ascii_whitespace) { None } else { serde_json::from_slice(&out).ok() };
        if !status.success() {
            let obj = parsed.unwrap_or_default();
            let stderr_text = String::from_utf8_lossy(&err).trim().to_string();
            return Err(Error::Plugin {
                plugin: plugin.into(),
                command: self.command,
                code: obj.get("code").and_then(Value::as_u64).unwrap_or(999) as u32,
                msg: obj.get("msg").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| {
                    if stderr_text.is_empty() { format!("exited with {status}") } else { stderr_text.clone() }
                }),
                details: obj.get("details").and_then(Value::as_str).filter(|d| !d.is_empty()).map(|d| format!(": {d}")).unwrap_or_default(),
            });
        }
        if parsed.is_none() && !out.iter().all(u8::is_ascii_whitespace) {
            return Err(Error::BadResult { plugin: plugin.into(), command: self.command, detail: String::from_utf8_lossy(&out).into() });
        }
        Ok(parsed)
    }
}

/// The default plugin directories, as containerd's and Debian's.
pub fn default_bin_dirs() -> Vec<PathBuf> {
    vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")]
}

