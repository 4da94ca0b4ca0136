//! wasmlet's cgroup layer (work in progress).
