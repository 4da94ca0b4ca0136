//! The test harness: a real `wasmlet daemon` per test ([`Daemon`]), with its own root, state, socket
//! and log directory under one short /tmp directory, the guest images it needs, and a CRI client
//! on its socket. Dropping it tears everything down through the CRI (so shims exit), then kills the
//! daemon and any shim of this test still alive.
//!
//! Also: builders for the CRI configs the tests send, polling with a deadline ([`eventually`]), a
//! strict reader of CRI-format container logs ([`read_log`]) and a /proc scan for shim processes.

use std::collections::HashMap;
use std::fmt::Debug;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Mutex, OnceLock};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use wasmlet_cri::client::{CriClient, connect};
use wasmlet_cri::k8s_cri::v1 as cri;

pub const WASMLET: &str = env!("CARGO_BIN_EXE_wasmlet");

/// The namespace every test pod lives in.
pub const NAMESPACE: &str = "wasmlet-e2e";

/// A guest program and the image name it is imported under.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Guest {
    pub wasm: &'static str,
    pub image: &'static str,
}

pub const HELLO_P1: Guest = Guest { wasm: wasmlet_wasm_apps::HELLO_P1, image: "localhost/hello-p1:latest" };
pub const HELLO_P2: Guest = Guest { wasm: wasmlet_wasm_apps::HELLO_P2, image: "localhost/hello-p2:latest" };
pub const LOGGER_P1: Guest = Guest { wasm: wasmlet_wasm_apps::LOGGER_P1, image: "localhost/logger-p1:latest" };
pub const EXIT_CODE_P1: Guest = Guest { wasm: wasmlet_wasm_apps::EXIT_CODE_P1, image: "localhost/exit-code-p1:latest" };
pub const EXIT_CODE_P2: Guest = Guest { wasm: wasmlet_wasm_apps::EXIT_CODE_P2, image: "localhost/exit-code-p2:latest" };
pub const READER_P1: Guest = Guest { wasm: wasmlet_wasm_apps::READER_P1, image: "localhost/reader-p1:latest" };
pub const MEM_GROWER_P1: Guest = Guest { wasm: wasmlet_wasm_apps::MEM_GROWER_P1, image: "localhost/mem-grower-p1:latest" };

/// Every guest a test may ask for: compiled once per test run into a seed store (see [`seed`]).
const SEEDED: &[Guest] = &[HELLO_P1, HELLO_P2, LOGGER_P1, EXIT_CODE_P1, EXIT_CODE_P2, READER_P1, MEM_GROWER_P1];

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
    /// The configs of the pods started with `run_pod`, by sandbox id.
    pods: Mutex<HashMap<String, cri::PodSandboxConfig>>,
}

impl Daemon {
    /// Makes the directories, imports `guests` with `wasmlet image import`, starts the daemon and
    /// connects to it. `test` names the pods (and shows up in failure messages).
    pub async fn start(test: &str, guests: &[Guest]) -> Daemon {
        require_root();
        let dir = tempfile::Builder::new().prefix("wlt-").tempdir_in("/tmp").expect("creating the test directory").keep();
        let root = dir.join("r");
        std::fs::create_dir_all(&root).unwrap();
        // The compiled guests of the seed store, so each test does not compile them again; the
        // import below then only names them (and still goes through `wasmlet image import`).
        copy_tree(seed(), &root.join("images"));
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
            pods: Mutex::new(HashMap::new()),
        };
        daemon.spawn().await;
        daemon
    }

    /// Starts the daemon process and waits until it answers `Version` on its socket.
    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join("daemon.log"))
            .expect("opening daemon.log");
        let child = Command::new(WASMLET)
            .arg("daemon")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--root")
            .arg(&self.root)
            .arg("--state")
            .arg(&self.state)
            .env("WASMLET_LOG", "info")
            .env_remove("WASMLET_CONFIG")
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
    pub async fn create(&self, sandbox: &str, name: &str, image: &str, args: &[&str], envs: &[(&str, &str)], mounts: Vec<cri::Mount>) -> String {
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

/// `wasmlet image import WASM --name IMAGE --root ROOT`, which must succeed.
pub fn import(wasm: &str, image: &str, root: &Path) {
    let out = Command::new(WASMLET)
        .args(["image", "import", wasm, "--name", image, "--root"])
        .arg(root)
        .env("WASMLET_LOG", "warn")
        .env_remove("WASMLET_CONFIG")
        .output()
        .expect("running wasmlet image import");
    assert!(
        out.status.success(),
        "wasmlet image import {wasm} --name {image} failed ({}):\n{}{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains(image), "wasmlet image import printed no line naming {image}: {stdout:?}");
}

/// The image store every test starts from: every guest of [`SEEDED`], imported (and so compiled)
/// once per test run with `wasmlet image import`, concurrently.
fn seed() -> &'static Path {
    static SEED: OnceLock<PathBuf> = OnceLock::new();
    SEED.get_or_init(|| {
        require_root();
        remove_stale_seeds();
        let root = seed_root();
        let _ = std::fs::remove_dir_all(&root);
        std::fs::create_dir_all(&root).unwrap();
        // SAFETY: registers a plain `extern "C" fn` that touches no state of ours but the path.
        unsafe {
            libc::atexit(remove_seed);
        }
        std::thread::scope(|s| {
            for guest in SEEDED {
                let root = &root;
                s.spawn(move || import(guest.wasm, guest.image, root));
            }
        });
        root.join("images")
    })
}

fn seed_root() -> PathBuf {
    PathBuf::from(format!("/tmp/wlt-seed-{}", std::process::id()))
}

/// Removes the seed store when the test binary exits.
extern "C" fn remove_seed() {
    let _ = std::fs::remove_dir_all(seed_root());
}

/// Seed stores of runs that died before removing theirs.
fn remove_stale_seeds() {
    let Ok(entries) = std::fs::read_dir("/tmp") else { return };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        if let Some(pid) = name.strip_prefix("wlt-seed-")
            && !Path::new("/proc").join(pid).exists()
        {
            let _ = std::fs::remove_dir_all(entry.path());
        }
    }
}

