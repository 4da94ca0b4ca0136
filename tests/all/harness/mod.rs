//! The test harness: a real `wasmlet daemon` per test ([`Daemon`]), with its own root, state, socket
//! and log directory under one short /tmp directory, the guest images it needs, and a CRI client
//! on its socket. Dropping it tears everything down through the CRI (so shims exit), then kills the
//! daemon and any shim of this test still alive.
//!
//! Also: builders for the CRI configs the tests send, polling with a deadline ([`eventually`]) and
//! a /proc scan for shim processes; the guests are in `images`, the CRI log reader in `cri_log`.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use wasmlet_cri::client::{CriClient, connect};
use wasmlet_cri::k8s_cri::v1 as cri;

mod busybox;
mod cri_log;
mod images;
mod stream_clients;

pub use busybox::*;
pub use cri_log::*;
pub use images::*;
pub(crate) use stream_clients::*;

pub const WASMLET: &str = env!("CARGO_BIN_EXE_wasmlet");

/// The namespace every test pod lives in.
pub const NAMESPACE: &str = "wasmlet-e2e";

/// How long a daemon may take to answer on its socket.
const DAEMON_START: Duration = Duration::from_secs(10);

/// Fails the test, saying why, unless it runs as root.
pub fn require_root() {
    assert!(
        nix::unistd::geteuid().is_root(),
        "wasmlet's end-to-end tests must run as root (the daemon chowns its socket to root and runs \
         detached shim processes); run `cargo test --test all` as root"
    );
}

/// A running `wasmlet daemon` with its own directories and a connected client.
pub struct Daemon {
    pub cri: CriClient,
    /// The test's directory: `r/` (root), `s/` (state), `logs/`, `cri.sock`, `daemon.log`.
    pub dir: PathBuf,
    pub root: PathBuf,
    pub state: PathBuf,
    pub socket: PathBuf,
    pub logs: PathBuf,
    test: String,
    child: Option<Child>,
    /// Extra environment of the daemon process (kept for restarts).
    env: Vec<(String, String)>,
    /// The configs of the pods started with `run_pod`, by sandbox id.
    pods: Mutex<HashMap<String, cri::PodSandboxConfig>>,
}

impl Daemon {
    /// Makes the directories, imports `guests` with `wasmlet image import`, starts the daemon and
    /// connects to it. `test` names the pods (and shows up in failure messages).
    pub async fn start(test: &str, guests: &[Guest]) -> Daemon {
        Daemon::start_with_env(test, guests, &[]).await
    }

    /// [`Daemon::start`] with extra environment for the daemon (e.g. `WASMLET_CGROUP_ROOT`).
    pub async fn start_with_env(test: &str, guests: &[Guest], env: &[(&str, &str)]) -> Daemon {
        require_root();
        kubepods::enter();
        let dir = tempfile::Builder::new().prefix("wlt-").tempdir_in("/tmp").expect("creating the test directory").keep();
        let root = dir.join("r");
        std::fs::create_dir_all(&root).unwrap();
        // The compiled guests of the seed store, so each test does not compile them again; the
        // import below then only names them (and still goes through `wasmlet image import`).
        copy_seed_into(&root);
        for guest in guests {
            import(guest.wasm, guest.image, &root);
        }
        let mut daemon = Daemon {
            cri: placeholder_client(),
            root,
            state: dir.join("s"),
            socket: dir.join("cri.sock"),
            logs: dir.join("logs"),
            dir,
            test: test.to_string(),
            child: None,
            env: env.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect(),
            pods: Mutex::new(HashMap::new()),
        };
        daemon.spawn().await;
        daemon
    }

