//! `wasmlet node` end to end: the real agent binary, pointed at a real `wasmlet daemon` over its
//! socket, running static pods from a manifests folder. Each test has its own daemon and its own
//! agent (root, node name, manifests); the agent runs with a short relist period and, where the
//! test needs it, a shortened restart back-off.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant, SystemTime};

use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use wasmlet_cri::k8s_cri::v1 as cri;
use wasmlet_kubelet::board::{PodRecord, Snapshot};

use crate::harness::*;

/// A running `wasmlet node --manifests` against a test's daemon.
struct Agent {
    dir: PathBuf,
    manifests: PathBuf,
    root: PathBuf,
    socket: PathBuf,
    node: String,
    extra: Vec<String>,
    child: std::sync::Mutex<Option<Child>>,
}

impl Agent {
    /// Starts the agent on `d`'s socket; `extra` are more flags (e.g. the back-off).
    fn start(d: &Daemon, test: &str, extra: &[&str]) -> Agent {
        let dir = d.dir.join("agent");
        let manifests = dir.join("manifests");
        std::fs::create_dir_all(&manifests).unwrap();
        let a = Agent {
            root: dir.join("root"),
            dir,
            manifests,
            socket: d.socket.clone(),
            node: format!("node-{test}"),
            extra: extra.iter().map(|s| s.to_string()).collect(),
            child: std::sync::Mutex::new(None),
        };
        a.spawn();
        a
    }

    fn spawn(&self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("agent.log"))
            .unwrap();
        let child = Command::new(WASMLET)
            .arg("node")
            .arg("--manifests")
            .arg(&self.manifests)
            .arg("--endpoint")
            .arg(format!("unix://{}", self.socket.display()))
            .arg("--root")
            .arg(&self.root)
            .args([
                "--node-name",
                &self.node,
                "--resync-ms",
                "200",
                "--poll-ms",
                "200",
            ])
            .args(&self.extra)
            .env("WASMLET_LOG", "info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning wasmlet node");
        *self.child.lock().unwrap() = Some(child);
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("agent.log")).unwrap_or_default()
    }

    /// `kill -9` of the agent (its pods keep running in the runtime).
    fn kill9(&self) {
        let mut c = self
            .child
            .lock()
            .unwrap()
            .take()
            .expect("the agent is not running");
        c.kill().unwrap();
        c.wait().unwrap();
    }

    fn put(&self, file: &str, yaml: &str) {
        // Written beside and renamed, so the agent never reads half a file.
        let tmp = self.manifests.join(format!(".{file}.tmp"));
        std::fs::write(&tmp, yaml).unwrap();
        std::fs::rename(&tmp, self.manifests.join(file)).unwrap();
    }

    fn delete(&self, file: &str) {
        std::fs::remove_file(self.manifests.join(file)).unwrap();
    }

    fn snapshot(&self) -> Result<Snapshot, String> {
        let path = self.root.join("status.json");
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        serde_json::from_slice(&bytes).map_err(|e| format!("{}: {e}", path.display()))
    }

    fn record(&self, name: &str) -> Result<PodRecord, String> {
        let s = self.snapshot()?;
        s.pods
            .into_iter()
            .find(|r| r.pod.metadata.name.as_deref() == Some(name))
            .ok_or_else(|| format!("no pod {name} in the state file"))
    }

    /// Polls the state file until `check` accepts the pod `name`.
    async fn wait_pod<T>(
        &self,
        name: &str,
        timeout: Duration,
        what: &str,
        check: impl Fn(&Pod) -> Result<T, String>,
    ) -> T {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(c) = self.child.lock().unwrap().as_mut()
                && let Some(status) = c.try_wait().unwrap()
            {
                panic!(
                    "wasmlet node exited with {status}; its log:\n{}",
                    self.log()
                );
            }
            let r = self
                .record(name)
                .and_then(|r| check(&r.pod).map_err(|e| format!("{e}; status: {}", brief(&r.pod))));
            match r {
                Ok(v) => return v,
                Err(e) if Instant::now() > deadline => {
                    panic!(
                        "timed out after {timeout:?} waiting for {name}: {what}: {e}\nagent log:\n{}",
                        self.log()
                    )
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }

    /// Runs `wasmlet node <args>` against this agent's root.
    fn cli(&self, args: &[&str]) -> (String, String) {
        let out = Command::new(WASMLET)
            .arg("node")
            .args(args)
            .arg("--root")
            .arg(&self.root)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "wasmlet node {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.lock().unwrap().take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("agent log:\n{}", self.log());
        }
    }
}

