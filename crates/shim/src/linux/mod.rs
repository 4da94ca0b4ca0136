//! Linux containers in the shim, beside the Wasm ones: [`create`] is the libcontainer helper the
//! shim execs to create a container, [`exec`] the one that runs a process in it, [`process`] the
//! shim's handle on one container, [`reaper`] collects exits.

pub mod create;
pub mod exec;
pub(crate) mod process;
pub(crate) mod reaper;
