//! CreateContainer: resolve the image, turn the CRI config into the small [`WasmSpec`] the shim
//! runs (argv, env, preopens, log file), make the container's cgroup under the pod's and apply
//! its resources (the container thread joins it when it starts), raise the shim's
//! `oom_score_adj`, have the shim link it, record it. The cgroup is rolled back on failure.

use std::path::{Path, PathBuf};

use k8s_cri::v1::{ContainerConfig, CreateContainerRequest, CreateContainerResponse, PodSandboxConfig};
use wasmlet_image::ImageRecord;
use wasmlet_shim::protocol::{Preopen, WasmSpec, now_nanos};

use crate::ids::new_id;
use crate::runtime::cgroup::{self, CgroupGuard};
use crate::service::require;
use crate::store::{ContainerRecord, ContainerState, SandboxState};
use crate::{Error, Runtime};

impl Runtime {
    pub async fn create_container(&self, req: CreateContainerRequest) -> Result<CreateContainerResponse, Error> {
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

        // One hop to the blocking pool for both: this is the container start path.
        let lookup = image_ref.clone();
        let (image, artifact) = self
            .with_images(move |images| {
                let Some(image) = images.resolve(&lookup)? else { return Ok(None) };
                let artifact = images.compiled_path(&image)?;
                Ok(Some((image, artifact)))
            })
            .await?
            .ok_or_else(|| Error::NotFound(format!("image {image_ref:?} not found: import it with `wasmlet image import`")))?;

        let id = new_id();
        let reservation = self.names.reserve(&name, &id)?;
        let log_path = log_path(&sandbox_config, &config);
        let mut spec = wasm_spec(&config, &image, artifact, log_path.clone())?;
        let mut cgroup_path = String::new();
        let mut cgroup_guard = None;
        let cgroup_start = std::time::Instant::now();
        if let Some(cgroups) = &self.cgroups
            && !sandbox.cgroup_parent.is_empty()
        {
            let path = wasmlet_cgroups::PodCgroup::parse_parent(&sandbox.cgroup_parent)?.container(&id)?;
            cgroups.create_container(&path)?;
            let guard = CgroupGuard::new(cgroups, Some(path.clone()));
            if let Some(r) = &resources {
                cgroups.manager.apply(&path, r)?;
            }
            spec.cgroup_tasks = cgroups.thread_files(&path);
            cgroup_path = path.as_str().to_owned();
            cgroup_guard = Some(guard);
        }
        if let Some(adj) = linux_resources.map(|r| r.oom_score_adj).filter(|&a| a != 0) {
            // Never fails the container: the value is advice about whom the kernel kills first.
            if let Err(e) = cgroup::raise_oom_score_adj(sandbox.shim_pid, adj) {
                tracing::warn!(sandbox.id = %sandbox.id, container.id = %id, error = %e, "setting oom_score_adj");
            }
        }
        tracing::debug!(container.id = %id, cgroup.setup_us = cgroup_start.elapsed().as_micros() as u64, "container cgroup ready");
        tracing::debug!(sandbox.id = %sandbox.id, container.id = %id, ?spec, "creating container");
        self.shim(&sandbox.id).create(&id, spec).await?;

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
            let _ = self.shim(&sandbox.id).remove(&id).await;
            return Err(e);
        }
        reservation.commit();
        if let Some(guard) = cgroup_guard {
            guard.disarm();
        }
        tracing::info!(sandbox.id = %sandbox.id, container.id = %id, "container created");
        Ok(CreateContainerResponse { container_id: id })
    }
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
fn wasm_spec(config: &ContainerConfig, image: &ImageRecord, artifact: PathBuf, log_path: Option<PathBuf>) -> Result<WasmSpec, Error> {
    let mut args = if config.command.is_empty() { image.config.entrypoint.clone() } else { config.command.clone() };
    if !config.args.is_empty() {
        args.extend(config.args.iter().cloned());
    } else if config.command.is_empty() {
        args.extend(image.config.cmd.iter().cloned());
    }
    if args.is_empty() {
        args.push("app.wasm".into());
    }

    let mut env: Vec<(String, String)> = Vec::new();
    let mut set = |k: &str, v: &str| match env.iter_mut().find(|(key, _)| key == k) {
        Some(entry) => entry.1 = v.to_string(),
        None => env.push((k.to_string(), v.to_string())),
    };
    for kv in &image.config.env {
        let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
        set(k, v);
    }
    for (i, kv) in config.envs.iter().enumerate() {
        if kv.key.is_empty() {
            return Err(Error::InvalidArgument(format!("envs[{i}].key is empty")));
        }
        set(&kv.key, &kv.value);
    }
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
    })
}
