//! `wasmlet bench density`: parks N idle pods (e.g. the logger guest at one line a minute) on an
//! endpoint and reports what they cost: time to start them all, CRI latency (Version and
//! ListContainers round trips) under that load, and memory — the PSS of the wasmlet daemon, its
//! zygote and every shim (found through /proc by their titles: `wasmlet zygote`,
//! `wasmlet shim …`), in total and per pod. With `--step` it grows N a step at a time and stops
//! at the largest N under `--max-pss-mib` (or at the first failed start). Tears everything down.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use anyhow::{Context, bail};
use k8s_cri::v1 as cri;
use wasmlet_cri::client::{CriClient, connect};

use super::report::quantile;
use super::{Words, Workload, start_pod, teardown, words};

#[derive(clap::Args)]
pub struct Density {
    /// CRI endpoint of a wasmlet daemon.
    #[arg(long, default_value = "unix:///run/wasmlet/wasmlet.sock")]
    endpoint: String,
    /// Image to park, e.g. localhost/logger:latest (must already be present).
    #[arg(long)]
    image: String,
    /// RuntimeClass handler.
    #[arg(long, default_value = "")]
    handler: String,
    /// Arguments for the container, split like a shell's words (the logger: milliseconds between lines).
    #[arg(long, allow_hyphen_values = true, value_parser = words, default_value = "60000")]
    args: Words,
    /// Pods to start (with --step: the most to try).
    #[arg(long, default_value_t = 100)]
    pods: usize,
    /// Grow by this many pods at a time, measuring after each step.
    #[arg(long)]
    step: Option<usize>,
    /// With --step: stop before the total PSS (daemon + zygote + shims) passes this many MiB.
    #[arg(long)]
    max_pss_mib: Option<f64>,
    /// Pod starts in flight at once.
    #[arg(long, default_value_t = 2)]
    concurrency: usize,
    /// Pod network: `host` (hostNetwork) or `pod`.
    #[arg(long, default_value = "host")]
    network: String,
    /// The daemon's pid [default: the `wasmlet daemon` process serving --endpoint].
    #[arg(long)]
    daemon_pid: Option<u32>,
    /// Round trips per CRI latency measurement.
    #[arg(long, default_value_t = 200)]
    samples: usize,
    /// Where to write the steps as JSON.
    #[arg(long)]
    json: Option<PathBuf>,
}

/// Memory of the wasmlet processes, in KiB of PSS.
#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
struct Memory {
    daemon_kib: u64,
    zygote_kib: u64,
    shims_kib: u64,
    shims: usize,
}

impl Memory {
    fn total_kib(&self) -> u64 {
        self.daemon_kib + self.zygote_kib + self.shims_kib
    }
}

/// One measurement, after a step.
#[derive(Debug, serde::Serialize)]
struct Step {
    pods: usize,
    start_s: f64,
    memory: Memory,
    pss_per_pod_kib: f64,
    marginal_pss_per_pod_kib: f64,
}

