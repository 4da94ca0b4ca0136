//! CreateContainer: resolve the image, make the container's cgroup under the pod's and apply its
//! resources (a Wasm container in a BestEffort pod gets none unless its limits need one: see
//! [`cgroup::Cgroups::wasm_thread_cgroup`]), then either turn the CRI config into the small [`WasmSpec`] the shim runs (argv,
//! env, preopens, log file; the container thread joins the cgroup when it starts; the shim's
//! `oom_score_adj` raised) or, for a Linux image, prepare an OCI bundle (see [`linux`]) the shim
//! creates with libcontainer; record it. The cgroup and bundle are rolled back on failure. A Wasm
//! container's create is written to the shim and its answer read by the next call about the
//! container (see [`super::pending_create`]).

use std::path::{Path, PathBuf};

use k8s_cri::v1::{ContainerConfig, CreateContainerRequest, CreateContainerResponse, PodSandboxConfig};
use wasmlet_image::ImageRecord;
use wasmlet_shim::protocol::{Preopen, WasmSpec, now_nanos};

use crate::ids::new_id;
use crate::runtime::cgroup::{self, CgroupGuard};
use crate::runtime::linux;
use crate::runtime::process_args::{argv, env};
use crate::service::require;
use crate::store::{ContainerRecord, ContainerState, SandboxState};
use crate::{Error, Runtime};

impl Runtime {
    /// PID namespace TARGET (`kubectl debug --target`): the namespace of `target_id`, a running
    /// Linux container of the same pod, as containerd resolves it.
    async fn target_pid_namespace(&self, sandbox_id: &str, config: &k8s_cri::v1::ContainerConfig) -> Result<PathBuf, Error> {
        let target = config
            .linux
            .as_ref()
            .and_then(|l| l.security_context.as_ref())
            .and_then(|s| s.namespace_options.as_ref())
            .map(|n| n.target_id.clone())
            .unwrap_or_default();
        if target.is_empty() {
            return Err(Error::InvalidArgument("namespace_options.pid is TARGET but target_id is empty".into()));
        }
        let t = self.containers.get(&target).map_err(|_| Error::NotFound(format!("target container {target:?} not found")))?;
        if t.sandbox_id != sandbox_id {
            return Err(Error::InvalidArgument(format!("target container {target} is in another pod sandbox")));
        }
        let pid = self.shim(sandbox_id).container_pid(&t.id).await?;
        Ok(PathBuf::from(format!("/proc/{pid}/ns/pid")))
    }

