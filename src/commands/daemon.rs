//! `wasmlet daemon`: the CRI server for kubelet and crictl.

use std::process::ExitCode;

use wasmlet_cri::Runtime;

use crate::config::PathFlags;

#[derive(clap::Args)]
#[command(after_help = "Every path can be set by flag or in the TOML config file (keys: socket, root, state, cni_conf_dir, cni_bin_dirs, stream_address, stream_idle_timeout); flags win.")]
pub struct Args {
    #[command(flatten)]
    paths: PathFlags,
    /// Where the streaming server (exec, attach, port-forward URLs) listens; port 0 picks a free
    /// one [default: 127.0.0.1:0].
    #[arg(long)]
    stream_address: Option<std::net::SocketAddr>,
    /// A streaming session with no traffic for this long is closed and what it started (exec,
    /// attach, port-forward connections) torn down, as containerd's `stream_idle_timeout`:
    /// `4h`, `30m`, `90s`, `500ms`; `0` never [default: 4h].
    #[arg(long, env = "WASMLET_STREAM_IDLE_TIMEOUT")]
    stream_idle_timeout: Option<String>,
}

pub fn main(args: Args, log_filter: &str) -> anyhow::Result<ExitCode> {
    let paths = args.paths.resolve()?;
    let idle_flag = args
        .stream_idle_timeout
        .as_deref()
        .map(crate::config::parse_idle_timeout)
        .transpose()
        .map_err(|e| anyhow::anyhow!("--stream-idle-timeout: {e}"))?;
    // Forked while this process is still single-threaded (before the async runtime).
    let zygote = wasmlet_shim::zygote::Zygote::start()?;
    tracing::info!(pid = zygote.pid(), "zygote started");
    let opts = paths.runtime_options(paths.root.clone(), paths.state.clone(), zygote, log_filter)?;
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(async move {
        let runtime = Runtime::open(opts).await?;
        let stream_address = args.stream_address.or(paths.stream_address).unwrap_or(([127, 0, 0, 1], 0).into());
        let idle_timeout =
            idle_flag.or(paths.stream_idle_timeout).unwrap_or(Some(wasmlet_cri::streaming::DEFAULT_IDLE_TIMEOUT));
        let streaming = wasmlet_cri::streaming::start(&runtime, stream_address, idle_timeout).await?;
        tracing::info!(address = %streaming, "streaming server (exec, attach, port-forward) ready");
        let shutdown = async {
            let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).expect("SIGTERM handler");
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term.recv() => {}
            }
            tracing::info!("shutting down; pods keep running in their shims");
        };
        wasmlet_cri::serve(runtime, &paths.socket, shutdown).await?;
        Ok(ExitCode::SUCCESS)
    })
}
