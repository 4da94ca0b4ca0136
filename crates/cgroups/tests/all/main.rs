//! wasmlet-cgroups integration tests, one binary. Modules named `*_real` drive the REAL kernel as
//! root (v1 under `/sys/fs/cgroup/<controller>/wasmlet-test-<pid>-<n>`, v2 on a private cgroup2
//! mount); `*_fixture` modules drive directories of files named and filled like the kernel's,
//! for what this host cannot show for real. Tests that cannot run fail and say why.

mod common;
mod many_real;
mod timing_real;
mod v1_fixture;
mod v1_real;
mod v2_fixture;
mod v2_real;