    pub async fn create_container(&self, req: CreateContainerRequest) -> Result<CreateContainerResponse, Error> {
        let begin = std::time::Instant::now();
        let sandbox = self.sandboxes.get(require(&req.pod_sandbox_id, "pod_sandbox_id")?)?;
        let config = req.config.ok_or_else(|| Error::InvalidArgument("config is required".into()))?;
        let md = config.metadata.as_ref().ok_or_else(|| Error::InvalidArgument("config.metadata is required".into()))?;
        require(&md.name, "config.metadata.name")?;
        let image_ref = config.image.as_ref().map(|i| i.image.clone()).unwrap_or_default();
        require(&image_ref, "config.image.image")?;
        if sandbox.state != SandboxState::Ready {
            return Err(Error::FailedPrecondition(format!("pod sandbox {} is not ready", sandbox.id)));
        }
        let linux_resources = config.linux.as_ref().and_then(|l| l.resources.as_ref());
        let resources = cgroup::validated("config.linux.resources", linux_resources)?;
        let sandbox_config = req.sandbox_config.unwrap_or_else(|| sandbox.config.clone());
        let smd = sandbox.config.metadata.clone().unwrap_or_default();
        let name = format!("{}_{}_{}_{}_{}", md.name, smd.name, smd.namespace, smd.uid, md.attempt);

        // From memory when the store can answer so (a Wasm image by tag or digest, already
        // compiled, records unchanged); else one hop to the blocking pool.
        let fast = self.images.resolve_compiled_fast(&image_ref).map(|(image, path)| (image, Artifact::Compiled(path)));
        let lookup = image_ref.clone();
        let (image, artifact) = match fast {
            Some(found) => found,
            None => self.with_images(move |images| {
                let Some(image) = images.resolve(&lookup)? else { return Ok(None) };
                let artifact = match image.is_linux() {
                    true => Artifact::Layers(images.snapshot_dirs(&image)),
                    false => Artifact::Compiled(images.compiled_path(&image)?),
                };
                Ok(Some((image, artifact)))
            })
            .await?
            .ok_or_else(|| Error::NotFound(format!("image {image_ref:?} not found: pull or import it first")))?,
        };
        if let Artifact::Layers(_) = &artifact
            && self.opts.handlers.kind(&sandbox.runtime_handler) == Some(crate::handlers::HandlerKind::WasmOnly)
        {
            return Err(Error::InvalidArgument(format!(
                "image {image_ref:?} is a Linux image, but the pod's runtime handler {:?} runs Wasm only",
                sandbox.runtime_handler
            )));
        }

        let image_time = begin.elapsed();
        let id = new_id();
        let reservation = self.names.reserve(&name, &id)?;
        let log_path = log_path(&sandbox_config, &config);
        let mut cgroup_path = String::new();
        let mut cgroup_guard = None;
        let mut cgroup = None;
        let wasm = matches!(artifact, Artifact::Compiled(_));
        if let Some(cgroups) = &self.cgroups
            && !sandbox.cgroup_parent.is_empty()
            && let pod = wasmlet_cgroups::PodCgroup::parse_parent(&sandbox.cgroup_parent)?
            && (!wasm || cgroup::Cgroups::wasm_thread_cgroup(&pod, resources.as_ref()))
        {
            let path = cgroups.container_path(&pod, &id, wasm)?;
            // Armed before the cgroup exists: whatever part of it was made goes if we fail.
            cgroup_guard = Some(CgroupGuard::new(cgroups, Some(path.clone())));
            cgroup_path = path.as_str().to_owned();
            cgroup = Some((cgroups, path));
        }
        let make_cgroup = || -> Result<std::time::Duration, Error> {
            let start = std::time::Instant::now();
            if let Some((cgroups, path)) = &cgroup {
                cgroups.create_container(path, wasm, resources.as_ref())?;
            }
            Ok(start.elapsed())
        };
        let shim_start = std::time::Instant::now();
        let cgroup_time;
        let mut pending = None;
        match artifact {
            Artifact::Compiled(artifact) => {
                if let Some(zygote) = &self.opts.zygote {
                    // The next shims come with it linked.
                    zygote.preload(&artifact, image.kind == "component");
                }
                let mut spec = wasm_spec(&config, &sandbox_config, &image, artifact, log_path.clone())?;
                if let Some((cgroups, path)) = &cgroup {
                    // The thread joins it when the container starts: the cgroup is made while
                    // the shim prepares the module.
                    spec.cgroup_tasks = cgroups.thread_files(path);
                }
                if let Some(adj) = linux_resources.map(|r| r.oom_score_adj).filter(|&a| a != 0) {
                    // Never fails the container: the value is advice about whom the kernel kills first.
                    if let Err(e) = cgroup::raise_oom_score_adj(sandbox.shim_pid, adj) {
                        tracing::warn!(sandbox.id = %sandbox.id, container.id = %id, error = %e, "setting oom_score_adj");
                    }
                }
                tracing::debug!(sandbox.id = %sandbox.id, container.id = %id, ?spec, "creating container");
                let shim = self.shim(&sandbox.id);
                // join! polls the shim first: the create is on the wire before the cgroup's
                // mkdirs run on this thread. Its answer is read by the next call about the
                // container (see `pending_create`).
                let (sent, made) = tokio::join!(shim.send_create(&id, spec), async { make_cgroup() });
                match (sent, made) {
                    (Ok(sent), Ok(t)) => {
                        pending = Some(sent);
                        cgroup_time = t;
                    }
                    (Err(e), _) => return Err(e.into()),
                    (Ok(sent), Err(e)) => {
                        if sent.settle().await.is_ok() {
                            let _ = shim.remove(&id).await;
                        }
                        return Err(e);
                    }
                }
            }
            Artifact::Layers(layers) => {
                cgroup_time = make_cgroup()?;
                let (oom_events, cgroup_procs, cgroupns) = match &cgroup {
                    Some((cgroups, path)) => (cgroups.oom_events_file(path), cgroups.procs_file(path), cgroups.is_v2()),
                    None => (None, None, false),
                };
                // A shared PID namespace is held by a process the shim makes on first use.
                let pod_pid_ns = match linux::spec::pid_mode(&config, &sandbox.config)? {
                    k8s_cri::v1::NamespaceMode::Pod => {
                        let holder = self.shim(&sandbox.id).pod_pid_namespace().await?;
                        Some(PathBuf::from(format!("/proc/{holder}/ns/pid")))
                    }
                    k8s_cri::v1::NamespaceMode::Target => Some(self.target_pid_namespace(&sandbox.id, &config).await?),
                    _ => None,
                };
                // libcontainer joins (or makes) the cgroup at this path in every hierarchy.
                let lc_cgroup = if cgroup_path.is_empty() { format!("/wasmlet/{id}") } else { format!("/{}", cgroup_path.trim_start_matches('/')) };
                let state = self.opts.state.clone();
                let (sandbox2, config2, image2, id2, log2) = (sandbox.clone(), config.clone(), image.clone(), id.clone(), log_path.clone());
                let (spec, bundle) = tokio::task::spawn_blocking(move || {
                    linux::prepare(linux::Prepare {
                        state: &state,
                        sandbox_id: &sandbox2.id,
                        sandbox: &sandbox2.config,
                        netns: sandbox2.netns.as_deref(),
                        pod_pid_ns,
                        shim_pid: sandbox2.shim_pid,
                        id: &id2,
                        config: &config2,
                        image: &image2,
                        layers: &layers,
                        log_path: log2,
                        cgroup_path: lc_cgroup,
                        oom_events,
                        cgroup_procs,
                        cgroupns,
                    })
                })
                .await
                .map_err(|e| Error::Internal(format!("preparing the container: {e}")))??;
                tracing::debug!(sandbox.id = %sandbox.id, container.id = %id, bundle = %spec.bundle.display(), "creating linux container");
                if let Err(e) = self.shim(&sandbox.id).create_linux(&id, spec).await {
                    bundle.remove();
                    return Err(e.into());
                }
            }
        }

        let (shim_time, record_start) = (shim_start.elapsed(), std::time::Instant::now());
        let record = ContainerRecord {
            id: id.clone(),
            sandbox_id: sandbox.id.clone(),
            name,
            image_id: image.id.clone(),
            image_tag: image.repo_tags.first().cloned().unwrap_or_default(),
            image_ref: image.repo_digests.first().cloned().unwrap_or_else(|| image.id.clone()),
            log_path: log_path.map(|p| p.display().to_string()).unwrap_or_default(),
            config,
            state: ContainerState::Created,
            created_at: now_nanos(),
            started_at: 0,
            finished_at: 0,
            exit_code: 0,
            reason: String::new(),
            message: String::new(),
            cgroup: cgroup_path,
        };
        if let Err(e) = self.containers.insert(record) {
            if let Some(sent) = pending {
                let _ = sent.settle().await;
            }
            let _ = self.shim(&sandbox.id).remove(&id).await;
            linux::rootfs::remove(&linux::rootfs::bundle_dir(&self.opts.state, &id));
            return Err(e);
        }
        if let Some(sent) = pending {
            self.pending_creates.hold(&id, sent);
        }
        reservation.commit();
        if let Some(guard) = cgroup_guard {
            guard.disarm();
        }
        tracing::debug!(
            container.id = %id,
            image_us = image_time.as_micros() as u64,
            cgroup_us = cgroup_time.as_micros() as u64,
            shim_us = shim_time.as_micros() as u64,
            record_us = record_start.elapsed().as_micros() as u64,
            total_us = begin.elapsed().as_micros() as u64,
            "CreateContainer timings"
        );
        tracing::info!(sandbox.id = %sandbox.id, container.id = %id, "container created");
        Ok(CreateContainerResponse { container_id: id })
    }
}

