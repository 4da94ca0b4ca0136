//! `wasmlet run pod.yaml`: one Pod on an embedded runtime in the foreground. The runtime serves
//! the CRI on a private socket and the pod runs through `wasmlet node`'s own pod logic
//! (crates/kubelet-wasm) on that socket, exactly as on a node; container logs stream to the
//! terminal; the exit code is the pod's result. Images may be given as paths to `.wasm` files:
//! they are imported first.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use k8s_openapi::api::core::v1::{ContainerStatus, Pod};
use wasmlet_cri::Runtime;
use wasmlet_kubelet::backoff::BackoffConfig;
use wasmlet_kubelet::board::Board;
use wasmlet_kubelet::logs::{Stream, Tail};
use wasmlet_kubelet::manager::Manager;
use wasmlet_kubelet::node::{NodeInfo, Reserved};
use wasmlet_kubelet::settings::Settings;
use wasmlet_kubelet::status::{FAILED, SUCCEEDED};

use crate::config::PathFlags;
use crate::pod::{self, RunPod};

#[derive(clap::Args)]
pub struct Args {
    /// The Pod manifest (YAML). Without `restartPolicy`, the pod runs once (`Never`).
    file: PathBuf,
    #[command(flatten)]
    paths: PathFlags,
}

/// Waiting reasons after which `wasmlet run` gives up instead of retrying as a node would.
const FATAL_WAITING: &[&str] = &[
    "ErrImagePull",
    "ErrImageNeverPull",
    "CreateContainerConfigError",
    "CreateContainerError",
    "RunContainerError",
];

pub fn main(args: Args, log_filter: &str) -> anyhow::Result<ExitCode> {
    // Forked first, while this process is single-threaded (compiling at import starts threads).
    let zygote = wasmlet_shim::zygote::Zygote::start()?;
    let mut run = RunPod::load(&args.file)?;
    let paths = args.paths.resolve()?;
    let images_dir = paths.root.join("images");
    pod::import_wasm_paths(
        &mut run.pod,
        &images_dir,
        args.file.parent().unwrap_or(Path::new(".")),
    )?;

    let work = paths.state.join(format!("run-{}", std::process::id()));
    let opts = paths.runtime_options(work.join("r"), work.join("s"), zygote, log_filter)?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let result = rt.block_on(async {
        let runtime = Runtime::open(opts).await?;
        let owner = Arc::clone(&runtime);
        let socket = work.join("cri.sock");
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let server_socket = socket.clone();
        let server = tokio::spawn(async move {
            wasmlet_cri::serve(runtime, &server_socket, async {
                let _ = stop_rx.await;
            })
            .await
        });
        while !socket.exists() && !server.is_finished() {
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
        let client = wasmlet_kubelet::cri::connect(socket.to_str().context("socket path")?).await?;
        let code = run_pod(client, run, &work).await;
        let _ = stop_tx.send(());
        let _ = server.await;
        owner.remove_qos_tiers_made();
        code
    });
    let _ = std::fs::remove_dir_all(&work);
    result.map(|code| ExitCode::from(u8::try_from(code.clamp(0, 255)).unwrap_or(1)))
}

async fn run_pod(
    client: wasmlet_kubelet::cri::CriClient,
    run: RunPod,
    work: &Path,
) -> anyhow::Result<i32> {
    let node = NodeInfo::detect(None, Reserved::default(), 110)?;
    let settings = Arc::new(Settings {
        node,
        root: work.to_path_buf(),
        log_root: work.join("logs"),
        restart_backoff: BackoffConfig::default(),
        pull_backoff: BackoffConfig::default(),
        resync: Duration::from_millis(50),
        objects: Default::default(),
        runtime_name: "wasmlet".into(),
    });
    for (kind, ns, name, data) in run.objects {
        settings.objects.put(kind, &ns, &name, data);
    }
    let board = Board::default();
    let uid = run.pod.metadata.uid.clone().unwrap_or_default();
    let mut manager = Manager::new(settings.clone(), client, board.clone());
    manager.apply(run.pod, &run.source);
    let mut out = Output::default();
    let mut interrupted = std::pin::pin!(tokio::signal::ctrl_c());
    let mut tick = tokio::time::interval(settings.resync);
    let code = loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = &mut interrupted => {
                eprintln!("interrupted: stopping the pod");
                manager.remove(&uid, None);
                manager.wait_stopped().await;
                return Ok(130);
            }
        }
        let _ = manager.relist().await;
        let Some(record) = board.get(&uid) else {
            continue;
        };
        out.follow(&record);
        out.warn(&record);
        let status = record.pod.status.clone().unwrap_or_default();
        match status.phase.as_deref() {
            Some(SUCCEEDED) => break 0,
            Some(FAILED) => {
                if let Some(r) = &status.reason {
                    eprintln!(
                        "pod failed: {r}: {}",
                        status.message.clone().unwrap_or_default()
                    );
                }
                break failed_code(&status.init_container_statuses, &status.container_statuses);
            }
            _ => {}
        }
        let all = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten());
        if let Some((name, reason, message)) = all
            .filter_map(|s| {
                let w = s.state.as_ref()?.waiting.as_ref()?;
                let r = w.reason.clone()?;
                FATAL_WAITING
                    .contains(&r.as_str())
                    .then(|| (s.name.clone(), r, w.message.clone().unwrap_or_default()))
            })
            .next()
        {
            eprintln!("container {name}: {reason}: {message}");
            break 1;
        }
    };
    if let Some(record) = board.get(&uid) {
        out.follow(&record);
    }
    manager.remove(&uid, Some(0));
    manager.wait_stopped().await;
    Ok(code)
}

