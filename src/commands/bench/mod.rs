//! `wasmlet bench`: benchmarks that drive any CRI endpoint (wasmlet, containerd, CRI-O) the way
//! kubelet does. `cold-start` times whole pods, one at a time or interleaved across two endpoints
//! (`--vs`); `density` parks many idle pods and measures what they cost; `exec` times ExecSync.
//! This module holds what they share: the pod a benchmark starts and how it is torn down.

mod cold_start;
mod density;
mod exec;
mod report;
mod svg;

use std::path::Path;
use std::process::ExitCode;
use std::time::Instant;

use k8s_cri::v1 as cri;
use wasmlet_cri::client::CriClient;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Cold-start latency of whole pods (RunPodSandbox → first log line), optionally vs a second endpoint.
    ColdStart(cold_start::ColdStart),
    /// Memory (PSS) and CRI latency with many idle pods; finds the largest count under a budget.
    Density(density::Density),
    /// ExecSync round trips (an exec probe's cost), optionally vs a second endpoint.
    Exec(exec::Exec),
}

pub fn main(command: Command) -> anyhow::Result<ExitCode> {
    // One thread: the client should take as little as it can of the cores the runtime under
    // test runs on (its requests are I/O; pods in flight are futures on this thread, and the
    // first-log-line wait is a blocking thread of its own). On 2 vCPUs a two-worker runtime
    // here added 0.1–0.2 ms to the measured p50 of a whole pod, on either endpoint.
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    match command {
        Command::ColdStart(args) => rt.block_on(cold_start::run(args)),
        Command::Density(args) => rt.block_on(density::run(args)),
        Command::Exec(args) => rt.block_on(exec::run(args)),
    }
}

/// A command line given as one string (`"sh -c 'echo hi'"`), split into words.
#[derive(Debug, Clone, Default)]
pub(crate) struct Words(pub Vec<String>);

/// Splits like a POSIX shell, without expansions: blanks separate words; '…' quotes literally;
/// "…" quotes with `\"` and `\\` escapes; a backslash outside quotes escapes the next character.
pub(crate) fn words(s: &str) -> Result<Words, String> {
    let (mut out, mut cur, mut in_word) = (Vec::new(), String::new(), false);
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        match c {
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated '".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c @ ('"' | '\\')) => cur.push(c),
                            Some(c) => {
                                cur.push('\\');
                                cur.push(c);
                            }
                            None => return Err("unterminated \"".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated \"".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                cur.extend(chars.next());
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(Words(out))
}

/// What one benchmark pod runs, and where.
#[derive(Debug, Clone)]
pub(crate) struct Workload {
    pub image: String,
    pub handler: String,
    /// The container's `command` (entrypoint override); empty keeps the image's.
    pub command: Vec<String>,
    pub args: Vec<String>,
    /// hostNetwork (`true`) or a pod network namespace made by the runtime.
    pub host_network: bool,
}

/// A started pod and when each CRI call returned.
pub(crate) struct Started {
    pub sandbox: String,
    /// The container's log file (`log_directory/c/0.log`).
    pub log: std::path::PathBuf,
    pub pod_logs: std::path::PathBuf,
    /// Before RunPodSandbox, after it, after CreateContainer, after StartContainer.
    pub times: [Instant; 4],
}

/// RunPodSandbox → CreateContainer → StartContainer, as kubelet sends them. Like kubelet, makes
/// the pod's log directory (and the container's subdirectory) first: runtimes expect it.
pub(crate) async fn start_pod(client: &mut CriClient, w: &Workload, name: &str, log_dir: &Path) -> anyhow::Result<Started> {
    let uid = format!("{:032x}", rand::random::<u128>());
    let network = if w.host_network { cri::NamespaceMode::Node } else { cri::NamespaceMode::Pod };
    let pod_logs = log_dir.join(&uid);
    std::fs::create_dir_all(pod_logs.join("c"))?;
    let config = cri::PodSandboxConfig {
        metadata: Some(cri::PodSandboxMetadata { name: name.into(), namespace: "bench".into(), uid, attempt: 0 }),
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
        .run_pod_sandbox(cri::RunPodSandboxRequest { config: Some(config.clone()), runtime_handler: w.handler.clone() })
        .await?
        .into_inner()
        .pod_sandbox_id;
    let t1 = Instant::now();
    let created = client
        .runtime
        .create_container(cri::CreateContainerRequest {
            pod_sandbox_id: sandbox.clone(),
            config: Some(cri::ContainerConfig {
                metadata: Some(cri::ContainerMetadata { name: "c".into(), attempt: 0 }),
                image: Some(cri::ImageSpec { image: w.image.clone(), ..Default::default() }),
                command: w.command.clone(),
                args: w.args.clone(),
                log_path: "c/0.log".into(),
                ..Default::default()
            }),
            sandbox_config: Some(config),
        })
        .await;
    let container = match created {
        Ok(r) => r.into_inner().container_id,
        Err(e) => {
            teardown(client, &sandbox, &pod_logs).await;
            return Err(e.into());
        }
    };
    let t2 = Instant::now();
    if let Err(e) = client.runtime.start_container(cri::StartContainerRequest { container_id: container }).await {
        teardown(client, &sandbox, &pod_logs).await;
        return Err(e.into());
    }
    let t3 = Instant::now();
    Ok(Started { sandbox, log: pod_logs.join("c/0.log"), pod_logs, times: [t0, t1, t2, t3] })
}

/// StopPodSandbox + RemovePodSandbox (errors ignored: best effort), then the pod's logs.
pub(crate) async fn teardown(client: &mut CriClient, sandbox: &str, pod_logs: &Path) {
    let _ = client.runtime.stop_pod_sandbox(cri::StopPodSandboxRequest { pod_sandbox_id: sandbox.into() }).await;
    let _ = client.runtime.remove_pod_sandbox(cri::RemovePodSandboxRequest { pod_sandbox_id: sandbox.into() }).await;
    let _ = std::fs::remove_dir_all(pod_logs);
}

#[cfg(test)]
mod tests {
    use super::words;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(words("sh -c 'echo hi'").unwrap().0, ["sh", "-c", "echo hi"]);
        assert_eq!(words(r#"  a "b \"c\" d"  e\ f ''"#).unwrap().0, ["a", "b \"c\" d", "e f", ""]);
        assert!(words("").unwrap().0.is_empty());
        assert!(words("'open").is_err());
    }
}
