//! RunPodSandbox: validate the config, reserve the pod's name, make the pod's cgroup and apply
//! the pod-level resources, start its shim inside it, record it. Every step is undone if a later
//! one fails (the cgroup by a drop guard, so also when the request is cancelled).

use std::sync::Arc;

use k8s_cri::v1::{PodSandboxMetadata, RunPodSandboxRequest, RunPodSandboxResponse};
use wasmlet_shim::protocol::now_nanos;

use crate::ids::new_id;
use crate::runtime::sandbox_network;
use crate::runtime::cgroup::{self, CgroupGuard};
use crate::service::require;
use crate::store::{SandboxRecord, SandboxState};
use crate::{Error, Runtime};


pub(crate) fn sandbox_name(md: &PodSandboxMetadata) -> String {
    format!("{}_{}_{}_{}", md.name, md.namespace, md.uid, md.attempt)
}

impl Runtime {
    pub async fn run_pod_sandbox(self: &Arc<Self>, req: RunPodSandboxRequest) -> Result<RunPodSandboxResponse, Error> {
        let begin = std::time::Instant::now();
        let config = req.config.ok_or_else(|| Error::InvalidArgument("config is required".into()))?;
        let md = config.metadata.as_ref().ok_or_else(|| Error::InvalidArgument("config.metadata is required".into()))?;
        require(&md.name, "config.metadata.name")?;
        require(&md.namespace, "config.metadata.namespace")?;
        require(&md.uid, "config.metadata.uid")?;
        if self.opts.handlers.kind(&req.runtime_handler).is_none() {
            return Err(Error::InvalidArgument(format!(
                "runtime_handler {:?} is not configured (known: {})",
                req.runtime_handler,
                self.opts.handlers.names().join(", ")
            )));
        }
        // Everything that can be refused is checked before anything is made.
        let pod_cgroup = match &self.cgroups {
            Some(_) => Some(cgroup::pod_cgroup(&config)?),
            None => None,
        };
        let linux = config.linux.as_ref();
        let pod_resources = cgroup::validated("config.linux.resources", linux.and_then(|l| l.resources.as_ref()))?;
        let id = new_id();
        let name = sandbox_name(md);
        let reservation = self.names.reserve(&name, &id)?;
        let shim_dir = self.opts.shim_dir(&id);
        // The pod cgroup (and on v2 the shim's leaf in it), made by `setup_cgroups`; on v1 while
        // the zygote forks the shim, which is moved in afterwards; on v2 before, so that the shim
        // is born in its leaf (CLONE_INTO_CGROUP).
        let kubelet_parent = config.linux.as_ref().is_some_and(|l| !l.cgroup_parent.is_empty());
        let shim_cgroup = match (&self.cgroups, &pod_cgroup) {
            (Some(cgroups), Some(pod)) => Some(cgroups.shim_cgroup(pod)?),
            _ => None,
        };
        let setup_cgroups = || -> Result<(Option<CgroupGuard<'_>>, String, bool, std::time::Duration), Error> {
            let (Some(cgroups), Some(pod), Some(shim_cgroup)) = (&self.cgroups, &pod_cgroup, &shim_cgroup) else {
                return Ok((None, String::new(), false, std::time::Duration::ZERO));
            };
            let start = std::time::Instant::now();
            // A pod cgroup kubelet made stays kubelet's: we only add to it. One we laid out
            // ourselves (no cgroup_parent) is ours even if a crash left it behind.
            let owned = !kubelet_parent || !cgroups.exists(&pod.path);
            // Rolled back on failure: the pod cgroup if it is ours, else the shim's leaf (v2).
            let made = if owned { Some(pod.path.clone()) } else { (*shim_cgroup != pod.path).then(|| shim_cgroup.clone()) };
            let guard = CgroupGuard::new(cgroups, made);
            cgroups.manager.create(&pod.path)?;
            if *shim_cgroup != pod.path {
                cgroups.manager.create(shim_cgroup)?;
            }
            if let Some(r) = &pod_resources {
                cgroups.manager.apply(&pod.path, r)?;
            }
            Ok((Some(guard), cgroup::parent_value(&config, pod), owned, start.elapsed()))
        };
        let born_in = match (&self.cgroups, &shim_cgroup) {
            (Some(cgroups), Some(path)) => cgroups.v2_dir(path),
            _ => None,
        };
        // A pod without hostNetwork gets its own network namespace, made and pinned by its shim.
        let netns = (!sandbox_network::host_network(&config)).then(|| self.opts.netns_pin(&id));
        let spawn_start = std::time::Instant::now();
        let (spawned, made) = if born_in.is_some() {
            let made = setup_cgroups()?;
            (self.spawn_shim(&id, &shim_dir, netns.as_deref(), born_in.as_deref()).await, made)
        } else {
            // join! polls the spawn first: the zygote forks while the mkdirs run here.
            match tokio::join!(self.spawn_shim(&id, &shim_dir, netns.as_deref(), None), async { setup_cgroups() }) {
                (spawned, Ok(made)) => (spawned, made),
                (spawned, Err(e)) => {
                    self.abandon_shim(&id, &shim_dir, netns.as_deref(), spawned.is_ok()).await;
                    return Err(e);
                }
            }
        };
        let (cgroup_guard, cgroup_parent, cgroup_owned, cgroup_time) = made;
        let (shim_pid, placed) = match spawned {
            Ok(spawned) => spawned,
            Err(e) => {
                self.abandon_shim(&id, &shim_dir, netns.as_deref(), false).await;
                return Err(e.into());
            }
        };
        let spawn_time = spawn_start.elapsed();
        let attach_start = std::time::Instant::now();
        if let (Some(cgroups), Some(path), false) = (&self.cgroups, &shim_cgroup, placed)
            && let Err(e) = cgroups.manager.add_task(path, wasmlet_cgroups::Task::Process(shim_pid))
        {
            self.abandon_shim(&id, &shim_dir, netns.as_deref(), true).await;
            return Err(e.into());
        }
        let attach_time = attach_start.elapsed();
        let cni = match &netns {
            Some(pin) => match self.attach_network(&id, &config, pin).await {
                Ok(cni) => cni,
                Err(e) => {
                    // The plugins already run were undone by the CNI layer; now the rest.
                    self.abandon_shim(&id, &shim_dir, Some(pin), true).await;
                    return Err(e);
                }
            },
            None => None,
        };
        tracing::debug!(
            sandbox.id = %id,
            cgroup.parent = %cgroup_parent,
            cgroup.setup_us = cgroup_time.as_micros() as u64,
            cgroup.attach_us = attach_time.as_micros() as u64,
            cgroup.born_in = placed,
            "pod cgroup ready"
        );
        let record = SandboxRecord {
            id: id.clone(),
            name,
            runtime_handler: req.runtime_handler,
            config,
            state: SandboxState::Ready,
            created_at: now_nanos(),
            shim_pid,
            cgroup_parent,
            cgroup_owned,
            ips: sandbox_network::ips(&cni),
            netns,
            cni,
        };
        let record_start = std::time::Instant::now();
        if let Err(e) = self.sandboxes.insert(record.clone()) {
            let _ = self.detach_network(&record).await;
            let _ = self.remove_netns(&record);
            let _ = self.shim(&id).shutdown().await;
            self.forget_shim(&id);
            let _ = std::fs::remove_dir_all(&shim_dir);
            return Err(e);
        }
        reservation.commit();
        if let Some(guard) = cgroup_guard {
            guard.disarm();
        }
        // The exit subscription is made off the reply's path: the shim replays exits that
        // happened before it (a container created and run before the subscription lands).
        let runtime = Arc::clone(self);
        let watched = id.clone();
        tokio::spawn(async move {
            let _ = runtime.shim(&watched).warm().await;
            if !runtime.watch_shim(&watched).await {
                tracing::warn!(sandbox.id = %watched, "shim stopped answering right after start");
            }
        });
        tracing::debug!(
            sandbox.id = %id,
            spawn_us = spawn_time.as_micros() as u64,
            record_us = record_start.elapsed().as_micros() as u64,
            total_us = begin.elapsed().as_micros() as u64,
            "RunPodSandbox timings"
        );
        tracing::info!(sandbox.id = %id, shim.pid = shim_pid, ips = ?record.ips, "pod sandbox ready");
        Ok(RunPodSandboxResponse { pod_sandbox_id: id })
    }

