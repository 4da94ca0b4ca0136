//! `wasmlet run pod.yaml`: one Pod on an embedded runtime in the foreground. The runtime serves
//! the CRI on a private socket and this command drives it through that socket, exactly as
//! kubelet would; container logs stream to the terminal; the exit code is the pod's result.
//! Images may be given as paths to `.wasm` files: they are imported first.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use k8s_cri::v1 as cri;
use wasmlet_cri::client::{CriClient, connect};
use wasmlet_cri::Runtime;
use wasmlet_image::ImageStore;

use crate::config::PathFlags;
use crate::pod::Pod;

#[derive(clap::Args)]
pub struct Args {
    /// The Pod manifest (YAML).
    file: PathBuf,
    #[command(flatten)]
    paths: PathFlags,
}

pub fn main(args: Args, log_filter: &str) -> anyhow::Result<ExitCode> {
    // Forked first, while this process is single-threaded (compiling at import starts threads).
    let zygote = wasmlet_shim::zygote::Zygote::start()?;
    let mut pod = Pod::load(&args.file)?;
    let paths = args.paths.resolve()?;
    let images_dir = paths.root.join("images");
    import_wasm_paths(&mut pod, &images_dir, args.file.parent().unwrap_or(Path::new(".")))?;

    let work = paths.state.join(format!("run-{}", std::process::id()));
    let opts = paths.runtime_options(work.join("r"), work.join("s"), zygote, log_filter)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    let result = rt.block_on(async {
        let runtime = Runtime::open(opts).await?;
        let socket = work.join("cri.sock");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server_socket = socket.clone();
        let server = tokio::spawn(async move {
            wasmlet_cri::serve(runtime, &server_socket, async {
                let _ = stop_rx.await;
            })
            .await
        });
        while !socket.exists() && !server.is_finished() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let client = connect(socket.to_str().context("socket path")?).await?;
        let code = run_pod(client, &pod, &work.join("logs")).await;
        let _ = stop_tx.send(());
        let _ = server.await;
        code
    });
    let _ = std::fs::remove_dir_all(&work);
    result.map(|code| ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)))
}

/// Replaces `image:` values that name a `.wasm` file with the imported image's id.
fn import_wasm_paths(pod: &mut Pod, images_dir: &Path, base: &Path) -> anyhow::Result<()> {
    let mut store: Option<ImageStore> = None;
    for c in &mut pod.spec.containers {
        let candidate = base.join(&c.image);
        let path = if Path::new(&c.image).is_file() { PathBuf::from(&c.image) } else { candidate };
        if c.image.ends_with(".wasm") && path.is_file() {
            let store = match &mut store {
                Some(s) => s,
                None => store.insert(ImageStore::open(images_dir).map_err(|e| anyhow::anyhow!(wasmlet_cri::chain(&e)))?),
            };
            let images = store.import(&path, None).map_err(|e| anyhow::anyhow!(wasmlet_cri::chain(&e)))?;
            let image = images.first().context("import produced no image")?;
            tracing::info!(path = %path.display(), image = %image.id, "imported");
            c.image = image.id.clone();
        }
    }
    Ok(())
}

async fn run_pod(mut client: CriClient, pod: &Pod, log_dir: &Path) -> anyhow::Result<i32> {
    let uid = if pod.metadata.uid.is_empty() { format!("{:032x}", rand::random::<u128>()) } else { pod.metadata.uid.clone() };
    let labels: HashMap<String, String> = pod.metadata.labels.clone().into_iter().collect();
    let sandbox_config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata {
            name: pod.metadata.name.clone(),
            namespace: pod.metadata.namespace.clone(),
            uid: uid.clone(),
            attempt: 0,
        }),
        hostname: pod.metadata.name.clone(),
        log_directory: log_dir.display().to_string(),
        labels,
        linux: Some(cri::LinuxPodSandboxConfig {
            // kubelet's layout and QoS class, computed here as kubelet would.
            cgroup_parent: crate::pod_resources::cgroup_parent(pod, &uid)?,
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption {
                    network: if pod.spec.host_network { cri::NamespaceMode::Node } else { cri::NamespaceMode::Pod } as i32,
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let sandbox_id = client
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(sandbox_config.clone()), runtime_handler: String::new() })
        .await?
        .into_inner()
        .pod_sandbox_id;
    let result = run_containers(&mut client, pod, &sandbox_id, &sandbox_config, log_dir).await;
    let _ = client.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: sandbox_id.clone() }).await;
    let _ = client.runtime.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox_id }).await;
    result
}

