//! Linux containers in the shim, beside the Wasm ones: [`create`] is the libcontainer helper the
//! shim execs to create a container, [`exec`] the one that runs a process in it, [`process`] the
//! shim's handle on one container, [`terminal`] the terminals of containers and execs,
//! [`pid_holder`] the pod's shared PID namespace, [`reaper`] collects exits.

pub mod create;
pub mod exec;
pub mod pid_holder;
pub(crate) mod process;
pub(crate) mod reaper;
pub(crate) mod terminal;