/// The first failed container's exit code (init containers first), printing why each failed.
fn failed_code(init: &Option<Vec<ContainerStatus>>, regular: &Option<Vec<ContainerStatus>>) -> i32 {
    let mut worst = 0;
    for s in init.iter().flatten().chain(regular.iter().flatten()) {
        let Some(t) = s.state.as_ref().and_then(|st| st.terminated.as_ref()) else {
            continue;
        };
        if t.exit_code != 0 {
            let msg = t
                .message
                .clone()
                .map(|m| format!(": {m}"))
                .unwrap_or_default();
            eprintln!(
                "container {} exited with {} ({}){msg}",
                s.name,
                t.exit_code,
                t.reason.clone().unwrap_or_default()
            );
            if worst == 0 {
                worst = t.exit_code;
            }
        }
    }
    if worst == 0 { 1 } else { worst }
}

/// The terminal side: every container instance's log, prefixed with its name when the pod has
/// several, and the pod's warning events.
#[derive(Default)]
struct Output {
    tails: BTreeMap<(String, i32), Tail>,
    warned: BTreeSet<String>,
}

impl Output {
    fn follow(&mut self, record: &wasmlet_kubelet::board::PodRecord) {
        let pod: &Pod = &record.pod;
        let Some(status) = pod.status.as_ref() else {
            return;
        };
        let statuses: Vec<&ContainerStatus> = status
            .init_container_statuses
            .iter()
            .flatten()
            .chain(status.container_statuses.iter().flatten())
            .collect();
        let multi = statuses.len() > 1;
        for s in statuses {
            let started = s
                .state
                .as_ref()
                .is_some_and(|st| st.running.is_some() || st.terminated.is_some())
                || s.last_state.is_some();
            if !started || record.log_dir.is_empty() {
                continue;
            }
            let key = (s.name.clone(), s.restart_count);
            self.tails.entry(key).or_insert_with(|| {
                Tail::new(
                    Path::new(&record.log_dir)
                        .join(&s.name)
                        .join(format!("{}.log", s.restart_count)),
                )
            });
        }
        for ((name, _), tail) in &mut self.tails {
            let prefix = if multi {
                format!("[{name}] ")
            } else {
                String::new()
            };
            tail.pump(|stream, text, full| {
                use std::io::Write;
                let end = if full { "\n" } else { "" };
                let _ = match stream {
                    Stream::Stdout => write!(std::io::stdout(), "{prefix}{text}{end}"),
                    Stream::Stderr => write!(std::io::stderr(), "{prefix}{text}{end}"),
                };
            });
        }
        use std::io::Write;
        let _ = std::io::stdout().flush();
    }

    fn warn(&mut self, record: &wasmlet_kubelet::board::PodRecord) {
        for e in &record.events {
            if e.type_ == "Warning" && self.warned.insert(format!("{}{}", e.reason, e.message)) {
                eprintln!("warning: {}: {}", e.reason, e.message);
            }
        }
    }
}