async fn run_containers(
    client: &mut CriClient,
    pod: &Pod,
    sandbox_id: &str,
    sandbox_config: &cri::PodSandboxConfig,
    log_dir: &Path,
) -> anyhow::Result<i32> {
    let empty_dirs = log_dir.parent().unwrap_or(log_dir).join("volumes");
    let mut ids = Vec::new();
    for c in &pod.spec.containers {
        let config = container_config(c, pod, &empty_dirs)?;
        let id = client
            .runtime
            .create_container(cri::CreateContainerRequest {
                pod_sandbox_id: sandbox_id.to_string(),
                config: Some(config),
                sandbox_config: Some(sandbox_config.clone()),
            })
            .await
            .with_context(|| format!("creating container {}", c.name))?
            .into_inner()
            .container_id;
        ids.push((c.name.clone(), id));
    }
    for (name, id) in &ids {
        client
            .runtime
            .start_container(cri::StartContainerRequest { container_id: id.clone() })
            .await
            .with_context(|| format!("starting container {name}"))?;
    }
    let multi = ids.len() > 1;
    let mut tails: Vec<LogTail> = pod
        .spec
        .containers
        .iter()
        .map(|c| LogTail::new(log_dir.join(format!("{}/0.log", c.name)), if multi { format!("[{}] ", c.name) } else { String::new() }))
        .collect();
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    let mut stopping = false;
    loop {
        tails.iter_mut().for_each(LogTail::pump);
        let mut exit_codes = Vec::new();
        for (name, id) in &ids {
            let status = client
                .runtime
                .container_status(cri::ContainerStatusRequest { container_id: id.clone(), verbose: false })
                .await?
                .into_inner()
                .status
                .context("no status")?;
            if status.state == cri::ContainerState::ContainerExited as i32 {
                exit_codes.push((name.clone(), status.exit_code, status.reason, status.message));
            }
        }
        if exit_codes.len() == ids.len() {
            tails.iter_mut().for_each(LogTail::pump);
            let mut worst = 0;
            for (name, code, reason, message) in exit_codes {
                if code != 0 {
                    eprintln!("container {name} exited with {code} ({reason}){}", if message.is_empty() { String::new() } else { format!(": {message}") });
                    if worst == 0 {
                        worst = code;
                    }
                }
            }
            return Ok(worst);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_millis(20)) => {}
            _ = &mut interrupted, if !stopping => {
                stopping = true;
                for (_, id) in &ids {
                    let _ = client.runtime.stop_container(cri::StopContainerRequest { container_id: id.clone(), timeout: 10 }).await;
                }
            }
        }
    }
}

fn container_config(c: &crate::pod::Container, pod: &Pod, empty_dirs: &Path) -> anyhow::Result<cri::ContainerConfig> {
    let mut mounts = Vec::new();
    for m in &c.volume_mounts {
        let volume = pod.spec.volumes.iter().find(|v| v.name == m.name).context("volume")?;
        let host_path = match (&volume.host_path, &volume.empty_dir) {
            (Some(h), _) => PathBuf::from(&h.path),
            (None, Some(_)) => {
                let dir = empty_dirs.join(&volume.name);
                std::fs::create_dir_all(&dir)?;
                dir
            }
            (None, None) => bail!("volume {} is neither hostPath nor emptyDir", volume.name),
        };
        mounts.push(cri::Mount {
            container_path: m.mount_path.clone(),
            host_path: host_path.display().to_string(),
            readonly: m.read_only,
            ..Default::default()
        });
    }
    Ok(cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: c.name.clone(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: c.image.clone(), ..Default::default() }),
        command: c.command.clone(),
        args: c.args.clone(),
        working_dir: c.working_dir.clone(),
        envs: c.env.iter().map(|e| cri::KeyValue { key: e.name.clone(), value: e.value.clone() }).collect(),
        mounts,
        log_path: format!("{}/0.log", c.name),
        linux: Some(cri::LinuxContainerConfig {
            resources: Some(crate::pod_resources::container_resources(pod, c)?),
            ..Default::default()
        }),
        ..Default::default()
    })
}

/// Follows one CRI log file and prints its text to the terminal.
struct LogTail {
    path: PathBuf,
    prefix: String,
    offset: u64,
    pending: Vec<u8>,
}

impl LogTail {
    fn new(path: PathBuf, prefix: String) -> Self {
        LogTail { path, prefix, offset: 0, pending: Vec::new() }
    }

    fn pump(&mut self) {
        use std::io::{Read, Seek, SeekFrom, Write};
        let Ok(mut f) = std::fs::File::open(&self.path) else { return };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut buf = Vec::new();
        if let Ok(n) = f.read_to_end(&mut buf) {
            self.offset += n as u64;
        }
        self.pending.extend_from_slice(&buf);
        while let Some(nl) = self.pending.iter().position(|&b| b == b'\n') {
            let line: Vec<u8> = self.pending.drain(..=nl).collect();
            let line = String::from_utf8_lossy(&line[..line.len() - 1]).into_owned();
            let mut parts = line.splitn(4, ' ');
            let (_ts, stream, tag, text) = (parts.next(), parts.next(), parts.next(), parts.next().unwrap_or(""));
            let end = if tag == Some("P") { "" } else { "\n" };
            let out = format!("{}{text}{end}", self.prefix);
            if stream == Some("stderr") {
                let _ = std::io::stderr().write_all(out.as_bytes());
            } else {
                let _ = std::io::stdout().write_all(out.as_bytes());
            }
        }
        let _ = std::io::stdout().flush();
    }
}
