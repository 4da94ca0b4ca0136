//! Shared by the CRI benches: an in-process wasmlet daemon (a [`Runtime`] served on a unix socket
//! by [`wasmlet_cri::serve`], on its own thread and tokio runtime, as `wasmlet daemon` runs it) in
//! a temporary directory, with hello imported and compiled; a CRI client on a current-thread
//! runtime for the bench thread (the kubelet's side); the configs the benches send.

#![allow(dead_code)] // each bench uses a part

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wasmlet_cri::client::{CriClient, connect};
use wasmlet_cri::k8s_cri::v1 as cri;
use wasmlet_cri::{Runtime, RuntimeOptions};
use wasmlet_shim::zygote::Zygote;

/// The image every bench runs: hello for WASI preview 1 (prints a line, exits 0).
pub const HELLO: &str = "localhost/hello:bench";

/// The daemon's tokio runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    /// What `wasmlet daemon` uses: multi-thread, 2 workers.
    MultiThread,
    /// One thread does everything.
    CurrentThread,
}

/// An in-process daemon. Drop the clients connected to it before it (a graceful gRPC shutdown
/// waits for open connections).
pub struct Daemon {
    pub runtime: Arc<Runtime>,
    pub opts: RuntimeOptions,
    /// The daemon's tokio runtime; `handle.block_on(runtime.some_rpc(..))` calls an inner method
    /// from the bench thread (multi-thread flavour only).
    pub handle: tokio::runtime::Handle,
    pub socket: PathBuf,
    /// Where the benches' pods log (`log_directory` of their configs).
    pub logs: PathBuf,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Makes the directories, imports hello, opens the runtime and serves it; returns once the
    /// socket answers `Version`. Shims are forked by `zygote` when given, else exec'd from the
    /// `wasmlet` binary this package builds.
    pub fn start(flavor: Flavor, zygote: Option<Arc<Zygote>>) -> Daemon {
        // Note, before any pod exists, whether kubepods was already there.
        kubepods_existed();
        // Short and under /tmp: shim sockets live below it and a socket path has 108 bytes.
        let dir = tempfile::Builder::new().prefix("wlb-").tempdir_in("/tmp").expect("creating the bench directory");
        let root = dir.path().join("r");
        let images = root.join("images");
        import_hello(&images);
        let socket = dir.path().join("cri.sock");
        let mut opts = RuntimeOptions::new(root, dir.path().join("s"), PathBuf::from(env!("CARGO_BIN_EXE_wasmlet")));
        opts.images = images;
        opts.shim_log_filter = "warn".into();
        opts.zygote = zygote;
        // Hermetic: the benches' pods use the host network and never read the host's CNI setup.
        opts.cni_conf_dir = dir.path().join("cni");
        opts.cni_bin_dirs = Vec::new();
        let daemon_opts = opts.clone();
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let (ready, opened) = std::sync::mpsc::channel();
        let serve_socket = socket.clone();
        let thread = std::thread::Builder::new()
            .name("wasmlet-daemon".into())
            .spawn(move || {
                let rt = match flavor {
                    Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build(),
                    Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread().enable_all().build(),
                }
                .expect("the daemon's tokio runtime");
                rt.block_on(async move {
                    let runtime = Runtime::open(opts).await.expect("opening the runtime");
                    ready.send((Arc::clone(&runtime), tokio::runtime::Handle::current())).expect("bench thread gone");
                    let shutdown = async {
                        let _ = stopped.await;
                    };
                    wasmlet_cri::serve(runtime, &serve_socket, shutdown).await.expect("serving CRI");
                });
            })
            .expect("spawning the daemon thread");
        let (runtime, handle) = opened.recv().expect("the daemon failed to open its runtime (see the panic above)");
        let daemon = Daemon {
            runtime,
            opts: daemon_opts,
            handle,
            socket,
            logs: dir.path().join("logs"),
            stop: Some(stop),
            thread: Some(thread),
            dir,
        };
        // Wait until it serves.
        let client = Client::connect(&daemon.socket);
        drop(client);
        daemon
    }

    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// Removes the empty `kubepods[/burstable|/besteffort]` cgroups the benches' pods made, unless
/// they were there before this process started (a node's kubelet owns those).
const HIERARCHIES: [&str; 10] = ["cpu", "cpuacct", "cpuset", "memory", "pids", "hugetlb", "blkio", "devices", "freezer", ""];

fn kubepods_top(hierarchy: &str) -> PathBuf {
    Path::new("/sys/fs/cgroup").join(hierarchy).join("kubepods")
}

/// Whether kubepods existed when this process first asked (before its first pod).
fn kubepods_existed() -> bool {
    static EXISTED: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *EXISTED.get_or_init(|| HIERARCHIES.iter().any(|h| kubepods_top(h).join("cgroup.procs").exists()))
}

fn remove_kubepods_tiers_we_made() {
    if kubepods_existed() {
        return;
    }
    let top = |h: &str| kubepods_top(h);
    for h in HIERARCHIES {
        for tier in ["burstable", "besteffort"] {
            let _ = std::fs::remove_dir(top(h).join(tier));
        }
        let _ = std::fs::remove_dir(top(h));
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        if let Some(thread) = self.thread.take() {
            // A connection still open would hold the graceful shutdown: give up after a while
            // (the thread and its runtime are then leaked until the process exits).
            let deadline = Instant::now() + Duration::from_secs(5);
            while !thread.is_finished() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(5));
            }
            if thread.is_finished() {
                let _ = thread.join();
            } else {
                eprintln!("bench daemon did not shut down within 5 s; leaving it");
            }
        }
        remove_kubepods_tiers_we_made();
    }
}

