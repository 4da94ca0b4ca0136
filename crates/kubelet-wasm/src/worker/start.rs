//! Starting things, as kubelet's `SyncPod` does: the pod's sandbox (kubelet's labels, so the pod
//! can be found again; cgroup parent from its QoS class; host or pod network), and one container:
//! image per `imagePullPolicy` with pull back-off, volumes, environment, resources, then
//! CreateContainer and StartContainer. A failure leaves the container waiting with kubelet's reason.

use std::collections::HashMap;

use k8s_cri::v1 as cri;
use k8s_openapi::api::core::v1::Container;
use sha2::{Digest, Sha256};

use super::{PodWorker, Sandbox};
use crate::env::{EnvContext, environment, expand};
use crate::{Error, Result, labels, resources, volumes};

/// Why a container could not start: kubelet's waiting reason and a message.
pub(super) struct StartError {
    pub reason: &'static str,
    pub message: String,
}

impl StartError {
    fn new(reason: &'static str, e: impl std::fmt::Display) -> StartError {
        StartError {
            reason,
            message: e.to_string(),
        }
    }
}

/// A short hash of the container's spec (kubelet's `io.kubernetes.container.hash`).
pub(super) fn container_hash(c: &Container) -> String {
    let json = serde_json::to_vec(c).unwrap_or_default();
    hex::encode(&Sha256::digest(&json)[..4])
}

impl PodWorker {
    pub(super) fn log_dir(&self) -> std::path::PathBuf {
        let m = &self.pod.metadata;
        self.settings.log_root.join(format!(
            "{}_{}_{}",
            m.namespace.as_deref().unwrap_or("default"),
            m.name.as_deref().unwrap_or(""),
            self.uid
        ))
    }

    /// The sandbox config kubelet would send for this pod (`generatePodSandboxConfig`).
    pub(super) fn sandbox_config(&self, attempt: u32) -> Result<cri::PodSandboxConfig> {
        let m = &self.pod.metadata;
        let spec = self
            .pod
            .spec
            .as_ref()
            .ok_or_else(|| Error::Config("pod has no spec".into()))?;
        let name = m.name.clone().unwrap_or_default();
        let namespace = m.namespace.clone().unwrap_or_else(|| "default".into());
        let mut sandbox_labels: HashMap<String, String> =
            m.labels.clone().unwrap_or_default().into_iter().collect();
        sandbox_labels.insert(labels::POD_NAME.into(), name.clone());
        sandbox_labels.insert(labels::POD_NAMESPACE.into(), namespace.clone());
        sandbox_labels.insert(labels::POD_UID.into(), self.uid.clone());
        sandbox_labels.insert(labels::MANAGED_BY.into(), self.settings.node.name.clone());
        let mut annotations: HashMap<String, String> = m
            .annotations
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect();
        annotations.insert(
            labels::GRACE_PERIOD.into(),
            spec.termination_grace_period_seconds
                .unwrap_or(30)
                .to_string(),
        );
        let host_network = spec.host_network.unwrap_or(false);
        let mode = |pod_wide: bool| if pod_wide { cri::NamespaceMode::Pod } else { cri::NamespaceMode::Container } as i32;
        let port_mappings = spec
            .containers
            .iter()
            .flat_map(|c| c.ports.iter().flatten())
            .filter(|p| p.host_port.is_some_and(|h| h > 0))
            .map(|p| cri::PortMapping {
                protocol: match p.protocol.as_deref() {
                    Some("UDP") => cri::Protocol::Udp,
                    Some("SCTP") => cri::Protocol::Sctp,
                    _ => cri::Protocol::Tcp,
                } as i32,
                container_port: p.container_port,
                host_port: p.host_port.unwrap_or(0),
                host_ip: p.host_ip.clone().unwrap_or_default(),
            })
            .collect();
        Ok(cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata {
                name: name.clone(),
                namespace,
                uid: self.uid.clone(),
                attempt,
            }),
            hostname: spec
                .hostname
                .clone()
                .unwrap_or_else(|| if host_network { String::new() } else { name }),
            log_directory: self.log_dir().display().to_string(),
            labels: sandbox_labels,
            annotations,
            port_mappings,
            linux: Some(cri::LinuxPodSandboxConfig {
                cgroup_parent: resources::cgroup_parent(&self.pod, &self.uid)?,
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: if host_network {
                            cri::NamespaceMode::Node as i32
                        } else {
                            cri::NamespaceMode::Pod as i32
                        },
                        pid: mode(spec.share_process_namespace.unwrap_or(false)),
                        ipc: if spec.host_ipc.unwrap_or(false) {
                            cri::NamespaceMode::Node as i32
                        } else {
                            cri::NamespaceMode::Pod as i32
                        },
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        })
    }

