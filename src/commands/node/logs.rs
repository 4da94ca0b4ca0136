//! `wasmlet node logs POD [-c NAME] [-f]`: a container's log, found through the agent's state
//! file; with `-f`, follows it, moving on to the next instance's file when the container restarts.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, bail};
use wasmlet_kubelet::board::PodRecord;
use wasmlet_kubelet::logs::{Stream, Tail};
use wasmlet_kubelet::state_file;

use super::RootFlag;

#[derive(clap::Args)]
pub struct Args {
    /// The pod's name (or namespace/name).
    pod: String,
    /// The container (default: the pod's only, or first, container).
    #[arg(short = 'c', long)]
    container: Option<String>,
    /// Keep printing what the container writes.
    #[arg(short = 'f', long)]
    follow: bool,
    /// The previous instance's log (after a restart).
    #[arg(short = 'p', long)]
    previous: bool,
    #[command(flatten)]
    root: RootFlag,
}

fn find(args: &Args) -> anyhow::Result<(PodRecord, String)> {
    let path = state_file::path(&args.root.root);
    let snapshot = state_file::read(&path).with_context(|| {
        format!(
            "is `wasmlet node` running with --root {}?",
            args.root.root.display()
        )
    })?;
    let (ns, name) = args
        .pod
        .split_once('/')
        .map_or((None, args.pod.as_str()), |(n, p)| (Some(n), p));
    let record = snapshot
        .pods
        .into_iter()
        .find(|r| {
            r.pod.metadata.name.as_deref() == Some(name)
                && ns.is_none_or(|n| r.pod.metadata.namespace.as_deref() == Some(n))
        })
        .with_context(|| format!("pod {:?} not found", args.pod))?;
    let spec = record.pod.spec.clone().unwrap_or_default();
    let container = match &args.container {
        Some(c) => {
            if !spec
                .containers
                .iter()
                .chain(spec.init_containers.iter().flatten())
                .any(|x| &x.name == c)
            {
                bail!("container {c} is not valid for pod {name}");
            }
            c.clone()
        }
        None => spec
            .containers
            .first()
            .map(|c| c.name.clone())
            .context("the pod has no containers")?,
    };
    Ok((record, container))
}

/// The log file of the container's current (or previous) instance.
fn log_path(record: &PodRecord, container: &str, previous: bool) -> Option<PathBuf> {
    let status = record.pod.status.as_ref()?;
    let all = status
        .container_statuses
        .iter()
        .flatten()
        .chain(status.init_container_statuses.iter().flatten());
    let s = all.into_iter().find(|s| s.name == container)?;
    let restarts = s.restart_count;
    let n = if previous {
        restarts.checked_sub(1)?
    } else {
        restarts
    };
    if record.log_dir.is_empty() {
        return None;
    }
    Some(
        PathBuf::from(&record.log_dir)
            .join(container)
            .join(format!("{n}.log")),
    )
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let (record, container) = find(&args)?;
    let Some(mut path) = log_path(&record, &container, args.previous) else {
        bail!("container {container} has no log yet (is it running?)");
    };
    let mut tail = Tail::new(path.clone());
    let print = |s: Stream, text: &str, full: bool| {
        let end = if full { "\n" } else { "" };
        let _ = match s {
            Stream::Stdout => write!(std::io::stdout(), "{text}{end}"),
            Stream::Stderr => write!(std::io::stderr(), "{text}{end}"),
        };
    };
    tail.pump(print);
    let _ = std::io::stdout().flush();
    if !args.follow {
        return Ok(ExitCode::SUCCESS);
    }
    loop {
        std::thread::sleep(Duration::from_millis(200));
        tail.pump(print);
        let _ = std::io::stdout().flush();
        // A restart writes to the next instance's file.
        if let Ok((record, _)) = find(&args)
            && let Some(next) = log_path(&record, &container, false)
            && next != path
        {
            tail.pump(print);
            path = next.clone();
            tail = Tail::new(next);
        }
    }
}
