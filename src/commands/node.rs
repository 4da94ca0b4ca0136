//! `wasmlet node`: the lightweight kubelet (crates/kubelet-wasm) against any CRI endpoint.
//! Standalone with `--manifests DIR` (static pods from a folder), in a cluster with
//! `--kubeconfig FILE`; `wasmlet node pods` and `wasmlet node logs` read the agent's state file.

mod agent;
mod logs;
mod pods;

use std::path::PathBuf;
use std::process::ExitCode;

/// Where the agent keeps pod files, logs and its state file (`status.json`).
pub const DEFAULT_ROOT: &str = "/var/lib/wasmlet-node";

#[derive(clap::Args)]
#[command(args_conflicts_with_subcommands = true)]
pub struct Args {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    agent: agent::AgentArgs,
}

#[derive(clap::Subcommand)]
enum Command {
    /// List the agent's pods like `kubectl get pods` (NAME READY STATUS RESTARTS AGE).
    Pods(pods::Args),
    /// Print a container's logs.
    Logs(logs::Args),
}

/// `--root`, shared by the agent and its readers.
#[derive(clap::Args, Clone)]
pub struct RootFlag {
    /// The agent's directory: pods/, logs/, status.json.
    #[arg(long, env = "WASMLET_NODE_ROOT", default_value = DEFAULT_ROOT)]
    pub root: PathBuf,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    match args.command {
        Some(Command::Pods(a)) => pods::main(a),
        Some(Command::Logs(a)) => logs::main(a),
        None => agent::main(args.agent),
    }
}