    /// Undoes a shim start RunPodSandbox gives up on: shuts the shim down if it `started`,
    /// unpins the pod's network namespace and removes the shim's directory.
    async fn abandon_shim(&self, id: &str, shim_dir: &std::path::Path, netns: Option<&std::path::Path>, started: bool) {
        if started {
            let _ = self.shim(id).shutdown().await;
            self.forget_shim(id);
        }
        if let Some(pin) = netns {
            let _ = wasmlet_shim::netns::remove(pin);
        }
        let _ = std::fs::remove_dir_all(shim_dir);
    }

    /// Forks the shim from the zygote (born in the cgroup v2 directory `cgroup` if given), or
    /// execs it when there is no zygote or it failed. Returns its pid and whether it was born in
    /// `cgroup`.
    async fn spawn_shim(
        &self,
        id: &str,
        shim_dir: &std::path::Path,
        netns: Option<&std::path::Path>,
        cgroup: Option<&std::path::Path>,
    ) -> Result<(u32, bool), wasmlet_shim::Error> {
        if let Some(zygote) = &self.opts.zygote {
            match zygote.spawn_in(id, shim_dir, netns, cgroup).await {
                Ok(spawned) => return Ok((spawned.pid, spawned.placed)),
                Err(e) => tracing::warn!(error = %e, "zygote could not fork the shim; starting it by exec"),
            }
            if let Some(pin) = netns {
                let _ = wasmlet_shim::netns::remove(pin);
            }
        }
        wasmlet_shim::spawn::spawn_shim_in(&self.opts.shim_exe, id, shim_dir, netns, &self.opts.shim_log_filter).await.map(|pid| (pid, false))
    }
}
