//! wasmlet's end-to-end tests: each test starts a real `wasmlet daemon` (with its own root, state
//! and socket under /tmp) and drives it over its CRI socket exactly as kubelet or crictl would,
//! running real Wasm guests from `examples/wasm-apps` in real shim processes.
//!
//! They need root (shims detach into their own sessions, the daemon chowns its socket to root):
//! run them with `cargo test --test all` as root. A test that cannot run fails and says why.
//!
//! A failed test keeps its directory (daemon.log, container logs, shim logs) and prints where it
//! is; `WASMLET_E2E_KEEP=1` keeps every test's.
//!
//! One integration-test binary with one module per area keeps link times down on 2 cores.

mod harness;

mod attach;
mod cgroup_v2;
mod cgroups;
mod concurrency;
mod errors;
mod http_handler;
mod images;
mod lifecycle;
mod linux;
mod logs;
mod mounts;
mod network;
mod node;
mod registry;
mod resources;
mod restart;
mod shim_connections;
mod streaming;
mod zygote;