/// What runs: a Wasm image's compiled artifact, or a Linux image's unpacked layers (bottom first).
enum Artifact {
    Compiled(PathBuf),
    Layers(Vec<PathBuf>),
}

/// `log_directory/log_path`, or none when kubelet asked for no log.
fn log_path(sandbox: &PodSandboxConfig, config: &ContainerConfig) -> Option<PathBuf> {
    if sandbox.log_directory.is_empty() || config.log_path.is_empty() {
        return None;
    }
    Some(Path::new(&sandbox.log_directory).join(&config.log_path))
}

/// The Wasm engine's view of the container (kubelet's rules: `command` replaces the image's
/// entrypoint, `args` replace its cmd; CRI env overrides image env).
fn wasm_spec(
    config: &ContainerConfig,
    sandbox: &PodSandboxConfig,
    image: &ImageRecord,
    artifact: PathBuf,
    log_path: Option<PathBuf>,
) -> Result<WasmSpec, Error> {
    let mut args = argv(config, image);
    if args.is_empty() {
        args.push("app.wasm".into());
    }
    let mut env = env(config, image)?;
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(key, _)| key == k) {
        Some(entry) => entry.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    let working_dir = if config.working_dir.is_empty() { image.config.working_dir.clone() } else { config.working_dir.clone() };
    if !working_dir.is_empty() {
        set("PWD", &working_dir);
    }

    let mut preopens = Vec::new();
    for (i, m) in config.mounts.iter().enumerate() {
        if !m.container_path.starts_with('/') {
            return Err(Error::InvalidArgument(format!("mounts[{i}].container_path {:?} must be absolute", m.container_path)));
        }
        if m.host_path.is_empty() {
            return Err(Error::InvalidArgument(format!("mounts[{i}].host_path is required")));
        }
        let host = Path::new(&m.host_path);
        match std::fs::metadata(host) {
            Ok(meta) if meta.is_dir() => {}
            // WASI can only preopen directories; kubelet's file mounts (/etc/hosts,
            // /dev/termination-log) have no meaning to a Wasm guest.
            Ok(_) => {
                tracing::debug!(host_path = %m.host_path, "file mount skipped for a Wasm container");
                continue;
            }
            // As containerd: a missing bind source is created as a directory.
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                std::fs::create_dir_all(host).map_err(Error::io("creating mount source", host))?;
            }
            Err(e) => return Err(Error::InvalidArgument(format!("mounts[{i}].host_path {}: {e}", m.host_path))),
        }
        preopens.push(Preopen { host_path: host.to_owned(), guest_path: m.container_path.clone(), readonly: m.readonly });
    }

    let memory_limit = config
        .linux
        .as_ref()
        .and_then(|l| l.resources.as_ref())
        .map(|r| r.memory_limit_in_bytes)
        .filter(|&b| b > 0)
        .map(|b| b as u64);
    let http_port = http_port(config, sandbox, &env);

    Ok(WasmSpec {
        artifact,
        component: image.kind == "component",
        args,
        env,
        working_dir,
        preopens,
        log_path,
        memory_limit,
        cgroup_tasks: Vec::new(),
        http_port,
        stdin: config.stdin,
        stdin_once: config.stdin_once,
        tty: config.tty,
    })
}

