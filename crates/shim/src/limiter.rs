//! The per-container memory cap inside the engine: a linear memory (or table) may not grow past
//! the container's `memory_limit_in_bytes`. A refused grow traps the guest and is remembered, so
//! the exit is reported as `OOMKilled` with code 137, like a kernel OOM kill.
//!
//! The cap lives in a [`MemoryCap`] shared (an `Arc` of atomics) between the container's store and
//! the supervisor, so UpdateContainerResources can change it while the guest runs and the Stats
//! request can read the guest's linear-memory size without touching the store.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::ResourceLimiter;

/// The live limit and the last granted linear-memory size of one container.
#[derive(Debug, Default)]
pub(crate) struct MemoryCap {
    /// Bytes; 0 = no limit.
    limit: AtomicU64,
    /// The size the guest's linear memory last grew to (the `desired` of the last granted grow).
    current: AtomicU64,
}

impl MemoryCap {
    pub fn new(limit: Option<u64>) -> Arc<MemoryCap> {
        let cap = Arc::new(MemoryCap::default());
        cap.set_limit(limit);
        cap
    }

    pub fn set_limit(&self, limit: Option<u64>) {
        self.limit.store(limit.unwrap_or(0), Ordering::SeqCst);
    }

    pub fn limit(&self) -> Option<u64> {
        Some(self.limit.load(Ordering::SeqCst)).filter(|&l| l != 0)
    }

    /// The guest's linear memory in bytes, as last granted.
    pub fn current(&self) -> u64 {
        self.current.load(Ordering::SeqCst)
    }
}

pub(crate) struct MemoryLimiter {
    pub cap: Arc<MemoryCap>,
    pub exceeded: bool,
}

impl MemoryLimiter {
    pub fn new(cap: Arc<MemoryCap>) -> MemoryLimiter {
        MemoryLimiter { cap, exceeded: false }
    }
}

impl ResourceLimiter for MemoryLimiter {
    fn memory_growing(&mut self, current: usize, desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        let desired_bytes = u64::try_from(desired).unwrap_or(u64::MAX);
        match self.cap.limit() {
            Some(limit) if desired_bytes > limit => {
                self.exceeded = true;
                Err(wasmtime::format_err!(
                    "memory limit exceeded: growing linear memory from {current} to {desired} bytes, limit {limit}"
                ))
            }
            _ => {
                // A WASI command has one linear memory; with several this tracks the last grown.
                self.cap.current.store(desired_bytes, Ordering::SeqCst);
                Ok(true)
            }
        }
    }

    fn table_growing(&mut self, _current: usize, _desired: usize, _max: Option<usize>) -> wasmtime::Result<bool> {
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cap_can_be_raised_while_running_and_tracks_size() {
        let cap = MemoryCap::new(Some(64 << 20));
        let mut l = MemoryLimiter::new(Arc::clone(&cap));
        assert!(l.memory_growing(0, 32 << 20, None).unwrap());
        assert_eq!(cap.current(), 32 << 20);
        assert!(l.memory_growing(32 << 20, 96 << 20, None).is_err());
        assert!(l.exceeded);
        assert_eq!(cap.current(), 32 << 20, "a refused grow does not count");
        cap.set_limit(Some(128 << 20));
        let mut l = MemoryLimiter::new(Arc::clone(&cap));
        assert!(l.memory_growing(32 << 20, 96 << 20, None).unwrap());
        cap.set_limit(None);
        assert_eq!(cap.limit(), None);
        assert!(l.memory_growing(96 << 20, 1 << 40, None).unwrap());
    }
}