pub(super) async fn run(args: Density) -> anyhow::Result<ExitCode> {
    if args.pods == 0 || args.concurrency == 0 || args.step == Some(0) {
        bail!("--pods, --step and --concurrency must be at least 1");
    }
    let workload = Workload {
        image: args.image.clone(),
        handler: args.handler.clone(),
        command: Vec::new(),
        args: args.args.0.clone(),
        host_network: args.network == "host",
    };
    let client = connect(&args.endpoint).await.with_context(|| format!("connecting to {}", args.endpoint))?;
    let daemon = match args.daemon_pid {
        Some(pid) => Some(pid),
        None => find_daemon(&args.endpoint)?,
    };
    if daemon.is_none() {
        eprintln!("warning: no `wasmlet daemon` process found for {}; counting every wasmlet shim and zygote", args.endpoint);
    }
    let log_dir = tempfile::tempdir()?;
    let base = memory(daemon);
    println!("before: daemon {:.1} MiB, zygote {:.1} MiB, {} shims {:.1} MiB", mib(base.daemon_kib), mib(base.zygote_kib), base.shims, mib(base.shims_kib));
    println!("{:>7} {:>9} {:>8} {:>10} {:>10} {:>10} {:>10} {:>12} {:>12}", "pods", "start s", "pods/s", "total MiB", "daemon MiB", "zygote MiB", "shims MiB", "KiB/pod", "marginal KiB");

    let step = args.step.unwrap_or(args.pods);
    let mut sandboxes: Vec<(String, PathBuf)> = Vec::new();
    let mut steps: Vec<Step> = Vec::new();
    let mut fits: Option<usize> = None;
    let mut stop_reason = String::from("reached --pods");
    while sandboxes.len() < args.pods {
        let want = step.min(args.pods - sandboxes.len());
        let began = Instant::now();
        let (started, failure) = start_batch(&client, &workload, sandboxes.len(), want, args.concurrency, log_dir.path()).await;
        let start_s = began.elapsed().as_secs_f64();
        sandboxes.extend(started);
        if let Some(e) = failure {
            stop_reason = format!("a start failed at {} pods: {e:#}", sandboxes.len());
            break;
        }
        let m = memory(daemon);
        let n = sandboxes.len();
        let s = Step {
            pods: n,
            start_s,
            memory: m,
            pss_per_pod_kib: m.shims_kib as f64 / n as f64,
            marginal_pss_per_pod_kib: (m.total_kib() as f64 - base.total_kib() as f64) / n as f64,
        };
        println!(
            "{:>7} {:>9.2} {:>8.0} {:>10.1} {:>10.1} {:>10.1} {:>10.1} {:>12.0} {:>12.0}",
            n, start_s, want as f64 / start_s, mib(m.total_kib()), mib(m.daemon_kib), mib(m.zygote_kib), mib(m.shims_kib), s.pss_per_pod_kib, s.marginal_pss_per_pod_kib
        );
        steps.push(s);
        if let Some(budget) = args.max_pss_mib
            && mib(m.total_kib()) > budget
        {
            stop_reason = format!("total PSS passed {budget} MiB at {n} pods");
            break;
        }
        fits = Some(n);
    }
    if args.step.is_some() {
        println!("largest N that fits: {} ({stop_reason})", fits.map_or("none".into(), |n| n.to_string()));
    }

    // CRI latency under the load that is up now.
    let mut c = client.clone();
    let version = time_calls(args.samples, || {
        let mut c = c.clone();
        async move { c.runtime.version(cri::VersionRequest::default()).await.map(|_| ()) }
    })
    .await?;
    let list_n = args.samples.div_ceil(4);
    let list = time_calls(list_n, || {
        let mut c = c.clone();
        async move { c.runtime.list_containers(cri::ListContainersRequest::default()).await.map(|_| ()) }
    })
    .await?;
    let listed = c.runtime.list_containers(cri::ListContainersRequest::default()).await?.into_inner().containers.len();
    println!("CRI latency with {} pods up ({listed} containers listed):", sandboxes.len());
    println!("  Version         p50 {:>8.0} µs   p99 {:>8.0} µs", quantile(&version, 0.5), quantile(&version, 0.99));
    println!("  ListContainers  p50 {:>8.0} µs   p99 {:>8.0} µs", quantile(&list, 0.5), quantile(&list, 0.99));

    let began = Instant::now();
    let n = sandboxes.len();
    teardown_all(&client, sandboxes, args.concurrency).await;
    println!("teardown of {n} pods: {:.2} s", began.elapsed().as_secs_f64());

    if let Some(path) = &args.json {
        let doc = serde_json::json!({
            "endpoint": args.endpoint,
            "image": args.image,
            "args": args.args.0,
            "baseline": base,
            "steps": steps,
            "largest_fitting": fits,
            "stop_reason": stop_reason,
            "cri_latency_us": {
                "version": { "p50": quantile(&version, 0.5), "p99": quantile(&version, 0.99) },
                "list_containers": { "p50": quantile(&list, 0.5), "p99": quantile(&list, 0.99) },
            },
        });
        std::fs::write(path, serde_json::to_vec_pretty(&doc)?).with_context(|| format!("writing {}", path.display()))?;
    }
    Ok(ExitCode::SUCCESS)
}

fn mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// Starts `count` pods, `concurrency` at a time; returns those started and the first error.
async fn start_batch(
    client: &CriClient,
    w: &Workload,
    first: usize,
    count: usize,
    concurrency: usize,
    log_dir: &std::path::Path,
) -> (Vec<(String, PathBuf)>, Option<anyhow::Error>) {
    let next = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..concurrency.min(count) {
        let (mut client, w, next, log_dir) = (client.clone(), w.clone(), next.clone(), log_dir.to_owned());
        workers.push(tokio::spawn(async move {
            let mut started = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= count {
                    return (started, None);
                }
                match start_pod(&mut client, &w, &format!("density-{}", first + i), &log_dir).await {
                    Ok(p) => started.push((p.sandbox, p.pod_logs)),
                    Err(e) => return (started, Some(e)),
                }
            }
        }));
    }
    let (mut all, mut failure) = (Vec::new(), None);
    for w in workers {
        match w.await {
            Ok((s, e)) => {
                all.extend(s);
                failure = failure.or(e);
            }
            Err(e) => failure = failure.or(Some(e.into())),
        }
    }
    (all, failure)
}