fn copy_tree(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let entry = entry.unwrap();
        let target = to.join(entry.file_name());
        if entry.file_type().unwrap().is_dir() {
            copy_tree(&entry.path(), &target);
        } else {
            std::fs::copy(entry.path(), &target).unwrap();
        }
    }
}

/// Pids of live `wasmlet shim` processes whose command line names `state` (zombies have none).
pub fn shim_pids(state: &Path) -> Vec<u32> {
    let needle = state.display().to_string();
    let mut pids = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) else { continue };
        let args: Vec<String> = cmdline.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        if args.iter().any(|a| a == "shim") && args.iter().any(|a| a.starts_with(&needle)) {
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
    let req = cri::CreateContainerRequest {
        pod_sandbox_id: sandbox.into(),
        config: Some(config),
        sandbox_config: Some(sandbox_config.clone()),
    };
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

/// One record of a CRI container log: `<RFC3339Nano> <stdout|stderr> <P|F> <text>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// The timestamp in nanoseconds since the epoch.
    pub time: i64,
    pub stream: String,
    pub tag: String,
    pub text: String,
}

/// Reads a CRI log file, asserting every complete line is in the CRI format (an unterminated
/// last line, still being written, is left out). A missing file reads as no records.
pub fn read_log(path: &Path) -> Vec<LogRecord> {
    let bytes = match std::fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Vec::new(),
        Err(e) => panic!("reading log {}: {e}", path.display()),
    };
    let text = String::from_utf8(bytes).unwrap_or_else(|e| panic!("log {} is not UTF-8: {e}", path.display()));
    let complete = match text.rfind('\n') {
        Some(i) => &text[..i],
        None => return Vec::new(),
    };
    complete
        .split('\n')
        .map(|line| {
            let mut parts = line.splitn(4, ' ');
            let (Some(ts), Some(stream), Some(tag), Some(rest)) = (parts.next(), parts.next(), parts.next(), parts.next()) else {
                panic!("log {}: line {line:?} is not `<time> <stream> <tag> <text>`", path.display());
            };
            let time = parse_rfc3339_utc(ts).unwrap_or_else(|| panic!("log {}: bad RFC3339Nano UTC timestamp {ts:?} in {line:?}", path.display()));
            assert!(stream == "stdout" || stream == "stderr", "log {}: bad stream {stream:?} in {line:?}", path.display());
            assert!(tag == "F" || tag == "P", "log {}: bad tag {tag:?} in {line:?}", path.display());
            LogRecord { time, stream: stream.into(), tag: tag.into(), text: rest.into() }
        })
        .collect()
}

/// The texts of a log's stdout records.
pub fn stdout_lines(path: &Path) -> Vec<String> {
    read_log(path).into_iter().filter(|r| r.stream == "stdout").map(|r| r.text).collect()
}

/// Parses `YYYY-MM-DDTHH:MM:SS[.fraction]Z` (Go's RFC3339Nano in UTC) into nanoseconds.
pub fn parse_rfc3339_utc(s: &str) -> Option<i64> {
    let body = s.strip_suffix('Z')?;
    let (date, time) = body.split_once('T')?;
    let num = |t: &str, len: usize| -> Option<i64> {
        (t.len() == len && t.bytes().all(|b| b.is_ascii_digit())).then(|| t.parse().ok()).flatten()
    };
    let d: Vec<&str> = date.split('-').collect();
    let [y, mo, da] = d.as_slice() else { return None };
    let (y, mo, da) = (num(y, 4)?, num(mo, 2)?, num(da, 2)?);
    let (clock, frac) = match time.split_once('.') {
        Some((c, f)) if (1..=9).contains(&f.len()) && f.bytes().all(|b| b.is_ascii_digit()) => {
            (c, f.parse::<i64>().ok()? * 10i64.pow(9 - f.len() as u32))
        }
        Some(_) => return None,
        None => (time, 0),
    };
    let t: Vec<&str> = clock.split(':').collect();
    let [h, mi, se] = t.as_slice() else { return None };
    let (h, mi, se) = (num(h, 2)?, num(mi, 2)?, num(se, 2)?);
    if !(1..=12).contains(&mo) || !(1..=31).contains(&da) || h > 23 || mi > 59 || se > 60 {
        return None;
    }
    // Howard Hinnant's days_from_civil.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = if mo > 2 { mo - 3 } else { mo + 9 };
    let doy = (153 * mp + 2) / 5 + da - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + h * 3600 + mi * 60 + se) * 1_000_000_000) + frac)
}

/// Now, in CRI nanoseconds.
pub fn now_nanos() -> i64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as i64
}

#[test]
fn rfc3339_parser_matches_go_format() {
    assert_eq!(parse_rfc3339_utc("1970-01-01T00:00:00Z"), Some(0));
    assert_eq!(parse_rfc3339_utc("2023-11-14T22:13:20.123456789Z"), Some(1_700_000_000_123_456_789));
    assert_eq!(parse_rfc3339_utc("2000-02-29T00:00:00.5Z"), Some(951_782_400_500_000_000));
    assert_eq!(parse_rfc3339_utc("2023-11-14T22:13:20+00:00"), None);
    assert_eq!(parse_rfc3339_utc("2023-11-14 22:13:20Z"), None);
    assert_eq!(parse_rfc3339_utc("2023-11-14T22:13:20.Z"), None);
}