fn brief(pod: &Pod) -> String {
    serde_json::to_string(&pod.status).unwrap_or_default()
}

fn phase(pod: &Pod) -> String {
    pod.status
        .as_ref()
        .and_then(|s| s.phase.clone())
        .unwrap_or_default()
}

fn container<'a>(pod: &'a Pod, name: &str) -> Result<&'a ContainerStatus, String> {
    let s = pod.status.as_ref().ok_or("no status")?;
    s.container_statuses
        .iter()
        .flatten()
        .chain(s.init_container_statuses.iter().flatten())
        .find(|c| c.name == name)
        .ok_or(format!("no status for {name}"))
}

fn uid(pod: &Pod) -> String {
    pod.metadata.uid.clone().unwrap_or_default()
}

/// The sandboxes the runtime has for a pod uid.
async fn sandboxes_of(d: &Daemon, uid: &str) -> Vec<cri::PodSandbox> {
    let filter = cri::PodSandboxFilter {
        label_selector: HashMap::from([("io.kubernetes.pod.uid".to_string(), uid.to_string())]),
        ..Default::default()
    };
    d.rt()
        .list_pod_sandbox(cri::ListPodSandboxRequest {
            filter: Some(filter),
        })
        .await
        .unwrap()
        .into_inner()
        .items
}