async fn teardown_all(client: &CriClient, sandboxes: Vec<(String, PathBuf)>, concurrency: usize) {
    let queue = std::sync::Arc::new(std::sync::Mutex::new(sandboxes));
    let mut workers = Vec::new();
    for _ in 0..concurrency {
        let (mut client, queue) = (client.clone(), queue.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let next = queue.lock().expect("queue lock").pop();
                let Some((sandbox, logs)) = next else { return };
                teardown(&mut client, &sandbox, &logs).await;
            }
        }));
    }
    for w in workers {
        let _ = w.await;
    }
}

/// Times `n` sequential calls; returns sorted µs.
async fn time_calls<F, Fut>(n: usize, mut call: F) -> anyhow::Result<Vec<f64>>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<(), tonic::Status>>,
{
    let mut v = Vec::with_capacity(n);
    for _ in 0..n.max(1) {
        let t = Instant::now();
        call().await?;
        v.push(t.elapsed().as_secs_f64() * 1e6);
    }
    v.sort_by(f64::total_cmp);
    Ok(v)
}

/// A process as /proc shows it: parent and argv.
struct Proc {
    ppid: u32,
    argv: Vec<String>,
}

fn processes() -> HashMap<u32, Proc> {
    let mut out = HashMap::new();
    let Ok(dir) = std::fs::read_dir("/proc") else { return out };
    for e in dir.flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|s| s.parse::<u32>().ok()) else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // Fields after the command name (which may hold spaces): state, ppid, …
        let Some(ppid) = stat.rfind(')').and_then(|i| stat[i + 2..].split_whitespace().nth(1)?.parse().ok()) else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let argv = cmdline.split(|b| *b == 0).filter(|a| !a.is_empty()).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        out.insert(pid, Proc { ppid, argv });
    }
    out
}

fn is_wasmlet(argv: &[String], sub: &str) -> bool {
    argv.first().is_some_and(|a| a.rsplit('/').next() == Some("wasmlet"))
        && (argv.get(1).map(String::as_str) == Some(sub) || argv.iter().skip(1).any(|a| a == sub))
}

/// The `wasmlet daemon` serving `endpoint`: the only one, or the one naming its socket.
fn find_daemon(endpoint: &str) -> anyhow::Result<Option<u32>> {
    let socket = endpoint.strip_prefix("unix://").unwrap_or(endpoint);
    let procs = processes();
    let daemons: Vec<u32> = procs.iter().filter(|(_, p)| is_wasmlet(&p.argv, "daemon")).map(|(pid, _)| *pid).collect();
    match daemons.as_slice() {
        [] => Ok(None),
        [one] => Ok(Some(*one)),
        many => {
            let named: Vec<u32> = many.iter().copied().filter(|pid| procs[pid].argv.iter().any(|a| a.contains(socket))).collect();
            match named.as_slice() {
                [one] => Ok(Some(*one)),
                _ => bail!("{} wasmlet daemons run; pass --daemon-pid", many.len()),
            }
        }
    }
}

/// PSS of the daemon and its descendants (zygote, shims), by title; without a daemon, of every
/// process titled `wasmlet zygote` or `wasmlet shim`.
fn memory(daemon: Option<u32>) -> Memory {
    let procs = processes();
    let mut members: Vec<u32> = Vec::new();
    match daemon {
        Some(root) => {
            let mut children: HashMap<u32, Vec<u32>> = HashMap::new();
            for (pid, p) in &procs {
                children.entry(p.ppid).or_default().push(*pid);
            }
            let mut stack = vec![root];
            while let Some(pid) = stack.pop() {
                members.push(pid);
                stack.extend(children.get(&pid).into_iter().flatten());
            }
        }
        None => members.extend(procs.iter().filter(|(_, p)| title(&p.argv).starts_with("wasmlet ")).map(|(pid, _)| *pid)),
    }
    let mut m = Memory::default();
    for pid in members {
        let kib = pss_kib(pid).unwrap_or(0);
        let t = procs.get(&pid).map(|p| title(&p.argv)).unwrap_or_default();
        if Some(pid) == daemon {
            m.daemon_kib += kib;
        } else if t.starts_with("wasmlet shim") {
            m.shims_kib += kib;
            m.shims += 1;
        } else if t.starts_with("wasmlet zygote") {
            m.zygote_kib += kib;
        } else {
            // Other children of the daemon (none expected) count with it.
            m.daemon_kib += kib;
        }
    }
    m
}

/// The argv as one string (a renamed process's title is its first "argument").
fn title(argv: &[String]) -> String {
    argv.join(" ")
}

/// `Pss:` of /proc/PID/smaps_rollup, in KiB.
fn pss_kib(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup")).ok()?;
    text.lines().find_map(|l| l.strip_prefix("Pss:")).and_then(|v| v.split_whitespace().next()?.parse().ok())
}
