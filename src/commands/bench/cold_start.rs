//! `wasmlet bench cold-start`: times pod starts through any CRI endpoint (wasmlet, containerd,
//! CRI-O). For each pod: RunPodSandbox, CreateContainer, StartContainer, and the wait for the
//! container's first log line; then the pod is torn down (timed apart, for the throughput).
//! With `--vs` a second endpoint runs interleaved, pod by pod, in the same run, so both see the
//! same machine noise; the ratio table compares them. Writes raw samples as JSON and a CDF as SVG.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use wasmlet_cri::client::{CriClient, connect};

use super::report::{self, Sample};
use super::{Words, Workload, start_pod, teardown, words};

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
    /// Pods to start (per endpoint).
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Pods in flight at once.
    #[arg(long, default_value_t = 1)]
    concurrency: usize,
    /// Pod network: `host` (hostNetwork) or `pod` (the runtime makes one).
    #[arg(long, default_value = "host")]
    network: String,
    /// The container's command (entrypoint override), one string split like a shell's words,
    /// e.g. `--command "sh -c 'echo hi'"`.
    #[arg(long, allow_hyphen_values = true, value_parser = words)]
    command: Option<Words>,
    /// Arguments for the container, split like `--command` (the container must print a line).
    #[arg(long, allow_hyphen_values = true, value_parser = words)]
    args: Option<Words>,
    /// A second CRI endpoint, run interleaved pod by pod with the first.
    #[arg(long)]
    vs: Option<String>,
    /// Image on the second endpoint [default: --image].
    #[arg(long)]
    vs_image: Option<String>,
    /// RuntimeClass handler on the second endpoint [default: --handler].
    #[arg(long)]
    vs_handler: Option<String>,
    /// Command on the second endpoint, split like --command [default: --command].
    #[arg(long, allow_hyphen_values = true, value_parser = words)]
    vs_command: Option<Words>,
    /// Arguments on the second endpoint, split like --command [default: --args].
    #[arg(long, allow_hyphen_values = true, value_parser = words)]
    vs_args: Option<Words>,
    /// Where to write raw samples (per endpoint), summaries and ratios as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Where to draw the latency CDF per phase as SVG.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Log directory for the pods [default: a temporary directory].
    #[arg(long)]
    log_dir: Option<PathBuf>,
}

/// One endpoint under test.
struct Target {
    endpoint: String,
    client: CriClient,
    workload: Workload,
}

