//! The agent itself: connects to the CRI endpoint, reads the node's hardware, and runs standalone
//! mode (a manifests folder) and/or cluster mode (a kubeconfig) on a single-threaded runtime.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, bail};
use wasmlet_kubelet::backoff::BackoffConfig;
use wasmlet_kubelet::board::Board;
use wasmlet_kubelet::manager::Manager;
use wasmlet_kubelet::node::{NodeInfo, Reserved};
use wasmlet_kubelet::settings::Settings;
use wasmlet_kubelet::{cluster, cri, quantity, standalone, state_file};

use super::RootFlag;

#[derive(clap::Args)]
pub struct AgentArgs {
    /// Run the pods described by the YAML files of this folder (static pods).
    #[arg(long)]
    manifests: Option<PathBuf>,
    /// Register as a Node of the cluster this kubeconfig points at and run the pods bound to it.
    #[arg(long, env = "KUBECONFIG")]
    kubeconfig: Option<PathBuf>,
    /// The CRI runtime's socket (wasmlet's, containerd's, CRI-O's).
    #[arg(long, default_value = "unix:///run/wasmlet/wasmlet.sock")]
    endpoint: String,
    #[command(flatten)]
    root: RootFlag,
    /// The node's name (default: the hostname).
    #[arg(long)]
    node_name: Option<String>,
    /// CPU kept from pods (kubelet's system-reserved + kube-reserved), e.g. `250m`.
    #[arg(long, default_value = "0")]
    reserved_cpu: String,
    /// Memory kept from pods, e.g. `256Mi`.
    #[arg(long, default_value = "0")]
    reserved_memory: String,
    /// The most pods the node runs (kubelet's --max-pods).
    #[arg(long, default_value_t = 110)]
    max_pods: i64,
    /// Container restart back-off: first delay, in ms (kubelet: 10 s).
    #[arg(long, default_value_t = 10_000)]
    backoff_base_ms: u64,
    /// Container restart back-off: maximum, in ms (kubelet: 5 min).
    #[arg(long, default_value_t = 300_000)]
    backoff_max_ms: u64,
    /// How often the runtime is relisted, in ms (kubelet's PLEG: 1 s).
    #[arg(long, default_value_t = 1000)]
    resync_ms: u64,
    /// How often the manifests folder is read, in ms.
    #[arg(long, default_value_t = 1000)]
    poll_ms: u64,
    /// Cluster mode: a taint for the Node, `key=value:Effect` (repeatable).
    #[arg(long = "register-with-taint")]
    taints: Vec<String>,
}

pub fn main(args: AgentArgs) -> anyhow::Result<ExitCode> {
    if args.manifests.is_none() && args.kubeconfig.is_none() {
        bail!("give --manifests DIR (static pods), --kubeconfig FILE (cluster mode), or both");
    }
    // One thread: a node agent spends its life waiting; this keeps its memory small.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(run(args))
}

async fn run(args: AgentArgs) -> anyhow::Result<ExitCode> {
    let root = args.root.root.clone();
    std::fs::create_dir_all(&root).with_context(|| format!("creating {}", root.display()))?;
    let reserved = Reserved {
        cpu_millis: quantity::cpu_millis(&args.reserved_cpu).context("--reserved-cpu")?,
        memory_bytes: quantity::bytes(&args.reserved_memory).context("--reserved-memory")?,
    };
    let node = NodeInfo::detect(args.node_name.clone(), reserved, args.max_pods)?;
    let client = cri::connect(&args.endpoint).await?;
    let version = client
        .runtime
        .clone()
        .version(k8s_cri::v1::VersionRequest::default())
        .await
        .context("CRI Version")?
        .into_inner();
    tracing::info!(
        node = %node.name,
        runtime = %version.runtime_name,
        runtime.version = %version.runtime_version,
        cpu.allocatable = node.cpu_allocatable_millis,
        memory.allocatable = node.memory_allocatable_bytes,
        "wasmlet node starting"
    );
    let backoff = BackoffConfig {
        base: Duration::from_millis(args.backoff_base_ms),
        max: Duration::from_millis(args.backoff_max_ms),
    };
    let settings = Arc::new(Settings {
        node: node.clone(),
        root: root.clone(),
        log_root: root.join("logs"),
        restart_backoff: backoff,
        pull_backoff: backoff,
        resync: Duration::from_millis(args.resync_ms.max(10)),
        objects: Default::default(),
        runtime_name: version.runtime_name.clone(),
    });
    let board = Board::default();
    let writer = tokio::spawn(state_file::keep_written(
        board.clone(),
        node.name.clone(),
        state_file::path(&root),
    ));
    let manager = Manager::new(settings, client.clone(), board);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {}
            _ = term.recv() => {}
        }
        tracing::info!("shutting down; pods keep running");
    };
    let result = match (args.kubeconfig, args.manifests) {
        (Some(kubeconfig), manifests) => {
            let cfg = cluster::Options {
                kubeconfig,
                manifests,
                taints: args.taints,
                poll: Duration::from_millis(args.poll_ms),
            };
            cluster::run(manager, client, cfg, shutdown).await
        }
        (None, Some(dir)) => {
            standalone::run(manager, dir, Duration::from_millis(args.poll_ms), shutdown).await
        }
        (None, None) => unreachable!("checked in main"),
    };
    writer.abort();
    result?;
    Ok(ExitCode::SUCCESS)
}