    /// Starts the daemon process and waits until it answers `Version` on its socket.
    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("daemon.log")).expect("opening daemon.log");
        let child = Command::new(WASMLET)
            .arg("daemon")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--root")
            .arg(&self.root)
            .arg("--state")
            .arg(&self.state)
            // The test's own CNI conf dir (empty: NetworkReady false) and Debian's plugins.
            .arg("--cni-conf-dir")
            .arg(self.cni_conf_dir())
            .arg("--cni-bin-dir")
            .arg("/usr/lib/cni")
            .env("WASMLET_LOG", "info")
            .env_remove("WASMLET_CONFIG")
            .envs(self.env.iter().map(|(k, v)| (k, v)))
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("spawning wasmlet daemon");
        self.child = Some(child);
        let deadline = Instant::now() + DAEMON_START;
        let endpoint = self.socket.to_str().unwrap().to_string();
        loop {
            if let Some(status) = self.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("[{}] wasmlet daemon exited with {status} before serving; its log:\n{}", self.test, self.daemon_log());
            }
            if let Ok(mut client) = connect(&endpoint).await
                && client.runtime.version(cri::VersionRequest::default()).await.is_ok()
            {
                self.cri = client;
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "[{}] wasmlet daemon did not answer on {} within {DAEMON_START:?}; its log:\n{}",
                    self.test,
                    self.socket.display(),
                    self.daemon_log()
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Everything the daemon wrote to stdout and stderr so far.
    /// The CNI conf dir the daemon watches (empty until a test writes a conflist).
    pub fn cni_conf_dir(&self) -> PathBuf {
        self.dir.join("net.d")
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("daemon.log")).unwrap_or_default()
    }

    /// `kill -9` of the daemon (its shims keep running).
    pub async fn kill9(&mut self) {
        let mut child = self.child.take().expect("the daemon is not running");
        child.kill().expect("SIGKILL to the daemon");
        child.wait().expect("reaping the daemon");
    }

    /// Starts the daemon again on the same root, state and socket, and reconnects.
    pub async fn restart(&mut self) {
        assert!(self.child.is_none(), "restart() of a daemon that is still running: kill9() it first");
        self.spawn().await;
    }

    pub fn rt(&self) -> cri::runtime_service_client::RuntimeServiceClient<tonic::transport::Channel> {
        self.cri.runtime.clone()
    }

    pub fn img(&self) -> cri::image_service_client::ImageServiceClient<tonic::transport::Channel> {
        self.cri.image.clone()
    }

    /// A hostNetwork pod config named `name`, logging under `logs/<name>`, with a unique uid.
    pub fn pod_config(&self, name: &str) -> cri::PodSandboxConfig {
        static UID: AtomicU32 = AtomicU32::new(0);
        let uid = format!("{}-{name}-{}", self.test, UID.fetch_add(1, Ordering::Relaxed));
        cri::PodSandboxConfig {
            metadata: Some(cri::PodSandboxMetadata { name: name.into(), uid, namespace: NAMESPACE.into(), attempt: 0 }),
            hostname: name.into(),
            log_directory: self.logs.join(name).display().to_string(),
            labels: HashMap::from([("test".into(), self.test.clone()), ("pod".into(), name.into())]),
            annotations: HashMap::from([("wasmlet.test/pod".into(), name.into())]),
            linux: Some(cri::LinuxPodSandboxConfig {
                security_context: Some(cri::LinuxSandboxSecurityContext {
                    namespace_options: Some(cri::NamespaceOption {
                        network: cri::NamespaceMode::Node as i32,
                        pid: cri::NamespaceMode::Container as i32,
                        ipc: cri::NamespaceMode::Pod as i32,
                        ..Default::default()
                    }),
                    ..Default::default()
                }),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    /// RunPodSandbox of [`pod_config`](Self::pod_config)`(name)`; returns the sandbox id.
    pub async fn run_pod(&self, name: &str) -> String {
        let config = self.pod_config(name);
        let id = run_pod_with(&self.cri, config.clone()).await;
        self.pods.lock().unwrap().insert(id.clone(), config);
        id
    }

    /// The config a pod of [`run_pod`](Self::run_pod) was started with.
    pub fn pod(&self, sandbox: &str) -> cri::PodSandboxConfig {
        self.pods.lock().unwrap().get(sandbox).cloned().unwrap_or_else(|| panic!("sandbox {sandbox} was not started by run_pod"))
    }

    /// CreateContainer of [`container_config`] in `sandbox`; returns the container id.
    pub async fn create(
        &self,
        sandbox: &str,
        name: &str,
        image: &str,
        args: &[&str],
        envs: &[(&str, &str)],
        mounts: Vec<cri::Mount>,
    ) -> String {
        self.create_config(sandbox, container_config(name, image, args, envs, mounts)).await
    }

    /// CreateContainer of `config` in `sandbox` (a pod of [`run_pod`](Self::run_pod)).
    pub async fn create_config(&self, sandbox: &str, config: cri::ContainerConfig) -> String {
        create_with(&self.cri, sandbox, &self.pod(sandbox), config).await
    }

    /// Where a container of [`container_config`] named `name` in `sandbox` logs.
    pub fn log_of(&self, sandbox: &str, name: &str) -> PathBuf {
        Path::new(&self.pod(sandbox).log_directory).join(format!("{name}/0.log"))
    }

    pub async fn start_container(&self, id: &str) {
        let req = cri::StartContainerRequest { container_id: id.into() };
        if let Err(e) = self.rt().start_container(req).await {
            panic!("[{}] StartContainer {id}: {e:?}\ndaemon log:\n{}", self.test, self.daemon_log());
        }
    }

    pub async fn status(&self, id: &str) -> cri::ContainerStatus {
        container_status(&self.cri, id).await
    }

    pub async fn wait_exited(&self, id: &str, timeout: Duration) -> cri::ContainerStatus {
        wait_exited(&self.cri, id, timeout).await
    }

    /// Pids of this test's shim processes (their command line names this test's state dir).
    pub fn shim_pids(&self) -> Vec<u32> {
        shim_pids(&self.state)
    }

    /// Polls until every shim of this test has exited.
    pub async fn wait_no_shims(&self, timeout: Duration) {
        eventually(timeout, "every shim of this test to exit", || async {
            let pids = self.shim_pids();
            if pids.is_empty() { Ok(()) } else { Err(format!("shims still running: {pids:?}")) }
        })
        .await
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        // Tear down through the CRI first, so shims exit the way they should. On a thread of its
        // own: Drop may run inside the test's runtime, which cannot be blocked on.
        if self.child.is_some() {
            let endpoint = self.socket.display().to_string();
            let teardown = std::thread::spawn(move || {
                let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
                rt.block_on(async {
                    let _ = tokio::time::timeout(Duration::from_secs(20), remove_all_pods(&endpoint)).await;
                });
            });
            let _ = teardown.join();
        }
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        let leftover = shim_pids(&self.state);
        for &pid in &leftover {
            let _ = kill(Pid::from_raw(pid as i32), Signal::SIGKILL);
        }
        if !leftover.is_empty() {
            eprintln!("[{}] killed leftover shims {leftover:?}", self.test);
        }
        kubepods::leave();
        if std::thread::panicking() {
            eprintln!("[{}] test failed: its files (daemon.log, logs/, s/shims/*/shim.log) are kept in {}", self.test, self.dir.display());
        } else if std::env::var_os("WASMLET_E2E_KEEP").is_some() {
            eprintln!("[{}] WASMLET_E2E_KEEP is set: its files are kept in {}", self.test, self.dir.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }
}

async fn remove_all_pods(endpoint: &str) {
    let Ok(mut cri) = connect(endpoint).await else { return };
    let Ok(pods) = cri.runtime.list_pod_sandbox(cri::ListPodSandboxRequest::default()).await else { return };
    for pod in pods.into_inner().items {
        let _ = cri.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: pod.id.clone() }).await;
        let _ = cri.runtime.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: pod.id }).await;
    }
}

/// A client that is never used: [`Daemon::spawn`] replaces it before `start` returns.
fn placeholder_client() -> CriClient {
    let channel = tonic::transport::Endpoint::from_static("http://[::1]:1").connect_lazy();
    CriClient {
        runtime: cri::runtime_service_client::RuntimeServiceClient::new(channel.clone()),
        image: cri::image_service_client::ImageServiceClient::new(channel),
    }
}

/// Pids of live shim processes of `state`: their stderr is a shim.log under it (zombies have no fds).
pub fn shim_pids(state: &Path) -> Vec<u32> {
    let needle = state.display().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        // A shim (forked by the zygote or exec'd) writes its stderr to <state>/shims/<id>/shim.log.
        let Ok(stderr) = std::fs::read_link(entry.path().join("fd/2")) else { continue };
        let stderr = stderr.to_string_lossy();
        if stderr.starts_with(&needle) && stderr.ends_with("/shim.log") {
            pids.push(pid);
        }
    }
    pids
}