pub(super) async fn run(args: ColdStart) -> anyhow::Result<ExitCode> {
    if args.pods == 0 || args.concurrency == 0 {
        bail!("--pods and --concurrency must be at least 1");
    }
    let host_network = match args.network.as_str() {
        "host" => true,
        "pod" => false,
        other => bail!("--network must be `host` or `pod`, not {other:?}"),
    };
    let first = Workload {
        image: args.image.clone(),
        handler: args.handler.clone(),
        command: args.command.clone().unwrap_or_default().0,
        args: args.args.clone().unwrap_or_default().0,
        host_network,
    };
    let mut targets = vec![Target { client: dial(&args.endpoint).await?, endpoint: args.endpoint.clone(), workload: first.clone() }];
    if let Some(vs) = &args.vs {
        let workload = Workload {
            image: args.vs_image.clone().unwrap_or(first.image.clone()),
            handler: args.vs_handler.clone().unwrap_or(first.handler.clone()),
            command: args.vs_command.clone().map_or(first.command.clone(), |w| w.0),
            args: args.vs_args.clone().map_or(first.args.clone(), |w| w.0),
            host_network,
        };
        targets.push(Target { client: dial(vs).await?, endpoint: vs.clone(), workload });
    }
    let tmp;
    let log_dir = match &args.log_dir {
        Some(d) => d.clone(),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_owned()
        }
    };

    // Pod i goes to endpoint i % targets: the endpoints alternate, pod by pod.
    let targets = Arc::new(targets);
    let total = args.pods * targets.len();
    let next = Arc::new(AtomicUsize::new(0));
    let began = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency {
        let (targets, next, log_dir) = (targets.clone(), next.clone(), log_dir.clone());
        workers.push(tokio::spawn(async move {
            let mut samples = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= total {
                    return Ok::<_, anyhow::Error>(samples);
                }
                let t = &targets[i % targets.len()];
                let sample = one_pod(t.client.clone(), &t.workload, i, &log_dir)
                    .await
                    .with_context(|| format!("pod {i} on {}", t.endpoint))?;
                samples.push((i % targets.len(), sample));
            }
        }));
    }
    let mut per_target: Vec<Vec<Sample>> = vec![Vec::new(); targets.len()];
    for w in workers {
        for (t, s) in w.await?? {
            per_target[t].push(s);
        }
    }
    let elapsed = began.elapsed();

    for (t, samples) in targets.iter().zip(&per_target) {
        report::print_table(&format!("{} ({})", t.endpoint, t.workload.image), samples);
        if targets.len() == 1 {
            println!("throughput: {:.1} pods/s (start and teardown)", samples.len() as f64 / elapsed.as_secs_f64());
        } else {
            println!(
                "throughput: {:.1} pods/s (start and teardown, from its own pods' times)",
                report::lifecycle_rate(samples, args.concurrency)
            );
        }
        println!();
    }
    if targets.len() == 2 {
        report::print_ratios(&targets[0].endpoint, &targets[1].endpoint, &per_target[0], &per_target[1]);
    }

    if let Some(path) = &args.json {
        let endpoints: Vec<_> = targets
            .iter()
            .zip(&per_target)
            .map(|(t, s)| {
                serde_json::json!({
                    "endpoint": t.endpoint,
                    "image": t.workload.image,
                    "handler": t.workload.handler,
                    "command": t.workload.command,
                    "args": t.workload.args,
                    "summary_us": report::summary_json(s),
                    "lifecycles_per_s": report::lifecycle_rate(s, args.concurrency),
                    "samples_us": s,
                })
            })
            .collect();
        let mut doc = serde_json::json!({
            "pods_per_endpoint": args.pods,
            "concurrency": args.concurrency,
            "network": args.network,
            "elapsed_s": elapsed.as_secs_f64(),
            "endpoints": endpoints,
        });
        if per_target.len() == 2 {
            doc["ratios_second_over_first"] = report::ratios_json(&per_target[0], &per_target[1]);
        }
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        let series: Vec<(&str, &[Sample])> = targets.iter().zip(&per_target).map(|(t, s)| (t.endpoint.as_str(), s.as_slice())).collect();
        std::fs::write(path, super::svg::cdf(&series)).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

async fn dial(endpoint: &str) -> anyhow::Result<CriClient> {
    connect(endpoint).await.with_context(|| format!("connecting to {endpoint}"))
}

async fn one_pod(mut client: CriClient, w: &Workload, i: usize, log_dir: &Path) -> anyhow::Result<Sample> {
    let pod = start_pod(&mut client, w, &format!("bench-{i}"), log_dir).await?;
    let [t0, t1, t2, t3] = pod.times;
    // Poll from a blocking thread with 50 µs sleeps: tokio's timer has 1 ms granularity, coarser
    // than what is measured, and spinning (yield_now) would take a core from the runtime under
    // test on a small machine.
    let log = pod.log.clone();
    let seen = tokio::task::spawn_blocking(move || {
        let deadline = t3 + Duration::from_secs(30);
        loop {
            if std::fs::metadata(&log).map(|m| m.len() > 0).unwrap_or(false) {
                return Some(Instant::now());
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_micros(50));
        }
    })
    .await?;
    let Some(t4) = seen else {
        teardown(&mut client, &pod.sandbox, &pod.pod_logs).await;
        bail!("no log line within 30 s ({})", pod.log.display());
    };
    teardown(&mut client, &pod.sandbox, &pod.pod_logs).await;
    let t5 = Instant::now();
    let us = |a: Instant, b: Instant| (b - a).as_secs_f64() * 1e6;
    Ok(Sample {
        run_pod_sandbox: us(t0, t1),
        create_container: us(t1, t2),
        start_container: us(t2, t3),
        first_log_line: us(t3, t4),
        total: us(t0, t4),
        teardown: us(t4, t5),
    })
}
