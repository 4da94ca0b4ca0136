//! `wasmlet image`: import, list and remove images in the local store (the same store the daemon
//! serves; safe while the daemon runs).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use wasmlet_image::ImageStore;

use crate::config::PathFlags;

#[derive(clap::Subcommand)]
pub enum Command {
    /// Import a `.wasm` file or an OCI image-layout directory (compiled ahead of time once, here).
    Import {
        path: PathBuf,
        /// Name to tag it with [default: localhost/<file stem>:latest].
        #[arg(long)]
        name: Option<String>,
        #[command(flatten)]
        paths: PathFlags,
    },
    /// List images.
    Ls {
        #[command(flatten)]
        paths: PathFlags,
    },
    /// Remove an image by id, tag or digest.
    Rm {
        reference: String,
        #[command(flatten)]
        paths: PathFlags,
    },
}

fn open(paths: &PathFlags) -> anyhow::Result<ImageStore> {
    let root = paths.resolve()?.root.join("images");
    ImageStore::open(&root).with_context(|| format!("opening the image store at {}", root.display()))
}

pub fn main(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Import { path, name, paths } => {
            let store = open(&paths)?;
            let images = store.import(&path, name.as_deref()).map_err(|e| anyhow::anyhow!(wasmlet_cri::chain(&e)))?;
            for image in images {
                println!("{} {}", image.id, image.repo_tags.join(","));
            }
        }
        Command::Ls { paths } => {
            let store = open(&paths)?;
            println!("{:<50} {:<10} {:>10}  {}", "IMAGE", "KIND", "SIZE", "ID");
            for image in store.list().map_err(|e| anyhow::anyhow!(wasmlet_cri::chain(&e)))? {
                let name = image.repo_tags.first().cloned().unwrap_or_else(|| "<none>".into());
                let id = image.id.trim_start_matches("sha256:");
                println!("{:<50} {:<10} {:>10}  {}", name, image.kind, image.size, &id[..id.len().min(13)]);
            }
        }
        Command::Rm { reference, paths } => {
            let store = open(&paths)?;
            match store.remove(&reference).map_err(|e| anyhow::anyhow!(wasmlet_cri::chain(&e)))? {
                Some(image) => println!("removed {reference} ({})", image.id),
                None => {
                    eprintln!("no image {reference}");
                    return Ok(ExitCode::from(1));
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