/// A container config: `args` replace the image's cmd (argv[0] stays the image's entrypoint),
/// logging to `<name>/0.log` under the pod's log directory.
pub fn container_config(name: &str, image: &str, args: &[&str], envs: &[(&str, &str)], mounts: Vec<cri::Mount>) -> cri::ContainerConfig {
    cri::ContainerConfig {
        metadata: Some(cri::ContainerMetadata { name: name.into(), attempt: 0 }),
        image: Some(cri::ImageSpec { image: image.into(), ..Default::default() }),
        args: args.iter().map(|a| a.to_string()).collect(),
        envs: envs.iter().map(|(k, v)| cri::KeyValue { key: k.to_string(), value: v.to_string() }).collect(),
        mounts,
        log_path: format!("{name}/0.log"),
        labels: HashMap::from([("container".into(), name.into())]),
        annotations: HashMap::from([("wasmlet.test/container".into(), name.into())]),
        ..Default::default()
    }
}

pub fn mount(container_path: &str, host_path: &Path, readonly: bool) -> cri::Mount {
    cri::Mount { container_path: container_path.into(), host_path: host_path.display().to_string(), readonly, ..Default::default() }
}

pub async fn run_pod_with(cri: &CriClient, config: cri::PodSandboxConfig) -> String {
    let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
    let req = cri::RunPodSandboxRequest { config: Some(config), runtime_handler: String::new() };
    match cri.runtime.clone().run_pod_sandbox(req).await {
        Ok(r) => r.into_inner().pod_sandbox_id,
        Err(e) => panic!("RunPodSandbox {name}: {e:?}"),
    }
}