async fn containers_of(d: &Daemon, sandbox: &str) -> Vec<cri::Container> {
    let filter = cri::ContainerFilter {
        pod_sandbox_id: sandbox.to_string(),
        ..Default::default()
    };
    d.rt()
        .list_containers(cri::ListContainersRequest {
            filter: Some(filter),
        })
        .await
        .unwrap()
        .into_inner()
        .containers
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn pod_yaml(name: &str, body: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Pod\nmetadata:\n  name: {name}\n  namespace: {NAMESPACE}\nspec:\n  hostNetwork: true\n{body}"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn static_pods_come_up_with_env_volumes_and_init_containers() {
    let d = Daemon::start("node-static", &[LOGGER_P1, HELLO_P1, READER_P1]).await;
    let agent = Agent::start(&d, "static", &[]);
    agent.put(
        "web.yaml",
        &pod_yaml(
            "web",
            &format!(
                "  containers:\n  - name: logger\n    image: {}\n    imagePullPolicy: Never\n    args: ['100']\n",
                LOGGER_P1.image
            ),
        ),
    );
    agent.put(
        "job.yaml",
        &format!(
            "kind: ConfigMap\nmetadata: {{name: settings, namespace: {NAMESPACE}}}\ndata: {{colour: blue}}\n---\n{}",
            pod_yaml(
                "job",
                &format!(
                    concat!(
                        "  restartPolicy: Never\n",
                        "  initContainers:\n  - name: read-config\n    image: {reader}\n    imagePullPolicy: IfNotPresent\n    args: ['/config']\n",
                        "    volumeMounts: [{{name: config, mountPath: /config}}]\n",
                        "  containers:\n  - name: hello\n    image: {hello}\n    imagePullPolicy: IfNotPresent\n",
                        "    resources: {{limits: {{memory: 64Mi}}}}\n",
                        "    env:\n    - {{name: POD, valueFrom: {{fieldRef: {{fieldPath: metadata.name}}}}}}\n",
                        "    - {{name: NODE, valueFrom: {{fieldRef: {{fieldPath: spec.nodeName}}}}}}\n",
                        "    - {{name: MEM_MI, valueFrom: {{resourceFieldRef: {{resource: limits.memory, divisor: 1Mi}}}}}}\n",
                        "    - {{name: COLOUR, valueFrom: {{configMapKeyRef: {{name: settings, key: colour}}}}}}\n",
                        "    - {{name: SAID, value: 'pod $(POD) on $(NODE)'}}\n",
                        "  volumes:\n  - {{name: config, configMap: {{name: settings}}}}\n"
                    ),
                    reader = READER_P1.image,
                    hello = HELLO_P1.image
                ),
            )
        ),
    );
    agent.put("broken.yaml", "spec: [this is not a pod");
    agent.put("empty.yaml", &pod_yaml("empty", "  containers: []\n"));
    // Written after web.yaml: same namespace/name, so it is refused and web carries on.
    agent.put(
        "z-duplicate.yaml",
        &pod_yaml(
            "web",
            &format!(
                "  containers:\n  - {{name: other, image: {}}}\n",
                LOGGER_P1.image
            ),
        ),
    );
    // An image that never pulls (nothing listens on port 1).
    agent.put(
        "nopull.yaml",
        &pod_yaml(
            "nopull",
            "  containers:\n  - {name: c, image: '127.0.0.1:1/nothing:v1'}\n",
        ),
    );

    let web = agent
        .wait_pod("web", Duration::from_secs(15), "Running and ready", |p| {
            let c = container(p, "logger")?;
            if phase(p) == "Running" && c.ready {
                Ok(p.clone())
            } else {
                Err("not yet".into())
            }
        })
        .await;
    let job = agent
        .wait_pod("job", Duration::from_secs(15), "Succeeded", |p| {
            if phase(p) == "Succeeded" {
                Ok(p.clone())
            } else {
                Err("not yet".into())
            }
        })
        .await;
    let init = container(&job, "read-config").unwrap();
    let t = init
        .state
        .as_ref()
        .unwrap()
        .terminated
        .as_ref()
        .expect("the init container terminated");
    assert_eq!((t.exit_code, t.reason.as_deref()), (0, Some("Completed")));
    let hello = container(&job, "hello")
        .unwrap()
        .state
        .as_ref()
        .unwrap()
        .terminated
        .clone()
        .expect("hello terminated");
    assert!(
        hello.started_at.unwrap().0 >= t.finished_at.clone().unwrap().0,
        "hello ran after its init container"
    );

    // What the guests saw: the ConfigMap as files, and the environment kubelet would give.
    let rec = agent.record("job").unwrap();
    let init_log = stdout_lines(&Path::new(&rec.log_dir).join("read-config/0.log"));
    assert!(
        init_log.contains(&"file colour: blue".to_string()),
        "{init_log:?}"
    );
    let env = stdout_lines(&Path::new(&rec.log_dir).join("hello/0.log"));
    for want in [
        "env POD=job",
        &format!("env NODE={}", agent.node),
        "env MEM_MI=64",
        "env COLOUR=blue",
        &format!("env SAID=pod job on {}", agent.node),
    ] {
        assert!(env.iter().any(|l| l == want), "{want:?} not in {env:?}");
    }

    // The sandbox carries kubelet's labels and QoS cgroup.
    let sbs = sandboxes_of(&d, &uid(&web)).await;
    assert_eq!(sbs.len(), 1, "{sbs:?}");
    assert_eq!(
        sbs[0]
            .labels
            .get("io.kubernetes.pod.name")
            .map(String::as_str),
        Some("web")
    );
    assert_eq!(
        web.status.as_ref().unwrap().qos_class.as_deref(),
        Some("BestEffort")
    );
    let cond = |p: &Pod, t: &str| {
        p.status
            .as_ref()
            .unwrap()
            .conditions
            .iter()
            .flatten()
            .find(|c| c.type_ == t)
            .map(|c| c.status.clone())
    };
    assert_eq!(cond(&web, "Ready").as_deref(), Some("True"));

    // What a person sees.
    let (table, errors) = agent.cli(&["pods"]);
    let lines: Vec<Vec<&str>> = table
        .lines()
        .map(|l| l.split_whitespace().collect())
        .collect();
    assert_eq!(
        lines[0],
        ["NAME", "READY", "STATUS", "RESTARTS", "AGE"],
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l[..4] == ["web", "1/1", "Running", "0"]),
        "{table}"
    );
    assert!(
        lines
            .iter()
            .any(|l| l[..4] == ["job", "0/1", "Completed", "0"]),
        "{table}"
    );
    assert!(
        errors.contains("broken.yaml") && errors.contains("invalid YAML"),
        "{errors}"
    );
    assert!(
        errors.contains("empty.yaml") && errors.contains("spec.containers: Required value"),
        "{errors}"
    );
    assert!(
        errors.contains("z-duplicate.yaml")
            && errors.contains(&format!("duplicate pod {NAMESPACE}/web")),
        "{errors}"
    );
    let nopull = agent
        .wait_pod("nopull", Duration::from_secs(15), "ImagePullBackOff", |p| {
            let w = container(p, "c")?
                .state
                .as_ref()
                .and_then(|s| s.waiting.clone())
                .and_then(|w| w.reason);
            if w.as_deref() == Some("ImagePullBackOff") && phase(p) == "Pending" {
                Ok(p.clone())
            } else {
                Err(format!("waiting {w:?}"))
            }
        })
        .await;
    let events = agent.record("nopull").unwrap().events;
    assert!(
        events.iter().any(|e| e.reason == "Failed"
            && e.message
                .starts_with("Failed to pull image \"127.0.0.1:1/nothing:v1\"")),
        "{events:?}"
    );
    // kubelet's events for the waiting reasons, about the container (what cluster mode posts).
    for message in ["Error: ErrImagePull", "Error: ImagePullBackOff"] {
        assert!(
            events.iter().any(|e| e.type_ == "Warning"
                && e.reason == "Failed"
                && e.message == message
                && e.field_path.as_deref() == Some("spec.containers{c}")),
            "{message}: {events:?}"
        );
    }
    assert!(
        sandboxes_of(&d, &uid(&nopull)).await.len() == 1,
        "the pod has its sandbox, waiting for its image"
    );
    let (logs, _) = agent.cli(&["logs", "web", "-c", "logger"]);
    assert!(logs.starts_with("tick 1\n"), "{logs:?}");

    // Removing the manifest removes the pod from the runtime and the agent.
    agent.delete("job.yaml");
    eventually(
        Duration::from_secs(10),
        "job's sandbox to be removed",
        || async {
            let left = sandboxes_of(&d, &uid(&job)).await;
            if left.is_empty() && agent.record("job").is_err() {
                Ok(())
            } else {
                Err(format!("{} sandboxes", left.len()))
            }
        },
    )
    .await;
    assert_eq!(
        phase(&agent.record("web").unwrap().pod),
        "Running",
        "the other pod carries on"
    );
}

