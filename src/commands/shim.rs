//! `wasmlet shim`: the per-pod supervisor. Binds its socket, detaches from the daemon (it forks,
//! so nothing may start a thread before), then serves. Also `wasmlet linux-create`, the
//! single-threaded helpers a shim execs to create a Linux container and to exec in one.

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

/// `wasmlet linux-create ID STATE_ROOT BUNDLE [CONSOLE_SOCKET]`, with the container's stdio at
/// fds 3, 4, 5 (a container with a terminal sends its master to CONSOLE_SOCKET instead).
#[derive(clap::Args)]
pub struct LinuxCreateArgs {
    id: String,
    state_root: PathBuf,
    bundle: PathBuf,
    console_socket: Option<PathBuf>,
}

/// Creates the container and reports `ok <pid>` / `error <message>` on stdout.
pub fn linux_create(args: LinuxCreateArgs) -> ExitCode {
    if let Err(e) = super::cgroup_root::enter_configured() {
        println!("error {e}");
        return ExitCode::from(1);
    }
    let code = wasmlet_shim::linux::create::create_main(&args.id, &args.state_root, &args.bundle, args.console_socket.as_deref());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}

/// `wasmlet linux-exec ID STATE_ROOT SPEC_JSON [CONSOLE_SOCKET]`, with the process's stdio at
/// fds 3, 4, 5.
#[derive(clap::Args)]
pub struct LinuxExecArgs {
    id: String,
    state_root: PathBuf,
    spec: String,
    console_socket: Option<PathBuf>,
}

/// Starts the process and reports `ok <pid>` / `error <message>` on stdout.
pub fn linux_exec(args: LinuxExecArgs) -> ExitCode {
    if let Err(e) = super::cgroup_root::enter_configured() {
        println!("error {e}");
        return ExitCode::from(1);
    }
    let code = wasmlet_shim::linux::exec::exec_main(&args.id, &args.state_root, &args.spec, args.console_socket.as_deref());
    ExitCode::from(u8::try_from(code).unwrap_or(1))
}
