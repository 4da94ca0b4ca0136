//! The shim: one supervisor process per pod. It runs the pod's Wasm containers under wasmtime (one
//! thread each), writes their output in the CRI log format, records each exit on disk, and keeps
//! running when the daemon that started it dies, so a daemon restart stops nothing.
//!
//! The daemon talks to a shim over a unix socket in the pod's shim directory with the small
//! JSON-lines protocol in [`protocol`]; [`client`] is the daemon's side, [`server`] the shim's.

pub mod atomic;
mod attach;
pub mod client;
mod container_stdin;
mod container_thread;
mod cri_log;
mod error;
pub mod exec;
mod exec_wasm;
mod fd_passing;
mod executor;
mod http_handler;
mod limiter;
mod preloaded;
pub mod linux;
pub mod netns;
mod proc_title;
mod ready_thread;
pub mod protocol;
pub mod server;
pub mod spawn;
mod supervisor;
mod wasi_stdio;
pub mod zygote;

pub use cri_log::{CriLog, LogStream};
pub use error::{Error, chain};
