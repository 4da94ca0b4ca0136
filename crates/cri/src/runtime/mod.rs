//! RuntimeService: one file per RPC, each an `impl Runtime` block.

mod attach;
mod cgroup;
mod container_create;
mod container_list;
mod container_remove;
mod container_start;
mod container_status;
mod container_stop;
mod container_update;
mod exec;
mod exec_sync;
pub(crate) mod linux;
mod log_reopen;
mod pending_create;
mod port_forward;
mod process_args;
mod process_exit;
mod runtime_config;
mod sandbox_list;
pub(crate) mod sandbox_network;
mod sandbox_remove;
mod sandbox_run;
mod sandbox_status;
mod sandbox_stop;
mod stats_container;
mod stats_sandbox;
mod status;
mod version;


pub(crate) use cgroup::Cgroups;
pub(crate) use pending_create::PendingCreates;
