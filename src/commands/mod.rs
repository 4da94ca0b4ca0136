//! One module per subcommand.

pub mod bench;
pub mod cgroup_root;
pub mod daemon;
pub mod image;
pub mod node;
pub mod run;
pub mod shim;