/// The port a `wasi:http/incoming-handler` component is served on, the first that is set of:
/// the container's first TCP port as kubelet annotates it (`io.kubernetes.container.ports`, the
/// JSON of the pod spec's `ports`), the pod's first TCP port mapping (`container_port`; the CRI
/// has no per-container ports), the container's `PORT` environment variable (as Knative and Cloud
/// Run pass it). `None`: the shim's default, 8080.
fn http_port(config: &ContainerConfig, sandbox: &PodSandboxConfig, env: &[(String, String)]) -> Option<u16> {
    #[derive(serde::Deserialize)]
    #[serde(rename_all = "camelCase")]
    struct ContainerPort {
        container_port: u16,
        #[serde(default)]
        protocol: Option<String>,
    }
    let tcp = |protocol: Option<&str>| protocol.is_none_or(|p| p.is_empty() || p.eq_ignore_ascii_case("tcp"));
    let annotated = config
        .annotations
        .get("io.kubernetes.container.ports")
        .and_then(|json| serde_json::from_str::<Vec<ContainerPort>>(json).ok())
        .and_then(|ports| ports.into_iter().find(|p| p.container_port > 0 && tcp(p.protocol.as_deref())))
        .map(|p| p.container_port);
    let mapped = || {
        sandbox
            .port_mappings
            .iter()
            .find(|p| p.protocol == k8s_cri::v1::Protocol::Tcp as i32 && p.container_port > 0)
            .and_then(|p| u16::try_from(p.container_port).ok())
    };
    let from_env = || env.iter().find(|(k, _)| k == "PORT").and_then(|(_, v)| v.trim().parse::<u16>().ok()).filter(|&p| p > 0);
    annotated.or_else(mapped).or_else(from_env)
}

#[cfg(test)]
mod tests {
    use k8s_cri::v1::{PortMapping, Protocol};

    use super::*;

    #[test]
    fn http_port_prefers_the_container_annotation_then_the_pod_mappings_then_port_env() {
        let mapping = |port, protocol: Protocol| PortMapping { container_port: port, protocol: protocol as i32, ..Default::default() };
        let sandbox = PodSandboxConfig {
            port_mappings: vec![mapping(5353, Protocol::Udp), mapping(9000, Protocol::Tcp)],
            ..Default::default()
        };
        let mut config = ContainerConfig::default();
        let env = vec![("PORT".to_string(), "7000".to_string())];
        assert_eq!(http_port(&config, &sandbox, &env), Some(9000), "first TCP mapping");
        config.annotations.insert(
            "io.kubernetes.container.ports".into(),
            r#"[{"name":"dns","containerPort":53,"protocol":"UDP"},{"name":"http","containerPort":8081,"protocol":"TCP"}]"#.into(),
        );
        assert_eq!(http_port(&config, &sandbox, &env), Some(8081), "kubelet's per-container annotation");
        assert_eq!(http_port(&ContainerConfig::default(), &PodSandboxConfig::default(), &env), Some(7000), "PORT");
        assert_eq!(http_port(&ContainerConfig::default(), &PodSandboxConfig::default(), &[]), None, "the shim's default");
    }
}