    /// RunPodSandbox with the next attempt number.
    pub(super) async fn create_sandbox(&mut self) -> Result<()> {
        let attempt = self.sandbox_attempts;
        let config = self.sandbox_config(attempt)?;
        std::fs::create_dir_all(&config.log_directory).map_err(Error::io(&config.log_directory))?;
        let handler = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.runtime_class_name.clone())
            .unwrap_or_default();
        let req = cri::RunPodSandboxRequest {
            config: Some(config.clone()),
            runtime_handler: handler,
        };
        let id = self
            .cri
            .runtime
            .clone()
            .run_pod_sandbox(req)
            .await
            .map_err(Error::cri("RunPodSandbox"))?
            .into_inner()
            .pod_sandbox_id;
        self.sandbox_attempts = attempt + 1;
        let ip = self.sandbox_ip_after_start(&id).await;
        tracing::info!(sandbox.id = %id, attempt, "sandbox started");
        self.sandbox = Some(Sandbox {
            id,
            attempt,
            config,
            ip,
        });
        Ok(())
    }

    async fn sandbox_ip_after_start(&self, id: &str) -> String {
        let host_network = self
            .pod
            .spec
            .as_ref()
            .and_then(|s| s.host_network)
            .unwrap_or(false);
        if host_network {
            return self.settings.node.host_ip.to_string();
        }
        let req = cri::PodSandboxStatusRequest {
            pod_sandbox_id: id.to_string(),
            verbose: false,
        };
        match self.cri.runtime.clone().pod_sandbox_status(req).await {
            Ok(r) => r
                .into_inner()
                .status
                .and_then(|s| s.network)
                .map(|n| n.ip)
                .unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Makes sure the image is there, as `imagePullPolicy` says, within the pull back-off.
    async fn ensure_image(&mut self, c: &Container) -> Result<(), StartError> {
        let image = c.image.clone().unwrap_or_default();
        let policy = c.image_pull_policy.as_deref().unwrap_or("IfNotPresent");
        let spec = cri::ImageSpec {
            image: image.clone(),
            ..Default::default()
        };
        let present = match self
            .cri
            .image
            .clone()
            .image_status(cri::ImageStatusRequest {
                image: Some(spec.clone()),
                verbose: false,
            })
            .await
        {
            Ok(r) => r.into_inner().image.is_some(),
            Err(e) => {
                return Err(StartError::new(
                    "ErrImagePull",
                    format!("ImageStatus: {}", e.message()),
                ));
            }
        };
        if present && policy != "Always" {
            let msg = format!("Container image \"{image}\" already present on machine");
            self.event(Some(&c.name), "Normal", "Pulled", msg);
            return Ok(());
        }
        if policy == "Never" {
            let msg =
                format!("Container image \"{image}\" is not present with pull policy of Never");
            self.event(Some(&c.name), "Warning", "ErrImageNeverPull", msg.clone());
            return Err(StartError::new("ErrImageNeverPull", msg));
        }
        let now = std::time::SystemTime::now();
        if self.pull_backoff.remaining(&image, now, now).is_some() {
            let msg = format!("Back-off pulling image \"{image}\"");
            self.event(Some(&c.name), "Normal", "BackOff", msg.clone());
            // kubelet follows both pull outcomes with the container's waiting reason.
            let error = "Error: ImagePullBackOff".to_string();
            self.event(Some(&c.name), "Warning", "Failed", error);
            return Err(StartError::new("ImagePullBackOff", msg));
        }
        self.event(
            Some(&c.name),
            "Normal",
            "Pulling",
            format!("Pulling image \"{image}\""),
        );
        let started = std::time::Instant::now();
        let req = cri::PullImageRequest {
            image: Some(spec),
            auth: None,
            sandbox_config: self.sandbox.as_ref().map(|s| s.config.clone()),
        };
        match self.cri.image.clone().pull_image(req).await {
            Ok(_) => {
                self.pull_backoff.forget(&image);
                self.event(
                    Some(&c.name),
                    "Normal",
                    "Pulled",
                    format!(
                        "Successfully pulled image \"{image}\" in {:?}",
                        started.elapsed()
                    ),
                );
                Ok(())
            }
            Err(e) => {
                self.pull_backoff.next(&image, std::time::SystemTime::now());
                let msg = format!("Failed to pull image \"{image}\": {}", e.message());
                self.event(Some(&c.name), "Warning", "Failed", msg.clone());
                let error = "Error: ErrImagePull".to_string();
                self.event(Some(&c.name), "Warning", "Failed", error);
                Err(StartError {
                    reason: "ErrImagePull",
                    message: msg,
                })
            }
        }
    }

    /// Starts a new instance of `c`: image, config, CreateContainer, StartContainer.
    pub(super) async fn start_container(
        &mut self,
        c: &Container,
        init: bool,
    ) -> Result<(), StartError> {
        self.ensure_image(c).await?;
        let sandbox = self
            .sandbox
            .clone()
            .ok_or_else(|| StartError::new("ContainerCreating", "the pod has no sandbox"))?;
        let tracked = self.containers.entry(c.name.clone()).or_default();
        let attempt = if tracked.latest.is_some() || tracked.previous.is_some() {
            tracked.restart_count + 1
        } else {
            tracked.restart_count
        };
        let config = match self.container_config(c, attempt, &sandbox, init) {
            Ok(config) => config,
            Err(e) => {
                let msg = format!("Error: {e}");
                self.event(Some(&c.name), "Warning", "Failed", msg);
                return Err(StartError::new("CreateContainerConfigError", e));
            }
        };
        let req = cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.id.clone(),
            config: Some(config),
            sandbox_config: Some(sandbox.config.clone()),
        };
        let id = match self.cri.runtime.clone().create_container(req).await {
            Ok(r) => r.into_inner().container_id,
            Err(e) => {
                let msg = e.message().to_string();
                self.event(Some(&c.name), "Warning", "Failed", format!("Error: {msg}"));
                return Err(StartError {
                    reason: "CreateContainerError",
                    message: msg,
                });
            }
        };
        self.event(
            Some(&c.name),
            "Normal",
            "Created",
            format!("Created container: {}", c.name),
        );
        if let Err(e) = self
            .cri
            .runtime
            .clone()
            .start_container(cri::StartContainerRequest {
                container_id: id.clone(),
            })
            .await
        {
            let msg = e.message().to_string();
            self.event(Some(&c.name), "Warning", "Failed", format!("Error: {msg}"));
            return Err(StartError {
                reason: "RunContainerError",
                message: msg,
            });
        }
        self.event(
            Some(&c.name),
            "Normal",
            "Started",
            format!("Started container {}", c.name),
        );
        let t = self.containers.entry(c.name.clone()).or_default();
        t.restart_count = attempt;
        t.waiting = None;
        Ok(())
    }

    fn container_config(
        &mut self,
        c: &Container,
        attempt: u32,
        sandbox: &Sandbox,
        init: bool,
    ) -> Result<cri::ContainerConfig> {
        if self.volumes.is_none() {
            let prepared = volumes::prepare(
                &self.pod,
                &self.settings.pod_dir(&self.uid),
                &self.settings.objects,
            );
            // kubelet's volume manager reports on the pod, not on a container.
            if let Err(e) = &prepared {
                let msg = format!("MountVolume.SetUp failed: {e}");
                self.event(None, "Warning", "FailedMount", msg);
            }
            self.volumes = Some(prepared?);
        }
        let vols = self.volumes.as_ref().expect("prepared above");
        let mounts = volumes::mounts(&self.pod, c, vols)?;
        let node = &self.settings.node;
        let ctx = EnvContext {
            pod: &self.pod,
            pod_ip: &sandbox.ip,
            host_ip: &node.host_ip.to_string(),
            node_name: &node.name,
            node_cpu_millis: node.cpu_allocatable_millis,
            node_memory_bytes: node.memory_allocatable_bytes,
            objects: &self.settings.objects,
        };
        let env = environment(c, &ctx)?;
        let expand_all = |v: &Option<Vec<String>>| {
            v.iter()
                .flatten()
                .map(|s| expand(s, &env))
                .collect::<Vec<_>>()
        };
        let m = &self.pod.metadata;
        let container_labels = HashMap::from([
            (
                labels::POD_NAME.to_string(),
                m.name.clone().unwrap_or_default(),
            ),
            (
                labels::POD_NAMESPACE.to_string(),
                m.namespace.clone().unwrap_or_default(),
            ),
            (labels::POD_UID.to_string(), self.uid.clone()),
            (labels::CONTAINER_NAME.to_string(), c.name.clone()),
        ]);
        let mut annotations = HashMap::from([
            (labels::RESTART_COUNT.to_string(), attempt.to_string()),
            (labels::CONTAINER_HASH.to_string(), container_hash(c)),
        ]);
        if init {
            annotations.insert(labels::CONTAINER_KIND.into(), "init".into());
        }
        // As kubelet: the declared ports, for the runtime (wasmlet serves a wasi:http handler on
        // the first TCP one).
        if let Some(ports) = c.ports.as_ref().filter(|p| !p.is_empty()) {
            let declared: Vec<serde_json::Value> = ports
                .iter()
                .map(|p| {
                    let mut v = serde_json::json!({"containerPort": p.container_port, "protocol": p.protocol.clone().unwrap_or_else(|| "TCP".into())});
                    if let Some(name) = &p.name {
                        v["name"] = serde_json::json!(name);
                    }
                    v
                })
                .collect();
            annotations.insert("io.kubernetes.container.ports".into(), serde_json::Value::from(declared).to_string());
        }
        Ok(cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata {
                name: c.name.clone(),
                attempt,
            }),
            image: Some(cri::ImageSpec {
                image: c.image.clone().unwrap_or_default(),
                ..Default::default()
            }),
            command: expand_all(&c.command),
            args: expand_all(&c.args),
            working_dir: c.working_dir.clone().unwrap_or_default(),
            envs: env
                .iter()
                .map(|(k, v)| cri::KeyValue {
                    key: k.clone(),
                    value: v.clone(),
                })
                .collect(),
            mounts,
            log_path: format!("{}/{attempt}.log", c.name),
            labels: container_labels,
            annotations,
            stdin: c.stdin.unwrap_or(false),
            stdin_once: c.stdin_once.unwrap_or(false),
            tty: c.tty.unwrap_or(false),
            linux: Some(cri::LinuxContainerConfig {
                resources: Some(resources::container_resources(
                    &self.pod,
                    c,
                    node.memory_capacity_bytes,
                )?),
                ..Default::default()
            }),
            ..Default::default()
        })
    }
}
