//! `wasmlet bench exec`: ExecSync round trips (what every kubelet exec probe costs) on any CRI
//! endpoint: one long-running pod per endpoint, then `--execs` ExecSync calls of `--exec`,
//! interleaved call by call with `--vs` when given; prints p50 / p90 / p99 / max and the ratio.

use std::time::{Duration, Instant};

use k8s_cri::v1 as cri;
use wasmlet_cri::client::{CriClient, connect};

use super::report::quantile;
use super::{Words, Workload, start_pod, teardown, words};

#[derive(clap::Args)]
pub struct Exec {
    /// CRI endpoint.
    #[arg(long, default_value = "unix:///run/wasmlet/wasmlet.sock")]
    endpoint: String,
    /// Image of the pod's container (must be present on the endpoint).
    #[arg(long)]
    image: String,
    /// The container's command, kept running (e.g. `sleep 3600`; a Wasm logger's args).
    #[arg(long, allow_hyphen_values = true, value_parser = words)]
    command: Option<Words>,
    /// The container's args.
    #[arg(long, allow_hyphen_values = true, value_parser = words)]
    args: Option<Words>,
    /// What ExecSync runs, e.g. `true`.
    #[arg(long = "exec", allow_hyphen_values = true, value_parser = words)]
    exec: Words,
    /// ExecSync calls per endpoint.
    #[arg(long, default_value_t = 100)]
    execs: usize,
    /// A second endpoint, interleaved call by call.
    #[arg(long)]
    vs: Option<String>,
    #[arg(long)]
    vs_image: Option<String>,
    #[arg(long, allow_hyphen_values = true, value_parser = words)]
    vs_command: Option<Words>,
    #[arg(long, allow_hyphen_values = true, value_parser = words)]
    vs_exec: Option<Words>,
}

struct Target {
    endpoint: String,
    client: CriClient,
    sandbox: String,
    pod_logs: std::path::PathBuf,
    container: String,
    exec: Vec<String>,
    samples: Vec<f64>,
}

async fn target(endpoint: &str, w: &Workload, exec: Vec<String>, log_dir: &std::path::Path) -> anyhow::Result<Target> {
    let mut client = connect(endpoint).await?;
    let started = start_pod(&mut client, w, "bench-exec", log_dir).await?;
    let containers = client
        .runtime
        .list_containers(cri::ListContainersRequest {
            filter: Some(cri::ContainerFilter { pod_sandbox_id: started.sandbox.clone(), ..Default::default() }),
        })
        .await?
        .into_inner()
        .containers;
    let container = containers.first().map(|c| c.id.clone()).ok_or_else(|| anyhow::anyhow!("{endpoint}: no container"))?;
    Ok(Target { endpoint: endpoint.into(), client, sandbox: started.sandbox, pod_logs: started.pod_logs, container, exec, samples: vec![] })
}

pub(crate) async fn run(a: Exec) -> anyhow::Result<std::process::ExitCode> {
    let log_dir = tempfile::tempdir()?;
    let w = Workload {
        image: a.image.clone(),
        handler: String::new(),
        command: a.command.clone().map(|w| w.0).unwrap_or_default(),
        args: a.args.clone().map(|w| w.0).unwrap_or_default(),
        host_network: true,
    };
    let mut targets = vec![target(&a.endpoint, &w, a.exec.0.clone(), log_dir.path()).await?];
    if let Some(vs) = &a.vs {
        let vw = Workload {
            image: a.vs_image.clone().unwrap_or(a.image.clone()),
            command: a.vs_command.clone().map(|w| w.0).unwrap_or(w.command.clone()),
            ..w.clone()
        };
        targets.push(target(vs, &vw, a.vs_exec.clone().map(|w| w.0).unwrap_or(a.exec.0.clone()), log_dir.path()).await?);
    }
    // Let the containers start before the first probe.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let mut failure = None;
    'calls: for _ in 0..a.execs {
        for t in &mut targets {
            let req = cri::ExecSyncRequest { container_id: t.container.clone(), cmd: t.exec.clone(), timeout: 10 };
            let start = Instant::now();
            match t.client.runtime.exec_sync(req).await {
                Ok(r) if r.get_ref().exit_code == 0 => t.samples.push(start.elapsed().as_secs_f64() * 1e6),
                Ok(r) => {
                    failure = Some(format!("{}: exit {} {}", t.endpoint, r.get_ref().exit_code, String::from_utf8_lossy(&r.get_ref().stderr)));
                    break 'calls;
                }
                Err(e) => {
                    failure = Some(format!("{}: {e}", t.endpoint));
                    break 'calls;
                }
            }
        }
    }
    for t in &mut targets {
        teardown(&mut t.client, &t.sandbox, &t.pod_logs).await;
    }
    if let Some(f) = failure {
        anyhow::bail!("ExecSync failed: {f}");
    }
    println!("ExecSync round trip (µs, {} calls each)", a.execs);
    println!("{:<60} {:>9} {:>9} {:>9} {:>9}", "endpoint / exec", "p50", "p90", "p99", "max");
    for t in &mut targets {
        t.samples.sort_by(f64::total_cmp);
        let q = |p| quantile(&t.samples, p);
        let label = format!("{} `{}`", t.endpoint, t.exec.join(" "));
        println!("{label:<60} {:>9.0} {:>9.0} {:>9.0} {:>9.0}", q(0.5), q(0.9), q(0.99), q(1.0));
    }
    if let [a, b] = targets.as_slice() {
        println!("ratio {} / {}: p50 {:.1}×, p99 {:.1}×", b.endpoint, a.endpoint, quantile(&b.samples, 0.5) / quantile(&a.samples, 0.5), quantile(&b.samples, 0.99) / quantile(&a.samples, 0.99));
    }
    Ok(std::process::ExitCode::SUCCESS)
}
