//! `wasmlet`: a Kubernetes node runtime that runs Pods as Wasm modules under wasmtime.
//! One file per subcommand under `commands/`; this file only parses the command line.

mod commands;
mod config;
mod logging;
mod pod;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "wasmlet", version, about = "A Kubernetes CRI runtime that runs Pods as Wasm modules under wasmtime")]
struct Cli {
    /// Log filter (tracing `EnvFilter` syntax, e.g. `info` or `wasmlet_cri=debug`); also WASMLET_LOG.
    #[arg(long, global = true, env = "WASMLET_LOG", default_value = "info")]
    log_level: String,
    /// Log format: `text` or `json`.
    #[arg(long, global = true, default_value = "text")]
    log_format: logging::Format,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the CRI (RuntimeService + ImageService) on a unix socket for kubelet and crictl.
    Daemon(commands::daemon::Args),
    /// Run one Pod from a YAML file on an embedded runtime in the foreground, streaming its logs.
    Run(commands::run::Args),
    /// A lightweight kubelet: static pods from a folder, or a Node in a cluster, through any CRI runtime.
    Node(commands::node::Args),
    /// Benchmarks against any CRI endpoint.
    #[command(subcommand)]
    Bench(commands::bench::Command),
    /// Manage the local image store.
    #[command(subcommand)]
    Image(commands::image::Command),
    /// The per-pod supervisor (started by the daemon; not for direct use).
    #[command(hide = true)]
    Shim(commands::shim::Args),
    /// Creates one Linux container with libcontainer (exec'd by a shim; not for direct use).
    #[command(hide = true, name = "linux-create")]
    LinuxCreate(commands::shim::LinuxCreateArgs),
    /// Runs a process in a Linux container with libcontainer (exec'd by a shim; not for direct use).
    #[command(hide = true, name = "linux-exec")]
    LinuxExec(commands::shim::LinuxExecArgs),
    /// Holds a pod's shared PID namespace (started by a shim; not for direct use).
    #[command(hide = true, name = "pid-holder")]
    PidHolder,
}

fn main() -> std::process::ExitCode {
    let cli = Cli::parse();
    // The shim forks before anything else starts a thread, so it sets up its own logging after.
    let result = match cli.command {
        Command::Shim(args) => commands::shim::main(args, &cli.log_level, cli.log_format),
        // Single-threaded, as libcontainer needs: no runtime, logs to the shim's log (stderr).
        Command::LinuxCreate(args) => {
            logging::init(&cli.log_level, cli.log_format);
            Ok(commands::shim::linux_create(args))
        }
        Command::PidHolder => Ok(std::process::ExitCode::from(wasmlet_shim::linux::pid_holder::holder_main() as u8)),
        Command::LinuxExec(args) => {
            logging::init(&cli.log_level, cli.log_format);
            Ok(commands::shim::linux_exec(args))
        }
        command => {
            logging::init(&cli.log_level, cli.log_format);
            match command {
                Command::Daemon(args) => commands::daemon::main(args, &cli.log_level),
                Command::Run(args) => commands::run::main(args, &cli.log_level),
                Command::Node(args) => commands::node::main(args),
                Command::Image(cmd) => commands::image::main(cmd),
                Command::Bench(cmd) => commands::bench::main(cmd),
                Command::Shim(_) | Command::LinuxCreate(_) | Command::LinuxExec(_) | Command::PidHolder => unreachable!("handled above"),
            }
        }
    };
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("wasmlet: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
