//! `wasmlet bench cold-start`: times pod starts through any CRI endpoint (wasmlet, containerd,
//! CRI-O). For each pod: RunPodSandbox, CreateContainer, StartContainer, and the wait for the
//! container's first log line; then the pod is torn down (not timed). Prints p50/p90/p99/max per
//! phase and the throughput, and writes the raw samples as JSON.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use k8s_cri::v1 as cri;
use wasmlet_cri::client::{CriClient, connect};

#[derive(clap::Subcommand)]
pub enum Command {
    /// Cold-start latency of whole pods (RunPodSandbox → first log line).
    ColdStart(ColdStart),
}

#[derive(clap::Args)]
pub struct ColdStart {
    /// CRI endpoint, e.g. unix:///run/wasmlet/wasmlet.sock or unix:///run/containerd/containerd.sock.
    #[arg(long, default_value = "unix:///run/wasmlet/wasmlet.sock")]
    endpoint: String,
    /// Image to run (must already be present on the endpoint).
    #[arg(long)]
    image: String,
    /// RuntimeClass handler.
    #[arg(long, default_value = "")]
    handler: String,
    /// Pods to start.
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Pods in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Pod network: `host` (hostNetwork) or `pod` (the runtime makes one).
    #[arg(long, default_value = "host")]
    network: String,
    /// Arguments for the container (the guest must print a line).
    #[arg(long, num_args = 0.., allow_hyphen_values = true)]
    args: Vec<String>,
    /// Where to write raw samples as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Log directory for the pods [default: a temporary directory].
    #[arg(long)]
    log_dir: Option<PathBuf>,
}

/// One pod's phases, in microseconds.
#[derive(Debug, Clone, Copy, serde::Serialize)]
struct Sample {
    run_pod_sandbox: f64,
    create_container: f64,
    start_container: f64,
    first_log_line: f64,
    total: f64,
}

pub fn main(command: Command) -> anyhow::Result<ExitCode> {
    let Command::ColdStart(args) = command;
    if args.pods == 0 || args.concurrency == 0 {
        bail!("--pods and --concurrency must be at least 1");
    }
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(cold_start(args))
}

async fn cold_start(args: ColdStart) -> anyhow::Result<ExitCode> {
    let client = connect(&args.endpoint).await.with_context(|| format!("connecting to {}", args.endpoint))?;
    let tmp;
    let log_dir = match &args.log_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };
    let args = std::sync::Arc::new(args);
    let began = Instant::now();
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (client, args, next, log_dir) = (client.clone(), args.clone(), next.clone(), log_dir.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= args.pods {
                    return Ok::<_, anyhow::Error>(samples);
                }
                samples.push(one_pod(client.clone(), &args, i, &log_dir).await?);
            }
        }));
    }
    let mut samples = Vec::new();
    for w in workers {
        samples.extend(w.await??);
    }
    let elapsed = began.elapsed();
    report(&samples, elapsed);
    if let Some(path) = &args.json {
        std::fs::write(path, serde_json::to_vec_pretty(&samples)?)?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn one_pod(mut client: CriClient, args: &ColdStart, i: usize, log_dir: &std::path::Path) -> anyhow::Result<Sample> {
    let uid = format!("{:032x}", rand::random::<u128>());
    let network = if args.network == "host" { cri::NamespaceMode::Node } else { cri::NamespaceMode::Pod };
    let pod_logs = log_dir.join(&uid);
    let config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata { name: format!("bench-{i}"), namespace: "bench".into(), uid, attempt: 0 }),
        log_directory: pod_logs.display().to_string(),
        linux: Some(cri::LinuxPodSandboxConfig {
            security_context: Some(cri::LinuxSandboxSecurityContext {
                namespace_options: Some(cri::NamespaceOption { network: network as i32, ..Default::default() }),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    let t0 = Instant::now();
    let sandbox = client
        .runtime
        .run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: args.handler.clone() })
        .await?
        .into_inner()
        .pod_sandbox_id;
    let t1 = Instant::now();
    let container = client
        .runtime
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata { name: "c".into(), attempt: 0 }),
                image: Some(cri::ImageSpec { image: args.image.clone(), ..Default::default() }),
                args: args.args.clone(),
                log_path: "c/0.log".into(),
                ..Default::default()
            }),
            sandbox_config: Some(config),
        })
        .await?
        .into_inner()
        .container_id;
    let t2 = Instant::now();
    client.runtime.start_container(cri::StartContainerRequest { container_id: container }).await?;
    let t3 = Instant::now();
    let log = pod_logs.join("c/0.log");
    let deadline = t3 + Duration::from_secs(30);
    // Poll by yielding (tokio's timer has 1 ms granularity, coarser than what is measured),
    // falling back to sleeping after the first 50 ms.
    loop {
        if std::fs::metadata(&log).map(|m| m.len() > 0).unwrap_or(false) {
            break;
        }
        let now = Instant::now();
        if now > deadline {
            bail!("no log line from pod {i} within 30 s ({})", log.display());
        }
        if now - t3 < Duration::from_millis(50) {
            tokio::task::yield_now().await;
        } else {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }
    let t4 = Instant::now();
    let _ = client.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: sandbox.clone() }).await;
    let _ = client.runtime.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox }).await;
    let _ = std::fs::remove_dir_all(&pod_logs);
    let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6;
    Ok(Sample {
        run_pod_sandbox: us(t0, t1),
        create_container: us(t1, t2),
        start_container: us(t2, t3),
        first_log_line: us(t3, t4),
        total: us(t0, t4),
    })
}

fn report(samples: &[Sample], elapsed: Duration) {
    let phases: [(&str, fn(&Sample) -> f64); 5] = [
        ("RunPodSandbox", |s| s.run_pod_sandbox),
        ("CreateContainer", |s| s.create_container),
        ("StartContainer", |s| s.start_container),
        ("first log line", |s| s.first_log_line),
        ("total", |s| s.total),
    ];
    println!("{:<16} {:>10} {:>10} {:>10} {:>10}   (µs, {} pods)", "phase", "p50", "p90", "p99", "max", samples.len());
    for (name, f) in phases {
        let mut v: Vec<f64> = samples.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        let q = |p: f64| v[((v.len() as f64 - 1.0) * p).round() as usize];
        println!("{:<16} {:>10.0} {:>10.0} {:>10.0} {:>10.0}", name, q(0.5), q(0.9), q(0.99), q(1.0));
    }
    println!("throughput: {:.1} pods/s (start and teardown)", samples.len() as f64 / elapsed.as_secs_f64());
}