/// Imports hello into the image store at `images` and compiles it (never timed).
fn import_hello(images: &Path) {
    let store = wasmlet_image::ImageStore::open(images).expect("opening the image store");
    store.import(Path::new(wasmlet_wasm_apps::HELLO_P1), Some(HELLO)).expect("importing hello");
    let image = store.resolve(HELLO).expect("resolving hello").expect("hello was just imported");
    store.compiled_path(&image).expect("compiling hello");
}

/// A CRI client with its own current-thread runtime, driven only while the bench thread waits
/// on a call (as a separate kubelet process would be).
pub struct Client {
    pub cri: CriClient,
    pub rt: tokio::runtime::Runtime,
}

impl Client {
    /// Connects to `socket`, retrying until it answers `Version` (10 s at most).
    pub fn connect(socket: &Path) -> Client {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("client runtime");
        let endpoint = socket.to_str().expect("utf-8 socket path").to_string();
        let deadline = Instant::now() + Duration::from_secs(10);
        let cri = rt.block_on(async {
            loop {
                if let Ok(mut client) = connect(&endpoint).await
                    && client.runtime.version(cri::VersionRequest::default()).await.is_ok()
                {
                    return client;
                }
                assert!(Instant::now() < deadline, "the bench daemon did not answer on {endpoint} within 10 s");
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        });
        Client { cri, rt }
    }
}

/// A unique pod uid per call (pods of the same name may not overlap).
pub fn next_uid() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!("{:08x}-bench-{}", std::process::id(), N.fetch_add(1, Ordering::Relaxed))
}

/// A hostNetwork pod logging under `logs/<uid>` (as `wasmlet bench cold-start` sends).
pub fn pod_config(logs: &Path, name: &str) -> cri::PodSandboxConfig {
    let uid = next_uid();
    cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata { name: name.into(), namespace: "bench".into(), uid: uid.clone(), attempt: 0 }),
        log_directory: logs.join(uid).display().to_string(),
        labels: HashMap::from([("bench".into(), name.into())]),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption { network: cri::NamespaceMode::Node as i32, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// CreateContainer of hello in `sandbox`, logging to `<log_directory>/<name>/<attempt>.log`.
pub fn create_hello(sandbox: &str, sandbox_config: &cri::PodSandboxConfig, name: &str, attempt: u32) -> cri::CreateContainerRequest {
    cri::CreateContainerRequest {
        pod_sandbox_id: sandbox.into(),
        config: Some(cri::ContainerConfig {
            metadata: Some(cri::ContainerMetadata { name: name.into(), attempt }),
            image: Some(cri::ImageSpec { image: HELLO.into(), ..Default::default() }),
            log_path: format!("{name}/{attempt}.log"),
            ..Default::default()
        }),
        sandbox_config: Some(sandbox_config.clone()),
    }
}

/// The log file a container of [`create_hello`] writes.
pub fn log_file(sandbox_config: &cri::PodSandboxConfig, name: &str, attempt: u32) -> PathBuf {
    Path::new(&sandbox_config.log_directory).join(format!("{name}/{attempt}.log"))
}

/// Polls (every ~20 µs, off any runtime) until `done` holds; panics after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !done() {
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_micros(20));
    }
}

/// Per-phase samples of a bench, printed as medians and spreads after criterion's line.
#[derive(Default)]
pub struct Phases {
    names: Vec<&'static str>,
    samples: Vec<Vec<Duration>>,
}

impl Phases {
    pub fn new(names: &[&'static str]) -> Phases {
        Phases { names: names.to_vec(), samples: vec![Vec::new(); names.len()] }
    }

    /// Records one run from its timestamps: phase `i` is `marks[i + 1] - marks[i]`.
    pub fn record(&mut self, marks: &[Instant]) {
        assert_eq!(marks.len(), self.names.len() + 1);
        for (i, pair) in marks.windows(2).enumerate() {
            self.samples[i].push(pair[1] - pair[0]);
        }
    }

    /// Prints each phase's median and its p10–p90 (over every run, warm-up included).
    pub fn print(&mut self, title: &str) {
        let runs = self.samples.first().map_or(0, Vec::len);
        if runs < 5 {
            return; // `cargo test --benches`: one run says nothing
        }
        println!("{title}: phases over {runs} runs (median [p10 … p90])");
        for (name, samples) in self.names.iter().zip(&mut self.samples) {
            samples.sort();
            let q = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
            println!("  {name:<22} {:>10.1?} [{:.1?} … {:.1?}]", q(0.5), q(0.1), q(0.9));
        }
    }
}