/// CreateContainer in `sandbox`, sending the pod's config along as kubelet does.
pub async fn create_with(cri: &CriClient, sandbox: &str, sandbox_config: &cri::PodSandboxConfig, config: cri::ContainerConfig) -> String {
    let name = config.metadata.as_ref().map(|m| m.name.clone()).unwrap_or_default();
    let req =
        cri::CreateContainerRequest { pod_sandbox_id: sandbox.into(), config: Some(config), sandbox_config: Some(sandbox_config.clone()) };
    match cri.runtime.clone().create_container(req).await {
        Ok(r) => r.into_inner().container_id,
        Err(e) => panic!("CreateContainer {name} in {sandbox}: {e:?}"),
    }
}

pub async fn container_status(cri: &CriClient, id: &str) -> cri::ContainerStatus {
    let req = cri::ContainerStatusRequest { container_id: id.into(), verbose: false };
    match cri.runtime.clone().container_status(req).await {
        Ok(r) => r.into_inner().status.expect("ContainerStatus answered without a status"),
        Err(e) => panic!("ContainerStatus {id}: {e:?}"),
    }
}

pub fn state_name(state: i32) -> String {
    cri::ContainerState::try_from(state).map(|s| s.as_str_name().to_string()).unwrap_or_else(|_| format!("state {state}"))
}

/// Polls ContainerStatus until the container is EXITED.
pub async fn wait_exited(cri: &CriClient, id: &str, timeout: Duration) -> cri::ContainerStatus {
    eventually(timeout, &format!("container {id} to exit"), || async {
        let status = container_status(cri, id).await;
        if status.state == cri::ContainerState::ContainerExited as i32 {
            Ok(status)
        } else {
            Err(format!("it is {}", state_name(status.state)))
        }
    })
    .await
}

/// Polls `check` every 20 ms until it returns `Ok`, or fails the test after `timeout` with the
/// last error.
pub async fn eventually<T, F, Fut>(timeout: Duration, what: &str, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, String>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        match check().await {
            Ok(v) => return v,
            Err(last) if Instant::now() > deadline => panic!("timed out after {timeout:?} waiting for {what}: {last}"),
            Err(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
}

/// Expects a gRPC error with `code` whose message mentions every one of `mentions`.
pub fn expect_error<T: Debug>(what: &str, result: Result<T, tonic::Status>, code: tonic::Code, mentions: &[&str]) {
    match result {
        Ok(v) => panic!("{what}: expected {code:?}, got success: {v:?}"),
        Err(status) => {
            assert_eq!(status.code(), code, "{what}: wrong code; message: {:?}", status.message());
            for m in mentions {
                assert!(status.message().contains(m), "{what}: the {code:?} message {:?} does not mention {m:?}", status.message());
            }
        }
    }
}

/// Now, in CRI nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

/// The shared `kubepods[/burstable|/besteffort]` cgroups the runtime makes (as kubelet's layout
/// has them): removed when the last daemon of this test run is gone — only if they did not exist
/// before the run (a node's kubelet owns its own), and never while a daemon may still use them.
mod kubepods {
    use std::path::Path;
    use std::sync::Mutex;

    /// (live daemons, whether kubepods existed before this test run)
    static STATE: Mutex<Option<(usize, bool)>> = Mutex::new(None);
    const HIERARCHIES: &[&str] = &["cpu", "cpuacct", "cpuset", "memory", "pids", "hugetlb", "blkio", "devices", "freezer", "unified", ""];

    fn kubepods(hierarchy: &str) -> std::path::PathBuf {
        Path::new("/sys/fs/cgroup").join(hierarchy).join("kubepods")
    }

    pub fn enter() {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        let (live, _) = state.get_or_insert_with(|| (0, HIERARCHIES.iter().any(|h| kubepods(h).join("cgroup.procs").exists())));
        *live += 1;
    }

    pub fn leave() {
        let mut state = STATE.lock().unwrap_or_else(|e| e.into_inner());
        let Some((live, existed)) = state.as_mut() else { return };
        *live -= 1;
        if *live > 0 || *existed {
            return;
        }
        for h in HIERARCHIES {
            let top = kubepods(h);
            for tier in ["burstable", "besteffort"] {
                let _ = std::fs::remove_dir(top.join(tier));
            }
            let _ = std::fs::remove_dir(&top);
        }
    }
}
