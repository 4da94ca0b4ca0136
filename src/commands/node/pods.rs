//! `wasmlet node pods`: the agent's pods as `kubectl get pods` prints them, from its state file,
//! then the manifests it could not use.

use std::process::ExitCode;

use anyhow::Context;
use wasmlet_kubelet::{state_file, table};

use super::RootFlag;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    root: RootFlag,
    /// Also print the NAMESPACE column.
    #[arg(short = 'A', long)]
    all_namespaces: bool,
}

pub fn main(args: Args) -> anyhow::Result<ExitCode> {
    let path = state_file::path(&args.root.root);
    let snapshot = state_file::read(&path).with_context(|| {
        format!(
            "is `wasmlet node` running with --root {}?",
            args.root.root.display()
        )
    })?;
    let now = k8s_openapi::jiff::Timestamp::now();
    let rows: Vec<Vec<String>> = snapshot
        .pods
        .iter()
        .map(|r| {
            let mut row = table::row(&r.pod, now).to_vec();
            if args.all_namespaces {
                row.insert(0, r.pod.metadata.namespace.clone().unwrap_or_default());
            }
            row
        })
        .collect();
    let mut header = vec!["NAME", "READY", "STATUS", "RESTARTS", "AGE"];
    if args.all_namespaces {
        header.insert(0, "NAMESPACE");
    }
    if rows.is_empty() {
        println!("No resources found.");
    } else {
        print!("{}", table::render(&header, &rows));
    }
    for e in &snapshot.errors {
        eprintln!("error: {}: {}", e.source, e.message);
    }
    Ok(ExitCode::SUCCESS)
}
