//! Linux containers in the shim, beside the Wasm ones: [`create`] is the libcontainer helper the
//! shim execs, [`process`] the shim's handle on one container, [`reaper`] collects exits.

pub mod create;
pub(crate) mod process;
pub(crate) mod reaper;
