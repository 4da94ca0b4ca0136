//! `wasmlet shim`: the per-pod supervisor. Binds its socket, detaches from the daemon (it forks,
//! so nothing may start a thread before), then serves.

use std::path::PathBuf;
use std::process::ExitCode;

use wasmlet_shim::server::{ShimOptions, bind_and_detach, serve};

use crate::logging;

#[derive(clap::Args)]
pub struct Args {
    #[arg(long)]
    sandbox_id: String,
    /// The shim's directory (socket, exit records).
    #[arg(long)]
    dir: PathBuf,
    /// Pin a new network namespace for the pod here (absent: the node's network).
    #[arg(long)]
    netns: Option<PathBuf>,
}

pub fn main(args: Args, log_filter: &str, format: logging::Format) -> anyhow::Result<ExitCode> {
    let opts = ShimOptions { sandbox_id: args.sandbox_id, dir: args.dir, netns: args.netns };
    let listener = bind_and_detach(&opts)?;
    logging::init(log_filter, format);
    serve(opts, listener)?;
    Ok(ExitCode::SUCCESS)
}
