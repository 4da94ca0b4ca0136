//! RuntimeService: one file per RPC, each an `impl Runtime` block.

mod container_create;
mod container_list;
mod container_remove;
mod container_start;
mod container_status;
mod container_stop;
mod log_reopen;
mod runtime_config;
mod sandbox_list;
mod sandbox_remove;
mod sandbox_run;
mod sandbox_status;
mod sandbox_stop;
mod status;
mod version;