/// The restarts of a container, from the runtime: (attempt, started, finished) of every instance seen.
/// Start and finish times of a container's exited instances, by attempt, until attempt `last`
/// has exited. The agent keeps only the latest two instances (as kubelet's GC keeps one dead
/// one), so instances that ended before the watch began may be missing.
async fn watch_instances(
    d: &Daemon,
    sandbox: &str,
    last: u32,
    timeout: Duration,
) -> BTreeMap<u32, (SystemTime, SystemTime)> {
    let mut seen: BTreeMap<u32, (SystemTime, SystemTime)> = BTreeMap::new();
    let deadline = Instant::now() + timeout;
    let at = |n: i64| SystemTime::UNIX_EPOCH + Duration::from_nanos(n as u64);
    while !seen.contains_key(&last) {
        assert!(
            Instant::now() < deadline,
            "attempt {last} did not exit in {timeout:?}; saw {seen:?}"
        );
        for c in containers_of(d, sandbox).await {
            // The agent may remove an old instance between the listing and this call.
            let req = cri::ContainerStatusRequest { container_id: c.id.clone(), verbose: false };
            let s = match d.cri.runtime.clone().container_status(req).await {
                Ok(r) => r.into_inner().status.expect("ContainerStatus without a status"),
                Err(e) if e.code() == tonic::Code::NotFound => continue,
                Err(e) => panic!("ContainerStatus {}: {e:?}", c.id),
            };
            if s.state == cri::ContainerState::ContainerExited as i32 {
                seen.insert(
                    s.metadata.unwrap().attempt,
                    (at(s.started_at), at(s.finished_at)),
                );
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashing_container_backs_off_on_kubelets_schedule() {
    let d = Daemon::start("node-backoff", &[EXIT_CODE_P1]).await;
    // Back-off 1 s doubling to 4 s (kubelet: 10 s to 5 min).
    let agent = Agent::start(
        &d,
        "backoff",
        &["--backoff-base-ms", "1000", "--backoff-max-ms", "4000"],
    );
    agent.put(
        "crash.yaml",
        &pod_yaml("crash", &format!("  containers:\n  - name: crash\n    image: {}\n    imagePullPolicy: Never\n    args: ['3', 'bye']\n", EXIT_CODE_P1.image)),
    );
    let pod = agent
        .wait_pod(
            "crash",
            Duration::from_secs(15),
            "a restart in back-off",
            |p| {
                let c = container(p, "crash")?;
                let waiting = c
                    .state
                    .as_ref()
                    .and_then(|s| s.waiting.as_ref())
                    .and_then(|w| w.reason.clone());
                if waiting.as_deref() == Some("CrashLoopBackOff") {
                    Ok(p.clone())
                } else {
                    Err(format!("waiting {waiting:?}"))
                }
            },
        )
        .await;
    let c = container(&pod, "crash").unwrap();
    let last = c
        .last_state
        .as_ref()
        .and_then(|s| s.terminated.as_ref())
        .expect("lastState.terminated");
    assert_eq!((last.exit_code, last.reason.as_deref()), (3, Some("Error")));
    assert_eq!(
        phase(&pod),
        "Running",
        "restartPolicy Always: the pod stays Running"
    );
    let msg = c
        .state
        .as_ref()
        .unwrap()
        .waiting
        .as_ref()
        .unwrap()
        .message
        .clone()
        .unwrap_or_default();
    assert!(
        msg.starts_with("back-off ") && msg.contains("restarting failed container=crash"),
        "{msg}"
    );

    let sandbox = sandboxes_of(&d, &uid(&pod)).await.remove(0).id;
    let seen = watch_instances(&d, &sandbox, 5, Duration::from_secs(40)).await;
    // kubelet: the first restart at once, then 1, 2, 4, 4 s after each exit. Gaps are matched by
    // attempt number: under load the watch can begin after the agent removed attempt 0.
    let expected = [0u64, 1000, 2000, 4000, 4000];
    let mut checked = 0;
    for (i, want) in expected.iter().enumerate() {
        let (Some(before), Some(after)) = (seen.get(&(i as u32)), seen.get(&(i as u32 + 1))) else {
            continue;
        };
        let gap = after.0.duration_since(before.1).unwrap_or_default();
        let want = Duration::from_millis(*want);
        assert!(
            gap + Duration::from_millis(50) >= want && gap <= want + Duration::from_millis(1500),
            "restart {} came {gap:?} after the exit; kubelet's schedule says {want:?} (all: {seen:?})",
            i + 1
        );
        checked += 1;
    }
    assert!(
        checked >= 3,
        "the doubling and the cap (restarts 3 to 5) must all be seen: {seen:?}"
    );
    let (table, _) = agent.cli(&["pods"]);
    assert!(
        table.contains("CrashLoopBackOff") || table.contains("Error"),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oom_killed_container_restarts_with_last_state_oomkilled() {
    let d = Daemon::start("node-oom", &[MEM_GROWER_P1]).await;
    let agent = Agent::start(
        &d,
        "oom",
        &["--backoff-base-ms", "500", "--backoff-max-ms", "1000"],
    );
    agent.put(
        "grower.yaml",
        &pod_yaml(
            "grower",
            &format!(
                "  restartPolicy: OnFailure\n  containers:\n  - name: grower\n    image: {}\n    imagePullPolicy: Never\n    args: ['4', '10']\n    resources: {{limits: {{memory: 32Mi}}}}\n",
                MEM_GROWER_P1.image
            ),
        ),
    );
    let pod = agent
        .wait_pod(
            "grower",
            Duration::from_secs(20),
            "a restart after an OOM kill",
            |p| {
                let c = container(p, "grower")?;
                let last = c
                    .last_state
                    .as_ref()
                    .and_then(|s| s.terminated.as_ref())
                    .ok_or("no lastState yet")?;
                if c.restart_count >= 1 {
                    Ok((p.clone(), last.clone()))
                } else {
                    Err("no restart yet".into())
                }
            },
        )
        .await;
    assert_eq!(
        (pod.1.exit_code, pod.1.reason.as_deref()),
        (137, Some("OOMKilled")),
        "{}",
        brief(&pod.0)
    );
    assert_eq!(
        pod.0.status.as_ref().unwrap().qos_class.as_deref(),
        Some("Burstable")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn probes_fail_and_recover() {
    let d = Daemon::start("node-probes", &[HTTP_SERVER_P2, LOGGER_P1]).await;
    let agent = Agent::start(
        &d,
        "probes",
        &["--backoff-base-ms", "500", "--backoff-max-ms", "1000"],
    );
    let port = free_port();
    let server = pod_yaml(
        "server",
        &format!(
            concat!(
                "  containers:\n  - name: web\n    image: {}\n    imagePullPolicy: Never\n    args: ['{port}', 'ok']\n",
                "    readinessProbe: {{httpGet: {{path: /healthz, port: {port}}}, periodSeconds: 1}}\n",
                "    livenessProbe: {{tcpSocket: {{port: {port}}}, periodSeconds: 1, initialDelaySeconds: 1}}\n"
            ),
            HTTP_SERVER_P2.image,
            port = port
        ),
    );
    // A pod whose readiness depends on the server pod: it fails while the server is gone.
    let watcher = pod_yaml(
        "watcher",
        &format!(
            concat!(
                "  containers:\n  - name: logger\n    image: {}\n    imagePullPolicy: Never\n    args: ['500']\n",
                "    readinessProbe: {{httpGet: {{host: 127.0.0.1, path: /, port: {port}}}, periodSeconds: 1, failureThreshold: 1}}\n"
            ),
            LOGGER_P1.image,
            port = port
        ),
    );
    let closed = free_port();
    let dying = pod_yaml(
        "dying",
        &format!(
            concat!(
                "  containers:\n  - name: logger\n    image: {}\n    imagePullPolicy: Never\n    args: ['500']\n",
                "    livenessProbe: {{tcpSocket: {{port: {closed}}}, periodSeconds: 1, failureThreshold: 2}}\n"
            ),
            LOGGER_P1.image,
            closed = closed
        ),
    );
    // Exec probes run through ExecSync: the Wasm `reader` tool (from a hostPath) succeeds when
    // the flag directory exists in the container's mount, and fails when it does not.
    let tools = d.dir.join("tools");
    let flags = d.dir.join("flags");
    std::fs::create_dir_all(&tools).unwrap();
    std::fs::create_dir_all(&flags).unwrap();
    std::fs::copy(wasmlet_wasm_apps::READER_P1, tools.join("reader.wasm")).unwrap();
    let exec = pod_yaml(
        "exec",
        &format!(
            concat!(
                "  containers:\n  - name: logger\n    image: {}\n    imagePullPolicy: Never\n    args: ['500']\n",
                "    volumeMounts: [{{name: tools, mountPath: /tools, readOnly: true}}, {{name: flags, mountPath: /flags}}]\n",
                "    readinessProbe: {{exec: {{command: [/tools/reader.wasm, /flags/ready]}}, periodSeconds: 1, failureThreshold: 1}}\n",
                "  volumes:\n  - {{name: tools, hostPath: {{path: {}}}}}\n  - {{name: flags, hostPath: {{path: {}}}}}\n"
            ),
            LOGGER_P1.image,
            tools.display(),
            flags.display()
        ),
    );
    agent.put("server.yaml", &server);
    agent.put("watcher.yaml", &watcher);
    agent.put("dying.yaml", &dying);
    agent.put("exec.yaml", &exec);
    let ready = |p: &Pod| {
        container(
            p,
            if p.metadata.name.as_deref() == Some("server") {
                "web"
            } else {
                "logger"
            },
        )
        .map(|c| c.ready)
    };
    agent
        .wait_pod("server", Duration::from_secs(15), "ready (httpGet)", |p| {
            if ready(p)? {
                Ok(())
            } else {
                Err("unready".into())
            }
        })
        .await;
    agent
        .wait_pod("watcher", Duration::from_secs(15), "ready", |p| {
            if ready(p)? {
                Ok(())
            } else {
                Err("unready".into())
            }
        })
        .await;

    // The server goes: the watcher's readiness fails…
    agent.delete("server.yaml");
    agent
        .wait_pod("watcher", Duration::from_secs(15), "unready", |p| {
            if !ready(p)? {
                Ok(())
            } else {
                Err("still ready".into())
            }
        })
        .await;
    let rec = agent.record("watcher").unwrap();
    assert!(
        rec.events
            .iter()
            .any(|e| e.reason == "Unhealthy" && e.message.starts_with("Readiness probe failed:")),
        "{:?}",
        rec.events
    );
    let (table, _) = agent.cli(&["pods"]);
    assert!(
        table.lines().any(|l| l
            .split_whitespace()
            .take(3)
            .eq(["watcher", "0/1", "Running"])),
        "{table}"
    );
    // …and recovers when it is back.
    agent.put("server.yaml", &server);
    agent
        .wait_pod("watcher", Duration::from_secs(20), "ready again", |p| {
            if ready(p)? {
                Ok(())
            } else {
                Err("unready".into())
            }
        })
        .await;

    // A failing liveness probe restarts the container.
    let dying = agent
        .wait_pod(
            "dying",
            Duration::from_secs(20),
            "a restart by its liveness probe",
            |p| {
                let c = container(p, "logger")?;
                if c.restart_count >= 1 {
                    Ok(p.clone())
                } else {
                    Err("no restart yet".into())
                }
            },
        )
        .await;
    let events = agent.record("dying").unwrap().events;
    assert!(
        events
            .iter()
            .any(|e| e.reason == "Killing" && e.message.contains("failed liveness probe")),
        "{events:?}"
    );
    assert_eq!(phase(&dying), "Running");

    // The exec probe: failing while the flag is missing, passing once it is there, failing again.
    let exec_failed = |p: &Pod| -> Result<(), String> {
        let c = container(p, "logger")?;
        let rec = agent.record("exec")?;
        let failed = rec
            .events
            .iter()
            .any(|e| e.reason == "Unhealthy" && e.message.starts_with("Readiness probe failed:"));
        if c.state.as_ref().is_some_and(|s| s.running.is_some()) && !c.ready && failed {
            Ok(())
        } else {
            Err("no failed probe yet".into())
        }
    };
    agent
        .wait_pod(
            "exec",
            Duration::from_secs(15),
            "a failed exec probe",
            exec_failed,
        )
        .await;
    std::fs::create_dir(flags.join("ready")).unwrap();
    agent
        .wait_pod(
            "exec",
            Duration::from_secs(15),
            "ready by its exec probe",
            |p| {
                if ready(p)? {
                    Ok(())
                } else {
                    Err("unready".into())
                }
            },
        )
        .await;
    std::fs::remove_dir(flags.join("ready")).unwrap();
    agent
        .wait_pod("exec", Duration::from_secs(15), "unready again", |p| {
            if !ready(p)? {
                Ok(())
            } else {
                Err("still ready".into())
            }
        })
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admission_refuses_a_pod_too_big_for_the_node() {
    let d = Daemon::start("node-admission", &[LOGGER_P1]).await;
    let agent = Agent::start(&d, "admission", &["--reserved-cpu", "100m"]);
    let cpus = std::thread::available_parallelism().unwrap().get() as i64;
    let allocatable = cpus * 1000 - 100;
    let pod = |name: &str, cpu: String, mem: &str| {
        pod_yaml(
            name,
            &format!(
                "  containers:\n  - name: c\n    image: {}\n    imagePullPolicy: Never\n    args: ['500']\n    resources: {{requests: {{cpu: {cpu}, memory: {mem}}}}}\n",
                LOGGER_P1.image
            ),
        )
    };
    // Exactly the allocatable CPU fits; one millicore more does not; nor does 1 PiB of memory.
    agent.put("fits.yaml", &pod("fits", format!("{allocatable}m"), "16Mi"));
    agent
        .wait_pod("fits", Duration::from_secs(15), "Running", |p| {
            if phase(p) == "Running" {
                Ok(())
            } else {
                Err("not yet".into())
            }
        })
        .await;
    agent.put("cpu.yaml", &pod("too-much-cpu", "1m".into(), "16Mi"));
    agent.put("mem.yaml", &pod("too-much-memory", "0".into(), "1Pi"));
    for (name, reason) in [
        ("too-much-cpu", "OutOfcpu"),
        ("too-much-memory", "OutOfmemory"),
    ] {
        let p = agent
            .wait_pod(name, Duration::from_secs(10), "refused", |p| {
                if phase(p) == "Failed" {
                    Ok(p.clone())
                } else {
                    Err("not yet".into())
                }
            })
            .await;
        let st = p.status.clone().unwrap();
        assert_eq!(st.reason.as_deref(), Some(reason));
        assert!(
            st.message
                .unwrap_or_default()
                .starts_with("Pod was rejected: Node didn't have enough resource")
        );
        assert!(
            sandboxes_of(&d, &uid(&p)).await.is_empty(),
            "a refused pod gets no sandbox"
        );
    }
    let (table, _) = agent.cli(&["pods"]);
    assert!(
        table.lines().any(|l| l
            .split_whitespace()
            .take(3)
            .eq(["too-much-cpu", "0/0", "OutOfcpu"])
            || l.contains("OutOfcpu")),
        "{table}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_the_file_stops_the_pod_within_its_grace_period() {
    let d = Daemon::start("node-grace", &[LOGGER_P1, HTTP_SERVER_P2]).await;
    let agent = Agent::start(&d, "grace", &[]);
    let port = free_port();
    agent.put(
        "hook.yaml",
        &pod_yaml("hook", &format!("  containers:\n  - name: web\n    image: {}\n    imagePullPolicy: Never\n    args: ['{port}', 'bye']\n", HTTP_SERVER_P2.image)),
    );
    agent.put(
        "slow.yaml",
        &pod_yaml(
            "slow",
            &format!(
                concat!(
                    "  terminationGracePeriodSeconds: 3\n",
                    "  containers:\n  - name: logger\n    image: {}\n    imagePullPolicy: Never\n    args: ['100']\n",
                    "    lifecycle: {{preStop: {{httpGet: {{host: 127.0.0.1, port: {port}, path: /prestop}}}}}}\n"
                ),
                LOGGER_P1.image,
                port = port
            ),
        ),
    );
    let running = |p: &Pod| {
        if phase(p) == "Running" {
            Ok(p.clone())
        } else {
            Err("not yet".to_string())
        }
    };
    agent
        .wait_pod("hook", Duration::from_secs(15), "Running", running)
        .await;
    let slow = agent
        .wait_pod("slow", Duration::from_secs(15), "Running", running)
        .await;
    let hook_log = PathBuf::from(agent.record("hook").unwrap().log_dir).join("web/0.log");
    eventually(Duration::from_secs(5), "the server to listen", || async {
        if stdout_lines(&hook_log)
            .iter()
            .any(|l| l.starts_with("listening"))
        {
            Ok(())
        } else {
            Err("not yet".to_string())
        }
    })
    .await;

    let t0 = Instant::now();
    agent.delete("slow.yaml");
    eventually(
        Duration::from_secs(10),
        "slow's sandbox to be removed",
        || async {
            if sandboxes_of(&d, &uid(&slow)).await.is_empty() {
                Ok(())
            } else {
                Err("still there".to_string())
            }
        },
    )
    .await;
    let took = t0.elapsed();
    eprintln!("deleting the manifest to the sandbox gone: {took:?}");
    // The grace period, plus the folder poll (200 ms) and a margin.
    assert!(
        took < Duration::from_secs(3) + Duration::from_millis(1500),
        "stopping took {took:?}"
    );
    assert!(
        stdout_lines(&hook_log)
            .iter()
            .any(|l| l.contains("GET /prestop")),
        "the preStop hook was called: {:?}",
        stdout_lines(&hook_log)
    );
    eventually(
        Duration::from_secs(2),
        "the pod to be gone from the agent's state file",
        || async {
            if agent.record("slow").is_err() {
                Ok(())
            } else {
                Err("still listed".to_string())
            }
        },
    )
    .await;
    assert!(
        !agent.root.join("pods").join(uid(&slow)).exists(),
        "its directory is removed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_agent_adopts_its_pods_without_duplicates() {
    let d = Daemon::start("node-adopt", &[LOGGER_P1]).await;
    let agent = Agent::start(&d, "adopt", &[]);
    let logger = |name: &str| {
        pod_yaml(
            name,
            &format!(
                "  containers:\n  - name: logger\n    image: {}\n    imagePullPolicy: Never\n    args: ['200']\n",
                LOGGER_P1.image
            ),
        )
    };
    agent.put("keep.yaml", &logger("keep"));
    agent.put("gone.yaml", &logger("gone"));
    let running = |p: &Pod| {
        if phase(p) == "Running" {
            Ok(p.clone())
        } else {
            Err("not yet".to_string())
        }
    };
    let keep = agent
        .wait_pod("keep", Duration::from_secs(15), "Running", running)
        .await;
    let gone = agent
        .wait_pod("gone", Duration::from_secs(15), "Running", running)
        .await;
    let before = sandboxes_of(&d, &uid(&keep)).await;
    let before_containers = containers_of(&d, &before[0].id).await;

    agent.kill9();
    agent.delete("gone.yaml");
    agent.spawn();
    // The agent writes its state file again after adopting: wait for a fresh one.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let adopted = agent
        .wait_pod("keep", Duration::from_secs(15), "Running", running)
        .await;
    assert_eq!(
        uid(&adopted),
        uid(&keep),
        "a static pod's uid survives a restart"
    );
    let after = sandboxes_of(&d, &uid(&keep)).await;
    assert_eq!(
        after.iter().map(|s| &s.id).collect::<Vec<_>>(),
        before.iter().map(|s| &s.id).collect::<Vec<_>>(),
        "the same sandbox, no new one"
    );
    let after_containers = containers_of(&d, &after[0].id).await;
    assert_eq!(
        after_containers.len(),
        1,
        "no duplicate container: {after_containers:?}"
    );
    assert_eq!(
        after_containers[0].id, before_containers[0].id,
        "the same container"
    );
    assert_eq!(container(&adopted, "logger").unwrap().restart_count, 0);
    // The pod whose manifest went away while the agent was down is removed.
    eventually(
        Duration::from_secs(10),
        "the orphaned pod's sandbox to be removed",
        || async {
            if sandboxes_of(&d, &uid(&gone)).await.is_empty() {
                Ok(())
            } else {
                Err("still there".to_string())
            }
        },
    )
    .await;
    // Only ever one sandbox for the pod, however long we look.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(sandboxes_of(&d, &uid(&keep)).await.len(), 1);
}
