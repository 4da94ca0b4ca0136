//! `wasmlet image`: import, pull, push, list and remove images in the local store (the same store the
//! daemon serves; safe while the daemon runs).

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context;
use wasmlet_image::{Auth, ImageStore, ProgressFn, PullOptions, PushOptions, RegistryOptions};

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
    /// Pull an image from its registry (plain HTTP for localhost, 127.0.0.1 and `--insecure` hosts).
    Pull {
        reference: String,
        #[command(flatten)]
        registry: RegistryFlags,
        #[command(flatten)]
        paths: PathFlags,
    },
    /// Push a `.wasm` file to a registry as a Wasm OCI artifact (pullable by containerd with runwasi).
    Push {
        wasm: PathBuf,
        reference: String,
        #[command(flatten)]
        registry: RegistryFlags,
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

#[derive(clap::Args)]
pub struct RegistryFlags {
    /// Registry user name (basic auth, or for the token service).
    #[arg(long, env = "WASMLET_REGISTRY_USERNAME")]
    username: Option<String>,
    /// Registry password.
    #[arg(long, env = "WASMLET_REGISTRY_PASSWORD", hide_env_values = true)]
    password: Option<String>,
    /// A registry host (`host[:port]`) to reach over plain HTTP; repeatable.
    #[arg(long)]
    insecure: Vec<String>,
    /// Seconds to wait for a connection or for each response to start.
    #[arg(long, default_value_t = 30)]
    timeout: u64,
}

impl RegistryFlags {
    fn auth(&self) -> Option<Auth> {
        match (&self.username, &self.password) {
            (None, None) => None,
            (u, p) => Some(Auth::basic(u.clone().unwrap_or_default(), p.clone().unwrap_or_default())),
        }
    }

    fn options(&self) -> RegistryOptions {
        RegistryOptions { insecure: self.insecure.clone(), timeout: Duration::from_secs(self.timeout), ..Default::default() }
    }
}

/// Progress lines on stderr for blobs of 1 MiB or more: at every quarter, and when done.
fn progress(verb: &'static str) -> Arc<ProgressFn> {
    let last: Mutex<(String, u64)> = Mutex::new((String::new(), 0));
    Arc::new(move |digest: &str, done: u64, total: u64| {
        if total < (1 << 20) {
            return;
        }
        let quarter = done * 4 / total.max(1);
        let mut last = last.lock().expect("not poisoned");
        if last.0 != digest || last.1 != quarter {
            *last = (digest.to_owned(), quarter);
            let short = &digest[digest.len().min(7)..digest.len().min(19)];
            eprintln!("{verb} {short}: {:.1}/{:.1} MiB", done as f64 / 1048576.0, total as f64 / 1048576.0);
        }
    })
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
        Command::Pull { reference, registry, paths } => {
            let store = open(&paths)?;
            let opts = PullOptions { registry: registry.options(), progress: Some(progress("pulling")) };
            let started = std::time::Instant::now();
            let image = store.pull(&reference, registry.auth(), &opts).map_err(|e| anyhow::anyhow!(wasmlet_cri::chain(&e)))?;
            eprintln!("pulled {reference} in {:.2?}", started.elapsed());
            println!("{} {}", image.id, image.repo_tags.join(","));
        }
        Command::Push { wasm, reference, registry } => {
            let opts = PushOptions { registry: registry.options(), progress: Some(progress("pushing")) };
            let pushed = wasmlet_image::push_wasm(&wasm, &reference, registry.auth(), &opts)
                .map_err(|e| anyhow::anyhow!(wasmlet_cri::chain(&e)))?;
            println!("{}@{}", pushed.reference, pushed.manifest_digest);
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
